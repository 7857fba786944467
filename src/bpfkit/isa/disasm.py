"""The disassembler: instructions as text, in the LLVM/kernel or the conformance dialect.

The ``llvm`` dialect prints what ``llvm-objdump-19 -d`` prints (hex immediates,
``goto +0x3``, ``r1 = *(u8 *)(r2 + 0x1)``), with three additions that llvm's text
cannot express and our assembler needs to get the same bytes back:

* BPF-to-BPF calls print ``call pc+0x3`` (llvm prints ``call 0x3``, like a helper call);
* kfunc calls print ``call kfunc(0x4d)`` (or ``call kfunc(0x4d, 0x2)`` with a BTF fd index);
* ``lddw`` with a pseudo source prints ``r1 = map_fd(0x5) ll``, ``map_value(fd, off)``,
  ``btf_id(id)``, ``func(+0x3)``, ``map_idx(i)``, ``map_idx_value(i, off)``;
* 32-bit atomics always print the alu32 (``w``) form of ``llvm-objdump --mcpu=v4``,
  and ``skb[r1 + 0x4]`` keeps the immediate that llvm drops.

The ``conformance`` dialect is the mnemonic-first syntax of the bpf_conformance vectors
(``mov %r0, 1``, ``ldxh %r8, [%r0+2]``, ``jgt %r1, 0x2, +3``, ``lock fetch add``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import opcodes as op
from .instruction import Instruction, check, slot_positions

__all__ = ["DIALECTS", "format_insn", "disassemble", "branch_target"]

DIALECTS = ("llvm", "conformance", "kernel")
_MASK64 = (1 << 64) - 1

ALU_SYMBOLS = {
    op.ADD: "+=",
    op.SUB: "-=",
    op.MUL: "*=",
    op.DIV: "/=",
    op.OR: "|=",
    op.AND: "&=",
    op.LSH: "<<=",
    op.RSH: ">>=",
    op.MOD: "%=",
    op.XOR: "^=",
    op.MOV: "=",
    op.ARSH: "s>>=",
}
SIGNED_ALU_SYMBOLS = {op.DIV: "s/=", op.MOD: "s%="}
JMP_SYMBOLS = {
    op.JEQ: "==",
    op.JGT: ">",
    op.JGE: ">=",
    op.JSET: "&",
    op.JNE: "!=",
    op.JSGT: "s>",
    op.JSGE: "s>=",
    op.JLT: "<",
    op.JLE: "<=",
    op.JSLT: "s<",
    op.JSLE: "s<=",
}
ATOMIC_SYMBOLS = {op.ATOMIC_ADD: "+=", op.ATOMIC_OR: "|=", op.ATOMIC_AND: "&=", op.ATOMIC_XOR: "^="}
_SIZE_BITS = {op.B: 8, op.H: 16, op.W: 32, op.DW: 64}
_SIZE_SUFFIX = {op.B: "b", op.H: "h", op.W: "w", op.DW: "dw"}


def _hex(v: int) -> str:
    """Signed hex the way llvm prints immediates (``0x5``, ``-0x1``)."""
    return f"-{-v:#x}" if v < 0 else f"{v:#x}"


def _shex(v: int) -> str:
    """Hex with an explicit sign, for relative targets (``+0x3``, ``-0x1``)."""
    return f"-{-v:#x}" if v < 0 else f"+{v:#x}"


def _dec(v: int) -> str:
    """Conformance-dialect number: decimal when short, hex otherwise."""
    if -0x10000 < v < 0x10000:
        return str(v)
    return _hex(v)


def _s64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def branch_target(insn: Instruction, pc: int) -> int | None:
    """The slot a jump, local call or ``func`` load at slot ``pc`` refers to, else ``None``."""
    if insn.ref is not None:
        return None
    if insn.is_jump:
        return pc + 1 + insn.jump_offset
    if insn.is_local_call:
        return pc + 1 + insn.imm
    if insn.is_lddw and insn.src == op.PSEUDO_FUNC:
        return pc + 1 + _s64(insn.imm)
    return None


class _Fmt:
    """Formats one instruction; holds the dialect and label context."""

    def __init__(self, dialect: str, pc: int | None, labels: Mapping[int, str] | None):
        self.llvm = dialect == "llvm"
        self.pc = pc
        self.labels = labels

    # ---- pieces -------------------------------------------------------------
    def num(self, v: int) -> str:
        return _hex(v) if self.llvm else _dec(v)

    def reg(self, n: int, w: bool = False) -> str:
        if self.llvm:
            return f"{'w' if w else 'r'}{n}"
        return f"%r{n}"

    def target(self, insn: Instruction, rel: int, call: bool = False) -> str:
        if insn.ref is not None:
            return insn.ref
        if self.labels and self.pc is not None:
            name = self.labels.get(self.pc + 1 + rel)
            if name is not None:
                return name
        if self.llvm:
            return ("pc" if call else "") + _shex(rel)
        return f"+{rel}" if rel >= 0 else str(rel)

    def mem(self, reg: int, off: int) -> str:
        if self.llvm:
            return f"r{reg} {'-' if off < 0 else '+'} {abs(off):#x}"
        if off == 0:
            return f"[%r{reg}]"
        return f"[%r{reg}{'-' if off < 0 else '+'}{abs(off)}]"

    def pseudo(self, insn: Instruction) -> str:
        name = op.LDDW_PSEUDOS[insn.src]
        imm = insn.imm & _MASK64
        lo, hi = imm & 0xFFFFFFFF, imm >> 32
        if insn.src == op.PSEUDO_FUNC:
            args = [self.target(insn, _s64(imm))]
        elif insn.src in (op.PSEUDO_MAP_VALUE, op.PSEUDO_MAP_IDX_VALUE) or hi:
            args = [self.num(lo), self.num(hi)]
        else:
            args = [self.num(lo)]
        return f"{name}({', '.join(args)})"

    # ---- llvm dialect -------------------------------------------------------
    def llvm_insn(self, insn: Instruction) -> str:
        cls, code = insn.cls, insn.opcode
        dst, src, off, imm = insn.dst, insn.src, insn.off, insn.imm
        if cls in (op.ALU, op.ALU64):
            w = cls == op.ALU
            d = self.reg(dst, w)
            aop = code & 0xF0
            if aop == op.END:
                name = "bswap" if cls == op.ALU64 else ("be" if code & op.X else "le")
                return f"r{dst} = {name}{imm} r{dst}"
            if aop == op.NEG:
                return f"{d} = -{d}"
            sym = SIGNED_ALU_SYMBOLS[aop] if off == 1 and aop != op.MOV else ALU_SYMBOLS[aop]
            if code & op.X:
                s = self.reg(src, w)
                if aop == op.MOV and off:
                    return f"{d} = (s{off}){s}"
                return f"{d} {sym} {s}"
            return f"{d} {sym} {_hex(imm)}"
        if cls in (op.JMP, op.JMP32):
            jop = code & 0xF0
            if jop == op.JA:
                if cls == op.JMP32:
                    return f"gotol {self.target(insn, imm)}"
                return f"goto {self.target(insn, off)}"
            if jop == op.EXIT:
                return "exit"
            if jop == op.CALL:
                if code & op.X:
                    return f"callx r{dst}"
                if src == op.PSEUDO_CALL:
                    return f"call {self.target(insn, imm, call=True)}"
                if src == op.PSEUDO_KFUNC_CALL:
                    extra = f", {_hex(off)}" if off else ""
                    return f"call kfunc({_hex(imm)}{extra})"
                return f"call {_hex(imm)}"
            w = cls == op.JMP32
            rhs = self.reg(src, w) if code & op.X else _hex(imm)
            return f"if {self.reg(dst, w)} {JMP_SYMBOLS[jop]} {rhs} goto {self.target(insn, off)}"
        size = code & 0x18
        mode = code & 0xE0
        bits = _SIZE_BITS[size]
        if cls == op.LDX:
            sign = "s" if mode == op.MEMSX else "u"
            return f"r{dst} = *({sign}{bits} *)({self.mem(src, off)})"
        if cls == op.ST:
            return f"*(u{bits} *)({self.mem(dst, off)}) = {_hex(imm)}"
        if cls == op.STX:
            if mode == op.MEM:
                return f"*(u{bits} *)({self.mem(dst, off)}) = r{src}"
            return self.llvm_atomic(insn, bits)
        # LD
        if code == op.LDDW:
            if src:
                return f"r{dst} = {self.pseudo(insn)} ll"
            return f"r{dst} = {_hex(_s64(imm))} ll"
        if mode == op.ABS:
            return f"r0 = *(u{bits} *)skb[{_hex(imm)}]"
        if imm:
            return f"r0 = *(u{bits} *)skb[r{src} {'-' if imm < 0 else '+'} {abs(imm):#x}]"
        return f"r0 = *(u{bits} *)skb[r{src}]"

    def llvm_atomic(self, insn: Instruction, bits: int) -> str:
        r = "w" if bits == 32 else "r"
        mem = self.mem(insn.dst, insn.off)
        s = f"{r}{insn.src}"
        aop = insn.imm
        if aop in ATOMIC_SYMBOLS:
            return f"lock *(u{bits} *)({mem}) {ATOMIC_SYMBOLS[aop]} {s}"
        if aop == op.XCHG:
            return f"{s} = xchg{'32' if bits == 32 else ''}_{bits}({mem}, {s})"
        if aop == op.CMPXCHG:
            return f"{r}0 = cmpxchg{'32' if bits == 32 else ''}_{bits}({mem}, {r}0, {s})"
        name = op.ATOMIC_NAMES[aop & ~op.FETCH]
        return f"{s} = atomic_fetch_{name}((u{bits} *)({mem}), {s})"

    # ---- conformance dialect -----------------------------------------------
    def conf_insn(self, insn: Instruction) -> str:
        cls, code = insn.cls, insn.opcode
        dst, src, off, imm = insn.dst, insn.src, insn.off, insn.imm
        if cls in (op.ALU, op.ALU64):
            sfx = "32" if cls == op.ALU else ""
            aop = code & 0xF0
            d = self.reg(dst)
            if aop == op.END:
                name = "bswap" if cls == op.ALU64 else ("be" if code & op.X else "le")
                return f"{name}{imm} {d}"
            if aop == op.NEG:
                return f"neg{sfx} {d}"
            if aop == op.MOV and code & op.X and off:
                return f"movsx{off}{'32' if cls == op.ALU else '64'} {d}, {self.reg(src)}"
            name = op.ALU_NAMES[aop]
            if off == 1:
                name = "s" + name
            rhs = self.reg(src) if code & op.X else self.num(imm)
            return f"{name}{sfx} {d}, {rhs}"
        if cls in (op.JMP, op.JMP32):
            jop = code & 0xF0
            if jop == op.JA:
                if cls == op.JMP32:
                    return f"ja32 {self.target(insn, imm)}"
                return f"ja {self.target(insn, off)}"
            if jop == op.EXIT:
                return "exit"
            if jop == op.CALL:
                if code & op.X:
                    return f"call %r{dst}"
                if src == op.PSEUDO_CALL:
                    return f"call local {self.target(insn, imm)}"
                if src == op.PSEUDO_KFUNC_CALL:
                    return f"call runtime {self.num(imm)}" + (f", {self.num(off)}" if off else "")
                return f"call {self.num(imm)}"
            sfx = "32" if cls == op.JMP32 else ""
            rhs = self.reg(src) if code & op.X else self.num(imm)
            return f"{op.JMP_NAMES[jop]}{sfx} %r{dst}, {rhs}, {self.target(insn, off)}"
        size = code & 0x18
        mode = code & 0xE0
        sz = _SIZE_SUFFIX[size]
        if cls == op.LDX:
            return f"ldx{'s' if mode == op.MEMSX else ''}{sz} %r{dst}, {self.mem(src, off)}"
        if cls == op.ST:
            return f"st{sz} {self.mem(dst, off)}, {self.num(imm)}"
        if cls == op.STX:
            if mode == op.MEM:
                return f"stx{sz} {self.mem(dst, off)}, %r{src}"
            sfx = "32" if size == op.W else ""
            aop = imm
            if aop == op.XCHG:
                name = "xchg"
            elif aop == op.CMPXCHG:
                name = "cmpxchg"
            else:
                name = ("fetch " if aop & op.FETCH else "") + op.ATOMIC_NAMES[aop & ~op.FETCH]
            return f"lock {name}{sfx} {self.mem(dst, off)}, %r{src}"
        if code == op.LDDW:
            if src:
                return f"lddw %r{dst}, {self.pseudo(insn)}"
            return f"lddw %r{dst}, {imm & _MASK64:#x}"
        if mode == op.ABS:
            return f"ldabs{sz} {self.num(imm)}"
        return f"ldind{sz} %r{src}, {self.num(imm)}"


_LDST = {op.B: "u8", op.H: "u16", op.W: "u32", op.DW: "u64"}
_KERNEL_ALU = {**ALU_SYMBOLS, op.NEG: "neg", op.END: "endian"}


def _koff(off: int) -> str:
    """The kernel's ``%+d``."""
    return f"{off:+d}"


