"""docs/filter.md and docs/classic.md work as written: each doc's fenced ``sh`` and
``python`` blocks run in order in a scratch directory, with ``bpfkit`` on the PATH, on the
sample captures the first block makes with ``python3 -m bpfkit.pcap.synth`` (the shipped
generator); a block fails the test if it exits non-zero or prints a traceback. A block
that captures live traffic runs where packet sockets can be opened (probed), and is
skipped with the reason elsewhere."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
DOCS = ["docs/filter.md", "docs/classic.md"]


def blocks(doc: str) -> list[tuple[str, str]]:
    text = (ROOT / doc).read_text()
    return [
        (m.group(1), m.group(2)) for m in FENCE.finditer(text) if m.group(1) in ("sh", "python")
    ]


def _packet_sockets() -> str | None:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except OSError as e:
        return f"no packet sockets here: {e.strerror}"
    return None


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("docs")
    bindir = d / "bin"
    bindir.mkdir()
    shim = bindir / "bpfkit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bpfkit "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT / "src")
    env["XDG_CACHE_HOME"] = str(d / "cache")
    return d, env


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="the docs' examples use tcpdump")
@pytest.mark.parametrize("doc", DOCS)
def test_every_example_runs(doc: str, sandbox) -> None:
    cwd, env = sandbox
    cases = blocks(doc)
    assert cases, f"{doc} has no examples"
    ran = 0
    for i, (lang, code) in enumerate(cases):
        if "filter capture" in code:
            continue  # the live example: test_live_example_runs
        cmd = (
            [sys.executable, "-c", code]
            if lang == "python"
            else ["bash", "-e", "-o", "pipefail", "-c", code]
        )
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (
            f"{doc} block {i} ({lang}) failed:\n{code}\n{p.stdout}\n{p.stderr}"
        )
        assert "Traceback" not in p.stderr, p.stderr
        ran += 1
    assert ran == len(cases) - sum("filter capture" in c for _l, c in cases)


def test_live_example_runs(sandbox) -> None:
    why = _packet_sockets()
    if why is not None:
        pytest.skip(why)
    cwd, env = sandbox
    live = [code for lang, code in blocks("docs/filter.md") if "filter capture" in code]
    assert live
    for code in live:
        p = subprocess.run(
            ["bash", "-e", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, p.stderr


def test_the_docs_say_what_the_tools_print(sandbox) -> None:
    """The values the examples promise in their comments."""
    cwd, env = sandbox
    out = subprocess.run(
        ["bpfkit", "filter", "compile", "--json", "--linktype", "LINUX_SLL", "udp"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith('{"linktype": "LINUX_SLL", "insns": [[40, 0, 0, 14], ')
    py = [code for lang, code in blocks("docs/classic.md") if lang == "python"][0]
    printed = subprocess.run(
        [sys.executable, "-c", py], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert printed.split()[:2] == ["262144", "262144"]
