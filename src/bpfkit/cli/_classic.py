"""``--classic`` for ``bpfkit asm|disasm|run|verify``: classic (``sock_filter``) programs.

Input is a ``tcpdump -d`` listing, a ``-dd`` C array, a ``-ddd`` decimal program or raw
``sock_filter`` bytes (8 per instruction, native order), guessed from the file unless
``--format raw`` says so. ``asm`` writes raw bytes, ``disasm`` prints the listing,
``run`` interprets with the kernel's semantics, ``verify`` applies the kernel's checker.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import ClassicError
from ._common import EXIT_FAIL, emit, write_output


def _load(file: str, fmt: str | None) -> list[Any]:
    from ..classic import insn
    from ..classic.listing import load_program

    if fmt == "raw":
        with open(file, "rb") as f:
            return insn.decode(f.read())
    if fmt == "elf":
        raise click.UsageError("--classic takes a listing, -dd/-ddd text or raw sock_filter bytes")
    return load_program(file)


def asm(file: str, output: str | None, as_json: bool) -> None:
    """Listing (or -dd/-ddd) in, raw ``sock_filter`` bytes out (hex on stdout without -o)."""
    from ..classic import insn

    prog = _load(file, None)
    code = insn.encode(prog)
    if output is not None:
        write_output(output, code)
    if as_json:
        emit(
            {
                "insns": len(prog),
                "bytes": code.hex(),
                "output": output,
                "program": insn.as_tuples(prog),
            }
        )
    elif output is None:
        click.echo(
            "".join(code[i : i + 8].hex(" ") + "\n" for i in range(0, len(code), 8)), nl=False
        )


def disasm(file: str, fmt: str | None, as_json: bool) -> None:
    """Any classic form in, the ``tcpdump -d`` listing out."""
    from ..classic import insn
    from ..classic.listing import format_listing

    prog = _load(file, fmt)
    text = format_listing(prog)
    if as_json:
        emit({"count": len(prog), "insns": insn.as_tuples(prog), "listing": text})
    else:
        click.echo(text, nl=False)


def run(file: str, fmt: str | None, data: bytes, engine: str, repeat: int, as_json: bool) -> None:
    """Interpret on ``data`` (the packet from its first byte, no metadata)."""
    import time

    from ..classic.interp import compile_classic
    from ..errors import NotSupported

    if engine != "interp":
        raise NotSupported(
            "classic programs run on --engine interp; their eBPF translation "
            "(bpfkit.classic.to_ebpf) runs on the other engines"
        )
    prog = _load(file, fmt)
    cp = compile_classic(prog)
    t0 = time.perf_counter_ns()
    for _ in range(repeat):
        r = cp.run(data)
    dt = (time.perf_counter_ns() - t0) // repeat
    if as_json:
        emit(
            {
                "retval": r.ret,
                "insns": r.insns,
                "a": r.a,
                "x": r.x,
                "duration_ns": dt,
                "engine": "interp",
                "classic": True,
            }
        )
    else:
        click.echo(f"ret = {r.ret:#x} ({r.ret})")
        click.echo(f"{r.insns} instructions, A = {r.a:#x}, X = {r.x:#x}, {dt} ns per run")


def verify(file: str, fmt: str | None, seccomp: bool, as_json: bool) -> None:
    """The kernel's classic checker (``--seccomp``: seccomp's rules too); exit 1 on refusal."""
    from ..classic.check import check

    prog = _load(file, fmt)
    mode = "seccomp" if seccomp else "socket"
    try:
        check(prog, mode=mode)
        out = {
            "ok": True,
            "insn": None,
            "rule": None,
            "reason": "",
            "mode": mode,
            "insns": len(prog),
        }
    except ClassicError as e:
        out = {
            "ok": False,
            "insn": e.insn,
            "rule": e.rule,
            "reason": e.reason,
            "mode": mode,
            "insns": len(prog),
        }
    if as_json:
        emit(out)
    elif out["ok"]:
        click.echo(f"accepted: {len(prog)} instructions ({mode} rules)")
    else:
        where = f"instruction {out['insn']}" if out["insn"] is not None else "the program"
        click.echo(f"rejected at {where}: {out['reason']}", err=True)
    if not out["ok"]:
        raise SystemExit(EXIT_FAIL)
