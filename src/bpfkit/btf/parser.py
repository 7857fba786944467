"""Parse (and encode) raw BTF: header, type section, string section.

Every malformed input gives a :class:`BtfError` naming what is wrong and where; the
parser checks bounds, kinds, vlen, referenced type ids and string offsets, so later
code can follow type ids without further checks (cycles are caught where they are
followed, with a depth limit).

Two paths, one result. The fast path (:func:`_index`) reads the type section as an
array of 32-bit words, walks it once to find where each type starts, and checks
every rule column-wise (per kind, with ``itemgetter``/``map``/``max`` over all types
or all members at once) without building any object; the :class:`Btf` it returns
decodes a type (and its name) only when asked for. Whenever the fast check finds
anything wrong it gives up, and the reference path (:func:`_parse_types` and
:func:`_check_refs`, one object per type, in id order) parses the blob again and
raises the error, so error messages do not depend on the fast path. Small type sections
(object files, under ``_LAZY_MIN_TYPE_BYTES``) go to the reference path directly: their
users decode every type anyway, and for a few hundred types that is quicker.
"""

from __future__ import annotations

import struct
import sys
from array import array
from itertools import accumulate, chain, repeat
from operator import add, and_, gt, itemgetter, rshift

from ..errors import BtfError
from ..uapi.btf import (
    BTF_FIXED_WORDS,
    BTF_HEADER_SIZE,
    BTF_MAGIC,
    BTF_MAX_TYPE,
    BTF_RECORD_WORDS,
    BTF_VERSION,
    BtfKind,
    FuncLinkage,
    VarLinkage,
)
from .types import (
    REF_KINDS,
    Array,
    Btf,
    BtfType,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Member,
    Param,
    Struct,
    Union,
    Var,
    VarSecinfo,
    Void,
)

__all__ = ["parse_btf", "encode_btf"]

_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_ARRAY = struct.Struct("<III")
_PAIR = struct.Struct("<II")
_TRIPLE = struct.Struct("<III")
_ENUM = struct.Struct("<Ii")

_K_UNKN = BtfKind.UNKN
_K_INT = BtfKind.INT
_K_PTR = BtfKind.PTR
_K_ARRAY = BtfKind.ARRAY
_K_STRUCT = BtfKind.STRUCT
_K_UNION = BtfKind.UNION
_K_ENUM = BtfKind.ENUM
_K_FWD = BtfKind.FWD
_K_TYPEDEF = BtfKind.TYPEDEF
_K_VOLATILE = BtfKind.VOLATILE
_K_CONST = BtfKind.CONST
_K_RESTRICT = BtfKind.RESTRICT
_K_FUNC = BtfKind.FUNC
_K_FUNC_PROTO = BtfKind.FUNC_PROTO
_K_VAR = BtfKind.VAR
_K_DATASEC = BtfKind.DATASEC
_K_FLOAT = BtfKind.FLOAT
_K_DECL_TAG = BtfKind.DECL_TAG
_K_TYPE_TAG = BtfKind.TYPE_TAG
_K_ENUM64 = BtfKind.ENUM64
_KINDS = tuple(BtfKind)
_FUNC_LINKAGE = tuple(FuncLinkage)
_VAR_LINKAGE = tuple(VarLinkage)
_NKINDS = len(_KINDS)


class _Strings:
    """String section lookups with bounds checks and a cache."""

    __slots__ = ("data", "base", "base_len", "cache")

    def __init__(self, data: bytes, base: Btf | None):
        self.data = data
        self.base = base
        self.base_len = len(base.strings) if base is not None else 0
        # Decode every string once up front (offsets of string starts); other offsets,
        # which point into the middle of a string, fall back to a scan.
        cache: dict[int, str] = {}
        off = self.base_len
        if data and data[-1] == 0:
            for part in data[:-1].split(b"\0"):
                try:
                    cache[off] = part.decode("utf-8")
                except UnicodeDecodeError:
                    cache[off] = part.decode("latin-1")
                off += len(part) + 1
        self.cache = cache

    def get(self, off: int, tid: int, detail: str = "name", index: int = -1) -> str:
        s = self.cache.get(off)
        if s is not None:
            return s
        what = f"type {tid} {detail}" + (f" {index}" if index >= 0 else "")
        if off < self.base_len:
            s = _cstr(self.base.strings, off, what)  # type: ignore[union-attr]
        else:
            s = _cstr(self.data, off - self.base_len, what)
        self.cache[off] = s
        return s


def _cstr(data: bytes, off: int, what: str) -> str:
    if off >= len(data):
        raise BtfError(
            f"{what}: string offset {off} outside the string section ({len(data)} bytes)"
        )
    end = data.find(b"\0", off)
    if end < 0:
        raise BtfError(f"{what}: string at offset {off} is not NUL-terminated")
    try:
        return data[off:end].decode("utf-8")
    except UnicodeDecodeError:
        return data[off:end].decode("latin-1")


# Type sections below this size (object files) are parsed eagerly by the reference path:
# their users decode every type anyway, and for a few hundred types that is faster.
_LAZY_MIN_TYPE_BYTES = 4096


def parse_btf(data: bytes | bytearray | memoryview, base: Btf | None = None) -> Btf:
    """Parse a raw BTF blob (``.BTF`` section or ``/sys/kernel/btf/*``) into a :class:`Btf`.

    ``base`` is the base BTF of split BTF (kernel module BTF on top of vmlinux).
    """
    return _parse(data, base, None)


