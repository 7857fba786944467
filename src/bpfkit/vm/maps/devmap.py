"""Redirect targets: ``DEVMAP``, ``DEVMAP_HASH``, ``CPUMAP`` and ``XSKMAP``.

The VM has no devices, CPUs to steer to or AF_XDP sockets; these maps hold the values
userspace stores (an ifindex, ``struct bpf_devmap_val``, a queue size, a socket fd) so
``bpf_redirect_map`` can tell a present key from an absent one and report where a packet
would have gone.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

from ...uapi.enums import MapType
from .base import ANY, EXIST, NOEXIST, VMMap, _err
from .hash import HashMap

__all__ = ["DevMap", "DevMapHash", "CpuMap", "XskMap"]

_U32 = struct.Struct("<I")


class _SparseArray(VMMap):
    """An array whose slots start empty; values copied in and out as bytes."""

    value_sizes: tuple[int, ...] = (4, 8)

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.values: dict[int, bytes] = {}

    def check(self) -> None:
        super().check()
        if self.key_size != 4 or self.value_size not in self.value_sizes:
            raise _err(
                errno.EINVAL,
                "map_create",
                f"{self.type.name.lower()} needs key_size 4 and value_size in {self.value_sizes}",
            )

    def _index(self, key: bytes, command: str) -> int:
        return _U32.unpack(self._check_key(key, command))[0]

    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        v = self.values.get(self._index(key, "map_lookup_elem"))
        if v is None:
            raise _err(errno.ENOENT, "map_lookup_elem")
        return v

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        self._check_write("map_update_elem")
        if flags & ~3 or flags & 3 == 3:
            raise _err(errno.EINVAL, "map_update_elem")
        idx = self._index(key, "map_update_elem")
        value = self._check_value(value, "map_update_elem")
        if idx >= self.max_entries:
            raise _err(errno.E2BIG, "map_update_elem")
        if flags == NOEXIST:
            raise _err(errno.EEXIST, "map_update_elem")
        if flags == EXIST and idx not in self.values:
            raise _err(errno.ENOENT, "map_update_elem")
        if int.from_bytes(value[:4], "little") == 0:
            self.values.pop(idx, None)
        else:
            self.values[idx] = value

    def delete(self, key: bytes) -> None:
        idx = self._index(key, "map_delete_elem")
        if idx >= self.max_entries:
            raise _err(errno.EINVAL, "map_delete_elem")
        self.values.pop(idx, None)

    def get_next_key(self, key: bytes | None) -> bytes:
        idx = None if key is None else self._index(key, "map_get_next_key")
        if idx is None or idx >= self.max_entries:
            return _U32.pack(0)
        if idx == self.max_entries - 1:
            raise _err(errno.ENOENT, "map_get_next_key")
        return _U32.pack(idx + 1)

    def keys(self) -> Iterator[bytes]:
        return (_U32.pack(i) for i in range(self.max_entries))

    def target(self, key: int) -> bytes | None:
        """The value at ``key`` if a redirect there would succeed."""
        return self.values.get(key)


class DevMap(_SparseArray):
    """``BPF_MAP_TYPE_DEVMAP``: ifindex (or ``struct bpf_devmap_val``) by index."""

    type = MapType.DEVMAP


class CpuMap(_SparseArray):
    """``BPF_MAP_TYPE_CPUMAP``: queue size (or ``struct bpf_cpumap_val``) by CPU."""

    type = MapType.CPUMAP


class XskMap(_SparseArray):
    """``BPF_MAP_TYPE_XSKMAP``: AF_XDP socket fds by queue index."""

    type = MapType.XSKMAP
    value_sizes = (4,)


class DevMapHash(HashMap):
    """``BPF_MAP_TYPE_DEVMAP_HASH``: ifindex (or ``struct bpf_devmap_val``) by any u32 key."""

    type = MapType.DEVMAP_HASH

    def target(self, key: int) -> bytes | None:
        slot = self.index.get(_U32.pack(key & 0xFFFFFFFF))
        return None if slot is None else self._read(slot)

    def prog_lookup(self, key_addr: int) -> int:
        return 0

    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        return -errno.EINVAL
