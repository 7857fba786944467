"""Attach ``SEC("tc")``/``SEC("tcx/ingress")`` programs to a device's ingress or egress.

``mode="tcx"`` creates a ``BPF_LINK_TYPE_TCX`` link (kernel 6.6+): no qdisc, ordered
multi-program attachment, detach on close, pinnable. ``mode="clsact"`` does it the
classic way through rtnetlink: add a ``clsact`` qdisc (unless there is one), add a
``cls_bpf`` filter in direct-action mode with the program's fd, and on close delete the
filter (and the qdisc, if this call created it). The default tries tcx, then clsact.
"""

from __future__ import annotations

import errno
import itertools
import socket
import struct
from typing import Any

from ..errors import KernelError
from ..uapi.attach import NewAttachType
from . import sys as bsys
from .link import Link
from .netlink import NLM_F_CREATE, NLM_F_EXCL, Netlink, attr, ifindex_of, nested

__all__ = [
    "attach_tc",
    "attach_tcx",
    "attach_clsact",
    "TC_ACT_OK",
    "TC_ACT_SHOT",
    "TC_ACT_UNSPEC",
    "TC_ACT_REDIRECT",
]

TC_ACT_UNSPEC, TC_ACT_OK, TC_ACT_RECLASSIFY, TC_ACT_SHOT = -1, 0, 1, 2
TC_ACT_REDIRECT = 7

RTM_NEWQDISC, RTM_DELQDISC, RTM_NEWTFILTER, RTM_DELTFILTER = 36, 37, 44, 45
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS = 6, 7, 8
TCA_BPF_FLAG_ACT_DIRECT = 1
TC_H_CLSACT = 0xFFFFFFF1
TC_H_MIN_INGRESS, TC_H_MIN_EGRESS = 0xFFF2, 0xFFF3
ETH_P_ALL = 0x0003
_TCMSG = struct.Struct("=BxxxiIII")
_handles = itertools.count(1)


def _direction(direction: str) -> str:
    d = direction.lower()
    if d not in ("ingress", "egress"):
        raise ValueError(f"direction must be ingress or egress, not {direction!r}")
    return d


def _prog_fd(program: Any) -> int:
    return program.fd if hasattr(program, "fd") else bsys.fdnum(program)


def attach_tcx(program: Any, iface: int | str, direction: str = "ingress") -> Link:
    """A tcx link (``BPF_TCX_INGRESS``/``BPF_TCX_EGRESS``) on ``iface``."""
    d = _direction(direction)
    atype = NewAttachType.TCX_INGRESS if d == "ingress" else NewAttachType.TCX_EGRESS
    fd = bsys.link_create(_prog_fd(program), ifindex_of(iface), atype)
    return Link(fd, "tcx", target=(iface, d), program=program)


def _tcmsg(ifindex: int, handle: int, parent: int, info: int) -> bytes:
    return _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, info)


def attach_clsact(
    program: Any,
    iface: int | str,
    direction: str = "ingress",
    *,
    priority: int = 1,
    handle: int | None = None,
    name: str | None = None,
) -> Link:
    """A direct-action ``cls_bpf`` filter on the ``clsact`` qdisc of ``iface`` (netlink)."""
    d = _direction(direction)
    ifindex = ifindex_of(iface)
    pfd = _prog_fd(program)
    parent = (TC_H_CLSACT & 0xFFFF0000) | (TC_H_MIN_INGRESS if d == "ingress" else TC_H_MIN_EGRESS)
    handle = handle or next(_handles)
    info = (priority << 16) | socket.htons(ETH_P_ALL)
    label = name or getattr(program, "name", "bpfkit") or "bpfkit"
    created_qdisc = False
    # The socket is made (and kept) in this thread's netns, where the device is.
    nl = Netlink()
    try:
        try:
            nl.request(
                RTM_NEWQDISC,
                NLM_F_CREATE | NLM_F_EXCL,
                _tcmsg(ifindex, 0xFFFF0000, TC_H_CLSACT, 0) + attr(TCA_KIND, "clsact"),
                "RTM_NEWQDISC(clsact)",
            )
            created_qdisc = True
        except KernelError as e:
            if e.errno != errno.EEXIST:
                raise
        try:
            nl.request(
                RTM_NEWTFILTER,
                NLM_F_CREATE | NLM_F_EXCL,
                _tcmsg(ifindex, handle, parent, info)
                + attr(TCA_KIND, "bpf")
                + nested(
                    TCA_OPTIONS,
                    attr(TCA_BPF_FD, pfd),
                    attr(TCA_BPF_NAME, f"{label}:[{pfd}]"),
                    attr(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT),
                ),
                "RTM_NEWTFILTER(bpf)",
            )
        except BaseException:
            if created_qdisc:
                _del_qdisc(nl, ifindex)
            raise
    except BaseException:
        nl.close()
        raise

    def detach() -> None:
        try:
            try:
                nl.request(
                    RTM_DELTFILTER,
                    0,
                    _tcmsg(ifindex, handle, parent, info) + attr(TCA_KIND, "bpf"),
                    "RTM_DELTFILTER(bpf)",
                )
            except KernelError as e:
                if e.errno not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                    raise
            if created_qdisc:
                _del_qdisc(nl, ifindex)
        finally:
            nl.close()

    return Link(None, "tc", target=(iface, d), program=program, cleanup=[detach])


def _del_qdisc(nl: Netlink, ifindex: int) -> None:
    try:
        nl.request(
            RTM_DELQDISC,
            0,
            _tcmsg(ifindex, 0xFFFF0000, TC_H_CLSACT, 0) + attr(TCA_KIND, "clsact"),
            "RTM_DELQDISC(clsact)",
        )
    except KernelError as e:
        if e.errno not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
            raise


def attach_tc(
    program: Any, iface: int | str, direction: str | None = None, *, mode: str | None = None
) -> Link:
    """Attach to ``iface`` ingress/egress: tcx where the kernel has it, else clsact."""
    if direction is None:
        spec = getattr(program, "spec", None)
        atype = getattr(spec, "expected_attach_type", None)
        direction = "egress" if atype == NewAttachType.TCX_EGRESS else "ingress"
    if mode not in (None, "tcx", "clsact"):
        raise ValueError(f"unknown tc mode {mode!r} (tcx or clsact)")
    if mode in (None, "tcx"):
        try:
            return attach_tcx(program, iface, direction)
        except KernelError as e:
            if mode == "tcx" or e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, bsys.ENOTSUPP):
                raise
    return attach_clsact(program, iface, direction)
