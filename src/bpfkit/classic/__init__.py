"""Classic BPF: the 1992 packet-filter machine (``struct sock_filter``).

``insn`` holds the instruction format, ``listing`` the ``tcpdump -d/-dd/-ddd`` texts,
``check`` the kernel's checker, ``interp`` the interpreter (kernel or libpcap semantics)
and ``ebpf`` the translation to eBPF (``bpf_convert_filter``); the pcap-filter compiler
lives in ``bpfkit.pcap.filter``. See docs/classic.md.

The translation, the interpreter and the listings are imported on first use, so that a
command needing only the instruction format (``bpfkit filter run``) does not load the
eBPF translation. (``check`` is bound at once: its name is also its module's, and a later
``import bpfkit.classic.check`` must not leave the module where the function should be.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import exports
from .check import check
from .insn import SockFilter, decode, encode, jump, stmt

if TYPE_CHECKING:
    from .ebpf import to_ebpf
    from .interp import ClassicResult, PacketMeta, compile_classic, run_classic
    from .listing import format_listing, load_program, parse_listing

_WHERE = {
    "to_ebpf": "ebpf",
    "ClassicResult": "interp",
    "PacketMeta": "interp",
    "compile_classic": "interp",
    "run_classic": "interp",
    "format_listing": "listing",
    "parse_listing": "listing",
    "load_program": "listing",
}

__all__ = [
    "SockFilter",
    "decode",
    "encode",
    "jump",
    "stmt",
    "check",
    "to_ebpf",
    "ClassicResult",
    "PacketMeta",
    "compile_classic",
    "run_classic",
    "format_listing",
    "parse_listing",
    "load_program",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
