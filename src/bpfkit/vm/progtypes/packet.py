"""A packet in native memory, as the kernel's linear skb/xdp buffer: headroom, data, tailroom.

Offsets (``meta``, ``data``, ``end``) are relative to the start of the buffer; the
program's pointers are ``base + offset``. Only ``[meta, end)`` is a registered Region, so
a program that reads past ``data_end`` faults instead of reading stale bytes; moving the
bounds (``bpf_xdp_adjust_head`` and friends) re-registers it and tells the context.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from ..env import PacketHeaders
from ..memory import AddressSpace, Region

__all__ = ["PacketBuffer"]


class PacketBuffer:
    """A packet: one buffer, the visible window ``[meta, end)``, and the data start."""

    def __init__(
        self,
        space: AddressSpace,
        size: int,
        headroom: int,
        data: bytes,
        *,
        meta_len: int = 0,
        min_head: int = 0,
        hard_end: int | None = None,
        name: str = "packet",
    ) -> None:
        self.space = space
        self.name = name
        self.buf = (ctypes.c_ubyte * size)()
        self.mv = memoryview(self.buf).cast("B")
        self.base = ctypes.addressof(self.buf)
        self.size = size
        self.meta = headroom
        self.data = headroom + meta_len
        self.end = headroom + len(data)
        self.mv[headroom : headroom + len(data)] = data
        self.min_head = min_head
        self.hard_end = size if hard_end is None else hard_end
        self.region: Region | None = None
        self.fields: dict[str, int] = {}
        #: buffer offsets of the network and MAC headers (skb packets; None: not set)
        self.network: int | None = None
        self.mac: int | None = None
        self.on_change: Callable[[PacketBuffer], None] | None = None
        self._register()

    def _register(self) -> None:
        if self.region is not None:
            self.space.remove(self.region)
        n = self.end - self.meta
        arr = (ctypes.c_ubyte * max(n, 1)).from_buffer(self.buf, self.meta)
        r = Region(self.name, arr)
        r.size, r.end = n, r.base + n
        self.region = r
        if n:
            self.space.add(r)

    # ---- what programs see ------------------------------------------------------------
    @property
    def length(self) -> int:
        """Bytes from ``data`` to ``end``."""
        return self.end - self.data

    @property
    def data_addr(self) -> int:
        return self.base + self.data

    @property
    def end_addr(self) -> int:
        return self.base + self.end

    @property
    def meta_addr(self) -> int:
        return self.base + self.meta

    @property
    def data_region(self) -> Region:
        """A Region starting at ``data`` (what legacy ``ld_abs`` loads index)."""
        r = self.region
        assert r is not None
        if self.meta == self.data:
            return r
        n = self.length
        arr = (ctypes.c_ubyte * max(n, 1)).from_buffer(self.buf, self.data)
        view = Region(self.name + ":data", arr)
        view.size, view.end = n, view.base + n
        return view

    def headers(self) -> PacketHeaders | None:
        """Where the network and MAC headers lie relative to ``data`` (for legacy loads
        at ``SKF_NET_OFF``/``SKF_LL_OFF``), None for a packet without a network header."""
        if self.network is None:
            return None
        net = self.network - self.data
        mac = None if self.mac is None else self.mac - self.data
        lo = min(0, net, 0 if mac is None else mac)
        start = self.data + lo
        assert start >= 0, "a header lies outside the packet buffer"
        n = self.end - start
        arr = (ctypes.c_ubyte * max(n, 1)).from_buffer(self.buf, start)
        front = Region(self.name + ":front", arr)
        front.size, front.end = n, front.base + n
        return PacketHeaders(net, mac, front, lo)

    def read(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``data + off``."""
        o = self.data + off
        return bytes(self.mv[o : o + n])

    def write(self, off: int, data: bytes) -> None:
        o = self.data + off
        self.mv[o : o + len(data)] = data

    def zero(self, start: int, n: int) -> None:
        """Zero ``n`` bytes at buffer offset ``start``."""
        self.mv[start : start + n] = bytes(n)

    def move(self, src: int, dst: int, n: int) -> None:
        """Move ``n`` bytes from buffer offset ``src`` to ``dst`` (memmove)."""
        chunk = bytes(self.mv[src : src + n])
        self.mv[dst : dst + n] = chunk

    def bytes(self, start: int | None = None, end: int | None = None) -> bytes:
        """Buffer bytes ``[start, end)`` (default: the visible window)."""
        s = self.meta if start is None else start
        e = self.end if end is None else end
        return bytes(self.mv[s:e])

    def set_bounds(self, meta: int, data: int, end: int) -> None:
        """Move the window (helpers that adjust head, tail or metadata)."""
        self.meta, self.data, self.end = meta, data, end
        self._register()
        if self.on_change is not None:
            self.on_change(self)

    def set_field(self, name: str, value: int) -> None:
        """Record a packet attribute a helper changed (``hash``, ...)."""
        self.fields[name] = value
        if self.on_change is not None:
            self.on_change(self)

    def close(self) -> None:
        if self.region is not None and self.region.size:
            self.space.remove(self.region)
        self.region = None
