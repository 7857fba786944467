"""Verdicts packet for packet: bpfkit's programs and engines against libpcap's.

Synthetic captures (IPv4/IPv6 with options and extension headers, fragments, VLAN and
QinQ tags, MPLS stacks, ARP/RARP, 802.3 LLC frames, runts, random bytes and frames cut
short by a snapshot length) are filtered three ways and compared with what tcpdump's
libpcap decides: bpfkit's program on both ``filter run`` engines, libpcap's own program
(``tcpdump -ddd``) on bpfkit's engines, and — end to end — ``bpfkit filter run -w``
against ``tcpdump -r FILE -w OUT``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from test_filter_compile import CORPUS, LINKTYPES, PRIMS, random_expr
from test_filter_libpcap import LIBPCAP, needs_libpcap, needs_tcpdump

from bpfkit.classic.insn import SockFilter
from bpfkit.classic.interp import compile_classic, run_classic
from bpfkit.errors import FilterSyntaxError
from bpfkit.pcap import CaptureReader, PcapWriter, compile_filter
from bpfkit.pcap.filter import linktype_number
from bpfkit.pcap.scan import filter_capture, python_matcher
from bpfkit.pcap.synth import packet_mix, to_linktype

N_PACKETS = 1500


def make_capture(tmp_path, linktype: str, n: int = N_PACKETS, seed: int = 7):
    """A capture of the synthetic mix re-framed for ``linktype``; timestamps are indices."""
    rng = random.Random(seed)
    pkts = []
    path = tmp_path / f"mix-{linktype}.pcap"
    with PcapWriter(path, linktype_number(linktype)) as w:
        for i, (f, wl) in enumerate(packet_mix(n, seed=seed)):
            g = to_linktype(f, linktype, rng)
            wirelen = max(wl - len(f) + len(g), len(g))
            w.write(g, ts_ns=i * 1000, wirelen=wirelen)
            pkts.append((g, wirelen))
    return path, pkts


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    d = tmp_path_factory.mktemp("verdicts")
    return {lt: make_capture(d, lt) for lt in LINKTYPES}


def libpcap_indices(expr: str, linktype: str, pkts) -> list[int] | None:
    prog = LIBPCAP.compile(expr, linktype)
    if isinstance(prog, str):
        return None
    m = LIBPCAP.matcher(prog)
    return [i for i, (d, wl) in enumerate(pkts) if m(d, wl)]


def run_indices(path, expr: str, engine: str, tmp_path) -> list[int]:
    out = tmp_path / f"out-{engine}.pcap"
    filter_capture(path, lambda lt: compile_filter(expr, lt), engine=engine, out=out)
    return [p.ts_ns // 1000 for p in CaptureReader(out)]


def _usable(expr: str) -> bool:
    return True  # protochain included: filter run's engines loop as libpcap's does


SLOW = os.environ.get("BPFKIT_SLOW") == "1"


@needs_libpcap
@pytest.mark.parametrize("linktype", LINKTYPES)
def test_corpus_verdicts(linktype: str, captures, tmp_path) -> None:
    """Every corpus expression libpcap accepts selects the same packets: all of them on
    the Python engine, and a fixed share (all with BPFKIT_SLOW=1) through the native scan
    of the whole file (each of those is an LLVM compile)."""
    path, pkts = captures[linktype]
    stride = 1 if SLOW else (3 if linktype == "EN10MB" else 8)
    problems = []
    for n, expr in enumerate(CORPUS):
        want = libpcap_indices(expr, linktype, pkts)
        if want is None or not _usable(expr):
            continue
        m = python_matcher(compile_filter(expr, linktype))
        got = [i for i, (d, wl) in enumerate(pkts) if m(d, wl)]
        if got != want:
            problems.append(f"{expr!r} [{linktype}, interp]: {len(want)} vs {len(got)}")
        if n % stride == 0:
            got = run_indices(path, expr, "jit", tmp_path)
            if got != want:
                diff = sorted(set(got) ^ set(want))[:5]
                problems.append(f"{expr!r} [{linktype}, jit]: {len(want)} vs {len(got)} {diff}")
    assert not problems, "\n".join(problems[:20])


@needs_libpcap
@pytest.mark.parametrize("seed", range(3))
def test_random_combination_verdicts(seed: int, captures, tmp_path) -> None:
    rng = random.Random(100 + seed)
    problems = []
    for _ in range(12):
        expr = random_expr(rng)
        lt = rng.choice(LINKTYPES)
        path, pkts = captures[lt]
        want = libpcap_indices(expr, lt, pkts)
        if want is None:
            continue
        got = run_indices(path, expr, "jit", tmp_path)
        if got != want:
            problems.append(f"{expr!r} [{lt}]: {len(want)} vs {len(got)}")
    assert not problems, "\n".join(problems)


@needs_libpcap
@pytest.mark.parametrize("linktype", ["EN10MB", "LINUX_SLL2"])
def test_libpcap_programs_on_bpfkit_engines(linktype: str, captures) -> None:
    """libpcap's own compiled programs give libpcap's verdicts on bpfkit's classic engines:
    the interpreter with libpcap's rules, the native code, and the interpreter with the
    kernel's rules where those cannot differ (no shift by X)."""
    from bpfkit.pcap.scan import compile_native

    _path, pkts = captures[linktype]
    problems = []
    checked_kernel = 0
    for expr in CORPUS[:: 1 if SLOW else 4] + PRIMS:
        prog = LIBPCAP.compile(expr, linktype)
        if isinstance(prog, str):
            continue
        want = LIBPCAP.matcher(prog)
        sf = [SockFilter(*i) for i in prog]
        native = compile_native(sf)
        pcap_rules = compile_classic(sf, semantics="libpcap")
        kernel = not any(i.code in (0x6C, 0x7C) for i in sf)  # lsh x / rsh x
        checked_kernel += kernel
        for i, (d, wl) in enumerate(pkts[:600]):
            w = want(d, wl)
            if kernel and (run_classic(sf, d, wire_len=wl).ret != 0) != w:
                problems.append(f"{expr!r} packet {i}: run_classic (kernel rules) disagrees")
                break
            if (pcap_rules.ret(d, wl) != 0) != w or native.match(d, wl) != w:
                problems.append(f"{expr!r} packet {i}: engines disagree")
                break
    assert checked_kernel > 40
    assert not problems, "\n".join(problems[:20])


