"""``bpfkit asm|disasm|run|verify --classic``: shapes, exit codes, and oracles behind them
(tcpdump's listing, libpcap's bpf_filter, the kernel's SO_ATTACH_FILTER)."""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys

import pytest
from classic_oracles import require_socket_filters, socket_verdict
from classic_strategies import libpcap, libpcap_filter, make_packet, tcpdump_dump, tcpdump_path

from bpfkit.classic import insn as c
from bpfkit.classic.listing import parse_decimal

needs_tcpdump = pytest.mark.skipif(tcpdump_path() is None, reason="tcpdump is not installed")


def bpfkit(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@needs_tcpdump
def test_asm_disasm_round_trip(tmp_path) -> None:
    expr = "tcp port 80 or icmp"
    listing = tcpdump_dump(expr, "-d")
    src = tmp_path / "p.txt"
    src.write_text(listing)
    out = tmp_path / "p.bin"
    r = bpfkit("asm", "--classic", str(src), "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    prog = parse_decimal(tcpdump_dump(expr, "-ddd"))
    assert out.read_bytes() == c.encode(prog) == bytes.fromhex(j["bytes"])
    assert j["insns"] == len(prog)
    r = bpfkit("disasm", "--classic", str(out))
    assert r.returncode == 0 and r.stdout == listing
    dec = tmp_path / "p.ddd"
    dec.write_text(tcpdump_dump(expr, "-ddd"))
    r = bpfkit("disasm", "--classic", str(dec), "--json")
    assert json.loads(r.stdout)["listing"] == listing


@needs_tcpdump
@pytest.mark.skipif(libpcap() is None, reason="libpcap is not installed")
def test_run_matches_libpcap(tmp_path) -> None:
    prog_file = tmp_path / "p.ddd"
    prog_file.write_text(tcpdump_dump("ip and tcp", "-ddd"))
    prog = parse_decimal(prog_file.read_text())
    rnd = random.Random(3)
    for _ in range(6):
        pkt = make_packet(rnd)
        r = bpfkit("run", "--classic", str(prog_file), "--data-hex", pkt.hex(), "--json")
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        assert j["retval"] == libpcap_filter(prog, pkt)
        assert j["insns"] >= 1


def test_verify_agrees_with_kernel(tmp_path) -> None:
    require_socket_filters()
    cases = {
        "good": "ldh [12]\njeq #0x800 jt 2 jf 3\nret #65535\nret #0\n",
        "uninit": "ld M[3]\nret a\n",
        "jump": "ja 5\nret #0\n",
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        r = bpfkit("verify", "--classic", str(path), "--json")
        j = json.loads(r.stdout)
        from bpfkit.classic.listing import parse_listing

        kernel_ok = socket_verdict(parse_listing(text)) != errno.EINVAL
        assert j["ok"] == kernel_ok
        assert r.returncode == (0 if kernel_ok else 1)
        if not j["ok"]:
            assert j["rule"] and j["insn"] == 0
    path = tmp_path / "sc.txt"
    path.write_text("ldh [0]\nret a\n")
    r = bpfkit("verify", "--classic", "--seccomp", str(path), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["rule"] == "seccomp-opcode"


def test_bad_input_exits_2_without_traceback(tmp_path) -> None:
    rnd = random.Random(9)
    blobs = [b"ld [12\n", b"3\n6 0 0 0\n", bytes(rnd.randrange(256) for _ in range(61))]
    for i, blob in enumerate(blobs):
        path = tmp_path / f"bad{i}"
        path.write_bytes(blob)
        for cmd in (["asm"], ["disasm"], ["run"], ["verify"]):
            r = bpfkit(*cmd, "--classic", str(path), "--json")
            assert r.returncode == 2, (cmd, blob, r.stderr)
            assert "Traceback" not in r.stderr
            assert "error" in json.loads(r.stdout)
    # random slots are a raw program: listed, refused by the checker, or faulting
    path = tmp_path / "random.bin"
    path.write_bytes(bytes(rnd.randrange(256) for _ in range(64)))
    for cmd, codes in ((["disasm"], {0}), (["verify"], {1}), (["run"], {0, 1})):
        r = bpfkit(*cmd, "--classic", str(path), "--json")
        assert r.returncode in codes and "Traceback" not in r.stderr, (cmd, r.stderr)
        json.loads(r.stdout)


def test_run_other_engines_is_usage_error(tmp_path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("ret #1\n")
    r = bpfkit("run", "--classic", str(path), "--engine", "jit")
    assert r.returncode == 2 and "interp" in r.stderr
