"""The CLI's error contract for every subcommand: an unknown flag, a directory and a
missing file each give exit 2 and one line on stderr (or exactly one JSON object on stdout
with ``--json``), never a traceback; a reader that closes the pipe early ends the command
quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bpfkit.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def _leaves(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    if isinstance(cmd, click.Group):
        out = []
        for name, sub in sorted(cmd.commands.items()):
            out += _leaves(sub, (*path, name))
        return out
    return [(path, cmd)]


LEAVES = _leaves(cli)
NAMES = [" ".join(p) for p, _ in LEAVES]


def _filler(cmd: click.Command) -> list[str]:
    """Values for the required options, so that only the input under test is wrong."""
    args: list[str] = []
    for p in cmd.params:
        if isinstance(p, click.Option) and p.required:
            args += [p.opts[0], "1"]
    return args


def _positionals(cmd: click.Command) -> list[click.Argument]:
    return [p for p in cmd.params if isinstance(p, click.Argument)]


def _check_text(res, what: str) -> None:
    assert res.exit_code == 2, f"{what}: exit {res.exit_code}\n{res.output}\n{res.stderr}"
    assert "Traceback" not in res.output + res.stderr, what
    lines = res.stderr.rstrip("\n").splitlines()
    if len(lines) == 3 and lines[2].strip() == "^":
        # a script error in bpftrace's layout (``trace``): the message, the offending
        # line (printable: control characters shown as '?'), a caret under the column
        assert lines[1].strip() and all(ch.isprintable() for ch in lines[1]), what
        assert len(lines[2]) <= len(lines[1]) + 1, what
        lines = lines[:1]
    # one line; "bpfkit: error: ..." (``trace`` speaks bpftrace's "ERROR: ...")
    assert len(lines) == 1 and "error" in lines[0].lower(), f"{what}: {res.stderr!r}"
    assert res.stdout == "", what


def _check_json(res, what: str) -> None:
    assert res.exit_code == 2, f"{what}: exit {res.exit_code}\n{res.output}\n{res.stderr}"
    assert "Traceback" not in res.output + res.stderr, what
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, f"{what}: {res.stdout!r}"
    assert set(json.loads(lines[0])) >= {"error"}, what


class _Proc:
    """A finished ``python -m bpfkit`` in the shape of click's test result."""

    def __init__(self, p: subprocess.CompletedProcess) -> None:
        self.exit_code, self.stdout, self.stderr = p.returncode, p.stdout, p.stderr
        self.output = p.stdout + p.stderr


def _run(args: list[str], stdin: bytes = b""):
    res = CliRunner().invoke(cli, args, input=stdin)
    if res.exit_code and not (res.stdout.strip() or res.stderr.strip()):
        # a command that reports from a child process writes to the real descriptors,
        # which click's runner does not capture: run it as a process
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        p = subprocess.run(
            [sys.executable, "-m", "bpfkit", *args],
            capture_output=True,
            text=True,
            env=env,
            input=stdin.decode("latin-1"),
            timeout=120,
        )
        return _Proc(p)
    return res


# Known breaches of the contract in other families' commands, kept visible: each turns
# the check it breaks into an xfail naming the breach (remove the entry with the fix).
KNOWN: dict[tuple[tuple[str, ...], str], str] = {}


def _with_json(path: tuple[str, ...], args: list[str]) -> list[str]:
    """``args`` with ``--json`` right after the command's name: before any positional, so
    that a command taking a command line to run (``seccomp run PROFILE CMD ...``) reads it
    as its own option and does not pass it on."""
    return [*path, "--json", *args[len(path) :]]


def _known(path: tuple[str, ...], aspect: str) -> None:
    reason = KNOWN.get((path, aspect))
    if reason:
        pytest.xfail(reason)


def test_every_subcommand_is_swept() -> None:
    assert {"asm", "run", "load", "prog show", "map dump", "btf dump", "link list", "pin"} <= set(
        NAMES
    )


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=NAMES)
def test_unknown_flag(path: tuple[str, ...], cmd: click.Command) -> None:
    _known(path, "flag")
    args = [*path, "--no-such-flag"]
    _check_text(_run(args), " ".join(args))
    _known(path, "json")
    _check_json(_run(_with_json(path, args)), " ".join(args))


# conformance-plugin speaks the bpf_conformance runner's protocol (program on stdin, hex
# memory as its argument, exit 1 on any error): tested on its own below.
PATHLIKE = [(p, c) for p, c in LEAVES if _positionals(c) and p != ("conformance-plugin",)]

#: hostile contents for a file argument: the name of each is the test id
BAD = ["directory", "missing", "garbage", "empty"]
#: garbage: every byte value class (NUL, control, high, invalid UTF-8), a length that is no
#: multiple of 8 (raw bytecode), no newline, no ELF/pcap/JSON magic
GARBAGE = bytes(range(0, 256, 7)) * 5 + b"\xff\xfe\x00"

