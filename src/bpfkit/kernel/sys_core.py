"""The ``bpf()`` system call itself: constants, the call, error hints, owned descriptors.

Part of :mod:`bpfkit.kernel.sys` (which re-exports every public name).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from enum import IntEnum
from typing import Protocol, Self

from ..errors import KernelError, NotSupported
from ..uapi.enums import Cmd

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
