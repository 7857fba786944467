"""Read a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY``: one perf ring per CPU, samples and lost counts.

For each CPU a ``PERF_COUNT_SW_BPF_OUTPUT`` event is opened and mmapped (one metadata
page plus a power-of-two number of data pages), its fd stored in the map at the CPU's
index and the event enabled; ``bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, ...)``
then writes ``PERF_RECORD_SAMPLE`` records (a ``u32`` size and the raw data, padded so
that both are a multiple of 8 bytes) into the ring of the CPU it runs on. When a ring is
full the kernel drops samples and later writes a ``PERF_RECORD_LOST`` record with how
many; :attr:`PerfBuffer.lost` adds them up.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import BpfError
from . import sys as bsys
from .perf_event import (
    ATTR_WATERMARK,
    PERF_COUNT_SW_BPF_OUTPUT,
    PERF_SAMPLE_RAW,
    PERF_TYPE_SOFTWARE,
    PerfEventAttr,
    ioctl_disable,
    ioctl_enable,
    online_cpus,
    perf_event_open,
)

__all__ = ["PerfBuffer", "PerfSample"]

PAGE = mmap.PAGESIZE
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
_DATA_HEAD = 1024  # offsets in struct perf_event_mmap_page
_DATA_TAIL = 1032
_HDR = struct.Struct("<IHH")
_U32 = struct.Struct("<I")
_LOST = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class PerfSample:
    """One sample: the CPU whose ring it came from and its (padded) raw data."""

    cpu: int
    data: bytes


class _CpuRing:
    def __init__(self, cpu: int, fd: bsys.FD, pages: int) -> None:
        self.cpu = cpu
        self.fd = fd
        self.size = pages * PAGE
        self.map = mmap.mmap(
            fd.fileno(), PAGE + self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.mv = memoryview(self.map)
        self.meta = self.mv[:PAGE].cast("Q")
        self.data = self.mv[PAGE:]

    def drain(self, out: list, lost: list[int], limit: int | None) -> None:
        head = self.meta[_DATA_HEAD // 8]
        tail = self.meta[_DATA_TAIL // 8]
        size, data, mask = self.size, self.data, self.size - 1
        while tail < head and (limit is None or len(out) < limit):
            off = tail & mask
            if off + 8 <= size:
                rtype, _misc, rsize = _HDR.unpack_from(data, off)
            else:
                hdr = bytes(data[off:]) + bytes(data[: 8 - (size - off)])
                rtype, _misc, rsize = _HDR.unpack(hdr)
            if rsize < 8:
                break  # corrupt; stop rather than spin
            if off + rsize <= size:
                rec = data[off + 8 : off + rsize]
            else:
                rec = memoryview(bytes(data[off + 8 :]) + bytes(data[: rsize - (size - off)]))
            if rtype == PERF_RECORD_SAMPLE:
                n = _U32.unpack_from(rec, 0)[0]
                out.append((self.cpu, bytes(rec[4 : 4 + n])))
            elif rtype == PERF_RECORD_LOST:
                lost[0] += _LOST.unpack_from(rec, 0)[1]
            tail += rsize
        self.meta[_DATA_TAIL // 8] = tail

    def close(self) -> None:
        for v in (self.meta, self.data, self.mv):
            v.release()
        self.map.close()
        self.fd.close()


class PerfBuffer(bsys.Closing):
    """Per-CPU perf rings behind a perf event array map; ``read()`` the samples."""

    def __init__(
        self,
        map_fd: bsys.FdLike,
        *,
        cpus: Iterable[int] | None = None,
        pages: int = 8,
        wakeup_events: int = 1,
        watermark: int = 0,
    ) -> None:
        if pages <= 0 or pages & (pages - 1):
            raise BpfError(f"perf buffer pages must be a power of 2, not {pages}")
        self._map = bsys.FD(os.dup(bsys.fdnum(map_fd)))
        mfd = self._map.fileno()
        max_entries = bsys.map_info(mfd).max_entries
        self.rings: dict[int, _CpuRing] = {}
        self.lost_count = [0]
        self._ep = select.epoll()
        self._map_fd = mfd
        try:
            for cpu in cpus if cpus is not None else online_cpus():
                if cpu >= max_entries:
                    continue
                attr = PerfEventAttr(
                    type=PERF_TYPE_SOFTWARE,
                    config=PERF_COUNT_SW_BPF_OUTPUT,
                    sample_type=PERF_SAMPLE_RAW,
                    sample_period=1,
                )
                if watermark:
                    attr.flags |= ATTR_WATERMARK
                    attr.wakeup_events = watermark
                else:
                    attr.wakeup_events = wakeup_events
                fd = perf_event_open(attr, -1, cpu)
                try:
                    ring = _CpuRing(cpu, fd, pages)
                except BaseException:
                    fd.close()
                    raise
                self.rings[cpu] = ring
                bsys.map_update(mfd, struct.pack("<I", cpu), struct.pack("<I", fd.fileno()))
                ioctl_enable(fd)
                self._ep.register(fd.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    @property
    def lost(self) -> int:
        """Samples the kernel dropped because a ring was full."""
        return self.lost_count[0]

    def read(self, limit: int | None = None) -> list[tuple[int, bytes]]:
        """(cpu, data) of every sample available now, CPU by CPU."""
        out: list[tuple[int, bytes]] = []
        for ring in self.rings.values():
            ring.drain(out, self.lost_count, limit)
        return out

    def poll(
        self, callback: Callable[[int, bytes], Any] | None = None, timeout: float = 0.0
    ) -> list[tuple[int, bytes]] | int:
        """Wait up to ``timeout`` seconds for samples, then read them (or pass each to ``callback``)."""
        samples = self.read()
        if not samples and timeout:
            self._ep.poll(timeout)
            samples = self.read()
        if callback is None:
            return samples
        for cpu, data in samples:
            callback(cpu, data)
        return len(samples)

    def close(self) -> None:
        """Disable and unmap every ring, and clear the map's slots (idempotent)."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        for cpu, ring in list(self.rings.items()):
            try:
                ioctl_disable(ring.fd)
                bsys.map_delete(self._map_fd, struct.pack("<I", cpu))
            except OSError:
                pass
            ring.close()
        self.rings.clear()
        self._ep.close()
        self._map.close()
