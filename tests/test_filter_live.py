"""Compiling for live capture: bpfkit's programs against libpcap's for a live Linux handle.

``compile_filter(expr, live=True)`` must return what ``tcpdump -i IFACE -d EXPR`` prints:
libpcap compiles ``vlan`` on a live capture with the kernel's VLAN ancillary loads and
run-time offsets, and ``inbound``/``outbound``/``ifindex`` with the packet-type and
interface loads. The oracle is libpcap itself on a handle opened with pcap_open_live on
the loopback interface (which needs CAP_NET_RAW; it is probed), checked once against the
tcpdump binary.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import subprocess
import sys

import pytest
from test_filter_compile import CORPUS, random_expr
from test_filter_libpcap import LIBPCAP, _Prog

from bpfkit.classic import check
from bpfkit.errors import FilterSyntaxError
from bpfkit.pcap.filter import compile_filter

VLAN_EXPRESSIONS = [
    "vlan",
    "vlan 100",
    "vlan 4095",
    "vlan 4096",
    "not vlan",
    "vlan or ip",
    "ip or vlan",
    "vlan and vlan",
    "vlan 100 and vlan 200 and udp",
    "vlan and vlan and vlan 3 and ip6",
    "vlan 100 and tcp port 80",
    "vlan and portrange 1-1024",
    "vlan and host 10.0.0.1",
    "vlan and ip6 host 2001:db8::1 and tcp",
    "vlan and ether host 01:02:03:04:05:06",
    "vlan and ether[12:2] = 0x800",
    "vlan and ip[0] & 0xf > 5",
    "vlan and tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
    "vlan and icmp6[icmp6type] = icmp6-echo",
    "vlan and udp[8:2] = 0x1234",
    "vlan and (ip[6:2] & 0x1fff != 0 or arp)",
    "vlan and mpls 16 and ip",
    "(vlan 1 or vlan 2) and ip",
    "ip and vlan",
    "vlan and less 100",
    "vlan and ether proto 0x88cc",
    "vlan and ip proto 47",
    "vlan and stp",
    "inbound",
    "outbound and vlan",
    "ifindex 3 and not vlan 5",
    "vlan and inbound and udp",
    "vlan and protochain 6",
]


def _open_live():
    """A libpcap handle on the loopback interface, or the reason there is none."""
    if LIBPCAP is None:
        return None, "libpcap is not installed"
    lib = LIBPCAP.lib
    lib.pcap_open_live.restype = ctypes.c_void_p
    lib.pcap_open_live.argtypes = [
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_char_p,
    ]
    err = ctypes.create_string_buffer(256)
    h = lib.pcap_open_live(b"lo", 262144, 0, 0, err)
    if not h:
        return None, f"pcap_open_live(lo): {err.value.decode()}"
    return h, None


HANDLE, WHY = _open_live()


@pytest.fixture(scope="module")
def live():
    if HANDLE is None:
        if os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1":
            pytest.fail(f"BPFKIT_REQUIRE_KERNEL=1 but {WHY}", pytrace=False)
        pytest.skip(WHY)
    lib = LIBPCAP.lib

    def compile_live(expr: str, optimize: bool = True):
        prog = _Prog()
        if lib.pcap_compile(HANDLE, ctypes.byref(prog), expr.encode(), int(optimize), 0):
            return lib.pcap_geterr(HANDLE).decode()
        out = [(i.code, i.jt, i.jf, i.k) for i in prog.insns[: prog.len]]
        lib.pcap_freecode(ctypes.byref(prog))
        return out

    return compile_live


def _ours(expr: str, optimize: bool = True):
    try:
        return [tuple(i) for i in compile_filter(expr, optimize=optimize, live=True)]
    except FilterSyntaxError as e:
        return f"error: {e}"


def _compare(live, exprs, optimize: bool) -> list[str]:
    problems = []
    for expr in exprs:
        want, got = live(expr, optimize), _ours(expr, optimize)
        if isinstance(want, str):
            if not isinstance(got, str) and "protochain" not in expr:
                problems.append(f"{expr!r}: libpcap refuses ({want}), bpfkit compiles")
        elif got != want:
            problems.append(f"{expr!r} (optimize={optimize}): {got!r:.60} != libpcap's")
    return problems


@pytest.mark.parametrize("optimize", [True, False])
def test_vlan_programs_are_libpcaps(live, optimize: bool) -> None:
    assert not _compare(live, VLAN_EXPRESSIONS, optimize)


def test_corpus_live_programs_are_libpcaps(live) -> None:
    """Every corpus expression and random combinations, optimised (every fourth one also
    unoptimised): in live mode only vlan and the direction/interface tests change, and
    everything else must stay libpcap's."""
    rng = random.Random(77)
    exprs = [e for e in CORPUS if "protochain" not in e] + [random_expr(rng) for _ in range(150)]
    problems = _compare(live, exprs, True) + _compare(live, exprs[::4], False)
    assert not problems, "\n".join(problems[:20])


def test_live_programs_pass_the_kernels_checker(live) -> None:
    """The ancillary loads are ones the kernel accepts (bpfkit's checker agrees with
    SO_ATTACH_FILTER, see test_classic_check)."""
    for expr in VLAN_EXPRESSIONS:
        prog = _ours(expr)
        if not isinstance(prog, str):
            check(prog)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_oracle_is_tcpdump_i(live) -> None:
    """The in-process live oracle prints what tcpdump -i lo -ddd prints."""
    for expr in ("vlan 100 and tcp port 80", "inbound and vlan"):
        p = subprocess.run(["tcpdump", "-i", "lo", "-ddd", expr], capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"tcpdump -i lo: {p.stderr.strip()}")
        lines = p.stdout.split("\n")
        want = [tuple(int(x) for x in ln.split()) for ln in lines[1 : 1 + int(lines[0])]]
        assert live(expr) == want
        # and bpfkit's command line prints what tcpdump -i lo -d prints
        listing = subprocess.run(
            ["tcpdump", "-i", "lo", "-d", expr], capture_output=True, text=True
        )
        ours = subprocess.run(
            [sys.executable, "-m", "bpfkit", "filter", "compile", "--live", expr],
            capture_output=True,
            text=True,
        )
        assert ours.returncode == 0 and ours.stdout == listing.stdout


def test_file_programs_refuse_live_only_primitives() -> None:
    for expr in ("inbound", "ifindex 2"):
        with pytest.raises(FilterSyntaxError, match="savefiles"):
            compile_filter(expr)