def _parse_btf_reference(data: bytes | bytearray | memoryview, base: Btf | None = None) -> Btf:
    """:func:`parse_btf` through the reference path only (for tests)."""
    return _parse(data, base, False)


def _parse_btf_fast(data: bytes | bytearray | memoryview, base: Btf | None = None) -> Btf:
    """:func:`parse_btf` through the fast path whatever the size (for tests)."""
    return _parse(data, base, True)


def _parse(data: bytes | bytearray | memoryview, base: Btf | None, fast: bool | None) -> Btf:
    data = bytes(data)
    if len(data) < BTF_HEADER_SIZE:
        raise BtfError(f"BTF too short for a header ({len(data)} bytes)")
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(data)
    if magic != BTF_MAGIC:
        if magic == 0x9FEB:
            raise BtfError("big-endian BTF is not supported")
        raise BtfError(f"bad BTF magic {magic:#06x} (expected {BTF_MAGIC:#06x})")
    if version != BTF_VERSION:
        raise BtfError(f"unsupported BTF version {version}")
    if flags:
        raise BtfError(f"unsupported BTF flags {flags:#x}")
    if hdr_len < BTF_HEADER_SIZE or hdr_len > len(data):
        raise BtfError(f"bad BTF header length {hdr_len}")
    if any(data[BTF_HEADER_SIZE:hdr_len]):
        raise BtfError("unknown non-zero fields in the BTF header")
    body = len(data) - hdr_len
    if type_off + type_len > body or str_off + str_len > body:
        raise BtfError(
            f"BTF sections exceed the blob (types {type_off}+{type_len}, "
            f"strings {str_off}+{str_len}, {body} bytes after the header)"
        )
    if type_off % 4:
        raise BtfError(f"BTF type section offset {type_off} is not 4-byte aligned")
    if type_len % 4:
        raise BtfError(f"BTF type section length {type_len} is not a multiple of 4")
    if type_off < str_off < type_off + type_len or str_off < type_off < str_off + str_len:
        raise BtfError("BTF type and string sections overlap")
    strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
    if base is None:
        if str_len == 0 or strings[0] != 0:
            raise BtfError("BTF string section must start with an empty string")
    if str_len and strings[-1] != 0:
        raise BtfError("BTF string section is not NUL-terminated")
    tdata = data[hdr_len + type_off : hdr_len + type_off + type_len]
    if fast is None:
        fast = base is not None or type_len >= _LAZY_MIN_TYPE_BYTES
    lazy = None
    if fast:
        try:
            lazy = _index(tdata, strings, base)
        except (IndexError, ValueError, OverflowError):  # pragma: no cover - belt and braces
            lazy = None
    if lazy is not None:
        return Btf._from_lazy(lazy, lazy.base_len + len(lazy.offs), strings, base, data)
    # Something is wrong (or unusual): the reference parser names it.
    types = _parse_types(tdata, _Strings(strings, base), base)
    btf = Btf(types, strings, base, raw=data)
    _check_refs(btf)
    return btf


