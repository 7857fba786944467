"""The lazy top-level command group: same commands and help as importing every module,
without importing them (``bpfkit trace`` start-up is measured against bpftrace's)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import click
import pytest

from bpfkit.cli import main as M

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))


def _eager() -> dict[str, click.Command]:
    """Every command, the old way: import each module and read ``COMMANDS``."""
    out: dict[str, click.Command] = {}
    for name in M.MODULES:
        try:
            mod = importlib.import_module(f"bpfkit.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"bpfkit.cli.{name}":
                raise
            continue
        for cmd in mod.COMMANDS:
            out[cmd.name] = cmd
    return out


def test_table_matches_the_modules() -> None:
    eager = _eager()
    tabled_modules = {spec[0] for spec in M.LAZY.values()}
    for name, (module, attr, short) in M.LAZY.items():
        if name not in eager:  # its module does not exist in this tree
            assert importlib.util.find_spec(f"bpfkit.cli.{module}") is None, name
            continue
        mod = importlib.import_module(f"bpfkit.cli.{module}")
        assert getattr(mod, attr) is eager[name], name
        real = eager[name].get_short_help_str(10**6)
        assert real == short, f"bpfkit.cli.main.LAZY[{name!r}] short help should be {real!r}"
    # every command of a tabled module is in the table
    for name, cmd in eager.items():
        if (
            cmd.callback is not None
            and cmd.callback.__module__.rsplit(".", 1)[-1] in tabled_modules
        ):
            assert name in M.LAZY, f"{name} is missing from bpfkit.cli.main.LAZY"


@pytest.mark.parametrize("width", [50, 80, 120])
def test_help_lists_the_same_as_eager(width: int) -> None:
    eager = click.Group("bpfkit", commands=_eager(), help=M.cli.help)
    lazy = M.LazyGroup("bpfkit", help=M.cli.help)
    texts = []
    for g in (eager, lazy):
        ctx = click.Context(g, info_name="bpfkit", terminal_width=width, max_content_width=width)
        f = ctx.make_formatter()
        g.format_commands(ctx, f)
        texts.append(f.getvalue())
    assert texts[0] == texts[1]
    assert set(M.LazyGroup("x").commands) == set(_eager())


def test_missing_modules_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(M.LAZY, ghost=("no_such_cmds", "ghost_cmd", "A command whose module is gone."))
    monkeypatch.setattr(M, "LAZY", table)
    g = M.LazyGroup("x")
    g.commands.pending.update(table)  # type: ignore[attr-defined]
    assert "ghost" not in g.commands
    assert "ghost" not in list(g.commands)
    assert g.get_command(click.Context(g), "ghost") is None
    assert "trace" in g.commands


def test_trace_imports_no_other_command_family() -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bpfkit", "trace", "--dry-run", "-e",
         "BEGIN { exit(); }"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    mods = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "bpfkit.cli.trace_cmds" in mods
    for other in ("bpfkit.cli.obj_cmds", "bpfkit.cli.asm_cmds", "bpfkit.cli.kernel_cmds",
                  "bpfkit.cli.run_cmds", "bpfkit.obj.loader", "bpfkit.isa.asm", "llvmlite"):  # fmt: skip
        assert other not in mods, other
