"""Context access rules per program type: which fields a program may read or write.

Each rule is data from the kernel's ``*_is_valid_access`` functions: the context size,
the fields readable with narrow loads, the writable fields, and the fields whose load
yields a packet pointer. ``check(prog_type, off, size, write)`` answers one access.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

from ..uapi.enums import AttachType, ProgType
from .state import (
    PTR_TO_PACKET,
    PTR_TO_PACKET_END,
    PTR_TO_PACKET_META,
    PTR_TO_SOCK_COMMON,
    PTR_TO_SOCKET,
    PTR_TO_TP_BUFFER,
    SCALAR,
)

# struct __sk_buff field offsets (linux/bpf.h).
SKB_SIZE = 192
SKB_FIELDS: dict[str, tuple[int, int]] = {  # name -> (offset, size)
    "len": (0, 4),
    "pkt_type": (4, 4),
    "mark": (8, 4),
    "queue_mapping": (12, 4),
    "protocol": (16, 4),
    "vlan_present": (20, 4),
    "vlan_tci": (24, 4),
    "vlan_proto": (28, 4),
    "priority": (32, 4),
    "ingress_ifindex": (36, 4),
    "ifindex": (40, 4),
    "tc_index": (44, 4),
    "cb": (48, 20),
    "hash": (68, 4),
    "tc_classid": (72, 4),
    "data": (76, 4),
    "data_end": (80, 4),
    "napi_id": (84, 4),
    "family": (88, 4),
    "remote_ip4": (92, 4),
    "local_ip4": (96, 4),
    "remote_ip6": (100, 16),
    "local_ip6": (116, 16),
    "remote_port": (132, 4),
    "local_port": (136, 4),
    "data_meta": (140, 4),
    "flow_keys": (144, 8),
    "tstamp": (152, 8),
    "wire_len": (160, 4),
    "gso_segs": (164, 4),
    "sk": (168, 8),
    "gso_size": (176, 4),
    "tstamp_type": (180, 1),
    "hwtstamp": (184, 8),
}
XDP_MD_SIZE = 24  # data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
PT_REGS_SIZE = 168  # x86-64 struct pt_regs
TRACE_MAX = 2048  # PERF_MAX_TRACE_SIZE


def _field_at(off: int) -> str | None:
    for name, (o, s) in SKB_FIELDS.items():
        if o <= off < o + s:
            return name
    return None


@dataclass
class CtxAccess:
    """The answer to one context access: allowed, and the loaded value's register type."""

    ok: bool
    reg_type: int = SCALAR
    why: str = ""
    extra: dict = field(default_factory=dict)


_NO = CtxAccess(False)


def _skb_common(off: int, size: int, write: bool) -> CtxAccess:
    if off < 0 or off >= SKB_SIZE or off % size:
        return _NO
    name = _field_at(off)
    if name is None or name == "tstamp_type" and False:
        return _NO
    if name == "cb":
        return CtxAccess(off + size <= 68)
    if name in (
        "remote_ip6",
        "local_ip6",
        "remote_ip4",
        "local_ip4",
        "data",
        "data_meta",
        "data_end",
    ):
        return CtxAccess(size == 4)
    if name == "flow_keys":
        return _NO
    if name == "hwtstamp":
        return CtxAccess(not write and size == 8)
    if name == "tstamp":
        return CtxAccess(size == 8)
    if name == "sk":  # PTR_TO_SOCK_COMMON_OR_NULL
        return CtxAccess(not write and size == 8 and off == 168, PTR_TO_SOCK_COMMON)
    if name == "tstamp_type" or 181 <= off < 184:
        return _NO
    if write:
        return CtxAccess(size == 4)
    return CtxAccess(size <= 4)


#: the __sk_buff fields of the socket's addresses and ports (socket filters, tc and lwt
#: programs may not read them)
_SOCK_FIELDS = (
    "family",
    "remote_ip4",
    "local_ip4",
    "remote_ip6",
    "local_ip6",
    "remote_port",
    "local_port",
)


def _socket_filter(off: int, size: int, write: bool) -> CtxAccess:
    name = _field_at(off)
    if name in _SOCK_FIELDS or name in (
        "tc_classid",
        "data",
        "data_meta",
        "data_end",
        "tstamp",
        "wire_len",
        "hwtstamp",
    ):
        return _NO
    if write and name != "cb":
        return _NO
    return _skb_common(off, size, write)


