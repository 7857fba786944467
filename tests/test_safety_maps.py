"""Maps, helpers and ring buffers against hostile programs, on both engines.

- ``BPF_F_RDONLY_PROG`` / ``BPF_F_WRONLY_PROG`` at run time (the verifier rejects such
  programs, like the kernel's "write into map forbidden"; these load unverified to see
  what the engines do): a store into a read-only value, ``update``/``delete``/``push``/
  ``pop`` on a read-only map, a load from a write-only value (also as a helper's source
  memory) fault on the interpreter and on the JIT, whose native map helpers leave them
  to Python. Writes to a write-only map work.
- a map value pointer kept past the element's delete faults on both engines, verified
  or not (the JIT keeps the check of hash-map value accesses the verifier proved);
- ring-buffer records are writable only while reserved: a write after submit or
  discard, a second submit, a submit of any other address fault;
- the JIT's native map and ring-buffer helpers get pointers to a canary object, past a
  region's end, huge sizes: they fault like the Python helpers and touch no canary.

Everything runs in a child process next to canaries (``safety_child``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safety_child import run_in_child

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAP(name, typ, k, v, n, f) struct { __uint(type, typ); __uint(max_entries, n); \
    __type(key, k); __type(value, v); __uint(map_flags, f); } name SEC(".maps")

MAP(ro, BPF_MAP_TYPE_ARRAY, __u32, __u64, 2, BPF_F_RDONLY_PROG);
MAP(wo, BPF_MAP_TYPE_ARRAY, __u32, __u64, 2, BPF_F_WRONLY_PROG);
MAP(roh, BPF_MAP_TYPE_HASH, __u32, __u64, 4, BPF_F_RDONLY_PROG);
MAP(woh, BPF_MAP_TYPE_HASH, __u32, __u64, 4, BPF_F_WRONLY_PROG);
MAP(h, BPF_MAP_TYPE_HASH, __u32, __u64, 4, 0);
MAP(lpm, BPF_MAP_TYPE_LPM_TRIE, __u64, __u64, 4, BPF_F_NO_PREALLOC);
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");

SEC("raw_tp/x") int ro_store(void *c)
{ __u32 k = 0; __u64 *p = bpf_map_lookup_elem(&ro, &k); if (!p) return 9; *p = 1; return 0; }
SEC("raw_tp/x") int ro_update(void *c)
{ __u32 k = 0; __u64 v = 1; return bpf_map_update_elem(&ro, &k, &v, 0); }
SEC("raw_tp/x") int ro_delete(void *c)
{ __u32 k = 0; return bpf_map_delete_elem(&ro, &k); }
SEC("raw_tp/x") int roh_update(void *c)
{ __u32 k = 1; __u64 v = 1; return bpf_map_update_elem(&roh, &k, &v, 0); }
SEC("raw_tp/x") int roh_delete(void *c)
{ __u32 k = 1; return bpf_map_delete_elem(&roh, &k); }
SEC("raw_tp/x") int ro_read(void *c)
{ __u32 k = 0; __u64 *p = bpf_map_lookup_elem(&ro, &k); if (!p) return 9; return *p + 7; }
SEC("raw_tp/x") int wo_read(void *c)
{ __u32 k = 0; __u64 *p = bpf_map_lookup_elem(&wo, &k); if (!p) return 9; return *p; }
SEC("raw_tp/x") int woh_read(void *c)
{
    __u32 k = 1; __u64 v = 5;
    bpf_map_update_elem(&woh, &k, &v, 0);
    __u64 *p = bpf_map_lookup_elem(&woh, &k); if (!p) return 9; return *p;
}
SEC("raw_tp/x") int wo_write(void *c)
{
    __u32 k = 1; __u64 v = 5;
    __u64 *p = bpf_map_lookup_elem(&wo, &k); if (!p) return 9; *p = 41;
    return bpf_map_update_elem(&wo, &k, &v, 0) + bpf_map_update_elem(&woh, &k, &v, 0);
}
SEC("raw_tp/x") int wo_as_source(void *c)
{
    __u32 k = 0; __u64 *p = bpf_map_lookup_elem(&wo, &k); if (!p) return 9;
    return bpf_map_update_elem(&h, &k, p, 0);
}
SEC("raw_tp/x") int wo_to_ring(void *c)
{
    __u32 k = 0; __u64 *p = bpf_map_lookup_elem(&wo, &k); if (!p) return 9;
    return bpf_ringbuf_output(&rb, p, 8, 0);
}
SEC("raw_tp/x") int uaf(void *c)
{
    __u32 k = 1; __u64 v = 7;
    bpf_map_update_elem(&h, &k, &v, 0);
    __u64 *p = bpf_map_lookup_elem(&h, &k); if (!p) return 9;
    bpf_map_delete_elem(&h, &k);
    *p = 0x55;
    return 0;
}
SEC("raw_tp/x") int reuse(void *c)
{
    __u32 k = 1, k2 = 2; __u64 v = 7;
    bpf_map_update_elem(&h, &k, &v, 0);
    __u64 *p = bpf_map_lookup_elem(&h, &k); if (!p) return 9;
    bpf_map_delete_elem(&h, &k);
    bpf_map_update_elem(&h, &k2, &v, 0);  /* the kernel would give it k's memory */
    *p = 0x55;
    return 0;
}
SEC("raw_tp/x") int lpm_reuse(void *c)
{
    struct { __u32 plen; __u32 addr; } k = {32, 0x0100000a}, k2 = {32, 0x0200000a};
    __u64 v = 7;
    bpf_map_update_elem(&lpm, &k, &v, 0);
    __u64 *p = bpf_map_lookup_elem(&lpm, &k); if (!p) return 9;
    bpf_map_delete_elem(&lpm, &k);
    bpf_map_update_elem(&lpm, &k2, &v, 0);
    *p = 0x55;
    return 0;
}
static long churn_one(__u32 i, void *failed)
{
    __u32 k = i & 3; __u64 v = i;
    if (bpf_map_update_elem(&h, &k, &v, 0) || bpf_map_delete_elem(&h, &k))
        (*(__u64 *)failed)++;
    return 0;
}
SEC("raw_tp/x") int churn(void *c)
{
    __u64 failed = 0;
    bpf_loop(3000, churn_one, &failed, 0);
    return failed;
}
SEC("raw_tp/x") int uaf_read(void *c)
{
    __u32 k = 1; __u64 v = 7;
    bpf_map_update_elem(&h, &k, &v, 0);
    __u64 *p = bpf_map_lookup_elem(&h, &k); if (!p) return 9;
    bpf_map_delete_elem(&h, &k);
    return *p;
}
char LICENSE[] SEC("license") = "GPL";
"""

