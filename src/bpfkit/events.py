"""Ring and perf buffer records as Python objects.

A program submits raw bytes; :func:`event_type` says what they are and gives back an
:class:`EventType` that decodes them (and encodes, for tests). The layout may be

- a **BTF type name** — ``"struct event"`` or ``"event"`` — looked up in the object's BTF
  (pass the loaded object, its ``ObjectSpec`` or a ``Btf``), then in the kernel's
  (``/sys/kernel/btf/vmlinux``);
- a **C definition** — ``"struct event { __u32 pid; char comm[16]; };"`` — parsed by
  :mod:`bpfkit.btf.cparse` (or, with ``compiler="clang"``, compiled with ``clang -g`` and
  read from the object's BTF);
- a **ctypes** ``Structure`` subclass (records decode to instances of it), or a
  **dataclass** whose fields are annotated with ctypes types, C type names
  (``Annotated[int, "u32"]``, ``Annotated[str, "char[16]"]``) or nested dataclasses
  (records decode to instances of it).

BTF and C layouts decode to :class:`~bpfkit.btf.codec.Record` objects — dicts whose members
are attributes, ``char[]`` as ``str`` — through a codec compiled once per type::

    events = bpfkit.events.event_type("struct event", obj)
    for raw in obj.maps["events"].consume():
        e = events.decode(raw)
        print(e.pid, e.comm)
"""

from __future__ import annotations

import ctypes
import dataclasses
import typing
from collections.abc import Callable, Iterable
from typing import Any

from .errors import BpfError, BtfError, NotSupported

__all__ = ["EventType", "event_type"]


class EventType:
    """How to read (and write) one kind of record: :meth:`decode`, :meth:`encode`."""

    def __init__(
        self,
        name: str,
        size: int,
        decode: Callable[[bytes], Any],
        encode: Callable[[Any], bytes],
    ) -> None:
        self.name = name
        self.size = size
        self._decode = decode
        self._encode = encode

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """The object a record holds (records longer than :attr:`size` are fine: perf
        samples are padded)."""
        if len(data) < self.size:
            raise BtfError(
                f"a {len(data)}-byte record is too short for {self.name} ({self.size} bytes)"
            )
        return self._decode(data)

    __call__ = decode

    def decode_all(self, records: Iterable[bytes | bytearray | memoryview]) -> list[Any]:
        """Every record decoded (perf ``(cpu, data)`` pairs keep their cpu)."""
        out = []
        for r in records:
            if isinstance(r, tuple):
                out.append((r[0], self.decode(r[1])))
            else:
                out.append(self.decode(r))
        return out

    def encode(self, value: Any) -> bytes:
        """The record bytes of ``value`` (a mapping, or an instance of the layout's class)."""
        return self._encode(value)

    def __repr__(self) -> str:
        return f"<EventType {self.name} {self.size}B>"


# ---- BTF and C ---------------------------------------------------------------------------
def _btf_of(where: Any) -> Any:
    """The ``Btf`` of an object, an ``ObjectSpec``, a ``Btf``, or ``None``."""
    if where is None:
        return None
    from .btf.types import Btf

    if isinstance(where, Btf):
        return where
    spec = getattr(where, "spec", where)
    btf = getattr(spec, "btf", None)
    if btf is None:
        raise BpfError(f"{type(where).__name__} has no BTF to look types up in")
    return btf


def _find(btf: Any, name: str) -> int | None:
    from .btf.types import Btf
    from .uapi.btf import BtfKind

    words = name.split()
    kinds: tuple = (BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF, BtfKind.ENUM, BtfKind.ENUM64)
    if len(words) == 2 and words[0] in ("struct", "union", "enum"):
        kinds = {
            "struct": (BtfKind.STRUCT,),
            "union": (BtfKind.UNION,),
            "enum": (BtfKind.ENUM, BtfKind.ENUM64),
        }[words[0]]
        words = words[1:]
    if len(words) != 1:
        return None
    for k in kinds:
        t = btf.find(words[0], k) if isinstance(btf, Btf) or hasattr(btf, "find") else None
        if t is not None:
            return t.id
    return None


def _from_btf(btf: Any, tid: int, name: str) -> EventType:
    from .btf.codec import compile_type

    codec = compile_type(btf, tid)
    return EventType(name, codec.size, codec.decode, codec.encode)


