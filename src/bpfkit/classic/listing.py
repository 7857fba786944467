"""Classic programs as text: ``tcpdump -d`` listings, ``-dd`` C arrays, ``-ddd`` decimal.

:func:`format_listing` prints what libpcap's ``bpf_image`` prints, byte for byte (the
instruction number, the mnemonic padded to 8, the operand — padded to 16 before a
conditional jump's absolute ``jt``/``jf`` targets — and ancillary loads by libpcap's
names, ``ld [proto]``). :func:`parse_listing` reads that back, and also the same text
without the ``(NNN)`` prefixes. :func:`format_c`/:func:`parse_c` and
:func:`format_decimal`/:func:`parse_decimal` are the ``-dd`` and ``-ddd`` forms;
:func:`load_program` guesses among the three texts and raw ``sock_filter`` bytes.
Errors in text are :class:`~bpfkit.errors.FilterSyntaxError` with line and column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from ..errors import DecodeError, FilterSyntaxError
from . import insn as c
from .insn import SockFilter

__all__ = [
    "format_listing",
    "format_insn",
    "parse_listing",
    "format_c",
    "parse_c",
    "format_decimal",
    "parse_decimal",
    "guess_format",
    "parse_text",
    "load_program",
]

M32 = 0xFFFFFFFF
_NAME_TO_AD = {v: k for k, v in c.ANCILLARY_NAMES.items()}


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v & 0x80000000 else v


# ---- the listing (tcpdump -d) ----------------------------------------------------
_ALU_NAMES = {
    c.ADD: "add",
    c.SUB: "sub",
    c.MUL: "mul",
    c.DIV: "div",
    c.MOD: "mod",
    c.AND: "and",
    c.OR: "or",
    c.XOR: "xor",
    c.LSH: "lsh",
    c.RSH: "rsh",
}
# libpcap prints these immediates in hex, the other ALU immediates as signed decimal.
_ALU_HEX = {c.AND, c.OR, c.XOR}
_JMP_NAMES = {c.JEQ: "jeq", c.JGT: "jgt", c.JGE: "jge", c.JSET: "jset"}
_SIZE_SUFFIX = {c.W: "", c.H: "h", c.B: "b"}


def _abs_operand(k: int) -> str:
    off = k - (c.SKF_AD_OFF & M32)
    if 0 <= off < c.SKF_AD_MAX and off in c.ANCILLARY_NAMES:
        return f"[{c.ANCILLARY_NAMES[off]}]"
    return f"[{_s32(k)}]"


def _op_operand(ins: SockFilter, n: int) -> tuple[str, str]:
    """(mnemonic, operand) as libpcap's ``bpf_image`` shows them."""
    code, k = ins.code, ins.k
    cls = code & 0x07
    if code not in c.ALLOWED_CODES:
        return "unimp", f"{code:#x}"
    if cls == c.RET:
        if code == c.RET | c.K:
            return "ret", f"#{_s32(k)}"
        if code == c.RET | c.RVAL_A:
            return "ret", ""
    elif cls == c.LD:
        size, mode = code & 0x18, code & 0xE0
        name = "ld" + _SIZE_SUFFIX.get(size, "?")
        if mode == c.ABS and size in _SIZE_SUFFIX:
            return name, _abs_operand(k)
        if mode == c.IND and size in _SIZE_SUFFIX:
            return name, f"[x + {_s32(k)}]"
        if code == c.LD | c.W | c.LEN:
            return "ld", "#pktlen"
        if code == c.LD | c.IMM:
            return "ld", f"#{k:#x}"
        if code == c.LD | c.MEM:
            return "ld", f"M[{_s32(k)}]"
    elif cls == c.LDX:
        if code == c.LDX | c.IMM:
            return "ldx", f"#{k:#x}"
        if code == c.LDX | c.MEM:
            return "ldx", f"M[{_s32(k)}]"
        if code == c.LDX | c.B | c.MSH:
            return "ldxb", f"4*([{_s32(k)}]&0xf)"
        if code == c.LDX | c.W | c.LEN:
            # libpcap 1.10 prints "unimp 0x81"; later versions print this, and it reads back.
            return "ldx", "#pktlen"
    elif code == c.ST:
        return "st", f"M[{_s32(k)}]"
    elif code == c.STX:
        return "stx", f"M[{_s32(k)}]"
    elif cls == c.ALU:
        op = code & 0xF0
        if code == c.ALU | c.NEG:
            return "neg", ""
        if op in _ALU_NAMES:
            if code & c.X:
                return _ALU_NAMES[op], "x"
            return _ALU_NAMES[op], (f"#{k:#x}" if op in _ALU_HEX else f"#{_s32(k)}")
    elif cls == c.JMP:
        if code == c.JMP | c.JA:
            return "ja", f"{_s32(n + 1 + k)}"
        if code in c.COND_JUMPS:
            return _JMP_NAMES[code & 0xF0], ("x" if code & c.X else f"#{k:#x}")
    elif code == c.MISC | c.TAX:
        return "tax", ""
    elif code == c.MISC | c.TXA:
        return "txa", ""
    return "unimp", f"{code:#x}"


