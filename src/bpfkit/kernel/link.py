"""``Link``: one attachment of a program to a hook; detached when closed.

Every attach function of :mod:`bpfkit.kernel` returns a :class:`Link`. Most hold a BPF
link (``BPF_LINK_CREATE`` / ``BPF_RAW_TRACEPOINT_OPEN``) that can be pinned in bpffs to
outlive the process, updated to another program, and described by
``BPF_OBJ_GET_INFO_BY_FD``. Attachments made the older way (a perf event with
``PERF_EVENT_IOC_SET_BPF``, a tc filter through netlink, a socket option) have no link
fd; closing them runs their own detach step, and pinning them raises
:class:`~bpfkit.errors.NotSupported`.

Closing a link that is pinned (by anyone) only drops this process's reference: the
program stays attached until the pin is removed. :meth:`Link.detach` forces it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import KernelError, NotSupported
from . import sys as bsys

__all__ = ["Link", "MultiLink", "open_pinned_link"]


def _call_all(fns: Iterable[Callable[[], object]]) -> None:
    """Call every function even when some raise; then raise the first error."""
    first: Exception | None = None
    for fn in fns:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - run every one, report the first
            if first is None:
                first = e
    if first is not None:
        raise first


class Link(bsys.Pinnable, bsys.Closing):
    """An attached program: a context manager that detaches on close."""

    def __init__(
        self,
        fd: bsys.FD | int | None,
        kind: str,
        *,
        target: Any = None,
        program: Any = None,
        extra_fds: Iterable[bsys.FD] = (),
        cleanup: Iterable[Callable[[], None]] = (),
    ) -> None:
        if isinstance(fd, int):
            fd = bsys.FD(fd)
        self._fd: bsys.FD | None = fd
        self.kind = kind
        self.target = target
        self.program = program
        self._extra = list(extra_fds)
        self._cleanup = list(cleanup)
        self.pinned: str | None = None
        self._closed = False

    # ---- identity -----------------------------------------------------------
    @property
    def has_link(self) -> bool:
        """Whether a BPF link fd backs this attachment (pinnable, updatable)."""
        return self._fd is not None and not self._fd.closed

    @property
    def fd(self) -> int:
        """The BPF link's fd (``NotSupported`` for attachments without one)."""
        if self._fd is None:
            raise NotSupported(f"this {self.kind} attachment has no BPF link fd")
        return self._fd.fileno()

    def fileno(self) -> int:
        """Same as :attr:`fd`."""
        return self.fd

    @property
    def closed(self) -> bool:
        """Whether the link was closed."""
        return self._closed

    @property
    def id(self) -> int:
        """The kernel's id of the link."""
        return self.info().id

    def info(self) -> bsys.LinkInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` of the link."""
        return bsys.link_info(self.fd)

    # ---- operations -----------------------------------------------------------
    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link in bpffs: the program stays attached after this process exits."""
        if self._fd is None:
            raise NotSupported(
                f"a {self.kind} attachment without a BPF link cannot be pinned "
                "(the kernel made it through a perf event, netlink or a socket option)"
            )
        super().pin(path)

    def update(self, program: Any, old: Any = None) -> None:
        """Replace the attached program (``BPF_LINK_UPDATE``)."""
        old_fd = old.fd if old is not None and hasattr(old, "fd") else (old or 0)
        bsys.link_update(self.fd, program.fd if hasattr(program, "fd") else program, 0, old_fd)
        self.program = program

    def detach(self) -> bool:
        """Detach the program even if the link is pinned or shared, then close.

        Returns whether the kernel forced the detach (``BPF_LINK_DETACH``; not every link
        kind supports it, and those detach when their last reference goes).
        """
        forced = self._force_detach()
        self.close()
        return forced

    def _force_detach(self) -> bool:
        if self._fd is None or self._fd.closed:
            return False
        try:
            bsys.link_detach(self._fd)
        except KernelError:
            return False
        return True

    def close(self) -> None:
        """Drop this attachment (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            self._fd.close()
        for fd in self._extra:
            fd.close()
        cleanup, self._cleanup = self._cleanup[::-1], []
        _call_all(cleanup)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("link" if self._fd is not None else "attached")
        return f"<Link {self.kind} {self.target!r} {state}>"


class MultiLink(Link):
    """Several attachments (one per CPU, one per probe) closed together."""

    def __init__(self, links: Iterable[Link], kind: str, *, target: Any = None) -> None:
        super().__init__(None, kind, target=target)
        self.links = list(links)

    @property
    def has_link(self) -> bool:
        return False

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin every member as ``path/<n>`` (``path`` is created as a directory)."""
        os.makedirs(path, exist_ok=True)
        for i, link in enumerate(self.links):
            link.pin(os.path.join(path, str(i)))
        self.pinned = os.fspath(path)

    def unpin(self) -> None:
        """Remove the pins made by :meth:`pin`."""
        if self.pinned:
            for link in self.links:
                link.unpin()
            os.rmdir(self.pinned)
            self.pinned = None

    def detach(self) -> bool:
        """Detach every member; whether the kernel forced all of them."""
        return super().detach()

    def _force_detach(self) -> bool:
        return all([link.detach() for link in self.links])

    def _release(self) -> None:
        _call_all(link.close for link in self.links)

    def __len__(self) -> int:
        return len(self.links)


def open_pinned_link(path: str | os.PathLike[str]) -> Link:
    """A :class:`Link` for a link pinned at ``path`` (closing it leaves the pin)."""
    fd = bsys.FD(bsys.obj_get(path))
    info = bsys.link_info(fd)
    kind = getattr(info.type, "name", str(info.type)).lower()
    link = Link(fd, kind, target=info.details or None)
    link.pinned = None  # the pin is not ours to remove
    return link
