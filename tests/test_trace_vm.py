"""``bpfkit trace --vm``: scripts on bpfkit's userspace VM, fired by an event stream.

Oracles: bpftrace (``BEGIN`` scripts: the VM's output equals bpftrace's), the kernel
(a stream recorded with ``--record`` from a real run, replayed on the VM, gives the
kernel run's records), and for hand-written streams the values computed here from the
events themselves. The hermetic tests need neither root, nor tracefs, nor ``bpf()``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.cli.main import cli

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))
BPFTRACE = shutil.which("bpftrace")


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def vm(script: str, *args: str, fmt: str = "json") -> tuple[int, str, str]:
    """Run ``bpfkit trace --vm`` in this process: (exit code, stdout, stderr)."""
    r = CliRunner().invoke(cli, ["trace", "--vm", "-f", fmt, *args, "-e", script])
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    return r.exit_code, r.stdout, r.stderr


def kernel(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "trace", "-f", "json", *args, "-e", script],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """No bpf() and no tracefs: what an unprivileged user on any machine has."""
    import bpfkit.kernel.sys_core as core
    import bpfkit.trace.probes as probes
    from bpfkit.errors import NotSupported

    def no_bpf(*a: object, **k: object) -> int:
        raise AssertionError("--vm called bpf()")

    def no_tracefs() -> str:
        raise NotSupported("no tracefs")

    monkeypatch.setattr(core, "bpf", no_bpf)
    monkeypatch.setattr(probes, "_events_dir", no_tracefs)
    yield
    probes.use_formats({})


# ---- BEGIN scripts: the VM against bpftrace ----------------------------------------------

BEGIN_SCRIPTS = [
    'BEGIN { printf("%d %u %x %ld %c|%-6s|%6s|%05d %%\\n", 1 << 40, -1, 255, -7, 66, "ab", "cd", 42); exit(); }',
    "BEGIN { @a = count(); @b = sum(-5); @c = min(3); @d = max(9); @e = avg(10); @e = avg(5); exit(); }",
    "BEGIN { @h = hist(0); @h = hist(-1); @h = hist(1); @h = hist(1000); @h = hist(1 << 20); exit(); }",
    "BEGIN { @l = lhist(-1, 0, 100, 10); @l = lhist(55, 0, 100, 10); @l = lhist(100, 0, 100, 10); exit(); }",
    'BEGIN { @k[1, "a b"] = count(); @k[2, "c"] = count(); @k[2, "c"] = count(); @s["x"] = stats(7); @s["y"] = stats(-3); exit(); }',
    "BEGIN { $i = 0; while ($i < 10) { $i++; if ($i == 3) { continue; } @w = sum($i); } @x[5] = 1; @x[1] = 2; delete(@x[1]); exit(); }",
    'BEGIN { @t = (1, "two"); @i = -3; print(@i); print(5); unroll(3) { @u = count(); } if ("abc" != "abd") { @ne = 1; } exit(); }',
]


@pytest.mark.kernel
@pytest.mark.parametrize("script", BEGIN_SCRIPTS)
def test_begin_scripts_on_the_vm_match_bpftrace(script: str) -> None:
    if BPFTRACE is None:
        pytest.skip("bpftrace (the oracle) is not installed")
    for fmt in ("json", "text"):
        b = subprocess.run([BPFTRACE, "-f", fmt, "-e", script], capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
        if b.returncode != 0:
            pytest.skip(f"the oracle failed here: {b.stderr.strip()[:200]}")
        code, out, err = vm(script, fmt=fmt)
        assert code == 0, err
        if fmt == "json":
            assert records(out) == records(b.stdout)
        else:
            assert out == b.stdout


# ---- a kernel run recorded, replayed on the VM --------------------------------------------

DD = "/usr/bin/dd if=/etc/hostname of=/dev/null bs=1 count=5 status=none"
RECORDED = [
    # str() of a user pointer (recorded reads), printf, hist, maps keyed by strings
    "tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @o[str(args->filename)] = count();"
    ' printf("%s %d\\n", str(args->filename), args->flags); }'
    " tracepoint:syscalls:sys_enter_read /pid == cpid/ { @r = hist(args->count); @c[comm, tid == pid] = count(); }",
    # exit() in the middle of the stream; elapsed and nsecs from the stream's clock
    "tracepoint:syscalls:sys_enter_read /pid == cpid/ { @n++; @t = max(elapsed > 0);"
    ' if (@n == 3) { printf("third %d\\n", args->count); exit(); } }',
    # raw tracepoint arguments, a __data_loc string read through the context, END
    "rawtracepoint:sys_enter /pid == cpid/ { @raw[arg1] = count(); }"
    ' tracepoint:sched:sched_process_exec /pid == cpid/ { printf("exec %s\\n", str(args->filename)); }'
    ' END { printf("end\\n"); }',
    # uprobe registers and func, perf events
    "uprobe:/lib/x86_64-linux-gnu/libc.so.6:open64 /pid == cpid/ { @u[func] = count(); }"
    " profile:hz:997 /pid == cpid/ { @p = count(); } interval:ms:20 { @i = count(); }",
]


@pytest.mark.kernel
@pytest.mark.parametrize(
    "script", RECORDED, ids=["str-hist", "exit", "rawtp-dataloc", "uprobe-perf"]
)
def test_recorded_kernel_run_replays_the_same(script: str, tmp_path: Path) -> None:
    rec = tmp_path / "events.jsonl"
    k = kernel(script, "--record", str(rec), "-c", DD)
    if k.returncode != 0 and "uprobe" in script and "open64" in k.stderr:
        pytest.skip(f"libc here has no open64: {k.stderr.strip()[:200]}")
    assert k.returncode == 0, k.stderr
    lines = rec.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "header" and len(lines) > 1
    out = tmp_path / "vm.json"
    code, _, err = vm(script, "--replay", str(rec), "-o", str(out))
    assert code == 0, err
    ka, va = records(k.stdout), records(out.read_text())
    assert ka == va
    assert any(r["type"] in ("map", "hist", "printf") for r in ka)


# ---- hand-written streams, no kernel at all -------------------------------------------------

FORMAT = """name: request
ID: 9999
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int size;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char name[16];\toffset:12;\tsize:16;\tsigned:0;
\tfield:const char * path;\toffset:32;\tsize:8;\tsigned:0;

