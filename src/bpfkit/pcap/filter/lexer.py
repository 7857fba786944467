"""The pcap-filter scanner: libpcap's token rules with flex's longest-match semantics.

At each position every rule is tried; the longest match wins and, on a tie, the earlier
rule (so ``tcp`` is a keyword, ``tcpdump`` an identifier, ``tcp-syn`` a named constant and
``10.1.2.3`` a host address rather than an identifier). Keywords are case-sensitive, as in
libpcap. Tokens carry 1-based columns for error messages.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

KEYWORDS: dict[str, str] = {
    "dst": "DST",
    "src": "SRC",
    "link": "LINK",
    "ether": "LINK",
    "ppp": "LINK",
    "slip": "LINK",
    "fddi": "LINK",
    "tr": "LINK",
    "wlan": "LINK",
    "arp": "ARP",
    "rarp": "RARP",
    "ip": "IP",
    "sctp": "SCTP",
    "tcp": "TCP",
    "udp": "UDP",
    "icmp": "ICMP",
    "igmp": "IGMP",
    "igrp": "IGRP",
    "pim": "PIM",
    "vrrp": "VRRP",
    "carp": "CARP",
    "radio": "RADIO",
    "ip6": "IPV6",
    "icmp6": "ICMPV6",
    "ah": "AH",
    "esp": "ESP",
    "atalk": "ATALK",
    "aarp": "AARP",
    "decnet": "DECNET",
    "lat": "LAT",
    "sca": "SCA",
    "moprc": "MOPRC",
    "mopdl": "MOPDL",
    "iso": "ISO",
    "esis": "ESIS",
    "es-is": "ESIS",
    "isis": "ISIS",
    "is-is": "ISIS",
    "l1": "L1",
    "l2": "L2",
    "iih": "IIH",
    "lsp": "LSP",
    "snp": "SNP",
    "csnp": "CSNP",
    "psnp": "PSNP",
    "clnp": "CLNP",
    "stp": "STP",
    "ipx": "IPX",
    "netbeui": "NETBEUI",
    "host": "HOST",
    "net": "NET",
    "mask": "NETMASK",
    "port": "PORT",
    "portrange": "PORTRANGE",
    "proto": "PROTO",
    "protochain": "PROTOCHAIN",
    "gateway": "GATEWAY",
    "type": "TYPE",
    "subtype": "SUBTYPE",
    "direction": "DIR",
    "dir": "DIR",
    "address1": "ADDR1",
    "addr1": "ADDR1",
    "address2": "ADDR2",
    "addr2": "ADDR2",
    "address3": "ADDR3",
    "addr3": "ADDR3",
    "address4": "ADDR4",
    "addr4": "ADDR4",
    "ra": "RA",
    "ta": "TA",
    "less": "LESS",
    "greater": "GREATER",
    "byte": "CBYTE",
    "broadcast": "TK_BROADCAST",
    "multicast": "TK_MULTICAST",
    "and": "AND",
    "&&": "AND",
    "or": "OR",
    "||": "OR",
    "not": "NOT",
    "len": "LEN",
    "length": "LEN",
    "inbound": "INBOUND",
    "outbound": "OUTBOUND",
    "ifindex": "IFINDEX",
    "vlan": "VLAN",
    "mpls": "MPLS",
    "pppoed": "PPPOED",
    "pppoes": "PPPOES",
    "geneve": "GENEVE",
    "lane": "LANE",
    "llc": "LLC",
    "metac": "METAC",
    "bcc": "BCC",
    "oam": "OAM",
    "oamf4": "OAMF4",
    "oamf4ec": "OAMF4EC",
    "oamf4sc": "OAMF4SC",
    "sc": "SC",
    "ilmic": "ILMIC",
    "vpi": "VPI",
    "vci": "VCI",
    "connectmsg": "CONNECTMSG",
    "metaconnect": "METACONNECT",
    "on": "PF_IFNAME",
    "ifname": "PF_IFNAME",
    "rset": "PF_RSET",
    "ruleset": "PF_RSET",
    "rnr": "PF_RNR",
    "rulenum": "PF_RNR",
    "srnr": "PF_SRNR",
    "subrulenum": "PF_SRNR",
    "reason": "PF_REASON",
    "action": "PF_ACTION",
    "fisu": "FISU",
    "lssu": "LSSU",
    "lsu": "LSSU",
    "msu": "MSU",
    "hfisu": "HFISU",
    "hlssu": "HLSSU",
    "hmsu": "HMSU",
    "sio": "SIO",
    "opc": "OPC",
    "dpc": "DPC",
    "sls": "SLS",
    "hsio": "HSIO",
    "hopc": "HOPC",
    "hdpc": "HDPC",
    "hsls": "HSLS",
}

# Named constants the scanner turns into numbers (offsets and values for byte tests).
NAMED_NUMBERS: dict[str, int] = {
    "icmptype": 0,
    "icmpcode": 1,
    "icmp-echoreply": 0,
    "icmp-unreach": 3,
    "icmp-sourcequench": 4,
    "icmp-redirect": 5,
    "icmp-echo": 8,
    "icmp-routeradvert": 9,
    "icmp-routersolicit": 10,
    "icmp-timxceed": 11,
    "icmp-paramprob": 12,
    "icmp-tstamp": 13,
    "icmp-tstampreply": 14,
    "icmp-ireq": 15,
    "icmp-ireqreply": 16,
    "icmp-maskreq": 17,
    "icmp-maskreply": 18,
    "icmp6type": 0,
    "icmp6code": 1,
    "icmp6-destinationunreach": 1,
    "icmp6-packettoobig": 2,
    "icmp6-timeexceeded": 3,
    "icmp6-parameterproblem": 4,
    "icmp6-echo": 128,
    "icmp6-echoreply": 129,
    "icmp6-multicastlistenerquery": 130,
    "icmp6-multicastlistenerreportv1": 131,
    "icmp6-multicastlistenerdone": 132,
    "icmp6-routersolicit": 133,
    "icmp6-routeradvert": 134,
    "icmp6-neighborsolicit": 135,
    "icmp6-neighboradvert": 136,
    "icmp6-redirect": 137,
    "icmp6-routerrenum": 138,
    "icmp6-nodeinformationquery": 139,
    "icmp6-nodeinformationresponse": 140,
    "icmp6-ineighbordiscoverysolicit": 141,
    "icmp6-ineighbordiscoveryadvert": 142,
    "icmp6-multicastlistenerreportv2": 143,
    "icmp6-homeagentdiscoveryrequest": 144,
    "icmp6-homeagentdiscoveryreply": 145,
    "icmp6-mobileprefixsolicit": 146,
    "icmp6-mobileprefixadvert": 147,
    "icmp6-certpathsolicit": 148,
    "icmp6-certpathadvert": 149,
    "icmp6-multicastrouteradvert": 151,
    "icmp6-multicastroutersolicit": 152,
    "icmp6-multicastrouterterm": 153,
    "tcpflags": 13,
    "tcp-fin": 0x01,
    "tcp-syn": 0x02,
    "tcp-rst": 0x04,
    "tcp-push": 0x08,
    "tcp-ack": 0x10,
    "tcp-urg": 0x20,
    "tcp-ece": 0x40,
    "tcp-cwr": 0x80,
}

CHARS = {
    "+": "PLUS",
    "-": "MINUS",
    "*": "STAR",
    "/": "SLASH",
    "%": "PERCENT",
    ":": "COLON",
    "[": "LBRACK",
    "]": "RBRACK",
    "!": "NOT",
    "<": "LT",
    ">": "GT",
    "(": "LPAREN",
    ")": "RPAREN",
    "&": "AMP",
    "|": "PIPE",
    "^": "CARET",
    "=": "EQ",
}
TWO_CHARS = {">=": "GEQ", "<=": "LEQ", "!=": "NEQ", "==": "EQ", "<<": "LSH", ">>": "RSH"}

_N = r"(?:0[xX][0-9A-Fa-f]+|[0-9]+)"
_B = r"[0-9A-Fa-f][0-9A-Fa-f]?"
_B2 = r"[0-9A-Fa-f]{4}"
_W = r"[0-9A-Fa-f]{1,4}"


def _v6_alternatives() -> list[re.Pattern[str]]:
    """The scanner's V6 patterns: 8 groups, or '::' somewhere, optionally an IPv4 tail."""
    W, N = _W, _N
    alts = [":".join([W] * 8)]
    for total in range(7, -1, -1):  # groups present around '::'
        for left in range(total + 1):
            right = total - left
            alts.append(":".join([W] * left) + "::" + ":".join([W] * right))
    v4 = rf"{N}\.{N}\.{N}\.{N}"
    alts.append(":".join([W] * 6) + ":" + v4)
    for total in range(5, -1, -1):
        for left in range(total + 1):
            right = total - left
            mid = "::" + ":".join([W] * right) + (":" if right else "")
            alts.append(":".join([W] * left) + mid + v4)
    return [re.compile(a) for a in alts]


