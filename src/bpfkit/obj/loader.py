"""``load_object``: a clang-built BPF ELF object → :class:`ObjectSpec` (pure parsing).

Steps: read sections/symbols/relocations; parse BTF and ``.BTF.ext`` (fixing DATASEC
sizes and offsets from the ELF, as libbpf does); collect maps, global data, externs
and variables; split executable sections into functions; link every program with
the subprograms it calls (bpf-to-bpf calls and callbacks), rewriting call/lddw
immediates, and record map/extern references as symbolic relocations.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
from array import array
from dataclasses import dataclass

from ..btf.ext import BtfExt, parse_btf_ext
from ..btf.parser import parse_btf
from ..btf.types import Btf
from ..errors import BpfError, BtfError, DecodeError, ElfError
from ..isa import opcodes as op
from ..isa.instruction import lddw_slots
from ..uapi.btf import BtfKind, FuncLinkage, VarLinkage
from ..uapi.enums import MapType
from .elf import SHN_LORESERVE, SHN_UNDEF, STB, STT, STV, ElfFile, Rel, Section, Symbol
from .maps import (
    BPF_F_MMAPABLE,
    BPF_F_RDONLY_PROG,
    btf_maps,
    global_data_maps,
    legacy_maps,
    struct_ops_maps,
)
from .sections import (
    BPF_F_SLEEPABLE,
    BPF_F_XDP_HAS_FRAGS,
    SLEEPABLE,
    XDP_FRAGS,
    match_section,
)
from .spec import (
    CoreRelocation,
    ExternSpec,
    FuncInfo,
    MapSpec,
    ObjectSpec,
    ProgramSpec,
    RawLines,
    RawProgram,
    RelocKind,
    VariableSpec,
    program_from_raw,
)

__all__ = ["load_object"]

MAX_OBJECT_SIZE = 1 << 30
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_LINE = struct.Struct("<IIII")


def load_object(source: str | os.PathLike | bytes | bytearray | memoryview) -> ObjectSpec:
    """Parse an ELF object (a path or its bytes) into an :class:`ObjectSpec`.

    Raises :class:`ElfError` (or :class:`BtfError` for malformed BTF) with a reason
    for anything it cannot make sense of; never has side effects.
    """
    name = ""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        name = os.fspath(source)
        data = _read_object(name)
    if len(data) > MAX_OBJECT_SIZE:
        raise ElfError("object larger than 1 GiB")
    try:
        return _Loader(data, name).run()
    except (ElfError, BtfError):
        raise
    except DecodeError as e:
        raise ElfError(f"bad instructions: {e}") from None
    except (
        RecursionError,
        MemoryError,
        OverflowError,
        struct.error,
        IndexError,
        ValueError,
        KeyError,
    ) as e:  # defensive: malformed input must stay an ElfError
        raise ElfError(f"malformed object: {type(e).__name__}: {e}") from None


def _read_object(path: str) -> bytes:
    """The file's bytes, read by its size (never a 1 GiB buffer up front); a pipe or a
    device in chunks up to the stream limit. Too big or unreadable: :class:`ElfError`."""
    from ..isa.loader import read_limited

    try:
        return read_limited(path, MAX_OBJECT_SIZE, "object")
    except BpfError as e:
        raise ElfError(str(e)) from None


@dataclass(slots=True, eq=False, repr=False)
class _Func:
    """A function symbol's code inside an executable section."""

    name: str
    sec: Section
    start: int  # first slot in the section
    end: int  # slot after the last
    first: int  # index of its first instruction among the section's
    count: int  # its instructions (an lddw is one)
    is_global: bool
    is_program: bool = False


