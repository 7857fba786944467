"""Map specs from an object: BTF-defined ``.maps``, legacy ``maps``, global data, struct_ops."""

from __future__ import annotations

import struct

from ..btf.types import Btf, BtfType
from ..errors import BtfError, ElfError
from ..uapi.btf import BtfKind
from ..uapi.enums import MapType
from .elf import SHT, STT, ElfFile, Section, Symbol
from .spec import MapSpec, Pinning

__all__ = [
    "btf_maps",
    "legacy_maps",
    "global_data_maps",
    "struct_ops_maps",
    "is_data_section",
    "BPF_F_RDONLY_PROG",
    "BPF_F_MMAPABLE",
    "BPF_F_LINK",
    "MAX_DATA_SIZE",
]

BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10
BPF_F_LINK = 1 << 13

# Largest global-data section accepted (the contents are materialised as bytes).
MAX_DATA_SIZE = 1 << 26

_UINT_FIELDS = (
    "type",
    "max_entries",
    "map_flags",
    "numa_node",
    "pinning",
    "map_extra",
    "key_size",
    "value_size",
)
_LEGACY = struct.Struct("<IIIII")


def _map_type(v: int) -> MapType | int:
    try:
        return MapType(v)
    except ValueError:
        return v


def is_data_section(sec: Section) -> str | None:
    """``data``/``rodata``/``bss`` when ``sec`` is a global-data section, else ``None``."""
    n = sec.name
    if sec.type == SHT.NOBITS and (n == ".bss" or n.startswith(".bss.")):
        return "bss"
    if sec.type != SHT.PROGBITS or sec.is_exec:
        return None
    if n == ".data" or n.startswith(".data."):
        return "data"
    if n == ".rodata" or n.startswith(".rodata."):
        return "rodata"
    return None


def _ptr_target(btf: Btf, m, mapname: str) -> BtfType:
    t = btf.resolve(m.type)
    if t.kind != BtfKind.PTR:
        raise ElfError(f"map {mapname!r}: field {m.name!r} is not a pointer (use __uint/__type)")
    return btf.resolve(t.type)  # type: ignore[attr-defined]


def _uint(btf: Btf, m, mapname: str) -> int:
    t = _ptr_target(btf, m, mapname)
    if t.kind != BtfKind.ARRAY:
        raise ElfError(f"map {mapname!r}: field {m.name!r} is not an __uint() (pointer to array)")
    return t.nelems  # type: ignore[attr-defined]


def parse_map_def(
    btf: Btf, type_id: int, name: str, *, inner: bool = False
) -> tuple[MapSpec, int | None]:
    """A :class:`MapSpec` from a BTF map-definition struct, and the bit offset of ``values``."""
    t = btf.resolve(type_id)
    if t.kind != BtfKind.STRUCT:
        raise ElfError(f"map {name!r}: definition is a {t.kind.name}, not a struct")
    spec = MapSpec(name=name, type=MapType.UNSPEC, kind="btf")
    values_off: int | None = None
    key_size = value_size = None
    for idx, m in enumerate(t.members):  # type: ignore[attr-defined]
        if m.name in _UINT_FIELDS:
            v = _uint(btf, m, name)
            if m.name == "type":
                spec.type = _map_type(v)
            elif m.name == "max_entries":
                spec.max_entries = v
            elif m.name == "map_flags":
                spec.flags = v
            elif m.name == "numa_node":
                spec.numa_node = v
            elif m.name == "map_extra":
                spec.map_extra = v
            elif m.name == "pinning":
                # Other loaders define more values (iproute2, Cilium): keep and report the
                # number; only BY_NAME pins, and the kernel loader notes the others.
                spec.pinning = Pinning(v) if v in (Pinning.NONE, Pinning.BY_NAME) else v
            elif m.name == "key_size":
                key_size = v
            elif m.name == "value_size":
                value_size = v
        elif m.name in ("key", "value"):
            ptr = btf.resolve(m.type)
            if ptr.kind != BtfKind.PTR:
                raise ElfError(f"map {name!r}: field {m.name!r} is not a pointer (use __type)")
            target = ptr.type  # type: ignore[attr-defined]
            try:
                size = btf.size_of(target)
            except BtfError as e:
                raise ElfError(f"map {name!r}: {m.name} type has no size: {e}") from None
            tname = btf.type_name(target)
            if m.name == "key":
                spec.key_type_id, spec.key_type, spec.key_size = target, tname, size
            else:
                spec.value_type_id, spec.value_type, spec.value_size = target, tname, size
        elif m.name == "values":
            if idx != len(t.members) - 1:  # type: ignore[attr-defined]
                raise ElfError(f"map {name!r}: 'values' must be the last field")
            if inner:
                raise ElfError(f"map {name!r}: an inner map cannot have 'values'")
            arr = btf.resolve(m.type)
            if arr.kind != BtfKind.ARRAY:
                raise ElfError(f"map {name!r}: 'values' is not an array (use __array)")
            ptr = btf.resolve(arr.type)  # type: ignore[attr-defined]
            if ptr.kind != BtfKind.PTR:
                raise ElfError(f"map {name!r}: 'values' elements are not pointers")
            target = btf.resolve(ptr.type)  # type: ignore[attr-defined]
            if target.kind == BtfKind.STRUCT:
                spec.inner_map, _ = parse_map_def(btf, target.id, f"{name}.inner", inner=True)
            elif target.kind != BtfKind.FUNC_PROTO:
                raise ElfError(
                    f"map {name!r}: 'values' must point to a map definition or a function"
                )
            values_off = m.bit_offset
        else:
            raise ElfError(f"map {name!r}: unknown field {m.name!r}")
    for what, given, derived in (
        ("key", key_size, spec.key_type_id),
        ("value", value_size, spec.value_type_id),
    ):
        if given is None:
            continue
        current = spec.key_size if what == "key" else spec.value_size
        if derived is not None and current != given:
            raise ElfError(
                f"map {name!r}: {what}_size {given} conflicts with the {what} type size {current}"
            )
        if what == "key":
            spec.key_size = given
        else:
            spec.value_size = given
    if values_off is not None and not spec.value_size:
        spec.value_size = 4  # a map fd or a program fd
    if (
        spec.type
        in (
            MapType.PROG_ARRAY,
            MapType.ARRAY_OF_MAPS,
            MapType.HASH_OF_MAPS,
            MapType.PERF_EVENT_ARRAY,
        )
        and not spec.key_size
        and values_off is not None
    ):
        spec.key_size = 4
    return spec, values_off


