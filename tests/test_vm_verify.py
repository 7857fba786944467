"""The VM verifies every program on load, as the kernel does; ``verify=False`` opts out.

Checks that an unsafe program is refused with a reason and its C line, that the
verdict reaches the CLI (exit 2), that unverified programs still cannot escape their
memory, and that what the verifier proved reaches the JIT (accesses without checks).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import bpfkit
from bpfkit.cli.main import cli
from bpfkit.errors import RuntimeFault, VerifierError

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int good(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    unsigned char *p = data;
    if (p + 4 > (unsigned char *)end)
        return XDP_PASS;
    __u32 key = p[0] & 7;
    __u64 *v = bpf_map_lookup_elem(&counts, &key);
    if (v)
        *v += p[1] + p[2] + p[3];
    return XDP_PASS;
}

SEC("xdp")
int no_null_check(struct xdp_md *ctx)
{
    __u32 key = 3;
    __u64 *v = bpf_map_lookup_elem(&counts, &key);
    *v += 1; /* BAD */
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("vmverify")
    (d / "v.c").write_text(SRC)
    return compile_c(d / "v.c", d / "v.o").object


def test_unsafe_program_is_refused_on_load(obj_path):
    with pytest.raises(VerifierError) as ei:
        bpfkit.load(obj_path)
    e = ei.value
    assert "null" in e.reason.lower() or "or_null" in (e.kernel_message or "")
    assert e.line is not None and "BAD" in e.line.get("text", e.line.get("source", "")), e.line
    assert e.insn is not None and e.disasm


def test_programs_option_loads_only_the_named(obj_path):
    with bpfkit.load(obj_path, programs=["good"]) as obj:
        assert set(obj.programs) == {"good"}
        prog = obj.programs["good"]
        res = prog.verification
        assert res.ok and res.stats.insns_processed > 0
        pkt = bytes([5, 1, 2, 3]) + bytes(60)
        assert prog.test_run(pkt).retval == 2  # XDP_PASS
        # the hash map had no key 5 yet: no update; add one and run again
        obj.maps["counts"][5] = 10
        prog.test_run(pkt)
        assert obj.maps["counts"][5] == 16
    with pytest.raises(bpfkit.BpfError, match="no program named"):
        bpfkit.load(obj_path, programs=["nope"])


def test_unverified_program_is_still_confined(obj_path):
    with bpfkit.load(obj_path, verify=False) as obj:
        prog = obj.programs["no_null_check"]
        assert prog.verification is None
        for engine in ("interp", "jit"):
            with pytest.raises(RuntimeFault):
                prog.test_run(bytes(64), engine=engine)  # *NULL += 1


def test_verified_accesses_reach_the_jit(obj_path):
    with bpfkit.load(obj_path, programs=["good"]) as obj:
        vm = obj.programs["good"].vm
        mem = [i for i, insn in enumerate(vm.insns) if insn.cls in (1, 2, 3)]  # LDX, ST, STX
        assert vm.safe and vm.safe <= set(mem)
        # the packet and stack accesses are proven; the hash map value's are proven too,
        # but keep their checks (a pointer kept past a delete must fault, as in the
        # interpreter)
        from bpfkit.isa.loader import runnable_slots
        from bpfkit.verifier import state as vstate

        slots = runnable_slots(vm.insns)
        value = {
            slots[s] for s, k in vm.verification.accesses.items() if vstate.PTR_TO_MAP_VALUE in k
        }
        assert value and vm.safe == set(mem) - value
        jit = vm.engine("jit")
        assert len(jit.compiled.layout.insns) == len(vm.insns)
        r = obj.programs["good"].test_run(bytes([1, 1, 1, 1]) + bytes(60), engine="jit")
        assert r.retval == 2
    with bpfkit.load(obj_path, programs=["good"], verify=False) as obj:
        assert obj.programs["good"].vm.safe is None


def test_cli_run_refuses_and_no_verify_runs(obj_path):
    runner = CliRunner()
    # a rejected or faulting program exits 1 (bad input to the CLI itself exits 2)
    res = runner.invoke(cli, ["run", str(obj_path), "--program", "no_null_check"])
    assert res.exit_code == 1, res.output
    assert "insn 7" in res.output and "NULL" in res.output
    res = runner.invoke(cli, ["run", str(obj_path), "--program", "good", "--data-hex", "00" * 64])
    assert res.exit_code == 0, res.output
    args = ["run", str(obj_path), "--program", "no_null_check", "--no-verify"]
    res = runner.invoke(cli, [*args, "--data-hex", "00" * 64])
    assert res.exit_code == 1 and "insn 7" not in res.output, res.output


def _map_in_map(update_outer: bool, deref_inner_ptr: bool):
    from bpfkit.isa.builders import (
        R0,
        R1,
        R2,
        R3,
        R4,
        R10,
        Label,
        add64,
        assemble,
        call,
        exit_,
        jeq,
        ld_map_fd,
        ldx,
        mov64,
        st,
    )

    body = [
        st(4, R10, -4, 0),
        ld_map_fd(R1, 1),
        mov64(R2, R10),
        add64(R2, -4),
    ]
    if update_outer:
        body += [mov64(R3, R10), add64(R3, -4), mov64(R4, 0), call(2)]  # map_update_elem
    else:
        body += [call(1), jeq(R0, 0, "out")]  # map_lookup_elem
        if deref_inner_ptr:
            body += [ldx(4, R0, R0, 0)]  # the inner map's struct: not a value
        body += [mov64(R1, R0), mov64(R2, R10), add64(R2, -4), call(1), jeq(R0, 0, "out")]
        body += [ldx(8, R0, R0, 0), exit_()]
    body += [Label("out"), mov64(R0, 0), exit_()]
    return assemble(body)


@pytest.mark.parametrize(
    "update_outer,deref,ok,why",
    [
        (False, False, True, None),
        (True, False, False, "cannot be used with map"),
        (False, True, False, "map_ptr"),
    ],
)
def test_map_in_map_lookups(update_outer, deref, ok, why):
    from bpfkit.uapi.enums import MapType
    from bpfkit.verifier import MapDesc, verify

    inner = MapDesc(MapType.ARRAY, 4, 8, 4, name="inner")
    outer = MapDesc(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="outer", inner=inner)
    res = verify(
        _map_in_map(update_outer, deref), prog_type="xdp", maps={1: outer}, raise_on_error=False
    )
    assert res.ok == ok, res.log
    if why:
        assert why in (res.error.reason + res.error.kernel_message), res.error.reason


def test_verification_results_are_cached(obj_path):
    """Loading the same object again does not verify its programs again."""
    from bpfkit.verifier import _CACHE

    _CACHE.clear()
    with bpfkit.load(obj_path, programs=["good"]) as obj:
        first = obj.programs["good"].verification
    assert len(_CACHE) == 1
    with bpfkit.load(obj_path, programs=["good"]) as obj:
        again = obj.programs["good"].verification
    assert len(_CACHE) == 1  # a hit
    assert again.stats == first.stats and again.accesses == first.accesses
    # a rejection is cached too and raised again with its line
    for _ in range(2):
        with pytest.raises(VerifierError) as ei:
            bpfkit.load(obj_path, programs=["no_null_check"])
        assert ei.value.line is not None
    assert len(_CACHE) == 2