class _CodeSection:
    """An executable section as bytecode: where its ``lddw``s start (their second slots
    are data), its functions and relocations. Nothing is decoded: linking copies and
    patches bytes, and instruction indices follow from the ``lddw`` positions."""

    __slots__ = (
        "sec",
        "data",
        "nslots",
        "lddw",
        "lddw_set",
        "funcs",
        "starts",
        "relocs",
        "rel_slots",
        "_calls",
    )

    def __init__(self, sec: Section, lddw: list[int]) -> None:
        self.sec = sec
        self.data = sec.data
        self.nslots = sec.size // 8
        self.lddw = lddw
        self.lddw_set = set(lddw)
        self.funcs: list[_Func] = []
        self.starts: list[int] = []
        self.relocs: dict[int, Rel] = {}  # slot -> relocation
        self.rel_slots: list[int] = []
        self._calls: list[int] | None = None

    def index_of(self, slot: int) -> int:
        """The index of the instruction at ``slot`` (or of the next one)."""
        return slot - bisect.bisect_left(self.lddw, slot)

    def is_start(self, slot: int) -> bool:
        """Whether an instruction starts at ``slot`` (not past the end, not mid-``lddw``)."""
        return 0 <= slot < self.nslots and (slot - 1) not in self.lddw_set

    def func_at(self, slot: int) -> _Func | None:
        i = bisect.bisect_right(self.starts, slot) - 1
        if i >= 0 and self.funcs[i].start <= slot < self.funcs[i].end:
            return self.funcs[i]
        return None

    def calls(self) -> list[int]:
        """Slots of bpf-to-bpf calls (``call`` with ``src=PSEUDO_CALL``) without a relocation."""
        if self._calls is None:
            data, out = self.data, []
            ops = data[0::8]
            pos = ops.find(b"\x85")
            while pos >= 0:
                if (
                    data[pos * 8 + 1] >> 4 == op.PSEUDO_CALL
                    and (pos - 1) not in self.lddw_set
                    and pos not in self.relocs
                ):
                    out.append(pos)
                pos = ops.find(b"\x85", pos + 1)
            self._calls = out
        return self._calls


def _is_subprog_section(name: str) -> bool:
    return name == ".text" or name.startswith(".text.")


