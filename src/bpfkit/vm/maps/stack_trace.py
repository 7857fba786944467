"""``BPF_MAP_TYPE_STACK_TRACE``: stacks stored by ``bpf_get_stackid``, keyed by stack id.

A value is up to ``value_size / 8`` instruction pointers (``u64``), zero-padded. The id
of a stack is a hash of its frames masked to the bucket count (``max_entries`` rounded up
to a power of two). A different stack hashing to a taken bucket fails with ``-EEXIST``
unless ``BPF_F_REUSE_STACKID`` lets it replace the old one.
"""

from __future__ import annotations

import errno
import struct
import zlib
from collections.abc import Iterator

from ...uapi.enums import MapType
from .base import VMMap, _err

__all__ = ["StackTraceMap", "SKIP_FIELD_MASK", "USER_STACK", "FAST_STACK_CMP", "REUSE_STACKID"]

SKIP_FIELD_MASK = 0xFF
USER_STACK = 1 << 8
FAST_STACK_CMP = 1 << 9
REUSE_STACKID = 1 << 10

_U32 = struct.Struct("<I")


class StackTraceMap(VMMap):
    """``BPF_MAP_TYPE_STACK_TRACE``."""

    type = MapType.STACK_TRACE

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.depth = self.value_size // 8
        self.n_buckets = 1 << max(0, (self.max_entries - 1).bit_length())
        self.buckets: dict[int, tuple[int, ...]] = {}

    def check(self) -> None:
        super().check()
        if self.key_size != 4 or self.value_size % 8 or self.value_size // 8 > 127:
            raise _err(
                errno.EINVAL,
                "map_create",
                "stack trace maps need key_size 4 and "
                "value_size a multiple of 8 (at most 127 frames)",
            )

    def get_stackid(self, ips: list[int], flags: int) -> int:
        """Store a stack (already without skipped frames): its id, or ``-errno``."""
        frames = tuple(ip & 0xFFFFFFFFFFFFFFFF for ip in ips[: self.depth])
        if not frames:
            return -errno.EFAULT
        raw = struct.pack(f"<{len(frames)}Q", *frames)
        sid = zlib.crc32(raw) & (self.n_buckets - 1)
        old = self.buckets.get(sid)
        if old is not None and old != frames and not flags & REUSE_STACKID:
            return -errno.EEXIST
        self.buckets[sid] = frames
        return sid

    def _value(self, frames: tuple[int, ...]) -> bytes:
        return struct.pack(f"<{len(frames)}Q", *frames) + bytes(8 * (self.depth - len(frames)))

    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        sid = _U32.unpack(self._check_key(key, "map_lookup_elem"))[0]
        frames = self.buckets.get(sid)
        if frames is None:
            raise _err(errno.ENOENT, "map_lookup_elem")
        return self._value(frames)

    def delete(self, key: bytes) -> None:
        self._check_write("map_delete_elem")
        sid = _U32.unpack(self._check_key(key, "map_delete_elem"))[0]
        if self.buckets.pop(sid, None) is None:
            raise _err(errno.ENOENT, "map_delete_elem")

    def get_next_key(self, key: bytes | None) -> bytes:
        start = -1 if key is None else _U32.unpack(self._check_key(key, "map_get_next_key"))[0]
        later = [s for s in self.buckets if s > start]
        if not later:
            raise _err(errno.ENOENT, "map_get_next_key")
        return _U32.pack(min(later))

    def keys(self) -> Iterator[bytes]:
        return (_U32.pack(s) for s in sorted(self.buckets))

    def __len__(self) -> int:
        return len(self.buckets)
