"""Consume the events of ringbuf_events.c from Python.

    python examples/ringbuf_consumer.py ringbuf_events.o

Builds a few packets, runs the XDP producer on each (in the VM), then drains the ring
buffer and prints one line per event.
"""

from __future__ import annotations

import ipaddress
import struct
import sys

import bpfkit

EVENT = struct.Struct("<IBBHII")  # struct event: len, protocol, ttl, kind, saddr, daddr


def decode(record: bytes) -> dict:
    """One ring-buffer record: a full event, or the short record of a non-IP frame."""
    if len(record) == 4:
        return {"kind": "non-ip", "len": struct.unpack("<I", record)[0]}
    length, proto, ttl, _kind, saddr, daddr = EVENT.unpack(record[: EVENT.size])
    return {
        "kind": "ip",
        "len": length,
        "protocol": proto,
        "ttl": ttl,
        "saddr": str(ipaddress.IPv4Address(saddr.to_bytes(4, "little"))),
        "daddr": str(ipaddress.IPv4Address(daddr.to_bytes(4, "little"))),
    }


def packet(proto: int, src: str, dst: str, ttl: int = 64, payload: int = 20) -> bytes:
    eth = bytes(12) + b"\x08\x00"
    ip = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + payload,
        0,
        0,
        ttl,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return eth + ip + bytes(payload)


def sample_packets() -> list[bytes]:
    return [
        packet(6, "10.0.0.1", "10.0.0.2"),
        packet(17, "192.168.1.5", "8.8.8.8", ttl=3),
        packet(1, "10.0.0.9", "10.0.0.1"),  # ICMP: reserved, then discarded
        bytes(12) + b"\x86\xdd" + bytes(50),  # not IPv4: a short record
    ]


def main(path: str) -> list[dict]:
    obj = bpfkit.load(path)
    prog = obj.programs["produce_events"]
    for pkt in sample_packets():
        prog.test_run(pkt)
    events = [decode(r) for r in obj.maps["events"].consume()]
    for e in events:
        print(e)
    return events


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ringbuf_events.o")
