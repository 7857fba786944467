"""``BPF_MAP_TYPE_BLOOM_FILTER``: push adds a value, peek asks "maybe present?".

No keys, no delete, no pop. ``map_extra`` bits 0-3 give the number of hash functions
(0 means 5). The bit array is sized as the kernel sizes it (``max_entries * nr_hashes *
7 / 5`` bits, rounded up to a power of two, at least 64). Peek returns 0 when every bit
of the value is set (possibly a false positive) and ``-ENOENT`` otherwise.
"""

from __future__ import annotations

import errno
import hashlib

from ...uapi.enums import MapType
from .base import ANY, VMMap, _err

__all__ = ["BloomFilterMap"]


class BloomFilterMap(VMMap):
    """``BPF_MAP_TYPE_BLOOM_FILTER``."""

    type = MapType.BLOOM_FILTER
    has_keys = False

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.nr_hashes = (self.map_extra & 0xF) or 5
        nbits = self.max_entries * self.nr_hashes // 5 * 7
        if nbits <= 64:
            nbits = 64
        else:
            nbits = 1 << (nbits - 1).bit_length()
        self.nbits = min(nbits, 1 << 31)
        self.bits = bytearray(self.nbits // 8)
        self.count = 0

    def check(self) -> None:
        super().check()
        if self.key_size != 0:
            raise _err(errno.EINVAL, "map_create", "bloom filters need key_size 0")
        if self.map_extra & ~0xF:
            raise _err(errno.EINVAL, "map_create", "map_extra holds 4 bits of hash count")

    def _positions(self, value: bytes) -> list[int]:
        mask = self.nbits - 1
        return [
            int.from_bytes(
                hashlib.blake2b(value, digest_size=8, salt=i.to_bytes(16, "little")).digest(),
                "little",
            )
            & mask
            for i in range(self.nr_hashes)
        ]

    def _add(self, value: bytes) -> None:
        for p in self._positions(value):
            self.bits[p >> 3] |= 1 << (p & 7)
        self.count += 1

    def _has(self, value: bytes) -> bool:
        return all(self.bits[p >> 3] & (1 << (p & 7)) for p in self._positions(value))

    # ---- syscall face -------------------------------------------------------------------
    def push(self, value: bytes, flags: int = ANY) -> None:
        self._check_write("map_update_elem")
        if flags != ANY:
            raise _err(errno.EINVAL, "map_update_elem", "bloom filters take BPF_ANY only")
        self._add(self._check_value(value, "map_update_elem"))

    def update(self, key: bytes | None, value: bytes, flags: int = ANY) -> None:
        self.push(value, flags)

    def contains(self, value: bytes) -> bool:
        """Peek: whether ``value`` may have been pushed (no false negatives)."""
        return self._has(self._check_value(value, "map_lookup_elem"))

    def peek(self) -> bytes:
        raise _err(errno.EINVAL, "map_lookup_elem", "a bloom filter lookup needs the value")

    def pop(self) -> bytes:
        raise _err(errno.EOPNOTSUPP, "map_lookup_and_delete_elem", "bloom filters cannot pop")

    def __len__(self) -> int:
        return self.count

    # ---- program face -------------------------------------------------------------------
    def prog_push(self, value_addr: int, flags: int) -> int:
        if flags != ANY:
            return -errno.EINVAL
        self._add(self.space.read(value_addr, self.value_size))
        return 0

    def prog_peek(self, value_addr: int) -> int:
        return 0 if self._has(self.space.read(value_addr, self.value_size)) else -errno.ENOENT

    def prog_pop(self, value_addr: int) -> int:
        return -errno.EOPNOTSUPP
