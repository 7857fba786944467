"""Attach socket filters (``SO_ATTACH_BPF``) and reuseport selectors to real sockets.

The attachment lives on the socket: closing the returned :class:`Link` detaches the
filter (``SO_DETACH_BPF``); closing the socket drops it too. Classic programs
(``struct sock_filter``) attach with ``SO_ATTACH_FILTER`` (:func:`attach_classic_filter`);
the kernel checks and translates them itself, needing no privileges.
``SO_LOCK_FILTER`` (:func:`lock_filter`) pins whatever filter the socket has: later
attach or detach calls fail with ``EPERM``.
"""

from __future__ import annotations

import ctypes
import errno
import socket as _socket
from collections.abc import Sequence
from typing import Any

from ..errors import KernelError
from . import sys as bsys
from .link import Link

__all__ = [
    "attach_socket_filter",
    "attach_reuseport",
    "attach_classic_filter",
    "detach_filter",
    "lock_filter",
    "get_classic_filter",
    "SO_ATTACH_BPF",
    "SO_DETACH_BPF",
    "SO_ATTACH_FILTER",
    "SO_LOCK_FILTER",
]

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
SO_GET_FILTER = SO_ATTACH_FILTER
SO_LOCK_FILTER = 44
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


# ---- classic filters (struct sock_fprog) ---------------------------------------------
class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    """``struct sock_fprog``: the length and a pointer to the ``sock_filter`` array."""

    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def sock_fprog(prog: Sequence[Any]) -> tuple[SockFprog, ctypes.Array]:
    """A ``sock_fprog`` for ``prog`` (``SockFilter``s or 4-tuples) and the array it points
    to (keep both alive while the kernel reads them). ``len`` is truncated to 16 bits as
    the C field is, so a 65536-instruction program reaches the kernel as length 0."""
    arr = (_SockFilter * max(1, len(prog)))(*[_SockFilter(*map(int, i)) for i in prog])
    return SockFprog(len(prog) & 0xFFFF, ctypes.cast(arr, ctypes.POINTER(_SockFilter))), arr


_libc = ctypes.CDLL(None, use_errno=True)
_libc.setsockopt.argtypes = [
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_uint32,
]
_libc.getsockopt.argtypes = [
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint32),
]


def _fd(sock: Any) -> int:
    return sock if isinstance(sock, int) else sock.fileno()


def _setsockopt(fd: int, opt: int, buf: Any, size: int, what: str, hint: str = "") -> None:
    if _libc.setsockopt(fd, _socket.SOL_SOCKET, opt, buf, size) != 0:
        err = ctypes.get_errno()
        raise KernelError(err, f"setsockopt({what})", hint)


def attach_classic_filter(sock: Any, prog: Sequence[Any]) -> Link:
    """Attach classic program ``prog`` to ``sock`` (a socket, or its fd) with
    ``SO_ATTACH_FILTER``; the kernel runs its checker (``EINVAL`` on refusal, see
    :func:`bpfkit.classic.check.check`). Closing the returned link detaches it, unless
    the filter was locked meanwhile."""
    fd = _fd(sock)
    fprog, arr = sock_fprog(prog)
    _setsockopt(
        fd,
        SO_ATTACH_FILTER,
        ctypes.byref(fprog),
        ctypes.sizeof(fprog),
        "SO_ATTACH_FILTER",
        "bpfkit.classic.check names the rule a refused program breaks",
    )
    del arr
    target = sock if isinstance(sock, _socket.socket) else fd

    def detach() -> None:
        try:
            if _fd(target) < 0:
                return
            detach_filter(target)
        except KernelError as e:
            # gone with the socket, replaced, or locked: nothing more to undo
            if e.errno not in (errno.ENOENT, errno.EBADF, errno.ENOTSOCK, errno.EPERM):
                raise

    return Link(None, "classic_filter", target=target, program=list(prog), cleanup=[detach])


def detach_filter(sock: Any) -> None:
    """Remove the socket's filter (classic or eBPF) with ``SO_DETACH_FILTER``
    (``EPERM`` once locked, ``ENOENT`` when there is none)."""
    zero = ctypes.c_int(0)
    _setsockopt(_fd(sock), SO_DETACH_FILTER, ctypes.byref(zero), 4, "SO_DETACH_FILTER")


def lock_filter(sock: Any) -> None:
    """Lock the socket's filter (``SO_LOCK_FILTER``): no attach or detach after this."""
    one = ctypes.c_int(1)
    _setsockopt(_fd(sock), SO_LOCK_FILTER, ctypes.byref(one), 4, "SO_LOCK_FILTER")


def get_classic_filter(sock: Any) -> list[tuple[int, int, int, int]]:
    """The classic program attached to ``sock`` as the kernel keeps it (``SO_GET_FILTER``);
    ``[]`` without one. An eBPF filter attached with ``SO_ATTACH_BPF`` gives ``EINVAL``."""
    fd = _fd(sock)
    n = ctypes.c_uint32(0)
    if _libc.getsockopt(fd, _socket.SOL_SOCKET, SO_GET_FILTER, None, ctypes.byref(n)) != 0:
        raise KernelError(ctypes.get_errno(), "getsockopt(SO_GET_FILTER)")
    if n.value == 0:
        return []
    arr = (_SockFilter * n.value)()
    size = ctypes.c_uint32(n.value)  # counted in instructions, not bytes
    if _libc.getsockopt(fd, _socket.SOL_SOCKET, SO_GET_FILTER, arr, ctypes.byref(size)) != 0:
        raise KernelError(ctypes.get_errno(), "getsockopt(SO_GET_FILTER)")
    return [(i.code, i.jt, i.jf, i.k) for i in arr[: size.value]]
