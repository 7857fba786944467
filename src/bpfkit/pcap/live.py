"""Live capture: an AF_PACKET socket with a classic filter attached in the kernel.

The filter is attached (``SO_ATTACH_FILTER``) before the socket is bound to the
interface, so no packet reaches the socket unfiltered. Each packet comes with its length
on the wire (``MSG_TRUNC``) and the kernel's receive time (``SO_TIMESTAMPNS``); the
captured bytes are cut to the snapshot length, as libpcap does.

The kernel runs the program with its own semantics, and it removes 802.1Q tags from
received frames before packet sockets see them, so ``vlan`` primitives (which look for
the tag in the frame, as on a capture file) do not match live VLAN traffic.
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
SOL_SOCKET = 1
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
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


class LiveCapture:
    """Packets from an interface, filtered in the kernel (``for pkt in LiveCapture(...)``)."""

    def __init__(self, ifname: str, program: Sequence[SockFilter] | None, snaplen: int = 262144):
        self.ifname = ifname
        self.linktype = interface_linktype(ifname)
        self.snaplen = snaplen
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
            self.sock.bind((ifname, ETH_P_ALL))
        except OSError as e:
            self.sock.close()
            if isinstance(e, KernelError):
                raise
            raise KernelError(
                e.errno or errno.EINVAL, f"bind to {ifname}", str(e.strerror)
            ) from None
        self._buf = bytearray(max(snaplen, 65536) + 256)

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
                [self._buf], socket.CMSG_SPACE(16), socket.MSG_TRUNC
            )
            ts = time.time_ns()
            for level, typ, data in anc:
                if level == SOL_SOCKET and typ == SCM_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    ts = sec * 1_000_000_000 + nsec
            caplen = min(nbytes, self.snaplen, len(self._buf))
            n += 1
            yield Packet(bytes(self._buf[:caplen]), nbytes, ts, lt, 0)

    def close(self) -> None:
        self.sock.close()
        self._link = None

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
