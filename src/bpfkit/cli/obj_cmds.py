"""``bpfkit build`` (C → BPF object with clang) and ``bpfkit inspect`` (what an object holds)."""

from __future__ import annotations

from typing import Any

import click

from ..obj.build import BuildError, compile_c
from ..obj.loader import load_object
from ..obj.spec import ObjectSpec
from ._common import EXIT_USAGE, emit, fail, guarded, unwritable

__all__ = ["COMMANDS", "build_cmd", "inspect_cmd", "inspect_json"]


@click.command("build")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    help="Object file to write (default: SRC with a .o suffix).",
)
@click.option("-I", "includes", multiple=True, metavar="DIR", help="Add an include directory.")
@click.option("-D", "defines", multiple=True, metavar="NAME[=VALUE]", help="Define a macro.")
@click.option("--mcpu", default=None, help="BPF ISA version for clang: v1, v2, v3, v4, probe.")
@click.option(
    "--clang",
    "clang",
    default=None,
    help="Compiler to use (default: clang-19, else the newest clang-N, else clang).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def build_cmd(
    src: str,
    output: str | None,
    includes: tuple[str, ...],
    defines: tuple[str, ...],
    mcpu: str | None,
    clang: str | None,
    as_json: bool,
) -> None:
    """Compile SRC.c with clang -O2 -g -target bpf and the libbpf headers."""
    problem = unwritable(output)
    if problem:  # one line of ours, not clang's diagnostics about a file it cannot open
        fail(f"cannot write {output}: {problem}", EXIT_USAGE, as_json)
    try:
        res = compile_c(src, output, includes=includes, defines=defines, mcpu=mcpu, clang=clang)
    except BuildError as e:
        if e.output and not as_json:
            click.echo(e.output.rstrip(), err=True)
        fail(str(e), EXIT_USAGE, as_json, output=e.output, command=e.command)
        return
    spec = load_object(res.object)
    if as_json:
        emit(
            {
                "object": str(res.object),
                "compiler": res.compiler,
                "command": res.command,
                "programs": list(spec.programs),
                "maps": list(spec.maps),
            }
        )
    else:
        if res.diagnostics:
            click.echo(res.diagnostics.rstrip(), err=True)
        click.echo(f"{res.object}: {len(spec.programs)} program(s), {len(spec.maps)} map(s)")


def inspect_json(spec: ObjectSpec) -> dict[str, Any]:
    """The ``inspect --json`` document for an object spec."""
    btf: dict[str, Any] | None = None
    if spec.btf is not None:
        btf = {
            "types": len(spec.btf.types) - 1,
            "strings": len(spec.btf.strings),
            "kinds": spec.btf.kinds_summary(),
        }
        if spec.btf_ext is not None:
            btf["func_info"] = sum(len(v) for v in spec.btf_ext.func_info.values())
            btf["line_info"] = sum(len(v) for v in spec.btf_ext.line_info.values())
            btf["core_relos"] = sum(len(v) for v in spec.btf_ext.core_relos.values())
    doc = spec.to_json()
    doc["subprograms"] = spec.subprograms
    doc["btf"] = btf
    return doc


def _print_tables(spec: ObjectSpec, path: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 200)  # pipes and files: do not fold the tables
    title = f"{path}" + (f" — license {spec.license!r}" if spec.license else "")
    pt = Table(title=f"Programs in {title}", title_justify="left")
    for col in ("name", "section", "type", "attach", "target", "insns", "slots", "license"):
        pt.add_column(col, justify="right" if col in ("insns", "slots") else "left")
    for p in spec.programs.values():
        j = p.to_json()
        pt.add_row(
            p.name,
            p.section,
            j["type"],
            j["attach_type"] or "-",
            p.attach_target or "-",
            str(len(p.instructions)),
            str(j["slots"]),
            p.license or "-",
        )
    console.print(pt)
    if spec.maps:
        mt = Table(title="Maps", title_justify="left")
        for col in ("name", "type", "key", "value", "max entries", "flags", "notes"):
            mt.add_column(col, justify="right" if col in ("max entries", "flags") else "left")
        for m in spec.maps.values():
            key = f"{m.key_type} ({m.key_size})" if m.key_type else str(m.key_size)
            val = f"{m.value_type} ({m.value_size})" if m.value_type else str(m.value_size)
            notes = [m.kind]
            if m.pinning == 1:
                notes.append("pinned")
            elif m.pinning:
                notes.append(f"pinning {int(m.pinning)} (not libbpf's)")
            if m.frozen:
                notes.append("frozen")
            if m.inner_map is not None:
                notes.append(f"inner {m.inner_map.type_name.lower()}")
            if m.values:
                notes.append("values " + ", ".join(f"{k}={v}" for k, v in sorted(m.values.items())))
            mt.add_row(
                m.name,
                m.type_name.lower(),
                key,
                val,
                str(m.max_entries),
                f"{m.flags:#x}",
                "; ".join(notes),
            )
        console.print(mt)
    if spec.variables:
        vt = Table(title="Global variables", title_justify="left")
        for col in ("name", "section", "offset", "size", "type"):
            vt.add_column(col, justify="right" if col in ("offset", "size") else "left")
        for v in spec.variables.values():
            vt.add_row(v.name, v.map, str(v.offset), str(v.size), v.type_name or "-")
        console.print(vt)
    if spec.externs:
        et = Table(title="Externs", title_justify="left")
        for col in ("name", "kind", "type", "weak"):
            et.add_column(col)
        for e in spec.externs.values():
            et.add_row(e.name, e.kind, e.type_name or "-", "yes" if e.weak else "no")
        console.print(et)
    if spec.btf is not None:
        kinds = ", ".join(f"{k.lower()} {n}" for k, n in spec.btf.kinds_summary().items())
        extra = ""
        if spec.btf_ext is not None:
            n_li = sum(len(v) for v in spec.btf_ext.line_info.values())
            n_co = sum(len(v) for v in spec.btf_ext.core_relos.values())
            extra = f"; {n_li} line info records, {n_co} CO-RE relocations"
        console.print(f"BTF: {len(spec.btf.types) - 1} types ({kinds}){extra}")
    else:
        console.print("BTF: none")


@click.command("inspect")
@click.argument("obj", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def inspect_cmd(obj: str, as_json: bool) -> None:
    """Show an object's programs, maps, global variables, externs and BTF summary."""
    spec = load_object(obj)
    if as_json:
        emit(inspect_json(spec))
    else:
        _print_tables(spec, obj)


@click.command("usdt")
@click.argument("binary", type=click.Path(dir_okay=False, exists=True))
@click.option("--provider", default=None, help="Only probes of this provider.")
@click.option("--name", default=None, help="Only probes of this name.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def usdt_cmd(binary: str, provider: str | None, name: str | None, as_json: bool) -> None:
    """List the USDT probes (.note.stapsdt) of a binary: sites, semaphores, arguments."""
    from ..obj.usdt import read_usdt

    probes = [
        p
        for p in read_usdt(binary)
        if (provider is None or p.provider == provider) and (name is None or p.name == name)
    ]
    if as_json:
        emit({"binary": binary, "probes": [p.to_json() for p in probes]})
        return
    for p in probes:
        sema = f" semaphore {p.semaphore:#x}" if p.semaphore else ""
        click.echo(f"usdt:{binary}:{p.provider}:{p.name} at {p.address:#x}{sema} {p.arg_text}")


COMMANDS = [build_cmd, inspect_cmd, usdt_cmd]
