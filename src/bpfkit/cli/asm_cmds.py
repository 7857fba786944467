"""``bpfkit asm`` and ``bpfkit disasm``: text ⇄ bytecode from the command line."""

from __future__ import annotations

import importlib

import click

from ..errors import DecodeError
from ..isa.asm import assemble_text
from ..isa.disasm import disassemble, format_insn
from ..isa.instruction import encode, slot_positions
from ..isa.loader import as_text, guess_format, read_bytes, read_program
from . import _classic
from ._common import EXIT_USAGE, emit, fail, guarded, write_output


def _hex_lines(code: bytes) -> str:
    """One 8-byte slot per line, bytes as space-separated hex (``parse_hex`` reads it)."""
    return "".join(code[i : i + 8].hex(" ") + "\n" for i in range(0, len(code), 8))


@click.command("asm")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write raw bytecode here (default: hex on stdout).",
)
@click.option(
    "--dialect",
    type=click.Choice(["conformance", "llvm", "auto"]),
    default="auto",
    show_default=True,
    help="Assembler dialect.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--classic", is_flag=True, help="A classic BPF program (listing, -dd, -ddd or raw).")
@guarded()
def asm_cmd(file: str, output: str | None, dialect: str, as_json: bool, classic: bool) -> None:
    """Assemble FILE into raw little-endian bytecode."""
    if classic:
        return _classic.asm(file, output, as_json)
    insns = assemble_text(as_text(read_bytes(file)), dialect)
    if not insns:
        raise DecodeError(f"{file}: empty program (no instructions)")
    code = encode(insns)
    if output is not None:
        write_output(output, code)
    if as_json:
        emit({"insns": len(insns), "bytes": code.hex(), "output": output})
    elif output is None:
        click.echo(_hex_lines(code), nl=False)


def _elf_listing(path: str, program: str | None, dialect: str, as_json: bool) -> None:
    try:
        listing = importlib.import_module("bpfkit.obj.listing")
    except ModuleNotFoundError as e:
        if e.name not in ("bpfkit.obj", "bpfkit.obj.listing"):
            raise
        fail(
            f"{path} is an ELF object, but ELF support (bpfkit.obj.listing) is missing",
            EXIT_USAGE,
            as_json,
        )
        return
    result = listing.format_object_listing(path, program=program, dialect=dialect, as_json=as_json)
    if as_json:
        emit(result if isinstance(result, dict) else {"listing": str(result)})
    else:
        text = result if isinstance(result, str) else str(result)
        click.echo(text, nl=not text.endswith("\n"))


@click.command("disasm")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["asm", "raw", "elf"]),
    default=None,
    help="Input format (default: guessed from the file).",
)
@click.option("--program", "program", default=None, help="Program (ELF section or name).")
@click.option(
    "--dialect",
    type=click.Choice(["conformance", "llvm", "kernel"]),
    default="llvm",
    show_default=True,
    help="Output dialect (kernel: as the kernel's verifier log prints instructions).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--classic", is_flag=True, help="A classic BPF program (listing, -dd, -ddd or raw).")
@guarded()
def disasm_cmd(
    file: str, fmt: str | None, program: str | None, dialect: str, as_json: bool, classic: bool
) -> None:
    """Disassemble FILE (raw bytecode, assembler text or an ELF object)."""
    if classic:
        return _classic.disasm(file, fmt, as_json)
    if fmt is None:
        fmt = guess_format(read_bytes(file))
    if fmt == "elf":
        _elf_listing(file, program, dialect, as_json)
        return
    if program is not None:
        fail("--program applies to ELF objects only", EXIT_USAGE, as_json)
    insns = read_program(file, fmt)
    if not insns:
        raise DecodeError(f"{file}: empty program (no instructions)")
    if as_json:
        entries = [
            {"pc": pc, "text": format_insn(insn, dialect), "hex": insn.encode().hex()}
            for insn, pc in zip(insns, slot_positions(insns), strict=True)
        ]
        emit(
            {
                "insns": entries,
                "count": len(insns),
                "slots": sum(i.slots for i in insns),
                "dialect": dialect,
                "listing": disassemble(insns, dialect),
            }
        )
    else:
        click.echo(disassemble(insns, dialect), nl=False)


COMMANDS = [asm_cmd, disasm_cmd]
