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

import mmap
import os
import select
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


class RingBufReader:
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
        self.commit()
        cons = self._cons[0]
        prod = self._prod[0]
        words, data, mask = self._words, self._data, self._mask
        out: list[memoryview] = []
        append = out.append
        if limit is None:
            while cons < prod:
                off = cons & mask
                w = words[off >> 2]
                if w & BUSY_BIT:
                    break
                n = w & LEN_MASK
                if not w & DISCARD_BIT:
                    append(data[off + 8 : off + 8 + n])
                cons += (n + 15) & ~7
        else:
            while cons < prod and len(out) < limit:
                off = cons & mask
                w = words[off >> 2]
                if w & BUSY_BIT:
                    break
                n = w & LEN_MASK
                if not w & DISCARD_BIT:
                    append(data[off + 8 : off + 8 + n])
                cons += (n + 15) & ~7
        self._pending = cons
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
        views = self.read_batch(limit)
        if callback is None:
            out = [v.tobytes() for v in views]
            self.commit()
            return out
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
        """Yield records as they arrive; stops after ``timeout`` seconds without any."""
        deadline = None
        while True:
            batch = self.read_batch()
            if batch:
                deadline = None
                for v in batch:
                    yield v.tobytes() if copy else v
                continue
            self.commit()
            if timeout is not None:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + timeout
                if now >= deadline:
                    return
                if not self.wait(deadline - now):
                    return
            else:
                self.wait(None)

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

    def __enter__(self) -> RingBufReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


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
