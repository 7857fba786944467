"""``BPF_MAP_TYPE_PERF_EVENT_ARRAY``: per-CPU output channels for ``bpf_perf_event_output``.

In the kernel each slot holds a perf event fd whose ring buffer a reader maps. In the
VM :meth:`PerfEventArrayMap.open` plays the reader: it opens a buffer of ``pages`` pages
for each CPU (slot ``i`` is CPU ``i``). Output to a slot nobody opened fails with
``-ENOENT``, as in the kernel; output into a full buffer is lost (``-ENOSPC``). A record's
data is padded so that ``u32 size`` plus the data is a multiple of 8, like a perf sample's
raw data.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from ...uapi.enums import MapType
from .fdarray import FdArrayMap

__all__ = ["PerfEventArrayMap", "PerfRecord", "PerfBuffer", "CURRENT_CPU"]

CURRENT_CPU = 0xFFFFFFFF
PAGE_SIZE = 4096


@dataclass(frozen=True)
class PerfRecord:
    """One sample: the CPU whose buffer it went to and its (padded) raw data."""

    cpu: int
    data: bytes


@dataclass
class PerfBuffer:
    """One CPU's buffer: its records, the bytes they take, what was lost."""

    cpu: int
    size: int
    records: list[bytes] = field(default_factory=list)
    used: int = 0
    lost: int = 0
    id: int = 0


class PerfEventArrayMap(FdArrayMap):
    """``BPF_MAP_TYPE_PERF_EVENT_ARRAY``."""

    type = MapType.PERF_EVENT_ARRAY

    def accept(self, obj: object) -> bool:
        return isinstance(obj, PerfBuffer)

    def open(self, cpus: list[int] | None = None, pages: int = 8) -> None:
        """Open a reader buffer of ``pages`` pages for each CPU in ``cpus`` (default all)."""
        for cpu in range(min(self.ctx.ncpus, self.max_entries)) if cpus is None else cpus:
            if not 0 <= cpu < self.max_entries:
                raise ValueError(f"cpu {cpu} is outside the map's {self.max_entries} slots")
            buf = PerfBuffer(cpu, pages * PAGE_SIZE)
            buf.id = self.ctx.new_id(buf)
            self.slots[cpu] = buf

    def output(self, flags: int, data: bytes) -> int:
        """``bpf_perf_event_output``'s effect: 0 or ``-errno``."""
        index = flags & 0xFFFFFFFF
        if index == CURRENT_CPU:
            index = self.ctx.cpu
        if index >= self.max_entries:
            return -errno.E2BIG
        buf = self.slots[index]
        if not isinstance(buf, PerfBuffer):
            return -errno.ENOENT
        raw_size = ((len(data) + 4 + 7) & ~7) - 4
        need = raw_size + 4 + 8  # sample: perf_event_header + size + data
        if buf.used + need > buf.size:
            buf.lost += 1
            return -errno.ENOSPC
        buf.used += need
        buf.records.append(bytes(data) + bytes(raw_size - len(data)))
        return 0

    def read(self) -> list[PerfRecord]:
        """Drain every open buffer: the records in CPU order, oldest first."""
        out: list[PerfRecord] = []
        for slot in self.slots:
            if isinstance(slot, PerfBuffer):
                out.extend(PerfRecord(slot.cpu, r) for r in slot.records)
                slot.records.clear()
                slot.used = 0
        return out

    @property
    def lost(self) -> int:
        """Samples lost because a buffer was full."""
        return sum(s.lost for s in self.slots if isinstance(s, PerfBuffer))
