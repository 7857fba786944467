"""Live capture: an AF_PACKET socket with a classic filter attached in the kernel.

The filter is attached (``SO_ATTACH_FILTER``) before the socket is bound to the
interface, so no packet reaches the socket unfiltered. Each packet comes with its length
on the wire (``MSG_TRUNC``) and the kernel's receive time (``SO_TIMESTAMPNS``); the
captured bytes are cut to the snapshot length, as libpcap does.

The kernel runs the program with its own semantics, and it takes the outer 802.1Q/802.1ad
tag out of a received frame (into the packet's metadata) before packet sockets see it. So,
as libpcap does on Linux, an expression is compiled for live capture
(``compile_filter(..., live=True)``: ``vlan`` tests the kernel's VLAN metadata first), and
the tag is put back into each captured frame from the socket's ``PACKET_AUXDATA`` — the
packets read as those tcpdump captures on the same interface.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Iterator, Sequence

from ..classic.insn import SockFilter
from ..errors import KernelError
from .capfile import Packet

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
SOL_SOCKET = 1
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_RCVBUF, SO_RCVBUFFORCE = 8, 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
#: the socket's receive buffer, as libpcap's default capture buffer (2 MiB): a burst is
#: queued rather than dropped while the reader catches up
BUFFER_SIZE = 2 << 20
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
#: struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
_AUXDATA = struct.Struct("=IIIHHHH")
SIOCGIFHWADDR = 0x8927
ARPHRD_ETHER, ARPHRD_LOOPBACK, ARPHRD_NONE = 1, 772, 0xFFFE

# Link types whose frames arrive as-is on a SOCK_RAW packet socket.
_ARPHRD_LINKTYPE = {ARPHRD_ETHER: "EN10MB", ARPHRD_LOOPBACK: "EN10MB", ARPHRD_NONE: "RAW"}


def interface_linktype(ifname: str) -> str:
    """The capture link type (EN10MB or RAW) for an interface, from its ARPHRD type."""
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        raise KernelError(errno.ENODEV, f"interface {ifname!r}", "no such interface") from None
    try:
        with open(f"/sys/class/net/{ifname}/type", encoding="ascii") as f:
            hatype = int(f.read().strip())
    except (OSError, ValueError):
        hatype = ARPHRD_ETHER
    lt = _ARPHRD_LINKTYPE.get(hatype)
    if lt is None:
        raise KernelError(
            errno.EPROTONOSUPPORT,
            f"capture on {ifname}",
            f"interface hardware type {hatype} is not supported (Ethernet, loopback, raw IP)",
        )
    return lt


def attach_classic(sock: socket.socket, prog: Sequence[SockFilter]):
    """Attach ``prog`` to ``sock`` with ``SO_ATTACH_FILTER`` (the kernel runs its classic
    checker and refuses with EINVAL); the returned link detaches it when closed or
    collected, so keep it as long as the socket."""
    from ..kernel.socket import attach_classic_filter

    return attach_classic_filter(sock, list(prog))


def live_program(expr: str, linktype: str, snaplen: int = 262144) -> list[SockFilter]:
    """``expr`` compiled for a live capture on Linux, as ``tcpdump -i IFACE -d`` compiles it.

    ``protochain`` is refused with the reason: its program loops backwards, which the
    kernel's checker forbids."""
    from ..errors import FilterSyntaxError
    from .filter import compile_filter

    prog = compile_filter(expr, linktype, snaplen=snaplen, live=True)
    for pc, ins in enumerate(prog):
        if ins.code == 0x05 and ins.k >= 0x80000000:  # ja backwards: protochain's loop
            raise FilterSyntaxError(
                "protochain cannot be used for a live capture: its program jumps backwards "
                f"(instruction {pc}), and the kernel accepts only forward jumps; filter a "
                "capture file with it instead (bpfkit filter run)"
            )
    return prog


