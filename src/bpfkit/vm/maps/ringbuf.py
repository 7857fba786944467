"""``BPF_MAP_TYPE_RINGBUF``: a multi-producer, single-consumer byte ring, as the kernel's.

The data area is ``max_entries`` bytes (a power of two, whole pages). A record is an
8-byte header — ``u32 len`` with the busy (bit 31) and discard (bit 30) bits, ``u32
pg_off`` — and its data, the whole rounded up to 8 bytes. ``reserve`` advances the
producer position and marks the record busy; ``submit``/``discard`` clear the busy bit;
the consumer reads committed records in order and stops at the first busy one, skipping
discarded ones. The kernel maps the data area twice in a row so a record that wraps
around the end is contiguous; here the buffer is twice the size and a wrapping record's
tail lands in the second copy, which is where the consumer reads it from.

While reserved (by the Python helper, i.e. under the interpreter), a record's data is a
Region of its own in the address space, so a program can only write inside it, and it
is gone once submitted or discarded.

**Native side.** The positions, the drop count and the outstanding native reservations
live in a control block of 64-bit words (:attr:`RingBufMap.native_desc`, the ``R_*``
indices below) that both this class and the JIT's native ring-buffer helpers
(``bpfkit.jit.hot``) read and write, so Python ``reserve``/``commit``/``records`` and
native code always see one state. The buffer is a shared-memory file (``memfd``) mapped
twice: the first mapping is :attr:`buf` (Python, the interpreter's per-record Regions),
the second (the *alias*, :attr:`alias`, a Region that is never registered) is where a
native reserve's records live. Native reservations are remembered in ``R_SLOTS`` slots
of two words each: the record's alias data address and its length. The JIT's memory
check consults them on a region-table miss (``bpf_mem_slow``), so a natively reserved
record is addressable exactly — its bytes, while it is reserved — without a Region per
record in the JIT's table. Python sees them as Regions when it needs to:
:meth:`sync_native` registers a Region for every live native record (the JIT does so
around Python helper calls and region look-ups, and leaves them registered between
runs, so the interpreter and Python find outstanding records as they find their own);
:meth:`unsync_native` removes them again (the JIT, at the start of a run), and
:meth:`commit` removes a committed record's Region. When the slots are all taken, the
native reserve hands the call to Python, which reserves with a Region as usual.
``commit`` accepts both kinds of address. Without ``memfd_create`` the map has no alias
and no control block for native code (``native_desc`` is None): every call goes to
Python.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import weakref
from collections.abc import Callable, Iterator

from ...uapi.enums import MapType
from ..memory import Region
from .base import VMMap, _err
from .native import K_RINGBUF

__all__ = ["RingBufMap", "BUSY_BIT", "DISCARD_BIT", "HDR_SZ", "by_control_block"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SZ = 8
PAGE_SIZE = 4096
MAX_RECORD = 0x3FFFFFFF
# bpf_ringbuf_query flags
AVAIL_DATA, RING_SIZE, CONS_POS, PROD_POS = 0, 1, 2, 3
# submit/output flags
NO_WAKEUP, FORCE_WAKEUP = 1, 2

# control block words (u64); word 0 is the native descriptor's kind (K_RINGBUF)
R_KIND, R_PROD, R_CONS, R_MASK, R_SIZE, R_DATA, R_ALIAS, R_DROPPED, R_NRES = range(9)
# 2 * R_SLOTS words from here: (alias data address, length) of each native reservation
# (address 0: a free slot)
R_SLOT0 = 10
R_SLOTS = 32
R_WORDS = R_SLOT0 + 2 * R_SLOTS

_HDR = struct.Struct("<II")
_LEN = struct.Struct("<I")


_libc = ctypes.CDLL(None, use_errno=True)
_mmap = getattr(_libc, "mmap", None)
_munmap = getattr(_libc, "munmap", None)
if _mmap is not None and _munmap is not None:
    _mmap.restype = ctypes.c_void_p
    _mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    _munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = (1 << (8 * ctypes.sizeof(ctypes.c_void_p))) - 1


class _Mapping:
    """One ``mmap``'ed range, unmapped when the last array over it is gone."""

    def __init__(self, addr: int, length: int) -> None:
        self.addr, self.length = addr, length

    def __del__(self) -> None:
        if _munmap is not None:
            _munmap(self.addr, self.length)