def _by_name(name: str, where: Any) -> EventType:
    own = _btf_of(where)
    if own is not None:
        tid = _find(own, name)
        if tid is not None:
            return _from_btf(own, tid, name)
    from .kernel.btf import kernel_btf_available, vmlinux_btf

    if kernel_btf_available():
        vml = vmlinux_btf()
        tid = _find(vml, name)
        if tid is not None:
            return _from_btf(vml, tid, name)
    raise BtfError(
        f"no type {name!r} in "
        + ("the object's BTF or " if own is not None else "")
        + "the kernel's BTF; give its C definition instead"
    )


def _from_c(text: str, name: str | None, compiler: str | None) -> EventType:
    if compiler is None:
        from .btf.cparse import parse_c

        decls = parse_c(text)
        tid = decls.find(name)
        t = decls.btf.get(tid)
        return _from_btf(decls.btf, tid, name or f"{t.kind.name.lower()} {t.name}".strip())
    if compiler != "clang":
        raise ValueError(f"unknown compiler {compiler!r} (None or 'clang')")
    return _from_clang(text, name)


def _from_clang(text: str, name: str | None) -> EventType:
    """Compile the declarations with ``clang -g -target bpf`` and read the type's BTF."""
    import re
    import tempfile
    from pathlib import Path

    from .btf.parser import parse_btf
    from .obj.build import build
    from .obj.elf import ElfFile

    tags = re.findall(r"\b(struct|union)\s+([A-Za-z_]\w*)\s*\{", text)
    if not tags:
        raise BpfError("no struct or union definition in the text")
    anchors = "".join(f"{w} {n} *__bpfkit_anchor_{i};\n" for i, (w, n) in enumerate(tags))
    with tempfile.TemporaryDirectory(prefix="bpfkit-event-") as d:
        src = Path(d) / "event.c"
        src.write_text("#include <linux/types.h>\n" + text + "\n" + anchors)
        obj = build(src, Path(d) / "event.o")
        sec = ElfFile(obj.read_bytes()).by_name(".BTF")
    if sec is None:
        raise BtfError("clang produced no BTF")
    btf = parse_btf(sec.data)
    target = name or f"{tags[-1][0]} {tags[-1][1]}"
    tid = _find(btf, target)
    if tid is None:
        raise BtfError(f"no type {target!r} in the compiled declarations")
    return _from_btf(btf, tid, target)


# ---- ctypes --------------------------------------------------------------------------------
def _from_ctypes(cls: type) -> EventType:
    size = ctypes.sizeof(cls)

    def decode(data: bytes) -> Any:
        return cls.from_buffer_copy(bytes(data[:size]))

    def encode(value: Any) -> bytes:
        if isinstance(value, cls):
            return bytes(value)
        obj = cls()
        items = value.items() if hasattr(value, "items") else vars(value).items()
        for k, v in items:
            if not hasattr(obj, k):
                raise BtfError(f"{cls.__name__} has no field {k!r}")
            if isinstance(v, str):
                v = v.encode()
            setattr(obj, k, v)
        return bytes(obj)

    return EventType(cls.__name__, size, decode, encode)


# ---- dataclasses -----------------------------------------------------------------------------
_CTYPE_C = {
    ctypes.c_char: "char",
    ctypes.c_byte: "signed char",
    ctypes.c_ubyte: "unsigned char",
    ctypes.c_bool: "_Bool",
    ctypes.c_short: "short",
    ctypes.c_ushort: "unsigned short",
    ctypes.c_int: "int",
    ctypes.c_uint: "unsigned int",
    ctypes.c_long: "long",
    ctypes.c_ulong: "unsigned long",
    ctypes.c_longlong: "long long",
    ctypes.c_ulonglong: "unsigned long long",
    ctypes.c_float: "float",
    ctypes.c_double: "double",
    ctypes.c_void_p: "void *",
    ctypes.c_char_p: "char *",
}


