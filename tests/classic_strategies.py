"""Shared pieces for the classic-BPF tests: libpcap oracles, expressions, hypothesis strategies.

libpcap is the oracle for the listing (``bpf_image`` through ctypes, ``tcpdump -d/-dd/-ddd``)
and supplies real programs (``tcpdump -ddd EXPR``); the strategies draw classic programs
that the kernel's checker accepts (and, with ``valid=False``, ones it may refuse).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import subprocess

from hypothesis import strategies as st

from bpfkit.classic import insn as c
from bpfkit.classic.insn import SockFilter

#: pcap-filter expressions covering the primitives libpcap compiles (EN10MB).
EXPRESSIONS = [
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "not ip",
    "tcp port 80",
    "udp port 53",
    "port 22",
    "src port 1234 or dst port 4321",
    "portrange 1000-2000",
    "tcp and not port 22",
    "udp or icmp",
    "host 10.0.0.1",
    "src host 10.0.0.1",
    "dst net 192.168.0.0/16",
    "net 10.0.0.0 mask 255.0.0.0",
    "(tcp or udp) and host 1.2.3.4",
    "ip6 host ::1",
    "ip6 net fe80::/10",
    "ether host 01:02:03:04:05:06",
    "ether src 00:11:22:33:44:55",
    "ether proto 0x88cc",
    "ether broadcast",
    "ether multicast",
    "ip multicast",
    "ip proto 47",
    "ip6 proto 17",
    "less 100",
    "greater 1000",
    "len > 60",
    "ip and len <= 128",
    "vlan",
    "vlan 100",
    "vlan and ip",
    "mpls",
    "mpls 42",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
    "ip[2:2] > 576",
    "ip[6:2] & 0x1fff != 0",
    "icmp[icmptype] = icmp-echo",
    "tcp dst port 443 and (tcp[tcpflags] & tcp-syn != 0)",
    "ip[0] & 0xf > 5",
    "ether[12:2] = 0x800",
    "udp[8:4] = 0xdeadbeef",
    "ip[2:2] * 2 / 3 - 1 > 100",
    "ip[1] % 4 = 0",
    "ip[1] ^ 0xff = 3",
    "ip[1] << 2 = 8",
    "ip[1] >> 1 = 8",
    "ip6[6] = 6",
    "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420",
    "ip[ip[0] & 0xf] = 1",
    "ether[0] & 1 = 0 and ip[16] >= 224",
    "udp[4:2] - 8 = len - 42",
]


def examples(default: int) -> int:
    """Hypothesis examples for an oracle test: ``BPFKIT_CLASSIC_EXAMPLES`` overrides the
    default (a long sweep), which keeps the suite's share of CI time small."""
    return int(os.environ.get("BPFKIT_CLASSIC_EXAMPLES") or default)


def tcpdump_path() -> str | None:
    return shutil.which("tcpdump") or (
        "/usr/bin/tcpdump" if shutil.os.path.exists("/usr/bin/tcpdump") else None
    )


@functools.cache
def tcpdump_dump(expr: str, flag: str = "-d", linktype: str = "EN10MB") -> str:
    """``tcpdump -y LINKTYPE FLAG EXPR``'s stdout (needs no capture privileges)."""
    exe = tcpdump_path()
    assert exe is not None
    r = subprocess.run(
        [exe, "-y", linktype, flag, expr], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


@functools.cache
def libpcap() -> ctypes.CDLL | None:
    """libpcap through ctypes (``bpf_image``), or None where it is not installed."""
    for name in ("libpcap.so.0.8", "libpcap.so.1", ctypes.util.find_library("pcap")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.bpf_image.restype = ctypes.c_char_p
        lib.bpf_image.argtypes = [ctypes.POINTER(_BpfInsn), ctypes.c_int]
        return lib
    return None


def bpf_image(ins: SockFilter, n: int) -> str:
    """libpcap's own rendering of one instruction."""
    lib = libpcap()
    assert lib is not None
    return lib.bpf_image(ctypes.byref(_BpfInsn(*ins)), n).decode()


# ---- strategies ------------------------------------------------------------------
_ALU = [c.ADD, c.SUB, c.MUL, c.DIV, c.MOD, c.AND, c.OR, c.XOR, c.LSH, c.RSH]
_COND = [c.JEQ, c.JGT, c.JGE, c.JSET]
_ANC = sorted(c.ANCILLARY_NAMES)


def any_k() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 80),
        st.sampled_from([0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFF000, 0xFFF00000, 0xFFE00000]),
    )


@st.composite
def allowed_insn(draw, n: int = 0, length: int | None = None) -> SockFilter:
    """Any instruction with a kernel-allowed opcode (fields arbitrary)."""
    code = draw(st.sampled_from(sorted(c.ALLOWED_CODES)))
    return SockFilter(code, draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(any_k()))


