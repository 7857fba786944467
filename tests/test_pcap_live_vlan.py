"""Live capture of VLAN traffic, against tcpdump capturing on the same interface.

The kernel takes the outer 802.1Q/802.1ad tag out of a received frame before packet
sockets see it, so libpcap compiles ``vlan`` for a live capture with the VLAN ancillary
loads and puts the tag back into each captured frame. bpfkit must do both: the packets
``LiveCapture``/``bpfkit filter capture`` deliver are compared, byte for byte and in order,
with what ``tcpdump -i`` captures at the same time with the same expression. The frames
go through a veth pair into a network namespace (names prefixed ``qanet``, removed
afterwards): raw tagged frames (VLAN, QinQ) sent on the far side, and — where the kernel
has 802.1Q sub-interfaces (CONFIG_VLAN_8021Q, probed) — frames sent through one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from veth_pair import ip, require, veth_pair, wait_for_packet_socket

from bpfkit.classic.interp import PacketMeta, compile_classic
from bpfkit.pcap import CaptureReader
from bpfkit.pcap.live import LiveCapture, live_program
from bpfkit.pcap.synth import packet_mix


@pytest.fixture(scope="module")
def net():
    """(host interface, namespace, far interface, VLAN 100 sub-interface or None)."""
    if shutil.which("tcpdump") is None:
        require("tcpdump (the oracle) is not installed")
    with veth_pair("qanet") as (a, ns, b):
        # an 802.1Q sub-interface needs CONFIG_VLAN_8021Q; without it, raw tagged frames
        # still exercise the same kernel path (the tag is taken out on receive)
        v = f"qanetV{os.getpid() % 100000}"
        r = ip("-n", ns, "link", "add", "link", b, "name", v, "type", "vlan", "id", "100")
        vlan = v if r.returncode == 0 else None
        if vlan is not None:
            ip("-n", ns, "link", "set", v, "up")
        yield a, ns, b, vlan


# paced (a burst of hundreds of frames overflows tcpdump's ring: it reports drops)
SENDER = r"""
import socket, sys, time
socks = {}
for n, line in enumerate(sys.stdin):
    ifname, hexdata = line.split()
    if ifname not in socks:
        socks[ifname] = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        socks[ifname].bind((ifname, 0))
    socks[ifname].send(bytes.fromhex(hexdata))
    if n % 8 == 7:
        time.sleep(0.002)