print fmt: "size=%d", REC->size
"""


def _stream(tmp_path: Path, events: list[dict], **header: object) -> Path:
    p = tmp_path / "events.jsonl"
    head = {"type": "header", "version": 1, "start_ns": 0, "ncpus": 2,
            "formats": {"demo:request": FORMAT}, **header}  # fmt: skip
    p.write_text("\n".join(json.dumps(e) for e in [head, *events]) + "\n")
    return p


def _events(n: int) -> list[dict]:
    out = []
    for i in range(n):
        out.append({
            "probe": "tracepoint:demo:request", "pid": 100 + i % 3, "tid": 100 + i % 3,
            "comm": ["web", "db", "cache"][i % 3], "cpu": i % 2, "nsecs": (i + 1) * 250_000_000,
            "args": {"size": 10 * i - 20, "name": f"req{i}"}, "mem": {"4096": f"/p/{i % 4}"},
        })  # fmt: skip
        out[-1]["args"]["path"] = 4096
    return out


def test_synthetic_stream_without_a_kernel(tmp_path: Path, no_kernel: None) -> None:
    evs = _events(12)
    path = _stream(tmp_path, evs)
    script = (
        "tracepoint:demo:request /args->size >= 0/ { @bytes[comm] = sum(args->size);"
        " @paths[str(args->path)] = count(); @cpu[cpu] = count();"
        ' printf("%d %s %s %s\\n", pid, comm, args->name, str(args->path)); }'
        " interval:s:1 { @ticks = count(); }"
    )
    code, out, err = vm(script, "--replay", str(path))
    assert code == 0, err
    recs = records(out)
    kept = [e for e in evs if e["args"]["size"] >= 0]
    printed = [r["data"] for r in recs if r["type"] == "printf"]
    assert printed == [f"{e['pid']} {e['comm']} {e['args']['name']} /p/{evs.index(e) % 4}\n"
                       for e in kept]  # fmt: skip
    maps = {k: v for r in recs if r["type"] == "map" for k, v in r["data"].items()}
    want_bytes: dict[str, int] = {}
    for e in kept:
        want_bytes[e["comm"]] = want_bytes.get(e["comm"], 0) + e["args"]["size"]
    assert maps["@bytes"] == want_bytes
    assert sum(maps["@paths"].values()) == len(kept)
    assert maps["@cpu"] == {str(c): sum(1 for e in kept if e["cpu"] == c) for c in (0, 1)}
    # ticks at 1 s, 2 s ... up to the last event's clock (3 s)
    assert maps["@ticks"] == evs[-1]["nsecs"] // 10**9


def test_kprobe_script_on_the_vm(tmp_path: Path, no_kernel: None) -> None:
    """This kernel has no kprobes; the VM runs a kprobe tool on synthetic events."""
    evs = [{"probe": "kprobe:do_sys_openat2", "pid": 7, "comm": "cat", "args": [-100, 8192],
            "mem": {"8192": "/etc/motd"}},
           {"probe": "kretprobe:do_sys_openat2", "pid": 7, "comm": "cat", "retval": 3},
           {"probe": "kretprobe:do_sys_openat2", "pid": 8, "comm": "ls", "retval": -2}]  # fmt: skip
    path = _stream(tmp_path, evs)
    script = (
        'kprobe:do_sys_openat2 { printf("%s %s\\n", comm, str(arg1)); }'
        " kretprobe:do_sys_openat2 { @ret[comm] = retval; @fails = sum((int64)retval < 0); }"
    )
    code, out, err = vm(script, "--replay", str(path))
    assert code == 0, err
    recs = records(out)
    assert [r["data"] for r in recs if r["type"] == "printf"] == ["cat /etc/motd\n"]
    maps = {k: v for r in recs if r["type"] == "map" for k, v in r["data"].items()}
    assert maps["@ret"] == {"cat": 3, "ls": 2**64 - 2} and maps["@fails"] == 1


def test_exit_stops_the_stream_and_end_runs(tmp_path: Path, no_kernel: None) -> None:
    path = _stream(tmp_path, _events(9))
    script = (
        "tracepoint:demo:request { @n++; if (@n == 4) { exit(); } }"
        ' END { printf("end at %d\\n", @n); }'
    )
    code, out, err = vm(script, "--replay", str(path), fmt="text")
    assert code == 0, err
    assert "end at 4\n" in out and "@n: 4\n" in out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--replay", "{path}"], "--replay needs --vm"),
        (["--vm", "-c", "/bin/true"], "cannot be combined with --vm"),
        (["--vm", "--record", "x.jsonl"], "cannot be combined with --vm"),
    ],
)
def test_flag_combinations(args: list[str], needle: str, tmp_path: Path) -> None:
    path = _stream(tmp_path, [])
    argv = ["trace", *[a.replace("{path}", str(path)) for a in args], "-e", "BEGIN { exit(); }"]
    r = CliRunner().invoke(cli, argv)
    assert r.exit_code == 2 and needle in r.stderr


@pytest.mark.parametrize(
    "line, needle",
    [
        ("{not json", "not JSON"),
        ('["a list"]', "JSON object"),
        ('{"pid": 1}', '"probe"'),
        ('{"probe": "BEGIN", "pid": -1}', '"pid"'),
        ('{"probe": "tracepoint:demo:request", "ctx": "zz"}', '"ctx" is not hex'),
    ],
)
def test_bad_streams_are_reported(line: str, needle: str, tmp_path: Path, no_kernel: None) -> None:
    p = _stream(tmp_path, [])
    p.write_text(p.read_text() + line + "\n")
    code, out, err = vm("tracepoint:demo:request { @ = count(); }", "--replay", str(p), fmt="text")
    assert code == 2, (out, err)
    assert needle in err


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet='{}[]":,0123456789abcdefprobectxmemnsx- \\', max_size=40),
                max_size=4))  # fmt: skip
def test_junk_streams_never_crash(lines: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.jsonl"
        p.write_text("\n".join(lines))
        code, _, _ = vm("BEGIN { @ = 1; }", "--replay", str(p), fmt="text")
        assert code in (0, 1, 2)
