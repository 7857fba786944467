"""BTF as ``bpftool btf dump ... format raw`` lists it: one ``[id] KIND 'name' ...`` line per
type, members, enumerators, parameters and section variables on tab-indented lines."""

from __future__ import annotations

from ..uapi.btf import BtfKind, FuncLinkage, VarLinkage
from .types import Btf, BtfType

__all__ = ["dump_raw", "format_raw"]

_INT_ENC = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_FUNC_LINKAGE = {
    FuncLinkage.STATIC: "static",
    FuncLinkage.GLOBAL: "global",
    FuncLinkage.EXTERN: "extern",
}
_VAR_LINKAGE = {
    VarLinkage.STATIC: "static",
    VarLinkage.GLOBAL_ALLOCATED: "global",
    VarLinkage.GLOBAL_EXTERN: "extern",
}


def _n(name: str) -> str:
    return name if name else "(anon)"


def format_raw(btf: Btf, t: BtfType) -> str:
    """One type's raw listing (several lines for kinds with members)."""
    k = t.kind
    head = f"[{t.id}] {k.name} '{_n(t.name)}'"
    a = t  # the kind-specific attributes
    if k == BtfKind.INT:
        return (
            f"{head} size={a.size} bits_offset={a.offset} nr_bits={a.bits} "  # type: ignore[attr-defined]
            f"encoding={_INT_ENC.get(a.encoding, 'UNKN')}"  # type: ignore[attr-defined]
        )
    if k in (
        BtfKind.PTR,
        BtfKind.CONST,
        BtfKind.VOLATILE,
        BtfKind.RESTRICT,
        BtfKind.TYPEDEF,
        BtfKind.TYPE_TAG,
    ):
        return f"{head} type_id={a.type}"  # type: ignore[attr-defined]
    if k == BtfKind.ARRAY:
        return f"{head} type_id={a.type} index_type_id={a.index_type} nr_elems={a.nelems}"  # type: ignore[attr-defined]
    if k in (BtfKind.STRUCT, BtfKind.UNION):
        lines = [f"{head} size={a.size} vlen={len(a.members)}"]  # type: ignore[attr-defined]
        for m in a.members:  # type: ignore[attr-defined]
            line = f"\t'{_n(m.name)}' type_id={m.type} bits_offset={m.bit_offset}"
            if m.bitfield_size:
                line += f" bitfield_size={m.bitfield_size}"
            lines.append(line)
        return "\n".join(lines)
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        enc = "SIGNED" if a.signed else "UNSIGNED"  # type: ignore[attr-defined]
        lines = [f"{head} encoding={enc} size={a.size} vlen={len(a.values)}"]  # type: ignore[attr-defined]
        for v in a.values:  # type: ignore[attr-defined]
            if k == BtfKind.ENUM:
                val = v.value if a.signed else v.value & 0xFFFFFFFF  # type: ignore[attr-defined]
                lines.append(f"\t'{_n(v.name)}' val={val}")
            else:
                val = v.value if a.signed else v.value & ((1 << 64) - 1)  # type: ignore[attr-defined]
                lines.append(f"\t'{_n(v.name)}' val={val}{'LL' if a.signed else 'ULL'}")  # type: ignore[attr-defined]
        return "\n".join(lines)
    if k == BtfKind.FWD:
        return f"{head} fwd_kind={'union' if a.is_union else 'struct'}"  # type: ignore[attr-defined]
    if k == BtfKind.FUNC:
        return f"{head} type_id={a.type} linkage={_FUNC_LINKAGE.get(a.linkage, '(unknown)')}"  # type: ignore[attr-defined]
    if k == BtfKind.FUNC_PROTO:
        lines = [f"{head} ret_type_id={a.return_type} vlen={len(a.params)}"]  # type: ignore[attr-defined]
        for p in a.params:  # type: ignore[attr-defined]
            lines.append(f"\t'{_n(p.name)}' type_id={p.type}")
        return "\n".join(lines)
    if k == BtfKind.VAR:
        return f"{head} type_id={a.type}, linkage={_VAR_LINKAGE.get(a.linkage, '(unknown)')}"  # type: ignore[attr-defined]
    if k == BtfKind.DATASEC:
        lines = [f"{head} size={a.size} vlen={len(a.vars)}"]  # type: ignore[attr-defined]
        for v in a.vars:  # type: ignore[attr-defined]
            line = f"\ttype_id={v.type} offset={v.offset} size={v.size}"
            try:
                vt = btf.get(v.type)
                line += f" ({vt.kind.name} '{_n(vt.name)}')"
            except (IndexError, KeyError, ValueError):
                pass
            lines.append(line)
        return "\n".join(lines)
    if k == BtfKind.FLOAT:
        return f"{head} size={a.size}"  # type: ignore[attr-defined]
    if k == BtfKind.DECL_TAG:
        return f"{head} type_id={a.type} component_idx={a.component_idx}"  # type: ignore[attr-defined]
    return head


def dump_raw(btf: Btf) -> str:
    """Every type of ``btf`` (not of its base) in id order, as bpftool's raw format."""
    start = btf.start_id if btf.base is not None else 1
    return "".join(format_raw(btf, btf.get(i)) + "\n" for i in range(start, len(btf)))
