"""``BPF_MAP_TYPE_RINGBUF``: a multi-producer, single-consumer byte ring, as the kernel's.

The data area is ``max_entries`` bytes (a power of two, whole pages). A record is an
8-byte header — ``u32 len`` with the busy (bit 31) and discard (bit 30) bits, ``u32
pg_off`` — and its data, the whole rounded up to 8 bytes. ``reserve`` advances the
producer position and marks the record busy; ``submit``/``discard`` clear the busy bit;
the consumer reads committed records in order and stops at the first busy one, skipping
discarded ones. The kernel maps the data area twice in a row so a record that wraps
around the end is contiguous; here the buffer is twice the size and a wrapping record's
tail lands in the second copy, which is where the consumer reads it from.

While reserved, a record's data is a Region of its own in the address space, so a
program can only write inside it, and it is gone once submitted or discarded.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Callable, Iterator

from ...uapi.enums import MapType
from ..memory import Region
from .base import VMMap, _err

__all__ = ["RingBufMap", "BUSY_BIT", "DISCARD_BIT", "HDR_SZ"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SZ = 8
PAGE_SIZE = 4096
# bpf_ringbuf_query flags
AVAIL_DATA, RING_SIZE, CONS_POS, PROD_POS = 0, 1, 2, 3
# submit/output flags
NO_WAKEUP, FORCE_WAKEUP = 1, 2

_HDR = struct.Struct("<II")
_LEN = struct.Struct("<I")


class RingBufMap(VMMap):
    """``BPF_MAP_TYPE_RINGBUF``."""

    type = MapType.RINGBUF
    has_keys = False

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.size = self.max_entries
        self.mask = self.size - 1
        self.buf = (ctypes.c_ubyte * (2 * self.size))()
        self.mv = memoryview(self.buf).cast("B")
        self.consumer_pos = 0
        self.producer_pos = 0
        self.reserved: dict[int, tuple[int, Region]] = {}  # data address -> (pos, region)
        self.dropped = 0

    def check(self) -> None:
        n = self.max_entries
        if self.key_size or self.value_size or n <= 0 or n & (n - 1) or n % PAGE_SIZE:
            raise _err(
                errno.EINVAL,
                "map_create",
                "ring buffers need key_size 0, "
                "value_size 0 and max_entries a power of two multiple of 4096",
            )

    # ---- producer -----------------------------------------------------------------------
    def _claim(self, size: int) -> int:
        """Claim room for a ``size``-byte record (header written busy): its position or -1."""
        if size < 0 or size > 0x3FFFFFFF:
            return -1
        length = (size + HDR_SZ + 7) & ~7
        pos = self.producer_pos
        if length > self.size or pos + length - self.consumer_pos > self.mask:
            self.dropped += 1
            return -1
        off = pos & self.mask
        _HDR.pack_into(self.mv, off, size | BUSY_BIT, off // PAGE_SIZE)
        self.producer_pos = pos + length
        return pos

    def reserve(self, size: int) -> int:
        """Reserve ``size`` bytes: the record's data address, or 0 if there is no room."""
        pos = self._claim(size)
        if pos < 0:
            return 0
        off = pos & self.mask
        arr = (ctypes.c_ubyte * max(size, 1)).from_buffer(self.buf, off + HDR_SZ)
        region = Region(f"ringbuf:{self.name}@{pos}", arr)
        region.size, region.end = size, region.base + size
        if size:
            self.space.add(region)
        self.reserved[region.base] = (pos, region)
        return region.base

    def commit(self, addr: int, discard: bool = False) -> bool:
        """Submit (or discard) the record whose data is at ``addr``; False if unknown."""
        entry = self.reserved.pop(addr, None)
        if entry is None:
            return False
        pos, region = entry
        if region.size:
            self.space.remove(region)
        off = pos & self.mask
        word = _LEN.unpack_from(self.mv, off)[0] & ~BUSY_BIT
        if discard:
            word |= DISCARD_BIT
        _LEN.pack_into(self.mv, off, word)
        return True

    def output(self, data: bytes) -> int:
        """``bpf_ringbuf_output``: copy ``data`` in as one record; 0 or ``-EAGAIN``."""
        n = len(data)
        pos = self._claim(n)
        if pos < 0:
            return -errno.EAGAIN
        off = pos & self.mask
        self.mv[off + HDR_SZ : off + HDR_SZ + n] = data
        _LEN.pack_into(self.mv, off, n)
        return 0

    def query(self, flag: int) -> int:
        """``bpf_ringbuf_query``."""
        if flag == AVAIL_DATA:
            return self.producer_pos - self.consumer_pos
        if flag == RING_SIZE:
            return self.size
        if flag == CONS_POS:
            return self.consumer_pos
        if flag == PROD_POS:
            return self.producer_pos
        return 0

    # ---- consumer -----------------------------------------------------------------------
    def records(self) -> Iterator[bytes]:
        """Consume committed records in order (stops at a busy one)."""
        mv, mask, unpack = self.mv, self.mask, _LEN.unpack_from
        cons = self.consumer_pos
        try:
            while cons < self.producer_pos:
                off = cons & mask
                word = unpack(mv, off)[0]
                if word & BUSY_BIT:
                    break
                n = word & ~(BUSY_BIT | DISCARD_BIT)
                nxt = cons + ((n + HDR_SZ + 7) & ~7)
                if not word & DISCARD_BIT:
                    rec = bytes(mv[off + HDR_SZ : off + HDR_SZ + n])
                    cons = self.consumer_pos = nxt
                    yield rec
                else:
                    cons = self.consumer_pos = nxt
        finally:
            self.consumer_pos = cons

    def consume(
        self, callback: Callable[[bytes], object] | None = None, limit: int | None = None
    ) -> list[bytes] | int:
        """Read what is available: the records, or (with ``callback``) how many were handled.

        A callback returning a negative number stops consumption early, as in libbpf.
        """
        if callback is None:
            out = []
            for rec in self.records():
                out.append(rec)
                if limit is not None and len(out) >= limit:
                    break
            return out
        n = 0
        for rec in self.records():
            n += 1
            r = callback(rec)
            if (isinstance(r, int) and r < 0) or (limit is not None and n >= limit):
                break
        return n

    @property
    def available(self) -> int:
        return self.producer_pos - self.consumer_pos

    def __len__(self) -> int:
        return self.available

    def close(self) -> None:
        if not self.closed:
            for _pos, region in self.reserved.values():
                if region.size:
                    self.space.remove(region)
            self.reserved.clear()
        super().close()
