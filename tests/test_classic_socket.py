"""Classic filters on real sockets: attach, what passes, truncation, detach, lock.

A UDP socket's filter sees the datagram from its UDP header, the IP header in front
(``SKF_NET_OFF`` reaches it); the return value trims what is queued (0 drops it).
"""

from __future__ import annotations

import errno
import random
import socket

import pytest
from classic_oracles import require_socket_filters
from classic_strategies import classic_program, examples, make_packet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.classic import insn as c
from bpfkit.classic.insn import SockFilter, stmt
from bpfkit.classic.interp import PacketMeta, run_classic
from bpfkit.classic.listing import parse_listing
from bpfkit.errors import KernelError
from bpfkit.kernel.socket import (
    attach_classic_filter,
    detach_filter,
    get_classic_filter,
    lock_filter,
)


@pytest.fixture
def udp_pair():
    require_socket_filters()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        yield rx, tx
    finally:
        rx.close()
        tx.close()


def _drain(rx: socket.socket, tx: socket.socket, payloads: list[bytes]) -> list[bytes]:
    """Send the payloads, then an end marker the filter passes; return what arrived."""
    for p in payloads + [b"Zend"]:
        tx.sendto(p, rx.getsockname())
    got = []
    while True:
        try:
            d = rx.recv(4096)
        except TimeoutError:
            break
        if d.startswith(b"Zend"):
            break
        got.append(d)
    return got


def _udp_view(payload: bytes, port: int) -> tuple[bytes, PacketMeta]:
    """What a UDP socket's filter sees: the UDP header and payload, the IP header before."""
    udp = (
        (12345).to_bytes(2, "big") + port.to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big")
    )
    ip = bytes([0x45, 0]) + (28 + len(payload)).to_bytes(2, "big") + bytes(5) + b"\x11" + bytes(2)
    ip += bytes([127, 0, 0, 1]) * 2
    return udp + b"\0\0" + payload, PacketMeta(net_offset=-20, headroom=ip, mac_offset=None)


FILTER = """
ldb [8]
jeq #0x41 jt 4 jf 2
ldb [8]
jeq #0x5a jt 4 jf 5
ret #65535
ret #0
"""


def test_filter_passes_only_matching_datagrams(udp_pair) -> None:
    rx, tx = udp_pair
    prog = parse_listing(FILTER)
    link = attach_classic_filter(rx, prog)
    assert get_classic_filter(rx) == [tuple(i) for i in prog]
    sent = [b"A1", b"B2", b"A3", b"C4", b"AAAA"]
    got = _drain(rx, tx, sent)
    port = rx.getsockname()[1]
    want = [p for p in sent if run_classic(prog, *_udp_view(p, port)[:1]).ret]
    assert got == want == [b"A1", b"A3", b"AAAA"]
    link.close()
    assert get_classic_filter(rx) == []
    assert _drain(rx, tx, [b"B5"]) == [b"B5"]


def test_return_value_trims_and_network_offset(udp_pair) -> None:
    rx, tx = udp_pair
    port = rx.getsockname()[1]
    # keep 8 + 3 bytes of UDP packets (ip proto 17 read through SKF_NET_OFF + 9)
    prog = parse_listing("ldb [-1048567]\njeq #17 jt 2 jf 3\nret #11\nret #0")
    payload = b"Zend-and-more"
    data, meta = _udp_view(payload, port)
    assert run_classic(prog, data, meta=meta).ret == 11
    with attach_classic_filter(rx, prog):
        tx.sendto(b"hello world", rx.getsockname())
        assert rx.recv(4096) == b"hel"


def test_refused_program_gives_einval(udp_pair) -> None:
    rx, _ = udp_pair
    with pytest.raises(KernelError) as ei:
        attach_classic_filter(rx, parse_listing("ld M[0]\nret a"))
    assert ei.value.errno == errno.EINVAL


def test_lock_then_detach_is_eperm(udp_pair) -> None:
    rx, tx = udp_pair
    link = attach_classic_filter(rx, parse_listing(FILTER))
    lock_filter(rx)
    with pytest.raises(KernelError) as ei:
        detach_filter(rx)
    assert ei.value.errno == errno.EPERM
    with pytest.raises(KernelError) as ei:
        attach_classic_filter(rx, parse_listing("ret #0"))
    assert ei.value.errno == errno.EPERM
    link.close()  # the locked filter stays; closing the link is not an error
    assert _drain(rx, tx, [b"B1", b"A2"]) == [b"A2"]


def test_detach_without_filter_is_enoent(udp_pair) -> None:
    rx, _ = udp_pair
    with pytest.raises(KernelError) as ei:
        detach_filter(rx)
    assert ei.value.errno == errno.ENOENT


# ---- the kernel's own classic runtime as the oracle ------------------------------
MARK = 0xA5
SO_NO_CHECK = 11
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2
ANC_UDP = [
    c.SKF_AD_PROTOCOL,
    c.SKF_AD_PKTTYPE,
    c.SKF_AD_IFINDEX,
    c.SKF_AD_HATYPE,
    c.SKF_AD_MARK,
    c.SKF_AD_QUEUE,
    c.SKF_AD_VLAN_TAG,
    c.SKF_AD_VLAN_TAG_PRESENT,
    c.SKF_AD_VLAN_TPID,
    c.SKF_AD_ALU_XOR_X,
    c.SKF_AD_PAY_OFFSET,
    c.SKF_AD_NLATTR,
    c.SKF_AD_NLATTR_NEST,
]
KNOWN_NEG = [c.SKF_NET_OFF + k for k in (0, 2, 4, 6, 8, 9, 10, 12, 16, 20)] + [
    c.SKF_LL_OFF + k for k in (0, 6, 12, 14, 23, 26)
]