ENGINES = ["interp", "jit"]


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("safetymaps")
    (d / "maps.c").write_text(SRC)
    return compile_c(d / "maps.c", d / "maps.o").object


def _run(path: Path, program: str, verify: bool = False) -> str:
    return f"""
import bpfkit
def attack(engine, C):
    with bpfkit.load({str(path)!r}, programs=[{program!r}], verify={verify}) as obj:
        r0 = obj.programs[{program!r}].run(b"", engine=engine).retval
        if {program!r} == "wo_write":
            assert obj.maps["wo"][1] == 5 and obj.maps["woh"][1] == 5
        return r0
"""


FORBIDDEN = {
    "ro_store": "region map:ro:values is read-only",
    "ro_update": "write into map forbidden: bpf_map_update_elem on map 'ro'",
    "ro_delete": "write into map forbidden: bpf_map_delete_elem on map 'ro'",
    "roh_update": "write into map forbidden: bpf_map_update_elem on map 'roh'",
    "roh_delete": "write into map forbidden: bpf_map_delete_elem on map 'roh'",
    "wo_read": "region map:wo:values is not readable",
    "woh_read": "is not readable",
    "wo_as_source": "invalid read of 8 bytes",
    "wo_to_ring": "invalid read of 8 bytes",
}


@pytest.mark.parametrize("engine", ENGINES)
def test_map_access_flags_at_run_time(obj_path, engine):
    progs = [*FORBIDDEN, "ro_read", "wo_write"]
    cases = [{"kind": "python", "engine": engine, "src": _run(obj_path, p)} for p in progs]
    for p, res in zip(progs, run_in_child(cases), strict=True):
        assert not res["canaries"] and not res["leak"], (p, res)
        if p in FORBIDDEN:
            assert res["status"] == "contained" and res["error"] == "RuntimeFault", (p, res)
            assert FORBIDDEN[p] in res["message"], (p, res)
            assert " at pc " in res["message"], (p, res)  # the faulting instruction
        else:
            assert res["status"] == "ok", (p, res)
            assert res["r0"] == (7 if p == "ro_read" else 0), (p, res)


