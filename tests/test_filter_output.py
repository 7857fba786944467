"""``bpfkit filter run -w``: the output never costs the user a file, and the command line
takes tcpdump's shapes (``-r FILE EXPR...``, ``-w -``). tcpdump's own output is the oracle
for what gets written."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest
from test_filter_libpcap import needs_tcpdump

from bpfkit.pcap import CaptureReader, PcapWriter
from bpfkit.pcap.synth import packet_mix

EXPR = "tcp or arp"


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "filter", *args], capture_output=True, **kw
    )


def _packets(path) -> list[tuple[int, bytes, int]]:
    return [(p.ts_ns, p.data, p.wirelen) for p in CaptureReader(path)]


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "in.pcap"
    with PcapWriter(path) as w:
        for i, (f, wl) in enumerate(packet_mix(600, seed=31)):
            w.write(f, i * 1000, wl)
    return path


@pytest.fixture
def tcpdump_out(capture, tmp_path):
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    out = tmp_path / "tcpdump.pcap"
    subprocess.run(
        ["tcpdump", "-r", str(capture), "-w", str(out), EXPR], check=True, capture_output=True
    )
    return _packets(out)


@needs_tcpdump
@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_w_may_name_the_input(capture, tcpdump_out, engine: str) -> None:
    """tcpdump -r F -w F would truncate F before reading it; bpfkit writes aside."""
    os.chmod(capture, 0o640)
    r = _cli("run", EXPR, str(capture), "-w", str(capture), "--engine", engine)
    assert r.returncode == 0, r.stderr
    assert _packets(capture) == tcpdump_out
    assert stat.S_IMODE(os.stat(capture).st_mode) == 0o640  # the old file's mode is kept
    assert not [p for p in os.listdir(capture.parent) if p.endswith(".part")]


@needs_tcpdump
def test_w_follows_a_symlink_and_writes_stdout(capture, tcpdump_out, tmp_path) -> None:
    target = tmp_path / "target.pcap"
    target.write_bytes(b"old")
    link = tmp_path / "link.pcap"
    link.symlink_to(target)
    assert _cli("run", "-r", str(capture), "tcp", "or", "arp", "-w", str(link)).returncode == 0
    assert link.is_symlink() and _packets(target) == tcpdump_out
    r = _cli("run", "-r", str(capture), EXPR, "-w", "-")
    assert r.returncode == 0 and b"packets matched" in r.stderr
    piped = tmp_path / "piped.pcap"
    piped.write_bytes(r.stdout)
    assert _packets(piped) == tcpdump_out
    assert _cli("run", "-r", str(capture), EXPR, "-w", "-", "--json").returncode == 2


def test_w_untouched_when_the_run_fails(capture, tmp_path) -> None:
    """A bad expression, a missing input, an unwritable place: the old output stays."""
    out = tmp_path / "keep.pcap"
    out.write_bytes(b"precious")
    for args in (
        ["run", "tcp port", str(capture), "-w", str(out)],
        ["run", "tcp", str(tmp_path / "missing.pcap"), "-w", str(out)],
        ["run", "ip[0:3] = 1", str(capture), "-w", str(out)],
    ):
        r = _cli(*args, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert out.read_bytes() == b"precious"
    r = _cli("run", "tcp", str(capture), "-w", str(tmp_path / "no" / "dir.pcap"), text=True)
    assert r.returncode == 2 and "dir.pcap" in r.stderr
    r = _cli("run", "tcp", str(tmp_path), text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


@needs_tcpdump
@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_damaged_input_keeps_the_packets_before_it(capture, tmp_path, engine: str) -> None:
    """As tcpdump: the packets before the damage are written, and the run fails."""
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capture.read_bytes()[:-9])
    want_file = tmp_path / "want.pcap"
    subprocess.run(["tcpdump", "-r", str(cut), "-w", str(want_file), EXPR], capture_output=True)
    out = tmp_path / "out.pcap"
    out.write_bytes(b"old")
    r = _cli("run", EXPR, str(cut), "-w", str(out), "--engine", engine, text=True)
    assert r.returncode == 2 and "truncated" in r.stderr
    assert _packets(out) == _packets(want_file)


def test_w_dev_null_stays_a_device(capture) -> None:
    r = _cli("run", EXPR, str(capture), "-w", os.devnull)
    assert r.returncode == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_usage_errors(capture) -> None:
    for args in (["run"], ["run", str(capture)], ["run", "-r", str(capture), "tcp", "port"]):
        r = _cli(*args, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, args
    r = _cli("run", "tcp", "port", "80", str(capture), "--json", text=True)
    assert r.returncode == 0 and '"packets": 600' in r.stdout


@needs_tcpdump
def test_nanosecond_pcapng_keeps_its_precision(tmp_path) -> None:
    """A documented difference: tcpdump -w writes a nanosecond pcapng as a microsecond
    pcap; bpfkit keeps the nanoseconds (both engines). The packets are the same."""
    from bpfkit.pcap import PcapngWriter

    src = tmp_path / "ns.pcapng"
    with PcapngWriter(src, nanosecond=True) as w:
        for i, (f, wl) in enumerate(packet_mix(200, seed=5)):
            w.write(f, 1_700_000_000_000_000_000 + i * 1_234_567, wl)
    want = tmp_path / "tcpdump.pcap"
    subprocess.run(
        ["tcpdump", "-r", str(src), "-w", str(want), EXPR], check=True, capture_output=True
    )
    td = [(t // 1000, d, wl) for t, d, wl in _packets(want)]
    with CaptureReader(want) as r:
        assert r.nanosecond is False
    for engine in ("jit", "interp"):
        out = tmp_path / f"{engine}.pcap"
        assert _cli("run", EXPR, str(src), "-w", str(out), "--engine", engine).returncode == 0
        with CaptureReader(out) as r:
            assert r.nanosecond is True
        ours = _packets(out)
        assert [(t // 1000, d, wl) for t, d, wl in ours] == td
        assert any(t % 1000 for t, _d, _wl in ours)


@needs_tcpdump
@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_read_from_stdin(capture, tcpdump_out, tmp_path, engine: str) -> None:
    """``-r -`` reads standard input, as tcpdump does: a pipe from tcpdump -w - in, pcap
    out; a pcapng stream too; a cut stream fails after the packets before the cut."""
    from bpfkit.pcap import PcapngWriter

    blob = capture.read_bytes()
    r = _cli("run", "-r", "-", EXPR, "-w", "-", "--engine", engine, input=blob)
    assert r.returncode == 0, r.stderr
    (tmp_path / "piped.pcap").write_bytes(r.stdout)
    assert _packets(tmp_path / "piped.pcap") == tcpdump_out
    ng = tmp_path / "in.pcapng"
    with PcapngWriter(ng) as w:
        for t, d, wl in _packets(capture):
            w.write(d, t, wl)
    r = _cli("run", "-r", "-", EXPR, "--json", "--engine", engine, input=ng.read_bytes())
    assert r.returncode == 0 and f'"matched": {len(tcpdump_out)}' in r.stdout.decode()
    r = _cli("run", "-r", "-", EXPR, "--engine", engine, input=blob[:5000], text=False)
    assert r.returncode == 2 and b"<stdin>: truncated" in r.stderr


def test_a_bad_header_leaves_the_output_alone(tmp_path) -> None:
    """tcpdump stops before opening -w when the input's header is bad; bpfkit leaves an
    existing output untouched too (a damaged *body* writes the packets before it)."""
    out = tmp_path / "keep.pcap"
    out.write_bytes(b"precious")
    for blob in (b"\xd4\xc3\xb2\xa1" + bytes(8), b"\x0a\x0d\x0d\x0a" + bytes(30)):
        bad = tmp_path / "bad.cap"
        bad.write_bytes(blob)
        for engine in ("jit", "interp"):
            r = _cli("run", "tcp", str(bad), "-w", str(out), "--engine", engine, text=True)
            assert r.returncode == 2 and r.stderr.count("\n") == 1
            assert out.read_bytes() == b"precious"
