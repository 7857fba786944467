"""Read a ``BPF_MAP_TYPE_RINGBUF`` from user space: mmap, epoll, zero-copy records.

The kernel exposes a ring buffer as three mappings of the map fd: the consumer page
(read-write, ``consumer_pos`` at offset 0), the producer page (read-only,
``producer_pos``) and the data area, mapped twice back to back so that a record that
wraps around the end is still contiguous. Each record starts with an 8-byte header:
``u32 len`` (bit 31: still being written, bit 30: discarded) and a page offset; the
payload follows and the record is padded to 8 bytes.

:class:`RingBufReader` walks the records between the two positions in one tight loop
and hands them out as ``memoryview`` slices of the mapping (no copy). A view stays
valid until the consumer position moves past it, which happens when the next batch is
read (or :meth:`RingBufReader.commit` is called) — copy with ``bytes(view)`` to keep one.
Four forms:

- ``read_batch()`` → views of everything available (committed on the next call);
- ``consume(callback)`` → each record to ``callback`` (a negative return stops early);
- ``consume()`` → copies, as ``bytes``;
- iteration: ``for rec in reader.records(timeout=1.0)`` blocks in epoll between batches.
"""

from __future__ import annotations

import gc
import mmap
import os
import select
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import BpfError
from . import sys as bsys

__all__ = ["RingBufReader", "RingBufferSet"]

PAGE = mmap.PAGESIZE
BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
LEN_MASK = DISCARD_BIT - 1
HDR_SIZE = 8


