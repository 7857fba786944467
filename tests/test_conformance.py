"""The public BPF ISA conformance vectors: interpreter directly and via the CLI plugin."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from conformance_data import load_cases

from bpfkit.cli.main import cli
from bpfkit.isa.instruction import encode
from bpfkit.vm.interp import run_program

CASES = load_cases()
IDS = [c.name for c in CASES]


def test_all_vectors_present():
    assert len(CASES) == 313


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_interpreter(case):
    res = run_program(case.program, case.mem)
    assert res.r0 == case.result


def _plugin_args(case) -> list[str]:
    args = ["conformance-plugin"]
    if case.mem:
        args.append(" ".join(f"{b:02x}" for b in case.mem))
    return args


def _program_hex(case) -> str:
    return " ".join(f"{b:02x}" for b in encode(case.program))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_plugin_protocol(case):
    result = CliRunner().invoke(cli, _plugin_args(case), input=_program_hex(case))
    assert result.exit_code == 0, result.output
    assert int(result.output.strip(), 16) == case.result


def test_plugin_as_a_real_process():
    """The console script itself speaks the protocol (a few vectors, real processes)."""
    for case in [c for c in CASES if c.mem][:2] + [c for c in CASES if not c.mem][:2]:
        proc = subprocess.run(
            [sys.executable, "-m", "bpfkit", *_plugin_args(case)],
            input=_program_hex(case),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert int(proc.stdout.strip(), 16) == case.result


def test_plugin_reports_errors_with_nonzero_exit():
    result = CliRunner().invoke(cli, ["conformance-plugin"], input="ff 00 00 00 00 00 00 00")
    assert result.exit_code != 0
    assert "opcode" in result.output
