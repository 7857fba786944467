"""The parsed form of an ELF object: plain data that both backends load.

An :class:`ObjectSpec` is what :func:`bpfkit.obj.load_object` returns: programs with
their (linked) instructions, map specs, global variables, externs and the BTF, with
every relocation still symbolic. Nothing here holds a file descriptor.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from ..btf.fields import Data, Record
from ..isa.instruction import Instruction
from ..uapi.btf import CoreReloKind
from ..uapi.enums import MapType, ProgType

if TYPE_CHECKING:
    from ..btf.ext import BtfExt
    from ..btf.types import Btf

__all__ = [
    "ObjectSpec",
    "ProgramSpec",
    "MapSpec",
    "VariableSpec",
    "ExternSpec",
    "Relocation",
    "RelocKind",
    "CoreRelocation",
    "FuncInfo",
    "LineInfo",
    "line_for",
    "Pinning",
]


class RelocKind(StrEnum):
    """What a symbolic relocation asks the loader to fill in."""

    MAP = "map"  # lddw: src=PSEUDO_MAP_FD, imm=<map fd or index>
    MAP_VALUE = "map_value"  # lddw: src=PSEUDO_MAP_VALUE, imm lo=<map>, imm hi=offset
    CALL = "call"  # bpf-to-bpf call, already linked (imm fixed)
    FUNC_ADDR = "func_addr"  # lddw of a function pointer (callback), already linked
    KCONFIG = "kconfig"  # lddw of a .kconfig extern: a MAP_VALUE into the ".kconfig" map
    KSYM = "ksym"  # lddw of a __ksym variable: src=PSEUDO_BTF_ID once resolved
    KFUNC = "kfunc"  # call of a __ksym function: src=PSEUDO_KFUNC_CALL once resolved


class Pinning(int, Enum):
    """``LIBBPF_PIN_*``: whether a BTF-defined map is pinned by name."""

    NONE = 0
    BY_NAME = 1


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Relocation(Record):
    """One symbolic relocation of a program's instruction ``index`` (list index).

    ``slot`` is the same instruction's 8-byte slot position; ``symbol`` the ELF symbol;
    ``map`` the :class:`MapSpec` name for map references; ``offset`` the byte offset
    into the map value (global data) or 0; ``target`` the linked function's name for
    calls and function pointers, or the extern's name.
    """

    index: int
    slot: int
    kind: RelocKind
    symbol: str
    map: str | None = None
    offset: int = 0
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "slot": self.slot,
            "kind": self.kind.value,
            "symbol": self.symbol,
        }
        if self.map is not None:
            d["map"] = self.map
            d["offset"] = self.offset
        if self.target is not None:
            d["target"] = self.target
        return d


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class CoreRelocation(Record):
    """A CO-RE relocation from ``.BTF.ext`` for the kernel backend to apply."""

    index: int
    slot: int
    type_id: int
    access: str
    kind: CoreReloKind | int
    type_name: str = ""


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FuncInfo(Record):
    """``bpf_func_info`` for the linked program: function start (slot) and BTF FUNC id."""

    index: int
    slot: int
    type_id: int
    name: str = ""


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class LineInfo(Record):
    """The C source position of an instruction: file, line, column and the line's text."""

    index: int
    slot: int
    file: str
    line: int
    column: int
    source: str
    file_name_off: int = 0
    line_off: int = 0
    line_col: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "source": self.source}


