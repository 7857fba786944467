"""Compiled codecs: a BTF type turned once into a fast encoder/decoder of its values.

:func:`compile_type` looks at a type once and builds what reading and writing its values
needs — for a struct of scalars, arrays and nested structs, one ``struct.Struct`` and a
list of member names; for anything else (unions, bit-fields, 128-bit integers) the
generic walk of :mod:`bpfkit.btf.values` with its names resolved up front. Maps use it
for their keys and values, :mod:`bpfkit.events` for ring and perf buffer records.

Values are what :mod:`bpfkit.btf.values` gives: ints, floats, bools, :class:`Record`
(a ``dict`` with attribute access) for structs and unions, lists for arrays, and for
``char[]`` a ``str`` when it holds a C string (see :func:`c_string`) or ``bytes``. A
*key* codec (``key=True``) gives hashable values instead: :class:`FrozenRecord` and
tuples, so decoded keys can index a ``dict``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BtfError
from ..uapi.btf import BtfKind
from .types import Btf

__all__ = ["Record", "FrozenRecord", "TypeCodec", "compile_type", "c_string", "freeze"]


class Record(dict):
    """A decoded struct or union: a ``dict`` by member name whose members are also
    attributes (``ev.pid`` is ``ev["pid"]``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.items())})"


class FrozenRecord(Record):
    """A decoded struct used as a key: immutable and hashable (equal to the same dict)."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def _immutable(self, *_: Any, **__: Any) -> Any:
        raise TypeError("a decoded key is immutable; build a new dict to change it")

    __setitem__ = __delitem__ = __setattr__ = _immutable  # type: ignore[assignment]
    update = pop = popitem = clear = setdefault = __ior__ = _immutable  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))


def freeze(value: Any) -> Any:
    """The hashable form of a decoded value: records frozen, lists made tuples."""
    if isinstance(value, FrozenRecord):
        return value
    if isinstance(value, dict):
        return FrozenRecord({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def c_string(raw: bytes) -> str | bytes:
    """``char[]`` contents as text when they are a C string, else the bytes.

    Text when the bytes before the first NUL are printable UTF-8 and every byte after it
    is zero (so encoding the text gives back exactly these bytes); a full buffer without a
    NUL counts too. Anything else — binary data, garbage after the terminator — stays
    ``bytes``.
    """
    head, nul, tail = raw.partition(b"\0")
    if nul and tail.count(0) != len(tail):
        return raw
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    return text if text.isprintable() else raw


_INT_FMT = {
    (1, False): "B",
    (1, True): "b",
    (2, False): "H",
    (2, True): "h",
    (4, False): "I",
    (4, True): "i",
    (8, False): "Q",
    (8, True): "q",
}
_FLOAT_FMT = {2: "e", 4: "f", 8: "d"}
_MAX_FLAT_ITEMS = 4096  # beyond this a struct format is not worth building


class _Flat:
    """A value laid out as a ``struct`` format: how many items it takes and how to turn
    them into the Python value (``get``) and back (``put``)."""

    __slots__ = ("fmt", "count", "get", "put", "names")

    def __init__(
        self,
        fmt: str,
        count: int,
        get: Callable[[tuple, int], Any] | None,
        put: Callable[[Any, list], None],
    ) -> None:
        self.fmt = fmt
        self.count = count
        self.get = get  # None: the item itself (one scalar)
        self.put = put
        self.names: tuple[str, ...] | None = None  # a struct of plain scalars: its members


class TypeCodec:
    """Encoder and decoder of one BTF type's values, built once by :func:`compile_type`."""

    def __init__(self, btf: Btf, type_id: int, *, key: bool = False) -> None:
        self.btf = btf
        self.type_id = type_id
        self.key = key
        self.size = btf.size_of(type_id)
        self.name = btf.type_name(type_id)
        self._struct: struct.Struct | None = None
        self._decode: Callable[[bytes], Any] = self._generic_decode
        self._encode: Callable[[Any], bytes] = self._generic_encode
        flat = None
        try:
            flat = _flat(btf, type_id, key, 0)
        except (BtfError, RecursionError, struct.error):
            flat = None
        if flat is not None and flat.count <= _MAX_FLAT_ITEMS:
            st = struct.Struct("<" + flat.fmt)
            if st.size == self.size:
                self._struct = st
                self._install(st, flat)

    # ---- the fast path -----------------------------------------------------------
    def _install(self, st: struct.Struct, flat: _Flat) -> None:
        unpack, pack = st.unpack_from, st.pack
        get, put = flat.get, flat.put
        generic = self._generic_encode
        names = flat.names

        if names is not None:
            # a struct of plain scalars: one pack of the members, zeros for missing ones
            known = frozenset(names)
            cls = FrozenRecord if self.key else Record

            def decode(data: bytes) -> Any:
                return cls(zip(names, unpack(data), strict=True))

            def encode(value: Any) -> bytes:
                if isinstance(value, dict) and value.keys() <= known:
                    try:
                        return pack(*[value.get(n, 0) for n in names])
                    except struct.error:
                        return generic(value)
                items: list = []
                try:
                    put(value, items)
                    return pack(*items)
                except (struct.error, TypeError, KeyError, AttributeError, ValueError, BtfError):
                    return generic(value)

            self._decode = decode
            self._encode = encode
            return

        if get is None:

            def decode(data: bytes) -> Any:
                return unpack(data)[0]

        else:

            def decode(data: bytes) -> Any:
                return get(unpack(data), 0)

        def encode(value: Any) -> bytes:
            items: list = []
            try:
                put(value, items)
                return pack(*items)
            except (struct.error, TypeError, KeyError, AttributeError, ValueError, BtfError):
                return generic(value)  # the generic walk says precisely what is wrong

        self._decode = decode
        self._encode = encode

    # ---- the generic path --------------------------------------------------------
    def _generic_decode(self, data: bytes) -> Any:
        from .values import decode_value

        v = decode_value(self.btf, self.type_id, data)
        return freeze(v) if self.key else v

    def _generic_encode(self, value: Any) -> bytes:
        from .values import encode_value

        return encode_value(self.btf, self.type_id, _plain(value))

    # ---- the interface -----------------------------------------------------------
    @property
    def compiled(self) -> bool:
        """Whether values go through one ``struct`` format (the fast path)."""
        return self._struct is not None

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """The Python value of ``data`` (at least :attr:`size` bytes; more are ignored)."""
        if len(data) < self.size:
            raise BtfError(f"{len(data)} bytes are too few for {self.name} ({self.size} bytes)")
        return self._decode(data)

    def encode(self, value: Any) -> bytes:
        """The bytes of ``value`` (``BtfError``/``TypeError`` when it does not fit)."""
        return self._encode(value)

    def __repr__(self) -> str:
        return f"<TypeCodec {self.name} {self.size}B {'compiled' if self.compiled else 'generic'}>"