def test_access_flags_exclude_each_other():
    from bpfkit.errors import KernelError
    from bpfkit.uapi.enums import MapType
    from bpfkit.vm.maps import F_RDONLY_PROG, create_map
    from bpfkit.vm.maps.base import F_WRONLY_PROG

    with pytest.raises(KernelError, match="exclude each other") as ei:
        create_map(MapType.ARRAY, 4, 8, 1, F_RDONLY_PROG | F_WRONLY_PROG)
    assert ei.value.errno == 22


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("verify", [True, False])
def test_value_pointer_after_delete_faults(obj_path, engine, verify):
    """The element is gone: its value Region has no permissions. Verified, the JIT used
    to drop this access's check (the verifier, like the kernel's, lets the pointer
    live on) and wrote the freed slot silently while the interpreter faulted. An insert
    after the delete (``reuse``) does not get the freed slot in the same run (both
    engines wrote the new element through the stale pointer before)."""
    cases = [
        {"kind": "python", "engine": engine, "src": _run(obj_path, p, verify)}
        for p in ("uaf", "uaf_read", "reuse", "lpm_reuse")
    ]
    for res in run_in_child(cases):
        assert res["status"] == "contained" and res["error"] == "RuntimeFault", res
        assert "invalid write of 8 bytes" in res["message"] or "not readable" in res["message"]
        assert not res["canaries"] and not res["leak"], res


# Hand-written (unverified) attacks on the ring buffer and the native helpers. The
# program loads map handles with ``lddw rX, map_fd`` (placeholder fds: 0 = hash,
# 1 = array, 2 = ring, see safety_child.run_vm) and canary addresses with
# ``lddw rX, PLACE|k`` (0 = CANARY, 1 = BUF, 2 = array value, 3 = hash handle).
RING_ATTACKS = {
    "write-after-submit": (
        "lddw %r1, map_fd(2)\nmov %r2, 16\nmov %r3, 0\ncall 131\njeq %r0, 0, +6\n"
        "mov %r6, %r0\nmov %r1, %r0\nmov %r2, 0\ncall 132\nstdw [%r6+0], 0x55\n"
        "mov %r0, 1\nexit",
        "invalid write of 8 bytes",
    ),
    "write-after-discard": (
        "lddw %r1, map_fd(2)\nmov %r2, 16\nmov %r3, 0\ncall 131\njeq %r0, 0, +6\n"
        "mov %r6, %r0\nmov %r1, %r0\nmov %r2, 0\ncall 133\nstdw [%r6+8], 0x55\n"
        "mov %r0, 1\nexit",
        "invalid write of 8 bytes",
    ),
    "double-submit": (
        "lddw %r1, map_fd(2)\nmov %r2, 16\nmov %r3, 0\ncall 131\njeq %r0, 0, +7\n"
        "mov %r6, %r0\nmov %r1, %r0\nmov %r2, 0\ncall 132\nmov %r1, %r6\nmov %r2, 0\n"
        "call 132\nexit",
        "which is not a reserved record",
    ),
    "submit-of-a-canary": (
        "lddw %r1, 0xCA0A000000000000\nmov %r2, 0\ncall 132\nexit",
        "which is not a reserved record",
    ),
    "submit-inside-a-record": (
        "lddw %r1, map_fd(2)\nmov %r2, 64\nmov %r3, 0\ncall 131\njeq %r0, 0, +4\n"
        "mov %r1, %r0\nadd %r1, 8\nmov %r2, 0\ncall 132\nexit",
        "which is not a reserved record",
    ),
    "read-past-a-record": (
        "lddw %r1, map_fd(2)\nmov %r2, 16\nmov %r3, 0\ncall 131\njeq %r0, 0, +1\n"
        "ldxdw %r0, [%r0+16]\nexit",
        "invalid read of 8 bytes",
    ),
    "output-from-a-canary": (
        "lddw %r1, map_fd(2)\nlddw %r2, 0xCA0A000000000000\nmov %r3, 8\nmov %r4, 0\ncall 130\nexit",
        "invalid read of 8 bytes",
    ),
    "output-huge": (
        "lddw %r1, map_fd(2)\nmov %r2, %r10\nadd %r2, -8\nlddw %r3, 0x7fffffffffffffff\n"
        "mov %r4, 0\ncall 130\nexit",
        "invalid read of",
    ),
    "lookup-key-in-a-canary": (
        "lddw %r1, map_fd(0)\nlddw %r2, 0xCA0A000000000000\ncall 1\nexit",
        "invalid read of 4 bytes",
    ),
    "update-value-from-a-canary": (
        "lddw %r1, map_fd(1)\nstw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\n"
        "lddw %r3, 0xCA0A000000000001\nmov %r4, 0\ncall 2\nexit",
        "invalid read of 16 bytes",
    ),
    "update-value-straddling-the-stack-top": (
        "lddw %r1, map_fd(0)\nstw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\n"
        "mov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 2\nexit",
        "invalid read of 16 bytes",
    ),
    "delete-key-in-a-canary": (
        "lddw %r1, map_fd(0)\nlddw %r2, 0xCA0A000000000001\ncall 3\nexit",
        "invalid read of 4 bytes",
    ),
    "a-map-handle-as-memory": (
        "lddw %r1, 0xCA0A000000000003\nldxdw %r0, [%r1+0]\nexit",
        "invalid read of 8 bytes",
    ),
}