def _parse_types(tdata: bytes, strs: _Strings, base: Btf | None) -> list[BtfType]:
    types: list[BtfType] = list(base.types) if base is not None else [Void(0, "void")]
    tid = len(types)
    pos = 0
    n = len(tdata)
    unpack_type = _TYPE.unpack_from
    get = strs.get
    while pos < n:
        if pos + 12 > n:
            raise BtfError(f"type {tid}: truncated at byte {pos} of the type section")
        if tid > BTF_MAX_TYPE:
            raise BtfError(f"more than {BTF_MAX_TYPE} types")
        name_off, info, size_type = unpack_type(tdata, pos)
        pos += 12
        kind_no = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        if info & 0x60FF0000:
            raise BtfError(f"type {tid}: unused info bits set ({info:#x})")
        if not 0 < kind_no < _NKINDS:
            raise BtfError(f"type {tid}: unknown kind {kind_no}")
        kind = _KINDS[kind_no]
        name = get(name_off, tid) if name_off else ""

        if kind == _K_INT:
            _need(pos, 4, n, tid, kind)
            (word,) = _U32.unpack_from(tdata, pos)
            pos += 4
            enc, off, bits = (word >> 24) & 0x0F, (word >> 16) & 0xFF, word & 0xFF
            if word & 0xF0000000 or word & 0x0000FF00:
                raise BtfError(f"{_w(tid, kind)}: reserved bits set in the int encoding")
            if vlen or kflag:
                raise BtfError(f"{_w(tid, kind)}: vlen/kind_flag must be zero")
            if size_type not in (1, 2, 4, 8, 16):
                raise BtfError(f"{_w(tid, kind)}: bad int size {size_type}")
            if bits == 0 or off + bits > size_type * 8 or bits > 128:
                raise BtfError(
                    f"{_w(tid, kind)}: bits {bits} at offset {off} do not fit in {size_type} bytes"
                )
            if enc & ~0x7 or bin(enc).count("1") > 1:
                raise BtfError(f"{_w(tid, kind)}: bad int encoding {enc:#x}")
            t: BtfType = Int(tid, name, size_type, enc, off, bits)
        elif kind in REF_KINDS:
            if vlen or (kflag and kind != _K_TYPE_TAG):
                raise BtfError(f"{_w(tid, kind)}: vlen/kind_flag must be zero")
            if kind == _K_TYPEDEF and not name:
                raise BtfError(f"{_w(tid, kind)}: typedef without a name")
            if kind == _K_TYPE_TAG and not name:
                raise BtfError(f"{_w(tid, kind)}: type tag without a name")
            t = REF_KINDS[kind](tid, name, size_type)
        elif kind == _K_ARRAY:
            _need(pos, 12, n, tid, kind)
            etype, itype, nelems = _ARRAY.unpack_from(tdata, pos)
            pos += 12
            if vlen or kflag or size_type or name:
                raise BtfError(f"{_w(tid, kind)}: name/vlen/kind_flag/size must be zero")
            t = Array(tid, name, etype, itype, nelems)
        elif kind in (_K_STRUCT, _K_UNION):
            _need(pos, 12 * vlen, n, tid, kind)
            members = []
            for i in range(vlen):
                m_name_off, m_type, m_off = _TRIPLE.unpack_from(tdata, pos)
                pos += 12
                m_name = get(m_name_off, tid, "member", i) if m_name_off else ""
                if kflag:
                    members.append(Member(m_name, m_type, m_off & 0xFFFFFF, m_off >> 24))
                else:
                    members.append(Member(m_name, m_type, m_off, 0))
                last = members[-1]
                if last.bit_offset + last.bitfield_size > size_type * 8:
                    raise BtfError(
                        f"{_w(tid, kind)}: member {m_name or i!r} beyond the {size_type}-byte size"
                    )
            cls = Struct if kind == _K_STRUCT else Union
            t = cls(tid, name, size_type, members, kflag)
        elif kind == _K_ENUM:
            _need(pos, 8 * vlen, n, tid, kind)
            if size_type not in (1, 2, 4, 8):
                raise BtfError(f"{_w(tid, kind)}: bad enum size {size_type}")
            values = []
            for i in range(vlen):
                e_name_off, val = _ENUM.unpack_from(tdata, pos)
                pos += 8
                if not e_name_off:
                    raise BtfError(f"{_w(tid, kind)}: enumerator {i} without a name")
                if not kflag:
                    val &= 0xFFFFFFFF
                values.append(EnumValue(get(e_name_off, tid, "enumerator", i), val))
            t = Enum(tid, name, size_type, values, kflag)
        elif kind == _K_ENUM64:
            _need(pos, 12 * vlen, n, tid, kind)
            if size_type not in (1, 2, 4, 8):
                raise BtfError(f"{_w(tid, kind)}: bad enum size {size_type}")
            values = []
            for i in range(vlen):
                e_name_off, lo, hi = _TRIPLE.unpack_from(tdata, pos)
                pos += 12
                if not e_name_off:
                    raise BtfError(f"{_w(tid, kind)}: enumerator {i} without a name")
                val = lo | (hi << 32)
                if kflag and val >= 1 << 63:
                    val -= 1 << 64
                values.append(EnumValue(get(e_name_off, tid, "enumerator", i), val))
            t = Enum64(tid, name, size_type, values, kflag)
        elif kind == _K_FWD:
            if vlen or size_type:
                raise BtfError(f"{_w(tid, kind)}: vlen/type must be zero")
            if not name:
                raise BtfError(f"{_w(tid, kind)}: forward declaration without a name")
            t = Fwd(tid, name, kflag)
        elif kind == _K_FUNC:
            if kflag:
                raise BtfError(f"{_w(tid, kind)}: kind_flag must be zero")
            if not name:
                raise BtfError(f"{_w(tid, kind)}: function without a name")
            if vlen >= len(_FUNC_LINKAGE):
                raise BtfError(f"{_w(tid, kind)}: bad linkage {vlen}")
            linkage: FuncLinkage | int = _FUNC_LINKAGE[vlen]
            t = Func(tid, name, size_type, linkage)
        elif kind == _K_FUNC_PROTO:
            _need(pos, 8 * vlen, n, tid, kind)
            if kflag or name:
                raise BtfError(f"{_w(tid, kind)}: name/kind_flag must be zero")
            params = []
            for i in range(vlen):
                p_name_off, p_type = _PAIR.unpack_from(tdata, pos)
                pos += 8
                p_name = get(p_name_off, tid, "param", i) if p_name_off else ""
                if p_type == 0 and (i != vlen - 1 or p_name):
                    raise BtfError(f"{_w(tid, kind)}: void parameter {i} that is not a final '...'")
                params.append(Param(p_name, p_type))
            t = FuncProto(tid, name, size_type, params)
        elif kind == _K_VAR:
            _need(pos, 4, n, tid, kind)
            (lk,) = _U32.unpack_from(tdata, pos)
            pos += 4
            if vlen or kflag:
                raise BtfError(f"{_w(tid, kind)}: vlen/kind_flag must be zero")
            if not name:
                raise BtfError(f"{_w(tid, kind)}: variable without a name")
            if lk >= len(_VAR_LINKAGE):
                raise BtfError(f"{_w(tid, kind)}: bad linkage {lk}")
            vlinkage: VarLinkage | int = _VAR_LINKAGE[lk]
            t = Var(tid, name, size_type, vlinkage)
        elif kind == _K_DATASEC:
            _need(pos, 12 * vlen, n, tid, kind)
            if kflag:
                raise BtfError(f"{_w(tid, kind)}: kind_flag must be zero")
            if not name:
                raise BtfError(f"{_w(tid, kind)}: data section without a name")
            secvars = []
            for _ in range(vlen):
                v_type, v_off, v_size = _TRIPLE.unpack_from(tdata, pos)
                pos += 12
                secvars.append(VarSecinfo(v_type, v_off, v_size))
            t = Datasec(tid, name, size_type, secvars)
        elif kind == _K_FLOAT:
            if vlen or kflag:
                raise BtfError(f"{_w(tid, kind)}: vlen/kind_flag must be zero")
            if size_type not in (2, 4, 8, 12, 16):
                raise BtfError(f"{_w(tid, kind)}: bad float size {size_type}")
            t = Float(tid, name, size_type)
        elif kind == _K_DECL_TAG:
            _need(pos, 4, n, tid, kind)
            (cidx,) = _I32.unpack_from(tdata, pos)
            pos += 4
            if vlen or not name:
                raise BtfError(f"{_w(tid, kind)}: vlen must be zero and the tag named")
            if cidx < -1:
                raise BtfError(f"{_w(tid, kind)}: bad component index {cidx}")
            t = DeclTag(tid, name, size_type, cidx)
        else:  # _K_UNKN
            raise BtfError(f"{_w(tid, kind)}: kind 0 (unknown) is not allowed")
        types.append(t)
        tid += 1
    return types


