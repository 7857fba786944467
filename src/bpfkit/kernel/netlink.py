"""A minimal rtnetlink client: enough for clsact qdiscs, ``cls_bpf`` filters and XDP.

Messages are built with ``struct`` (``nlmsghdr``, ``tcmsg``/``ifinfomsg``, ``rtattr``
TLVs padded to 4 bytes) and sent with ``NLM_F_ACK``; an error reply becomes a
:class:`~bpfkit.errors.KernelError` with the kernel's extended ack message when present.
"""

from __future__ import annotations

import errno
import itertools
import socket
import struct

from ..errors import KernelError

__all__ = ["Netlink", "attr", "nested", "ifindex_of"]

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 1, 4, 0x200, 0x400, 0x100
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG = 1
NLM_F_ACK_TLVS = 0x200
NETLINK_EXT_ACK = 11
SOL_NETLINK = 270

_NLMSG = struct.Struct("=IHHII")
_RTA = struct.Struct("=HH")


def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes | str | int, fmt: str = "=I") -> bytes:
    """One ``rtattr``: bytes as is, a str NUL-terminated, an int packed with ``fmt``."""
    if isinstance(data, str):
        data = data.encode() + b"\0"
    elif isinstance(data, int):
        data = struct.pack(fmt, data)
    body = _RTA.pack(_RTA.size + len(data), kind) + data
    return body + bytes(_pad(len(body)) - len(body))


def nested(kind: int, *attrs: bytes) -> bytes:
    """A nested ``rtattr`` holding ``attrs``."""
    return attr(kind, b"".join(attrs))


def ifindex_of(iface: int | str) -> int:
    """The ifindex of an interface name (or the index itself), in this thread's netns."""
    if isinstance(iface, int):
        return iface
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise KernelError(errno.ENODEV, "if_nametoindex", f"no interface {iface!r}") from None


class Netlink:
    """One ``NETLINK_ROUTE`` socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass
        self.sock.bind((0, 0))
        self._seq = itertools.count(1)

    def request(self, msg_type: int, flags: int, payload: bytes, what: str) -> None:
        """Send one request with ``NLM_F_ACK`` and raise on an error reply."""
        seq = next(self._seq)
        hdr = _NLMSG.pack(
            _NLMSG.size + len(payload), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0
        )
        self.sock.send(hdr + payload)
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + _NLMSG.size <= len(data):
                length, mtype, mflags, mseq, _pid = _NLMSG.unpack_from(data, pos)
                if length < _NLMSG.size:
                    raise KernelError(errno.EPROTO, what, "malformed netlink reply")
                if mseq == seq and mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, pos + _NLMSG.size)
                    if err == 0:
                        return
                    raise KernelError(-err, what, self._ext_ack(data, pos, length, mflags))
                if mseq == seq and mtype == NLMSG_DONE:
                    return
                pos += _pad(length)

    @staticmethod
    def _ext_ack(data: bytes, pos: int, length: int, flags: int) -> str:
        if not flags & NLM_F_ACK_TLVS:
            return ""
        # error code, then the original header (capped), then TLVs.
        inner = pos + _NLMSG.size + 4
        orig_len = _NLMSG.unpack_from(data, inner)[0] if inner + _NLMSG.size <= len(data) else 0
        tlv = inner + (_NLMSG.size if flags & 0x100 else _pad(orig_len))  # NLM_F_CAPPED
        end = pos + length
        while tlv + 4 <= end:
            alen, atype = _RTA.unpack_from(data, tlv)
            if alen < 4:
                break
            if atype == NLMSGERR_ATTR_MSG:
                return data[tlv + 4 : tlv + alen].split(b"\0", 1)[0].decode(errors="replace")
            tlv += _pad(alen)
        return ""

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
