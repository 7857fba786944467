"""LRU hash maps: ``BPF_MAP_TYPE_LRU_HASH`` and ``LRU_PERCPU_HASH``.

Like a hash map, but an insert into a full map evicts the least recently used element
instead of failing with ``E2BIG``. An element is *used* when it is inserted or updated,
or looked up by a program (lookups from Python, like the kernel's syscall lookups, do
not count). The kernel's LRU is approximate (per-CPU lists, a reference bit); this one
is exact, which is one of the orders the kernel may produce. The order is one doubly
linked list over the map's slots in native memory (:class:`~.native.HashState`), which
the JIT's native helpers follow too (``HashMap`` implements the policy when ``lru``).
"""

from __future__ import annotations

from ...uapi.enums import MapType
from .hash import HashMap

__all__ = ["LruHashMap", "LruPercpuHashMap"]


class LruHashMap(HashMap):
    """``BPF_MAP_TYPE_LRU_HASH``."""

    type = MapType.LRU_HASH
    lru = True


class LruPercpuHashMap(LruHashMap):
    """``BPF_MAP_TYPE_LRU_PERCPU_HASH``."""

    type = MapType.LRU_PERCPU_HASH
    percpu = True