def _w(tid: int, kind: BtfKind) -> str:
    return f"type {tid} ({kind.name})"


def _need(pos: int, nbytes: int, n: int, tid: int, kind: BtfKind) -> None:
    if pos + nbytes > n:
        raise BtfError(f"{_w(tid, kind)}: truncated (needs {nbytes} more bytes at {pos})")


def _check_refs(btf: Btf) -> None:
    """Every referenced type id exists and has a kind allowed in that position."""
    types = btf.types
    n = len(types)

    def ref(t: BtfType, tid: int, what: str, void_ok: bool = True) -> BtfType:
        if tid >= n:
            raise BtfError(f"type {t.id} ({t.kind.name}): {what} refers to missing type {tid}")
        if tid == 0 and not void_ok:
            raise BtfError(f"type {t.id} ({t.kind.name}): {what} is void")
        r = types[tid]
        if (
            r.kind in (BtfKind.FUNC, BtfKind.DATASEC, BtfKind.VAR, BtfKind.DECL_TAG)
            and what != "target"
        ):
            raise BtfError(f"type {t.id} ({t.kind.name}): {what} is a {r.kind.name}")
        return r

    for t in types[btf.start_id :]:
        k = t.kind
        if k in REF_KINDS:
            ref(t, t.type, "referenced type", void_ok=True)  # type: ignore[attr-defined]
        elif k == BtfKind.ARRAY:
            ref(t, t.type, "element type", void_ok=False)  # type: ignore[attr-defined]
            ref(t, t.index_type, "index type", void_ok=True)  # type: ignore[attr-defined]
        elif k in (BtfKind.STRUCT, BtfKind.UNION):
            for m in t.members:  # type: ignore[attr-defined]
                ref(t, m.type, f"member {m.name!r}", void_ok=False)
        elif k == BtfKind.FUNC:
            if t.type >= n or types[t.type].kind != BtfKind.FUNC_PROTO:  # type: ignore[attr-defined]
                raise BtfError(f"type {t.id} (FUNC {t.name!r}): type {t.type} is not a FUNC_PROTO")  # type: ignore[attr-defined]
        elif k == BtfKind.FUNC_PROTO:
            ref(t, t.return_type, "return type")  # type: ignore[attr-defined]
            for i, p in enumerate(t.params):  # type: ignore[attr-defined]
                if p.type or i != len(t.params) - 1:  # type: ignore[attr-defined]
                    ref(t, p.type, f"parameter {i}", void_ok=False)
        elif k == BtfKind.VAR:
            ref(t, t.type, "variable type", void_ok=False)  # type: ignore[attr-defined]
        elif k == BtfKind.DATASEC:
            for v in t.vars:  # type: ignore[attr-defined]
                if v.type >= n or types[v.type].kind not in (BtfKind.VAR, BtfKind.FUNC):
                    raise BtfError(
                        f"type {t.id} (DATASEC {t.name!r}): entry {v.type} is not a VAR or FUNC"
                    )
        elif k == BtfKind.DECL_TAG:
            target = ref(t, t.type, "target", void_ok=False)  # type: ignore[attr-defined]
            if t.component_idx >= 0:  # type: ignore[attr-defined]
                if target.kind in (BtfKind.STRUCT, BtfKind.UNION):
                    count = len(target.members)  # type: ignore[attr-defined]
                elif target.kind == BtfKind.FUNC:
                    pid = target.type  # type: ignore[attr-defined]
                    if pid >= n or types[pid].kind != BtfKind.FUNC_PROTO:
                        raise BtfError(
                            f"type {target.id} (FUNC {target.name!r}): type {pid} is not a FUNC_PROTO"
                        )
                    count = len(types[pid].params)  # type: ignore[attr-defined]
                else:
                    raise BtfError(f"type {t.id} (DECL_TAG): component of a {target.kind.name}")
                if t.component_idx >= count:  # type: ignore[attr-defined]
                    raise BtfError(
                        f"type {t.id} (DECL_TAG): component {t.component_idx} out of range"
                    )  # type: ignore[attr-defined]


# ---- fast path: column-wise checks, lazy types ---------------------------------------