def kernel_insn(insn: Instruction) -> str:
    """One instruction the way the kernel's verifier log prints it (``kernel/bpf/disasm.c``,
    without the ``(opcode)`` prefix): decimal ALU immediates, ``goto pc+N``, helper names."""
    cls, code = insn.cls, insn.opcode
    dst, src, off, imm = insn.dst, insn.src, insn.off, insn.imm
    if cls in (op.ALU, op.ALU64):
        r = "w" if cls == op.ALU else "r"
        aop = code & 0xF0
        if aop == op.END:
            if cls == op.ALU64:
                return f"r{dst} = bswap{imm} r{dst}"
            return f"r{dst} = {'be' if code & op.X else 'le'}{imm} r{dst}"
        if aop == op.NEG:
            return f"{r}{dst} = -{r}{dst}"
        sym = (
            SIGNED_ALU_SYMBOLS[aop] if off == 1 and aop in SIGNED_ALU_SYMBOLS else _KERNEL_ALU[aop]
        )
        if code & op.X:
            sx = f"(s{off})" if aop == op.MOV and off else ""
            return f"{r}{dst} {sym} {sx}{r}{src}"
        return f"{r}{dst} {sym} {imm}"
    if cls in (op.JMP, op.JMP32):
        jop = code & 0xF0
        if jop == op.CALL:
            if src == op.PSEUDO_CALL:
                return f"call pc{imm:+d}"
            if code & op.X:
                return f"callx r{dst}"
            from ..uapi.enums import HELPER_NAMES

            name = HELPER_NAMES.get(imm) if src == 0 else None
            return f"call {'bpf_' + name if name else 'unknown'}#{imm}"
        if jop == op.JA:
            return f"gotol pc{imm:+d}" if cls == op.JMP32 else f"goto pc{off:+d}"
        if jop == op.EXIT:
            return "exit"
        r = "w" if cls == op.JMP32 else "r"
        rhs = f"{r}{src}" if code & op.X else f"{imm & 0xFFFFFFFF:#x}"
        return f"if {r}{dst} {JMP_SYMBOLS[jop]} {rhs} goto pc{off:+d}"
    size = code & 0x18
    mode = code & 0xE0
    t = _LDST[size]
    if cls == op.LDX:
        t = "s" + t[1:] if mode == op.MEMSX else t
        return f"r{dst} = *({t} *)(r{src} {_koff(off)})"
    if cls == op.ST:
        return f"*({t} *)(r{dst} {_koff(off)}) = {imm}"
    if cls == op.STX:
        mem = f"({t} *)(r{dst} {_koff(off)})"
        if mode == op.MEM:
            return f"*{mem} = r{src}"
        wide = "64" if size == op.DW else ""
        if imm in ATOMIC_SYMBOLS:
            return f"lock *{mem} {ATOMIC_SYMBOLS[imm]} r{src}"
        if imm == op.XCHG:
            return f"r{src} = atomic{wide}_xchg({mem}, r{src})"
        if imm == op.CMPXCHG:
            return f"r0 = atomic{wide}_cmpxchg({mem}, r0, r{src})"
        return f"r{src} = atomic{wide}_fetch_{op.ATOMIC_NAMES[imm & ~op.FETCH]}({mem}, r{src})"
    if code == op.LDDW:
        if src == op.PSEUDO_FUNC:
            return f"r{dst} = func pc{_s64(imm):+d}"
        return f"r{dst} = {imm & _MASK64:#x}"
    if mode == op.ABS:
        return f"r0 = *({t} *)skb[{imm}]"
    return f"r0 = *({t} *)skb[r{src} + {imm}]"