@dataclass(slots=True, eq=False, repr=False)
class ProgramSpec(Data):
    """One program: a function of an executable section, with its subprograms linked in.

    ``instructions`` is directly runnable once the map/extern relocations are
    resolved: bpf-to-bpf calls and function pointers already point at the appended
    subprograms, map loads carry ``src=PSEUDO_MAP_FD``/``PSEUDO_MAP_VALUE`` with the
    value offset in the upper 32 bits of ``imm`` and a zero placeholder below.
    ``autoload`` is False for libbpf's optional ``SEC("?...")`` programs.
    """

    name: str
    section: str
    prog_type: ProgType | int
    expected_attach_type: int | None = None
    attach_target: str | None = None
    attach_kind: str | None = None
    flags: int = 0
    sleepable: bool = False
    instructions: list[Instruction] = field(default_factory=list)
    license: str = ""
    kernel_version: int = 0
    func_info: list[FuncInfo] = field(default_factory=list)
    line_info: list[LineInfo] = field(default_factory=list)
    relocations: list[Relocation] = field(default_factory=list)
    core_relocations: list[CoreRelocation] = field(default_factory=list)
    functions: list[tuple[str, int]] = field(default_factory=list)
    btf_func_id: int | None = None
    section_offset: int = 0
    own_insn_count: int = 0
    autoload: bool = True
    _slots: list[int] | None = field(default=None, repr=False, compare=False)
    _line_keys: list[int] | None = field(default=None, repr=False, compare=False)
    #: the linked program as parsed (bytes and columns); ``instructions``,
    #: ``relocations`` and ``line_info`` are built from it on first use
    _raw: RawProgram | None = field(default=None, repr=False, compare=False)

    # ---- positions ----------------------------------------------------------
    @property
    def slots(self) -> list[int]:
        """The slot position of every instruction (``lddw`` takes two)."""
        if self._slots is None or len(self._slots) != len(self.instructions):
            pos, out = 0, []
            for insn in self.instructions:
                out.append(pos)
                pos += insn.slots
            self._slots = out
        return self._slots

    def slot_of(self, index: int) -> int:
        """The slot position of instruction ``index``."""
        return self.slots[index]

    def index_of_slot(self, slot: int) -> int | None:
        """The instruction starting at ``slot``, or ``None`` (mid-``lddw`` or out of range)."""
        s = self.slots
        i = bisect.bisect_left(s, slot)
        return i if i < len(s) and s[i] == slot else None

    def bytecode(self) -> bytes:
        """The instructions as raw little-endian bytecode."""
        code = self._raw_parts()[0]
        if code is not None:
            return code
        from ..isa.instruction import _SLOT

        out = bytearray()
        for i in self.instructions:
            regs = (i.src << 4) | i.dst
            if i.is_lddw:
                lo, hi = i.imm_lo, i.imm_hi
                out += _SLOT.pack(i.opcode, regs, i.off, lo - (1 << 32) if lo >> 31 else lo)
                out += _SLOT.pack(0, 0, 0, hi - (1 << 32) if hi >> 31 else hi)
            else:
                out += _SLOT.pack(i.opcode, regs, i.off, i.imm)
        return bytes(out)

    def function_at(self, index: int) -> str:
        """The name of the (sub)program containing instruction ``index``."""
        name = self.name
        for fname, start in self.functions:
            if start <= index:
                name = fname
        return name

    def relocation_at(self, index: int) -> Relocation | None:
        """The relocation of instruction ``index``, if any."""
        for r in self.relocations:
            if r.index == index:
                return r
        return None

    @property
    def type_name(self) -> str:
        """The program type's name (``XDP``, ``KPROBE``, ...)."""
        return getattr(self.prog_type, "name", str(self.prog_type))

    def _counts(self) -> tuple[int, int]:
        """(instructions, 8-byte slots), without decoding a program still in bytes."""
        code = self._raw_parts()[0]
        if code is not None and self._raw is not None:
            return len(code) // 8 - len(self._raw.lddw), len(code) // 8
        return len(self.instructions), sum(i.slots for i in self.instructions)

    def _raw_parts(self) -> tuple[bytes | None, list[tuple] | None, RawLines | None]:
        """The bytecode, relocation tuples and line columns still in their parsed form
        (each ``None`` once it was turned into objects, which may have been changed)."""
        raw = self._raw
        if raw is None:
            return None, None, None
        return (
            raw.code if _INSNS.__get__(self) is _PENDING else None,
            raw.relocs if _RELOCS.__get__(self) is _PENDING else None,
            raw.lines if _LINES.__get__(self) is _PENDING else None,
        )

    def _copy_with(self, **changes: Any) -> ProgramSpec:
        """``dataclasses.replace`` that keeps parsed-form fields unparsed."""
        new = object.__new__(ProgramSpec)
        for slot in _SLOTS.values():
            slot.__set__(new, slot.__get__(self))
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "section": self.section,
            "type": self.type_name.lower(),
            "attach_type": _enum_name(self.expected_attach_type),
            "attach_target": self.attach_target,
            "insns": self._counts()[0],
            # 8-byte instruction slots (an lddw takes two): libbpf's and bpftool's insn_cnt
            "slots": self._counts()[1],
            "license": self.license,
        }


