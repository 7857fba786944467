"""Errors name what failed — the map refused, the program rejected with its C line and the
log lines that explain it, the whole log with --log-level — and a failed load or --pin
leaves no pins or folders behind (issue 11, item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_kernel_common import C_DIR, build_c, needs_clang

import bpfkit
from bpfkit.errors import BpfError, VerifierError

pytestmark = needs_clang


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    return {n: build_c(n, d) for n in ("kernel_bad", "parity_overrides", "parity_pinfail")}


def _marker_line(name: str, marker: str) -> int:
    """The source line holding ``marker`` (what the rejection must blame)."""
    for n, text in enumerate((C_DIR / f"{name}.c").read_text().splitlines(), 1):
        if marker in text:
            return n
    raise AssertionError(marker)


def _entries(d: str) -> list[str]:
    """What a bpffs directory holds, without the kernel's own iterators (*.debug)."""
    return sorted(e for e in os.listdir(d) if not e.endswith(".debug"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfkit", *args], capture_output=True, text=True)


@pytest.mark.parametrize("backend", ["vm", pytest.param("kernel", marks=pytest.mark.kernel)])
def test_a_rejected_program_is_named_with_its_line(objs, backend):
    want = _marker_line("kernel_bad", "bpfkit: out of bounds")
    with pytest.raises(VerifierError) as ei:
        bpfkit.load(objs["kernel_bad"], backend=backend)
    e = ei.value
    assert e.program == "read_too_far" and str(e).startswith("program read_too_far: insn")
    assert e.line["line"] == want
    assert any("invalid access to map value" in ln for ln in e.log_tail())


@pytest.mark.parametrize("backend", ["vm", pytest.param("kernel", marks=pytest.mark.kernel)])
def test_a_refused_map_is_named(objs, backend):
    with pytest.raises(BpfError, match="map 'stacks'") as ei:
        bpfkit.load(objs["parity_overrides"], backend=backend)  # value_size 0 as shipped
    assert ei.value.map == "stacks"


@pytest.mark.kernel
def test_cli_shows_the_line_and_the_log(objs):
    want = _marker_line("kernel_bad", "bpfkit: out of bounds")
    r = _cli("load", str(objs["kernel_bad"]))
    assert r.returncode == 1
    assert "program read_too_far" in r.stderr and f"kernel_bad.c:{want}:" in r.stderr
    assert "invalid access to map value, value_size=8 off=8 size=8" in r.stderr
    doc = json.loads(_cli("load", str(objs["kernel_bad"]), "--json").stdout)
    assert doc["program"] == "read_too_far" and doc["line"]["line"] == want
    assert "return v[1] == 42" in doc["line"]["source"]
    assert any("invalid access" in ln for ln in doc["log_tail"]) and "log" not in doc
    full = json.loads(_cli("load", str(objs["kernel_bad"]), "--log-level", "2", "--json").stdout)
    assert full["log"].count("\n") > len(doc["log_tail"]) and "processed" in full["log"]
    text = _cli("load", str(objs["kernel_bad"]), "--log-level", "2")
    assert "0: R1=ctx()" in text.stderr  # the verifier's walk, from the first instruction


@pytest.mark.kernel
def test_log_level_prints_the_log_of_a_loaded_program(objs):
    r = _cli(
        "load",
        str(objs["parity_overrides"]),
        "--program",
        "knobs",
        "--value-size",
        "stacks=8",
        "--log-level",
        "2",
        "--json",
    )
    (prog,) = json.loads(r.stdout)["programs"]
    assert "call bpf_map_update_elem" in prog["log"] and "processed" in prog["log"]
    r = _cli(
        "load",
        str(objs["parity_overrides"]),
        "--program",
        "knobs",
        "--value-size",
        "stacks=8",
        "--log-level",
        "2",
    )
    assert "call bpf_map_update_elem" in r.stdout


@pytest.mark.kernel
def test_a_failed_load_leaves_no_pin(objs, bpffs):
    with pytest.raises(VerifierError, match="broken"):
        bpfkit.load(objs["parity_pinfail"], backend="kernel", pin_root=bpffs)
    assert _entries(bpffs) == []
    with bpfkit.load(objs["parity_pinfail"], backend="kernel", pin_root=bpffs, programs=["fine"]):
        assert _entries(bpffs) == ["parity_pinned"]  # and a good load keeps it


@pytest.mark.kernel
def test_cli_failed_load_or_pin_removes_what_it_made(objs, bpffs):
    target = os.path.join(bpffs, "a", "b")
    r = _cli("load", str(objs["parity_pinfail"]), "--pin", target, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["program"] == "broken"
    assert _entries(bpffs) == []  # no pins, no folders
    # a pin that cannot be made (the name is taken) undoes the others
    os.makedirs(target)
    taken = os.path.join(target, "fine")
    with bpfkit.load(
        objs["parity_pinfail"], backend="kernel", programs=["fine"], pin_root=bpffs
    ) as o:
        o.programs["fine"].pin(taken)
    r = _cli("load", str(objs["parity_pinfail"]), "--program", "fine", "--pin", target, "--json")
    assert r.returncode != 0
    assert _entries(target) == ["fine"]  # only what was there before
    os.unlink(taken)
