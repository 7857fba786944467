"""Print BTF types as C: type names, declarators, definitions and a whole-blob dump."""

from __future__ import annotations

from ..errors import BtfError
from ..uapi.btf import BtfKind, FuncLinkage, VarLinkage
from .types import QUALIFIER_WORDS, Btf, BtfType

__all__ = ["type_to_c", "format_definition", "dump_c"]

_MAX_DEPTH = 64
_MOD_WORDS = QUALIFIER_WORDS


def _tag_word(t: BtfType) -> str:
    return f'__attribute__((btf_type_tag("{t.name}")))'


def _base_name(t: BtfType) -> str:
    k = t.kind
    if k == BtfKind.UNKN:
        return "void"
    if k in (BtfKind.STRUCT, BtfKind.UNION):
        word = "struct" if k == BtfKind.STRUCT else "union"
        return f"{word} {t.name}" if t.name else f"{word} {{...}}"
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        return f"enum {t.name}" if t.name else "enum {...}"
    if k == BtfKind.FWD:
        return f"{'union' if t.is_union else 'struct'} {t.name}"  # type: ignore[attr-defined]
    if k == BtfKind.DATASEC:
        return f'SEC("{t.name}")'
    return t.name or f"<anon {k.name.lower()}>"


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    if inner.startswith("["):
        return base + inner
    return f"{base} {inner}"


def type_to_c(btf: Btf, type_id: int, var_name: str = "", *, _anon_body: str | None = None) -> str:
    """The C spelling of ``type_id`` declaring ``var_name`` (``int (*name)[4]``, ``struct s *``)."""
    return _decl(btf, type_id, var_name, 0, _anon_body)


def _decl(btf: Btf, tid: int, inner: str, depth: int, anon_body: str | None = None) -> str:
    if depth > _MAX_DEPTH:
        raise BtfError(f"type {tid}: nesting too deep to print")
    t = btf.get(tid)
    k = t.kind
    if k == BtfKind.PTR:
        return _decl(btf, t.type, "*" + inner, depth + 1, anon_body)  # type: ignore[attr-defined]
    if k in _MOD_WORDS or k == BtfKind.TYPE_TAG:
        word = _MOD_WORDS.get(k) or _tag_word(t)
        target = btf.get(t.type)  # type: ignore[attr-defined]
        while target.kind in _MOD_WORDS or target.kind == BtfKind.TYPE_TAG:
            depth += 1
            if depth > _MAX_DEPTH:
                raise BtfError(f"type {tid}: modifier chain too long to print")
            target = btf.get(target.type)  # type: ignore[attr-defined]
        if k == BtfKind.TYPE_TAG and target.kind not in (
            BtfKind.PTR,
            BtfKind.ARRAY,
            BtfKind.FUNC_PROTO,
        ):
            # Type tags follow the type they annotate: ``int __attribute__((...)) *p``.
            return _join(_decl(btf, t.type, "", depth + 1, anon_body) + f" {word}", inner)  # type: ignore[attr-defined]
        if target.kind in (BtfKind.PTR, BtfKind.ARRAY, BtfKind.FUNC_PROTO):
            return _decl(btf, t.type, f"{word} {inner}".rstrip(), depth + 1, anon_body)  # type: ignore[attr-defined]
        return f"{word} " + _decl(btf, t.type, inner, depth + 1, anon_body)  # type: ignore[attr-defined]
    if k == BtfKind.ARRAY:
        if inner.startswith("*"):
            inner = f"({inner})"
        return _decl(btf, t.type, f"{inner}[{t.nelems}]", depth + 1, anon_body)  # type: ignore[attr-defined]
    if k == BtfKind.FUNC_PROTO:
        if inner.startswith("*"):
            inner = f"({inner})"
        params = _params(btf, t, depth)
        return _decl(btf, t.return_type, f"{inner}({params})", depth + 1, anon_body)  # type: ignore[attr-defined]
    if k == BtfKind.FUNC:
        return _decl(btf, t.type, inner or t.name, depth + 1)  # type: ignore[attr-defined]
    if k == BtfKind.VAR:
        return _decl(btf, t.type, inner or t.name, depth + 1)  # type: ignore[attr-defined]
    if k == BtfKind.DECL_TAG:
        return f'__attribute__((btf_decl_tag("{t.name}")))'
    if (
        anon_body is not None
        and not t.name
        and k in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64)
    ):
        return _join(anon_body, inner)
    return _join(_base_name(t), inner)


def _params(btf: Btf, proto: BtfType, depth: int) -> str:
    ps = proto.params  # type: ignore[attr-defined]
    if not ps:
        return "void"
    out = []
    for p in ps:
        if p.type == 0 and not p.name:
            out.append("...")
        else:
            out.append(_decl(btf, p.type, p.name, depth + 1))
    return ", ".join(out)


def _body(btf: Btf, t: BtfType, indent: int, depth: int) -> str:
    """``struct name { ... }`` / ``enum name { ... }`` with nested anonymous types inline."""
    if depth > _MAX_DEPTH:
        raise BtfError(f"type {t.id}: nesting too deep to print")
    pad = "\t" * (indent + 1)
    k = t.kind
    head = (
        _base_name(t)
        if t.name
        else ("struct" if k == BtfKind.STRUCT else "union" if k == BtfKind.UNION else "enum")
    )
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        lines = [f"{pad}{v.name} = {v.value}," for v in t.values]  # type: ignore[attr-defined]
    else:
        lines = []
        for m in t.members:  # type: ignore[attr-defined]
            mt = btf.skip_mods(m.type)
            anon = None
            if not mt.name and mt.kind in (
                BtfKind.STRUCT,
                BtfKind.UNION,
                BtfKind.ENUM,
                BtfKind.ENUM64,
            ):
                anon = _body(btf, mt, indent + 1, depth + 1)
            line = _decl(btf, m.type, m.name, depth + 1, anon)
            if m.bitfield_size:
                line += f": {m.bitfield_size}"
            lines.append(f"{pad}{line};")
    close = "\t" * indent + "}"
    return f"{head} {{\n" + "\n".join(lines) + ("\n" if lines else "") + close


