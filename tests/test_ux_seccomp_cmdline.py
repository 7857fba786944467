"""``seccomp run`` / ``seccomp trace`` command lines: options before the command are
bpfkit's (an unknown one is a usage error and nothing runs); everything after ``--`` or
from the command's first word on is the command's; a command that cannot be executed is
bad input (exit 2, one line or one JSON object), and with ``--json`` stdout holds only
the JSON object.

The oracles: the command itself (it prints the argv it received), the file system (a
``touch`` that must not have run), and the kernel's execve (``subprocess`` reports the
same errno for the same file).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.cli.seccomp_cmds import run_cmd, trace_cmd
from bpfkit.seccomp.install import spawn, wait

ROOT = Path(__file__).resolve().parents[1]
ALLOW = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}],
}
#: a shell command that prints the arguments it was given, comma-terminated
ECHO_ARGS = ["sh", "-c", 'printf "%s," "$@"', "sh"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "seccomp", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.fixture(scope="module")
def allow(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("prof") / "allow.json"
    path.write_text(json.dumps(ALLOW))
    return str(path)


@pytest.fixture(scope="module")
def confine_ok(allow) -> None:
    """Probe: can a child install a filter here (seccomp(2) with no_new_privs)?"""
    r = _cli("run", allow, "--", "true")
    if r.returncode != 0:
        pytest.skip(f"cannot install a seccomp filter here: {r.stderr.strip()[-200:]}")


def _one_line_usage(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "error" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "head",
    [["run", "{allow}", "--bogus"], ["run", "--bogus", "{allow}"], ["trace", "--bogus"]],
    ids=["run-after-profile", "run-before-profile", "trace"],
)
@pytest.mark.parametrize("dashdash", [False, True], ids=["bare", "dashdash"])
def test_unknown_option_before_the_command_is_a_usage_error(
    head: list[str], dashdash: bool, allow: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    args = [a.format(allow=allow) for a in head] + (["--"] if dashdash else [])
    r = _cli(*args, "touch", str(marker))
    _one_line_usage(r)
    assert "--bogus" in r.stderr
    assert not marker.exists()  # nothing ran
    r = _cli(*args[:1], "--json", *args[1:], "touch", str(marker))
    assert r.returncode == 2 and "--bogus" in json.loads(r.stdout)["error"]
    assert len(r.stdout.splitlines()) == 1 and not marker.exists()


@pytest.mark.parametrize("dashdash", [False, True], ids=["bare", "dashdash"])
def test_run_options_before_the_command_are_ours_after_it_the_commands(
    dashdash: bool, allow: str, confine_ok: None
) -> None:
    tail = ["-x", "--json", "--log", "--", "--bogus"]
    r = _cli("run", allow, "--log", *(["--"] if dashdash else []), *ECHO_ARGS, *tail)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "".join(f"{a}," for a in tail)  # no JSON: --json was the command's


def test_run_json_keeps_stdout_to_the_json_object(allow: str, confine_ok: None) -> None:
    r = _cli("run", "--json", allow, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["exit_code"] == 3
    assert "out" in r.stderr.split() and "err" in r.stderr.split()


@pytest.mark.parametrize("sub", ["run", "trace"])
@pytest.mark.parametrize("bad", ["missing", "directory", "not-executable", "not-on-path"])
def test_a_command_that_cannot_run_is_bad_input(
    sub: str, bad: str, allow: str, tmp_path: Path
) -> None:
    target = {
        "missing": str(tmp_path / "nope"),
        "directory": str(tmp_path),
        "not-executable": allow,
        "not-on-path": "bpfkit-ux-no-such-command",
    }[bad]
    head = ["run", allow] if sub == "run" else ["trace"]
    _one_line_usage(_cli(*head, "--", target))
    r = _cli(head[0], "--json", *head[1:], "--", target)
    assert r.returncode == 2 and target in json.loads(r.stdout)["error"]
    assert len(r.stdout.splitlines()) == 1


def test_exec_failure_comes_back_to_the_parent(tmp_path: Path) -> None:
    """An executable file the kernel will not exec (no ELF header, no #!) fails in the
    child after fork; the message reaches the caller through the close-on-exec pipe."""
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    junk.chmod(0o755)
    with pytest.raises(OSError) as oracle:
        subprocess.run([str(junk)])
    assert oracle.value.errno == errno.ENOEXEC
    res = wait(spawn([str(junk)]))
    assert res.exit_code == 127 and res.not_run
    assert res.error is not None and os.strerror(errno.ENOEXEC) in res.error
    ok = wait(spawn(["sh", "-c", "exit 127"]))  # a command's own 127 is not a failure to run
    assert ok.exit_code == 127 and ok.error is None and not ok.not_run


def test_run_reports_an_exec_failure_once(allow: str, confine_ok: None, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01garbage")
    junk.chmod(0o755)
    r = _cli("run", "--json", allow, "--", str(junk))
    assert r.returncode == 2
    assert os.strerror(errno.ENOEXEC) in json.loads(r.stdout)["error"]
    assert r.stderr == ""


@pytest.mark.kernel
@pytest.mark.parametrize("dashdash", [False, True], ids=["bare", "dashdash"])
def test_trace_passes_the_commands_options_through(dashdash: bool, tmp_path: Path) -> None:
    tail = ["-x", "--json", "-o", "elsewhere"]
    out = tmp_path / "p.json"
    r = _cli("trace", "-o", str(out), *(["--"] if dashdash else []), *ECHO_ARGS, *tail)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "".join(f"{a}," for a in tail)
    assert "execve" in json.loads(out.read_text())["syscalls"][0]["names"]
    assert not (tmp_path / "elsewhere").exists() and not Path("elsewhere").exists()


# ---- the split itself, as a property (in-process: click's parser, nothing runs) ----------

WORD = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
#: our options in any order, each with a value where it takes one
OURS = st.lists(
    st.sampled_from([["--log"], ["--json"], ["--cap", "CAP_X"], ["--kernel=6.1"]]), max_size=4
)


def _parsed(cmd, args: list[str]) -> dict:
    with cmd.make_context(cmd.name, list(args)) as ctx:
        return ctx.params


@given(OURS, st.lists(WORD, min_size=1, max_size=6))
def test_after_dashdash_every_word_is_the_commands(ours, tail) -> None:
    flat = [w for o in ours for w in o]
    params = _parsed(run_cmd, ["prof.json", *flat, "--", *tail])
    assert list(params["command"]) == tail and params["profile"] == "prof.json"
    assert params["log"] == (["--log"] in ours) and params["as_json"] == (["--json"] in ours)
    params = _parsed(trace_cmd, ["-o", "p.json", "--", *tail])
    assert list(params["command"]) == tail and params["output"] == "p.json"


@given(OURS, st.text("abc/._", min_size=1, max_size=8), st.lists(WORD, max_size=6))
def test_the_command_starts_at_its_first_word(ours, first, rest) -> None:
    flat = [w for o in ours for w in o]
    params = _parsed(run_cmd, [*flat, "prof.json", first, *rest])
    assert list(params["command"]) == [first, *rest]
    assert params["as_json"] == (["--json"] in ours)
