"""The ``bpfkit`` command line: one group, one module per subcommand family.

Exit codes: 0 success, 1 the program or check failed, 2 bad input or usage.

Subcommand modules are imported on first use: ``bpfkit trace`` does not pay for the
object reader, the assembler or the kernel commands. :data:`LAZY` names each command's
module and attribute and keeps its short help, so ``bpfkit --help`` lists every command
without importing any of them (``tests/test_trace_cli_lazy.py`` checks the table against the
modules). A module of :data:`MODULES` that the table does not cover yet is imported the
first time a name is missing or the list is needed, as before.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping
from gettext import gettext as _
from typing import Any

import click

from ._common import CliGroup

#: Subcommand families (``bpfkit.cli.<name>``, each exposing ``COMMANDS``); a module that
#: does not exist (yet) is skipped.
MODULES = (
    "asm_cmds",
    "run_cmds",
    "obj_cmds",
    "kernel_cmds",
    "tool_cmds",
    "verify_cmds",
    "filter_cmds",
    "seccomp_cmds",
    "trace_cmds",
)

#: command name -> (module, attribute, short help as ``bpfkit --help`` shows it untruncated)
LAZY: dict[str, tuple[str, str, str]] = {
    "asm": ("asm_cmds", "asm_cmd", "Assemble FILE into raw little-endian bytecode."),
    "disasm": ("asm_cmds", "disasm_cmd",
               "Disassemble FILE (raw bytecode, assembler text or an ELF object)."),
    "run": ("run_cmds", "run_cmd",
            "Run a program and print r0 (bare programs: r1 = memory, r2 = its length)."),
    "conformance-plugin": ("run_cmds", "conformance_plugin_cmd",
                           "Plugin for the bpf_conformance runner: program hex on stdin, MEM "
                           "as hex; prints r0 in hex."),
    "build": ("obj_cmds", "build_cmd",
              "Compile SRC.c with clang -O2 -g -target bpf and the libbpf headers."),
    "inspect": ("obj_cmds", "inspect_cmd",
                "Show an object's programs, maps, global variables, externs and BTF summary."),
    "usdt": ("obj_cmds", "usdt_cmd",
             "List the USDT probes (.note.stapsdt) of a binary: sites, semaphores, arguments."),
    "load": ("kernel_cmds", "load_cmd",
             "Load OBJ into the kernel; with --pin it stays loaded after the command exits."),
    "attach": ("kernel_cmds", "attach_cmd",
               "Attach PROG (an ELF object, a pinned program, or a program id) to its hook."),
    "prog": ("kernel_cmds", "prog_group", "Loaded programs."),
    "map": ("kernel_cmds", "map_group",
            "Maps in the kernel: list, dump, update, delete (typed through BTF)."),
    "features": ("kernel_cmds", "features_cmd",
                 "What this kernel supports (like bpftool feature probe)."),
    "link": ("tool_cmds", "link_group", "Links in the kernel: list, show, detach."),
    "pin": ("tool_cmds", "pin_cmd",
            "Pin a program, map or link (by id or pinned path) at PATH on a bpf filesystem."),
    "unpin": ("tool_cmds", "unpin_cmd",
              "Remove a pin (the object goes away when nothing else holds it)."),
    "btf": ("tool_cmds", "btf_group",
            "BTF: list the kernel's BTF objects, dump one as a listing or as C."),
    "verify": ("verify_cmds", "verify_cmd",
               "Prove a program safe (exit 0) or explain why it is rejected (exit 1)."),
    "filter": ("filter_cmds", "filter_group",
               "tcpdump's filter language (pcap-filter(7)) and capture files."),
    "seccomp": ("seccomp_cmds", "seccomp_group",
                "seccomp filters: compile OCI/Docker profiles, check decisions, run confined, "
                "trace."),
    "trace": ("trace_cmds", "trace_cmd",
              "Run a bpftrace script: ``bpfkit trace FILE.bt [ARGS]`` or ``bpfkit trace -e "
              "PROGRAM``."),
}  # fmt: skip


def _module_exists(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"bpfkit.cli.{name}") is not None


def _import(name: str) -> Any | None:
    """``bpfkit.cli.<name>`` (``None`` when that module does not exist)."""
    try:
        return __import__(f"bpfkit.cli.{name}", fromlist=["COMMANDS"])
    except ModuleNotFoundError as e:
        if e.name != f"bpfkit.cli.{name}":
            raise
        return None


class LazyCommands(MutableMapping):
    """``Group.commands`` whose values are imported when first looked up."""

    def __init__(self) -> None:
        self.loaded: dict[str, click.Command] = {}
        self.pending: dict[str, tuple[str, str, str]] = {}
        self._checked = False
        self._untabled_done = False

    # ---- discovery ---------------------------------------------------------------------------
    def _check(self) -> None:
        """Drop table entries whose module does not exist (same as the old ``_register``)."""
        if self._checked:
            return
        self._checked = True
        missing = {m for m in {s[0] for s in self.pending.values()} if not _module_exists(m)}
        for name in [n for n, s in self.pending.items() if s[0] in missing]:
            del self.pending[name]

    def _load_untabled(self) -> None:
        """Import the modules the table does not cover (their commands are unknown)."""
        if self._untabled_done:
            return
        self._untabled_done = True
        tabled = {s[0] for s in LAZY.values()}
        for name in MODULES:
            if name in tabled:
                continue
            mod = _import(name)
            for cmd in getattr(mod, "COMMANDS", ()):
                if cmd.name not in self.loaded and cmd.name not in self.pending:
                    self.loaded[cmd.name] = cmd

    def _resolve(self, name: str) -> click.Command | None:
        spec = self.pending.get(name)
        if spec is None:
            return None
        mod = _import(spec[0])
        del self.pending[name]
        if mod is None:
            return None
        cmd = getattr(mod, spec[1], None)
        if cmd is None:  # the table is stale: look the name up among the module's commands
            cmd = next((c for c in mod.COMMANDS if c.name == name), None)
        if cmd is not None:
            self.loaded[name] = cmd
        return cmd

    # ---- the mapping -------------------------------------------------------------------------
    def __getitem__(self, name: str) -> click.Command:
        if name in self.loaded:
            return self.loaded[name]
        if name in self.pending:
            cmd = self._resolve(name)
            if cmd is not None:
                return cmd
        self._load_untabled()
        return self.loaded[name]

    def __setitem__(self, name: str, cmd: click.Command) -> None:
        self.pending.pop(name, None)
        self.loaded[name] = cmd

    def __delitem__(self, name: str) -> None:
        if self.pending.pop(name, None) is None:
            del self.loaded[name]

    def __contains__(self, name: object) -> bool:
        if name in self.loaded:
            return True
        self._check()
        if name in self.pending:
            return True
        self._load_untabled()
        return name in self.loaded

    def __iter__(self) -> Iterator[str]:
        self._check()
        self._load_untabled()
        return iter(list(self.loaded) + [n for n in self.pending if n not in self.loaded])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def short_help(self, name: str) -> str | None:
        """The stored short help of a command not imported yet (``None``: imported)."""
        spec = self.pending.get(name)
        return None if spec is None else spec[2]


class LazyGroup(CliGroup):
    """The top-level group over :class:`LazyCommands`; ``--help`` reads the stored help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cmds = LazyCommands()
        cmds.pending.update(LAZY)
        self.commands = cmds  # type: ignore[assignment]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            return None
        return self.commands[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        cmds: LazyCommands = self.commands  # type: ignore[assignment]
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            stored = cmds.short_help(name)
            cmd = click.Command(name, help=stored) if stored is not None else cmds.get(name)
            if cmd is None or cmd.hidden:
                continue
            rows.append((name, cmd))
        if rows:
            limit = formatter.width - 6 - max(len(n) for n, _ in rows)
            with formatter.section(_("Commands")):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in rows])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bpfkit")
def cli() -> None:
    """bpfkit: assemble, inspect, verify, run and load BPF programs."""


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
