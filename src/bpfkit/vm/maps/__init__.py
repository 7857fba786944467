"""The VM's maps, one module per family, with the kernel's semantics.

:func:`create_map` makes a map of any supported type from its attributes; the classes
are in ``MAP_CLASSES`` by :class:`~bpfkit.uapi.enums.MapType`.
"""

from __future__ import annotations

import errno

from ...uapi.enums import MapType
from .array import ArrayMap, PercpuArrayMap
from .base import (
    ANY,
    EXIST,
    F_NO_PREALLOC,
    F_RDONLY_PROG,
    NOEXIST,
    MapContext,
    MapError,
    ValueStore,
    VMMap,
)
from .bloom import BloomFilterMap
from .cgroup_array import CgroupArrayMap
from .devmap import CpuMap, DevMap, DevMapHash, XskMap
from .fdarray import MAX_TAIL_CALL_CNT, FdArrayMap, ProgArrayMap
from .hash import HashMap, PercpuHashMap
from .lpm_trie import LpmTrieMap
from .lru import LruHashMap, LruPercpuHashMap
from .of_maps import ArrayOfMapsMap, HashOfMapsMap
from .perf_event import PerfEventArrayMap, PerfRecord
from .queue import QueueMap, StackMap
from .ringbuf import RingBufMap
from .stack_trace import StackTraceMap

__all__ = [
    "ANY",
    "NOEXIST",
    "EXIST",
    "F_NO_PREALLOC",
    "F_RDONLY_PROG",
    "MAX_TAIL_CALL_CNT",
    "MapContext",
    "MapError",
    "ValueStore",
    "VMMap",
    "MAP_CLASSES",
    "create_map",
    "ArrayMap",
    "PercpuArrayMap",
    "HashMap",
    "PercpuHashMap",
    "LruHashMap",
    "LruPercpuHashMap",
    "ProgArrayMap",
    "FdArrayMap",
    "PerfEventArrayMap",
    "PerfRecord",
    "RingBufMap",
    "QueueMap",
    "StackMap",
    "LpmTrieMap",
    "BloomFilterMap",
    "ArrayOfMapsMap",
    "HashOfMapsMap",
    "StackTraceMap",
    "CgroupArrayMap",
    "DevMap",
    "DevMapHash",
    "CpuMap",
    "XskMap",
]

MAP_CLASSES: dict[MapType, type[VMMap]] = {
    cls.type: cls
    for cls in (
        ArrayMap,
        PercpuArrayMap,
        HashMap,
        PercpuHashMap,
        LruHashMap,
        LruPercpuHashMap,
        ProgArrayMap,
        PerfEventArrayMap,
        RingBufMap,
        QueueMap,
        StackMap,
        LpmTrieMap,
        BloomFilterMap,
        ArrayOfMapsMap,
        HashOfMapsMap,
        StackTraceMap,
        CgroupArrayMap,
        DevMap,
        DevMapHash,
        CpuMap,
        XskMap,
    )
}


def create_map(
    map_type: MapType | int,
    key_size: int,
    value_size: int,
    max_entries: int,
    flags: int = 0,
    *,
    name: str = "",
    ctx: MapContext | None = None,
    map_extra: int = 0,
    inner: object | None = None,
    **kw,
) -> VMMap:
    """``BPF_MAP_CREATE`` in the VM: a map of ``map_type`` (``MapError`` like the kernel)."""
    try:
        cls = MAP_CLASSES[MapType(map_type)]
    except (ValueError, KeyError):
        raise MapError(
            errno.EINVAL, "map_create", f"map type {map_type} is not supported by the VM"
        ) from None
    return cls(
        name,
        key_size,
        value_size,
        max_entries,
        flags,
        ctx=ctx,
        map_extra=map_extra,
        inner=inner,
        **kw,
    )
