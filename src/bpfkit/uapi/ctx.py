"""Program contexts as data: the UAPI struct layouts and which fields each type may access.

A program's first argument points at its context. The *layout* is the struct the C
program sees (``struct __sk_buff``, ``struct xdp_md``, ``struct pt_regs``, ...), from
``linux/bpf.h``, ``linux/bpf_perf_event.h`` and ``asm/ptrace.h`` (x86-64). The *access
table* says, per program type, which fields a program may read and write — what the
kernel's ``*_is_valid_access`` callbacks answer. The tables below were checked against
the running kernel by loading one-instruction probes (see ``tests/test_progtypes.py``).

Access rule: an access of ``size`` bytes at ``off`` is valid when one field ``f`` contains
``[off, off + size)``, ``size`` is in ``f.sizes``, ``off`` is a multiple of ``size``, and
the program type lists ``f.name`` as readable (loads) or writable (stores). A pointer
field (``kind`` other than ``"scalar"``) can only be loaded whole; it is what the
kernel's ``convert_ctx_access`` turns into a 64-bit load, since the UAPI field is 32 bits
wide but the pointer it stands for is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .enums import ProgType

__all__ = [
    "CtxField",
    "CtxLayout",
    "CtxAccess",
    "SK_BUFF",
    "XDP_MD",
    "PT_REGS",
    "PERF_EVENT_DATA",
    "RAW_TRACEPOINT_ARGS",
    "TRACEPOINT_RECORD",
    "BPF_SOCK",
    "SYSCALL_CTX",
    "CTX_ACCESS",
    "PT_REGS_NAMES",
    "XDP_PACKET_HEADROOM",
    "ctx_access",
    "check_ctx_access",
]

XDP_PACKET_HEADROOM = 256
MAX_BPF_FUNC_ARGS = 12
PERF_MAX_TRACE_SIZE = 2048

# kind values of pointer fields
PKT = "pkt"  # start of packet data
PKT_END = "pkt_end"  # one past the end of packet data
PKT_META = "pkt_meta"  # start of the metadata area in front of the packet
SOCK = "sock"  # struct bpf_sock * (or NULL)
FLOW_KEYS = "flow_keys"  # struct bpf_flow_keys *
POINTER_KINDS = frozenset({PKT, PKT_END, PKT_META, SOCK, FLOW_KEYS})
#: Pointer fields that are 32 bits in the UAPI struct but 64-bit pointers in the kernel.
NARROW_POINTER_KINDS = frozenset({PKT, PKT_END, PKT_META})


@dataclass(frozen=True)
class CtxField:
    """One field (or array, or byte range) of a context struct."""

    name: str
    offset: int
    size: int
    sizes: tuple[int, ...] = (1, 2, 4)
    kind: str = "scalar"
    #: store sizes when narrower stores are allowed too (empty: only whole-field stores)
    write_sizes: tuple[int, ...] = ()

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def is_pointer(self) -> bool:
        return self.kind in POINTER_KINDS


@dataclass(frozen=True)
class CtxLayout:
    """A context struct: its C name, size, and fields in offset order."""

    name: str
    size: int
    fields: tuple[CtxField, ...]
    _by_name: dict[str, CtxField] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})

    def __getitem__(self, name: str) -> CtxField:
        return self._by_name[name]

    def offset_of(self, name: str) -> int:
        return self._by_name[name].offset

    def field_at(self, off: int, size: int) -> CtxField | None:
        """The field containing ``[off, off + size)``, or ``None``."""
        for f in self.fields:
            if f.offset <= off and off + size <= f.end:
                return f
        return None


def _u32(name: str, off: int, narrow: bool = True, kind: str = "scalar") -> CtxField:
    return CtxField(name, off, 4, (1, 2, 4) if narrow and kind == "scalar" else (4,), kind)


def _u64(name: str, off: int, kind: str = "scalar", narrow: bool = False) -> CtxField:
    return CtxField(name, off, 8, (1, 2, 4, 8) if narrow else (8,), kind)


# ---- struct __sk_buff (linux/bpf.h) ------------------------------------------------
SK_BUFF = CtxLayout(
    "__sk_buff",
    192,
    (
        _u32("len", 0),
        _u32("pkt_type", 4),
        _u32("mark", 8),
        _u32("queue_mapping", 12),
        _u32("protocol", 16),
        _u32("vlan_present", 20),
        _u32("vlan_tci", 24),
        _u32("vlan_proto", 28),
        _u32("priority", 32),
        _u32("ingress_ifindex", 36),
        _u32("ifindex", 40),
        _u32("tc_index", 44),
        CtxField(
            "cb", 48, 20, (1, 2, 4, 8), write_sizes=(1, 2, 4, 8)
        ),  # __u32 cb[5]; 8-byte access allowed inside
        _u32("hash", 68),
        _u32("tc_classid", 72),
        _u32("data", 76, kind=PKT),
        _u32("data_end", 80, kind=PKT_END),
        _u32("napi_id", 84),
        _u32("family", 88),
        _u32("remote_ip4", 92, narrow=False),
        _u32("local_ip4", 96, narrow=False),
        CtxField("remote_ip6", 100, 16, (4,)),
        CtxField("local_ip6", 116, 16, (4,)),
        _u32("remote_port", 132),
        _u32("local_port", 136),
        _u32("data_meta", 140, kind=PKT_META),
        _u64("flow_keys", 144, kind=FLOW_KEYS),
        _u64("tstamp", 152),
        _u32("wire_len", 160),
        _u32("gso_segs", 164),
        _u64("sk", 168, kind=SOCK),
        _u32("gso_size", 176),
        CtxField("tstamp_type", 180, 1, (1,)),
        _u64("hwtstamp", 184),
    ),
)

# ---- struct xdp_md -------------------------------------------------------------------
XDP_MD = CtxLayout(
    "xdp_md",
    24,
    (
        _u32("data", 0, kind=PKT),
        _u32("data_end", 4, kind=PKT_END),
        _u32("data_meta", 8, kind=PKT_META),
        _u32("ingress_ifindex", 12, narrow=False),
        _u32("rx_queue_index", 16, narrow=False),
        _u32("egress_ifindex", 20, narrow=False),
    ),
)

# ---- struct pt_regs (x86-64, asm/ptrace.h) -----------------------------------------
PT_REGS_NAMES: tuple[str, ...] = (
    "r15",
    "r14",
    "r13",
    "r12",
    "rbp",
    "rbx",
    "r11",
    "r10",
    "r9",
    "r8",
    "rax",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "orig_rax",
    "rip",
    "cs",
    "eflags",
    "rsp",
    "ss",
)
PT_REGS = CtxLayout("pt_regs", 168, (CtxField("regs", 0, 168, (1, 2, 4, 8)),))

# ---- struct bpf_perf_event_data (linux/bpf_perf_event.h) ---------------------------
PERF_EVENT_DATA = CtxLayout(
    "bpf_perf_event_data",
    184,
    (
        CtxField("regs", 0, 168, (8,)),
        _u64("sample_period", 168, narrow=True),
        _u64("addr", 176, narrow=True),
    ),
)

# ---- struct bpf_raw_tracepoint_args: __u64 args[] ----------------------------------
RAW_TRACEPOINT_ARGS = CtxLayout(
    "bpf_raw_tracepoint_args",
    8 * MAX_BPF_FUNC_ARGS,
    (CtxField("args", 0, 8 * MAX_BPF_FUNC_ARGS, (1, 2, 4, 8)),),
)

# ---- a tracepoint's raw record (the first 8 bytes, the common header, are off limits)
TRACEPOINT_RECORD = CtxLayout(
    "trace_entry",
    PERF_MAX_TRACE_SIZE,
    (
        CtxField("common", 0, 8, (1, 2, 4, 8)),
        CtxField("fields", 8, PERF_MAX_TRACE_SIZE - 8, (1, 2, 4, 8)),
    ),
)

# ---- BPF_PROG_TYPE_SYSCALL: the context is plain user memory of ctx_size_in bytes ---
SYSCALL_CTX = CtxLayout(
    "syscall_ctx", 65535, (CtxField("mem", 0, 65535, (1, 2, 4, 8), write_sizes=(1, 2, 4, 8)),)
)

# ---- struct bpf_sock (what __sk_buff->sk points at) ----------------------------------
BPF_SOCK = CtxLayout(
    "bpf_sock",
    80,
    (
        _u32("bound_dev_if", 0),
        _u32("family", 4),
        _u32("type", 8),
        _u32("protocol", 12),
        _u32("mark", 16),
        _u32("priority", 20),
        _u32("src_ip4", 24),
        CtxField("src_ip6", 28, 16, (1, 2, 4)),
        _u32("src_port", 44),
        CtxField("dst_port", 48, 2, (1, 2)),
        _u32("dst_ip4", 52),
        CtxField("dst_ip6", 56, 16, (1, 2, 4)),
        _u32("state", 72),
        _u32("rx_queue_mapping", 76),
    ),
)


@dataclass(frozen=True)
class CtxAccess:
    """What one program type may do with its context: readable and writable fields."""

    layout: CtxLayout
    read: frozenset[str]
    write: frozenset[str] = frozenset()

    def field_for(self, off: int, size: int, write: bool = False) -> CtxField | None:
        """The field an access is allowed to touch, or ``None`` if the access is invalid."""
        if off < 0 or size not in (1, 2, 4, 8) or off % size:
            return None
        f = self.layout.field_at(off, size)
        if f is None or size not in f.sizes:
            return None
        if (f.name not in self.write) if write else (f.name not in self.read):
            return None
        if (f.is_pointer or (write and size not in f.write_sizes)) and (
            size != f.size or off != f.offset
        ):
            return None
        return f


def _names(layout: CtxLayout, *exclude: str) -> frozenset[str]:
    return frozenset(f.name for f in layout.fields if f.name not in exclude)


_SKB_SOCK_FIELDS = (
    "family",
    "remote_ip4",
    "local_ip4",
    "remote_ip6",
    "local_ip6",
    "remote_port",
    "local_port",
)

#: The context access of each program type bpfkit runs (``sk_filter_is_valid_access``,
#: ``tc_cls_act_is_valid_access``, ``cg_skb_is_valid_access``, ``xdp_is_valid_access``,
#: ``kprobe_prog_is_valid_access``, ``pe_prog_is_valid_access``, ``raw_tp_...``, ``tp_...``).
CTX_ACCESS: dict[ProgType, CtxAccess] = {
    ProgType.SOCKET_FILTER: CtxAccess(
        SK_BUFF,
        _names(
            SK_BUFF,
            "tc_classid",
            "data",
            "data_end",
            "data_meta",
            "flow_keys",
            "tstamp",
            "wire_len",
            "hwtstamp",
            "tstamp_type",
            *_SKB_SOCK_FIELDS,
        ),
        frozenset({"cb"}),
    ),
    ProgType.SCHED_CLS: CtxAccess(
        SK_BUFF,
        _names(SK_BUFF, "flow_keys", *_SKB_SOCK_FIELDS),
        frozenset({"mark", "queue_mapping", "priority", "tc_index", "cb", "tc_classid", "tstamp"}),
    ),
    ProgType.CGROUP_SKB: CtxAccess(
        SK_BUFF,
        _names(SK_BUFF, "tc_classid", "data_meta", "flow_keys", "wire_len", "tstamp_type"),
        frozenset({"mark", "priority", "cb", "tstamp"}),
    ),
    ProgType.XDP: CtxAccess(XDP_MD, _names(XDP_MD, "egress_ifindex")),
    ProgType.KPROBE: CtxAccess(PT_REGS, frozenset({"regs"})),
    ProgType.PERF_EVENT: CtxAccess(PERF_EVENT_DATA, _names(PERF_EVENT_DATA)),
    ProgType.RAW_TRACEPOINT: CtxAccess(RAW_TRACEPOINT_ARGS, frozenset({"args"})),
    ProgType.RAW_TRACEPOINT_WRITABLE: CtxAccess(RAW_TRACEPOINT_ARGS, frozenset({"args"})),
    ProgType.TRACEPOINT: CtxAccess(TRACEPOINT_RECORD, frozenset({"fields"})),
    ProgType.SYSCALL: CtxAccess(SYSCALL_CTX, frozenset({"mem"}), frozenset({"mem"})),
}
CTX_ACCESS[ProgType.SCHED_ACT] = CTX_ACCESS[ProgType.SCHED_CLS]


def ctx_access(prog_type: ProgType | int) -> CtxAccess | None:
    """The context access table of ``prog_type`` (``None``: not modelled)."""
    try:
        return CTX_ACCESS.get(ProgType(prog_type))
    except ValueError:
        return None


def check_ctx_access(
    prog_type: ProgType | int, off: int, size: int, write: bool = False
) -> CtxField | None:
    """The field a ``size``-byte access at ``off`` touches, or ``None`` if it is invalid."""
    acc = ctx_access(prog_type)
    return acc.field_for(off, size, write) if acc is not None else None