def _invalid(insn: Instruction, reason: str) -> str:
    return (
        f"<invalid: {reason}; op={insn.opcode:#04x} dst={insn.dst} src={insn.src} "
        f"off={insn.off} imm={insn.imm:#x}>"
    )


def format_insn(
    insn: Instruction,
    dialect: str = "llvm",
    *,
    pc: int | None = None,
    labels: Mapping[int, str] | None = None,
) -> str:
    """One instruction as assembler text; ``labels`` (slot → name) names jump targets.

    ``pc`` is the slot index of ``insn``; without it (or without a label for the
    target) jumps print relative offsets. An invalid encoding prints as ``<invalid: ...>``.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r} (expected one of {', '.join(DIALECTS)})")
    reason = check(insn)
    if reason:
        return _invalid(insn, reason)
    if dialect == "kernel":
        return kernel_insn(insn)
    f = _Fmt(dialect, pc, labels)
    return f.llvm_insn(insn) if f.llvm else f.conf_insn(insn)


def _helper_comment(insn: Instruction) -> str:
    if not insn.is_helper_call:
        return ""
    from ..uapi.enums import HELPER_NAMES

    name = HELPER_NAMES.get(insn.imm)
    return f" # bpf_{name}" if name and insn.imm else ""


def disassemble(
    insns: Iterable[Instruction],
    dialect: str = "llvm",
    *,
    labels: bool = True,
    helper_names: bool = False,
) -> str:
    """A listing that :func:`bpfkit.isa.asm.assemble_text` turns back into the same bytes.

    With ``labels`` every in-range jump/call/func target gets a ``L<slot>:`` line; with
    ``helper_names`` helper calls carry a ``# bpf_<name>`` comment. The ``kernel`` dialect
    is for reading, not assembling: ``<slot>: (<opcode>) <text>`` lines as the kernel's
    verifier log prints them.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r} (expected one of {', '.join(DIALECTS)})")
    insns = list(insns)
    pcs = slot_positions(insns)
    if dialect == "kernel":
        return "".join(
            f"{pc}: ({insn.opcode:02x}) {format_insn(insn, 'kernel')}\n"
            for insn, pc in zip(insns, pcs, strict=True)
        )
    total = pcs[-1] + insns[-1].slots if insns else 0
    names: dict[int, str] = {}
    if labels:
        starts = set(pcs)
        starts.add(total)
        for insn, pc in zip(insns, pcs, strict=True):
            if check(insn):
                continue
            t = branch_target(insn, pc)
            if t is not None and t in starts:
                names[t] = f"L{t}"
    lines: list[str] = []
    for insn, pc in zip(insns, pcs, strict=True):
        if pc in names:
            lines.append(f"{names[pc]}:")
        text = format_insn(insn, dialect, pc=pc, labels=names)
        if helper_names:
            text += _helper_comment(insn)
        lines.append(text)
    if total in names:
        lines.append(f"{names[total]}:")
    return "".join(line + "\n" for line in lines)