class _Loader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        self.elf = ElfFile(data)
        self.btf: Btf | None = None
        self.ext: BtfExt | None = None
        self.code: dict[int, _CodeSection] = {}
        self.maps: dict[str, MapSpec] = {}
        self.map_sections: dict[int, list[MapSpec]] = {}
        self.data_sections: dict[int, MapSpec] = {}
        self.externs: dict[str, ExternSpec] = {}
        self._map_index: dict[int, tuple[list[int], list[int], list[MapSpec]]] = {}
        self._ext_keys: dict[tuple[str, str], list[int]] = {}
        self._line_tables: dict[int, tuple[list[int], array, array, array]] = {}
        #: (symbol, opcode, imm) of a map or global-data reference (an lddw) -> (kind,
        #: src, imm low, imm high, symbol name, map, offset) it resolved to
        self._refs: dict[tuple[int, int, int], tuple] = {}
        self.spec = ObjectSpec(name=os.path.basename(name) if name else "")

    # ---- driver ---------------------------------------------------------------
    def run(self) -> ObjectSpec:
        elf = self.elf
        self._license_version()
        self._btf()
        self._code_sections()
        funcs = {f.name: f for cs in self.code.values() for f in cs.funcs}
        func_syms = {s.name: s for s in elf.symbols if s.type == STT.FUNC and s.name in funcs}
        for sec in elf.sections:
            if sec.name == ".maps" and sec.type in (1, 8):
                self._add_maps(sec.index, btf_maps(elf, self.btf, sec, func_syms))
            elif sec.name == "maps" and sec.type == 1:
                self._add_maps(sec.index, legacy_maps(elf, sec))
        for m in global_data_maps(elf, self.btf):
            sec = next(s for s in elf.sections if s.name == m.section)
            self._add_maps(sec.index, [m])
            self.data_sections[sec.index] = m
        self._add_maps(-1, struct_ops_maps(elf, self.btf, func_syms))
        self._externs()
        self._variables()
        self._programs()
        self.spec.maps = self.maps
        self.spec.externs = self.externs
        self.spec.btf = self.btf
        self.spec.btf_ext = self.ext
        self.spec.subprograms = [
            f.name for cs in self.code.values() for f in cs.funcs if not f.is_program
        ]
        return self.spec

    def _add_maps(self, secidx: int, maps: list[MapSpec]) -> None:
        for m in maps:
            if m.name in self.maps:
                raise ElfError(f"duplicate map name {m.name!r}")
            self.maps[m.name] = m
            self.map_sections.setdefault(secidx, []).append(m)

    # ---- small sections -------------------------------------------------------
    def _license_version(self) -> None:
        lic = self.elf.by_name("license")
        if lic is not None and lic.data:
            self.spec.license = lic.data.split(b"\0", 1)[0].decode("utf-8", "replace")
        ver = self.elf.by_name("version")
        if ver is not None and ver.data:
            if len(ver.data) != 4:
                raise ElfError(f"'version' section has {len(ver.data)} bytes, expected 4")
            self.spec.kernel_version = struct.unpack("<I", ver.data)[0]

    # ---- BTF --------------------------------------------------------------------
    def _btf(self) -> None:
        sec = self.elf.by_name(".BTF")
        if sec is None or not sec.data:
            return
        btf = parse_btf(sec.data)
        self._fixup_datasecs(btf)
        self._mark_static(btf)
        self.btf = btf
        ext = self.elf.by_name(".BTF.ext")
        if ext is not None and ext.data:
            self.ext = parse_btf_ext(ext.data, btf)

    def _mark_static(self, btf: Btf) -> None:
        """Give ``__hidden`` (and internal) global functions static BTF linkage, as libbpf
        does (``mark_btf_static``): outside the object nobody can call them, so the
        verifier checks them as static subprograms, with their callers' argument types,
        not as global functions whose arguments it must not trust."""
        hidden = {
            s.name
            for s in self.elf.symbols
            if s.type == STT.FUNC
            and s.bind in (STB.GLOBAL, STB.WEAK)
            and (s.other & 3) in (STV.HIDDEN, STV.INTERNAL)
            and s.name
        }
        if not hidden:
            return
        for t in btf.types:
            if t.kind == BtfKind.FUNC and t.name in hidden:
                t.linkage = FuncLinkage.STATIC  # type: ignore[attr-defined]

    def _fixup_datasecs(self, btf: Btf) -> None:
        """Set DATASEC sizes and variable offsets from the ELF, as the kernel needs them."""
        for t in btf.types:
            if t.kind != BtfKind.DATASEC:
                continue
            sec = self.elf.by_name(t.name)
            if sec is None:
                continue
            t.size = sec.size  # type: ignore[attr-defined]
            syms = {
                s.name: s
                for s in self.elf.symbols
                if s.shndx == sec.index and s.name and s.type != STT.SECTION
            }
            for v in t.vars:  # type: ignore[attr-defined]
                var = btf.get(v.type)
                sym = syms.get(var.name)
                if sym is not None:
                    v.offset = sym.value
                    if sym.size and var.kind == BtfKind.VAR:
                        v.size = sym.size
                if v.offset + v.size > sec.size:
                    raise BtfError(
                        f"variable {var.name!r} ({v.offset}+{v.size}) lies outside "
                        f"section {t.name!r} ({sec.size} bytes)"
                    )

    # ---- code -------------------------------------------------------------------
    def _code_sections(self) -> None:
        elf = self.elf
        for sec in elf.sections:
            if not sec.is_exec or sec.size == 0:
                continue
            if sec.size % 8:
                raise ElfError(f"code section {sec.name!r} size {sec.size} is not a multiple of 8")
            try:
                lddw = lddw_slots(sec.data)
            except DecodeError as e:
                raise ElfError(f"section {sec.name!r}: {e}") from None
            cs = _CodeSection(sec, lddw)
            self._split_functions(cs)
            self._collect_relocs(cs)
            self.code[sec.index] = cs

    def _split_functions(self, cs: _CodeSection) -> None:
        sec = cs.sec
        nslots = sec.size // 8
        syms = sorted(
            (s for s in self.elf.symbols if s.shndx == sec.index and s.type == STT.FUNC and s.name),
            key=lambda s: (s.value, s.bind != STB.GLOBAL, s.index),
        )
        subprog_sec = _is_subprog_section(sec.name)
        if not syms:
            if subprog_sec:
                return
            syms = [Symbol(-1, sec.name, 0, sec.size, STT.FUNC, STB.GLOBAL, 0, sec.index)]
        seen: set[int] = set()
        for i, s in enumerate(syms):
            if s.value in seen:
                continue  # an alias of the previous function
            seen.add(s.value)
            if s.value % 8:
                raise ElfError(f"function {s.name!r} starts mid-instruction (offset {s.value})")
            start = s.value // 8
            if s.size:
                if s.size % 8:
                    raise ElfError(f"function {s.name!r} size {s.size} is not a multiple of 8")
                end = start + s.size // 8
            else:
                nxt = [t.value // 8 for t in syms[i + 1 :] if t.value > s.value]
                end = nxt[0] if nxt else nslots
            if (
                not cs.is_start(start)
                or end > nslots
                or end <= start
                or (end < nslots and not cs.is_start(end))
            ):
                raise ElfError(
                    f"function {s.name!r} ({s.value}+{s.size}) does not fit "
                    f"the instructions of {sec.name!r}"
                )
            if cs.funcs and start < cs.funcs[-1].end:
                raise ElfError(f"function {s.name!r} overlaps {cs.funcs[-1].name!r}")
            first = cs.index_of(start)
            cs.funcs.append(
                _Func(
                    s.name,
                    sec,
                    start,
                    end,
                    first,
                    cs.index_of(end) - first,
                    s.bind != STB.LOCAL,
                    is_program=not subprog_sec,
                )
            )
            cs.starts.append(start)
        # In a program section, static functions next to global ones are subprograms
        # (hand-written assembly); a section of only static functions keeps them all.
        if not subprog_sec and any(f.is_global for f in cs.funcs):
            for f in cs.funcs:
                f.is_program = f.is_global

    def _collect_relocs(self, cs: _CodeSection) -> None:
        rels = self.elf.rels_for(cs.sec.index)
        if rels and self.elf.rel_kinds.get(cs.sec.index) == "rela":
            raise ElfError(f"RELA relocations in code section {cs.sec.name!r} are not supported")
        for rel in rels:
            if rel.offset % 8 or rel.offset >= cs.sec.size:
                raise ElfError(f"relocation at {cs.sec.name}+{rel.offset} is not at an instruction")
            slot = rel.offset // 8
            if not cs.is_start(slot):
                raise ElfError(f"relocation at {cs.sec.name}+{rel.offset} points into an lddw")
            if slot in cs.relocs:
                raise ElfError(f"two relocations for {cs.sec.name}+{rel.offset}")
            cs.relocs[slot] = rel
        cs.rel_slots = sorted(cs.relocs)

    # ---- externs and variables ----------------------------------------------------
    def _externs(self) -> None:
        btf = self.btf
        info: dict[str, tuple[str, int | None]] = {}
        if btf is not None:
            for t in btf.types:
                if t.kind != BtfKind.DATASEC or t.name not in (".kconfig", ".ksyms"):
                    continue
                for v in t.vars:  # type: ignore[attr-defined]
                    var = btf.get(v.type)
                    if t.name == ".kconfig":
                        kind = "kconfig"
                    else:
                        kind = "kfunc" if var.kind == BtfKind.FUNC else "ksym"
                    tid = var.type if var.kind == BtfKind.VAR else var.id  # type: ignore[attr-defined]
                    info[var.name] = (kind, tid)
        kconfig_off = 0
        for s in self.elf.symbols:
            if s.shndx != SHN_UNDEF or not s.name or s.type in (STT.SECTION, STT.FILE):
                continue
            kind, tid = info.get(s.name, (None, None))
            if kind is None:
                if s.name.startswith(("CONFIG_", "LINUX_")):
                    kind = "kconfig"
                else:
                    kind = "kfunc" if s.type == STT.FUNC else "ksym"
            ext = ExternSpec(
                s.name,
                kind,
                tid,
                btf.type_name(tid) if btf and tid else None,
                weak=s.bind == STB.WEAK,
            )
            if kind == "kconfig":
                size, align = 8, 8
                if btf is not None and tid:
                    try:
                        size, align = btf.size_of(tid), btf.align_of(tid)
                    except BtfError:
                        pass
                if size <= 0 or size > 4096:
                    raise ElfError(f"kconfig extern {s.name!r} has bad size {size}")
                kconfig_off = (kconfig_off + align - 1) // align * align
                ext.offset, ext.size = kconfig_off, size
                kconfig_off += size
            self.externs[s.name] = ext
        if kconfig_off:
            ds = None
            if btf is not None:
                ds = next(
                    (t for t in btf.types if t.kind == BtfKind.DATASEC and t.name == ".kconfig"),
                    None,
                )
            size = (kconfig_off + 7) // 8 * 8
            m = MapSpec(
                name=".kconfig",
                type=MapType.ARRAY,
                key_size=4,
                value_size=size,
                max_entries=1,
                flags=BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
                key_type="int",
                value_type_id=ds.id if ds is not None else None,
                value_type="datasec .kconfig" if ds is not None else None,
                contents=bytes(size),
                frozen=True,
                section=".kconfig",
                kind="kconfig",
            )
            self._add_maps(-2, [m])

    def _variables(self) -> None:
        btf = self.btf
        btf_vars: dict[tuple[str, str], int] = {}
        if btf is not None:
            for t in btf.types:
                if t.kind == BtfKind.DATASEC:
                    for v in t.vars:  # type: ignore[attr-defined]
                        var = btf.get(v.type)
                        if var.kind == BtfKind.VAR:
                            btf_vars[(t.name, var.name)] = var.type  # type: ignore[attr-defined]
        out: dict[str, VariableSpec] = {}
        for s in sorted(self.elf.symbols, key=lambda s: (s.shndx, s.value, s.index)):
            if s.shndx in (SHN_UNDEF,) or s.shndx >= SHN_LORESERVE or not s.name:
                continue
            if s.type not in (STT.OBJECT, STT.NOTYPE) or s.shndx not in self.data_sections:
                continue
            m = self.data_sections[s.shndx]
            if s.name.startswith(".L"):
                continue
            tid = btf_vars.get((m.name, s.name))
            linkage = "global" if s.bind != STB.LOCAL else "static"
            if btf is not None and tid is not None:
                vt = next(
                    (
                        btf.get(v.type)
                        for t in btf.types
                        if t.kind == BtfKind.DATASEC and t.name == m.name
                        for v in t.vars  # type: ignore[attr-defined]
                        if btf.get(v.type).name == s.name
                    ),
                    None,
                )
                if vt is not None and vt.linkage == VarLinkage.STATIC:  # type: ignore[attr-defined]
                    linkage = "static"
            key = s.name if s.name not in out else f"{m.name}:{s.name}"
            out[key] = VariableSpec(
                s.name,
                m.name,
                s.value,
                s.size,
                tid,
                btf.type_name(tid) if btf is not None and tid else None,
                linkage,
            )
        self.spec.variables = out

    # ---- programs ---------------------------------------------------------------
    def _programs(self) -> None:
        progs: dict[str, ProgramSpec] = {}
        for cs in self.code.values():
            for f in cs.funcs:
                if not f.is_program:
                    continue
                p = self._link(f)
                key = p.name
                if key in progs:
                    key = f"{cs.sec.name}/{p.name}"
                    if key in progs:
                        raise ElfError(f"duplicate program {key!r}")
                    p.name = key
                progs[key] = p
        self.spec.programs = progs

    def _link(self, main: _Func) -> ProgramSpec:
        # A leading '?' (libbpf) marks a program not loaded by default.
        autoload = not main.sec.name.startswith("?")
        sdef, target = match_section(main.sec.name if autoload else main.sec.name[1:])
        flags = 0
        if sdef.traits & SLEEPABLE:
            flags |= BPF_F_SLEEPABLE
        if sdef.traits & XDP_FRAGS:
            flags |= BPF_F_XDP_HAS_FRAGS
        prog = ProgramSpec(
            name=main.name,
            section=main.sec.name,
            prog_type=sdef.prog_type,
            expected_attach_type=sdef.attach_type,
            attach_target=target,
            attach_kind=sdef.kind or None,
            flags=flags,
            sleepable=bool(sdef.traits & SLEEPABLE),
            license=self.spec.license,
            kernel_version=self.spec.kernel_version,
            section_offset=main.start * 8,
            own_insn_count=main.count,
            autoload=autoload,
        )
        placed: dict[int, tuple[int, int]] = {}
        order: list[_Func] = []
        next_pos = [0, 0]

        def place(f: _Func) -> tuple[int, int]:
            key = id(f)
            if key not in placed:
                placed[key] = (next_pos[0], next_pos[1])
                order.append(f)
                next_pos[0] += f.count
                next_pos[1] += f.end - f.start
            return placed[key]

        place(main)
        # The program's bytes: each placed function copied in order, then the slots that
        # relocations and calls name patched where they now sit.
        code = bytearray()
        lddw: list[int] = []
        relocs: list[tuple] = []
        left = bisect.bisect_left
        i = 0
        while i < len(order):
            f = order[i]
            i += 1
            base_idx, base_slot = placed[id(f)]
            prog.functions.append((f.name, base_idx))
            cs = self.code[f.sec.index]
            delta = base_slot - f.start
            code += cs.data[f.start * 8 : f.end * 8]
            for s in cs.lddw[left(cs.lddw, f.start) : left(cs.lddw, f.end)]:
                at = (s + delta + 1) * 8  # the second slot: only its imm is meaningful
                code[at : at + 4] = b"\0\0\0\0"
                lddw.append(s + delta)
            rs, cl = cs.rel_slots, cs.calls()
            events = rs[left(rs, f.start) : left(rs, f.end)]
            calls = cl[left(cl, f.start) : left(cl, f.end)]
            if calls:
                events = sorted(events + calls)
            idx0 = base_idx - f.first
            data, lddws, refs = cs.data, cs.lddw, self._refs
            for s in events:
                cur_slot = s + delta
                cur_idx = idx0 + s - left(lddws, s)
                rel = cs.relocs.get(s)
                if rel is not None:
                    # The same map or global again (most relocations): patch it here.
                    hit = refs.get((rel.sym, data[s * 8], _I32.unpack_from(data, s * 8 + 4)[0]))
                    if hit is not None:
                        at = cur_slot * 8
                        code[at + 1] = (code[at + 1] & 0x0F) | (hit[1] << 4)
                        _U32.pack_into(code, at + 4, hit[2])
                        _U32.pack_into(code, at + 12, hit[3])
                        relocs.append((cur_idx, cur_slot, hit[0], hit[4], hit[5], hit[6], None))
                    else:
                        relocs.append(self._relocate(f, cs, code, s, rel, cur_idx, cur_slot, place))
                    continue
                tslot = s + _I32.unpack_from(cs.data, s * 8 + 4)[0] + 1
                g = cs.func_at(tslot)
                if g is None:
                    raise ElfError(
                        f"{f.name}: call at {f.sec.name}+{s * 8} targets "
                        f"slot {tslot}, outside any function"
                    )
                if g is not f:
                    gi, gs = place(g)
                    _I32.pack_into(
                        code, cur_slot * 8 + 4, _s32(gs + (tslot - g.start) - cur_slot - 1, f.name)
                    )
                    relocs.append((cur_idx, cur_slot, RelocKind.CALL, g.name, None, 0, g.name))
        raw = RawProgram(bytes(code), lddw, relocs)
        program_from_raw(prog, raw)
        self._ext_info(prog, raw, order, placed)
        return prog

    def _relocate(
        self,
        f: _Func,
        cs: _CodeSection,
        code: bytearray,
        s: int,
        rel: Rel,
        cur_idx: int,
        cur_slot: int,
        place,
    ) -> tuple:
        """Patch the instruction at section slot ``s`` (``cur_slot`` in ``code``) for
        ``rel``; the :class:`Relocation` fields."""
        data = cs.data
        opcode = data[s * 8]
        imm = _I32.unpack_from(data, s * 8 + 4)[0]
        at = cur_slot * 8
        elf = self.elf
        sym = elf.symbol(rel.sym)
        sname = elf.symbol_name(sym)
        where = f"{f.name}: relocation"
        is_call = opcode == op.CALL_OP
        imm_lo = imm & 0xFFFFFFFF
        if not (is_call or opcode == op.LDDW):
            raise ElfError(
                f"{f.name}: relocation against {sname!r} on an instruction that is "
                f"neither lddw nor call (opcode {opcode:#04x})"
            )
        if sym.shndx == SHN_UNDEF:
            ext = self.externs.get(sym.name)
            if ext is None:
                raise ElfError(f"{f.name}: relocation against unknown undefined symbol {sname!r}")
            if is_call:
                if ext.kind == "kconfig":
                    raise ElfError(f"{f.name}: call to kconfig extern {sname!r}")
                ext.kind = "kfunc"
                _patch(code, at, op.PSEUDO_KFUNC_CALL, 0, None, off=0)
                return (cur_idx, cur_slot, RelocKind.KFUNC, sname, None, 0, sname)
            if ext.kind == "kconfig":
                off = ext.offset + imm_lo
                kc = self.maps.get(".kconfig")
                if kc is None or off >= kc.value_size:
                    raise ElfError(f"{f.name}: offset {off} beyond the .kconfig data of {sname!r}")
                _patch(code, at, op.PSEUDO_MAP_VALUE, 0, off)
                return (cur_idx, cur_slot, RelocKind.KCONFIG, sname, ".kconfig", off, sname)
            _patch(code, at, op.PSEUDO_BTF_ID, 0, 0)
            return (cur_idx, cur_slot, RelocKind.KSYM, sname, None, 0, sname)
        if sym.shndx >= SHN_LORESERVE:
            raise ElfError(f"{f.name}: relocation against absolute/common symbol {sname!r}")
        tcs = self.code.get(sym.shndx)
        if tcs is not None:
            if sym.value % 8:
                raise ElfError(f"{f.name}: relocation against misaligned code symbol {sname!r}")
            if is_call:
                tslot = sym.value // 8 + imm + 1
            else:
                if imm_lo % 8:
                    raise ElfError(f"{f.name}: function pointer to {sname!r} is misaligned")
                tslot = (sym.value + imm_lo) // 8
            g = tcs.func_at(tslot)
            if g is None:
                raise ElfError(
                    f"{f.name}: reference to {sname!r} targets slot {tslot} of "
                    f"{tcs.sec.name!r}, outside any function"
                )
            gi, gs = place(g)
            rel_off = _s32(gs + (tslot - g.start) - cur_slot - 1, f.name)
            if is_call:
                _patch(code, at, op.PSEUDO_CALL, rel_off, None)
                kind = RelocKind.CALL
            else:
                _patch(code, at, op.PSEUDO_FUNC, rel_off & 0xFFFFFFFF, 0)
                kind = RelocKind.FUNC_ADDR
            return (cur_idx, cur_slot, kind, sname, None, 0, g.name)
        if is_call:
            raise ElfError(f"{f.name}: call relocation against non-code symbol {sname!r}")
        maps = self.map_sections.get(sym.shndx)
        if maps is None:
            sec = elf.section(sym.shndx)
            raise ElfError(
                f"{where}: reference to {sname!r} in section {sec.name!r}, "
                "which is neither maps nor global data"
            )
        off = sym.value + imm_lo
        if sym.shndx in self.data_sections:
            m = self.data_sections[sym.shndx]
            if off > m.value_size:
                raise ElfError(f"{f.name}: offset {off} beyond global data {m.name!r}")
            ref = (RelocKind.MAP_VALUE, op.PSEUDO_MAP_VALUE, 0, off, sname, m.name, off)
        else:
            m = self._map_at(sym.shndx, maps, off)
            if m is None:
                raise ElfError(f"{f.name}: reference to {sname!r} (offset {off}) is not a map")
            ref = (RelocKind.MAP, op.PSEUDO_MAP_FD, 0, 0, sname, m.name, 0)
        self._refs[(rel.sym, opcode, imm)] = ref
        _patch(code, at, ref[1], ref[2], ref[3])
        return (cur_idx, cur_slot, ref[0], sname, ref[5], ref[6], None)

    def _map_at(self, shndx: int, maps: list[MapSpec], off: int) -> MapSpec | None:
        """The map whose definition covers byte ``off`` of its section."""
        index = self._map_index.get(shndx)
        if index is None:
            ordered = sorted(maps, key=lambda m: m.section_offset)
            sec_size = self.elf.section(shndx).size
            starts, ends = [], []
            for i, m in enumerate(ordered):
                nxt = ordered[i + 1].section_offset if i + 1 < len(ordered) else sec_size
                starts.append(m.section_offset)
                ends.append(
                    m.section_offset + 20 if m.kind == "legacy" else max(nxt, m.section_offset + 1)
                )
            index = self._map_index[shndx] = (starts, ends, ordered)
        starts, ends, ordered = index
        i = bisect.bisect_right(starts, off) - 1
        if i >= 0 and off < ends[i]:
            return ordered[i]
        return None

    # ---- func/line info, CO-RE --------------------------------------------------
    def _ext_range(self, table: dict, what: str, f: _Func) -> list:
        """The records of ``table`` for ``f``'s section whose offsets fall inside ``f``."""
        recs = table.get(f.sec.name)
        if not recs:
            return []
        key = (what, f.sec.name)
        keys = self._ext_keys.get(key)
        if keys is None:
            recs.sort(key=lambda r: r.insn_off)
            keys = self._ext_keys[key] = [r.insn_off for r in recs]
        return recs[bisect.bisect_left(keys, f.start * 8) : bisect.bisect_left(keys, f.end * 8)]

    def _line_table(self, cs: _CodeSection) -> tuple[list[int], array, array, array]:
        """The section's line records as columns sorted by offset (stable), keeping only
        those at an instruction: byte offsets, file and line string offsets, line/col."""
        table = self._line_tables.get(cs.sec.index)
        if table is not None:
            return table
        assert self.ext is not None
        raw = self.ext.raw("line", cs.sec.name)
        if raw is None:  # already objects
            recs = self.ext.line_info.get(cs.sec.name, [])
            blob = b"".join(
                _LINE.pack(r.insn_off, r.file_name_off, r.line_off, r.line_col) for r in recs
            )
            raw = (blob, _LINE.size)
        blob, size = raw
        words = array("I", blob)
        if sys.byteorder != "little":  # pragma: no cover
            words.byteswap()
        step = size // 4
        offs = words[0::step].tolist()
        cols = [words[1::step], words[2::step], words[3::step]]
        keep: list[int] | None = None
        if offs != sorted(offs):
            keep = sorted(range(len(offs)), key=offs.__getitem__)
        second = {(s + 1) * 8 for s in cs.lddw}
        if any(map((7).__and__, offs)) or not second.isdisjoint(offs):
            keep = [
                k for k in (keep or range(len(offs))) if not offs[k] & 7 and offs[k] not in second
            ]
        if keep is not None:
            offs = [offs[k] for k in keep]
            cols = [array("I", [c[k] for k in keep]) for c in cols]
        table = self._line_tables[cs.sec.index] = (offs, cols[0], cols[1], cols[2])
        return table

    def _ext_info(self, prog: ProgramSpec, raw: RawProgram, order: list[_Func], placed) -> None:
        ext, btf = self.ext, self.btf
        if ext is None or btf is None:
            return
        left = bisect.bisect_left
        slots: list[int] = []
        files, lines, cols = array("I"), array("I"), array("I")
        for f in order:
            base_idx, base_slot = placed[id(f)]
            cs = self.code[f.sec.index]
            lo, hi = f.start * 8, f.end * 8
            for fi in self._ext_range(ext.func_info, "func", f):
                pos = _ext_pos(f, cs, fi.insn_off, base_idx, base_slot)
                if pos is not None:
                    prog.func_info.append(
                        FuncInfo(pos[0], pos[1], fi.type_id, btf.get(fi.type_id).name)
                    )
            offs, fcol, lcol, ccol = self._line_table(cs)
            a, b = left(offs, lo), left(offs, hi)
            if a < b:
                delta = base_slot - f.start
                slots += [(o >> 3) + delta for o in offs[a:b]]
                files += fcol[a:b]
                lines += lcol[a:b]
                cols += ccol[a:b]
            for cr in self._ext_range(ext.core_relos, "core", f):
                pos = _ext_pos(f, cs, cr.insn_off, base_idx, base_slot)
                if pos is None:
                    if lo <= cr.insn_off < hi:
                        raise ElfError(
                            f"CO-RE relocation at {f.sec.name}+{cr.insn_off} is not "
                            "at an instruction"
                        )
                    continue
                prog.core_relocations.append(
                    CoreRelocation(
                        pos[0], pos[1], cr.type_id, cr.access, cr.kind, btf.type_name(cr.type_id)
                    )
                )
        prog.func_info.sort(key=lambda x: x.slot)
        # Functions are laid out in order and each one's records are sorted: the
        # columns are in slot order already.
        if slots:
            raw.lines = RawLines(slots, files, lines, cols, ext.string)
        if prog.func_info and prog.func_info[0].slot == 0:
            prog.btf_func_id = prog.func_info[0].type_id


def _ext_pos(
    f: _Func, cs: _CodeSection, insn_off: int, base_idx: int, base_slot: int
) -> tuple[int, int] | None:
    """(index, slot) in the linked program of byte ``insn_off`` of ``f``'s section, if an
    instruction of ``f`` starts there."""
    if insn_off % 8 or not f.start * 8 <= insn_off < f.end * 8:
        return None
    s = insn_off // 8
    if (s - 1) in cs.lddw_set:
        return None
    return base_idx + cs.index_of(s) - f.first, base_slot + s - f.start


def _patch(
    code: bytearray, at: int, src: int, lo: int, hi: int | None, off: int | None = None
) -> None:
    """Set the source register field and the immediate of the instruction at byte ``at``:
    32 bits (``hi`` None) or both halves of an ``lddw``; ``off`` when given."""
    code[at + 1] = (code[at + 1] & 0x0F) | (src << 4)
    if off is not None:
        code[at + 2 : at + 4] = _I16.pack(off)
    if hi is None:
        _I32.pack_into(code, at + 4, lo)
    else:
        _U32.pack_into(code, at + 4, lo & 0xFFFFFFFF)
        _U32.pack_into(code, at + 12, hi & 0xFFFFFFFF)


def _s32(v: int, who: str) -> int:
    if not -(1 << 31) <= v < (1 << 31):
        raise ElfError(f"{who}: call offset {v} does not fit in 32 bits")
    return v
