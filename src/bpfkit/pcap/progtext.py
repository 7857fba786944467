"""Classic programs as text for ``bpfkit filter``: tcpdump's forms, and bpfkit's JSON.

``format_program(prog, "listing"|"c"|"decimal")`` prints what ``tcpdump -d``, ``-dd`` and
``-ddd`` print (through :mod:`bpfkit.classic.listing`); ``read_program(text)`` reads
those three forms and the JSON ``bpfkit filter compile --json`` prints
(``{"insns": [[code, jt, jf, k], ...]}``).
"""

from __future__ import annotations

import json

from ..classic import listing
from ..classic.insn import SockFilter
from ..errors import EncodeError, FilterSyntaxError


def format_program(prog: list[SockFilter], fmt: str = "listing") -> str:
    """The program as ``tcpdump -d`` (listing), ``-dd`` (c) or ``-ddd`` (decimal) prints it."""
    if fmt == "listing":
        return listing.format_listing(prog)
    if fmt == "c":
        return listing.format_c(prog)
    if fmt == "decimal":
        return listing.format_decimal(prog)
    raise ValueError(f"unknown program format {fmt!r}")


def read_program(text: str, origin: str = "<program>") -> list[SockFilter]:
    """A classic program from ``-ddd``, ``-dd``, ``-d`` or JSON text; FilterSyntaxError
    (naming the line) when it is none of them."""
    stripped = text.strip()
    if not stripped:
        raise FilterSyntaxError("the program file is empty", origin=origin)
    if stripped.startswith("{") and '"insns"' in stripped[:200]:
        try:
            obj = json.loads(stripped)
            return [SockFilter(*map(int, i)).validate() for i in obj["insns"]]
        except (ValueError, TypeError, KeyError, EncodeError) as e:
            raise FilterSyntaxError(f"bad JSON program: {e}", origin=origin) from None
    return listing.parse_text(text, origin=origin)
