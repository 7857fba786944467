"""Maps of maps: ``BPF_MAP_TYPE_ARRAY_OF_MAPS`` and ``HASH_OF_MAPS``.

Values are inner maps. From Python an element is set from a map (or its fd/id) and
reads back as the inner map's id; a program's ``bpf_map_lookup_elem`` returns the inner
map itself, which it can pass to the map helpers. Every inner map must match the
template given at creation (type, key and value size, flags, and ``max_entries`` unless
the template has ``BPF_F_INNER_MAP``), or the update fails with ``EINVAL``.
"""

from __future__ import annotations

import errno
import struct

from ...uapi.enums import MapType
from .base import ANY, F_INNER_MAP, VMMap, _err
from .fdarray import FdArrayMap
from .hash import HashMap

__all__ = ["ArrayOfMapsMap", "HashOfMapsMap", "inner_matches"]

_U32 = struct.Struct("<I")


def inner_matches(template: object | None, obj: object) -> bool:
    """Whether map ``obj`` may be stored in a map of maps with ``template``."""
    if not isinstance(obj, VMMap):
        return False
    if template is None:
        return True
    ttype = int(getattr(template, "type", 0))
    tflags = int(getattr(template, "flags", 0))
    if ttype != int(obj.type) or tflags & ~F_INNER_MAP != obj.flags & ~F_INNER_MAP:
        return False
    if getattr(template, "key_size", 0) != obj.key_size:
        return False
    if getattr(template, "value_size", 0) != obj.value_size:
        return False
    return bool(tflags & F_INNER_MAP) or getattr(template, "max_entries", 0) == obj.max_entries


class ArrayOfMapsMap(FdArrayMap):
    """``BPF_MAP_TYPE_ARRAY_OF_MAPS``."""

    type = MapType.ARRAY_OF_MAPS

    def accept(self, obj: object) -> bool:
        return inner_matches(self.inner, obj)

    def prog_lookup(self, key_addr: int) -> int:
        idx = self.space.load(key_addr, 4)
        obj = self.slots[idx] if idx < self.max_entries else None
        return obj.addr if isinstance(obj, VMMap) else 0


class HashOfMapsMap(HashMap):
    """``BPF_MAP_TYPE_HASH_OF_MAPS``."""

    type = MapType.HASH_OF_MAPS

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.inner_maps: dict[bytes, VMMap] = {}

    def check(self) -> None:
        super().check()
        if self.value_size != 4:
            raise _err(errno.EINVAL, "map_create", "hash of maps needs value_size 4")

    def update(self, key: bytes, value: object, flags: int = ANY) -> None:
        if isinstance(value, bytes | bytearray | memoryview):
            value = _U32.unpack(bytes(value))[0]
        obj = self.ctx.resolve(value) if isinstance(value, int) else value
        if obj is None:
            raise _err(errno.EBADF, "map_update_elem", f"no map with fd {value}")
        if not inner_matches(self.inner, obj):
            raise _err(errno.EINVAL, "map_update_elem", "inner map does not match the template")
        key = self._check_key(key, "map_update_elem")
        super().update(key, _U32.pack(obj.id), flags)  # type: ignore[attr-defined]
        self.inner_maps[key] = obj  # type: ignore[assignment]

    def _remove(self, key: bytes) -> bool:
        self.inner_maps.pop(key, None)
        return super()._remove(key)

    def prog_lookup(self, key_addr: int) -> int:
        obj = self.inner_maps.get(self.space.read(key_addr, self.key_size))
        return 0 if obj is None else obj.addr

    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        return -errno.EINVAL