def _plain(value: Any) -> Any:
    """Mappings, dataclasses and ctypes structures as dicts, tuples as lists (for the walk)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    fields = _fields_of(value)
    if fields is not None:
        return {k: _plain(getattr(value, k)) for k in fields}
    return value


def _fields_of(value: Any) -> list[str] | None:
    """Member names of a dataclass, named tuple or ctypes structure instance."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value)]
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return list(value._fields)
    cfields = getattr(type(value), "_fields_", None)
    if cfields is not None and not isinstance(value, type):
        return [f[0] for f in cfields]
    return None


def _member(value: Any, name: str) -> Any:
    """``value[name]`` for mappings, ``value.name`` for objects; 0 when absent."""
    if isinstance(value, Mapping):
        return value.get(name, 0)
    return getattr(value, name, 0)


# ---- building flat layouts ------------------------------------------------------------


def _flat(btf: Btf, tid: int, key: bool, depth: int) -> _Flat | None:
    """The flat layout of ``tid``, or ``None`` when it needs the generic walk."""
    if depth > 32:
        return None
    t = btf.resolve(tid)
    k = t.kind
    if k == BtfKind.INT:
        if t.offset or t.bits != 8 * t.size:  # type: ignore[attr-defined]
            return None
        if t.is_bool and t.size == 1:  # type: ignore[attr-defined]
            return _Flat("?", 1, None, _put_scalar)
        fmt = _INT_FMT.get((t.size, t.signed))  # type: ignore[attr-defined]
        return _Flat(fmt, 1, None, _put_scalar) if fmt else None
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        fmt = _INT_FMT.get((t.size, t.signed))  # type: ignore[attr-defined]
        if fmt is None:
            return None
        names = {v.name: v.value for v in t.values}  # type: ignore[attr-defined]

        def put_enum(v: Any, out: list) -> None:
            out.append(names[v] if isinstance(v, str) else v)

        return _Flat(fmt, 1, None, put_enum)
    if k == BtfKind.PTR:
        return _Flat("Q", 1, None, _put_scalar)
    if k == BtfKind.FLOAT:
        fmt = _FLOAT_FMT.get(t.size)  # type: ignore[attr-defined]
        return _Flat(fmt, 1, None, _put_float) if fmt else None
    if k == BtfKind.ARRAY:
        return _flat_array(btf, t, key, depth)
    if k == BtfKind.STRUCT:
        return _flat_struct(btf, t, key, depth)
    return None


def _put_scalar(v: Any, out: list) -> None:
    out.append(v)


def _put_float(v: Any, out: list) -> None:
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise TypeError("a float member needs a number")
    out.append(v)


