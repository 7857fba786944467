"""Python builders for BPF programs, in the spirit of cilium/ebpf's ``asm`` package.

    prog = assemble([
        mov64(R0, 0),
        jeq(R1, 0, "out"),
        mov64(R0, R1),
        Label("out"),
        exit_(),
    ])

A register operand is a :class:`Reg` (``R0``..``R10``); a plain ``int`` is an immediate.
Jump and call targets are an ``int`` (relative offset, in slots) or a label name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ..errors import EncodeError
from . import opcodes as op
from .instruction import Instruction


class Reg(IntEnum):
    """A BPF register operand."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
FP = R10


@dataclass(frozen=True)
class Label:
    """Marks the position of the next instruction under ``name``."""

    name: str


Target = int | str


def _alu(cls: int, aop: int, dst: Reg, src: Reg | int, off: int = 0) -> Instruction:
    if isinstance(src, Reg):
        return Instruction(cls | aop | op.X, int(dst), int(src), off, 0)
    return Instruction(cls | aop | op.K, int(dst), 0, off, _imm32(src))


def _imm32(v: int) -> int:
    if not -(1 << 31) <= v < (1 << 32):
        raise EncodeError(f"immediate {v} does not fit in 32 bits")
    return v - (1 << 32) if v >= (1 << 31) else v


def _make_alu(aop: int, cls: int, off: int = 0):
    def build(dst: Reg, src: Reg | int) -> Instruction:
        return _alu(cls, aop, dst, src, off)

    return build


add64, sub64, mul64, div64, or64, and64 = (
    _make_alu(a, op.ALU64) for a in (op.ADD, op.SUB, op.MUL, op.DIV, op.OR, op.AND)
)
lsh64, rsh64, mod64, xor64, mov64, arsh64 = (
    _make_alu(a, op.ALU64) for a in (op.LSH, op.RSH, op.MOD, op.XOR, op.MOV, op.ARSH)
)
add32, sub32, mul32, div32, or32, and32 = (
    _make_alu(a, op.ALU) for a in (op.ADD, op.SUB, op.MUL, op.DIV, op.OR, op.AND)
)
lsh32, rsh32, mod32, xor32, mov32, arsh32 = (
    _make_alu(a, op.ALU) for a in (op.LSH, op.RSH, op.MOD, op.XOR, op.MOV, op.ARSH)
)
sdiv64, smod64 = _make_alu(op.DIV, op.ALU64, 1), _make_alu(op.MOD, op.ALU64, 1)
sdiv32, smod32 = _make_alu(op.DIV, op.ALU, 1), _make_alu(op.MOD, op.ALU, 1)


def neg64(dst: Reg) -> Instruction:
    return Instruction(op.ALU64 | op.NEG, int(dst))


def neg32(dst: Reg) -> Instruction:
    return Instruction(op.ALU | op.NEG, int(dst))


def movsx64(dst: Reg, src: Reg, bits: int) -> Instruction:
    """``dst = (s64)(s<bits>)src`` for bits in 8, 16, 32."""
    return Instruction(op.ALU64 | op.MOV | op.X, int(dst), int(src), bits)


def movsx32(dst: Reg, src: Reg, bits: int) -> Instruction:
    """``w_dst = (s32)(s<bits>)w_src`` for bits in 8, 16."""
    return Instruction(op.ALU | op.MOV | op.X, int(dst), int(src), bits)


def le(dst: Reg, bits: int) -> Instruction:
    return Instruction(op.ALU | op.END | op.TO_LE, int(dst), 0, 0, bits)


def be(dst: Reg, bits: int) -> Instruction:
    return Instruction(op.ALU | op.END | op.TO_BE, int(dst), 0, 0, bits)


def bswap(dst: Reg, bits: int) -> Instruction:
    return Instruction(op.ALU64 | op.END, int(dst), 0, 0, bits)


def _jump(cls: int, jop: int, dst: Reg, src: Reg | int, target: Target) -> Instruction:
    ref = target if isinstance(target, str) else None
    off = 0 if ref else int(target)
    if isinstance(src, Reg):
        return Instruction(cls | jop | op.X, int(dst), int(src), off, 0, ref)
    return Instruction(cls | jop | op.K, int(dst), 0, off, _imm32(src), ref)


def _make_jmp(jop: int, cls: int):
    def build(dst: Reg, src: Reg | int, target: Target) -> Instruction:
        return _jump(cls, jop, dst, src, target)

    return build


jeq, jgt, jge, jset, jne, jsgt, jsge, jlt, jle, jslt, jsle = (
    _make_jmp(j, op.JMP) for j in op.COND_JUMPS
)
jeq32, jgt32, jge32, jset32, jne32, jsgt32, jsge32, jlt32, jle32, jslt32, jsle32 = (
    _make_jmp(j, op.JMP32) for j in op.COND_JUMPS
)


def ja(target: Target) -> Instruction:
    """Unconditional jump with a 16-bit offset."""
    if isinstance(target, str):
        return Instruction(op.JMP | op.JA, ref=target)
    return Instruction(op.JMP | op.JA, off=target)


def gotol(target: Target) -> Instruction:
    """Unconditional jump with a 32-bit offset (``ja32``, v4)."""
    if isinstance(target, str):
        return Instruction(op.JMP32 | op.JA, ref=target)
    return Instruction(op.JMP32 | op.JA, imm=target)


