"""What every VM map shares: the kernel's flags and errors, value storage, the two faces.

A map has two faces with the kernel's semantics:

- the *syscall* face used from Python (``lookup``, ``update``, ``delete``,
  ``get_next_key``, ``lookup_and_delete``, ``push``/``pop``/``peek``, ``freeze``), on
  bytes, raising :class:`MapError` with the kernel's errno;
- the *program* face used by helpers (``prog_lookup``, ``prog_update``, ...), on
  addresses in the run's address space, returning what the helper returns (a pointer or
  0, ``0`` or ``-errno``).

Values live in flat native memory (:class:`ValueStore`): a pointer handed to a program
is the address of a :class:`~bpfkit.vm.memory.Region` registered in the address space
for as long as the element lives; deleting the element unregisters it.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator
from dataclasses import dataclass, field

from ...errors import KernelError
from ...uapi.enums import MapType
from ..memory import READ, RW, WRITE, AddressSpace, Region
from .native import spare_slots

__all__ = [
    "ANY",
    "NOEXIST",
    "EXIST",
    "F_LOCK",
    "F_NO_PREALLOC",
    "F_RDONLY",
    "F_WRONLY",
    "F_RDONLY_PROG",
    "F_WRONLY_PROG",
    "F_MMAPABLE",
    "MapError",
    "MapContext",
    "VMMap",
    "ValueStore",
    "round8",
]

# update flags (enum in linux/bpf.h)
ANY, NOEXIST, EXIST, F_LOCK = 0, 1, 2, 4
# map_flags
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
F_INNER_MAP = 1 << 12

MAX_BPF_STACK = 512


def round8(n: int) -> int:
    return (n + 7) & ~7


class MapError(KernelError):
    """A map operation failed the way the kernel's would: ``errno`` says why."""

    def __init__(self, err: int, command: str, hint: str = ""):
        super().__init__(err, command, hint)


@dataclass
class MapContext:
    """What the maps of one runtime share: the address space, CPU count, current CPU."""

    space: AddressSpace = field(default_factory=AddressSpace)
    ncpus: int = 1
    cpu: int = 0
    next_id: int = 1
    #: every map and program of the runtime by id (the VM's stand-in for fds)
    objects: dict[int, object] = field(default_factory=dict)

    def new_id(self, obj: object | None = None) -> int:
        """A fresh id (also usable as the object's fd); registers ``obj`` under it."""
        i = self.next_id
        self.next_id += 1
        if obj is not None:
            self.objects[i] = obj
        return i

    def resolve(self, fd: int) -> object | None:
        """The map or program with id/fd ``fd``."""
        return self.objects.get(fd)


class ValueStore:
    """Fixed-size elements in native memory, allocated in chunks, with lazy regions.

    ``alloc`` hands out a slot (or ``None`` when ``capacity`` are in use); ``view`` is
    the element's bytes; ``region(slot, part)`` registers (once) and returns the Region
    a program's pointer points into — ``part`` selects one CPU's share of a per-CPU
    element, each ``part_size`` bytes of which ``value_size`` are visible.
    """

    CHUNK = 1024

    def __init__(
        self,
        name: str,
        value_size: int,
        capacity: int,
        space: AddressSpace,
        *,
        parts: int = 1,
        perms: int = RW,
    ) -> None:
        self.name = name
        self.value_size = value_size
        self.part_size = round8(value_size)
        self.parts = parts
        self.elem_size = self.part_size * parts
        self.capacity = capacity
        self.space = space
        self.perms = perms
        self.chunk = min(self.CHUNK, max(capacity, 1))
        self._chunks: list[ctypes.Array] = []
        self._mvs: list[memoryview] = []
        self._free: list[int] = []
        #: ``_free[:_qbase]`` were freed before the current run, the rest during it
        #: (quarantined: not reused in the run while older or spare slots are left)
        self._qbase = 0
        self._fresh = 0
        self.slotcap = capacity + spare_slots(capacity)
        self.used = 0
        self._regions: dict[int, Region] = {}

    def alloc(self) -> int | None:
        """A zeroed slot, or ``None`` when the store is full: one freed before this run,
        else a fresh one, else the newest quarantined one (see ``HashState.take``)."""
        if self.used >= self.capacity:
            return None
        free = self._free
        if self._qbase or self._fresh >= self.slotcap:
            if self._qbase:
                q = self._qbase
                slot = free[q - 1]
                free[q - 1] = free[-1]
                free.pop()
                self._qbase = q - 1
            else:
                slot = free.pop()
            c, o = divmod(slot, self.chunk)
            off = o * self.elem_size
            self._mvs[c][off : off + self.elem_size] = bytes(self.elem_size)
        else:
            slot = self._fresh
            self._fresh += 1
            if slot // self.chunk >= len(self._chunks):
                buf = (ctypes.c_ubyte * (self.chunk * self.elem_size))()
                self._chunks.append(buf)
                self._mvs.append(memoryview(buf).cast("B"))
        self.used += 1
        return slot

    def free(self, slot: int) -> None:
        """Release ``slot``: its regions are unregistered (program pointers die)."""
        for part in range(self.parts):
            r = self._regions.pop(slot * self.parts + part, None)
            if r is not None:
                self.space.remove(r)
        self._free.append(slot)
        self.used -= 1

    def settle(self) -> None:
        """A run starts: slots freed so far may be reused."""
        self._qbase = len(self._free)

    def view(self, slot: int) -> memoryview:
        """The whole element (all parts) as a writable memoryview."""
        c, o = divmod(slot, self.chunk)
        off = o * self.elem_size
        return self._mvs[c][off : off + self.elem_size]

    def part(self, slot: int, part: int) -> memoryview:
        """One part's ``value_size`` bytes."""
        c, o = divmod(slot, self.chunk)
        off = o * self.elem_size + part * self.part_size
        return self._mvs[c][off : off + self.value_size]

    def addr(self, slot: int, part: int = 0) -> int:
        c, o = divmod(slot, self.chunk)
        return ctypes.addressof(self._chunks[c]) + o * self.elem_size + part * self.part_size

    def region(self, slot: int, part: int = 0) -> Region:
        """The registered Region of one part of ``slot`` (created on first use)."""
        key = slot * self.parts + part
        r = self._regions.get(key)
        if r is None:
            c, o = divmod(slot, self.chunk)
            off = o * self.elem_size + part * self.part_size
            arr = (ctypes.c_ubyte * self.value_size).from_buffer(self._chunks[c], off)
            r = Region(
                f"{self.name}[{slot}]" + (f"@cpu{part}" if self.parts > 1 else ""), arr, self.perms
            )
            self.space.add(r)
            self._regions[key] = r
        return r

    def set_perms(self, perms: int) -> None:
        self.perms = perms
        for r in self._regions.values():
            r.perms = perms

    def close(self) -> None:
        for r in self._regions.values():
            self.space.remove(r)
        self._regions.clear()