_BIG_ENDIAN = sys.byteorder == "big"
_UNUSED_INFO = 0x60FF0000
_VLEN = 0x0000FFFF
_KFLAG = 0x80000000
# Info bits that must be zero, per kind (the unused bits are checked for every type).
_FORBID = [0] * 32
for _k in (_K_INT, _K_PTR, _K_TYPEDEF, _K_VOLATILE, _K_CONST, _K_RESTRICT, _K_ARRAY):
    _FORBID[_k] = _VLEN | _KFLAG
for _k in (_K_VAR, _K_FLOAT):
    _FORBID[_k] = _VLEN | _KFLAG
for _k in (_K_TYPE_TAG, _K_FWD, _K_DECL_TAG):
    _FORBID[_k] = _VLEN
for _k in (_K_FUNC, _K_FUNC_PROTO, _K_DATASEC):
    _FORBID[_k] = _KFLAG
# Kinds that must be named, and kinds that must not be.
_NAMED = {_K_TYPEDEF, _K_TYPE_TAG, _K_FWD, _K_FUNC, _K_VAR, _K_DATASEC, _K_DECL_TAG}
_ANON = {_K_ARRAY, _K_FUNC_PROTO}
# Kind byte -> 1 for kinds no type may refer to (FUNC, DATASEC, VAR, DECL_TAG).
_NOT_REFERABLE = bytes(
    1 if k in (_K_FUNC, _K_DATASEC, _K_VAR, _K_DECL_TAG) else 0 for k in range(256)
)
_MOD_KINDS = (_K_PTR, _K_TYPEDEF, _K_VOLATILE, _K_CONST, _K_RESTRICT, _K_TYPE_TAG)


def _pick(col, idx) -> tuple:
    """``col[i] for i in idx`` as a tuple, at C speed (``IndexError`` past the end)."""
    if len(idx) > 1:
        return itemgetter(*idx)(col)
    return (col[idx[0]],) if idx else ()


def _records(tdata: bytes, g_offs: list[int], g_info: tuple, rec: int) -> array:
    """The vlen records (``rec`` words each) of the types at ``g_offs``, concatenated."""
    starts = [4 * o + 12 for o in g_offs]
    step = 4 * rec
    ends = [b + step * (i & 0xFFFF) for b, i in zip(starts, g_info, strict=True)]
    out = array("I")
    out.frombytes(b"".join(map(tdata.__getitem__, map(slice, starts, ends))))
    if _BIG_ENDIAN:
        out.byteswap()
    return out


def _base_kinds(base: Btf | None) -> bytes | None:
    """The kind of every type of ``base`` (void first), without decoding lazy types."""
    if base is None:
        return b"\0"  # void
    lazy = base._lazy
    if lazy is not None:
        below = _base_kinds(base.base)
        return None if below is None else below + lazy.kinds
    try:
        kind_of = getattr(base, "kind_of", None)  # kernel.btf.LazyBtf
        if kind_of is not None:
            return bytes(kind_of(i) for i in range(len(base.types)))
        return bytes(int(t.kind) for t in base.types)
    except (AttributeError, ValueError, TypeError, BtfError):
        return None


def _index(tdata: bytes, strings: bytes, base: Btf | None) -> _LazyTypes | None:
    """Check the type section column-wise; the lazy decoder, or ``None`` if anything is off.

    Mirrors every rule of :func:`_parse_types` and :func:`_check_refs`; ``None`` sends the
    blob to them (for the error message), so a rule missed here would be a bug, while a
    rule that is stricter here only costs time.
    """
    words = array("I")
    words.frombytes(tdata)
    if _BIG_ENDIAN:
        words.byteswap()
    # Walk: where each type starts, its kind, and the types of each kind.
    offs: list[int] = []
    kinds = bytearray()
    groups: list[list[int]] = [[] for _ in range(32)]
    push, push_kind = offs.append, kinds.append
    push_group = [g.append for g in groups]
    fixed, per = BTF_FIXED_WORDS, BTF_RECORD_WORDS  # words after the header, per kind
    i, nw = 0, len(words)
    try:
        while i < nw:
            info = words[i + 1]
            k = (info >> 24) & 0x1F
            push(i)
            push_kind(k)
            push_group[k](i)
            i += 3 + fixed[k] + per[k] * (info & 0xFFFF)
    except IndexError:
        return None
    if i != nw:
        return None
    base_len = len(base.types) if base is not None else 1
    base_strs = base.strings if base is not None else b""
    if base_strs and base_strs[-1] != 0:
        return None
    strtab = base_strs + strings if base_strs else strings
    count = len(offs)
    total = base_len + count
    if total - 1 > BTF_MAX_TYPE or groups[0] or any(groups[_NKINDS:]):
        return None
    base_kinds = _base_kinds(base)
    if base_kinds is None or len(base_kinds) != base_len:
        return None
    kinds = bytes(kinds)
    all_kinds = base_kinds + kinds
    # Tables indexed by type id (IndexError for a missing one): 1 = may not be referred to.
    bad = all_kinds.translate(_NOT_REFERABLE)
    bad_or_void = b"\1" + bad[1:]
    try:
        for k in range(1, _NKINDS):
            g = groups[k]
            if g and not _check_kind(
                k, g, words, tdata, offs, all_kinds, bad, bad_or_void, base, strtab
            ):
                return None
    except IndexError:  # a type id or string offset past the end
        return None
    return _LazyTypes(words, array("I", offs), base, base_len, strings, kinds)


