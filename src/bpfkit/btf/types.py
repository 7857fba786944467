"""BTF types as plain data: one class per kind, referring to other types by id.

A :class:`Btf` holds the types of one blob (index = type id, id 0 is ``void``) and
answers the questions every other layer asks: resolve typedefs and modifiers, size
and alignment, lookup by name, and C spelling (via :mod:`bpfkit.btf.cprint`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableSequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import BtfError
from ..uapi.btf import (
    BTF_INT_BOOL,
    BTF_INT_CHAR,
    BTF_INT_SIGNED,
    MAX_RESOLVE_DEPTH,
    BtfKind,
    FuncLinkage,
    VarLinkage,
)
from .fields import Data

__all__ = [
    "Btf",
    "BtfType",
    "Void",
    "Int",
    "Ptr",
    "Array",
    "Member",
    "Struct",
    "Union",
    "EnumValue",
    "Enum",
    "Enum64",
    "Fwd",
    "Typedef",
    "Volatile",
    "Const",
    "Restrict",
    "Func",
    "Param",
    "FuncProto",
    "Var",
    "VarSecinfo",
    "Datasec",
    "Float",
    "DeclTag",
    "TypeTag",
    "MODIFIERS",
]


@dataclass(slots=True, eq=False, repr=False)
class BtfType(Data):
    """Base of every BTF type: its id in the blob and its name ("" when anonymous)."""

    kind: ClassVar[BtfKind] = BtfKind.UNKN
    id: int
    name: str

    @property
    def kind_name(self) -> str:
        """The kind as bpftool spells it (``STRUCT``, ``FUNC_PROTO``, ...)."""
        return self.kind.name


@dataclass(slots=True, eq=False, repr=False)
class Void(BtfType):
    """Type id 0: ``void``."""

    kind: ClassVar[BtfKind] = BtfKind.UNKN


@dataclass(slots=True, eq=False, repr=False)
class Int(BtfType):
    """An integer of ``size`` bytes using ``bits`` bits from bit ``offset``."""

    kind: ClassVar[BtfKind] = BtfKind.INT
    size: int = 0
    encoding: int = 0
    offset: int = 0
    bits: int = 0

    @property
    def signed(self) -> bool:
        return bool(self.encoding & BTF_INT_SIGNED)

    @property
    def is_char(self) -> bool:
        """A C ``char`` (the CHAR encoding bit, or clang's 1-byte int named ``char``)."""
        return bool(self.encoding & BTF_INT_CHAR) or (self.size == 1 and self.name == "char")

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & BTF_INT_BOOL)


@dataclass(slots=True, eq=False, repr=False)
class _Ref(BtfType):
    """A kind whose payload is one referenced type id."""

    type: int = 0


@dataclass(slots=True, eq=False, repr=False)
class Ptr(_Ref):
    """Pointer to ``type``."""

    kind: ClassVar[BtfKind] = BtfKind.PTR


@dataclass(slots=True, eq=False, repr=False)
class Typedef(_Ref):
    """``typedef type name``."""

    kind: ClassVar[BtfKind] = BtfKind.TYPEDEF


@dataclass(slots=True, eq=False, repr=False)
class Volatile(_Ref):
    """``volatile type``."""

    kind: ClassVar[BtfKind] = BtfKind.VOLATILE


@dataclass(slots=True, eq=False, repr=False)
class Const(_Ref):
    """``const type``."""

    kind: ClassVar[BtfKind] = BtfKind.CONST


@dataclass(slots=True, eq=False, repr=False)
class Restrict(_Ref):
    """``restrict type``."""

    kind: ClassVar[BtfKind] = BtfKind.RESTRICT


@dataclass(slots=True, eq=False, repr=False)
class TypeTag(_Ref):
    """``__attribute__((btf_type_tag(name))) type``."""

    kind: ClassVar[BtfKind] = BtfKind.TYPE_TAG


@dataclass(slots=True, eq=False, repr=False)
class Array(BtfType):
    """``type[nelems]`` indexed by ``index_type``."""

    kind: ClassVar[BtfKind] = BtfKind.ARRAY
    type: int = 0
    index_type: int = 0
    nelems: int = 0


