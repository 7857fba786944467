"""Map speed: Python-side hash-map operations and map helper calls inside programs.

1. Lookups and updates per second from Python on a 1,000,000-entry hash map (u32 key,
   u64 value): the VM map through ``bpfkit.load``'s raw interface and through its
   ``MutableMapping`` (ints through BTF-less codecs), next to the same operations on a
   kernel map with one ``bpf()`` syscall each (``bpfkit.kernel.sys``).
2. Map helper calls per second inside a program: a loop calling
   ``bpf_map_lookup_elem`` in the interpreter (and the JIT, when available), next to the
   same program in the kernel (``BPF_PROG_TEST_RUN`` duration).
3. Inserts and deletes per second inside a program: a loop inserting ``n`` new keys
   then a loop deleting them (hash and per-CPU hash); an LRU hash of ``n / 8`` entries
   taking ``n`` new keys (every insert after the first ``n / 8`` evicts) plus a lookup
   of each; interpreter, JIT and the kernel. A run leaves the map as it found it (LRU:
   full), so repeated runs measure the steady state.

Run: ``python bench/maps.py [--entries N] [--ops N] [--calls N] [--json]``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import struct
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R10,
    Label,
    add64,
    assemble,
    call,
    exit_,
    jlt,
    ld_map_fd,
    mov64,
    st,
    stx,
)
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm.object import VMMapView
from bpfkit.vm.runtime import VMRuntime

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")


def vm_runtime(**kw) -> VMRuntime:
    """A runtime for the loops below: 100,000-iteration loops are beyond the verifier's
    step limit, so (where the runtime verifies on load) they load unverified."""
    if "verify" in inspect.signature(VMRuntime).parameters:
        kw["verify"] = False
    return VMRuntime(**kw)


def rate(n: int, ns: int) -> float:
    return n / (ns / 1e9) if ns else float("inf")


def timed(fn) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def kernel_ok() -> bool:
    try:
        from bpfkit.kernel.privileges import kernel_available

        return kernel_available()[0]
    except Exception:  # noqa: BLE001
        return False


# ---- 1. Python-side hash map operations ----------------------------------------------
def python_side(entries: int, ops: int) -> dict[str, float]:
    rng = random.Random(1)
    keys = [U32.pack(i) for i in range(entries)]
    probe = [keys[rng.randrange(entries)] for _ in range(ops)]
    probe_ints = [U32.unpack(k)[0] for k in probe]
    vals = [U64.pack(i) for i in range(entries)]
    out: dict[str, float] = {}

    rt = VMRuntime(ncpus=1)
    vm = rt.create_map("h", MapType.HASH, 4, 8, entries)
    view = VMMapView(vm)
    upd = vm.update
    dt = timed(lambda: [upd(k, v) for k, v in zip(keys, vals, strict=True)])
    out["vm fill (update, new keys)"] = rate(entries, dt)
    look = vm.lookup
    out["vm lookup"] = rate(ops, timed(lambda: [look(k) for k in probe]))
    v8 = vals[0]
    out["vm update (existing)"] = rate(ops, timed(lambda: [upd(k, v8) for k in probe]))
    out["vm map[k] (MutableMapping)"] = rate(ops, timed(lambda: [view[k] for k in probe_ints]))
    out["vm map[k] = v (MutableMapping)"] = rate(
        ops, timed(lambda: [view.__setitem__(k, 5) for k in probe_ints])
    )
    rt.close()

    if kernel_ok():
        from bpfkit.kernel import sys as ks

        fd = ks.map_create(MapType.HASH, 4, 8, entries)
        try:
            batch = 100_000
            dt = timed(
                lambda: [
                    ks.map_update_batch(fd, keys[i : i + batch], vals[i : i + batch])
                    for i in range(0, entries, batch)
                ]
            )
            out["kernel fill (update_batch)"] = rate(entries, dt)
            out["kernel lookup (syscall)"] = rate(
                ops, timed(lambda: [ks.map_lookup(fd, k, 8) for k in probe])
            )
            out["kernel update (syscall)"] = rate(
                ops, timed(lambda: [ks.map_update(fd, k, v8) for k in probe])
            )
        finally:
            os.close(fd)
    return out


# ---- 2. helper calls inside a program -------------------------------------------------
def lookup_loop(map_fd: int, n: int) -> list:
    """``n`` times: key = 0; r0 = bpf_map_lookup_elem(map, &key)."""
    return assemble(
        [
            mov64(R6, 0),
            Label("loop"),
            st(4, R10, -4, 0),
            ld_map_fd(R1, map_fd),
            mov64(R2, R10),
            add64(R2, -4),
            call(1),
            add64(R6, 1),
            jlt(R6, n, "loop"),
            mov64(R0, 0),
            exit_(),
        ]
    )


def update_loop(map_fd: int, n: int) -> list:
    """``n`` times: key = 0; value = 5; r0 = bpf_map_update_elem(map, &key, &value, BPF_ANY)."""
    return assemble(
        [
            mov64(R6, 0),
            Label("loop"),
            st(4, R10, -4, 0),
            st(8, R10, -16, 5),
            ld_map_fd(R1, map_fd),
            mov64(R2, R10),
            add64(R2, -4),
            mov64(R3, R10),
            add64(R3, -16),
            mov64(R4, 0),
            call(2),
            add64(R6, 1),
            jlt(R6, n, "loop"),
            mov64(R0, 0),
            exit_(),
        ]
    )


def helper_calls(n: int, runs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for mtype, helper, loop in (
        (MapType.HASH, "map_lookup_elem", lookup_loop),
        (MapType.ARRAY, "map_lookup_elem", lookup_loop),
        (MapType.HASH, "map_update_elem", update_loop),
        (MapType.ARRAY, "map_update_elem", update_loop),
    ):
        kind = mtype.name.lower()
        rt = vm_runtime(ncpus=1, budget=20 * n)
        m = rt.create_map("m", mtype, 4, 8, 1)
        m.update(U32.pack(0), U64.pack(1))
        prog = rt.load_program("loop", ProgType.XDP, loop(m.fd, n))
        for engine in ("interp", "jit"):
            try:
                prog.test_run(data=bytes(14), engine=engine)
            except Exception:  # noqa: BLE001 - the JIT may be absent
                continue
            best = min(
                prog.test_run(data=bytes(14), engine=engine).duration_ns for _ in range(runs)
            )
            out[f"vm {engine}: {helper} ({kind})"] = rate(n, best)
        rt.close()
        if kernel_ok():
            from bpfkit.kernel import sys as ks

            fd = ks.map_create(mtype, 4, 8, 1)
            kn = min(n, 50_000)
            try:
                ks.map_update(fd, U32.pack(0), U64.pack(1))
                pfd = ks.prog_load(ProgType.XDP, loop(fd, kn))
                try:
                    r = ks.prog_test_run(pfd, data=bytes(14), repeat=20)
                    inl = mtype == MapType.ARRAY and helper == "map_lookup_elem"
                    note = " (inlined by the verifier)" if inl else ""
                    out[f"kernel: {helper} ({kind}){note}"] = rate(kn, r.duration_ns)
                finally:
                    os.close(pfd)
            finally:
                os.close(fd)
    return out


# ---- 3. inserts and deletes inside a program ------------------------------------------
def insert_delete_loop(map_fd: int, n: int) -> list:
    """Keys 0..n-1: ``bpf_map_update_elem(BPF_NOEXIST)`` each, then ``bpf_map_delete_elem``
    each (2n helper calls; r0 = the sum of the return codes, 0)."""
    return assemble(
        [
            st(8, R10, -16, 5),
            mov64(R7, 0),
            mov64(R6, 0),
            Label("ins"),
            stx(4, R10, -4, R6),
            ld_map_fd(R1, map_fd),
            mov64(R2, R10),
            add64(R2, -4),
            mov64(R3, R10),
            add64(R3, -16),
            mov64(R4, 1),
            call(2),
            add64(R7, R0),
            add64(R6, 1),
            jlt(R6, n, "ins"),
            mov64(R6, 0),
            Label("del"),
            stx(4, R10, -4, R6),
            ld_map_fd(R1, map_fd),
            mov64(R2, R10),
            add64(R2, -4),
            call(3),
            add64(R7, R0),
            add64(R6, 1),
            jlt(R6, n, "del"),
            mov64(R0, R7),
            exit_(),
        ]
    )


def lru_loop(map_fd: int, n: int, base: int = 0) -> list:
    """Keys base..base+n-1: ``bpf_map_update_elem(BPF_ANY)`` (a new key: evicts once the
    map is full) then ``bpf_map_lookup_elem`` of it (2n helper calls)."""
    return assemble(
        [
            st(8, R10, -16, 5),
            mov64(R6, 0),
            Label("loop"),
            mov64(R1, R6),
            add64(R1, base),
            stx(4, R10, -4, R1),
            ld_map_fd(R1, map_fd),
            mov64(R2, R10),
            add64(R2, -4),
            mov64(R3, R10),
            add64(R3, -16),
            mov64(R4, 0),
            call(2),
            ld_map_fd(R1, map_fd),
            mov64(R2, R10),
            add64(R2, -4),
            call(1),
            add64(R6, 1),
            jlt(R6, n, "loop"),
            mov64(R0, 0),
            exit_(),
        ]
    )


def churn_calls(n: int, runs: int) -> dict[str, float]:
    """Inserts/deletes (hash, per-CPU hash) and LRU inserts with evictions, per second."""
    out: dict[str, float] = {}
    cases = (
        ("insert+delete (hash)", MapType.HASH, n, insert_delete_loop),
        ("insert+delete (percpu_hash, 2 CPUs)", MapType.PERCPU_HASH, n, insert_delete_loop),
        ("insert (evicting)+lookup (lru_hash)", MapType.LRU_HASH, max(1, n // 8), lru_loop),
    )
    for label, mtype, entries, loop in cases:
        rt = vm_runtime(ncpus=2 if mtype == MapType.PERCPU_HASH else 1, budget=40 * n)
        m = rt.create_map("m", mtype, 4, 8, entries)
        prog = rt.load_program("loop", ProgType.XDP, loop(m.fd, n))
        for engine in ("interp", "jit"):
            try:
                prog.test_run(data=bytes(14), engine=engine)  # warm: compile, Regions
            except Exception:  # noqa: BLE001 - the JIT may be absent
                continue
            # the JIT in a native loop of 5 runs (mean per run), like the kernel's repeat
            reps = 5 if engine == "jit" else 1
            best = min(
                prog.test_run(data=bytes(14), engine=engine, repeat=reps).duration_ns
                for _ in range(runs)
            )
            out[f"vm {engine}: {label}"] = rate(2 * n, best)
        rt.close()
        if kernel_ok():
            from bpfkit.kernel import sys as ks

            kn = min(n, 20_000)
            fd = ks.map_create(mtype, 4, 8, max(1, kn // 8) if mtype == MapType.LRU_HASH else kn)
            try:
                pfd = ks.prog_load(ProgType.XDP, loop(fd, kn))
                try:
                    r = ks.prog_test_run(pfd, data=bytes(14), repeat=20)
                    out[f"kernel: {label}"] = rate(2 * kn, r.duration_ns)
                finally:
                    os.close(pfd)
            finally:
                os.close(fd)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--ops", type=int, default=200_000)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = {
        "python_side": python_side(a.entries, a.ops),
        "helper_calls": helper_calls(a.calls, 3),
        "churn_calls": churn_calls(a.calls, 3),
    }
    if a.json:
        print(json.dumps(res))
        return
    console = Console()
    for title, rows in (
        (f"Hash map from Python, {a.entries:,} entries (ops/s)", res["python_side"]),
        ("Map helper calls inside a program (calls/s)", res["helper_calls"]),
        ("Inserts, deletes and evictions inside a program (calls/s)", res["churn_calls"]),
    ):
        t = Table(title=title)
        t.add_column("operation")
        t.add_column("per second", justify="right")
        for k, v in rows.items():
            t.add_row(escape(k), f"{v:,.0f}")
        console.print(t)


if __name__ == "__main__":
    main()