def test_kernel_and_libpcap_rules_differ_only_where_said() -> None:
    """Shifts by X >= 32: the kernel masks the count, libpcap gives 0; filter run's Python
    engine takes libpcap's rule."""
    prog = compile_filter("ip[0] << ip[1] = 0")
    frame = bytes(12) + b"\x08\x00" + bytes([0x45, 33]) + bytes(40)
    assert run_classic(prog, frame, semantics="libpcap").ret != 0  # 0x45 << 33 is 0
    assert run_classic(prog, frame).ret == 0  # the kernel shifts by 33 & 31 = 1
    assert python_matcher(prog)(frame, len(frame))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "bpfkit", "filter", *args], capture_output=True, text=True, env=env
    )


@needs_tcpdump
@pytest.mark.parametrize(
    "expr",
    [
        "tcp port 80 or udp port 53",
        "vlan and ip and not tcp",
        "ip[6:2] & 0x1fff != 0",
        "host 10.0.0.1 or 1.2.3.4",
        "mpls and ip6",
        "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
        "less 60",
    ],
)
def test_cli_run_writes_what_tcpdump_writes(expr: str, captures, tmp_path) -> None:
    """End to end, through both binaries: the same packets, in the same order."""
    path, _pkts = captures["EN10MB"]
    want_file = tmp_path / "tcpdump.pcap"
    subprocess.run(
        ["tcpdump", "-r", str(path), "-w", str(want_file), "--", expr],
        check=True,
        capture_output=True,
    )
    want = [(p.ts_ns, p.data, p.wirelen) for p in CaptureReader(want_file)]
    for engine in ("jit", "interp"):
        got_file = tmp_path / f"bpfkit-{engine}.pcap"
        r = _cli("run", expr, str(path), "-w", str(got_file), "--engine", engine)
        assert r.returncode == 0, r.stderr
        got = [(p.ts_ns, p.data, p.wirelen) for p in CaptureReader(got_file)]
        assert got == want


@needs_libpcap
def test_live_mode_errors_are_libpcaps() -> None:
    """Primitives that need live metadata are refused on capture files, as libpcap does."""
    for expr in ("inbound", "outbound", "ifindex 2"):
        assert isinstance(LIBPCAP.compile(expr, "EN10MB"), str)
        with pytest.raises(FilterSyntaxError):
            compile_filter(expr, "EN10MB")