def _c_decl(ann: Any, field: str, structs: list[str], seen: dict[type, str]) -> str:
    """One C member declaration for a dataclass field's annotation."""
    if typing.get_origin(ann) is typing.Annotated:
        _, *meta = typing.get_args(ann)
        for m in meta:
            if isinstance(m, str | type):
                return _c_decl(m, field, structs, seen)
        raise BpfError(f"field {field!r}: Annotated needs a C type or a ctypes type")
    if isinstance(ann, str):
        base, _, dims = ann.partition("[")
        return f"{base.strip()} {field}" + (f"[{dims}" if dims else "")
    if isinstance(ann, type) and issubclass(ann, ctypes.Array):
        inner = _c_decl(ann._type_, field, structs, seen)
        return f"{inner}[{ann._length_}]"
    if isinstance(ann, type) and ann in _CTYPE_C:
        return f"{_CTYPE_C[ann]} {field}"
    if isinstance(ann, type) and dataclasses.is_dataclass(ann):
        return f"struct {_c_struct(ann, structs, seen)} {field}"
    if isinstance(ann, type) and issubclass(ann, ctypes.Structure):
        return f"struct {_ctypes_struct(ann, structs, seen)} {field}"
    raise BpfError(
        f"field {field!r}: give its C layout (Annotated[int, 'u32'], a ctypes type, or a "
        f"nested dataclass), not {getattr(ann, '__name__', ann)!r}"
    )


def _ctypes_struct(cls: type, structs: list[str], seen: dict[type, str]) -> str:
    if cls in seen:
        return seen[cls]
    name = seen[cls] = f"{cls.__name__}"
    members = []
    for f in cls._fields_:  # type: ignore[attr-defined]
        decl = _c_decl(f[1], f[0], structs, seen)
        members.append(decl + (f": {f[2]}" if len(f) > 2 else "") + ";")
    packed = " __attribute__((packed))" if getattr(cls, "_pack_", 0) == 1 else ""
    structs.append(f"struct {name} {{ {' '.join(members)} }}{packed};")
    return name


def _c_struct(cls: type, structs: list[str], seen: dict[type, str]) -> str:
    if cls in seen:
        return seen[cls]
    name = seen[cls] = cls.__name__
    hints = typing.get_type_hints(cls, include_extras=True)
    members = [_c_decl(hints[f.name], f.name, structs, seen) + ";" for f in dataclasses.fields(cls)]
    structs.append(f"struct {name} {{ {' '.join(members)} }};")
    return name


def _build(cls: type, value: Any) -> Any:
    """A dataclass instance (nested ones too) from a decoded record."""
    hints = typing.get_type_hints(cls, include_extras=False)
    kw = {}
    for f in dataclasses.fields(cls):
        v = value[f.name]
        t = hints.get(f.name)
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            v = _build(t, v)
        elif typing.get_origin(t) is list:
            (et,) = typing.get_args(t) or (None,)
            if isinstance(et, type) and dataclasses.is_dataclass(et):
                v = [_build(et, x) for x in v]
        kw[f.name] = v
    return cls(**kw)


def _from_dataclass(cls: type) -> EventType:
    structs: list[str] = []
    name = _c_struct(cls, structs, {})
    inner = _from_c("\n".join(structs), f"struct {name}", None)

    def decode(data: bytes) -> Any:
        return _build(cls, inner.decode(data))

    return EventType(cls.__name__, inner.size, decode, inner.encode)


# ---- the entry point ----------------------------------------------------------------------------
def event_type(
    layout: str | type,
    where: Any = None,
    *,
    name: str | None = None,
    compiler: str | None = None,
) -> EventType:
    """What records of ``layout`` look like: see the module docstring.

    ``where`` is the loaded object (or its ``ObjectSpec``, or a ``Btf``) whose BTF names
    are searched first. For C text, ``name`` picks the type (default: the last struct or
    union defined) and ``compiler="clang"`` compiles it instead of parsing it.
    """
    if isinstance(layout, type):
        if issubclass(layout, ctypes.Structure | ctypes.Union):
            return _from_ctypes(layout)
        if dataclasses.is_dataclass(layout):
            return _from_dataclass(layout)
        raise TypeError(f"{layout.__name__} is neither a ctypes structure nor a dataclass")
    if not isinstance(layout, str):
        raise TypeError("layout must be a type name, C text, a ctypes structure or a dataclass")
    if "{" in layout or "#define" in layout or layout.rstrip().endswith(";"):
        return _from_c(layout, name, compiler)
    try:
        return _by_name(layout.strip(), where)
    except NotSupported as e:
        raise BtfError(f"no BTF to find {layout!r} in: {e}") from None
