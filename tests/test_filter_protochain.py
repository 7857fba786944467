"""``protochain``: libpcap's loop over IPv6 extension and AH headers, in user space.

libpcap compiles it to one block whose statements loop with a backward ``ja`` (so the
optimiser is off for the whole program); ``tcpdump -r`` runs it, the kernel refuses it.
bpfkit compiles the same program (libpcap is the oracle, instruction for instruction, on
the four link types), runs it with libpcap's rules on both ``filter run`` engines
(verdicts = libpcap's on synthetic traffic and on crafted header chains, end to end =
``tcpdump -r -w``), refuses it for live capture with the reason, and stops a program that
loops for ever (libpcap would spin) by rejecting the packet.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time

import pytest
from test_filter_libpcap import LIBPCAP, needs_libpcap, needs_tcpdump

from bpfkit.classic.interp import run_classic
from bpfkit.classic.listing import format_listing, parse_listing
from bpfkit.errors import FilterSyntaxError
from bpfkit.pcap import CaptureReader, PcapWriter, compile_filter
from bpfkit.pcap.live import live_program
from bpfkit.pcap.scan import compile_native, filter_capture, python_matcher, validate
from bpfkit.pcap.synth import packet_mix

EXPRESSIONS = [
    "ip6 protochain 6",
    "protochain 17",
    "ip protochain 51",
    "ip6 protochain \\tcp",
    "protochain \\udp",
    "ip6 protochain 58 and not icmp6",
    "not protochain 44",
    "tcp port 80 or ip6 protochain 17",
    "vlan and ip6 protochain 6",
    "mpls and protochain 6",
    "protochain 6 and protochain 17",
    "ip6 protochain 59",
]


@needs_libpcap
@pytest.mark.parametrize("linktype", ["EN10MB", "RAW", "LINUX_SLL", "LINUX_SLL2"])
def test_programs_are_libpcaps(linktype: str) -> None:
    for expr in [*EXPRESSIONS, "ether protochain 6", "udp protochain 6", "ip6 protochain tcp"]:
        for optimize in (True, False):
            want = LIBPCAP.compile(expr, linktype, optimize=optimize)
            if isinstance(want, str):
                with pytest.raises(FilterSyntaxError):
                    compile_filter(expr, linktype, optimize=optimize)
                continue
            got = compile_filter(expr, linktype, optimize=optimize)
            assert [tuple(i) for i in got] == want, (expr, linktype, optimize)


def _ipv6(nxt: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(payload), nxt, 64) + bytes(32) + payload


def _ipv4(proto: int, payload: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0) + bytes(8)
    return hdr + payload


def _ext(nxt: int, units: int = 0) -> bytes:  # hop-by-hop/dst/routing: 8 * (units + 1)
    return bytes([nxt, units]) + bytes(6 + 8 * units)


def _ah(nxt: int, words: int = 4) -> bytes:  # AH: (words + 2) * 4 bytes
    return bytes([nxt, words]) + bytes(2 + 4 * (words + 2) - 4)


TCP = bytes(20)


def chains() -> list[bytes]:
    """Ethernet frames with header chains protochain walks: extension headers in every
    order, fragment and AH headers, IPv4 AH, truncated chains, a chain that ends in
    IPPROTO_NONE."""
    eth6, eth4 = bytes(12) + b"\x86\xdd", bytes(12) + b"\x08\x00"
    out = [
        eth6 + _ipv6(6, TCP),
        eth6 + _ipv6(0, _ext(6) + TCP),
        eth6 + _ipv6(0, _ext(60, 1) + _ext(43, 2) + _ext(44) + TCP),
        eth6 + _ipv6(60, _ext(51) + _ah(17) + bytes(8)),
        eth6 + _ipv6(43, _ext(58, 3) + bytes(8)),
        eth6 + _ipv6(0, _ext(59)),
        eth6 + _ipv6(0, _ext(0, 30))[:60],  # cut inside the chain
        eth4 + _ipv4(51, _ah(6) + TCP),
        eth4 + _ipv4(51, _ah(51, 2) + _ah(17) + bytes(8)),
        eth4 + _ipv4(6, TCP),
    ]
    return out


#: an IPv4 AH header whose "next AH" is itself: libpcap 1.10's protochain program loops
#: on it for ever (tcpdump -r hangs, deaf to SIGTERM), so it is never given to the oracle
AH_LOOP = bytes(12) + b"\x08\x00" + _ipv4(51, bytes([51, 3]) + bytes(30))


def _frames():
    return chains() + [f for f, _wl in packet_mix(1500, seed=19)]


@needs_libpcap
def test_verdicts_are_libpcaps() -> None:
    frames = _frames()
    for expr in EXPRESSIONS:
        want = LIBPCAP.matcher(LIBPCAP.compile(expr))
        prog = compile_filter(expr)
        native, py = compile_native(prog), python_matcher(prog)
        for i, f in enumerate(frames):
            w = want(f, len(f))
            assert native.match(f, len(f)) == w, (expr, i)
            assert py(f, len(f)) == w, (expr, i)


@needs_tcpdump
def test_cli_run_writes_what_tcpdump_writes(tmp_path) -> None:
    path = tmp_path / "chains.pcap"
    with PcapWriter(path) as w:
        for i, f in enumerate(_frames()):
            w.write(f, i * 1000)
    for expr in ("protochain 6", "ip6 protochain 17 or ip protochain 51"):
        want = tmp_path / "tcpdump.pcap"
        subprocess.run(
            ["tcpdump", "-r", str(path), "-w", str(want), expr], check=True, capture_output=True
        )
        for engine in ("jit", "interp"):
            out = tmp_path / f"{engine}.pcap"
            r = subprocess.run(
                [sys.executable, "-m", "bpfkit", "filter", "run", expr, str(path)]
                + ["-w", str(out), "--engine", engine],
                capture_output=True,
                text=True,
            )
            assert r.returncode == 0, r.stderr
            assert [p.data for p in CaptureReader(out)] == [p.data for p in CaptureReader(want)]


def test_refused_for_the_kernel() -> None:
    with pytest.raises(FilterSyntaxError, match="jumps backwards"):
        live_program("ip6 protochain 6", "EN10MB")
    # the listing shows the loop as tcpdump -d does, and reads back
    prog = compile_filter("ip6 protochain 6")
    assert "ja       4" in format_listing(prog)
    assert parse_listing(format_listing(prog)) == prog


def test_the_packet_libpcap_hangs_on_is_rejected() -> None:
    """bpfkit stops the loop and rejects the packet (a deliberate difference: tcpdump
    never returns); ``protochain 51`` still matches it at once."""
    for expr, want in (
        ("protochain 6", False),
        ("ip protochain 17", False),
        ("protochain 51", True),
    ):
        prog = compile_filter(expr)
        t0 = time.perf_counter()
        assert compile_native(prog).match(AH_LOOP, len(AH_LOOP)) is want
        assert python_matcher(prog)(AH_LOOP, len(AH_LOOP)) is want
        assert time.perf_counter() - t0 < 5


def test_a_program_that_never_ends_is_stopped() -> None:
    """``ja`` to itself: libpcap would loop for ever; bpfkit rejects the packet after as
    many backward jumps as the packet has bytes (+ slack), on every engine."""
    prog = parse_listing("ld #1\nja 1\nret #1")
    validate(prog)  # bpf_validate accepts it too (its sum wraps around)
    t0 = time.perf_counter()
    r = run_classic(prog, bytes(1500), semantics="libpcap")
    assert r.ret == 0 and r.insns < 4000
    assert not compile_native(prog).match(bytes(1500), 1500)
    assert time.perf_counter() - t0 < 5


def test_cli_on_a_looping_program(tmp_path) -> None:
    path = tmp_path / "few.pcap"
    with PcapWriter(path) as w:
        for i, (f, wl) in enumerate(packet_mix(50, seed=2)):
            w.write(f, i, wl)
    prog = tmp_path / "loop.txt"
    prog.write_text("ld #1\nja 1\nret #1\n")
    for engine in ("jit", "interp"):
        r = subprocess.run(
            [sys.executable, "-m", "bpfkit", "filter", "run", f"@{prog}", str(path)]
            + ["--engine", engine, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and '"matched": 0' in r.stdout, r.stderr
    assert filter_capture(path, lambda lt: compile_filter("protochain 6", lt)).packets == 50
