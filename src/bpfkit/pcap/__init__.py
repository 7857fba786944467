"""Packet capture: capture files (pcap, pcapng), the pcap-filter compiler, fast filtering.

``CaptureReader``/``read_packets`` stream pcap and pcapng files, ``PcapWriter`` and
``PcapngWriter`` write them; :func:`compile_filter` turns a tcpdump expression into a
classic BPF program with libpcap's semantics (see ``bpfkit.pcap.filter``);
``bpfkit.pcap.scan`` runs a program over a whole capture natively; ``bpfkit.pcap.live``
captures from an interface with the program in the kernel.
"""

from __future__ import annotations

from typing import Any

from .capfile import CaptureReader, Packet, PcapngWriter, PcapWriter, read_packets

__all__ = [
    "CaptureReader",
    "Packet",
    "PcapWriter",
    "PcapngWriter",
    "compile_filter",
    "read_packets",
]


def __getattr__(name: str) -> Any:
    # the compiler (and lark) load only when used: `bpfkit filter run` may not need them
    if name == "compile_filter":
        from .filter import compile_filter

        return compile_filter
    raise AttributeError(name)
