"""bpftrace's own tool scripts (the Debian package's ``*.bt``) under ``bpfkit trace``.

Each tool is type-checked, then run for a moment on the kernel. What decides the outcome
is probed, not assumed: a tool with kprobes must fail with an error naming kprobes when
this kernel cannot attach them; a uprobe on a function the installed library does not
export must say so; ``kaddr()`` of a symbol missing from ``/proc/kallsyms`` must say so.
Every other tool must attach and run. Never a traceback.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

TOOLS = sorted(glob.glob("/usr/sbin/*.bt"))

# Tools this kernel cannot run as written, failing as they fail under bpftrace (the test
# checks the error says why). runqlen.bt: with BTF its C definition of struct cfs_rq is
# skipped (#ifndef BPFTRACE_HAVE_BTF) and Linux 6.13 renamed cfs_rq.nr_running to
# nr_queued (test_trace_cdecl checks bpftrace's error is the same and runs a variant).
NOT_YET = {
    "runqlen.bt": "no field named 'nr_running'",
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _trace(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "trace", *args],
        capture_output=True, text=True, env=_env(), timeout=timeout, check=False,
    )  # fmt: skip


def _run_today(name: str) -> bool:
    """A third of the tools attach per run (rotating daily) unless ``BPFKIT_SLOW=1``."""
    import datetime
    import zlib

    if os.environ.get("BPFKIT_SLOW") == "1":
        return True
    return zlib.crc32(name.encode()) % 3 == datetime.date.today().toordinal() % 3


def _kprobes() -> bool:
    from bpfkit.kernel.kprobe import kprobes_supported

    return kprobes_supported()[0]


def _kallsyms_has(name: str) -> bool:
    try:
        with open("/proc/kallsyms") as f:
            return any(line.split()[2] == name for line in f if len(line.split()) > 2)
    except OSError:
        return False


@pytest.mark.skipif(not TOOLS, reason="bpftrace's tools are not installed")
@pytest.mark.kernel
@pytest.mark.parametrize("path", TOOLS, ids=[os.path.basename(p) for p in TOOLS])
def test_tool(path: str) -> None:
    name = os.path.basename(path)
    text = open(path).read()
    uses_kprobes = re.search(r"^\s*k(ret)?probe:", text, re.M) is not None
    r = _trace("--dry-run", path)
    assert "Traceback" not in r.stderr
    if name in NOT_YET:
        assert r.returncode == 2 and NOT_YET[name] in r.stderr, r.stderr
        return
    if r.returncode == 2 and "no function" in r.stderr:
        # A uprobe on a function the installed library does not have (found at compile
        # time, with the script position): confirm with binutils that it is absent.
        fn = re.search(r"no function '([^']+)' in (\S+)", r.stderr)
        assert fn is not None and "^" in r.stderr, r.stderr
        syms = subprocess.run(["readelf", "-Ws", "--dyn-syms", fn.group(2)],
                              capture_output=True, text=True, check=False).stdout  # fmt: skip
        assert not re.search(rf"\s{re.escape(fn.group(1))}(@\S*)?$", syms, re.M)
        return
    m = re.search(r'kaddr\("(\w+)"\)', text)
    if m and not _kallsyms_has(m.group(1)):
        assert r.returncode == 2 and f"'{m.group(1)}' not found" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    if not _run_today(name):
        pytest.skip("attached in another day's rotation (BPFKIT_SLOW=1 runs every tool)")
    r = _trace("--timeout", "0.5", path)
    assert "Traceback" not in r.stderr
    if uses_kprobes and not _kprobes():
        assert r.returncode == 1 and "kprobes" in r.stderr, r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Attaching ")