def _err(e: int, command: str, hint: str = "") -> MapError:
    return MapError(e, command, hint)


class VMMap:
    """Base of every VM map: attributes, attribute checks, and the default operations.

    Subclasses implement the operations their map type supports; everything else fails
    as the kernel fails it (``EINVAL`` or ``EOPNOTSUPP`` from the syscall face,
    ``-EINVAL``/``-EOPNOTSUPP`` from the program face).
    """

    type: MapType = MapType.UNSPEC
    percpu = False
    #: whether the syscall face has keys (queue, stack, bloom filter, ring buffer: no)
    has_keys = True

    def __init__(
        self,
        name: str,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int = 0,
        *,
        ctx: MapContext | None = None,
        map_extra: int = 0,
        inner: VMMap | None = None,
        btf_key_type: int | None = None,
        btf_value_type: int | None = None,
    ) -> None:
        self.name = name
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.map_extra = map_extra
        self.inner = inner
        self.ctx = ctx or MapContext()
        self.space = self.ctx.space
        self.btf_key_type = btf_key_type
        self.btf_value_type = btf_value_type
        self.check()
        self.id = self.ctx.new_id(self)
        self.frozen = False
        #: offset of the value's ``struct bpf_spin_lock`` (from BTF), if it has one
        self.spin_lock_off: int | None = None
        # a unique, unreadable address standing for ``struct bpf_map *``
        self.handle = self.space.add(Region.alloc(f"map:{name}", 64, perms=0))
        self.addr = self.handle.base
        self.closed = False

    # ---- creation checks (map_create's EINVAL/E2BIG) --------------------------------
    def check(self) -> None:
        """Validate the attributes as ``BPF_MAP_CREATE`` would."""
        if self.max_entries <= 0 or self.key_size < 0 or self.value_size <= 0:
            raise _err(
                errno.EINVAL,
                "map_create",
                f"{self.type.name.lower()} needs key_size > 0, value_size > 0 and max_entries > 0",
            )
        if self.flags & F_RDONLY_PROG and self.flags & F_WRONLY_PROG:
            raise _err(
                errno.EINVAL,
                "map_create",
                "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG exclude each other",
            )

    @property
    def value_perms(self) -> int:
        """What programs may do with values: ``BPF_F_RDONLY_PROG`` makes them read-only,
        ``BPF_F_WRONLY_PROG`` write-only (the kernel's ``bpf_map_flags_to_cap``)."""
        if self.flags & F_RDONLY_PROG:
            return READ
        if self.flags & F_WRONLY_PROG:
            return WRITE
        return RW

    @property
    def prog_perms(self) -> int:
        """What programs may do with this map's values now (``value_perms``, or less:
        ``.rodata`` is read-only to programs once frozen)."""
        return self.value_perms

    @property
    def syscall_value_size(self) -> int:
        """Bytes a syscall lookup returns: per-CPU maps give one 8-aligned value per CPU."""
        if self.percpu:
            return round8(self.value_size) * self.ctx.ncpus
        return self.value_size

    def _check_key(self, key: bytes, command: str) -> bytes:
        key = bytes(key)
        if len(key) != self.key_size:
            raise _err(errno.EINVAL, command, f"key must be {self.key_size} bytes, got {len(key)}")
        return key

    def _check_value(self, value: bytes, command: str) -> bytes:
        value = bytes(value)
        want = self.syscall_value_size
        if self.percpu and len(value) == self.value_size and self.ctx.ncpus > 1:
            # one value for every CPU
            value = (value + bytes(round8(self.value_size) - self.value_size)) * self.ctx.ncpus
        if len(value) != want:
            raise _err(errno.EINVAL, command, f"value must be {want} bytes, got {len(value)}")
        return value

    def _check_write(self, command: str) -> None:
        if self.frozen or self.flags & F_RDONLY:
            raise _err(errno.EPERM, command, "the map is frozen or read-only for syscalls")

    def _check_flags(
        self, flags: int, command: str, allowed: int = NOEXIST | EXIST | F_LOCK
    ) -> None:
        if flags & ~allowed or (flags & 3) == 3:
            raise _err(errno.EINVAL, command, f"bad flags {flags:#x}")
        if flags & F_LOCK and self.spin_lock_off is None:
            raise _err(errno.EINVAL, command, "BPF_F_LOCK on a map without a bpf_spin_lock")

    # ---- syscall face ---------------------------------------------------------------
    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``: the value (``ENOENT`` if absent)."""
        raise _err(errno.EINVAL, "map_lookup_elem", f"not supported by {self.type.name}")

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        """``BPF_MAP_UPDATE_ELEM`` with ``BPF_ANY``/``BPF_NOEXIST``/``BPF_EXIST``."""
        raise _err(errno.EINVAL, "map_update_elem", f"not supported by {self.type.name}")

    def delete(self, key: bytes) -> None:
        """``BPF_MAP_DELETE_ELEM`` (``ENOENT`` if absent)."""
        raise _err(errno.EINVAL, "map_delete_elem", f"not supported by {self.type.name}")

    def get_next_key(self, key: bytes | None) -> bytes:
        """``BPF_MAP_GET_NEXT_KEY``: the key after ``key`` (first if ``None``/absent)."""
        raise _err(errno.EINVAL, "map_get_next_key", f"not supported by {self.type.name}")

    def lookup_and_delete(self, key: bytes | None, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM``."""
        v = self.lookup(key, flags)  # type: ignore[arg-type]
        self.delete(key)  # type: ignore[arg-type]
        return v

    def push(self, value: bytes, flags: int = ANY) -> None:
        """Queue/stack/bloom filter: an update without a key."""
        raise _err(errno.EINVAL, "map_update_elem", f"{self.type.name} has keys")

    def pop(self) -> bytes:
        raise _err(errno.EINVAL, "map_lookup_and_delete_elem", f"{self.type.name} has keys")

    def peek(self) -> bytes:
        raise _err(errno.EINVAL, "map_lookup_elem", f"{self.type.name} has keys")

    def freeze(self) -> None:
        """``BPF_MAP_FREEZE``: no more writes from the syscall side."""
        self.frozen = True

    def settle(self) -> None:
        """A run starts (maps whose elements can be freed end their quarantine)."""

    def keys(self) -> Iterator[bytes]:
        """Every key, in ``get_next_key`` order (a snapshot-tolerant walk)."""
        key = None
        while True:
            try:
                key = self.get_next_key(key)
            except MapError as e:
                if e.errno == errno.ENOENT:
                    return
                raise
            yield key

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    # ---- program face ---------------------------------------------------------------
    def prog_lookup(self, key_addr: int) -> int:
        """``bpf_map_lookup_elem``: the value's address, or 0."""
        return 0

    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        return -errno.EINVAL

    def prog_delete(self, key_addr: int) -> int:
        return -errno.EINVAL

    def prog_push(self, value_addr: int, flags: int) -> int:
        return -errno.EOPNOTSUPP

    def prog_pop(self, value_addr: int) -> int:
        return -errno.EOPNOTSUPP

    def prog_peek(self, value_addr: int) -> int:
        return -errno.EOPNOTSUPP

    def prog_lookup_percpu(self, key_addr: int, cpu: int) -> int:
        return 0

    def prog_items(self) -> Iterator[tuple[int, int]]:
        """(key address, value address) of every element, for ``bpf_for_each_map_elem``."""
        return iter(())

    # ---- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        """Release every region this map registered."""
        if not self.closed:
            self.closed = True
            self.space.remove(self.handle)
            self.ctx.objects.pop(self.id, None)

    @property
    def fd(self) -> int:
        """The VM's fd of this map (its id)."""
        return self.id

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} key={self.key_size} "
            f"value={self.value_size} max={self.max_entries}>"
        )


class KeyScratch:
    """A registered scratch Region for keys handed to callbacks (for_each_map_elem)."""

    def __init__(self, name: str, size: int, space: AddressSpace) -> None:
        self.region = space.add(Region.alloc(name, max(size, 1), perms=READ))
        self.space = space

    def put(self, data: bytes) -> int:
        self.region.mv[: len(data)] = data
        return self.region.base

    def close(self) -> None:
        self.space.remove(self.region)
