"""Hypothesis strategies for valid BPF instructions and programs, shared by the tests.

``valid_instruction()`` draws every instruction kind the ISA has, in its canonical form
(what :func:`bpfkit.isa.decode` returns: signed 32-bit ``imm``, unsigned 64-bit ``lddw``
immediate). ``valid_program()`` draws programs whose branch targets all land on an
instruction start inside the program and that end with ``exit``.
"""

from __future__ import annotations

from hypothesis import strategies as st

from bpfkit.isa import opcodes as op
from bpfkit.isa.instruction import Instruction

REGS = st.integers(0, 10)
IMM32 = st.integers(-(1 << 31), (1 << 31) - 1)
OFF16 = st.integers(-0x8000, 0x7FFF)
IMM64 = st.integers(0, (1 << 64) - 1)
SMALL = st.integers(-64, 64)

_ALU_BINARY = (
    op.ADD,
    op.SUB,
    op.MUL,
    op.DIV,
    op.OR,
    op.AND,
    op.LSH,
    op.RSH,
    op.MOD,
    op.XOR,
    op.MOV,
    op.ARSH,
)
_SIZES = (op.B, op.H, op.W, op.DW)


def _imm32() -> st.SearchStrategy[int]:
    return st.one_of(SMALL, IMM32, st.sampled_from([-(1 << 31), (1 << 31) - 1, 0, -1]))


def _off16() -> st.SearchStrategy[int]:
    return st.one_of(SMALL, OFF16)


@st.composite
def _alu(draw) -> Instruction:
    cls = draw(st.sampled_from((op.ALU, op.ALU64)))
    kind = draw(st.sampled_from(("k", "x", "sdivmod", "movsx", "neg", "end")))
    dst = draw(REGS)
    if kind == "neg":
        return Instruction(cls | op.NEG, dst)
    if kind == "end":
        width = draw(st.sampled_from((16, 32, 64)))
        if cls == op.ALU64:
            return Instruction(op.ALU64 | op.END | op.TO_LE, dst, 0, 0, width)
        return Instruction(
            op.ALU | op.END | draw(st.sampled_from((op.TO_LE, op.TO_BE))), dst, 0, 0, width
        )
    if kind == "movsx":
        bits = draw(st.sampled_from((8, 16, 32) if cls == op.ALU64 else (8, 16)))
        return Instruction(cls | op.MOV | op.X, dst, draw(REGS), bits)
    if kind == "sdivmod":
        aop = draw(st.sampled_from((op.DIV, op.MOD)))
        if draw(st.booleans()):
            return Instruction(cls | aop | op.X, dst, draw(REGS), 1)
        return Instruction(cls | aop | op.K, dst, 0, 1, draw(_imm32()))
    aop = draw(st.sampled_from(_ALU_BINARY))
    if kind == "x":
        return Instruction(cls | aop | op.X, dst, draw(REGS))
    return Instruction(cls | aop | op.K, dst, 0, 0, draw(_imm32()))


@st.composite
def _mem(draw) -> Instruction:
    kind = draw(st.sampled_from(("ldx", "ldxs", "st", "stx", "atomic", "abs", "ind")))
    size = draw(st.sampled_from(_SIZES))
    dst, src, off = draw(REGS), draw(REGS), draw(_off16())
    if kind == "ldx":
        return Instruction(op.LDX | op.MEM | size, dst, src, off)
    if kind == "ldxs":
        size = draw(st.sampled_from((op.B, op.H, op.W)))
        return Instruction(op.LDX | op.MEMSX | size, dst, src, off)
    if kind == "st":
        return Instruction(op.ST | op.MEM | size, dst, 0, off, draw(_imm32()))
    if kind == "stx":
        return Instruction(op.STX | op.MEM | size, dst, src, off)
    if kind == "atomic":
        size = draw(st.sampled_from((op.W, op.DW)))
        return Instruction(
            op.STX | op.ATOMIC | size, dst, src, off, draw(st.sampled_from(op.ATOMIC_OPS))
        )
    size = draw(st.sampled_from((op.B, op.H, op.W)))
    if kind == "abs":
        return Instruction(op.LD | op.ABS | size, 0, 0, 0, draw(_imm32()))
    return Instruction(op.LD | op.IND | size, 0, src, 0, draw(_imm32()))


