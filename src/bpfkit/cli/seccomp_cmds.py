"""``bpfkit seccomp compile|check|run|trace``: seccomp profiles as classic BPF.

Exit codes: 0 success; 1 the command failed (``run``: the confined command's own status
is passed through instead); 2 bad input — a malformed profile, an unknown syscall,
action or operator, an argument index above 5 — with one line naming the field.
Nothing is installed before the profile has compiled.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..errors import BpfError, ProfileError
from ._common import EXIT_USAGE, CliGroup, emit, fail, guarded, unwritable, write_output

_PROFILE_HELP = "A profile JSON file (OCI/Docker format), or docker-default."


def _profile_options(fn):
    fn = click.option(
        "--target",
        "target",
        help="Architecture the filter is for (default: this machine's).",
    )(fn)
    fn = click.option(
        "--cap",
        "caps",
        multiple=True,
        help="Capability for Docker includes/excludes (repeatable; default: Docker's default set).",
    )(fn)
    fn = click.option("--kernel", help="Kernel version for Docker minKernel (default: running).")(
        fn
    )
    return fn


def _compile(profile: str, target: str | None, caps: tuple[str, ...], kernel: str | None):
    from ..seccomp import compile_profile, load_profile

    prof = load_profile(profile, arch=target, caps=list(caps) if caps else None, kernel=kernel)
    return compile_profile(prof, target)


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ProfileError(f"{what}: {text!r} is not an integer") from None


def _option_arity(cmd: click.Command, token: str) -> int | None:
    """How many following tokens ``token`` (an option word) consumes: 0 or 1; ``None`` when
    ``cmd`` has no such option. A value attached (``--pid=5``, ``-ofile``) counts 0."""
    name, eq, _ = token.partition("=")
    for p in cmd.get_params(click.Context(cmd)):
        if not isinstance(p, click.Option):
            continue
        for opt in (*p.opts, *p.secondary_opts):
            if name == opt:
                return 0 if (p.is_flag or p.count or eq) else 1
            if not token.startswith("--") and len(opt) == 2 and token.startswith(opt):
                return 0  # -ofile
    return None


class CommandTail(click.Command):
    """A command whose last argument is a command line to run (``COMMAND [ARG ...]``).

    As with strace, unshare or timeout, the options before the command are ours, and an
    unknown one is a usage error; the command starts after ``--`` or at the first word past
    our :attr:`leading` positional arguments, and everything from there on is passed to it
    untouched (``seccomp trace -- ls -x`` and ``seccomp trace ls -x`` both give ``-x`` to ls).
    """

    #: positional arguments of ours before the command (``run``: PROFILE)
    leading = 0

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        head: list[str] = []
        tail: list[str] = []
        seen = 0
        i = 0
        while i < len(args):
            tok = args[i]
            if tok == "--":
                tail = args[i + 1 :]
                break
            if tok.startswith("-") and tok != "-":
                arity = _option_arity(self, tok)
                head.append(tok)
                if arity:  # the option's value is the next word, whatever it looks like
                    head += args[i + 1 : i + 2]
                    i += 1
                i += 1
                continue  # an unknown option stays here: click reports it
            if seen < self.leading:
                head.append(tok)
                seen += 1
                i += 1
                continue
            tail = args[i:]
            break
        return super().parse_args(ctx, [*head, "--", *tail] if tail else head)


class RunCommand(CommandTail):
    """``seccomp run PROFILE [OPTIONS] [--] COMMAND ...``."""

    leading = 1


class NumericArgs(click.Command):
    """A command whose positional arguments may be negative numbers (``-1``, ``-0x10``),
    while a word like ``--bogus`` is still an unknown option (a usage error)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for tok in args:
            if tok == "--":
                break
            if tok.startswith("-") and tok != "-" and _option_arity(self, tok) is None:
                try:
                    int(tok, 0)
                except ValueError:
                    raise click.NoSuchOption(tok.partition("=")[0], ctx=ctx) from None
        return super().parse_args(ctx, args)


def _runnable(command: list[str], what: str = "cannot run") -> None:
    """Refuse up front a command that cannot be executed (not found, a directory, not
    executable): bad input, exit 2, before anything is compiled, traced or installed."""
    name = command[0]
    if shutil.which(name) is not None:
        return
    if "/" in name:
        if os.path.isdir(name):
            reason = "Is a directory"
        elif os.path.exists(name):
            reason = "Permission denied"
        else:
            reason = "No such file or directory"
    else:
        reason = "command not found"
    err = click.ClickException(f"{what} {name}: {reason}")
    err.exit_code = EXIT_USAGE
    raise err


@contextmanager
def _command_output_to_stderr(on: bool) -> Iterator[None]:
    """With ``--json``, a command run meanwhile writes its output to stderr, so that stdout
    holds only the one JSON object (the child inherits file descriptor 1)."""
    if not on:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@click.group("seccomp", cls=CliGroup)
def seccomp_group() -> None:
    """seccomp filters: compile OCI/Docker profiles, check decisions, run confined, trace."""


