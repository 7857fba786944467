"""Hash maps: ``BPF_MAP_TYPE_HASH`` and ``PERCPU_HASH``.

Keys are byte strings of ``key_size``; values live in a :class:`ValueStore` (one slot per
element, per CPU for the per-CPU flavour). ``max_entries`` elements at most (``E2BIG``
beyond). ``get_next_key`` walks the elements in insertion order, which stays stable
while other elements come and go; an unknown key restarts the walk at the first key,
as the kernel's does.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator

from ...uapi.enums import MapType
from ..memory import Region
from .base import ANY, EXIST, NOEXIST, KeyScratch, ValueStore, VMMap, _err, round8
from .native import (
    D_EVICT,
    D_FRESH,
    D_NFREE,
    D_NLOG,
    D_PERMS,
    D_QBASE,
    D_SLOTCAP,
    D_USED,
    J_INSERT,
    K_HASH,
    S_LIVE,
    SW,
    HashState,
    new_descriptor,
)

__all__ = ["HashMap", "PercpuHashMap"]


class SlotRegion(Region):
    """One part of one element's value, registered for the slot's lifetime.

    It is accessible (the map's value permissions) only while the slot holds a live
    element, and has no permissions while the slot is free: a stale pointer faults as
    if the Region were gone. Native inserts and deletes flip the slot's live word, so
    they change what the interpreter, Python and the JIT's region table allow without
    registering or removing anything.
    """

    def __init__(self, store: NativeValueStore, slot: int, part: int) -> None:
        c, o = divmod(slot, store.chunk)
        off = o * store.elem_size + part * store.part_size
        self.buf = store._chunks[c]
        self.base = ctypes.addressof(self.buf) + off
        self.size = store.value_size
        self.end = self.base + self.size
        self.mv = store._mvs[c][off : off + self.size]
        self._perms = store.perms
        self._slots = store.hs.slots
        self._live = slot * SW + S_LIVE
        self._label = (store.name, slot, part if store.parts > 1 else None)

    @property  # type: ignore[override]
    def perms(self) -> int:
        return self._perms if self._slots[self._live] else 0

    @perms.setter
    def perms(self, value: int) -> None:
        self._perms = value

    @property  # type: ignore[override]
    def name(self) -> str:
        n, slot, part = self._label
        name = f"{n}[{slot}]" + ("" if part is None else f"@cpu{part}")
        return name if self._slots[self._live] else name + " (free)"


class NativeValueStore(ValueStore):
    """A :class:`ValueStore` whose allocation state and Regions native code shares.

    Slots come from :class:`~.native.HashState` (free stack, fresh slot, use count) so
    native inserts pick the slot Python would. A slot's Regions (one per part), once
    created, stay registered until the map closes (see :class:`SlotRegion`); the slot's
    ``S_REG`` word says they exist, which is what lets native code hand out a pointer.
    """

    #: fresh and free slots that get their Regions ahead of a program's insert
    PREPARE = 64

    def __init__(self, *args, state: HashState, **kw) -> None:
        self.hs = state
        super().__init__(*args, **kw)

    @property  # type: ignore[override]
    def used(self) -> int:
        return self.hs.desc[D_USED]

    @used.setter
    def used(self, value: int) -> None:
        pass  # the native words count

    def _ensure_chunk(self, slot: int) -> None:
        c = slot // self.chunk
        while c >= len(self._chunks):
            buf = (ctypes.c_ubyte * (self.chunk * self.elem_size))()
            self.hs.chunks[len(self._chunks)] = ctypes.addressof(buf)
            self._chunks.append(buf)
            self._mvs.append(memoryview(buf).cast("B"))

    def alloc(self, evicted: int | None = None) -> int | None:
        if evicted is not None:
            self.hs.take_top(evicted)
            slot = evicted
        else:
            slot = self.hs.take()
        if slot is None:
            return None
        self._ensure_chunk(slot)
        c, o = divmod(slot, self.chunk)
        off = o * self.elem_size
        self._mvs[c][off : off + self.elem_size] = bytes(self.elem_size)
        return slot

    def free(self, slot: int) -> None:
        self.hs.give(slot)  # its Regions stay, without permissions (SlotRegion)

    def region(self, slot: int, part: int = 0) -> Region:
        if not self.hs.registered(slot):
            self.register(slot)
        return self._regions[slot * self.parts + part]

    def register(self, slot: int) -> None:
        """Register the Regions of every part of ``slot`` (once)."""
        if self.hs.registered(slot):
            return
        self._ensure_chunk(slot)
        for part in range(self.parts):
            self._regions[slot * self.parts + part] = self.space.add(SlotRegion(self, slot, part))
        self.hs.set_registered(slot)

    def prepare(self, slot: int) -> None:
        """Regions for ``slot`` and the next slots an insert may take (the tops of both
        zones of the free stack, the next fresh slots; see ``HashState.take``), so
        native inserts can hand them out: at least ``PREPARE`` of each, and as many as
        already have Regions (a program that keeps inserting new keys comes back here
        a logarithmic number of times)."""
        self.register(slot)
        hs, d = self.hs, self.hs.desc
        batch = max(self.PREPARE, len(self._regions) // self.parts)
        for top in (d[D_QBASE], d[D_NFREE]):
            for i in range(max(0, top - batch), top):
                self.register(hs.free[i])
        fresh = d[D_FRESH]
        for s in range(fresh, min(d[D_SLOTCAP], fresh + batch)):
            self.register(s)

    def set_perms(self, perms: int) -> None:
        super().set_perms(perms)
        self.hs.desc[D_PERMS] = perms


class HashMap(VMMap):
    """``BPF_MAP_TYPE_HASH``."""

    type = MapType.HASH
    #: LRU flavours evict the least recently used element instead of failing with E2BIG
    lru = False

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.parts = self.ctx.ncpus if self.percpu else 1
        desc = new_descriptor(K_HASH)
        self.hs = HashState(
            desc,
            self.key_size,
            self.value_size,
            self.max_entries,
            parts=self.parts,
            chunk=min(ValueStore.CHUNK, max(self.max_entries, 1)),
            lru=self.lru,
            perms=self.value_perms,
        )
        self.store = NativeValueStore(
            f"map:{self.name}",
            self.value_size,
            self.max_entries,
            self.space,
            parts=self.parts,
            perms=self.value_perms,
            state=self.hs,
        )
        self._desc = desc
        self.index: dict[bytes, int] = {}
        self.hs.index.live = self.index.values
        # insertion-ordered doubly linked list over slots, for get_next_key
        self._keys: list[bytes | None] = []
        self._next: list[int] = []
        self._prev: list[int] = []
        self._head = -1
        self._tail = -1
        self._scratch: KeyScratch | None = None
        # what the JIT's native helpers read (see .native): only for the flavours whose
        # program face is this class's (maps of maps and devmaps differ)
        self.native_desc = desc if self._native_ok() else None

    def _native_ok(self) -> bool:
        cls = type(self)
        return all(
            getattr(cls, m) is getattr(HashMap, m)
            for m in (
                "prog_lookup",
                "prog_update",
                "prog_delete",
                "_touch",
                "_new_slot",
                "_remove",
                "_insert",
            )
        )

    def settle(self) -> None:
        """A run starts: elements deleted so far may give their slots to new ones."""
        self.hs.settle()

    @property
    def evictions(self) -> int:
        """Elements an LRU flavour evicted to make room."""
        return self._desc[D_EVICT]

    def _sync(self) -> None:
        """Replay what native code inserted and deleted into the Python bookkeeping."""
        if self._desc[D_NLOG]:
            for op, slot, key in self.hs.drain():
                if op == J_INSERT:
                    self.index[key] = slot
                    self._link(slot, key)
                else:
                    del self.index[self._keys[slot]]  # type: ignore[index]
                    self._unlink(slot)

    def check(self) -> None:
        super().check()
        if self.key_size <= 0:
            raise _err(errno.EINVAL, "map_create", "hash maps need key_size > 0")
        if self.percpu and self.value_size > 32768:
            raise _err(errno.E2BIG, "map_create", "per-CPU values are limited to 32 KiB")

    # ---- element bookkeeping ------------------------------------------------------------
    def _link(self, slot: int, key: bytes) -> None:
        while len(self._keys) <= slot:
            self._keys.append(None)
            self._next.append(-1)
            self._prev.append(-1)
        self._keys[slot] = key
        self._prev[slot] = self._tail
        self._next[slot] = -1
        if self._tail >= 0:
            self._next[self._tail] = slot
        else:
            self._head = slot
        self._tail = slot

    def _unlink(self, slot: int) -> None:
        p, n = self._prev[slot], self._next[slot]
        if p >= 0:
            self._next[p] = n
        else:
            self._head = n
        if n >= 0:
            self._prev[n] = p
        else:
            self._tail = p
        self._keys[slot] = None

    def _insert(self, key: bytes, evicted: int | None = None) -> int | None:
        """A new element's slot (``None`` when the map is full); an LRU eviction gives
        the new element the ``evicted`` element's slot."""
        slot = self.store.alloc(evicted)
        if slot is None:
            return None
        hs = self.hs
        self.index[key] = slot
        self._link(slot, key)
        hs.index.insert(key, slot, self.store.addr(slot))
        hs.set_live(slot, True)
        if self.lru:
            hs.lru_append(slot)
        return slot

    def _remove(self, key: bytes) -> bool:
        self._sync()
        slot = self.index.pop(key, None)
        if slot is None:
            return False
        hs = self.hs
        self._unlink(slot)
        hs.index.remove(slot)
        hs.set_live(slot, False)
        if self.lru:
            hs.lru_unlink(slot)
        self.store.free(slot)
        return True

    def _write(self, slot: int, value: bytes) -> None:
        """Store a syscall-format value (per-CPU: one 8-aligned value per CPU)."""
        if self.parts == 1:
            self.store.part(slot, 0)[:] = value
            return
        ps = round8(self.value_size)
        for cpu in range(self.parts):
            self.store.part(slot, cpu)[:] = value[cpu * ps : cpu * ps + self.value_size]

    def _read(self, slot: int) -> bytes:
        if self.parts == 1:
            return bytes(self.store.part(slot, 0))
        return bytes(self.store.view(slot))

    def _check_update(self, key: bytes, flags: int) -> tuple[int | None, int]:
        """(existing slot or None, error) for an update with ``flags``."""
        self._sync()
        slot = self.index.get(key)
        mode = flags & 3
        if slot is not None and mode == NOEXIST:
            return slot, errno.EEXIST
        if slot is None and mode == EXIST:
            return None, errno.ENOENT
        return slot, 0

    # ---- syscall face -------------------------------------------------------------------
    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        if type(key) is not bytes or len(key) != self.key_size:
            key = self._check_key(key, "map_lookup_elem")
        self._sync()
        slot = self.index.get(key)
        if slot is None:
            raise _err(errno.ENOENT, "map_lookup_elem")
        if self.parts == 1:
            st = self.store
            c, o = divmod(slot, st.chunk)
            off = o * st.elem_size
            return bytes(st._mvs[c][off : off + self.value_size])
        return self._read(slot)

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        if flags or self.frozen or self.parts != 1 or self.flags & 8:
            self._check_write("map_update_elem")
            self._check_flags(flags, "map_update_elem")
        if type(key) is not bytes or len(key) != self.key_size:
            key = self._check_key(key, "map_update_elem")
        if type(value) is not bytes or len(value) != self.value_size or self.parts != 1:
            value = self._check_value(value, "map_update_elem")
        slot, err = self._check_update(key, flags)
        if err:
            raise _err(err, "map_update_elem")
        if slot is None:
            slot = self._new_slot(key)
            if slot is None:
                raise _err(
                    errno.E2BIG, "map_update_elem", f"map is full ({self.max_entries} entries)"
                )
        else:
            self._touch(slot)
        self._write(slot, value)

    def delete(self, key: bytes) -> None:
        self._check_write("map_delete_elem")
        if not self._remove(self._check_key(key, "map_delete_elem")):
            raise _err(errno.ENOENT, "map_delete_elem")

    def lookup_and_delete(self, key: bytes | None, flags: int = 0) -> bytes:
        self._check_write("map_lookup_and_delete_elem")
        key = self._check_key(key or b"", "map_lookup_and_delete_elem")
        self._sync()
        slot = self.index.get(key)
        if slot is None:
            raise _err(errno.ENOENT, "map_lookup_and_delete_elem")
        v = self._read(slot)
        self._remove(key)
        return v

    def get_next_key(self, key: bytes | None) -> bytes:
        self._sync()
        slot = None if key is None else self.index.get(bytes(key))
        nxt = self._head if slot is None else self._next[slot]
        if nxt < 0:
            raise _err(errno.ENOENT, "map_get_next_key")
        return self._keys[nxt]  # type: ignore[return-value]

    def keys(self) -> Iterator[bytes]:
        self._sync()
        s = self._head
        while s >= 0:
            k = self._keys[s]
            nxt = self._next[s]
            if k is not None:
                yield k
            s = nxt

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, syscall-format value) of every element."""
        for k in list(self.keys()):
            self._sync()
            slot = self.index.get(k)
            if slot is not None:
                yield k, self._read(slot)

    def __len__(self) -> int:
        self._sync()
        return len(self.index)

    # ---- the LRU policy (exact: one order over every element) --------------------------
    def _new_slot(self, key: bytes) -> int | None:
        slot = self._insert(key)
        if slot is None and self.lru:
            victim = self.hs.lru_oldest()
            if victim is not None:
                self._remove(self._keys[victim])  # type: ignore[arg-type]
                self._desc[D_EVICT] += 1
                slot = self._insert(key, victim)
        return slot

    def _touch(self, slot: int) -> None:
        if self.lru:
            self.hs.lru_touch(slot)

    # ---- program face ------------------------------------------------------------------
    def prog_lookup(self, key_addr: int) -> int:
        key = self.space.read(key_addr, self.key_size)
        self._sync()
        slot = self.index.get(key)
        if slot is None:
            return 0
        self._touch(slot)
        return self._value_addr(slot, self.ctx.cpu if self.parts > 1 else 0)

    def _value_addr(self, slot: int, part: int) -> int:
        """The address of a value part, its Region registered (native lookups then
        hand it out too)."""
        return self.store.region(slot, part).base

    def prog_lookup_percpu(self, key_addr: int, cpu: int) -> int:
        if self.parts == 1 or cpu >= self.parts:
            return 0
        key = self.space.read(key_addr, self.key_size)
        self._sync()
        slot = self.index.get(key)
        return 0 if slot is None else self._value_addr(slot, cpu)

    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        if flags & ~7 or flags & 3 == 3:
            return -errno.EINVAL
        key = self.space.read(key_addr, self.key_size)
        value = self.space.read(value_addr, self.value_size)
        slot, err = self._check_update(key, flags)
        if err:
            return -err
        if slot is None:
            slot = self._new_slot(key)
            if slot is None:
                return -errno.E2BIG
            if not self.hs.registered(slot):
                # a program inserts: its value (and the next few) get their Regions
                # now, so that native inserts and lookups can hand them out
                self.store.prepare(slot)
        else:
            self._touch(slot)
        self.store.part(slot, self.ctx.cpu if self.parts > 1 else 0)[:] = value
        return 0

    def prog_delete(self, key_addr: int) -> int:
        return 0 if self._remove(self.space.read(key_addr, self.key_size)) else -errno.ENOENT

    def prog_items(self) -> Iterator[tuple[int, int]]:
        if self._scratch is None:
            self._scratch = KeyScratch(f"map:{self.name}:key", self.key_size, self.space)
        part = self.ctx.cpu if self.parts > 1 else 0
        for key in list(self.keys()):
            self._sync()
            slot = self.index.get(key)
            if slot is not None:
                yield self._scratch.put(key), self._value_addr(slot, part)

    def close(self) -> None:
        if not self.closed:
            self.store.close()
            if self._scratch is not None:
                self._scratch.close()
        super().close()


class PercpuHashMap(HashMap):
    """``BPF_MAP_TYPE_PERCPU_HASH``: each element holds one value per CPU."""

    type = MapType.PERCPU_HASH
    percpu = True
