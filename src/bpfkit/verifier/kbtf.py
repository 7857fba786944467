"""Reads of kernel structs through their BTF: the kernel's ``btf_struct_access``.

A program may read the fields of the kernel object behind some pointers (a map pointer
reads its ``struct bpf_array``/``struct bpf_htab``...). What such a read gives — a
scalar, a pointer to another kernel struct, or an error — depends on the struct's
layout in the running kernel, so the running kernel's own BTF
(``/sys/kernel/btf/vmlinux``) is walked the way ``btf_struct_walk`` walks it. Where
that BTF cannot be read, such accesses are refused ("not supported").
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..btf.types import BtfKind

VMLINUX = Path("/sys/kernel/btf/vmlinux")
MAX_RESOLVE_DEPTH = 32

#: ``map->ops->map_btf_id``: the kernel struct behind each map type
MAP_STRUCTS: dict[int, str] = {
    1: "bpf_htab",  # hash
    2: "bpf_array",
    3: "bpf_array",  # prog array
    4: "bpf_array",  # perf event array
    5: "bpf_htab",  # percpu hash
    6: "bpf_array",  # percpu array
    7: "bpf_stack_map",
    8: "bpf_array",  # cgroup array
    9: "bpf_htab",  # lru hash
    10: "bpf_htab",  # lru percpu hash
    11: "lpm_trie",
    12: "bpf_array",  # array of maps
    13: "bpf_htab",  # hash of maps
    14: "bpf_dtab",  # devmap
    15: "bpf_stab",  # sockmap
    16: "bpf_cpu_map",
    17: "xsk_map",
    18: "bpf_shtab",  # sockhash
    19: "bpf_cgroup_storage_map",
    20: "reuseport_array",
    21: "bpf_cgroup_storage_map",  # percpu cgroup storage
    22: "bpf_queue_stack",  # queue
    23: "bpf_queue_stack",  # stack
    24: "bpf_local_storage_map",  # sk storage
    25: "bpf_dtab",  # devmap hash
    26: "bpf_struct_ops_map",
    27: "bpf_ringbuf_map",
    28: "bpf_local_storage_map",  # inode storage
    29: "bpf_local_storage_map",  # task storage
    30: "bpf_bloom_filter",
    31: "bpf_ringbuf_map",  # user ringbuf
    32: "bpf_local_storage_map",  # cgrp storage
    33: "bpf_arena",
}


class StructAccessError(Exception):
    """The access is refused; ``args[0]`` is the kernel's message."""


@functools.cache
def vmlinux() -> Any:
    """The running kernel's BTF, parsed once (None when it cannot be read)."""
    from ..btf.parser import parse_btf
    from ..errors import BpfError

    try:
        return parse_btf(VMLINUX.read_bytes())
    except (OSError, BpfError):
        return None


@functools.cache
def struct_id(name: str) -> int | None:
    """The type id of ``struct name`` in the running kernel's BTF."""
    btf = vmlinux()
    if btf is None:
        return None
    t = btf.find(name, BtfKind.STRUCT)
    return None if t is None else t.id


_MODS = (
    BtfKind.TYPEDEF,
    BtfKind.VOLATILE,
    BtfKind.CONST,
    BtfKind.RESTRICT,
    BtfKind.TYPE_TAG,
)
_SIZED = (BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.FLOAT, BtfKind.ENUM64)
_STRUCTS = (BtfKind.STRUCT, BtfKind.UNION)


def _skip_mods(btf: Any, tid: int) -> tuple[Any, int]:
    t = btf.get(tid)
    for _ in range(MAX_RESOLVE_DEPTH):
        if t.kind not in _MODS:
            return t, tid
        tid = t.type
        t = btf.get(tid)
    raise StructAccessError("type chain too long")