class RingBufReader(bsys.Closing):
    """The consumer side of one ring-buffer map."""

    def __init__(self, map_fd: bsys.FdLike, size: int | None = None) -> None:
        fd = bsys.fdnum(map_fd)
        if size is None:
            size = bsys.map_info(fd).max_entries
        if size <= 0 or size & (size - 1) or size % PAGE:
            raise BpfError(f"ring buffer size {size} is not a power-of-2 multiple of the page size")
        self._own = bsys.FD(os.dup(fd))
        self.size = size
        self._mask = size - 1
        self._cons_map = mmap.mmap(
            self._own.fileno(), PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._prod_map = mmap.mmap(
            self._own.fileno(), PAGE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE
        )
        self._cons = memoryview(self._cons_map).cast("Q")
        pm = memoryview(self._prod_map)
        self._prod = pm[:PAGE].cast("Q")
        self._data = pm[PAGE:]
        self._words = self._data.cast("I")
        self._pending: int | None = None
        self._ep: select.epoll | None = None
        self.closed = False

    # ---- positions --------------------------------------------------------------
    @property
    def consumer_pos(self) -> int:
        """Bytes consumed so far (the kernel's ``consumer_pos``)."""
        return self._cons[0]

    @property
    def producer_pos(self) -> int:
        """Bytes produced so far (the kernel's ``producer_pos``)."""
        return self._prod[0]

    @property
    def available(self) -> int:
        """Bytes written by producers and not yet consumed (including pending views)."""
        return self._prod[0] - self._cons[0]

    def fileno(self) -> int:
        """The map fd (readable when records are available; for your own event loop)."""
        return self._own.fileno()

    def commit(self) -> None:
        """Release the views handed out by the last batch (advance ``consumer_pos``)."""
        if self._pending is not None:
            self._cons[0] = self._pending
            self._pending = None

    # ---- reading ----------------------------------------------------------------
    def read_batch(self, limit: int | None = None) -> list[memoryview]:
        """Views of the records available now (the previous batch is released first)."""
        return self._scan(self._data, limit)

    def read_copies(self, limit: int | None = None) -> list[bytes]:
        """Copies (``bytes``) of the records available now; they are consumed at once."""
        out = self._scan(self._prod_map, limit, PAGE)
        self.commit()
        return out

    def _scan(self, buf: Any, limit: int | None, base: int = 0) -> list:
        self.commit()
        cons = self._cons[0]
        prod = self._prod[0]
        if limit is not None:
            prod = min(prod, self._limit_end(cons, prod, limit))
        words, mask = self._words, self._mask
        out: list = []
        append = out.append
        # Many small objects and no cycles: keep the cyclic GC out of the loop.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            while cons < prod:
                w = words[(cons & mask) >> 2]
                if w & 0xC0000000:  # busy (stop) or discarded (skip)
                    if w & BUSY_BIT:
                        break
                    cons += ((w & LEN_MASK) + 15) & ~7
                    continue
                off = (cons & mask) + base + 8
                append(buf[off : off + w])
                cons += (w + 15) & ~7
        finally:
            if gc_was_on:
                gc.enable()
        self._pending = cons
        return out

    def _limit_end(self, cons: int, prod: int, limit: int) -> int:
        """The position after at most ``limit`` visible records from ``cons``."""
        words, mask = self._words, self._mask
        n = 0
        while cons < prod and n < limit:
            w = words[(cons & mask) >> 2]
            if w & BUSY_BIT:
                break
            if not w & DISCARD_BIT:
                n += 1
            cons += ((w & LEN_MASK) + 15) & ~7
        return cons

    def unpack(self, fmt: str | struct.Struct, limit: int | None = None) -> list[tuple]:
        """The available records decoded with ``struct`` format ``fmt`` (one tuple each).

        Records of exactly ``calcsize(fmt)`` bytes are decoded at C speed in one
        ``iter_unpack`` over the mapping when every record in the batch has that size
        (the common case of one event struct); otherwise record by record (records of
        another size are skipped).
        """
        st = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        size = st.size
        body = st.format if isinstance(st.format, str) else st.format.decode()
        order = body[0] if body[:1] in "<>=!@" else "<"
        body = body[1:] if body[:1] in "<>=!@" else body
        rec = (size + 15) & ~7
        self.commit()
        cons, prod = self._cons[0], self._prod[0]
        if limit is not None:
            prod = min(prod, self._limit_end(cons, prod, limit))
        avail = prod - cons
        if avail <= 0:
            return []
        off = cons & self._mask
        n = avail // rec
        if avail == n * rec and off % 4 == 0:
            # Every header at stride rec must read exactly `size` (committed, kept).
            hdrs = self._words[off >> 2 : (off + avail) >> 2 : rec >> 2]
            if hdrs.tobytes() == struct.pack("<I", size) * n:
                full = struct.Struct(f"{order}8x{body}{rec - 8 - size}x")
                gc_was_on = gc.isenabled()
                gc.disable()
                try:
                    out = list(full.iter_unpack(self._data[off : off + avail]))
                finally:
                    if gc_was_on:
                        gc.enable()
                self._cons[0] = prod
                return out
        views = self.read_batch(limit)
        out = [st.unpack(v) for v in views if len(v) == size]
        self.commit()
        return out

    def count_available(self) -> int:
        """Consume every available record without looking at it; how many there were."""
        self.commit()
        cons, prod = self._cons[0], self._prod[0]
        words, mask = self._words, self._mask
        n_recs = 0
        while cons < prod:
            w = words[(cons & mask) >> 2]
            if w & BUSY_BIT:
                break
            if not w & DISCARD_BIT:
                n_recs += 1
            cons += ((w & LEN_MASK) + 15) & ~7
        self._cons[0] = cons
        return n_recs

    def consume(
        self, callback: Callable[[memoryview], Any] | None = None, limit: int | None = None
    ) -> list[bytes] | int:
        """Copies of the available records, or (with ``callback``) how many it handled."""
        if callback is None:
            return self.read_copies(limit)
        views = self.read_batch(limit)
        n = 0
        for v in views:
            n += 1
            r = callback(v)
            if isinstance(r, int) and r < 0:
                # Stop here: what the callback did not see stays in the buffer.
                self._pending = self._position_after(n)
                break
        self.commit()
        return n

    def _position_after(self, n: int) -> int:
        cons = self._cons[0]
        words, mask = self._words, self._mask
        seen = 0
        while seen < n:
            w = words[(cons & mask) >> 2]
            if not w & DISCARD_BIT:
                seen += 1
            cons += ((w & LEN_MASK) + 15) & ~7
        return cons

    # ---- waiting ----------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Block until records are available (``timeout`` seconds; ``None``: forever)."""
        start = self._cons[0] if self._pending is None else self._pending
        if self._prod[0] > start:
            return True
        if self._ep is None:
            self._ep = select.epoll()
            self._ep.register(self._own.fileno(), select.EPOLLIN)
        self._ep.poll(-1 if timeout is None else timeout)
        return self._prod[0] > start

    def poll(
        self, callback: Callable[[memoryview], Any] | None = None, timeout: float = 0.0
    ) -> list[bytes] | int:
        """Wait up to ``timeout`` seconds for records, then :meth:`consume` them."""
        self.wait(timeout)
        return self.consume(callback)

    def records(
        self, timeout: float | None = None, *, copy: bool = False
    ) -> Iterator[memoryview | bytes]:
        """Yield records as they arrive, until ``timeout`` seconds have passed in all
        (an overall deadline: a ring that never runs dry still ends); ``None``: forever.

        Views (``copy=False``) are valid until the next record batch is read.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self.read_batch()
            if batch:
                for v in batch:
                    yield v.tobytes() if copy else v
                if deadline is not None and time.monotonic() >= deadline:
                    self.commit()
                    return
                continue
            self.commit()
            if deadline is None:
                self.wait(None)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.wait(left)

    __iter__ = records

    # ---- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Unmap the buffer and close the reader's fd."""
        if self.closed:
            return
        self.closed = True
        self._pending = None
        for mv in ("_words", "_data", "_prod", "_cons"):
            try:
                getattr(self, mv).release()
            except (AttributeError, ValueError):
                pass
        try:
            self._prod_map.close()
            self._cons_map.close()
        except BufferError:
            pass  # views still held by the caller; the mapping goes when they do
        if self._ep is not None:
            self._ep.close()
        self._own.close()


class RingBufferSet:
    """Several ring buffers behind one epoll, each with its own callback."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._readers: dict[int, tuple[RingBufReader, Callable[[memoryview], Any]]] = {}

    def add(self, reader: RingBufReader, callback: Callable[[memoryview], Any]) -> None:
        """Watch ``reader`` and hand its records to ``callback``."""
        self._readers[reader.fileno()] = (reader, callback)
        self._ep.register(reader.fileno(), select.EPOLLIN)

    def poll(self, timeout: float | None = None) -> int:
        """Wait for any buffer, then consume every ready one; records handled."""
        n = 0
        for r, cb in self._readers.values():  # whatever is already there
            n += r.consume(cb)  # type: ignore[operator]
        if n:
            return n
        for fd, _ev in self._ep.poll(-1 if timeout is None else timeout):
            r, cb = self._readers[fd]
            n += r.consume(cb)  # type: ignore[operator]
        return n

    def close(self) -> None:
        """Stop watching (the readers stay open)."""
        self._ep.close()