def insert_vlan_tag(data: bytes, wirelen: int, aux: bytes) -> tuple[bytes, int]:
    """Put back the VLAN tag the kernel took out of a received Ethernet frame, from the
    socket's ``PACKET_AUXDATA`` (``tpacket_auxdata``), as libpcap does: after the two MAC
    addresses, TPID as reported (802.1Q when the kernel does not say), both lengths + 4."""
    if len(aux) < _AUXDATA.size or len(data) < 12:
        return data, wirelen
    status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(aux)
    if not (tci or status & TP_STATUS_VLAN_VALID):
        return data, wirelen
    if not status & TP_STATUS_VLAN_TPID_VALID:
        tpid = ETH_P_8021Q
    return data[:12] + struct.pack("!HH", tpid, tci) + data[12:], wirelen + 4


class LiveCapture:
    """Packets from an interface, filtered in the kernel (``for pkt in LiveCapture(...)``).

    ``program`` is an expression (compiled for live capture on the interface's link type,
    see :func:`live_program`), a classic program, or None for every packet."""

    def __init__(
        self,
        ifname: str,
        program: str | Sequence[SockFilter] | None,
        snaplen: int = 262144,
    ):
        self.ifname = ifname
        self.linktype = interface_linktype(ifname)
        self.snaplen = snaplen
        if isinstance(program, str):
            program = live_program(program, self.linktype, snaplen) if program else None
        try:
            # protocol 0: nothing is queued until bind() names the protocol
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise KernelError(
                errno.EPERM, "socket(AF_PACKET)", "live capture needs CAP_NET_RAW"
            ) from None
        try:
            self._link = attach_classic(self.sock, program) if program is not None else None
            self.sock.setsockopt(SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:  # past net.core.rmem_max when allowed (CAP_NET_ADMIN)
                self.sock.setsockopt(SOL_SOCKET, SO_RCVBUFFORCE, BUFFER_SIZE)
            except OSError:
                self.sock.setsockopt(SOL_SOCKET, SO_RCVBUF, BUFFER_SIZE)
            self.sock.bind((ifname, ETH_P_ALL))
        except OSError as e:
            self.sock.close()
            if isinstance(e, KernelError):
                raise
            raise KernelError(
                e.errno or errno.EINVAL, f"bind to {ifname}", str(e.strerror)
            ) from None
        self._buf = bytearray(max(snaplen, 65536) + 256)
        self.received = self.dropped = 0

    def packets(self, count: int | None = None, timeout: float | None = None) -> Iterator[Packet]:
        """Up to ``count`` packets, until ``timeout`` seconds pass without reaching it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        n = 0
        lt = 1 if self.linktype == "EN10MB" else 101
        while count is None or n < count:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return
            nbytes, anc, _flags, _addr = self.sock.recvmsg_into(
                [self._buf],
                socket.CMSG_SPACE(16) + socket.CMSG_SPACE(_AUXDATA.size),
                socket.MSG_TRUNC,
            )
            ts = time.time_ns()
            aux = b""
            for level, typ, data in anc:
                if level == SOL_SOCKET and typ == SCM_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    ts = sec * 1_000_000_000 + nsec
                elif level == SOL_PACKET and typ == PACKET_AUXDATA:
                    aux = data
            frame = bytes(self._buf[: min(nbytes, len(self._buf))])
            wirelen = nbytes
            if lt == 1 and aux:
                frame, wirelen = insert_vlan_tag(frame, wirelen, aux)
            n += 1
            yield Packet(frame[: self.snaplen], wirelen, ts, lt, 0)

    def stats(self) -> tuple[int, int]:
        """(packets the filter passed, packets dropped for want of buffer space) since the
        last call — the kernel's ``PACKET_STATISTICS``, which tcpdump reports on exit."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        passed, dropped = struct.unpack("II", raw[:8])
        self.received += passed
        self.dropped += dropped
        return self.received, self.dropped

    def close(self) -> None:
        self.sock.close()
        self._link = None

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
