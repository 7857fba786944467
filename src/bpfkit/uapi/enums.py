"""Kernel ABI enums, generated once from linux/bpf.h (facts, not logic)."""

from __future__ import annotations

from enum import IntEnum


class Cmd(IntEnum):
    """``enum bpf_cmd``."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35


class MapType(IntEnum):
    """``enum bpf_map_type``."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31


class ProgType(IntEnum):
    """``enum bpf_prog_type``."""

    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    CGROUP_SKB = 8
    CGROUP_SOCK = 9
    LWT_IN = 10
    LWT_OUT = 11
    LWT_XMIT = 12
    SOCK_OPS = 13
    SK_SKB = 14
    CGROUP_DEVICE = 15
    SK_MSG = 16
    RAW_TRACEPOINT = 17
    CGROUP_SOCK_ADDR = 18
    LWT_SEG6LOCAL = 19
    LIRC_MODE2 = 20
    SK_REUSEPORT = 21
    FLOW_DISSECTOR = 22
    CGROUP_SYSCTL = 23
    RAW_TRACEPOINT_WRITABLE = 24
    CGROUP_SOCKOPT = 25
    TRACING = 26
    STRUCT_OPS = 27
    EXT = 28
    LSM = 29
    SK_LOOKUP = 30
    SYSCALL = 31


class AttachType(IntEnum):
    """``enum bpf_attach_type``."""

    CGROUP_INET_INGRESS = 0
    CGROUP_INET_EGRESS = 1
    CGROUP_INET_SOCK_CREATE = 2
    CGROUP_SOCK_OPS = 3
    SK_SKB_STREAM_PARSER = 4
    SK_SKB_STREAM_VERDICT = 5
    CGROUP_DEVICE = 6
    SK_MSG_VERDICT = 7
    CGROUP_INET4_BIND = 8
    CGROUP_INET6_BIND = 9
    CGROUP_INET4_CONNECT = 10
    CGROUP_INET6_CONNECT = 11
    CGROUP_INET4_POST_BIND = 12
    CGROUP_INET6_POST_BIND = 13
    CGROUP_UDP4_SENDMSG = 14
    CGROUP_UDP6_SENDMSG = 15
    LIRC_MODE2 = 16
    FLOW_DISSECTOR = 17
    CGROUP_SYSCTL = 18
    CGROUP_UDP4_RECVMSG = 19
    CGROUP_UDP6_RECVMSG = 20
    CGROUP_GETSOCKOPT = 21
    CGROUP_SETSOCKOPT = 22
    TRACE_RAW_TP = 23
    TRACE_FENTRY = 24
    TRACE_FEXIT = 25
    MODIFY_RETURN = 26
    LSM_MAC = 27
    TRACE_ITER = 28
    CGROUP_INET4_GETPEERNAME = 29
    CGROUP_INET6_GETPEERNAME = 30
    CGROUP_INET4_GETSOCKNAME = 31
    CGROUP_INET6_GETSOCKNAME = 32
    XDP_DEVMAP = 33
    CGROUP_INET_SOCK_RELEASE = 34
    XDP_CPUMAP = 35
    SK_LOOKUP = 36
    XDP = 37
    SK_SKB_VERDICT = 38
    SK_REUSEPORT_SELECT = 39
    SK_REUSEPORT_SELECT_OR_MIGRATE = 40
    PERF_EVENT = 41
    TRACE_KPROBE_MULTI = 42
    LSM_CGROUP = 43


class LinkType(IntEnum):
    """``enum bpf_link_type``."""

    UNSPEC = 0
    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    MAX_BPF_LINK_TYPE = 10