def _resolve_size(btf: Any, tid: int) -> tuple[Any, int, Any, int]:
    """``__btf_resolve_size``: (the type, or its outermost array; the total size; the
    element type behind arrays and modifiers; the element count)."""
    t = btf.get(tid)
    array_type = None
    nelems = 1
    for _ in range(MAX_RESOLVE_DEPTH):
        k = t.kind
        if k in _SIZED:
            size = t.size
            break
        if k == BtfKind.PTR:
            size = 8
            break
        if k in _MODS:
            t = btf.get(t.type)
            continue
        if k == BtfKind.ARRAY:
            if array_type is None:
                array_type = t
            nelems *= t.nelems
            t = btf.get(t.type)
            continue
        raise ValueError("no size")
    else:
        raise ValueError("no size")
    return (array_type or t), nelems * size, t, nelems


def _member_bits(m: Any) -> tuple[int, int]:
    return m.bit_offset, m.bitfield_size or 0


def struct_walk(btf: Any, tid: int, off: int, size: int) -> tuple[str, int]:
    """``btf_struct_walk`` plus ``btf_struct_access``'s loop: ("scalar", 0) or
    ("ptr", id of the pointed-to struct); raises :class:`StructAccessError`."""
    untrusted = False
    t, _ = _skip_mods(btf, tid)
    while True:
        t, _ = _skip_mods(btf, t.id)
        tname = t.name or "(anon)"  # the kernel's __btf_name_by_offset
        if t.kind not in _STRUCTS:
            raise StructAccessError(f"Type '{tname}' is not a struct")
        members = t.members
        if t.kind == BtfKind.UNION and len(members) != 1:
            untrusted = True  # walking unions yields untrusted pointers
        if off + size > t.size:
            # a flexible array at the end may be walked past the struct's size
            ok = False
            if members:
                last = members[-1]
                mt, _ = _skip_mods(btf, last.type)
                if mt.kind == BtfKind.ARRAY and mt.nelems == 0:
                    moff = last.bit_offset // 8
                    if off >= moff:
                        et, _ = _skip_mods(btf, mt.type)
                        if et.kind == BtfKind.INT:
                            return "scalar", 0
                        if et.kind in _STRUCTS and et.size:
                            off = (off - moff) % et.size
                            t = et
                            ok = True
            if ok:
                continue
            raise StructAccessError(f"access beyond struct {tname} at off {off} size {size}")
        nxt = None
        for m in members:
            bit_off, bits = _member_bits(m)
            moff = bit_off // 8
            if off + size <= moff:
                break  # won't find anything, the field is already too far
            if bits:
                end_bit = bit_off + bits
                if off <= moff and (end_bit + 7) // 8 <= off + size:
                    return "scalar", 0
                continue
            if off < moff:
                break  # a hole in the struct
            mname = m.name or "(anon)"
            try:
                mtype, msize, elem_type, total = _resolve_size(btf, m.type)
            except ValueError:
                raise StructAccessError(f"field {mname} doesn't have size") from None
            mtrue_end = moff + msize
            if off >= mtrue_end:
                continue  # no overlap with the member
            if mtype.kind == BtfKind.ARRAY:
                if moff == mtrue_end:
                    continue  # an empty array
                msize //= total
                moff += ((off - moff) // msize) * msize
                mtype = elem_type
            if mtype.kind in _STRUCTS:
                if off == moff:
                    nxt = mtype  # a nested struct at its start: dive in at offset 0
                    off = 0
                    break
                off -= moff
                nxt = mtype
                break
            if mtype.kind == BtfKind.PTR:
                if msize != size or off != moff:
                    raise StructAccessError(
                        f"cannot access ptr member {mname} with moff {moff} in struct "
                        f"{tname} with off {off} size {size}"
                    )
                st, sid = _skip_mods(btf, mtype.type)
                if st.kind in _STRUCTS:
                    return "ptr", sid
            if off + size > mtrue_end and not untrusted:
                raise StructAccessError(
                    f"access beyond the end of member {mname} (mend:{mtrue_end}) in struct "
                    f"{tname} with off {off} size {size}"
                )
            return "scalar", 0
        if nxt is None:
            raise StructAccessError(f"struct {tname} doesn't have field at offset {off}")
        t = nxt
