"""The verifier's arithmetic is exactly as precise as the kernel's (issue 16).

Tracking a value more precisely than the kernel lets bpfkit skip a branch the kernel
walks into — and accept what the kernel rejects (the kernel marks the result of a
division unknown even on known operands, for one). Every ALU operation, 64- and 32-bit,
with an immediate or a register operand, on known and on bounded unknown values, is
followed by comparisons whose outcome decides whether an out-of-frame stack read is
reached; bpfkit's verdict must be the running kernel's, program by program.
"""

from __future__ import annotations

import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from bpfkit.isa.asm import assemble_text  # noqa: E402
from bpfkit.verifier import verify  # noqa: E402
from bpfkit.vm.interp import run_program  # noqa: E402

OPS = ["+=", "-=", "*=", "/=", "%=", "s/=", "s%=", "&=", "|=", "^=", "<<=", ">>=", "s>>="]
BAD = "r0 = *(u64 *)(r10 + 8)\nexit\nr0 = 0\nexit"  # reached: rejected


def _programs(op: str) -> list[str]:
    out = []
    shifts = op in ("<<=", ">>=", "s>>=")
    divs = op in ("/=", "%=", "s/=", "s%=")
    for w, reg, a, b in itertools.product("rw", (False, True), (6, -7, 0x80000000), (3, -2, 0, 1)):
        if shifts and b < 0:
            continue
        if divs and b == 0 and not reg:
            continue  # rejected by both as a division by the constant zero
        src = f"{w}1" if reg else str(b)
        pre = f"r1 = {b}\n" if reg else ""
        # known operands: the exact result decides the branch
        body = f"{pre}r9 = {a}\n{w}9 {op} {src}\n"
        v = run_program(assemble_text(body + "r0 = r9\nexit", dialect="llvm"), b"").r0
        out.append(body + f"r2 = {v} ll\nif r9 == r2 goto +2\n" + BAD)
        # a bounded unknown operand: the result's bounds decide the branch
        unk = f"{pre}r9 = *(u32 *)(r1 + 0)\nr9 &= 7\n" if not reg else ""
        if unk:
            body = f"r9 = *(u32 *)(r1 + 0)\nr9 &= 7\n{w}9 {op} {b}\n"
            for k in (0, 7, 21):
                out.append(body + f"if r9 <= {k} goto +2\n" + BAD)
                out.append(body + f"if r9 s>= {k} goto +2\n" + BAD)
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("op", OPS)
def test_alu_precision_matches_kernel(op: str) -> None:
    from test_verifier_kernel import kernel_verdict

    differ = []
    for text in _programs(op):
        insns = assemble_text(text, dialect="llvm")
        kok, _ = kernel_verdict(insns, "socket_filter")
        ours = verify(insns, prog_type="socket_filter", raise_on_error=False, cache=False)
        if kok != ours.ok:
            differ.append((kok, ours.ok, text))
    assert not differ, differ[:3]


@pytest.mark.kernel
@pytest.mark.parametrize("width", ["r", "w"])
def test_register_operands_match_kernel(width: str) -> None:
    """Register operands that are 64-bit constants with a small low half, bounded
    unknowns, or -1: a 32-bit shift by such a register is computed only when the whole
    64-bit source is below 32 (as the kernel judges it)."""
    from test_verifier_kernel import kernel_verdict

    srcs = ["r1 = 0x100000001 ll", "r1 = 3", "r1 = *(u32 *)(r1 + 0)\nr1 &= 3", "r1 = -1"]
    ops = ["<<=", ">>=", "s>>=", "+=", "&=", "*=", "-=", "|=", "^=", "/=", "%="]
    differ = []
    for o, b, k, cmp in itertools.product(ops, srcs, (0, 5, 100, -3), ("<=", "s>=", ">")):
        text = (
            f"r9 = *(u32 *)(r1 + 4)\nr9 &= 12\n{b}\n{width}9 {o} {width}1\n"
            f"if r9 {cmp} {k} goto +2\n" + BAD
        )
        insns = assemble_text(text, dialect="llvm")
        kok, _ = kernel_verdict(insns, "socket_filter")
        ours = verify(insns, prog_type="socket_filter", raise_on_error=False, cache=False)
        if kok != ours.ok:
            differ.append((kok, ours.ok, text))
    assert not differ, differ[:3]


def test_division_of_constants_is_unknown() -> None:
    """``w9 = 6; w9 /= 3`` is not folded (the kernel's rule): both branches are walked,
    so the bad read behind the "impossible" one is found."""
    for text in (
        "w9 = 6\nw9 /= 3\nif w9 == 2 goto +2\n" + BAD,
        "r9 = 7\nr9 %= 3\nif r9 == 1 goto +2\n" + BAD,
        "r9 = 6\nr1 = 3\nr9 s/= r1\nif r9 == 2 goto +2\n" + BAD,
    ):
        res = verify(
            assemble_text(text, dialect="llvm"),
            prog_type="socket_filter",
            raise_on_error=False,
            cache=False,
        )
        assert not res.ok and "invalid read from stack" in res.error.kernel_message
