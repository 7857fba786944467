"""Array maps: ``BPF_MAP_TYPE_ARRAY``, ``PERCPU_ARRAY`` and the global-data arrays.

Every element always exists (zero-filled); keys are ``u32`` indices; delete is
``EINVAL``. Values sit in one native buffer of ``max_entries`` 8-byte-aligned elements
(per CPU for the per-CPU flavour), registered as one Region for the map's lifetime.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Iterator

from ...uapi.enums import MapType
from ..memory import READ, Region
from .base import ANY, NOEXIST, KeyScratch, VMMap, _err, round8
from .native import D_PERMS, K_ARRAY, K_PERCPU_ARRAY, new_descriptor

__all__ = ["ArrayMap", "PercpuArrayMap"]

_U32 = struct.Struct("<I")


class ArrayMap(VMMap):
    """``BPF_MAP_TYPE_ARRAY`` (also ``.data``/``.bss``/``.rodata``: one element)."""

    type = MapType.ARRAY

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.elem_size = round8(self.value_size)
        parts = self.ctx.ncpus if self.percpu else 1
        self.parts = parts
        total = self.elem_size * self.max_entries * parts
        self.buf = (ctypes.c_ubyte * max(total, 1))()
        self.region = self.space.add(Region(f"map:{self.name}:values", self.buf, self.value_perms))
        self.mv = self.region.mv
        self.base = self.region.base
        self._scratch: KeyScratch | None = None
        # what the JIT's native map helpers read (see .native)
        self.native_desc = None
        cls = type(self)
        if cls.prog_lookup is ArrayMap.prog_lookup and cls.prog_update is ArrayMap.prog_update:
            d = self.native_desc = new_descriptor(K_PERCPU_ARRAY if self.percpu else K_ARRAY)
            d[1], d[2], d[3], d[4], d[5] = (
                4,
                self.value_size,
                self.max_entries,
                self.elem_size,
                self.base,
            )
            d[D_PERMS] = self.region.perms  # native updates need WRITE (else: Python)

    def check(self) -> None:
        super().check()
        if self.key_size != 4:
            raise _err(errno.EINVAL, "map_create", "array maps need key_size 4")
        if round8(self.value_size) * self.max_entries > 0xFFFFFFFF:
            raise _err(errno.E2BIG, "map_create", "array too large")

    # -- helpers --
    def _index(self, key: bytes, command: str) -> int:
        return _U32.unpack(self._check_key(key, command))[0]

    def _off(self, idx: int, cpu: int = 0) -> int:
        return (cpu * self.max_entries + idx) * self.elem_size

    def memory(self) -> memoryview:
        """All values as one writable memoryview (what ``mmap`` of the map shows)."""
        return self.mv

    def freeze(self) -> None:
        super().freeze()

    def set_prog_readonly(self) -> None:
        """Make values read-only to programs (``BPF_F_RDONLY_PROG``, ``.rodata``)."""
        self.region.perms = READ
        if self.native_desc is not None:
            self.native_desc[D_PERMS] = READ

    @property
    def prog_perms(self) -> int:
        return self.region.perms

    # -- syscall face --
    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        idx = self._index(key, "map_lookup_elem")
        if idx >= self.max_entries:
            raise _err(errno.ENOENT, "map_lookup_elem")
        o = self._off(idx)
        return bytes(self.mv[o : o + self.value_size])

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        self._check_write("map_update_elem")
        self._check_flags(flags, "map_update_elem")
        idx = self._index(key, "map_update_elem")
        value = self._check_value(value, "map_update_elem")
        if idx >= self.max_entries:
            raise _err(errno.E2BIG, "map_update_elem", f"index {idx} >= {self.max_entries}")
        if flags & 3 == NOEXIST:
            raise _err(errno.EEXIST, "map_update_elem", "array elements always exist")
        o = self._off(idx)
        self.mv[o : o + self.value_size] = value

    def delete(self, key: bytes) -> None:
        raise _err(errno.EINVAL, "map_delete_elem", "array elements cannot be deleted")

    def get_next_key(self, key: bytes | None) -> bytes:
        idx = None if key is None else self._index(key, "map_get_next_key")
        if idx is None or idx >= self.max_entries:
            return _U32.pack(0)
        if idx == self.max_entries - 1:
            raise _err(errno.ENOENT, "map_get_next_key")
        return _U32.pack(idx + 1)

    def keys(self) -> Iterator[bytes]:
        return (_U32.pack(i) for i in range(self.max_entries))

    def __len__(self) -> int:
        return self.max_entries

    # -- program face --
    def prog_lookup(self, key_addr: int) -> int:
        idx = self.space.load(key_addr, 4)
        if idx >= self.max_entries:
            return 0
        return self.base + self._off(idx, self.ctx.cpu if self.percpu else 0)

    def prog_update(self, key_addr: int, value_addr: int, flags: int) -> int:
        if flags & ~7 or flags & 3 == 3:
            return -errno.EINVAL
        idx = self.space.load(key_addr, 4)
        if idx >= self.max_entries:
            return -errno.E2BIG
        if flags & 3 == NOEXIST:
            return -errno.EEXIST
        data = self.space.read(value_addr, self.value_size)
        o = self._off(idx, self.ctx.cpu if self.percpu else 0)
        self.mv[o : o + self.value_size] = data
        return 0

    def prog_delete(self, key_addr: int) -> int:
        return -errno.EINVAL

    def prog_lookup_percpu(self, key_addr: int, cpu: int) -> int:
        if not self.percpu:
            return 0
        idx = self.space.load(key_addr, 4)
        if idx >= self.max_entries or cpu >= self.ctx.ncpus:
            return 0
        return self.base + self._off(idx, cpu)

    def prog_items(self) -> Iterator[tuple[int, int]]:
        if self._scratch is None:
            self._scratch = KeyScratch(f"map:{self.name}:key", 4, self.space)
        cpu = self.ctx.cpu if self.percpu else 0
        for i in range(self.max_entries):
            yield self._scratch.put(_U32.pack(i)), self.base + self._off(i, cpu)

    def close(self) -> None:
        if not self.closed:
            self.space.remove(self.region)
            if self._scratch is not None:
                self._scratch.close()
        super().close()


class PercpuArrayMap(ArrayMap):
    """``BPF_MAP_TYPE_PERCPU_ARRAY``: one value per CPU; programs see their CPU's."""

    type = MapType.PERCPU_ARRAY
    percpu = True

    def lookup(self, key: bytes, flags: int = 0) -> bytes:
        idx = self._index(key, "map_lookup_elem")
        if idx >= self.max_entries:
            raise _err(errno.ENOENT, "map_lookup_elem")
        out = bytearray()
        pad = bytes(self.elem_size - self.value_size)
        for cpu in range(self.ctx.ncpus):
            o = self._off(idx, cpu)
            out += self.mv[o : o + self.value_size]
            out += pad
        return bytes(out)

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        self._check_write("map_update_elem")
        self._check_flags(flags, "map_update_elem")
        idx = self._index(key, "map_update_elem")
        value = self._check_value(value, "map_update_elem")
        if idx >= self.max_entries:
            raise _err(errno.E2BIG, "map_update_elem", f"index {idx} >= {self.max_entries}")
        if flags & 3 == NOEXIST:
            raise _err(errno.EEXIST, "map_update_elem", "array elements always exist")
        for cpu in range(self.ctx.ncpus):
            o = self._off(idx, cpu)
            s = cpu * self.elem_size
            self.mv[o : o + self.value_size] = value[s : s + self.value_size]