def format_insn(ins: SockFilter, n: int) -> str:
    """One listing line (no newline) for instruction ``ins`` at index ``n``."""
    op, operand = _op_operand(ins, n)
    if ins.code & 0x07 == c.JMP and ins.code & 0xF0 != c.JA:
        return f"({n:03d}) {op:<8} {operand:<16} jt {n + 1 + ins.jt}\tjf {n + 1 + ins.jf}"
    return f"({n:03d}) {op:<8} {operand}"


def format_listing(prog: Sequence[SockFilter]) -> str:
    """The program as ``tcpdump -d`` prints it (one line per instruction, newline-ended)."""
    return "".join(format_insn(SockFilter(*ins), n) + "\n" for n, ins in enumerate(prog))


_LINE = re.compile(r"\s*(?:\(\s*(\d+)\s*\)\s*)?([A-Za-z_]+)")
_JTJF = re.compile(r"\s+jt\s+(-?\d+)\s+jf\s+(-?\d+)\s*$")
_NUM = r"[-+]?(?:0[xX][0-9a-fA-F]+|\d+)"
_RE_IMM = re.compile(rf"#\s*({_NUM})$")
_RE_MEM = re.compile(rf"M\s*\[\s*({_NUM})\s*\]$")
_RE_ABS = re.compile(rf"\[\s*({_NUM}|[a-z_]+)\s*\]$")
_RE_IND = re.compile(rf"\[\s*x\s*\+\s*({_NUM})\s*\]$")
_RE_MSH = re.compile(rf"4\s*\*\s*\(\s*\[\s*({_NUM})\s*\]\s*&\s*0xf\s*\)$")
_RE_INT = re.compile(rf"({_NUM})$")


def _int(text: str, lo: int = -(1 << 31), hi: int = M32) -> int | None:
    try:
        v = int(text, 0) if not re.fullmatch(r"[-+]?0\d+", text) else int(text, 10)
    except ValueError:
        return None
    if not lo <= v <= hi:
        return None
    return v


class _Line:
    """One listing line being parsed: positions for error messages."""

    def __init__(self, text: str, lineno: int, origin: str | None):
        self.text = text
        self.lineno = lineno
        self.origin = origin

    def error(self, msg: str, col: int) -> FilterSyntaxError:
        return FilterSyntaxError(msg, self.lineno, col, self.text, self.origin)


