"""BTF for the kernel: the running kernel's own BTF, and an object's BTF made loadable.

Two directions:

- :func:`vmlinux_btf` reads ``/sys/kernel/btf/vmlinux`` (and :func:`module_btf` a
  module's split BTF) into a :class:`LazyBtf`: one fast pass indexes every type by
  offset and name, and a type is decoded only when something asks for it, so CO-RE,
  ``fentry`` targets and ``__ksym`` lookups cost milliseconds, not a full parse.
- :func:`prepare_object_btf` turns an object's :class:`~bpfkit.btf.types.Btf` into the
  bytes ``BPF_BTF_LOAD`` accepts: extern variables and functions of ``.kconfig`` and
  ``.ksyms`` rewritten as the kernel requires (it refuses extern linkage), data
  sections sorted, kinds this kernel lacks replaced by ones it has (see
  :class:`BtfFeatures`), and the strings of line info appended so ``bpf_line_info``
  records can point at them.
"""

from __future__ import annotations

import array
import copy
import functools
import operator
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..btf.parser import encode_btf
from ..btf.types import (
    REF_KINDS,
    Array,
    Btf,
    BtfType,
    Const,
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
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Void,
)
from ..errors import BtfError, NotSupported
from ..uapi.btf import (
    BTF_FIXED_WORDS,
    BTF_MAGIC,
    BTF_RECORD_WORDS,
    BtfKind,
    FuncLinkage,
    VarLinkage,
)
from . import sys as bsys

if TYPE_CHECKING:
    from ..obj.spec import ObjectSpec

__all__ = [
    "VMLINUX_BTF_PATH",
    "LazyBtf",
    "vmlinux_btf",
    "module_btf",
    "kernel_btf_available",
    "BtfFeatures",
    "PreparedBtf",
    "prepare_object_btf",
    "load_btf",
]

VMLINUX_BTF_PATH = "/sys/kernel/btf/vmlinux"
_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_TRIPLE = struct.Struct("<III")
_PAIR = struct.Struct("<II")
_ENUM = struct.Struct("<Ii")


# ---------------------------------------------------------------------------
# Kernel BTF, decoded on demand
# ---------------------------------------------------------------------------


class _LazyTypes(Sequence[BtfType]):
    """The type list of a :class:`LazyBtf`: types decoded (and kept) on first access."""

    def __init__(self, owner: LazyBtf) -> None:
        self._o = owner

    def __len__(self) -> int:
        return self._o._count

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._o._type(i)

    def __iter__(self) -> Iterator[BtfType]:
        for i in range(len(self)):
            yield self._o._type(i)