_PKT = {"data": PTR_TO_PACKET, "data_meta": PTR_TO_PACKET_META, "data_end": PTR_TO_PACKET_END}
_DATA_END = ("data", "data_end")


def _skb_packet(
    off: int, size: int, write: bool, name: str | None, pkt: Container[str | None] = _DATA_END
) -> CtxAccess:
    """An skb field as :func:`_skb_common` allows it, the fields named in ``pkt`` typed
    as packet pointers."""
    res = _skb_common(off, size, write)
    if res.ok and name in pkt:
        res.reg_type = _PKT[name]
    return res


def _skb_subset(
    off: int, size: int, write: bool, denied: Container[str | None], writable: Container[str | None]
) -> CtxAccess:
    """An skb context that hides the ``denied`` fields and writes only the ``writable``
    ones; data/data_end are packet pointers."""
    name = _field_at(off)
    if name in denied:
        return _NO
    if write and name not in writable:
        return _NO
    return _skb_packet(off, size, write, name)


def _tc(off: int, size: int, write: bool) -> CtxAccess:
    name = _field_at(off)
    if write and name not in (
        "mark",
        "tc_index",
        "priority",
        "tc_classid",
        "cb",
        "tstamp",
        "queue_mapping",
    ):
        return _NO
    if name in _SOCK_FIELDS:
        return _NO
    if name == "tstamp_type" and off == 180:
        return CtxAccess(size == 1)
    return _skb_packet(off, size, write, name, _PKT)


def _cgroup_skb(off: int, size: int, write: bool) -> CtxAccess:
    return _skb_subset(
        off,
        size,
        write,
        ("tc_classid", "data_meta", "flow_keys", "wire_len"),
        ("mark", "priority", "cb", "tstamp"),
    )


def _xdp(off: int, size: int, write: bool) -> CtxAccess:
    if write or off < 0 or off >= XDP_MD_SIZE or off % size or size != 4 or off == 20:
        return _NO
    return CtxAccess(
        True, {0: PTR_TO_PACKET, 4: PTR_TO_PACKET_END, 8: PTR_TO_PACKET_META}.get(off, SCALAR)
    )


def _kprobe(off: int, size: int, write: bool) -> CtxAccess:
    if write or off < 0 or off >= PT_REGS_SIZE or off % size or off + size > PT_REGS_SIZE:
        return _NO
    return CtxAccess(True)


def _tracepoint(off: int, size: int, write: bool) -> CtxAccess:
    if write or off < 8 or off >= TRACE_MAX or off % size:
        return _NO
    return CtxAccess(True)


def _raw_tp(off: int, size: int, write: bool) -> CtxAccess:
    # bpf_tracing_ctx_access: any aligned read of the u64 argument array
    if write or off < 0 or off >= 12 * 8 or off % size:
        return _NO
    return CtxAccess(True)


def _raw_tp_writable(off: int, size: int, write: bool) -> CtxAccess:
    """``raw_tp_writable_prog_is_valid_access``: the first argument, read whole, is the
    tracepoint's writable buffer."""
    if off == 0:
        return CtxAccess(size == 8 and not write, PTR_TO_TP_BUFFER)
    return _raw_tp(off, size, write)


# struct bpf_sock (linux/bpf.h): what a PTR_TO_SOCK_COMMON may read.
BPF_SOCK_SIZE = 80
_SOCK_NARROW = {4: 4, 72: 4, 76: 4, 44: 4, 24: 4, 52: 4}  # family, state, rx_queue, ...


def sock_common_access(off: int, size: int, write: bool) -> bool:
    """``bpf_sock_common_is_valid_access``: reads of the fields every socket has."""
    if write or off < 0 or off >= BPF_SOCK_SIZE or off % size:
        return False
    if 8 <= off < 24:  # type, protocol, mark, priority: full sockets only
        return False
    field = off & ~3
    if field in _SOCK_NARROW or 28 <= field < 44 or 56 <= field < 72:
        return size <= 4  # family, state, src_port, ips: narrow loads of a u32
    if off in (48, 49):  # dst_port: a __be16 (a 4-byte load is allowed too)
        return size <= 2 or (size == 4 and off == 48)
    if 50 <= off < 52:  # hole
        return False
    return size == 4