@st.composite
def _lddw(draw) -> Instruction:
    src = draw(st.sampled_from(sorted(op.LDDW_PSEUDOS)))
    imm = draw(
        st.one_of(
            IMM64,
            st.integers(0, 0xFFFFFFFF),
            st.integers(-64, 64).map(lambda v: v & ((1 << 64) - 1)),
        )
    )
    return Instruction(op.LDDW, draw(REGS), src, 0, imm)


@st.composite
def _jmp(draw) -> Instruction:
    kind = draw(st.sampled_from(("cond", "ja", "gotol", "call", "local", "kfunc", "callx", "exit")))
    if kind == "cond":
        cls = draw(st.sampled_from((op.JMP, op.JMP32)))
        jop = draw(st.sampled_from(op.COND_JUMPS))
        if draw(st.booleans()):
            return Instruction(cls | jop | op.X, draw(REGS), draw(REGS), draw(_off16()))
        return Instruction(cls | jop | op.K, draw(REGS), 0, draw(_off16()), draw(_imm32()))
    if kind == "ja":
        return Instruction(op.JMP | op.JA, off=draw(_off16()))
    if kind == "gotol":
        return Instruction(op.JMP32 | op.JA, imm=draw(_imm32()))
    if kind == "call":
        return Instruction(op.CALL_OP, imm=draw(_imm32()))
    if kind == "local":
        return Instruction(op.CALL_OP, src=op.PSEUDO_CALL, imm=draw(_imm32()))
    if kind == "kfunc":
        return Instruction(
            op.CALL_OP, src=op.PSEUDO_KFUNC_CALL, off=draw(_off16()), imm=draw(_imm32())
        )
    if kind == "callx":
        return Instruction(op.CALLX_OP, dst=draw(REGS))
    return Instruction(op.EXIT_OP)


def valid_instruction() -> st.SearchStrategy[Instruction]:
    """Any valid instruction encoding (every class, mode and operation)."""
    return st.one_of(_alu(), _mem(), _lddw(), _jmp())


def _retarget(insn: Instruction, pc: int, target: int) -> Instruction:
    rel = target - (pc + 1)
    if insn.opcode == (op.JMP32 | op.JA) or insn.is_local_call:
        return insn.with_(imm=rel)
    if insn.is_lddw:
        return insn.with_(imm=rel & ((1 << 64) - 1))
    return insn.with_(off=rel)


@st.composite
def valid_program(
    draw, min_size: int = 1, max_size: int = 24, backward: bool = True
) -> list[Instruction]:
    """A list of valid instructions ending in ``exit`` whose branches stay inside it.

    Every jump, local call and ``func`` load targets an instruction start (with
    ``backward=False`` only later ones, so straight-line execution terminates).
    """
    body = draw(
        st.lists(valid_instruction(), min_size=max(0, min_size - 1), max_size=max(0, max_size - 1))
    )
    body.append(Instruction(op.EXIT_OP))
    starts, pos = [], 0
    for insn in body:
        starts.append(pos)
        pos += insn.slots
    out = []
    for insn, pc in zip(body, starts, strict=True):
        branchy = (
            insn.is_jump or insn.is_local_call or (insn.is_lddw and insn.src == op.PSEUDO_FUNC)
        )
        if branchy:
            choices = [s for s in starts if s > pc] if not backward else starts
            if not choices:
                insn = (
                    Instruction(op.EXIT_OP)
                    if insn.is_jump or insn.is_local_call
                    else (insn.with_(src=0))
                )
            else:
                insn = _retarget(insn, pc, draw(st.sampled_from(choices)))
        out.append(insn)
    return out
