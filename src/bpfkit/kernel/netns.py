"""Run code inside a network namespace (``ip netns`` names or ``/proc/PID/ns/net`` paths).

Interfaces are looked up by index in the *calling thread's* namespace, so attaching XDP
or tc to a device of another namespace means entering it first::

    with netns("bpfkit-test"):
        link = attach_xdp(prog, "veth1")
        sock = socket.socket(...)   # a socket made here stays in that namespace

``setns(2)`` changes only the calling thread; the previous namespace is restored on exit.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import KernelError

__all__ = ["netns", "netns_path"]

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    """The file of a namespace: an ``ip netns`` name or a path."""
    return name if os.sep in name else f"/run/netns/{name}"


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise KernelError(err, "setns", "cannot enter the network namespace (needs CAP_SYS_ADMIN)")


@contextmanager
def netns(name: str) -> Iterator[None]:
    """Enter network namespace ``name`` for the duration of the block (this thread only)."""
    old = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        new = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        os.close(old)
        raise KernelError(2, "open", f"no network namespace {name!r}") from None
    try:
        _setns(new)
        try:
            yield
        finally:
            _setns(old)
    finally:
        os.close(new)
        os.close(old)
