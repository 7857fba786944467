"""The ``bpf()`` system call through ctypes: one attribute layout per command, typed wrappers.

Layouts follow the members of ``union bpf_attr`` in ``linux/bpf.h`` (including fields
newer than the installed header; the kernel accepts a larger attribute whose unknown
tail is zero, and a smaller one). Every ``__aligned_u64`` is placed with explicit
padding, so the layouts are the same for 32- and 64-bit processes.

File descriptors: every function that creates a kernel object (``map_create``,
``prog_load``, ``obj_get``, ``*_get_fd_by_id``, ``link_create``, ``btf_load``, ...)
returns a plain ``int`` that the caller owns and must close; wrap it in :class:`FD` to
have it closed by ``close()``, a ``with`` block, or garbage collection. Every function
taking a descriptor accepts an ``int``, an :class:`FD`, or any object with ``fileno()``.

Every failure raises :class:`~bpfkit.errors.KernelError` (an ``OSError``) naming the
command and carrying a hint, except a program the verifier rejects, which raises
:class:`~bpfkit.errors.VerifierError` with the full log.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol, Self

from ..errors import KernelError, NotSupported, VerifierError
from ..isa.instruction import Instruction, encode
from ..uapi.enums import Cmd, LinkType, MapType, ProgType

# ---------------------------------------------------------------------------
# Constants from linux/bpf.h
# ---------------------------------------------------------------------------

OBJ_NAME_LEN = 16
TAG_SIZE = 8

# Map element update flags.
ANY, NOEXIST, EXIST, F_LOCK = 0, 1, 2, 4

# Map creation flags.
F_NO_PREALLOC = 1 << 0
F_NO_COMMON_LRU = 1 << 1
F_NUMA_NODE = 1 << 2
F_RDONLY = 1 << 3
F_WRONLY = 1 << 4
F_STACK_BUILD_ID = 1 << 5
F_ZERO_SEED = 1 << 6
F_RDONLY_PROG = 1 << 7
F_WRONLY_PROG = 1 << 8
F_CLONE = 1 << 9
F_MMAPABLE = 1 << 10
F_PRESERVE_ELEMS = 1 << 11
F_INNER_MAP = 1 << 12
F_LINK = 1 << 13
F_PATH_FD = 1 << 14
F_TOKEN_FD = 1 << 16

# Program load flags.
F_STRICT_ALIGNMENT = 1 << 0
F_ANY_ALIGNMENT = 1 << 1
F_TEST_RND_HI32 = 1 << 2
F_TEST_STATE_FREQ = 1 << 3
F_SLEEPABLE = 1 << 4
F_XDP_HAS_FRAGS = 1 << 5

# Attach flags (PROG_ATTACH, LINK_CREATE for mprog hooks).
F_ALLOW_OVERRIDE = 1 << 0
F_ALLOW_MULTI = 1 << 1
F_REPLACE = 1 << 2
F_BEFORE = 1 << 3
F_AFTER = 1 << 4
F_ID = 1 << 5

F_QUERY_EFFECTIVE = 1 << 0
F_TEST_RUN_ON_CPU = 1 << 0
F_TEST_XDP_LIVE_FRAMES = 1 << 1
F_KPROBE_MULTI_RETURN = 1 << 0

STATS_RUN_TIME = 0

# Attach types newer than ``uapi.enums`` knows (values from linux/bpf.h).
ATTACH_PERF_EVENT = 41
ATTACH_TRACE_KPROBE_MULTI = 42

ENOTSUPP = 524  # kernel-internal "not supported", leaks to user space from bpf()

#: Largest verifier log buffer ``prog_load``/``btf_load`` grow to before giving up.
MAX_LOG_SIZE = 64 << 20
_FIRST_LOG_SIZE = 256 << 10

# ---------------------------------------------------------------------------
# The system call
# ---------------------------------------------------------------------------

_SYSCALL_NR = {
    "x86_64": 321,
    "amd64": 321,
    "i386": 357,
    "i486": 357,
    "i586": 357,
    "i686": 357,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64": 361,
    "ppc64le": 361,
    "ppc": 361,
    "s390x": 351,
}
_COMPAT_32 = {"x86_64": 357, "amd64": 357, "aarch64": 386, "arm64": 386}


def syscall_number(machine: str | None = None) -> int:
    """The ``bpf()`` system call number for this process's architecture."""
    machine = machine or os.uname().machine
    if ctypes.sizeof(ctypes.c_void_p) == 4 and machine in _COMPAT_32:
        return _COMPAT_32[machine]
    if machine in _SYSCALL_NR:
        return _SYSCALL_NR[machine]
    if machine.startswith("arm"):
        return 386
    raise NotSupported(f"bpf() system call number unknown for architecture {machine!r}")


_libc = None
_nr: int | None = None


def _syscall_fn():
    global _libc, _nr
    if _libc is None:
        _nr = syscall_number()
        lib = ctypes.CDLL(None, use_errno=True)
        fn = lib.syscall
        fn.restype = ctypes.c_long
        fn.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]
        _libc = fn
    return _libc


def bpf(cmd: int, attr: ctypes.Structure | ctypes.Union) -> tuple[int, int]:
    """Issue ``bpf(cmd, &attr, sizeof(attr))``; returns ``(result, errno)`` without raising."""
    fn = _syscall_fn()
    ctypes.set_errno(0)
    res = fn(_nr, int(cmd), ctypes.addressof(attr), ctypes.sizeof(attr))
    if res < 0:
        return -1, ctypes.get_errno()
    return int(res), 0


def _cmd_name(cmd: int) -> str:
    try:
        return "BPF_" + Cmd(cmd).name
    except ValueError:
        return f"BPF_CMD_{cmd}"


_PRIV_HINT = (
    "needs root or CAP_BPF/CAP_SYS_ADMIN (and CAP_PERFMON/CAP_NET_ADMIN for some "
    "program types), or raise RLIMIT_MEMLOCK"
)
_GENERIC_HINTS = {
    errno.EPERM: _PRIV_HINT,
    errno.E2BIG: "kernel too old for this attribute (it holds a field the kernel does not know)",
    errno.EINVAL: "invalid argument for this kernel or object (flags, sizes, types or names)",
    errno.ENOENT: "no such object",
    errno.EEXIST: "already exists",
    errno.EBADF: "bad file descriptor (closed, or not a BPF object of the right kind)",
    errno.ENOMEM: "out of memory, or RLIMIT_MEMLOCK too low on an old kernel",
    errno.EFAULT: "the kernel could not read or write a buffer (bpfkit bug)",
    errno.ENOSYS: "kernel built without CONFIG_BPF_SYSCALL",
    errno.EOPNOTSUPP: "not supported by this kernel, object or program type",
    ENOTSUPP: "not supported by this kernel, object or program type",
    errno.EBUSY: "object busy (already attached, frozen, or in use)",
    errno.ENOSPC: "buffer too small",
    errno.EACCES: "permission denied (verifier, read-only object, or LSM policy)",
    errno.ENODEV: "no such device",
    errno.ENXIO: "no such device or address",
    errno.ESRCH: "no such process or attach point",
}
_CMD_HINTS = {
    (Cmd.MAP_UPDATE_ELEM, errno.E2BIG): "map is full (max_entries reached) or index out of range",
    (Cmd.MAP_UPDATE_ELEM, errno.EEXIST): "key already exists (BPF_NOEXIST)",
    (Cmd.MAP_UPDATE_ELEM, errno.ENOENT): "no such key (BPF_EXIST)",
    (Cmd.MAP_UPDATE_ELEM, errno.EPERM): "map is frozen or read-only from user space; or "
    + _PRIV_HINT,
    (Cmd.MAP_DELETE_ELEM, errno.ENOENT): "no such key",
    (Cmd.MAP_DELETE_ELEM, errno.EINVAL): "this map type does not support deletion (e.g. arrays)",
    (Cmd.MAP_LOOKUP_ELEM, errno.ENOENT): "no such key",
    (Cmd.MAP_LOOKUP_AND_DELETE_ELEM, errno.ENOENT): "no such key, or the queue/stack is empty",
    (Cmd.MAP_UPDATE_BATCH, errno.E2BIG): "map is full (max_entries reached) or index out of range",
    (Cmd.MAP_FREEZE, errno.EBUSY): "map already frozen or mapped writable",
    (Cmd.MAP_FREEZE, errno.EPERM): "map already frozen or opened read-only; or " + _PRIV_HINT,
    (Cmd.PROG_LOAD, errno.E2BIG): "program too large, or kernel too old for an attribute",
    (Cmd.PROG_LOAD, errno.ENOENT): "a referenced object (BTF id, kernel function) does not exist",
    (Cmd.OBJ_GET, errno.ENOENT): "no such pinned path",
    (Cmd.OBJ_PIN, errno.EEXIST): "path already exists",
    (Cmd.OBJ_PIN, errno.ENOENT): "no such directory",
    (Cmd.OBJ_PIN, errno.EPERM): "path is not on a bpf filesystem (mount -t bpf bpf DIR); or "
    + _PRIV_HINT,
    (Cmd.OBJ_GET, errno.EPERM): "path is not on a bpf filesystem; or " + _PRIV_HINT,
    (Cmd.PROG_GET_FD_BY_ID, errno.ENOENT): "no program with that id",
    (Cmd.MAP_GET_FD_BY_ID, errno.ENOENT): "no map with that id",
    (Cmd.LINK_GET_FD_BY_ID, errno.ENOENT): "no link with that id",
    (Cmd.BTF_GET_FD_BY_ID, errno.ENOENT): "no BTF object with that id",
    (Cmd.PROG_TEST_RUN, ENOTSUPP): "this program type cannot be test-run",
    (Cmd.PROG_TEST_RUN, errno.EINVAL): "data/ctx sizes or flags not accepted for this program type",
    (Cmd.RAW_TRACEPOINT_OPEN, errno.ENOENT): "no such tracepoint",
    (Cmd.LINK_CREATE, errno.EINVAL): "program type, attach type and target do not match",
}


