"""Shared CLI plumbing: JSON output, error reporting, exit codes, input loading."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import BpfError, RuntimeFault, VerifierError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliGroup(click.Group):
    """A click group whose usage errors exit 2 with a one-line message (click's default)."""


def emit(obj: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    click.echo(json.dumps(obj, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray, memoryview)):
        return bytes(o).hex()
    if hasattr(o, "to_json"):
        return o.to_json()
    return str(o)


def fail(message: str, code: int = EXIT_USAGE, as_json: bool = False, **extra: Any) -> None:
    """Report an error (JSON or one line on stderr) and exit with ``code``."""
    if as_json:
        emit({"error": message, **extra})
    else:
        click.echo(f"bpfkit: error: {message}", err=True)
    sys.exit(code)


def guarded(as_json_param: str = "as_json") -> Callable:
    """Decorator: turn ``BpfError`` into the documented exit codes, never a traceback."""

    def deco(fn: Callable) -> Callable:
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            as_json = bool(kwargs.get(as_json_param))
            try:
                return fn(*args, **kwargs)
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
