"""Ring-buffer production in programs and consumption in Python: records per second.

A program (``bpf_ringbuf_output`` of a 16-byte event per run, run with ``repeat``)
fills a 64 MiB ring buffer; Python then drains it. In the VM the consumer is
``RingBuffer.consume()``; in the kernel, the same program fills a kernel ring buffer and
a minimal Python consumer reads the mmap'ed pages (header, length, busy/discard bits,
consumer position), the work any pure-Python ring-buffer reader does.

Production is also timed in a program loop: ``bpf_ringbuf_reserve`` of 16 bytes, two
stores, ``bpf_ringbuf_submit``, ``LOOP`` times per run (and the ``output`` program), under
the interpreter, the JIT (native ring-buffer helpers; "verified" compiles the stores to
the record without a region check where bpfkit's verifier proves them, "all-checked"
keeps every check) and the kernel (``BPF_PROG_TEST_RUN`` repeat, its mean).

Run: ``python bench/ringbuf.py [--records N] [--json]``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import mmap
import os
import struct
import time

from rich.console import Console
from rich.table import Table

from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R10,
    Label,
    add64,
    assemble,
    call,
    exit_,
    jeq,
    jlt,
    ld_map_fd,
    mov64,
    st,
    stx,
)
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm.runtime import VMRuntime

RING = 64 << 20
EVENT = 16
PAGE = mmap.PAGESIZE
LOOP = 64  # reserve+submit pairs per run of the loop program


def producer(map_fd: int) -> list:
    """One 16-byte record per run: bpf_ringbuf_output(&rb, &event, 16, 0)."""
    return assemble(
        [
            st(8, R10, -16, 0x1234),
            st(8, R10, -8, 0x5678),
            ld_map_fd(R1, map_fd),
            mov64(R2, R10),
            add64(R2, -16),
            mov64(R3, EVENT),
            mov64(R4, 0),
            call(130),
            mov64(R0, 2),
            exit_(),
        ]
    )


def reserve_loop(map_fd: int) -> list:
    """``LOOP`` times: e = bpf_ringbuf_reserve(&rb, 16, 0); e[0] = i; e[1] = ...; submit."""
    return assemble(
        [
            mov64(R6, 0),
            Label("loop"),
            ld_map_fd(R1, map_fd),
            mov64(R2, EVENT),
            mov64(R3, 0),
            call(131),
            jeq(R0, 0, "next"),
            stx(8, R0, 0, R6),
            st(8, R0, 8, 0x5678),
            mov64(R1, R0),
            mov64(R2, 0),
            call(132),
            Label("next"),
            add64(R6, 1),
            jlt(R6, LOOP, "loop"),
            mov64(R0, 2),
            exit_(),
        ]
    )


def _vm_runtime(verify: bool) -> VMRuntime:
    kw = {"ncpus": 1}
    if "verify" in inspect.signature(VMRuntime).parameters:
        kw["verify"] = verify
    elif verify:
        raise TypeError("this VMRuntime does not verify on load")
    return VMRuntime(**kw)


def vm_produce(make, engine: str, runs: int, per_run: int, verify: bool = True) -> float:
    """Records per second a program made by ``make(map_fd)`` produces under ``engine``."""
    rt = _vm_runtime(verify)
    try:
        rb = rt.create_map("rb", MapType.RINGBUF, 0, 0, RING)
        prog = rt.load_program("p", ProgType.XDP, make(rb.fd))
        prog.test_run(data=bytes(14), engine=engine)  # compile outside the timing
        rb.consume(lambda _r: None)
        best = 0.0
        for _ in range(3):  # the engine's mean per run, like the kernel's
            r = prog.test_run(data=bytes(14), repeat=runs, engine=engine)
            n = rb.consume(lambda _r: None)
            assert n == runs * per_run, (n, runs, per_run)
            best = max(best, per_run * 1e9 / max(r.duration_ns, 1))
        return best
    finally:
        rt.close()


def production(records: int) -> dict[str, float]:
    """Records per second produced by programs, interpreter vs JIT."""
    out = {}
    fast = min(records, RING // 32)  # what fits in the ring
    slow = max(LOOP, fast // 20)
    out["vm: output, program (interp)"] = vm_produce(producer, "interp", slow, 1)
    out["vm: output, program (JIT)"] = vm_produce(producer, "jit", fast, 1)
    out["vm: reserve+submit loop (interp)"] = vm_produce(reserve_loop, "interp", slow // LOOP, LOOP)
    for verify, label in ((True, "verified"), (False, "all-checked")):
        try:
            rate = vm_produce(reserve_loop, "jit", fast // LOOP, LOOP, verify)
        except TypeError:
            continue
        out[f"vm: reserve+submit loop (JIT, {label})"] = rate
    return out


def kernel_produce(records: int) -> dict[str, float]:
    """Records per second produced by the same programs in the kernel (BPF_PROG_TEST_RUN)."""
    from bpfkit.kernel import sys as ks

    out = {}
    fast = min(records, RING // 32)
    for name, make, per_run in (
        ("kernel: output, program", producer, 1),
        ("kernel: reserve+submit loop", reserve_loop, LOOP),
    ):
        best = 0.0
        for _ in range(3):
            fd = ks.map_create(MapType.RINGBUF, 0, 0, RING)
            try:
                pfd = ks.prog_load(ProgType.XDP, make(fd))
                try:
                    r = ks.prog_test_run(pfd, data=bytes(14), repeat=fast // per_run)
                finally:
                    os.close(pfd)
            finally:
                os.close(fd)
            best = max(best, per_run * 1e9 / max(r.duration_ns, 1))
        out[name] = best
    return out


def vm_side(records: int) -> dict[str, float]:
    rt = VMRuntime(ncpus=1)
    rb = rt.create_map("rb", MapType.RINGBUF, 0, 0, RING)
    prog = rt.load_program("p", ProgType.XDP, producer(rb.fd))
    t0 = time.perf_counter_ns()
    prog.test_run(data=bytes(14), repeat=records)
    produced = time.perf_counter_ns() - t0
    t0 = time.perf_counter_ns()
    n = len(rb.consume())
    consumed = time.perf_counter_ns() - t0
    t0 = time.perf_counter_ns()
    prog.test_run(data=bytes(14), repeat=records)
    count = [0]

    def cb(_rec: bytes) -> None:
        count[0] += 1

    t0 = time.perf_counter_ns()
    rb.consume(cb)
    consumed_cb = time.perf_counter_ns() - t0
    rt.close()
    assert n == records == count[0], (n, records, count[0])
    return {
        "vm: produced by the program (interp)": records / (produced / 1e9),
        "vm: consumed in Python (list)": records / (consumed / 1e9),
        "vm: consumed in Python (callback)": records / (consumed_cb / 1e9),
    }


def kernel_consume(fd: int, size: int, callback) -> int:
    cons = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
    prod = mmap.mmap(fd, PAGE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
    unpack_q = struct.Struct("<Q").unpack_from
    unpack_i = struct.Struct("<I").unpack_from
    mask = size - 1
    n = 0
    try:
        cpos = unpack_q(cons, 0)[0]
        ppos = unpack_q(prod, 0)[0]
        while cpos < ppos:
            off = PAGE + (cpos & mask)
            word = unpack_i(prod, off)[0]
            if word & 0x80000000:
                break
            length = word & 0x3FFFFFFF
            if not word & 0x40000000:
                callback(prod[off + 8 : off + 8 + length])
                n += 1
            cpos += (length + 15) & ~7
        struct.pack_into("<Q", cons, 0, cpos)
    finally:
        cons.close()
        prod.close()
    return n


def kernel_side(records: int) -> dict[str, float]:
    from bpfkit.kernel import sys as ks

    fd = ks.map_create(MapType.RINGBUF, 0, 0, RING)
    try:
        pfd = ks.prog_load(ProgType.XDP, producer(fd))
        try:
            r = ks.prog_test_run(pfd, data=bytes(14), repeat=records)
        finally:
            os.close(pfd)
        got: list[bytes] = []
        t0 = time.perf_counter_ns()
        n = kernel_consume(fd, RING, got.append)
        dt = time.perf_counter_ns() - t0
        assert n == records, (n, records)
        return {
            "kernel: produced by the program": 1e9 / max(r.duration_ns, 1),
            "kernel: consumed in Python (mmap reader)": records / (dt / 1e9),
        }
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = vm_side(a.records)
    res.update(production(a.records))
    try:
        from bpfkit.kernel.privileges import kernel_available

        if kernel_available()[0]:
            res.update(kernel_side(a.records))
            res.update(kernel_produce(a.records))
    except ImportError:
        pass
    if a.json:
        print(json.dumps(res))
        return
    t = Table(title=f"Ring buffer, {a.records:,} records of {EVENT} bytes (records/s)")
    t.add_column("side")
    t.add_column("records per second", justify="right")
    for k, v in res.items():
        t.add_row(k, f"{v:,.0f}")
    Console().print(t)


if __name__ == "__main__":
    main()
