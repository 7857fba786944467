"""BTF as a C header that compiles: ``bpfkit btf dump /sys/kernel/btf/vmlinux --format c``
writes a ``vmlinux.h`` a BPF program can include.

Every named struct, union, enum and typedef of the blob is defined once, after everything
its definition needs (by-value members complete; behind a pointer a forward declaration
is enough). Names that C would see twice — two different ``struct foo`` or typedefs, an
enumerator defined by two enums — get a ``___2``, ``___3`` ... suffix, as CO-RE expects
"flavoured" names. Anonymous structs and unions are written inline where they are used;
an anonymous enum is defined on its own, and a use of it is spelled as its integer type. Layouts follow the BTF: a struct whose members C would place elsewhere is
``packed``, and gaps (padding the compiler would not insert by itself) are filled with
unnamed bit-fields, so every offset and size matches the BTF. The whole header is
wrapped in ``preserve_access_index`` for CO-RE.
"""

from __future__ import annotations

from ..errors import BtfError
from ..uapi.btf import BtfKind
from .types import QUALIFIER_WORDS, Btf, BtfType

__all__ = ["dump_header", "CHeader"]

_MAX_DEPTH = 64
_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)
_ENUMS = (BtfKind.ENUM, BtfKind.ENUM64)
_QUALIFIERS = QUALIFIER_WORDS
_INT_OF = {
    (1, False): "unsigned char",
    (1, True): "signed char",
    (2, False): "unsigned short",
    (2, True): "short",
    (4, False): "unsigned int",
    (4, True): "int",
    (8, False): "unsigned long long",
    (8, True): "long long",
}


def dump_header(btf: Btf, guard: str = "__VMLINUX_H__") -> str:
    """The whole blob as a C header (``#ifndef guard``) for BPF programs (CO-RE)."""
    return CHeader(btf).render(guard)