def call(helper: int) -> Instruction:
    """Call a helper function by id."""
    return Instruction(op.CALL_OP, imm=int(helper))


def call_local(target: Target) -> Instruction:
    """BPF-to-BPF call of a subprogram (relative offset or label)."""
    if isinstance(target, str):
        return Instruction(op.CALL_OP, src=op.PSEUDO_CALL, ref=target)
    return Instruction(op.CALL_OP, src=op.PSEUDO_CALL, imm=target)


def call_kfunc(btf_id: int, btf_fd_idx: int = 0) -> Instruction:
    """Call a kernel function by BTF id."""
    return Instruction(op.CALL_OP, src=op.PSEUDO_KFUNC_CALL, off=btf_fd_idx, imm=btf_id)


def callx(reg: Reg) -> Instruction:
    """Call through a register (RFC 9669 ``callx``; register in the dst field)."""
    return Instruction(op.CALLX_OP, dst=int(reg))


def exit_() -> Instruction:
    return Instruction(op.EXIT_OP)


def lddw(dst: Reg, imm: int, pseudo: int = 0) -> Instruction:
    """Load a 64-bit immediate (``pseudo`` selects map fd, map value, BTF id, ...)."""
    if not -(1 << 63) <= imm < (1 << 64):
        raise EncodeError(f"immediate {imm} does not fit in 64 bits")
    return Instruction(op.LDDW, int(dst), pseudo, 0, imm & ((1 << 64) - 1))


def ld_map_fd(dst: Reg, fd: int) -> Instruction:
    return lddw(dst, fd, op.PSEUDO_MAP_FD)


def ld_map_value(dst: Reg, fd: int, offset: int = 0) -> Instruction:
    return lddw(dst, (offset << 32) | (fd & 0xFFFFFFFF), op.PSEUDO_MAP_VALUE)


def ld_func(dst: Reg, target: Target) -> Instruction:
    """Load the address of a subprogram (for callbacks and ``callx``)."""
    if isinstance(target, str):
        return Instruction(op.LDDW, int(dst), op.PSEUDO_FUNC, ref=target)
    return lddw(dst, target, op.PSEUDO_FUNC)


def _size(nbytes: int) -> int:
    try:
        return op.BYTES_SIZE[nbytes]
    except KeyError:
        raise EncodeError(f"invalid access size {nbytes} (1, 2, 4 or 8)") from None


def ldx(nbytes: int, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """``dst = *(u<8*nbytes> *)(src + off)``."""
    return Instruction(op.LDX | op.MEM | _size(nbytes), int(dst), int(src), off)


def ldxs(nbytes: int, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """Sign-extending load: ``dst = *(s<8*nbytes> *)(src + off)``."""
    return Instruction(op.LDX | op.MEMSX | _size(nbytes), int(dst), int(src), off)


def st(nbytes: int, dst: Reg, off: int, imm: int) -> Instruction:
    """``*(u<8*nbytes> *)(dst + off) = imm``."""
    return Instruction(op.ST | op.MEM | _size(nbytes), int(dst), 0, off, _imm32(imm))


def stx(nbytes: int, dst: Reg, off: int, src: Reg) -> Instruction:
    """``*(u<8*nbytes> *)(dst + off) = src``."""
    return Instruction(op.STX | op.MEM | _size(nbytes), int(dst), int(src), off)


def atomic(nbytes: int, aop: int, dst: Reg, off: int, src: Reg) -> Instruction:
    """Atomic read-modify-write on ``*(dst + off)`` (``aop`` from :mod:`opcodes`)."""
    return Instruction(op.STX | op.ATOMIC | _size(nbytes), int(dst), int(src), off, aop)


def ld_abs(nbytes: int, imm: int) -> Instruction:
    """Legacy packet load: ``r0 = ntoh(*(packet + imm))``."""
    return Instruction(op.LD | op.ABS | _size(nbytes), 0, 0, 0, _imm32(imm))


def ld_ind(nbytes: int, src: Reg, imm: int) -> Instruction:
    """Legacy packet load: ``r0 = ntoh(*(packet + src + imm))``."""
    return Instruction(op.LD | op.IND | _size(nbytes), 0, int(src), 0, _imm32(imm))


def assemble(items: Iterable[Instruction | Label]) -> list[Instruction]:
    """Resolve labels to relative offsets; returns plain instructions."""
    items = list(items)
    labels: dict[str, int] = {}
    slot = 0
    for it in items:
        if isinstance(it, Label):
            if it.name in labels:
                raise EncodeError(f"label {it.name!r} defined twice")
            labels[it.name] = slot
        else:
            slot += it.slots
    out: list[Instruction] = []
    slot = 0
    for it in items:
        if isinstance(it, Label):
            continue
        if it.ref is not None:
            if it.ref not in labels:
                raise EncodeError(f"undefined label {it.ref!r}")
            rel = labels[it.ref] - (slot + 1)
            if it.is_lddw or it.is_call or it.opcode == (op.JMP32 | op.JA):
                it = it.with_(imm=rel & ((1 << 64) - 1) if it.is_lddw else rel, ref=None)
            else:
                if not -0x8000 <= rel <= 0x7FFF:
                    raise EncodeError(f"jump to {it.ref!r} is too far ({rel} slots); use gotol")
                it = it.with_(off=rel, ref=None)
        out.append(it)
        slot += it.slots
    return out