def _ip_header(total: int) -> bytes:
    """The IPv4 header Linux puts on a datagram sent with sendto() to 127.0.0.1 from a
    socket with IP_PMTUDISC_DO: DF with IP id 0 (without it, 6.18 picks a random id),
    TTL 64, the checksum computed."""
    h = bytearray(
        bytes([0x45, 0]) + total.to_bytes(2, "big") + b"\0\0\x40\0" + bytes([64, 17, 0, 0])
    )
    h += bytes([127, 0, 0, 1]) * 2
    s = sum(int.from_bytes(h[i : i + 2], "big") for i in range(0, 20, 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    h[10:12] = (~s & 0xFFFF).to_bytes(2, "big")
    return bytes(h)


def _fold(r: int) -> int:
    t = r ^ (r >> 9)
    return (t ^ (t >> 18)) & 0x1FF


def _observable(prog: list[SockFilter]) -> list[SockFilter]:
    """``prog`` reporting its return value R through the datagram's length: every ``ret``
    jumps to an epilogue that drops when R is 0, else keeps 9 + fold(R) bytes; a prefix
    passes the end marker whole."""
    pre = [
        stmt(c.LD | c.B | c.ABS, 8),
        c.jump(c.JMP | c.JEQ | c.K, MARK, 0, 1),
        stmt(c.JMP | c.JA, 0),  # patched: to the pass-all return
        stmt(c.LD | c.IMM, 0),
    ]
    n_k = sum(1 for i in prog if i.code == c.RET | c.K)
    epi = len(pre) + len(prog) + 2 * n_k
    body, tail = [], []
    for pc, ins in enumerate(prog):
        at = len(pre) + pc
        if ins.code == c.RET | c.K:
            t = len(pre) + len(prog) + len(tail)
            body.append(stmt(c.JMP | c.JA, t - at - 1))
            tail += [stmt(c.LD | c.IMM, ins.k), stmt(c.JMP | c.JA, epi - (t + 1) - 1)]
        elif ins.code & 0x07 == c.RET:
            body.append(stmt(c.JMP | c.JA, epi - at - 1))
        else:
            body.append(ins)
    out = pre + body + tail
    assert len(out) == epi
    out += [
        c.jump(c.JMP | c.JEQ | c.K, 0, 7, 0),
        stmt(c.MISC | c.TAX),
        stmt(c.ALU | c.RSH | c.K, 9),
        stmt(c.ALU | c.XOR | c.X),
        stmt(c.MISC | c.TAX),
        stmt(c.ALU | c.RSH | c.K, 18),
        stmt(c.ALU | c.XOR | c.X),
        stmt(c.JMP | c.JA, 1),
        stmt(c.RET | c.K, 0),
        stmt(c.ALU | c.AND | c.K, 0x1FF),
        stmt(c.ALU | c.ADD | c.K, 9),
        stmt(c.RET | c.RVAL_A),
        stmt(c.RET | c.K, 0xFFFF),
    ]
    out[2] = stmt(c.JMP | c.JA, len(out) - 1 - 2 - 1)
    return out


def test_observable_wrapper_keeps_the_result() -> None:
    """The wrapper itself, on the interpreter: fold(R) + 9, or 0 for R = 0."""
    rnd = random.Random(5)
    for text in ("ld #5\nret a", "ret #0", "ldb [9]\njeq #3 jt 2 jf 3\nret #77\nret a", "ret #-1"):
        prog = parse_listing(text)
        data = bytes(rnd.randrange(256) for _ in range(40))
        r = run_classic(prog, data).ret
        got = run_classic(_observable(prog), data).ret
        assert got == (0 if r == 0 else 9 + _fold(r))


_PAYLOADS = [make_packet(random.Random(100 + i)) for i in range(12)]


@settings(max_examples=examples(120), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    classic_program(
        max_len=20, ancillary_set=ANC_UDP, negative_offsets=False, known_offsets=KNOWN_NEG
    ),
    st.integers(0, len(_PAYLOADS) - 3),
)
def test_kernel_runs_classic_programs_like_the_interpreter(prog, i: int) -> None:
    """The kernel's classic runtime (its own translation and JIT) on a UDP socket against
    the interpreter: R = 0 drops the datagram, otherwise 9 + fold(R) bytes arrive."""
    require_socket_filters()
    wrapped = _observable(prog)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        tx.bind(("127.0.0.1", 0))
        tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)  # UDP checksum 0
        tx.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)  # DF and IP id 0
        link = attach_classic_filter(rx, wrapped)  # noqa: F841 - the filter lives as long as the link
        sport, dport = tx.getsockname()[1], rx.getsockname()[1]
        for payload in _PAYLOADS[i : i + 3]:
            payload = bytes([0x11]) + payload[1:].ljust(600, b"\x5a")
            tx.sendto(payload, rx.getsockname())
            tx.sendto(bytes([MARK]), rx.getsockname())
            first = rx.recv(4096)
            got = None if first == bytes([MARK]) else len(first) + 8
            if got is not None:
                assert rx.recv(4096) == bytes([MARK])
            udp = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
            udp += (8 + len(payload)).to_bytes(2, "big") + b"\0\0"
            eth = bytes(12) + b"\x08\x00"
            meta = PacketMeta(
                protocol=0x0800,
                pkttype=0,
                ifindex=1,
                hatype=772,
                net_offset=-20,
                mac_offset=-34,
                headroom=eth + _ip_header(28 + len(payload)),
            )
            r = run_classic(prog, udp + payload, meta=meta).ret
            want = None if r == 0 else 9 + _fold(r)
            assert got == want, (r, got, want)
    finally:
        rx.close()
        tx.close()