class CHeader:
    """One header's worth of C for a BTF blob (names resolved, definitions ordered)."""

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.start = btf.start_id if btf.base is not None else 1
        self.tag_names: dict[int, str] = {}  # struct/union/enum/fwd id -> emitted tag
        self.typedef_names: dict[int, str] = {}
        self.enumerators: dict[tuple[int, int], str] = {}  # (enum id, index) -> name
        self._packed: dict[int, bool] = {}
        self._align: dict[int, int] = {}
        self._assign_names()

    # ---- names ---------------------------------------------------------------------
    def _assign_names(self) -> None:
        tags: dict[str, int] = {}
        idents: dict[str, int] = {}

        def unique(space: dict[str, int], name: str) -> str:
            n = space.get(name, 0) + 1
            space[name] = n
            return name if n == 1 else f"{name}___{n}"

        defined_tags = {
            (t.kind in _ENUMS, t.name)
            for t in self._types()
            if t.name and t.kind in (*_COMPOSITE, *_ENUMS)
        }
        for t in self._types():
            k = t.kind
            if k in (*_COMPOSITE, *_ENUMS) and t.name:
                self.tag_names[t.id] = unique(tags, t.name)
            elif k == BtfKind.FWD and t.name:
                # a forward declaration of a type defined here is that type's name
                if (False, t.name) in defined_tags:
                    self.tag_names[t.id] = t.name
                else:
                    self.tag_names[t.id] = unique(tags, t.name)
            elif k == BtfKind.TYPEDEF:
                self.typedef_names[t.id] = unique(idents, t.name)
            if k in _ENUMS:
                for i, v in enumerate(t.values):  # type: ignore[attr-defined]
                    self.enumerators[(t.id, i)] = unique(idents, v.name)

    def _types(self) -> list[BtfType]:
        return [self.btf.get(i) for i in range(self.start, len(self.btf))]

    # ---- layout --------------------------------------------------------------------
    def align(self, tid: int, depth: int = 0) -> int:
        """Alignment C gives a value of ``tid`` as this header declares it."""
        if tid in self._align:
            return self._align[tid]
        if depth > _MAX_DEPTH:
            raise BtfError(f"type {tid}: nesting too deep")
        t = self.btf.get(tid)
        k = t.kind
        if k in (BtfKind.INT, BtfKind.FLOAT, *_ENUMS):
            a = max(1, min(t.size, 16))  # type: ignore[attr-defined]
        elif k == BtfKind.PTR:
            a = 8
        elif k == BtfKind.ARRAY:
            a = self.align(t.type, depth + 1)  # type: ignore[attr-defined]
        elif k in _COMPOSITE:
            a = 1
            if not self.packed(tid, depth + 1):
                for m in t.members:  # type: ignore[attr-defined]
                    a = max(a, self.align(m.type, depth + 1))
        elif k in (BtfKind.TYPEDEF, BtfKind.TYPE_TAG, *_QUALIFIERS):
            a = self.align(t.type, depth + 1)  # type: ignore[attr-defined]
        else:
            a = 1
        self._align[tid] = a
        return a

    def _bit_unit(self, tid: int) -> int:
        """Size in bits of a bit-field's declared type (its allocation unit)."""
        return 8 * self.btf.size_of(tid)

    def packed(self, tid: int, depth: int = 0) -> bool:
        """Whether C's natural layout would misplace a member or the size: needs ``packed``."""
        if tid in self._packed:
            return self._packed[tid]
        self._packed[tid] = False  # provisional, against self-reference
        t = self.btf.get(tid)
        result = False
        max_align = 1
        try:
            for m in t.members:  # type: ignore[attr-defined]
                if m.bitfield_size:
                    unit = self._bit_unit(m.type)
                    end = m.bit_offset + m.bitfield_size - 1
                    if unit and m.bit_offset // unit != end // unit:
                        result = True
                    max_align = max(max_align, self.align(m.type, depth + 1))
                    continue
                a = self.align(m.type, depth + 1)
                max_align = max(max_align, a)
                if m.bit_offset % (8 * a):
                    result = True
            if t.size % max_align:  # type: ignore[attr-defined]
                result = True
        except BtfError:
            result = False
        self._packed[tid] = result
        return result

    # ---- declarations ----------------------------------------------------------------
    def decl(self, tid: int, inner: str = "", indent: int = 0, depth: int = 0) -> str:
        """C declaration of ``inner`` (a name, or '' for an abstract type) of type ``tid``."""
        if depth > _MAX_DEPTH:
            raise BtfError(f"type {tid}: nesting too deep")
        btf = self.btf
        if tid == 0:
            return _join("void", inner)
        t = btf.get(tid)
        k = t.kind
        if k == BtfKind.PTR:
            target = btf.get(t.type)  # type: ignore[attr-defined]
            while target.kind == BtfKind.TYPE_TAG:
                target = btf.get(target.type)  # type: ignore[attr-defined]
            star = "*" + inner
            if target.kind in (BtfKind.ARRAY, BtfKind.FUNC_PROTO):
                star = f"({star})"
            return self.decl(target.id, star, indent, depth + 1)
        if k in _QUALIFIERS:
            quals = [_QUALIFIERS[k]]
            target = btf.get(t.type)  # type: ignore[attr-defined]
            while target.kind in _QUALIFIERS or target.kind == BtfKind.TYPE_TAG:
                if target.kind in _QUALIFIERS and _QUALIFIERS[target.kind] not in quals:
                    quals.append(_QUALIFIERS[target.kind])
                target = btf.get(target.type)  # type: ignore[attr-defined]
            if target.kind == BtfKind.ARRAY:  # qualifies the elements: once is enough
                quals = [q for q in quals if q not in self._elem_quals(target.id)]
            q = " ".join(quals)
            if not q:
                return self.decl(target.id, inner, indent, depth + 1)
            if target.kind == BtfKind.PTR:  # a qualified pointer: after the '*'
                return self.decl(target.id, _join(q, inner) if inner else q, indent, depth + 1)
            return q + " " + self.decl(target.id, inner, indent, depth + 1)
        if k == BtfKind.TYPE_TAG:
            return self.decl(t.type, inner, indent, depth + 1)  # type: ignore[attr-defined]
        if k == BtfKind.ARRAY:
            return self.decl(t.type, f"{inner}[{t.nelems}]", indent, depth + 1)  # type: ignore[attr-defined]
        if k == BtfKind.FUNC_PROTO:
            return self.decl(t.return_type, f"{inner}({self._params(t, depth)})", indent, depth + 1)  # type: ignore[attr-defined]
        return _join(self.base(t, indent, depth), inner)

    def _elem_quals(self, tid: int) -> set[str]:
        """Qualifiers already on the innermost element type of array ``tid``."""
        out: set[str] = set()
        t = self.btf.get(tid)
        for _ in range(_MAX_DEPTH):
            if t.kind == BtfKind.ARRAY or t.kind == BtfKind.TYPE_TAG:
                t = self.btf.get(t.type)  # type: ignore[attr-defined]
            elif t.kind in _QUALIFIERS:
                out.add(_QUALIFIERS[t.kind])
                t = self.btf.get(t.type)  # type: ignore[attr-defined]
            else:
                break
        return out

    def _params(self, proto: BtfType, depth: int) -> str:
        params = proto.params  # type: ignore[attr-defined]
        if not params:
            return "void"
        out = []
        for p in params:
            if p.type == 0 and not p.name:
                out.append("...")
            else:
                out.append(self.decl(p.type, p.name, 0, depth + 1))
        return ", ".join(out)

    def base(self, t: BtfType, indent: int, depth: int) -> str:
        """The type specifier of a base type (an inline body for anonymous composites)."""
        k = t.kind
        if k in (BtfKind.INT, BtfKind.FLOAT):
            return t.name
        if k == BtfKind.TYPEDEF:
            return self.typedef_names.get(t.id, t.name)
        if k in _COMPOSITE:
            word = "struct" if k == BtfKind.STRUCT else "union"
            if t.name:
                return f"{word} {self.tag_names.get(t.id, t.name)}"
            return self.body(t, indent, depth + 1)
        if k in _ENUMS:
            if t.name:
                return f"enum {self.tag_names.get(t.id, t.name)}"
            # an anonymous enum is defined on its own (once); a use is its integer type
            return _INT_OF.get((t.size, t.signed), "int")  # type: ignore[attr-defined]
        if k == BtfKind.FWD:
            word = "union" if t.is_union else "struct"  # type: ignore[attr-defined]
            return f"{word} {self.tag_names.get(t.id, t.name)}"
        if k == BtfKind.UNKN:
            return "void"
        raise BtfError(f"type {t.id} ({k.name}) cannot be declared in C")

    # ---- definitions -----------------------------------------------------------------
    def enum_body(self, t: BtfType, indent: int) -> str:
        pad = "\t" * (indent + 1)
        signed = t.signed  # type: ignore[attr-defined]
        wide = t.kind == BtfKind.ENUM64 or t.size == 8  # type: ignore[attr-defined]
        items = []
        for i, v in enumerate(t.values):  # type: ignore[attr-defined]
            val = v.value
            if not signed:
                val &= (1 << (64 if wide else 32)) - 1
            suffix = (
                ("LL" if signed else "ULL") if wide and not -(1 << 31) <= val < (1 << 31) else ""
            )
            items.append(f"{pad}{self.enumerators.get((t.id, i), v.name)} = {val}{suffix},")
        name = f" {self.tag_names[t.id]}" if t.name else ""
        if t.size != 4:  # type: ignore[attr-defined]
            # a fixed underlying type gives the size (packed enums, 64-bit enums)
            name += f" : {_INT_OF.get((t.size, signed), 'unsigned int')}"  # type: ignore[attr-defined]
        if not items:
            return f"enum{name} {{}}"
        return f"enum{name} {{\n" + "\n".join(items) + "\n" + "\t" * indent + "}"

    def body(self, t: BtfType, indent: int, depth: int = 0) -> str:
        """``struct name { members }`` with padding and ``packed`` as the BTF's layout needs."""
        if depth > _MAX_DEPTH:
            raise BtfError(f"type {t.id}: nesting too deep")
        is_union = t.kind == BtfKind.UNION
        packed = self.packed(t.id)
        pad = "\t" * (indent + 1)
        lines: list[str] = []
        pos = 0  # bits laid out so far (structs)
        for m in t.members:  # type: ignore[attr-defined]
            if not is_union:
                pos = self._fill(lines, pad, pos, self._natural_start(m, pos, packed), m.bit_offset)
            text = self.decl(m.type, m.name, indent + 1, depth + 1)
            if m.bitfield_size:
                text += f": {m.bitfield_size}"
            lines.append(f"{pad}{text};")
            if not is_union:
                size = m.bitfield_size or 8 * self.btf.size_of(m.type)
                pos = m.bit_offset + size
        if not is_union:
            a = 1 if packed else self.align(t.id)
            end = _round_up(pos, 8 * a)
            if 8 * t.size > end:  # type: ignore[attr-defined]
                self._fill(lines, pad, pos, pos, 8 * t.size)  # type: ignore[attr-defined]
        word = "union" if is_union else "struct"
        name = f" {self.tag_names[t.id]}" if t.name else ""
        attr = " __attribute__((packed))" if packed else ""
        if not lines:
            return f"{word}{name} {{}}{attr}"
        return f"{word}{name} {{\n" + "\n".join(lines) + "\n" + "\t" * indent + "}" + attr

    def _natural_start(self, m, pos: int, packed: bool) -> int:
        """Where C would put member ``m`` after ``pos`` bits, without help."""
        if m.bitfield_size:
            if packed:
                return pos
            unit = self._bit_unit(m.type)
            if unit and pos // unit != (pos + m.bitfield_size - 1) // unit:
                return _round_up(pos, unit)
            return pos
        a = 8 if packed else 8 * self.align(m.type)
        return _round_up(pos, a)

    @staticmethod
    def _fill(lines: list[str], pad: str, pos: int, natural: int, target: int) -> int:
        """Unnamed bit-fields from ``pos`` to ``target`` when C would not get there alone."""
        if target <= natural or target <= pos:
            return pos
        while pos < target:
            w = min(target - pos, 64 - pos % 64)
            lines.append(f"{pad}long: {w};")
            pos += w
        return pos

    def definition(self, t: BtfType) -> str:
        """The top-level definition of a named type."""
        k = t.kind
        if k in _COMPOSITE:
            return self.body(t, 0) + ";"
        if k in _ENUMS:
            return self.enum_body(t, 0) + ";"
        if k == BtfKind.TYPEDEF:
            return "typedef " + self.decl(t.type, self.typedef_names[t.id]) + ";"  # type: ignore[attr-defined]
        if k == BtfKind.FWD:
            return f"{'union' if t.is_union else 'struct'} {self.tag_names[t.id]};"  # type: ignore[attr-defined]
        raise BtfError(f"type {t.id} ({k.name}) has no C definition")

    # ---- ordering --------------------------------------------------------------------
    def needs(self, tid: int, complete: bool, depth: int = 0) -> list[int]:
        """The top-level types that must be defined before a use of ``tid``: by value
        (``complete``) or behind a pointer (declared is enough)."""
        if depth > _MAX_DEPTH or tid == 0:
            return []
        t = self.btf.get(tid)
        k = t.kind
        if k in _QUALIFIERS or k == BtfKind.TYPE_TAG:
            return self.needs(t.type, complete, depth + 1)  # type: ignore[attr-defined]
        if k == BtfKind.ARRAY:
            return self.needs(t.type, True, depth + 1)  # type: ignore[attr-defined]
        if k == BtfKind.PTR:
            return self.needs(t.type, False, depth + 1)  # type: ignore[attr-defined]
        if k == BtfKind.FUNC_PROTO:
            out = self.needs(t.return_type, False, depth + 1)  # type: ignore[attr-defined]
            for p in t.params:  # type: ignore[attr-defined]
                out += self.needs(p.type, False, depth + 1)
            return out
        if k == BtfKind.TYPEDEF:
            out = [tid]
            if complete:
                out += self.needs(t.type, True, depth + 1)  # type: ignore[attr-defined]
            return out
        if k in _ENUMS:
            return [tid] if t.name else []
        if k in _COMPOSITE:
            if t.name:
                return [tid] if complete else []
            out = []
            for m in t.members:  # type: ignore[attr-defined]
                out += self.needs(m.type, True, depth + 1)
            return out
        return []

    def _deps(self, t: BtfType) -> list[int]:
        k = t.kind
        if k == BtfKind.TYPEDEF:
            return self.needs(t.type, False, 0) + self._inline_deps(t.type)  # type: ignore[attr-defined]
        if k in _COMPOSITE:
            out = []
            for m in t.members:  # type: ignore[attr-defined]
                out += self.needs(m.type, True)
            return out
        return []

    def _inline_deps(self, tid: int, depth: int = 0) -> list[int]:
        """A typedef of an anonymous struct/union (or array of one) needs its members'."""
        if depth > _MAX_DEPTH or tid == 0:
            return []
        t = self.btf.get(tid)
        if t.kind in _QUALIFIERS or t.kind in (BtfKind.TYPE_TAG, BtfKind.ARRAY):
            return self._inline_deps(t.type, depth + 1)  # type: ignore[attr-defined]
        if t.kind in _COMPOSITE and not t.name:
            return self.needs(tid, True, depth + 1)
        if t.kind in _COMPOSITE and t.name and depth:  # array of a named struct
            return [tid]
        return []

    def render(self, guard: str = "__VMLINUX_H__") -> str:
        """The header: guard, CO-RE pragma, forward declarations, then every definition."""
        out: list[str] = [
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX",
            "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)",
            "#endif",
            "",
        ]
        types = self._types()
        fwds = [
            t
            for t in types
            if (t.kind in _COMPOSITE and t.name) or (t.kind == BtfKind.FWD and t.name)
        ]
        seen_fwd: set[str] = set()
        for t in fwds:
            word = (
                "union" if (t.kind == BtfKind.UNION or getattr(t, "is_union", False)) else "struct"
            )
            line = f"{word} {self.tag_names[t.id]};"
            if line not in seen_fwd:
                seen_fwd.add(line)
                out.append(line)
        out.append("")
        done: set[int] = set()
        visiting: set[int] = set()

        def emit(tid: int) -> None:
            if tid in done or tid in visiting:
                return
            t = self.btf.get(tid)
            if t.kind == BtfKind.FWD or (
                t.kind == BtfKind.TYPEDEF and t.name.startswith("__builtin_")
            ):
                done.add(tid)  # declared already; or the compiler's own (__builtin_va_list)
                return
            visiting.add(tid)
            for d in self._deps(t):
                if d != tid:
                    emit(d)
            visiting.discard(tid)
            done.add(tid)
            out.append(self.definition(t))
            out.append("")

        for t in types:
            if t.kind in _COMPOSITE and t.name or t.kind == BtfKind.TYPEDEF:
                emit(t.id)
            elif t.kind in _ENUMS:
                emit(t.id)
        out += [
            "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX",
            "#pragma clang attribute pop",
            "#endif",
            "",
            f"#endif /* {guard} */",
            "",
        ]
        return "\n".join(out)


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    if inner.startswith("["):
        return base + inner
    return f"{base} {inner}"


def _round_up(v: int, a: int) -> int:
    return (v + a - 1) // a * a if a > 0 else v