def _packet_off(draw, big: bool, known: list[int] | None = None) -> int:
    """A packet offset: mostly small; with ``big`` also SKF_NET_OFF/SKF_LL_OFF and any u32;
    with ``known`` (and not ``big``) sometimes one of those offsets."""
    if known and not big and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(known)) & 0xFFFFFFFF
    kind = draw(st.integers(0, 5)) if big else 0
    if kind <= 2:
        return draw(st.integers(0, 70))
    if kind == 3:
        return (c.SKF_NET_OFF + draw(st.integers(0, 40))) & 0xFFFFFFFF
    if kind == 4:
        return (c.SKF_LL_OFF + draw(st.integers(0, 40))) & 0xFFFFFFFF
    return draw(st.integers(0, 0xFFFFFFFF))


@st.composite
def classic_program(
    draw,
    max_len: int = 24,
    ancillary: bool = True,
    negative_offsets: bool = True,
    seccomp: bool = False,
    init_slots: bool = True,
    ancillary_set: list[int] | None = None,
    known_offsets: list[int] | None = None,
) -> list[SockFilter]:
    """A classic program the kernel's checker accepts (socket or seccomp rules).

    Scratch slots are written before they are read on every path because the program
    stores every slot it may load at its start (unless ``init_slots`` is false: then
    the program may be refused); jumps are forward and in range.
    """
    n = draw(st.integers(1, max_len))
    slots = draw(st.lists(st.integers(0, 15), max_size=3, unique=True))
    prog: list[SockFilter] = []
    for s in slots if init_slots else ():
        prog.append(c.stmt(draw(st.sampled_from([c.ST, c.STX])), s))
    body = n
    total = len(prog) + body + 1
    for _ in range(body):
        pc = len(prog)
        left = total - pc - 1  # instructions after this one
        kind = draw(
            st.sampled_from(["alu", "alu", "ld", "ld", "ldx", "jmp", "jmp", "misc", "mem", "ret"])
        )
        if kind == "alu":
            op = draw(st.sampled_from(_ALU if not seccomp else [o for o in _ALU if o != c.MOD]))
            if draw(st.booleans()):
                prog.append(c.stmt(c.ALU | op | c.X))
            else:
                if op in (c.LSH, c.RSH):
                    k = draw(st.integers(0, 31))
                elif op in (c.DIV, c.MOD):
                    k = draw(st.one_of(st.integers(1, 17), st.integers(1, 0xFFFFFFFF)))
                else:
                    k = draw(any_k())
                prog.append(c.stmt(c.ALU | op | c.K, k))
            if draw(st.integers(0, 9)) == 0:
                prog[-1] = c.stmt(c.ALU | c.NEG)
        elif kind == "ld":
            if seccomp:
                mode = draw(st.sampled_from(["abs", "imm", "len"]))
                if mode == "abs":
                    prog.append(c.stmt(c.LD | c.W | c.ABS, 4 * draw(st.integers(0, 15))))
                elif mode == "imm":
                    prog.append(c.stmt(c.LD | c.IMM, draw(any_k())))
                else:
                    prog.append(c.stmt(c.LD | c.W | c.LEN))
                continue
            mode = draw(st.sampled_from(["abs", "abs", "ind", "imm", "len", "anc"]))
            size = draw(st.sampled_from([c.W, c.H, c.B]))
            if mode == "abs":
                k = _packet_off(draw, negative_offsets, known_offsets)
                if k >= c.SKF_AD_OFF & 0xFFFFFFFF:
                    k &= 0xFFFF  # unknown ancillary offsets are refused by the checker
                prog.append(c.stmt(c.LD | size | c.ABS, k))
            elif mode == "ind":
                prog.append(
                    c.stmt(c.LD | size | c.IND, _packet_off(draw, negative_offsets, known_offsets))
                )
            elif mode == "imm":
                prog.append(c.stmt(c.LD | c.IMM, draw(any_k())))
            elif mode == "len":
                prog.append(c.stmt(c.LD | c.W | c.LEN))
            elif ancillary:
                off = draw(st.sampled_from(ancillary_set or _ANC))
                prog.append(c.stmt(c.LD | size | c.ABS, (c.SKF_AD_OFF + off) & 0xFFFFFFFF))
            else:
                prog.append(c.stmt(c.LD | c.IMM, draw(any_k())))
        elif kind == "ldx":
            choices = ["imm", "len"] if seccomp else ["imm", "len", "msh", "msh"]
            mode = draw(st.sampled_from(choices))
            if mode == "imm":
                prog.append(c.stmt(c.LDX | c.IMM, draw(any_k())))
            elif mode == "len":
                prog.append(c.stmt(c.LDX | c.W | c.LEN))
            else:
                prog.append(
                    c.stmt(c.LDX | c.B | c.MSH, _packet_off(draw, negative_offsets, known_offsets))
                )
        elif kind == "jmp":
            if left < 1:
                prog.append(c.stmt(c.MISC | c.TAX))
                continue
            if draw(st.integers(0, 5)) == 0:
                prog.append(c.stmt(c.JMP | c.JA, draw(st.integers(0, left - 1))))
            else:
                op = draw(st.sampled_from(_COND))
                src = draw(st.sampled_from([c.K, c.X]))
                hi = min(255, left - 1)
                prog.append(
                    c.jump(
                        c.JMP | op | src,
                        draw(any_k()) if src == c.K else 0,
                        draw(st.integers(0, hi)),
                        draw(st.integers(0, hi)),
                    )
                )
        elif kind == "misc":
            prog.append(c.stmt(c.MISC | draw(st.sampled_from([c.TAX, c.TXA]))))
        elif kind == "mem":
            if slots:
                s = draw(st.sampled_from(slots))
                prog.append(
                    c.stmt(draw(st.sampled_from([c.LD | c.MEM, c.LDX | c.MEM, c.ST, c.STX])), s)
                )
            else:
                prog.append(c.stmt(c.MISC | c.TXA))
        else:
            if draw(st.booleans()):
                prog.append(c.stmt(c.RET | c.RVAL_A))
            else:
                prog.append(c.stmt(c.RET | c.K, draw(any_k())))
    prog.append(
        c.stmt(c.RET | c.RVAL_A) if draw(st.booleans()) else c.stmt(c.RET | c.K, draw(any_k()))
    )
    return prog


