"""How much kernel memory a map needs at creation, and a refusal before the OOM killer.

``BPF_MAP_CREATE`` allocates a preallocated map whole, in kernel memory that no
``RLIMIT`` or memory cgroup bounds here: an array of 2^31 8-byte values (16 GiB, less
than this machine's RAM, so ``vmalloc`` does not refuse it up front) takes the memory
other processes live on, and the OOM killer starts killing them. :func:`check_map_memory`
refuses such a map first, with ``ENOMEM`` and the numbers, when even a lower bound of
what the kernel will allocate exceeds three quarters of ``MemAvailable``.

:func:`map_memory` is that lower bound, from the kernel's own allocation formulas
(``array_map_alloc``, ``htab_map_alloc``'s element size and bucket table, ...); the
kernel reports its estimate of a map's memory as ``memlock`` in the map's fdinfo, and
the tests hold this bound to it.
"""

from __future__ import annotations

import errno

from ..errors import KernelError
from ..uapi.enums import MapType
from .sys_core import F_NO_PREALLOC

__all__ = ["map_memory", "check_map_memory", "mem_available"]

HTAB_ELEM = 48  # sizeof(struct htab_elem)
BUCKET = 16  # sizeof(struct bucket)


def _r8(n: int) -> int:
    return (n + 7) & ~7


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def map_memory(
    map_type: int, key_size: int, value_size: int, max_entries: int, flags: int, ncpus: int
) -> int:
    """A lower bound of the bytes the kernel allocates when it creates this map (0 for
    types allocated on demand or not modelled)."""
    try:
        t = MapType(map_type)
    except ValueError:
        return 0
    n = max(max_entries, 0)
    if t in (MapType.ARRAY, MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.CGROUP_ARRAY):
        return n * _r8(value_size)
    if t == MapType.PERCPU_ARRAY:
        return n * (8 + _r8(value_size) * ncpus)
    if t in (MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH):
        buckets = _pow2(n) * BUCKET
        if flags & F_NO_PREALLOC and t in (MapType.HASH, MapType.PERCPU_HASH):
            return buckets
        percpu = t in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
        elem = HTAB_ELEM + _r8(key_size) + (8 if percpu else _r8(value_size))
        return buckets + n * (elem + (_r8(value_size) * ncpus if percpu else 0))
    if t == MapType.RINGBUF:
        return n
    if t in (MapType.QUEUE, MapType.STACK, MapType.STACK_TRACE):
        return n * value_size
    return 0


def mem_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_map_memory(
    map_type: int, key_size: int, value_size: int, max_entries: int, flags: int, name: str = ""
) -> None:
    """``ENOMEM`` (a :class:`KernelError`) before ``BPF_MAP_CREATE`` when the map would
    take more than three quarters of the memory available."""
    from .sys_maps import possible_cpus

    need = map_memory(map_type, key_size, value_size, max_entries, flags, possible_cpus())
    avail = mem_available()
    if avail is None or need <= avail * 3 // 4:
        return
    what = f"map {name!r}" if name else "the map"
    raise KernelError(
        errno.ENOMEM,
        "BPF_MAP_CREATE",
        f"{what} (max_entries {max_entries}) needs at least {need / 2**30:.1f} GiB of kernel "
        f"memory; {avail / 2**30:.1f} GiB is available (bpfkit refuses more than 3/4 of it "
        "rather than let the OOM killer choose)",
    )