#: options that name a file the command writes, not one it reads
OUTPUTS = {"output", "out", "pin_dir", "pin_link", "record"}


def _variants(cmd: click.Command) -> list[list[str]]:
    """The input-reading modes of ``cmd``: as is, ``--classic``, each ``--format`` of a
    program file (a hostile file must be refused in every mode that reads it)."""
    out: list[list[str]] = [[]]
    for p in cmd.params:
        if p.name == "classic":
            out.append(["--classic"])
        if p.name == "fmt" and isinstance(p.type, click.Choice) and "elf" in p.type.choices:
            out += [["--format", f] for f in p.type.choices]
    return out


def _input_options(cmd: click.Command) -> list[click.Option]:
    """Options naming a file ``cmd`` reads (click.Path, not an output)."""
    return [
        p
        for p in cmd.params
        if isinstance(p, click.Option) and isinstance(p.type, click.Path) and p.name not in OUTPUTS
    ]


#: what the command needs besides the option under test (a valid program or profile)
OPTION_BASE: dict[tuple[str, ...], list[str]] = {
    ("run",): ["examples/sum.s"],
    ("seccomp", "check"): ["docker-default"],
    ("trace",): ["-e", "BEGIN { exit(); }"],
}

#: (command, option, bad): input that is valid as it is, with the reason. The command must
#: then succeed (exit 0; with --json one object without "error").
VALID = {
    (("run",), "mem_file", "garbage"): "any bytes are memory/packet data",
    (("run",), "mem_file", "empty"): "a zero-length packet is a packet",
    (("seccomp", "check"), "batch", "empty"): "an empty JSON Lines file is zero cases",
}

#: one-line text errors the owner of the command has not reached yet (the check is strict:
#: when it passes, the entry must go)
KNOWN_LINES: dict[tuple, str] = {}

SITES = [(p, c, v) for p, c in PATHLIKE for v in _variants(c)]
OPTION_SITES = [(p, c, o.name) for p, c in LEAVES for o in _input_options(c)]


def _target(bad: str, tmp_path: Path) -> str:
    if bad == "directory":
        return str(tmp_path)
    if bad == "missing":
        return str(tmp_path / "missing.o")
    f = tmp_path / f"{bad}.bin"
    f.write_bytes(GARBAGE if bad == "garbage" else b"")
    return str(f)


def _strict(key: tuple, table: dict, check, *a) -> None:
    """Run ``check``; a breach listed in ``table`` is an xfail, a listed one that passes
    fails (remove its entry)."""
    reason = table.get(key)
    try:
        check(*a)
    except AssertionError:
        if reason:
            pytest.xfail(reason)
        raise
    assert not reason, f"fixed, remove the entry: {key}: {reason}"


@pytest.mark.parametrize(
    ("path", "cmd", "variant"),
    SITES,
    ids=[" ".join([*p, *v]) for p, _, v in SITES],
)
@pytest.mark.parametrize("bad", BAD)
def test_bad_path(
    path: tuple[str, ...], cmd: click.Command, variant: list[str], bad: str, tmp_path: Path
) -> None:
    """The first positional argument is a directory, a missing file, garbage bytes or an
    empty file (for a command that takes no file there, the name is bad input all the same)."""
    if bad in ("directory", "missing"):
        _known(path, "path")
    target = _target(bad, tmp_path)
    rest = ["1"] * (sum(1 for p in _positionals(cmd) if p.required) - 1)
    args = [*path, target, *rest, *_filler(cmd), *variant]
    if path == ("attach",):
        args += ["--duration", "0"]
    if path == ("pin",):  # KIND comes first: the path under test is REF
        args = ["pin", "map", target, "/nonexistent/pin"]
    what = " ".join(args)
    _strict((path, bad), KNOWN_LINES if not variant else {}, _check_text, _run(args), what)
    _known(path, "json")
    _check_json(_run(_with_json(path, args)), what)


@pytest.mark.parametrize(
    ("path", "cmd", "option"),
    OPTION_SITES,
    ids=[f"{' '.join(p)} --{o.replace('_', '-')}" for p, _, o in OPTION_SITES],
)
@pytest.mark.parametrize("bad", BAD)
def test_bad_input_option(
    path: tuple[str, ...], cmd: click.Command, option: str, bad: str, tmp_path: Path
) -> None:
    """An option naming a file to read (``run --mem-file``, ``seccomp check --batch``,
    ``filter run -r``, ``trace --replay`` ...) gets each hostile file."""
    opt = next(p for p in cmd.params if p.name == option)
    args = [*path, *OPTION_BASE.get(path, []), opt.opts[-1], _target(bad, tmp_path)]
    args += _filler(cmd)
    what = " ".join(args)
    if (path, option, bad) in VALID:
        res = _run(_with_json(path, args))
        assert res.exit_code == 0, f"{what}: {res.output}{res.stderr}"
        assert "error" not in json.loads(res.stdout), what
        return
    _check_text(_run(args), what)
    _known(path, "json")
    _check_json(_run(_with_json(path, args)), what)