_V6: list[re.Pattern[str]] = []  # compiled on first use (only for text with a ':')
_MAC = [
    re.compile(":".join([_B] * 6)),
    re.compile("-".join([_B] * 6)),
    re.compile(r"\.".join([_B] * 6)),
    re.compile(r"\.".join([_B2] * 3)),
    re.compile(_B2 * 3),
]
_NUM = re.compile(_N)
_HID = [re.compile(r"\.".join([_N] * n)) for n in (2, 3, 4)]
_AID = re.compile(r"\$" + _B)
_BOGUS_MAC = re.compile(rf"{_B}:+(?:{_B}:+)+")
_ID = re.compile(r"[A-Za-z0-9](?:[-_.A-Za-z0-9]*[.A-Za-z0-9])?")
_BSID = re.compile(r"\\[^ !()\n\t]+")
_WORD = re.compile(r"[-A-Za-z0-9]+")
_MAX_KEYWORD = max(map(len, KEYWORDS))
_MAX_NAMED = max(map(len, NAMED_NUMBERS))


def _longest_prefix(table: dict, word: str, longest: int) -> int:
    """Length of the longest prefix of ``word`` that is a key of ``table`` (0: none)."""
    for n in range(min(len(word), longest), 0, -1):
        if word[:n] in table:
            return n
    return 0


