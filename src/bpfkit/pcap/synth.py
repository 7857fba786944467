"""Synthetic traffic: varied, deterministic packets for filter tests and benchmarks.

``packet_mix(n, seed)`` yields (frame, wirelen) pairs for Ethernet covering what filter
expressions look at: IPv4/IPv6 with TCP, UDP, SCTP, ICMP/ICMPv6, IPv4 options, IPv4
fragments (first and later), IPv6 extension headers (hop-by-hop, routing, fragment),
802.1Q and QinQ tags, MPLS stacks, ARP/RARP, 802.3/LLC (STP, IPX, SNAP), broadcast and
multicast addresses, and damaged frames — runts, random bytes, and frames cut short
(a captured length below the wire length, as a small snapshot length gives).
``to_linktype`` re-frames an Ethernet frame as RAW, LINUX_SLL or LINUX_SLL2;
``python3 -m bpfkit.pcap.synth trace.pcap trace.pcapng`` writes sample captures.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

ADDRS4 = [
    bytes([10, 0, 0, 1]),
    bytes([10, 0, 0, 2]),
    bytes([192, 168, 1, 7]),
    bytes([1, 2, 3, 4]),
    bytes([5, 6, 7, 8]),
    bytes([224, 0, 0, 251]),
    bytes([255, 255, 255, 255]),
    bytes([10, 1, 2, 3]),
]
ADDRS6 = [
    bytes.fromhex("fe800000000000000000000000000001"),
    bytes.fromhex("20010db8000000000000000000000001"),
    bytes.fromhex("20010db8000100000000000000000002"),
    bytes.fromhex("ff020000000000000000000000000001"),
    bytes.fromhex("00000000000000000000000000000001"),
]
MACS = [
    bytes.fromhex("000102030405"),
    bytes.fromhex("0a0b0c0d0e0f"),
    bytes.fromhex("ffffffffffff"),
    bytes.fromhex("01005e0000fb"),
    bytes.fromhex("333300000001"),
    bytes.fromhex("010203040506"),
]
PORTS = [22, 53, 80, 443, 5353, 8080, 1024, 65535, 0, 1000, 2000, 123]


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _l4(rng: random.Random, proto: int) -> bytes:
    payload = rng.randbytes(rng.choice([0, 0, 4, 20, 100]))
    sport, dport = rng.choice(PORTS), rng.choice(PORTS)
    if proto == 6:
        flags = rng.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x01, 0xC2, 0x29])
        doff = rng.choice([5, 5, 8])
        opts = b"\x01" * ((doff - 5) * 4)
        return (
            struct.pack(
                "!HHIIBBHHH",
                sport,
                dport,
                rng.getrandbits(32),
                rng.getrandbits(32),
                doff << 4,
                flags,
                65535,
                0,
                0,
            )
            + opts
            + payload
        )
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if proto == 132:
        return struct.pack("!HHII", sport, dport, rng.getrandbits(32), 0) + payload
    if proto in (1, 58):
        typ = rng.choice([0, 3, 8, 11, 128, 129, 133, 135])
        return struct.pack("!BBHI", typ, rng.choice([0, 1, 3]), 0, rng.getrandbits(32)) + payload
    return payload


def ipv4(rng: random.Random, proto: int | None = None) -> bytes:
    """An IPv4 packet; sometimes with options, sometimes a fragment."""
    proto = proto if proto is not None else rng.choice([6, 6, 17, 17, 1, 132, 2, 47, 103, 112])
    body = _l4(rng, proto)
    ihl = rng.choice([5, 5, 5, 6, 15])
    opts = b"\x01" * ((ihl - 5) * 4)
    frag = rng.choice([0, 0, 0, 0x4000, 0x2000, 0x2001, 0x0005, 0x00B9])
    src, dst = rng.choice(ADDRS4), rng.choice(ADDRS4)
    hdr = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            0,
            20 + len(opts) + len(body),
            rng.getrandbits(16),
            frag,
            64,
            proto,
            0,
            src,
            dst,
        )
        + opts
    )
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + body


def ipv6(rng: random.Random) -> bytes:
    """An IPv6 packet, sometimes behind hop-by-hop, routing or fragment headers."""
    proto = rng.choice([6, 17, 58, 132, 59])
    body = _l4(rng, proto)
    chain = rng.choice([[], [], [0], [44], [0, 43], [60, 44], [43]])
    nxt = proto
    ext = b""
    for h in reversed(chain):
        if h == 44:
            ext = struct.pack("!BBHI", nxt, 0, rng.choice([0, 1, 0x10]), rng.getrandbits(32)) + ext
        else:
            ext = struct.pack("!BB", nxt, 0) + b"\x01\x04" + b"\0" * 4 + ext
        nxt = h
    src, dst = rng.choice(ADDRS6), rng.choice(ADDRS6)
    return (
        struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(body), nxt, 64, src, dst) + ext + body
    )


def arp(rng: random.Random, op: int | None = None) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        op or rng.choice([1, 2]),
        rng.choice(MACS),
        rng.choice(ADDRS4),
        rng.choice(MACS),
        rng.choice(ADDRS4),
    )


def ether(dst: bytes, src: bytes, etype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", etype) + payload


def frame(rng: random.Random) -> bytes:
    """One Ethernet frame of a random kind."""
    dst, src = rng.choice(MACS), rng.choice(MACS)
    kind = rng.random()
    if kind < 0.30:
        return ether(dst, src, 0x0800, ipv4(rng))
    if kind < 0.45:
        return ether(dst, src, 0x86DD, ipv6(rng))
    if kind < 0.55:
        inner = rng.choice([(0x0800, ipv4), (0x86DD, ipv6)])
        tag = struct.pack("!H", rng.choice([1, 100, 200, 4095]) | (rng.getrandbits(3) << 13))
        outer = rng.choice([0x8100, 0x8100, 0x88A8, 0x9100])
        payload = tag + struct.pack("!H", inner[0]) + inner[1](rng)
        if rng.random() < 0.3:  # QinQ
            tag2 = struct.pack("!H", rng.choice([7, 100, 300]))
            payload = tag2 + struct.pack("!H", 0x8100) + payload
        return ether(dst, src, outer, payload)
    if kind < 0.62:
        labels = rng.choice([1, 1, 2, 3])
        stack = b""
        for i in range(labels):
            label = rng.choice([16, 100, 1024, 0xFFFFF])
            bos = 1 if i == labels - 1 else 0
            stack += struct.pack("!I", (label << 12) | (bos << 8) | 64)
        inner = ipv4(rng) if rng.random() < 0.6 else ipv6(rng)
        return ether(dst, src, 0x8847, stack + inner)
    if kind < 0.70:
        op = rng.choice([1, 2, 3, 4])
        return ether(dst, src, 0x0806 if op < 3 else 0x8035, arp(rng, op))
    if kind < 0.76:
        llc = rng.choice(
            [
                b"\x42\x42\x03",
                b"\xe0\xe0\x03",
                b"\xff\xff",
                b"\xaa\xaa\x03\x00\x00\x00\x81\x37",
                b"\xfe\xfe\x03\x83",
                b"\xf0\xf0\x03",
                b"\x06\x06\x03",
            ]
        )
        payload = llc + rng.randbytes(rng.choice([10, 40]))
        return ether(dst, src, len(payload), payload)
    if kind < 0.80:
        return ether(dst, src, rng.choice([0x88CC, 0x8863, 0x809B, 0x6003]), rng.randbytes(46))
    if kind < 0.85:
        return rng.randbytes(rng.choice([0, 1, 6, 12, 13, 14, 15, 20, 33, 54]))  # runts
    if kind < 0.90:
        return rng.randbytes(rng.randrange(14, 200))
    # an IPv4/TCP frame to be cut short below
    return ether(dst, src, 0x0800, ipv4(rng, 6))


def packet_mix(n: int, seed: int = 1) -> Iterator[tuple[bytes, int]]:
    """``n`` (captured bytes, wire length) pairs; about 1 in 6 is cut short."""
    rng = random.Random(seed)
    for _ in range(n):
        f = frame(rng)
        wirelen = len(f)
        if f and rng.random() < 0.17:
            f = f[: rng.randrange(0, len(f))]
        yield f, wirelen


SLL_HATYPE_ETHER = 1


def to_linktype(frame_: bytes, linktype: str, rng: random.Random | None = None) -> bytes:
    """Re-frame an Ethernet frame as RAW (the IP packet), LINUX_SLL or LINUX_SLL2."""
    if linktype == "EN10MB":
        return frame_
    rng = rng or random.Random(len(frame_))
    etype = frame_[12:14] if len(frame_) >= 14 else b"\x08\x00"
    payload = frame_[14:]
    if linktype == "RAW":
        return payload
    pkttype = rng.choice([0, 1, 2, 3, 4])
    if linktype == "LINUX_SLL":
        return (
            struct.pack("!HHH8s", pkttype, SLL_HATYPE_ETHER, 6, frame_[6:12].ljust(8, b"\0"))
            + etype
            + payload
        )
    if linktype == "LINUX_SLL2":
        return (
            etype
            + b"\0\0"
            + struct.pack(
                "!IHBB8s",
                rng.choice([1, 2, 7]),
                SLL_HATYPE_ETHER,
                pkttype,
                6,
                frame_[6:12].ljust(8, b"\0"),
            )
            + payload
        )
    raise ValueError(linktype)


def write_sample(path: str, n: int = 2000, seed: int = 1) -> int:
    """Write ``n`` packets of the mix to ``path`` — pcapng when the name ends in
    ``.pcapng``, else pcap (microsecond timestamps, one packet a millisecond); returns
    ``n``. The sample capture the documentation's examples read."""
    from .capfile import PcapngWriter, PcapWriter

    writer = PcapngWriter if path.endswith(".pcapng") else PcapWriter
    base = 1_700_000_000_000_000_000
    with writer(path) as w:
        for i, (f, wl) in enumerate(packet_mix(n, seed)):
            w.write(f, base + i * 1_000_000, wl)
    return n


def main(argv: list[str] | None = None) -> int:
    """``python3 -m bpfkit.pcap.synth FILE... [-n N]``: write sample captures."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python3 -m bpfkit.pcap.synth", description=main.__doc__.split(": ", 1)[1]
    )
    ap.add_argument("files", nargs="+", help="FILE.pcap or FILE.pcapng")
    ap.add_argument("-n", "--packets", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    for path in a.files:
        write_sample(path, a.packets, a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