def bpf_sock_access(off: int, size: int) -> bool:
    """``bpf_sock_is_valid_access`` (reads): a full ``struct bpf_sock``."""
    if off < 0 or off >= BPF_SOCK_SIZE or off % size:
        return False
    field = off & ~3
    if field in (72, 4, 8, 12, 44, 76) or 24 <= field < 44 or 52 <= field < 72:
        return size <= 4  # state, family, type, protocol, src_port, rx_queue, ips
    if off in (48, 49):  # dst_port: a __be16 (a 4-byte load is allowed too)
        return size <= 2 or (size == 4 and off == 48)
    if 50 <= off < 52:  # hole
        return False
    return size == 4


_SOCK_CREATE_ONLY = (0, 16, 20)  # bound_dev_if, mark, priority


def _cgroup_sock(off: int, size: int, write: bool, attach: int | None) -> CtxAccess:
    """``sock_filter_is_valid_access``: bpf_sock, some fields per attach type."""
    if not bpf_sock_access(off, size) and not (write and off in _SOCK_CREATE_ONLY and size == 4):
        return _NO
    create = attach in (AttachType.CGROUP_INET_SOCK_CREATE, AttachType.CGROUP_INET_SOCK_RELEASE)
    if off in _SOCK_CREATE_ONLY:
        return CtxAccess(create and size == 4)
    if 24 <= off < 28:  # src_ip4
        return CtxAccess(not write and attach == AttachType.CGROUP_INET4_POST_BIND)
    if 28 <= off < 44:  # src_ip6
        return CtxAccess(not write and attach == AttachType.CGROUP_INET6_POST_BIND)
    if 44 <= off < 48:  # src_port
        return CtxAccess(
            not write
            and attach in (AttachType.CGROUP_INET4_POST_BIND, AttachType.CGROUP_INET6_POST_BIND)
        )
    return CtxAccess(not write)


_LWT_DENIED = _SOCK_FIELDS + ("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp")


def _lwt(off: int, size: int, write: bool) -> CtxAccess:
    """``lwt_is_valid_access``: an skb, no socket fields, writes only to mark, priority
    and cb; data/data_end are packet pointers."""
    return _skb_subset(
        off,
        size,
        write,
        _LWT_DENIED,
        ("mark", "priority", "cb"),
    )


def _sk_skb(off: int, size: int, write: bool) -> CtxAccess:
    """``sk_skb_is_valid_access``: an skb without tc_classid, data_meta, tstamp,
    wire_len, hwtstamp and mark; writes to tc_index and priority only."""
    return _skb_subset(
        off,
        size,
        write,
        ("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp", "mark"),
        ("tc_index", "priority"),
    )


# struct sk_msg_md: data, data_end (pointers), nine u32 fields, sk
_SK_MSG_U32 = (16, 20, 24) + tuple(range(28, 60, 4)) + (60, 64, 68)


def _sk_msg(off: int, size: int, write: bool) -> CtxAccess:
    """``sk_msg_is_valid_access``: reads only, each field at its own size."""
    if write or off % size:
        return _NO
    if off == 0:
        return CtxAccess(size == 8, PTR_TO_PACKET)
    if off == 8:
        return CtxAccess(size == 8, PTR_TO_PACKET_END)
    if off == 72:  # sk: a full socket
        return CtxAccess(size == 8, PTR_TO_SOCKET)
    return CtxAccess(off in _SK_MSG_U32 and size == 4)


def _narrow4(off: int, size: int) -> bool:
    """``bpf_ctx_narrow_access_ok`` of a u32 field."""
    return size in (1, 2, 4)


def _sk_lookup(off: int, size: int, write: bool) -> CtxAccess:
    """``sk_lookup_is_valid_access``: struct bpf_sk_lookup, reads only."""
    if write or off < 0 or off >= 72 or off % size:
        return _NO
    if off == 0:  # sk: the selected socket, or NULL
        return CtxAccess(size == 8, PTR_TO_SOCKET, extra={"null": True})
    if 8 <= off < 36 or 40 <= off < 68:  # the u32 fields
        field = off & ~3
        return CtxAccess(_narrow4(field, size) and off + size <= field + 4)
    if off in (36, 37):  # remote_port (a 4-byte read allowed too)
        return CtxAccess(size <= 2 or (size == 4 and off == 36))
    if off in (38, 39):  # the zero padding after it
        return CtxAccess(size <= 2)
    return _NO


