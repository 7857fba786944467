"""Classic BPF: the 1992 packet-filter machine (``struct sock_filter``).

``insn`` holds the instruction format; the listing assembler/disassembler, the kernel's
checker, the interpreter, the translation to eBPF and the pcap-filter compiler live in
sibling modules.
"""

from .insn import SockFilter, decode, encode, jump, stmt

__all__ = ["SockFilter", "decode", "encode", "jump", "stmt"]
