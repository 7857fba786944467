"""Classic BPF: the 1992 packet-filter machine (``struct sock_filter``).

``insn`` holds the instruction format, ``listing`` the ``tcpdump -d/-dd/-ddd`` texts,
``check`` the kernel's checker, ``interp`` the interpreter (kernel semantics) and
``ebpf`` the translation to eBPF (``bpf_convert_filter``); the pcap-filter compiler lives
in sibling modules. See docs/classic.md.
"""

from .check import check
from .ebpf import to_ebpf
from .insn import SockFilter, decode, encode, jump, stmt
from .interp import ClassicResult, PacketMeta, compile_classic, run_classic
from .listing import format_listing, load_program, parse_listing

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
