"""``seccomp trace``: a profile written by watching a command with eBPF runs it unchanged.

The tracer is a BPF program on ``raw_syscalls:sys_enter`` loaded through the kernel
backend; the oracle is the kernel again: the written allow-list profile, installed with
seccomp(2), must let the same command (and its children) run to the same result, and
must deny a call the command never made.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "seccomp", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_trace_round_trip(tmp_path) -> None:
    out = tmp_path / "traced.json"
    work = tmp_path / "f"
    script = f"echo hi > {work}; cat {work}; ls / >/dev/null; (sleep 0; echo child) | cat"
    r = _cli("trace", "-o", str(out), "--json", "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["command"]["exit_code"] == 0
    names = {n for v in info["syscalls"].values() for n in v}
    # the shell, its children (fork/vfork/clone followed) and exec all show up
    assert {"execve", "write", "exit_group"} <= names
    assert "getdents64" in names  # made by ls, a child of sh
    prof = json.loads(out.read_text())
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
    work.unlink()
    r2 = _cli("run", str(out), "--", "sh", "-c", script)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == "hi\nchild\n"
    # a call the command never made is denied under the traced profile
    r3 = _cli("run", str(out), "--", "mkdir", str(tmp_path / "d"))
    assert r3.returncode != 0 and not (tmp_path / "d").exists()


def test_trace_python_api_counts_calls() -> None:
    from bpfkit.seccomp.trace import trace_command

    res = trace_command(["true"])
    assert res.run is not None and res.run.status == 0
    names = {n for v in res.names.values() for n in v}
    assert "execve" in names and "exit_group" in names
    # execvp tries each PATH entry: one execve per directory up to the one holding true
    assert res.calls[(next(iter(res.names)), _nr("execve"))] >= 1


def _nr(name: str) -> int:
    from bpfkit.seccomp.tables import native_arch, syscall_number

    nr = syscall_number(native_arch(), name)
    assert nr is not None
    return nr


def test_trace_pid_follows_a_running_process() -> None:
    from bpfkit.seccomp.trace import trace_pid

    proc = subprocess.Popen(["sh", "-c", "read x; ls / > /dev/null"], stdin=subprocess.PIPE)

    def go() -> None:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()

    try:
        res = trace_pid(proc.pid, ready=go, duration=60)
    finally:
        proc.stdin.close()
        proc.wait()
    names = {n for v in res.names.values() for n in v}
    # ls is a child of the traced shell: fork followed, exec and directory reads seen
    assert {"execve", "getdents64"} <= names, names


def test_trace_cli_errors() -> None:
    r = _cli("trace")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = _cli("trace", "--default-action", "allow", "--", "true")
    assert r.returncode == 2
    r = _cli("trace", "--pid", "999999999", "--json")
    assert r.returncode == 1 and "error" in json.loads(r.stdout)
