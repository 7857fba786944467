"""Shared CLI plumbing: JSON output, error reporting, exit codes, input loading."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from ..errors import BpfError, RuntimeFault, VerifierError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
#: the status a shell shows for a tool stopped by SIGPIPE (``bpfkit ... | head``)
EXIT_PIPE = 128 + 13


def quiet_broken_pipe() -> NoReturn:
    """stdout's reader went away (``bpfkit ... | head``): stop quietly, like a tool SIGPIPE ends.

    stdout is pointed at /dev/null so that nothing buffered fails again at exit.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    sys.exit(EXIT_PIPE)


class CliGroup(click.Group):
    """The top-level group: usage errors become one line (or one JSON object with
    ``--json``) and exit 2; a closed output pipe ends the command quietly."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, False, **extra)
        as_json = "--json" in argv
        try:
            rv = super().main(argv, prog_name or "bpfkit", complete_var, False, **extra)
            sys.stdout.flush()
        except click.ClickException as e:
            where = e.ctx.command_path if getattr(e, "ctx", None) is not None else "bpfkit"  # type: ignore[attr-defined]
            msg = " ".join(e.format_message().split())
            if isinstance(e, click.UsageError):
                msg += f" (see '{where} --help')"
            fail(msg, EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code, as_json)
        except click.Abort:
            click.echo("bpfkit: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            quiet_broken_pipe()
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def emit(obj: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    click.echo(json.dumps(obj, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray, memoryview)):
        return bytes(o).hex()
    if hasattr(o, "to_json"):
        return o.to_json()
    return str(o)


def fail(message: str, code: int = EXIT_USAGE, as_json: bool = False, **extra: Any) -> NoReturn:
    """Report an error (JSON or one line on stderr) and exit with ``code``."""
    message = " ".join(str(message).split()) or "failed"
    try:
        if as_json:
            emit({"error": message, **extra})
        else:
            click.echo(f"bpfkit: error: {message}", err=True)
    except BrokenPipeError:
        quiet_broken_pipe()
    sys.exit(code)


def write_output(path: str, data: bytes | str) -> None:
    """Write ``data`` to the user's output ``path``; one that cannot be written is bad input
    (a ``BpfError``: exit 2, one line naming the path and why)."""
    try:
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
    except OSError as e:
        raise BpfError(f"cannot write {path}: {e.strerror or e}") from None


def unwritable(path: str | None) -> str | None:
    """Why the output ``path`` cannot be written, or None (also for None and ``-``) —
    checked before long work (a trace, a traced command) whose result would be lost."""
    if path is None or path == "-":
        return None
    if os.path.isdir(path):
        return "Is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return "No such file or directory"
    if not os.access(path if os.path.exists(path) else parent, os.W_OK):
        return "Permission denied"
    return None


def guarded(as_json_param: str = "as_json") -> Callable:
    """Decorator: turn ``BpfError`` into the documented exit codes, never a traceback."""

    def deco(fn: Callable) -> Callable:
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            as_json = bool(kwargs.get(as_json_param))
            try:
                return fn(*args, **kwargs)
            except BrokenPipeError:
                quiet_broken_pipe()
            except RuntimeFault as e:
                fail(
                    str(e),
                    EXIT_FAIL,
                    as_json,
                    pc=e.pc,
                    insns=e.insns,
                    **({"address": e.address} if e.address is not None else {}),
                )
            except VerifierError as e:
                fail(str(e), EXIT_FAIL, as_json, insn=e.insn)
            except BpfError as e:
                fail(str(e), EXIT_USAGE, as_json)
            except (OSError, UnicodeDecodeError, ValueError) as e:
                fail(f"{type(e).__name__}: {e}", EXIT_USAGE, as_json)

        return wrapper

    return deco
