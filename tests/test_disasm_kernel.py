"""The ``kernel`` disassembly dialect prints what the kernel's verifier log prints.

Generated programs (every ALU, jump, memory and atomic form) are loaded into the running
kernel with log level 2; every instruction line it logs (``N: (op) text``) must equal
``format_insn(insn, "kernel")`` for the instruction at slot N.
"""

from __future__ import annotations

import re

import pytest
from progen import generate, slot_positions

from bpfkit.isa import opcodes as op
from bpfkit.isa.asm import assemble_text
from bpfkit.isa.disasm import format_insn

LINE = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+;.*)?$")


def _kernel_lines(insns) -> dict[int, tuple[str, str]]:
    from test_verifier_kernel import kernel_verdict

    ok, log = kernel_verdict(insns, "socket_filter", log_level=2)
    assert ok, log[-2000:]
    out = {}
    for line in log.splitlines():
        m = LINE.match(line)
        if m:
            out[int(m.group(1))] = (m.group(2), m.group(3).rstrip())
    return out


def _compare(insns) -> int:
    at = dict(zip(slot_positions(insns), insns, strict=True))
    seen = _kernel_lines(insns)
    assert seen
    for pc, (opcode, text) in seen.items():
        insn = at[pc]
        if insn.is_lddw and insn.src:  # the kernel prints the map's address
            continue
        assert opcode == f"{insn.opcode:02x}"
        assert format_insn(insn, "kernel") == text, (pc, text)
    return len(seen)


@pytest.mark.kernel
@pytest.mark.parametrize("seed", range(12))
def test_generated_programs_print_as_in_the_kernel_log(seed, kernel):
    assert _compare(generate(1000 + seed, length=80)) > 10


@pytest.mark.kernel
def test_helper_calls_local_calls_and_special_forms(kernel):
    src = """
        r1 = 7
        call sub
        r6 = r0
        call 7
        r0 = be16 r0
        r0 = le32 r0
        r0 = bswap64 r0
        w0 = -w0
        r0 = -r0
        r2 = (s8)r6
        w3 = (s16)w6
        r4 = 0x123456789 ll
        gotol +0
        r0 = 0
        exit
    sub:
        r0 = r1
        r0 s/= 3
        w0 s%= -5
        exit
    """
    n = _compare(assemble_text(src, dialect="llvm"))
    assert n >= 15
    assert format_insn(assemble_text("call 1\nexit", dialect="llvm")[0], "kernel") == (
        "call bpf_map_lookup_elem#1"
    )
    assert op.JA == 0


def test_cli_disasm_kernel_dialect(tmp_path):
    from click.testing import CliRunner

    from bpfkit.cli.main import cli

    src = tmp_path / "p.s"
    src.write_text("r2 = *(u32 *)(r1 + 4)\nif r2 > 0x5 goto +1\nr0 = 1\nexit\n")
    res = CliRunner().invoke(cli, ["disasm", str(src), "--dialect", "kernel"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [
        "0: (61) r2 = *(u32 *)(r1 +4)",
        "1: (25) if r2 > 0x5 goto pc+1",
        "2: (b7) r0 = 1",
        "3: (95) exit",
    ]


@pytest.mark.kernel
def test_level2_log_lines_match_the_kernel(tmp_path, kernel):
    """bpfkit's level-2 log prints each instruction and the registers and stack slots it
    touched as the kernel does (the map address in a map load is the kernel's own)."""
    from pathlib import Path

    import bpfkit
    from bpfkit.obj import load_object
    from bpfkit.obj.build import compile_c
    from bpfkit.verifier import verify_spec

    root = Path(__file__).resolve().parent.parent
    obj = compile_c(root / "examples" / "xdp_proto_count.c", tmp_path / "x.o").object
    ours = verify_spec(load_object(obj), "count_protocols", log_level=2, cache=False).log
    with bpfkit.load(obj, backend="kernel", log_level=2) as k:
        theirs = k.programs["count_protocols"].log
    o = [line for line in ours.splitlines() if LINE.match(line)]
    t = [line for line in theirs.splitlines() if LINE.match(line)]
    assert len(o) == len(t) > 20
    differ = [(a, b) for a, b in zip(o, t, strict=True) if a != b and " = 0x" not in b]
    assert not differ, differ[:3]