def btf_maps(
    elf: ElfFile, btf: Btf | None, sec: Section, funcs: dict[str, Symbol]
) -> list[MapSpec]:
    """Maps declared in the BTF-defined ``.maps`` section, with ``values`` relocations applied."""
    if btf is None:
        raise ElfError("the '.maps' section needs BTF (compile with -g)")
    ds = next((t for t in btf.types if t.kind == BtfKind.DATASEC and t.name == sec.name), None)
    if ds is None:
        raise ElfError(f"no BTF DATASEC describes section {sec.name!r}")
    by_name = {s.name: s for s in elf.symbols if s.shndx == sec.index and s.name}
    out: list[MapSpec] = []
    values_at: dict[str, tuple[int, int]] = {}
    for v in ds.vars:  # type: ignore[attr-defined]
        var = btf.get(v.type)
        if var.kind != BtfKind.VAR:
            raise ElfError(f"{sec.name}: entry {v.type} is not a variable")
        sym = by_name.get(var.name)
        offset = sym.value if sym is not None else v.offset
        try:
            spec, values_off = parse_map_def(btf, var.type, var.name)  # type: ignore[attr-defined]
        except BtfError as e:
            raise ElfError(f"map {var.name!r}: {e}") from None
        spec.section, spec.section_offset = sec.name, offset
        # The symbol's size covers an initialised 'values' array; the BTF type does not.
        size = sym.size if sym is not None and sym.size else v.size
        if offset + size > sec.size:
            raise ElfError(f"map {var.name!r} at {offset}+{size} lies outside {sec.name!r}")
        if values_off is not None:
            values_at[var.name] = (offset + values_off // 8, offset + size)
        out.append(spec)
    names = {m.name for m in out}
    for rel in elf.rels_for(sec.index):
        owner = next(
            (
                m
                for m in out
                if m.name in values_at and values_at[m.name][0] <= rel.offset < values_at[m.name][1]
            ),
            None,
        )
        if owner is None:
            raise ElfError(f"relocation at {sec.name}+{rel.offset} is not in a map's 'values'")
        start, _ = values_at[owner.name]
        if (rel.offset - start) % 8:
            raise ElfError(f"map {owner.name!r}: misaligned 'values' relocation at {rel.offset}")
        slot = (rel.offset - start) // 8
        sym = elf.symbol(rel.sym)
        target = sym.name
        if owner.inner_map is not None:
            if target not in names:
                raise ElfError(
                    f"map {owner.name!r}: values[{slot}] refers to {target!r}, not a map"
                )
        elif owner.type == MapType.PROG_ARRAY:
            if target not in funcs:
                raise ElfError(
                    f"map {owner.name!r}: values[{slot}] refers to {target!r}, not a program"
                )
        else:
            raise ElfError(f"map {owner.name!r}: 'values' only work for prog arrays and map-in-map")
        if owner.max_entries and slot >= owner.max_entries:
            raise ElfError(
                f"map {owner.name!r}: values[{slot}] beyond max_entries {owner.max_entries}"
            )
        owner.values[slot] = target
    return out


def legacy_maps(elf: ElfFile, sec: Section) -> list[MapSpec]:
    """Maps from the legacy ``maps`` section (``struct bpf_map_def`` per symbol)."""
    syms = sorted(
        (
            s
            for s in elf.symbols
            if s.shndx == sec.index and s.name and s.type in (STT.OBJECT, STT.NOTYPE)
        ),
        key=lambda s: (s.value, s.index),
    )
    if not syms:
        return []
    out = []
    for i, s in enumerate(syms):
        size = s.size or ((syms[i + 1].value if i + 1 < len(syms) else sec.size) - s.value)
        if size < _LEGACY.size or s.value + size > sec.size:
            raise ElfError(f"legacy map {s.name!r}: definition at {s.value}+{size} is malformed")
        mtype, ksize, vsize, maxent, flags = _LEGACY.unpack_from(sec.data, s.value)
        out.append(
            MapSpec(
                name=s.name,
                type=_map_type(mtype),
                key_size=ksize,
                value_size=vsize,
                max_entries=maxent,
                flags=flags,
                section=sec.name,
                section_offset=s.value,
                kind="legacy",
            )
        )
    return out


def _datasec(btf: Btf | None, name: str) -> BtfType | None:
    if btf is None:
        return None
    for t in btf.types:
        if t.kind == BtfKind.DATASEC and t.name == name:
            return t
    return None


def global_data_maps(elf: ElfFile, btf: Btf | None) -> list[MapSpec]:
    """One single-element array map per ``.data*``/``.rodata*``/``.bss*`` section."""
    out = []
    for sec in elf.sections:
        kind = is_data_section(sec)
        if kind is None or sec.size == 0:
            continue
        if sec.size > MAX_DATA_SIZE:
            raise ElfError(f"global data section {sec.name!r} is too large ({sec.size} bytes)")
        ds = _datasec(btf, sec.name)
        flags = BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if kind == "rodata" else 0)
        out.append(
            MapSpec(
                name=sec.name,
                type=MapType.ARRAY,
                key_size=4,
                value_size=sec.size,
                max_entries=1,
                flags=flags,
                key_type="int",
                value_type_id=ds.id if ds is not None else None,
                value_type=f"datasec {sec.name}" if ds is not None else None,
                contents=bytes(sec.size) if kind == "bss" else sec.data,
                frozen=kind == "rodata",
                section=sec.name,
                kind=kind,
            )
        )
    return out


