"""A readable listing of a seccomp program: classic BPF's listing plus field names.

The lines are :func:`bpfkit.classic.listing.format_listing`'s (``tcpdump -d`` style);
loads from ``struct seccomp_data`` get a ``; nr`` / ``; args[1].hi`` comment, which
:func:`bpfkit.classic.listing.parse_listing` skips, so the listing reads back.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..classic import insn as c
from ..classic.insn import SockFilter
from ..classic.listing import format_listing

FIELDS = {0: "nr", 4: "arch", 8: "instruction_pointer", 12: "instruction_pointer.hi"}
for _i in range(6):
    FIELDS[16 + 8 * _i] = f"args[{_i}]"
    FIELDS[20 + 8 * _i] = f"args[{_i}].hi"


def format_program(program: Sequence[SockFilter]) -> str:
    """One line per instruction, ``(012) jeq #0x3b jt 13 jf 14``; loads name their field."""
    lines = format_listing(list(program)).splitlines()
    out = []
    for ins, line in zip(program, lines, strict=True):
        if ins.code == c.LD | c.W | c.ABS and ins.k in FIELDS:
            line = f"{line:<32}; {FIELDS[ins.k]}"
        out.append(line)
    return "\n".join(out)
