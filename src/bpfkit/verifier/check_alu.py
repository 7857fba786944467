"""The checker's ALU instructions: scalar arithmetic and its ranges, pointer
arithmetic and its sanitation (mixed into :class:`~.check.Checker`)."""

from __future__ import annotations

from ..isa import opcodes as op
from ..isa.disasm import ALU_SYMBOLS
from ..isa.instruction import Instruction
from . import scalar, tnum
from .check_common import _CLS_ALU64, _MOV, _X, BPF_MAX_VAR_OFF
from .state import (
    CONST_PTR_TO_MAP,
    MAX_BPF_STACK,
    PACKET_TYPES,
    PTR_TO_FUNC,
    PTR_TO_MAP_VALUE,
    PTR_TO_MEM,
    PTR_TO_PACKET_END,
    PTR_TO_STACK,
    SCALAR,
    SOCKET_TYPES,
    Reg,
    State,
    s64,
)
from .tnum import M32, M64, Tnum, _tnew

# the kernel's bpf_alu_string: how its log names an ALU operation
_ALU_STRING = {**ALU_SYMBOLS, op.NEG: "neg", op.END: "endian"}

# alu_state bits of the kernel's ALU sanitation (BPF_ALU_*)
_ALU_SANITIZE_SRC = 1
_ALU_SANITIZE_DST = 2
_ALU_NEG_VALUE = 4
_ALU_IMMEDIATE = 8
_ALU_NON_POINTER = 16


