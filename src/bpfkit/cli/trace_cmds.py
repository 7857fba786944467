"""``bpfkit trace``: run bpftrace scripts (bpftrace's flags and output formats).

Imports of the compiler and the kernel backend happen inside the command, so ``bpfkit
--help`` and other subcommands do not pay for them.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ._common import EXIT_FAIL, EXIT_USAGE, fail, unwritable


def _error(e: Exception, as_json: bool, code: int) -> None:
    from ..errors import SourceError

    if as_json:
        import json

        d: dict[str, Any] = {"error": getattr(e, "msg", str(e))}
        if isinstance(e, SourceError):
            d.update(line=e.line, column=e.column)
        click.echo(json.dumps(d))
    else:
        if isinstance(e, SourceError):
            where = e.origin or "stdin"
            if e.line is not None:
                where += f":{e.line}" + (f":{e.column}" if e.column else "")
            click.echo(f"{where}: ERROR: {e.msg}", err=True)
            caret = e.caret()
            if caret:
                click.echo(caret, err=True)
        else:
            fail(str(e), code)
    sys.exit(code)


def _quiet_exit(code: int) -> None:
    """Exit without writing to a closed stdout again (Python flushes it at exit)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(code)


@click.command(
    "trace",
    context_settings={"ignore_unknown_options": False, "allow_interspersed_args": True},
)
@click.argument("args", nargs=-1)
@click.option("-e", "program", metavar="PROGRAM", help="Program text (instead of a file).")
@click.option("-c", "command", metavar="CMD", help="Run CMD; trace until it exits (cpid).")
@click.option(
    "-p", "pid", type=int, help="Trace process PID: uprobes/usdt only in it; stop when it ends."
)
@click.option("-f", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Output format.")  # fmt: skip
@click.option("-o", "output", type=click.Path(dir_okay=False, writable=True),
              help="Write output to a file.")  # fmt: skip
@click.option("-l", "list_", is_flag=True, help="List probes (matching the argument).")
@click.option("-d", "debug", is_flag=True, help="Show the generated BPF instructions.")
@click.option("-v", "verbose", is_flag=True, help="Show the verifier's log.")
@click.option("--unsafe", is_flag=True, help="Allow system() and signal().")
@click.option("--json", "as_json", is_flag=True, help="Same as -f json.")
@click.option("--timeout", type=float, help="Stop after this many seconds (bpfkit extension).")
@click.option("--dry-run", is_flag=True, help="Parse and type-check only (bpfkit extension).")
@click.option(
    "--vm", is_flag=True, help="Run on bpfkit's userspace VM (no root), fired by --replay's events."
)
@click.option(
    "--replay",
    "replay",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="JSON Lines events to fire on the VM (from --record, or written by hand).",
)
@click.option(
    "--record",
    "record",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Record every probe invocation (context, task, memory read) to FILE.",
)
def trace_cmd(
    args: tuple[str, ...],
    program: str | None,
    command: str | None,
    pid: int | None,
    fmt: str,
    output: str | None,
    list_: bool,
    debug: bool,
    verbose: bool,
    unsafe: bool,
    as_json: bool,
    timeout: float | None,
    dry_run: bool,
    vm: bool,
    replay: str | None,
    record: str | None,
) -> None:
    """Run a bpftrace script: ``bpfkit trace FILE.bt [ARGS]`` or ``bpfkit trace -e PROGRAM``.

    Output matches bpftrace 0.17: maps are printed at exit (``exit()``, the ``-c`` command
    ending, or Ctrl-C); ``-f json`` prints bpftrace's JSON records, one a line.
    """
    from ..errors import BpfError, NotSupported, ScriptError

    json_mode = as_json or fmt == "json"
    if list_:
        from ..trace.probes import list_probes

        try:
            if program is not None:  # the probes the program attaches (wildcards expanded)
                from ..trace.runtime import compile_script

                compiled = compile_script(program, None, params=list(args), unsafe=True,
                                          has_cpid=True, pid=pid)  # fmt: skip
                names = list(dict.fromkeys(i.point.name for i in compiled.instances))
                if verbose:
                    from ..trace.probes import with_fields

                    names = with_fields(names)
            else:
                names = list_probes(args[0] if args else None, pid=pid, verbose=verbose)
        except ScriptError as e:
            _error(e, json_mode, EXIT_USAGE)
        except BpfError as e:
            _error(e, json_mode, getattr(e, "exit_code", EXIT_USAGE))
        if json_mode:
            import json

            click.echo(json.dumps({"probes": names}))
        else:
            try:
                click.echo("\n".join(names) + ("\n" if names else ""), nl=False)
            except BrokenPipeError:
                _quiet_exit(128 + 13)
        return
    params = list(args)
    origin = None
    if program is None:
        if not params:
            _error(BpfError("no program given: a FILE or -e PROGRAM"), json_mode, EXIT_USAGE)
        path = params.pop(0)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                source = f.read()
        except OSError as e:
            _error(BpfError(f"cannot read {path}: {e.strerror}"), json_mode, EXIT_USAGE)
        origin = path
    else:
        source = program
    from ..trace.runtime import Child, Options, Session, compile_script

    if replay is not None and not vm:
        _error(BpfError("--replay needs --vm (events are fired on the VM)"), json_mode, EXIT_USAGE)
    if pid is not None:
        from ..trace.runtime import process_alive

        if pid <= 0 or not process_alive(pid):
            _error(BpfError(f"-p {pid}: no such process"), json_mode, EXIT_USAGE)
        if command:
            _error(BpfError("-p and -c cannot be combined"), json_mode, EXIT_USAGE)
    for opt, target in (("-o", output), ("--record", record)):
        problem = unwritable(target)
        if problem:
            _error(BpfError(f"{opt}: cannot write {target}: {problem}"), json_mode, EXIT_USAGE)
    if vm and (command or record or pid is not None):
        what = "-c" if command else "--record" if record else "-p"
        _error(BpfError(f"{what} runs on the kernel: it cannot be combined with --vm"), json_mode,
               EXIT_USAGE)  # fmt: skip
    child = None
    out = None
    try:
        if command:
            import shlex

            argv = shlex.split(command)
            if not argv:
                raise BpfError("-c needs a command")
            child = Child(argv)
        events = None
        if vm:
            from ..trace.replay import Replay

            events = Replay.load(replay) if replay is not None else Replay({}, [])
            formats = events.header.get("formats")
            if isinstance(formats, dict):
                from ..trace.probes import use_formats

                use_formats(formats)
        has_cpid = child is not None or bool(events is not None and events.header.get("cpid"))
        compiled = compile_script(source, origin, params=params, unsafe=unsafe,
                                  has_cpid=has_cpid, pid=pid)  # fmt: skip
        if dry_run:
            if json_mode:
                import json

                click.echo(json.dumps({"ok": True, "probes": [i.point.name for i in
                                                              compiled.instances]}))  # fmt: skip
            else:
                for i in compiled.instances:
                    click.echo(i.point.name)
            if child is not None:
                child.kill()
            return
        opts = Options(json=json_mode, params=params, unsafe=unsafe,
                       cpid=child.pid if child else 0, debug=debug, verbose=verbose,
                       timeout=timeout, record=record, pid=pid)  # fmt: skip
        if events is not None:
            from ..trace.vm import VMSession

            out = open(output, "w", errors="surrogateescape") if output else None  # noqa: SIM115 - closed below
            sess: Session = VMSession(compiled, opts, events, out)
        else:
            out = open(output, "w", errors="surrogateescape") if output else None  # noqa: SIM115 - closed below
            sess = Session(compiled, opts, out)
        try:
            sess.setup()
            if events is None:
                from ..trace.runtime import set_process_name

                set_process_name()  # comm in BEGIN is "bpfkit", as bpftrace's is "bpftrace"
            sess.run(child)
        finally:
            sess.close()
    except ScriptError as e:
        if child is not None:
            child.kill()
        _error(e, json_mode, getattr(e, "exit_code", EXIT_USAGE))
    except NotSupported as e:
        if child is not None:
            child.kill()
        _error(e, json_mode, EXIT_FAIL)
    except BpfError as e:
        if child is not None:
            child.kill()
        _error(e, json_mode, getattr(e, "exit_code", EXIT_FAIL))
    except BrokenPipeError:  # the reader went away (| head): end quietly, as SIGPIPE would
        if child is not None:
            child.kill()
        _quiet_exit(128 + 13)
    except OSError as e:
        if child is not None:
            child.kill()
        _error(BpfError(f"{type(e).__name__}: {e}"), json_mode, EXIT_FAIL)
    finally:
        if out is not None:
            out.close()


COMMANDS = [trace_cmd]
