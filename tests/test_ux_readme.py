"""The README (and the docs' examples) work as written: every fenced ``python`` and ``sh``
block is run from a scratch directory that has the repository's ``examples/``, with
``bpfkit`` on the PATH; the first two commands are the ones CI and a newcomer run; every
link stays inside the repository."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SETUP = [
    "./scripts/setup && python3 examples/demo.py",
    "./scripts/setup && python3 -m pytest -q -p no:cacheprovider",
]


def blocks(doc: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer((ROOT / doc).read_text())]


def runnable(doc: str) -> list[tuple[str, int, str, str]]:
    out = []
    for i, (lang, code) in enumerate(blocks(doc)):
        if lang in ("python", "sh") and code.strip() not in SETUP:
            out.append((doc, i, lang, code))
    return out


CASES = runnable("README.md") + runnable("docs/values.md") + runnable("docs/asm.md")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A scratch cwd with ``examples/`` and a ``bpfkit`` command running this checkout."""
    d = tmp_path_factory.mktemp("readme")
    (d / "examples").symlink_to(ROOT / "examples")
    bindir = d / "bin"
    bindir.mkdir()
    shim = bindir / "bpfkit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bpfkit "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT / "src")
    return d, env


def test_the_first_two_commands_are_there() -> None:
    shell = [code.strip() for lang, code in blocks("README.md") if lang == "sh"]
    assert shell[:2] == SETUP
    text = (ROOT / "README.md").read_text()
    assert text.index(SETUP[0]) < text.index("## What it is")  # before anything else
    assert (ROOT / "scripts" / "setup").stat().st_mode & stat.S_IXUSR
    assert (ROOT / "examples" / "demo.py").exists()


@pytest.mark.parametrize(
    ("doc", "index", "lang", "code"), CASES, ids=[f"{c[0]}#{c[1]}" for c in CASES]
)
def test_block_runs(doc: str, index: int, lang: str, code: str, sandbox) -> None:
    cwd, env = sandbox
    if lang == "python":
        cmd = [sys.executable, "-c", code]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (
        f"{doc} block {index} ({lang}) failed:\n{code}\n{p.stdout}\n{p.stderr}"
    )
    assert "Traceback" not in p.stderr


def test_readme_quick_tour_prints_what_it_says(sandbox) -> None:
    cwd, env = sandbox
    py = [code for lang, code in blocks("README.md") if lang == "python"]
    out = subprocess.run(
        [sys.executable, "-c", py[0]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    ).stdout.split()
    assert out[0] == "2" and out[1].startswith("[1,")  # XDP_PASS; TCP counted on CPU 0
    out = subprocess.run(
        [sys.executable, "-c", py[1]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    ).stdout.split()
    assert out == ["55"]


LINK = re.compile(r"\[[^\]]*\]\(([^)]+)\)")


@pytest.mark.parametrize(
    "doc", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]
)
def test_links_stay_in_the_repository(doc: str) -> None:
    path = ROOT / doc if doc == "README.md" else ROOT / "docs" / doc
    for target in LINK.findall(path.read_text()):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc}: {target} leaves the repository"
        assert resolved.exists(), f"{doc}: {target} does not exist"
    assert "../shared" not in path.read_text()


def test_readme_says_who_it_is_for() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Who it is for") :]
    for other in ("bpftool", "BCC", "bpftrace"):
        assert f"**{other}**" in section
