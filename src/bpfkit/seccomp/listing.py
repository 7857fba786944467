"""A readable listing of a seccomp program (``tcpdump -d`` style, seccomp_data names).

Uses :func:`bpfkit.classic.listing.format_listing` when that module exists; otherwise a
small formatter for the instructions seccomp programs use.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..classic import insn as c
from ..classic.insn import SockFilter

_FIELDS = {0: "nr", 4: "arch", 8: "instruction_pointer", 12: "instruction_pointer.hi"}
for _i in range(6):
    _FIELDS[16 + 8 * _i] = f"args[{_i}]"
    _FIELDS[20 + 8 * _i] = f"args[{_i}].hi"

_JMP = {c.JEQ: "jeq", c.JGT: "jgt", c.JGE: "jge", c.JSET: "jset"}
_ALU = {c.ADD: "add", c.SUB: "sub", c.MUL: "mul", c.DIV: "div", c.OR: "or", c.AND: "and",
        c.LSH: "lsh", c.RSH: "rsh", c.MOD: "mod", c.XOR: "xor"}  # fmt: skip


def _one(pc: int, ins: SockFilter) -> str:
    code, k = ins.code, ins.k
    cls = code & 0x07
    if code == c.LD | c.W | c.ABS:
        text = f"ld       [{k}]"
        note = _FIELDS.get(k)
        return f"{text:<32}; {note}" if note else text
    if cls == c.RET:
        return "ret      a" if code & 0x18 == c.RVAL_A else f"ret      #{k:#x}"
    if cls == c.JMP:
        op = code & 0xF0
        if op == c.JA:
            return f"ja       {pc + 1 + k}"
        src = "x" if code & c.X else f"#{k:#x}"
        return f"{_JMP.get(op, '?'):<8} {src:<16} jt {pc + 1 + ins.jt:<5} jf {pc + 1 + ins.jf}"
    if cls == c.ALU:
        if code & 0xF0 == c.NEG:
            return "neg"
        src = "x" if code & c.X else f"#{k:#x}"
        return f"{_ALU.get(code & 0xF0, '?'):<8} {src}"
    if code == c.LD | c.IMM:
        return f"ld       #{k:#x}"
    if code == c.LDX | c.IMM:
        return f"ldx      #{k:#x}"
    if code == c.LD | c.MEM:
        return f"ld       M[{k}]"
    if code == c.LDX | c.MEM:
        return f"ldx      M[{k}]"
    if cls == c.ST:
        return f"st       M[{k}]"
    if cls == c.STX:
        return f"stx      M[{k}]"
    if code == c.MISC | c.TAX:
        return "tax"
    if code == c.MISC | c.TXA:
        return "txa"
    return f".insn    {code:#06x}, {ins.jt}, {ins.jf}, {k:#x}"


def format_program(program: Sequence[SockFilter]) -> str:
    """One line per instruction: ``(012) jeq #0x3b jt 13 jf 14``."""
    try:
        from ..classic.listing import format_listing  # type: ignore[import-not-found]
    except ImportError:
        format_listing = None
    if format_listing is not None:
        try:
            return format_listing(list(program))
        except Exception:  # noqa: BLE001 - fall back to the local formatter
            pass
    return "\n".join(f"({pc:03d}) {_one(pc, ins)}" for pc, ins in enumerate(program))
