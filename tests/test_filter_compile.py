"""The filter compiler against libpcap: the same program, instruction for instruction.

Every primitive of pcap-filter(7) and many combinations (qualifier inheritance, vlan/mpls
offset shifts, arithmetic precedence, errors) are compiled by bpfkit and by the system's
libpcap (tcpdump's compiler, in-process) for each supported link type, optimised and not;
the programs must be identical, or both must refuse the expression.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_filter_libpcap import LIBPCAP, needs_libpcap

from bpfkit.errors import FilterSyntaxError
from bpfkit.pcap.filter import compile_filter

LINKTYPES = ["EN10MB", "RAW", "LINUX_SLL", "LINUX_SLL2"]

# One expression a line: every primitive of pcap-filter(7) bpfkit supports, combinations,
# and expressions libpcap refuses (bpfkit must refuse them too).
CORPUS = r"""
dst host 10.0.0.1
src host 10.0.0.1
host 10.0.0.1
src or dst host 10.0.0.1
src and dst host 10.0.0.1
dst or src host 10.0.0.1
dst and src host 10.0.0.1
ip host 10.0.0.1
arp host 10.0.0.1
rarp host 10.0.0.1
ip src host 10.0.0.1
ip6 host 2001:db8::1
ip6 src host 2001:db8::1
host 2001:db8::1
dst host ff02::1
ether dst 01:00:5e:00:00:fb
ether src 00:01:02:03:04:05
ether host 0a:0b:0c:0d:0e:0f
ether src and dst 0a:0b:0c:0d:0e:0f
ether host 0a-0b-0c-0d-0e-0f
ether host 0a0b.0c0d.0e0f
ether host 0a0b0c0d0e0f
dst net 10.0.0.0/8
src net 192.168.0.0/16
net 10
net 10.0
net 10.0.0
net 192.168.1.0 mask 255.255.255.0
net 10.0.0.0/9
ip net 10.0.0.0/8
arp net 10.0.0.0/8
net 2001:db8::/32
ip6 net 2001:db8::/48
src net 2001:db8:1::/48
dst port 53
src port 53
port 53
tcp dst port 80
udp src port 53
sctp port 5000
tcp port 80 or udp port 53
dst portrange 1000-2000
src portrange 1-1023
tcp portrange 6000-6010
udp portrange 100-200
portrange 2000-1000
port http
tcp port http
port domain
less 64
greater 128
less 0
greater 65535
ip proto 6
ip proto 17
ip proto \udp
ip proto \icmp
ip6 proto 58
ip6 proto \tcp
proto 6
proto \tcp
ether broadcast
broadcast
ip broadcast
ether multicast
multicast
ip multicast
ip6 multicast
ether proto 0x0800
ether proto \ip
ether proto \ip6
ether proto \arp
ether proto \rarp
ether proto \atalk
ether proto \aarp
ether proto \decnet
ether proto \sca
ether proto \lat
ether proto \mopdl
ether proto \moprc
ether proto \iso
ether proto \stp
ether proto \ipx
ether proto \netbeui
ether proto 100
ether proto \loopback
decnet src 10.20
decnet host 1.2
ip
ip6
arp
rarp
atalk
aarp
decnet
iso
stp
ipx
netbeui
lat
moprc
mopdl
sca
tcp
udp
icmp
icmp6
igmp
igrp
pim
vrrp
carp
sctp
ah
esp
esis
isis
clnp
l1
l2
iih
lsp
snp
csnp
psnp
vlan
vlan 100
vlan 4095
vlan 4096
vlan and vlan
vlan 100 and vlan 200
vlan and ip
vlan 1 and ip6 and tcp port 80
vlan or ip
ip or vlan and ip
not vlan and ip
vlan and host 10.0.0.1
vlan and ether host 0a:0b:0c:0d:0e:0f
mpls
mpls 100
mpls 1048575
mpls 1048576
mpls and ip
mpls and ip6
mpls 16 and mpls 100
mpls and mpls and ip
mpls and host 10.0.0.1
mpls and tcp port 80
mpls and arp
vlan and mpls
mpls and vlan
pppoed
ip[0] & 0xf != 5
ip[6:2] & 0x1fff = 0
ip[2:2] > 576
ip[8] < 10
ip[9] = 6
tcp[tcpflags] & tcp-syn != 0
tcp[tcpflags] & (tcp-syn|tcp-fin) != 0
tcp[tcpflags] == tcp-ack
tcp[13] & 0x12 = 0x12
tcp[0:2] = 80
tcp[2:2] > 1023
tcp[12] >> 4 > 5
tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420
udp[0:2] = 53
udp[8:4] = 0
icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply
icmp[0] = 8
icmp[icmpcode] = 0
icmp6[icmp6type] = icmp6-echo
icmp6[0] = 135
ether[0] & 1 != 0
ether[12:2] = 0x800
link[0] = 1
arp[6:2] = 1
rarp[6:2] = 3
ip6[6] = 17
ip6[0] & 0xf0 = 0x60
sctp[0:2] = 5000
igmp[0] = 0x11
pim[0] = 0
vrrp[0] = 1
len >= 100
len <= 100
len = 60
len != 60
len < 64
len > 1500
len - 14 > 100
len + 1 = 61
len * 2 > 200
len / 2 > 50
len % 7 = 3
len & 0xff = 60
len | 1 = 61
len ^ 1 = 61
len << 1 > 100
len >> 1 > 30
-len = 0
- ip[0] = 0
ip[0] + ip[1] = 69
ip[0] - ip[1] = 69
ip[0] * ip[1] > 0
ip[0] / ip[1] > 0
ip[0] % ip[1] > 0
ip[0] & ip[1] > 0
ip[0] | ip[1] > 0
ip[0] ^ ip[1] > 0
ip[0] << ip[1] > 0
ip[0] >> ip[1] > 0
ip[ip[0] & 0xf] > 0
ip[2:2] - ((ip[0] & 0xf) << 2) > 100
1 + 2 * 3 = 7
(1 + 2) * 3 = 9
2 * 3 % 4 + 1 = 3
1 | 2 & 3 = 3
8 >> 1 << 2 = 16
10 - 2 - 3 = 5
100 / 10 / 2 = 5
7 ^ 3 ^ 1 = 5
ip[0] / 0 = 1
ip[0] % 0 = 1
ip[0] << 32 = 1
ip[0] >> 40 = 1
1 = 1
1 = 2
0 = 0
ip[0:3] = 1
ip[0:5] = 1
tcp[0:4] = 1
byte 12 = 8
byte 14 & 0xf0
byte 14 | 0x40
byte 23 < 10
byte 23 > 10
inbound
outbound
ifindex 2
not ip
not not ip
! ip
!ip
not tcp and not udp
ip and not (tcp or udp)
ip && tcp
ip || ip6
tcp and (port 80 or port 443)
host 10.0.0.1 and (port 22 or port 80)
host 10.0.0.1 and port 22 or port 80
host 10.0.0.1 or 10.0.0.2
host 10.0.0.1 or 10.0.0.2 or 10.0.0.3
host 10.0.0.1 and not 10.0.0.2
not host 10.0.0.1 and 10.0.0.2
tcp port 80 or 443
port 80 or 443 or 8080
port 22 and not 80
src host 10.0.0.1 or dst 10.0.0.2
src host 10.0.0.1 or dst host 10.0.0.2
host (10.0.0.1 or 10.0.0.2)
host (10.0.0.1 or 10.0.0.2) and port (22 or 80)
port (80)
port ((80))
port (80 or 443)
port (80 and 443)
host not 10.0.0.1
(host 10.0.0.1) or 10.0.0.2
(port 80) and 443
tcp or 80
ip and 80
10.0.0.1
80
(80) = 80
((1)) = 1
(ip[0]) = 69
((ip[0])) = 69
(ip[0] + 1) = 70
(ip) and (tcp)
((ip and tcp)) or (udp)
ip and (tcp or (udp and port 53))
ether src 00:01:02:03:04:05 and not ether dst ff:ff:ff:ff:ff:ff
ip src 10.0.0.1 and ip dst 10.0.0.2
ip6 src 2001:db8::1 or ip6 dst 2001:db8::1
tcp src port 1024 and tcp dst port 80
udp and not udp port 53
icmp or icmp6
ip and ip6
arp or rarp
arp and arp[6:2] = 2
vlan and arp
vlan 100 and arp host 10.0.0.1
tcp[tcpflags] & tcp-rst != 0 or tcp[tcpflags] & tcp-fin != 0
tcp[tcpflags] & (tcp-ece|tcp-cwr) != 0
tcp[tcpflags] & (tcp-push|tcp-urg) != 0
ip[1] & 0xfc >> 2 = 46
gateway foo
host nosuchhost.invalid
port nosuchport
ip proto \nosuch
ether proto \nosuch
net 10.0.0.1/8
net 10.0.0.0/33
net 10.0.0.0 mask 255.0.255.0
host 10.0.0.0/8
port 70000
portrange 1-70000
portrange 100
ip host ::1
ip6 host 10.0.0.1
tcp host 10.0.0.1
tcp proto 6
src port 80 and
and
(
)
ip[
ip[0
ip[0]
ip[0] =
= 1
host
1.2.3.4.5
300.1.1.1
0x1g
09
0777 = 511
0x10 = 16
4294967295 = 4294967295
4294967296 = 1
ip and
not
tcp port 80 )
( tcp port 80
tcp port -1
ether host 1:2:3:4:5
ether host 1:2:3:4:5:6:7
host 1::2::3
vlan 0x10
mpls 0x100
less 0x40
""".strip().splitlines()


def ours(expr: str, linktype: str, optimize: bool = True):
    try:
        return [tuple(i) for i in compile_filter(expr, linktype, optimize=optimize)]
    except FilterSyntaxError as e:
        return e


def compare(expr: str, linktype: str, optimize: bool = True) -> str | None:
    """None when bpfkit and libpcap agree; otherwise a description of the difference."""
    want = LIBPCAP.compile(expr, linktype, optimize)
    got = ours(expr, linktype, optimize)
    if isinstance(want, str):
        if isinstance(got, FilterSyntaxError):
            return None
        return f"{expr!r} [{linktype}]: libpcap refuses ({want}), bpfkit compiles {len(got)} insns"
    if isinstance(got, FilterSyntaxError):
        return f"{expr!r} [{linktype}]: libpcap compiles, bpfkit refuses: {got}"
    if got != want:
        return f"{expr!r} [{linktype}, optimize={optimize}]: programs differ ({len(want)} vs {len(got)})"
    return None


@needs_libpcap
@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("linktype", LINKTYPES)
def test_corpus_matches_libpcap(linktype: str, optimize: bool) -> None:
    problems = [p for e in CORPUS if (p := compare(e, linktype, optimize))]
    assert not problems, "\n".join(problems[:20])


PRIMS = [
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "vlan",
    "vlan 100",
    "mpls",
    "mpls 16",
    "host 10.0.0.1",
    "src host 10.0.0.2",
    "dst net 10.0.0.0/8",
    "net 192.168.1.0/24",
    "port 80",
    "tcp port 443",
    "udp dst port 53",
    "src portrange 1000-2000",
    "ether host 00:01:02:03:04:05",
    "ether broadcast",
    "ether multicast",
    "ip multicast",
    "ip6 multicast",
    "ip broadcast",
    "less 100",
    "greater 200",
    "ip proto 47",
    "ip6 proto 17",
    "tcp[tcpflags] & tcp-syn != 0",
    "ip[6:2] & 0x1fff != 0",
    "len > 100",
    "ip[0] & 0xf > 5",
    "icmp[icmptype] = 8",
    "udp[8:2] = 0x1234",
    "ip6 host 2001:db8::1",
    "ip6 net 2001:db8::/32",
    "stp",
    "ipx",
    "iso",
    "ether proto 0x88cc",
    "ip[9] + ip[8] > 70",
    "ether[0] & 1 = 0",
    "tcp[2:2] < 1024",
    "arp[7] = 2",
    "pppoed",
    "aarp",
    "atalk",
    "netbeui",
    "byte 23 = 6",
    "decnet src 1.2",
    "inbound",
    "ifindex 3",
]
BARE = ["10.0.0.1", "10.0.0.2", "80", "53", "1.2.3.4", "443", "(80 or 443)", "not 22"]


def random_expr(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > 3 or r < 0.35:
        return rng.choice(PRIMS)
    if r < 0.45:
        return rng.choice(["not ", "!"]) + random_expr(rng, depth + 1)
    if r < 0.55:
        return "(" + random_expr(rng, depth + 1) + ")"
    op = rng.choice(["and", "or", "&&", "||"])
    right = rng.choice(BARE) if rng.random() < 0.2 else random_expr(rng, depth + 1)
    return random_expr(rng, depth + 1) + f" {op} " + right


@needs_libpcap
@pytest.mark.parametrize("seed", range(4))
def test_random_combinations_match_libpcap(seed: int) -> None:
    """Combinations (with bare identifiers inheriting qualifiers) compile like libpcap's."""
    rng = random.Random(seed)
    problems = []
    for _ in range(60):
        expr = random_expr(rng)
        lt = rng.choice(LINKTYPES)
        if p := compare(expr, lt, rng.random() < 0.8):
            problems.append(p)
    assert not problems, "\n".join(problems[:20])


TOKENS = (
    "ip ip6 tcp udp icmp arp vlan mpls host net port portrange src dst and or not ! ( ) [ ] : "
    "= != < > <= >= + - * / % & | ^ << >> len less greater proto ether broadcast multicast "
    "10.0.0.1 10.0 1 80 0x10 2001:db8::1 00:01:02:03:04:05 tcpflags tcp-syn icmptype mask / "
    "foo \\tcp byte gateway"
).split()


@needs_libpcap
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=9), st.sampled_from(LINKTYPES))
def test_token_soup_agrees_with_libpcap(tokens: list[str], linktype: str) -> None:
    """Any sequence of filter tokens: bpfkit accepts exactly what libpcap accepts, with the
    same program, and refuses the rest with a FilterSyntaxError (never another exception)."""
    expr = " ".join(tokens)
    assert compare(expr, linktype) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes(text: str) -> None:
    """Hostile expressions: a FilterSyntaxError (with a column when it has one) or a program."""
    try:
        prog = compile_filter(text)
    except FilterSyntaxError as e:
        assert e.column is None or 1 <= e.column <= len(text) + 1
        assert "\n" not in str(e)
    else:
        assert prog and prog[-1].code == 0x06


