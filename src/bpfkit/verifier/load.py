"""What the kernel checks when a program is loaded, around the verifier proper.

``bpf_prog_load`` (kernel/bpf/syscall.c) refuses unknown load flags, unknown program
types and expected attach types a program type does not allow (EINVAL, no log) before
the verifier starts; ``bpf_check`` (kernel/bpf/verifier.c) then resolves every map
reference of the program (``resolve_pseudo_ldimm64``, with
``check_map_prog_compatibility``: spin locks and timers per program type, the maps a
sleepable program may use), and ``check_attach_btf_id`` decides who may be sleepable.
These rules hold for every instruction, reachable or not, so they are checked here once,
before the walk over the program's paths.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..isa import opcodes as op
from ..uapi.enums import AttachType, MapType, ProgType
from .cfg import Program, Reject

# load flags (include/uapi/linux/bpf.h)
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_F_TEST_STATE_FREQ = 1 << 3
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6
BPF_F_TEST_REG_INVARIANTS = 1 << 7
BPF_F_TOKEN_FD = 1 << 16
#: the flags ``bpf_prog_load`` knows (any other bit: EINVAL)
KNOWN_FLAGS = (
    BPF_F_STRICT_ALIGNMENT
    | BPF_F_ANY_ALIGNMENT
    | BPF_F_TEST_RND_HI32
    | BPF_F_TEST_STATE_FREQ
    | BPF_F_SLEEPABLE
    | BPF_F_XDP_HAS_FRAGS
    | BPF_F_XDP_DEV_BOUND_ONLY
    | BPF_F_TEST_REG_INVARIANTS
    | BPF_F_TOKEN_FD
)

PROG_NETFILTER = 32  # BPF_PROG_TYPE_NETFILTER, the last program type (6.4+)
ATTACH_NETFILTER = 45
MAX_USED_MAPS = 64
BPF_MAX_VAR_OFF = 1 << 29

_A = AttachType
#: ``bpf_prog_load_check_attach``: the expected attach types a program type accepts
#: (types not listed accept any; 0 is fixed up first for cgroup_sock and sk_reuseport)
ATTACH_ALLOWED: dict[int, frozenset[int]] = {
    ProgType.CGROUP_SOCK: frozenset(
        {
            _A.CGROUP_INET_SOCK_CREATE,
            _A.CGROUP_INET_SOCK_RELEASE,
            _A.CGROUP_INET4_POST_BIND,
            _A.CGROUP_INET6_POST_BIND,
        }
    ),
    ProgType.CGROUP_SOCK_ADDR: frozenset(
        {
            _A.CGROUP_INET4_BIND,
            _A.CGROUP_INET6_BIND,
            _A.CGROUP_INET4_CONNECT,
            _A.CGROUP_INET6_CONNECT,
            49,  # BPF_CGROUP_UNIX_CONNECT
            _A.CGROUP_INET4_GETPEERNAME,
            _A.CGROUP_INET6_GETPEERNAME,
            52,  # BPF_CGROUP_UNIX_GETPEERNAME
            _A.CGROUP_INET4_GETSOCKNAME,
            _A.CGROUP_INET6_GETSOCKNAME,
            53,  # BPF_CGROUP_UNIX_GETSOCKNAME
            _A.CGROUP_UDP4_SENDMSG,
            _A.CGROUP_UDP6_SENDMSG,
            50,  # BPF_CGROUP_UNIX_SENDMSG
            _A.CGROUP_UDP4_RECVMSG,
            _A.CGROUP_UDP6_RECVMSG,
            51,  # BPF_CGROUP_UNIX_RECVMSG
        }
    ),
    ProgType.CGROUP_SKB: frozenset({_A.CGROUP_INET_INGRESS, _A.CGROUP_INET_EGRESS}),
    ProgType.CGROUP_SOCKOPT: frozenset({_A.CGROUP_SETSOCKOPT, _A.CGROUP_GETSOCKOPT}),
    ProgType.SK_LOOKUP: frozenset({_A.SK_LOOKUP}),
    ProgType.SK_REUSEPORT: frozenset({_A.SK_REUSEPORT_SELECT, _A.SK_REUSEPORT_SELECT_OR_MIGRATE}),
    PROG_NETFILTER: frozenset({ATTACH_NETFILTER}),
    ProgType.SYSCALL: frozenset({0}),
    ProgType.EXT: frozenset({0}),
}
#: ``bpf_prog_load_fixup_attach_type``: the attach type an unset (0) one becomes
ATTACH_DEFAULT = {
    ProgType.CGROUP_SOCK: _A.CGROUP_INET_SOCK_CREATE,
    ProgType.SK_REUSEPORT: _A.SK_REUSEPORT_SELECT,
}

#: ``is_tracing_prog_type``
TRACING_TYPES = frozenset(
    {
        ProgType.KPROBE,
        ProgType.TRACEPOINT,
        ProgType.PERF_EVENT,
        ProgType.RAW_TRACEPOINT,
        ProgType.RAW_TRACEPOINT_WRITABLE,
    }
)
_M = MapType
#: the maps a sleepable program may use, also as the inner map of a map-in-map
#: (``check_map_prog_compatibility``; 6.18 checks inner maps too)
SLEEPABLE_MAPS = frozenset(
    {
        _M.HASH,
        _M.LRU_HASH,
        _M.ARRAY,
        _M.PERCPU_HASH,
        _M.PERCPU_ARRAY,
        _M.LRU_PERCPU_HASH,
        _M.ARRAY_OF_MAPS,
        _M.HASH_OF_MAPS,
        _M.RINGBUF,
        31,  # USER_RINGBUF
        28,  # INODE_STORAGE
        24,  # SK_STORAGE
        29,  # TASK_STORAGE
        32,  # CGRP_STORAGE
        _M.QUEUE,
        _M.STACK,
        33,  # ARENA
    }
)
_MAP_IN_MAP = (_M.ARRAY_OF_MAPS, _M.HASH_OF_MAPS)
_CGROUP_STORAGE = (19, 21)  # CGROUP_STORAGE, PERCPU_CGROUP_STORAGE
_STRUCT_OPS_MAP = 26


def _type_name(pt: int) -> str:
    try:
        return ProgType(pt).name.lower()
    except ValueError:
        return "netfilter" if pt == PROG_NETFILTER else f"type {pt}"


def effective_attach_type(prog_type: int, attach_type: int | None) -> int:
    """The expected attach type the kernel uses: an unset one is 0, fixed up to the
    type's default for cgroup_sock and sk_reuseport."""
    at = int(attach_type or 0)
    if at == 0:
        return int(ATTACH_DEFAULT.get(prog_type, 0))
    return at


