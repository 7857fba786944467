"""Hash maps: ``BPF_MAP_TYPE_HASH`` and ``PERCPU_HASH``.

Keys are byte strings of ``key_size``; values live in a :class:`ValueStore` (one slot per
element, per CPU for the per-CPU flavour). ``max_entries`` elements at most (``E2BIG``
beyond). ``get_next_key`` walks the elements in insertion order, which stays stable
while other elements come and go; an unknown key restarts the walk at the first key,
as the kernel's does.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ...uapi.enums import MapType
from .base import ANY, EXIST, NOEXIST, KeyScratch, ValueStore, VMMap, _err, round8
from .native import K_HASH, HashIndex, new_descriptor

__all__ = ["HashMap", "PercpuHashMap"]


class HashMap(VMMap):
    """``BPF_MAP_TYPE_HASH``."""

    type = MapType.HASH

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.parts = self.ctx.ncpus if self.percpu else 1
        self.store = ValueStore(
            f"map:{self.name}",
            self.value_size,
            self.max_entries,
            self.space,
            parts=self.parts,
            perms=self.value_perms,
        )
        self.index: dict[bytes, int] = {}
        # insertion-ordered doubly linked list over slots, for get_next_key
        self._keys: list[bytes | None] = []
        self._next: list[int] = []
        self._prev: list[int] = []
        self._head = -1
        self._tail = -1
        self._scratch: KeyScratch | None = None
        # the native mirror for the JIT's native helpers (plain hash maps only: other
        # flavours, whose program face differs, always go through Python)
        self._nindex: HashIndex | None = None
        self.native_desc = None
        if self._native_ok():
            self.native_desc = new_descriptor(K_HASH)
            d = self.native_desc
            d[1], d[2], d[3] = self.key_size, self.value_size, self.max_entries
            self._nindex = HashIndex(self.key_size, d)
            self._nindex.publish()

    def _native_ok(self) -> bool:
        cls = type(self)
        return self.parts == 1 and all(
            getattr(cls, m) is getattr(HashMap, m)
            for m in ("prog_lookup", "prog_update", "_touch", "_new_slot", "_remove", "_insert")
        )

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

    def _insert(self, key: bytes) -> int | None:
        """A new element's slot (``None`` when the map is full)."""
        slot = self.store.alloc()
        if slot is None:
            return None
        self.index[key] = slot
        self._link(slot, key)
        if self._nindex is not None:
            self._nindex.insert(key, slot, self.store.addr(slot))
        return slot

    def _remove(self, key: bytes) -> bool:
        slot = self.index.pop(key, None)
        if slot is None:
            return False
        self._unlink(slot)
        if self._nindex is not None:
            self._nindex.remove(slot)
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
            self._touch(key)
        self._write(slot, value)

    def delete(self, key: bytes) -> None:
        self._check_write("map_delete_elem")
        if not self._remove(self._check_key(key, "map_delete_elem")):
            raise _err(errno.ENOENT, "map_delete_elem")

    def lookup_and_delete(self, key: bytes | None, flags: int = 0) -> bytes:
        self._check_write("map_lookup_and_delete_elem")
        key = self._check_key(key or b"", "map_lookup_and_delete_elem")
        slot = self.index.get(key)
        if slot is None:
            raise _err(errno.ENOENT, "map_lookup_and_delete_elem")
        v = self._read(slot)
        self._remove(key)
        return v

    def get_next_key(self, key: bytes | None) -> bytes:
        slot = None if key is None else self.index.get(bytes(key))
        nxt = self._head if slot is None else self._next[slot]
        if nxt < 0:
            raise _err(errno.ENOENT, "map_get_next_key")
        return self._keys[nxt]  # type: ignore[return-value]

    def keys(self) -> Iterator[bytes]:
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
            slot = self.index.get(k)
            if slot is not None:
                yield k, self._read(slot)

    def __len__(self) -> int:
        return len(self.index)

    # ---- hooks the LRU flavour overrides -------------------------------------------------
    def _new_slot(self, key: bytes) -> int | None:
        return self._insert(key)

    def _touch(self, key: bytes) -> None:
        pass

    # ---- program face ------------------------------------------------------------------
    def prog_lookup(self, key_addr: int) -> int:
        key = self.space.read(key_addr, self.key_size)
        slot = self.index.get(key)
        if slot is None:
            return 0
        self._touch(key)
        return self._value_addr(slot, self.ctx.cpu if self.parts > 1 else 0)

    def _value_addr(self, slot: int, part: int) -> int:
        """The address of a value part, its Region registered (and the mirror told so)."""
        base = self.store.region(slot, part).base
        if self._nindex is not None:
            self._nindex.mark(slot)
        return base

    def prog_lookup_percpu(self, key_addr: int, cpu: int) -> int:
        if self.parts == 1 or cpu >= self.parts:
            return 0
        slot = self.index.get(self.space.read(key_addr, self.key_size))
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
        else:
            self._touch(key)
        self.store.part(slot, self.ctx.cpu if self.parts > 1 else 0)[:] = value
        return 0

    def prog_delete(self, key_addr: int) -> int:
        return 0 if self._remove(self.space.read(key_addr, self.key_size)) else -errno.ENOENT

    def prog_items(self) -> Iterator[tuple[int, int]]:
        if self._scratch is None:
            self._scratch = KeyScratch(f"map:{self.name}:key", self.key_size, self.space)
        part = self.ctx.cpu if self.parts > 1 else 0
        for key in list(self.keys()):
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
