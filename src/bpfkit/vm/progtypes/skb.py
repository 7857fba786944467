"""skb programs: socket filters, tc classifiers/actions and cgroup skb programs.

The test run follows ``bpf_prog_test_run_skb``: the data is an Ethernet frame (at least
14 bytes, at most 3712: a page less ``NET_SKB_PAD`` headroom and the shared-info
tailroom) received on the loopback device. ``eth_type_trans`` sets ``protocol`` (from
the EtherType, or 802.3/802.2) and ``pkt_type`` (host, broadcast, multicast or other
host, against loopback's all-zero address) and pulls the Ethernet header; tc programs
see it pushed back (their data starts at L2), socket filters and cgroup programs see the
packet from the network header, and their ``data_out`` gets 14 zero bytes in front, as
the kernel pushes a cleared header back. The dummy socket takes the family and addresses
of an IPv4/IPv6 header. An optional ``__sk_buff`` context may set ``mark``, ``priority``,
``ingress_ifindex``, ``ifindex``, ``cb``, ``tstamp``, ``wire_len``, ``gso_segs``,
``gso_size`` and ``hwtstamp`` (anything else non-zero is ``EINVAL``); the same fields go
back out in ``ctx_out``.
"""

from __future__ import annotations

import errno
import struct

from ...uapi.ctx import BPF_SOCK, SK_BUFF
from ...uapi.progtypes import ProgTypeInfo
from ..memory import Region
from .base import ProgTypeVM, RunOutcome, RunState, TestRunError, ctx_bytes
from .packet import PacketBuffer

__all__ = ["SkbProgType", "ETH_HLEN", "SKB_HEADROOM", "SKB_TAILROOM", "SKB_MAX_DATA"]

ETH_HLEN = 14
SKB_HEADROOM = 64  # NET_SKB_PAD + NET_IP_ALIGN (x86-64)
SKB_TAILROOM = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
PAGE_SIZE = 4096
SKB_MAX_DATA = PAGE_SIZE - SKB_HEADROOM - SKB_TAILROOM
LOOPBACK_IFINDEX = 1
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3
AF_INET, AF_INET6 = 2, 10
TCP_CLOSE = 7

_OFF = {f.name: f.offset for f in SK_BUFF.fields}
_SOCK = {f.name: f.offset for f in BPF_SOCK.fields}
# fields a test-run context may set (convert___skb_to_skb)
_CTX_IN = (
    "mark",
    "priority",
    "ingress_ifindex",
    "ifindex",
    "cb",
    "tstamp",
    "wire_len",
    "gso_segs",
    "gso_size",
    "hwtstamp",
)
# fields copied back out (convert_skb_to___skb)
_CTX_OUT = (
    "mark",
    "priority",
    "ingress_ifindex",
    "ifindex",
    "tstamp",
    "cb",
    "wire_len",
    "gso_segs",
    "hwtstamp",
)
GSO_MAX_SEGS = 65535
GSO_LEGACY_MAX_SIZE = 65536


def _u32(b: bytes | bytearray, off: int) -> int:
    return struct.unpack_from("<I", b, off)[0]


def _field(buf: bytearray | memoryview, name: str) -> bytes:
    f = SK_BUFF[name]
    return bytes(buf[f.offset : f.end])


def eth_type_trans(frame: bytes) -> tuple[int, int]:
    """(``skb->protocol`` as read by a program, ``pkt_type``) of an Ethernet frame."""
    dst = frame[0:6]
    if dst[0] & 1:
        # loopback's broadcast address is all zeros: ff:ff:ff:ff:ff:ff is multicast to it
        pkt_type = PACKET_MULTICAST
    elif dst != bytes(6):
        pkt_type = PACKET_OTHERHOST
    else:
        pkt_type = PACKET_HOST
    proto = int.from_bytes(frame[12:14], "big")
    if proto >= 0x0600:
        wire = frame[12:14]
    elif frame[14:16] == b"\xff\xff":
        wire = (0x0001).to_bytes(2, "big")  # ETH_P_802_3
    else:
        wire = (0x0004).to_bytes(2, "big")  # ETH_P_802_2
    return int.from_bytes(wire, "little"), pkt_type