class AluMixin:
    """ALU and pointer arithmetic."""

    # ------------------------------------------------------------------ ALU
    def do_alu(self, st: State, insn: Instruction) -> None:
        code = insn.opcode
        is64 = (code & 7) == _CLS_ALU64
        aop = code & 0xF0
        use_src = bool(code & _X)
        dstno = insn.dst
        if aop == _MOV and not use_src and dstno != 10:
            st.frames[-1].regs[dstno] = Reg.const(insn.imm if is64 else insn.imm & M32)
            return
        if aop == op.END or aop == op.NEG:
            dst = self.read_reg(st, dstno)
            self.check_dst(dstno)
            if dst.is_pointer():
                if self.unpriv:
                    raise self.fail(
                        f"r{dstno}: arithmetic on a pointer is not allowed without privileges.",
                        f"R{dstno} pointer arithmetic prohibited",
                    )
                self.set_reg(st, dstno, Reg.unknown())
                return
            r = dst.clone()
            r.id = 0
            if aop == op.NEG:
                scalar.neg(r, is64)
            else:
                scalar.bswap(r, insn.imm, bool(insn.opcode & op.TO_BE), is64)
            self.set_reg(st, dstno, r)
            return
        if aop == op.MOV:
            self.check_dst(dstno)
            if use_src:
                src = self.read_reg(st, insn.src)
                if insn.off == 0:
                    if is64:
                        if src.type == SCALAR and not src.is_const() and not src.id:
                            # link the copies so a later comparison narrows both
                            src = src.clone()
                            src.id = self.new_id()
                            self.set_reg(st, insn.src, src)
                        self.set_reg(st, dstno, src)
                    else:
                        if src.is_pointer():
                            if self.unpriv:
                                raise self.fail(
                                    f"Copying the low half of pointer r{insn.src} would leak it.",
                                    f"R{insn.src} partial copy of pointer",
                                )
                            self.set_reg(st, dstno, scalar_zext_unknown())
                            return
                        # a value that fits 32 bits stays linked to its source
                        src = self._link_if(st, insn.src, src, src.umax.bit_length() <= 32)
                        r = src.clone()
                        if src.umax.bit_length() > 32:
                            r.id = 0
                        scalar.truncate(r, 4)
                        self.set_reg(st, dstno, r)
                else:
                    if src.is_pointer():
                        if self.unpriv:
                            raise self.fail(
                                f"Sign-extending part of pointer r{insn.src} would leak it.",
                                f"R{insn.src} sign-extension part of pointer",
                            )
                        self.set_reg(st, dstno, Reg.unknown() if is64 else scalar_zext_unknown())
                        return
                    # no sign to extend: the copy stays linked to its source
                    no_sext = src.umax < (1 << (insn.off - 1))
                    src = self._link_if(st, insn.src, src, no_sext)
                    r = src.clone()
                    if not no_sext:
                        r.id = 0
                    scalar.sext(r, insn.off, is64)
                    self.set_reg(st, dstno, r)
            else:
                v = insn.imm if is64 else insn.imm & M32
                self.set_reg(st, dstno, Reg.const(v))
            return
        dst = self.read_reg(st, dstno)
        self.check_dst(dstno)
        dvo = dst.var_off
        if use_src:
            src = self.read_reg(st, insn.src)
            if (
                not dvo[1]
                and dst.type == SCALAR
                and src.type == SCALAR
                and not src.var_off[1]
                and not (self.unpriv and aop in (op.ADD, op.SUB))
            ):
                # both known: what scalar.alu computes, without its call chain
                v = scalar.fold(aop, is64, dvo[0], src.var_off[0])
                if v is not None:
                    r = dst.clone()
                    r.id = 0
                    r.set_const(v)
                    st.frames[-1].regs[dstno] = r
                    return
        else:
            imm = insn.imm
            if aop in (op.DIV, op.MOD) and imm == 0:
                raise self.fail("Division by the constant zero.", "div by zero")
            if aop in (op.LSH, op.RSH, op.ARSH) and not 0 <= imm < (64 if is64 else 32):
                raise self.fail(
                    f"Shift by {imm} is outside the register width.",
                    f"invalid shift {imm}",
                )
            if not dvo[1] and dst.type == SCALAR:
                v = scalar.fold(aop, is64, dvo[0], imm & M64 if is64 else imm & M32)
                if v is not None:
                    r = dst.clone()
                    r.id = 0
                    r.set_const(v)
                    st.frames[-1].regs[dstno] = r
                    return
            src = Reg.const(imm if is64 else imm & M32)
        if dst.is_pointer() or src.is_pointer():
            self.set_reg(st, dstno, self.ptr_alu(st, insn, aop, is64, dst, src, dstno))
            return
        if self.unpriv and use_src and aop in (op.ADD, op.SUB):
            # the kernel's sanitize_val_alu: a scalar add/sub here on every path
            self.alu_window(insn, aop, _ALU_NON_POINTER, 0)
        r = dst.clone()
        r.id = 0
        scalar.alu(aop, is64, r, src, signed_divmod=insn.off == 1)
        self.set_reg(st, dstno, r)

    def _link_if(self, st: State, regno: int, src: Reg, cond: bool) -> Reg:
        """The kernel's assign_scalar_id_before_mov: when ``cond``, a scalar that is not
        a constant gets an id (in its register) so that the copy made next is linked."""
        if cond and src.type == SCALAR and not src.id and src.var_off.mask:
            src = src.clone()
            src.id = self.new_id()
            self.set_reg(st, regno, src)
        return src

    def ptr_alu(
        self, st: State, insn: Instruction, aop: int, is64: bool, dst: Reg, src: Reg, dstno: int
    ) -> Reg:
        """Pointer arithmetic (kernel ``adjust_ptr_min_max_vals``)."""
        opname = op.ALU_NAMES.get(aop, "?")
        # the scalar operand's value shapes the pointer
        if dst.type == SCALAR:
            self.precise(st, dstno)
        elif src.type == SCALAR and insn.opcode & op.X:
            self.precise(st, insn.src)
        if dst.is_pointer() and src.is_pointer():
            # any width: the kernel checks two pointers before it looks at the class
            if aop == op.SUB and self.priv:
                return Reg.unknown()
            raise self.fail(
                f"r{dstno}: {opname} of two pointers is not allowed.",
                f"R{dstno} pointer {_ALU_STRING.get(aop, opname)} pointer prohibited",
            )
        if not is64:
            if aop == op.SUB and self.priv:
                return Reg.unknown()
            raise self.fail(
                f"r{dstno}: 32-bit arithmetic on a pointer is not allowed.",
                f"R{dstno} 32-bit pointer arithmetic prohibited",
            )
        if src.is_pointer():
            if aop != op.ADD:
                if aop == op.SUB:
                    raise self.fail(
                        f"r{dstno}: subtracting a pointer from a scalar is not allowed.",
                        f"R{dstno} tried to subtract pointer from scalar",
                    )
                raise self.fail(
                    f"r{dstno}: {opname} with a pointer operand is not allowed.",
                    f"R{dstno} pointer arithmetic with {_ALU_STRING.get(aop, opname)} operator prohibited",
                )
            ptr, off = src, dst
        else:
            ptr, off = dst, src
        pname = ptr.type_name()
        if ptr.maybe_null:
            raise self.fail(
                f"r{dstno}: arithmetic on a {pname} pointer before its null check.",
                f"R{dstno} pointer arithmetic on {pname} prohibited, null-check it first",
            )
        if ptr.type == CONST_PTR_TO_MAP:
            if not (off.is_const() and off.value == 0 and aop == op.ADD):
                raise self.fail(
                    f"r{dstno}: arithmetic on a map pointer is not allowed.",
                    f"R{dstno} pointer arithmetic on map_ptr prohibited",
                )
            return ptr
        if ptr.type in (PTR_TO_PACKET_END, PTR_TO_FUNC, *SOCKET_TYPES) or (
            ptr.type == PTR_TO_MEM and ptr.rdonly and False
        ):
            raise self.fail(
                f"r{dstno}: arithmetic on a {pname} pointer is not allowed.",
                f"R{dstno} pointer arithmetic on {pname} prohibited",
            )
        if aop not in (op.ADD, op.SUB):
            if aop in (op.AND, op.OR, op.XOR):
                raise self.fail(
                    f"r{dstno}: bitwise {opname} on a pointer is not allowed.",
                    f"R{dstno} bitwise operator {_ALU_STRING[aop]} on pointer prohibited",
                )
            raise self.fail(
                f"r{dstno}: {opname} on a pointer is not allowed.",
                f"R{dstno} pointer arithmetic with {_ALU_STRING[aop]} operator prohibited",
            )
        known = off.is_const()
        self.sane_offset(dstno, off, pname)
        self.sane_offset(dstno, ptr, pname)
        # the kernel's Spectre v1 sanitation of register-operand add/sub (unprivileged)
        sanitize = self.unpriv and bool(insn.opcode & op.X) and aop in (op.ADD, op.SUB)
        if sanitize:
            offno = dstno if off is dst else insn.src
            ptrno = insn.src if off is dst else dstno
            alu_state, limit, to_left = self.sanitize_ptr(insn, aop, ptr, off, offno, ptrno)
        r = ptr.clone()
        if aop == op.ADD:
            if known:
                r.off = _s32_wrap(ptr.off + off.smin)
            else:
                scalar.alu(op.ADD, True, r, off)
                if r.type in PACKET_TYPES:
                    r.id = self.new_id()
                    r.range = 0
        else:
            if dst is off:
                raise self.fail(
                    f"r{dstno}: subtracting a pointer from a scalar is not allowed.",
                    f"R{dstno} tried to subtract pointer from scalar",
                )
            if ptr.type == PTR_TO_STACK:
                # for every loader: JITs may not cope with a frame pointer moved up
                raise self.fail(
                    f"r{dstno}: subtracting from a stack pointer is not allowed "
                    "(add a negative number instead).",
                    f"R{dstno} subtraction from stack pointer prohibited",
                )
            if known:
                r.off = _s32_wrap(ptr.off - off.smin)
            else:
                scalar.alu(op.SUB, True, r, off)
                if r.type in PACKET_TYPES:
                    r.id = self.new_id()
                    r.range = 0
        self.sane_offset(dstno, r, pname)
        if self.unpriv:
            self.sanitize_check_bounds(dstno, r)
        if sanitize:
            self.sanitize_commit(insn, aop, r, alu_state, limit, to_left)
        return r

    # ------------------------------------------------------- Spectre v1 sanitation
    _SANITIZE_ERR = "pointer arithmetic with it prohibited for !root"

    def _ptr_limit(self, insn: Instruction, aop: int, ptr: Reg, to_left: bool, ptrno: int) -> int:
        """How far the masked offset may move the pointer (``retrieve_ptr_limit``)."""
        if ptr.type == PTR_TO_STACK:
            mx = MAX_BPF_STACK + to_left
            limit = -(ptr.var_off.value + ptr.off) & M32
        elif ptr.type == PTR_TO_MAP_VALUE:
            mx = ptr.map.value_size
            limit = ((ptr.smin if to_left else ptr.umax) + ptr.off) & M32
        else:
            raise self.fail(
                f"r{ptrno}: adding a register to a {ptr.type_name()} pointer needs "
                "privileges (only stack and map value pointers can be sanitized).",
                f"R{ptrno} has pointer with unsupported alu operation, {self._SANITIZE_ERR}",
            )
        if limit >= mx:
            opname = "add" if aop == op.ADD else "sub"
            raise self.fail(
                f"r{insn.dst}: the pointer could be moved out of its object under "
                "speculation (not allowed without privileges).",
                f"R{insn.dst} tried to {opname} beyond pointer bounds, {self._SANITIZE_ERR}",
            )
        return limit

    def sanitize_ptr(
        self, insn: Instruction, aop: int, ptr: Reg, off: Reg, offno: int, ptrno: int
    ) -> tuple[int, int, bool]:
        """First half of the kernel's ``sanitize_ptr_alu`` (before the operation)."""
        off_is_imm = off.var_off.mask == 0
        off_is_neg = off.smin < 0
        if not off_is_imm and (off.smin < 0) != (off.smax < 0):
            raise self.fail(
                f"r{offno}: the offset may be negative or positive; without privileges "
                "pointer arithmetic needs an offset of known sign.",
                f"R{offno} has unknown scalar with mixed signed bounds, {self._SANITIZE_ERR}",
            )
        to_left = (aop == op.ADD and off_is_neg) or (aop == op.SUB and not off_is_neg)
        limit = self._ptr_limit(insn, aop, ptr, to_left, ptrno)
        alu_state = (_ALU_NEG_VALUE if off_is_neg else 0) | (_ALU_IMMEDIATE if off_is_imm else 0)
        alu_state |= _ALU_SANITIZE_SRC if ptrno == insn.dst else _ALU_SANITIZE_DST
        if not off_is_imm:
            # pruning compares scalars exactly from now on (the kernel's
            # explore_alu_limits), so every path reaches the masks below
            self.explore_alu_limits = True
        return alu_state, limit, to_left

    def sanitize_commit(
        self, insn: Instruction, aop: int, r: Reg, alu_state: int, limit: int, to_left: bool
    ) -> None:
        """Second half (after the operation): the masking window of this instruction
        must be the same on every path that reaches it."""
        after = self._ptr_limit(insn, aop, r, to_left, insn.dst)
        d = (limit - after) & M32
        d = d - (1 << 32) if d >= 1 << 31 else d
        self.alu_window(insn, aop, alu_state, abs(d))

    def alu_window(self, insn: Instruction, aop: int, alu_state: int, limit: int) -> None:
        """Record (or compare with) the ALU sanitation of instruction ``self.pc``."""
        seen = self.alu_aux.get(self.pc)
        if seen is None:
            self.alu_aux[self.pc] = (alu_state, limit)
        elif seen != (alu_state, limit):
            opname = "add" if aop == op.ADD else "sub"
            raise self.fail(
                f"r{insn.dst}: this {opname} mixes pointers and scalars (or different "
                "pointer ranges) on different paths; without privileges its speculation "
                "mask must be the same on every path.",
                f"R{insn.dst} tried to {opname} from different maps, paths or scalars, "
                f"{self._SANITIZE_ERR}",
            )

    def sanitize_check_bounds(self, dstno: int, r: Reg) -> None:
        """Unprivileged pointer arithmetic must stay inside the object
        (``sanitize_check_bounds``)."""
        if r.type == PTR_TO_STACK:
            if r.var_off.mask:
                raise self.fail(
                    f"r{dstno}: variable offsets on stack pointers need privileges.",
                    f"R{dstno} variable stack access prohibited for !root, "
                    f"var_off={tnum.fmt(r.var_off)} off={r.off}",
                )
            o = r.off + s64(r.var_off.value)
            if o < -MAX_BPF_STACK or o >= 0:
                raise self.fail(
                    f"r{dstno}: the stack pointer leaves the stack (not allowed "
                    "without privileges).",
                    f"R{dstno} stack pointer arithmetic goes out of range, "
                    f"prohibited for !root; off={o}",
                )
        elif r.type == PTR_TO_MAP_VALUE:
            if (
                r.off + r.smin < 0
                or r.umax >= BPF_MAX_VAR_OFF
                or r.off + r.umax + 1 > r.map.value_size
            ):
                raise self.fail(
                    f"r{dstno}: pointer arithmetic takes the map value pointer out "
                    "of range (not allowed without privileges).",
                    f"R{dstno} pointer arithmetic of map value goes out of range, "
                    "prohibited for !root",
                )

    def sane_offset(self, dstno: int, r: Reg, pname: str) -> None:
        """The kernel's limits on values in pointer arithmetic (``check_reg_sane_offset``)."""
        if r.var_off.mask == 0 and r.type == SCALAR:
            val = s64(r.var_off.value)
            if val >= BPF_MAX_VAR_OFF or val <= -BPF_MAX_VAR_OFF:
                raise self.fail(
                    f"r{dstno}: adding {val} takes the {pname} pointer far out of bounds.",
                    f"math between {pname} pointer and {val} is not allowed",
                )
        if r.off >= BPF_MAX_VAR_OFF or r.off <= -BPF_MAX_VAR_OFF:
            raise self.fail(
                f"r{dstno}: the {pname} pointer's offset {r.off} is out of bounds.",
                f"{pname} pointer offset {r.off} is not allowed",
            )
        if r.smin == -(1 << 63):
            raise self.fail(
                f"r{dstno}: the offset added to the {pname} pointer has no lower "
                "bound; bound it with a comparison first.",
                f"math between {pname} pointer and register with unbounded min "
                "value is not allowed",
            )
        if r.smin >= BPF_MAX_VAR_OFF or r.smin <= -BPF_MAX_VAR_OFF:
            raise self.fail(
                f"r{dstno}: the value {r.smin} takes the {pname} pointer out of bounds.",
                f"value {r.smin} makes {pname} pointer be out of bounds",
            )


def _s32_wrap(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def scalar_zext_unknown() -> Reg:
    """An unknown 32-bit value, zero-extended."""
    r = Reg.unknown()
    r.var_off = _tnew(Tnum, (0, M32))
    scalar.sync(r)
    return r
