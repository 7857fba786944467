"""Keyless maps: ``BPF_MAP_TYPE_QUEUE`` (FIFO) and ``BPF_MAP_TYPE_STACK`` (LIFO).

Values are copied in and out (no pointers). A push into a full map fails with ``E2BIG``
unless ``BPF_EXIST`` asks to overwrite the oldest element; pop and peek of an empty
map give ``ENOENT``. From Python, an update without a key pushes, a lookup peeks and a
lookup-and-delete pops, as with the syscall.
"""

from __future__ import annotations

import errno
from collections import deque

from ...uapi.enums import MapType
from .base import ANY, EXIST, VMMap, _err

__all__ = ["QueueMap", "StackMap"]


class QueueMap(VMMap):
    """``BPF_MAP_TYPE_QUEUE``."""

    type = MapType.QUEUE
    has_keys = False
    lifo = False

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.items: deque[bytes] = deque()

    def check(self) -> None:
        super().check()
        if self.key_size != 0:
            raise _err(errno.EINVAL, "map_create", "queue and stack maps need key_size 0")

    # ---- core ---------------------------------------------------------------------------
    def _push(self, value: bytes, flags: int) -> int:
        if flags & ~EXIST:
            return errno.EINVAL
        if len(self.items) >= self.max_entries:
            if not flags & EXIST:
                return errno.E2BIG
            self.items.popleft()  # the oldest goes, for both flavours
        self.items.append(value)
        return 0

    def _take(self, remove: bool) -> bytes | None:
        if not self.items:
            return None
        if self.lifo:
            return self.items.pop() if remove else self.items[-1]
        return self.items.popleft() if remove else self.items[0]

    # ---- syscall face -------------------------------------------------------------------
    def push(self, value: bytes, flags: int = ANY) -> None:
        self._check_write("map_update_elem")
        value = self._check_value(value, "map_update_elem")
        err = self._push(value, flags)
        if err:
            raise _err(err, "map_update_elem")

    def update(self, key: bytes | None, value: bytes, flags: int = ANY) -> None:
        if key:
            raise _err(errno.EINVAL, "map_update_elem", "queue/stack maps take no key")
        self.push(value, flags)

    def peek(self) -> bytes:
        v = self._take(False)
        if v is None:
            raise _err(errno.ENOENT, "map_lookup_elem", "empty")
        return v

    def pop(self) -> bytes:
        self._check_write("map_lookup_and_delete_elem")
        v = self._take(True)
        if v is None:
            raise _err(errno.ENOENT, "map_lookup_and_delete_elem", "empty")
        return v

    def lookup(self, key: bytes | None = None, flags: int = 0) -> bytes:
        return self.peek()

    def lookup_and_delete(self, key: bytes | None = None, flags: int = 0) -> bytes:
        return self.pop()

    def __len__(self) -> int:
        return len(self.items)

    def values(self) -> list[bytes]:
        """The elements in pop order (no side effects)."""
        return list(reversed(self.items)) if self.lifo else list(self.items)

    # ---- program face -------------------------------------------------------------------
    def prog_push(self, value_addr: int, flags: int) -> int:
        return -self._push(self.space.read(value_addr, self.value_size), flags)

    def prog_pop(self, value_addr: int) -> int:
        return self._copy_out(value_addr, True)

    def prog_peek(self, value_addr: int) -> int:
        return self._copy_out(value_addr, False)

    def _copy_out(self, value_addr: int, remove: bool) -> int:
        v = self._take(False)
        if v is None:
            self.space.write(value_addr, bytes(self.value_size))
            return -errno.ENOENT
        self.space.write(value_addr, v)
        if remove:
            self._take(True)
        return 0

    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        return -errno.EINVAL

    def prog_lookup(self, key_addr: int) -> int:
        return 0


class StackMap(QueueMap):
    """``BPF_MAP_TYPE_STACK``."""

    type = MapType.STACK
    lifo = True
