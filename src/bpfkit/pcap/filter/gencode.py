"""Code generation for pcap-filter primitives, with libpcap's semantics (``gencode.c``).

Each ``gen_*`` method returns a ``Block`` whose exit lists are still open; the parser
combines them with ``gen_and``/``gen_or``/``gen_not`` in the order the expression is
read, and ``finish`` closes them with ``ret #snaplen`` / ``ret #0``. Offsets live in
the compiler state because ``vlan`` and ``mpls`` move every *later* test past their
header, as in libpcap.

The block shapes, the order in which alternatives are combined and the scratch-register
allocation follow libpcap's generator, so that the optimiser (``optimize.py``) turns them
into the same programs ``tcpdump -d`` prints. Only the link types EN10MB, RAW, LINUX_SLL
and LINUX_SLL2 are generated.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

from ...classic import insn as c
from ..capfile import LINKTYPE_DESCRIPTIONS
from .ir import JMP, Block, Stmt, gen_and, gen_not, gen_or

OFFSET_NOT_SET = 0xFFFFFFFF
ETHERMTU = 1500
M32 = 0xFFFFFFFF

DLT_EN10MB, DLT_RAW, DLT_LINUX_SLL, DLT_LINUX_SLL2 = 1, 12, 113, 276

# Ethernet types and 802.2 SAPs (<net/ethernet.h>, libpcap's ethertype.h and llc.h).
ETHERTYPE_IP = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_REVARP = 0x8035
ETHERTYPE_ATALK = 0x809B
ETHERTYPE_AARP = 0x80F3
ETHERTYPE_DN = 0x6003
ETHERTYPE_SCA = 0x6007
ETHERTYPE_LAT = 0x6004
ETHERTYPE_MOPDL = 0x6001
ETHERTYPE_MOPRC = 0x6002
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_8021Q = 0x8100
ETHERTYPE_8021AD = 0x88A8
ETHERTYPE_8021QINQ = 0x9100
ETHERTYPE_MPLS = 0x8847
ETHERTYPE_PPPOED = 0x8863
ETHERTYPE_PPPOES = 0x8864
ETHERTYPE_IPX = 0x8137
ETHERTYPE_LOOPBACK = 0x9000
LLCSAP_IP = 0x06
LLCSAP_ISONS = 0xFE
LLCSAP_NETBEUI = 0xF0
LLCSAP_IPX = 0xE0
LLCSAP_8021D = 0x42
LLCSAP_SNAP = 0xAA
LINUX_SLL_P_802_3 = 0x0001
LINUX_SLL_P_802_2 = 0x0004
LINUX_SLL_OUTGOING = 4
PACKET_OUTGOING = 4  # <linux/if_packet.h>, as SKF_AD_PKTTYPE reports it
ISO8473_CLNP = 0x81
ISO9542_ESIS = 0x82
ISO10589_ISIS = 0x83
ISIS_L1_LAN_IIH, ISIS_L2_LAN_IIH, ISIS_PTP_IIH = 15, 16, 17
ISIS_L1_LSP, ISIS_L2_LSP = 18, 20
ISIS_L1_CSNP, ISIS_L2_CSNP, ISIS_L1_PSNP, ISIS_L2_PSNP = 24, 25, 26, 27

IPPROTO_ICMP, IPPROTO_IGMP, IPPROTO_TCP, IPPROTO_UDP = 1, 2, 6, 17
IPPROTO_NONE = 59
IPPROTO_IGRP, IPPROTO_FRAGMENT, IPPROTO_ESP, IPPROTO_AH = 9, 44, 50, 51
IPPROTO_ICMPV6, IPPROTO_PIM, IPPROTO_VRRP, IPPROTO_SCTP = 58, 103, 112, 132
PROTO_UNDEF = -1

# Names ``ether proto \NAME`` accepts (libpcap's Ethernet-type and LLC tables).
ETHER_PROTO_NAMES = {
    "aarp": ETHERTYPE_AARP,
    "arp": ETHERTYPE_ARP,
    "atalk": ETHERTYPE_ATALK,
    "decnet": ETHERTYPE_DN,
    "ip": ETHERTYPE_IP,
    "ip6": ETHERTYPE_IPV6,
    "lat": ETHERTYPE_LAT,
    "loopback": ETHERTYPE_LOOPBACK,
    "mopdl": ETHERTYPE_MOPDL,
    "moprc": ETHERTYPE_MOPRC,
    "rarp": ETHERTYPE_REVARP,
    "sca": ETHERTYPE_SCA,
}
LLC_NAMES = {"iso": LLCSAP_ISONS, "stp": LLCSAP_8021D, "ipx": LLCSAP_IPX, "netbeui": LLCSAP_NETBEUI}

# Offsets relative to which a load is made (libpcap's e_offrel).
OR_PACKET, OR_LINKHDR, OR_PREVLINKHDR, OR_LLC, OR_PREVMPLSHDR = range(5)
OR_LINKTYPE, OR_LINKPL, OR_LINKPL_NOSNAP, OR_TRAN_IPV4, OR_TRAN_IPV6 = range(5, 10)

SIZE_CODES = {1: c.B, 2: c.H, 4: c.W}

# Protocol qualifiers that name a transport header (offsets count from its start).
TRANSPORT_PROTOS = ("sctp", "tcp", "udp", "icmp", "igmp", "igrp", "pim", "vrrp", "carp")
NETWORK_PROTOS = ("ip", "arp", "rarp", "atalk", "decnet", "sca", "lat", "moprc", "mopdl", "ip6")


class CompileError(Exception):
    """A filter expression that parses but cannot be compiled (libpcap's bpf_error)."""


@dataclass
class Qual:
    """The qualifiers in force for an identifier: protocol, direction, address kind."""

    proto: str = "default"
    dir: str = "default"
    addr: str = "default"


QERR = Qual("undef", "undef", "undef")


@dataclass
class AbsOffset:
    """An offset from the packet start: a constant plus, maybe, a run-time part in M[reg]."""

    is_variable: bool = False
    constant_part: int = 0
    reg: int = -1


@dataclass
class Arth:
    """An arithmetic value being computed: statements, the scratch register that will
    hold it, and the protocol checks that must pass before it is meaningful."""

    s: list[Stmt]
    regno: int
    b: Block | None = None


@dataclass
class Compiler:
    """Compiler state for one expression (libpcap's compiler_state_t, in part)."""

    linktype: str = "EN10MB"
    snaplen: int = 262144
    netmask: int = 0
    off_linkhdr: AbsOffset = field(default_factory=AbsOffset)
    off_linkpl: AbsOffset = field(default_factory=AbsOffset)
    off_linktype: AbsOffset = field(default_factory=AbsOffset)
    off_nl: int = 0
    off_nl_nosnap: int = 0
    label_stack_depth: int = 0
    vlan_stack_depth: int = 0
    regused: list[int] = field(default_factory=lambda: [0] * c.MEMWORDS)
    curreg: int = 0
    no_optimize: bool = False
    #: a live capture on Linux (libpcap's handle from pcap_open_live, not a savefile):
    #: ``vlan`` uses the kernel's VLAN ancillary data (BPF_SPECIAL_VLAN_HANDLING), and
    #: ``inbound``/``outbound``/``ifindex`` the packet's metadata
    live: bool = False
    is_vlan_vloffset: bool = False

    def __post_init__(self) -> None:
        lt = self.linktype
        if lt == "EN10MB":
            self.off_linktype.constant_part = 12
            self.off_linkpl.constant_part = 14
            self.off_nl, self.off_nl_nosnap = 0, 3
        elif lt == "RAW":
            self.off_linktype.constant_part = OFFSET_NOT_SET
            self.off_linkpl.constant_part = 0
        elif lt == "LINUX_SLL":
            self.off_linktype.constant_part = 14
            self.off_linkpl.constant_part = 16
        elif lt == "LINUX_SLL2":
            self.off_linktype.constant_part = 0
            self.off_linkpl.constant_part = 20
        else:
            raise CompileError(f"unknown data link type {lt}")

    @property
    def description(self) -> str:
        return LINKTYPE_DESCRIPTIONS[self.linktype]

    # -- scratch registers -------------------------------------------------------------

    def alloc_reg(self) -> int:
        for _ in range(c.MEMWORDS):
            if self.regused[self.curreg]:
                self.curreg = (self.curreg + 1) % c.MEMWORDS
            else:
                self.regused[self.curreg] = 1
                return self.curreg
        raise CompileError("too many registers needed to evaluate expression")

    def free_reg(self, n: int) -> None:
        self.regused[n] = 0

    # -- loads and comparisons ----------------------------------------------------------

    def gen_abs_offset_varpart(self, off: AbsOffset) -> list[Stmt] | None:
        """``X = `` the run-time part of ``off`` (its register allocated on first use), or
        None when the offset is a constant."""
        if not off.is_variable:
            return None
        if off.reg == -1:
            off.reg = self.alloc_reg()
        return [Stmt(c.LDX | c.MEM, off.reg)]

    def gen_load_absoffsetrel(self, off: AbsOffset, offset: int, size: int) -> list[Stmt]:
        s = self.gen_abs_offset_varpart(off)
        if s is not None:
            s.append(Stmt(c.LD | c.IND | size, off.constant_part + offset))
            return s
        return [Stmt(c.LD | c.ABS | size, off.constant_part + offset)]

    def gen_loadx_iphdrlen(self) -> list[Stmt]:
        base = self.off_linkpl.constant_part + self.off_nl
        s = self.gen_abs_offset_varpart(self.off_linkpl)
        if s is not None:  # X = the variable part + the IPv4 header's length
            return s + [
                Stmt(c.LD | c.IND | c.B, base),
                Stmt(c.ALU | c.AND | c.K, 0xF),
                Stmt(c.ALU | c.LSH | c.K, 2),
                Stmt(c.ALU | c.ADD | c.X),
                Stmt(c.MISC | c.TAX),
            ]
        return [Stmt(c.LDX | c.MSH | c.B, base)]

    def _index_to_x(self, off: AbsOffset, regno: int) -> list[Stmt]:
        """X = the index in M[regno], plus the variable part of ``off`` if it has one."""
        s = self.gen_abs_offset_varpart(off)
        if s is None:
            return [Stmt(c.LDX | c.MEM, regno)]
        return s + [Stmt(c.LD | c.MEM, regno), Stmt(c.ALU | c.ADD | c.X), Stmt(c.MISC | c.TAX)]

    def gen_load_a(self, offrel: int, offset: int, size: int) -> list[Stmt]:
        if offrel == OR_PACKET:
            return [Stmt(c.LD | c.ABS | size, offset)]
        if offrel == OR_LINKHDR:
            return self.gen_load_absoffsetrel(self.off_linkhdr, offset, size)
        if offrel == OR_LLC:
            return self.gen_load_absoffsetrel(self.off_linkpl, offset, size)
        if offrel == OR_PREVMPLSHDR:
            return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl - 4 + offset, size)
        if offrel == OR_LINKPL:
            return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl + offset, size)
        if offrel == OR_LINKPL_NOSNAP:
            return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl_nosnap + offset, size)
        if offrel == OR_LINKTYPE:
            return self.gen_load_absoffsetrel(self.off_linktype, offset, size)
        if offrel == OR_TRAN_IPV4:
            s = self.gen_loadx_iphdrlen()
            s.append(
                Stmt(c.LD | c.IND | size, self.off_linkpl.constant_part + self.off_nl + offset)
            )
            return s
        if offrel == OR_TRAN_IPV6:
            return self.gen_load_absoffsetrel(self.off_linkpl, self.off_nl + 40 + offset, size)
        raise AssertionError(offrel)

    def gen_ncmp(
        self, offrel: int, offset: int, size: int, mask: int, jtype: int, reverse: bool, v: int
    ) -> Block:
        s = self.gen_load_a(offrel, offset & M32, size)
        if mask != M32:
            s.append(Stmt(c.ALU | c.AND | c.K, mask))
        b = Block(JMP(jtype), v)
        b.stmts = s
        if reverse and jtype in (c.JGT, c.JGE):
            gen_not(b)
        return b

    def gen_cmp(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, M32, c.JEQ, False, v)

    def gen_cmp_gt(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, M32, c.JGT, False, v)

    def gen_cmp_ge(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, M32, c.JGE, False, v)

    def gen_cmp_lt(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, M32, c.JGE, True, v)

    def gen_cmp_le(self, offrel: int, offset: int, size: int, v: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, M32, c.JGT, True, v)

    def gen_mcmp(self, offrel: int, offset: int, size: int, v: int, mask: int) -> Block:
        return self.gen_ncmp(offrel, offset, size, mask, c.JEQ, False, v)

    def gen_bcmp(self, offrel: int, offset: int, size: int, v: bytes) -> Block:
        """``v`` at ``offset``: compared a word at a time from its end, then a halfword,
        then a byte, ANDed together (as libpcap)."""
        b: Block | None = None
        for width, sz in ((4, c.W), (2, c.H), (1, c.B)):
            while size >= width:
                part = int.from_bytes(v[size - width : size], "big")
                tmp = self.gen_cmp(offrel, offset + size - width, sz, part)
                if b is not None:
                    gen_and(b, tmp)
                b = tmp
                size -= width
        assert b is not None
        return b

    def gen_uncond(self, rsense: bool) -> Block:
        b = Block(JMP(c.JEQ))
        b.stmts = [Stmt(c.LD | c.IMM, 0 if rsense else 1)]
        return b

    def gen_true(self) -> Block:
        return self.gen_uncond(True)

    def gen_false(self) -> Block:
        return self.gen_uncond(False)

    # -- link-layer types ---------------------------------------------------------------

    def gen_snap(self, orgcode: int, ptype: int) -> Block:
        snap = bytes([LLCSAP_SNAP, LLCSAP_SNAP, 0x03]) + orgcode.to_bytes(3, "big")
        return self.gen_bcmp(OR_LLC, 0, 8, snap + ptype.to_bytes(2, "big"))

    def gen_ether_linktype(self, ll_proto: int) -> Block:
        if ll_proto in (LLCSAP_ISONS, LLCSAP_IP, LLCSAP_NETBEUI):
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, c.H, ETHERMTU)
            gen_not(b0)
            b1 = self.gen_cmp(OR_LLC, 0, c.H, (ll_proto << 8) | ll_proto)
            gen_and(b0, b1)
            return b1
        if ll_proto == LLCSAP_IPX:
            b0 = self.gen_cmp(OR_LLC, 0, c.B, LLCSAP_IPX)
            b1 = self.gen_cmp(OR_LLC, 0, c.H, 0xFFFF)
            gen_or(b0, b1)
            b0 = self.gen_snap(0x000000, ETHERTYPE_IPX)
            gen_or(b0, b1)
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, c.H, ETHERMTU)
            gen_not(b0)
            gen_and(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, ETHERTYPE_IPX)
            gen_or(b0, b1)
            return b1
        if ll_proto in (ETHERTYPE_ATALK, ETHERTYPE_AARP):
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, c.H, ETHERMTU)
            gen_not(b0)
            return self._atalk_or_aarp(b0, ll_proto)
        if ll_proto <= ETHERMTU:
            b0 = self.gen_cmp_gt(OR_LINKTYPE, 0, c.H, ETHERMTU)
            gen_not(b0)
            b1 = self.gen_cmp(OR_LINKTYPE, 2, c.B, ll_proto)
            gen_and(b0, b1)
            return b1
        return self.gen_cmp(OR_LINKTYPE, 0, c.H, ll_proto)

    def _atalk_or_aarp(self, b0: Block, ll_proto: int) -> Block:
        """AppleTalk or AARP, given ``b0`` (the frame is 802.2): their SNAP header and
        802.2, or the type field itself."""
        if ll_proto == ETHERTYPE_ATALK:
            b1 = self.gen_snap(0x080007, ETHERTYPE_ATALK)
        else:
            b1 = self.gen_snap(0x000000, ETHERTYPE_AARP)
        gen_and(b0, b1)
        b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, ll_proto)
        gen_or(b0, b1)
        return b1

    def gen_linux_sll_linktype(self, ll_proto: int) -> Block:
        if ll_proto in (LLCSAP_ISONS, LLCSAP_IP, LLCSAP_NETBEUI):
            b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, LINUX_SLL_P_802_2)
            b1 = self.gen_cmp(OR_LLC, 0, c.H, (ll_proto << 8) | ll_proto)
            gen_and(b0, b1)
            return b1
        if ll_proto == LLCSAP_IPX:
            b0 = self.gen_cmp(OR_LLC, 0, c.B, LLCSAP_IPX)
            b1 = self.gen_snap(0x000000, ETHERTYPE_IPX)
            gen_or(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, LINUX_SLL_P_802_2)
            gen_and(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, LINUX_SLL_P_802_3)
            gen_or(b0, b1)
            b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, ETHERTYPE_IPX)
            gen_or(b0, b1)
            return b1
        if ll_proto in (ETHERTYPE_ATALK, ETHERTYPE_AARP):
            b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, LINUX_SLL_P_802_2)
            return self._atalk_or_aarp(b0, ll_proto)
        if ll_proto <= ETHERMTU:
            b0 = self.gen_cmp(OR_LINKTYPE, 0, c.H, LINUX_SLL_P_802_2)
            b1 = self.gen_cmp(OR_LINKHDR, self.off_linkpl.constant_part, c.B, ll_proto)
            gen_and(b0, b1)
            return b1
        return self.gen_cmp(OR_LINKTYPE, 0, c.H, ll_proto)

    def gen_mpls_linktype(self, ll_proto: int) -> Block:
        if ll_proto in (ETHERTYPE_IP, ETHERTYPE_IPV6):
            b0 = self.gen_mcmp(OR_LINKPL, -2, c.B, 0x01, 0x01)
            version = 0x40 if ll_proto == ETHERTYPE_IP else 0x60
            b1 = self.gen_mcmp(OR_LINKPL, 0, c.B, version, 0xF0)
            gen_and(b0, b1)
            return b1
        raise CompileError("unsupported protocol over mpls")

    def gen_linktype(self, ll_proto: int) -> Block:
        if self.label_stack_depth > 0:
            return self.gen_mpls_linktype(ll_proto)
        lt = self.linktype
        if lt == "EN10MB":
            return self.gen_ether_linktype(ll_proto)
        if lt == "LINUX_SLL":
            return self.gen_linux_sll_linktype(ll_proto)
        if lt == "RAW":
            if ll_proto == ETHERTYPE_IP:
                return self.gen_mcmp(OR_LINKHDR, 0, c.B, 0x40, 0xF0)
            if ll_proto == ETHERTYPE_IPV6:
                return self.gen_mcmp(OR_LINKHDR, 0, c.B, 0x60, 0xF0)
            return self.gen_false()
        # LINUX_SLL2: libpcap 1.10 compares the protocol field as an Ethernet type.
        return self.gen_cmp(OR_LINKTYPE, 0, c.H, ll_proto)

    # -- hosts and networks -------------------------------------------------------------

    def _dir_error(self, dir_: str, what: str) -> None:
        if dir_ in ("addr1", "addr2", "addr3", "addr4"):
            n = dir_[-1]
            raise CompileError(f"'addr{n}' and 'address{n}' are not valid qualifiers for {what}")
        if dir_ in ("ra", "ta"):
            raise CompileError(f"'{dir_}' is not a valid qualifier for {what}")

    def _by_direction(
        self,
        dir_: str,
        src_off,
        dst_off,
        one,
        what: str = "addresses other than 802.11 MAC addresses",
    ) -> Block:
        """``one(offset)`` at the source or destination offset, or both joined (``and``;
        ``or`` and the default: either); another qualifier is an error about ``what``."""
        if dir_ == "src":
            return one(src_off)
        if dir_ == "dst":
            return one(dst_off)
        if dir_ in ("and", "or", "default"):
            b0 = one(src_off)
            b1 = one(dst_off)
            (gen_and if dir_ == "and" else gen_or)(b0, b1)
            return b1
        self._dir_error(dir_, what)
        raise AssertionError(dir_)

    def gen_hostop(
        self, addr: int, mask: int, dir_: str, ll_proto: int, src_off: int, dst_off: int
    ) -> Block:
        return self._by_direction(
            dir_, src_off, dst_off, lambda offset: self._host_at(addr, mask, ll_proto, offset)
        )

    def _host_at(self, addr: int, mask: int, ll_proto: int, offset: int) -> Block:
        b0 = self.gen_linktype(ll_proto)
        b1 = self.gen_mcmp(OR_LINKPL, offset, c.W, addr, mask)
        gen_and(b0, b1)
        return b1

    def gen_hostop6(
        self, addr: bytes, mask: bytes, dir_: str, ll_proto: int, src_off: int, dst_off: int
    ) -> Block:
        return self._by_direction(
            dir_, src_off, dst_off, lambda offset: self._host6_at(addr, mask, ll_proto, offset)
        )

    def _host6_at(self, addr: bytes, mask: bytes, ll_proto: int, offset: int) -> Block:
        a = [int.from_bytes(addr[i : i + 4], "big") for i in range(0, 16, 4)]
        m = [int.from_bytes(mask[i : i + 4], "big") for i in range(0, 16, 4)]
        b1 = self.gen_mcmp(OR_LINKPL, offset + 12, c.W, a[3], m[3])
        b0 = self.gen_mcmp(OR_LINKPL, offset + 8, c.W, a[2], m[2])
        gen_and(b0, b1)
        b0 = self.gen_mcmp(OR_LINKPL, offset + 4, c.W, a[1], m[1])
        gen_and(b0, b1)
        b0 = self.gen_mcmp(OR_LINKPL, offset + 0, c.W, a[0], m[0])
        gen_and(b0, b1)
        b0 = self.gen_linktype(ll_proto)
        gen_and(b0, b1)
        return b1

    def gen_ehostop(self, eaddr: bytes, dir_: str) -> Block:
        if dir_ == "src":
            return self.gen_bcmp(OR_LINKHDR, 6, 6, eaddr)
        if dir_ == "dst":
            return self.gen_bcmp(OR_LINKHDR, 0, 6, eaddr)
        if dir_ in ("and", "or", "default"):
            b0 = self.gen_ehostop(eaddr, "src")
            b1 = self.gen_ehostop(eaddr, "dst")
            (gen_and if dir_ == "and" else gen_or)(b0, b1)
            return b1
        if dir_ in ("addr1", "addr2", "addr3", "addr4"):
            n = dir_[-1]
            raise CompileError(
                f"'addr{n}' and 'address{n}' are only supported on 802.11 with 802.11 headers"
            )
        raise CompileError(f"'{dir_}' is only supported on 802.11 with 802.11 headers")

    def gen_host(self, addr: int, mask: int, proto: str, dir_: str, type_: str) -> Block:
        typestr = "net" if type_ == "net" else "host"
        if proto == "default":
            b0 = self.gen_host(addr, mask, "ip", dir_, type_)
            if self.label_stack_depth == 0:
                b1 = self.gen_host(addr, mask, "arp", dir_, type_)
                gen_or(b0, b1)
                b0 = self.gen_host(addr, mask, "rarp", dir_, type_)
                gen_or(b1, b0)
            return b0
        if proto == "link":
            raise CompileError(f"link-layer modifier applied to {typestr}")
        if proto == "ip":
            return self.gen_hostop(addr, mask, dir_, ETHERTYPE_IP, 12, 16)
        if proto == "rarp":
            return self.gen_hostop(addr, mask, dir_, ETHERTYPE_REVARP, 14, 24)
        if proto == "arp":
            return self.gen_hostop(addr, mask, dir_, ETHERTYPE_ARP, 14, 24)
        if proto == "ip6":
            raise CompileError("'ip6' modifier applied to ip host")
        if proto in ("atalk", "lat", "sca", "moprc", "mopdl", "aarp", "iso", "ipx"):
            name = {"atalk": "AppleTalk"}.get(proto, proto.upper())
            raise CompileError(f"{name} host filtering not implemented")
        if proto == "decnet":
            return self.gen_dnhostop(addr, dir_)
        raise CompileError(f"'{proto}' modifier applied to {typestr}")

    def gen_dnhostop(self, addr: int, dir_: str) -> Block:
        """DECnet data packets with 0 or 1 pad bytes, long or short header (as libpcap).

        libpcap byte-swaps the 16-bit constants with ntohs() on the host, so its DECnet
        tests are those of a little-endian host (the one tcpdump runs on here)."""
        # (short header offset, long header offset) of the source and of the destination
        return self._by_direction(
            dir_, (3, 15), (1, 7), lambda offsets: self._dnhost_at(addr, *offsets)
        )

    def _dnhost_at(self, addr: int, offset_sh: int, offset_lh: int) -> Block:
        def swap16(v: int) -> int:
            v &= 0xFFFF
            return ((v & 0xFF) << 8) | (v >> 8)

        a = swap16(addr)
        b0 = self.gen_linktype(ETHERTYPE_DN)
        tmp = self.gen_mcmp(OR_LINKPL, 2, c.H, swap16(0x0681), swap16(0x07FF))
        b1 = self.gen_cmp(OR_LINKPL, 2 + 1 + offset_lh, c.H, a)
        gen_and(tmp, b1)
        tmp = self.gen_mcmp(OR_LINKPL, 2, c.B, 0x06, 0x07)
        b2 = self.gen_cmp(OR_LINKPL, 2 + offset_lh, c.H, a)
        gen_and(tmp, b2)
        gen_or(b2, b1)
        tmp = self.gen_mcmp(OR_LINKPL, 2, c.H, swap16(0x0281), swap16(0x07FF))
        b2 = self.gen_cmp(OR_LINKPL, 2 + 1 + offset_sh, c.H, a)
        gen_and(tmp, b2)
        gen_or(b2, b1)
        tmp = self.gen_mcmp(OR_LINKPL, 2, c.B, 0x02, 0x07)
        b2 = self.gen_cmp(OR_LINKPL, 2 + offset_sh, c.H, a)
        gen_and(tmp, b2)
        gen_or(b2, b1)
        gen_and(b0, b1)
        return b1

    def gen_host6(self, addr: bytes, mask: bytes, proto: str, dir_: str, type_: str) -> Block:
        typestr = "net" if type_ == "net" else "host"
        if proto in ("default", "ip6"):
            return self.gen_hostop6(addr, mask, dir_, ETHERTYPE_IPV6, 8, 24)
        if proto == "link":
            raise CompileError(f"link-layer modifier applied to ip6 {typestr}")
        if proto == "atalk":
            raise CompileError(f"AppleTalk modifier applied to ip6 {typestr}")
        raise CompileError(f"'{proto}' modifier applied to ip6 {typestr}")

    # -- protocols ----------------------------------------------------------------------

    def gen_proto_abbrev(self, proto: str) -> Block:
        gp = self.gen_proto
        if proto in ("sctp", "tcp", "udp", "pim", "ah", "esp"):
            num = {
                "sctp": IPPROTO_SCTP,
                "tcp": IPPROTO_TCP,
                "udp": IPPROTO_UDP,
                "pim": IPPROTO_PIM,
                "ah": IPPROTO_AH,
                "esp": IPPROTO_ESP,
            }[proto]
            # libpcap 1.10: gen_proto(num, Q_DEFAULT) — IPv4 first, then IPv6
            return gp(num, "default", "default")
        if proto in ("icmp", "igmp", "igrp", "vrrp", "carp"):
            num = {"icmp": 1, "igmp": 2, "igrp": 9, "vrrp": 112, "carp": 112}[proto]
            return gp(num, "ip", "default")
        linktypes = {
            "ip": ETHERTYPE_IP,
            "arp": ETHERTYPE_ARP,
            "rarp": ETHERTYPE_REVARP,
            "atalk": ETHERTYPE_ATALK,
            "aarp": ETHERTYPE_AARP,
            "decnet": ETHERTYPE_DN,
            "sca": ETHERTYPE_SCA,
            "lat": ETHERTYPE_LAT,
            "mopdl": ETHERTYPE_MOPDL,
            "moprc": ETHERTYPE_MOPRC,
            "ip6": ETHERTYPE_IPV6,
            "iso": LLCSAP_ISONS,
            "stp": LLCSAP_8021D,
            "ipx": LLCSAP_IPX,
            "netbeui": LLCSAP_NETBEUI,
        }
        if proto in linktypes:
            return self.gen_linktype(linktypes[proto])
        if proto == "link":
            raise CompileError("link layer applied in wrong context")
        if proto == "icmp6":
            return gp(IPPROTO_ICMPV6, "ip6", "default")
        if proto == "esis":
            return gp(ISO9542_ESIS, "iso", "default")
        if proto == "isis":
            return gp(ISO10589_ISIS, "iso", "default")
        if proto == "clnp":
            return gp(ISO8473_CLNP, "iso", "default")
        isis = {
            "l1": (ISIS_L1_LAN_IIH, ISIS_PTP_IIH, ISIS_L1_LSP, ISIS_L1_CSNP, ISIS_L1_PSNP),
            "l2": (ISIS_L2_LAN_IIH, ISIS_PTP_IIH, ISIS_L2_LSP, ISIS_L2_CSNP, ISIS_L2_PSNP),
            "iih": (ISIS_L1_LAN_IIH, ISIS_L2_LAN_IIH, ISIS_PTP_IIH),
            "lsp": (ISIS_L1_LSP, ISIS_L2_LSP),
            "snp": (ISIS_L1_CSNP, ISIS_L2_CSNP, ISIS_L1_PSNP, ISIS_L2_PSNP),
            "csnp": (ISIS_L1_CSNP, ISIS_L2_CSNP),
            "psnp": (ISIS_L1_PSNP, ISIS_L2_PSNP),
        }
        if proto in isis:
            types = isis[proto]
            b0 = gp(types[0], "isis", "default")
            b1 = gp(types[1], "isis", "default")
            gen_or(b0, b1)
            for t in types[2:]:
                b0 = gp(t, "isis", "default")
                gen_or(b0, b1)
            return b1
        if proto == "radio":
            raise CompileError("'radio' is not a valid protocol type")
        raise CompileError(f"'{proto}' is not supported by bpfkit")

    def gen_protochain(self, v: int, proto: str) -> Block:
        """``protochain v``: walk the IPv6 extension headers (and IPv4/IPv6 AH headers) in
        a loop until the next-header value is ``v`` (match) or none is left.

        One block whose statements hold the loop (block-local jumps, and a backward
        ``ja`` — so the optimiser is turned off for the whole program, as libpcap does).
        Only user-space engines run it: the kernel refuses backward jumps."""
        reg2 = self.alloc_reg()  # first, as libpcap (which keeps it taken for "default")
        if proto == "default":
            b0 = self.gen_protochain(v, "ip")
            b = self.gen_protochain(v, "ip6")
            gen_or(b0, b)
            return b
        if proto not in ("ip", "ip6"):
            raise CompileError("bad protocol applied for 'protochain'")
        if self.off_linkpl.is_variable:
            raise CompileError("'protochain' not supported with variable length headers")
        self.no_optimize = True
        base = self.off_linkpl.constant_part + self.off_nl
        s: list[Stmt] = []

        def add(code: int, k: int = 0) -> Stmt:
            st = Stmt(code, k)
            s.append(st)
            return st

        jeq = c.JMP | c.JEQ | c.K
        if proto == "ip":
            b0 = self.gen_linktype(ETHERTYPE_IP)
            add(c.LD | c.ABS | c.B, base + 9)  # A = the protocol
            add(c.LDX | c.MSH | c.B, base)  # X = the header's length
        else:
            b0 = self.gen_linktype(ETHERTYPE_IPV6)
            add(c.LD | c.ABS | c.B, base + 6)  # A = the next header
            add(c.LDX | c.IMM, 40)  # X = sizeof(struct ip6_hdr)
        again = len(s)
        fix5 = add(jeq, v)  # if A == v: the end (a match)
        fix2 = add(jeq, IPPROTO_NONE)
        fix5.jf = fix2
        fix3 = None
        if proto == "ip6":
            chain = [add(jeq, k) for k in (0, 60, 43, IPPROTO_FRAGMENT)]  # hop, dst, rt, frag
            fix2.jf = chain[0]
            for prev, nxt in zip(chain, chain[1:], strict=False):
                prev.jf = nxt
            fix3 = chain[-1]
            # advance: A = P[X + head]; X += (P[X + head + 1] + 1) * 8
            advance = add(c.LD | c.IND | c.B, base)
            add(c.ST, reg2)
            add(c.LD | c.IND | c.B, base + 1)
            add(c.ALU | c.ADD | c.K, 1)
            add(c.ALU | c.MUL | c.K, 8)
            add(c.ALU | c.ADD | c.X)
            add(c.MISC | c.TAX)
            add(c.LD | c.MEM, reg2)
            add(c.JMP | c.JA, again - len(s) - 1)
            for st in chain:
                st.jt = advance
        else:
            fix2.jf = add(c.ALU | c.ADD | c.K, 0)  # nop
        # the AH header: A = P[X]; X += (P[X + 1] + 2) * 4
        fix4 = add(jeq, IPPROTO_AH)
        if fix3 is not None:
            fix3.jf = fix4
        fix4.jt = add(c.MISC | c.TXA)
        add(c.LD | c.IND | c.B, base)
        st = add(c.ST, reg2)
        st.jt = add(c.MISC | c.TXA)  # (libpcap sets this field on a store too; unused)
        add(c.ALU | c.ADD | c.K, 1)
        add(c.MISC | c.TAX)
        add(c.LD | c.IND | c.B, base)
        add(c.ALU | c.ADD | c.K, 2)
        add(c.ALU | c.MUL | c.K, 4)
        add(c.MISC | c.TAX)
        add(c.LD | c.MEM, reg2)
        add(c.JMP | c.JA, again - len(s) - 1)
        end = add(c.ALU | c.ADD | c.K, 0)  # the end: a nop, then the block's test
        fix2.jt = fix4.jf = fix5.jt = end
        b = Block(JMP(c.JEQ), v)
        b.stmts = s
        self.free_reg(reg2)
        gen_and(b0, b)
        return b

    def gen_proto(self, v: int, proto: str, dir_: str) -> Block:
        if dir_ != "default":
            raise CompileError("direction applied to 'proto'")
        if proto == "default":
            b0 = self.gen_proto(v, "ip", dir_)
            b1 = self.gen_proto(v, "ip6", dir_)
            gen_or(b0, b1)
            return b1
        if proto == "link":
            return self.gen_linktype(v)
        if proto == "ip":
            b0 = self.gen_linktype(ETHERTYPE_IP)
            b1 = self.gen_cmp(OR_LINKPL, 9, c.B, v)
            gen_and(b0, b1)
            return b1
        if proto == "ip6":
            b0 = self.gen_linktype(ETHERTYPE_IPV6)
            b2 = self.gen_cmp(OR_LINKPL, 6, c.B, IPPROTO_FRAGMENT)
            b1 = self.gen_cmp(OR_LINKPL, 40, c.B, v)
            gen_and(b2, b1)
            b2 = self.gen_cmp(OR_LINKPL, 6, c.B, v)
            gen_or(b2, b1)
            gen_and(b0, b1)
            return b1
        if proto == "iso":
            b0 = self.gen_linktype(LLCSAP_ISONS)
            b1 = self.gen_cmp(OR_LINKPL_NOSNAP, 0, c.B, v)
            gen_and(b0, b1)
            return b1
        if proto == "isis":
            b0 = self.gen_proto(ISO10589_ISIS, "iso", "default")
            b1 = self.gen_cmp(OR_LINKPL_NOSNAP, 4, c.B, v)
            gen_and(b0, b1)
            return b1
        if proto in ("arp", "rarp", "lat", "sca", "moprc", "mopdl"):
            name = proto if proto in ("arp", "rarp") else proto.upper()
            raise CompileError(f"{name} does not encapsulate another protocol")
        if proto == "atalk":
            raise CompileError("AppleTalk encapsulation is not specifiable")
        if proto == "decnet":
            raise CompileError("DECNET encapsulation is not specifiable")
        if proto == "clnp":
            raise CompileError("'clnp proto' is not supported")
        raise CompileError(f"'{proto} proto' is bogus")

    def gen_ipfrag(self) -> Block:
        """Not an IPv4 fragment other than the first (offset bits zero)."""
        b = Block(JMP(c.JSET), 0x1FFF)
        b.stmts = self.gen_load_a(OR_LINKPL, 6, c.H)
        gen_not(b)
        return b

    # -- ports --------------------------------------------------------------------------

    def _portop(self, atom, proto_check: Block, dir_: str, what: str) -> Block:
        b0 = proto_check
        b1 = self._by_direction(dir_, 0, 2, atom, what)
        gen_and(b0, b1)
        return b1

    def _v4_proto_check(self, proto: int) -> Block:
        tmp = self.gen_cmp(OR_LINKPL, 9, c.B, proto)
        b0 = self.gen_ipfrag()
        gen_and(tmp, b0)
        return b0

    def gen_portop(self, port: int, proto: int, dir_: str) -> Block:
        return self._portop(
            lambda off: self.gen_cmp(OR_TRAN_IPV4, off, c.H, port),
            self._v4_proto_check(proto),
            dir_,
            "ports",
        )

    def gen_portop6(self, port: int, proto: int, dir_: str) -> Block:
        return self._portop(
            lambda off: self.gen_cmp(OR_TRAN_IPV6, off, c.H, port),
            self.gen_cmp(OR_LINKPL, 6, c.B, proto),
            dir_,
            "ports",
        )

    def _rangeatom(self, offrel: int, off: int, v1: int, v2: int) -> Block:
        if v1 > v2:
            v1, v2 = v2, v1
        b1 = self.gen_cmp_ge(offrel, off, c.H, v1)
        b2 = self.gen_cmp_le(offrel, off, c.H, v2)
        gen_and(b1, b2)
        return b2

    def gen_portrangeop(self, p1: int, p2: int, proto: int, dir_: str) -> Block:
        return self._portop(
            lambda off: self._rangeatom(OR_TRAN_IPV4, off, p1, p2),
            self._v4_proto_check(proto),
            dir_,
            "port ranges",
        )

    def gen_portrangeop6(self, p1: int, p2: int, proto: int, dir_: str) -> Block:
        return self._portop(
            lambda off: self._rangeatom(OR_TRAN_IPV6, off, p1, p2),
            self.gen_cmp(OR_LINKPL, 6, c.B, proto),
            dir_,
            "port ranges",
        )

    def _port_any(self, op, ip_proto: int, ethertype: int) -> Block:
        b0 = self.gen_linktype(ethertype)
        if ip_proto in (IPPROTO_UDP, IPPROTO_TCP, IPPROTO_SCTP):
            b1 = op(ip_proto)
        else:
            tmp = op(IPPROTO_TCP)
            b1 = op(IPPROTO_UDP)
            gen_or(tmp, b1)
            tmp = op(IPPROTO_SCTP)
            gen_or(tmp, b1)
        gen_and(b0, b1)
        return b1

    def gen_port(self, port: int, ip_proto: int, dir_: str) -> Block:
        return self._port_any(lambda p: self.gen_portop(port, p, dir_), ip_proto, ETHERTYPE_IP)

    def gen_port6(self, port: int, ip_proto: int, dir_: str) -> Block:
        return self._port_any(lambda p: self.gen_portop6(port, p, dir_), ip_proto, ETHERTYPE_IPV6)

    def gen_portrange(self, p1: int, p2: int, ip_proto: int, dir_: str) -> Block:
        return self._port_any(
            lambda p: self.gen_portrangeop(p1, p2, p, dir_), ip_proto, ETHERTYPE_IP
        )

    def gen_portrange6(self, p1: int, p2: int, ip_proto: int, dir_: str) -> Block:
        return self._port_any(
            lambda p: self.gen_portrangeop6(p1, p2, p, dir_), ip_proto, ETHERTYPE_IPV6
        )

    def _port_proto(self, proto: str, what: str) -> int:
        if proto == "udp":
            return IPPROTO_UDP
        if proto == "tcp":
            return IPPROTO_TCP
        if proto == "sctp":
            return IPPROTO_SCTP
        if proto == "default":
            return PROTO_UNDEF
        raise CompileError(f"illegal qualifier of '{what}'")

    # -- identifiers with qualifiers (gen_scode / gen_ncode / gen_mcode / gen_ecode) ----

    def gen_ncode(self, s: str | None, v: int, q: Qual) -> Block:
        proto, dir_ = q.proto, q.dir
        if s is None:
            vlen = 32
        elif proto == "decnet":
            dn = atodn(s)
            if dn is None:
                raise CompileError(f"malformed decnet address '{s}'")
            v, vlen = dn, 32
        else:
            parsed = atoin(s)
            if parsed is None:
                raise CompileError(f"invalid IPv4 address '{s}'")
            v, vlen = parsed
        if q.addr in ("default", "host", "net"):
            if proto == "decnet":
                return self.gen_host(v, 0, proto, dir_, q.addr)
            if proto == "link":
                raise CompileError("illegal link layer address")
            mask = M32
            if s is None and q.addr == "net":
                while v and (v & 0xFF000000) == 0:
                    v = (v << 8) & M32
                    mask = (mask << 8) & M32
            else:
                v = (v << (32 - vlen)) & M32 if vlen < 32 else v
                mask = (mask << (32 - vlen)) & M32 if vlen < 32 else mask
            return self.gen_host(v, mask, proto, dir_, q.addr)
        if q.addr == "port":
            p = self._port_proto(proto, "port")
            if v > 65535:
                raise CompileError(f"illegal port number {v} > 65535")
            b = self.gen_port(v, p, dir_)
            gen_or(self.gen_port6(v, p, dir_), b)
            return b
        if q.addr == "portrange":
            p = self._port_proto(proto, "portrange")
            if v > 65535:
                raise CompileError(f"illegal port number {v} > 65535")
            b = self.gen_portrange(v, v, p, dir_)
            gen_or(self.gen_portrange6(v, v, p, dir_), b)
            return b
        if q.addr == "gateway":
            raise CompileError("'gateway' requires a name")
        if q.addr == "proto":
            return self.gen_proto(v, proto, dir_)
        if q.addr == "protochain":
            return self.gen_protochain(v, proto)
        raise CompileError("syntax error in filter expression")

    def gen_mcode(self, s1: str, s2: str | None, masklen: int, q: Qual) -> Block:
        parsed = atoin(s1)
        if parsed is None:
            raise CompileError(f"invalid IPv4 address '{s1}'")
        n, nlen = parsed
        n = (n << (32 - nlen)) & M32
        if s2 is not None:
            pm = atoin(s2)
            if pm is None:
                raise CompileError(f"invalid IPv4 address '{s2}'")
            m, mlen = pm
            m = (m << (32 - mlen)) & M32
            if n & ~m & M32:
                raise CompileError(f'non-network bits set in "{s1} mask {s2}"')
        else:
            if masklen > 32:
                raise CompileError("mask length must be <= 32")
            m = 0 if masklen == 0 else (M32 << (32 - masklen)) & M32
            if n & ~m & M32:
                raise CompileError(f'non-network bits set in "{s1}/{masklen}"')
        if q.addr == "net":
            return self.gen_host(n, m, q.proto, q.dir, q.addr)
        raise CompileError("Mask syntax for networks only")

    def gen_mcode6(self, s: str, masklen: int, q: Qual) -> Block:
        try:
            addr = socket.inet_pton(socket.AF_INET6, s)
        except OSError:
            raise CompileError(f"invalid ip6 address {s}") from None
        if masklen > 128:
            raise CompileError("mask length must be <= 128")
        mask = ((1 << 128) - 1) ^ ((1 << (128 - masklen)) - 1)
        if int.from_bytes(addr, "big") & ~mask:
            raise CompileError(f'non-network bits set in "{s}/{masklen}"')
        mbytes = mask.to_bytes(16, "big")
        if q.addr in ("default", "host"):
            if masklen != 128:
                raise CompileError("Mask syntax for networks only")
        elif q.addr != "net":
            raise CompileError("invalid qualifier against IPv6 address")
        return self.gen_host6(addr, mbytes, q.proto, q.dir, q.addr)

    def gen_ecode(self, s: str, q: Qual) -> Block:
        if q.addr in ("host", "default") and q.proto == "link":
            eaddr = ether_aton(s)
            if self.linktype != "EN10MB":
                raise CompileError(
                    "ethernet addresses supported only on ethernet/FDDI/token ring/"
                    "802.11/ATM LANE/Fibre Channel"
                )
            return self.gen_ehostop(eaddr, q.dir)
        raise CompileError("ethernet address used in non-ether expression")

    def gen_scode(self, name: str, q: Qual) -> Block:
        proto, dir_ = q.proto, q.dir
        if q.addr == "net":
            addr = nametonetaddr(name)
            if not addr:
                raise CompileError(f"unknown network '{name}'")
            mask = M32
            while addr and (addr & 0xFF000000) == 0:
                addr = (addr << 8) & M32
                mask = (mask << 8) & M32
            return self.gen_host(addr, mask, proto, dir_, q.addr)
        if q.addr in ("default", "host"):
            if proto == "link":
                if self.linktype != "EN10MB":
                    raise CompileError(
                        "only ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel "
                        "supports link-level host name"
                    )
                eaddr = ether_hostton(name)
                if eaddr is None:
                    raise CompileError(f"unknown ether host '{name}'")
                return self.gen_ehostop(eaddr, dir_)
            if proto == "decnet":
                raise CompileError(
                    f"decnet name support not included, '{name}' cannot be translated"
                )
            addrs = nametoaddrinfo(name)
            if not addrs:
                raise CompileError(f"unknown host '{name}'")
            tproto = tproto6 = proto
            if self.off_linktype.constant_part == OFFSET_NOT_SET and tproto == "default":
                tproto, tproto6 = "ip", "ip6"
            b: Block | None = None
            for family, raw in addrs:
                if family == socket.AF_INET:
                    if tproto == "ip6":
                        continue
                    tmp = self.gen_host(int.from_bytes(raw, "big"), M32, tproto, dir_, q.addr)
                else:
                    if tproto6 == "ip":
                        continue
                    tmp = self.gen_host6(raw, b"\xff" * 16, tproto6, dir_, q.addr)
                if b is not None:
                    gen_or(b, tmp)
                b = tmp
            if b is None:
                suffix = "" if proto == "default" else " for specified address family"
                raise CompileError(f"unknown host '{name}'{suffix}")
            return b
        if q.addr in ("port", "portrange"):
            what = q.addr
            if proto not in ("default", "udp", "tcp", "sctp"):
                raise CompileError(f"illegal qualifier of '{what}'")
            if what == "port":
                found = nametoport(name)
                if found is None:
                    raise CompileError(f"unknown port '{name}'")
                port1 = port2 = found[0]
                real_proto = found[1]
                label = f"port '{name}'"
            else:
                rng = nametoportrange(name)
                if rng is None:
                    raise CompileError(f"unknown port in range '{name}'")
                port1, port2, real_proto = rng
                label = f"port in range '{name}'"
            want = {"udp": IPPROTO_UDP, "tcp": IPPROTO_TCP, "sctp": IPPROTO_SCTP}.get(proto)
            if want is not None:
                names = {IPPROTO_UDP: "udp", IPPROTO_TCP: "tcp", IPPROTO_SCTP: "sctp"}
                if real_proto not in (PROTO_UNDEF, want):
                    raise CompileError(f"{label} is {names[real_proto]}")
                real_proto = want
            for p in (port1, port2):
                if p > 65535:
                    raise CompileError(f"illegal port number {p} > 65535")
            if what == "port":
                b = self.gen_port(port1, real_proto, dir_)
                gen_or(self.gen_port6(port1, real_proto, dir_), b)
            else:
                b = self.gen_portrange(port1, port2, real_proto, dir_)
                gen_or(self.gen_portrange6(port1, port2, real_proto, dir_), b)
            return b
        if q.addr == "gateway":
            raise CompileError("'gateway' not supported in this configuration")
        if q.addr == "proto":
            return self.gen_proto(self.lookup_proto(name, proto), proto, dir_)
        if q.addr == "protochain":
            return self.gen_protochain(self.lookup_proto(name, proto), proto)
        raise CompileError("syntax error in filter expression")

    def lookup_proto(self, name: str, proto: str) -> int:
        if proto in ("default", "ip", "ip6"):
            try:
                return socket.getprotobyname(name)
            except OSError:
                raise CompileError(f"unknown ip proto '{name}'") from None
        if proto == "link":
            v = ETHER_PROTO_NAMES.get(name, LLC_NAMES.get(name))
            if v is None:
                raise CompileError(f"unknown ether proto '{name}'")
            return v
        if proto == "iso":
            v = {"esis": ISO9542_ESIS, "isis": ISO10589_ISIS, "clnp": ISO8473_CLNP}.get(name)
            if v is None:
                raise CompileError(f"unknown osi proto '{name}'")
            return v
        raise CompileError(f"unknown protocol: {name}")

    # -- arithmetic ---------------------------------------------------------------------

    def gen_loadi(self, val: int) -> Arth:
        reg = self.alloc_reg()
        return Arth([Stmt(c.LD | c.IMM, val), Stmt(c.ST, reg)], reg)

    def gen_loadlen(self) -> Arth:
        reg = self.alloc_reg()
        return Arth([Stmt(c.LD | c.LEN), Stmt(c.ST, reg)], reg)

    def gen_load(self, proto: str, inst: Arth, size: int) -> Arth:
        regno = self.alloc_reg()
        self.free_reg(inst.regno)
        if size not in SIZE_CODES:
            raise CompileError("data size must be 1, 2, or 4")
        code = SIZE_CODES[size]
        base = self.off_linkpl.constant_part + self.off_nl
        if proto == "radio":
            raise CompileError("radio information not present in capture")
        if proto == "link":
            inst.s += self._index_to_x(self.off_linkhdr, inst.regno) + [
                Stmt(c.LD | c.IND | code, self.off_linkhdr.constant_part)
            ]
        elif proto in NETWORK_PROTOS:
            inst.s += self._index_to_x(self.off_linkpl, inst.regno) + [
                Stmt(c.LD | c.IND | code, base)
            ]
            b = self.gen_proto_abbrev(proto)
            if inst.b is not None:
                gen_and(inst.b, b)
            inst.b = b
        elif proto in TRANSPORT_PROTOS:
            s = self.gen_loadx_iphdrlen()
            s += [
                Stmt(c.LD | c.MEM, inst.regno),
                Stmt(c.ALU | c.ADD | c.X),
                Stmt(c.MISC | c.TAX),
                Stmt(c.LD | c.IND | code, base),
            ]
            inst.s += s
            b_proto = self.gen_proto_abbrev(proto)
            b = self.gen_ipfrag()
            gen_and(b_proto, b)
            if inst.b is not None:
                gen_and(inst.b, b)
            gen_and(self.gen_proto_abbrev("ip"), b)
            inst.b = b
        elif proto == "icmp6":
            b = self.gen_proto_abbrev("ip6")
            if inst.b is not None:
                gen_and(inst.b, b)
            inst.b = b
            b = self.gen_cmp(OR_LINKPL, 6, c.B, IPPROTO_ICMPV6)
            if inst.b is not None:
                gen_and(inst.b, b)
            inst.b = b
            inst.s += self._index_to_x(self.off_linkpl, inst.regno) + [
                Stmt(c.LD | c.IND | code, base + 40)
            ]
        else:
            raise CompileError("unsupported index operation")
        inst.regno = regno
        inst.s.append(Stmt(c.ST, regno))
        return inst

    def gen_arth(self, code: int, a0: Arth, a1: Arth) -> Arth:
        first = a1.s[0]
        if first.code == (c.LD | c.IMM):
            if code == c.DIV and first.k == 0:
                raise CompileError("division by zero")
            if code == c.MOD and first.k == 0:
                raise CompileError("modulus by zero")
            if code in (c.LSH, c.RSH) and first.k > 31:
                raise CompileError("shift by more than 31 bits")
        s0 = [Stmt(c.LDX | c.MEM, a1.regno)]
        s1 = [Stmt(c.LD | c.MEM, a0.regno), Stmt(c.ALU | c.X | code)]
        a1.s += s0 + s1
        a0.s += a1.s
        self.free_reg(a0.regno)
        self.free_reg(a1.regno)
        st = Stmt(c.ST, 0)
        a0.regno = st.k = self.alloc_reg()
        a0.s.append(st)
        return a0

    def gen_neg(self, a: Arth) -> Arth:
        a.s += [Stmt(c.LD | c.MEM, a.regno), Stmt(c.ALU | c.NEG), Stmt(c.ST, a.regno)]
        return a

    def gen_relation(self, code: int, a0: Arth, a1: Arth, reversed_: bool) -> Block:
        s0 = [Stmt(c.LDX | c.MEM, a1.regno)]
        s1 = [Stmt(c.LD | c.MEM, a0.regno)]
        if code == c.JEQ:
            s1.append(Stmt(c.ALU | c.SUB | c.X))
            b = Block(JMP(code))
        else:
            b = Block(c.JMP | code | c.X)
        if reversed_:
            gen_not(b)
        a1.s += s0 + s1
        a0.s += a1.s
        b.stmts = a0.s
        self.free_reg(a0.regno)
        self.free_reg(a1.regno)
        if a0.b is not None:
            if a1.b is not None:
                tmp = a1.b
                gen_and(a0.b, tmp)
            else:
                tmp = a0.b
        else:
            tmp = a1.b
        if tmp is not None:
            gen_and(tmp, b)
        return b

    # -- other primitives ---------------------------------------------------------------

    def gen_len(self, jmp: int, n: int) -> Block:
        b = Block(JMP(jmp), n)
        b.stmts = [Stmt(c.LD | c.LEN)]
        return b

    def gen_greater(self, n: int) -> Block:
        return self.gen_len(c.JGE, n)

    def gen_less(self, n: int) -> Block:
        b = self.gen_len(c.JGT, n)
        gen_not(b)
        return b

    def gen_byteop(self, op: str, idx: int, val: int) -> Block:
        if op == "=":
            return self.gen_cmp(OR_LINKHDR, idx, c.B, val)
        if op == "<":
            return self.gen_cmp_lt(OR_LINKHDR, idx, c.B, val)
        if op == ">":
            return self.gen_cmp_gt(OR_LINKHDR, idx, c.B, val)
        s = Stmt(c.ALU | (c.OR if op == "|" else c.AND) | c.K, val)
        b = Block(JMP(c.JEQ))
        b.stmts = [s]
        gen_not(b)
        return b

    def gen_broadcast(self, proto: str) -> Block:
        if proto in ("default", "link"):
            if self.linktype == "EN10MB":
                return self.gen_ehostop(b"\xff" * 6, "dst")
            raise CompileError("not a broadcast link")
        if proto == "ip":
            if self.netmask == M32:
                raise CompileError("netmask not known, so 'ip broadcast' not supported")
            b0 = self.gen_linktype(ETHERTYPE_IP)
            hostmask = ~self.netmask & M32
            b1 = self.gen_mcmp(OR_LINKPL, 16, c.W, 0, hostmask)
            b2 = self.gen_mcmp(OR_LINKPL, 16, c.W, M32 & hostmask, hostmask)
            gen_or(b1, b2)
            gen_and(b0, b2)
            return b2
        raise CompileError("only link-layer/IP broadcast filters supported")

    def gen_mac_multicast(self, offset: int) -> Block:
        b = Block(JMP(c.JSET), 1)
        b.stmts = self.gen_load_a(OR_LINKHDR, offset, c.B)
        return b

    def gen_multicast(self, proto: str) -> Block:
        if proto in ("default", "link"):
            if self.linktype == "EN10MB":
                return self.gen_mac_multicast(0)
        elif proto == "ip":
            b0 = self.gen_linktype(ETHERTYPE_IP)
            b1 = self.gen_cmp_ge(OR_LINKPL, 16, c.B, 224)
            gen_and(b0, b1)
            return b1
        elif proto == "ip6":
            b0 = self.gen_linktype(ETHERTYPE_IPV6)
            b1 = self.gen_cmp(OR_LINKPL, 24, c.B, 255)
            gen_and(b0, b1)
            return b1
        raise CompileError(
            "link-layer multicast filters supported only on ethernet/FDDI/token ring/"
            "ARCNET/802.11/ATM LANE/Fibre Channel"
        )

    def gen_inbound(self, outbound: bool) -> Block:
        if self.linktype == "LINUX_SLL":
            b0 = self.gen_cmp(OR_LINKHDR, 0, c.H, LINUX_SLL_OUTGOING)
        elif self.linktype == "LINUX_SLL2":
            b0 = self.gen_cmp(OR_LINKHDR, 10, c.B, LINUX_SLL_OUTGOING)
        elif self.live:  # the packet type the kernel keeps beside the packet
            b0 = self.gen_cmp(OR_LINKHDR, c.SKF_AD_OFF + c.SKF_AD_PKTTYPE, c.H, PACKET_OUTGOING)
        else:
            raise CompileError(
                f"inbound/outbound not supported on {self.description} when reading savefiles"
            )
        if not outbound:
            gen_not(b0)
        return b0

    def gen_ifindex(self, ifindex: int) -> Block:
        if self.linktype == "LINUX_SLL2":
            return self.gen_cmp(OR_LINKHDR, 4, c.W, ifindex)
        if self.live:
            return self.gen_cmp(OR_LINKHDR, c.SKF_AD_OFF + c.SKF_AD_IFINDEX, c.W, ifindex)
        raise CompileError(f"ifindex not supported on {self.description} when reading savefiles")

    def gen_vlan_tpid_test(self) -> Block:
        b0 = self.gen_linktype(ETHERTYPE_8021Q)
        b1 = self.gen_linktype(ETHERTYPE_8021AD)
        gen_or(b0, b1)
        b0 = b1
        b1 = self.gen_linktype(ETHERTYPE_8021QINQ)
        gen_or(b0, b1)
        return b1

    def gen_vlan_vid_test(self, vlan_num: int) -> Block:
        if vlan_num > 0x0FFF:
            raise CompileError(f"VLAN tag {vlan_num} greater than maximum {0x0FFF}")
        return self.gen_mcmp(OR_LINKPL, 0, c.H, vlan_num, 0x0FFF)

    def gen_vlan_no_bpf_extensions(self, vlan_num: int, has_tag: bool) -> Block:
        b0 = self.gen_vlan_tpid_test()
        if has_tag:
            b1 = self.gen_vlan_vid_test(vlan_num)
            gen_and(b0, b1)
            b0 = b1
        # Later tests look past the tag: the payload and the type field both move.
        self.off_linkpl.constant_part += 4
        self.off_linktype.constant_part += 4
        return b0

    def gen_vlan_vloffset_add(self, off: AbsOffset, v: int, s: list[Stmt]) -> None:
        """Add ``v`` to the run-time part of ``off`` (making it variable)."""
        off.is_variable = True
        if off.reg == -1:
            off.reg = self.alloc_reg()
        s += [Stmt(c.LD | c.MEM, off.reg), Stmt(c.ALU | c.ADD | c.K, v), Stmt(c.ST, off.reg)]

    def gen_vlan_bpf_extensions(self, vlan_num: int, has_tag: bool) -> Block:
        """``vlan`` on a live Linux capture: the kernel has taken the outer tag out of the
        frame into the packet's metadata, so test ``SKF_AD_VLAN_TAG_PRESENT`` first and the
        frame's type field only when it is 0 — on that path the tag is still in the frame,
        and every later test moves past it through the offsets' run-time parts (M[]
        registers set to 0 up front, 4 when the in-frame test was reached)."""
        b0 = Block(JMP(c.JEQ), 1)
        b0.stmts = [Stmt(c.LD | c.B | c.ABS, c.SKF_AD_OFF + c.SKF_AD_VLAN_TAG_PRESENT)]
        b_tpid = self.gen_vlan_tpid_test()
        b_vid = self.gen_vlan_vid_test(vlan_num) if has_tag else None
        # the offsets' updates go in front of the in-frame TPID test (after both tests
        # were generated, so that neither of them is affected)
        self.is_vlan_vloffset = True
        upd: list[Stmt] = []
        self.gen_vlan_vloffset_add(self.off_linkpl, 4, upd)
        self.gen_vlan_vloffset_add(self.off_linktype, 4, upd)
        b_tpid.head.stmts = upd + b_tpid.head.stmts
        gen_or(b0, b_tpid)
        b0 = b_tpid
        if b_vid is not None:
            # the VID from the metadata when the tag is there, else from the frame
            cnt = len(b_vid.stmts)
            present = Stmt(c.LD | c.B | c.ABS, c.SKF_AD_OFF + c.SKF_AD_VLAN_TAG_PRESENT)
            jeq = Stmt(JMP(c.JEQ), 1)
            tci = Stmt(c.LD | c.B | c.ABS, c.SKF_AD_OFF + c.SKF_AD_VLAN_TAG)
            jeq.jt, jeq.jf = tci, b_vid.stmts[0]
            skip = Stmt(c.JMP | c.JA, cnt - 1)
            b_vid.stmts = [present, jeq, tci, skip] + b_vid.stmts
            gen_and(b0, b_vid)
            b0 = b_vid
        return b0

    def gen_vlan(self, vlan_num: int, has_tag: bool) -> Block:
        if self.label_stack_depth > 0:
            raise CompileError("no VLAN match after MPLS")
        if self.linktype != "EN10MB":
            raise CompileError(f"no VLAN support for {self.description}")
        if self.live and self.vlan_stack_depth == 0 and not self.off_linkhdr.is_variable:
            b0 = self.gen_vlan_bpf_extensions(vlan_num, has_tag)
        else:
            b0 = self.gen_vlan_no_bpf_extensions(vlan_num, has_tag)
        self.vlan_stack_depth += 1
        return b0

    def insert_compute_vloffsets(self, b: Block) -> None:
        """Before the root block's statements: the VLAN offsets' registers start at 0."""
        if not self.is_vlan_vloffset:
            return
        if self.off_linkpl.reg == -1:
            self.off_linkpl.reg = self.alloc_reg()
        if self.off_linktype.reg == -1:
            self.off_linktype.reg = self.alloc_reg()
        b.stmts = [
            Stmt(c.LD | c.W | c.IMM, 0),
            Stmt(c.ST, self.off_linkpl.reg),
            Stmt(c.ST, self.off_linktype.reg),
        ] + b.stmts

    def gen_mpls(self, label: int, has_label: bool) -> Block:
        if self.label_stack_depth > 0:
            b0 = self.gen_mcmp(OR_PREVMPLSHDR, 2, c.B, 0, 0x01)
        elif self.linktype == "EN10MB":
            b0 = self.gen_linktype(ETHERTYPE_MPLS)
        else:
            raise CompileError(f"no MPLS support for {self.description}")
        if has_label:
            if label > 0xFFFFF:
                raise CompileError(f"MPLS label {label} greater than maximum {0xFFFFF}")
            b1 = self.gen_mcmp(OR_LINKPL, 0, c.W, label << 12, 0xFFFFF000)
            gen_and(b0, b1)
            b0 = b1
        self.off_nl_nosnap += 4
        self.off_nl += 4
        self.label_stack_depth += 1
        return b0

    def gen_pppoed(self) -> Block:
        return self.gen_linktype(ETHERTYPE_PPPOED)