def _sk_reuseport(off: int, size: int, write: bool) -> CtxAccess:
    """``sk_reuseport_is_valid_access``: struct sk_reuseport_md, reads only."""
    if write or off < 0 or off >= 56 or off % size:
        return _NO
    if off == 0:
        return CtxAccess(size == 8, PTR_TO_PACKET)
    if off == 8:
        return CtxAccess(size == 8, PTR_TO_PACKET_END)
    if off == 32:  # hash
        return CtxAccess(size == 4)
    if off == 40:  # sk
        return CtxAccess(size == 8, PTR_TO_SOCKET)
    if off == 48:  # migrating_sk
        return CtxAccess(size == 8, PTR_TO_SOCK_COMMON, extra={"null": True})
    if 20 <= off < 24:  # eth_protocol: at least the skb's 2 bytes
        return CtxAccess(size >= 2 and _narrow4(off, size))
    if 16 <= off < 32:  # len, ip_protocol, bind_inany
        return CtxAccess(_narrow4(off, size))
    return _NO


def tcp_sock_access(off: int, size: int) -> bool:
    """``bpf_tcp_sock_is_valid_access``: reads up to bytes_acked, each field whole."""
    if off < 0 or off >= 96 or off % size:
        return False
    if 80 <= off < 96:  # bytes_received, bytes_acked
        return size == 8
    return size == 4


def xdp_sock_access(off: int, size: int) -> bool:
    """``bpf_xdp_sock_is_valid_access``: queue_id."""
    return off == 0 and size == 4


PERF_EVENT_DATA_SIZE = PT_REGS_SIZE + 16  # regs, sample_period, addr


def _perf_event(off: int, size: int, write: bool) -> CtxAccess:
    if write or off < 0 or off >= PERF_EVENT_DATA_SIZE or off % size:
        return _NO
    if off >= PT_REGS_SIZE:  # sample_period, addr: narrow loads allowed
        return CtxAccess(off + size <= PERF_EVENT_DATA_SIZE)
    return CtxAccess(size == 8)


SYSCALL_CTX_MAX = 0xFFFF  # U16_MAX: the syscall program's context is user memory


def _syscall(off: int, size: int, write: bool) -> CtxAccess:
    if off < 0 or off >= SYSCALL_CTX_MAX or off % size:
        return _NO
    return CtxAccess(True)


RULES = {
    ProgType.SOCKET_FILTER: _socket_filter,
    ProgType.SCHED_CLS: _tc,
    ProgType.SCHED_ACT: _tc,
    ProgType.CGROUP_SKB: _cgroup_skb,
    ProgType.XDP: _xdp,
    ProgType.KPROBE: _kprobe,
    ProgType.TRACEPOINT: _tracepoint,
    ProgType.RAW_TRACEPOINT: _raw_tp,
    ProgType.RAW_TRACEPOINT_WRITABLE: _raw_tp_writable,
    ProgType.PERF_EVENT: _perf_event,
    ProgType.SYSCALL: _syscall,
    ProgType.LWT_IN: _lwt,
    ProgType.LWT_OUT: _lwt,
    ProgType.LWT_XMIT: _lwt,
    ProgType.LWT_SEG6LOCAL: _lwt,
    ProgType.SK_MSG: _sk_msg,
    ProgType.SK_SKB: _sk_skb,
    ProgType.SK_LOOKUP: _sk_lookup,
    ProgType.SK_REUSEPORT: _sk_reuseport,
}
#: rules that depend on the expected attach type
RULES_ATTACH = {ProgType.CGROUP_SOCK: _cgroup_sock}

#: Program types whose programs may read packet data directly, and write it (the
#: kernel's may_access_direct_pkt_data).
PKT_WRITE = {
    ProgType.SCHED_CLS,
    ProgType.SCHED_ACT,
    ProgType.XDP,
    ProgType.LWT_XMIT,
    ProgType.SK_SKB,
    ProgType.SK_MSG,
}
PKT_READ = PKT_WRITE | {
    ProgType.CGROUP_SKB,
    ProgType.LWT_IN,
    ProgType.LWT_OUT,
    ProgType.LWT_SEG6LOCAL,
    ProgType.SK_REUSEPORT,
    ProgType.FLOW_DISSECTOR,
}
#: Program types whose context the kernel does not rewrite (no ``convert_ctx_access``):
#: a global function may take it as plain memory, checked byte by byte
RAW_CTX_TYPES = frozenset(
    {
        ProgType.KPROBE,
        ProgType.TRACEPOINT,
        ProgType.RAW_TRACEPOINT,
        ProgType.RAW_TRACEPOINT_WRITABLE,
        ProgType.SYSCALL,
        ProgType.CGROUP_DEVICE,
        32,  # BPF_PROG_TYPE_NETFILTER
    }
)
#: Program types with an skb context (legacy ``ld_abs``/``ld_ind`` allowed).
LD_ABS_TYPES = {ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT}

