"""The types of bpftrace expressions, map keys and map values.

A :class:`Ty` is immutable and hashable. Integers are at most 64 bits; strings and buffers
carry their capacity; pointers and records keep a reference to a kernel BTF type (or a
tracepoint's format) so fields can be looked up; aggregations (``count()``, ``hist()``
...) are value types of maps only.
"""

from __future__ import annotations

from typing import Any

AGGREGATIONS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")


class Ty:
    """One type. ``kind`` is ``int``, ``str``, ``buf``, ``ptr``, ``record``, ``array``,
    ``tuple``, ``none``, ``ksym``, ``usym``, ``kstack``, ``ustack``, ``inet``, ``mac``,
    ``username``, ``probe``, ``cgroup_path``, ``strerror``, ``timestamp`` or an aggregation.

    Immutable and hashable (``fields`` takes no part in equality). A plain class with
    slots, not a dataclass, to keep ``bpfkit trace``'s start-up short.
    """

    __slots__ = ("kind", "size", "signed", "elem", "count", "name", "items", "btf_id",
                 "space", "fields", "extra", "_key")  # fmt: skip
    kind: str
    size: int
    signed: bool
    elem: Ty | None  # pointee (ptr), element (array)
    count: int  # array length
    name: str  # record name ("struct task_struct", "args")
    items: tuple[Ty, ...]  # tuple members
    btf_id: int  # the record's BTF type id (0: not from BTF)
    space: str  # where a pointer points: kernel, user, ctx
    fields: Any  # tracepoint args layout (not compared)
    extra: tuple  # lhist (min, max, step); stack depth/mode

    def __init__(self, kind: str, size: int = 8, signed: bool = False, elem: Ty | None = None,
                 count: int = 0, name: str = "", items: tuple[Ty, ...] = (), btf_id: int = 0,
                 space: str = "kernel", fields: Any = None, extra: tuple = ()) -> None:  # fmt: skip
        st = object.__setattr__
        st(self, "kind", kind)
        st(self, "size", size)
        st(self, "signed", signed)
        st(self, "elem", elem)
        st(self, "count", count)
        st(self, "name", name)
        st(self, "items", items)
        st(self, "btf_id", btf_id)
        st(self, "space", space)
        st(self, "fields", fields)
        st(self, "extra", extra)
        st(self, "_key", (kind, size, signed, elem, count, name, items, btf_id, space, extra))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Ty is immutable (cannot set {name})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ty) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Ty({self._key!r})"

    # ---- shapes -----------------------------------------------------------------------
    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_scalar(self) -> bool:
        """Held in a register: integers, pointers and 8-byte tagged values."""
        return self.kind in ("int", "ptr", "ksym", "kstack", "ustack", "username",
                             "probe", "timestamp", "cgroup_path", "strerror", "func")  # fmt: skip

    @property
    def is_agg(self) -> bool:
        return self.kind in AGGREGATIONS

    @property
    def is_signed_int(self) -> bool:
        return self.kind == "int" and self.signed

    def __str__(self) -> str:
        k = self.kind
        if k == "int":
            return f"{'' if self.signed else 'u'}int{self.size * 8}"
        if k == "str":
            return f"string[{self.size}]"
        if k == "buf":
            return f"buffer[{self.size}]"
        if k == "ptr":
            return f"{self.elem} *"
        if k == "record":
            return self.name
        if k == "array":
            return f"{self.elem}[{self.count}]"
        if k == "tuple":
            return "(" + ", ".join(str(t) for t in self.items) + ")"
        return k


def Int(size: int = 8, signed: bool = False) -> Ty:  # noqa: N802 - a type constructor
    """An integer of ``size`` bytes."""
    return Ty("int", size, signed)


U64 = Int(8, False)
S64 = Int(8, True)
U32 = Int(4, False)
S32 = Int(4, True)
NONE = Ty("none", 0)
DEFAULT_STRLEN = 64


def Str(size: int = DEFAULT_STRLEN) -> Ty:  # noqa: N802
    """A NUL-terminated string in a ``size``-byte buffer."""
    return Ty("str", size)


def Tuple(items: tuple[Ty, ...]) -> Ty:  # noqa: N802
    """A tuple; members are laid out 8-byte aligned."""
    return Ty("tuple", sum(storage_size(t) for t in items), items=items)


def Agg(kind: str, signed: bool = False, extra: tuple = ()) -> Ty:  # noqa: N802
    """A map value type made by an aggregation function."""
    return Ty(kind, 8, signed, extra=extra)


def storage_size(t: Ty) -> int:
    """Bytes a value of ``t`` takes in a key, a map value or an event (8-byte aligned)."""
    if t.is_scalar or t.kind == "none":
        return 8
    if t.kind == "tuple":
        return sum(storage_size(i) for i in t.items)
    if t.kind == "inet":
        return 24
    if t.kind == "mac":
        return 8
    if t.kind == "usym":  # the address and the pid whose mappings resolve it
        return 16
    if t.kind == "buf":  # the length read (8 bytes), then the bytes
        return 8 + ((t.size + 7) & ~7)
    return (t.size + 7) & ~7


def with_space(t: Ty, space: str) -> Ty:
    """``t`` (a pointer or a record) read from ``space`` memory: kernel, user or any."""
    if t.space == space:
        return t
    return Ty(t.kind, t.size, t.signed, t.elem, t.count, t.name, t.items, t.btf_id, space,
              t.fields, t.extra)  # fmt: skip


def merge(a: Ty, b: Ty) -> Ty | None:
    """The type holding values of both ``a`` and ``b`` (``None``: incompatible)."""
    if a == b:
        return a
    if a.kind == "int" and b.kind == "int":
        return Int(8, a.signed or b.signed)
    if a.kind == b.kind and a.kind in ("str", "buf"):
        return Ty(a.kind, max(a.size, b.size))
    if a.kind == b.kind == "tuple" and len(a.items) == len(b.items):
        items = [merge(x, y) for x, y in zip(a.items, b.items, strict=True)]
        if any(i is None for i in items):
            return None
        return Tuple(tuple(items))  # type: ignore[arg-type]
    if a.kind == "ptr" and b.kind == "int" or a.kind == "int" and b.kind == "ptr":
        return a if a.kind == "ptr" else b
    if a.kind == b.kind:
        return a
    return None
