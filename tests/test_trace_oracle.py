"""``bpfkit trace`` against bpftrace 0.17 (the oracle): same scripts, same workloads, same output.

Each case runs a script under both tools on a deterministic ``-c`` workload and compares
the ``-f json`` records (and, for some, the text output byte for byte). ``comm`` of a
BEGIN probe is the tracer's own process name, so scripts that print it in BEGIN are
avoided.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

BPFTRACE = shutil.which("bpftrace")
DD = "/usr/bin/dd if=/dev/zero of=/dev/null bs=1 count={n} status=none"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_bpfkit(script: str, *args: str, fmt: str = "json") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "trace", "-f", fmt, *args, "-e", script],
        capture_output=True, text=True, env=_env(), timeout=120, check=False,
    )  # fmt: skip


def run_bpftrace(script: str, *args: str, fmt: str = "json") -> subprocess.CompletedProcess:
    if BPFTRACE is None:
        pytest.skip("bpftrace (the oracle) is not installed")
    return subprocess.run(
        [BPFTRACE, "-f", fmt, *args, "-e", script],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def both(script: str, *args: str, fmt: str = "json") -> tuple[str, str]:
    a = run_bpfkit(script, *args, fmt=fmt)
    assert a.returncode == 0, a.stderr
    b = run_bpftrace(script, *args, fmt=fmt)
    if b.returncode != 0 and "RLIMIT" not in b.stderr:
        pytest.skip(f"the oracle failed here: {b.stderr.strip()[:200]}")
    return a.stdout, b.stdout


BEGIN_SCRIPTS = [
    'BEGIN { printf("hello\\n"); exit(); }',
    'BEGIN { printf("%d %u %x %ld %c|%-6s|%6s|%05d %%\\n", 1 << 40, -1, 255, -7, 66, "ab", "cd", 42); exit(); }',
    "BEGIN { @a = count(); @b = sum(-5); @c = min(3); @d = max(9); @e = avg(10); @e = avg(5); exit(); }",
    "BEGIN { @h = hist(0); @h = hist(-1); @h = hist(1); @h = hist(1000); @h = hist(1 << 20); exit(); }",
    "BEGIN { @l = lhist(-1, 0, 100, 10); @l = lhist(55, 0, 100, 10); @l = lhist(100, 0, 100, 10); exit(); }",
    'BEGIN { @k[1, "a b"] = count(); @k[2, "c"] = count(); @k[2, "c"] = count(); exit(); }',
    'BEGIN { @s["x"] = stats(7); @s["x"] = stats(8); @s["y"] = stats(-3); exit(); }',
    'BEGIN { @t = (1, "two"); @str["k"] = "v"; @i = -3; print(@i); print(5); print("s"); exit(); }',
    "BEGIN { $x = 5; $x += 3; $x++; $y = $x > 8 ? $x * 2 : 0; @r = $y; @m = 7 % 3; @d = -7 / 2; exit(); }",
    "BEGIN { $i = 0; while ($i < 10) { $i++; if ($i == 3) { continue; } @w = sum($i); } exit(); }",
    "BEGIN { unroll(3) { @u = count(); } @z = count(); zero(@z); @c = 1; clear(@c); exit(); }",
    'BEGIN { if ("abc" == "abc") { @eq = 1; } if ("abc" != "abd") { @ne = 1; } exit(); }',
    "BEGIN { @x[5] = 1; @x[1] = 2; @x[3] = 3; delete(@x[1]); print(@x); exit(); }",
    "BEGIN { @big = lhist(2048, 0, 4096, 1024); @shift = (1 << 10) >> 2; @neg = -(3 - 5); exit(); }",
]


@pytest.mark.parametrize("script", BEGIN_SCRIPTS)
def test_begin_scripts_json_and_text(script: str) -> None:
    a, b = both(script)
    assert records(a) == records(b)
    a, b = both(script, fmt="text")
    assert a == b


WORKLOAD_SCRIPTS = [
    # syscalls with a known count: dd reads fd 0 count times, 1 byte each
    "tracepoint:syscalls:sys_enter_read /pid == cpid && args->fd == 0/ { @reads[comm] = count();"
    " @bytes = sum(args->count); @h = hist(args->count); @fd[args->fd] = count(); }",
    "tracepoint:syscalls:sys_enter_read /pid == cpid && args->fd == 0/ { @fd0[tid] = 1; }"
    " tracepoint:syscalls:sys_exit_read /pid == cpid && @fd0[tid]/ { @ret = lhist(args->ret, 0, 4, 1);"
    " delete(@fd0[tid]); }",
    "tracepoint:syscalls:sys_enter_write /pid == cpid/ { @w[args->fd] = count(); }"
    " tracepoint:syscalls:sys_enter_read /pid == cpid/ { @r[tid == pid] = count(); }",
    "tracepoint:raw_syscalls:sys_enter /pid == cpid && args->id == 0/ { @sc[args->id] = count(); }",
    "tracepoint:syscalls:sys_enter_read /pid == cpid/ { @s = stats(args->count); @mx = max(args->fd);"
    " @mn = min(args->fd); @a = avg(args->count); }",
]


@pytest.mark.parametrize("script", WORKLOAD_SCRIPTS)
def test_tracepoint_scripts_on_a_workload(script: str) -> None:
    a, b = both(script, "-c", DD.format(n=500))
    ra, rb = records(a), records(b)
    assert ra == rb


def test_printf_streams_events_in_order() -> None:
    script = (
        "tracepoint:syscalls:sys_enter_read /pid == cpid && args->fd == 0/ "
        '{ @n = @n + 1; if (@n <= 5) { printf("read %d %d\\n", @n, args->count); } }'
    )
    a, b = both(script, "-c", DD.format(n=20))
    pa = [r for r in records(a) if r["type"] == "printf"]
    assert pa == [r for r in records(b) if r["type"] == "printf"]
    assert len(pa) == 5


def test_output_file_and_end_probe(tmp_path) -> None:
    out = tmp_path / "o.txt"
    r = run_bpfkit(
        'BEGIN { @x = 1; } END { printf("end %d\\n", @x); }',
        "-o",
        str(out),
        "-c",
        "/bin/true",
        fmt="text",
    )
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "end 1\n" in text and "@x: 1" in text