class _Pending:
    """Marks a field still held in the program's parsed form (``ProgramSpec._raw``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not yet decoded>"


_PENDING = _Pending()


class RawLines:
    """A program's line info as columns: slot in the linked program, the file and line
    text (offsets of BTF strings, resolved by ``string``) and the packed line/column."""

    __slots__ = ("slots", "files", "lines", "cols", "string")

    def __init__(
        self,
        slots: list[int],
        files: Sequence[int],
        lines: Sequence[int],
        cols: Sequence[int],
        string: Callable[[int], str],
    ) -> None:
        self.slots = slots
        self.files = files
        self.lines = lines
        self.cols = cols
        self.string = string


class RawProgram:
    """A linked program as the object parser leaves it: bytecode (``lddw`` second slots
    zeroed, symbolic relocations already written, like ``bytecode()`` of the decoded
    instructions), the slots where an ``lddw`` starts, relocations as tuples of
    :class:`Relocation`'s fields, and line info columns."""

    __slots__ = ("code", "lddw", "relocs", "lines")

    def __init__(
        self, code: bytes, lddw: list[int], relocs: list[tuple], lines: RawLines | None = None
    ) -> None:
        self.code = code
        self.lddw = lddw
        self.relocs = relocs
        self.lines = lines


def _decode_raw(raw: RawProgram) -> list[Instruction]:
    from ..isa.instruction import decode

    return decode(raw.code, strict=False)


def _relocs_raw(raw: RawProgram) -> list[Relocation]:
    return [Relocation(*t) for t in raw.relocs]


def _lines_raw(raw: RawProgram) -> list[LineInfo]:
    rl = raw.lines
    if rl is None:
        return []
    lddw, string, left = raw.lddw, rl.string, bisect.bisect_left
    return [
        LineInfo(
            slot - left(lddw, slot), slot, string(f), lc >> 10, lc & 0x3FF, string(ln), f, ln, lc
        )
        for slot, f, ln, lc in zip(rl.slots, rl.files, rl.lines, rl.cols, strict=True)
    ]


class _Lazy:
    """A ``ProgramSpec`` field built from ``_raw`` on first read, then stored as usual."""

    __slots__ = ("slot", "build")

    def __init__(self, slot: Any, build: Callable[[RawProgram], list]) -> None:
        self.slot = slot
        self.build = build

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        v = self.slot.__get__(obj, cls)
        if v is _PENDING:
            v = self.build(obj._raw)
            self.slot.__set__(obj, v)
        return v

    def __set__(self, obj: Any, value: Any) -> None:
        self.slot.__set__(obj, value)


#: the slot storage of every ProgramSpec field (for copies that keep fields unparsed)
_SLOTS = {name: ProgramSpec.__dict__[name] for name in ProgramSpec.__slots__}
_INSNS, _RELOCS, _LINES = _SLOTS["instructions"], _SLOTS["relocations"], _SLOTS["line_info"]
ProgramSpec.instructions = _Lazy(_INSNS, _decode_raw)  # type: ignore[assignment]
ProgramSpec.relocations = _Lazy(_RELOCS, _relocs_raw)  # type: ignore[assignment]
ProgramSpec.line_info = _Lazy(_LINES, _lines_raw)  # type: ignore[assignment]


def program_from_raw(prog: ProgramSpec, raw: RawProgram) -> ProgramSpec:
    """Make ``prog``'s instructions, relocations and line info those of ``raw``, decoded
    only when first read."""
    prog._raw = raw
    _INSNS.__set__(prog, _PENDING)
    _RELOCS.__set__(prog, _PENDING)
    _LINES.__set__(prog, _PENDING)
    return prog


def _enum_name(v: Any) -> str | None:
    if v is None:
        return None
    return getattr(v, "name", str(v)).lower()