@st.composite
def random_program(draw, max_len: int = 12) -> list[SockFilter]:
    """Programs the checker may refuse: valid ones, mutated ones and random slots."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(classic_program(max_len=max_len))
    if kind == 3:  # scratch slots used without the stores up front: some paths read first
        return draw(classic_program(max_len=max_len, init_slots=False))
    if kind == 1:
        prog = list(draw(classic_program(max_len=max_len)))
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(prog) - 1))
            ins = prog[i]
            field = draw(st.integers(0, 3))
            if field == 0:
                code = draw(
                    st.one_of(
                        st.sampled_from(sorted(c.ALLOWED_CODES)),
                        st.integers(0, 0xFF),
                        st.integers(0, 0xFFFF),
                    )
                )
                prog[i] = ins._replace(code=code)
            elif field == 1:
                prog[i] = ins._replace(jt=draw(st.integers(0, 255)))
            elif field == 2:
                prog[i] = ins._replace(jf=draw(st.integers(0, 255)))
            else:
                prog[i] = ins._replace(k=draw(any_k()))
        if draw(st.integers(0, 4)) == 0:
            prog = prog[: draw(st.integers(1, len(prog)))]
        return prog
    n = draw(st.integers(1, max_len))
    return [draw(allowed_insn()) for _ in range(n)]


# ---- packets ---------------------------------------------------------------------
_MACS = [
    b"\xff" * 6,
    bytes.fromhex("010203040506"),
    bytes.fromhex("001122334455"),
    bytes.fromhex("01005e000001"),
    bytes.fromhex("3333000000fb"),
    bytes(6),
]
_IP4 = [
    bytes([10, 0, 0, 1]),
    bytes([1, 2, 3, 4]),
    bytes([192, 168, 7, 9]),
    bytes([224, 0, 0, 251]),
    bytes([255, 255, 255, 255]),
    bytes([10, 9, 8, 7]),
]
_IP6 = [
    bytes(15) + b"\x01",
    bytes.fromhex("fe80000000000000021122fffe334455"),
    bytes.fromhex("ff020000000000000000000000000001"),
    bytes.fromhex("20010db8" + "00" * 11 + "05"),
]
_PORTS = [80, 53, 22, 443, 1234, 4321, 1500, 2000, 65535, 0]


def _l4(rnd, proto: int) -> bytes:
    sport, dport = rnd.choice(_PORTS), rnd.choice(_PORTS)
    payload = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 4, 12, 40])))
    if rnd.random() < 0.2:
        payload = b"GET / HTTP/1.1\r\n" + payload
    if proto == 6:
        flags = rnd.choice([0x02, 0x12, 0x10, 0x11, 0x04, 0x18])
        doff = rnd.choice([5, 5, 8])
        hdr = (
            sport.to_bytes(2, "big")
            + dport.to_bytes(2, "big")
            + bytes(8)
            + bytes([doff << 4, flags])
            + bytes(6)
        )
        return hdr + bytes(4 * (doff - 5)) + payload
    if proto == 17:
        return (
            sport.to_bytes(2, "big")
            + dport.to_bytes(2, "big")
            + (8 + len(payload)).to_bytes(2, "big")
            + bytes(2)
            + payload
        )
    if proto in (1, 58):
        return bytes([rnd.choice([0, 8, 3, 128, 129]), 0, 0, 0, 0, 1, 0, 1]) + payload
    if proto == 132:
        return sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(8) + payload
    return payload


def make_packet(rnd) -> bytes:
    """One Ethernet frame: IPv4/IPv6/ARP, maybe VLAN or MPLS tagged, maybe a fragment,
    maybe truncated — the shapes pcap-filter expressions test."""
    dst, src = rnd.choice(_MACS), rnd.choice(_MACS)
    tags = b""
    if rnd.random() < 0.15:
        tags += rnd.choice([b"\x81\x00", b"\x88\xa8"]) + rnd.choice([100, 7, 4095]).to_bytes(
            2, "big"
        )
    kind = rnd.choice(["ip", "ip", "ip", "ip6", "ip6", "arp", "mpls", "other"])
    proto = rnd.choice([6, 6, 17, 17, 1, 132, 47, 58])
    if kind == "ip":
        l4 = _l4(rnd, proto)
        ihl = rnd.choice([5, 5, 5, 6])
        frag = rnd.choice([0, 0, 0, 0x2000, 0x0010, 0x4000])
        total = 4 * ihl + len(l4)
        hdr = (
            bytes([0x40 | ihl, 0])
            + total.to_bytes(2, "big")
            + bytes(2)
            + frag.to_bytes(2, "big")
            + bytes([64, proto])
            + bytes(2)
            + rnd.choice(_IP4)
            + rnd.choice(_IP4)
        )
        body = b"\x08\x00" + hdr + bytes(4 * (ihl - 5)) + l4
    elif kind == "ip6":
        l4 = _l4(rnd, proto if proto != 1 else 58)
        nh = proto if proto != 1 else 58
        hdr = (
            b"\x60\x00\x00\x00"
            + len(l4).to_bytes(2, "big")
            + bytes([nh, 64])
            + rnd.choice(_IP6)
            + rnd.choice(_IP6)
        )
        body = b"\x86\xdd" + hdr + l4
    elif kind == "arp":
        body = (
            b"\x08\x06"
            + bytes.fromhex("0001080006040001")
            + src
            + rnd.choice(_IP4)
            + bytes(6)
            + rnd.choice(_IP4)
        )
    elif kind == "mpls":
        label = rnd.choice([42, 16, 1000])
        body = b"\x88\x47" + ((label << 12) | 0x100 | 64).to_bytes(4, "big") + b"\x45" + bytes(19)
    else:
        body = rnd.choice([b"\x88\xcc", b"\x80\x35", b"\x00\x2e"]) + bytes(rnd.randrange(60))
    frame = dst + src + tags + body
    if rnd.random() < 0.1:
        frame = frame[: rnd.randrange(1, len(frame) + 1)]
    return frame


def make_meta(rnd):
    """Random skb metadata for ancillary loads."""
    from bpfkit.classic.interp import PacketMeta

    return PacketMeta(
        protocol=rnd.choice([0x0800, 0x86DD, 0x0806, 0]),
        pkttype=rnd.randrange(8),
        ifindex=rnd.choice([1, 2, 77]),
        mark=rnd.choice([0, 1, 0xDEADBEEF]),
        queue=rnd.randrange(4),
        hatype=rnd.choice([1, 772]),
        rxhash=rnd.getrandbits(32),
        cpu=rnd.randrange(4),
        vlan_tci=rnd.choice([0, 100, 0x1FFF]),
        vlan_tpid=rnd.choice([0, 0x8100]),
        net_offset=14,
        dev=rnd.random() < 0.9,
    )


def libpcap_filter(prog, data: bytes, wire_len: int | None = None) -> int:
    """libpcap's own interpreter (``bpf_filter``) on one packet: BSD semantics, no
    Linux ancillary loads or negative offsets."""
    lib = libpcap()
    assert lib is not None
    arr = (_BpfInsn * len(prog))(*[_BpfInsn(*i) for i in prog])
    lib.bpf_filter.restype = ctypes.c_uint
    lib.bpf_filter.argtypes = [
        ctypes.POINTER(_BpfInsn),
        ctypes.c_char_p,
        ctypes.c_uint,
        ctypes.c_uint,
    ]
    return lib.bpf_filter(arr, data, len(data) if wire_len is None else wire_len, len(data))