def _parse_line(ln: _Line, n: int) -> SockFilter:
    text = ln.text
    m = _LINE.match(text)
    if not m:
        raise ln.error(
            "expected an instruction such as 'ldh [12]'", 1 + len(text) - len(text.lstrip())
        )
    if m.group(1) is not None and int(m.group(1)) != n:
        raise ln.error(
            f"instruction number ({m.group(1)}) where ({n:03d}) was expected", m.start(1) + 1
        )
    op = m.group(2).lower()
    op_col = m.start(2) + 1
    rest = text[m.end(2) :]
    rest_col = m.end(2) + 1
    jt = jf = None
    jm = _JTJF.search(rest)
    if jm:
        jt_t, jf_t = int(jm.group(1)), int(jm.group(2))
        for val, grp, what in ((jt_t, 1, "jt"), (jf_t, 2, "jf")):
            if not 0 <= val - n - 1 <= 255:
                raise ln.error(
                    f"{what} target {val} is not 1..256 instructions ahead of {n}",
                    rest_col + jm.start(grp),
                )
        jt, jf = jt_t - n - 1, jf_t - n - 1
        rest = rest[: jm.start()]
    lead = len(rest) - len(rest.lstrip())
    operand = rest.strip()
    ocol = rest_col + lead

    def bad(expect: str) -> FilterSyntaxError:
        shown = f"'{operand}'" if operand else "nothing"
        return ln.error(f"'{op}' takes {expect}, not {shown}", ocol)

    def num(mt: re.Match, lo: int = -(1 << 31)) -> int:
        v = _int(mt.group(1), lo)
        if v is None:
            raise ln.error(f"number {mt.group(1)} does not fit in 32 bits", ocol + mt.start(1))
        return v & M32

    is_cond = op in ("jeq", "jgt", "jge", "jset")
    if is_cond and jt is None:
        raise ln.error(f"'{op}' needs 'jt N jf N' targets", len(text.rstrip()) + 1)
    if not is_cond and jt is not None and op != "unimp":
        raise ln.error(f"'{op}' takes no jt/jf targets", rest_col + jm.start() + 1)

    def stmt(code: int, k: int = 0) -> SockFilter:
        return SockFilter(code, 0, 0, k)

    if op in ("ld", "ldh", "ldb"):
        size = {"ld": c.W, "ldh": c.H, "ldb": c.B}[op]
        if op == "ld":
            if operand in ("#pktlen", "#len", "len"):
                return stmt(c.LD | c.W | c.LEN)
            if mt := _RE_IMM.match(operand):
                return stmt(c.LD | c.IMM, num(mt))
            if mt := _RE_MEM.match(operand):
                return stmt(c.LD | c.MEM, num(mt))
        if mt := _RE_IND.match(operand):
            return stmt(c.LD | size | c.IND, num(mt))
        if mt := _RE_ABS.match(operand):
            word = mt.group(1)
            if word in _NAME_TO_AD:
                return stmt(c.LD | size | c.ABS, (c.SKF_AD_OFF + _NAME_TO_AD[word]) & M32)
            if word[:1].isalpha() and not word.startswith("0x"):
                raise ln.error(f"unknown ancillary name '{word}'", ocol + mt.start(1))
            return stmt(c.LD | size | c.ABS, num(mt))
        raise bad("'[k]', '[x + k]'" + (", '#k', 'M[k]' or '#pktlen'" if op == "ld" else ""))
    if op in ("ldx", "ldxb"):
        if mt := _RE_MSH.match(operand):
            return stmt(c.LDX | c.B | c.MSH, num(mt))
        if op == "ldx":
            if operand in ("#pktlen", "#len", "len"):
                return stmt(c.LDX | c.W | c.LEN)
            if mt := _RE_IMM.match(operand):
                return stmt(c.LDX | c.IMM, num(mt))
            if mt := _RE_MEM.match(operand):
                return stmt(c.LDX | c.MEM, num(mt))
            raise bad("'#k', 'M[k]', '#pktlen' or '4*([k]&0xf)'")
        raise bad("'4*([k]&0xf)'")
    if op in ("st", "stx"):
        if mt := _RE_MEM.match(operand):
            return stmt(c.ST if op == "st" else c.STX, num(mt))
        raise bad("'M[k]'")
    if op == "ret":
        if operand in ("", "a", "A"):
            return stmt(c.RET | c.RVAL_A)
        if mt := _RE_IMM.match(operand):
            return stmt(c.RET | c.K, num(mt))
        raise bad("'#k' or nothing (A)")
    if op in ("neg", "tax", "txa"):
        if operand:
            raise bad("no operand")
        return stmt({"neg": c.ALU | c.NEG, "tax": c.MISC | c.TAX, "txa": c.MISC | c.TXA}[op])
    alu = {v: k for k, v in _ALU_NAMES.items()}
    if op in alu:
        if operand in ("x", "X"):
            return stmt(c.ALU | alu[op] | c.X)
        if mt := _RE_IMM.match(operand):
            return stmt(c.ALU | alu[op] | c.K, num(mt))
        raise bad("'#k' or 'x'")
    if op == "ja":
        if mt := _RE_INT.match(operand):
            tgt = _int(mt.group(1))
            if tgt is None:
                raise ln.error(f"ja target {mt.group(1)} does not fit in 32 bits", ocol)
            return stmt(c.JMP | c.JA, (tgt - n - 1) & M32)
        raise bad("an absolute target")
    if is_cond:
        jop = {v: k for k, v in _JMP_NAMES.items()}[op]
        assert jt is not None and jf is not None
        if operand in ("x", "X"):
            return SockFilter(c.JMP | jop | c.X, jt, jf, 0)
        if mt := _RE_IMM.match(operand):
            return SockFilter(c.JMP | jop | c.K, jt, jf, num(mt))
        raise bad("'#k' or 'x'")
    if op == "unimp":
        mt = _RE_INT.match(operand)
        v = _int(mt.group(1), 0, 0xFFFF) if mt else None
        if v is None:
            raise bad("an opcode such as '0x75'")
        return SockFilter(v, jt or 0, jf or 0, 0)
    raise ln.error(f"unknown instruction '{m.group(2)}'", op_col)