_WS = re.compile(r"[ \r\n\t]+")


@dataclass
class Tok:
    """A token: its type (a grammar terminal), value, and 1-based column in the text."""

    type: str
    value: object
    column: int
    text: str


class LexError(Exception):
    """A character sequence no rule accepts, or a malformed number/address."""

    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.column = column


def _longest(patterns: list[re.Pattern[str]], text: str, pos: int) -> int:
    best = 0
    for p in patterns:
        m = p.match(text, pos)
        if m and m.end() - pos > best:
            best = m.end() - pos
    return best


def _stou(s: str, column: int) -> int:
    """libpcap's number rules: 0x hex, leading 0 octal, else decimal; must fit 32 bits."""
    if s[:2] in ("0x", "0X"):
        v = int(s[2:], 16)
    elif len(s) > 1 and s[0] == "0":
        if any(ch not in "01234567" for ch in s[1:]):
            raise LexError(f"number {s} contains non-octal digit", column)
        v = int(s, 8)
    else:
        v = int(s, 10)
    if v > 0xFFFFFFFF:
        raise LexError(f"number {s} overflows 32 bits", column)
    return v


def tokenize(text: str) -> list[Tok]:
    """Split a filter expression into tokens (raises LexError with the column)."""
    out: list[Tok] = []
    pos = 0
    n = len(text)
    cands: list[tuple[int, int, str]] = []

    def add(length: int, rank: int, kind: str) -> None:
        if length > 0:
            cands.append((length, -rank, kind))

    while pos < n:
        m = _WS.match(text, pos)
        if m:
            pos = m.end()
            continue
        col = pos + 1
        # candidates in rule order: (length, -rule index, kind)
        cands.clear()

        m = _WORD.match(text, pos)
        word = m.group() if m else ""
        if word:
            add(_longest_prefix(KEYWORDS, word, _MAX_KEYWORD), 0, "kw")
        elif text.startswith(("&&", "||"), pos):
            add(2, 0, "kw")
        ch = text[pos]
        if ch in CHARS:
            add(1, 2, "char")
        if text[pos : pos + 2] in TWO_CHARS:
            add(2, 3, "two")
        m = _AID.match(text, pos)
        if m:
            add(m.end() - pos, 4, "aid")
        add(_longest(_MAC, text, pos), 5, "mac")
        m = _NUM.match(text, pos)
        if m:
            add(m.end() - pos, 6, "num")
        add(_longest(_HID, text, pos), 7, "hid")
        if ch in "0123456789abcdefABCDEF:" and ":" in text:
            if not _V6:
                _V6.extend(_v6_alternatives())
            add(_longest(_V6, text, pos), 8, "v6")
        m = _BOGUS_MAC.match(text, pos)
        if m:
            add(m.end() - pos, 9, "bogusmac")
        if word:
            add(_longest_prefix(NAMED_NUMBERS, word, _MAX_NAMED), 10, "named")
        m = _ID.match(text, pos)
        if m:
            add(m.end() - pos, 11, "id")
        m = _BSID.match(text, pos)
        if m:
            add(m.end() - pos, 12, "bsid")
        if not cands:
            raise LexError(f"illegal character {ch!r}", col)
        length, _rank, kind = max(cands)
        word = text[pos : pos + length]
        if kind == "kw":
            out.append(Tok(KEYWORDS[word], word, col, word))
        elif kind == "char":
            out.append(Tok(CHARS[word], word, col, word))
        elif kind == "two":
            out.append(Tok(TWO_CHARS[word], word, col, word))
        elif kind == "aid":
            out.append(Tok("AID", word, col, word))
        elif kind == "mac":
            out.append(Tok("EID", word, col, word))
        elif kind == "num":
            out.append(Tok("NUM", _stou(word, col), col, word))
        elif kind == "hid":
            out.append(Tok("HID", word, col, word))
        elif kind == "v6":
            try:
                socket.inet_pton(socket.AF_INET6, word)
            except OSError:
                raise LexError(f"bogus IPv6 address {word}", col) from None
            out.append(Tok("HID6", word, col, word))
        elif kind == "bogusmac":
            raise LexError(f"bogus ethernet address {word}", col)
        elif kind == "named":
            out.append(Tok("NUM", NAMED_NUMBERS[word], col, word))
        elif kind == "id":
            out.append(Tok("ID", word, col, word))
        else:
            out.append(Tok("ID", word[1:], col, word))
        pos += length
    return out