def format_definition(btf: Btf, type_id: int) -> str:
    """The C definition of one type: a struct/union/enum body, typedef, prototype, variable."""
    t = btf.get(type_id)
    k = t.kind
    if k in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64):
        return _body(btf, t, 0, 0) + ";"
    if k == BtfKind.TYPEDEF:
        target = btf.skip_mods(t.type)  # type: ignore[attr-defined]
        anon = None
        if not target.name and target.kind in (
            BtfKind.STRUCT,
            BtfKind.UNION,
            BtfKind.ENUM,
            BtfKind.ENUM64,
        ):
            anon = _body(btf, target, 0, 1)
        return "typedef " + _decl(btf, t.type, t.name, 0, anon) + ";"  # type: ignore[attr-defined]
    if k == BtfKind.FUNC:
        prefix = {FuncLinkage.STATIC: "static ", FuncLinkage.EXTERN: "extern "}.get(t.linkage, "")  # type: ignore[attr-defined]
        return prefix + _decl(btf, t.type, t.name, 0) + ";"  # type: ignore[attr-defined]
    if k == BtfKind.VAR:
        prefix = {VarLinkage.STATIC: "static ", VarLinkage.GLOBAL_EXTERN: "extern "}.get(
            t.linkage, ""
        )  # type: ignore[attr-defined]
        return prefix + _decl(btf, t.type, t.name, 0) + ";"  # type: ignore[attr-defined]
    if k == BtfKind.DATASEC:
        lines = [f'/* SEC("{t.name}") size {t.size} */']  # type: ignore[attr-defined]
        for v in t.vars:  # type: ignore[attr-defined]
            lines.append(f"/* +{v.offset:#x} ({v.size}) */ " + format_definition(btf, v.type))
        return "\n".join(lines)
    if k == BtfKind.FWD:
        return _base_name(t) + ";"
    if k == BtfKind.DECL_TAG:
        target = btf.get(t.type)  # type: ignore[attr-defined]
        where = f" (component {t.component_idx})" if t.component_idx >= 0 else ""  # type: ignore[attr-defined]
        return f'/* btf_decl_tag("{t.name}") on {_base_name(target)}{where} */'
    return type_to_c(btf, type_id) + ";"


def dump_c(btf: Btf) -> str:
    """Every named struct, union, enum and typedef of ``btf`` as a C header (dependency order)."""
    out: list[str] = []
    done: set[int] = set()
    visiting: set[int] = set()
    named = [
        t
        for t in btf.types[btf.start_id :]
        if t.name
        and t.kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.TYPEDEF)
    ]
    fwds = [t for t in named if t.kind in (BtfKind.STRUCT, BtfKind.UNION)]
    for t in fwds:
        out.append(f"{_base_name(t)};")
    if fwds:
        out.append("")

    def deps(tid: int, depth: int) -> list[int]:
        """Named types that must be complete before a value of ``tid`` is declared."""
        if depth > _MAX_DEPTH:
            return []
        t = btf.get(tid)
        k = t.kind
        if k in _MOD_WORDS or k == BtfKind.TYPE_TAG:
            return deps(t.type, depth + 1)  # type: ignore[attr-defined]
        if k == BtfKind.ARRAY:
            return deps(t.type, depth + 1)  # type: ignore[attr-defined]
        if k == BtfKind.PTR:
            inner = btf.get(t.type)  # type: ignore[attr-defined]
            return [inner.id] if inner.kind == BtfKind.TYPEDEF else deps_ptr(inner, depth + 1)
        if k in (BtfKind.STRUCT, BtfKind.UNION) and not t.name:
            return [d for m in t.members for d in deps(m.type, depth + 1)]  # type: ignore[attr-defined]
        if k == BtfKind.FUNC_PROTO:
            ids = deps(t.return_type, depth + 1)  # type: ignore[attr-defined]
            for p in t.params:  # type: ignore[attr-defined]
                ids += deps(p.type, depth + 1)
            return ids
        if t.name and k in (
            BtfKind.STRUCT,
            BtfKind.UNION,
            BtfKind.ENUM,
            BtfKind.ENUM64,
            BtfKind.TYPEDEF,
        ):
            return [tid]
        return []

    def deps_ptr(t: BtfType, depth: int) -> list[int]:
        # A pointer to a struct needs only the forward declaration; pointers to
        # typedefs/function prototypes need the typedef itself.
        if t.kind in (BtfKind.FUNC_PROTO, BtfKind.PTR, BtfKind.ARRAY) or t.kind in _MOD_WORDS:
            return deps(t.id, depth)
        return []

    def emit(tid: int, depth: int) -> None:
        if tid in done or tid in visiting or depth > _MAX_DEPTH:
            return
        visiting.add(tid)
        t = btf.get(tid)
        if t.kind == BtfKind.TYPEDEF:
            for d in deps(t.type, 0):  # type: ignore[attr-defined]
                emit(d, depth + 1)
        elif t.kind in (BtfKind.STRUCT, BtfKind.UNION):
            for m in t.members:  # type: ignore[attr-defined]
                for d in deps(m.type, 0):
                    emit(d, depth + 1)
        visiting.discard(tid)
        done.add(tid)
        out.append(format_definition(btf, tid))
        out.append("")

    for t in named:
        emit(t.id, 0)
    return "\n".join(out).rstrip() + "\n"
