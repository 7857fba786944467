"""Live capture on a veth pair: the filter runs in the kernel, libpcap decides the oracle.

A network namespace and a veth pair (names prefixed ``pcap``, removed afterwards) carry
frames sent from the far side through a packet socket. The capture's socket has bpfkit's
program attached with SO_ATTACH_FILTER; the frames it receives must be exactly those
libpcap's filter accepts, in order — which also checks that the kernel runs bpfkit's
programs as libpcap's engine does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from test_filter_libpcap import LIBPCAP, needs_libpcap
from veth_pair import require, veth_pair, wait_for_packet_socket

from bpfkit.errors import KernelError
from bpfkit.pcap import CaptureReader, compile_filter
from bpfkit.pcap.live import LiveCapture
from bpfkit.pcap.synth import packet_mix


@pytest.fixture(scope="module")
def veth():
    """(host-side interface, namespace, far-side interface)."""
    with veth_pair("pcap") as pair:
        yield pair


SENDER = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for line in sys.stdin:
    s.send(bytes.fromhex(line.strip()))
"""


def send(veth, frames: list[bytes]) -> None:
    _a, ns, b = veth
    subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, b],
        input="".join(f.hex() + "\n" for f in frames),
        text=True,
        check=True,
    )


def test_frames() -> list[bytes]:
    """Well-formed frames of the synthetic mix that a veth delivers unchanged (no 802.1Q
    tags — the kernel strips them before packet sockets see them — and no runts)."""
    out = []
    for f, wl in packet_mix(400, seed=21):
        if len(f) < 14 or len(f) != wl or f[12:14] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
            continue
        out.append(f)
    return out


test_frames.__test__ = False  # a helper, not a test

EXPRESSIONS = [
    "udp",
    "tcp port 80 or tcp port 443",
    "ip6 or arp",
    "host 10.0.0.1 and not icmp",
    "ip[6:2] & 0x1fff != 0",
    "ether multicast",
    "mpls and ip",
]


@needs_libpcap
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_kernel_filter_selects_libpcaps_packets(veth, expr: str) -> None:
    a, _ns, _b = veth
    frames = test_frames()
    want_prog = LIBPCAP.compile(expr, "EN10MB")
    m = LIBPCAP.matcher(want_prog)
    want = [f for f in frames if m(f, len(f))]
    with LiveCapture(a, compile_filter(expr, "EN10MB")) as cap:
        send(veth, frames)
        got = [p.data for p in cap.packets(count=len(want) + 1, timeout=1.5)]
    assert got == want


@needs_libpcap
def test_cli_capture_writes_pcap(veth, tmp_path) -> None:
    a, _ns, _b = veth
    frames = test_frames()
    expr = "tcp or udp port 53"
    m = LIBPCAP.matcher(LIBPCAP.compile(expr, "EN10MB"))
    want = [f for f in frames if m(f, len(f))]
    out = tmp_path / "live.pcap"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bpfkit",
            "filter",
            "capture",
            a,
            expr,
            "-c",
            str(len(want)),
            "-w",
            str(out),
            "--timeout",
            "30",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_packet_socket(a, proc)
        send(veth, frames)
        stdout, stderr = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.strip().splitlines()[-1].startswith(f'{{"packets": {len(want)}')
    got = [p.data for p in CaptureReader(out)]
    assert got == want


def test_capture_errors() -> None:
    with pytest.raises(KernelError):
        LiveCapture("pcapNoSuchIf0", None)
    r = subprocess.run(
        [sys.executable, "-m", "bpfkit", "filter", "capture", "pcapNoSuchIf0", "ip"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_capture_bad_expression(veth) -> None:
    a, _ns, _b = veth
    r = subprocess.run(
        [sys.executable, "-m", "bpfkit", "filter", "capture", a, "tcp", "port"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "syntax error" in r.stderr


def _has_packet_socket(pid: int) -> bool:
    """Whether process ``pid`` holds a bound packet socket (its capture is ready)."""
    with open("/proc/net/packet") as f:
        inodes = {line.split()[-1] for line in list(f)[1:] if line.split()[4] != "0"}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def test_sigterm_keeps_the_packets(tmp_path) -> None:
    """``timeout N bpfkit filter capture ... -w F`` ends with SIGTERM: the packets so far
    are in F and the summary is printed, as with tcpdump (the default action used to
    leave an empty file)."""
    import signal

    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError:
        require("no CAP_NET_RAW for packet sockets")
    out = tmp_path / "lo.pcap"
    port = 40000 + os.getpid() % 20000
    proc = subprocess.Popen(
        [sys.executable, "-m", "bpfkit", "filter", "capture", "lo", f"udp port {port}"]
        + ["-w", str(out), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _has_packet_socket(proc.pid) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(50):
                s.sendto(b"x" * 64, ("127.0.0.1", port))
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    summary = stdout.strip().splitlines()[-1]
    got = [p.data for p in CaptureReader(out)]
    assert len(got) >= 50 and f'"packets": {len(got)}' in summary
    assert all(p.endswith(b"x" * 64) for p in got)
