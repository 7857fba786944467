"""Decode and encode values of a BTF type, so maps and globals read as Python data.

Mapping: integers and enums are ``int`` (``bool`` for a BTF bool), pointers ``int``,
floats ``float``, structs and unions :class:`~bpfkit.btf.codec.Record` (a ``dict`` by
member name with attribute access; members of anonymous nested structs/unions are merged
into the parent), arrays ``list`` except arrays of ``char``, which are ``str`` when they
hold a C string and ``bytes`` otherwise (:func:`~bpfkit.btf.codec.c_string`); a DATASEC
is a ``Record`` by variable name; anything else (void, forward declarations, functions)
falls back to ``bytes``. Encoding takes the same, any mapping for a struct, and ``str``
or ``bytes`` for ``char[]``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from ..errors import BtfError
from ..uapi.btf import BtfKind
from .codec import Record, c_string
from .types import Btf, BtfType

__all__ = ["decode_value", "encode_value", "MAX_VALUE_SIZE"]

MAX_VALUE_SIZE = 1 << 28
_MAX_DEPTH = 64
_MAX_ZERO_ELEMS = 1 << 16
_FLOATS = {2: "<e", 4: "<f", 8: "<d"}


def _is_char_array(btf: Btf, t: BtfType) -> bool:
    e = btf.resolve(t.type)  # type: ignore[attr-defined]
    return e.kind == BtfKind.INT and e.size == 1 and e.is_char  # type: ignore[attr-defined]


def decode_value(btf: Btf, type_id: int, data: bytes | bytearray | memoryview) -> Any:
    """The Python value of ``data`` read as BTF type ``type_id`` (``BtfError`` if too short)."""
    data = bytes(data)
    size = _size(btf, type_id)
    if len(data) < size:
        raise BtfError(f"{len(data)} bytes are too few for {btf.type_name(type_id)} ({size} bytes)")
    return _dec(btf, type_id, data[:size], 0)


def _size(btf: Btf, type_id: int) -> int:
    t = btf.resolve(type_id)
    if t.kind in (BtfKind.UNKN, BtfKind.FWD, BtfKind.FUNC, BtfKind.FUNC_PROTO):
        raise BtfError(f"type {type_id} ({t.kind.name}) has no value size")
    return btf.size_of(type_id)


def _dec(btf: Btf, tid: int, data: bytes, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise BtfError(f"type {tid}: nesting too deep to decode")
    t = btf.resolve(tid)
    k = t.kind
    if k == BtfKind.INT:
        raw = int.from_bytes(data[: t.size], "little")  # type: ignore[attr-defined]
        return _int_bits(t, raw, t.offset, t.bits)  # type: ignore[attr-defined]
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        return int.from_bytes(data[: t.size], "little", signed=t.signed)  # type: ignore[attr-defined]
    if k == BtfKind.PTR:
        return int.from_bytes(data[:8], "little")
    if k == BtfKind.FLOAT:
        fmt = _FLOATS.get(t.size)  # type: ignore[attr-defined]
        return struct.unpack(fmt, data[: t.size])[0] if fmt else bytes(data[: t.size])  # type: ignore[attr-defined]
    if k == BtfKind.ARRAY:
        if _is_char_array(btf, t):
            return c_string(bytes(data[: t.nelems]))  # type: ignore[attr-defined]
        esize = btf.size_of(t.type)  # type: ignore[attr-defined]
        n = t.nelems  # type: ignore[attr-defined]
        if esize == 0 and n > _MAX_ZERO_ELEMS:
            raise BtfError(f"type {tid}: {n} zero-sized elements")
        return [
            _dec(btf, t.type, data[i * esize : (i + 1) * esize], depth + 1)  # type: ignore[attr-defined]
            for i in range(n)
        ]
    if k in (BtfKind.STRUCT, BtfKind.UNION):
        out: dict[str, Any] = Record()
        for m in t.members:  # type: ignore[attr-defined]
            mt = btf.resolve(m.type)
            if m.bitfield_size or (mt.kind == BtfKind.INT and mt.bits != mt.size * 8):  # type: ignore[attr-defined]
                v = _read_bits(btf, m, data)
            else:
                off = m.bit_offset // 8
                msize = btf.size_of(m.type)
                if off + msize > len(data):
                    raise BtfError(f"type {tid}: member {m.name!r} lies outside the value")
                v = _dec(btf, m.type, data[off : off + msize], depth + 1)
            if not m.name and isinstance(v, dict) and mt.kind in (BtfKind.STRUCT, BtfKind.UNION):
                out.update(v)
            elif m.name:
                out[m.name] = v
        return out
    if k == BtfKind.DATASEC:
        out = Record()
        for v in t.vars:  # type: ignore[attr-defined]
            var = btf.get(v.type)
            if var.kind != BtfKind.VAR:
                continue
            if v.offset + v.size > len(data):
                raise BtfError(f"variable {var.name!r} lies outside section {t.name!r}")
            out[var.name] = _dec(btf, var.type, data[v.offset : v.offset + v.size], depth + 1)  # type: ignore[attr-defined]
        return out
    if k == BtfKind.VAR:
        return _dec(btf, t.type, data, depth + 1)  # type: ignore[attr-defined]
    return bytes(data)


def _int_bits(t: BtfType, raw: int, offset: int, bits: int) -> int | bool:
    v = (raw >> offset) & ((1 << bits) - 1)
    if getattr(t, "is_bool", False):
        return bool(v)
    if getattr(t, "signed", False) and v >> (bits - 1):
        v -= 1 << bits
    return v


def _read_bits(btf: Btf, m: Any, data: bytes) -> int | bool:
    mt = btf.resolve(m.type)
    bits = m.bitfield_size or getattr(mt, "bits", 0)
    start = m.bit_offset + (getattr(mt, "offset", 0) if not m.bitfield_size else 0)
    first, last = start // 8, (start + bits + 7) // 8
    if last > len(data):
        raise BtfError(f"bitfield {m.name!r} lies outside the value")
    raw = int.from_bytes(data[first:last], "little")
    return _int_bits(mt, raw, start - first * 8, bits)


# ---- encoding -------------------------------------------------------------------


def encode_value(btf: Btf, type_id: int, value: Any) -> bytes:
    """The bytes of ``value`` as BTF type ``type_id`` (``BtfError`` when it does not fit)."""
    size = _size(btf, type_id)
    if size > MAX_VALUE_SIZE:
        raise BtfError(f"type {type_id} is too large to encode ({size} bytes)")
    buf = bytearray(size)
    _enc(btf, type_id, value, buf, 0, 0)
    return bytes(buf)


def _check_int(value: Any, bits: int, what: str) -> int:
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise BtfError(f"{what} needs an integer, got {type(value).__name__}")
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise BtfError(f"{value} does not fit in {bits} bits ({what})")
    return value & ((1 << bits) - 1)


def _enc(btf: Btf, tid: int, value: Any, buf: bytearray, off: int, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise BtfError(f"type {tid}: nesting too deep to encode")
    t = btf.resolve(tid)
    k = t.kind
    size = btf.size_of(tid)
    if isinstance(value, (bytes, bytearray, memoryview)) and not (
        k == BtfKind.ARRAY and _is_char_array(btf, t)
    ):
        value = bytes(value)
        if len(value) != size:
            raise BtfError(f"{len(value)} bytes given for {btf.type_name(tid)} ({size} bytes)")
        buf[off : off + size] = value
        return
    what = btf.type_name(tid)
    if k == BtfKind.INT:
        v = _check_int(value, t.bits, what)  # type: ignore[attr-defined]
        word = int.from_bytes(buf[off : off + size], "little")
        mask = ((1 << t.bits) - 1) << t.offset  # type: ignore[attr-defined]
        word = (word & ~mask) | (v << t.offset)  # type: ignore[attr-defined]
        buf[off : off + size] = word.to_bytes(size, "little")
    elif k in (BtfKind.ENUM, BtfKind.ENUM64):
        if isinstance(value, str):
            for ev in t.values:  # type: ignore[attr-defined]
                if ev.name == value:
                    value = ev.value
                    break
            else:
                raise BtfError(f"{value!r} is not an enumerator of {what}")
        buf[off : off + size] = _check_int(value, size * 8, what).to_bytes(size, "little")
    elif k == BtfKind.PTR:
        buf[off : off + 8] = _check_int(value, 64, what).to_bytes(8, "little")
    elif k == BtfKind.FLOAT:
        fmt = _FLOATS.get(size)
        if fmt is None or not isinstance(value, (int, float)):
            raise BtfError(f"cannot encode {value!r} as {what}")
        try:
            buf[off : off + size] = struct.pack(fmt, value)
        except (OverflowError, struct.error) as e:
            raise BtfError(f"cannot encode {value!r} as {what}: {e}") from None
    elif k == BtfKind.ARRAY:
        n = t.nelems  # type: ignore[attr-defined]
        if _is_char_array(btf, t):
            if isinstance(value, str):
                value = value.encode("utf-8")
            if not isinstance(value, (bytes, bytearray, memoryview, list, tuple)):
                raise BtfError(f"{what} needs bytes or str, got {type(value).__name__}")
            if isinstance(value, (list, tuple)):
                value = bytes(_check_int(x, 8, what) for x in value)
            if len(value) > n:
                raise BtfError(f"{len(value)} bytes do not fit in {what}")
            buf[off : off + len(value)] = bytes(value)
            return
        if not isinstance(value, (list, tuple)):
            raise BtfError(f"{what} needs a list, got {type(value).__name__}")
        if len(value) > n:
            raise BtfError(f"{len(value)} elements do not fit in {what}")
        esize = btf.size_of(t.type)  # type: ignore[attr-defined]
        for i, item in enumerate(value):
            _enc(btf, t.type, item, buf, off + i * esize, depth + 1)  # type: ignore[attr-defined]
    elif k in (BtfKind.STRUCT, BtfKind.UNION):
        if isinstance(value, Mapping) and not isinstance(value, dict):
            value = dict(value)
        if not isinstance(value, dict):
            raise BtfError(f"{what} needs a dict, got {type(value).__name__}")
        used = _enc_members(btf, t, value, buf, off, depth)
        extra = set(value) - used
        if extra:
            raise BtfError(f"{what} has no member(s) {', '.join(sorted(map(str, extra)))}")
    elif k == BtfKind.DATASEC:
        if not isinstance(value, dict):
            raise BtfError(f"section {t.name} needs a dict, got {type(value).__name__}")
        known = set()
        for v in t.vars:  # type: ignore[attr-defined]
            var = btf.get(v.type)
            if var.kind != BtfKind.VAR:
                continue
            known.add(var.name)
            if var.name in value:
                _enc(btf, var.type, value[var.name], buf, off + v.offset, depth + 1)  # type: ignore[attr-defined]
        extra = set(value) - known
        if extra:
            raise BtfError(
                f"section {t.name} has no variable(s) {', '.join(sorted(map(str, extra)))}"
            )
    else:
        raise BtfError(f"cannot encode {value!r} as {what}; give bytes")


def _enc_members(btf: Btf, t: BtfType, value: dict, buf: bytearray, off: int, depth: int) -> set:
    used: set = set()
    for m in t.members:  # type: ignore[attr-defined]
        mt = btf.resolve(m.type)
        if not m.name:
            if mt.kind in (BtfKind.STRUCT, BtfKind.UNION):
                used |= _enc_members(btf, mt, value, buf, off + m.bit_offset // 8, depth + 1)
            continue
        if m.name not in value:
            continue
        used.add(m.name)
        v = value[m.name]
        if m.bitfield_size:
            bits = m.bitfield_size
            ival = _check_int(v, bits, f"bitfield {m.name}")
            first = off + m.bit_offset // 8
            last = off + (m.bit_offset + bits + 7) // 8
            shift = m.bit_offset % 8
            word = int.from_bytes(buf[first:last], "little")
            mask = ((1 << bits) - 1) << shift
            word = (word & ~mask) | (ival << shift)
            buf[first:last] = word.to_bytes(last - first, "little")
        else:
            _enc(btf, m.type, v, buf, off + m.bit_offset // 8, depth + 1)
    return used
