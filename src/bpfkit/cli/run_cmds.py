"""``bpfkit run`` and ``bpfkit conformance-plugin``: execute a program and report r0."""

from __future__ import annotations

import sys

import click

from ..errors import BpfError, NotSupported
from ._common import emit, guarded

ENGINES = ("interp", "jit", "kernel")
#: the most runs one ``--repeat`` asks for (each run is bounded by the budget; the
#: product must stay a wait, not a hang)
MAX_REPEAT = 1_000_000


def _read_input(mem_hex: str | None, mem_file: str | None) -> bytes:
    from ..isa.loader import MAX_INPUT_FILE, parse_hex, read_limited

    if mem_hex is not None and mem_file is not None:
        raise click.UsageError(
            "give at most one of --mem-hex/--data-hex and --mem-file/--data-file"
        )
    if mem_hex is not None:
        return parse_hex(mem_hex)
    if mem_file is not None:
        return read_limited(mem_file, MAX_INPUT_FILE, "input file")
    return b""


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _format_step(step) -> str:
    regs = " ".join(f"{k}={v:#x}" for k, v in step.changed.items())
    return f"{step.pc:5d}: {str(step.insn):40s} {regs}".rstrip()


def _run_raw(insns, mem: bytes, engine: str, budget: int, trace: bool, repeat: int):
    """Run a bare program like the conformance vectors (r1 = memory, r2 = length)."""
    if engine == "interp":
        from ..vm.interp import run_program

        result = run_program(insns, mem, budget=budget, trace=trace)
        total = result.duration_ns
        for _ in range(repeat - 1):
            total += run_program(insns, mem, budget=budget).duration_ns
        result.duration_ns = total // repeat
        return result
    if engine == "jit":
        try:
            from ..jit import run_program as jit_run
        except ImportError:
            raise NotSupported("the JIT engine is not available in this build") from None
        if trace:
            raise click.UsageError("--trace needs --engine interp")
        return jit_run(insns, mem, budget=budget, repeat=repeat)
    raise NotSupported(f"engine {engine!r} cannot run a bare program; load an ELF object")


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--program", "program", help="Program name (ELF objects).")
@click.option("--type", "prog_type", help="Program type (socket_filter, xdp, ...).")
@click.option("--format", "fmt", type=click.Choice(["asm", "raw", "elf"]), help="Input format.")
@click.option(
    "--dialect",
    type=click.Choice(["auto", "conformance", "llvm"]),
    default="auto",
    show_default=True,
    help="Assembler dialect of an asm input.",
)
@click.option("--mem-hex", "--data-hex", "mem_hex", help="Input memory/packet as hex.")
@click.option(
    "--mem-file",
    "--data-file",
    "mem_file",
    type=click.Path(dir_okay=False),
    help="Input memory/packet from a file.",
)
@click.option("--ctx-file", type=click.Path(dir_okay=False), help="Context bytes from a file.")
@click.option("--engine", type=click.Choice(ENGINES), default="interp", show_default=True)
@click.option(
    "--repeat",
    type=click.IntRange(min=1, max=MAX_REPEAT),
    default=1,
    show_default=True,
    help=f"Runs (at most {MAX_REPEAT:,}); the duration is their mean.",
)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Instruction budget of the interpreter.",
)
@click.option(
    "--trace", is_flag=True, help="Print every executed instruction and the registers it changed."
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Load an ELF program without running the verifier (experiments; the VM still "
    "confines every memory access).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--classic", is_flag=True, help="A classic BPF program (listing, -dd, -ddd or raw).")
@guarded()
def run_cmd(
    file,
    program,
    prog_type,
    fmt,
    dialect,
    mem_hex,
    mem_file,
    ctx_file,
    engine,
    repeat,
    budget,
    trace,
    no_verify,
    as_json,
    classic,
) -> None:
    """Run a program and print r0 (bare programs: r1 = memory, r2 = its length)."""
    from ..isa.loader import read_program

    mem = _read_input(mem_hex, mem_file)
    if classic:
        from . import _classic

        if ctx_file:
            raise click.UsageError("--ctx-file applies to ELF objects, not to --classic")
        return _classic.run(file, fmt, mem, engine, repeat, as_json)
    if fmt == "elf" or (fmt is None and _is_elf(file)):
        from . import _objrun

        out = _objrun.run_object(
            file,
            program=program,
            prog_type=prog_type,
            data=mem,
            ctx_file=ctx_file,
            engine=engine,
            repeat=repeat,
            trace=trace,
            verify=not no_verify,
        )
        _print_object_run(out, as_json)
        return
    if prog_type or ctx_file:
        raise NotSupported(
            f"{'--type' if prog_type else '--ctx-file'} applies to ELF objects and typed runs; "
            "bare programs run with r1 = memory, r2 = its length"
        )
    insns = read_program(file, fmt, dialect)
    result = _run_raw(insns, mem, engine, budget, trace, repeat)
    if as_json:
        out = {
            "r0": result.r0,
            "retval": result.r0 & 0xFFFFFFFF,
            "insns": result.insns,
            "data_out": result.mem.hex(),
            "duration_ns": result.duration_ns,
            "engine": engine,
        }
        if trace:
            out["trace"] = [
                {"pc": s.pc, "insn": str(s.insn), "changed": s.changed} for s in result.trace
            ]
        emit(out)
        return
    if trace:
        for step in result.trace:
            click.echo(_format_step(step))
    click.echo(f"r0 = {result.r0:#x} ({result.r0})")
    click.echo(f"{result.insns} instructions in {result.duration_ns / 1000:.1f} us ({engine})")


def _print_object_run(out: dict, as_json: bool) -> None:
    if as_json:
        emit(out)
        return
    for line in out.get("trace_printk", []):
        click.echo(f"trace_printk: {line}")
    click.echo(f"retval = {out['retval']:#x} ({out['retval']})")
    if out.get("data_out"):
        click.echo(f"data_out = {out['data_out']}")
    click.echo(f"duration = {out['duration_ns']} ns per run ({out.get('engine')})")
    for name, changes in out.get("maps_changed", {}).items():
        click.echo(f"map {name}: {changes}")


@click.command("conformance-plugin")
@click.argument("mem", required=False, default="")
@click.option("--engine", type=click.Choice(["interp", "jit"]), default="interp", show_default=True)
@click.option("--budget", type=click.IntRange(min=1), default=1_000_000)
@click.option("--json", "as_json", is_flag=True, help='Print {"r0": ...} instead of bare hex.')
@click.argument("extra", nargs=-1)
def conformance_plugin_cmd(
    mem: str, engine: str, budget: int, as_json: bool, extra: tuple[str, ...]
) -> None:
    """Plugin for the bpf_conformance runner: program hex on stdin, MEM as hex; prints r0 in hex."""
    from ..isa.instruction import decode
    from ..isa.loader import parse_hex

    try:
        program = decode(parse_hex(sys.stdin.read()))
        memory = parse_hex(mem) if mem else b""
        result = _run_raw(program, memory, engine, budget, False, 1)
    except (BpfError, click.UsageError) as e:
        if as_json:
            emit({"error": str(e)})
        click.echo(str(e), err=True)
        sys.exit(1)
    if as_json:
        emit({"r0": result.r0, "insns": result.insns})
    else:
        click.echo(f"{result.r0:x}")


COMMANDS = [run_cmd, conformance_plugin_cmd]
