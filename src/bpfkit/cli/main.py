"""The ``bpfkit`` command line: one group, one module per subcommand family.

Exit codes: 0 success, 1 the program or check failed, 2 bad input or usage.
"""

from __future__ import annotations

import sys

import click

from ._common import CliGroup


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bpfkit")
def cli() -> None:
    """bpfkit: assemble, inspect, verify, run and load BPF programs."""


def _register() -> None:
    # One module per subcommand family; each exposes ``COMMANDS``.
    # ``bpfkit filter ...`` loads only its own module: its start-up time is benchmarked.
    if sys.argv[1:2] == ["filter"]:
        from .filter_cmds import COMMANDS

        for cmd in COMMANDS:
            cli.add_command(cmd)
        return
    for name in (
        "asm_cmds",
        "run_cmds",
        "obj_cmds",
        "kernel_cmds",
        "tool_cmds",
        "verify_cmds",
        "filter_cmds",
        "seccomp_cmds",
        "trace_cmds",
    ):
        try:
            mod = __import__(f"bpfkit.cli.{name}", fromlist=["COMMANDS"])
        except ModuleNotFoundError as e:
            if e.name != f"bpfkit.cli.{name}":
                raise
            continue
        for cmd in mod.COMMANDS:
            cli.add_command(cmd)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point for the console script."""
    try:
        cli.main(args=argv, standalone_mode=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if argv is not None:
            return code
        sys.exit(code)
    return 0