def hint_for(cmd: int, err: int) -> str:
    """The hint a failed ``cmd`` with ``err`` is reported with."""
    hint = _CMD_HINTS.get((cmd, err)) or _GENERIC_HINTS.get(err, "")
    if err == errno.EPERM:  # about privileges only if this process lacks some
        from .privileges import eperm_hint

        hint = hint.replace(_PRIV_HINT, eperm_hint())
    return hint


def _fail(cmd: int, err: int, hint: str | None = None) -> KernelError:
    return KernelError(err, _cmd_name(cmd), hint_for(cmd, err) if hint is None else hint)


def _call(cmd: int, attr: ctypes.Structure | ctypes.Union, hint: str | None = None) -> int:
    res, err = bpf(cmd, attr)
    if res < 0:
        raise _fail(cmd, err, hint)
    return res


# ---------------------------------------------------------------------------
# File descriptors
# ---------------------------------------------------------------------------


class SupportsFileno(Protocol):
    """Anything with a ``fileno()`` method."""

    def fileno(self) -> int: ...


FdLike = int | SupportsFileno


def fdnum(fd: FdLike) -> int:
    """The integer descriptor behind an ``int``, :class:`FD` or ``fileno()`` object."""
    if isinstance(fd, int):
        return fd
    return fd.fileno()