def _flat_array(btf: Btf, t: Any, key: bool, depth: int) -> _Flat | None:
    n = t.nelems
    e = btf.resolve(t.type)
    if e.kind == BtfKind.INT and e.size == 1 and e.is_char:  # type: ignore[attr-defined]

        def get_chars(items: tuple, i: int) -> Any:
            return c_string(items[i])

        def put_chars(v: Any, out: list) -> None:
            if isinstance(v, str):
                v = v.encode("utf-8")
            elif isinstance(v, list | tuple):
                v = bytes(v)
            elif not isinstance(v, bytes | bytearray | memoryview):
                raise TypeError("a char array needs str or bytes")
            if len(v) > n:
                raise ValueError("too long")
            out.append(bytes(v))

        return _Flat(f"{n}s", 1, get_chars, put_chars)
    inner = _flat(btf, t.type, key, depth + 1)
    if inner is None or n == 0:
        return None
    if inner.count * n > _MAX_FLAT_ITEMS:
        return None
    wrap = tuple if key else list
    ic, iget, iput = inner.count, inner.get, inner.put
    if iget is None and ic == 1:

        def get_scalars(items: tuple, i: int) -> Any:
            return wrap(items[i : i + n])

        get: Callable[[tuple, int], Any] = get_scalars
    else:

        def get_elems(items: tuple, i: int) -> Any:
            if iget is None:
                return wrap(items[i + j * ic] for j in range(n))
            return wrap(iget(items, i + j * ic) for j in range(n))

        get = get_elems

    def put_elems(v: Any, out: list) -> None:
        if isinstance(v, str | bytes) or not hasattr(v, "__len__"):
            raise TypeError("an array needs a list")
        if len(v) > n:
            raise ValueError("too many elements")
        for x in v:
            iput(x, out)
        zero = _zero_items(inner)
        for _ in range(n - len(v)):
            out.extend(zero)

    fmt = inner.fmt if n == 1 else (f"{n}{inner.fmt}" if len(inner.fmt) == 1 else inner.fmt * n)
    return _Flat(fmt, ic * n, get, put_elems)


def _zero_items(flat: _Flat) -> list:
    """The items of a zero value of ``flat`` (for elements a list left out)."""
    st = struct.Struct("<" + flat.fmt)
    return list(st.unpack(bytes(st.size)))


def _flat_struct(btf: Btf, t: Any, key: bool, depth: int) -> _Flat | None:
    fmt: list[str] = []
    pos = 0
    count = 0
    plan: list[tuple[str, int, Any, Any]] = []  # (name, item index, get, put)
    names: list[str] = []
    for m in t.members:
        if m.bitfield_size or m.bit_offset % 8:
            return None
        off = m.bit_offset // 8
        if off < pos:
            return None
        if off > pos:
            fmt.append(f"{off - pos}x")
        inner = _flat(btf, m.type, key, depth + 1)
        if inner is None:
            return None
        mt = btf.resolve(m.type)
        if not m.name:
            if mt.kind != BtfKind.STRUCT:
                return None
            # an anonymous struct's members belong to the parent
            sub = _anon_members(btf, mt, key, depth + 1)
            if sub is None:
                return None
            for name, idx, get, put in sub:
                plan.append((name, count + idx, get, put))
                names.append(name)
        else:
            plan.append((m.name, count, inner.get, inner.put))
            names.append(m.name)
        fmt.append(inner.fmt)
        count += inner.count
        pos = off + btf.size_of(m.type)
    if pos < t.size:
        fmt.append(f"{t.size - pos}x")
    if len(set(names)) != len(names):
        return None
    return _struct_flat("".join(fmt), count, plan, key)


def _anon_members(btf: Btf, t: Any, key: bool, depth: int) -> list | None:
    f = _flat_struct(btf, t, key, depth)
    if f is None:
        return None
    return f.get.plan  # type: ignore[union-attr]


def _struct_flat(fmt: str, count: int, plan: list, key: bool) -> _Flat:
    cls = FrozenRecord if key else Record
    names = [p[0] for p in plan]
    known = frozenset(names)
    simple = all(g is None for _, _, g, _ in plan) and [p[1] for p in plan] == list(range(count))

    if simple:

        def get(items: tuple, i: int) -> Any:
            return cls(zip(names, items[i : i + count], strict=True))

    else:
        steps = [(n, idx, g) for n, idx, g, _ in plan]

        def get(items: tuple, i: int) -> Any:
            return cls(
                [(n, items[i + idx] if g is None else g(items, i + idx)) for n, idx, g in steps]
            )

    get.plan = plan  # type: ignore[attr-defined]
    puts = [(n, p) for n, _, _, p in plan]
    scalars = simple and all(p is _put_scalar for _, p in puts)

    def put(v: Any, out: list) -> None:
        if isinstance(v, Mapping):
            extra = v.keys() - known
            if extra:
                raise KeyError(f"no member(s) {', '.join(sorted(map(str, extra)))}")
        for n, p in puts:
            p(_member(v, n), out)

    flat = _Flat(fmt, count, get, put)
    if scalars:
        flat.names = tuple(names)
    return flat


def compile_type(btf: Btf, type_id: int, *, key: bool = False) -> TypeCodec:
    """The (cached) codec of BTF type ``type_id``; ``key=True`` decodes hashable values."""
    cache = _cache_of(btf)
    ck = (type_id, key)
    codec = cache.get(ck)
    if codec is None:
        codec = cache[ck] = TypeCodec(btf, type_id, key=key)
    return codec


def _cache_of(btf: Btf) -> dict:
    cache = getattr(btf, "_codecs", None)
    if cache is None:
        cache = {}
        try:
            btf._codecs = cache  # type: ignore[attr-defined]
        except AttributeError:  # a Btf without a __dict__: no caching
            pass
    return cache
