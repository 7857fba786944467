"""``Instruction``: one BPF instruction as data, plus validation, decode and encode.

A 16-byte ``lddw`` is one ``Instruction`` whose ``imm`` holds the whole 64-bit value
(low word from the first slot, high word from the second).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ..errors import DecodeError, EncodeError
from . import opcodes as op

_SLOT = struct.Struct("<BBhi")


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@dataclass(frozen=True, slots=True)
class Instruction:
    """One BPF instruction.

    ``imm`` is a signed 32-bit value, except for ``lddw`` where it is the unsigned
    64-bit immediate. ``ref`` names a symbolic jump/call target (a label) that
    :func:`bpfkit.isa.builders.assemble` resolves into ``off``/``imm``.
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    ref: str | None = None

    # ---- classification -------------------------------------------------
    @property
    def cls(self) -> int:
        return self.opcode & 0x07

    @property
    def is_lddw(self) -> bool:
        return self.opcode == op.LDDW

    @property
    def slots(self) -> int:
        """Number of 8-byte slots this instruction occupies (2 for ``lddw``)."""
        return 2 if self.opcode == op.LDDW else 1

    @property
    def is_alu(self) -> bool:
        return self.cls in (op.ALU, op.ALU64)

    @property
    def is_jump(self) -> bool:
        """A jump (conditional or not) whose target is relative to the next instruction."""
        c = self.cls
        if c not in (op.JMP, op.JMP32):
            return False
        code = self.opcode & 0xF0
        return code not in (op.CALL, op.EXIT)

    @property
    def is_call(self) -> bool:
        return self.cls == op.JMP and self.opcode & 0xF0 == op.CALL

    @property
    def is_exit(self) -> bool:
        return self.opcode == op.EXIT_OP

    @property
    def is_helper_call(self) -> bool:
        return self.opcode == op.CALL_OP and self.src == 0

    @property
    def is_local_call(self) -> bool:
        return self.opcode == op.CALL_OP and self.src == op.PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        return self.opcode == op.CALL_OP and self.src == op.PSEUDO_KFUNC_CALL

    @property
    def is_callx(self) -> bool:
        return self.opcode == op.CALLX_OP

    @property
    def jump_offset(self) -> int:
        """Relative jump distance in slots (``imm`` for ``gotol``/``ja32``)."""
        if self.opcode == (op.JMP32 | op.JA):
            return self.imm
        return self.off

    @property
    def imm_lo(self) -> int:
        """Low 32 bits of the immediate, unsigned (first slot of an ``lddw``)."""
        return self.imm & 0xFFFFFFFF

    @property
    def imm_hi(self) -> int:
        """High 32 bits of an ``lddw`` immediate, unsigned (second slot)."""
        return (self.imm >> 32) & 0xFFFFFFFF

    def with_(self, **kw) -> Instruction:
        """A copy with some fields replaced."""
        return replace(self, **kw)

    def encode(self) -> bytes:
        """The instruction's bytes (8, or 16 for ``lddw``)."""
        if self.ref is not None:
            raise EncodeError(f"unresolved reference {self.ref!r} in {self}")
        reason = check(self)
        if reason:
            raise EncodeError(f"cannot encode {self}: {reason}")
        regs = (self.src << 4) | self.dst
        if self.is_lddw:
            return _SLOT.pack(self.opcode, regs, 0, _s32(self.imm_lo)) + _SLOT.pack(
                0, 0, 0, _s32(self.imm_hi)
            )
        return _SLOT.pack(self.opcode, regs, self.off, self.imm)

    def __str__(self) -> str:
        try:
            from .disasm import format_insn

            return format_insn(self)
        except Exception:  # noqa: BLE001 - printing must never fail
            return self.raw_repr()

    def raw_repr(self) -> str:
        return (
            f"Instruction(op={self.opcode:#04x}, dst={self.dst}, src={self.src}, "
            f"off={self.off}, imm={self.imm:#x})"
        )