class Closing:
    """``with`` support and a finaliser for an object whose ``close()`` is idempotent."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


class FD(Closing):
    """An owned file descriptor: closed by ``close()``, a ``with`` block, or garbage collection."""

    __slots__ = ("_fd", "__weakref__")

    def __init__(self, fd: int):
        if not isinstance(fd, int) or fd < 0:
            raise ValueError(f"invalid file descriptor {fd!r}")
        self._fd = fd

    @property
    def closed(self) -> bool:
        """Whether the descriptor was closed or detached."""
        return self._fd < 0

    def fileno(self) -> int:
        """The descriptor number; raises ``ValueError`` once closed."""
        if self._fd < 0:
            raise ValueError("operation on closed FD")
        return self._fd

    __index__ = fileno
    __int__ = fileno

    def detach(self) -> int:
        """Give up ownership and return the raw descriptor (the caller closes it)."""
        fd = self.fileno()
        self._fd = -1
        return fd

    def dup(self) -> FD:
        """A new owned duplicate (close-on-exec) of this descriptor."""
        return FD(os.dup(self.fileno()))

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FD({self._fd})" if self._fd >= 0 else "FD(closed)"


# ---------------------------------------------------------------------------
# Attribute layouts (one per command group, as the members of union bpf_attr)
# ---------------------------------------------------------------------------

u8, u32, s32, u64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class _Attr(ctypes.Structure):
    """Base for attribute layouts: natural alignment, explicit padding for ``__aligned_u64``."""


class MapCreateAttr(_Attr):
    """``BPF_MAP_CREATE``."""

    _fields_ = [
        ("map_type", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("inner_map_fd", u32),
        ("numa_node", u32),
        ("map_name", ctypes.c_char * OBJ_NAME_LEN),
        ("map_ifindex", u32),
        ("btf_fd", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("map_extra", u64),
        ("value_type_btf_obj_fd", s32),
        ("map_token_fd", s32),
        ("excl_prog_hash", u64),
        ("excl_prog_hash_size", u32),
        ("_pad0", u32),
    ]


class MapElemAttr(_Attr):
    """``BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM``, ``GET_NEXT_KEY``, ``LOOKUP_AND_DELETE``, ``FREEZE``."""

    _fields_ = [("map_fd", u32), ("_pad0", u32), ("key", u64), ("value", u64), ("flags", u64)]

    @property
    def next_key(self) -> int:
        return self.value

    @next_key.setter
    def next_key(self, v: int) -> None:
        self.value = v


class MapBatchAttr(_Attr):
    """``BPF_MAP_*_BATCH``."""

    _fields_ = [
        ("in_batch", u64),
        ("out_batch", u64),
        ("keys", u64),
        ("values", u64),
        ("count", u32),
        ("map_fd", u32),
        ("elem_flags", u64),
        ("flags", u64),
    ]


class ProgLoadAttr(_Attr):
    """``BPF_PROG_LOAD``."""

    _fields_ = [
        ("prog_type", u32),
        ("insn_cnt", u32),
        ("insns", u64),
        ("license", u64),
        ("log_level", u32),
        ("log_size", u32),
        ("log_buf", u64),
        ("kern_version", u32),
        ("prog_flags", u32),
        ("prog_name", ctypes.c_char * OBJ_NAME_LEN),
        ("prog_ifindex", u32),
        ("expected_attach_type", u32),
        ("prog_btf_fd", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("func_info_cnt", u32),
        ("line_info_rec_size", u32),
        ("line_info", u64),
        ("line_info_cnt", u32),
        ("attach_btf_id", u32),
        ("attach_prog_fd", u32),  # union with attach_btf_obj_fd
        ("core_relo_cnt", u32),
        ("fd_array", u64),
        ("core_relos", u64),
        ("core_relo_rec_size", u32),
        ("log_true_size", u32),
        ("prog_token_fd", s32),
        ("fd_array_cnt", u32),
        ("signature", u64),
        ("signature_size", u32),
        ("keyring_id", s32),
    ]

    @property
    def attach_btf_obj_fd(self) -> int:
        return self.attach_prog_fd

    @attach_btf_obj_fd.setter
    def attach_btf_obj_fd(self, v: int) -> None:
        self.attach_prog_fd = v


class ObjAttr(_Attr):
    """``BPF_OBJ_PIN`` / ``BPF_OBJ_GET``."""

    _fields_ = [
        ("pathname", u64),
        ("bpf_fd", u32),
        ("file_flags", u32),
        ("path_fd", s32),
        ("_pad0", u32),
    ]


class ProgAttachAttr(_Attr):
    """``BPF_PROG_ATTACH`` / ``BPF_PROG_DETACH``."""

    _fields_ = [
        ("target_fd", u32),  # union with target_ifindex
        ("attach_bpf_fd", u32),
        ("attach_type", u32),
        ("attach_flags", u32),
        ("replace_bpf_fd", u32),
        ("relative_fd", u32),  # union with relative_id
        ("expected_revision", u64),
    ]


class TestRunAttr(_Attr):
    """``BPF_PROG_TEST_RUN``."""

    __test__ = False  # not a pytest test class
    _fields_ = [
        ("prog_fd", u32),
        ("retval", u32),
        ("data_size_in", u32),
        ("data_size_out", u32),
        ("data_in", u64),
        ("data_out", u64),
        ("repeat", u32),
        ("duration", u32),
        ("ctx_size_in", u32),
        ("ctx_size_out", u32),
        ("ctx_in", u64),
        ("ctx_out", u64),
        ("flags", u32),
        ("cpu", u32),
        ("batch_size", u32),
        ("_pad0", u32),
    ]


class GetIdAttr(_Attr):
    """``BPF_*_GET_NEXT_ID`` / ``BPF_*_GET_FD_BY_ID``."""

    _fields_ = [
        ("start_id", u32),
        ("next_id", u32),
        ("open_flags", u32),
        ("fd_by_id_token_fd", s32),
    ]


class InfoAttr(_Attr):
    """``BPF_OBJ_GET_INFO_BY_FD``."""

    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]


class QueryAttr(_Attr):
    """``BPF_PROG_QUERY``."""

    _fields_ = [
        ("target_fd", u32),
        ("attach_type", u32),
        ("query_flags", u32),
        ("attach_flags", u32),
        ("prog_ids", u64),
        ("prog_cnt", u32),
        ("_pad0", u32),
        ("prog_attach_flags", u64),
        ("link_ids", u64),
        ("link_attach_flags", u64),
        ("revision", u64),
    ]


class RawTracepointAttr(_Attr):
    """``BPF_RAW_TRACEPOINT_OPEN``."""

    _fields_ = [("name", u64), ("prog_fd", u32), ("_pad0", u32), ("cookie", u64)]


class BtfLoadAttr(_Attr):
    """``BPF_BTF_LOAD``."""

    _fields_ = [
        ("btf", u64),
        ("btf_log_buf", u64),
        ("btf_size", u32),
        ("btf_log_size", u32),
        ("btf_log_level", u32),
        ("btf_log_true_size", u32),
        ("btf_flags", u32),
        ("btf_token_fd", s32),
    ]


class _IterTarget(_Attr):
    _fields_ = [("iter_info", u64), ("iter_info_len", u32), ("_pad0", u32)]


class _PerfEventTarget(_Attr):
    _fields_ = [("bpf_cookie", u64)]


class _KprobeMultiTarget(_Attr):
    _fields_ = [("flags", u32), ("cnt", u32), ("syms", u64), ("addrs", u64), ("cookies", u64)]


class _TracingTarget(_Attr):
    _fields_ = [("target_btf_id", u32), ("_pad0", u32), ("cookie", u64)]


class _NetfilterTarget(_Attr):
    _fields_ = [("pf", u32), ("hooknum", u32), ("priority", s32), ("flags", u32)]


class _RelativeTarget(_Attr):
    """The ``tcx``/``netkit``/``cgroup`` members: relative position and expected revision."""

    _fields_ = [("relative_fd", u32), ("_pad0", u32), ("expected_revision", u64)]


class _UprobeMultiTarget(_Attr):
    _fields_ = [
        ("path", u64),
        ("offsets", u64),
        ("ref_ctr_offsets", u64),
        ("cookies", u64),
        ("cnt", u32),
        ("flags", u32),
        ("pid", u32),
        ("path_fd", u32),
    ]


class _LinkCreateTarget(ctypes.Union):
    _fields_ = [
        ("target_btf_id", u32),
        ("iter", _IterTarget),
        ("perf_event", _PerfEventTarget),
        ("kprobe_multi", _KprobeMultiTarget),
        ("tracing", _TracingTarget),
        ("netfilter", _NetfilterTarget),
        ("tcx", _RelativeTarget),
        ("uprobe_multi", _UprobeMultiTarget),
        ("netkit", _RelativeTarget),
        ("cgroup", _RelativeTarget),
        ("_raw", u8 * 48),
    ]


class LinkCreateAttr(_Attr):
    """``BPF_LINK_CREATE`` (``prog_fd`` is a union with ``map_fd``, ``target_fd`` with ``target_ifindex``)."""

    _anonymous_ = ("u",)
    _fields_ = [
        ("prog_fd", u32),
        ("target_fd", u32),
        ("attach_type", u32),
        ("flags", u32),
        ("u", _LinkCreateTarget),
    ]


class LinkUpdateAttr(_Attr):
    """``BPF_LINK_UPDATE``."""

    _fields_ = [("link_fd", u32), ("new_prog_fd", u32), ("flags", u32), ("old_prog_fd", u32)]


class LinkDetachAttr(_Attr):
    """``BPF_LINK_DETACH``."""

    _fields_ = [("link_fd", u32), ("_pad0", u32)]


class EnableStatsAttr(_Attr):
    """``BPF_ENABLE_STATS``."""

    _fields_ = [("type", u32), ("_pad0", u32)]


class IterCreateAttr(_Attr):
    """``BPF_ITER_CREATE``."""

    _fields_ = [("link_fd", u32), ("flags", u32)]


class ProgBindMapAttr(_Attr):
    """``BPF_PROG_BIND_MAP``."""

    _fields_ = [("prog_fd", u32), ("map_fd", u32), ("flags", u32), ("_pad0", u32)]


# ---- OBJ_GET_INFO_BY_FD payloads ----------------------------------------------------


class BpfProgInfo(_Attr):
    """``struct bpf_prog_info``."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("tag", u8 * TAG_SIZE),
        ("jited_prog_len", u32),
        ("xlated_prog_len", u32),
        ("jited_prog_insns", u64),
        ("xlated_prog_insns", u64),
        ("load_time", u64),
        ("created_by_uid", u32),
        ("nr_map_ids", u32),
        ("map_ids", u64),
        ("name", ctypes.c_char * OBJ_NAME_LEN),
        ("ifindex", u32),
        ("gpl_compatible", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("nr_jited_ksyms", u32),
        ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64),
        ("jited_func_lens", u64),
        ("btf_id", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("nr_func_info", u32),
        ("nr_line_info", u32),
        ("line_info", u64),
        ("jited_line_info", u64),
        ("nr_jited_line_info", u32),
        ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32),
        ("nr_prog_tags", u32),
        ("prog_tags", u64),
        ("run_time_ns", u64),
        ("run_cnt", u64),
        ("recursion_misses", u64),
        ("verified_insns", u32),
        ("attach_btf_obj_id", u32),
        ("attach_btf_id", u32),
        ("_pad0", u32),
    ]


class BpfMapInfo(_Attr):
    """``struct bpf_map_info``."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("name", ctypes.c_char * OBJ_NAME_LEN),
        ("ifindex", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("btf_id", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("_pad0", u32),
        ("map_extra", u64),
    ]


class BpfBtfInfo(_Attr):
    """``struct bpf_btf_info``."""

    _fields_ = [
        ("btf", u64),
        ("btf_size", u32),
        ("id", u32),
        ("name", u64),
        ("name_len", u32),
        ("kernel_btf", u32),
    ]


class BpfLinkInfo(_Attr):
    """``struct bpf_link_info``: the common header and the per-kind union as raw bytes."""

    _fields_ = [("type", u32), ("id", u32), ("prog_id", u32), ("_pad0", u32), ("u", u8 * 112)]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9_.]*")


def _obj_name(name: str) -> bytes:
    """An object name as the kernel accepts it: letters, digits, ``_`` and ``.``; 15 bytes."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid object name {name!r}: only letters, digits, '_' and '.'")
    return name.encode()[: OBJ_NAME_LEN - 1]


def _buf(data: bytes | bytearray | memoryview) -> ctypes.Array:
    """A ctypes copy of ``data`` (never empty, so its address is always valid)."""
    data = bytes(data)
    return ctypes.create_string_buffer(data, max(len(data), 1))


def _addr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _enum(cls: type[IntEnum], value: int) -> int:
    try:
        return cls(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    flags: int = 0,
    name: str = "",
    inner_map_fd: FdLike = 0,
    btf_fd: FdLike = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    map_extra: int = 0,
    numa_node: int | None = None,
    *,
    map_ifindex: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    value_type_btf_obj_fd: FdLike = 0,
) -> int:
    """Create a map; returns its (owned) file descriptor."""
    attr = MapCreateAttr(
        map_type=int(map_type),
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=flags,
        inner_map_fd=fdnum(inner_map_fd),
        map_name=_obj_name(name),
        map_ifindex=map_ifindex,
        btf_fd=fdnum(btf_fd),
        btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
        map_extra=map_extra,
        value_type_btf_obj_fd=fdnum(value_type_btf_obj_fd),
    )
    if numa_node is not None:
        attr.numa_node = numa_node
        attr.map_flags |= F_NUMA_NODE
    return _call(Cmd.MAP_CREATE, attr)


def _check_len(what: str, data: bytes, size: int) -> None:
    if len(data) != size:
        raise ValueError(f"{what} is {len(data)} bytes, expected {size}")


