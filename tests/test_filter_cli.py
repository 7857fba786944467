"""``bpfkit filter compile`` / ``run``: the outputs tcpdump prints, exit codes, JSON shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_filter_libpcap import LIBPCAP, needs_tcpdump
from test_filter_verdicts import make_capture

from bpfkit.pcap import CaptureReader, compile_filter


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "filter", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )


EXPRS = ["tcp port 80", "vlan 100 and udp", "ip[2:2] > 576 or ip6", "ether multicast"]


@needs_tcpdump
@pytest.mark.parametrize("expr", EXPRS)
@pytest.mark.parametrize("fmt, flag", [("listing", "-d"), ("c", "-dd"), ("decimal", "-ddd")])
def test_compile_prints_what_tcpdump_prints(tmp_path, expr: str, fmt: str, flag: str) -> None:
    LIBPCAP.handle("EN10MB")
    path = os.path.join(LIBPCAP._dir, "EN10MB-262144.pcap")
    want = subprocess.run(
        ["tcpdump", "-r", path, flag, "--", expr], capture_output=True, text=True, check=True
    )
    got = cli("compile", "--format", fmt, expr)
    assert got.returncode == 0, got.stderr
    assert got.stdout == want.stdout


@needs_tcpdump
def test_compile_unoptimised_and_linktype() -> None:
    LIBPCAP.handle("LINUX_SLL")
    path = os.path.join(LIBPCAP._dir, "LINUX_SLL-262144.pcap")
    want = subprocess.run(
        ["tcpdump", "-r", path, "-O", "-ddd", "--", "tcp port 22"],
        capture_output=True,
        text=True,
        check=True,
    )
    got = cli(
        "compile", "-O", "--linktype", "linux_sll", "--format", "decimal", "tcp", "port", "22"
    )
    assert got.stdout == want.stdout


def test_compile_json() -> None:
    r = cli("compile", "--json", "--linktype", "RAW", "udp")
    assert r.returncode == 0
    obj = json.loads(r.stdout)
    assert obj == {"linktype": "RAW", "insns": [list(i) for i in compile_filter("udp", "RAW")]}


@pytest.mark.parametrize("as_json", [False, True])
def test_syntax_error_exit_2_with_column(as_json: bool) -> None:
    r = cli("compile", *(["--json"] if as_json else []), "tcp port 80 )")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    if as_json:
        obj = json.loads(r.stdout)
        assert obj["column"] == 13 and "syntax error" in obj["error"]
    else:
        assert r.stderr.count("\n") == 1 and "column 13" in r.stderr


def test_bad_option_values_exit_2() -> None:
    assert cli("compile", "--linktype", "FDDI", "ip").returncode == 2
    assert cli("compile", "--snaplen", "0", "ip").returncode == 2
    r = cli("run", "ip", "/nonexistent/file.pcap")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path, pkts = make_capture(tmp_path_factory.mktemp("cli"), "EN10MB", 800)
    return path, pkts


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_run_json(capture, engine: str) -> None:
    path, pkts = capture
    r = cli("run", "--json", "--engine", engine, "udp or arp", str(path))
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert set(obj) == {"packets", "matched", "duration_ns"}
    from bpfkit.pcap.scan import python_matcher

    m = python_matcher(compile_filter("udp or arp"))
    assert obj["packets"] == len(pkts)
    assert obj["matched"] == sum(1 for d, wl in pkts if m(d, wl))


@needs_tcpdump
@pytest.mark.parametrize("form", ["-ddd", "-dd", "json"])
def test_run_a_program_file(tmp_path, capture, form: str) -> None:
    """@FILE: a program from tcpdump's -ddd/-dd output or bpfkit's JSON selects what the
    expression selects."""
    path, _ = capture
    prog_file = tmp_path / "prog.txt"
    if form == "json":
        prog_file.write_text(cli("compile", "--json", "tcp or icmp").stdout)
    else:
        out = subprocess.run(
            ["tcpdump", "-r", str(path), form, "tcp or icmp"],
            capture_output=True,
            text=True,
            check=True,
        )
        prog_file.write_text(out.stdout)
    a = json.loads(cli("run", "--json", f"@{prog_file}", str(path)).stdout)
    b = json.loads(cli("run", "--json", "tcp or icmp", str(path)).stdout)
    assert (a["packets"], a["matched"]) == (b["packets"], b["matched"])


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("3\n6 0 0 1\n", "count line"),
        ("1\n21 0 0\n", "four decimal numbers"),
        ("2\n21 5 5 1\n6 0 0 1\n", "outside the program"),
        ("1\n40 0 0 12\n", "return"),
        ('{"insns": [[6, 0, 0, 99999999999]]}', "k="),
    ],
)
def test_run_rejects_bad_programs(tmp_path, capture, content: str, fragment: str) -> None:
    path, _ = capture
    prog_file = tmp_path / "bad.txt"
    prog_file.write_text(content)
    r = cli("run", f"@{prog_file}", str(path))
    assert r.returncode == 2
    assert fragment in r.stderr and "Traceback" not in r.stderr


def test_run_on_damaged_capture(tmp_path, capture) -> None:
    """A truncated file: the packets before the damage are written, then exit 2 with a
    one-line message (and the counts so far, in JSON)."""
    path, _ = capture
    blob = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out.pcap"
    r = cli("run", "--json", "-w", str(out), "", str(cut))
    assert r.returncode == 2
    obj = json.loads(r.stdout)
    assert "truncated" in obj["error"] and obj["packets"] > 0
    assert len(list(CaptureReader(out))) == obj["matched"] == obj["packets"]
    r = cli("run", "", str(cut))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
