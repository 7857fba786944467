"""Profiles: the OCI/Docker JSON format, the Python builder, bad input, the CLI's answers.

Decisions checked here come from running the compiled program (the same path the CLI
uses); that they are libseccomp's is tests/test_seccomp_oracle.py's job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import NotSupported, ProfileError
from bpfkit.seccomp import Arg, Profile, compile_profile, load_profile, parse_profile
from bpfkit.seccomp import actions as act
from bpfkit.seccomp.check import seccomp_data, validate
from bpfkit.seccomp.profile import DockerContext
from bpfkit.seccomp.tables import ARCHES, table


def _run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a real process (exit codes, streams)."""
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "seccomp", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in-process (click's runner): same code path, no interpreter start-up."""
    from click.testing import CliRunner

    from bpfkit.cli.main import cli

    r = CliRunner().invoke(cli, ["seccomp", *args])
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def _write(tmp_path, doc) -> str:
    p = tmp_path / "p.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


SIMPLE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 13,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
        },
        {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
    ],
}


def test_json_profile_decisions() -> None:
    flt = compile_profile(parse_profile(SIMPLE, DockerContext.default("x86_64")), "x86_64")
    assert flt.check("read").to_json() == {"ret": act.RET_ALLOW, "action": "allow", "data": 0}
    assert flt.check("mkdir").to_json() == {
        "ret": act.RET_ERRNO | 13,
        "action": "errno",
        "data": 13,
    }
    assert flt.check("personality", [8]).action == "allow"
    assert flt.check("personality", [8 | 1 << 32]).action == "errno"  # the high half counts
    assert flt.check("personality", [9]).action == "errno"
    assert flt.check("kill").action == "kill_process"
    assert flt.check("ptrace").to_json() == {"ret": act.RET_TRACE | 5, "action": "trace", "data": 5}
    # i386: its own numbers; the high half of an argument is not compared
    assert flt.check("read", arch="i386").action == "allow"
    assert flt.check("personality", [8 | 1 << 32], arch="i386").action == "allow"
    # an architecture not in the profile: the bad-architecture action (KILL_THREAD)
    assert flt.check(63, arch="aarch64").to_json()["action"] == "kill_thread"
    # x32 numbers on x86_64 without x32 in the profile: bad architecture too
    assert flt.check(table("x32")["read"], arch="x86_64").action == "kill_thread"
    validate(flt.program)


def test_python_builder_roundtrips_through_json() -> None:
    p = Profile.new("errno", errno=1, architectures=["x86"])
    p.add("allow", ["read", "write", "exit_group"])
    p.add("errno", "openat", Arg(2, "masked_eq", 0o3, 0o1), errno=13)
    p.add("kill_process", "ptrace")
    again = parse_profile(json.loads(json.dumps(p.to_json())), DockerContext.default("x86_64"))
    a, b = compile_profile(p, "x86_64"), compile_profile(again, "x86_64")
    assert a.program == b.program
    assert a.check("openat", [0, 0, os.O_WRONLY]).to_json()["data"] == 13
    assert a.check("openat", [0, 0, os.O_RDONLY]).to_json()["data"] == 1


def test_rule_with_default_action_is_skipped_and_repeated_index_splits() -> None:
    # runc: a rule equal to the default action is dropped; two conditions on one index
    # become two rules (either matches)
    prof = parse_profile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {
                    "names": ["write"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [
                        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                    ],
                },
            ],
        },
        DockerContext.default("x86_64"),
    )
    assert len(list(prof.libseccomp_calls())) == 2
    flt = compile_profile(prof, "x86_64")
    assert [flt.check("write", [fd]).action for fd in (0, 1, 2, 3)] == [
        "allow",
        "errno",
        "errno",
        "allow",
    ]


def test_docker_default_resolves_includes_like_docker() -> None:
    x86 = load_profile("docker-default", arch="x86_64", kernel="6.1")
    arm = load_profile("docker-default", arch="aarch64", kernel="6.1")
    assert x86.architectures == ["x86_64", "i386", "x32"]
    assert arm.architectures == ["aarch64"] and arm.warnings  # no table for SCMP_ARCH_ARM
    f = compile_profile(x86, "x86_64")
    assert f.check("arch_prctl").action == "allow"  # includes.arches amd64
    assert f.check("chroot").action == "allow"  # CAP_SYS_CHROOT is a default capability
    assert f.check("reboot").action == "errno"  # CAP_SYS_BOOT is not
    assert f.check("clone3").to_json()["data"] == 38  # ENOSYS without CAP_SYS_ADMIN
    assert f.check("clone", [0x10000000]).action == "errno"  # CLONE_NEWUSER
    assert f.check("clone", [0x11]).action == "allow"
    assert f.check("socket", [40]).action == "errno"  # AF_VSOCK
    # with CAP_SYS_ADMIN, Docker drops the clone/clone3 restrictions
    admin = compile_profile(
        load_profile("docker-default", arch="x86_64", caps=["SYS_ADMIN"]), "x86_64"
    )
    assert admin.check("clone", [0x10000000]).action == "allow"
    assert admin.check("mount").action == "allow"
    # minKernel 4.8 for ptrace
    old = compile_profile(load_profile("docker-default", arch="x86_64", kernel="4.4"), "x86_64")
    assert old.check("ptrace").action == "errno"
    assert f.check("ptrace").action == "allow"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ("{", "malformed JSON"),
        ("[]", "profile"),
        ({}, "defaultAction"),
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "defaultAction"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "defaultErrnoRet"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}, "architectures[0]"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]}, "syscalls[0].names[0]"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_MAYBE"}]}, "syscalls[0].action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}, "syscalls[0].action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}, "syscalls[0].args[0].index"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}, "syscalls[0].args[0].op"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}, "syscalls[0].args[0].value"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 3}]}, "syscalls[0].errnoRet"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read", "action": "SCMP_ACT_ERRNO"}]}, "syscalls[0].names"),
    ],
)  # fmt: skip
def test_bad_profiles_exit_2_naming_the_field(tmp_path, doc, field) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(ProfileError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_profile(path, arch="x86_64")
    r = _cli("check", path, "read", "--json")
    assert r.returncode == 2, r
    out = json.loads(r.stdout)
    assert field in out["error"]
    assert r.stderr == "" and "Traceback" not in r.stdout
    r = _cli("compile", path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert field in r.stderr


def test_notify_is_not_supported(tmp_path) -> None:
    doc = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}],
    }
    with pytest.raises(NotSupported, match="NOTIFY"):
        parse_profile(doc, DockerContext.default("x86_64"))
    r = _cli("compile", _write(tmp_path, doc))
    assert r.returncode == 2 and "not" in r.stderr and "NOTIFY" in r.stderr