@dataclass(slots=True, eq=False, repr=False)
class Member(Data):
    """One struct/union member; ``bitfield_size`` is 0 for a plain member."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(slots=True, eq=False, repr=False)
class Struct(BtfType):
    """A struct of ``size`` bytes; ``kflag`` says offsets carry bitfield sizes."""

    kind: ClassVar[BtfKind] = BtfKind.STRUCT
    size: int = 0
    members: list[Member] = field(default_factory=list)
    kflag: bool = False


@dataclass(slots=True, eq=False, repr=False)
class Union(Struct):
    """A union (same layout data as a struct)."""

    kind: ClassVar[BtfKind] = BtfKind.UNION


@dataclass(slots=True, eq=False, repr=False)
class EnumValue(Data):
    """One enumerator."""

    name: str
    value: int


@dataclass(slots=True, eq=False, repr=False)
class Enum(BtfType):
    """An enum of ``size`` bytes (32-bit values); ``signed`` is the kind flag."""

    kind: ClassVar[BtfKind] = BtfKind.ENUM
    size: int = 4
    values: list[EnumValue] = field(default_factory=list)
    signed: bool = False


@dataclass(slots=True, eq=False, repr=False)
class Enum64(Enum):
    """An enum with 64-bit values."""

    kind: ClassVar[BtfKind] = BtfKind.ENUM64


@dataclass(slots=True, eq=False, repr=False)
class Fwd(BtfType):
    """A forward declaration of a struct (or a union when ``is_union``)."""

    kind: ClassVar[BtfKind] = BtfKind.FWD
    is_union: bool = False


@dataclass(slots=True, eq=False, repr=False)
class Func(BtfType):
    """A function: ``type`` is its FUNC_PROTO."""

    kind: ClassVar[BtfKind] = BtfKind.FUNC
    type: int = 0
    linkage: FuncLinkage | int = FuncLinkage.STATIC


@dataclass(slots=True, eq=False, repr=False)
class Param(Data):
    """A function parameter (a trailing nameless param of type 0 means ``...``)."""

    name: str
    type: int


@dataclass(slots=True, eq=False, repr=False)
class FuncProto(BtfType):
    """A function signature."""

    kind: ClassVar[BtfKind] = BtfKind.FUNC_PROTO
    return_type: int = 0
    params: list[Param] = field(default_factory=list)

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type == 0 and not self.params[-1].name


@dataclass(slots=True, eq=False, repr=False)
class Var(BtfType):
    """A variable of ``type`` with its linkage (static, global, extern)."""

    kind: ClassVar[BtfKind] = BtfKind.VAR
    type: int = 0
    linkage: VarLinkage | int = VarLinkage.STATIC


@dataclass(slots=True, eq=False, repr=False)
class VarSecinfo(Data):
    """One variable of a DATASEC: its VAR (or FUNC) id, offset and size."""

    type: int
    offset: int
    size: int


@dataclass(slots=True, eq=False, repr=False)
class Datasec(BtfType):
    """An ELF data section and the variables in it."""

    kind: ClassVar[BtfKind] = BtfKind.DATASEC
    size: int = 0
    vars: list[VarSecinfo] = field(default_factory=list)


@dataclass(slots=True, eq=False, repr=False)
class Float(BtfType):
    """A floating-point type of ``size`` bytes."""

    kind: ClassVar[BtfKind] = BtfKind.FLOAT
    size: int = 0


@dataclass(slots=True, eq=False, repr=False)
class DeclTag(BtfType):
    """``btf_decl_tag(name)`` on ``type`` (component -1) or on one member/param."""

    kind: ClassVar[BtfKind] = BtfKind.DECL_TAG
    type: int = 0
    component_idx: int = -1


MODIFIERS = (BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG)
# The C keyword of each qualifier kind.
QUALIFIER_WORDS = {
    BtfKind.CONST: "const",
    BtfKind.VOLATILE: "volatile",
    BtfKind.RESTRICT: "restrict",
}
_SIZED = (
    BtfKind.INT,
    BtfKind.STRUCT,
    BtfKind.UNION,
    BtfKind.ENUM,
    BtfKind.ENUM64,
    BtfKind.DATASEC,
    BtfKind.FLOAT,
)


class Btf:
    """The types and strings of one BTF blob (optionally split on top of ``base``).

    :func:`~bpfkit.btf.parser.parse_btf` returns a *lazy* ``Btf``: the blob is fully
    validated up front, but a type object is built only when it is first asked for
    (``btf[i]``, ``btf.types[i]``, iteration), and the name index only on the first
    :meth:`find`. ``types`` is then a list-like view; a ``Btf`` built from a list keeps
    that very list.
    """

    def __init__(
        self,
        types: list[BtfType],
        strings: bytes = b"",
        base: Btf | None = None,
        *,
        raw: bytes | None = None,
    ):
        self._types = types
        self._lazy = None  # the decoder of a lazily parsed blob (see parser._LazyTypes)
        self.strings = strings
        self.base = base
        self.raw = raw
        self._by_name: dict[str, list[int]] | None = None

    @classmethod
    def _from_lazy(cls, lazy, count: int, strings: bytes, base: Btf | None, raw: bytes) -> Btf:
        """A ``Btf`` of ``count`` types (base included) decoded on demand by ``lazy``."""
        btf = cls.__new__(cls)
        slots: list = [None] * count
        if base is None:
            slots[0] = Void(0, "void")
        btf._types = slots
        btf._lazy = lazy
        btf.strings = strings
        btf.base = base
        btf.raw = raw
        btf._by_name = None
        return btf

    @property
    def types(self) -> list[BtfType]:
        """Every type, indexed by id (id 0 is ``void``; split BTF starts with its base's)."""
        if self._lazy is None:
            return self._types
        return _TypeList(self)  # type: ignore[return-value]

    @types.setter
    def types(self, value: list[BtfType]) -> None:
        self._types = value
        self._lazy = None
        self._by_name = None

    def _load(self, type_id: int) -> BtfType:
        """Decode (once) the type ``type_id`` of a lazy blob."""
        if type_id < self.start_id:
            t = self.base.get(type_id)  # type: ignore[union-attr]
        else:
            t = self._lazy.decode(type_id)  # type: ignore[union-attr]
        self._types[type_id] = t
        return t

    def _materialize(self) -> None:
        """Decode every type and drop the lazy decoder (before the list is changed)."""
        if self._lazy is not None:
            slots = self._types
            for i, t in enumerate(slots):
                if t is None:
                    self._load(i)
            self._lazy = None

    # ---- access --------------------------------------------------------------
    @property
    def start_id(self) -> int:
        """The first id defined by this blob (1 for base BTF, after the base for split)."""
        return len(self.base.types) if self.base is not None else 1

    def __len__(self) -> int:
        return len(self._types)

    def __iter__(self) -> Iterator[BtfType]:
        return iter(self.types)

    def __getitem__(self, type_id: int) -> BtfType:
        return self.get(type_id)

    def get(self, type_id: int) -> BtfType:
        """The type with this id; ``BtfError`` when there is none."""
        types = self._types
        if not isinstance(type_id, int) or not 0 <= type_id < len(types):
            raise BtfError(f"type id {type_id} out of range (have {len(types)} types)")
        t = types[type_id]
        if t is None and self._lazy is not None:
            t = self._load(type_id)
        return t

    def find(self, name: str, kind: BtfKind | None = None) -> BtfType | None:
        """The first type with this name (and kind), or ``None``."""
        for tid in self._ids_named(name):
            t = self.get(tid)
            if kind is None or t.kind == kind:
                return t
        return None

    def find_all(self, name: str, kind: BtfKind | None = None) -> list[BtfType]:
        """Every type with this name (and kind)."""
        out = []
        for tid in self._ids_named(name):
            t = self.get(tid)
            if kind is None or t.kind == kind:
                out.append(t)
        return out

    def _ids_named(self, name: str) -> list[int]:
        """Ids of every type called ``name``, ascending (base types first)."""
        lazy = self._lazy
        if lazy is None or self._by_name is not None:
            return self._names().get(name, [])
        ids = lazy.lookups.get(name)
        if ids is None:
            own = lazy.ids_named(name)
            if self.base is not None:
                ids = list(self.base._ids_named(name)) + own
            else:
                ids = [0, *own] if name == "void" else own
            lazy.lookups[name] = ids
        return ids

    def _names(self) -> dict[str, list[int]]:
        if self._by_name is None:
            idx: dict[str, list[int]] = {}
            if self._lazy is not None:
                # Names straight from the name offsets: no type object is built.
                if self.base is not None:
                    for nm, ids in self.base._names().items():
                        idx[nm] = list(ids)
                else:
                    idx["void"] = [0]
                string = self._lazy.strs.__getitem__
                tid = self.start_id
                for off in self._lazy.name_offs:
                    if off:
                        nm = string(off)
                        if nm:
                            ids = idx.get(nm)
                            if ids is None:
                                idx[nm] = [tid]
                            else:
                                ids.append(tid)
                    tid += 1
            else:
                for t in self.types:
                    if t.name:
                        idx.setdefault(t.name, []).append(t.id)
            self._by_name = idx
        return self._by_name

    # ---- resolution ----------------------------------------------------------
    def skip_mods(self, type_id: int) -> BtfType:
        """The type behind const/volatile/restrict/type-tag modifiers."""
        t = self.get(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in MODIFIERS:
                return t
            t = self.get(t.type)  # type: ignore[attr-defined]
        raise BtfError(f"type {type_id}: modifier chain too long or cyclic")

    def resolve(self, type_id: int) -> BtfType:
        """The type behind typedefs and modifiers."""
        t = self.get(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in MODIFIERS and t.kind != BtfKind.TYPEDEF:
                return t
            t = self.get(t.type)  # type: ignore[attr-defined]
        raise BtfError(f"type {type_id}: typedef/modifier chain too long or cyclic")

    def size_of(self, type_id: int) -> int:
        """Size in bytes of a value of this type (``BtfError`` for void, funcs, fwds)."""
        return self._size(type_id, 0)

    def _size(self, type_id: int, depth: int) -> int:
        if depth > MAX_RESOLVE_DEPTH:
            raise BtfError(f"type {type_id}: nesting too deep while computing a size")
        t = self.resolve(type_id)
        if t.kind in _SIZED:
            return t.size  # type: ignore[attr-defined]
        if t.kind == BtfKind.PTR:
            return 8
        if t.kind == BtfKind.ARRAY:
            return t.nelems * self._size(t.type, depth + 1)  # type: ignore[attr-defined]
        if t.kind == BtfKind.VAR:
            return self._size(t.type, depth + 1)  # type: ignore[attr-defined]
        raise BtfError(f"type {type_id} ({t.kind.name}) has no size")

    def align_of(self, type_id: int) -> int:
        """Natural alignment in bytes (as the BPF target lays it out)."""
        return self._align(type_id, 0)

    def _align(self, type_id: int, depth: int) -> int:
        if depth > MAX_RESOLVE_DEPTH:
            raise BtfError(f"type {type_id}: nesting too deep while computing alignment")
        t = self.resolve(type_id)
        if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT):
            return max(1, min(t.size, 8))  # type: ignore[attr-defined]
        if t.kind == BtfKind.PTR:
            return 8
        if t.kind == BtfKind.ARRAY:
            return self._align(t.type, depth + 1)  # type: ignore[attr-defined]
        if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
            a = 1
            for m in t.members:  # type: ignore[attr-defined]
                a = max(a, self._align(m.type, depth + 1))
            return a
        if t.kind == BtfKind.VAR:
            return self._align(t.type, depth + 1)  # type: ignore[attr-defined]
        return 1

    # ---- presentation --------------------------------------------------------
    def type_name(self, type_id: int, var_name: str = "") -> str:
        """The C spelling of a type (``struct foo *``, ``int [4]``), optionally declaring ``var_name``."""
        from .cprint import type_to_c

        return type_to_c(self, type_id, var_name)

    def format_c(self, type_id: int) -> str:
        """The C definition of one type (struct/union/enum body, typedef, function, ...)."""
        from .cprint import format_definition

        return format_definition(self, type_id)

    def kinds_summary(self) -> dict[str, int]:
        """How many types of each kind this blob defines."""
        out: dict[str, int] = {}
        if self._lazy is not None:
            kinds = self._lazy.kinds
            for k in set(kinds):
                out[BtfKind(k).name] = kinds.count(k)
            return dict(sorted(out.items()))
        for t in self.types[self.start_id :]:
            out[t.kind.name] = out.get(t.kind.name, 0) + 1
        return dict(sorted(out.items()))

    def to_bytes(self) -> bytes:
        """The blob encoded again (current types, freshly built string table)."""
        from .parser import encode_btf

        return encode_btf(self)

    def __repr__(self) -> str:
        return f"<Btf {len(self.types) - self.start_id} types>"


class _TypeList(MutableSequence):
    """``Btf.types`` of a lazy blob: a list-like view that decodes types on access.

    Reading (index, slice, iteration, ``len``, ``==``) decodes only what it touches;
    changing the list first decodes everything and turns the ``Btf`` into a plain one.
    """

    __slots__ = ("_btf",)

    def __init__(self, btf: Btf) -> None:
        self._btf = btf

    def __len__(self) -> int:
        return len(self._btf._types)

    def __getitem__(self, i):  # type: ignore[override]
        btf = self._btf
        slots = btf._types
        if isinstance(i, slice):
            out = slots[i]
            if None in out and btf._lazy is not None:
                return [btf.get(j) for j in range(*i.indices(len(slots)))]
            return out
        t = slots[i]
        if t is None and btf._lazy is not None:
            t = btf._load(i % len(slots))
        return t

    def __iter__(self) -> Iterator[BtfType]:
        btf = self._btf
        slots = btf._types
        for i in range(len(slots)):
            t = slots[i]
            if t is None and btf._lazy is not None:
                t = btf._load(i)
            yield t

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _TypeList | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))

    def _plain(self) -> list[BtfType]:
        self._btf._materialize()
        return self._btf._types

    def __setitem__(self, i, value) -> None:  # type: ignore[override]
        self._plain()[i] = value

    def __delitem__(self, i) -> None:  # type: ignore[override]
        del self._plain()[i]

    def insert(self, index: int, value: BtfType) -> None:
        self._plain().insert(index, value)


# The kinds that are only a name and a referenced type, and their classes.
REF_KINDS: dict[BtfKind, type[BtfType]] = {
    cls.kind: cls for cls in (Ptr, Typedef, Volatile, Const, Restrict, TypeTag)
}
