"""Parse ``.BTF.ext``: per-section function info, line info and CO-RE relocations.

Offsets in the records are byte offsets into the named ELF section, exactly as clang
writes them; :mod:`bpfkit.obj` converts them to instruction indices per program.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass

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
from .fields import Record
from .types import Btf

__all__ = ["BtfExt", "FuncInfoRecord", "LineInfoRecord", "CoreReloRecord", "parse_btf_ext"]

_HDR = struct.Struct("<HBBI")
_U32 = struct.Struct("<I")
_SEC = struct.Struct("<II")
_FUNC = struct.Struct("<II")
_QUAD = struct.Struct("<IIII")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FuncInfoRecord(Record):
    """``bpf_func_info``: the function (BTF FUNC id) starting at byte ``insn_off``."""

    insn_off: int
    type_id: int


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class LineInfoRecord(Record):
    """``bpf_line_info`` with its strings resolved: file, source text, line, column."""

    insn_off: int
    file: str
    source: str
    line: int
    column: int
    file_name_off: int = 0
    line_off: int = 0
    line_col: int = 0


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class CoreReloRecord(Record):
    """``bpf_core_relo``: adjust the instruction at ``insn_off`` for ``type_id`` via ``access``."""

    insn_off: int
    type_id: int
    access: str
    kind: CoreReloKind | int
    access_str_off: int = 0


class BtfExt:
    """All records of a ``.BTF.ext`` section, keyed by ELF section name (in file order).

    Every record is checked when the section is parsed; the func and line info records
    are kept as their bytes and become record objects on first use of ``func_info`` /
    ``line_info`` (a large program has thousands of line records, and loading it into
    the kernel needs them only as bytes: :meth:`raw`).
    """

    __slots__ = (
        "_func_info",
        "_line_info",
        "core_relos",
        "func_info_rec_size",
        "line_info_rec_size",
        "core_relo_rec_size",
        "_raw",
        "_ctx",
    )

    def __init__(
        self,
        func_info: dict[str, list[FuncInfoRecord]] | None = None,
        line_info: dict[str, list[LineInfoRecord]] | None = None,
        core_relos: dict[str, list[CoreReloRecord]] | None = None,
        func_info_rec_size: int = FUNC_INFO_SIZE,
        line_info_rec_size: int = LINE_INFO_SIZE,
        core_relo_rec_size: int = CORE_RELO_SIZE,
    ) -> None:
        self._func_info = {} if func_info is None else func_info
        self._line_info = {} if line_info is None else line_info
        self.core_relos: dict[str, list[CoreReloRecord]] = core_relos or {}
        self.func_info_rec_size = func_info_rec_size
        self.line_info_rec_size = line_info_rec_size
        self.core_relo_rec_size = core_relo_rec_size
        #: {"func"|"line": {section: its records' bytes}} until turned into objects
        self._raw: dict[str, dict[str, bytes]] = {}
        self._ctx: _Ctx | None = None

    @property
    def func_info(self) -> dict[str, list[FuncInfoRecord]]:
        """``bpf_func_info`` records by section."""
        if self._func_info is None:
            self._func_info = self._build("func", self.func_info_rec_size, _func_rec)
        return self._func_info

    @func_info.setter
    def func_info(self, value: dict[str, list[FuncInfoRecord]]) -> None:
        self._func_info = value
        self._raw.pop("func", None)

    @property
    def line_info(self) -> dict[str, list[LineInfoRecord]]:
        """``bpf_line_info`` records (strings resolved) by section."""
        if self._line_info is None:
            self._line_info = self._build("line", self.line_info_rec_size, _line_rec)
        return self._line_info

    @line_info.setter
    def line_info(self, value: dict[str, list[LineInfoRecord]]) -> None:
        self._line_info = value
        self._raw.pop("line", None)

    def raw(self, kind: str, section: str) -> tuple[bytes, int] | None:
        """(the records' bytes, record size) of ``kind`` ("func"/"line") for ``section``,
        while they have not been turned into objects; else ``None`` (use the lists)."""
        table = self._raw.get(kind)
        if table is None:
            return None
        return table.get(section, b""), self._rec_size(kind)

    def _rec_size(self, kind: str) -> int:
        return self.func_info_rec_size if kind == "func" else self.line_info_rec_size

    def string(self, off: int) -> str:
        """The BTF string at ``off`` (records refer to the object's BTF strings)."""
        if self._ctx is None:
            raise BtfError(".BTF.ext has no string table")
        return self._ctx.string(off, "string")

    def _build(self, kind: str, rec_size: int, make) -> dict:
        out: dict = {}
        ctx = self._ctx
        for sec, blob in self._raw.pop(kind, {}).items():
            out[sec] = [make(blob, pos, ctx) for pos in range(0, len(blob), rec_size)]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BtfExt):
            return NotImplemented
        return (
            self.func_info == other.func_info
            and self.line_info == other.line_info
            and self.core_relos == other.core_relos
            and self.func_info_rec_size == other.func_info_rec_size
            and self.line_info_rec_size == other.line_info_rec_size
            and self.core_relo_rec_size == other.core_relo_rec_size
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        def count(kind: str, table: dict | None) -> int:
            if table is None:
                size = self._rec_size(kind)
                return sum(len(b) // size for b in self._raw.get(kind, {}).values())
            return sum(len(v) for v in table.values())

        return (
            f"BtfExt(func_info={count('func', self._func_info)}, "
            f"line_info={count('line', self._line_info)}, "
            f"core_relos={sum(len(v) for v in self.core_relos.values())})"
        )


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
    ctx = ext._ctx = _Ctx(btf)
    func, ext.func_info_rec_size = _blobs(
        body, words[0], words[1], FUNC_INFO_SIZE, "func_info", ctx, _check_func
    )
    line, ext.line_info_rec_size = _blobs(
        body, words[2], words[3], LINE_INFO_SIZE, "line_info", ctx, _check_lines
    )
    ext._raw = {"func": func, "line": line}
    ext._func_info = ext._line_info = None
    if hdr_len >= BTF_EXT_HEADER_CORE and len(words) >= 6:
        core, ext.core_relo_rec_size = _blobs(
            body, words[4], words[5], CORE_RELO_SIZE, "core_relo", ctx, _check_core
        )
        size = ext.core_relo_rec_size
        ext.core_relos = {
            sec: [_core_rec(blob, pos, ctx) for pos in range(0, len(blob), size)]
            for sec, blob in core.items()
        }
    return ext


def _columns(blob: bytes, rec_size: int, first: int, n: int) -> list[array] | None:
    """Words ``first..first+n-1`` of every record, as one array per word (None: not here)."""
    if sys.byteorder != "little":  # pragma: no cover
        return None
    words = array("I", blob)
    step = rec_size // 4
    return [words[first + k :: step] for k in range(n)]


def _check_func(blob: bytes, rec_size: int, ctx: _Ctx) -> None:
    """Every func_info record names a type that exists (else the first bad one's error)."""
    cols = _columns(blob, rec_size, 1, 1)
    if cols is None or (cols[0] and max(cols[0]) >= len(ctx.btf.types)):
        for pos in range(0, len(blob), rec_size):
            _func_rec(blob, pos, ctx)


def _check_lines(blob: bytes, rec_size: int, ctx: _Ctx) -> None:
    """Every line_info record's strings exist (else the first bad record's error)."""
    cols = _columns(blob, rec_size, 1, 2)
    if cols is not None:
        try:
            for off in set(cols[0]) | set(cols[1]):
                ctx.string(off, "line_info")
            return
        except BtfError:
            pass
    for pos in range(0, len(blob), rec_size):
        _line_rec(blob, pos, ctx)


def _check_core(blob: bytes, rec_size: int, ctx: _Ctx) -> None:
    for pos in range(0, len(blob), rec_size):
        _core_rec(blob, pos, ctx)


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


def _blobs(
    body: bytes, off: int, length: int, min_rec: int, what: str, ctx: _Ctx, check
) -> tuple[dict[str, bytes], int]:
    """One kind's records by section name, as bytes (a name seen twice: appended);
    ``check(records, rec_size, ctx)`` raises for the first bad record of a section."""
    out: dict[str, bytes] = {}
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
        end = pos + num * rec_size
        blob = data[pos:end]
        check(blob, rec_size, ctx)
        out[sec] = out[sec] + blob if sec in out else blob
        pos = end
    return out, rec_size
