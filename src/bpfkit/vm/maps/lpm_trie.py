"""``BPF_MAP_TYPE_LPM_TRIE``: longest-prefix match over ``struct bpf_lpm_trie_key``.

A key is ``u32 prefixlen`` (host order) followed by ``key_size - 4`` data bytes (network
order). Update and delete address one exact prefix; lookup — from programs and from
Python alike — returns the longest stored prefix that matches the key's first
``prefixlen`` bits. ``get_next_key`` walks the trie in post-order (more specific
prefixes before the prefix containing them, the 0 branch before the 1 branch), as the
kernel does. The map requires ``BPF_F_NO_PREALLOC``; a full trie fails with ``ENOSPC``.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

from ...uapi.enums import MapType
from .base import ANY, EXIST, F_NO_PREALLOC, NOEXIST, KeyScratch, ValueStore, VMMap, _err

__all__ = ["LpmTrieMap"]

_U32 = struct.Struct("<I")


class LpmTrieMap(VMMap):
    """``BPF_MAP_TYPE_LPM_TRIE``."""

    type = MapType.LPM_TRIE

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.data_size = self.key_size - 4
        self.max_prefixlen = 8 * self.data_size
        self.store = ValueStore(
            f"map:{self.name}",
            self.value_size,
            self.max_entries,
            self.space,
            perms=self.value_perms,
        )
        self.entries: dict[tuple[int, int], int] = {}  # (prefixlen, prefix bits) -> slot
        self.stored_key: dict[int, bytes] = {}  # slot -> key bytes as last written
        self._lens: list[int] = []  # distinct prefix lengths present, descending
        self._len_count: dict[int, int] = {}
        self._order: list[tuple[int, int]] | None = None
        self._scratch: KeyScratch | None = None

    def settle(self) -> None:
        """A run starts: deleted prefixes' slots may be reused."""
        self.store.settle()

    def check(self) -> None:
        super().check()
        if not self.flags & F_NO_PREALLOC:
            raise _err(errno.EINVAL, "map_create", "LPM tries need BPF_F_NO_PREALLOC")
        if not 5 <= self.key_size <= 4 + 256:
            raise _err(errno.EINVAL, "map_create", "LPM trie keys are 5..260 bytes")

    # ---- keys ---------------------------------------------------------------------------
    def _split(self, key: bytes) -> tuple[int, int]:
        plen = _U32.unpack_from(key)[0]
        bits = int.from_bytes(key[4:], "big")
        return plen, bits

    def _prefix(self, bits: int, plen: int) -> int:
        return bits >> (self.max_prefixlen - plen)

    def _find(self, key: bytes) -> int | None:
        plen, bits = self._split(key)
        plen = min(plen, self.max_prefixlen)
        for n in self._lens:
            if n <= plen:
                slot = self.entries.get((n, self._prefix(bits, n)))
                if slot is not None:
                    return slot
        return None

    def _exact(self, key: bytes) -> tuple[int, int] | None:
        plen, bits = self._split(key)
        if plen > self.max_prefixlen:
            return None
        return plen, self._prefix(bits, plen)

    def _add_len(self, plen: int) -> None:
        c = self._len_count.get(plen, 0)
        self._len_count[plen] = c + 1
        if not c:
            self._lens = sorted(self._len_count, reverse=True)

    def _drop_len(self, plen: int) -> None:
        c = self._len_count[plen] - 1
        if c:
            self._len_count[plen] = c
        else:
            del self._len_count[plen]
            self._lens = sorted(self._len_count, reverse=True)

    # ---- core ---------------------------------------------------------------------------
    def _update(self, key: bytes, value: bytes, flags: int) -> int:
        if flags & ~3 or flags & 3 == 3:
            return errno.EINVAL
        ident = self._exact(key)
        if ident is None:
            return errno.EINVAL
        slot = self.entries.get(ident)
        if slot is not None and flags == NOEXIST:
            return errno.EEXIST
        if slot is None:
            if flags == EXIST:
                return errno.ENOENT
            slot = self.store.alloc()
            if slot is None:
                return errno.ENOSPC
            self.entries[ident] = slot
            self._add_len(ident[0])
            self._order = None
        self.stored_key[slot] = key
        self.store.part(slot, 0)[:] = value
        return 0

    def _delete(self, key: bytes) -> int:
        ident = self._exact(key)
        if ident is None:
            return errno.EINVAL
        slot = self.entries.pop(ident, None)
        if slot is None:
            return errno.ENOENT
        del self.stored_key[slot]
        self.store.free(slot)
        self._drop_len(ident[0])
        self._order = None
        return 0

    def _postorder(self) -> list[tuple[int, int]]:
        if self._order is None:

            def sort_key(ident: tuple[int, int]) -> str:
                plen, prefix = ident
                return (format(prefix, f"0{plen}b") if plen else "") + "2"

            self._order = sorted(self.entries, key=sort_key)
        return self._order

    # ---- syscall face -------------------------------------------------------------------
    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        slot = self._find(self._check_key(key, "map_lookup_elem"))
        if slot is None:
            raise _err(errno.ENOENT, "map_lookup_elem")
        return bytes(self.store.part(slot, 0))

    def lookup_key(self, key: bytes) -> bytes | None:
        """The stored key that ``key`` matches (longest prefix), or ``None``."""
        slot = self._find(self._check_key(key, "map_lookup_elem"))
        return None if slot is None else self.stored_key[slot]

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        self._check_write("map_update_elem")
        key = self._check_key(key, "map_update_elem")
        err = self._update(key, self._check_value(value, "map_update_elem"), flags)
        if err:
            raise _err(err, "map_update_elem")

    def delete(self, key: bytes) -> None:
        self._check_write("map_delete_elem")
        err = self._delete(self._check_key(key, "map_delete_elem"))
        if err:
            raise _err(err, "map_delete_elem")

    def get_next_key(self, key: bytes | None) -> bytes:
        order = self._postorder()
        pos = 0
        if key is not None:
            ident = self._exact(self._check_key(key, "map_get_next_key"))
            if ident is not None and ident in self.entries:
                pos = order.index(ident) + 1
        if pos >= len(order):
            raise _err(errno.ENOENT, "map_get_next_key")
        return self.stored_key[self.entries[order[pos]]]

    def keys(self) -> Iterator[bytes]:
        for ident in list(self._postorder()):
            slot = self.entries.get(ident)
            if slot is not None:
                yield self.stored_key[slot]

    def __len__(self) -> int:
        return len(self.entries)

    # ---- program face -------------------------------------------------------------------
    def prog_lookup(self, key_addr: int) -> int:
        slot = self._find(self.space.read(key_addr, self.key_size))
        return 0 if slot is None else self.store.region(slot).base

    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        key = self.space.read(key_addr, self.key_size)
        return -self._update(key, self.space.read(value_addr, self.value_size), flags)

    def prog_delete(self, key_addr: int) -> int:
        return -self._delete(self.space.read(key_addr, self.key_size))

    def prog_items(self) -> Iterator[tuple[int, int]]:
        if self._scratch is None:
            self._scratch = KeyScratch(f"map:{self.name}:key", self.key_size, self.space)
        for key in list(self.keys()):
            ident = self._exact(key)
            slot = self.entries.get(ident) if ident else None
            if slot is not None:
                yield self._scratch.put(key), self.store.region(slot).base

    def close(self) -> None:
        if not self.closed:
            self.store.close()
            if self._scratch is not None:
                self._scratch.close()
        super().close()