@seccomp_group.command("compile")
@click.argument("profile")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the program here.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["raw", "listing", "json"]),
    default="listing",
    show_default=True,
    help="raw: the sock_filter array (as libseccomp's export_bpf writes it).",
)
@_profile_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def compile_cmd(profile, output, fmt, target, caps, kernel, as_json) -> None:
    """Compile PROFILE to a classic BPF program."""
    from ..classic.insn import as_tuples
    from ..seccomp import actions as act
    from ..seccomp.listing import format_program

    flt = _compile(profile, target, caps, kernel)
    info: dict[str, Any] = {
        "arches": [a.name for a in flt.arches],
        "default_action": act.describe(flt.default_action),
        "insns": len(flt.program),
        "format": fmt,
    }
    if flt.warnings:
        info["warnings"] = flt.warnings
    if fmt == "raw":
        data: bytes | str = flt.raw()
    elif fmt == "listing":
        data = format_program(flt.program) + "\n"
    else:
        data = json.dumps({**info, "program": as_tuples(flt.program)}) + "\n"
    if output:
        write_output(output, data)
        info["output"] = output
    if as_json:
        if not output:
            if fmt == "raw":
                info["raw"] = flt.raw().hex()
            elif fmt == "listing":
                info["listing"] = format_program(flt.program).splitlines()
            else:
                info["program"] = as_tuples(flt.program)
        emit(info)
        return
    if output:
        click.echo(f"{len(flt.program)} instructions -> {output}", err=True)
        return
    if isinstance(data, bytes):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        click.echo(data, nl=False)
    for w in flt.warnings:
        click.echo(f"bpfkit: warning: {w}", err=True)