# -- name and address helpers (libpcap's nametoaddr.c, by behaviour) ----------------------


def atoin(s: str) -> tuple[int, int] | None:
    """Dotted IPv4 prefix ``a[.b[.c[.d]]]`` → (value, length in bits), or None if invalid."""
    parts = s.split(".")
    if len(parts) > 4:
        return None
    addr = 0
    for p in parts:
        if not p.isdigit():
            return None
        n = int(p)
        if n > 255:
            return None
        addr = (addr << 8) | n
    return addr, 8 * len(parts)


def atodn(s: str) -> int | None:
    """A DECnet address ``area.node`` as libpcap packs it (area << 10 | node)."""
    m = re.match(r"\s*([+-]?\d+)\.([+-]?\d+)", s)
    if not m:
        return None
    area, node = int(m.group(1)), int(m.group(2))
    return ((area << 10) & 0o176000) | (node & 0o1777)


def ether_aton(s: str) -> bytes:
    """A MAC address in any of the forms the scanner accepts (``:``, ``-``, ``.``, bare)."""
    digits = [ch for ch in s if ch not in ":-."]
    if ":" in s or "-" in s or (s.count(".") == 5):
        groups = s.replace("-", ":").replace(".", ":").split(":")
        return bytes(int(g, 16) for g in groups)
    if s.count(".") == 2:  # xxxx.xxxx.xxxx
        hexs = "".join(digits)
        return bytes.fromhex(hexs)
    return bytes.fromhex("".join(digits))