def _strip_comment(line: str) -> str:
    for mark in (";", "//"):
        i = line.find(mark)
        if i >= 0:
            line = line[:i]
    return line.rstrip()


def parse_listing(text: str, origin: str | None = None) -> list[SockFilter]:
    """Read a ``tcpdump -d`` listing (the ``(NNN)`` prefixes are optional).

    Blank lines and ``;``/``//`` comments are skipped. Jump targets are absolute
    instruction numbers, as tcpdump prints them.
    """
    prog: list[SockFilter] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line.strip():
            continue
        prog.append(_parse_line(_Line(line, lineno, origin), len(prog)))
    if not prog:
        raise FilterSyntaxError("the listing holds no instructions", 1, 1, None, origin)
    return prog


# ---- -dd and -ddd ---------------------------------------------------------------
def format_c(prog: Sequence[SockFilter]) -> str:
    """The program as ``tcpdump -dd`` prints it: ``{ 0x28, 0, 0, 0x0000000c },`` lines."""
    return "".join(
        f"{{ {i.code:#x}, {i.jt}, {i.jf}, 0x{i.k:08x} }},\n" for i in map(SockFilter._make, prog)
    )


def format_decimal(prog: Sequence[SockFilter]) -> str:
    """The program as ``tcpdump -ddd`` prints it: the count, then ``code jt jf k`` lines."""
    return f"{len(prog)}\n" + "".join(
        f"{i.code} {i.jt} {i.jf} {i.k}\n" for i in map(SockFilter._make, prog)
    )


_C_NUM = r"\s*([-+]?\w+)\s*"
_C_INSN = re.compile(r"\s*\{" + ",".join([_C_NUM] * 4) + r"\}\s*,?\s*$")
_C_OPEN = re.compile(r"[^{}]*=\s*\{\s*$|\s*\{\s*$")
_C_CLOSE = re.compile(r"\s*\}\s*;?\s*$")


def _fields(ln: _Line, m: re.Match, base: int = 0) -> SockFilter:
    limits = (0xFFFF, 0xFF, 0xFF, M32)
    names = ("code", "jt", "jf", "k")
    vals = []
    for i in range(4):
        tok = m.group(i + 1)
        try:
            v = int(tok, base)
        except ValueError:
            raise ln.error(f"{names[i]} '{tok}' is not a number", m.start(i + 1) + 1) from None
        lo = -(1 << 31) if i == 3 else 0
        if not lo <= v <= limits[i]:
            raise ln.error(f"{names[i]} {tok} does not fit its field", m.start(i + 1) + 1)
        vals.append(v & limits[i])
    return SockFilter(*vals)