def check_prog_load(prog_type: int, attach_type: int | None, prog_flags: int) -> None:
    """``bpf_prog_load``'s checks before the verifier: the flags, the program type and
    its expected attach type (the kernel answers EINVAL without a log)."""
    unknown = prog_flags & ~KNOWN_FLAGS
    if unknown:
        raise Reject(
            f"Unknown load flags {unknown:#x}: the kernel refuses the program (EINVAL).",
            f"invalid prog_flags {prog_flags:#x} (EINVAL)",
            None,
        )
    if prog_flags & BPF_F_TOKEN_FD:
        raise Reject(
            "BPF_F_TOKEN_FD: loading through a BPF token is not supported by bpfkit's "
            "verifier (it has no token).",
            "BPF_F_TOKEN_FD is not supported",
            None,
        )
    if not 0 < prog_type <= PROG_NETFILTER:
        raise Reject(
            f"Unknown program type {prog_type}: the kernel refuses the program (EINVAL).",
            f"invalid program type {prog_type} (EINVAL)",
            None,
        )
    allowed = ATTACH_ALLOWED.get(prog_type)
    at = effective_attach_type(prog_type, attach_type)
    if allowed is not None and at not in allowed:
        name = _type_name(prog_type)
        if allowed == frozenset({0}):
            why = f"a {name} program takes no expected attach type"
        else:
            why = f"a {name} program needs one of its own attach types"
        raise Reject(
            f"Expected attach type {at} is not valid for a {name} program ({why}); the "
            "kernel refuses the load (EINVAL).",
            f"invalid expected_attach_type {at} for program type {name} (EINVAL)",
            None,
        )


def can_be_sleepable(prog_type: int, attach_type: int) -> bool:
    """``can_be_sleepable``: fentry/fexit/fmod_ret/iter tracing, LSM (not cgroup LSM),
    kprobe (uprobes) and struct_ops programs."""
    if prog_type == ProgType.TRACING:
        return attach_type in (
            _A.TRACE_FENTRY,
            _A.TRACE_FEXIT,
            _A.MODIFY_RETURN,
            _A.TRACE_ITER,
        )
    if prog_type == ProgType.LSM:
        return attach_type != _A.LSM_CGROUP
    return prog_type in (ProgType.KPROBE, ProgType.STRUCT_OPS)


def check_attach(prog_type: int, attach_type: int, sleepable: bool) -> None:
    """``check_attach_btf_id``'s rule on sleepable programs."""
    if prog_type == ProgType.SYSCALL:
        if not sleepable:
            raise Reject(
                "A syscall program must be loaded sleepable (BPF_F_SLEEPABLE), as "
                'SEC("syscall") does.',
                "Syscall programs can only be sleepable",
                None,
            )
        return
    if sleepable and not can_be_sleepable(prog_type, attach_type):
        raise Reject(
            f"A {_type_name(prog_type)} program cannot be sleepable (BPF_F_SLEEPABLE).",
            "Only fentry/fexit/fmod_ret, lsm, iter, uprobe, and struct_ops programs can be "
            "sleepable",
            None,
        )