def check(insn: Instruction) -> str | None:
    """Why ``insn`` is not a valid encoding, or ``None`` if it is.

    The rules are the kernel's reserved-field checks (verifier ``do_check``/``check_*``)
    extended with the RFC 9669 instructions the kernel lacks (``callx``).
    """
    code, dst, src, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    if not 0 <= code <= 0xFF:
        return "opcode out of range"
    if not (0 <= dst <= 10):
        return f"invalid destination register r{dst}"
    if not (0 <= src <= 15):
        return f"invalid source field {src}"
    if not -0x8000 <= off <= 0x7FFF:
        return f"offset {off} out of 16-bit range"
    cls = code & 7
    if cls == op.LD and code == op.LDDW:
        if not 0 <= imm < (1 << 64) and not -(1 << 63) <= imm < 0:
            return "lddw immediate out of 64-bit range"
        if src not in op.LDDW_PSEUDOS:
            return f"invalid lddw source {src}"
        if off != 0:
            return "reserved offset field of lddw is not zero"
        return None
    if not -(1 << 31) <= imm < (1 << 31):
        return f"immediate {imm} out of 32-bit range"
    if src > 10:
        return f"invalid source register r{src}"
    if cls in (op.ALU, op.ALU64):
        return _check_alu(cls, code, dst, src, off, imm)
    if cls in (op.JMP, op.JMP32):
        return _check_jmp(cls, code, dst, src, off, imm)
    size = code & 0x18
    mode = code & 0xE0
    if cls == op.LD:
        if mode in (op.ABS, op.IND):
            if size == op.DW:
                return "legacy packet load of a double word"
            if dst != 0 or off != 0 or (mode == op.ABS and src != 0):
                return "reserved fields of a legacy packet load are not zero"
            return None
        return "unknown opcode"
    if cls == op.LDX:
        if mode == op.MEM or (mode == op.MEMSX and size != op.DW):
            return "reserved immediate of a load is not zero" if imm else None
        return "unknown opcode"
    if cls == op.ST:
        if mode != op.MEM:
            return "unknown opcode"
        return "reserved source of a store-immediate is not zero" if src else None
    # STX
    if mode == op.MEM:
        return "reserved immediate of a store is not zero" if imm else None
    if mode == op.ATOMIC:
        if size not in (op.W, op.DW):
            return "atomic operation on a byte or half word"
        if imm not in op.ATOMIC_OPS:
            return f"unknown atomic operation {imm:#x}"
        return None
    return "unknown opcode"


def _check_alu(cls, code, dst, src, off, imm) -> str | None:
    aop = code & 0xF0
    x = code & op.X
    if aop not in op.ALU_NAMES:
        return "unknown opcode"
    if aop == op.END:
        if cls == op.ALU64 and x:
            return "unknown opcode"
        if src or off or imm not in (16, 32, 64):
            return "invalid byte swap (width must be 16, 32 or 64; other fields zero)"
        return None
    if aop == op.NEG:
        if x or src or off or imm:
            return "reserved fields of neg are not zero"
        return None
    if aop == op.MOV:
        if x:
            if imm:
                return "reserved immediate of mov is not zero"
            if off not in ((0, 8, 16, 32) if cls == op.ALU64 else (0, 8, 16)):
                return f"invalid sign-extension width {off}"
        else:
            if src or off:
                return "reserved fields of mov-immediate are not zero"
        return None
    if off not in (0, 1) or (off == 1 and aop not in (op.DIV, op.MOD)):
        return "reserved offset of an ALU operation is not zero"
    if x:
        return "reserved immediate of a register ALU operation is not zero" if imm else None
    return "reserved source of an immediate ALU operation is not zero" if src else None


def _check_jmp(cls, code, dst, src, off, imm) -> str | None:
    jop = code & 0xF0
    x = code & op.X
    if jop not in op.JMP_NAMES:
        return "unknown opcode"
    if jop == op.JA:
        if x or src or dst:
            return "reserved fields of ja are not zero"
        if cls == op.JMP and imm:
            return "reserved immediate of ja is not zero"
        if cls == op.JMP32 and off:
            return "reserved offset of gotol is not zero"
        return None
    if jop == op.CALL:
        if cls == op.JMP32:
            return "unknown opcode"
        if x:
            if src or off or imm:
                return "reserved fields of callx are not zero"
            return None
        if dst:
            return "reserved destination of call is not zero"
        if src not in (0, op.PSEUDO_CALL, op.PSEUDO_KFUNC_CALL):
            return f"invalid call source {src}"
        if off and src != op.PSEUDO_KFUNC_CALL:
            return "reserved offset of call is not zero"
        return None
    if jop == op.EXIT:
        if cls == op.JMP32 or x or src or dst or off or imm:
            return "reserved fields of exit are not zero" if cls == op.JMP else "unknown opcode"
        return None
    if x:
        return "reserved immediate of a register jump is not zero" if imm else None
    return "reserved source of an immediate jump is not zero" if src else None


_new = object.__new__
# The slots' own setters: building an instruction through them skips the frozen
# dataclass's ``__init__`` (one ``object.__setattr__`` call per field).
_SET_OPCODE, _SET_DST, _SET_SRC, _SET_OFF, _SET_IMM, _SET_REF = (
    Instruction.__dict__[_f].__set__ for _f in ("opcode", "dst", "src", "off", "imm", "ref")
)


def _make(code: int, dst: int, src: int, off: int, imm: int) -> Instruction:
    """``Instruction(code, dst, src, off, imm)``, built directly (decode's hot path)."""
    o = _new(Instruction)
    _SET_OPCODE(o, code)
    _SET_DST(o, dst)
    _SET_SRC(o, src)
    _SET_OFF(o, off)
    _SET_IMM(o, imm)
    _SET_REF(o, None)
    return o


