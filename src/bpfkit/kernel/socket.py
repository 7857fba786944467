"""Attach socket filters (``SO_ATTACH_BPF``) and reuseport selectors to real sockets.

The attachment lives on the socket: closing the returned :class:`Link` detaches the
filter (``SO_DETACH_BPF``); closing the socket drops it too.
"""

from __future__ import annotations

import errno
import socket as _socket
from typing import Any

from ..errors import KernelError
from . import sys as bsys
from .link import Link

__all__ = ["attach_socket_filter", "attach_reuseport", "SO_ATTACH_BPF", "SO_DETACH_BPF"]

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # SO_DETACH_FILTER
SO_ATTACH_REUSEPORT_EBPF = 52
SO_DETACH_REUSEPORT_BPF = 68


def _sockobj(sock: Any) -> _socket.socket:
    if isinstance(sock, _socket.socket):
        return sock
    fd = sock if isinstance(sock, int) else sock.fileno()
    return _socket.socket(fileno=_socket.dup(fd))


def _attach(program: Any, sock: Any, opt: int, detach_opt: int, kind: str) -> Link:
    pfd = program.fd if hasattr(program, "fd") else bsys.fdnum(program)
    s = _sockobj(sock)
    try:
        s.setsockopt(_socket.SOL_SOCKET, opt, pfd)
    except OSError as e:
        raise KernelError(e.errno or errno.EINVAL, f"setsockopt({kind})", "") from None

    def detach() -> None:
        if s.fileno() < 0:
            return  # the socket is gone, and the filter with it
        try:
            s.setsockopt(_socket.SOL_SOCKET, detach_opt, 0)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBADF, errno.ENOTSOCK):
                raise

    return Link(None, kind, target=s, program=program, cleanup=[detach])


def attach_socket_filter(program: Any, sock: Any) -> Link:
    """Filter what ``sock`` receives with a ``SOCKET_FILTER`` program."""
    return _attach(program, sock, SO_ATTACH_BPF, SO_DETACH_BPF, "socket_filter")


def attach_reuseport(program: Any, sock: Any) -> Link:
    """Select a socket of ``sock``'s ``SO_REUSEPORT`` group with an ``SK_REUSEPORT`` program."""
    return _attach(program, sock, SO_ATTACH_REUSEPORT_EBPF, SO_DETACH_REUSEPORT_BPF, "sk_reuseport")
