"""``bpfkit trace`` on user processes: usdt probes, usym/ustack, ``-p PID``, the ``-c`` child,
and verifier rejections pointing at the script line.

Oracles: bpftrace 0.17 on the same gcc-built binary with ``<sys/sdt.h>`` probes (records
compared, stack addresses masked: ASLR), the traced program's own output, the kernel's
and bpfkit's verifiers. The binary is compiled here; what it needs (gcc, sys/sdt.h) is
probed, not assumed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfkit.cli.main import cli

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))
BPFTRACE = shutil.which("bpftrace")

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <unistd.h>

static volatile int sink;
static short counter = 7;

__attribute__((noinline)) int work_leaf(int x) {
    sink += x;
    DTRACE_PROBE3(bpfkit, leaf, x, (long)x * -3, counter);
    return sink;
}

__attribute__((noinline)) int work_mid(int x) { return work_leaf(x + 1) + 1; }

/* prog N [DELAY_MS [TAIL_MS]]: N rounds, DELAY_MS apart, then linger TAIL_MS */
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 3;
    int delay = argc > 2 ? atoi(argv[2]) : 0;
    int tail = argc > 3 ? atoi(argv[3]) : 300;
    const char *name = "hello";
    for (int i = 0; i < n; i++) {
        if (delay) usleep(delay * 1000);
        work_mid(i);
        STAP_PROBE2(bpfkit, named, name, i);
        printf("counter %d\n", counter);
        fflush(stdout);
        counter++;
    }
    usleep(tail * 1000);
    return 0;
}
"""


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    gcc = shutil.which("gcc")
    if gcc is None or not os.path.exists("/usr/include/x86_64-linux-gnu/sys/sdt.h") and \
            not os.path.exists("/usr/include/sys/sdt.h"):  # fmt: skip
        pytest.skip("gcc and <sys/sdt.h> (systemtap-sdt-dev) are needed to build the target")
    d = tmp_path_factory.mktemp("usdt")
    (d / "prog.c").write_text(PROGRAM)
    out = d / "prog"
    subprocess.run([gcc, "-O1", "-g", "-fno-omit-frame-pointer", "-o", str(out), str(d / "prog.c")],
                   check=True, capture_output=True)  # fmt: skip
    out.chmod(0o755)
    return str(out)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=SRC)


def bpfkit(
    script: str, *args: str, fmt: str = "json", timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "trace", "-f", fmt, *args, "-e", script],
        capture_output=True, text=True, env=_env(), timeout=timeout, check=False,
    )  # fmt: skip


def bpftrace(script: str, *args: str, fmt: str = "json") -> subprocess.CompletedProcess:
    if BPFTRACE is None:
        pytest.skip("bpftrace (the oracle) is not installed")
    r = subprocess.run([BPFTRACE, "-f", fmt, *args, "-e", script], capture_output=True,
                       text=True, timeout=120, check=False)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"the oracle failed here: {r.stderr.strip()[:200]}")
    return r


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def masked(text: str) -> str:
    """Stack addresses vary with ASLR: mask them (and drop the traced program's output)."""
    text = "".join(t for t in text.splitlines(True) if not t.startswith("counter "))
    return re.sub(r"\b[0-9a-f]{9,16}\b", "ADDR", text)


# ---- usdt ----------------------------------------------------------------------------------


USDT_SCRIPTS = [
    'usdt:{B}:bpfkit:leaf {{ printf("leaf %d %d\\n", arg0, arg1); }}'
    ' usdt:{B}:bpfkit:named {{ printf("named %d\\n", arg1); }}',
    "usdt:{B}:bpfkit:* {{ @[probe] = count(); }}",
    "usdt:{B}:leaf {{ @[probe, arg0] = sum(arg1); @m = min(arg1); }}",
    "usdt:{B}:bpfkit:named /arg1 > 0/ {{ @n = hist(arg1); }} uprobe:{B}:work_* {{ @c = count(); }}",
]


@pytest.mark.kernel
@pytest.mark.parametrize("template", USDT_SCRIPTS, ids=["args", "wildcard", "no-provider", "mixed"])
def test_usdt_matches_bpftrace(template: str, prog: str) -> None:
    script = template.format(B=prog)
    a = bpfkit(script, "-c", f"{prog} 3 0 0")
    assert a.returncode == 0, a.stderr
    b = bpftrace(script, "-c", f"{prog} 3 0 0")
    assert records(a.stdout) == records(b.stdout)


