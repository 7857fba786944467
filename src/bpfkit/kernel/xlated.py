"""Listings of loaded programs: the kernel's translated code with names, maps and C lines.

:func:`xlated_listing` reads a program's translated ("xlated") instructions, its BTF func
and line info and the kernel's symbols, and gives one :class:`XlatedLine` per
instruction: helper calls named by the kernel function they became, map loads by map id,
the C source line and the function signature where they begin. :func:`format_xlated`
prints them in ``bpftool prog dump xlated``'s format (``kernel/bpf/disasm.c`` text,
``%4u: `` slot numbers, ``; source`` lines, ``signature:`` headers).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from ..isa import opcodes as op
from ..isa.disasm import kernel_insn
from ..isa.instruction import Instruction, decode
from . import sys as bsys

__all__ = ["XlatedLine", "xlated_listing", "format_xlated", "func_signature", "kernel_symbols"]


@dataclass
class XlatedLine:
    """One translated instruction and what a listing shows with it."""

    pc: int
    opcode: int
    text: str
    #: the function signature, on the first instruction of a function
    func: str | None = None
    #: the C source line (left-trimmed) that begins at this instruction
    source: str | None = None
    file: str | None = None
    line: int | None = None
    col: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The line as JSON (``None`` fields left out)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@functools.lru_cache(maxsize=1)
def kernel_symbols() -> tuple[tuple[int, ...], tuple[str, ...], int]:
    """``/proc/kallsyms`` as sorted (addresses, names) and ``__bpf_call_base``'s address.

    Empty when the file is unreadable or its addresses are hidden (``kptr_restrict``).
    """
    pairs: dict[int, str] = {}
    base = 0
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                addr = int(parts[0], 16)
                if parts[2] == "__bpf_call_base":
                    base = addr
                if addr and addr not in pairs:
                    pairs[addr] = parts[2]
    except (OSError, ValueError):
        return (), (), 0
    if not base:
        return (), (), 0
    addrs = tuple(sorted(pairs))
    return addrs, tuple(pairs[a] for a in addrs), base


def _symbol(address: int) -> str | None:
    addrs, names, _ = kernel_symbols()
    i = bisect_left(addrs, address)
    if i < len(addrs) and addrs[i] == address:
        return names[i]
    return None


def _type_only(btf: Any, tid: int, depth: int = 0) -> str:
    """A type as bpftool spells it in a signature (every part followed by a blank)."""
    from ..uapi.btf import BtfKind

    if depth > 32:
        raise ValueError("type nesting too deep")
    if tid == 0:
        return "void "
    t = btf.get(tid)
    k = t.kind
    if k in (BtfKind.INT, BtfKind.TYPEDEF, BtfKind.FLOAT):
        return f"{t.name} "
    if k == BtfKind.STRUCT:
        return f"struct {t.name} "
    if k == BtfKind.UNION:
        return f"union {t.name} "
    if k in (BtfKind.ENUM, BtfKind.ENUM64):
        return f"enum {t.name} "
    if k == BtfKind.ARRAY:
        return _type_only(btf, t.type, depth + 1) + f"[{t.nelems}]"
    if k == BtfKind.PTR:
        return _type_only(btf, t.type, depth + 1) + "* "
    if k == BtfKind.FWD:
        return f"{'union' if t.is_union else 'struct'} {t.name} "
    if k in (BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT):
        return f"{k.name.lower()} " + _type_only(btf, t.type, depth + 1)
    if k == BtfKind.FUNC_PROTO:
        return _signature(btf, t, None, depth + 1)
    if k == BtfKind.FUNC:
        return _signature(btf, btf.get(t.type), t.name, depth + 1)
    if k in (BtfKind.TYPE_TAG, BtfKind.DECL_TAG):
        return _type_only(btf, t.type, depth + 1)
    raise ValueError(f"no signature for {k.name}")


def _signature(btf: Any, proto: Any, name: str | None, depth: int) -> str:
    out = _type_only(btf, proto.return_type, depth) + (f"{name}(" if name is not None else "(")
    for i, p in enumerate(proto.params):
        if i:
            out += ", "
        if not p.type and not p.name:
            out += "..."
            continue
        out += _type_only(btf, p.type, depth)
        if p.name:
            out += p.name
        elif out.endswith(" "):
            out = out[:-1]
    return out + ")"


def func_signature(btf: Any, type_id: int) -> str | None:
    """The C signature of BTF function ``type_id`` as bpftool prints it (``None`` if none)."""
    try:
        return _type_only(btf, type_id)
    except (ValueError, IndexError, KeyError, AttributeError):
        return None


def _text(insn: Instruction, pc: int, xl: list[Instruction], jited: tuple[int, ...]) -> str:
    """The kernel's text for one translated instruction, with bpftool's names."""
    code = insn.opcode
    if code == op.LDDW:
        src = insn.src
        hi = (insn.imm >> 32) & 0xFFFFFFFF
        lo = insn.imm & 0xFFFFFFFF
        if src == op.PSEUDO_MAP_FD:
            val = f"map[id:{lo}]"
        elif src == op.PSEUDO_MAP_VALUE:
            val = f"map[id:{lo}][0]+{hi}"
        elif src == op.PSEUDO_MAP_IDX_VALUE:
            val = f"map[idx:{lo}]+{hi}"
        elif src == op.PSEUDO_FUNC:
            s = lo - (1 << 32) if lo >> 31 else lo
            val = f"subprog[{s:+d}]"
        else:
            val = f"{insn.imm & ((1 << 64) - 1):#x}"
        return f"r{insn.dst} = {val}"
    if code == op.CALL_OP and insn.src in (0, op.PSEUDO_CALL):
        from ..uapi.enums import HELPER_NAMES

        imm = insn.imm
        if insn.src == 0 and 0 <= imm and imm in HELPER_NAMES:
            return f"call bpf_{HELPER_NAMES[imm]}#{imm}"
        _, _, base = kernel_symbols()
        if insn.src == op.PSEUDO_CALL:
            if not jited:
                return f"call pc{insn.off:+d}"
            address = jited[imm] if 0 <= imm < len(jited) else base + imm
            sym = _symbol(address)
            return f"call pc{insn.off:+d}#{sym if sym else hex(address)}"
        address = (base + imm) & ((1 << 64) - 1)
        sym = _symbol(address) if base else None
        name = sym if sym else (hex(address) if base else "unknown")
        return f"call {name}#{imm}"
    if (
        insn.cls in (op.ALU, op.ALU64)
        and code & 0xF8 == op.MOV | op.X
        and insn.off not in (0, 8, 16, 32)
    ):
        # the kernel's internal moves (off -1: per-CPU address), which bpftool prints plain
        return kernel_insn(insn.with_(off=0))
    return kernel_insn(insn)


def xlated_listing(fd: bsys.FdLike) -> list[XlatedLine]:
    """The translated code of the program behind ``fd``, one :class:`XlatedLine` each."""
    info = bsys.prog_debug_info(fd)
    btf = None
    if info.btf_id and (info.func_info or info.line_info):
        from ..btf.parser import parse_btf

        try:
            with bsys.FD(bsys.btf_get_fd_by_id(info.btf_id)) as bfd:
                raw = bsys.btf_info(bfd, data=True).data or b""
            btf = parse_btf(raw)
        except Exception:  # noqa: BLE001 - a listing without names is still a listing
            btf = None
    insns = decode(info.xlated, strict=False) if info.xlated else []
    if info.jited_ksyms and any(i.opcode == op.CALL_OP and i.src == op.PSEUDO_CALL for i in insns):
        kernel_symbols.cache_clear()  # the program's own functions are newer than the cache
    funcs = {off: tid for off, tid in info.func_info}
    lines = {rec[0]: rec for rec in info.line_info}
    out: list[XlatedLine] = []
    pc = 0
    for insn in insns:
        ln = XlatedLine(pc, insn.opcode, _text(insn, pc, insns, info.jited_ksyms))
        if btf is not None and pc in funcs:
            ln.func = func_signature(btf, funcs[pc])
        if btf is not None and pc in lines:
            _, file_off, line_off, line_col = lines[pc]
            text = _string(btf, line_off)
            if text is not None:
                ln.source = text.lstrip()
                ln.file = _string(btf, file_off)
                ln.line, ln.col = line_col >> 10, line_col & 0x3FF
        out.append(ln)
        pc += insn.slots
    return out


def _string(btf: Any, off: int) -> str | None:
    strings: bytes = btf.strings
    if not 0 <= off < len(strings):
        return None
    return strings[off:].split(b"\0", 1)[0].decode(errors="replace")


def format_xlated(lines: list[XlatedLine], *, linum: bool = False) -> str:
    """The listing as ``bpftool prog dump xlated`` prints it."""
    out: list[str] = []
    for ln in lines:
        if ln.func:
            out.append(f"{ln.func}:")
        if ln.source is not None:
            src = f"; {ln.source}"
            if linum:
                src += f" [file:{ln.file or ''} line_num:{ln.line} line_col:{ln.col}]"
            out.append(src)
        out.append(f"{ln.pc:4d}: ({ln.opcode:02x}) {ln.text}")
    return "".join(s + "\n" for s in out)
