"""``bpfkit verify``: run the verifier on an object, assembler text or raw bytecode."""

from __future__ import annotations

import click

from ..errors import BpfError, DecodeError, VerifierError
from ._common import EXIT_FAIL, emit, guarded


def _run(
    file: str,
    program: str | None,
    prog_type: str | None,
    fmt: str | None,
    dialect: str,
    unpriv: bool,
    log_level: int,
    sleepable: bool = False,
    attach_type: str | None = None,
):
    from ..isa.loader import guess_format, read_bytes, read_program
    from ..verifier import verify, verify_spec

    data = read_bytes(file)
    kind = fmt or guess_format(data)
    common: dict = dict(unpriv=unpriv, log_level=log_level, raise_on_error=False)
    if sleepable:
        common["prog_flags"] = 1 << 4  # BPF_F_SLEEPABLE
    if attach_type is not None:
        common["attach_type"] = _attach_type(attach_type)
    if kind == "elf":
        from ..obj.loader import load_object

        obj = load_object(data)
        try:
            obj.program(program)
        except KeyError as e:
            raise BpfError(str(e.args[0])) from None
        if prog_type:
            common["prog_type"] = prog_type
        return verify_spec(obj, program, **common)
    if program:
        raise click.UsageError("--program applies to ELF objects")
    insns = read_program(file, kind, dialect)
    if not insns:  # no program to judge: bad input (as bpf(BPF_PROG_LOAD) refuses insn_cnt 0)
        raise DecodeError(f"{file}: empty program")
    return verify(insns, prog_type=prog_type or "socket_filter", **common)


def _attach_type(text: str) -> int:
    """An attach type by number or by name (``bpf_attach_type`` without ``BPF_``)."""
    from ..uapi.attach import AttachType, NewAttachType

    try:
        return int(text, 0)
    except ValueError:
        pass
    key = text.strip().upper().removeprefix("BPF_")
    for enum in (AttachType, NewAttachType):
        if key in enum.__members__:
            return int(enum[key])
    raise click.BadParameter(f"unknown attach type {text!r}", param_hint="--attach-type")


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--program", help="Program name or section (ELF objects).")
@click.option("--type", "prog_type", help="Program type (socket_filter, xdp, sched_cls, ...).")
@click.option("--format", "fmt", type=click.Choice(["asm", "raw", "elf"]), help="Input format.")
@click.option(
    "--dialect",
    type=click.Choice(["auto", "conformance", "llvm"]),
    default="auto",
    show_default=True,
    help="Assembler dialect of an asm input.",
)
@click.option("--unpriv", is_flag=True, help="Verify as an unprivileged loader would be.")
@click.option("--sleepable", is_flag=True, help="Load flag BPF_F_SLEEPABLE (raw/asm input).")
@click.option(
    "--attach-type", help="Expected attach type: a number or a name (cgroup_inet4_connect ...)."
)
@click.option(
    "--log-level",
    type=click.IntRange(0, 2),
    default=0,
    show_default=True,
    help="1: instructions and branch states; 2: the state after every instruction.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--classic", is_flag=True, help="A classic BPF program (listing, -dd, -ddd or raw).")
@click.option("--seccomp", is_flag=True, help="With --classic: seccomp's rules as well.")
@guarded()
def verify_cmd(
    file,
    program,
    prog_type,
    fmt,
    dialect,
    unpriv,
    sleepable,
    attach_type,
    log_level,
    as_json,
    classic,
    seccomp,
) -> None:
    """Prove a program safe (exit 0) or explain why it is rejected (exit 1)."""
    if classic or seccomp:
        from . import _classic

        return _classic.verify(file, fmt, seccomp, as_json)
    try:
        res = _run(
            file, program, prog_type, fmt, dialect, unpriv, log_level, sleepable, attach_type
        )
    except VerifierError as e:
        if e.insn is None and "unknown program type" in str(e):
            raise BpfError(str(e)) from None
        raise
    out = res.to_json()
    if log_level:
        out["log"] = res.log
    if as_json:
        emit(out)
    else:
        if log_level:
            click.echo(res.log, nl=False)
        if res.ok:
            s = res.stats
            click.echo(
                f"accepted: {s.insns_processed} instructions processed, "
                f"{s.total_states} states (peak {s.peak_states}), stack depth "
                f"{'+'.join(str(d) for d in s.stack_depth)}"
            )
        else:
            e = res.error
            click.echo(f"rejected at instruction {e.insn}: {e.disasm}", err=True)
            if e.line:
                click.echo(
                    f"  source: {e.line.get('file')}:{e.line.get('line')}: "
                    f"{(e.line.get('source') or '').strip()}",
                    err=True,
                )
            click.echo(f"  reason: {e.reason}", err=True)
            click.echo(f"  kernel: {e.kernel_message}", err=True)
            if e.state:
                click.echo(f"  state: {e.state}", err=True)
    if not res.ok:
        raise SystemExit(EXIT_FAIL)


COMMANDS = [verify_cmd]