@needs_libpcap
def test_deep_expressions() -> None:
    """Long chains and deep nesting compile (no recursion limit) to libpcap's programs."""
    exprs = [
        " or ".join(f"ip[{i % 60}] = {i}" for i in range(150)),
        "not " * 400 + "ip",
        "(" * 200 + "tcp" + ")" * 200,
        " and ".join(f"not host 10.0.{i // 250}.{i % 250}" for i in range(40)),
    ]
    problems = [p for e in exprs if (p := compare(e, "EN10MB"))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "expr, column, fragment",
    [
        ("ip and", 7, "end of expression"),
        ("tcp port 80 )", 13, "')'"),
        ("host 10.0.0.1 and portx 22", 25, "'22'"),
        ("ip[0 = 1", 6, "'='"),
        ("ether host 1:2:3:4:5", None, None),
        ("port 99999", 6, "65535"),
        ("udp protochain 6", None, "protochain"),
        ("tcp port 80 \x01", 13, "illegal character"),
    ],
)
def test_errors_name_the_position(expr: str, column: int | None, fragment: str | None) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter(expr)
    e = info.value
    if column is not None:
        assert e.column == column, str(e)
    if fragment is not None:
        assert fragment in str(e)


def test_linktype_names_and_numbers() -> None:
    from bpfkit.pcap.filter import linktype_name, linktype_number

    assert linktype_name(1) == "EN10MB"
    assert linktype_name("dlt_linux_sll") == "LINUX_SLL"
    assert linktype_number("RAW") == 101
    with pytest.raises(FilterSyntaxError):
        linktype_name("IEEE802_11")
    with pytest.raises(FilterSyntaxError):
        compile_filter("ip", linktype=105)