def _check_kind(
    k: int,
    g: list[int],
    words: array,
    tdata: bytes,
    offs: list[int],
    all_kinds: bytes,
    bad: bytes,
    bad_or_void: bytes,
    base: Btf | None,
    strtab: bytes,
) -> bool:
    """Whether every type of kind ``k`` (at word offsets ``g``) follows the rules.

    ``strtab`` is the base + own string section: an offset below its length names a
    NUL-terminated string (both sections end with NUL).
    """
    str_total = len(strtab)
    g_info = _pick(words, [o + 1 for o in g])
    if any(map((_FORBID[k] | _UNUSED_INFO).__and__, g_info)):
        return False
    g_names = _pick(words, g)
    if max(g_names) >= str_total:
        return False
    if k in _NAMED and (0 in g_names or 0 in _pick(strtab, g_names)):  # no name, or ""
        return False
    if k in _ANON and any(g_names):
        return False
    g_size = _pick(words, [o + 2 for o in g])
    if k in _MOD_KINDS:
        return not any(_pick(bad, g_size))
    if k in (_K_STRUCT, _K_UNION):
        for flag in (0, 1):
            sub = [
                (o, i, z) for o, i, z in zip(g, g_info, g_size, strict=True) if (i >> 31) == flag
            ]
            if not sub:
                continue
            s_offs, s_info, s_size = zip(*sub, strict=True)
            recs = _records(tdata, s_offs, s_info, 3)  # type: ignore[arg-type]
            if not recs:
                continue
            m_names, m_types, m_offs = recs[0::3], recs[1::3], recs[2::3]
            if max(m_names) >= str_total or any(_pick(bad_or_void, m_types)):
                return False
            limits = chain.from_iterable(
                map(repeat, [8 * z for z in s_size], [i & 0xFFFF for i in s_info])
            )
            if flag:
                ends = map(
                    add, map(and_, m_offs, repeat(0xFFFFFF)), map(rshift, m_offs, repeat(24))
                )
                if any(map(gt, ends, limits)):
                    return False
            elif any(map(gt, m_offs, limits)):
                return False
        return True
    if k == _K_FUNC:
        if max(map(_VLEN.__and__, g_info)) >= len(_FUNC_LINKAGE):
            return False
        protos = _pick(all_kinds, g_size)
        return protos.count(_K_FUNC_PROTO) == len(protos)
    if k == _K_FUNC_PROTO:
        if any(_pick(bad, g_size)):
            return False
        recs = _records(tdata, g, g_info, 2)
        p_names, p_types = recs[0::2], recs[1::2]
        if not p_types:
            return True
        if max(p_names) >= str_total or any(_pick(bad, p_types)):
            return False
        if 0 in p_types:
            # void only as an unnamed last parameter ('...')
            lasts = set(accumulate([i & 0xFFFF for i in g_info]))
            p = p_types.index(0)
            while True:
                if p + 1 not in lasts or p_names[p]:
                    return False
                try:
                    p = p_types.index(0, p + 1)
                except ValueError:
                    return True
        return True
    if k in (_K_ENUM, _K_ENUM64):
        if not set(g_size) <= {1, 2, 4, 8}:
            return False
        rec = 2 if k == _K_ENUM else 3
        e_names = _records(tdata, g, g_info, rec)[0::rec]
        return not e_names or (0 not in e_names and max(e_names) < str_total)
    if k == _K_ARRAY:
        if any(g_size):
            return False
        if any(_pick(bad_or_void, _pick(words, [o + 3 for o in g]))):  # element types
            return False
        return not any(_pick(bad, _pick(words, [o + 4 for o in g])))  # index types
    if k == _K_VAR:
        if max(_pick(words, [o + 3 for o in g])) >= len(_VAR_LINKAGE):
            return False
        return not any(_pick(bad_or_void, g_size))
    if k == _K_DATASEC:
        v_types = _records(tdata, g, g_info, 3)[0::3]
        return set(_pick(all_kinds, v_types)) <= {_K_VAR, _K_FUNC}
    if k == _K_FWD:
        return not any(g_size)
    if k == _K_FLOAT:
        return set(g_size) <= {2, 4, 8, 12, 16}
    if k == _K_INT:
        for o, st in zip(g, g_size, strict=True):
            word = words[o + 3]
            enc, off, bits = (word >> 24) & 0x0F, (word >> 16) & 0xFF, word & 0xFF
            if word & 0xF000FF00 or st not in (1, 2, 4, 8, 16):
                return False
            if bits == 0 or off + bits > st * 8 or bits > 128:
                return False
            if enc & ~0x7 or enc & (enc - 1):
                return False
        return True
    if k == _K_DECL_TAG:
        base_len = len(all_kinds) - len(offs)
        for o, target in zip(g, g_size, strict=True):
            cidx = words[o + 3]
            if cidx >= 1 << 31:
                cidx -= 1 << 32
            if cidx < -1 or not 0 < target < len(all_kinds):
                return False
            if cidx < 0:
                continue
            tk = all_kinds[target]
            if tk == _K_FUNC:
                if target >= base_len:
                    target = words[offs[target - base_len] + 2]
                else:
                    target = base.get(target).type  # type: ignore[union-attr,attr-defined]
                if target >= len(all_kinds) or all_kinds[target] != _K_FUNC_PROTO:
                    return False
            elif tk not in (_K_STRUCT, _K_UNION):
                return False
            if target >= base_len:
                n = words[offs[target - base_len] + 1] & 0xFFFF
            else:
                t = base.get(target)  # type: ignore[union-attr]
                n = len(t.params if t.kind == _K_FUNC_PROTO else t.members)  # type: ignore[attr-defined]
            if cidx >= n:
                return False
        return True
    return False  # pragma: no cover - every kind is handled above