# Helper function ids (``__BPF_FUNC_MAPPER`` order): id -> name.
HELPER_NAMES: dict[int, str] = {
    0: "unspec",
    1: "map_lookup_elem",
    2: "map_update_elem",
    3: "map_delete_elem",
    4: "probe_read",
    5: "ktime_get_ns",
    6: "trace_printk",
    7: "get_prandom_u32",
    8: "get_smp_processor_id",
    9: "skb_store_bytes",
    10: "l3_csum_replace",
    11: "l4_csum_replace",
    12: "tail_call",
    13: "clone_redirect",
    14: "get_current_pid_tgid",
    15: "get_current_uid_gid",
    16: "get_current_comm",
    17: "get_cgroup_classid",
    18: "skb_vlan_push",
    19: "skb_vlan_pop",
    20: "skb_get_tunnel_key",
    21: "skb_set_tunnel_key",
    22: "perf_event_read",
    23: "redirect",
    24: "get_route_realm",
    25: "perf_event_output",
    26: "skb_load_bytes",
    27: "get_stackid",
    28: "csum_diff",
    29: "skb_get_tunnel_opt",
    30: "skb_set_tunnel_opt",
    31: "skb_change_proto",
    32: "skb_change_type",
    33: "skb_under_cgroup",
    34: "get_hash_recalc",
    35: "get_current_task",
    36: "probe_write_user",
    37: "current_task_under_cgroup",
    38: "skb_change_tail",
    39: "skb_pull_data",
    40: "csum_update",
    41: "set_hash_invalid",
    42: "get_numa_node_id",
    43: "skb_change_head",
    44: "xdp_adjust_head",
    45: "probe_read_str",
    46: "get_socket_cookie",
    47: "get_socket_uid",
    48: "set_hash",
    49: "setsockopt",
    50: "skb_adjust_room",
    51: "redirect_map",
    52: "sk_redirect_map",
    53: "sock_map_update",
    54: "xdp_adjust_meta",
    55: "perf_event_read_value",
    56: "perf_prog_read_value",
    57: "getsockopt",
    58: "override_return",
    59: "sock_ops_cb_flags_set",
    60: "msg_redirect_map",
    61: "msg_apply_bytes",
    62: "msg_cork_bytes",
    63: "msg_pull_data",
    64: "bind",
    65: "xdp_adjust_tail",
    66: "skb_get_xfrm_state",
    67: "get_stack",
    68: "skb_load_bytes_relative",
    69: "fib_lookup",
    70: "sock_hash_update",
    71: "msg_redirect_hash",
    72: "sk_redirect_hash",
    73: "lwt_push_encap",
    74: "lwt_seg6_store_bytes",
    75: "lwt_seg6_adjust_srh",
    76: "lwt_seg6_action",
    77: "rc_repeat",
    78: "rc_keydown",
    79: "skb_cgroup_id",
    80: "get_current_cgroup_id",
    81: "get_local_storage",
    82: "sk_select_reuseport",
    83: "skb_ancestor_cgroup_id",
    84: "sk_lookup_tcp",
    85: "sk_lookup_udp",
    86: "sk_release",
    87: "map_push_elem",
    88: "map_pop_elem",
    89: "map_peek_elem",
    90: "msg_push_data",
    91: "msg_pop_data",
    92: "rc_pointer_rel",
    93: "spin_lock",
    94: "spin_unlock",
    95: "sk_fullsock",
    96: "tcp_sock",
    97: "skb_ecn_set_ce",
    98: "get_listener_sock",
    99: "skc_lookup_tcp",
    100: "tcp_check_syncookie",
    101: "sysctl_get_name",
    102: "sysctl_get_current_value",
    103: "sysctl_get_new_value",
    104: "sysctl_set_new_value",
    105: "strtol",
    106: "strtoul",
    107: "sk_storage_get",
    108: "sk_storage_delete",
    109: "send_signal",
    110: "tcp_gen_syncookie",
    111: "skb_output",
    112: "probe_read_user",
    113: "probe_read_kernel",
    114: "probe_read_user_str",
    115: "probe_read_kernel_str",
    116: "tcp_send_ack",
    117: "send_signal_thread",
    118: "jiffies64",
    119: "read_branch_records",
    120: "get_ns_current_pid_tgid",
    121: "xdp_output",
    122: "get_netns_cookie",
    123: "get_current_ancestor_cgroup_id",
    124: "sk_assign",
    125: "ktime_get_boot_ns",
    126: "seq_printf",
    127: "seq_write",
    128: "sk_cgroup_id",
    129: "sk_ancestor_cgroup_id",
    130: "ringbuf_output",
    131: "ringbuf_reserve",
    132: "ringbuf_submit",
    133: "ringbuf_discard",
    134: "ringbuf_query",
    135: "csum_level",
    136: "skc_to_tcp6_sock",
    137: "skc_to_tcp_sock",
    138: "skc_to_tcp_timewait_sock",
    139: "skc_to_tcp_request_sock",
    140: "skc_to_udp6_sock",
    141: "get_task_stack",
    142: "load_hdr_opt",
    143: "store_hdr_opt",
    144: "reserve_hdr_opt",
    145: "inode_storage_get",
    146: "inode_storage_delete",
    147: "d_path",
    148: "copy_from_user",
    149: "snprintf_btf",
    150: "seq_printf_btf",
    151: "skb_cgroup_classid",
    152: "redirect_neigh",
    153: "per_cpu_ptr",
    154: "this_cpu_ptr",
    155: "redirect_peer",
    156: "task_storage_get",
    157: "task_storage_delete",
    158: "get_current_task_btf",
    159: "bprm_opts_set",
    160: "ktime_get_coarse_ns",
    161: "ima_inode_hash",
    162: "sock_from_file",
    163: "check_mtu",
    164: "for_each_map_elem",
    165: "snprintf",
    166: "sys_bpf",
    167: "btf_find_by_name_kind",
    168: "sys_close",
    169: "timer_init",
    170: "timer_set_callback",
    171: "timer_start",
    172: "timer_cancel",
    173: "get_func_ip",
    174: "get_attach_cookie",
    175: "task_pt_regs",
    176: "get_branch_snapshot",
    177: "trace_vprintk",
    178: "skc_to_unix_sock",
    179: "kallsyms_lookup_name",
    180: "find_vma",
    181: "loop",
    182: "strncmp",
    183: "get_func_arg",
    184: "get_func_ret",
    185: "get_func_arg_cnt",
    186: "get_retval",
    187: "set_retval",
    188: "xdp_get_buff_len",
    189: "xdp_load_bytes",
    190: "xdp_store_bytes",
    191: "copy_from_user_task",
    192: "skb_set_tstamp",
    193: "ima_file_hash",
    194: "kptr_xchg",
    195: "map_lookup_percpu_elem",
    196: "skc_to_mptcp_sock",
    197: "dynptr_from_mem",
    198: "ringbuf_reserve_dynptr",
    199: "ringbuf_submit_dynptr",
    200: "ringbuf_discard_dynptr",
    201: "dynptr_read",
    202: "dynptr_write",
    203: "dynptr_data",
    204: "tcp_raw_gen_syncookie_ipv4",
    205: "tcp_raw_gen_syncookie_ipv6",
    206: "tcp_raw_check_syncookie_ipv4",
    207: "tcp_raw_check_syncookie_ipv6",
    208: "ktime_get_tai_ns",
    209: "user_ringbuf_drain",
}
HELPER_IDS: dict[str, int] = {v: k for k, v in HELPER_NAMES.items()}
