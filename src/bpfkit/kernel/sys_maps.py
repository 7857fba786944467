"""Map commands: create, element operations, batches.

Part of :mod:`bpfkit.kernel.sys` (which re-exports every public name).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..uapi.enums import Cmd
from .sys_attrs import MapBatchAttr, MapCreateAttr, MapElemAttr
from .sys_core import ANY, F_NUMA_NODE, FdLike, _addr, _buf, _call, _fail, _obj_name, bpf, fdnum

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
    from .map_memory import check_map_memory

    check_map_memory(map_type, key_size, value_size, max_entries, flags, name)  # not the OOM
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