def test_unknown_syscall_in_check_is_one_line(tmp_path) -> None:
    path = _write(tmp_path, SIMPLE)
    r = _run_cli("check", path, "frobnicate")
    assert r.returncode == 2
    assert r.stderr.strip() == "bpfkit: error: unknown syscall 'frobnicate'"
    r = _cli("check", path, "read", "1", "2", "3", "4", "5", "6", "7")
    assert r.returncode == 2 and "at most 6" in r.stderr


def test_cli_check_and_batch(tmp_path) -> None:
    path = _write(tmp_path, SIMPLE)
    r = _run_cli("check", path, "personality", "8", "--arch", "x86_64", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"ret": act.RET_ALLOW, "action": "allow", "data": 0}
    cases = [
        {"syscall": "read"},
        {"nr": 2},
        {"syscall": "personality", "args": [8]},
        {"syscall": "personality", "args": [8], "arch": "i386"},
        {"nr": 3, "arch": ARCHES["i386"].audit},
        {"nr": 63, "arch": "aarch64"},
    ]
    batch = tmp_path / "cases.jsonl"
    batch.write_text("".join(json.dumps(x) + "\n" for x in cases))
    r = _cli("check", path, "--batch", str(batch), "--json")
    assert r.returncode == 0, r.stderr
    got = [x["action"] for x in json.loads(r.stdout)["results"]]
    assert got == ["allow", "errno", "allow", "allow", "allow", "kill_thread"]
    assert json.loads(r.stdout)["results"][1]["data"] == 13
    batch.write_text('{"syscall": "read"}\n{"args": [1]}\n')
    r = _cli("check", path, "--batch", str(batch), "--json")
    assert r.returncode == 2 and ":2:" in json.loads(r.stdout)["error"]


def test_cli_compile_formats(tmp_path) -> None:
    from bpfkit.classic.insn import decode

    path = _write(tmp_path, SIMPLE)
    out = tmp_path / "f.bpf"
    r = _run_cli("compile", path, "--format", "raw", "-o", str(out), "--target", "x86_64")
    assert r.returncode == 0, r.stderr
    prog = decode(out.read_bytes())
    flt = compile_profile(load_profile(path, arch="x86_64"), "x86_64")
    assert prog == flt.program
    r = _cli("compile", path, "--format", "json", "--target", "x86_64", "--json")
    doc = json.loads(r.stdout)
    assert doc["insns"] == len(prog) and [list(i) for i in prog] == doc["program"]
    r = _cli("compile", path, "--target", "x86_64")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(prog)
    assert "ret" in r.stdout and "jeq" in r.stdout


# Hostile input: random JSON never gives a traceback; the answer is a profile or ProfileError.
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.text(max_size=12),
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=10), ch, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls"]
)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "names": st.lists(
            st.sampled_from(["read", "write", "socket", "bogus", ""]) | _json, max_size=3
        ),
        "action": st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "x"])
        | _json,
        "errnoRet": st.integers(-2, 70000) | _json,
        "args": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": st.integers(-1, 7) | _json,
                    "value": st.integers(-1, 2**64) | _json,
                    "valueTwo": st.integers(-1, 2**64),
                    "op": st.sampled_from(
                        ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_LE", "nope"]
                    ),
                },
            ),
            max_size=3,
        ),
        "includes": _json,
        "excludes": _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(_keys, _json, max_size=4)
    | st.fixed_dictionaries(
        {"defaultAction": st.sampled_from(["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW"])},
        optional={"syscalls": st.lists(_entry, max_size=4), "architectures": _json},
    )
)
def test_hostile_profiles_fail_cleanly(doc) -> None:
    try:
        prof = parse_profile(doc, DockerContext.default("x86_64"))
        flt = compile_profile(prof, "x86_64")
    except (ProfileError, NotSupported):
        return
    validate(flt.program)
    assert flt.check("read").action in {"allow", "errno", "kill_thread", "kill_process"}


def test_seccomp_data_layout() -> None:
    d = seccomp_data(0xFFFFFFFF, 0xC000003E, [1, 2 << 32])
    assert len(d) == 64
    assert d[0:4] == b"\xff\xff\xff\xff" and d[4:8] == (0xC000003E).to_bytes(4, "little")
    assert d[16:24] == (1).to_bytes(8, "little") and d[24:32] == (2 << 32).to_bytes(8, "little")
