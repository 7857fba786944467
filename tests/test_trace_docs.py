"""Every one-liner of docs/trace.md runs: each parses and type-checks (``--dry-run``); a
rotating third runs on the kernel each day (all with ``BPFKIT_SLOW=1``), and the
record-then-replay pair replays on the VM exactly what the kernel printed."""

from __future__ import annotations

import datetime
import os
import re
import shlex
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "trace.md"


def _one_liners() -> list[list[str]]:
    """The ``bpfkit trace`` commands of the doc's "First one-liners" shell blocks."""
    text = DOC.read_text()
    section = text[text.index("## First one-liners") : text.index("## What works")]
    out = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("bpfkit trace"):
                out.append(shlex.split(line, comments=True)[2:])
    return out


ONE_LINERS = _one_liners()
RECORD = [a for a in ONE_LINERS if "--record" in a]
PLAIN = [a for a in ONE_LINERS if "--record" not in a and "--replay" not in a]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _trace(args: list[str], cwd: Path | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "bpfkit", "trace", *args], cwd=cwd,
                          capture_output=True, text=True, env=_env(), timeout=timeout,
                          check=False)  # fmt: skip


def _today(args: list[str]) -> bool:
    if os.environ.get("BPFKIT_SLOW") == "1":
        return True
    key = zlib.crc32(" ".join(args).encode())
    return key % 3 == datetime.date.today().toordinal() % 3


def test_the_doc_has_its_one_liners() -> None:
    assert len(PLAIN) >= 15 and len(RECORD) == 1


@pytest.mark.kernel
@pytest.mark.parametrize("args", PLAIN, ids=[" ".join(a)[:60] for a in PLAIN])
def test_one_liner(args: list[str]) -> None:
    if "-l" in args:
        r = _trace(args)
        assert r.returncode == 0 and r.stdout.count("\n") > 10, r.stderr
        return
    r = _trace(["--dry-run", *args])
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    if not _today(args):
        pytest.skip("run on the kernel in another day's rotation (BPFKIT_SLOW=1: all)")
    ends = "-c" in args or any("exit()" in a for a in args)
    r = _trace(args if ends else ["--timeout", "0.5", *args])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith(("Attaching ", '{"type": "attached_probes"')), r.stdout[:200]


@pytest.mark.kernel
def test_record_then_replay_on_the_vm(tmp_path: Path) -> None:
    (record,) = RECORD
    replay = next(a for a in ONE_LINERS if "--replay" in a)
    k = _trace(record, cwd=tmp_path)
    assert k.returncode == 0, k.stderr
    assert "+" in k.stdout  # stack frames named: symbol+offset
    v = _trace(replay, cwd=tmp_path)
    assert v.returncode == 0, v.stderr
    # the kernel run's stdout also carries the child's (cat's) output, after the attach line
    child = Path("/etc/hostname").read_text()
    head, _, rest = k.stdout.partition("\n")
    assert rest.startswith(child), k.stdout[:200]
    want = head + "\n" + rest[len(child) :]
    # entries come sorted by value; entries with equal values follow the map's iteration
    # order, the kernel's hash order on one side and the VM's on the other (bpftrace's
    # order for ties is the kernel's too): the same entries, values in the same order
    assert _entries(v.stdout) == _entries(want), (v.stdout, want)
    assert [e[1] for e in _ordered(v.stdout)] == [e[1] for e in _ordered(want)]


def _ordered(out: str) -> list[tuple[str, str]]:
    """(key text, value) of each ``@[...]: value`` entry of a printed map, in order."""
    return re.findall(r"^(@\[.*?\]): (\S+)$", out, flags=re.S | re.M)


def _entries(out: str) -> tuple[str, list]:
    return out.split("\n@", 1)[0], sorted(_ordered(out))
