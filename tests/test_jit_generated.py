"""The JIT against the interpreter on generated programs: r0, executed count, stack memory."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from progen import format_program, generate

from bpfkit.isa import opcodes as op
from bpfkit.isa.builders import lddw
from bpfkit.isa.instruction import Instruction
from bpfkit.jit import JitProgram, compile_many
from bpfkit.vm.env import Env
from bpfkit.vm.interp import CompiledProgram

BATCH = 100
QUICK_BATCHES = 20  # 2,000 programs compiled at opt level 0 (quick)
OPTIMIZED = 200  # and 200 more at -O2, the default


def _compare(programs, opt_level: int) -> None:
    env = Env()
    jitted = compile_many(programs, env, opt_level=opt_level)
    for insns, jp in zip(programs, jitted, strict=True):
        env.reset_stack()
        want = CompiledProgram(insns, env).run()
        want_stack = env.stack.bytes()
        env.reset_stack()
        got = jp.run()
        assert got == want and env.stack.bytes() == want_stack, format_program(insns)


@pytest.mark.parametrize("batch", range(QUICK_BATCHES))
def test_generated_quick(batch):
    _compare([generate(batch * BATCH + i) for i in range(BATCH)], opt_level=0)


@pytest.mark.parametrize("batch", range(OPTIMIZED // BATCH))
def test_generated_optimized(batch):
    seeds = range(100_000 + batch * BATCH, 100_000 + (batch + 1) * BATCH)
    _compare([generate(s, length=60) for s in seeds], opt_level=2)


# ---- hypothesis: straight-line ALU programs with random immediates -------------------
_ALU_OPS = [a for a in op.ALU_OPS if a not in (op.END, op.NEG)]
_REG = st.integers(0, 9)
_IMM = st.one_of(
    st.integers(-(1 << 31), (1 << 31) - 1),
    st.sampled_from([0, 1, -1, 2, 31, 32, 63, 64, -(1 << 31), (1 << 31) - 1]),
)


@st.composite
def alu_insn(draw) -> Instruction:
    """Any ALU/ALU64 instruction with register or immediate source (valid encodings)."""
    cls = draw(st.sampled_from([op.ALU, op.ALU64]))
    kind = draw(st.sampled_from(["binop", "neg", "end", "movsx"]))
    dst = draw(_REG)
    if kind == "neg":
        return Instruction(cls | op.NEG, dst)
    if kind == "end":
        width = draw(st.sampled_from([16, 32, 64]))
        src_bit = op.K if cls == op.ALU64 else draw(st.sampled_from([op.K, op.X]))
        return Instruction(cls | op.END | src_bit, dst, 0, 0, width)
    if kind == "movsx":
        bits = draw(st.sampled_from([8, 16, 32] if cls == op.ALU64 else [8, 16]))
        return Instruction(cls | op.MOV | op.X, dst, draw(_REG), bits)
    aop = draw(st.sampled_from(_ALU_OPS))
    off = draw(st.sampled_from([0, 1])) if aop in (op.DIV, op.MOD) else 0
    if draw(st.booleans()):
        return Instruction(cls | aop | op.X, dst, draw(_REG), off)
    return Instruction(cls | aop | op.K, dst, 0, off, draw(_IMM))


@st.composite
def alu_program(draw) -> list[Instruction]:
    """Registers from random 64-bit values, random ALU instructions, all folded into r0."""
    prog = [lddw(r, draw(st.integers(0, (1 << 64) - 1))) for r in range(10)]
    prog += draw(st.lists(alu_insn(), min_size=1, max_size=24))
    for r in range(1, 10):
        prog.append(Instruction(op.ALU64 | op.MUL | op.K, 0, 0, 0, 0x01000193))
        prog.append(Instruction(op.ALU64 | op.XOR | op.X, 0, r))
    prog.append(Instruction(op.EXIT_OP))
    return prog


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alu_program())
def test_straight_line_alu(prog):
    env = Env()
    assert JitProgram(prog, env).run() == CompiledProgram(prog, env).run()
