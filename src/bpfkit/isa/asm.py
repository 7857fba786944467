"""The text assembler: the conformance dialect and the LLVM/kernel dialect.

``assemble_text(text, dialect)`` turns a listing into instructions. Both dialects share
labels (``name:``), comments (``#`` at the start of a line or after a blank, ``;``,
``//``), decimal/hex/negative numbers, and the pseudo ``lddw`` forms printed by
:mod:`bpfkit.isa.disasm` (``map_fd(5)``, ``map_value(5, 16)``, ``btf_id(7)``,
``func(+3)``/``func(label)``, ``map_idx(0)``, ``map_idx_value(0, 8)``).

The LLVM dialect also reads what ``llvm-objdump -d[r]`` and the kernel verifier log
print: ``12:`` slot prefixes, raw instruction bytes, ``(b7)`` opcode prefixes, ``<sym>``
target annotations, ``0000000000000000 <prog>:`` symbol lines (as labels), and
``R_BPF_64_32`` relocation lines, which mark the preceding ``call`` as a BPF-to-BPF call.

Every failure is an :class:`~bpfkit.errors.AsmError` with a 1-based line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import AsmError
from . import opcodes as op
from .instruction import Instruction, check

__all__ = ["DIALECTS", "assemble_text", "guess_dialect"]

DIALECTS = ("conformance", "llvm", "auto")
_MASK64 = (1 << 64) - 1

# ---------------------------------------------------------------------------------------
# Tokens

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\f\v\r]+)
    | (?P<num>[0-9][0-9A-Za-z_]*)
    | (?P<sop>s(?:>>=|/=|%=|>=|<=|>|<))
    | (?P<id>[A-Za-z_.$][A-Za-z0-9_.$]*)
    | (?P<op><<=|>>=|\+=|-=|\*=|/=|\|=|&=|%=|\^=|==|!=|>=|<=|<<|>>|[-+*/%&|^<>=()\[\],:#!~{}])
    """,
    re.X,
)
_NUM_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_REG_RE = re.compile(r"([rw])(10|[0-9])")
_MAX_NUM_LEN = 40


class _Tok(NamedTuple):
    kind: str  # "num", "id", "op", "end"
    text: str
    col: int  # 1-based column in the source line


def _tokenize(line: str, start: int, lineno: int) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, n = start, len(line)
    while pos < n:
        m = _TOKEN_RE.match(line, pos)
        if m is None:
            ch = line[pos]
            raise AsmError(f"unexpected character {ch!r}", lineno, pos + 1, ch)
        kind = m.lastgroup or "op"
        if kind != "ws":
            toks.append(_Tok("op" if kind == "sop" else kind, m.group(), pos + 1))
        pos = m.end()
    toks.append(_Tok("end", "", n + 1))
    return toks


# ---------------------------------------------------------------------------------------
# Parsed items


@dataclass
class _Item:
    """One parsed instruction, possibly waiting for a label to be resolved."""

    insn: Instruction
    line: int
    col: int
    text: str
    # How a label target is stored: "off" (16-bit jump), "imm" (gotol, local call),
    # "lddw" (func load), "call?" (a name: a label if defined, else a helper name).
    field: str | None = None
    label: str | None = None
    label_col: int = 0


class _Target(NamedTuple):
    rel: int | None
    label: str | None
    tok: _Tok


class _Mem(NamedTuple):
    reg: int
    off: int


def _fit32(v: int) -> int | None:
    """A 32-bit field value (signed) for ``v``, or ``None`` when it does not fit."""
    if -(1 << 31) <= v < (1 << 32):
        return v - (1 << 32) if v >= (1 << 31) else v
    return None


# ---------------------------------------------------------------------------------------
# The per-line cursor


