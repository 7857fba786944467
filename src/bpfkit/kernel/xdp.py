"""Attach XDP programs to a network interface.

The default is a ``BPF_LINK_TYPE_XDP`` link on the interface's ifindex (kernel 5.9+),
which detaches when closed and can be pinned. ``mode`` picks the XDP flavour:
``"generic"`` (``XDP_FLAGS_SKB_MODE``, works on every device, e.g. veth),
``"native"`` (the driver's hook) or ``"offload"``; ``None`` lets the kernel choose.
Kernels without XDP links get the program set through netlink (``IFLA_XDP``), removed
again on close.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from ..errors import KernelError
from ..uapi.enums import AttachType
from . import sys as bsys
from .link import Link
from .netlink import Netlink, attr, ifindex_of, nested

__all__ = [
    "attach_xdp",
    "XDP_FLAGS_UPDATE_IF_NOEXIST",
    "XDP_FLAGS_SKB_MODE",
    "XDP_FLAGS_DRV_MODE",
    "XDP_FLAGS_HW_MODE",
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_TX",
    "XDP_REDIRECT",
]

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)

_MODES = {
    None: 0,
    "": 0,
    "generic": XDP_FLAGS_SKB_MODE,
    "skb": XDP_FLAGS_SKB_MODE,
    "native": XDP_FLAGS_DRV_MODE,
    "driver": XDP_FLAGS_DRV_MODE,
    "drv": XDP_FLAGS_DRV_MODE,
    "offload": XDP_FLAGS_HW_MODE,
    "hw": XDP_FLAGS_HW_MODE,
}
RTM_SETLINK = 19
IFLA_XDP = 43
IFLA_XDP_FD, IFLA_XDP_FLAGS = 1, 3
_IFINFO = struct.Struct("=BxHiII")


def _set_xdp_netlink(nl: Netlink, ifindex: int, prog_fd: int, flags: int) -> None:
    payload = _IFINFO.pack(0, 0, ifindex, 0, 0) + nested(
        IFLA_XDP, attr(IFLA_XDP_FD, prog_fd, "=i"), attr(IFLA_XDP_FLAGS, flags)
    )
    nl.request(RTM_SETLINK, 0, payload, "RTM_SETLINK(IFLA_XDP)")


def attach_xdp(
    program: Any, iface: int | str, mode: str | None = None, *, netlink: bool = False
) -> Link:
    """Attach an XDP program to interface ``iface`` (name or ifindex) in this netns."""
    if mode not in _MODES:
        raise ValueError(f"unknown XDP mode {mode!r} (generic, native, offload)")
    flags = _MODES[mode]
    ifindex = ifindex_of(iface)
    pfd = program.fd if hasattr(program, "fd") else bsys.fdnum(program)
    if not netlink:
        try:
            fd = bsys.link_create(pfd, ifindex, AttachType.XDP, flags)
            return Link(fd, "xdp", target=iface, program=program)
        except KernelError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, bsys.ENOTSUPP):
                raise
            if e.errno == errno.EINVAL and flags:
                raise
    nl = Netlink()  # kept: detaching must happen in this netns
    try:
        _set_xdp_netlink(nl, ifindex, pfd, flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
    except BaseException:
        nl.close()
        raise

    def detach() -> None:
        try:
            _set_xdp_netlink(nl, ifindex, -1, flags)
        except KernelError as e:
            if e.errno != errno.ENODEV:  # the device went away with its program
                raise
        finally:
            nl.close()

    return Link(None, "xdp", target=iface, program=program, cleanup=[detach])
