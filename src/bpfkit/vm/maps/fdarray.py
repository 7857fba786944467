"""Arrays of references: ``BPF_MAP_TYPE_PROG_ARRAY`` and the base of the other fd arrays.

From Python an element is set from a file descriptor (in the VM: the object's id, or
the object itself) and reads back as the object's id, as the syscall does; slots start
empty. Programs cannot read or write them directly — a prog array is only used by
``bpf_tail_call``, a perf event array by ``bpf_perf_event_output``, an array of maps
by ``bpf_map_lookup_elem`` (which returns the inner map).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

from ...uapi.enums import MapType
from .base import ANY, VMMap, _err

__all__ = ["FdArrayMap", "ProgArrayMap", "MAX_TAIL_CALL_CNT"]

_U32 = struct.Struct("<I")

#: The kernel allows 33 tail calls in a chain (``MAX_TAIL_CALL_CNT``).
MAX_TAIL_CALL_CNT = 33


class FdArrayMap(VMMap):
    """A sparse array of object references keyed by ``u32`` index."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.slots: list[object | None] = [None] * self.max_entries

    def check(self) -> None:
        super().check()
        if self.key_size != 4 or self.value_size != 4:
            raise _err(
                errno.EINVAL,
                "map_create",
                f"{self.type.name.lower()} needs key_size 4 and value_size 4",
            )

    # -- what a slot may hold; subclasses narrow it --
    def accept(self, obj: object) -> bool:
        return True

    def resolve(self, value: object) -> object:
        """The object a syscall value (fd bytes, an int, or the object) stands for."""
        if isinstance(value, bytes | bytearray | memoryview):
            value = _U32.unpack(bytes(value))[0]
        if isinstance(value, int):
            obj = self.ctx.resolve(value)
            if obj is None:
                raise _err(errno.EBADF, "map_update_elem", f"no object with fd {value}")
        else:
            obj = value
        if not self.accept(obj):
            raise _err(
                errno.EINVAL,
                "map_update_elem",
                f"{type(obj).__name__} cannot go into a {self.type.name.lower()}",
            )
        return obj

    @staticmethod
    def sys_value(obj: object) -> int:
        return getattr(obj, "id", 0)

    def _index(self, key: bytes, command: str) -> int:
        return _U32.unpack(self._check_key(key, command))[0]

    # -- syscall face --
    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        idx = self._index(key, "map_lookup_elem")
        if idx >= self.max_entries or self.slots[idx] is None:
            raise _err(errno.ENOENT, "map_lookup_elem")
        return _U32.pack(self.sys_value(self.slots[idx]))

    def update(self, key: bytes, value: object, flags: int = ANY) -> None:
        self._check_write("map_update_elem")
        if flags != ANY:
            raise _err(errno.EINVAL, "map_update_elem", "fd arrays take BPF_ANY only")
        idx = self._index(key, "map_update_elem")
        if idx >= self.max_entries:
            raise _err(errno.E2BIG, "map_update_elem", f"index {idx} >= {self.max_entries}")
        self.slots[idx] = self.resolve(value)

    def delete(self, key: bytes) -> None:
        self._check_write("map_delete_elem")
        idx = self._index(key, "map_delete_elem")
        if idx >= self.max_entries:
            raise _err(errno.E2BIG, "map_delete_elem")
        if self.slots[idx] is None:
            raise _err(errno.ENOENT, "map_delete_elem")
        self.slots[idx] = None

    def get_next_key(self, key: bytes | None) -> bytes:
        idx = None if key is None else self._index(key, "map_get_next_key")
        if idx is None or idx >= self.max_entries:
            return _U32.pack(0)
        if idx == self.max_entries - 1:
            raise _err(errno.ENOENT, "map_get_next_key")
        return _U32.pack(idx + 1)

    def keys(self) -> Iterator[bytes]:
        return (_U32.pack(i) for i in range(self.max_entries))

    def __len__(self) -> int:
        return self.max_entries

    def get(self, index: int) -> object | None:
        """The object in slot ``index`` (``None`` if empty or out of range)."""
        return self.slots[index] if 0 <= index < self.max_entries else None

    # -- program face --
    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        return -errno.EINVAL

    def prog_delete(self, key_addr: int) -> int:
        return -errno.EINVAL


class ProgArrayMap(FdArrayMap):
    """``BPF_MAP_TYPE_PROG_ARRAY``: the targets of ``bpf_tail_call``."""

    type = MapType.PROG_ARRAY

    def accept(self, obj: object) -> bool:
        return hasattr(obj, "prog_type") and hasattr(obj, "execute")
