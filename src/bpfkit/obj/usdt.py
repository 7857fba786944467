"""USDT probes of a user-space binary: its ``.note.stapsdt`` notes, parsed (no side effects).

A USDT probe (``DTRACE_PROBE*``/``STAP_PROBE*`` from ``<sys/sdt.h>``) compiles to a
``nop`` plus an ELF note of type 3 owned by ``"stapsdt"``. The note's description holds
three addresses — the probe site, the link-time address of the ``.stapsdt.base``
section, and the probe's semaphore (0 if none) — then the provider, the probe name and
the argument text (``"-4@%eax 8@-16(%rbp) -4@$-7"``), each NUL-terminated.

:func:`read_usdt` gives every probe site as a :class:`UsdtProbe`; each argument is a
:class:`UsdtArg` parsed into the form libbpf's ``usdt.bpf.h`` reads
(``struct __bpf_usdt_arg_spec``: a constant, a register, or memory at a register plus
an offset; the size and signedness as a bit shift). Where the binary was prelinked, the
site is moved by the difference between the ``.stapsdt.base`` section's address and the
note's; the site's and the semaphore's *file offsets* (what a uprobe and its reference
counter name) come from the loadable segments.

Registers are those of x86-64 (``struct pt_regs`` of ``asm/ptrace.h``); arguments of
other architectures are parsed but marked unsupported (``UsdtArg.supported``).

    >>> for p in read_usdt("/usr/lib/x86_64-linux-gnu/libc.so.6"):   # doctest: +SKIP
    ...     print(p.provider, p.name, p.offset, [a.spec for a in p.args])
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import Any

from ..errors import ElfError
from ..uapi.ctx import PT_REGS_NAMES

__all__ = [
    "UsdtArg",
    "UsdtProbe",
    "read_usdt",
    "find_usdt",
    "parse_usdt_args",
    "USDT_ARG_CONST",
    "USDT_ARG_REG",
    "USDT_ARG_REG_DEREF",
    "USDT_MAX_ARGS",
]

#: ``enum __bpf_usdt_arg_type`` of ``usdt.bpf.h``
USDT_ARG_CONST, USDT_ARG_REG, USDT_ARG_REG_DEREF = 0, 1, 2
#: ``BPF_USDT_MAX_ARG_CNT``
USDT_MAX_ARGS = 12
_KINDS = {USDT_ARG_CONST: "const", USDT_ARG_REG: "reg", USDT_ARG_REG_DEREF: "reg_deref"}

NT_STAPSDT = 3
_PT_LOAD, _PF_X = 1, 1
_SHT_NOTE, _SHT_NOBITS = 7, 8

# x86-64 register names (and their 32/16/8-bit parts) → the pt_regs field holding them.
_X86_REGS: dict[str, str] = {}
for _full, _parts in {
    "rip": ("eip",),
    "rax": ("eax", "ax", "al"),
    "rbx": ("ebx", "bx", "bl"),
    "rcx": ("ecx", "cx", "cl"),
    "rdx": ("edx", "dx", "dl"),
    "rsi": ("esi", "si", "sil"),
    "rdi": ("edi", "di", "dil"),
    "rbp": ("ebp", "bp", "bpl"),
    "rsp": ("esp", "sp", "spl"),
}.items():
    for _n in (_full, *_parts):
        _X86_REGS[_n] = _full
for _i in range(8, 16):
    for _n in (f"r{_i}", f"r{_i}d", f"r{_i}w", f"r{_i}b"):
        _X86_REGS[_n] = f"r{_i}"

_RE_CONST = re.compile(r"^\$(-?(?:0x[0-9a-fA-F]+|\d+))$")
_RE_REG = re.compile(r"^%([a-z0-9]+)$")
_RE_DEREF = re.compile(r"^(-?(?:0x[0-9a-fA-F]+|\d+))?\(%([a-z0-9]+)\)$")


@dataclass(frozen=True, slots=True)
class UsdtArg:
    """One USDT argument (``size@location``) in libbpf's ``__bpf_usdt_arg_spec`` form.

    ``kind`` is ``"const"`` (``value`` is the constant), ``"reg"`` (the register's
    content) or ``"reg_deref"`` (the memory at the register plus ``value``); ``reg_off``
    is the register's offset in ``struct pt_regs``. ``size`` is 1, 2, 4 or 8 bytes and
    ``signed`` tells whether the value is sign-extended to 64 bits. ``supported`` is
    False (with ``reason``) for locations bpfkit cannot express (other architectures,
    ``%ah``, symbol-relative operands).
    """

    spec: str
    size: int
    signed: bool
    kind: str = "const"
    value: int = 0
    register: str | None = None
    reg_off: int = 0
    supported: bool = True
    reason: str = ""

    @property
    def arg_type(self) -> int:
        """``enum __bpf_usdt_arg_type``."""
        return {"const": USDT_ARG_CONST, "reg": USDT_ARG_REG, "reg_deref": USDT_ARG_REG_DEREF}[
            self.kind
        ]

    @property
    def bitshift(self) -> int:
        """How many high bits to clear (or sign-extend) from the 8 bytes read."""
        return 64 - 8 * self.size

    def libbpf_spec(self) -> dict[str, int | bool]:
        """The fields of ``struct __bpf_usdt_arg_spec``."""
        return {
            "val_off": self.value & 0xFFFFFFFFFFFFFFFF,
            "arg_type": self.arg_type,
            "reg_off": self.reg_off,
            "arg_signed": self.signed,
            "arg_bitshift": self.bitshift,
        }

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"spec": self.spec, "size": self.size, "signed": self.signed}
        d["kind"] = self.kind
        if self.kind != "reg":
            d["value"] = self.value
        if self.register is not None:
            d["register"] = self.register
            d["reg_off"] = self.reg_off
        if not self.supported:
            d["supported"] = False
            d["reason"] = self.reason
        return d


def _int(text: str) -> int:
    neg = text.startswith("-")
    v = int(text[1:] if neg else text, 0)
    return -v if neg else v


def _parse_arg(text: str) -> UsdtArg:
    size_s, at, loc = text.partition("@")
    if not at:
        raise ElfError(f"USDT argument {text!r} has no 'size@location'")
    try:
        size = int(size_s)
    except ValueError:
        raise ElfError(f"USDT argument {text!r}: bad size {size_s!r}") from None
    if abs(size) not in (1, 2, 4, 8):
        raise ElfError(f"USDT argument {text!r}: size {size} is not 1, 2, 4 or 8 bytes")
    signed, size = size < 0, abs(size)
    if m := _RE_CONST.match(loc):
        return UsdtArg(text, size, signed, "const", _int(m.group(1)))
    m_reg, m_deref = _RE_REG.match(loc), _RE_DEREF.match(loc)
    if m_reg or m_deref:
        reg = m_reg.group(1) if m_reg else m_deref.group(2)  # type: ignore[union-attr]
        kind = "reg" if m_reg else "reg_deref"
        off = _int(m_deref.group(1)) if m_deref and m_deref.group(1) else 0
        full = _X86_REGS.get(reg)
        if full is None:
            return UsdtArg(
                text, size, signed, kind, off, reg, 0, False, f"unknown x86-64 register %{reg}"
            )
        return UsdtArg(text, size, signed, kind, off, full, 8 * PT_REGS_NAMES.index(full))
    return UsdtArg(text, size, signed, "const", 0, None, 0, False, f"location {loc!r} unsupported")


def parse_usdt_args(text: str) -> tuple[UsdtArg, ...]:
    """The arguments of one probe from its note's argument text (space-separated)."""
    args = tuple(_parse_arg(a) for a in text.split())
    if len(args) > USDT_MAX_ARGS:
        raise ElfError(f"USDT probe has {len(args)} arguments (at most {USDT_MAX_ARGS})")
    return args