def _asm_case(engine: str, text: str) -> dict:
    from bpfkit.isa import opcodes as op
    from bpfkit.isa.asm import assemble_text
    from bpfkit.isa.instruction import encode

    insns = []
    for line in text.split("\n"):
        if "map_fd(" in line:
            reg, k = line.split()[1].rstrip(","), int(line.split("(")[1].rstrip(")"))
            insn = assemble_text(f"lddw {reg}, {k}")[0].with_(src=op.PSEUDO_MAP_FD)
            insns.append(insn)
        else:
            insns += assemble_text(line)
    return {"kind": "vm", "engine": engine, "hex": encode(insns).hex(), "type": "KPROBE"}


@pytest.mark.parametrize("engine", ENGINES)
def test_ring_buffer_and_native_helper_attacks(engine):
    names = list(RING_ATTACKS)
    cases = [_asm_case(engine, RING_ATTACKS[n][0]) for n in names]
    for name, res in zip(names, run_in_child(cases), strict=True):
        assert res["status"] == "contained" and res["error"] == "RuntimeFault", (name, res)
        assert RING_ATTACKS[name][1] in res["message"], (name, res)
        assert " at pc " in res["message"], (name, res)
        assert not res["canaries"] and not res["leak"], (name, res)


RING_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");

static long put(__u32 i, void *failed)
{
    __u64 v = i;
    if (bpf_ringbuf_output(&rb, &v, sizeof(v), 0))
        (*(__u64 *)failed)++;
    __u64 *r = bpf_ringbuf_reserve(&rb, 8, 0);
    if (!r)
        (*(__u64 *)failed)++;
    else
        bpf_ringbuf_discard(r, 0);
    return 0;
}

SEC("raw_tp/x")
int flood(void *c)
{
    __u64 failed = 0;
    bpf_loop(400, put, &failed, 0);
    return failed;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_ring_buffer_counts_what_it_drops(tmp_path, engine):
    """A program counts its own failed ``bpf_ringbuf_output``/``reserve`` calls (the
    oracle); the ring's ``dropped`` is the same number, and ``bpfkit run`` reports it."""
    import json

    import bpfkit
    from bpfkit.obj.build import compile_c

    (tmp_path / "r.c").write_text(RING_SRC)
    obj_path = compile_c(tmp_path / "r.c", tmp_path / "r.o").object
    with bpfkit.load(obj_path) as obj:
        failed = obj.programs["flood"].run(b"", engine=engine).retval
        ring = obj.maps["rb"]
        assert failed > 0 and ring.dropped == failed
        assert len(ring.consume()) == 4096 // 32  # outputs; discarded records took room
    from click.testing import CliRunner

    from bpfkit.cli.main import cli

    res = CliRunner().invoke(cli, ["run", str(obj_path), "--engine", engine, "--json"])
    out = json.loads(res.output)
    assert out["maps_changed"]["rb"]["dropped"] == out["retval"] == failed


@pytest.mark.kernel
def test_ring_buffer_drops_as_many_as_the_kernel(tmp_path):
    """The same flood in the kernel (a raw tracepoint test run) fails as many calls."""
    import bpfkit
    from bpfkit.obj.build import compile_c

    (tmp_path / "r.c").write_text(RING_SRC)
    obj_path = compile_c(tmp_path / "r.c", tmp_path / "r.o").object
    with bpfkit.load(obj_path, backend="kernel") as kobj:
        kernel = kobj.programs["flood"].test_run(b"", None).retval
    with bpfkit.load(obj_path) as obj:
        assert obj.programs["flood"].run(b"").retval == kernel == obj.maps["rb"].dropped


@pytest.mark.parametrize("engine", ENGINES)
def test_quarantine_keeps_the_map_usable(obj_path, engine):
    """3,000 insert/delete cycles on a 4-entry hash map in one run (more than its spare
    slots): every call succeeds, as in the kernel; freed slots come back in later runs
    (the map's slots do not grow run after run)."""
    import bpfkit

    with bpfkit.load(obj_path, programs=["churn"], budget=10**7) as obj:
        prog, h = obj.programs["churn"], obj.maps["h"].vm
        for _ in range(3):
            assert prog.run(b"", engine=engine).retval == 0
            assert len(h) == 0
        assert h.hs.desc[29] <= h.hs.slotcap  # D_QBASE: every freed slot is reusable


@pytest.mark.kernel
def test_churn_agrees_with_the_kernel(obj_path):
    import bpfkit

    with bpfkit.load(obj_path, backend="kernel", programs=["churn"]) as kobj:
        assert kobj.programs["churn"].test_run(b"", None).retval == 0
