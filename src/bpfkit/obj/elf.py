"""Read a BPF ELF relocatable object: section headers, symbols, relocations.

Everything a malformed file can make go wrong surfaces as :class:`ElfError` with a
reason. The ELF header, the section header table, symbols and relocations are decoded
directly with ``struct`` (only what a BPF object needs; no pyelftools on this path,
whose import alone costs more than parsing a large object); section contents are
sliced from the file bytes with bounds checks (no decompression, no reads past the end).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from ..btf.fields import Data
from ..errors import ElfError

__all__ = [
    "ElfFile",
    "Section",
    "Symbol",
    "Rel",
    "SHT",
    "STT",
    "STB",
    "SHF_EXECINSTR",
    "SHF_ALLOC",
    "SHF_WRITE",
    "SHN_UNDEF",
    "SHN_ABS",
    "SHN_COMMON",
    "EM_BPF",
]

EM_BPF = 247
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON = 0, 0xFF00, 0xFFF1, 0xFFF2


class SHT:
    """Section header types."""

    NULL, PROGBITS, SYMTAB, STRTAB, RELA, HASH, DYNAMIC, NOTE, NOBITS, REL = range(10)


class STT:
    """Symbol types."""

    NOTYPE, OBJECT, FUNC, SECTION, FILE = range(5)


class STB:
    """Symbol bindings."""

    LOCAL, GLOBAL, WEAK = range(3)


class STV:
    """Symbol visibilities (the low two bits of ``st_other``)."""

    DEFAULT, INTERNAL, HIDDEN, PROTECTED = range(4)


ET_REL = 1
SHN_XINDEX = 0xFFFF
_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_MACHINES = {0: "EM_NONE", 3: "EM_386", 40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64"}

_EHDR_TYPE = struct.Struct("<HH")  # e_type, e_machine at 16
_EHDR_SH = struct.Struct("<Q10xHHH")  # e_shoff at 0x28 ... e_shentsize, e_shnum, e_shstrndx
_SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
_RELA = struct.Struct("<QQq")


@dataclass(slots=True, eq=False, repr=False)
class Section(Data):
    """One section header plus its bytes (``b""`` for NOBITS)."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    align: int
    data: bytes

    @property
    def is_exec(self) -> bool:
        return self.type == SHT.PROGBITS and bool(self.flags & SHF_EXECINSTR)


@dataclass(slots=True, eq=False, repr=False)
class Symbol(Data):
    """One ``Elf64_Sym``."""

    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    other: int
    shndx: int


class Rel(NamedTuple):
    """One relocation: byte ``offset`` in the target section, symbol index, type, addend.

    A named tuple: an object has one per map reference, and tuples are built fastest.
    """

    offset: int
    sym: int
    type: int
    addend: int = 0


_new_rel = partial(tuple.__new__, Rel)


