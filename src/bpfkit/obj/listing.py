"""Disassembly listings of ELF objects with C source lines interleaved (``llvm-objdump -S`` style).

Map references, global-data offsets, bpf-to-bpf calls, callbacks and externs are
shown by name, taken from the spec's symbolic relocations.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import BpfError
from ..isa.instruction import Instruction
from .loader import load_object
from .spec import ObjectSpec, ProgramSpec, Relocation, RelocKind, line_for

__all__ = ["format_object_listing", "format_program_listing", "program_listing_json"]


def _formatter(dialect: str):
    """``format_insn`` from the disassembler, or a raw fallback when it is unavailable."""
    try:
        from ..isa.disasm import format_insn  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the disassembler is optional here
        format_insn = None

    def fmt(insn: Instruction, pc: int, labels: dict[int, str]) -> str:
        if format_insn is not None:
            try:
                return format_insn(insn, dialect, pc=pc, labels=labels)
            except TypeError:
                try:
                    return format_insn(insn, dialect)
                except Exception:  # noqa: BLE001
                    pass
            except BpfError:
                pass
            except Exception:  # noqa: BLE001 - a listing must never fail on one insn
                pass
        return insn.raw_repr()

    return fmt


def _hex(insn: Instruction) -> str:
    regs = (insn.src << 4) | insn.dst
    b = bytes([insn.opcode & 0xFF, regs & 0xFF]) + (insn.off & 0xFFFF).to_bytes(2, "little")
    if insn.is_lddw:
        b += insn.imm_lo.to_bytes(4, "little") + bytes(4) + insn.imm_hi.to_bytes(4, "little")
    else:
        b += (insn.imm & 0xFFFFFFFF).to_bytes(4, "little")
    return " ".join(f"{x:02x}" for x in b)


def _describe(spec: ObjectSpec, r: Relocation) -> str:
    """A short name for what a relocation refers to."""
    if r.kind == RelocKind.MAP:
        return f"map {r.map}"
    if r.kind in (RelocKind.MAP_VALUE, RelocKind.KCONFIG):
        var = None
        for v in spec.variables.values():
            if v.map == r.map and v.offset <= r.offset < v.offset + max(v.size, 1):
                var = v
                break
        if r.kind == RelocKind.KCONFIG:
            return f"kconfig {r.target}"
        if var is not None:
            extra = f"+{r.offset - var.offset:#x}" if r.offset != var.offset else ""
            return f"{r.map}+{r.offset:#x} ({var.name}{extra})"
        return f"{r.map}+{r.offset:#x}"
    if r.kind == RelocKind.CALL:
        return f"call {r.target}"
    if r.kind == RelocKind.FUNC_ADDR:
        return f"func {r.target}"
    if r.kind == RelocKind.KFUNC:
        return f"kfunc {r.target}"
    if r.kind == RelocKind.KSYM:
        return f"ksym {r.target}"
    return r.symbol


def _labels(prog: ProgramSpec) -> dict[int, str]:
    return {prog.slot_of(idx): name for name, idx in prog.functions if idx < len(prog.instructions)}


def format_program_listing(spec: ObjectSpec, prog: ProgramSpec, dialect: str = "llvm") -> str:
    """The listing of one program: function labels, source lines, instructions, references."""
    fmt = _formatter(dialect)
    labels = _labels(prog)
    starts = {idx: name for name, idx in prog.functions}
    relocs = {r.index: r for r in prog.relocations}
    ptype = prog.type_name.lower()
    lines = [f"Disassembly of program {prog.name} (section {prog.section}, type {ptype}):"]
    last_src: tuple[str, int] | None = None
    for i, insn in enumerate(prog.instructions):
        slot = prog.slot_of(i)
        if i in starts:
            lines.append("")
            lines.append(f"{slot * 8:016x} <{starts[i]}>:")
            last_src = None
        li = line_for(prog, i)
        if li is not None and li.index == i and (li.file, li.line) != last_src:
            lines.append(f"; {li.source}")
            last_src = (li.file, li.line)
        text = fmt(insn, slot, labels)
        r = relocs.get(i)
        if r is not None:
            desc = _describe(spec, r)
            if r.target is None or r.target not in text:
                text = f"{text}\t# {desc}"
        lines.append(f"{slot:>8}:\t{_hex(insn)}\t{text}")
    return "\n".join(lines) + "\n"


def program_listing_json(
    spec: ObjectSpec, prog: ProgramSpec, dialect: str = "llvm"
) -> dict[str, Any]:
    """The listing of one program as data (one entry per instruction)."""
    fmt = _formatter(dialect)
    labels = _labels(prog)
    relocs = {r.index: r for r in prog.relocations}
    insns = []
    for i, insn in enumerate(prog.instructions):
        slot = prog.slot_of(i)
        li = line_for(prog, i)
        r = relocs.get(i)
        entry: dict[str, Any] = {
            "index": i,
            "pc": slot,
            "text": fmt(insn, slot, labels),
            "bytes": _hex(insn).replace(" ", ""),
            "function": prog.function_at(i),
            "source": li.to_json() if li is not None else None,
            "reloc": None,
        }
        if r is not None:
            entry["reloc"] = {**r.to_json(), "description": _describe(spec, r)}
        insns.append(entry)
    return {
        "name": prog.name,
        "section": prog.section,
        "type": prog.type_name.lower(),
        "insns": insns,
    }


def format_object_listing(
    path: str | os.PathLike | bytes | ObjectSpec,
    program: str | None = None,
    dialect: str = "llvm",
    as_json: bool = False,
) -> str | dict[str, Any]:
    """Disassemble every program of an object (or just ``program``) with C source lines.

    Returns the text listing, or with ``as_json`` a dict
    ``{"programs": [{"name", "section", "type", "insns": [...]}]}``.
    """
    spec = path if isinstance(path, ObjectSpec) else load_object(path)
    if program is not None:
        try:
            progs = [spec.program(program)]
        except KeyError as e:
            raise BpfError(str(e.args[0]) if e.args else f"no program {program!r}") from None
    else:
        progs = list(spec.programs.values())
    if as_json:
        return {"programs": [program_listing_json(spec, p, dialect) for p in progs]}
    return "\n".join(format_program_listing(spec, p, dialect) for p in progs)