class LazyBtf(Btf):
    """Raw BTF (base or split) indexed in one pass; types are decoded when asked for."""

    def __init__(self, data: bytes, base: LazyBtf | None = None) -> None:
        if len(data) < _HDR.size:
            raise BtfError("kernel BTF too short for a header")
        magic, version, flags, hdr_len, toff, tlen, soff, slen = _HDR.unpack_from(data)
        if magic != BTF_MAGIC or version != 1 or flags:
            raise BtfError(f"kernel BTF has a bad header (magic {magic:#x}, version {version})")
        tdata = data[hdr_len + toff : hdr_len + toff + tlen]
        strings = data[hdr_len + soff : hdr_len + soff + slen]
        super().__init__([], strings, base, raw=data)
        self._tdata = tdata
        self._base_len = len(base.types) if base is not None else 1
        self._str_base = len(base.strings) if base is not None else 0
        if len(tdata) % 4:
            raise BtfError("kernel BTF type section is not a multiple of 4 bytes")
        # One pass over the type section as 32-bit words: where each type starts, its
        # info word, and which types each name (string offset) belongs to.
        words = memoryview(tdata).cast("I")
        offs: list[int] = []  # in words
        infos: list[int] = []
        i, n = 0, len(words)
        fixed, per = BTF_FIXED_WORDS, BTF_RECORD_WORDS
        append_off, append_info = offs.append, infos.append
        while i < n:
            info = words[i + 1]
            append_off(i)
            append_info(info)
            k = (info >> 24) & 0x1F
            i += 3 + fixed[k] + per[k] * (info & 0xFFFF)
        if i != n:
            words.release()
            raise BtfError("kernel BTF type section is truncated")
        # Every type's name offset, packed: a name is found with one bytes.find.
        name_offs = (
            operator.itemgetter(*offs)(words) if len(offs) > 1 else tuple(words[o] for o in offs)
        )
        words.release()
        self._name_offs = array.array("I", name_offs).tobytes()
        self._offs = offs
        self._infos = infos
        self._count = self._base_len + len(offs)
        self._cache: dict[int, BtfType] = {}
        self._lookups: dict[tuple, list] = {}
        self.types = _LazyTypes(self)  # type: ignore[assignment]

    # ---- strings and types ---------------------------------------------------
    def string_at(self, off: int) -> str:
        """The string at offset ``off`` of the (base + own) string section."""
        if off < self._str_base:
            return self.base.string_at(off)  # type: ignore[union-attr]
        s = self.strings
        o = off - self._str_base
        end = s.find(b"\0", o)
        if end < 0:
            raise BtfError(f"string offset {off} is not NUL-terminated")
        return s[o:end].decode("utf-8", "replace")

    def _type(self, tid: int) -> BtfType:
        if tid < self._base_len:
            if self.base is None:
                if tid == 0:
                    return Void(0, "void")
                raise BtfError(f"type id {tid} out of range")
            return self.base._type(tid)  # type: ignore[attr-defined]
        t = self._cache.get(tid)
        if t is None:
            if tid >= self._count:
                raise BtfError(f"type id {tid} out of range (have {self._count} types)")
            t = self._cache[tid] = self._decode(tid)
        return t

    def get(self, type_id: int) -> BtfType:
        """The type with this id; ``BtfError`` when there is none."""
        if not isinstance(type_id, int) or type_id < 0:
            raise BtfError(f"type id {type_id!r} out of range")
        return self._type(type_id)

    def kind_of(self, tid: int) -> int:
        """The kind of type ``tid`` without decoding it."""
        if tid < self._base_len:
            return 0 if self.base is None else self.base.kind_of(tid)  # type: ignore[union-attr]
        return (self._infos[tid - self._base_len] >> 24) & 0x1F

    def _decode(self, tid: int) -> BtfType:
        td = self._tdata
        pos = self._offs[tid - self._base_len] * 4
        name_off, info, st = _TYPE.unpack_from(td, pos)
        pos += 12
        k = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string_at(name_off) if name_off else ""
        s = self.string_at
        if k == BtfKind.INT:
            (w,) = _U32.unpack_from(td, pos)
            return Int(tid, name, st, (w >> 24) & 0x0F, (w >> 16) & 0xFF, w & 0xFF)
        if k in REF_KINDS:
            return REF_KINDS[k](tid, name, st)
        if k == BtfKind.ARRAY:
            e, i, ne = _TRIPLE.unpack_from(td, pos)
            return Array(tid, name, e, i, ne)
        if k in (BtfKind.STRUCT, BtfKind.UNION):
            members = []
            for _ in range(vlen):
                mn, mt, mo = _TRIPLE.unpack_from(td, pos)
                pos += 12
                mname = s(mn) if mn else ""
                if kflag:
                    members.append(Member(mname, mt, mo & 0xFFFFFF, mo >> 24))
                else:
                    members.append(Member(mname, mt, mo, 0))
            return (Struct if k == BtfKind.STRUCT else Union)(tid, name, st, members, kflag)
        if k == BtfKind.ENUM:
            vals = []
            for _ in range(vlen):
                en, ev = _ENUM.unpack_from(td, pos)
                pos += 8
                vals.append(EnumValue(s(en), ev if kflag else ev & 0xFFFFFFFF))
            return Enum(tid, name, st, vals, kflag)
        if k == BtfKind.ENUM64:
            vals = []
            for _ in range(vlen):
                en, lo, hi = _TRIPLE.unpack_from(td, pos)
                pos += 12
                v = lo | (hi << 32)
                if kflag and v >= 1 << 63:
                    v -= 1 << 64
                vals.append(EnumValue(s(en), v))
            return Enum64(tid, name, st, vals, kflag)
        if k == BtfKind.FWD:
            return Fwd(tid, name, kflag)
        if k == BtfKind.FUNC:
            return Func(tid, name, st, vlen)
        if k == BtfKind.FUNC_PROTO:
            params = []
            for _ in range(vlen):
                pn, pt = _PAIR.unpack_from(td, pos)
                pos += 8
                params.append(Param(s(pn) if pn else "", pt))
            return FuncProto(tid, name, st, params)
        if k == BtfKind.VAR:
            (lk,) = _U32.unpack_from(td, pos)
            return Var(tid, name, st, lk)
        if k == BtfKind.DATASEC:
            vs = []
            for _ in range(vlen):
                vt, vo, vz = _TRIPLE.unpack_from(td, pos)
                pos += 12
                vs.append(VarSecinfo(vt, vo, vz))
            return Datasec(tid, name, st, vs)
        if k == BtfKind.FLOAT:
            return Float(tid, name, st)
        if k == BtfKind.DECL_TAG:
            (ci,) = _I32.unpack_from(td, pos)
            return DeclTag(tid, name, st, ci)
        raise BtfError(f"type {tid}: unknown kind {k}")

    # ---- names -----------------------------------------------------------------
    def _string_offsets(self, text: str, prefix: bool = False) -> list[int]:
        """Offsets of every string equal to (or, with ``prefix``, starting with) ``text``."""
        needle = b"\0" + text.encode() + (b"" if prefix else b"\0")
        s, out = self.strings, []
        i = s.find(needle)
        while i >= 0:
            out.append(i + 1 + self._str_base)
            i = s.find(needle, i + 1)
        return out

    def _ids_at(self, off: int) -> list[int]:
        """Ids of the types whose name is the string at offset ``off``."""
        packed, pat, out = self._name_offs, _U32.pack(off), []
        i = packed.find(pat)
        while i >= 0:
            if not i % 4:
                out.append(self._base_len + i // 4)
            i = packed.find(pat, i + 1)
        return out

    def _names(self) -> dict[str, list[int]]:
        """Every name and its type ids (built on demand; lookups do not need it)."""
        if self._by_name is None:
            idx: dict[str, list[int]] = {}
            if self.base is not None:
                for nm, ids in self.base._names().items():
                    idx[nm] = list(ids)
            for j, off in enumerate(array.array("I", self._name_offs)):
                if off:
                    idx.setdefault(self.string_at(off), []).append(self._base_len + j)
            self._by_name = idx
        return self._by_name

    def ids_named(self, name: str, kind: int | None = None) -> list[int]:
        """Ids of every type called ``name`` (optionally of one kind); answers are cached."""
        key = (name, kind)
        hit = self._lookups.get(key)
        if hit is None:
            hit = self._lookups[key] = self._ids_named(name, kind)
        return list(hit)

    def _ids_named(self, name: str, kind: int | None) -> list[int]:
        ids: list[int] = []
        if self.base is not None:
            ids += self.base.ids_named(name)  # type: ignore[attr-defined]
        for off in self._string_offsets(name):
            ids += self._ids_at(off)
        if self.base is not None:
            # A split BTF may name its types with strings of the base.
            for off in self.base._string_offsets(name):  # type: ignore[attr-defined]
                ids += [i for i in self._ids_at(off) if i not in ids]
        ids.sort()
        if kind is None:
            return ids
        return [i for i in ids if self.kind_of(i) == kind]

    def find(self, name: str, kind: BtfKind | None = None) -> BtfType | None:
        """The first type with this name (and kind), or ``None``."""
        ids = self.ids_named(name, kind)
        return self._type(ids[0]) if ids else None

    def find_all(self, name: str, kind: BtfKind | None = None) -> list[BtfType]:
        """Every type with this name (and kind)."""
        return [self._type(i) for i in self.ids_named(name, kind)]

    def names_with_prefix(self, prefix: str) -> list[str]:
        """Every type name starting with ``prefix`` (for CO-RE ``___flavour`` lookups)."""
        hit = self._lookups.get(("prefix", prefix))
        if hit is None:
            hit = self._lookups[("prefix", prefix)] = self._names_with_prefix(prefix)
        return list(hit)

    def _names_with_prefix(self, prefix: str) -> list[str]:
        out = []
        for off in self._string_offsets(prefix, prefix=True):
            if self._ids_at(off):
                out.append(self.string_at(off))
        if self.base is not None:
            out += [n for n in self.base.names_with_prefix(prefix) if n not in out]  # type: ignore[attr-defined]
        return sorted(set(out))

    def to_bytes(self) -> bytes:
        """The raw blob this BTF was read from."""
        return self.raw or b""

    def __repr__(self) -> str:
        return f"<LazyBtf {self._count - self._base_len} types>"


@functools.cache
def _vmlinux_cached(path: str) -> LazyBtf:
    with open(path, "rb") as f:
        return LazyBtf(f.read())


def kernel_btf_available() -> bool:
    """Whether the running kernel exposes its BTF (``CONFIG_DEBUG_INFO_BTF``)."""
    return os.path.exists(VMLINUX_BTF_PATH)


def vmlinux_btf(path: str | None = None) -> LazyBtf:
    """The running kernel's BTF (read once per process and cached)."""
    p = path or VMLINUX_BTF_PATH
    try:
        return _vmlinux_cached(p)
    except FileNotFoundError:
        raise NotSupported(
            f"{p} does not exist: the kernel was built without CONFIG_DEBUG_INFO_BTF"
        ) from None


@functools.cache
def module_btf(name: str) -> LazyBtf:
    """The split BTF of kernel module ``name`` on top of vmlinux."""
    path = f"/sys/kernel/btf/{name}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NotSupported(f"no BTF for kernel module {name!r} ({path})") from None
    return LazyBtf(data, vmlinux_btf())


def kernel_btf_obj_id(name: str) -> int:
    """The kernel's BTF object id of ``vmlinux`` or module ``name`` (0 if not found)."""
    for bid in bsys.btf_ids():
        try:
            fd = bsys.FD(bsys.btf_get_fd_by_id(bid))
        except OSError:
            continue
        with fd:
            info = bsys.btf_info(fd)
        if info.kernel_btf and info.name == name:
            return bid
    return 0


# ---------------------------------------------------------------------------
# Object BTF → what BPF_BTF_LOAD accepts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BtfFeatures:
    """The BTF kinds and flags this kernel understands (everything, by default)."""

    func: bool = True
    func_global: bool = True
    datasec: bool = True
    float: bool = True
    decl_tag: bool = True
    type_tag: bool = True
    enum64: bool = True

    @classmethod
    def none(cls) -> BtfFeatures:
        """A kernel with only the oldest BTF (for tests of sanitisation)."""
        return cls(False, False, False, False, False, False, False)


@dataclass
class PreparedBtf:
    """An object's BTF ready for ``BPF_BTF_LOAD``, with the offsets of extra strings."""

    data: bytes
    btf: Btf
    strings: dict[str, int] = field(default_factory=dict)
    sanitised: list[str] = field(default_factory=list)

    def string_offset(self, s: str) -> int:
        """The offset of a string added with ``extra_strings`` (or already present)."""
        return self.strings[s]


def _int_id(types: list[BtfType], size: int = 4) -> int:
    """The id of a plain ``int``-like type of ``size`` bytes (added when missing)."""
    for t in types[1:]:
        if isinstance(t, Int) and t.size == size and t.bits == size * 8 and not t.offset:
            return t.id
    t = Int(len(types), f"__bpfkit_int{size * 8}", size, 1, 0, size * 8)
    types.append(t)
    return t.id


def _fix_externs(types: list[BtfType], spec: ObjectSpec | None, notes: list[str]) -> None:
    """Rewrite ``.kconfig``/``.ksyms`` externs the way the kernel accepts them."""
    kconfig = {e.name: e for e in spec.externs.values()} if spec is not None else {}
    kc_map = spec.maps.get(".kconfig") if spec is not None else None
    dummy: int | None = None
    for t in list(types[1:]):
        if not isinstance(t, Datasec) or t.name not in (".kconfig", ".ksyms"):
            continue
        int_id = _int_id(types)
        off = 0
        for vs in t.vars:
            vt = types[vs.type]
            if t.name == ".kconfig" and isinstance(vt, Var):
                vt.linkage = VarLinkage.GLOBAL_ALLOCATED
                ext = kconfig.get(vt.name)
                if ext is not None:
                    vs.offset, vs.size = ext.offset, ext.size
                continue
            if isinstance(vt, Func):
                if dummy is None:
                    dummy = len(types)
                    types.append(Var(dummy, "__bpfkit_ksym", int_id, VarLinkage.GLOBAL_ALLOCATED))
                proto = types[vt.type]
                if isinstance(proto, FuncProto):
                    for i, p in enumerate(proto.params):
                        if p.type and not p.name:
                            p.name = f"__arg{i}"
                vt.linkage = FuncLinkage.GLOBAL
                vs.type = dummy
            elif isinstance(vt, Var):
                vt.linkage = VarLinkage.GLOBAL_ALLOCATED
                vt.type = int_id
            vs.offset, vs.size = off, 4
            off += 4
        if t.name == ".ksyms":
            t.size = off
        elif kc_map is not None:
            t.size = kc_map.value_size
        t.vars.sort(key=lambda v: v.offset)
        notes.append(f"externs of {t.name}")
    # Extern functions outside .ksyms (kfuncs declared without a section).
    for t in types[1:]:
        if isinstance(t, Func) and t.linkage == FuncLinkage.EXTERN:
            t.linkage = FuncLinkage.GLOBAL
            proto = types[t.type]
            if isinstance(proto, FuncProto):
                for i, p in enumerate(proto.params):
                    if p.type and not p.name:
                        p.name = f"__arg{i}"


def _downgrade(types: list[BtfType], feats: BtfFeatures, notes: list[str]) -> None:
    """Replace kinds the kernel does not know with ones it does (same sizes)."""
    for i, t in enumerate(types):
        if i == 0:
            continue
        new: BtfType | None = None
        if isinstance(t, DeclTag) and not feats.decl_tag:
            new = Int(i, "", 1, 0, 0, 8)
        elif isinstance(t, TypeTag) and not feats.type_tag:
            new = Const(i, "", t.type)
        elif isinstance(t, Float) and not feats.float:
            new = Struct(i, t.name, t.size, [])
        elif isinstance(t, Enum64) and not feats.enum64:
            new = Union(i, t.name, t.size, [])
        elif isinstance(t, Var) and not feats.datasec:
            new = Int(i, t.name, 1, 0, 0, 8)
        elif isinstance(t, Datasec) and not feats.datasec:
            nm = "".join(c if c.isalnum() or c == "_" else "_" for c in t.name)
            new = Struct(i, nm, t.size, [])
        elif isinstance(t, Func) and not feats.func:
            new = Typedef(i, t.name, t.type)
        elif isinstance(t, FuncProto) and not feats.func:
            new = Enum(
                i, "", 4, [EnumValue(p.name or f"__arg{j}", 0) for j, p in enumerate(t.params)]
            )
            if not new.values:  # type: ignore[attr-defined]
                new = Int(i, "", 1, 0, 0, 8)
        elif isinstance(t, Func) and not feats.func_global and t.linkage != FuncLinkage.STATIC:
            t.linkage = FuncLinkage.STATIC
            notes.append("global function linkage")
            continue
        if new is not None:
            types[i] = new
            notes.append(f"{t.kind.name.lower()} kind")


def _string_table(blob: bytes) -> tuple[int, int, dict[str, int]]:
    _m, _v, _f, hdr_len, _to, _tl, soff, slen = _HDR.unpack_from(blob)
    start = hdr_len + soff
    table: dict[str, int] = {}
    pos = 0
    for part in blob[start : start + slen].split(b"\0")[:-1]:
        table.setdefault(part.decode("utf-8", "replace"), pos)
        pos += len(part) + 1
    return start, slen, table


def prepare_object_btf(
    btf: Btf,
    spec: ObjectSpec | None = None,
    *,
    extra_strings: Iterable[str] = (),
    features: BtfFeatures | None = None,
) -> PreparedBtf:
    """The kernel-loadable bytes of an object's BTF (the object's own ``Btf`` is not changed)."""
    feats = features or BtfFeatures()
    types = copy.deepcopy(list(btf.types))
    notes: list[str] = []
    _fix_externs(types, spec, notes)
    for t in types[1:]:
        if isinstance(t, Datasec):
            t.vars.sort(key=lambda v: v.offset)
    _downgrade(types, feats, notes)
    work = Btf(types, b"")
    blob = encode_btf(work)
    start, slen, table = _string_table(blob)
    extra = bytearray()
    for s in extra_strings:
        if s not in table:
            table[s] = slen + len(extra)
            extra += s.encode("utf-8", "replace").replace(b"\0", b" ") + b"\0"
    if extra:
        hdr = list(_HDR.unpack_from(blob))
        hdr[7] = slen + len(extra)
        blob = _HDR.pack(*hdr) + blob[_HDR.size :] + bytes(extra)
    return PreparedBtf(blob, work, table, notes)


def load_btf(data: bytes) -> bsys.FD:
    """``BPF_BTF_LOAD`` the blob; the owned fd (``KernelError`` with the kernel's log)."""
    return bsys.FD(bsys.btf_load(data))