"""

TAGS = (b"\x81\x00", b"\x88\xa8", b"\x91\x00")


def traffic(net) -> list[tuple[str, bytes]]:
    """(interface, frame) to send from the far side: the synthetic mix, its VLAN and QinQ
    frames as they are, the others also wrapped in a tag (VID 100 or 7, 802.1Q or
    802.1ad), and, through the sub-interface when there is one, plain frames."""
    _a, _ns, b, vlan = net
    out = []
    for i, (f, wl) in enumerate(packet_mix(500, seed=23)):
        if len(f) < 18 or len(f) != wl:
            continue
        out.append((b, f))
        if f[12:14] not in TAGS and i % 2:
            tpid = b"\x88\xa8" if i % 6 == 1 else b"\x81\x00"
            vid = (100 if i % 4 == 1 else 7) | (i % 8) << 13
            out.append((b, f[:12] + tpid + vid.to_bytes(2, "big") + f[12:]))
        if vlan is not None and i % 3 == 0:
            out.append((vlan, f))
    return out


def send(net, frames: list[tuple[str, bytes]]) -> None:
    _a, ns, _b, _v = net
    subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", SENDER],
        input="".join(f"{i} {f.hex()}\n" for i, f in frames),
        text=True,
        check=True,
    )


class Tcpdump:
    """tcpdump -i IFACE -c N -w FILE EXPR, started and stopped around a capture."""

    def __init__(self, iface: str, expr: str, out) -> None:
        self.out = out
        self.iface, self.expr = iface, expr

    def start(self, count: int) -> None:
        self.proc = subprocess.Popen(
            ["tcpdump", "-Z", "root", "-i", self.iface, "-U", "--immediate-mode", "-n"]
            + ["-c", str(count), "-w", str(self.out), self.expr],
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stderr.readline()
        assert "listening on" in line, line

    def finish(self, timeout: float = 15) -> tuple[list[tuple[bytes, int]], int]:
        """(the packets tcpdump wrote, how many its filter passed in all)."""
        try:
            _out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # it saw fewer packets than asked for
            self.proc.send_signal(signal.SIGINT)
            _out, err = self.proc.communicate(timeout=15)
        m = re.search(r"(\d+) packets? received by filter", err)
        d = re.search(r"(\d+) packets? dropped by kernel", err)
        assert m and d, err
        assert d.group(1) == "0", f"tcpdump dropped packets, the comparison is void: {err}"
        return [(p.data, p.wirelen) for p in CaptureReader(self.out)], int(m.group(1))


EXPRESSIONS = [
    "vlan",
    "vlan 7 or vlan 100 and udp",
    "not vlan",
    "vlan or arp",
    "vlan and vlan",
    "vlan 100 and tcp port 80",
    "vlan and (ether[12:2] = 0x800 or tcp[tcpflags] & tcp-syn != 0)",
]


def capture(net, expr: str, frames) -> list[tuple[bytes, int]]:
    """Send ``frames`` and return what a LiveCapture with ``expr`` received (nothing
    dropped: the frames were queued by the time ``send`` returned)."""
    with LiveCapture(net[0], expr) as cap:
        send(net, frames)
        got: list[tuple[bytes, int]] = []
        while True:  # until the socket stays quiet (a busy machine delivers late)
            batch = [(p.data, p.wirelen) for p in cap.packets(timeout=0.4)]
            if not batch:
                break
            got += batch
        received, dropped = cap.stats()
    assert dropped == 0 and received == len(got)
    return got


def interpreter_verdicts(net, expr: str, frames) -> list[tuple[bytes, int]]:
    """What bpfkit's interpreter (kernel rules) passes of ``frames``, given them as the
    kernel holds them — the outer 802.1Q/802.1ad tag in the metadata — with the tag put
    back, as a capture delivers them."""
    run = compile_classic(live_program(expr, "EN10MB"))
    out = []
    for ifname, f in frames:
        if f[12:14] in TAGS[:2]:  # the kernel takes an 802.1Q/802.1ad tag out
            tpid, tci = int.from_bytes(f[12:14], "big"), int.from_bytes(f[14:16], "big")
            data = f[:12] + f[16:]
        elif ifname != net[2]:  # through the sub-interface: VID 100 added
            tpid, tci, data = 0x8100, 100, f
        else:
            tpid = tci = 0
            data = f
        meta = PacketMeta(vlan_tci=tci, vlan_present=bool(tpid), vlan_tpid=tpid)
        if run.run(data, meta).ret:
            if tpid:
                tag = tpid.to_bytes(2, "big") + tci.to_bytes(2, "big")
                out.append((data[:12] + tag + data[12:], len(data) + 4))
            else:
                out.append((data, len(data)))
    return out


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_vlan_capture_is_tcpdumps(net, expr: str, tmp_path) -> None:
    """bpfkit's capture = tcpdump's capture = bpfkit's interpreter on the same frames."""
    frames = traffic(net)
    first = capture(net, expr, frames)
    assert first, f"{expr!r} matched nothing: the test would prove nothing"
    assert first == interpreter_verdicts(net, expr, frames)
    # tcpdump is told how many packets to wait for, and says through "received by
    # filter" whether it would have taken more
    td = Tcpdump(net[0], expr, tmp_path / "tcpdump.pcap")
    td.start(len(first))
    got = capture(net, expr, frames)
    want, passed = td.finish()
    assert got == first
    assert passed == len(want) == len(got)
    assert got == want


def test_cli_capture_vlan(net, tmp_path) -> None:
    a = net[0]
    frames = traffic(net)
    expr = "vlan 100 and udp"
    want = capture(net, expr, frames)
    out = tmp_path / "live.pcap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bpfkit", "filter", "capture", a, expr]
        + ["-c", str(len(want)), "-w", str(out), "--timeout", "30", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_packet_socket(a, proc)
        send(net, frames)
        stdout, stderr = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert '"dropped": 0' in stdout.splitlines()[-1]
    assert [(p.data, p.wirelen) for p in CaptureReader(out)] == want


def test_protochain_is_refused_live() -> None:
    from bpfkit.errors import FilterSyntaxError

    with pytest.raises(FilterSyntaxError, match="live capture|not supported"):
        live_program("ip protochain 6", "EN10MB")
