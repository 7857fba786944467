"""Program/attach types newer than the installed linux/bpf.h (values from upstream uapi).

``uapi.enums`` mirrors the host header, which stops at ``BPF_LSM_CGROUP``; libbpf's
section table already names later attach types (tcx, netkit, uprobe.multi, ...), so
their upstream values live here, continuing the kernel's numbering.
"""

from __future__ import annotations

from enum import IntEnum

from .enums import AttachType, ProgType


class NewAttachType(IntEnum):
    """``enum bpf_attach_type`` members after ``BPF_LSM_CGROUP`` (43)."""

    STRUCT_OPS = 44
    NETFILTER = 45
    TCX_INGRESS = 46
    TCX_EGRESS = 47
    TRACE_UPROBE_MULTI = 48
    CGROUP_UNIX_CONNECT = 49
    CGROUP_UNIX_SENDMSG = 50
    CGROUP_UNIX_RECVMSG = 51
    CGROUP_UNIX_GETPEERNAME = 52
    CGROUP_UNIX_GETSOCKNAME = 53
    NETKIT_PRIMARY = 54
    NETKIT_PEER = 55
    TRACE_KPROBE_SESSION = 56
    TRACE_UPROBE_SESSION = 57


class NewProgType(IntEnum):
    """``enum bpf_prog_type`` members after ``BPF_PROG_TYPE_SYSCALL`` (31)."""

    NETFILTER = 32


AnyAttachType = AttachType | NewAttachType
AnyProgType = ProgType | NewProgType


def attach_type(value: int) -> AnyAttachType | int:
    """The enum member for an attach type number (the bare int when unknown)."""
    for enum in (AttachType, NewAttachType):
        try:
            return enum(value)
        except ValueError:
            continue
    return value


def prog_type(value: int) -> AnyProgType | int:
    """The enum member for a program type number (the bare int when unknown)."""
    for enum in (ProgType, NewProgType):
        try:
            return enum(value)
        except ValueError:
            continue
    return value
