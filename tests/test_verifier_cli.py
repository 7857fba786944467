"""``bpfkit verify``: JSON shape and exit codes."""

from __future__ import annotations

import json

from bpfkit.cli.main import main


def _run(capsys, *args: str) -> tuple[int, dict]:
    code = main(["verify", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_accept(tmp_path, capsys) -> None:
    f = tmp_path / "ok.s"
    f.write_text("r0 = 0\nexit\n")
    code, out = _run(capsys, str(f))
    assert code == 0
    assert out["ok"] is True and out["insn"] is None
    assert out["stats"]["insns_processed"] == 2


def test_reject(tmp_path, capsys) -> None:
    f = tmp_path / "bad.s"
    f.write_text("r0 = 0\nr1 = *(u64 *)(r10 - 520)\nexit\n")
    code, out = _run(capsys, str(f))
    assert code == 1
    assert out["ok"] is False and out["insn"] == 1
    assert "stack" in out["reason"] and out["reason"].endswith(".")
    assert out["disasm"].startswith("r1 = *(u64 *)")
    assert "R10=fp0" in out["state"]


def test_type_and_raw(tmp_path, capsys) -> None:
    from bpfkit.isa import encode
    from bpfkit.isa.asm import assemble_text

    f = tmp_path / "p.bin"
    f.write_bytes(encode(assemble_text("r0 = *(u32 *)(r1 + 0)\nexit", dialect="llvm")))
    assert _run(capsys, str(f), "--type", "xdp")[0] == 0
    assert _run(capsys, str(f), "--type", "kprobe")[0] == 0
    code, out = _run(capsys, str(f), "--type", "tracepoint")
    assert code == 1 and "context" in out["reason"]


def test_bad_input(tmp_path, capsys) -> None:
    f = tmp_path / "x.s"
    f.write_text("r0 = = 1\n")
    assert _run(capsys, str(f))[0] == 2
    assert _run(capsys, str(tmp_path / "missing.s"))[0] == 2
    f.write_text("r0 = 0\nexit\n")
    assert _run(capsys, str(f), "--type", "nonsense")[0] == 2


def test_unpriv_and_log(tmp_path, capsys) -> None:
    f = tmp_path / "leak.s"
    f.write_text("r0 = r10\nexit\n")
    assert _run(capsys, str(f))[0] == 0
    code, out = _run(capsys, str(f), "--unpriv")
    assert code == 1 and "leak" in out["kernel_message"]
    code, out = _run(capsys, str(f), "--log-level", "2")
    assert "processed 2 insns" in out["log"] and "0: (bf) r0 = r10" in out["log"]


def test_load_flags_and_attach_type(tmp_path, capsys) -> None:
    """A syscall program needs ``--sleepable``; a sock_addr program its attach type (a
    name or a number); an unknown attach type name is bad input."""
    f = tmp_path / "p.s"
    f.write_text("r0 = 1\nexit\n")
    code, out = _run(capsys, str(f), "--type", "syscall")
    assert code == 1 and out["kernel_message"] == "Syscall programs can only be sleepable"
    assert _run(capsys, str(f), "--type", "syscall", "--sleepable")[0] == 0
    assert _run(capsys, str(f), "--type", "cgroup_sock_addr")[0] == 1
    args = ("--type", "cgroup_sock_addr", "--attach-type")
    assert _run(capsys, str(f), *args, "cgroup_inet4_connect")[0] == 0
    assert _run(capsys, str(f), *args, "10")[0] == 0
    assert _run(capsys, str(f), *args, "no_such_hook")[0] == 2