def _elem_out(cmd: int, fd: FdLike, key: bytes | None, size: int, flags: int = 0) -> bytes | None:
    """A ``MapElemAttr`` command that writes ``size`` bytes back; ``None`` on ENOENT."""
    k = _buf(key) if key is not None else None
    out = ctypes.create_string_buffer(max(size, 1))
    attr = MapElemAttr(map_fd=fdnum(fd), key=_addr(k), value=_addr(out), flags=flags)
    res, err = bpf(cmd, attr)
    if res < 0:
        if err == errno.ENOENT:
            return None
        raise _fail(cmd, err)
    return out.raw[:size]


def map_lookup(fd: FdLike, key: bytes | None, value_size: int, flags: int = 0) -> bytes | None:
    """The value stored under ``key``, or ``None`` if there is none (ENOENT).

    ``value_size`` is the whole value buffer: for per-CPU maps that is
    ``round_up(value_size, 8) * possible_cpus()``.
    """
    return _elem_out(Cmd.MAP_LOOKUP_ELEM, fd, key, value_size, flags)


def map_update(fd: FdLike, key: bytes | None, value: bytes, flags: int = ANY) -> None:
    """Store ``value`` under ``key`` (``flags``: ``ANY``, ``NOEXIST``, ``EXIST``, ``F_LOCK``)."""
    k = _buf(key) if key is not None else None
    v = _buf(value)
    _call(
        Cmd.MAP_UPDATE_ELEM,
        MapElemAttr(map_fd=fdnum(fd), key=_addr(k), value=_addr(v), flags=flags),
    )


def map_delete(fd: FdLike, key: bytes, flags: int = 0) -> None:
    """Delete ``key``; raises ``KernelError`` (ENOENT) if it is absent."""
    k = _buf(key)
    _call(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fdnum(fd), key=_addr(k), flags=flags))


def map_get_next_key(fd: FdLike, key: bytes | None, key_size: int) -> bytes | None:
    """The key after ``key`` (the first key when ``key`` is ``None``), or ``None`` at the end."""
    return _elem_out(Cmd.MAP_GET_NEXT_KEY, fd, key, key_size)


def map_keys(fd: FdLike, key_size: int) -> Iterator[bytes]:
    """Iterate over a map's keys with ``map_get_next_key``."""
    key = None
    while (key := map_get_next_key(fd, key, key_size)) is not None:
        yield key


def map_lookup_and_delete(
    fd: FdLike, key: bytes | None, value_size: int, flags: int = 0
) -> bytes | None:
    """Remove and return the value under ``key`` (``None`` key: pop a queue/stack); ``None`` if absent."""
    return _elem_out(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value_size, flags)


def map_freeze(fd: FdLike) -> None:
    """Make the map read-only from user space (programs may still write it)."""
    _call(Cmd.MAP_FREEZE, MapElemAttr(map_fd=fdnum(fd)))


@dataclass
class BatchResult:
    """Keys and values returned by a batch lookup; ``next_batch`` resumes it (``None``: done)."""

    keys: list[bytes]
    values: list[bytes]
    next_batch: bytes | None


def _lookup_batch(
    cmd: int,
    fd: FdLike,
    key_size: int,
    value_size: int,
    count: int,
    in_batch: bytes | None,
    elem_flags: int,
    flags: int,
) -> BatchResult:
    if count <= 0:
        raise ValueError("batch count must be positive")
    tok_size = max(key_size, 8)
    inb = _buf(in_batch.ljust(tok_size, b"\0")) if in_batch is not None else None
    outb = ctypes.create_string_buffer(tok_size)
    keys = ctypes.create_string_buffer(key_size * count)
    values = ctypes.create_string_buffer(value_size * count)
    attr = MapBatchAttr(
        in_batch=_addr(inb),
        out_batch=_addr(outb),
        keys=_addr(keys),
        values=_addr(values),
        count=count,
        map_fd=fdnum(fd),
        elem_flags=elem_flags,
        flags=flags,
    )
    res, err = bpf(cmd, attr)
    if res < 0 and err != errno.ENOENT:
        raise _fail(cmd, err)
    n = attr.count
    kraw, vraw = keys.raw, values.raw
    return BatchResult(
        keys=[kraw[i * key_size : (i + 1) * key_size] for i in range(n)],
        values=[vraw[i * value_size : (i + 1) * value_size] for i in range(n)],
        next_batch=None if res < 0 else outb.raw,
    )


def map_lookup_batch(
    fd: FdLike,
    key_size: int,
    value_size: int,
    count: int,
    in_batch: bytes | None = None,
    *,
    elem_flags: int = 0,
    flags: int = 0,
) -> BatchResult:
    """Look up to ``count`` entries starting at ``in_batch`` (``None``: from the start)."""
    return _lookup_batch(
        Cmd.MAP_LOOKUP_BATCH, fd, key_size, value_size, count, in_batch, elem_flags, flags
    )


def map_lookup_and_delete_batch(
    fd: FdLike,
    key_size: int,
    value_size: int,
    count: int,
    in_batch: bytes | None = None,
    *,
    elem_flags: int = 0,
    flags: int = 0,
) -> BatchResult:
    """Like ``map_lookup_batch`` and delete what was returned."""
    return _lookup_batch(
        Cmd.MAP_LOOKUP_AND_DELETE_BATCH,
        fd,
        key_size,
        value_size,
        count,
        in_batch,
        elem_flags,
        flags,
    )


def map_update_batch(
    fd: FdLike,
    keys: Sequence[bytes],
    values: Sequence[bytes],
    *,
    elem_flags: int = 0,
    flags: int = 0,
) -> int:
    """Store many entries at once; returns how many were processed."""
    if len(keys) != len(values):
        raise ValueError("keys and values differ in number")
    if not keys:
        return 0
    kb, vb = _buf(b"".join(keys)), _buf(b"".join(values))
    attr = MapBatchAttr(
        keys=_addr(kb),
        values=_addr(vb),
        count=len(keys),
        map_fd=fdnum(fd),
        elem_flags=elem_flags,
        flags=flags,
    )
    _call(Cmd.MAP_UPDATE_BATCH, attr)
    return attr.count


def map_delete_batch(
    fd: FdLike, keys: Sequence[bytes], *, elem_flags: int = 0, flags: int = 0
) -> int:
    """Delete many keys at once; returns how many were deleted."""
    if not keys:
        return 0
    kb = _buf(b"".join(keys))
    attr = MapBatchAttr(
        keys=_addr(kb), count=len(keys), map_fd=fdnum(fd), elem_flags=elem_flags, flags=flags
    )
    _call(Cmd.MAP_DELETE_BATCH, attr)
    return attr.count