class _BySlot(dict):
    """The instruction of each distinct 8-byte slot value (a little-endian u64).

    Instructions are immutable and programs repeat most of theirs (an unrolled loop is
    a few dozen distinct slots), so decode builds each distinct one once.
    """

    __slots__ = ()

    def __missing__(self, q: int) -> Instruction:
        off = (q >> 16) & 0xFFFF
        imm = q >> 32
        o = self[q] = _make(
            q & 0xFF,
            (q >> 8) & 0xF,
            (q >> 12) & 0xF,
            off - 0x10000 if off & 0x8000 else off,
            imm - (1 << 32) if imm & 0x80000000 else imm,
        )
        return o


def lddw_slots(data: bytes | bytearray | memoryview) -> list[int]:
    """The slots where an ``lddw`` starts in bytecode ``data`` (its second slot is data).

    Raises :class:`DecodeError` when the last one has no second slot.
    """
    ops = (data if isinstance(data, bytes | bytearray) else bytes(data))[0::8]
    out: list[int] = []
    find = ops.find
    pos = find(b"\x18")
    while pos >= 0:
        out.append(pos)
        pos = find(b"\x18", pos + 2)
    if out and out[-1] == len(ops) - 1:
        raise DecodeError("incomplete lddw (missing second slot)", out[-1] * 8)
    return out


def decode(data: bytes | bytearray | memoryview, *, strict: bool = True) -> list[Instruction]:
    """Decode little-endian bytecode into instructions (``lddw`` becomes one).

    Raises :class:`DecodeError` naming the byte offset of the first invalid slot.
    With ``strict=False`` only structural problems (length, incomplete ``lddw``) raise.
    """
    data = bytes(data)
    if len(data) % 8:
        raise DecodeError(f"length {len(data)} is not a multiple of 8", len(data) - len(data) % 8)
    if sys.byteorder != "little":  # pragma: no cover - the bulk path reads native u64s
        return _decode_each(data, strict)
    try:
        lddws = lddw_slots(data)
    except DecodeError:
        if strict:
            return _decode_each(data, strict)  # the first problem, in program order
        raise
    words = memoryview(data).cast("Q")
    by_slot = _BySlot()
    get = by_slot.__getitem__
    out: list[Instruction] = []
    wide: list[Instruction] = []
    bad_second = False
    prev = 0
    for s in lddws:
        out.extend(map(get, words[prev:s]))
        lo, hi = words[s], words[s + 1]
        bad_second |= bool(hi & 0xFFFFFFFF)
        off = (lo >> 16) & 0xFFFF
        insn = _make(
            0x18,
            (lo >> 8) & 0xF,
            (lo >> 12) & 0xF,
            off - 0x10000 if off & 0x8000 else off,
            (lo >> 32) | ((hi >> 32) << 32),
        )
        out.append(insn)
        wide.append(insn)
        prev = s + 2
    out.extend(map(get, words[prev:]))
    if strict and (bad_second or any(map(check, by_slot.values())) or any(map(check, wide))):
        return _decode_each(data, strict)  # names the first invalid slot
    return out


def _decode_each(data: bytes, strict: bool) -> list[Instruction]:
    """Decode slot by slot, raising at the first problem (the reference decoder)."""
    out: list[Instruction] = []
    n = len(data) // 8
    i = 0
    unpack = _SLOT.unpack_from
    while i < n:
        code, regs, off, imm = unpack(data, i * 8)
        dst, src = regs & 0xF, regs >> 4
        if code == op.LDDW:
            if i + 1 >= n:
                raise DecodeError("incomplete lddw (missing second slot)", i * 8)
            c2, r2, o2, imm2 = unpack(data, i * 8 + 8)
            if strict and (c2 or r2 or o2):
                raise DecodeError("reserved fields of lddw's second slot are not zero", i * 8 + 8)
            insn = Instruction(
                code, dst, src, off, (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
            )
            i += 2
        else:
            insn = Instruction(code, dst, src, off, imm)
            i += 1
        if strict:
            reason = check(insn)
            if reason:
                raise DecodeError(f"{reason} (opcode {code:#04x})", (i - insn.slots) * 8)
        out.append(insn)
    return out


def encode(insns: Iterable[Instruction]) -> bytes:
    """Encode instructions to little-endian bytecode."""
    return b"".join(i.encode() for i in insns)


def slot_positions(insns: Sequence[Instruction]) -> list[int]:
    """The slot index at which each instruction starts."""
    pos, out = 0, []
    for insn in insns:
        out.append(pos)
        pos += insn.slots
    return out