class ElfFile:
    """A parsed ELF64 little-endian BPF relocatable object."""

    def __init__(self, data: bytes):
        self.data = data
        self.sections: list[Section] = []
        self.symbols: list[Symbol] = []
        self.symtab_index: int | None = None
        self._rel_secs: dict[int, list[Section]] = {}
        self._rel_cache: dict[int, list[Rel]] = {}
        self.rel_kinds: dict[int, str] = {}
        self._read_sections()
        self._read_symbols()
        self._read_rels()

    # ---- sections -----------------------------------------------------------
    def _read_sections(self) -> None:
        data = self.data
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise ElfError("not an ELF file (bad magic)")
        if data[4] != 2:
            raise ElfError("not a 64-bit ELF object")
        if data[5] != 1:
            raise ElfError("big-endian ELF objects are not supported (expected bpfel)")
        etype, machine = _EHDR_TYPE.unpack_from(data, 16)
        shoff, shentsize, shnum, shstrndx = _EHDR_SH.unpack_from(data, 0x28)
        # Old LLVM left e_machine as EM_NONE; libbpf accepts both.
        if machine not in (EM_BPF, 0):
            raise ElfError(f"not a BPF object (machine {_MACHINES.get(machine, machine)})")
        if etype != ET_REL:
            raise ElfError(f"not a relocatable object (type {_TYPES.get(etype, etype)})")
        if shoff == 0:
            raise ElfError("object has no section header table")
        if shentsize != _SHDR.size:
            raise ElfError(f"bad section header size {shentsize}")
        size = len(data)
        if shoff + _SHDR.size > size:
            raise ElfError(f"section header table at {shoff} exceeds the file ({size} bytes)")
        first = _SHDR.unpack_from(data, shoff)
        # Past SHN_LORESERVE sections, the count and the names' section index live in
        # section 0 (e_shnum 0, e_shstrndx SHN_XINDEX).
        num = shnum or first[5]
        if shstrndx == SHN_XINDEX:
            shstrndx = first[6]
        if num <= 0 or shoff + num * _SHDR.size > size:
            raise ElfError(f"section header table ({num} entries at {shoff}) exceeds the file")
        headers = list(_SHDR.iter_unpack(data[shoff : shoff + num * _SHDR.size]))
        if not 0 < shstrndx < num:
            raise ElfError(f"section name table index {shstrndx} out of range")
        _n, stype, _f, _a, soff, ssize, *_ = headers[shstrndx]
        if stype != SHT.STRTAB:
            raise ElfError(f"section name table (section {shstrndx}) is not a STRTAB section")
        if soff + ssize > size:
            raise ElfError(f"section name table {soff}+{ssize} exceeds the file ({size} bytes)")
        names = data[soff : soff + ssize]
        sections = []
        for i, (
            name_off,
            stype,
            flags,
            _addr,
            offset,
            ssize,
            link,
            info,
            align,
            entsize,
        ) in enumerate(headers):
            end = names.find(b"\0", name_off) if name_off < len(names) else -1
            if end < 0:
                if name_off or i:
                    raise ElfError(f"section {i}: name offset {name_off} outside the name table")
                name = ""
            else:
                name = names[name_off:end].decode("utf-8", "replace")
            if stype in (SHT.NOBITS, SHT.NULL):
                sdata = b""
            else:
                if offset + ssize > size:
                    raise ElfError(
                        f"section {i} ({name!r}) data {offset}+{ssize} exceeds the file "
                        f"({size} bytes)"
                    )
                sdata = data[offset : offset + ssize]
            sections.append(
                Section(i, name, stype, flags, offset, ssize, link, info, entsize, align, sdata)
            )
        self.sections = sections

    def section(self, index: int, what: str = "section") -> Section:
        """Section ``index``; ``ElfError`` when it does not exist."""
        if not 0 <= index < len(self.sections):
            raise ElfError(f"{what}: section index {index} out of range")
        return self.sections[index]

    def by_name(self, name: str) -> Section | None:
        """The first section called ``name``."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    # ---- symbols ------------------------------------------------------------
    def _read_symbols(self) -> None:
        symtabs = [s for s in self.sections if s.type == SHT.SYMTAB]
        if not symtabs:
            return
        if len(symtabs) > 1:
            raise ElfError("more than one symbol table")
        st = symtabs[0]
        self.symtab_index = st.index
        if st.entsize not in (0, _SYM.size) or st.size % _SYM.size:
            raise ElfError(
                f"symbol table entry size {st.entsize} / size {st.size} is not 24-byte aligned"
            )
        strtab = self.section(st.link, "symbol string table")
        if strtab.type != SHT.STRTAB:
            raise ElfError("symbol table's string table is not a STRTAB section")
        strs = strtab.data
        nsec = len(self.sections)
        syms = []
        for i, (name_off, info, other, shndx, value, size) in enumerate(_SYM.iter_unpack(st.data)):
            if name_off:
                if name_off >= len(strs):
                    raise ElfError(f"symbol {i}: name offset {name_off} outside the string table")
                end = strs.find(b"\0", name_off)
                if end < 0:
                    raise ElfError(f"symbol {i}: unterminated name")
                name = strs[name_off:end].decode("utf-8", "replace")
            else:
                name = ""
            if shndx >= nsec and shndx < SHN_LORESERVE:
                raise ElfError(f"symbol {i} ({name!r}): section index {shndx} out of range")
            syms.append(Symbol(i, name, value, size, info & 0xF, info >> 4, other, shndx))
        self.symbols = syms

    def symbol(self, index: int, what: str = "relocation") -> Symbol:
        """Symbol ``index``; ``ElfError`` when it does not exist."""
        if not 0 <= index < len(self.symbols):
            raise ElfError(f"{what}: symbol index {index} out of range")
        return self.symbols[index]

    def symbol_name(self, sym: Symbol) -> str:
        """A symbol's name, or its section's name for an STT_SECTION symbol."""
        if sym.type == STT.SECTION and not sym.name and sym.shndx < len(self.sections):
            return self.sections[sym.shndx].name
        return sym.name

    # ---- relocations --------------------------------------------------------
    def _read_rels(self) -> None:
        for s in self.sections:
            if s.type not in (SHT.REL, SHT.RELA):
                continue
            rec = _REL if s.type == SHT.REL else _RELA
            if s.entsize != rec.size:
                raise ElfError(
                    f"relocation section {s.name!r} entry size {s.entsize} is not {rec.size}"
                )
            if s.link != self.symtab_index:
                # Relocations not against the main symbol table (none in clang output).
                continue
            if not 0 < s.info < len(self.sections):
                raise ElfError(f"relocation section {s.name!r} targets bad section {s.info}")
            if s.size % rec.size:
                raise ElfError(
                    f"relocation section {s.name!r} size {s.size} is not a multiple of {rec.size}"
                )
            self._rel_secs.setdefault(s.info, []).append(s)
            self.rel_kinds[s.info] = "rel" if s.type == SHT.REL else "rela"

    @property
    def rels(self) -> dict[int, list[Rel]]:
        """Every relocation, by the index of the section it applies to."""
        return {i: self.rels_for(i) for i in self._rel_secs}

    def rels_for(self, index: int) -> list[Rel]:
        """The relocations of section ``index`` (decoded on first use: a large object's
        ``.BTF.ext`` and DWARF carry thousands that loading never reads)."""
        out = self._rel_cache.get(index)
        if out is None:
            out = self._rel_cache[index] = []
            for s in self._rel_secs.get(index, ()):
                if s.type == SHT.REL:
                    out += [
                        _new_rel((off, info >> 32, info & 0xFFFFFFFF, 0))
                        for off, info in _REL.iter_unpack(s.data)
                    ]
                else:
                    out += [
                        _new_rel((off, info >> 32, info & 0xFFFFFFFF, addend))
                        for off, info, addend in _RELA.iter_unpack(s.data)
                    ]
        return out
