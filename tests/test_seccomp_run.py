"""``seccomp run``: the kernel enforces what was compiled (live confinement).

The filter is installed in a forked child (never in the test process). The kernel is the
oracle: a denied mkdir fails with EPERM and creates nothing, KILL_PROCESS ends the
command with SIGSYS, Docker's default profile runs ordinary commands.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from bpfkit.seccomp import compile_profile, load_profile, parse_profile
from bpfkit.seccomp.profile import DockerContext
from bpfkit.seccomp.tables import native_arch


def _seccomp_filter_supported() -> tuple[bool, str]:
    """Probe: can a child of this process install a trivial allow-all filter?"""
    code = (
        "import sys; sys.path[:0] = " + repr(sys.path) + "\n"
        "from bpfkit.seccomp import Profile, compile_profile\n"
        "from bpfkit.seccomp.install import run\n"
        "p = Profile.new('allow'); p.add('errno', 'acct')\n"
        "r = run(compile_profile(p), ['true'])\n"
        "sys.exit(r.status)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        return True, ""
    return False, f"cannot install a seccomp filter here: {r.stderr.strip()[-200:]}"


@pytest.fixture(scope="module")
def seccomp_ok() -> None:
    ok, why = _seccomp_filter_supported()
    if not ok:
        if os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1":
            pytest.fail(f"BPFKIT_REQUIRE_KERNEL=1 but {why}", pytrace=False)
        pytest.skip(why)


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "seccomp", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


DENY = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["syslog"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
    ],
}


def test_denied_mkdir_fails_with_eperm_and_creates_nothing(seccomp_ok, tmp_path) -> None:
    prof = tmp_path / "deny.json"
    prof.write_text(json.dumps(DENY))
    target = tmp_path / "made"
    r = _cli("run", str(prof), "--", "mkdir", str(target))
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr
    assert not target.exists()
    # the same command without the filter works: the filter made the difference
    assert subprocess.run(["mkdir", str(target)]).returncode == 0 and target.is_dir()


def test_errno_value_reaches_the_command(seccomp_ok, tmp_path) -> None:
    flt = compile_profile(parse_profile(DENY, DockerContext.default()))
    from bpfkit.seccomp.install import run

    code = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"r = libc.syscall({_nr('acct')}, 0)\n"
        "sys.exit(ctypes.get_errno() if r == -1 else 0)\n"
    )
    res = run(flt, [sys.executable, "-c", code])
    assert res.exit_code == 42


def _nr(name: str) -> int:
    from bpfkit.seccomp.tables import syscall_number

    nr = syscall_number(native_arch(), name)
    assert nr is not None
    return nr


def test_kill_process_ends_the_command_with_sigsys(seccomp_ok, tmp_path) -> None:
    prof = tmp_path / "deny.json"
    prof.write_text(json.dumps(DENY))
    code = f"import ctypes; ctypes.CDLL(None).syscall({_nr('syslog')}, 3, 0, 0)"
    r = _cli("run", "--json", str(prof), "--", sys.executable, "-c", code)
    assert r.returncode == 128 + signal.SIGSYS, r
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["signal"] == "SIGSYS" and out["exit_code"] is None


def test_exit_status_passes_through(seccomp_ok, tmp_path) -> None:
    prof = tmp_path / "deny.json"
    prof.write_text(json.dumps(DENY))
    r = _cli("run", str(prof), "--", "sh", "-c", "exit 7")
    assert r.returncode == 7


@pytest.mark.parametrize(
    "cmd",
    [
        ["ls", "-a", "/usr"],
        ["cat", "/etc/os-release"],
        [
            "sh",
            "-c",
            "echo hello | tr a-z A-Z; uname -a; id; date +%s; sort </etc/passwd | head -3",
        ],
    ],
)
def test_docker_default_runs_coreutils(seccomp_ok, cmd) -> None:
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} not installed")
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    r = _cli("run", "docker-default", "--", *cmd)
    assert r.returncode == plain.returncode == 0, r.stderr
    if cmd[0] != "sh":
        assert r.stdout == plain.stdout


def test_docker_default_denies_what_docker_denies(seccomp_ok, tmp_path) -> None:
    # unshare(CLONE_NEWUSER) needs CAP_SYS_ADMIN in Docker's profile: EPERM (errno 1)
    code = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.unshare(0x10000000)\n"
        "sys.exit(ctypes.get_errno() if r == -1 else 0)\n"
    )
    r = _cli("run", "docker-default", "--", sys.executable, "-c", code)
    assert r.returncode == 1, r.stderr


def test_bad_profile_installs_nothing(seccomp_ok, tmp_path) -> None:
    prof = tmp_path / "bad.json"
    prof.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}'
    )
    marker = tmp_path / "ran"
    r = _cli("run", str(prof), "--", "touch", str(marker))
    assert r.returncode == 2
    assert not marker.exists()
    assert r.stderr.count("\n") == 1 and "syscalls[0].action" in r.stderr


def _seccomp_status() -> tuple[str, str]:
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return status["Seccomp"].strip(), status.get("Seccomp_filters", "").strip()


def test_the_test_process_is_not_confined(seccomp_ok) -> None:
    flt = compile_profile(load_profile("docker-default"))
    from bpfkit.seccomp.install import run

    before = _seccomp_status()
    assert run(flt, ["true"]).status == 0
    assert _seccomp_status() == before
