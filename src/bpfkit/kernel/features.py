"""Feature probes of the running kernel, like ``bpftool feature probe``; every answer cached.

Each probe asks the kernel directly: load a minimal program of a type, create a minimal
map of a type, load a program calling one helper, load a small BTF blob using one kind,
create a link of one kind against a target that cannot exist (the error tells whether
the kernel knows the kind), or look for a PMU or tracefs file. An answer is a
:class:`Probe` — ``supported`` plus a ``reason`` when not — so a test can skip with the
reason, and the CLI (``bpfkit features``) can print them all.

The program-type rule follows bpftool: a type the kernel does not know fails before the
verifier runs (no log); a known type whose minimal program is refused leaves a verifier
log (it needs an attach target, say), and counts as supported.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
from dataclasses import dataclass
from typing import Any

from ..btf.parser import encode_btf
from ..btf.types import (
    Btf,
    Datasec,
    DeclTag,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Int,
    Ptr,
    TypeTag,
    Var,
    VarSecinfo,
    Void,
)
from ..errors import KernelError, NotSupported, VerifierError
from ..uapi.attach import NewAttachType, NewProgType
from ..uapi.btf import FuncLinkage, VarLinkage
from ..uapi.enums import HELPER_NAMES, AttachType, MapType, ProgType
from . import sys as bsys

__all__ = [
    "Probe",
    "prog_type",
    "map_type",
    "helper",
    "helpers",
    "btf_feature",
    "link_kind",
    "attach_kind",
    "feature",
    "probe_all",
    "FEATURES",
    "PROG_TYPE_NAMES",
    "MAP_TYPE_NAMES",
]

_EXIT0 = bytes.fromhex("b7000000000000009500000000000000")  # r0 = 0; exit


@dataclass(frozen=True)
class Probe:
    """One answer: whether the kernel has the feature, and why not."""

    name: str
    supported: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.supported

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"supported": self.supported}
        if self.reason:
            d["reason"] = self.reason
        return d


PROG_TYPE_NAMES: dict[str, int] = {p.name.lower(): int(p) for p in ProgType if p != ProgType.UNSPEC}
PROG_TYPE_NAMES["netfilter"] = int(NewProgType.NETFILTER)
MAP_TYPE_NAMES: dict[str, int] = {m.name.lower(): int(m) for m in MapType if m != MapType.UNSPEC}
MAP_TYPE_NAMES.update({"cgrp_storage": 32, "arena": 33})

# Expected attach types a minimal program of these types needs to load.
_EXPECTED = {
    ProgType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
    ProgType.SK_REUSEPORT: AttachType.SK_REUSEPORT_SELECT,
    int(NewProgType.NETFILTER): int(NewAttachType.NETFILTER),
}


def _err_reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno is not None:
        return f"{errno.errorcode.get(e.errno, e.errno)}: {e}"
    return str(e)


def _is_eperm(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno == errno.EPERM


def _refused(what: str, caps: tuple[str, ...], e: BaseException, why: str = "") -> str:
    """The reason for an ``EPERM``: privileges only when this process lacks them."""
    from .privileges import effective_capabilities

    have = effective_capabilities()
    missing = [c for c in caps if c not in have]
    if missing:
        return f"needs {', '.join(missing)}, which this process lacks ({_err_reason(e)})"
    return (
        f"the kernel refuses {what} with EPERM although this process holds "
        f"{', '.join(caps)} (not a privilege problem)" + (f": {why}" if why else "")
    )


# What map_create() checks for each map type (kernel/bpf/syscall.c): nothing for the
# unprivileged types, CAP_NET_ADMIN for sockets/devices, CAP_BPF for the rest.
_NET_ADMIN_MAPS = frozenset(
    {MapType.SOCKMAP, MapType.SOCKHASH, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.XSKMAP}
)
_UNPRIV_MAPS = frozenset(
    {
        MapType.ARRAY,
        MapType.PERCPU_ARRAY,
        MapType.PROG_ARRAY,
        MapType.PERF_EVENT_ARRAY,
        MapType.CGROUP_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH,
        MapType.PERCPU_HASH,
        MapType.HASH_OF_MAPS,
        MapType.RINGBUF,
        MapType.USER_RINGBUF,
        MapType.CGROUP_STORAGE,
        MapType.PERCPU_CGROUP_STORAGE,
    }
)


def _map_caps(mtype: int) -> tuple[str, ...]:
    if mtype in _NET_ADMIN_MAPS:
        return ("CAP_NET_ADMIN",)
    # kernel.unprivileged_bpf_disabled makes every map type need CAP_BPF
    return ("CAP_BPF",)


# Program types the kernel checks CAP_PERFMON / CAP_NET_ADMIN for (bpf_prog_load).
_PERFMON_PROGS = frozenset(
    {
        ProgType.KPROBE,
        ProgType.TRACEPOINT,
        ProgType.PERF_EVENT,
        ProgType.RAW_TRACEPOINT,
        ProgType.RAW_TRACEPOINT_WRITABLE,
        ProgType.TRACING,
        ProgType.LSM,
        ProgType.STRUCT_OPS,
        ProgType.EXT,
    }
)


def _prog_caps(ptype: int) -> tuple[str, ...]:
    if ptype in _PERFMON_PROGS:
        return ("CAP_BPF", "CAP_PERFMON")
    if ptype in (ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB):
        return ("CAP_BPF",)
    return ("CAP_BPF", "CAP_NET_ADMIN")


# Program types that run through a BPF trampoline (whatever their target).
_TRAMPOLINE_PROGS = frozenset({ProgType.EXT, ProgType.LSM})


# ---------------------------------------------------------------------------
# Program types
# ---------------------------------------------------------------------------


def _vmlinux_id(name: str, kind: int) -> int:
    from .btf import kernel_btf_available, vmlinux_btf

    if not kernel_btf_available():
        return 0
    ids = vmlinux_btf().ids_named(name, kind)
    return ids[0] if ids else 0


def _load_minimal(ptype: int, insns: bytes = _EXIT0, **kw: Any) -> tuple[bool, str, str]:
    """(loaded, reason, verifier log) of a minimal program."""
    log: list[str] = []
    try:
        fd = bsys.prog_load(ptype, insns, "GPL", log_out=log, **kw)
    except VerifierError as e:
        return False, e.reason, e.log
    except KernelError as e:
        return False, _err_reason(e), getattr(e, "log", "") or ""
    os.close(fd)
    return True, "", ""


@functools.cache
def prog_type(name_or_type: str | int) -> Probe:
    """Whether the kernel knows a program type (``"xdp"`` or ``ProgType.XDP``)."""
    ptype = PROG_TYPE_NAMES[name_or_type] if isinstance(name_or_type, str) else int(name_or_type)
    name = next((n for n, v in PROG_TYPE_NAMES.items() if v == ptype), str(ptype))
    kw: dict[str, Any] = {}
    if ptype in _EXPECTED:
        kw["expected_attach_type"] = int(_EXPECTED[ptype])
    if ptype == ProgType.KPROBE:
        from .kconfig import kernel_version_code

        kw["kern_version"] = kernel_version_code()
    if ptype == ProgType.TRACING:
        btf_id = _vmlinux_id("btf_trace_sched_switch", 8)  # a TYPEDEF
        if not btf_id:
            return Probe(name, False, "no kernel BTF (CONFIG_DEBUG_INFO_BTF)")
        kw.update(expected_attach_type=AttachType.TRACE_RAW_TP, attach_btf_id=btf_id)
    if ptype == ProgType.LSM:
        btf_id = _vmlinux_id("bpf_lsm_file_open", 12)
        if not btf_id:
            return Probe(name, False, "no bpf_lsm_* hooks in the kernel's BTF (CONFIG_BPF_LSM)")
        kw.update(expected_attach_type=AttachType.LSM_MAC, attach_btf_id=btf_id)
    ok, reason, log = _load_minimal(ptype, **kw)
    if ok:
        return Probe(name, True)
    if log.strip() and ptype not in (ProgType.LSM,):
        return Probe(name, True)  # the verifier saw it: the type exists, the probe was too small
    if reason.startswith("EPERM"):
        return Probe(name, False, _prog_refused(name, ptype))
    return Probe(name, False, reason or "rejected")


def _prog_refused(name: str, ptype: int) -> str:
    """Why a minimal program of ``ptype`` got EPERM before the verifier ran."""
    e = OSError(errno.EPERM, "BPF_PROG_LOAD: Operation not permitted")
    why = "refused before the verifier runs (no log)"
    if ptype in _TRAMPOLINE_PROGS:
        fentry = attach_kind("fentry")
        if not fentry.supported and "trampolines" in fentry.reason:
            why = (
                f"{name} programs run through BPF trampolines, which this kernel lacks "
                "(fentry programs are refused the same way)"
            )
        elif ptype == ProgType.LSM:
            why = "BPF LSM not active (lsm=) or no BPF trampolines"
    return _refused(f"{name} programs", _prog_caps(ptype), e, why)


# ---------------------------------------------------------------------------
# Map types
# ---------------------------------------------------------------------------


def _storage_btf() -> bytes:
    i32 = Int(1, "int", 4, 1, 0, 32)
    return encode_btf(Btf([Void(0, "void"), i32], b""))


@functools.cache
def map_type(name_or_type: str | int) -> Probe:
    """Whether the kernel can create maps of a type (``"ringbuf"`` or ``MapType.RINGBUF``)."""
    mtype = MAP_TYPE_NAMES[name_or_type] if isinstance(name_or_type, str) else int(name_or_type)
    name = next((n for n, v in MAP_TYPE_NAMES.items() if v == mtype), str(mtype))
    key, value, entries, flags = 4, 4, 1, 0
    kw: dict[str, Any] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    closers: list[int] = []
    if mtype == MapType.LPM_TRIE:
        key, value, flags = 8, 8, bsys.F_NO_PREALLOC
    elif mtype in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE):
        key, value, entries = 16, 8, 0  # struct bpf_cgroup_storage_key
    elif mtype in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        key = 0
    elif mtype in (MapType.RINGBUF, MapType.USER_RINGBUF):
        key, value, entries = 0, 0, page
    elif mtype == 33:  # arena
        key, value, entries, flags = 0, 0, 1, bsys.F_MMAPABLE
    elif mtype in (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, 32):
        entries, flags = 0, bsys.F_NO_PREALLOC
        try:
            bfd = bsys.btf_load(_storage_btf())
        except KernelError as e:
            return Probe(name, False, f"needs BTF: {_err_reason(e)}")
        closers.append(bfd)
        kw.update(btf_fd=bfd, btf_key_type_id=1, btf_value_type_id=1)
    elif mtype == MapType.STACK_TRACE:
        value = 8
    elif mtype in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        try:
            inner = bsys.map_create(MapType.ARRAY, 4, 4, 1)
        except KernelError as e:
            return Probe(name, False, _err_reason(e))
        closers.append(inner)
        kw["inner_map_fd"] = inner
    elif mtype == MapType.STRUCT_OPS:
        # Needs a kernel struct type to implement; an unknown type id tells apart.
        key, value = 4, 8
    try:
        fd = bsys.map_create(mtype, key, value, entries, flags, **kw)
    except KernelError as e:
        if mtype == MapType.STRUCT_OPS and e.errno in (errno.EINVAL, bsys.ENOTSUPP, errno.ENOTSUP):
            # Without a vmlinux value type the kernel refuses, but knows the type.
            ok = prog_type(ProgType.STRUCT_OPS).supported
            return Probe(name, ok, "" if ok else _err_reason(e))
        if _is_eperm(e):
            return Probe(name, False, _map_refused(name, mtype, e))
        return Probe(name, False, _err_reason(e))
    finally:
        for c in closers:
            os.close(c)
    os.close(fd)
    return Probe(name, True)


def _map_refused(name: str, mtype: int, e: KernelError) -> str:
    """Why creating a map of ``mtype`` got EPERM: privileges, or the kernel itself."""
    why = ""
    # A map the type's allocator must reject (no sizes, no entries): EINVAL means the
    # allocator ran, so the refusal above came from the attributes; EPERM again means
    # the kernel stops before the map type's own checks.
    try:
        os.close(bsys.map_create(mtype, 0, 0, 0, 0))
    except KernelError as e2:
        if _is_eperm(e2):
            why = (
                f"even an invalid {name} map gets EPERM, so the kernel stops before the map "
                "type's own checks: this kernel disables the type"
            )
    return _refused(f"{name} maps", _map_caps(mtype), e, why)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _helper_prog(helper_id: int) -> bytes:
    # call helper; r0 = 0; exit
    return struct.pack("<BBhi", 0x85, 0, 0, helper_id) + _EXIT0


@functools.cache
def helper(ptype: int | str, helper_id: int) -> Probe:
    """Whether programs of type ``ptype`` may call helper ``helper_id``."""
    pt = PROG_TYPE_NAMES[ptype] if isinstance(ptype, str) else int(ptype)
    name = HELPER_NAMES.get(helper_id, f"helper#{helper_id}")
    if not prog_type(pt):
        return Probe(name, False, "program type not supported")
    kw: dict[str, Any] = {"log_level": 1}
    if pt in _EXPECTED:
        kw["expected_attach_type"] = int(_EXPECTED[pt])
    if pt == ProgType.TRACING:
        kw.update(
            expected_attach_type=AttachType.TRACE_RAW_TP,
            attach_btf_id=_vmlinux_id("btf_trace_sched_switch", 8),
        )
    if pt == ProgType.LSM:
        kw.update(
            expected_attach_type=AttachType.LSM_MAC,
            attach_btf_id=_vmlinux_id("bpf_lsm_file_open", 12),
        )
    ok, reason, log = _load_minimal(pt, _helper_prog(helper_id), **kw)
    if ok:
        return Probe(name, True)
    text = log or reason
    for marker in ("invalid func unknown", "unknown func", "cannot use helper", "not supported"):
        if marker in text:
            return Probe(name, False, text.strip().splitlines()[-1] if text.strip() else marker)
    if "EPERM" in reason and not log:
        return Probe(name, False, reason)
    return Probe(name, True)  # refused for its arguments: the helper itself is allowed


_REFUSED_HELPER = ("unknown func", "cannot use helper", "invalid func")
MAX_HELPER_ID = max(HELPER_NAMES)


@functools.cache
def helper_ids(
    prog_type: int, attach_type: int | None = None, flags: int = 0
) -> frozenset[int] | None:
    """The helper ids the running kernel lets a privileged program of ``prog_type`` (and
    ``attach_type``) call, or None when this process cannot ask the kernel.

    Each id is tried with ``call N; r0 = 0; exit``: the kernel refuses an unavailable
    helper ("unknown func", "cannot use helper") before it looks at the arguments, so any
    other verdict means the helper is there. One program type costs ~200 loads (~25 ms).
    """
    from ..isa.instruction import Instruction
    from .sys_progs import prog_load

    ok: set[int] = set()
    answered = False  # did the kernel verify any probe (else it refused the type itself)
    for hid in range(1, MAX_HELPER_ID + 1):
        insns = [
            Instruction(0x85, 0, 0, 0, hid),
            Instruction(0xB7, 0, 0, 0, 0),
            Instruction(0x95, 0, 0, 0, 0),
        ]
        try:
            fd = prog_load(
                int(prog_type),
                insns,
                expected_attach_type=attach_type or 0,
                log_level=1,
                prog_flags=flags,
            )
        except VerifierError as e:
            answered = True
            if not any(m in (e.log or "") for m in _REFUSED_HELPER):
                ok.add(hid)
            continue
        except KernelError as e:
            if e.errno in (errno.EPERM, errno.EACCES, errno.ENOSYS):
                return None  # no privileges or no bpf(): the kernel cannot be asked
            continue
        except OSError:
            return None
        answered = True
        os.close(fd)
        ok.add(hid)
    return frozenset(ok) if answered else None


def helpers(ptype: int | str) -> dict[str, Probe]:
    """Every helper id this bpfkit knows, probed for one program type."""
    return {HELPER_NAMES.get(h, f"helper#{h}"): helper(ptype, h) for h in sorted(HELPER_NAMES)}


# ---------------------------------------------------------------------------
# BTF
# ---------------------------------------------------------------------------


def _btf_blob(kind: str) -> bytes:
    v = Void(0, "void")
    i32 = Int(1, "int", 4, 1, 0, 32)
    if kind == "func":
        types = [v, i32, FuncProto(2, "", 1, []), Func(3, "f", 2, FuncLinkage.STATIC)]
    elif kind == "func_global":
        types = [v, i32, FuncProto(2, "", 1, []), Func(3, "f", 2, FuncLinkage.GLOBAL)]
    elif kind == "datasec":
        types = [
            v,
            i32,
            Var(2, "x", 1, VarLinkage.GLOBAL_ALLOCATED),
            Datasec(3, ".data", 4, [VarSecinfo(2, 0, 4)]),
        ]
    elif kind == "float":
        types = [v, Float(1, "float", 4)]
    elif kind == "decl_tag":
        types = [v, i32, Var(2, "x", 1, VarLinkage.GLOBAL_ALLOCATED), DeclTag(3, "tag", 2, -1)]
    elif kind == "type_tag":
        types = [v, i32, TypeTag(2, "tag", 1), Ptr(3, "", 2)]
    elif kind == "enum64":
        types = [v, Enum64(1, "e", 8, [EnumValue("A", 1 << 40)])]
    else:
        types = [v, i32]
    return encode_btf(Btf(types, b""))


BTF_FEATURES = ("btf", "func", "func_global", "datasec", "float", "decl_tag", "type_tag", "enum64")


@functools.cache
def btf_feature(kind: str) -> Probe:
    """Whether ``BPF_BTF_LOAD`` accepts a BTF kind (``func``, ``enum64``, ...) or BTF at all."""
    if kind not in BTF_FEATURES:
        raise ValueError(f"unknown BTF feature {kind!r} ({', '.join(BTF_FEATURES)})")
    try:
        fd = bsys.btf_load(_btf_blob(kind))
    except KernelError as e:
        return Probe(f"btf_{kind}", False, _err_reason(e))
    os.close(fd)
    return Probe(f"btf_{kind}", True)


def btf_features():
    """The :class:`~bpfkit.kernel.btf.BtfFeatures` of this kernel."""
    from .btf import BtfFeatures

    return BtfFeatures(
        func=bool(btf_feature("func")),
        func_global=bool(btf_feature("func_global")),
        datasec=bool(btf_feature("datasec")),
        float=bool(btf_feature("float")),
        decl_tag=bool(btf_feature("decl_tag")),
        type_tag=bool(btf_feature("type_tag")),
        enum64=bool(btf_feature("enum64")),
    )


# ---------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------

_NO_IFINDEX = 0x7FFFFFF0
LINK_KINDS = ("raw_tracepoint", "tracing", "cgroup", "xdp", "perf_event", "kprobe_multi", "tcx")


@functools.cache
def link_kind(kind: str) -> Probe:
    """Whether the kernel can create BPF links of a kind (``tcx``, ``xdp``, ``kprobe_multi``...)."""
    if kind not in LINK_KINDS:
        raise ValueError(f"unknown link kind {kind!r} ({', '.join(LINK_KINDS)})")
    name = f"link_{kind}"
    if kind == "raw_tracepoint":
        ok = prog_type(ProgType.RAW_TRACEPOINT).supported
        return Probe(name, ok, "" if ok else "no raw tracepoint programs")
    if kind == "tracing":
        return attach_kind("fentry")
    setup: dict[str, tuple[int, int, int, Any]] = {
        "cgroup": (ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, 0, "devnull"),
        "xdp": (ProgType.XDP, AttachType.XDP, 0, 1),  # loopback, offload mode: refused
        "perf_event": (ProgType.KPROBE, bsys.ATTACH_PERF_EVENT, 0, "devnull"),
        "kprobe_multi": (
            ProgType.KPROBE,
            bsys.ATTACH_TRACE_KPROBE_MULTI,
            bsys.ATTACH_TRACE_KPROBE_MULTI,
            0,
        ),
        "tcx": (ProgType.SCHED_CLS, NewAttachType.TCX_INGRESS, 0, _NO_IFINDEX),
    }
    ptype, atype, expected, target = setup[kind]
    kw: dict[str, Any] = {"expected_attach_type": expected} if expected else {}
    if ptype == ProgType.KPROBE:
        from .kconfig import kernel_version_code

        kw["kern_version"] = kernel_version_code()
    try:
        pfd = bsys.FD(bsys.prog_load(ptype, _EXIT0, "GPL", **kw))
    except (KernelError, VerifierError) as e:
        return Probe(name, False, f"cannot load a {ptype.name.lower()} program: {e}")
    tfd = None
    try:
        if target == "devnull":
            tfd = bsys.FD(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
            target = tfd
        extra: dict[str, Any] = {}
        if kind == "xdp":
            extra = {"flags": 1 << 3}  # XDP_FLAGS_HW_MODE: lo cannot offload
        if kind == "kprobe_multi":
            extra = {"kprobe_addrs": [1]}  # no function there
        try:
            flags = extra.pop("flags", 0)
            lfd = bsys.link_create(pfd, target, atype, flags, **extra)
        except KernelError as e:
            if kind == "kprobe_multi":
                if e.errno in (errno.EOPNOTSUPP, bsys.ENOTSUPP):
                    return Probe(name, False, "kernel built without CONFIG_FPROBE")
                ok = e.errno not in (errno.EINVAL,) or e.errno == errno.ESRCH
                return Probe(name, e.errno != errno.EINVAL, "" if ok else _err_reason(e))
            if e.errno == errno.EINVAL:
                return Probe(
                    name, False, f"the kernel does not know this link kind ({_err_reason(e)})"
                )
            return Probe(name, True)  # refused the impossible target, so the kind is known
        os.close(lfd)
        return Probe(name, True)
    finally:
        pfd.close()
        if tfd is not None:
            tfd.close()


# ---------------------------------------------------------------------------
# Attach kinds (what bpfkit.kernel can attach, on this kernel)
# ---------------------------------------------------------------------------

ATTACH_KINDS = (
    "kprobe",
    "uprobe",
    "tracepoint",
    "raw_tracepoint",
    "fentry",
    "perf_event",
    "xdp",
    "tcx",
    "clsact",
    "socket_filter",
    "cgroup",
)


def _config(name: str) -> str | None:
    from .kconfig import kernel_config

    cfg = kernel_config()
    return cfg.get(name) if cfg else None


@functools.cache
def attach_kind(kind: str) -> Probe:
    """Whether bpfkit can attach programs of ``kind`` on this kernel, and why not."""
    if kind not in ATTACH_KINDS:
        raise ValueError(f"unknown attach kind {kind!r} ({', '.join(ATTACH_KINDS)})")
    if kind == "kprobe":
        from .kprobe import kprobes_supported

        ok, why = kprobes_supported()
        return Probe(kind, ok, why)
    if kind == "uprobe":
        from .uprobe import uprobe_pmu_type

        if uprobe_pmu_type() is not None:
            return Probe(kind, True)
        return Probe(kind, False, "no uprobe PMU (CONFIG_UPROBE_EVENTS)")
    if kind == "tracepoint":
        from .tracefs import tracefs_root, tracepoint_exists

        try:
            tracefs_root()
        except NotSupported as e:
            return Probe(kind, False, str(e))
        if not tracepoint_exists("syscalls", "sys_enter_execve"):
            return Probe(kind, False, "no syscall tracepoints (CONFIG_FTRACE_SYSCALLS)")
        return Probe(kind, True)
    if kind == "raw_tracepoint":
        p = prog_type(ProgType.RAW_TRACEPOINT)
        return Probe(kind, p.supported, p.reason)
    if kind == "fentry":
        btf_id = _vmlinux_id("bpf_fentry_test1", 12) or _vmlinux_id("do_sys_openat2", 12)
        if not btf_id:
            return Probe(kind, False, "no kernel BTF or no function to probe")
        ok, reason, _log = _load_minimal(
            ProgType.TRACING, expected_attach_type=AttachType.TRACE_FENTRY, attach_btf_id=btf_id
        )
        if ok:
            return Probe(kind, True)
        if reason.startswith("EPERM"):
            e = OSError(errno.EPERM, "BPF_PROG_LOAD: Operation not permitted")
            why = "no BPF trampolines on this kernel"
            if prog_type(ProgType.TRACING).supported:
                why += " (tp_btf programs, which need none, load)"
            return Probe(
                kind, False, _refused("fentry programs", ("CAP_BPF", "CAP_PERFMON"), e, why)
            )
        return Probe(kind, False, f"the kernel refuses fentry programs ({reason})")
    if kind == "perf_event":
        from .perf_event import (
            PERF_COUNT_SW_CPU_CLOCK,
            PERF_TYPE_SOFTWARE,
            PerfEventAttr,
            perf_event_open,
        )

        try:
            attr = PerfEventAttr(
                type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_CPU_CLOCK, sample_period=1000000
            )
            perf_event_open(attr, -1, 0).close()
        except (KernelError, NotSupported) as e:
            return Probe(kind, False, str(e))
        return Probe(kind, True)
    if kind == "xdp":
        p = link_kind("xdp") if prog_type(ProgType.XDP) else Probe(kind, False, "no XDP")
        return Probe(kind, p.supported, p.reason)
    if kind == "tcx":
        p = link_kind("tcx")
        return Probe(kind, p.supported, p.reason)
    if kind == "clsact":
        for opt in ("CONFIG_NET_CLS_BPF", "CONFIG_NET_SCH_INGRESS"):
            if _config(opt) == "n":
                return Probe(kind, False, f"kernel built without {opt}")
        return Probe(kind, True)
    if kind == "socket_filter":
        p = prog_type(ProgType.SOCKET_FILTER)
        return Probe(kind, p.supported, p.reason)
    if kind == "cgroup":
        from .cgroup import cgroup2_root

        try:
            cgroup2_root()
        except NotSupported as e:
            return Probe(kind, False, str(e))
        p = prog_type(ProgType.CGROUP_SKB)
        return Probe(kind, p.supported, p.reason)
    raise AssertionError(kind)


# ---------------------------------------------------------------------------
# Everything
# ---------------------------------------------------------------------------

FEATURES = ("ringbuf", "btf", "kernel_btf", "bpf_cookie", "mmapable_arrays", "batch_ops")


@functools.cache
def feature(name: str) -> Probe:
    """Miscellaneous features: ``ringbuf``, ``kernel_btf``, ``bpf_cookie``, ``batch_ops``..."""
    if name == "ringbuf":
        return map_type(MapType.RINGBUF)
    if name == "btf":
        return btf_feature("btf")
    if name == "kernel_btf":
        from .btf import kernel_btf_available

        ok = kernel_btf_available()
        return Probe(name, ok, "" if ok else "no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")
    if name == "bpf_cookie":
        p = helper(ProgType.KPROBE, 174)  # bpf_get_attach_cookie
        return Probe(name, p.supported, p.reason)
    if name == "mmapable_arrays":
        try:
            os.close(bsys.map_create(MapType.ARRAY, 4, 4, 1, bsys.F_MMAPABLE))
        except KernelError as e:
            return Probe(name, False, _err_reason(e))
        return Probe(name, True)
    if name == "batch_ops":
        try:
            with bsys.FD(bsys.map_create(MapType.HASH, 4, 4, 4)) as fd:
                bsys.map_lookup_batch(fd, 4, 4, 4)
        except KernelError as e:
            return Probe(name, False, _err_reason(e))
        return Probe(name, True)
    raise ValueError(f"unknown feature {name!r} ({', '.join(FEATURES)})")


def probe_all(*, helpers_for: list[str] | None = None) -> dict[str, Any]:
    """Every probe, as JSON-able dicts (helpers only for the program types named)."""
    out: dict[str, Any] = {
        "program_types": {n: prog_type(v).to_json() for n, v in PROG_TYPE_NAMES.items()},
        "map_types": {n: map_type(v).to_json() for n, v in MAP_TYPE_NAMES.items()},
        "btf": {k: btf_feature(k).to_json() for k in BTF_FEATURES},
        "links": {k: link_kind(k).to_json() for k in LINK_KINDS},
        "attach": {k: attach_kind(k).to_json() for k in ATTACH_KINDS},
        "misc": {k: feature(k).to_json() for k in FEATURES},
    }
    if helpers_for:
        out["helpers"] = {
            pt: sorted(n for n, p in helpers(pt).items() if p.supported) for pt in helpers_for
        }
    return out


def require(kind: str) -> None:
    """Raise :class:`NotSupported` with the reason unless attach kind/feature ``kind`` works."""
    p = attach_kind(kind) if kind in ATTACH_KINDS else feature(kind)
    if not p.supported:
        raise NotSupported(f"{kind}: {p.reason}")