def check_map_prog(m, prog_type: int, sleepable: bool, pc: int) -> None:
    """``check_map_prog_compatibility``: may a program of this type use map ``m``."""
    special = m.special
    if special & {"list_head", "rb_root"} and prog_type in TRACING_TYPES:
        raise Reject(
            f"A tracing program cannot use map '{m.name}' (its value holds a list or rbtree root).",
            "tracing progs cannot use bpf_{list_head,rb_root} yet",
            pc,
        )
    if m.spin_lock_off >= 0 or "spin_lock" in special:
        if prog_type == ProgType.SOCKET_FILTER:
            raise Reject(
                f"A socket filter cannot use map '{m.name}' (its value holds a bpf_spin_lock).",
                "socket filter progs cannot use bpf_spin_lock yet",
                pc,
            )
        if prog_type in TRACING_TYPES:
            raise Reject(
                f"A tracing program cannot use map '{m.name}' (its value holds a bpf_spin_lock).",
                "tracing progs cannot use bpf_spin_lock yet",
                pc,
            )
    if "timer" in special and prog_type in TRACING_TYPES:
        raise Reject(
            f"A tracing program cannot use map '{m.name}' (its value holds a bpf_timer).",
            "tracing progs cannot use bpf_timer yet",
            pc,
        )
    if "wq" in special and prog_type in TRACING_TYPES:
        raise Reject(
            f"A tracing program cannot use map '{m.name}' (its value holds a bpf_wq).",
            "tracing progs cannot use bpf_wq yet",
            pc,
        )
    if m.type == _STRUCT_OPS_MAP:
        raise Reject(
            f"Map '{m.name}' is a struct_ops map: programs cannot use it.",
            "bpf_struct_ops map cannot be used in prog",
            pc,
        )
    if sleepable:
        inner = m.inner if m.type in _MAP_IN_MAP else None
        if m.type not in SLEEPABLE_MAPS or (inner is not None and inner.type not in SLEEPABLE_MAPS):
            raise Reject(
                f"A sleepable program cannot use map '{m.name}' (only array, hash, ringbuf, "
                "queue/stack and local storage maps, also as inner maps).",
                "Sleepable programs can only use array, hash, ringbuf and local storage maps, "
                "also as inner maps",
                pc,
            )


def resolve_maps(
    prog: Program, maps: Mapping[int, object], prog_type: int, sleepable: bool
) -> None:
    """``resolve_pseudo_ldimm64``: every map reference of the program, in order, names
    a map the program type may use; direct value loads name a single-element array."""
    seen: list[int] = []  # distinct maps used, by id()
    storage: dict[int, int] = {}  # cgroup storage type -> the map using it
    for pc, insn in enumerate(prog.at):
        if insn is None or not insn.is_lddw:
            continue
        src = insn.src
        if src not in (
            op.PSEUDO_MAP_FD,
            op.PSEUDO_MAP_IDX,
            op.PSEUDO_MAP_VALUE,
            op.PSEUDO_MAP_IDX_VALUE,
        ):
            continue
        if src in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_IDX) and insn.imm_hi:
            raise Reject(
                f"Instruction {pc}: a map load with a non-zero upper immediate.",
                "unrecognized bpf_ld_imm64 insn",
                pc,
            )
        key = insn.imm_lo
        m = maps.get(key)
        if m is None:
            kind = "index" if src in (op.PSEUDO_MAP_IDX, op.PSEUDO_MAP_IDX_VALUE) else "fd"
            raise Reject(
                f"lddw refers to map {kind} {key}, which is not a known map.",
                f"fd {key} is not pointing to valid bpf_map",
                pc,
            )
        reused = any(x is m for x in seen)
        if not reused:
            if len(seen) >= MAX_USED_MAPS:
                raise Reject(
                    f"The program uses more than {MAX_USED_MAPS} maps.",
                    "The total number of maps per program has reached the limit of "
                    f"{MAX_USED_MAPS}",
                    pc,
                )
        check_map_prog(m, prog_type, sleepable, pc)
        if src in (op.PSEUDO_MAP_VALUE, op.PSEUDO_MAP_IDX_VALUE):
            off = insn.imm_hi & 0xFFFFFFFF
            if off >= BPF_MAX_VAR_OFF:
                raise Reject(
                    f"Direct value offset {off} is too large.",
                    f"direct value offset of {off} is not allowed",
                    pc,
                )
            if m.type != _M.ARRAY:
                raise Reject(
                    f"Direct value access (a map_value lddw) needs an array map, not map "
                    f"'{m.name}'.",
                    "no direct value access support for this map type",
                    pc,
                )
            if m.max_entries != 1 or off >= m.value_size:
                raise Reject(
                    f"Direct value access needs a one-element array and an offset inside "
                    f"its value: map '{m.name}' has {m.max_entries} entries of "
                    f"{m.value_size} bytes, offset {off}.",
                    f"invalid access to map value pointer, value_size={m.value_size} off={off}",
                    pc,
                )
        if reused:
            continue
        seen.append(m)
        if m.type in _CGROUP_STORAGE:
            other = storage.setdefault(m.type, id(m))
            if other != id(m):
                raise Reject(
                    "A program may use only one cgroup storage map of each type.",
                    "only one cgroup storage of each type is allowed",
                    pc,
                )