def parse_c(text: str, origin: str | None = None) -> list[SockFilter]:
    """Read a ``tcpdump -dd`` C array (optionally inside ``struct sock_filter f[] = { ... };``)."""
    text = re.sub(r"/\*.*?\*/", lambda mt: " " * len(mt.group()), text, flags=re.S)
    prog: list[SockFilter] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("//", 1)[0].rstrip()
        if not line.strip():
            continue
        ln = _Line(line, lineno, origin)
        m = _C_INSN.match(line)
        if m:
            prog.append(_fields(ln, m, 0))
        elif not (_C_OPEN.match(line) or _C_CLOSE.match(line)):
            col = 1 + len(line) - len(line.lstrip())
            raise ln.error("expected '{ code, jt, jf, k },'", col)
    if not prog:
        raise FilterSyntaxError("the C array holds no instructions", 1, 1, None, origin)
    return prog


_D_INSN = re.compile(r"\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def parse_decimal(text: str, origin: str | None = None) -> list[SockFilter]:
    """Read the ``tcpdump -ddd`` form: a count line, then that many ``code jt jf k`` lines."""
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise FilterSyntaxError("the program text is empty", 1, 1, None, origin)
    first_no, first = lines[0]
    ln = _Line(first, first_no, origin)
    if not re.fullmatch(r"\s*\d+\s*", first):
        raise ln.error("expected the instruction count", 1 + len(first) - len(first.lstrip()))
    count = int(first)
    prog = []
    for lineno, line in lines[1:]:
        ln = _Line(line, lineno, origin)
        m = _D_INSN.match(line)
        if not m:
            raise ln.error("expected 'code jt jf k' (four decimal numbers)", 1)
        prog.append(_fields(ln, m, 10))
    if count != len(prog):
        raise FilterSyntaxError(
            f"the count line says {count} instructions but {len(prog)} follow",
            first_no,
            1,
            first,
            origin,
        )
    if not prog:
        raise FilterSyntaxError("the program has no instructions", first_no, 1, first, origin)
    return prog


def guess_format(text: str) -> str:
    """``"decimal"`` (-ddd), ``"c"`` (-dd) or ``"listing"`` (-d), from the first line."""
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(("//", ";", "/*", "#!")):
            continue
        if re.fullmatch(r"\d+", s):
            return "decimal"
        if "{" in s:
            return "c"
        return "listing"
    return "listing"


def parse_text(text: str, fmt: str | None = None, origin: str | None = None) -> list[SockFilter]:
    """Parse ``text`` in ``fmt`` (``listing``, ``c``, ``decimal``; guessed when None)."""
    fmt = fmt or guess_format(text)
    if fmt == "decimal":
        return parse_decimal(text, origin)
    if fmt == "c":
        return parse_c(text, origin)
    if fmt == "listing":
        return parse_listing(text, origin)
    raise ValueError(f"unknown classic program format {fmt!r}")


def _from_bytes(data: bytes, origin: str | None) -> list[SockFilter]:
    if b"\0" not in data:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and text.strip():
            return parse_text(text, origin=origin)
    if not data:
        raise DecodeError("the classic program is empty", 0)
    return c.decode(data)


def load_program(source: str | bytes | bytearray | os.PathLike) -> list[SockFilter]:
    """A classic program from a file name, text or bytes, guessing the form.

    Bytes holding NUL (or not UTF-8) are raw ``sock_filter`` slots (8 bytes each, native
    order); text is a ``-ddd`` decimal program (first line a bare count), a ``-dd`` C array
    (``{`` on the first line) or a ``-d`` listing. A ``str`` naming an existing file reads it.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), None)
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and os.path.isfile(source)
    ):
        path = os.fspath(source)
        with open(path, "rb") as f:
            return _from_bytes(f.read(), path)
    return parse_text(str(source))