def possible_cpus() -> int:
    """Number of possible CPUs (the per-CPU map value multiplier)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += (int(hi) if hi else int(lo)) - int(lo) + 1
    return n


# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------

_TRAILER_RE = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn|"
    r"total_states|peak_states|mark_read|-- END)"
)
_INSN_LINE_RE = re.compile(r"^(\d+): \([0-9a-f]{2}\)")
_STATE_LINE_RE = re.compile(r"^(\d+): (R\d|frame)")
_SRC_LINE_RE = re.compile(r"^; (.*?)(?: @ (\S+):(\d+))?$")
_MSG_INSN_RE = re.compile(r"\binsn (?:#)?(\d+)\b")


def parse_verifier_log(log: str) -> tuple[str, int | None, dict | None, str | None]:
    """Summarise a verifier log: ``(message, insn, source line, register state)``.

    The message is the last meaningful line (statistics trailers skipped); the insn is
    the last instruction the log printed before it, or one the message names.
    """
    lines = [ln.rstrip() for ln in log.splitlines()]
    end = len(lines)
    while end > 0 and (not lines[end - 1].strip() or _TRAILER_RE.match(lines[end - 1])):
        end -= 1
    if end == 0:
        return "rejected by the verifier (empty log)", None, None, None
    msg_at = end - 1
    message = lines[msg_at].strip()
    # A message that only introduces the next line ("...:") reads better joined.
    if message.endswith(":") and msg_at + 1 < len(lines) and lines[msg_at + 1].strip():
        message = f"{message} {lines[msg_at + 1].strip()}"
    insn = src = state = None
    for i in range(msg_at, -1, -1):
        ln = lines[i]
        if insn is None and (m := _INSN_LINE_RE.match(ln)):
            insn = int(m.group(1))
            # The source line (BTF line info) and state printed just before it.
            for j in range(i - 1, max(-1, i - 6), -1):
                prev = lines[j]
                if src is None and (s := _SRC_LINE_RE.match(prev)):
                    src = {
                        "text": s.group(1),
                        "file": s.group(2),
                        "line": int(s.group(3)) if s.group(3) else None,
                    }
                if state is None and _STATE_LINE_RE.match(prev):
                    state = prev.split(": ", 1)[1]
                elif state is None and _INSN_LINE_RE.match(prev) and " ; " in prev:
                    state = prev.rsplit(" ; ", 1)[1].strip()
            break
    if insn is None and (m := _MSG_INSN_RE.search(message)):
        insn = int(m.group(1))
    return message, insn, src, state


def _insn_bytes(insns: bytes | bytearray | memoryview | Sequence[Instruction]) -> bytes:
    if isinstance(insns, bytes | bytearray | memoryview):
        code = bytes(insns)
    else:
        code = encode(insns)
    if not code or len(code) % 8:
        raise ValueError(f"program of {len(code)} bytes is empty or not a multiple of 8")
    return code


def prog_load(
    prog_type: int,
    insns: bytes | Sequence[Instruction],
    license: str = "GPL",
    *,
    expected_attach_type: int = 0,
    name: str = "",
    log_level: int = 0,
    kern_version: int = 0,
    prog_btf_fd: FdLike = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    attach_btf_id: int = 0,
    attach_prog_fd: FdLike = 0,
    attach_btf_obj_fd: FdLike = 0,
    fd_array: Sequence[FdLike] | None = None,
    prog_flags: int = 0,
    prog_ifindex: int = 0,
    log_out: list[str] | None = None,
) -> int:
    """Load a program; returns its (owned) file descriptor.

    Without ``log_level`` the first attempt asks for no log; a failure is retried with
    ``log_level=1`` to get one. A log buffer grows on ENOSPC up to ``MAX_LOG_SIZE``;
    EAGAIN is retried. A rejection raises :class:`VerifierError` (``.log`` holds the
    full log); other failures raise :class:`KernelError`. With ``log_out``, the final
    log (also of a successful load with ``log_level > 0``) is appended to it.
    """
    code = _insn_bytes(insns)
    code_buf = _buf(code)
    lic = ctypes.create_string_buffer(license.encode())
    keep: list[object] = [code_buf, lic]
    attr = ProgLoadAttr(
        prog_type=int(prog_type),
        insn_cnt=len(code) // 8,
        insns=_addr(code_buf),
        license=_addr(lic),
        kern_version=kern_version,
        prog_flags=prog_flags,
        prog_name=_obj_name(name),
        prog_ifindex=prog_ifindex,
        expected_attach_type=int(expected_attach_type),
        prog_btf_fd=fdnum(prog_btf_fd),
        attach_btf_id=attach_btf_id,
        attach_prog_fd=fdnum(attach_prog_fd) or fdnum(attach_btf_obj_fd),
    )
    if func_info:
        if func_info_rec_size <= 0:
            raise ValueError("func_info needs func_info_rec_size")
        fi = _buf(func_info)
        keep.append(fi)
        attr.func_info, attr.func_info_rec_size = _addr(fi), func_info_rec_size
        attr.func_info_cnt = len(func_info) // func_info_rec_size
    if line_info:
        if line_info_rec_size <= 0:
            raise ValueError("line_info needs line_info_rec_size")
        li = _buf(line_info)
        keep.append(li)
        attr.line_info, attr.line_info_rec_size = _addr(li), line_info_rec_size
        attr.line_info_cnt = len(line_info) // line_info_rec_size
    if fd_array:
        arr = (s32 * len(fd_array))(*(fdnum(f) for f in fd_array))
        keep.append(arr)
        attr.fd_array = ctypes.addressof(arr)

    level = log_level
    size = _FIRST_LOG_SIZE if level else 0
    log_buf = ctypes.create_string_buffer(size) if size else None
    first_err = 0
    eagain = 0
    while True:
        attr.log_level = level
        attr.log_size = size
        attr.log_buf = _addr(log_buf)
        attr.log_true_size = 0
        fd, err = bpf(Cmd.PROG_LOAD, attr)
        if fd >= 0:
            if log_out is not None and log_buf is not None:
                log_out.append(log_buf.value.decode(errors="replace"))
            return fd
        if err == errno.EAGAIN and eagain < 5:
            eagain += 1
            time.sleep(0.001 * eagain)
            continue
        if err == errno.ENOSPC and log_buf is not None and size < MAX_LOG_SIZE:
            want = max(size * 4, attr.log_true_size + 1)
            size = min(want, MAX_LOG_SIZE)
            log_buf = ctypes.create_string_buffer(size)
            continue
        first_err = first_err or err
        if log_buf is None and err not in (errno.EPERM, errno.EBADF, errno.ENOMEM):
            level, size = 1, _FIRST_LOG_SIZE
            log_buf = ctypes.create_string_buffer(size)
            continue
        break
    del keep
    log = log_buf.value.decode(errors="replace") if log_buf is not None else ""
    if log_out is not None and log:
        log_out.append(log)
    err = first_err if err == errno.ENOSPC else err
    # The verifier also ends some rejections with EFAULT (e.g. "the sequence of 8193 jumps
    # is too complex"); its closing statistics line shows it ran.
    verified = err == errno.EFAULT and "processed " in log
    if (err in (errno.EACCES, errno.EINVAL, errno.E2BIG) or verified) and log.strip():
        message, insn, src, state = parse_verifier_log(log)
        raise VerifierError(message, insn, log, src, state)
    hint = hint_for(Cmd.PROG_LOAD, err)
    if log.strip():
        hint = (
            f"{hint}; verifier: {parse_verifier_log(log)[0]}"
            if hint
            else parse_verifier_log(log)[0]
        )
    exc = KernelError(err, "BPF_PROG_LOAD", hint)
    exc.log = log  # type: ignore[attr-defined]
    raise exc


@dataclass
class TestRunResult:
    """What ``BPF_PROG_TEST_RUN`` reports: return value, output data/ctx, mean duration."""

    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes
    ctx_out: bytes
    duration_ns: int


def prog_test_run(
    fd: FdLike,
    data: bytes = b"",
    data_out_size: int | None = None,
    ctx: bytes | None = None,
    ctx_out_size: int | None = None,
    repeat: int = 1,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
) -> TestRunResult:
    """Run a loaded program once (or ``repeat`` times) on ``data`` and ``ctx``.

    ``data_out_size`` defaults to ``len(data) + 4096`` when there is data (the buffer grows
    once if the kernel reports ENOSPC); ``ctx_out_size`` defaults to ``len(ctx)``.
    """
    din = _buf(data) if data else None
    if data_out_size is None:
        data_out_size = len(data) + 4096 if data else 0
    cin = _buf(ctx) if ctx else None
    if ctx_out_size is None:
        ctx_out_size = len(ctx) if ctx else 0
    for _attempt in range(2):
        dout = ctypes.create_string_buffer(data_out_size) if data_out_size else None
        cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
        attr = TestRunAttr(
            prog_fd=fdnum(fd),
            data_size_in=len(data),
            data_in=_addr(din),
            data_size_out=data_out_size,
            data_out=_addr(dout),
            repeat=repeat,
            ctx_size_in=len(ctx) if ctx else 0,
            ctx_in=_addr(cin),
            ctx_size_out=ctx_out_size,
            ctx_out=_addr(cout),
            flags=flags,
            cpu=cpu,
            batch_size=batch_size,
        )
        res, err = bpf(Cmd.PROG_TEST_RUN, attr)
        if res >= 0:
            break
        if err == errno.ENOSPC and _attempt == 0:
            grew = False
            if dout is not None and attr.data_size_out > data_out_size:
                data_out_size, grew = attr.data_size_out, True
            if cout is not None and attr.ctx_size_out > ctx_out_size:
                ctx_out_size, grew = attr.ctx_size_out, True
            if grew:
                continue
        raise _fail(Cmd.PROG_TEST_RUN, err)
    n_data = min(attr.data_size_out, data_out_size)
    n_ctx = min(attr.ctx_size_out, ctx_out_size)
    return TestRunResult(
        retval=attr.retval,
        data_out=dout.raw[:n_data] if dout is not None else b"",
        ctx_out=cout.raw[:n_ctx] if cout is not None else b"",
        duration_ns=attr.duration,
    )


def prog_bind_map(prog_fd: FdLike, map_fd: FdLike, flags: int = 0) -> None:
    """Keep ``map_fd`` alive as long as the program (``BPF_PROG_BIND_MAP``)."""
    _call(
        Cmd.PROG_BIND_MAP,
        ProgBindMapAttr(prog_fd=fdnum(prog_fd), map_fd=fdnum(map_fd), flags=flags),
    )


# ---------------------------------------------------------------------------
# Pinning
# ---------------------------------------------------------------------------


def obj_pin(fd: FdLike, path: str | os.PathLike[str], *, path_fd: int | None = None) -> None:
    """Pin an object at ``path`` on a bpf filesystem."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=_addr(p), bpf_fd=fdnum(fd))
    if path_fd is not None:
        attr.path_fd, attr.file_flags = path_fd, F_PATH_FD
    _call(Cmd.OBJ_PIN, attr)


