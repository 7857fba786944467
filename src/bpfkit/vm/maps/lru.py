"""LRU hash maps: ``BPF_MAP_TYPE_LRU_HASH`` and ``LRU_PERCPU_HASH``.

Like a hash map, but an insert into a full map evicts the least recently used element
instead of failing with ``E2BIG``. An element is *used* when it is inserted or updated,
or looked up by a program (lookups from Python, like the kernel's syscall lookups, do
not count). The kernel's LRU is approximate (per-CPU lists, a reference bit); this one
is exact, which is one of the orders the kernel may produce.
"""

from __future__ import annotations

from collections import OrderedDict

from ...uapi.enums import MapType
from .hash import HashMap

__all__ = ["LruHashMap", "LruPercpuHashMap"]


class LruHashMap(HashMap):
    """``BPF_MAP_TYPE_LRU_HASH``."""

    type = MapType.LRU_HASH

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self.evictions = 0

    def _new_slot(self, key: bytes) -> int | None:
        slot = self._insert(key)
        if slot is None and self._recent:
            victim, _ = self._recent.popitem(last=False)
            self._remove(victim)
            self.evictions += 1
            slot = self._insert(key)
        if slot is not None:
            self._recent[key] = None
        return slot

    def _touch(self, key: bytes) -> None:
        rec = self._recent
        if key in rec:
            rec.move_to_end(key)

    def _remove(self, key: bytes) -> bool:
        self._recent.pop(key, None)
        return super()._remove(key)


class LruPercpuHashMap(LruHashMap):
    """``BPF_MAP_TYPE_LRU_PERCPU_HASH``."""

    type = MapType.LRU_PERCPU_HASH
    percpu = True