def _double_map(n: int) -> tuple[ctypes.Array, ctypes.Array] | None:
    """Two ``n``-byte arrays over the same shared memory (None where that is impossible).

    Each mapping has a spare page after its ``n`` bytes that no Region ever covers, so
    the two (wherever the kernel puts them) are never adjacent in the address space:
    running off the end of one cannot land in the other. The memory file's descriptor is
    closed at once (the mappings keep the memory), and each array keeps its mapping.
    """
    if _mmap is None or _munmap is None or not hasattr(os, "memfd_create"):
        return None
    try:
        fd = os.memfd_create("bpfkit-ringbuf", os.MFD_CLOEXEC)
    except OSError:
        return None
    length = n + PAGE_SIZE
    arrays = []
    try:
        os.ftruncate(fd, length)
        for _ in range(2):
            addr = _mmap(None, length, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
            if addr is None or addr == _MAP_FAILED:
                return None
            owner = _Mapping(addr, length)
            arr = _RingData[n].from_address(addr)
            arr.mapping = owner
            arrays.append(arr)
    except OSError:
        return None
    finally:
        os.close(fd)
    return arrays[0], arrays[1]


class _RingDataTypes(dict):
    """``c_ubyte * n`` subclasses (their instances can hold the mapping they view)."""

    def __missing__(self, n: int) -> type:
        t = self[n] = type(f"RingData{n}", (ctypes.c_ubyte * n,), {})
        return t


_RingData = _RingDataTypes()

#: control block address -> its ring (the JIT finds a runtime's rings through the
#: control-block array of its native words)
_BY_CB: weakref.WeakValueDictionary[int, RingBufMap] = weakref.WeakValueDictionary()


def by_control_block(addr: int) -> RingBufMap | None:
    """The ring buffer whose control block is at ``addr`` (None if there is none)."""
    return _BY_CB.get(addr)


class RingBufMap(VMMap):
    """``BPF_MAP_TYPE_RINGBUF``."""

    type = MapType.RINGBUF
    has_keys = False

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.size = self.max_entries
        self.mask = self.size - 1
        n = 2 * self.size
        mapped = _double_map(n)
        self.cb = (ctypes.c_uint64 * R_WORDS)()
        self._w = memoryview(self.cb).cast("B").cast("Q")
        self.alias: Region | None = None
        #: the control block the JIT's native ring-buffer helpers use (None: Python only)
        self.native_desc: ctypes.Array | None = None
        #: Regions registered for native reservations (alias data address -> Region)
        self.native_regions: dict[int, Region] = {}
        if mapped is not None:
            self.buf = mapped[0]
            self._alias_buf = mapped[1]
            # the alias mapping's range (not registered: native records are bounded by
            # their reservation slots, see sync_native)
            self.alias = Region(f"ringbuf:{self.name}:alias", mapped[1])
            self.native_desc = self.cb
            _BY_CB[ctypes.addressof(self.cb)] = self
        else:
            self.buf = (ctypes.c_ubyte * n)()
        self.mv = memoryview(self.buf).cast("B")
        w = self._w
        w[R_KIND], w[R_MASK], w[R_SIZE] = K_RINGBUF, self.mask, self.size
        w[R_DATA] = ctypes.addressof(self.buf)
        w[R_ALIAS] = self.alias.base if self.alias is not None else 0
        self.reserved: dict[int, tuple[int, Region]] = {}  # data address -> (pos, region)

    def check(self) -> None:
        n = self.max_entries
        if self.key_size or self.value_size or n <= 0 or n & (n - 1) or n % PAGE_SIZE:
            raise _err(
                errno.EINVAL,
                "map_create",
                "ring buffers need key_size 0, "
                "value_size 0 and max_entries a power of two multiple of 4096",
            )

    # ---- shared state (the control block) -------------------------------------------
    @property
    def producer_pos(self) -> int:
        return self._w[R_PROD]

    @producer_pos.setter
    def producer_pos(self, v: int) -> None:
        self._w[R_PROD] = v

    @property
    def consumer_pos(self) -> int:
        return self._w[R_CONS]

    @consumer_pos.setter
    def consumer_pos(self, v: int) -> None:
        self._w[R_CONS] = v

    @property
    def dropped(self) -> int:
        """Reservations and outputs refused for lack of room."""
        return self._w[R_DROPPED]

    @dropped.setter
    def dropped(self, v: int) -> None:
        self._w[R_DROPPED] = v

    def native_reserved(self) -> list[int]:
        """Alias data addresses of the records reserved by native code, not yet committed."""
        w = self._w
        return [a for a in w[R_SLOT0 : R_SLOT0 + 2 * R_SLOTS : 2] if a]

    def native_records(self) -> dict[int, int]:
        """The records reserved by native code, not yet committed: address -> length."""
        w = self._w
        if not w[R_NRES]:
            return {}
        s = w[R_SLOT0 : R_SLOT0 + 2 * R_SLOTS]
        return {s[i]: s[i + 1] for i in range(0, 2 * R_SLOTS, 2) if s[i]}

    def sync_native(self) -> bool:
        """Register a Region for every live native reservation (and drop stale ones).

        Python (helpers, the interpreter) then finds a natively reserved record exactly
        as it finds one it reserved itself. True when any native Region is registered.
        """
        live = self.native_records() if self._w[R_NRES] else {}
        regs = self.native_regions
        if not live and not regs:
            return False
        for addr in [a for a in regs if a not in live]:
            self.space.remove(regs.pop(addr))
        alias = self.alias
        for addr, n in live.items():
            if addr in regs or not n or alias is None:
                continue
            off = addr - alias.base
            if off < 0 or off + n > alias.size:  # pragma: no cover - native code bug
                continue
            arr = (ctypes.c_ubyte * n).from_buffer(self._alias_buf, off)
            regs[addr] = self.space.add(
                Region(f"ringbuf:{self.name}@{(off - HDR_SZ) & self.mask}", arr)
            )
        return bool(regs)

    def unsync_native(self) -> None:
        """Remove the Regions :meth:`sync_native` registered."""
        regs = self.native_regions
        while regs:
            self.space.remove(regs.popitem()[1])

    @property
    def outstanding(self) -> int:
        """Records reserved and not yet submitted or discarded (Python and native)."""
        return len(self.reserved) + self._w[R_NRES]

    # ---- producer -----------------------------------------------------------------------
    def _claim(self, size: int) -> int:
        """Claim room for a ``size``-byte record (header written busy): its position or -1."""
        if size < 0 or size > MAX_RECORD:
            return -1
        w = self._w
        length = (size + HDR_SZ + 7) & ~7
        pos = w[R_PROD]
        if length > self.size or pos + length - w[R_CONS] > self.mask:
            w[R_DROPPED] += 1
            return -1
        off = pos & self.mask
        _HDR.pack_into(self.mv, off, size | BUSY_BIT, off // PAGE_SIZE)
        w[R_PROD] = pos + length
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

    def _finish(self, off: int, discard: bool) -> None:
        word = _LEN.unpack_from(self.mv, off)[0] & ~BUSY_BIT
        if discard:
            word |= DISCARD_BIT
        _LEN.pack_into(self.mv, off, word)

    def commit(self, addr: int, discard: bool = False) -> bool:
        """Submit (or discard) the record whose data is at ``addr``; False if unknown.

        ``addr`` is what a reserve returned: a Python reservation's Region, or a native
        reservation's address in the alias mapping.
        """
        entry = self.reserved.pop(addr, None)
        if entry is not None:
            pos, region = entry
            if region.size:
                self.space.remove(region)
            self._finish(pos & self.mask, discard)
            return True
        w, alias = self._w, self.alias
        if not w[R_NRES] or alias is None or not alias.base <= addr < alias.end:
            return False
        for i in range(R_SLOT0, R_SLOT0 + 2 * R_SLOTS, 2):
            if w[i] == addr:
                w[i] = w[i + 1] = 0
                w[R_NRES] -= 1
                region = self.native_regions.pop(addr, None)
                if region is not None:
                    self.space.remove(region)
                self._finish(addr - HDR_SZ - self.alias.base, discard)
                return True
        return False

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
        w = self._w
        if flag == AVAIL_DATA:
            return w[R_PROD] - w[R_CONS]
        if flag == RING_SIZE:
            return self.size
        if flag == CONS_POS:
            return w[R_CONS]
        if flag == PROD_POS:
            return w[R_PROD]
        return 0

    # ---- consumer -----------------------------------------------------------------------
    def records(self) -> Iterator[bytes]:
        """Consume committed records in order (stops at a busy one)."""
        mv, mask, unpack, w = self.mv, self.mask, _LEN.unpack_from, self._w
        cons = w[R_CONS]
        try:
            while cons < w[R_PROD]:
                off = cons & mask
                word = unpack(mv, off)[0]
                if word & BUSY_BIT:
                    break
                n = word & ~(BUSY_BIT | DISCARD_BIT)
                nxt = cons + ((n + HDR_SZ + 7) & ~7)
                if not word & DISCARD_BIT:
                    rec = bytes(mv[off + HDR_SZ : off + HDR_SZ + n])
                    cons = w[R_CONS] = nxt
                    yield rec
                else:
                    cons = w[R_CONS] = nxt
        finally:
            w[R_CONS] = cons

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
        return self._w[R_PROD] - self._w[R_CONS]

    def __len__(self) -> int:
        return self.available

    def close(self) -> None:
        if not self.closed:
            for _pos, region in self.reserved.values():
                if region.size:
                    self.space.remove(region)
            self.reserved.clear()
            self.unsync_native()
            w = self._w
            for i in range(R_SLOT0, R_SLOT0 + 2 * R_SLOTS):
                w[i] = 0
            w[R_NRES] = 0
        super().close()