@dataclass(frozen=True, slots=True)
class UsdtProbe:
    """One USDT probe site of a binary.

    ``address`` is the site's virtual address (adjusted for prelinking), ``offset`` its
    file offset (where a uprobe goes); ``base`` the note's ``.stapsdt.base`` address;
    ``semaphore`` the semaphore's virtual address and ``semaphore_offset`` its file
    offset (the uprobe's reference counter), both 0 when the probe has none.
    """

    path: str
    provider: str
    name: str
    address: int
    offset: int
    base: int
    semaphore: int
    semaphore_offset: int
    args: tuple[UsdtArg, ...]
    arg_text: str

    @property
    def supported(self) -> bool:
        """Whether every argument can be read by ``usdt.bpf.h``."""
        return all(a.supported for a in self.args)

    def libbpf_spec(self, cookie: int = 0) -> dict[str, Any]:
        """The fields of ``struct __bpf_usdt_spec`` for this site."""
        return {
            "args": [a.libbpf_spec() for a in self.args],
            "usdt_cookie": cookie,
            "arg_cnt": len(self.args),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "name": self.name,
            "address": self.address,
            "offset": self.offset,
            "base": self.base,
            "semaphore": self.semaphore,
            "semaphore_offset": self.semaphore_offset,
            "args": [a.to_json() for a in self.args],
        }


# ---- the ELF side ----------------------------------------------------------------------
@dataclass(slots=True)
class _Seg:
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int


