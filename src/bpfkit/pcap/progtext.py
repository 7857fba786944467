"""Classic programs as text: tcpdump's ``-d``/``-dd``/``-ddd`` forms, written and read.

``format_program(prog, "listing"|"c"|"decimal")`` prints what ``tcpdump -d``, ``-dd`` and
``-ddd`` print; ``read_program(text)`` reads the decimal and C-array forms, bpfkit's
JSON (``{"insns": [[code, jt, jf, k], ...]}``) and — through
:mod:`bpfkit.classic.listing` when that module is present — the ``-d`` listing.
"""

from __future__ import annotations

import json
import re

from ..classic import insn as c
from ..classic.insn import SockFilter
from ..errors import FilterSyntaxError

_LOADS = {
    c.LD | c.W | c.ABS: ("ld", "[{s}]"),
    c.LD | c.H | c.ABS: ("ldh", "[{s}]"),
    c.LD | c.B | c.ABS: ("ldb", "[{s}]"),
    c.LD | c.W | c.IND: ("ld", "[x + {s}]"),
    c.LD | c.H | c.IND: ("ldh", "[x + {s}]"),
    c.LD | c.B | c.IND: ("ldb", "[x + {s}]"),
    c.LD | c.W | c.LEN: ("ld", "#pktlen"),
    c.LD | c.IMM: ("ld", "#{h}"),
    c.LDX | c.IMM: ("ldx", "#{h}"),
    c.LDX | c.MSH | c.B: ("ldxb", "4*([{s}]&0xf)"),
    c.LD | c.MEM: ("ld", "M[{s}]"),
    c.LDX | c.MEM: ("ldx", "M[{s}]"),
    c.ST: ("st", "M[{s}]"),
    c.STX: ("stx", "M[{s}]"),
    c.RET | c.K: ("ret", "#{s}"),
    c.RET | c.RVAL_A: ("ret", ""),
    c.ALU | c.NEG: ("neg", ""),
    c.MISC | c.TAX: ("tax", ""),
    c.MISC | c.TXA: ("txa", ""),
}
_ALU_NAMES = {
    c.ADD: ("add", "{s}"),
    c.SUB: ("sub", "{s}"),
    c.MUL: ("mul", "{s}"),
    c.DIV: ("div", "{s}"),
    c.MOD: ("mod", "{s}"),
    c.AND: ("and", "{h}"),
    c.OR: ("or", "{h}"),
    c.XOR: ("xor", "{h}"),
    c.LSH: ("lsh", "{s}"),
    c.RSH: ("rsh", "{s}"),
}
_JMP_NAMES = {c.JGT: "jgt", c.JGE: "jge", c.JEQ: "jeq", c.JSET: "jset"}


def _s32(k: int) -> int:
    return k - (1 << 32) if k & 0x80000000 else k


def format_insn(ins: SockFilter, n: int) -> str:
    """One line of ``tcpdump -d`` (libpcap's bpf_image)."""
    code, k = ins.code, ins.k
    s, h = _s32(k), f"0x{k:x}"
    cls = code & 0x07
    if code in _LOADS:
        op, fmt = _LOADS[code]
        operand = fmt.format(s=s, h=h)
    elif cls == c.ALU and (code & 0xF0) in _ALU_NAMES and not code & ~0xFF:
        op, fmt = _ALU_NAMES[code & 0xF0]
        operand = "x" if code & c.X else "#" + fmt.format(s=s, h=h)
    elif code == c.JMP | c.JA:
        op, operand = "ja", str(n + 1 + k)
    elif cls == c.JMP and (code & 0xF0) in _JMP_NAMES and not code & ~0xFF:
        op = _JMP_NAMES[code & 0xF0]
        operand = "x" if code & c.X else f"#{h}"
    else:
        op, operand = "unimp", f"0x{code:x}"
    if cls == c.JMP and (code & 0xF0) != c.JA:
        return f"({n:03d}) {op:<8s} {operand:<16s} jt {n + 1 + ins.jt}\tjf {n + 1 + ins.jf}"
    return f"({n:03d}) {op:<8s} {operand}"


def format_program(prog: list[SockFilter], fmt: str = "listing") -> str:
    """The program as ``tcpdump -d`` (listing), ``-dd`` (c) or ``-ddd`` (decimal) prints it."""
    try:
        from ..classic import listing  # the classic machine's own formatter, once present

        if fmt == "listing" and hasattr(listing, "format_listing"):
            text = listing.format_listing(prog)
            return text if text.endswith("\n") else text + "\n"
    except ImportError:
        pass
    if fmt == "listing":
        return "".join(format_insn(SockFilter(*i), n) + "\n" for n, i in enumerate(prog))
    if fmt == "c":
        return "".join(f"{{ 0x{i[0]:x}, {i[1]}, {i[2]}, 0x{i[3]:08x} }},\n" for i in prog)
    if fmt == "decimal":
        return f"{len(prog)}\n" + "".join(f"{i[0]} {i[1]} {i[2]} {i[3]}\n" for i in prog)
    raise ValueError(f"unknown program format {fmt!r}")


_C_LINE = re.compile(
    r"\{\s*(0[xX][0-9a-fA-F]+|\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(0[xX][0-9a-fA-F]+|\d+)\s*\}"
)


def read_program(text: str, origin: str = "<program>") -> list[SockFilter]:
    """Read a classic program from ``-ddd``, ``-dd``, JSON or (via bpfkit.classic.listing)
    ``-d`` text; raises FilterSyntaxError naming the line."""
    stripped = text.strip()
    if not stripped:
        raise FilterSyntaxError("empty program", origin=origin)
    if stripped.startswith("{") and '"insns"' in stripped[:200]:
        try:
            obj = json.loads(stripped)
            prog = [SockFilter(*map(int, i)).validate() for i in obj["insns"]]
        except (ValueError, TypeError, KeyError) as e:
            raise FilterSyntaxError(f"bad JSON program: {e}", origin=origin) from None
        except Exception as e:  # EncodeError: field out of range
            raise FilterSyntaxError(str(e), origin=origin) from None
        return prog
    if "{" in stripped:
        prog = []
        for m in _C_LINE.finditer(stripped):
            prog.append(SockFilter(*(int(g, 0) for g in m.groups())))
        if prog:
            return _checked(prog, origin)
    lines = [ln.strip() for ln in stripped.splitlines()]
    first = lines[0].split()
    if len(first) == 1 and first[0].isdigit():
        count = int(first[0])
        prog = []
        for lineno, ln in enumerate(lines[1:], start=2):
            if not ln:
                continue
            parts = ln.split()
            if len(parts) != 4 or not all(p.isdigit() for p in parts):
                raise FilterSyntaxError(
                    "expected 'code jt jf k' (four decimal numbers)", line=lineno, origin=origin
                )
            prog.append(SockFilter(*(int(p) for p in parts)))
        if len(prog) != count:
            raise FilterSyntaxError(
                f"the count line says {count} instructions, the program has {len(prog)}",
                line=1,
                origin=origin,
            )
        return _checked(prog, origin)
    try:
        from ..classic.listing import parse_listing
    except ImportError:
        raise FilterSyntaxError(
            "not a -ddd, -dd or JSON program (reading -d listings needs bpfkit.classic.listing)",
            line=1,
            origin=origin,
        ) from None
    return [SockFilter(*i) for i in parse_listing(text)]


def _checked(prog: list[SockFilter], origin: str) -> list[SockFilter]:
    for n, ins in enumerate(prog):
        try:
            ins.validate()
        except Exception as e:  # EncodeError
            raise FilterSyntaxError(f"instruction {n}: {e}", origin=origin) from None
    return prog
