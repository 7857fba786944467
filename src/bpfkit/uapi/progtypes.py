"""Program types as data: helpers each type may call, context, return codes, test_run.

``HELPERS_BY_PROG_TYPE`` is the kernel's ``get_func_proto`` answer per program type: the
helper names (``HELPER_IDS`` gives the ids) a program of that type may call; calling any
other helper is a load error ("program of this type cannot use helper ..."). The sets
were taken from the running kernel (6.18, privileged loader) by loading a
``call <id>; r0 = 0; exit`` probe per type and helper and reading the verifier log.
``PROG_TYPES`` says, per type bpfkit runs, which context struct its ``r1`` points at,
what its return value means, and what ``BPF_PROG_TEST_RUN`` accepts for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ctx import CTX_ACCESS, CtxAccess
from .enums import HELPER_IDS, ProgType

__all__ = [
    "COMMON_HELPERS",
    "HELPERS_BY_PROG_TYPE",
    "ProgTypeInfo",
    "PROG_TYPES",
    "allowed_helpers",
    "allowed_helper_ids",
    "helper_allowed",
    "prog_type_info",
    "TestRun",
]

# fmt: off
COMMON_HELPERS: frozenset[str] = frozenset({
    "map_lookup_elem", "map_update_elem", "map_delete_elem", "ktime_get_ns", "trace_printk",
    "get_prandom_u32", "get_smp_processor_id", "tail_call", "get_current_pid_tgid",
    "get_current_uid_gid", "get_current_comm", "get_cgroup_classid", "perf_event_read",
    "get_current_task", "current_task_under_cgroup", "get_numa_node_id",
    "perf_event_read_value", "get_current_cgroup_id", "map_push_elem", "map_pop_elem",
    "map_peek_elem", "spin_lock", "spin_unlock", "strtol", "strtoul", "send_signal",
    "probe_read_user", "probe_read_kernel", "probe_read_user_str", "probe_read_kernel_str",
    "send_signal_thread", "jiffies64", "get_ns_current_pid_tgid",
    "get_current_ancestor_cgroup_id", "ktime_get_boot_ns", "ringbuf_output",
    "ringbuf_reserve", "ringbuf_submit", "ringbuf_discard", "ringbuf_query",
    "get_task_stack", "copy_from_user", "snprintf_btf", "per_cpu_ptr", "this_cpu_ptr",
    "task_storage_get", "task_storage_delete", "get_current_task_btf", "for_each_map_elem",
    "snprintf", "timer_init", "timer_set_callback", "timer_start", "timer_cancel",
    "task_pt_regs", "get_branch_snapshot", "trace_vprintk", "find_vma", "loop", "strncmp",
    "copy_from_user_task", "kptr_xchg", "map_lookup_percpu_elem", "dynptr_from_mem",
    "ringbuf_reserve_dynptr", "ringbuf_submit_dynptr", "ringbuf_discard_dynptr",
    "dynptr_read", "dynptr_write", "dynptr_data", "ktime_get_tai_ns", "user_ringbuf_drain",
})

_TRACING_EXTRA = frozenset({
    "probe_read", "perf_event_output", "get_stackid", "probe_read_str", "get_stack",
    "get_func_ip", "get_attach_cookie",
})
_TC_EXTRA = frozenset({
    "skb_store_bytes", "l3_csum_replace", "l4_csum_replace", "clone_redirect",
    "skb_vlan_push", "skb_vlan_pop", "skb_get_tunnel_key", "skb_set_tunnel_key", "redirect",
    "get_route_realm", "perf_event_output", "skb_load_bytes", "csum_diff",
    "skb_get_tunnel_opt", "skb_set_tunnel_opt", "skb_change_proto", "skb_change_type",
    "skb_under_cgroup", "get_hash_recalc", "skb_change_tail", "skb_pull_data",
    "csum_update", "set_hash_invalid", "skb_change_head", "get_socket_cookie",
    "get_socket_uid", "set_hash", "skb_adjust_room", "skb_get_xfrm_state",
    "skb_load_bytes_relative", "fib_lookup", "skb_cgroup_id", "skb_ancestor_cgroup_id",
    "sk_lookup_tcp", "sk_lookup_udp", "sk_release", "sk_fullsock", "tcp_sock",
    "skb_ecn_set_ce", "get_listener_sock", "skc_lookup_tcp", "tcp_check_syncookie",
    "sk_storage_get", "sk_storage_delete", "tcp_gen_syncookie", "get_netns_cookie",
    "sk_assign", "csum_level", "skc_to_tcp6_sock", "skc_to_tcp_sock",
    "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock",
    "skb_cgroup_classid", "redirect_neigh", "redirect_peer", "ktime_get_coarse_ns",
    "check_mtu", "skc_to_unix_sock", "skb_set_tstamp", "skc_to_mptcp_sock",
    "tcp_raw_gen_syncookie_ipv4", "tcp_raw_gen_syncookie_ipv6",
    "tcp_raw_check_syncookie_ipv4", "tcp_raw_check_syncookie_ipv6",
})

HELPERS_BY_PROG_TYPE: dict[ProgType, frozenset[str]] = {
    ProgType.SOCKET_FILTER: COMMON_HELPERS | frozenset({
        "perf_event_output", "skb_load_bytes", "get_socket_cookie", "get_socket_uid",
        "skb_load_bytes_relative", "get_netns_cookie", "skc_to_tcp6_sock",
        "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
        "skc_to_udp6_sock", "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.KPROBE: COMMON_HELPERS | _TRACING_EXTRA,
    ProgType.TRACEPOINT: COMMON_HELPERS | _TRACING_EXTRA,
    ProgType.RAW_TRACEPOINT: COMMON_HELPERS | _TRACING_EXTRA,
    ProgType.RAW_TRACEPOINT_WRITABLE: COMMON_HELPERS | _TRACING_EXTRA,
    ProgType.SCHED_CLS: COMMON_HELPERS | _TC_EXTRA,
    ProgType.SCHED_ACT: COMMON_HELPERS | _TC_EXTRA,
    ProgType.XDP: COMMON_HELPERS | frozenset({
        "redirect", "perf_event_output", "csum_diff", "xdp_adjust_head", "redirect_map",
        "xdp_adjust_meta", "xdp_adjust_tail", "fib_lookup", "sk_lookup_tcp",
        "sk_lookup_udp", "sk_release", "skc_lookup_tcp", "tcp_check_syncookie",
        "tcp_gen_syncookie", "skc_to_tcp6_sock", "skc_to_tcp_sock",
        "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock",
        "ktime_get_coarse_ns", "check_mtu", "skc_to_unix_sock", "xdp_get_buff_len",
        "xdp_load_bytes", "xdp_store_bytes", "skc_to_mptcp_sock",
        "tcp_raw_gen_syncookie_ipv4", "tcp_raw_gen_syncookie_ipv6",
        "tcp_raw_check_syncookie_ipv4", "tcp_raw_check_syncookie_ipv6",
    }),
    ProgType.PERF_EVENT: COMMON_HELPERS | frozenset({
        "probe_read", "perf_event_output", "get_stackid", "probe_read_str",
        "perf_prog_read_value", "get_stack", "read_branch_records", "get_func_ip",
        "get_attach_cookie",
    }),
    ProgType.CGROUP_SKB: COMMON_HELPERS | frozenset({
        "perf_event_output", "skb_load_bytes", "get_socket_cookie", "get_socket_uid",
        "skb_load_bytes_relative", "skb_cgroup_id", "get_local_storage",
        "skb_ancestor_cgroup_id", "sk_lookup_tcp", "sk_lookup_udp", "sk_release",
        "sk_fullsock", "tcp_sock", "skb_ecn_set_ce", "get_listener_sock", "skc_lookup_tcp",
        "sk_storage_get", "sk_storage_delete", "get_netns_cookie", "sk_cgroup_id",
        "sk_ancestor_cgroup_id", "skc_to_tcp6_sock", "skc_to_tcp_sock",
        "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock",
        "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.CGROUP_SOCK: COMMON_HELPERS | frozenset({
        "perf_event_output", "get_socket_cookie", "get_local_storage", "sk_storage_get",
        "get_netns_cookie", "ktime_get_coarse_ns", "get_retval", "set_retval",
    }),
    ProgType.LWT_IN: COMMON_HELPERS | frozenset({
        "get_route_realm", "perf_event_output", "skb_load_bytes", "csum_diff",
        "skb_under_cgroup", "get_hash_recalc", "skb_pull_data", "lwt_push_encap",
        "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock",
        "skc_to_tcp_request_sock", "skc_to_udp6_sock", "ktime_get_coarse_ns",
        "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.LWT_OUT: COMMON_HELPERS | frozenset({
        "get_route_realm", "perf_event_output", "skb_load_bytes", "csum_diff",
        "skb_under_cgroup", "get_hash_recalc", "skb_pull_data", "skc_to_tcp6_sock",
        "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
        "skc_to_udp6_sock", "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.LWT_XMIT: COMMON_HELPERS | frozenset({
        "skb_store_bytes", "l3_csum_replace", "l4_csum_replace", "clone_redirect",
        "skb_get_tunnel_key", "skb_set_tunnel_key", "redirect", "get_route_realm",
        "perf_event_output", "skb_load_bytes", "csum_diff", "skb_get_tunnel_opt",
        "skb_set_tunnel_opt", "skb_under_cgroup", "get_hash_recalc", "skb_change_tail",
        "skb_pull_data", "csum_update", "set_hash_invalid", "skb_change_head",
        "lwt_push_encap", "csum_level", "skc_to_tcp6_sock", "skc_to_tcp_sock",
        "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock",
        "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.SOCK_OPS: COMMON_HELPERS | frozenset({
        "perf_event_output", "get_socket_cookie", "setsockopt", "sock_map_update",
        "getsockopt", "sock_ops_cb_flags_set", "sock_hash_update", "get_local_storage",
        "tcp_sock", "sk_storage_get", "sk_storage_delete", "get_netns_cookie",
        "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock",
        "skc_to_tcp_request_sock", "skc_to_udp6_sock", "load_hdr_opt", "store_hdr_opt",
        "reserve_hdr_opt", "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.SK_SKB: COMMON_HELPERS | frozenset({
        "skb_store_bytes", "perf_event_output", "skb_load_bytes", "skb_change_tail",
        "skb_pull_data", "skb_change_head", "get_socket_cookie", "get_socket_uid",
        "skb_adjust_room", "sk_redirect_map", "sk_redirect_hash", "sk_lookup_tcp",
        "sk_lookup_udp", "sk_release", "skc_lookup_tcp", "skc_to_tcp6_sock",
        "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
        "skc_to_udp6_sock", "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.CGROUP_DEVICE: COMMON_HELPERS | frozenset({
        "perf_event_output", "get_local_storage",
    }),
    ProgType.SK_MSG: COMMON_HELPERS | frozenset({
        "perf_event_output", "msg_redirect_map", "msg_apply_bytes", "msg_cork_bytes",
        "msg_pull_data", "msg_redirect_hash", "msg_push_data", "msg_pop_data",
        "sk_storage_get", "sk_storage_delete", "get_netns_cookie", "skc_to_tcp6_sock",
        "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
        "skc_to_udp6_sock", "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.CGROUP_SOCK_ADDR: COMMON_HELPERS | frozenset({
        "perf_event_output", "get_socket_cookie", "setsockopt", "getsockopt", "bind",
        "get_local_storage", "sk_lookup_tcp", "sk_lookup_udp", "sk_release",
        "skc_lookup_tcp", "sk_storage_get", "sk_storage_delete", "get_netns_cookie",
        "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock",
        "skc_to_tcp_request_sock", "skc_to_udp6_sock", "ktime_get_coarse_ns",
        "skc_to_unix_sock", "get_retval", "set_retval", "skc_to_mptcp_sock",
    }),
    ProgType.LWT_SEG6LOCAL: COMMON_HELPERS | frozenset({
        "get_route_realm", "perf_event_output", "skb_load_bytes", "csum_diff",
        "skb_under_cgroup", "get_hash_recalc", "skb_pull_data", "lwt_seg6_store_bytes",
        "lwt_seg6_adjust_srh", "lwt_seg6_action", "skc_to_tcp6_sock", "skc_to_tcp_sock",
        "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock",
        "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.SK_REUSEPORT: COMMON_HELPERS | frozenset({
        "skb_load_bytes", "get_socket_cookie", "skb_load_bytes_relative",
        "sk_select_reuseport", "ktime_get_coarse_ns",
    }),
    ProgType.FLOW_DISSECTOR: COMMON_HELPERS | frozenset({
        "skb_load_bytes", "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock",
        "skc_to_tcp_request_sock", "skc_to_udp6_sock", "ktime_get_coarse_ns",
        "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.CGROUP_SYSCTL: COMMON_HELPERS | frozenset({
        "perf_event_output", "get_local_storage", "sysctl_get_name",
        "sysctl_get_current_value", "sysctl_get_new_value", "sysctl_set_new_value",
        "ktime_get_coarse_ns",
    }),
    ProgType.CGROUP_SOCKOPT: COMMON_HELPERS | frozenset({
        "perf_event_output", "get_local_storage", "tcp_sock", "sk_storage_get",
        "sk_storage_delete", "get_netns_cookie", "get_retval", "set_retval",
    }),
    ProgType.SK_LOOKUP: COMMON_HELPERS | frozenset({
        "perf_event_output", "sk_release", "sk_assign", "skc_to_tcp6_sock",
        "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
        "skc_to_udp6_sock", "ktime_get_coarse_ns", "skc_to_unix_sock", "skc_to_mptcp_sock",
    }),
    ProgType.SYSCALL: COMMON_HELPERS | frozenset({
        "probe_read", "perf_event_output", "get_stackid", "probe_read_str",
        "get_socket_cookie", "get_stack", "sk_storage_get", "sk_storage_delete",
        "skb_output", "xdp_output", "skc_to_tcp6_sock", "skc_to_tcp_sock",
        "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock", "d_path",
        "sock_from_file", "sys_bpf", "btf_find_by_name_kind", "sys_close", "get_func_ip",
        "skc_to_unix_sock", "kallsyms_lookup_name", "xdp_get_buff_len", "skc_to_mptcp_sock",
    }),
}
# fmt: on


def allowed_helpers(prog_type: ProgType | int) -> frozenset[str]:
    """Names of the helpers ``prog_type`` may call (empty if unknown)."""
    try:
        return HELPERS_BY_PROG_TYPE.get(ProgType(prog_type), frozenset())
    except ValueError:
        return frozenset()


def allowed_helper_ids(prog_type: ProgType | int) -> frozenset[int]:
    """Ids of the helpers ``prog_type`` may call."""
    return frozenset(HELPER_IDS[n] for n in allowed_helpers(prog_type) if n in HELPER_IDS)


def helper_allowed(prog_type: ProgType | int, helper_id: int) -> bool:
    """Whether a program of ``prog_type`` may call helper ``helper_id``."""
    return helper_id in allowed_helper_ids(prog_type)


class TestRun:
    """What ``BPF_PROG_TEST_RUN`` does with a program type (``net/bpf/test_run.c``)."""

    SKB = "skb"  # data = an Ethernet frame; ctx = struct __sk_buff (optional)
    XDP = "xdp"  # data = the frame; ctx = struct xdp_md (optional)
    RAW_TP = "raw_tp"  # no data; ctx = the u64 args (≤ 12); no repeat, no duration
    SYSCALL = "syscall"  # no data; ctx = memory copied in and back out; no repeat
    NONE = "none"  # the kernel has no test_run for the type (fire it with .run(ctx=...))


@dataclass(frozen=True)
class ProgTypeInfo:
    """A program type: its context access, return-code meaning and test_run flavour."""

    type: ProgType
    ctx: CtxAccess
    test_run: str
    returns: dict[int, str]
    #: for skb test runs: True when data starts at the Ethernet header (tc), False when
    #: the program sees the packet from the network header (socket filter, cgroup skb)
    l2: bool = False

    @property
    def ctx_name(self) -> str:
        return self.ctx.layout.name


XDP_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
TC_ACTIONS = {
    -1: "TC_ACT_UNSPEC",
    0: "TC_ACT_OK",
    1: "TC_ACT_RECLASSIFY",
    2: "TC_ACT_SHOT",
    3: "TC_ACT_PIPE",
    4: "TC_ACT_STOLEN",
    5: "TC_ACT_QUEUED",
    6: "TC_ACT_REPEAT",
    7: "TC_ACT_REDIRECT",
    8: "TC_ACT_TRAP",
}
SOCKET_FILTER_RETURNS = {0: "drop the packet", -1: "keep the whole packet (other: trim to n)"}
CGROUP_SKB_RETURNS = {
    0: "drop",
    1: "allow",
    2: "drop, congestion notification (egress)",
    3: "allow, congestion notification (egress)",
}
TRACING_RETURNS = {0: "ignored by most hooks"}

PROG_TYPES: dict[ProgType, ProgTypeInfo] = {
    ProgType.SOCKET_FILTER: ProgTypeInfo(
        ProgType.SOCKET_FILTER,
        CTX_ACCESS[ProgType.SOCKET_FILTER],
        TestRun.SKB,
        SOCKET_FILTER_RETURNS,
    ),
    ProgType.SCHED_CLS: ProgTypeInfo(
        ProgType.SCHED_CLS, CTX_ACCESS[ProgType.SCHED_CLS], TestRun.SKB, TC_ACTIONS, l2=True
    ),
    ProgType.SCHED_ACT: ProgTypeInfo(
        ProgType.SCHED_ACT, CTX_ACCESS[ProgType.SCHED_ACT], TestRun.SKB, TC_ACTIONS, l2=True
    ),
    ProgType.CGROUP_SKB: ProgTypeInfo(
        ProgType.CGROUP_SKB, CTX_ACCESS[ProgType.CGROUP_SKB], TestRun.SKB, CGROUP_SKB_RETURNS
    ),
    ProgType.XDP: ProgTypeInfo(ProgType.XDP, CTX_ACCESS[ProgType.XDP], TestRun.XDP, XDP_ACTIONS),
    ProgType.KPROBE: ProgTypeInfo(
        ProgType.KPROBE, CTX_ACCESS[ProgType.KPROBE], TestRun.NONE, TRACING_RETURNS
    ),
    ProgType.TRACEPOINT: ProgTypeInfo(
        ProgType.TRACEPOINT, CTX_ACCESS[ProgType.TRACEPOINT], TestRun.NONE, TRACING_RETURNS
    ),
    ProgType.RAW_TRACEPOINT: ProgTypeInfo(
        ProgType.RAW_TRACEPOINT,
        CTX_ACCESS[ProgType.RAW_TRACEPOINT],
        TestRun.RAW_TP,
        TRACING_RETURNS,
    ),
    ProgType.RAW_TRACEPOINT_WRITABLE: ProgTypeInfo(
        ProgType.RAW_TRACEPOINT_WRITABLE,
        CTX_ACCESS[ProgType.RAW_TRACEPOINT_WRITABLE],
        TestRun.RAW_TP,
        TRACING_RETURNS,
    ),
    ProgType.PERF_EVENT: ProgTypeInfo(
        ProgType.PERF_EVENT, CTX_ACCESS[ProgType.PERF_EVENT], TestRun.NONE, TRACING_RETURNS
    ),
    ProgType.SYSCALL: ProgTypeInfo(
        ProgType.SYSCALL,
        CTX_ACCESS[ProgType.SYSCALL],
        TestRun.SYSCALL,
        {0: "returned to the bpf() caller"},
    ),
}


def prog_type_info(prog_type: ProgType | int) -> ProgTypeInfo | None:
    """The :class:`ProgTypeInfo` of ``prog_type``, or ``None`` if bpfkit cannot run it."""
    try:
        return PROG_TYPES.get(ProgType(prog_type))
    except ValueError:
        return None