@dataclass(slots=True, eq=False, repr=False)
class MapSpec(Data):
    """One map to create: BTF-defined, legacy, global data, ``.kconfig`` or struct_ops.

    ``values`` holds the initial slots of a prog array or map-in-map as ``{index: name}``
    (program names or inner map names). ``contents`` is the initial value of a
    global-data map (one element, key 0). ``frozen`` marks ``.rodata``/``.kconfig``
    maps that the loader freezes after filling.
    """

    name: str
    type: MapType | int
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: int = 0
    numa_node: int = 0
    pinning: Pinning | int = Pinning.NONE
    map_extra: int = 0
    inner_map: MapSpec | None = None
    key_type_id: int | None = None
    value_type_id: int | None = None
    key_type: str | None = None
    value_type: str | None = None
    contents: bytes | None = None
    frozen: bool = False
    values: dict[int, str] = field(default_factory=dict)
    section: str = ""
    section_offset: int = 0
    kind: str = "btf"  # btf | legacy | data | rodata | bss | kconfig | struct_ops

    @property
    def type_name(self) -> str:
        """The map type's name (``HASH``, ``ARRAY``, ...)."""
        return getattr(self.type, "name", str(self.type))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.type_name.lower(),
            "key_size": self.key_size,
            "value_size": self.value_size,
            "max_entries": self.max_entries,
            "flags": self.flags,
            "key_type": self.key_type,
            "value_type": self.value_type,
            "kind": self.kind,
        }
        if self.pinning:
            d["pinning"] = "by_name" if self.pinning == Pinning.BY_NAME else int(self.pinning)
        if self.numa_node:
            d["numa_node"] = self.numa_node
        if self.inner_map is not None:
            d["inner_map"] = self.inner_map.to_json()
        if self.values:
            d["values"] = {str(k): v for k, v in self.values.items()}
        if self.frozen:
            d["frozen"] = True
        return d


@dataclass(slots=True, eq=False, repr=False)
class VariableSpec(Data):
    """A global variable: where it lives (map name + offset), its size and BTF type."""

    name: str
    map: str
    offset: int
    size: int
    type_id: int | None = None
    type_name: str | None = None
    linkage: str = "global"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "map": self.map,
            "offset": self.offset,
            "size": self.size,
            "type": self.type_name,
            "linkage": self.linkage,
        }


@dataclass(slots=True, eq=False, repr=False)
class ExternSpec(Data):
    """An extern the loader resolves: ``.kconfig`` value, ``__ksym`` variable or kfunc."""

    name: str
    kind: str  # "kconfig" | "ksym" | "kfunc"
    type_id: int | None = None
    type_name: str | None = None
    weak: bool = False
    offset: int = 0  # kconfig: offset in the ".kconfig" map value
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "type": self.type_name, "weak": self.weak}


@dataclass(slots=True, eq=False, repr=False)
class ObjectSpec(Data):
    """Everything in one ELF object, parsed and linked, with symbolic relocations."""

    programs: dict[str, ProgramSpec] = field(default_factory=dict)
    maps: dict[str, MapSpec] = field(default_factory=dict)
    variables: dict[str, VariableSpec] = field(default_factory=dict)
    externs: dict[str, ExternSpec] = field(default_factory=dict)
    license: str = ""
    kernel_version: int = 0
    btf: Btf | None = field(default=None, compare=False)
    btf_ext: BtfExt | None = field(default=None, compare=False, repr=False)
    subprograms: list[str] = field(default_factory=list)
    name: str = ""

    def program(self, name: str | None = None) -> ProgramSpec:
        """The program called ``name`` (or the only/first one); ``KeyError`` if missing."""
        if name is None:
            if not self.programs:
                raise KeyError("object has no programs")
            return next(iter(self.programs.values()))
        if name in self.programs:
            return self.programs[name]
        for p in self.programs.values():
            if p.section == name:
                return p
        raise KeyError(f"no program {name!r} (have {', '.join(self.programs) or 'none'})")

    def btf_bytes(self) -> bytes | None:
        """The object's BTF re-encoded with DATASEC sizes/offsets fixed, for the kernel."""
        return self.btf.to_bytes() if self.btf is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "programs": [p.to_json() for p in self.programs.values()],
            "maps": [m.to_json() for m in self.maps.values()],
            "variables": [v.to_json() for v in self.variables.values()],
            "externs": [e.to_json() for e in self.externs.values()],
            "license": self.license,
            "kernel_version": self.kernel_version,
        }


def line_for(program: ProgramSpec, insn_index: int) -> LineInfo | None:
    """The source line covering instruction ``insn_index`` of ``program`` (or ``None``)."""
    infos = program.line_info
    if not infos or insn_index < 0 or insn_index >= len(program.instructions):
        return None
    keys = program._line_keys
    if keys is None or len(keys) != len(infos):
        keys = program._line_keys = [li.index for li in infos]
    i = bisect.bisect_right(keys, insn_index) - 1
    if i < 0:
        return None
    li = infos[i]
    # A record only covers instructions of the same function.
    if program.function_at(li.index) != program.function_at(insn_index):
        return None
    return li
