"""Classic filters on real sockets: attach, what passes, truncation, detach, lock.

A UDP socket's filter sees the datagram from its UDP header, the IP header in front
(``SKF_NET_OFF`` reaches it); the return value trims what is queued (0 drops it).
"""

from __future__ import annotations

import errno
import socket

import pytest
from classic_oracles import require_socket_filters

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
