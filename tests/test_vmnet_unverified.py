"""Programs of types the VM can neither verify nor run (fentry/fexit, tp_btf, LSM,
struct_ops, ext ...): they load, so that an object loads for its other programs, say
that they were not verified and why, and never run — every way of running one raises
``NotSupported`` naming its type, on both engines, a tail call included.

Real objects: Debian's libbpf-tools, whose tools carry fentry/tp_btf programs next to
the kprobe/raw-tracepoint fallbacks they use where the kernel has no BPF trampolines.
"""

from __future__ import annotations

import pytest
from parity_libbpf_tools import tool_objects
from test_parity_libbpf_tools import overrides

import bpfkit
from bpfkit.errors import NotSupported
from bpfkit.isa.builders import R0, R2, R3, assemble, call, exit_, ld_map_fd, mov64
from bpfkit.obj import load_object
from bpfkit.uapi.enums import HELPER_IDS, MapType, ProgType
from bpfkit.vm.progtypes import PROG_TYPE_CLASSES
from bpfkit.vm.runtime import NotVerified, VMRuntime

TOOLS = tool_objects()
ENGINES = ("interp", "jit")


def _mixed_tools() -> list[str]:
    """Tools whose object has programs the VM runs and programs it cannot."""
    out = []
    for tool, blob in sorted(TOOLS.items()):
        types = {p.prog_type in PROG_TYPE_CLASSES for p in load_object(blob).programs.values()}
        if types == {True, False}:
            out.append(tool)
    return out


MIXED = _mixed_tools() if TOOLS else []


def _assert_never_runs(prog, type_name: str) -> None:
    """Every way of running ``prog`` raises NotSupported naming ``type_name``."""
    attempts = [
        lambda e: prog.test_run(b"\0" * 64, engine=e),
        lambda e: prog.run(None, engine=e),
        lambda e: prog.vm.engine(e),
    ]
    for engine in ENGINES:
        for attempt in attempts:
            with pytest.raises(NotSupported, match=f"{type_name} programs"):
                attempt(engine)
    with pytest.raises(NotSupported, match=f"{type_name} programs"):
        prog.vm.interp()
    with pytest.raises(NotSupported, match=f"{type_name} programs"):
        prog.vm.set_tracer(lambda *a: None)


@pytest.mark.skipif(not MIXED, reason="libbpf-tools is not installed")
@pytest.mark.parametrize("tool", MIXED)
def test_libbpf_tools_load_their_runnable_programs_and_refuse_the_others(tool):
    spec = load_object(TOOLS[tool])
    with bpfkit.load(spec, programs=list(spec.programs), **overrides(spec)) as obj:
        unsupported = 0
        for name, prog in obj.programs.items():
            v = prog.verification
            if spec.programs[name].prog_type in PROG_TYPE_CLASSES:
                # verified by bpfkit's verifier on load, and runnable
                assert v.ok and v.stats.insns_processed > 0, name
                assert prog.vm.interp() is not None
                continue
            unsupported += 1
            assert isinstance(v, NotVerified), (name, v)
            assert not v.ok and not v.verified
            assert "tracing programs" in v.reason
            assert v.to_json() == {"ok": False, "verified": False, "insn": None, "reason": v.reason}
            _assert_never_runs(prog, "tracing")
        assert unsupported


@pytest.mark.parametrize(
    "ptype", [ProgType.TRACING, ProgType.LSM, ProgType.STRUCT_OPS, ProgType.EXT]
)
@pytest.mark.parametrize("verify", [True, False])
def test_other_types_load_unverified_and_never_run(ptype, verify):
    with VMRuntime(verify=verify) as rt:
        prog = rt.load_program("p", ptype, assemble([mov64(R0, 0), exit_()]))
        assert isinstance(prog.verification, NotVerified)
        name = ptype.name.lower()
        assert name in prog.verification.reason
        for engine in ENGINES:
            with pytest.raises(NotSupported, match=f"{name} programs"):
                prog.test_run(data=bytes(64), engine=engine)
            with pytest.raises(NotSupported, match=f"{name} programs"):
                prog.fire(None, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_tail_call_never_reaches_an_unverified_program(engine):
    """A prog array holding a program the VM cannot run (the kernel's prog arrays refuse
    such a mix; the VM's take it): the tail call raises NotSupported instead of running
    the unverified code."""
    with VMRuntime() as rt:
        jmp = rt.create_map("jmp", MapType.PROG_ARRAY, 4, 4, 1)
        target = rt.load_program("fentry", ProgType.TRACING, assemble([mov64(R0, 7), exit_()]))
        jmp.update((0).to_bytes(4, "little"), target)
        caller = rt.load_program(
            "caller",
            ProgType.SOCKET_FILTER,
            assemble(
                [
                    ld_map_fd(R2, jmp.fd),
                    mov64(R3, 0),
                    call(HELPER_IDS["tail_call"]),
                    mov64(R0, 1),
                    exit_(),
                ]
            ),
        )
        assert caller.verification.ok
        with pytest.raises(NotSupported, match="tracing programs"):
            caller.test_run(data=bytes(64), engine=engine)
        assert target.runs == 0
        # an empty slot still falls through, as in the kernel
        jmp.delete((0).to_bytes(4, "little"))
        assert caller.test_run(data=bytes(64), engine=engine).retval == 1