class SkbProgType(ProgTypeVM):
    """socket_filter, sched_cls, sched_act, cgroup_skb."""

    def __init__(self, info: ProgTypeInfo) -> None:
        super().__init__(info)
        self.l2 = info.l2

    # ---- building the skb -------------------------------------------------------------
    def _check_ctx(self, ctx: bytes, size: int) -> bytearray:
        c = bytearray(ctx.ljust(SK_BUFF.size, b"\0"))
        allowed = bytearray(SK_BUFF.size)
        for name in _CTX_IN:
            f = SK_BUFF[name]
            allowed[f.offset : f.end] = b"\xff" * f.size
        if any(b & ~a & 0xFF for b, a in zip(c, allowed, strict=True)):
            raise TestRunError(
                errno.EINVAL,
                "__sk_buff fields other than mark, priority, "
                "ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, "
                "gso_size and hwtstamp must be zero",
            )
        wire_len = _u32(c, _OFF["wire_len"])
        if wire_len and (wire_len < size or wire_len > GSO_LEGACY_MAX_SIZE):
            raise TestRunError(
                errno.EINVAL,
                f"wire_len {wire_len} is below the packet "
                f"length {size} or above {GSO_LEGACY_MAX_SIZE}",
            )
        if _u32(c, _OFF["gso_segs"]) > GSO_MAX_SEGS:
            raise TestRunError(errno.EINVAL, "gso_segs above GSO_MAX_SEGS")
        return c

    def _sock(self, prog, frame: bytes, protocol_wire: bytes) -> Region:
        sk = bytearray(BPF_SOCK.size)
        proto = int.from_bytes(protocol_wire, "big")
        l3 = frame[ETH_HLEN:]
        family = 0
        if proto == 0x0800:
            family = AF_INET
            if len(l3) >= 20:
                sk[_SOCK["src_ip4"] : _SOCK["src_ip4"] + 4] = l3[12:16]
                sk[_SOCK["dst_ip4"] : _SOCK["dst_ip4"] + 4] = l3[16:20]
        elif proto == 0x86DD:
            family = AF_INET6
            if len(l3) >= 40:
                sk[_SOCK["src_ip6"] : _SOCK["src_ip6"] + 16] = l3[8:24]
                sk[_SOCK["dst_ip6"] : _SOCK["dst_ip6"] + 16] = l3[24:40]
        struct.pack_into("<I", sk, _SOCK["family"], family)
        struct.pack_into("<I", sk, _SOCK["state"], TCP_CLOSE)
        struct.pack_into("<i", sk, _SOCK["rx_queue_mapping"], -1)
        r = Region.alloc("sk", len(sk), init=bytes(sk))
        prog.runtime.space.add(r)
        return r

    def test_run(
        self,
        prog,
        *,
        data: bytes = b"",
        ctx: bytes | None = None,
        repeat: int = 1,
        engine: str = "interp",
        kernel_stack=(),
        user_stack=(),
        **opts,
    ) -> RunOutcome:
        data = bytes(data)
        size = len(data)
        if size < ETH_HLEN or size > SKB_MAX_DATA:
            raise TestRunError(
                errno.EINVAL,
                f"skb test runs take {ETH_HLEN}..{SKB_MAX_DATA} bytes of data, got {size}",
            )
        ctx_given = ctx is not None
        cin = (
            self._check_ctx(ctx_bytes(ctx, SK_BUFF.size, "__sk_buff"), size)
            if ctx_given
            else bytearray(SK_BUFF.size)
        )
        protocol, pkt_type = eth_type_trans(data)
        space = prog.runtime.space
        head = SKB_HEADROOM if self.l2 else SKB_HEADROOM + ETH_HLEN
        buf_size = PAGE_SIZE
        pkt = PacketBuffer(
            space, buf_size, head, data if self.l2 else data[ETH_HLEN:], name=f"packet:{self.name}"
        )
        # the Ethernet header still sits in front of a network-layer packet
        pkt.mv[SKB_HEADROOM : SKB_HEADROOM + ETH_HLEN] = data[:ETH_HLEN]
        # eth_type_trans set the MAC header, the test run the network header after it
        pkt.mac, pkt.network = SKB_HEADROOM, SKB_HEADROOM + ETH_HLEN
        run = RunState(packet=pkt, kernel_stack=kernel_stack, user_stack=user_stack)
        c = self.alloc_ctx(prog)
        sk = self._sock(prog, data, data[12:14])
        mv = c.mv
        skb_len = pkt.length
        ints = {
            "len": skb_len,
            "pkt_type": pkt_type,
            "protocol": protocol,
            "ifindex": LOOPBACK_IFINDEX,
        }
        for name, v in ints.items():
            struct.pack_into("<I", mv, _OFF[name], v)
        for name in (
            "mark",
            "priority",
            "ingress_ifindex",
            "cb",
            "tstamp",
            "gso_segs",
            "gso_size",
            "hwtstamp",
        ):
            f = SK_BUFF[name]
            mv[f.offset : f.end] = cin[f.offset : f.end]
        if ctx_given:
            ifindex = _u32(cin, _OFF["ifindex"])
            if ifindex > 1:
                struct.pack_into("<I", mv, _OFF["ifindex"], ifindex)
            wire = _u32(cin, _OFF["wire_len"]) or skb_len
            struct.pack_into("<I", mv, _OFF["wire_len"], wire)
        sock_raw = bytes(sk.mv[: sk.size])
        family = _u32(sock_raw, _SOCK["family"])
        struct.pack_into("<I", mv, _OFF["family"], family)
        mv[_OFF["remote_ip4"] : _OFF["remote_ip4"] + 4] = sock_raw[
            _SOCK["dst_ip4"] : _SOCK["dst_ip4"] + 4
        ]
        mv[_OFF["local_ip4"] : _OFF["local_ip4"] + 4] = sock_raw[
            _SOCK["src_ip4"] : _SOCK["src_ip4"] + 4
        ]
        mv[_OFF["remote_ip6"] : _OFF["remote_ip6"] + 16] = sock_raw[
            _SOCK["dst_ip6"] : _SOCK["dst_ip6"] + 16
        ]
        mv[_OFF["local_ip6"] : _OFF["local_ip6"] + 16] = sock_raw[
            _SOCK["src_ip6"] : _SOCK["src_ip6"] + 16
        ]
        struct.pack_into("<Q", mv, _OFF["sk"], sk.base)

        def sync(p: PacketBuffer) -> None:
            struct.pack_into("<Q", mv, self.slots["data"], p.data_addr)
            struct.pack_into("<Q", mv, self.slots["data_end"], p.end_addr)
            struct.pack_into("<Q", mv, self.slots["data_meta"], p.data_addr)
            struct.pack_into("<I", mv, _OFF["len"], p.length)
            if "hash" in p.fields:
                struct.pack_into("<I", mv, _OFF["hash"], p.fields["hash"])

        pkt.on_change = sync
        sync(pkt)
        try:
            r0, dt = self.repeat_runs(prog, run, c.base, repeat, engine)
            out = pkt.read(0, pkt.length)
            if not self.l2:
                out = bytes(ETH_HLEN) + out
            ctx_out = None
            if ctx_given:
                co = bytearray(cin)
                for name in _CTX_OUT:
                    f = SK_BUFF[name]
                    co[f.offset : f.end] = mv[f.offset : f.end]
                if not _u32(cin, _OFF["wire_len"]):
                    struct.pack_into("<I", co, _OFF["wire_len"], skb_len)
                ctx_out = bytes(co)
        finally:
            pkt.close()
            space.remove(c)
            space.remove(sk)
        return RunOutcome(
            r0 & 0xFFFFFFFF, r0, out, ctx_out, dt, run.output, run.redirect, max(1, repeat)
        )
