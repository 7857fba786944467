"""Read a program from a file: assembler text or raw bytecode (ELF goes to ``bpfkit.obj``)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence

from ..errors import AsmError, BpfError, DecodeError, NotSupported, VerifierError
from . import opcodes as op
from .asm import assemble_text
from .instruction import Instruction, check, decode

__all__ = [
    "FORMATS",
    "ELF_MAGIC",
    "as_text",
    "guess_format",
    "parse_hex",
    "read_bytes",
    "read_limited",
    "MAX_INPUT_FILE",
    "MAX_PROGRAM_FILE",
    "read_program",
    "runnable_slots",
    "writes_frame_pointer",
]

FORMATS = ("asm", "raw", "elf")
ELF_MAGIC = b"\x7fELF"
# Bytes that never appear in assembler text (NUL and the C0 controls but tab/LF/VT/FF/CR).
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")


def guess_format(data: bytes) -> str:
    """``elf`` for an ELF object, ``asm`` for UTF-8 text, else ``raw`` bytecode."""
    if data.startswith(ELF_MAGIC):
        return "elf"
    if _BINARY_BYTES.search(data) is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "raw"
        return "asm"
    return "raw"


#: The largest program or object file read (an ELF object, assembler text, bytecode).
MAX_PROGRAM_FILE = 1 << 30
#: The largest input-memory, packet or context file read.
MAX_INPUT_FILE = 64 << 20
#: The most read from a file that is not a regular file (a pipe, ``/dev/zero``).
MAX_STREAM = 64 << 20
_CHUNK = 1 << 20


def read_limited(path: str, limit: int, what: str = "file") -> bytes:
    """The contents of ``path``, at most ``limit`` bytes, in memory proportional to what
    the file holds: a regular file is read by its size (``stat``), anything else
    (a pipe, ``/dev/zero``) in chunks until ``limit`` (at most ``MAX_STREAM``); more is
    a :class:`BpfError`
    naming the file and the limit, as is an unreadable file."""
    try:
        with open(path, "rb") as f:
            try:
                st = os.fstat(f.fileno())
            except OSError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode):
                if st.st_size > limit:
                    raise BpfError(f"{what} {path} is {st.st_size} bytes; the limit is {limit}")
            else:  # a pipe or a device: no size to check first, so a smaller limit
                limit = min(limit, MAX_STREAM)
            parts: list[bytes] = []
            total = 0
            while True:
                chunk = f.read(min(_CHUNK, limit + 1 - total))
                if not chunk:
                    break
                parts.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise BpfError(f"{what} {path} holds more than {limit} bytes (the limit)")
            return b"".join(parts)
    except OSError as e:
        raise BpfError(f"cannot read {path}: {e.strerror or e}") from None


def read_bytes(path: str) -> bytes:
    """The file's contents (at most ``MAX_PROGRAM_FILE`` bytes); an unreadable or
    oversized file is a :class:`BpfError` naming it."""
    return read_limited(path, MAX_PROGRAM_FILE, "program file")


def as_text(data: bytes) -> str:
    """``data`` as UTF-8 text, or an :class:`AsmError` at the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise AsmError("file is not UTF-8 text", line, col) from None


def read_program(
    path: str,
    format: str | None = None,
    dialect: str = "auto",
) -> list[Instruction]:
    """The instructions in ``path``: ``asm`` text, ``raw`` 8-byte slots, or guessed.

    ELF objects raise :class:`NotSupported` here; :mod:`bpfkit.obj` reads them.
    """
    if format is not None and format not in FORMATS:
        raise BpfError(f"unknown program format {format!r} (expected asm, raw or elf)")
    data = read_bytes(path)
    fmt = format or guess_format(data)
    if fmt == "elf":
        raise NotSupported(
            f"{path} is an ELF object; ELF programs are read by bpfkit.obj, "
            "not by the raw/asm loader"
        )
    if fmt == "asm":
        return assemble_text(as_text(data), dialect)
    if not data:
        raise DecodeError("empty program")
    return decode(data)


def writes_frame_pointer(insn: Instruction) -> bool:
    """Whether ``insn`` writes r10: an ALU operation, load or ``lddw`` into r10, or an
    atomic fetch / ``xchg`` whose source register (which gets the old value) is r10.

    ``cmpxchg`` writes r0; calls write r0 and clobber r1-r5; legacy packet loads write r0.
    """
    c = insn.cls
    if c in (op.ALU, op.ALU64, op.LDX) or insn.is_lddw:
        return insn.dst == 10
    if c == op.STX and (insn.opcode & 0xE0) == op.ATOMIC:
        return bool(insn.imm & op.FETCH) and insn.imm != op.CMPXCHG and insn.src == 10
    return False


def runnable_slots(insns: Sequence[Instruction]) -> list[int | None]:
    """Validate a program for an engine; its slot → instruction-index map (None for the
    second slot of an ``lddw``).

    Every engine (the interpreter, the JIT) loads programs through here, verified or
    not: each instruction must be well-formed (:class:`DecodeError` naming its index
    and byte offset), and none may write the frame pointer r10 (:class:`VerifierError`
    naming the instruction, the kernel's "frame pointer is read only"). The engines'
    unchecked stack accesses rest on that: r10 is always the true frame pointer, so a
    constant offset in ``[-512, 0)`` of it stays inside the current frame, and every
    callee's frame (caller's r10 - 512, at most 8 frames deep) inside the stack region.
    """
    slot_insn: list[int | None] = []
    for i, insn in enumerate(insns):
        reason = check(insn) if insn.ref is None else f"unresolved label {insn.ref!r}"
        if reason:
            raise DecodeError(
                f"instruction {i}: {reason} (opcode {insn.opcode:#04x})", len(slot_insn) * 8
            )
        if writes_frame_pointer(insn):
            raise VerifierError(f"frame pointer is read only ({insn} writes r10)", insn=i)
        slot_insn.append(i)
        if insn.is_lddw:
            slot_insn.append(None)
    if not slot_insn:
        raise DecodeError("empty program")
    return slot_insn


_HEX_SEP = re.compile(r"[\s,;:]+")
_HEX_TOKEN = re.compile(r"(?:0[xX])?([0-9a-fA-F]*)")


def parse_hex(text: str) -> bytes:
    """Bytes from hex text: ``"aa bb cc"``, ``"aabbcc"`` or ``"0xaa,0xbb"``."""
    out = bytearray()
    for tok in _HEX_SEP.split(text.strip()):
        if not tok:
            continue
        m = _HEX_TOKEN.fullmatch(tok)
        digits = m.group(1) if m else ""
        prefixed = tok[:2] in ("0x", "0X")
        if not digits or m is None:
            raise DecodeError(f"invalid hex byte {tok[:20]!r}")
        if len(digits) % 2:
            if not (prefixed and len(digits) == 1):
                raise DecodeError(f"odd number of hex digits in {tok[:20]!r}")
            digits = "0" + digits
        out += bytes.fromhex(digits)
    return bytes(out)
