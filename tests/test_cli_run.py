"""`bpfkit run` on bare programs: JSON shape, traces, faults (exit 1), bad input (exit 2)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bpfkit.cli.main import cli
from bpfkit.isa.asm import assemble_text
from bpfkit.isa.instruction import encode

SUM = "mov %r0, 0\nldxb %r2, [%r1+1]\nadd %r0, %r2\nexit\n"
LOOP = "r0 = 0\nr1 = 10\nloop:\nr0 += r1\nr1 += -1\nif r1 != 0 goto loop\nexit\n"


@pytest.fixture
def run(tmp_path):
    def invoke(text_or_bytes, *args):
        path = tmp_path / ("p.bin" if isinstance(text_or_bytes, bytes) else "p.s")
        if isinstance(text_or_bytes, bytes):
            path.write_bytes(text_or_bytes)
        else:
            path.write_text(text_or_bytes)
        return CliRunner().invoke(cli, ["run", str(path), *args])

    return invoke


def test_run_json(run):
    res = run(SUM, "--mem-hex", "01 07", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["r0"] == 7 and out["insns"] == 4 and out["data_out"] == "0107"
    assert isinstance(out["duration_ns"], int)


def test_run_llvm_dialect_and_raw(run):
    out = json.loads(run(LOOP, "--json").output)
    assert out["r0"] == 55 and out["insns"] == 2 + 3 * 10 + 1
    raw = encode(assemble_text(LOOP, "llvm"))
    out = json.loads(run(raw, "--format", "raw", "--json").output)
    assert out["r0"] == 55


def test_run_r0_is_unsigned_64(run):
    out = json.loads(run("mov %r0, -1\nexit\n", "--json").output)
    assert out["r0"] == (1 << 64) - 1


def test_trace_text_and_json(run):
    res = run(LOOP, "--trace")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].strip().startswith("0: r0 = 0x0")
    assert "r0=0xa" in lines[2]
    out = json.loads(run(LOOP, "--trace", "--json").output)
    assert len(out["trace"]) == out["insns"]
    assert out["trace"][2] == {"pc": 2, "insn": "r0 += r1", "changed": {"r0": 10}}


def test_fault_exits_1_with_pc(run):
    res = run(SUM, "--mem-hex", "01", "--json")
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["pc"] == 1 and "invalid read of 1 byte" in out["error"]


def test_budget_fault(run):
    res = run("l:\nja l\n", "--budget", "1000", "--json")
    assert res.exit_code == 1
    assert "budget of 1000" in json.loads(res.output)["error"]


@pytest.mark.parametrize(
    "program, args, needle",
    [
        ("mov %r0,\n", [], "line 1, column"),
        ("bogus %r0, 1\n", [], "unknown mnemonic"),
        (SUM, ["--mem-hex", "zz"], "hex"),
        (b"\xff" * 8, ["--format", "raw"], "opcode"),
        (b"\x00" * 5, ["--format", "raw"], "multiple of 8"),
    ],
)
def test_bad_input_exits_2(run, program, args, needle):
    res = run(program, *args)
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output
    res = run(program, *args, "--json")
    assert res.exit_code == 2
    assert needle in json.loads(res.output)["error"]


def test_missing_file_exits_2():
    res = CliRunner().invoke(cli, ["run", "/nonexistent/prog.s", "--json"])
    assert res.exit_code == 2
    assert "error" in json.loads(res.output)