class _StrCache(dict):
    """String offset -> string of a checked blob (base + own section), decoded on first use.

    Offset 0 is always "" (an unnamed type), as in the reference parser.
    """

    __slots__ = ("strings", "base_strings")

    def __init__(self, strings: bytes, base_strings: bytes) -> None:
        super().__init__({0: ""})
        self.strings = strings
        self.base_strings = base_strings

    def __missing__(self, off: int) -> str:
        data, o = self.strings, off
        nb = len(self.base_strings)
        if off < nb:
            data = self.base_strings
        else:
            o -= nb
        raw = data[o : data.index(0, o)]
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            s = raw.decode("latin-1")
        self[off] = s
        return s


class _LazyTypes:
    """Decodes the types of a checked type section on demand (names through a cache)."""

    __slots__ = ("words", "offs", "base_len", "kinds", "strs", "_by_off", "lookups")

    def __init__(
        self,
        words: array,
        offs: array,
        base: Btf | None,
        base_len: int,
        strings: bytes,
        kinds: bytes,
    ) -> None:
        self.words = words
        self.offs = offs  # word offset of each own type (index = id - base_len)
        self.base_len = base_len
        self.kinds = kinds  # kind of each own type
        self.strs = _StrCache(strings, base.strings if base is not None else b"")
        self._by_off: tuple[dict[int, int], bytes] | None = None
        self.lookups: dict[str, list[int]] = {}  # name -> ids (Btf.find's cache)

    @property
    def name_offs(self) -> tuple:
        """The name offset of each own type."""
        return _pick(self.words, self.offs)

    def string(self, off: int) -> str:
        """The (checked) string at ``off`` of the base + own string section."""
        return self.strs[off]

    def ids_named(self, name: str) -> list[int]:
        """Ids of the own types called ``name``, ascending, without decoding other names.

        Every offset whose string is ``name`` is found by searching the string sections
        for ``name`` + NUL (a name may start inside another string). The first type
        using an offset comes from a table built on the first lookup, the others (rare:
        a struct and its forward declaration) from a search of the packed name offsets.
        """
        if not name or "\0" in name:
            return []
        if self._by_off is None:
            packed = array("I", self.name_offs)
            ids = range(self.base_len, self.base_len + len(packed))
            first = dict(zip(reversed(packed), reversed(ids), strict=True))
            self._by_off = (first, packed.tobytes())
        first, packed = self._by_off
        strs = self.strs
        nb = len(strs.base_strings)
        offs = set()
        for enc in ("utf-8", "latin-1"):  # how the reference parser decodes names
            try:
                needle = name.encode(enc) + b"\0"
            except UnicodeEncodeError:
                continue
            for data, shift in ((strs.strings, nb), (strs.base_strings, 0)):
                p = data.find(needle)
                while p >= 0:
                    offs.add(p + shift)
                    p = data.find(needle, p + 1)
        out: list[int] = []
        for off in offs:
            tid = first.get(off)
            if not off or tid is None or strs[off] != name:
                continue
            out.append(tid)
            pat = off.to_bytes(4, sys.byteorder)
            i = packed.find(pat, 4 * (tid - self.base_len + 1))
            while i >= 0:
                if not i % 4:
                    out.append(self.base_len + i // 4)
                i = packed.find(pat, i + 1)
        out.sort()
        return out

    def decode(self, tid: int) -> BtfType:
        w = self.words
        o = self.offs[tid - self.base_len]
        name_off, info, st = w[o], w[o + 1], w[o + 2]
        k = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        s = self.strs
        name = s[name_off]
        o += 3
        if k in _REF_KINDS_BY_NO:
            return _REF_KINDS_BY_NO[k](tid, name, st)
        if k == _K_FUNC:
            return Func(tid, name, st, _FUNC_LINKAGE[vlen])
        if k in (_K_STRUCT, _K_UNION):
            cls = Struct if k == _K_STRUCT else Union
            recs = w[o : o + 3 * vlen]
            if kflag:
                members = [
                    Member(s[mn], mt, mo & 0xFFFFFF, mo >> 24)
                    for mn, mt, mo in zip(recs[0::3], recs[1::3], recs[2::3], strict=True)
                ]
            else:
                members = [
                    Member(s[mn], mt, mo, 0)
                    for mn, mt, mo in zip(recs[0::3], recs[1::3], recs[2::3], strict=True)
                ]
            return cls(tid, name, st, members, kflag)
        if k == _K_FUNC_PROTO:
            recs = w[o : o + 2 * vlen]
            params = [Param(s[pn], pt) for pn, pt in zip(recs[0::2], recs[1::2], strict=True)]
            return FuncProto(tid, name, st, params)
        if k == _K_ARRAY:
            return Array(tid, name, w[o], w[o + 1], w[o + 2])
        if k == _K_ENUM:
            recs = w[o : o + 2 * vlen]
            if kflag:
                vals = [v - (1 << 32) if v >= 1 << 31 else v for v in recs[1::2]]
            else:
                vals = recs[1::2]
            values = [EnumValue(s[en], v) for en, v in zip(recs[0::2], vals, strict=True)]
            return Enum(tid, name, st, values, kflag)
        if k == _K_ENUM64:
            recs = w[o : o + 3 * vlen]
            values = []
            for en, lo, hi in zip(recs[0::3], recs[1::3], recs[2::3], strict=True):
                v = lo | (hi << 32)
                if kflag and v >= 1 << 63:
                    v -= 1 << 64
                values.append(EnumValue(s[en], v))
            return Enum64(tid, name, st, values, kflag)
        if k == _K_INT:
            word = w[o]
            return Int(tid, name, st, (word >> 24) & 0x0F, (word >> 16) & 0xFF, word & 0xFF)
        if k == _K_FWD:
            return Fwd(tid, name, kflag)
        if k == _K_VAR:
            return Var(tid, name, st, _VAR_LINKAGE[w[o]])
        if k == _K_DATASEC:
            recs = w[o : o + 3 * vlen]
            return Datasec(
                tid,
                name,
                st,
                [VarSecinfo(*r) for r in zip(recs[0::3], recs[1::3], recs[2::3], strict=True)],
            )
        if k == _K_FLOAT:
            return Float(tid, name, st)
        if k == _K_DECL_TAG:
            cidx = w[o]
            return DeclTag(tid, name, st, cidx - (1 << 32) if cidx >= 1 << 31 else cidx)
        raise BtfError(f"type {tid}: unknown kind {k}")  # pragma: no cover - checked by _index


_REF_KINDS_BY_NO = {int(k): cls for k, cls in REF_KINDS.items()}


# ---- encoding -------------------------------------------------------------------


class _StrTab:
    def __init__(self) -> None:
        self.buf = bytearray(b"\0")
        self.offs: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        off = self.offs.get(s)
        if off is None:
            off = len(self.buf)
            self.buf += s.encode("utf-8") + b"\0"
            self.offs[s] = off
        return off


def encode_btf(btf: Btf) -> bytes:
    """Encode the types of ``btf`` (not its base) as a raw BTF blob."""
    if btf.base is not None:
        raise BtfError("encoding split BTF is not supported")
    st = _StrTab()
    out = bytearray()
    pack = _TYPE.pack
    for t in btf.types[1:]:
        k = t.kind
        name = st.add(t.name)
        if k == BtfKind.INT:
            out += pack(name, k << 24, t.size)  # type: ignore[attr-defined]
            out += _U32.pack((t.encoding << 24) | (t.offset << 16) | t.bits)  # type: ignore[attr-defined]
        elif k in REF_KINDS:
            out += pack(name, k << 24, t.type)  # type: ignore[attr-defined]
        elif k == BtfKind.ARRAY:
            out += pack(name, k << 24, 0) + _ARRAY.pack(t.type, t.index_type, t.nelems)  # type: ignore[attr-defined]
        elif k in (BtfKind.STRUCT, BtfKind.UNION):
            kflag = t.kflag or any(m.bitfield_size for m in t.members)  # type: ignore[attr-defined]
            out += pack(name, (kflag << 31) | (k << 24) | len(t.members), t.size)  # type: ignore[attr-defined]
            for m in t.members:  # type: ignore[attr-defined]
                off = (m.bitfield_size << 24) | m.bit_offset if kflag else m.bit_offset
                out += _TRIPLE.pack(st.add(m.name), m.type, off)
        elif k == BtfKind.ENUM:
            out += pack(name, (t.signed << 31) | (k << 24) | len(t.values), t.size)  # type: ignore[attr-defined]
            for v in t.values:  # type: ignore[attr-defined]
                out += _PAIR.pack(st.add(v.name), v.value & 0xFFFFFFFF)
        elif k == BtfKind.ENUM64:
            out += pack(name, (t.signed << 31) | (k << 24) | len(t.values), t.size)  # type: ignore[attr-defined]
            for v in t.values:  # type: ignore[attr-defined]
                val = v.value & 0xFFFFFFFFFFFFFFFF
                out += _TRIPLE.pack(st.add(v.name), val & 0xFFFFFFFF, val >> 32)
        elif k == BtfKind.FWD:
            out += pack(name, (t.is_union << 31) | (k << 24), 0)  # type: ignore[attr-defined]
        elif k == BtfKind.FUNC:
            out += pack(name, (k << 24) | int(t.linkage), t.type)  # type: ignore[attr-defined]
        elif k == BtfKind.FUNC_PROTO:
            out += pack(name, (k << 24) | len(t.params), t.return_type)  # type: ignore[attr-defined]
            for p in t.params:  # type: ignore[attr-defined]
                out += _PAIR.pack(st.add(p.name), p.type)
        elif k == BtfKind.VAR:
            out += pack(name, k << 24, t.type) + _U32.pack(int(t.linkage))  # type: ignore[attr-defined]
        elif k == BtfKind.DATASEC:
            out += pack(name, (k << 24) | len(t.vars), t.size)  # type: ignore[attr-defined]
            for v in t.vars:  # type: ignore[attr-defined]
                out += _TRIPLE.pack(v.type, v.offset, v.size)
        elif k == BtfKind.FLOAT:
            out += pack(name, k << 24, t.size)  # type: ignore[attr-defined]
        elif k == BtfKind.DECL_TAG:
            out += pack(name, k << 24, t.type) + _I32.pack(t.component_idx)  # type: ignore[attr-defined]
        else:
            raise BtfError(f"cannot encode type {t.id} of kind {k.name}")
    hdr = _HDR.pack(BTF_MAGIC, BTF_VERSION, 0, BTF_HEADER_SIZE, 0, len(out), len(out), len(st.buf))
    return hdr + bytes(out) + bytes(st.buf)