def _cstr(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\0", pos)
    if end < 0:
        raise ElfError("USDT note: unterminated string")
    return data[pos:end].decode("utf-8", "replace"), end + 1


def _file_offset(segs: list[_Seg], addr: int, *, exec_only: bool) -> int | None:
    for s in segs:
        if exec_only and not s.flags & _PF_X:
            continue
        if s.vaddr <= addr < s.vaddr + max(s.memsz, s.filesz):
            return addr - s.vaddr + s.offset
    return None


def read_usdt(source: str | os.PathLike[str] | bytes) -> list[UsdtProbe]:
    """Every USDT probe site of an ELF binary (a path or its bytes), in note order.

    Raises :class:`~bpfkit.errors.ElfError` for a file that is not a 64-bit
    little-endian ELF or whose notes are malformed.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data, path = bytes(source), ""
    else:
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ElfError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return _read(data, path)
    except (struct.error, IndexError, ValueError, OverflowError) as e:
        raise ElfError(f"{path or 'binary'}: malformed ELF ({type(e).__name__}: {e})") from None


def _read(data: bytes, path: str) -> list[UsdtProbe]:
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{path or 'binary'} is not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError(f"{path or 'binary'}: only 64-bit little-endian ELF is supported")
    (e_phoff, e_shoff) = struct.unpack_from("<QQ", data, 32)
    e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHHHH", data, 54)
    segs: list[_Seg] = []
    if e_phoff and e_phnum:
        if e_phentsize < 56:
            raise ElfError("program header entries too small")
        for i in range(e_phnum):
            p_type, p_flags, p_offset, p_vaddr, _pa, p_filesz, p_memsz = struct.unpack_from(
                "<IIQQQQQ", data, e_phoff + i * e_phentsize
            )
            if p_type == _PT_LOAD:
                segs.append(_Seg(p_vaddr, p_offset, p_filesz, p_memsz, p_flags))
    sections: list[tuple[int, int, int, int, int]] = []  # name, type, addr, offset, size
    if e_shoff and e_shnum:
        if e_shentsize < 64:
            raise ElfError("section header entries too small")
        for i in range(e_shnum):
            name, stype, _fl, addr, off, size = struct.unpack_from(
                "<IIQQQQ", data, e_shoff + i * e_shentsize
            )
            sections.append((name, stype, addr, off, size))
    names: dict[int, str] = {}
    if sections and e_shstrndx < len(sections):
        _n, _t, _a, stroff, strsize = sections[e_shstrndx]
        strtab = data[stroff : stroff + strsize]
        for i, (n, *_rest) in enumerate(sections):
            end = strtab.find(b"\0", n)
            names[i] = strtab[n : end if end >= 0 else len(strtab)].decode("utf-8", "replace")
    base_addr = next((s[2] for i, s in enumerate(sections) if names.get(i) == ".stapsdt.base"), 0)
    out: list[UsdtProbe] = []
    for i, (_n, stype, _addr, off, size) in enumerate(sections):
        if stype != _SHT_NOTE or names.get(i) != ".note.stapsdt":
            continue
        if off + size > len(data):
            raise ElfError(".note.stapsdt lies outside the file")
        out += _notes(data[off : off + size], path, segs, base_addr)
    return out


def _notes(notes: bytes, path: str, segs: list[_Seg], base_addr: int) -> list[UsdtProbe]:
    out: list[UsdtProbe] = []
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
        pos += 12
        owner = notes[pos : pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        desc = notes[pos : pos + descsz]
        pos += (descsz + 3) & ~3
        if len(desc) != descsz:
            raise ElfError("USDT note runs past its section")
        if owner != b"stapsdt" or ntype != NT_STAPSDT:
            continue
        if descsz < 24:
            raise ElfError(f"USDT note of {descsz} bytes is too short")
        pc, base, sema = struct.unpack_from("<QQQ", desc, 0)
        provider, p = _cstr(desc, 24)
        name, p = _cstr(desc, p)
        arg_text, p = _cstr(desc, p) if p < len(desc) else ("", p)
        address = pc + (base_addr - base if base_addr and base else 0)
        offset = _file_offset(segs, address, exec_only=True)
        if offset is None:
            raise ElfError(
                f"USDT probe {provider}:{name} at {address:#x} is not in an executable segment"
            )
        if sema:
            sema_off = _file_offset(segs, sema, exec_only=False)
            if sema_off is None:
                raise ElfError(
                    f"USDT probe {provider}:{name}: semaphore {sema:#x} is not in a segment"
                )
        else:
            sema_off = 0
        out.append(
            UsdtProbe(
                path,
                provider,
                name,
                address,
                offset,
                base,
                sema,
                sema_off,
                parse_usdt_args(arg_text),
                arg_text,
            )
        )
    return out


def find_usdt(source: str | os.PathLike[str] | bytes, provider: str, name: str) -> list[UsdtProbe]:
    """The sites of probe ``provider:name`` (``ElfError`` naming the probes there are)."""
    probes = read_usdt(source)
    sites = [p for p in probes if p.provider == provider and p.name == name]
    if not sites:
        have = sorted({f"{p.provider}:{p.name}" for p in probes})
        where = os.fspath(source) if not isinstance(source, bytes) else "the binary"
        raise ElfError(
            f"no USDT probe {provider}:{name} in {where}"
            + (f" (it has {', '.join(have)})" if have else " (it has no USDT probes)")
        )
    return sites