@pytest.mark.kernel
def test_usdt_global_variable_argument(prog: str, tmp_path: Path) -> None:
    """``-2@counter(%rip)``: bpftrace 0.17 cannot read it; the program prints the truth."""
    out = tmp_path / "o.json"
    r = bpfkit(f'usdt:{prog}:bpfkit:leaf {{ printf("%d\\n", arg2); }}', "-o", str(out), "-c",
               f"{prog} 4 0 0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    traced = [int(x["data"]) for x in records(out.read_text()) if x["type"] == "printf"]
    printed = [int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("counter")]
    assert traced == printed and len(printed) == 4


def test_usdt_errors_name_the_probes(prog: str) -> None:
    r = CliRunner().invoke(cli, ["trace", "--dry-run", "-e", f"usdt:{prog}:bpfkit:nope {{ }}"])
    assert r.exit_code == 2 and "bpfkit:leaf" in r.stderr and "bpfkit:named" in r.stderr
    r = CliRunner().invoke(cli, ["trace", "--dry-run", "-e",
                                 f'usdt:{prog}:bpfkit:named {{ printf("%d", arg5); }}'])  # fmt: skip
    assert r.exit_code == 2 and "has 2 argument" in r.stderr


# ---- usym / ustack ---------------------------------------------------------------------------


@pytest.mark.kernel
def test_usym_and_ustack_match_bpftrace(prog: str) -> None:
    script = (
        f'uprobe:{prog}:work_leaf {{ printf("%s|%s\\n", ustack(3), usym(reg("ip"))); }}'
        f' uprobe:{prog}:work_mid {{ printf("[%s]\\n", ustack(perf, 2)); }}'
    )
    a = bpfkit(script, "-c", f"{prog} 2 0 300", fmt="text")
    assert a.returncode == 0, a.stderr
    b = bpftrace(script, "-c", f"{prog} 2 0 300", fmt="text")
    assert masked(a.stdout) == masked(b.stdout)
    assert "work_leaf+0" in a.stdout and f"work_mid+0 ({prog})" in a.stdout


@pytest.mark.kernel
def test_ustack_in_a_map_resolves_after_the_child_exits(prog: str) -> None:
    """bpftrace prints raw addresses here (the process is gone by then); bpfkit keeps the
    mappings of the ``-c`` child it saw alive (here: for 600 ms after its last call)."""
    r = bpfkit(f"uprobe:{prog}:work_leaf {{ @[ustack(2)] = count(); }}", "-c",
               f"{prog} 3 0 600", fmt="text")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "work_leaf+0\n" in r.stdout and "]: 3" in r.stdout


# ---- -p PID and the -c child ------------------------------------------------------------------


@pytest.mark.kernel
def test_pid_traces_only_that_process_and_ends_with_it(prog: str) -> None:
    target = subprocess.Popen([prog, "12", "250", "0"], stdout=subprocess.DEVNULL)
    other = subprocess.Popen([prog, "12", "250", "0"], stdout=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        r = bpfkit(f'usdt:{prog}:bpfkit:named {{ printf("%d %d\\n", pid, arg1); }}'
                   f" uprobe:{prog}:work_leaf {{ @calls[pid] = count(); }}",
                   "-p", str(target.pid), timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert target.poll() is not None  # it stopped because the process ended
        assert time.monotonic() - t0 < 30
    finally:
        for p in (target, other):
            p.kill()
            p.wait()
    rows = [x["data"].split() for x in records(r.stdout) if x["type"] == "printf"]
    assert rows, r.stdout
    assert {int(p) for p, _ in rows} == {target.pid}
    seen = [int(i) for _, i in rows]
    assert seen == list(range(seen[0], 12))  # consecutive, to the last round
    calls = next(x["data"]["@calls"] for x in records(r.stdout) if x["type"] == "map")
    assert set(calls) == {str(target.pid)}


def test_pid_errors() -> None:
    r = CliRunner().invoke(cli, ["trace", "-p", "999999999", "-e", "BEGIN { exit(); }"])
    assert r.exit_code == 2 and "no such process" in r.stderr
    r = CliRunner().invoke(cli, ["trace", "-p", str(os.getpid()), "-c", "/bin/true", "-e",
                                 "BEGIN { exit(); }"])  # fmt: skip
    assert r.exit_code == 2


@pytest.mark.kernel
def test_child_shows_what_bpftraces_child_shows_before_the_command(prog: str) -> None:
    # bpftrace's child waits in a read of an eventfd, closes it and execs: a probe sees
    # the end of that read, the close and the execve. bpfkit's child does the same, so
    # scripts counting the -c child's syscalls count alike (only its name differs).
    script = (
        "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[comm] = count(); }"
        " tracepoint:raw_syscalls:sys_exit /pid == cpid && args->id < 5/"
        " { @x[comm, args->id, args->ret] = count(); }"
    )
    a = bpfkit(script, "-c", "/usr/bin/true")
    assert a.returncode == 0, a.stderr
    b = bpftrace(script, "-c", "/usr/bin/true")
    mine: dict = {}
    theirs: dict = {}
    for got, rec in ((mine, records(a.stdout)), (theirs, records(b.stdout))):
        for x in rec:
            if x["type"] == "map":
                got.update(x["data"])
    rename = {"bpftrace": "bpfkit"}
    assert mine["@"] == {rename.get(k, k): v for k, v in theirs["@"].items()}
    assert mine["@x"] == {
        ",".join([rename.get(k.split(",")[0], k.split(",")[0]), *k.split(",")[1:]]): v
        for k, v in theirs["@x"].items()
    }
    assert mine["@"]["bpfkit"] == 2  # the read's end, the close, then the execve


# ---- verifier rejections point at the script ---------------------------------------------------

LOOP = "BEGIN {\n  @x = 1;\n  while (@x > 0) {\n    @x = 1;\n  }\n}\n"


@pytest.mark.parametrize("engine", ["kernel", "vm"])
def test_verifier_rejection_points_at_the_line(engine: str, tmp_path: Path) -> None:
    script = tmp_path / "loop.bt"
    script.write_text(LOOP)
    if engine == "kernel":
        from bpfkit.kernel.privileges import kernel_available

        if not kernel_available():
            pytest.skip("no bpf() here")
        r = subprocess.run([sys.executable, "-m", "bpfkit", "trace", str(script)],
                           capture_output=True, text=True, env=_env(), timeout=120, check=False)  # fmt: skip
        code, err = r.returncode, r.stderr
    else:
        res = CliRunner().invoke(cli, ["trace", "--vm", str(script)])
        code, err = res.exit_code, res.stderr
    assert code == 1, err
    lines = err.splitlines()
    who = "the kernel's verifier" if engine == "kernel" else "bpfkit's verifier"
    assert lines[0].startswith(f"{script}:4:5: ERROR: {who} rejected BEGIN"), err
    assert "loop" in lines[0]
    assert lines[1] == "    @x = 1;" and lines[2] == "    ^"
    assert "Traceback" not in err