class _Line:
    """Token cursor over one source line, with error helpers."""

    def __init__(self, toks: list[_Tok], lineno: int, source: str):
        self.toks = toks
        self.i = 0
        self.lineno = lineno
        self.source = source

    # ---- basic access --------------------------------------------------------------
    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "end":
            self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok.kind in ("op", "id") and tok.text in texts

    def accept(self, text: str) -> _Tok | None:
        if self.at(text):
            return self.next()
        return None

    def error(self, msg: str, tok: _Tok | None = None) -> AsmError:
        tok = tok if tok is not None else self.peek()
        text = tok.text if tok.kind != "end" else self.source.strip()
        return AsmError(msg, self.lineno, tok.col, text)

    def _what(self, tok: _Tok) -> str:
        return "end of line" if tok.kind == "end" else repr(tok.text)

    def expect(self, text: str) -> _Tok:
        tok = self.peek()
        if tok.kind in ("op", "id") and tok.text == text:
            return self.next()
        raise self.error(f"expected '{text}', got {self._what(tok)}", tok)

    def end(self) -> None:
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"unexpected {tok.text!r} after the instruction", tok)

    # ---- operands ------------------------------------------------------------------
    def is_reg(self, k: int = 0) -> bool:
        tok = self.peek(k)
        if tok.kind == "op" and tok.text == "%":
            tok = self.peek(k + 1)
        return tok.kind == "id" and _REG_RE.fullmatch(tok.text) is not None

    def reg(self, kinds: str = "rw") -> tuple[str, int]:
        """A register (``r1``, ``w1`` or ``%r1``) as (kind, number)."""
        tok = self.peek()
        if tok.kind == "op" and tok.text == "%":
            self.next()
            tok = self.peek()
        if tok.kind == "id":
            m = _REG_RE.fullmatch(tok.text)
            if m is not None:
                if m.group(1) not in kinds:
                    want = (
                        "a 64-bit register (r0-r10)"
                        if kinds == "r"
                        else ("a 32-bit register (w0-w10)")
                    )
                    raise self.error(f"expected {want}, got {tok.text!r}", tok)
                self.next()
                return m.group(1), int(m.group(2))
            if re.fullmatch(r"[rw][0-9]+", tok.text):
                raise self.error(f"expected register, got {tok.text!r} (r0-r10 exist)", tok)
        raise self.error(f"expected register, got {self._what(tok)}", tok)

    def is_num(self) -> bool:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("+", "-"):
            tok = self.peek(1)
        return tok.kind == "num"

    def number(self) -> tuple[int, str, _Tok]:
        """An integer with an optional sign: (value, its text, a token spanning both)."""
        first = self.peek()
        sign = 1
        if first.kind == "op" and first.text in ("+", "-"):
            self.next()
            sign = -1 if first.text == "-" else 1
        tok = self.peek()
        if tok.kind != "num":
            raise self.error(f"expected a number, got {self._what(tok)}", tok)
        self.next()
        if len(tok.text) > _MAX_NUM_LEN:
            raise self.error(f"number {tok.text[:20]}... is too long", tok)
        if not _NUM_RE.fullmatch(tok.text):
            raise self.error(f"invalid number {tok.text!r}", tok)
        value = int(tok.text, 16) if tok.text[:2].lower() == "0x" else int(tok.text)
        text = ("-" if sign < 0 else "") + tok.text
        return sign * value, text, _Tok("num", text, first.col)

    def imm32(self) -> int:
        value, text, tok = self.number()
        v = _fit32(value)
        if v is None:
            raise self.error(f"immediate {text} does not fit in 32 bits", tok)
        return v

    def off16(self, value: int, text: str, tok: _Tok) -> int:
        if not -0x8000 <= value <= 0x7FFF:
            raise self.error(f"offset {text} does not fit in 16 bits", tok)
        return value

    def signed_offset(self) -> int:
        """``+ N`` / ``- N`` / nothing, as a 16-bit memory offset."""
        if self.at("+", "-"):
            value, text, tok = self.number()
            return self.off16(value, text, tok)
        return 0

    def label_name(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "id":
            raise self.error(f"expected a label, got {self._what(tok)}", tok)
        return self.next()


# ---------------------------------------------------------------------------------------
# Shared pieces of both dialects

_PSEUDO_NAMES = {name: src for src, name in op.LDDW_PSEUDOS.items() if src}
_ALU_BY_NAME = {name: aop for aop, name in op.ALU_NAMES.items() if aop not in (op.NEG, op.END)}
_JMP_BY_NAME = {name: jop for jop, name in op.JMP_NAMES.items() if jop in op.COND_JUMPS}
_SIZE_BY_SUFFIX = {"b": op.B, "h": op.H, "w": op.W, "dw": op.DW}
_SIZE_BY_BITS = {8: op.B, 16: op.H, 32: op.W, 64: op.DW}


def _pseudo_args(cur: _Line, name_tok: _Tok, src: int) -> tuple[int, str | None, int]:
    """Parse ``(args)`` of a pseudo ``lddw``; returns (imm, label, label column)."""
    cur.expect("(")
    if src == op.PSEUDO_FUNC:
        if cur.at("pc") and cur.peek(1).text in ("+", "-"):
            cur.next()
        elif cur.peek().kind == "id":
            tok = cur.next()
            cur.expect(")")
            return 0, tok.text, tok.col
        value, text, tok = cur.number()
        if not -(1 << 63) <= value < (1 << 64):
            raise cur.error(f"immediate {text} does not fit in 64 bits", tok)
        cur.expect(")")
        return value & _MASK64, None, 0
    words = []
    while True:
        value, text, tok = cur.number()
        v = _fit32(value)
        if v is None:
            raise cur.error(f"argument {text} does not fit in 32 bits", tok)
        words.append(v & 0xFFFFFFFF)
        if cur.accept(",") is None:
            break
        if len(words) == 2:
            raise cur.error("too many arguments", cur.peek())
    cur.expect(")")
    two = src in (op.PSEUDO_MAP_VALUE, op.PSEUDO_MAP_IDX_VALUE)
    if two and len(words) != 2:
        raise cur.error(f"{name_tok.text}() takes two arguments (index, offset)", name_tok)
    hi = words[1] if len(words) == 2 else 0
    return words[0] | (hi << 32), None, 0


def _lddw_item(cur: _Line, dst: int, first: _Tok) -> _Item:
    """The value part of an ``lddw``: a 64-bit number or a pseudo form."""
    tok = cur.peek()
    if tok.kind == "id" and tok.text in _PSEUDO_NAMES:
        cur.next()
        src = _PSEUDO_NAMES[tok.text]
        imm, label, lcol = _pseudo_args(cur, tok, src)
        insn = Instruction(op.LDDW, dst, src, 0, imm)
        return _Item(
            insn, cur.lineno, first.col, first.text, "lddw" if label else None, label, lcol
        )
    value, text, ntok = cur.number()
    if not -(1 << 63) <= value < (1 << 64):
        raise cur.error(f"immediate {text} does not fit in 64 bits", ntok)
    return _Item(
        Instruction(op.LDDW, dst, 0, 0, value & _MASK64), cur.lineno, first.col, first.text
    )


# ---------------------------------------------------------------------------------------
# Conformance dialect: ``mnemonic operands``


def _conf_target(cur: _Line) -> _Target:
    tok = cur.peek()
    if cur.is_num():
        value, text, ntok = cur.number()
        return _Target(value, None, ntok)
    if tok.kind == "id":
        cur.next()
        return _Target(None, tok.text, tok)
    raise cur.error(f"expected a jump target (+N, -N or a label), got {cur._what(tok)}", tok)


def _conf_mem(cur: _Line) -> _Mem:
    cur.expect("[")
    _, reg = cur.reg("r")
    off = cur.signed_offset()
    cur.expect("]")
    return _Mem(reg, off)


def _conf_rhs(cur: _Line) -> tuple[bool, int]:
    """A register or a 32-bit immediate: (is_register, value)."""
    if cur.is_reg():
        return True, cur.reg("r")[1]
    if cur.is_num():
        return False, cur.imm32()
    raise cur.error(f"expected register or immediate, got {cur._what(cur.peek())}")


def _with_target(
    insn: Instruction,
    tgt: _Target,
    field: str,
    cur: _Line,
    first: _Tok,
) -> _Item:
    """An item for a branch whose target is relative (stored now) or a label (later)."""
    if tgt.label is not None:
        return _Item(insn, cur.lineno, first.col, first.text, field, tgt.label, tgt.tok.col)
    rel = tgt.rel if tgt.rel is not None else 0
    if field == "off":
        if not -0x8000 <= rel <= 0x7FFF:
            raise cur.error(f"jump offset {rel} does not fit in 16 bits", tgt.tok)
        insn = insn.with_(off=rel)
    elif field == "lddw":
        insn = insn.with_(imm=rel & _MASK64)
    else:
        if _fit32(rel) is None or rel >= (1 << 31):
            raise cur.error(f"jump offset {rel} does not fit in 32 bits", tgt.tok)
        insn = insn.with_(imm=rel)
    return _Item(insn, cur.lineno, first.col, first.text)


def _split_suffix(name: str) -> tuple[str, int | None]:
    """``add32`` → ("add", ALU); ``add``/``add64`` → ("add", ALU64)."""
    if name.endswith("32"):
        return name[:-2], 32
    if name.endswith("64"):
        return name[:-2], 64
    return name, None


_MOVSX = {
    "movsx864": (op.ALU64, 8),
    "movsx1664": (op.ALU64, 16),
    "movsx3264": (op.ALU64, 32),
    "movsx832": (op.ALU, 8),
    "movsx1632": (op.ALU, 16),
}


def _parse_conformance(cur: _Line) -> _Item:
    first = cur.peek()
    if first.kind != "id":
        raise cur.error(f"expected a mnemonic, got {cur._what(first)}", first)
    cur.next()
    m = first.text.lower()
    ln = cur.lineno

    def item(insn: Instruction) -> _Item:
        return _Item(insn, ln, first.col, first.text)

    if m == "exit":
        return item(Instruction(op.EXIT_OP))
    if m == "lddw":
        _, dst = cur.reg("r")
        cur.expect(",")
        return _lddw_item(cur, dst, first)
    if m == "call":
        return _conf_call(cur, first)
    if m == "lock":
        return _conf_lock(cur, first)
    if m in ("ja", "ja64", "ja32", "jal", "gotol"):
        tgt = _conf_target(cur)
        if m in ("ja", "ja64"):
            return _with_target(Instruction(op.JMP | op.JA), tgt, "off", cur, first)
        return _with_target(Instruction(op.JMP32 | op.JA), tgt, "imm", cur, first)
    if m in _MOVSX:
        cls, bits = _MOVSX[m]
        _, dst = cur.reg("r")
        cur.expect(",")
        _, src = cur.reg("r")
        return item(Instruction(cls | op.MOV | op.X, dst, src, bits))
    mm = re.fullmatch(r"(be|le|bswap|swap)(16|32|64)", m)
    if mm:
        _, dst = cur.reg("r")
        bits = int(mm.group(2))
        if mm.group(1) in ("bswap", "swap"):
            return item(Instruction(op.ALU64 | op.END | op.TO_LE, dst, 0, 0, bits))
        direction = op.TO_BE if mm.group(1) == "be" else op.TO_LE
        return item(Instruction(op.ALU | op.END | direction, dst, 0, 0, bits))
    mm = re.fullmatch(r"ldx(s?)(b|h|w|dw)", m)
    if mm:
        _, dst = cur.reg("r")
        cur.expect(",")
        mem = _conf_mem(cur)
        mode = op.MEMSX if mm.group(1) else op.MEM
        size = _SIZE_BY_SUFFIX[mm.group(2)]
        if mode == op.MEMSX and size == op.DW:
            raise cur.error(f"unknown mnemonic {first.text!r}", first)
        return item(Instruction(op.LDX | mode | size, dst, mem.reg, mem.off))
    mm = re.fullmatch(r"st(x?)(b|h|w|dw)", m)
    if mm:
        mem = _conf_mem(cur)
        cur.expect(",")
        size = _SIZE_BY_SUFFIX[mm.group(2)]
        if mm.group(1):
            _, src = cur.reg("r")
            return item(Instruction(op.STX | op.MEM | size, mem.reg, src, mem.off))
        return item(Instruction(op.ST | op.MEM | size, mem.reg, 0, mem.off, cur.imm32()))
    mm = re.fullmatch(r"ld(abs|ind)(b|h|w)", m)
    if mm:
        size = _SIZE_BY_SUFFIX[mm.group(2)]
        if mm.group(1) == "abs":
            return item(Instruction(op.LD | op.ABS | size, 0, 0, 0, cur.imm32()))
        _, src = cur.reg("r")
        cur.expect(",")
        return item(Instruction(op.LD | op.IND | size, 0, src, 0, cur.imm32()))
    base, width = _split_suffix(m)
    if base == "neg":
        _, dst = cur.reg("r")
        return item(Instruction((op.ALU if width == 32 else op.ALU64) | op.NEG, dst))
    signed = base in ("sdiv", "smod")
    if base in _ALU_BY_NAME or signed:
        aop = _ALU_BY_NAME[base[1:] if signed else base]
        cls = op.ALU if width == 32 else op.ALU64
        _, dst = cur.reg("r")
        cur.expect(",")
        is_reg, val = _conf_rhs(cur)
        off = 1 if signed else 0
        if is_reg:
            return item(Instruction(cls | aop | op.X, dst, val, off))
        return item(Instruction(cls | aop | op.K, dst, 0, off, val))
    if base in _JMP_BY_NAME:
        cls = op.JMP32 if width == 32 else op.JMP
        jop = _JMP_BY_NAME[base]
        _, dst = cur.reg("r")
        cur.expect(",")
        is_reg, val = _conf_rhs(cur)
        cur.expect(",")
        tgt = _conf_target(cur)
        if is_reg:
            insn = Instruction(cls | jop | op.X, dst, val)
        else:
            insn = Instruction(cls | jop | op.K, dst, 0, 0, val)
        return _with_target(insn, tgt, "off", cur, first)
    raise cur.error(f"unknown mnemonic {first.text!r}", first)


def _conf_call(cur: _Line, first: _Tok) -> _Item:
    ln = cur.lineno
    if cur.is_reg():
        _, reg = cur.reg("r")
        return _Item(Instruction(op.CALLX_OP, reg), ln, first.col, first.text)
    if cur.accept("local") is not None:
        tgt = _conf_target(cur)
        return _with_target(Instruction(op.CALL_OP, 0, op.PSEUDO_CALL), tgt, "imm", cur, first)
    if cur.accept("runtime") is not None:
        return _kfunc_args(cur, first, parens=False)
    return _call_common(cur, first)


def _kfunc_args(cur: _Line, first: _Tok, parens: bool) -> _Item:
    """``N`` or ``N, fd_index`` (optionally in parentheses) of a kfunc call."""
    if parens:
        cur.expect("(")
    imm = cur.imm32()
    off = 0
    if cur.accept(",") is not None:
        value, text, tok = cur.number()
        off = cur.off16(value, text, tok)
    if parens:
        cur.expect(")")
    return _Item(
        Instruction(op.CALL_OP, 0, op.PSEUDO_KFUNC_CALL, off, imm),
        cur.lineno,
        first.col,
        first.text,
    )


def _call_common(cur: _Line, first: _Tok) -> _Item:
    """``call N`` (helper), ``call name#N`` (kernel log), ``call name`` (label or helper)."""
    ln = cur.lineno
    if cur.is_num():
        return _Item(Instruction(op.CALL_OP, imm=cur.imm32()), ln, first.col, first.text)
    tok = cur.peek()
    if tok.kind == "id":
        cur.next()
        if cur.accept("#") is not None:
            return _Item(Instruction(op.CALL_OP, imm=cur.imm32()), ln, first.col, first.text)
        return _Item(
            Instruction(op.CALL_OP, 0, op.PSEUDO_CALL),
            ln,
            first.col,
            first.text,
            "call?",
            tok.text,
            tok.col,
        )
    raise cur.error(f"expected a helper id, a label or a register, got {cur._what(tok)}", tok)


_LOCK_OPS = {
    "add": op.ATOMIC_ADD,
    "or": op.ATOMIC_OR,
    "and": op.ATOMIC_AND,
    "xor": op.ATOMIC_XOR,
    "xchg": op.XCHG,
    "cmpxchg": op.CMPXCHG,
}


def _conf_lock(cur: _Line, first: _Tok) -> _Item:
    fetch = cur.accept("fetch") is not None
    tok = cur.peek()
    if tok.kind != "id":
        raise cur.error(f"expected an atomic operation, got {cur._what(tok)}", tok)
    cur.next()
    base, width = _split_suffix(tok.text.lower())
    aop = _LOCK_OPS.get(base)
    if aop is None or (fetch and aop in (op.XCHG, op.CMPXCHG)):
        name = ("fetch " if fetch else "") + tok.text
        raise cur.error(f"unknown atomic operation {name!r}", tok)
    if fetch:
        aop |= op.FETCH
    mem = _conf_mem(cur)
    cur.expect(",")
    _, src = cur.reg("r")
    size = op.W if width == 32 else op.DW
    return _Item(
        Instruction(op.STX | op.ATOMIC | size, mem.reg, src, mem.off, aop),
        cur.lineno,
        first.col,
        first.text,
    )


# ---------------------------------------------------------------------------------------
# LLVM / kernel dialect: ``r0 = 1``, ``if r1 > 2 goto +3``, ``*(u32 *)(r10 - 4) = r1``

_LLVM_ALU = {
    "+=": op.ADD,
    "-=": op.SUB,
    "*=": op.MUL,
    "/=": op.DIV,
    "|=": op.OR,
    "&=": op.AND,
    "<<=": op.LSH,
    ">>=": op.RSH,
    "%=": op.MOD,
    "^=": op.XOR,
    "s>>=": op.ARSH,
    "s/=": op.DIV,
    "s%=": op.MOD,
}
_LLVM_JMP = {
    "==": op.JEQ,
    ">": op.JGT,
    ">=": op.JGE,
    "&": op.JSET,
    "!=": op.JNE,
    "s>": op.JSGT,
    "s>=": op.JSGE,
    "<": op.JLT,
    "<=": op.JLE,
    "s<": op.JSLT,
    "s<=": op.JSLE,
}
_LLVM_LOCK = {"+=": op.ATOMIC_ADD, "|=": op.ATOMIC_OR, "&=": op.ATOMIC_AND, "^=": op.ATOMIC_XOR}
_TYPED_ATOMIC_RE = re.compile(r"atomic(64)?_(?:fetch_(add|or|and|xor)|(xchg|cmpxchg))")
_UNTYPED_ATOMIC = {
    "xchg_64": ("xchg", op.DW),
    "xchg32_32": ("xchg", op.W),
    "cmpxchg_64": ("cmpxchg", op.DW),
    "cmpxchg32_32": ("cmpxchg", op.W),
}
_STATEMENT_WORDS = ("exit", "goto", "gotol", "call", "callx", "if", "lock")


def _llvm_target(cur: _Line, call: bool = False) -> _Target:
    """``+0x3``, ``-1``, ``pc+3``, or a label name."""
    tok = cur.peek()
    if tok.kind == "id" and tok.text == "pc" and cur.peek(1).text in ("+", "-"):
        cur.next()
        value, text, ntok = cur.number()
        return _Target(value, None, ntok)
    if cur.is_num():
        value, text, ntok = cur.number()
        return _Target(value, None, ntok)
    if tok.kind == "id" and not call:
        cur.next()
        return _Target(None, tok.text, tok)
    raise cur.error(f"expected a jump target (+N, -N or a label), got {cur._what(tok)}", tok)


def _size_cast(cur: _Line, signed_ok: bool = False) -> tuple[int, bool, _Tok]:
    """``(u32 *)`` → (size, signed, type token)."""
    cur.expect("(")
    tok = cur.peek()
    mm = re.fullmatch(r"([us])(8|16|32|64)", tok.text) if tok.kind == "id" else None
    if mm is None or (mm.group(1) == "s" and (not signed_ok or mm.group(2) == "64")):
        raise cur.error(f"expected a size type (u8, u16, u32, u64), got {cur._what(tok)}", tok)
    cur.next()
    cur.expect("*")
    cur.expect(")")
    return _SIZE_BY_BITS[int(mm.group(2))], mm.group(1) == "s", tok


def _llvm_mem(cur: _Line) -> _Mem:
    """``(r10 - 0x8)`` or kernel-style ``(r10 -8)``."""
    cur.expect("(")
    _, reg = cur.reg("r")
    off = cur.signed_offset()
    cur.expect(")")
    return _Mem(reg, off)


def _value_reg(cur: _Line, size: int) -> int:
    """A register holding a stored/loaded value: ``w`` is allowed below 64 bits."""
    return cur.reg("r" if size == op.DW else "rw")[1]


def _parse_llvm(cur: _Line) -> _Item:
    first = cur.peek()
    ln = cur.lineno

    def item(insn: Instruction) -> _Item:
        return _Item(insn, ln, first.col, first.text)

    if first.kind == "id" and first.text in _STATEMENT_WORDS:
        cur.next()
        w = first.text
        if w == "exit":
            return item(Instruction(op.EXIT_OP))
        if w == "goto":
            return _with_target(Instruction(op.JMP | op.JA), _llvm_target(cur), "off", cur, first)
        if w == "gotol":
            return _with_target(Instruction(op.JMP32 | op.JA), _llvm_target(cur), "imm", cur, first)
        if w == "callx":
            return item(Instruction(op.CALLX_OP, cur.reg("r")[1]))
        if w == "call":
            return _llvm_call(cur, first)
        if w == "if":
            return _llvm_if(cur, first)
        # lock *(u64 *)(r10 - 8) += r1
        cur.expect("*")
        size, _, stok = _size_cast(cur)
        if size not in (op.W, op.DW):
            raise cur.error("atomic operations need u32 or u64", stok)
        mem = _llvm_mem(cur)
        optok = cur.next()
        if optok.text not in _LLVM_LOCK:
            raise cur.error(f"expected +=, |=, &= or ^=, got {cur._what(optok)}", optok)
        src = _value_reg(cur, size)
        return item(
            Instruction(op.STX | op.ATOMIC | size, mem.reg, src, mem.off, _LLVM_LOCK[optok.text])
        )
    if first.kind == "op" and first.text == "*":
        # *(u32 *)(r10 - 4) = r1 | imm
        cur.next()
        size, _, _ = _size_cast(cur)
        mem = _llvm_mem(cur)
        cur.expect("=")
        if cur.is_reg():
            src = _value_reg(cur, size)
            return item(Instruction(op.STX | op.MEM | size, mem.reg, src, mem.off))
        if cur.is_num():
            return item(Instruction(op.ST | op.MEM | size, mem.reg, 0, mem.off, cur.imm32()))
        raise cur.error(f"expected register or immediate, got {cur._what(cur.peek())}")
    if cur.is_reg():
        return _llvm_assign(cur, first)
    if first.kind == "id":
        raise cur.error(f"unknown mnemonic {first.text!r}", first)
    raise cur.error(f"expected an instruction, got {cur._what(first)}", first)


def _llvm_call(cur: _Line, first: _Tok) -> _Item:
    tok = cur.peek()
    if tok.kind == "id" and tok.text == "pc" and cur.peek(1).text in ("+", "-"):
        tgt = _llvm_target(cur, call=True)
        return _with_target(Instruction(op.CALL_OP, 0, op.PSEUDO_CALL), tgt, "imm", cur, first)
    if (
        tok.kind == "id"
        and tok.text == "kfunc"
        and (cur.peek(1).text == "(" or cur.peek(1).kind == "num")
    ):
        cur.next()
        return _kfunc_args(cur, first, parens=cur.at("("))
    if cur.is_reg():
        _, reg = cur.reg("r")
        return _Item(Instruction(op.CALLX_OP, reg), cur.lineno, first.col, first.text)
    return _call_common(cur, first)


def _llvm_if(cur: _Line, first: _Tok) -> _Item:
    kind, dst = cur.reg()
    optok = cur.next()
    if optok.text not in _LLVM_JMP:
        raise cur.error(f"expected a comparison operator, got {cur._what(optok)}", optok)
    jop = _LLVM_JMP[optok.text]
    cls = op.JMP32 if kind == "w" else op.JMP
    if cur.is_reg():
        _, src = cur.reg(kind)
        insn = Instruction(cls | jop | op.X, dst, src)
    elif cur.is_num():
        insn = Instruction(cls | jop | op.K, dst, 0, 0, cur.imm32())
    else:
        raise cur.error(f"expected register or immediate, got {cur._what(cur.peek())}")
    cur.expect("goto")
    return _with_target(insn, _llvm_target(cur), "off", cur, first)


def _llvm_assign(cur: _Line, first: _Tok) -> _Item:
    ln = cur.lineno
    kind, dst = cur.reg()
    cls = op.ALU if kind == "w" else op.ALU64

    def item(insn: Instruction) -> _Item:
        return _Item(insn, ln, first.col, first.text)

    optok = cur.next()
    if optok.text in _LLVM_ALU:
        aop = _LLVM_ALU[optok.text]
        off = 1 if optok.text in ("s/=", "s%=") else 0
        if cur.is_reg():
            _, src = cur.reg(kind)
            return item(Instruction(cls | aop | op.X, dst, src, off))
        if cur.is_num():
            return item(Instruction(cls | aop | op.K, dst, 0, off, cur.imm32()))
        raise cur.error(f"expected register or immediate, got {cur._what(cur.peek())}")
    if optok.text != "=":
        raise cur.error(f"expected an assignment operator, got {cur._what(optok)}", optok)
    tok = cur.peek()
    # r1 = -r1
    if tok.text == "-" and cur.is_reg(1):
        cur.next()
        rtok = cur.peek()
        k2, n2 = cur.reg(kind)
        if n2 != dst:
            raise cur.error(f"neg must use the same register on both sides ({kind}{dst})", rtok)
        return item(Instruction(cls | op.NEG, dst))
    # r1 = 5 / r1 = 0x1122334455667788 ll
    if cur.is_num():
        value, text, ntok = cur.number()
        if cur.accept("ll") is not None:
            if kind != "r":
                raise cur.error("a 64-bit load needs a 64-bit register (r0-r10)", first)
            if not -(1 << 63) <= value < (1 << 64):
                raise cur.error(f"immediate {text} does not fit in 64 bits", ntok)
            return item(Instruction(op.LDDW, dst, 0, 0, value & _MASK64))
        v = _fit32(value)
        if v is None:
            hint = f" (write '{kind}{dst} = {text} ll' for a 64-bit load)" if kind == "r" else ""
            raise cur.error(f"immediate {text} does not fit in 32 bits{hint}", ntok)
        return item(Instruction(cls | op.MOV | op.K, dst, 0, 0, v))
    # r1 = r2
    if cur.is_reg():
        _, src = cur.reg(kind)
        return item(Instruction(cls | op.MOV | op.X, dst, src))
    # r1 = (s8)r2
    if tok.text == "(":
        cur.next()
        ttok = cur.peek()
        mm = re.fullmatch(r"s(8|16|32)", ttok.text) if ttok.kind == "id" else None
        if mm is None:
            raise cur.error(f"expected s8, s16 or s32, got {cur._what(ttok)}", ttok)
        cur.next()
        cur.expect(")")
        bits = int(mm.group(1))
        if kind == "w" and bits == 32:
            raise cur.error("a 32-bit sign extension takes s8 or s16", ttok)
        _, src = cur.reg(kind)
        return item(Instruction(cls | op.MOV | op.X, dst, src, bits))
    # r0 = *(u8 *)(r1 + 2)  /  r0 = *(u8 *)skb[...]
    if tok.text == "*":
        cur.next()
        size, signed, stok = _size_cast(cur, signed_ok=True)
        if cur.at("skb"):
            return _llvm_skb(cur, first, kind, dst, size, signed, stok)
        if kind == "w" and (signed or size == op.DW):
            raise cur.error("this load needs a 64-bit destination register", first)
        mem = _llvm_mem(cur)
        mode = op.MEMSX if signed else op.MEM
        return item(Instruction(op.LDX | mode | size, dst, mem.reg, mem.off))
    if tok.kind == "id":
        mm = re.fullmatch(r"(be|le|bswap)(16|32|64)", tok.text)
        if mm:
            cur.next()
            rtok = cur.peek()
            _, n2 = cur.reg("r")
            if kind != "r" or n2 != dst:
                raise cur.error(
                    f"byte swap must use the same register: r{dst} = {tok.text} r{dst}", rtok
                )
            bits = int(mm.group(2))
            if mm.group(1) == "bswap":
                return item(Instruction(op.ALU64 | op.END | op.TO_LE, dst, 0, 0, bits))
            direction = op.TO_BE if mm.group(1) == "be" else op.TO_LE
            return item(Instruction(op.ALU | op.END | direction, dst, 0, 0, bits))
        if tok.text in _PSEUDO_NAMES:
            if kind != "r":
                raise cur.error("a 64-bit load needs a 64-bit register (r0-r10)", first)
            it = _lddw_item(cur, dst, first)
            cur.accept("ll")
            return it
        if _TYPED_ATOMIC_RE.fullmatch(tok.text) or tok.text in _UNTYPED_ATOMIC:
            return _llvm_atomic_call(cur, first, kind, dst)
    raise cur.error(f"expected an expression, got {cur._what(tok)}", tok)


def _llvm_skb(
    cur: _Line, first: _Tok, kind: str, dst: int, size: int, signed: bool, stok: _Tok
) -> _Item:
    """``r0 = *(u16 *)skb[12]`` (ABS) or ``skb[r1 + 4]`` (IND)."""
    if signed or size == op.DW:
        raise cur.error("legacy packet loads read u8, u16 or u32", stok)
    if dst != 0:
        raise cur.error("legacy packet loads always write r0", first)
    cur.expect("skb")
    cur.expect("[")
    if cur.is_reg():
        _, src = cur.reg("r")
        imm = 0
        if cur.at("+", "-"):
            imm = cur.imm32()
        cur.expect("]")
        return _Item(
            Instruction(op.LD | op.IND | size, 0, src, 0, imm), cur.lineno, first.col, first.text
        )
    imm = cur.imm32()
    cur.expect("]")
    return _Item(
        Instruction(op.LD | op.ABS | size, 0, 0, 0, imm), cur.lineno, first.col, first.text
    )


def _llvm_atomic_call(cur: _Line, first: _Tok, kind: str, dst: int) -> _Item:
    """``r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)``, ``xchg_64``, ``cmpxchg32_32``..."""
    ntok = cur.next()
    name = ntok.text
    cur.expect("(")
    typed = _TYPED_ATOMIC_RE.fullmatch(name)
    if typed:
        # kernel/llvm form with a typed pointer: ((u64 *)(r10 - 8), ...)
        size, _, stok = _size_cast(cur)
        if typed.group(1) and size != op.DW:
            raise cur.error(f"{name} works on u64", stok)
        mem = _llvm_mem(cur)
        opname = typed.group(2) or typed.group(3)
    else:
        opname, size = _UNTYPED_ATOMIC[name]
        _, reg = cur.reg("r")
        mem = _Mem(reg, cur.signed_offset())
    if size not in (op.W, op.DW):
        raise cur.error("atomic operations need u32 or u64", ntok)
    vk = "rw" if size == op.W else "r"
    if kind not in vk:
        raise cur.error("a 64-bit atomic needs 64-bit registers", first)
    cur.expect(",")
    if opname == "cmpxchg":
        if dst != 0:
            raise cur.error("cmpxchg always writes r0", first)
        rtok = cur.peek()
        _, r0 = cur.reg(vk)
        if r0 != 0:
            raise cur.error("cmpxchg compares with r0", rtok)
        cur.expect(",")
        _, src = cur.reg(vk)
        aop = op.CMPXCHG
    else:
        rtok = cur.peek()
        _, src = cur.reg(vk)
        if src != dst:
            raise cur.error(f"{name} returns into its value register ({kind}{src})", rtok)
        aop = op.XCHG if opname == "xchg" else (_LOCK_OPS[opname] | op.FETCH)
    cur.expect(")")
    return _Item(
        Instruction(op.STX | op.ATOMIC | size, mem.reg, src, mem.off, aop),
        cur.lineno,
        first.col,
        first.text,
    )


# ---------------------------------------------------------------------------------------
# Lines, comments, objdump/verifier decorations

_PC_PREFIX_RE = re.compile(r"\s*[0-9]+:(?=\s|$)")
_KERNEL_OPCODE_RE = re.compile(r"\s*\([0-9a-fA-F]{2}\)(?=\s)")
_RAW_BYTES_RE = re.compile(
    r"\s*(?:[0-9a-fA-F]{2} ){7}[0-9a-fA-F]{2}"
    r"(?: (?:[0-9a-fA-F]{2} ){7}[0-9a-fA-F]{2})?(?=\s|$)"
)
_RELOC_RE = re.compile(r"\s*[0-9a-fA-F]+:\s+(R_BPF_[A-Za-z0-9_]+)(?:\s|$)")
_SYMBOL_RE = re.compile(r"\s*[0-9a-fA-F]+ <([^<>\s]+)>:\s*$")
_OBJDUMP_NOISE_RE = re.compile(r"\s*(?:Disassembly of section .*:|\S+:\s+file format .*)\s*$")
_ANNOTATION_RE = re.compile(r"\s<[^<>]*>\s*$")
_LABEL_RE = re.compile(r"\s*([A-Za-z_.$][A-Za-z0-9_.$]*)\s*:(?!=)")


def _strip_comment(line: str) -> str:
    cut = len(line)
    for marker in (";", "//"):
        k = line.find(marker)
        if k != -1:
            cut = min(cut, k)
    k = line.find("#")
    while k != -1 and k < cut:
        if k == 0 or line[k - 1] in " \t":
            cut = k
            break
        k = line.find("#", k + 1)
    return line[:cut]


_CONF_WORD_RE = re.compile(
    r"ldxs?(?:b|h|w|dw)|stx?(?:b|h|w|dw)|ld(?:abs|ind)(?:b|h|w)|lddw|lock|ja(?:32)?"
    r"|movsx(?:864|1664|3264|832|1632)|(?:be|le|bswap|swap)(?:16|32|64)"
)


def guess_dialect(text: str) -> str:
    """``conformance`` or ``llvm`` for a listing, from its first telling line."""
    for raw in text.split("\n"):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if "%r" in line:
            return "conformance"
        if "=" in line or line.startswith(("if ", "goto", "gotol", "callx", "*")):
            return "llvm"
        word = line.split(None, 1)[0].lower()
        base = re.sub(r"(32|64)$", "", word)
        if (
            _CONF_WORD_RE.fullmatch(word)
            or base in _ALU_BY_NAME
            or base in _JMP_BY_NAME
            or base in ("neg", "sdiv", "smod")
            or re.match(r"call\s+(local|runtime)\b", line)
        ):
            return "conformance"
    return "llvm"


def assemble_text(text: str, dialect: str = "auto") -> list[Instruction]:
    """Assemble a listing in the ``conformance`` or ``llvm`` dialect (``auto``: guess).

    Raises :class:`AsmError` (line, column, offending text) for any bad input.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r} (expected one of {', '.join(DIALECTS)})")
    if not isinstance(text, str):
        raise AsmError("assembler input must be text")
    if dialect == "auto":
        dialect = guess_dialect(text)
    llvm = dialect == "llvm"
    parse = _parse_llvm if llvm else _parse_conformance
    items: list[_Item] = []
    labels: dict[str, tuple[int, int]] = {}  # name -> (item index, line)
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if llvm:
            m = _RELOC_RE.match(line)
            if m:
                last = items[-1].insn if items else None
                if (
                    m.group(1) == "R_BPF_64_32"
                    and last is not None
                    and last.opcode == op.CALL_OP
                    and last.src == 0
                ):
                    items[-1].insn = last.with_(src=op.PSEUDO_CALL)
                continue
            m = _SYMBOL_RE.match(line)
            if m:
                _define(labels, m.group(1), len(items), lineno, line.find("<") + 2)
                continue
            if _OBJDUMP_NOISE_RE.match(line):
                continue
        body = _strip_comment(line)
        start = 0
        m = _PC_PREFIX_RE.match(body)
        if m:
            start = m.end()
            k = _KERNEL_OPCODE_RE.match(body, start)
            if k:
                start = k.end()
            r = _RAW_BYTES_RE.match(body, start)
            if r:
                start = r.end()
        # label definitions: ``name:`` (possibly followed by an instruction)
        while True:
            m = _LABEL_RE.match(body, start)
            if not m:
                break
            _define(labels, m.group(1), len(items), lineno, m.start(1) + 1)
            start = m.end()
        if not body[start:].strip():
            continue
        if llvm and ("goto" in body or "call" in body):
            a = _ANNOTATION_RE.search(body, start)
            if a:
                body = body[: a.start()]
        toks = _tokenize(body, start, lineno)
        cur = _Line(toks, lineno, line)
        it = parse(cur)
        cur.end()
        reason = check(it.insn)
        if reason:
            raise AsmError(reason, lineno, it.col, it.text)
        items.append(it)
    return _resolve(items, labels, conformance=not llvm)


def _define(
    labels: dict[str, tuple[int, int]], name: str, index: int, lineno: int, col: int
) -> None:
    """Record label ``name`` at item ``index``; a second definition is an error."""
    if name in labels:
        prev = labels[name][1]
        raise AsmError(f"label {name!r} defined twice (first on line {prev})", lineno, col, name)
    labels[name] = (index, lineno)


def _resolve(
    items: list[_Item],
    labels: dict[str, tuple[int, int]],
    conformance: bool,
) -> list[Instruction]:
    """Fill in label targets as relative slot offsets."""
    slots: list[int] = []
    pos = 0
    for it in items:
        slots.append(pos)
        pos += it.insn.slots
    slots.append(pos)
    first_exit = next((slots[i] for i, it in enumerate(items) if it.insn.is_exit), None)
    out: list[Instruction] = []
    helper_ids: dict[str, int] | None = None
    for i, it in enumerate(items):
        insn = it.insn
        if it.label is not None:
            name = it.label
            if name in labels:
                target = slots[labels[name][0]]
            elif conformance and name == "exit" and first_exit is not None:
                target = first_exit
            elif it.field == "call?":
                if helper_ids is None:
                    from ..uapi.enums import HELPER_IDS

                    helper_ids = HELPER_IDS
                hid = helper_ids.get(name[4:]) if name.startswith("bpf_") else None
                if hid is None:
                    raise AsmError(
                        f"undefined label {name!r} (and not a helper name)",
                        it.line,
                        it.label_col,
                        name,
                    )
                out.append(Instruction(op.CALL_OP, imm=hid))
                continue
            else:
                raise AsmError(f"undefined label {name!r}", it.line, it.label_col, name)
            rel = target - (slots[i] + 1)
            if it.field == "off":
                if not -0x8000 <= rel <= 0x7FFF:
                    raise AsmError(
                        f"jump to {name!r} is too far ({rel} slots) for a 16-bit "
                        "offset; use ja32/gotol",
                        it.line,
                        it.label_col,
                        name,
                    )
                insn = insn.with_(off=rel)
            elif it.field == "lddw":
                insn = insn.with_(imm=rel & _MASK64)
            else:
                if not -(1 << 31) <= rel < (1 << 31):
                    raise AsmError(
                        f"target {name!r} is too far ({rel} slots)", it.line, it.label_col, name
                    )
                insn = insn.with_(imm=rel)
        out.append(insn)
    return out