class Pinnable:
    """``pin``/``unpin`` of a BPF object held through an owned fd (``self._fd``)."""

    __slots__ = ()
    _fd: FD | None
    pinned: str | None

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin in bpffs."""
        obj_pin(self._fd, path)  # type: ignore[arg-type]
        self.pinned = os.fspath(path)

    def unpin(self) -> None:
        """Remove the pin made by :meth:`pin` (or made when loading, with ``pinning``)."""
        if self.pinned:
            os.unlink(self.pinned)
            self.pinned = None


def obj_get(path: str | os.PathLike[str], flags: int = 0, *, path_fd: int | None = None) -> int:
    """Open a pinned object (``flags``: ``F_RDONLY``/``F_WRONLY``); returns an owned fd."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=_addr(p), file_flags=flags)
    if path_fd is not None:
        attr.path_fd = path_fd
        attr.file_flags |= F_PATH_FD
    return _call(Cmd.OBJ_GET, attr)


# ---------------------------------------------------------------------------
# Object information
# ---------------------------------------------------------------------------


def _get_info(fd: FdLike, info: ctypes.Structure) -> int:
    attr = InfoAttr(bpf_fd=fdnum(fd), info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _call(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return attr.info_len


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


@dataclass
class ProgInfo:
    """A loaded program, as ``BPF_OBJ_GET_INFO_BY_FD`` describes it."""

    type: int
    id: int
    tag: str
    name: str
    jited_prog_len: int
    xlated_prog_len: int
    load_time: int
    created_by_uid: int
    map_ids: tuple[int, ...]
    ifindex: int
    gpl_compatible: bool
    netns_dev: int
    netns_ino: int
    btf_id: int
    nr_func_info: int
    nr_line_info: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    attach_btf_obj_id: int
    attach_btf_id: int
    xlated: bytes | None = field(default=None, repr=False)
    jited: bytes | None = field(default=None, repr=False)


def prog_info(fd: FdLike, *, xlated: bool = False, jited: bool = False) -> ProgInfo:
    """Describe a program; optionally fetch its translated and JIT-compiled code."""
    info = BpfProgInfo()
    _get_info(fd, info)
    nmaps = info.nr_map_ids
    map_ids: tuple[int, ...] = ()
    xl = jt = None
    if nmaps or xlated or jited:
        again = BpfProgInfo()
        ids = (u32 * max(nmaps, 1))()
        again.nr_map_ids, again.map_ids = nmaps, ctypes.addressof(ids)
        if xlated and info.xlated_prog_len:
            xbuf = ctypes.create_string_buffer(info.xlated_prog_len)
            again.xlated_prog_len, again.xlated_prog_insns = info.xlated_prog_len, _addr(xbuf)
        if jited and info.jited_prog_len:
            jbuf = ctypes.create_string_buffer(info.jited_prog_len)
            again.jited_prog_len, again.jited_prog_insns = info.jited_prog_len, _addr(jbuf)
        _get_info(fd, again)
        map_ids = tuple(ids[: min(nmaps, again.nr_map_ids)])
        if xlated:
            xl = xbuf.raw[: again.xlated_prog_len] if info.xlated_prog_len else b""
        if jited:
            jt = jbuf.raw[: again.jited_prog_len] if info.jited_prog_len else b""
    return ProgInfo(
        type=_enum(ProgType, info.type),
        id=info.id,
        tag=bytes(info.tag).hex(),
        name=_cstr(info.name),
        jited_prog_len=info.jited_prog_len,
        xlated_prog_len=info.xlated_prog_len,
        load_time=info.load_time,
        created_by_uid=info.created_by_uid,
        map_ids=map_ids,
        ifindex=info.ifindex,
        gpl_compatible=bool(info.gpl_compatible & 1),
        netns_dev=info.netns_dev,
        netns_ino=info.netns_ino,
        btf_id=info.btf_id,
        nr_func_info=info.nr_func_info,
        nr_line_info=info.nr_line_info,
        run_time_ns=info.run_time_ns,
        run_cnt=info.run_cnt,
        recursion_misses=info.recursion_misses,
        verified_insns=info.verified_insns,
        attach_btf_obj_id=info.attach_btf_obj_id,
        attach_btf_id=info.attach_btf_id,
        xlated=xl,
        jited=jt,
    )


@dataclass
class MapInfo:
    """A map, as ``BPF_OBJ_GET_INFO_BY_FD`` describes it."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    ifindex: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    netns_dev: int
    netns_ino: int
    map_extra: int


def map_info(fd: FdLike) -> MapInfo:
    """Describe a map."""
    info = BpfMapInfo()
    _get_info(fd, info)
    return MapInfo(
        type=_enum(MapType, info.type),
        id=info.id,
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        map_flags=info.map_flags,
        name=_cstr(info.name),
        ifindex=info.ifindex,
        btf_id=info.btf_id,
        btf_key_type_id=info.btf_key_type_id,
        btf_value_type_id=info.btf_value_type_id,
        btf_vmlinux_value_type_id=info.btf_vmlinux_value_type_id,
        netns_dev=info.netns_dev,
        netns_ino=info.netns_ino,
        map_extra=info.map_extra,
    )


@dataclass
class BtfInfo:
    """A loaded BTF object."""

    id: int
    btf_size: int
    name: str
    kernel_btf: bool
    data: bytes | None = field(default=None, repr=False)


def btf_info(fd: FdLike, *, data: bool = False) -> BtfInfo:
    """Describe a BTF object; optionally fetch its raw bytes."""
    name = ctypes.create_string_buffer(512)
    info = BpfBtfInfo(name=_addr(name), name_len=len(name))
    _get_info(fd, info)
    raw = None
    if data:
        size = info.btf_size
        buf = ctypes.create_string_buffer(max(size, 1))
        again = BpfBtfInfo(btf=_addr(buf), btf_size=size)
        _get_info(fd, again)
        raw = buf.raw[:size]
    return BtfInfo(
        id=info.id,
        btf_size=info.btf_size,
        name=name.value.decode(errors="replace"),
        kernel_btf=bool(info.kernel_btf),
        data=raw,
    )


@dataclass
class LinkInfo:
    """A link: its type, id, program, and per-kind details (``raw`` holds the union bytes)."""

    type: int
    id: int
    prog_id: int
    details: dict = field(default_factory=dict)
    raw: bytes = field(default=b"", repr=False)


_LINK_NETFILTER, _LINK_TCX, _LINK_UPROBE_MULTI, _LINK_NETKIT = 10, 11, 12, 13


def _link_details(ltype: int, raw: bytes) -> dict:
    import struct

    def u32s(n: int, off: int = 0) -> tuple[int, ...]:
        return struct.unpack_from(f"<{n}I", raw, off)

    if ltype == LinkType.TRACING:
        at, obj, btf = u32s(3)
        return {"attach_type": at, "target_obj_id": obj, "target_btf_id": btf}
    if ltype == LinkType.CGROUP:
        cg, at = struct.unpack_from("<QI", raw)
        return {"cgroup_id": cg, "attach_type": at}
    if ltype == LinkType.NETNS:
        ino, at = u32s(2)
        return {"netns_ino": ino, "attach_type": at}
    if ltype == LinkType.XDP:
        return {"ifindex": u32s(1)[0]}
    if ltype in (_LINK_TCX, _LINK_NETKIT):
        ifindex, at = u32s(2)
        return {"ifindex": ifindex, "attach_type": at}
    if ltype == _LINK_NETFILTER:
        pf, hook, prio, flags = struct.unpack_from("<IIiI", raw)
        return {"pf": pf, "hooknum": hook, "priority": prio, "flags": flags}
    return {}


def link_info(fd: FdLike) -> LinkInfo:
    """Describe a link (raw tracepoint links also report their tracepoint name)."""
    info = BpfLinkInfo()
    _get_info(fd, info)
    raw = bytes(info.u)
    details = _link_details(info.type, raw)
    if info.type == LinkType.RAW_TRACEPOINT:
        name = ctypes.create_string_buffer(256)
        again = BpfLinkInfo()
        ctypes.memmove(ctypes.addressof(again.u), ctypes.byref(u64(_addr(name))), 8)
        ctypes.memmove(ctypes.addressof(again.u) + 8, ctypes.byref(u32(len(name))), 4)
        _get_info(fd, again)
        details["tp_name"] = name.value.decode(errors="replace")
    return LinkInfo(
        type=_enum(LinkType, info.type), id=info.id, prog_id=info.prog_id, details=details, raw=raw
    )


# ---------------------------------------------------------------------------
# Enumeration by id
# ---------------------------------------------------------------------------


def _next_id(cmd: int, start_id: int) -> int | None:
    attr = GetIdAttr(start_id=start_id)
    res, err = bpf(cmd, attr)
    if res < 0:
        if err == errno.ENOENT:
            return None
        raise _fail(cmd, err)
    return attr.next_id


def prog_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next loaded program after ``start_id``, or ``None``."""
    return _next_id(Cmd.PROG_GET_NEXT_ID, start_id)


def map_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next map after ``start_id``, or ``None``."""
    return _next_id(Cmd.MAP_GET_NEXT_ID, start_id)


def link_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next link after ``start_id``, or ``None``."""
    return _next_id(Cmd.LINK_GET_NEXT_ID, start_id)


def btf_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next BTF object after ``start_id``, or ``None``."""
    return _next_id(Cmd.BTF_GET_NEXT_ID, start_id)


def _ids(cmd: int) -> Iterator[int]:
    cur = 0
    while (cur := _next_id(cmd, cur)) is not None:
        yield cur


def prog_ids() -> Iterator[int]:
    """Ids of all loaded programs."""
    return _ids(Cmd.PROG_GET_NEXT_ID)


def map_ids() -> Iterator[int]:
    """Ids of all maps."""
    return _ids(Cmd.MAP_GET_NEXT_ID)


def link_ids() -> Iterator[int]:
    """Ids of all links."""
    return _ids(Cmd.LINK_GET_NEXT_ID)


def btf_ids() -> Iterator[int]:
    """Ids of all BTF objects."""
    return _ids(Cmd.BTF_GET_NEXT_ID)


def prog_get_fd_by_id(prog_id: int, open_flags: int = 0) -> int:
    """Open the program with this id; returns an owned fd."""
    return _call(Cmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=prog_id, open_flags=open_flags))


def map_get_fd_by_id(map_id: int, open_flags: int = 0) -> int:
    """Open the map with this id; returns an owned fd."""
    return _call(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=map_id, open_flags=open_flags))


def link_get_fd_by_id(link_id: int, open_flags: int = 0) -> int:
    """Open the link with this id; returns an owned fd."""
    return _call(Cmd.LINK_GET_FD_BY_ID, GetIdAttr(start_id=link_id, open_flags=open_flags))


def btf_get_fd_by_id(btf_id: int, open_flags: int = 0) -> int:
    """Open the BTF object with this id; returns an owned fd."""
    return _call(Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=btf_id, open_flags=open_flags))


# ---------------------------------------------------------------------------
# Attachment
# ---------------------------------------------------------------------------


def prog_attach(
    prog_fd: FdLike,
    target_fd: FdLike,
    attach_type: int,
    flags: int = 0,
    *,
    replace_prog_fd: FdLike = 0,
    relative_fd: FdLike = 0,
    relative_id: int = 0,
    expected_revision: int = 0,
) -> None:
    """Attach a program to a target (cgroup, sockmap, netns, ifindex for tcx...)."""
    attr = _attach_attr(
        prog_fd, target_fd, attach_type, flags, relative_fd, relative_id, expected_revision
    )
    attr.replace_bpf_fd = fdnum(replace_prog_fd)
    _call(Cmd.PROG_ATTACH, attr)


def _attach_attr(
    prog_fd: FdLike,
    target_fd: FdLike,
    attach_type: int,
    flags: int,
    relative_fd: FdLike,
    relative_id: int,
    expected_revision: int,
) -> ProgAttachAttr:
    """The attribute PROG_ATTACH and PROG_DETACH share (a relative id sets ``F_ID``)."""
    return ProgAttachAttr(
        target_fd=fdnum(target_fd),
        attach_bpf_fd=fdnum(prog_fd),
        attach_type=int(attach_type),
        attach_flags=flags | (F_ID if relative_id else 0),
        relative_fd=relative_id or fdnum(relative_fd),
        expected_revision=expected_revision,
    )


def prog_detach(
    target_fd: FdLike,
    attach_type: int,
    prog_fd: FdLike = 0,
    flags: int = 0,
    *,
    relative_fd: FdLike = 0,
    relative_id: int = 0,
    expected_revision: int = 0,
) -> None:
    """Detach a program (or the only one, when ``prog_fd`` is 0) from a target."""
    attr = _attach_attr(
        prog_fd, target_fd, attach_type, flags, relative_fd, relative_id, expected_revision
    )
    _call(Cmd.PROG_DETACH, attr)


@dataclass
class QueryResult:
    """Programs attached at a hook: ids, attach flags, per-program flags, link ids, revision."""

    attach_flags: int
    prog_ids: list[int]
    prog_attach_flags: list[int]
    link_ids: list[int]
    revision: int


def prog_query(target_fd: FdLike, attach_type: int, query_flags: int = 0) -> QueryResult:
    """List the programs attached to ``target_fd`` for ``attach_type``."""
    attr = QueryAttr(
        target_fd=fdnum(target_fd), attach_type=int(attach_type), query_flags=query_flags
    )
    _call(Cmd.PROG_QUERY, attr)
    n = attr.prog_cnt
    if not n:
        return QueryResult(attr.attach_flags, [], [], [], attr.revision)
    for _ in range(4):
        ids, flags, links = (u32 * n)(), (u32 * n)(), (u32 * n)()
        attr = QueryAttr(
            target_fd=fdnum(target_fd),
            attach_type=int(attach_type),
            query_flags=query_flags,
            prog_ids=ctypes.addressof(ids),
            prog_cnt=n,
        )
        if not query_flags & F_QUERY_EFFECTIVE:
            attr.prog_attach_flags = ctypes.addressof(flags)
            attr.link_ids = ctypes.addressof(links)
        res, err = bpf(Cmd.PROG_QUERY, attr)
        if res >= 0:
            break
        if err == errno.ENOSPC:  # more programs attached meanwhile
            n = max(attr.prog_cnt, n * 2)
            continue
        if err == errno.EINVAL and attr.prog_attach_flags:  # older kernel or hook
            attr.prog_attach_flags = attr.link_ids = 0
            attr.prog_cnt = n
            _call(Cmd.PROG_QUERY, attr)
            break
        raise _fail(Cmd.PROG_QUERY, err)
    else:
        raise _fail(Cmd.PROG_QUERY, errno.ENOSPC)
    m = min(attr.prog_cnt, n)
    return QueryResult(
        attr.attach_flags,
        list(ids[:m]),
        list(flags[:m]) if attr.prog_attach_flags else [],
        list(links[:m]) if attr.link_ids else [],
        attr.revision,
    )


def link_create(
    prog_fd: FdLike,
    target: FdLike,
    attach_type: int,
    flags: int = 0,
    *,
    target_btf_id: int = 0,
    cookie: int = 0,
    iter_info: bytes = b"",
    kprobe_syms: Sequence[str] | None = None,
    kprobe_addrs: Sequence[int] | None = None,
    kprobe_cookies: Sequence[int] | None = None,
    kprobe_flags: int = 0,
    relative_fd: FdLike = 0,
    relative_id: int = 0,
    expected_revision: int = 0,
    netfilter: tuple[int, int, int, int] | None = None,
) -> int:
    """Create a link attaching ``prog_fd`` to ``target`` (an fd or an ifindex); returns its fd.

    Per-kind extras: ``cookie`` (perf_event, or tracing with ``target_btf_id``),
    ``iter_info``, ``kprobe_*`` (kprobe_multi), ``relative_*``/``expected_revision``
    (tcx, netkit, cgroup mprog) and ``netfilter=(pf, hooknum, priority, flags)``.
    """
    attr = LinkCreateAttr(
        prog_fd=fdnum(prog_fd), target_fd=fdnum(target), attach_type=int(attach_type), flags=flags
    )
    keep: list[object] = []
    kinds = sum(
        bool(x)
        for x in (
            iter_info,
            kprobe_syms or kprobe_addrs,
            relative_fd or relative_id or expected_revision,
            netfilter,
        )
    )
    if kinds > 1 or (kinds and (cookie or target_btf_id)):
        raise ValueError("link_create: options of different link kinds given together")
    if iter_info:
        ib = _buf(iter_info)
        keep.append(ib)
        attr.iter.iter_info, attr.iter.iter_info_len = _addr(ib), len(iter_info)
    elif kprobe_syms or kprobe_addrs:
        km = attr.kprobe_multi
        km.flags = kprobe_flags
        if kprobe_syms:
            names = [ctypes.create_string_buffer(s.encode()) for s in kprobe_syms]
            arr = (ctypes.c_void_p * len(names))(*(ctypes.addressof(b) for b in names))
            keep += [names, arr]
            km.syms, km.cnt = ctypes.addressof(arr), len(names)
        if kprobe_addrs:
            if kprobe_syms:
                raise ValueError("kprobe_multi takes symbols or addresses, not both")
            addrs = (ctypes.c_ulong * len(kprobe_addrs))(*kprobe_addrs)
            keep.append(addrs)
            km.addrs, km.cnt = ctypes.addressof(addrs), len(kprobe_addrs)
        if kprobe_cookies:
            if len(kprobe_cookies) != km.cnt:
                raise ValueError("kprobe_cookies must match the symbols/addresses in number")
            cks = (u64 * km.cnt)(*kprobe_cookies)
            keep.append(cks)
            km.cookies = ctypes.addressof(cks)
    elif relative_fd or relative_id or expected_revision:
        if relative_id:
            attr.flags |= F_ID
        attr.tcx.relative_fd = relative_id or fdnum(relative_fd)
        attr.tcx.expected_revision = expected_revision
    elif netfilter:
        nf = attr.netfilter
        nf.pf, nf.hooknum, nf.priority, nf.flags = netfilter
    elif int(attach_type) == ATTACH_PERF_EVENT:
        attr.perf_event.bpf_cookie = cookie
    else:
        attr.tracing.target_btf_id = target_btf_id
        attr.tracing.cookie = cookie
    fd = _call(Cmd.LINK_CREATE, attr)
    del keep
    return fd


def link_update(
    link_fd: FdLike, new_prog_fd: FdLike, flags: int = 0, old_prog_fd: FdLike = 0
) -> None:
    """Replace the program behind a link (``old_prog_fd`` with ``F_REPLACE``)."""
    if fdnum(old_prog_fd):
        flags |= F_REPLACE
    _call(
        Cmd.LINK_UPDATE,
        LinkUpdateAttr(
            link_fd=fdnum(link_fd),
            new_prog_fd=fdnum(new_prog_fd),
            flags=flags,
            old_prog_fd=fdnum(old_prog_fd),
        ),
    )


def link_detach(link_fd: FdLike) -> None:
    """Detach a link's program while its fd stays open (``BPF_LINK_DETACH``)."""
    _call(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=fdnum(link_fd)))


def iter_create(link_fd: FdLike, flags: int = 0) -> int:
    """Open a readable iterator fd from an iterator link."""
    return _call(Cmd.ITER_CREATE, IterCreateAttr(link_fd=fdnum(link_fd), flags=flags))


def raw_tracepoint_open(name: str | None, prog_fd: FdLike, cookie: int = 0) -> int:
    """Attach a raw tracepoint program (``name=None`` for BTF ``tp_btf`` programs); returns a link fd."""
    nb = ctypes.create_string_buffer(name.encode()) if name else None
    attr = RawTracepointAttr(name=_addr(nb), prog_fd=fdnum(prog_fd), cookie=cookie)
    return _call(Cmd.RAW_TRACEPOINT_OPEN, attr)


def enable_stats(stats_type: int = STATS_RUN_TIME) -> int:
    """Enable run-time statistics while the returned fd stays open."""
    return _call(Cmd.ENABLE_STATS, EnableStatsAttr(type=stats_type))


# ---------------------------------------------------------------------------
# BTF
# ---------------------------------------------------------------------------


def btf_load(data: bytes, log_level: int = 0, *, log_out: list[str] | None = None) -> int:
    """Load raw BTF; returns its (owned) fd.

    A failure is retried with a log (grown on ENOSPC) and raises :class:`KernelError`
    whose hint ends with the log's last line and whose ``.log`` holds the whole log.
    """
    if not data:
        raise ValueError("empty BTF")
    dbuf = _buf(data)
    level = log_level
    size = _FIRST_LOG_SIZE if level else 0
    log_buf = ctypes.create_string_buffer(size) if size else None
    first_err = 0
    while True:
        attr = BtfLoadAttr(
            btf=_addr(dbuf),
            btf_size=len(data),
            btf_log_level=level,
            btf_log_size=size,
            btf_log_buf=_addr(log_buf),
        )
        fd, err = bpf(Cmd.BTF_LOAD, attr)
        if fd >= 0:
            if log_out is not None and log_buf is not None:
                log_out.append(log_buf.value.decode(errors="replace"))
            return fd
        if err == errno.ENOSPC and log_buf is not None and size < MAX_LOG_SIZE:
            size = min(max(size * 4, attr.btf_log_true_size + 1), MAX_LOG_SIZE)
            log_buf = ctypes.create_string_buffer(size)
            continue
        first_err = first_err or err
        if log_buf is None and err not in (errno.EPERM, errno.E2BIG, errno.ENOMEM, errno.EFAULT):
            level, size = 1, _FIRST_LOG_SIZE
            log_buf = ctypes.create_string_buffer(size)
            continue
        break
    log = log_buf.value.decode(errors="replace") if log_buf is not None else ""
    if log_out is not None and log:
        log_out.append(log)
    err = first_err if err == errno.ENOSPC else err
    hint = hint_for(Cmd.BTF_LOAD, err)
    if log.strip():
        last = parse_verifier_log(log)[0]
        hint = f"invalid BTF: {last}" if err in (errno.EINVAL, errno.EACCES) else f"{hint}; {last}"
    exc = KernelError(err, "BPF_BTF_LOAD", hint)
    exc.log = log  # type: ignore[attr-defined]
    raise exc


__all__ = [
    "ANY",
    "NOEXIST",
    "EXIST",
    "F_LOCK",
    "F_RDONLY",
    "F_WRONLY",
    "F_NO_PREALLOC",
    "F_NUMA_NODE",
    "F_MMAPABLE",
    "F_RDONLY_PROG",
    "F_WRONLY_PROG",
    "F_INNER_MAP",
    "F_STRICT_ALIGNMENT",
    "F_ANY_ALIGNMENT",
    "F_SLEEPABLE",
    "F_XDP_HAS_FRAGS",
    "F_ALLOW_OVERRIDE",
    "F_ALLOW_MULTI",
    "F_REPLACE",
    "F_BEFORE",
    "F_AFTER",
    "F_ID",
    "F_QUERY_EFFECTIVE",
    "F_TEST_RUN_ON_CPU",
    "F_TEST_XDP_LIVE_FRAMES",
    "F_KPROBE_MULTI_RETURN",
    "STATS_RUN_TIME",
    "MAX_LOG_SIZE",
    "OBJ_NAME_LEN",
    "FD",
    "FdLike",
    "fdnum",
    "bpf",
    "syscall_number",
    "hint_for",
    "parse_verifier_log",
    "map_create",
    "map_lookup",
    "map_update",
    "map_delete",
    "map_get_next_key",
    "map_keys",
    "map_lookup_and_delete",
    "map_freeze",
    "map_lookup_batch",
    "map_lookup_and_delete_batch",
    "map_update_batch",
    "map_delete_batch",
    "BatchResult",
    "possible_cpus",
    "prog_load",
    "prog_test_run",
    "TestRunResult",
    "prog_bind_map",
    "obj_pin",
    "obj_get",
    "prog_info",
    "map_info",
    "btf_info",
    "link_info",
    "ProgInfo",
    "MapInfo",
    "BtfInfo",
    "LinkInfo",
    "prog_get_next_id",
    "map_get_next_id",
    "link_get_next_id",
    "btf_get_next_id",
    "prog_ids",
    "map_ids",
    "link_ids",
    "btf_ids",
    "prog_get_fd_by_id",
    "map_get_fd_by_id",
    "link_get_fd_by_id",
    "btf_get_fd_by_id",
    "prog_attach",
    "prog_detach",
    "prog_query",
    "QueryResult",
    "link_create",
    "link_update",
    "link_detach",
    "iter_create",
    "raw_tracepoint_open",
    "enable_stats",
    "btf_load",
]