def ether_hostton(name: str) -> bytes | None:
    """Look a host name up in /etc/ethers."""
    try:
        with open("/etc/ethers", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[1] == name:
                    try:
                        return ether_aton(fields[0])
                    except ValueError:
                        return None
    except OSError:
        return None
    return None


def nametoaddrinfo(name: str) -> list[tuple[int, bytes]]:
    """Resolve a host name like libpcap does (getaddrinfo, TCP stream hints)."""
    try:
        infos = socket.getaddrinfo(
            name, None, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError):
        return []
    out = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            out.append((family, socket.inet_pton(family, sockaddr[0].split("%")[0])))
    return out


def nametonetaddr(name: str) -> int:
    """A network name from /etc/networks as a host-order number (0 if unknown)."""
    try:
        with open("/etc/networks", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and (fields[0] == name or name in fields[2:]):
                    parsed = atoin(fields[1])
                    if parsed:
                        v, n = parsed
                        return v
    except OSError:
        pass
    return 0


def nametoport(name: str) -> tuple[int, int] | None:
    """(port, IPPROTO_TCP/UDP or PROTO_UNDEF when both agree) for a service name."""
    tcp = udp = None
    try:
        tcp = socket.getservbyname(name, "tcp")
    except (OSError, UnicodeError):
        pass
    try:
        udp = socket.getservbyname(name, "udp")
    except (OSError, UnicodeError):
        pass
    if tcp is not None:
        return tcp, (PROTO_UNDEF if udp == tcp else IPPROTO_TCP)
    if udp is not None:
        return udp, IPPROTO_UDP
    return None


def nametoportrange(name: str) -> tuple[int, int, int] | None:
    """``p1-p2`` (numbers or service names) → (p1, p2, proto)."""
    if "-" not in name:
        return None
    a, b = name.split("-", 1)

    def one(x: str) -> tuple[int, int] | None:
        if x.isdigit():
            return int(x), PROTO_UNDEF
        return nametoport(x)

    pa, pb = one(a), one(b)
    if pa is None or pb is None:
        return None
    proto = pa[1] if pa[1] == pb[1] else PROTO_UNDEF
    return pa[0], pb[0], proto