def struct_ops_maps(elf: ElfFile, btf: Btf | None, funcs: dict[str, Symbol]) -> list[MapSpec]:
    """Maps for the variables of ``.struct_ops``/``.struct_ops.link`` sections."""
    out: list[MapSpec] = []
    for sec in elf.sections:
        if sec.name not in (".struct_ops", ".struct_ops.link") or sec.type != SHT.PROGBITS:
            continue
        ds = _datasec(btf, sec.name)
        if ds is None or btf is None:
            raise ElfError(f"section {sec.name!r} needs BTF describing its variables")
        by_name = {s.name: s for s in elf.symbols if s.shndx == sec.index and s.name}
        mine = []
        for v in ds.vars:  # type: ignore[attr-defined]
            var = btf.get(v.type)
            if var.kind != BtfKind.VAR:
                continue
            sym = by_name.get(var.name)
            off = sym.value if sym is not None else v.offset
            vt = btf.resolve(var.type)  # type: ignore[attr-defined]
            if vt.kind != BtfKind.STRUCT:
                raise ElfError(f"struct_ops {var.name!r} is not a struct")
            size = vt.size  # type: ignore[attr-defined]
            if off + size > sec.size:
                raise ElfError(f"struct_ops {var.name!r} lies outside {sec.name!r}")
            spec = MapSpec(
                name=var.name,
                type=MapType.STRUCT_OPS,
                key_size=4,
                value_size=size,
                max_entries=1,
                flags=BPF_F_LINK if sec.name.endswith(".link") else 0,
                key_type="int",
                value_type_id=vt.id,
                value_type=btf.type_name(vt.id),
                contents=sec.data[off : off + size],
                section=sec.name,
                section_offset=off,
                kind="struct_ops",
            )
            mine.append((spec, vt))
            out.append(spec)
        for rel in elf.rels_for(sec.index):
            hit = next(
                (
                    (sp, t)
                    for sp, t in mine
                    if sp.section_offset <= rel.offset < sp.section_offset + sp.value_size
                ),
                None,
            )
            if hit is None:
                raise ElfError(
                    f"struct_ops relocation at {sec.name}+{rel.offset} is outside any variable"
                )
            spec, vt = hit
            moff = (rel.offset - spec.section_offset) * 8
            idx = next((i for i, m in enumerate(vt.members) if m.bit_offset == moff), None)  # type: ignore[attr-defined]
            if idx is None:
                raise ElfError(
                    f"struct_ops {spec.name!r}: relocation at member offset {moff // 8} "
                    "is not a member"
                )
            target = elf.symbol(rel.sym).name
            if target not in funcs:
                raise ElfError(
                    f"struct_ops {spec.name!r}: member {idx} refers to {target!r}, not a program"
                )
            spec.values[idx] = target
    return out
