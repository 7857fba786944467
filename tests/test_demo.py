"""The README's main job: examples/demo.py runs end to end and shows real results."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.kernel
def test_demo_runs(kernel):
    env = dict(os.environ, COLUMNS="120")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "kernel backend: available" in out
    assert "interpreter: 313/313 passed" in out
    assert "JIT:         313/313 passed" in out
    assert "VM and kernel agree: True" in out
    assert re.search(r"vm: verified on load \((\d+) instructions processed", out), out
    assert "kernel rejects it" in out and "bpfkit rejects it" in out
    assert "system calls in 0.5 s" in out
    assert "200 latencies recorded" in out
    # 6: classic BPF / tcpdump's language (tcpdump is installed by scripts/setup)
    assert "identical to tcpdump -d: True" in out
    assert "tcpdump -r agrees: True" in out
    assert re.search(r"TCP to port 80 .*262144 .*262144 .*262144 .*262144", out), out
    assert re.search(r"TCP to port 22 .*0 .*0 .*0 .*0", out), out
    # 7: seccomp
    assert re.search(r"reboot\s+.*errno \(1\)", out), out
    assert "mkdir under a profile that denies it: exit status 1, directory created: False" in out
    # 8: bpftrace's language on the kernel: ls makes system calls
    m = re.search(r"@syscalls\[ls\]: (\d+)", out)
    assert m and int(m.group(1)) > 10, out