STDIN_SITES = [
    (p, c, o.name)
    for p, c in LEAVES
    for o in _input_options(c)
    if o.type.allow_dash or "'-' is stdin" in (o.help or "")  # type: ignore[attr-defined]
]


@pytest.mark.parametrize(
    ("path", "cmd", "option"),
    STDIN_SITES,
    ids=[f"{' '.join(p)} --{o.replace('_', '-')} -" for p, _, o in STDIN_SITES],
)
@pytest.mark.parametrize("bad", ["garbage", "empty"])
def test_bad_stdin(path: tuple[str, ...], cmd: click.Command, option: str, bad: str) -> None:
    """An input option given ``-`` reads stdin: garbage or nothing there is bad input too."""
    opt = next(p for p in cmd.params if p.name == option)
    args = [*path, *OPTION_BASE.get(path, []), opt.opts[-1], "-", *_filler(cmd)]
    data = GARBAGE if bad == "garbage" else b""
    what = f"{' '.join(args)} <{bad}"
    if (path, option, bad) in VALID:
        res = _run(_with_json(path, args), data)
        assert res.exit_code == 0 and "error" not in json.loads(res.stdout), what
        return
    _check_text(_run(args, data), what)
    _check_json(_run(_with_json(path, args), data), what)


XDP_PASS_C = """#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def xdp_object(tmp_path_factory) -> str:
    """A one-program ELF object (``bpfkit build``; skipped without a BPF clang)."""
    d = tmp_path_factory.mktemp("obj")
    (d / "pass.c").write_text(XDP_PASS_C)
    res = _run(["build", str(d / "pass.c"), "-o", str(d / "pass.o")])
    if res.exit_code != 0:
        pytest.skip(f"cannot build a BPF object here: {res.stderr.strip()}")
    return str(d / "pass.o")


@pytest.mark.parametrize("bad", BAD)
def test_ctx_file_of_an_object(xdp_object: str, bad: str, tmp_path: Path) -> None:
    """``run OBJ --ctx-file`` reads the file (bare programs refuse the option, so the
    matrix above never reaches the read)."""
    args = ["run", xdp_object, "--ctx-file", _target(bad, tmp_path)]
    _check_text(_run(args), " ".join(args))
    _check_json(_run(_with_json(("run",), args)), " ".join(args))


ALL_OUTPUT_SITES = [
    (p, c, o)
    for p, c in LEAVES
    for o in c.params
    if isinstance(o, click.Option) and o.name in OUTPUTS
]
#: what reaches an output option's write, per command ({obj}: the built XDP object,
#: {pcap}: a one-packet capture); ``None``: the write needs what a quick test lacks
OUTPUT_BASE: dict[tuple[str, ...], list[str] | None] = {
    ("asm",): ["examples/sum.s"],
    ("build",): ["{src}"],
    ("btf", "dump"): ["{obj}"],
    ("seccomp", "compile"): ["docker-default"],
    ("seccomp", "trace"): ["--", "true"],  # refused before anything is traced
    ("filter", "run"): ["-r", "{pcap}", "tcp"],
    ("trace",): ["-e", "BEGIN { exit(); }"],
    ("filter", "capture"): None,  # a live capture: root and an interface
    ("attach",): None,  # --pin / --pin-link: the kernel and bpffs (test_kernel_*)
    ("load",): None,
}
OUTPUT_SITES = [(p, c, o) for p, c, o in ALL_OUTPUT_SITES if OUTPUT_BASE.get(p) is not None]
KNOWN_OUTPUT: dict[tuple, str] = {}


@pytest.fixture(scope="module")
def one_packet_pcap(tmp_path_factory) -> str:
    """A classic pcap (Ethernet) holding one 60-byte packet of zeros."""
    import struct

    f = tmp_path_factory.mktemp("pcap") / "one.pcap"
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    f.write_bytes(hdr + struct.pack("<IIII", 0, 0, 60, 60) + bytes(60))
    return str(f)


@pytest.mark.parametrize(
    ("path", "cmd", "opt"),
    OUTPUT_SITES,
    ids=[f"{' '.join(p)} {o.opts[-1]}" for p, _, o in OUTPUT_SITES],
)
@pytest.mark.parametrize("bad", ["directory", "nodir"])
def test_bad_output(
    path: tuple[str, ...],
    cmd: click.Command,
    opt: click.Option,
    bad: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """An output that is a directory or lies in a missing directory: exit 2, one line."""
    base = OUTPUT_BASE[path]
    assert base is not None
    fill = {}
    if any("{obj}" in a for a in base):
        fill["obj"] = request.getfixturevalue("xdp_object")
    if any("{src}" in a for a in base):
        fill["src"] = str(Path(request.getfixturevalue("xdp_object")).with_suffix(".c"))
    if any("{pcap}" in a for a in base):
        fill["pcap"] = request.getfixturevalue("one_packet_pcap")
    target = str(tmp_path) if bad == "directory" else str(tmp_path / "no" / "out")
    for key, value in fill.items():
        base = [a.replace(f"{{{key}}}", value) for a in base]
    args = [*path, opt.opts[-1], target, *base]
    what = " ".join(args)
    _strict((path, opt.name, bad), KNOWN_OUTPUT, _check_text, _run(args), what)
    _check_json(_run(_with_json(path, args)), what)
    assert not (tmp_path / "no").exists()


REQUIRED_ARG = [(p, c) for p, c in LEAVES if any(a.required for a in _positionals(c))]


@pytest.mark.parametrize(("path", "cmd"), REQUIRED_ARG, ids=[" ".join(p) for p, _ in REQUIRED_ARG])
def test_missing_argument(path: tuple[str, ...], cmd: click.Command) -> None:
    args = [*path, *_filler(cmd)]
    _check_text(_run(args), " ".join(args))
    assert "missing" in _run(args).stderr.lower()
    _known(path, "json")
    _check_json(_run(_with_json(path, args)), " ".join(args))


REQUIRED_OPT = [
    (p, c, o.name)
    for p, c in LEAVES
    for o in c.params
    if isinstance(o, click.Option) and o.required
]


@pytest.mark.parametrize(
    ("path", "cmd", "option"),
    REQUIRED_OPT,
    ids=[f"{' '.join(p)} --{o}" for p, _, o in REQUIRED_OPT],
)
def test_missing_required_option(path: tuple[str, ...], cmd: click.Command, option: str) -> None:
    positional = ["1"] * sum(1 for a in _positionals(cmd) if a.required)
    others = [
        x
        for o in cmd.params
        if isinstance(o, click.Option) and o.required and o.name != option
        for x in (o.opts[0], "1")
    ]
    args = [*path, *positional, *others]
    res = _run(args)
    _check_text(res, " ".join(args))
    assert "missing option" in res.stderr.lower()
    _check_json(_run(_with_json(path, args)), " ".join(args))


def test_the_matrix_reaches_every_file_input() -> None:
    """The sweep is derived from the commands' parameters; make sure it did not shrink
    to nothing (a renamed parameter would silently drop a command)."""
    names = {" ".join(p) for p, _, _ in SITES}
    assert {"asm", "disasm", "run", "verify", "inspect", "load", "seccomp compile"} <= names
    assert {"seccomp run", "trace", "filter run", "usdt", "build"} <= names
    opts = {(" ".join(p), o) for p, _, o in OPTION_SITES}
    assert {("run", "mem_file"), ("run", "ctx_file"), ("seccomp check", "batch")} <= opts
    assert {("filter run", "read")} <= opts
    assert {(" ".join(p), o) for p, _, o in STDIN_SITES} >= {
        ("filter run", "read"),
        ("seccomp check", "batch"),
    }
    assert {" ".join(p) for p, _, _ in OUTPUT_SITES} >= {"asm", "seccomp compile", "trace"}
    unlisted = {p for p, _, _ in ALL_OUTPUT_SITES} - set(OUTPUT_BASE)
    assert not unlisted, f"say how to reach their output options in OUTPUT_BASE: {unlisted}"
    assert len(REQUIRED_ARG) >= 20 and REQUIRED_OPT


def test_conformance_plugin_bad_input_is_one_line() -> None:
    res = CliRunner().invoke(cli, ["conformance-plugin", "zz"], input="b7 00 00 00 01 00 00 00")
    assert res.exit_code == 1
    assert "Traceback" not in res.output + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def _pipe(args: list[str]) -> subprocess.CompletedProcess:
    """Run ``bpfkit ARGS | head -1`` (in Python: read one line, close the pipe)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.Popen(
        [sys.executable, "-m", "bpfkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert p.stdout is not None and p.stderr is not None
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    p.stderr.close()
    code = p.wait(timeout=120)
    return subprocess.CompletedProcess(args, code, first, err)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "examples/sum.s", "--mem-hex", "01" * 4000, "--trace"],
        ["disasm", "examples/sum.s", "--json"],
        ["asm", "--help"],
    ],
    ids=["trace", "json", "help"],
)
def test_closed_pipe_ends_quietly(args: list[str]) -> None:
    res = _pipe(args)
    assert res.stdout  # it did print
    assert res.stderr == b"", res.stderr.decode()
    assert res.returncode in (0, 141)  # 141: ended as a SIGPIPE'd tool is (128 + 13)