def _batch_cases(path: str) -> list[tuple[str | int, list[int], str | int | None]]:
    from ..isa.loader import MAX_INPUT_FILE, read_limited

    cases = []
    if path == "-":
        data = sys.stdin.buffer.read(MAX_INPUT_FILE + 1)
        if len(data) > MAX_INPUT_FILE:
            raise ProfileError(f"stdin holds more than {MAX_INPUT_FILE} bytes (the limit)")
    else:
        try:
            data = read_limited(path, MAX_INPUT_FILE, "batch file")
        except BpfError as e:
            raise ProfileError(str(e)) from None
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ProfileError(f"{path}:{line}: not UTF-8 text (expected JSON Lines)") from None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ProfileError(f"{where}: malformed JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise ProfileError(f"{where}: expected an object with nr or syscall")
        if "nr" in obj:
            sc = obj["nr"]
            if isinstance(sc, bool) or not isinstance(sc, int):
                raise ProfileError(f"{where}: nr: expected an integer")
        elif "syscall" in obj:
            sc = obj["syscall"]
            if not isinstance(sc, str):
                raise ProfileError(f"{where}: syscall: expected a name")
        else:
            raise ProfileError(f"{where}: give nr or syscall")
        args = obj.get("args", [])
        if not isinstance(args, list) or len(args) > 6:
            raise ProfileError(f"{where}: args: expected a list of at most 6 integers")
        for i, a in enumerate(args):
            if isinstance(a, bool) or not isinstance(a, int):
                raise ProfileError(f"{where}: args[{i}]: expected an integer")
        arch = obj.get("arch")
        if arch is not None and (isinstance(arch, bool) or not isinstance(arch, (int, str))):
            raise ProfileError(f"{where}: arch: expected an AUDIT_ARCH number or a name")
        cases.append((sc, args, arch, where))
    return cases


@seccomp_group.command("check", cls=NumericArgs, context_settings={"ignore_unknown_options": True})
@click.argument("profile")
@click.argument("syscall", required=False)
@click.argument("args", nargs=-1)
@click.option(
    "--arch", help="ABI of the call: a name or an AUDIT_ARCH number (default: the filter's)."
)
@click.option(
    "--batch", type=click.Path(dir_okay=False, allow_dash=True), help="JSON Lines of cases."
)
@_profile_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def check_cmd(profile, syscall, args, arch, batch, target, caps, kernel, as_json) -> None:
    """Decide SYSCALL [ARG ...] with PROFILE's compiled program (nothing is installed)."""
    from ..seccomp import actions as act

    if batch is None and syscall is None:
        raise click.UsageError("give SYSCALL or --batch FILE")
    if batch is not None and syscall is not None:
        raise click.UsageError("give either SYSCALL or --batch, not both")
    if len(args) > 6:
        raise ProfileError(f"args: {len(args)} arguments given, a syscall has at most 6")
    flt = _compile(profile, target, caps, kernel)
    arch_key: str | int | None = None
    if arch is not None:
        try:
            arch_key = int(arch, 0)
        except ValueError:
            arch_key = arch
    if batch is not None:
        results = []
        for sc, cargs, carch, where in _batch_cases(batch):
            try:
                results.append(
                    flt.check(sc, cargs, carch if carch is not None else arch_key).to_json()
                )
            except ProfileError as e:
                raise ProfileError(f"{where}: {e}") from None
        if as_json:
            emit({"results": results})
        else:
            for r in results:
                click.echo(f"{act.spell(r['ret']).lower():<16} ret={r['ret']:#010x}")
        return
    values = [_int(a, f"args[{i}]") for i, a in enumerate(args)]
    d = flt.check(syscall, values, arch_key)
    if as_json:
        emit(d.to_json())
    else:
        click.echo(f"{act.spell(d.ret).lower():<16} ret={d.ret:#010x}")


@seccomp_group.command("run", cls=RunCommand)
@click.argument("profile")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--cap", "caps", multiple=True, help="Capability for Docker includes/excludes.")
@click.option("--kernel", help="Kernel version for Docker minKernel (default: running).")
@click.option(
    "--log", "log", is_flag=True, help="SECCOMP_FILTER_FLAG_LOG: log every non-allow action."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="After the command ends, print one JSON object (the command's output goes to stderr).",
)
def run_cmd(profile, command, caps, kernel, log, as_json) -> None:
    """Run COMMAND confined by PROFILE: bpfkit seccomp run PROFILE -- CMD [ARG ...].

    Options go before the command; everything after ``--`` (or from the command's first
    word on) is the command's. The exit status is the command's (128 + N when signal N
    ended it).
    """
    from ..seccomp.install import SECCOMP_FILTER_FLAG_LOG, run

    command = list(command)
    if not command:
        fail("no command given (bpfkit seccomp run PROFILE -- CMD [ARG ...])", EXIT_USAGE, as_json)
    try:
        flt = _compile(profile, None, caps, kernel)
    except BpfError as e:
        fail(str(e), EXIT_USAGE, as_json)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        fail(f"{profile}: {type(e).__name__}: {e}", EXIT_USAGE, as_json)
    _runnable(command)
    try:
        with _command_output_to_stderr(as_json):
            res = run(flt, command, flags=SECCOMP_FILTER_FLAG_LOG if log else 0)
    except (BpfError, OSError) as e:
        fail(str(e), 1, as_json)
    if res.error is not None:  # it never ran: not found (2) or could not be confined (1)
        fail(res.error, EXIT_USAGE if res.not_run else 1, as_json)
    if as_json:
        emit(res.to_json())
    sys.exit(res.status)


@seccomp_group.command("trace", cls=CommandTail)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the profile here.")
@click.option("--pid", type=int, help="Trace this running process (and its new children) instead.")
@click.option(
    "--duration",
    type=float,
    help="With --pid: stop after this many seconds (default: until it exits or Ctrl-C).",
)
@click.option(
    "--default-action",
    default="errno",
    show_default=True,
    help="The profile's defaultAction (errno returns EPERM; kill_process, trap, log ...).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object (the command's output goes to stderr).",
)
def trace_cmd(command, output, pid, duration, default_action, as_json) -> None:
    """Write a minimal allow-list profile from the system calls a command makes.

    bpfkit seccomp trace -o prof.json -- CMD [ARG ...]; or --pid PID. Options go before
    the command; everything after ``--`` (or from the command's first word on) is the
    command's.
    """
    from ..seccomp import actions as act
    from ..seccomp.trace import trace_command, trace_pid

    command = list(command)
    if (pid is None) == (not command):
        fail("give a command after -- or --pid PID (one of them)", EXIT_USAGE, as_json)
    try:
        default = act.action_value(default_action, field="--default-action")
        if default == act.RET_ALLOW:
            raise ProfileError("--default-action: allow would make the profile allow everything")
        if output:
            problem = unwritable(output)
            if problem:
                raise ProfileError(f"cannot write {output}: {problem}")
        if command:
            _runnable(command)
        if pid is not None:
            result = trace_pid(pid, duration=duration)
        else:
            with _command_output_to_stderr(as_json):
                result = trace_command(command)
    except ProfileError as e:
        fail(str(e), EXIT_USAGE, as_json)
    except BpfError as e:
        fail(str(e), 1, as_json)
    except OSError as e:
        fail(f"{type(e).__name__}: {e}", 1, as_json)
    if result.run is not None and result.run.error is not None:
        fail(result.run.error, EXIT_USAGE if result.run.not_run else 1, as_json)
    profile = result.profile(default)
    text = json.dumps(profile.to_json(), indent=2) + "\n"
    if output:
        try:
            write_output(output, text)
        except ProfileError as e:
            fail(str(e), EXIT_USAGE, as_json)
    info = result.to_json()
    info["output"] = output
    if as_json:
        if not output:
            info["profile"] = profile.to_json()
        emit(info)
    else:
        if not output:
            click.echo(text, nl=False)
        names = sum(len(v) for v in result.names.values())
        click.echo(
            f"bpfkit: {names} system calls seen"
            + (f", profile written to {output}" if output else "")
            + (f"; the command exited with {result.run.status}" if result.run else ""),
            err=True,
        )
    sys.exit(0)


COMMANDS = [seccomp_group]
