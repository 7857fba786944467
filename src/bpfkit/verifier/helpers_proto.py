"""Helper prototypes: argument kinds, return kind and side effects of each supported helper.

These mirror the ``bpf_func_proto`` tables of the kernel for the helpers bpfkit's
runtime implements. ``ALLOWED`` lists, per program type, the helpers a program of that
type may call (as the 6.x kernel allows them to a privileged loader).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from ..uapi.enums import HELPER_IDS, MapType, ProgType
from .helper_sets import ALLOWED_IDS

# Argument kinds.
ANYTHING = "anything"
CONST_MAP_PTR = "map_ptr"
PTR_TO_MAP_KEY = "map_key"
PTR_TO_MAP_VALUE = "map_value"
PTR_TO_UNINIT_MAP_VALUE = "uninit_map_value"
PTR_TO_MEM = "mem"  # readable memory, size in the next argument
PTR_TO_MEM_OR_NULL = "mem_or_null"
PTR_TO_UNINIT_MEM = "uninit_mem"  # writable memory, size in the next argument
PTR_TO_UNINIT_MEM_OR_NULL = "uninit_mem_or_null"
CONST_SIZE = "size"
CONST_SIZE_OR_ZERO = "size_or_zero"
PTR_TO_CTX = "ctx"
PTR_TO_RINGBUF_MEM = "ringbuf_mem"
CONST_ALLOC_SIZE_OR_ZERO = "alloc_size"
PTR_TO_FUNC = "func"
PTR_TO_STACK_OR_NULL = "stack_or_null"
PTR_TO_SPIN_LOCK = "spin_lock"
PTR_TO_CONST_STR = "const_str"
PTR_TO_LONG = "long"  # 8 writable, aligned bytes
PTR_TO_U32_OUT = "u32_out"  # 4 writable, aligned bytes (ARG_PTR_TO_FIXED_SIZE_MEM)
PTR_TO_CTX_OR_NULL = "ctx_or_null"
PTR_TO_MAP_VALUE_OR_NULL = "map_value_or_null"  # NULL, or the map's value size
ARG_SOCK_COMMON = "sock_common"  # a socket pointer of any kind, not NULL
ARG_BTF_SOCK_COMMON = "btf_sock_common"  # the same (ARG_PTR_TO_BTF_ID_SOCK_COMMON)

# Return kinds.
RET_INTEGER = "integer"
RET_VOID = "void"
RET_MAP_VALUE_OR_NULL = "map_value_or_null"
RET_RINGBUF_MEM_OR_NULL = "ringbuf_mem_or_null"
RET_MAP_VALUE = "map_value"
RET_SOCKET_OR_NULL = "socket_or_null"
RET_SOCK_COMMON_OR_NULL = "sock_common_or_null"
RET_TCP_SOCK_OR_NULL = "tcp_sock_or_null"


@dataclass(frozen=True)
class Proto:
    """What the verifier checks at a call of one helper."""

    name: str
    ret: str = RET_INTEGER
    args: tuple[str, ...] = ()
    gpl_only: bool = False
    pkt_changing: bool = False  # invalidates packet pointers
    releases: bool = False  # releases the reference held by its first argument
    callback: str = ""  # "loop" or "for_each": argument 2 is a callback
    map_types: frozenset[int] = field(default_factory=frozenset)  # empty: any allowed
    ret_range: str = ""  # named return-range refinement
    acquires: bool = False  # the result holds a reference that must be released
    ptr_cast: bool = False  # the result carries the argument's reference

    @property
    def id(self) -> int:
        """The kernel helper id."""
        return HELPER_IDS[self.name]

    @property
    def pkt_access(self) -> bool:
        """The helper may take packet pointers (the proto's ``pkt_access``)."""
        return self.name in PKT_ACCESS


#: helpers whose prototype sets ``pkt_access``: the others refuse packet pointers
PKT_ACCESS = frozenset(
    {
        "map_lookup_elem",
        "map_update_elem",
        "map_delete_elem",
        "map_push_elem",
        "map_lookup_percpu_elem",
        "csum_diff",
        "sk_lookup_tcp",
        "sk_lookup_udp",
        "skc_lookup_tcp",
        "tcp_check_syncookie",
        "tcp_gen_syncookie",
        "tcp_raw_gen_syncookie_ipv4",
        "tcp_raw_gen_syncookie_ipv6",
        "tcp_raw_check_syncookie_ipv4",
        "tcp_raw_check_syncookie_ipv6",
    }
)

_M = MapType
_QUEUE_STACK = frozenset({_M.QUEUE, _M.STACK})
_PERCPU = frozenset({_M.PERCPU_ARRAY, _M.PERCPU_HASH, _M.LRU_PERCPU_HASH})
_REDIRECT = frozenset({_M.DEVMAP, _M.DEVMAP_HASH, _M.CPUMAP, _M.XSKMAP})
_FOR_EACH = frozenset(
    {_M.HASH, _M.LRU_HASH, _M.ARRAY, _M.PERCPU_ARRAY, _M.PERCPU_HASH, _M.LRU_PERCPU_HASH}
)

_PROTOS = [
    Proto("map_lookup_elem", RET_MAP_VALUE_OR_NULL, (CONST_MAP_PTR, PTR_TO_MAP_KEY)),
    Proto(
        "map_update_elem", RET_INTEGER, (CONST_MAP_PTR, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, ANYTHING)
    ),
    Proto("map_delete_elem", RET_INTEGER, (CONST_MAP_PTR, PTR_TO_MAP_KEY)),
    Proto(
        "map_push_elem",
        RET_INTEGER,
        (CONST_MAP_PTR, PTR_TO_MAP_VALUE, ANYTHING),
        map_types=_QUEUE_STACK | {_M.BLOOM_FILTER},
    ),
    Proto(
        "map_pop_elem",
        RET_INTEGER,
        (CONST_MAP_PTR, PTR_TO_UNINIT_MAP_VALUE),
        map_types=_QUEUE_STACK,
    ),
    Proto(
        "map_peek_elem",
        RET_INTEGER,
        (CONST_MAP_PTR, PTR_TO_UNINIT_MAP_VALUE),
        map_types=_QUEUE_STACK | {_M.BLOOM_FILTER},
    ),
    Proto(
        "map_lookup_percpu_elem",
        RET_MAP_VALUE_OR_NULL,
        (CONST_MAP_PTR, PTR_TO_MAP_KEY, ANYTHING),
        map_types=_PERCPU,
    ),
    Proto(
        "for_each_map_elem",
        RET_INTEGER,
        (CONST_MAP_PTR, PTR_TO_FUNC, PTR_TO_STACK_OR_NULL, ANYTHING),
        callback="for_each",
        map_types=_FOR_EACH,
    ),
    Proto(
        "loop",
        RET_INTEGER,
        (ANYTHING, PTR_TO_FUNC, PTR_TO_STACK_OR_NULL, ANYTHING),
        callback="loop",
    ),
    Proto(
        "tail_call",
        RET_VOID,
        (PTR_TO_CTX, CONST_MAP_PTR, ANYTHING),
        map_types=frozenset({_M.PROG_ARRAY}),
        pkt_changing=True,  # the kernel forgets packet pointers across it (6.13+)
    ),
    Proto(
        "ringbuf_output",
        RET_INTEGER,
        (CONST_MAP_PTR, PTR_TO_MEM, CONST_SIZE_OR_ZERO, ANYTHING),
        map_types=frozenset({_M.RINGBUF}),
    ),
    Proto(
        "ringbuf_reserve",
        RET_RINGBUF_MEM_OR_NULL,
        (CONST_MAP_PTR, CONST_ALLOC_SIZE_OR_ZERO, ANYTHING),
        map_types=frozenset({_M.RINGBUF}),
    ),
    Proto("ringbuf_submit", RET_VOID, (PTR_TO_RINGBUF_MEM, ANYTHING), releases=True),
    Proto("ringbuf_discard", RET_VOID, (PTR_TO_RINGBUF_MEM, ANYTHING), releases=True),
    Proto(
        "ringbuf_query", RET_INTEGER, (CONST_MAP_PTR, ANYTHING), map_types=frozenset({_M.RINGBUF})
    ),
    Proto(
        "perf_event_output",
        RET_INTEGER,
        (PTR_TO_CTX, CONST_MAP_PTR, ANYTHING, PTR_TO_MEM, CONST_SIZE_OR_ZERO),
        map_types=frozenset({_M.PERF_EVENT_ARRAY}),
    ),
    Proto("ktime_get_ns"),
    Proto("ktime_get_boot_ns"),
    Proto("ktime_get_coarse_ns"),
    Proto("ktime_get_tai_ns"),
    Proto("jiffies64"),
    Proto("get_prandom_u32"),
    Proto("get_smp_processor_id", ret_range="cpu"),
    Proto("get_numa_node_id"),
    Proto("trace_printk", RET_INTEGER, (PTR_TO_MEM, CONST_SIZE), gpl_only=True),
    Proto(
        "trace_vprintk",
        RET_INTEGER,
        (PTR_TO_MEM, CONST_SIZE, PTR_TO_MEM_OR_NULL, CONST_SIZE_OR_ZERO),
        gpl_only=True,
    ),
    Proto(
        "snprintf",
        RET_INTEGER,
        (
            PTR_TO_UNINIT_MEM_OR_NULL,
            CONST_SIZE_OR_ZERO,
            PTR_TO_CONST_STR,
            PTR_TO_MEM_OR_NULL,
            CONST_SIZE_OR_ZERO,
        ),
    ),
    Proto("strtol", RET_INTEGER, (PTR_TO_MEM, CONST_SIZE, ANYTHING, PTR_TO_LONG)),
    Proto("strtoul", RET_INTEGER, (PTR_TO_MEM, CONST_SIZE, ANYTHING, PTR_TO_LONG)),
    Proto("strncmp", RET_INTEGER, (PTR_TO_MEM, CONST_SIZE, PTR_TO_CONST_STR)),
    # probe_read{,_user,_kernel}{,_str}: (dst, size, unsafe_ptr); the _str ones return
    # the string's length
    *(
        Proto(
            f"probe_read{space}{kind}",
            RET_INTEGER,
            (PTR_TO_UNINIT_MEM, CONST_SIZE_OR_ZERO, ANYTHING),
            gpl_only=True,
            ret_range=kind and "str",
        )
        for kind in ("", "_str")
        for space in ("", "_user", "_kernel")
    ),
    Proto("get_current_pid_tgid"),
    Proto("get_current_uid_gid"),
    Proto("get_current_comm", RET_INTEGER, (PTR_TO_UNINIT_MEM, CONST_SIZE)),
    Proto("get_current_task"),
    # a trusted task_struct pointer in the kernel; bpfkit has no BTF pointers and
    # treats it as a number (usable as a probe_read source, not dereferenced)
    Proto("get_current_task_btf"),
    Proto(
        "get_stackid",
        RET_INTEGER,
        (PTR_TO_CTX, CONST_MAP_PTR, ANYTHING),
        map_types=frozenset({_M.STACK_TRACE}),
    ),
    Proto(
        "get_stack",
        RET_INTEGER,
        (PTR_TO_CTX, PTR_TO_UNINIT_MEM, CONST_SIZE_OR_ZERO, ANYTHING),
        ret_range="str",
    ),
    Proto("skb_load_bytes", RET_INTEGER, (PTR_TO_CTX, ANYTHING, PTR_TO_UNINIT_MEM, CONST_SIZE)),
    Proto(
        "skb_store_bytes",
        RET_INTEGER,
        (PTR_TO_CTX, ANYTHING, PTR_TO_MEM, CONST_SIZE, ANYTHING),
        pkt_changing=True,
    ),
    *(
        Proto(
            name,
            RET_INTEGER,
            (PTR_TO_CTX, ANYTHING, ANYTHING, ANYTHING, ANYTHING),
            pkt_changing=True,
        )
        for name in ("l3_csum_replace", "l4_csum_replace")
    ),
    Proto(
        "csum_diff",
        RET_INTEGER,
        (PTR_TO_MEM_OR_NULL, CONST_SIZE_OR_ZERO, PTR_TO_MEM_OR_NULL, CONST_SIZE_OR_ZERO, ANYTHING),
    ),
    Proto("xdp_load_bytes", RET_INTEGER, (PTR_TO_CTX, ANYTHING, PTR_TO_UNINIT_MEM, CONST_SIZE)),
    Proto("xdp_store_bytes", RET_INTEGER, (PTR_TO_CTX, ANYTHING, PTR_TO_MEM, CONST_SIZE)),
    Proto("xdp_get_buff_len", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("xdp_adjust_head", RET_INTEGER, (PTR_TO_CTX, ANYTHING), pkt_changing=True),
    Proto("xdp_adjust_tail", RET_INTEGER, (PTR_TO_CTX, ANYTHING), pkt_changing=True),
    Proto("xdp_adjust_meta", RET_INTEGER, (PTR_TO_CTX, ANYTHING), pkt_changing=True),
    Proto("redirect", RET_INTEGER, (ANYTHING, ANYTHING)),
    Proto("redirect_map", RET_INTEGER, (CONST_MAP_PTR, ANYTHING, ANYTHING), map_types=_REDIRECT),
    Proto("spin_lock", RET_VOID, (PTR_TO_SPIN_LOCK,)),
    Proto("spin_unlock", RET_VOID, (PTR_TO_SPIN_LOCK,)),
    # ---- skb and socket helpers (net/core/filter.c, kernel/bpf/cgroup.c) -------------
    Proto("get_local_storage", RET_MAP_VALUE, (CONST_MAP_PTR, ANYTHING)),
    Proto(
        "check_mtu",
        RET_INTEGER,
        (PTR_TO_CTX, ANYTHING, PTR_TO_U32_OUT, ANYTHING, ANYTHING),
        gpl_only=True,
    ),
    Proto("csum_update", RET_INTEGER, (PTR_TO_CTX, ANYTHING)),
    Proto("csum_level", RET_INTEGER, (PTR_TO_CTX, ANYTHING)),
    Proto("get_netns_cookie", RET_INTEGER, (PTR_TO_CTX_OR_NULL,)),
    Proto("get_socket_cookie", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("get_socket_uid", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("get_hash_recalc", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("set_hash_invalid", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("set_hash", RET_INTEGER, (PTR_TO_CTX, ANYTHING)),
    Proto("get_cgroup_classid", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("get_route_realm", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("skb_cgroup_id", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("skb_under_cgroup", RET_INTEGER, (PTR_TO_CTX, CONST_MAP_PTR, ANYTHING)),
    Proto(
        "skb_load_bytes_relative",
        RET_INTEGER,
        (PTR_TO_CTX, ANYTHING, PTR_TO_UNINIT_MEM, CONST_SIZE, ANYTHING),
    ),
    Proto("skb_pull_data", RET_INTEGER, (PTR_TO_CTX, ANYTHING), pkt_changing=True),
    Proto("skb_change_head", RET_INTEGER, (PTR_TO_CTX, ANYTHING, ANYTHING), pkt_changing=True),
    Proto("skb_change_tail", RET_INTEGER, (PTR_TO_CTX, ANYTHING, ANYTHING), pkt_changing=True),
    Proto(
        "skb_adjust_room",
        RET_INTEGER,
        (PTR_TO_CTX, ANYTHING, ANYTHING, ANYTHING),
        pkt_changing=True,
    ),
    Proto("skb_vlan_push", RET_INTEGER, (PTR_TO_CTX, ANYTHING, ANYTHING), pkt_changing=True),
    Proto("skb_vlan_pop", RET_INTEGER, (PTR_TO_CTX,), pkt_changing=True),
    Proto("clone_redirect", RET_INTEGER, (PTR_TO_CTX, ANYTHING, ANYTHING), pkt_changing=True),
    Proto("fib_lookup", RET_INTEGER, (PTR_TO_CTX, PTR_TO_MEM, CONST_SIZE, ANYTHING), gpl_only=True),
    # (ctx, tuple, tuple_size, netns, flags), the result holds a socket reference
    *(
        Proto(
            name,
            ret,
            (PTR_TO_CTX, PTR_TO_MEM, CONST_SIZE_OR_ZERO, ANYTHING, ANYTHING),
            acquires=True,
        )
        for name, ret in (
            ("sk_lookup_tcp", RET_SOCKET_OR_NULL),
            ("sk_lookup_udp", RET_SOCKET_OR_NULL),
            ("skc_lookup_tcp", RET_SOCK_COMMON_OR_NULL),
        )
    ),
    Proto("sk_release", RET_INTEGER, (ARG_BTF_SOCK_COMMON,), releases=True),
    Proto("sk_fullsock", RET_SOCKET_OR_NULL, (ARG_SOCK_COMMON,), ptr_cast=True),
    Proto("tcp_sock", RET_TCP_SOCK_OR_NULL, (ARG_SOCK_COMMON,), ptr_cast=True),
    Proto("get_listener_sock", RET_SOCKET_OR_NULL, (ARG_SOCK_COMMON,)),
    Proto(
        "sk_select_reuseport",
        RET_INTEGER,
        (PTR_TO_CTX, CONST_MAP_PTR, PTR_TO_MAP_KEY, ANYTHING),
    ),
    # net/core/bpf_sk_storage.c
    Proto(
        "sk_storage_get",
        RET_MAP_VALUE_OR_NULL,
        (CONST_MAP_PTR, ARG_BTF_SOCK_COMMON, PTR_TO_MAP_VALUE_OR_NULL, ANYTHING),
    ),
    Proto("sk_storage_delete", RET_INTEGER, (CONST_MAP_PTR, ARG_BTF_SOCK_COMMON)),
]

#: Prototype by helper id.
PROTOS: dict[int, Proto] = {p.id: p for p in _PROTOS}

#: Map types whose maps only the listed helpers may take (kernel ``check_map_func_compatibility``).

_CGRP_STORAGE = 32  # BPF_MAP_TYPE_CGRP_STORAGE (newer than bpfkit.uapi's table)
_PERF_EVENT_FUNCS = frozenset(
    {"perf_event_read", "perf_event_output", "skb_output", "perf_event_read_value", "xdp_output"}
)
_RINGBUF_FUNCS = frozenset(
    {
        "ringbuf_output",
        "ringbuf_reserve",
        "ringbuf_query",
        "ringbuf_reserve_dynptr",
        "ringbuf_submit_dynptr",
        "ringbuf_discard_dynptr",
    }
)
_SOCK_MAP_FUNCS = frozenset(
    {"sk_redirect_map", "sock_map_update", "msg_redirect_map", "sk_select_reuseport"}
)
_SOCK_HASH_FUNCS = frozenset(
    {"sk_redirect_hash", "sock_hash_update", "msg_redirect_hash", "sk_select_reuseport"}
)
#: map type -> the only helpers that may take it (the map side of the kernel's
#: ``check_map_func_compatibility``); sockmap/sockhash updates are decided per type
_MAP_SIDE: dict[int, frozenset[str]] = {
    _M.PROG_ARRAY: frozenset({"tail_call"}),
    _M.PERF_EVENT_ARRAY: _PERF_EVENT_FUNCS,
    _M.RINGBUF: _RINGBUF_FUNCS,
    _M.USER_RINGBUF: frozenset({"user_ringbuf_drain"}),
    _M.STACK_TRACE: frozenset({"get_stackid"}),
    _M.CGROUP_ARRAY: frozenset({"skb_under_cgroup", "current_task_under_cgroup"}),
    _M.CGROUP_STORAGE: frozenset({"get_local_storage"}),
    _M.PERCPU_CGROUP_STORAGE: frozenset({"get_local_storage"}),
    _M.DEVMAP: frozenset({"redirect_map", "map_lookup_elem"}),
    _M.DEVMAP_HASH: frozenset({"redirect_map", "map_lookup_elem"}),
    _M.CPUMAP: frozenset({"redirect_map"}),
    _M.XSKMAP: frozenset({"redirect_map", "map_lookup_elem"}),
    _M.ARRAY_OF_MAPS: frozenset({"map_lookup_elem"}),
    _M.HASH_OF_MAPS: frozenset({"map_lookup_elem"}),
    _M.SOCKMAP: _SOCK_MAP_FUNCS | {"map_lookup_elem"},
    _M.SOCKHASH: _SOCK_HASH_FUNCS | {"map_lookup_elem"},
    _M.REUSEPORT_SOCKARRAY: frozenset({"sk_select_reuseport"}),
    _M.QUEUE: frozenset({"map_peek_elem", "map_pop_elem", "map_push_elem"}),
    _M.STACK: frozenset({"map_peek_elem", "map_pop_elem", "map_push_elem"}),
    _M.SK_STORAGE: frozenset({"sk_storage_get", "sk_storage_delete", "kptr_xchg"}),
    _M.INODE_STORAGE: frozenset({"inode_storage_get", "inode_storage_delete", "kptr_xchg"}),
    _M.TASK_STORAGE: frozenset({"task_storage_get", "task_storage_delete", "kptr_xchg"}),
    _CGRP_STORAGE: frozenset({"cgrp_storage_get", "cgrp_storage_delete", "kptr_xchg"}),
    _M.BLOOM_FILTER: frozenset({"map_peek_elem", "map_push_elem"}),
}
#: the map side under its former name (other modules extend it)
MAP_ONLY_HELPERS = _MAP_SIDE
#: helper -> the only map types it takes (the helper side)
_FUNC_SIDE: dict[str, frozenset[int]] = {}
for _names, _types in (
    (("tail_call",), {_M.PROG_ARRAY}),
    (_PERF_EVENT_FUNCS, {_M.PERF_EVENT_ARRAY}),
    (_RINGBUF_FUNCS, {_M.RINGBUF}),
    (("user_ringbuf_drain",), {_M.USER_RINGBUF}),
    (("get_stackid",), {_M.STACK_TRACE}),
    (("current_task_under_cgroup", "skb_under_cgroup"), {_M.CGROUP_ARRAY}),
    (("redirect_map",), {_M.DEVMAP, _M.DEVMAP_HASH, _M.CPUMAP, _M.XSKMAP}),
    (("sk_redirect_map", "msg_redirect_map", "sock_map_update"), {_M.SOCKMAP}),
    (("sk_redirect_hash", "msg_redirect_hash", "sock_hash_update"), {_M.SOCKHASH}),
    (("get_local_storage",), {_M.CGROUP_STORAGE, _M.PERCPU_CGROUP_STORAGE}),
    (("sk_select_reuseport",), {_M.REUSEPORT_SOCKARRAY, _M.SOCKMAP, _M.SOCKHASH}),
    (("map_pop_elem",), {_M.QUEUE, _M.STACK}),
    (("map_peek_elem", "map_push_elem"), {_M.QUEUE, _M.STACK, _M.BLOOM_FILTER}),
    (("map_lookup_percpu_elem",), {_M.PERCPU_ARRAY, _M.PERCPU_HASH, _M.LRU_PERCPU_HASH}),
    (("sk_storage_get", "sk_storage_delete"), {_M.SK_STORAGE}),
    (("inode_storage_get", "inode_storage_delete"), {_M.INODE_STORAGE}),
    (("task_storage_get", "task_storage_delete"), {_M.TASK_STORAGE}),
    (("cgrp_storage_get", "cgrp_storage_delete"), {_CGRP_STORAGE}),
):
    for _n in _names:
        _FUNC_SIDE[_n] = frozenset(_types)

#: program types that may update or delete sockmap/sockhash entries (``may_update_sockmap``)
_SOCKMAP_UPDATERS = frozenset(
    {
        ProgType.SOCKET_FILTER,
        ProgType.SCHED_CLS,
        ProgType.SCHED_ACT,
        ProgType.XDP,
        ProgType.SK_REUSEPORT,
        ProgType.FLOW_DISSECTOR,
        ProgType.SK_LOOKUP,
    }
)


def map_func_error(map_type: int, name: str, prog_type: int, attach_type: int | None) -> str:
    """Why helper ``name`` may not take a map of ``map_type`` (kernel wording), or ""."""
    allowed = _MAP_SIDE.get(map_type)
    ok = True
    extra = ""
    if allowed is not None and name not in allowed:
        ok = False
        if map_type in (_M.SOCKMAP, _M.SOCKHASH) and name in ("map_update_elem", "map_delete_elem"):
            # may_update_sockmap
            if prog_type in _SOCKMAP_UPDATERS:
                ok = True
            elif prog_type == ProgType.TRACING and attach_type == 28:  # BPF_TRACE_ITER
                ok = True
            elif prog_type == ProgType.SOCK_OPS and name == "map_delete_elem":
                ok = True
            else:
                extra = "cannot update sockmap in this context\n"
    types = _FUNC_SIDE.get(name)
    if types is not None and map_type not in types:
        ok = False
    if ok:
        return ""
    if name == "tail_call":
        return "expected prog array map for tail call"  # 6.18's wording
    return f"{extra}cannot pass map_type {map_type} into func bpf_{name}#{HELPER_IDS[name]}"


#: the map helpers of the kernel's base set, privileged or not
_MAP_HELPERS = frozenset(
    {
        "map_lookup_elem",
        "map_update_elem",
        "map_delete_elem",
        "map_push_elem",
        "map_pop_elem",
        "map_peek_elem",
        "map_lookup_percpu_elem",
    }
)
# Helpers every program type may call (the kernel's base set, privileged loader).
_BASE = _MAP_HELPERS | frozenset(
    {
        "for_each_map_elem",
        "loop",
        "tail_call",
        "ringbuf_output",
        "ringbuf_reserve",
        "ringbuf_submit",
        "ringbuf_discard",
        "ringbuf_query",
        "perf_event_output",
        "ktime_get_ns",
        "ktime_get_boot_ns",
        "ktime_get_tai_ns",
        "jiffies64",
        "get_prandom_u32",
        "get_smp_processor_id",
        "get_numa_node_id",
        "trace_printk",
        "trace_vprintk",
        "snprintf",
        "strtol",
        "strtoul",
        "strncmp",
        "probe_read_user",
        "probe_read_kernel",
        "probe_read_user_str",
        "probe_read_kernel_str",
        "get_current_pid_tgid",
        "get_current_uid_gid",
        "get_current_comm",
        "get_current_task",
        "get_current_task_btf",
        "spin_lock",
        "spin_unlock",
    }
)
_TRACING = _BASE | {"probe_read", "probe_read_str", "get_stackid", "get_stack"}
_NET = _BASE | {"ktime_get_coarse_ns"}
_TC = _NET | {
    "skb_load_bytes",
    "skb_store_bytes",
    "l3_csum_replace",
    "l4_csum_replace",
    "csum_diff",
    "redirect",
}

_PT = ProgType
ALLOWED: dict[int, frozenset[str]] = {
    _PT.SOCKET_FILTER: _NET | {"skb_load_bytes"},
    _PT.CGROUP_SKB: _NET | {"skb_load_bytes"},
    _PT.SCHED_CLS: _TC,
    _PT.SCHED_ACT: _TC,
    _PT.XDP: _NET
    | {
        "csum_diff",
        "xdp_adjust_head",
        "xdp_adjust_tail",
        "xdp_adjust_meta",
        "xdp_load_bytes",
        "xdp_store_bytes",
        "xdp_get_buff_len",
        "redirect",
        "redirect_map",
    },
    _PT.KPROBE: _TRACING,
    _PT.TRACEPOINT: _TRACING,
    _PT.RAW_TRACEPOINT: _TRACING,
    _PT.RAW_TRACEPOINT_WRITABLE: _TRACING,
    _PT.PERF_EVENT: _TRACING,
    _PT.SYSCALL: _BASE,
}

#: Helpers an unprivileged loader may call (socket filters and cgroup skb only): the
#: kernel's base set before its CAP_BPF check (bpf_loop and bpf_for_each_map_elem come
#: after it) plus the skb helpers these types give without CAP_PERFMON.
UNPRIV: frozenset[str] = _MAP_HELPERS | frozenset(
    {
        "tail_call",
        "ringbuf_output",
        "ringbuf_reserve",
        "ringbuf_submit",
        "ringbuf_discard",
        "ringbuf_query",
        "ktime_get_ns",
        "ktime_get_boot_ns",
        "ktime_get_tai_ns",
        "ktime_get_coarse_ns",
        "get_prandom_u32",
        "get_smp_processor_id",
        "get_numa_node_id",
        "get_current_pid_tgid",
        "get_current_uid_gid",
        "strncmp",
        "strtol",
        "strtoul",
        "skb_load_bytes",
        "perf_event_output",
    }
)


# ---- helpers the VM accepts but does not perform ---------------------------------------
# Programs of real tools call helpers bpfkit's runtime does not implement (or implements
# only partly); the kernel loads them, so the VM's verifier checks these calls with the
# kernel's prototypes (kernel/trace/bpf_trace.c, kernel/bpf/helpers.c, net/core/filter.c)
# and the VM faults only if one is called at run time (docs/runtime.md).
_ACCEPTED_PROTOS = [
    Proto(
        "current_task_under_cgroup",
        RET_INTEGER,
        (CONST_MAP_PTR, ANYTHING),
        map_types=frozenset({_M.CGROUP_ARRAY}),
    ),
    Proto("get_current_cgroup_id", RET_INTEGER, ()),
    Proto("get_current_ancestor_cgroup_id", RET_INTEGER, (ANYTHING,)),
    Proto(
        "get_ns_current_pid_tgid",
        RET_INTEGER,
        (ANYTHING, ANYTHING, PTR_TO_UNINIT_MEM, CONST_SIZE),
    ),
    Proto("send_signal", RET_INTEGER, (ANYTHING,)),
    Proto("send_signal_thread", RET_INTEGER, (ANYTHING,)),
    Proto("get_func_ip", RET_INTEGER, (PTR_TO_CTX,), gpl_only=True),
    Proto("get_attach_cookie", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("get_socket_cookie", RET_INTEGER, (PTR_TO_CTX,)),
    Proto("get_socket_uid", RET_INTEGER, (PTR_TO_CTX,)),
]
PROTOS.update({p.id: p for p in _ACCEPTED_PROTOS})
MAP_ONLY_HELPERS[_M.CGROUP_ARRAY] = frozenset({"current_task_under_cgroup", "skb_under_cgroup"})
_TRACE_EXTRA = frozenset(
    {
        "current_task_under_cgroup",
        "get_current_cgroup_id",
        "get_current_ancestor_cgroup_id",
        "get_ns_current_pid_tgid",
        "send_signal",
        "send_signal_thread",
    }
)
_SKB_EXTRA = frozenset({"get_socket_cookie", "get_socket_uid"})
for _t, _extra in (
    (_PT.KPROBE, _TRACE_EXTRA | {"get_func_ip", "get_attach_cookie"}),
    (_PT.TRACEPOINT, _TRACE_EXTRA | {"get_attach_cookie"}),
    (_PT.PERF_EVENT, _TRACE_EXTRA | {"get_attach_cookie"}),
    (_PT.RAW_TRACEPOINT, _TRACE_EXTRA),
    (_PT.RAW_TRACEPOINT_WRITABLE, _TRACE_EXTRA),
    (_PT.SOCKET_FILTER, _SKB_EXTRA),
    (_PT.CGROUP_SKB, _SKB_EXTRA),
    (_PT.SCHED_CLS, _SKB_EXTRA),
    (_PT.SCHED_ACT, _SKB_EXTRA),
):
    ALLOWED[_t] = ALLOWED[_t] | _extra


def allowed_ids(prog_type: int, attach_type: int | None = None) -> frozenset[int] | None:
    """The helper ids the running kernel lets a privileged program of this type (and
    attach type) call (``helper_sets.py``, probed from the kernel); None for a type
    bpfkit has no table for. An attach type not probed gets what every probed attach
    type of the program type allows."""
    key = (int(prog_type), None if attach_type is None else int(attach_type))
    ids = ALLOWED_IDS.get(key)
    if ids is not None:
        return running_kernel_ids(key) or ids
    ids = ALLOWED_IDS.get((key[0], None))
    if ids is not None:
        return ids
    cands = [v for (pt, _), v in ALLOWED_IDS.items() if pt == key[0]]
    return frozenset.intersection(*cands) if cands else None


_SLEEPABLE_TYPES = frozenset({31})  # syscall programs are probed sleepable, as libbpf loads them


@functools.cache
def running_kernel_ids(key: tuple[int, int | None]) -> frozenset[int] | None:
    """The running kernel's own answer for ``key`` when this process may ask it.

    Helper availability differs between kernel builds (one 6.18 build refuses
    ``bpf_xdp_adjust_meta`` for XDP, another allows it), so where ``bpf()`` is usable the
    kernel is asked once per process (``bpfkit.kernel.features.helper_ids``); elsewhere —
    or with ``BPFKIT_KERNEL_RULES=static`` — the table generated from one kernel stands.
    """
    if os.environ.get("BPFKIT_KERNEL_RULES") == "static":
        return None
    try:
        from ..kernel.features import helper_ids
    except ImportError:
        return None
    flags = 1 << 4 if key[0] in _SLEEPABLE_TYPES else 0
    try:
        return helper_ids(key[0], key[1], flags)
    except Exception:  # noqa: BLE001 - a failed probe leaves the static table in charge
        return None


def helper_allowed(
    helper_id: int, prog_type: int, unpriv: bool = False, attach_type: int | None = None
) -> bool:
    """Whether the kernel lets a program of this type call ``helper_id`` at all."""
    ids = allowed_ids(prog_type, attach_type)
    if ids is None or helper_id not in ids:
        return False
    if unpriv:
        p = PROTOS.get(helper_id)
        return p is not None and p.name in UNPRIV
    return True


def proto_for(
    helper_id: int, prog_type: int, unpriv: bool = False, attach_type: int | None = None
) -> Proto | None:
    """The prototype of ``helper_id`` if a program of ``prog_type`` may call it (None:
    the kernel refuses it for the type, or bpfkit does not model it)."""
    p = PROTOS.get(helper_id)
    if p is None or not helper_allowed(helper_id, prog_type, unpriv, attach_type):
        return None
    return p
