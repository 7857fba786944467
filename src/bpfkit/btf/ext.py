"""Parse ``.BTF.ext``: per-section function info, line info and CO-RE relocations.

Offsets in the records are byte offsets into the named ELF section, exactly as clang
writes them; :mod:`bpfkit.obj` converts them to instruction indices per program.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import BtfError
from ..uapi.btf import (
    BTF_EXT_HEADER_CORE,
    BTF_EXT_HEADER_MIN,
    BTF_MAGIC,
    BTF_VERSION,
    CORE_RELO_SIZE,
    FUNC_INFO_SIZE,
    LINE_INFO_SIZE,
    CoreReloKind,
    line_info_col,
    line_info_line,
)
from .types import Btf

__all__ = ["BtfExt", "FuncInfoRecord", "LineInfoRecord", "CoreReloRecord", "parse_btf_ext"]

_HDR = struct.Struct("<HBBI")
_U32 = struct.Struct("<I")
_SEC = struct.Struct("<II")
_FUNC = struct.Struct("<II")
_QUAD = struct.Struct("<IIII")


@dataclass(frozen=True, slots=True)
class FuncInfoRecord:
    """``bpf_func_info``: the function (BTF FUNC id) starting at byte ``insn_off``."""

    insn_off: int
    type_id: int


@dataclass(frozen=True, slots=True)
class LineInfoRecord:
    """``bpf_line_info`` with its strings resolved: file, source text, line, column."""

    insn_off: int
    file: str
    source: str
    line: int
    column: int
    file_name_off: int = 0
    line_off: int = 0
    line_col: int = 0


@dataclass(frozen=True, slots=True)
class CoreReloRecord:
    """``bpf_core_relo``: adjust the instruction at ``insn_off`` for ``type_id`` via ``access``."""

    insn_off: int
    type_id: int
    access: str
    kind: CoreReloKind | int
    access_str_off: int = 0


@dataclass(slots=True)
class BtfExt:
    """All records of a ``.BTF.ext`` section, keyed by ELF section name (in file order)."""

    func_info: dict[str, list[FuncInfoRecord]] = field(default_factory=dict)
    line_info: dict[str, list[LineInfoRecord]] = field(default_factory=dict)
    core_relos: dict[str, list[CoreReloRecord]] = field(default_factory=dict)
    func_info_rec_size: int = FUNC_INFO_SIZE
    line_info_rec_size: int = LINE_INFO_SIZE
    core_relo_rec_size: int = CORE_RELO_SIZE


class _Ctx:
    """The BTF whose strings the records use, with a cache of decoded strings."""

    __slots__ = ("btf", "cache")

    def __init__(self, btf: Btf):
        self.btf = btf
        self.cache: dict[int, str] = {}

    def string(self, off: int, what: str) -> str:
        s = self.cache.get(off)
        if s is None:
            strs = self.btf.strings
            if off >= len(strs):
                raise BtfError(
                    f".BTF.ext {what}: string offset {off} outside the BTF string section"
                )
            end = strs.find(b"\0", off)
            if end < 0:
                raise BtfError(f".BTF.ext {what}: unterminated string at {off}")
            s = self.cache[off] = strs[off:end].decode("utf-8", "replace")
        return s


def parse_btf_ext(data: bytes | bytearray | memoryview, btf: Btf) -> BtfExt:
    """Parse a ``.BTF.ext`` blob whose strings live in ``btf``."""
    data = bytes(data)
    if len(data) < BTF_EXT_HEADER_MIN:
        raise BtfError(f".BTF.ext too short for a header ({len(data)} bytes)")
    magic, version, flags, hdr_len = _HDR.unpack_from(data)
    if magic != BTF_MAGIC:
        raise BtfError(f"bad .BTF.ext magic {magic:#06x}")
    if version != BTF_VERSION:
        raise BtfError(f"unsupported .BTF.ext version {version}")
    if flags:
        raise BtfError(f"unsupported .BTF.ext flags {flags:#x}")
    if hdr_len < BTF_EXT_HEADER_MIN or hdr_len > len(data) or hdr_len % 4:
        raise BtfError(f"bad .BTF.ext header length {hdr_len}")
    words = [_U32.unpack_from(data, 8 + 4 * i)[0] for i in range((min(hdr_len, 40) - 8) // 4)]
    ext = BtfExt()
    body = data[hdr_len:]
    ctx = _Ctx(btf)
    ext.func_info, ext.func_info_rec_size = _sections(
        body, words[0], words[1], FUNC_INFO_SIZE, "func_info", ctx, _func_rec
    )
    ext.line_info, ext.line_info_rec_size = _sections(
        body, words[2], words[3], LINE_INFO_SIZE, "line_info", ctx, _line_rec
    )
    if hdr_len >= BTF_EXT_HEADER_CORE and len(words) >= 6:
        ext.core_relos, ext.core_relo_rec_size = _sections(
            body, words[4], words[5], CORE_RELO_SIZE, "core_relo", ctx, _core_rec
        )
    return ext


def _func_rec(data: bytes, pos: int, ctx: _Ctx) -> FuncInfoRecord:
    off, tid = _FUNC.unpack_from(data, pos)
    if tid >= len(ctx.btf.types):
        raise BtfError(f".BTF.ext func_info: type id {tid} out of range")
    return FuncInfoRecord(off, tid)


def _line_rec(data: bytes, pos: int, ctx: _Ctx) -> LineInfoRecord:
    off, fname, line_off, line_col = _QUAD.unpack_from(data, pos)
    return LineInfoRecord(
        off,
        ctx.string(fname, "line_info file"),
        ctx.string(line_off, "line_info line"),
        line_info_line(line_col),
        line_info_col(line_col),
        fname,
        line_off,
        line_col,
    )


def _core_rec(data: bytes, pos: int, ctx: _Ctx) -> CoreReloRecord:
    off, tid, acc, kind = _QUAD.unpack_from(data, pos)
    if tid >= len(ctx.btf.types):
        raise BtfError(f".BTF.ext core_relo: type id {tid} out of range")
    try:
        k: CoreReloKind | int = CoreReloKind(kind)
    except ValueError:
        raise BtfError(f".BTF.ext core_relo: unknown kind {kind}") from None
    return CoreReloRecord(off, tid, ctx.string(acc, "core_relo access"), k, acc)


def _sections(body: bytes, off: int, length: int, min_rec: int, what: str, ctx: _Ctx, make):
    out: dict = {}
    if length == 0:
        return out, min_rec
    if off + length > len(body) or off % 4:
        raise BtfError(f".BTF.ext {what}: offset {off}+{length} outside the section or misaligned")
    data = body[off : off + length]
    if len(data) < 4:
        raise BtfError(f".BTF.ext {what}: missing record size")
    (rec_size,) = _U32.unpack_from(data, 0)
    if rec_size < min_rec or rec_size % 4 or rec_size > 1024:
        raise BtfError(f".BTF.ext {what}: bad record size {rec_size}")
    pos = 4
    while pos < len(data):
        if pos + 8 > len(data):
            raise BtfError(f".BTF.ext {what}: truncated section header at {pos}")
        name_off, num = _SEC.unpack_from(data, pos)
        pos += 8
        if num == 0:
            raise BtfError(f".BTF.ext {what}: section with no records")
        if pos + num * rec_size > len(data):
            raise BtfError(f".BTF.ext {what}: {num} records of {rec_size} bytes exceed the section")
        sec = ctx.string(name_off, f"{what} section name")
        recs = out.setdefault(sec, [])
        for _ in range(num):
            recs.append(make(data, pos, ctx))
            pos += rec_size
    return out, rec_size
