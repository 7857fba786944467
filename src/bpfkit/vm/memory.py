"""The run's address space: every region a program may touch, at its real address.

A region is a native buffer (ctypes) registered as ``[base, base + size)`` with its
permissions. The interpreter, the JIT and Python all see the same bytes, so a pointer a
program stores in a map means the same thing everywhere. Lookups use a last-hit cache,
then bisection over the sorted region bases.
"""

from __future__ import annotations

import bisect
import ctypes
import struct
from dataclasses import dataclass, field

from ..errors import RuntimeFault

READ, WRITE = 1, 2
RW = READ | WRITE

_U = {
    1: struct.Struct("<B"),
    2: struct.Struct("<H"),
    4: struct.Struct("<I"),
    8: struct.Struct("<Q"),
}
_S = {
    1: struct.Struct("<b"),
    2: struct.Struct("<h"),
    4: struct.Struct("<i"),
    8: struct.Struct("<q"),
}


@dataclass(eq=False)
class Region:
    """A native buffer the program may access: ``[base, base + size)`` with permissions."""

    name: str
    buf: ctypes.Array
    perms: int = RW
    base: int = field(init=False)
    size: int = field(init=False)
    end: int = field(init=False)
    mv: memoryview = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.base = ctypes.addressof(self.buf)
        self.size = ctypes.sizeof(self.buf)
        self.end = self.base + self.size
        self.mv = memoryview(self.buf).cast("B")

    @classmethod
    def alloc(cls, name: str, size: int, perms: int = RW, init: bytes | None = None) -> Region:
        """A new zeroed region of ``size`` bytes (at least 1), optionally filled from ``init``."""
        buf = (ctypes.c_ubyte * max(size, 1))()
        if init:
            ctypes.memmove(buf, bytes(init), min(len(init), size))
        r = cls(name, buf, perms)
        r.size = size
        r.end = r.base + size
        return r

    def bytes(self) -> bytes:
        return bytes(self.mv[: self.size])


def _fault(kind: str, addr: int, size: int) -> RuntimeFault:
    return RuntimeFault(
        f"invalid {kind} of {size} byte{'s' if size > 1 else ''} at address {addr:#x}", address=addr
    )


class AddressSpace:
    """The set of regions a run may touch; resolves addresses and does checked access."""

    def __init__(self) -> None:
        self._bases: list[int] = []
        self._regions: list[Region] = []
        self._last: Region | None = None

    def add(self, region: Region) -> Region:
        """Register ``region``; it must not overlap an existing one."""
        i = bisect.bisect_right(self._bases, region.base)
        if i and self._regions[i - 1].end > region.base:
            raise ValueError(f"region {region.name} overlaps {self._regions[i - 1].name}")
        if i < len(self._regions) and region.end > self._regions[i].base:
            raise ValueError(f"region {region.name} overlaps {self._regions[i].name}")
        self._bases.insert(i, region.base)
        self._regions.insert(i, region)
        return region

    def remove(self, region: Region) -> None:
        """Unregister ``region`` (its address becomes invalid for programs)."""
        i = bisect.bisect_left(self._bases, region.base)
        if i < len(self._regions) and self._regions[i] is region:
            del self._bases[i]
            del self._regions[i]
        if self._last is region:
            self._last = None

    @property
    def regions(self) -> list[Region]:
        return list(self._regions)

    def find(self, addr: int, size: int = 1) -> Region | None:
        """The region containing ``[addr, addr + size)``, or ``None``."""
        r = self._last
        if r is not None and r.base <= addr and addr + size <= r.end:
            return r
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            r = self._regions[i]
            if addr + size <= r.end:
                self._last = r
                return r
        return None

    # ---- checked access used by the interpreter and helpers ----------------
    def load(self, addr: int, size: int) -> int:
        """Read an unsigned little-endian integer of ``size`` bytes."""
        r = self.find(addr, size)
        if r is None or not r.perms & READ:
            raise _fault("read", addr, size)
        return _U[size].unpack_from(r.mv, addr - r.base)[0]

    def store(self, addr: int, size: int, value: int) -> None:
        """Write the low ``size`` bytes of ``value`` little-endian."""
        r = self.find(addr, size)
        if r is None or not r.perms & WRITE:
            raise _fault("write", addr, size)
        _U[size].pack_into(r.mv, addr - r.base, value & ((1 << (8 * size)) - 1))

    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes (helpers: probe_read, map keys, ...)."""
        if size == 0:
            return b""
        r = self.find(addr, size)
        if r is None or not r.perms & READ:
            raise _fault("read", addr, size)
        o = addr - r.base
        return bytes(r.mv[o : o + size])

    def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` at ``addr``."""
        if not data:
            return
        r = self.find(addr, len(data))
        if r is None or not r.perms & WRITE:
            raise _fault("write", addr, len(data))
        o = addr - r.base
        r.mv[o : o + len(data)] = data

    def zero(self, addr: int, size: int) -> None:
        """Write ``size`` zero bytes at ``addr`` (checked before anything is allocated:
        ``size`` comes from a program's register and may be anything)."""
        if not size:
            return
        r = self.find(addr, size)
        if r is None or not r.perms & WRITE:
            raise _fault("write", addr, size)
        ctypes.memset(addr, 0, size)

    def write_padded(self, addr: int, data: bytes, size: int) -> None:
        """Write ``data`` then zeros up to ``size`` bytes (data is cut at ``size``)."""
        if not size:
            return
        r = self.find(addr, size)
        if r is None or not r.perms & WRITE:
            raise _fault("write", addr, size)
        data = data[:size]
        o = addr - r.base
        r.mv[o : o + len(data)] = data
        ctypes.memset(addr + len(data), 0, size - len(data))

    def view(self, addr: int, size: int, write: bool = False) -> memoryview:
        """A memoryview over ``[addr, addr + size)`` in one region (zero-copy)."""
        r = self.find(addr, max(size, 1))
        if r is None or not r.perms & (WRITE if write else READ):
            raise _fault("write" if write else "read", addr, size)
        o = addr - r.base
        return r.mv[o : o + size]

    def read_cstr(self, addr: int, limit: int) -> bytes:
        """Read a NUL-terminated string of at most ``limit`` bytes (without the NUL)."""
        r = self.find(addr, 1)
        if r is None or not r.perms & READ:
            raise _fault("read", addr, 1)
        o = addr - r.base
        chunk = bytes(r.mv[o : min(r.size, o + limit)])
        nul = chunk.find(b"\0")
        return chunk if nul < 0 else chunk[:nul]