#: ``enum bpf_prog_type`` / ``enum bpf_attach_type`` values newer than bpfkit.uapi's
#: tables (tools/include/uapi/linux/bpf.h of 6.12)
PROG_NETFILTER = 32
ATTACH_NETFILTER = 45
ATTACH_TCX_INGRESS = 46
ATTACH_TCX_EGRESS = 47
ATTACH_UNIX_CONNECT = 49
ATTACH_UNIX_SENDMSG = 50
ATTACH_UNIX_RECVMSG = 51
ATTACH_UNIX_GETPEERNAME = 52
ATTACH_UNIX_GETSOCKNAME = 53
ATTACH_KPROBE_SESSION = 56

_AT = AttachType
#: sock_addr hooks whose program must return 1 (recvmsg, getpeername, getsockname)
_SOCK_ADDR_ONE = frozenset(
    {
        _AT.CGROUP_UDP4_RECVMSG,
        _AT.CGROUP_UDP6_RECVMSG,
        ATTACH_UNIX_RECVMSG,
        _AT.CGROUP_INET4_GETPEERNAME,
        _AT.CGROUP_INET6_GETPEERNAME,
        ATTACH_UNIX_GETPEERNAME,
        _AT.CGROUP_INET4_GETSOCKNAME,
        _AT.CGROUP_INET6_GETSOCKNAME,
        ATTACH_UNIX_GETSOCKNAME,
    }
)
_ZERO_ONE = frozenset(
    {
        ProgType.CGROUP_SOCK,
        ProgType.SOCK_OPS,
        ProgType.CGROUP_DEVICE,
        ProgType.CGROUP_SYSCTL,
        ProgType.CGROUP_SOCKOPT,
        ProgType.SK_LOOKUP,
        PROG_NETFILTER,
    }
)


def return_range(prog_type: int, attach_type: int | None) -> tuple[int, int] | None:
    """The values the main program may return (the kernel's ``check_return_code``),
    or None when any value is allowed."""
    if prog_type == ProgType.CGROUP_SOCK_ADDR:
        if attach_type in _SOCK_ADDR_ONE:
            return (1, 1)
        if attach_type in (_AT.CGROUP_INET4_BIND, _AT.CGROUP_INET6_BIND):
            return (0, 3)
        return (0, 1)
    if prog_type == ProgType.CGROUP_SKB:
        return (0, 3) if attach_type == _AT.CGROUP_INET_EGRESS else (0, 1)
    if prog_type in _ZERO_ONE:
        return (0, 1)
    if prog_type == ProgType.KPROBE and attach_type == ATTACH_KPROBE_SESSION:
        return (0, 1)
    return None


#: Fields an unprivileged loader (no CAP_BPF) may not read / write, per program type.
UNPRIV_NO_READ: dict[int, frozenset[str]] = {
    ProgType.CGROUP_SKB: frozenset({"data", "data_end"}),
}
UNPRIV_NO_WRITE: dict[int, frozenset[str]] = {
    ProgType.CGROUP_SKB: frozenset({"data", "data_end", "tstamp"}),
}


def check(
    prog_type: int,
    off: int,
    size: int,
    write: bool,
    unpriv: bool = False,
    attach_type: int | None = None,
) -> CtxAccess:
    """Whether a ``size``-byte access at context offset ``off`` is allowed (``unpriv``:
    for a loader without CAP_BPF, as ``cg_skb_is_valid_access`` checks it)."""
    if size <= 0:
        return _NO
    arule = RULES_ATTACH.get(prog_type)
    if arule is not None:
        return arule(off, size, write, attach_type)
    rule = RULES.get(prog_type)
    if rule is None:
        return _NO
    if unpriv:
        deny = (UNPRIV_NO_WRITE if write else UNPRIV_NO_READ).get(prog_type)
        if deny and _field_at(off) in deny:
            return _NO
    return rule(off, size, write)
