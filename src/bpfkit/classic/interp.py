"""The classic machine's interpreter, with the Linux kernel's semantics, compiled to Python.

State is ``A``, ``X`` and ``M[16]`` (all u32, zero at start). The kernel runs a classic
program as its eBPF translation (``bpf_convert_filter``), and this interpreter gives the
same results:

* a packet load past the end of the data ends the program with 0, as does a division
  or modulo by ``X == 0``; shifts by ``X`` use its low five bits (32-bit eBPF ALU);
* ``ldxb 4*([k]&0xf)`` loads ``X``; ``len`` is the packet's length on the wire;
* absolute loads at ``SKF_AD_OFF + n`` read the packet's metadata (:class:`PacketMeta`:
  protocol, pkttype, ifindex, mark, queue, hatype, rxhash, cpu, VLAN tag/present/TPID,
  random, payload offset, netlink attributes, ``A ^ X``); ``ifindex``/``hatype`` without
  a device end the program returning ``A``, as the kernel's translation does;
* loads at ``SKF_NET_OFF + k``/``SKF_LL_OFF + k`` (absolute or indirect) address the
  network and link-layer headers (``meta.net_offset``/``meta.mac_offset``, which may lie
  in front of the data, in ``meta.headroom``);
* with ``byteorder="little"`` word loads read native-endian data, as seccomp does for
  ``struct seccomp_data``.

``semantics="libpcap"`` gives instead the rules of libpcap's user-space ``bpf_filter`` —
what ``tcpdump -r FILE`` decides: a shift by ``X >= 32`` gives 0; an offset is never
wrapped or taken as negative (``X + k`` past the captured bytes, any absolute offset at or
above 2**31, ``SKF_AD_*``/``SKF_NET_OFF``/``SKF_LL_OFF`` included, rejects the packet: the
program returns 0); ``ja`` adds its offset sign-extended, so it may jump backwards (a
program still looping after as many backward jumps as the packet has bytes, plus
``insn.LOOP_SLACK``, is stopped and the packet rejected). Everything
else is the same in both.

A program is translated once into one Python function (:func:`compile_classic`): every
path through the program is straight-line code with constant offsets and the executed
instruction count folded in; shared tails too big to copy become functions. Jumps out of
the program, unknown opcodes and scratch indexes past 15 raise
:class:`~bpfkit.errors.RuntimeFault` naming the pc when (and only when) reached.
"""

from __future__ import annotations

import functools
import random as _random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import RuntimeFault
from . import insn as c
from .insn import LOOP_SLACK, SockFilter

__all__ = [
    "PacketMeta",
    "ClassicResult",
    "ClassicProgram",
    "compile_classic",
    "run_classic",
    "payload_offset",
]

M32 = 0xFFFFFFFF
_AD_BASE = c.SKF_AD_OFF & M32


@dataclass
class PacketMeta:
    """What ancillary loads (``SKF_AD_*``) read: the skb fields beside the bytes.

    ``net_offset``/``mac_offset`` say where the network and link-layer headers start,
    relative to the data (``SKF_NET_OFF``/``SKF_LL_OFF`` loads count from them; a
    negative offset lies in ``headroom``, the bytes just in front of the data — a socket
    above the link layer sees its packets from the network header, with the Ethernet
    header in front). ``mac_offset=None`` means no link-layer header was set. ``dev``
    says whether the packet has a device (``ifindex``/``hatype`` loads need one);
    ``random`` supplies ``SKF_AD_RANDOM`` (a fixed seed keeps runs repeatable);
    ``pay_offset`` overrides the payload offset that is otherwise dissected from the data.
    """

    protocol: int = 0  # skb->protocol in host order (0x0800 for IPv4)
    pkttype: int = 0
    ifindex: int = 0
    mark: int = 0
    queue: int = 0
    hatype: int = 1  # ARPHRD_ETHER
    rxhash: int = 0
    cpu: int = 0
    vlan_tci: int = 0
    vlan_present: bool = False
    vlan_tpid: int = 0
    net_offset: int = 14
    mac_offset: int | None = 0
    headroom: bytes = b""
    pay_offset: int | None = None
    dev: bool = True
    random: _random.Random = field(default_factory=lambda: _random.Random(0))


@dataclass
class ClassicResult:
    """The program's return value, how many instructions ran, and the final ``A``/``X``."""

    ret: int
    insns: int
    a: int = 0
    x: int = 0


# ---- runtime pieces the generated code calls ---------------------------------------
def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v & 0x80000000 else v


def _slow_load(data: bytes, off: int, size: int, meta: PacketMeta, order: str) -> int | None:
    """A load the fast path did not take: out of bounds, or an ``SKF_NET_OFF``/``SKF_LL_OFF``
    offset (``bpf_skb_load_helper_convert_offset``). None ends the program with 0."""
    off = _s32(off)
    if off < 0:
        if off >= c.SKF_NET_OFF:
            off = off - c.SKF_NET_OFF + meta.net_offset
        elif off >= c.SKF_LL_OFF and meta.mac_offset is not None:
            off = off - c.SKF_LL_OFF + meta.mac_offset
        else:
            return None
    if off + size > len(data):
        return None
    if off >= 0:
        return int.from_bytes(data[off : off + size], order)
    head = meta.headroom
    if -off > len(head):
        return None  # before the headroom we were given: nothing to read
    buf = head + data[: max(0, off + size)]
    start = len(head) + off
    return int.from_bytes(buf[start : start + size], order)


_NLA_HDRLEN = 4
_NLA_TYPE_MASK = 0x3FFF  # ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)


def _nla_find(data: bytes, start: int, length: int, attrtype: int) -> int:
    """``nla_find``: the offset of the first attribute of ``attrtype`` in
    ``data[start:start+length]`` (native byte order headers), or 0."""
    pos, rem = start, length
    while rem >= _NLA_HDRLEN:
        nla_len = int.from_bytes(data[pos : pos + 2], "little")
        if nla_len < _NLA_HDRLEN or nla_len > rem:
            break
        if int.from_bytes(data[pos + 2 : pos + 4], "little") & _NLA_TYPE_MASK == attrtype:
            return pos
        step = (nla_len + 3) & ~3
        pos += step
        rem -= step
    return 0


def _nlattr(data: bytes, a: int, x: int) -> int:
    """``bpf_skb_get_nlattr``: find attribute type ``X`` from offset ``A``."""
    n = len(data)
    if n < _NLA_HDRLEN or a > n - _NLA_HDRLEN:
        return 0
    return _nla_find(data, a, n - a, _s32(x))


def _nlattr_nest(data: bytes, a: int, x: int) -> int:
    """``bpf_skb_get_nlattr_nest``: find attribute type ``X`` inside the nest at ``A``."""
    n = len(data)
    if n < _NLA_HDRLEN or a > n - _NLA_HDRLEN:
        return 0
    nla_len = int.from_bytes(data[a : a + 2], "little")
    if nla_len < _NLA_HDRLEN or nla_len > n - a:
        return 0
    return _nla_find(data, a + _NLA_HDRLEN, nla_len - _NLA_HDRLEN, _s32(x))


_L4_HDR = {
    17: 8,
    136: 8,
    1: 8,
    58: 8,
    2: 8,
    33: 16,
    132: 12,
}  # udp, udplite, icmp, icmp6, igmp, dccp, sctp


def payload_offset(data: bytes, meta: PacketMeta) -> int:
    """``SKF_AD_PAY_OFFSET``: where the transport payload starts (``skb_get_poff``).

    A small flow dissector: IPv4 (options, fragments) and IPv6 (hop-by-hop, routing,
    destination-options and fragment headers) under ``meta.protocol``, then the fixed
    header size of UDP, ICMP, SCTP ... or TCP's data offset. 0 when it cannot dissect.
    """
    if meta.pay_offset is not None:
        return meta.pay_offset & M32
    # work on headroom + data so that a network header in front of the data is reachable
    base = len(meta.headroom)
    nh = meta.net_offset + base
    if nh < 0:
        return 0
    data = meta.headroom + data if base else data
    proto = meta.protocol
    first_frag = True
    if proto == 0x0800:
        if len(data) < nh + 20:
            return 0
        ihl = data[nh] & 0xF
        if ihl < 5:
            return 0
        thoff = nh + ihl * 4
        frag = int.from_bytes(data[nh + 6 : nh + 8], "big")
        l4 = data[nh + 9]
        if frag & 0x3FFF:  # MF or an offset: a fragment
            first_frag = frag & 0x1FFF == 0
    elif proto == 0x86DD:
        if len(data) < nh + 40:
            return 0
        l4 = data[nh + 6]
        thoff = nh + 40
        for _ in range(8):
            if l4 in (0, 43, 60):  # hop-by-hop, routing, destination options
                if len(data) < thoff + 2:
                    return 0
                nxt, hlen = data[thoff], (data[thoff + 1] + 1) * 8
                l4, thoff = nxt, thoff + hlen
            elif l4 == 44:  # fragment header
                if len(data) < thoff + 8:
                    return 0
                first_frag = int.from_bytes(data[thoff + 2 : thoff + 4], "big") & 0xFFF8 == 0
                l4, thoff = data[thoff], thoff + 8
            else:
                break
    else:
        return 0
    # the dissector keeps the transport offset as a u16, at most the packet's length
    t = min((thoff - base) & 0xFFFF, len(data) - base)
    if not first_frag:
        return t
    if l4 == 6:
        if len(data) < thoff + 13:
            return t
        return t + max(20, (data[thoff + 12] & 0xF0) >> 2)
    return t + _L4_HDR.get(l4, 0)


def _vlan_present(meta: PacketMeta) -> int:
    return 1 if (meta.vlan_present or meta.vlan_tci or meta.vlan_tpid) else 0


# ---- code generation -----------------------------------------------------------------
_INLINE_LIMIT = 48  # a shared tail longer than this (in generated lines) becomes a function
_MAX_DEPTH = 40  # nesting of if-blocks before a branch moves into a function


SEMANTICS = ("kernel", "libpcap")


class _Gen:
    def __init__(self, prog: Sequence[SockFilter], order: str, semantics: str = "kernel"):
        self.prog = [SockFilter(*i) for i in prog]
        self.n = len(self.prog)
        self.order = order
        self.pcap = semantics == "libpcap"
        self.slots = sorted(
            {
                i.k
                for i in self.prog
                if i.code in (c.LD | c.MEM, c.LDX | c.MEM, c.ST, c.STX) and i.k < c.MEMWORDS
            }
        )
        self.mlist = "".join(f", m{s}" for s in self.slots)
        self.funcs: set[int] = set()
        self.pending: list[int] = []
        self.done: set[int] = set()
        self._plan()

    # which pcs follow pc (outside the program: a fault, no successor)
    def succ(self, pc: int) -> list[int]:
        ins = self.prog[pc]
        code = ins.code
        if code & 0x07 == c.RET:
            return []
        if code == c.JMP | c.JA:
            return [self.ja_target(pc, ins.k)]
        if code & 0x07 == c.JMP and code in c.COND_JUMPS:
            return [pc + 1 + ins.jt, pc + 1 + ins.jf]
        return [pc + 1]

    def ja_target(self, pc: int, k: int) -> int:
        """libpcap's bpf_filter adds ``k`` sign-extended (so ``protochain`` can loop
        backwards); the kernel takes it unsigned, forward only."""
        return pc + 1 + (_s32(k) if self.pcap else k)

    def _plan(self) -> None:
        n = self.n
        for pc in range(n):  # a backward jump's target runs as a continuation
            if self.prog[pc].code == c.JMP | c.JA:
                t = self.ja_target(pc, self.prog[pc].k)
                if 0 <= t <= pc:
                    self.funcs.add(t)
        preds = [0] * (n + 1)
        for pc in range(n):
            for t in set(self.succ(pc)):
                if t < n:
                    preds[t] += 1
        size = [0] * (n + 1)
        for pc in range(n - 1, -1, -1):
            s = 2
            for t in self.succ(pc):
                s += 1 if (t >= n or t in self.funcs) else size[t]
            size[pc] = s
            if preds[pc] > 1 and s > _INLINE_LIMIT:
                self.funcs.add(pc)
        self.size = size

    def cnt(self, base: str | None, k: int) -> str:
        return f"{base} + {k}" if base else str(k)

    def call(self, pc: int, base: str | None, k: int) -> str:
        if pc not in self.done:
            self.done.add(pc)
            self.pending.append(pc)
        # a continuation, not a call: the driver loop runs it (no Python recursion)
        return f"return (B{pc}, a, x, {self.cnt(base, k)}{self.mlist})"

    def emit(
        self,
        pc: int,
        ind: int,
        base: str | None,
        k: int,
        depth: int,
        out: list[str],
        entry: bool = False,
    ) -> None:
        n, sp = self.n, "    " * ind
        while True:
            if not 0 <= pc < n:
                out.append(
                    f"{sp}raise FAULT('classic jump out of the program', {pc}, {self.cnt(base, k)})"
                )
                return
            if pc in self.funcs and not entry:
                out.append(sp + self.call(pc, base, k))
                return
            entry = False
            ins = self.prog[pc]
            k += 1
            cn = self.cnt(base, k)
            ret0 = f"return (0, {cn}, a, x)"
            code, K = ins.code, ins.k
            cls = code & 0x07
            if code not in c.ALLOWED_CODES:
                out.append(f"{sp}raise FAULT('unknown classic opcode {code:#06x}', {pc}, {cn})")
                return
            if cls == c.RET:
                rv = code & 0x18
                if code & ~0x1F or rv == 0x18:
                    out.append(f"{sp}raise FAULT('unknown classic opcode {code:#06x}', {pc}, {cn})")
                else:
                    val = {c.K: str(K), c.X: "x", c.RVAL_A: "a"}[rv]
                    out.append(f"{sp}return ({val}, {cn}, a, x)")
                return
            if cls == c.JMP:
                if code == c.JMP | c.JA:
                    pc = self.ja_target(pc, K)
                    continue
                if code not in c.COND_JUMPS:
                    out.append(f"{sp}raise FAULT('unknown classic opcode {code:#06x}', {pc}, {cn})")
                    return
                t, f = pc + 1 + ins.jt, pc + 1 + ins.jf
                if t == f:
                    pc = t
                    continue
                src = "x" if code & c.X else str(K)
                op = code & 0xF0
                cond = {
                    c.JEQ: f"a == {src}",
                    c.JGT: f"a > {src}",
                    c.JGE: f"a >= {src}",
                    c.JSET: f"a & {src}",
                }[op]
                sz = lambda p: 1 if (p >= n or p in self.funcs) else self.size[p]  # noqa: E731
                if sz(t) <= sz(f):
                    out.append(f"{sp}if {cond}:")
                    nested, other = t, f
                else:
                    out.append(f"{sp}if not ({cond}):")
                    nested, other = f, t
                if depth >= _MAX_DEPTH and 0 <= nested < n:
                    out.append(f"{sp}    " + self.call(nested, base, k))
                else:
                    self.emit(nested, ind + 1, base, k, depth + 1, out)
                pc = other
                continue
            lines = self.straight(ins, pc, cn, ret0)
            out.extend(sp + ln for ln in lines)
            if lines and lines[-1].startswith(("raise", "return")):
                return
            pc += 1

    def load(self, dst: str, size: int, off: str, const: int | None, ret0: str) -> list[str]:
        """``dst = packet[off:off+size]`` with the bounds check and the slow path."""
        at = "o" if const is None else str(const)
        rd = {1: f"D[{at}]", 2: f"UH(D, {at})[0]", 4: f"UW(D, {at})[0]"}[size]
        if const is not None:
            return [f"if L < {const + size}: {ret0}", f"{dst} = {rd}"]
        if self.pcap:  # no wrap-around, no negative offsets: past the bytes is a reject
            return [f"o = {off}", f"if o > L - {size}: {ret0}", f"{dst} = {rd}"]
        return [
            f"o = {off}",
            f"if o <= L - {size}: {dst} = {rd}",
            "else:",
            f"    v = SLOW(D, o, {size}, META, ORDER)",
            f"    if v is None: {ret0}",
            f"    {dst} = v",
        ]

    def straight(self, ins: SockFilter, pc: int, cn: str, ret0: str) -> list[str]:
        code, K = ins.code, ins.k
        cls = code & 0x07
        bad = [f"raise FAULT('unknown classic opcode {code:#06x}', {pc}, {cn})"]
        if code & ~0xFF:
            return bad
        if cls in (c.LD, c.LDX):
            dst = "a" if cls == c.LD else "x"
            mode, size = code & 0xE0, code & 0x18
            if mode == c.IMM:
                return [f"{dst} = {K}"]
            if mode == c.LEN:
                return [f"{dst} = PL"]
            if mode == c.MEM:
                if K >= c.MEMWORDS:
                    return [f"raise FAULT('scratch index {K} out of range', {pc}, {cn})"]
                return [f"{dst} = m{K}"]
            if cls == c.LDX:
                if mode != c.MSH:
                    return bad
                if K < 0x80000000:
                    return [f"if L < {K + 1}: {ret0}", f"x = (D[{K}] & 15) << 2"]
                if self.pcap:
                    return [ret0]
                return [
                    f"v = SLOW(D, {K}, 1, META, ORDER)",
                    f"if v is None: {ret0}",
                    "x = (v & 15) << 2",
                ]
            nbytes = {c.W: 4, c.H: 2, c.B: 1}.get(size)
            if nbytes is None or mode not in (c.ABS, c.IND):
                return bad
            if mode == c.IND:
                if self.pcap:
                    return self.load("a", nbytes, f"x + {K}" if K else "x", None, ret0)
                return self.load("a", nbytes, f"(x + {K}) & {M32}" if K else "x", None, ret0)
            if K < 0x80000000:
                return self.load("a", nbytes, "", K, ret0)
            if self.pcap:  # beyond any packet: no ancillary data, no header-relative loads
                return [ret0]
            if K >= _AD_BASE:
                return self.ancillary(K - _AD_BASE, pc, cn)
            return [
                f"v = SLOW(D, {K}, {nbytes}, META, ORDER)",
                f"if v is None: {ret0}",
                "a = v",
            ]
        if cls in (c.ST, c.STX):
            if code & ~0x07:
                return bad
            if K >= c.MEMWORDS:
                return [f"raise FAULT('scratch index {K} out of range', {pc}, {cn})"]
            return [f"m{K} = {'a' if cls == c.ST else 'x'}"]
        if cls == c.ALU:
            op = code & 0xF0
            if op == c.NEG:
                return ["a = -a & M"] if code == c.ALU | c.NEG else bad
            s = "x" if code & c.X else str(K)
            if op == c.ADD:
                return [f"a = (a + {s}) & M"]
            if op == c.SUB:
                return [f"a = (a - {s}) & M"]
            if op == c.MUL:
                return [f"a = (a * {s}) & M"]
            if op in (c.DIV, c.MOD):
                pyop = "//" if op == c.DIV else "%"
                if code & c.X:
                    return [f"if not x: {ret0}", f"a = a {pyop} x"]
                if K == 0:
                    return [ret0]
                return [f"a = a {pyop} {K}"]
            if op == c.AND:
                return [f"a &= {s}"]
            if op == c.OR:
                return [f"a |= {s}"]
            if op == c.XOR:
                return [f"a ^= {s}"]
            if op == c.LSH:
                if s == "x":
                    return [
                        "a = (a << x) & M if x < 32 else 0"
                        if self.pcap
                        else "a = (a << (x & 31)) & M"
                    ]
                return [f"a = (a << {K & 31}) & M"]
            if op == c.RSH:
                if s == "x":
                    return ["a = a >> x if x < 32 else 0" if self.pcap else "a >>= x & 31"]
                return [f"a >>= {K & 31}"]
            return bad
        if cls == c.MISC:
            mop = code & 0xF8
            if mop == c.TAX:
                return ["x = a"]
            if mop == c.TXA:
                return ["a = x"]
            return bad
        return bad

    def ancillary(self, off: int, pc: int, cn: str) -> list[str]:
        simple = {
            c.SKF_AD_PROTOCOL: "META.protocol & 0xFFFF",
            c.SKF_AD_PKTTYPE: "META.pkttype & 7",
            c.SKF_AD_MARK: "META.mark & M",
            c.SKF_AD_QUEUE: "META.queue & 0xFFFF",
            c.SKF_AD_RXHASH: "META.rxhash & M",
            c.SKF_AD_CPU: "META.cpu & M",
            c.SKF_AD_VLAN_TAG: "META.vlan_tci & 0xFFFF",
            c.SKF_AD_VLAN_TAG_PRESENT: "VLANP(META)",
            c.SKF_AD_VLAN_TPID: "META.vlan_tpid & 0xFFFF",
            c.SKF_AD_RANDOM: "META.random.getrandbits(32)",
            c.SKF_AD_PAY_OFFSET: "POFF(D, META)",
            c.SKF_AD_NLATTR: "NLA(D, a, x)",
            c.SKF_AD_NLATTR_NEST: "NLAN(D, a, x)",
            c.SKF_AD_ALU_XOR_X: "a ^ x",
        }
        if off in simple:
            return [f"a = {simple[off]}"]
        if off in (c.SKF_AD_IFINDEX, c.SKF_AD_HATYPE):
            fld = "META.ifindex & M" if off == c.SKF_AD_IFINDEX else "META.hatype & 0xFFFF"
            return [f"if not META.dev: return (a, {cn}, a, x)", f"a = {fld}"]
        return [
            f"raise FAULT('unknown ancillary load SKF_AD_OFF+{off}', {pc}, {cn})",
        ]

    def source(self) -> str:
        out = ["def F0(D, L, PL, META):", "    a = x = 0"]
        if self.slots:
            out.append("    " + " = ".join(f"m{s}" for s in self.slots) + " = 0")
        self.emit(0, 1, None, 0, 0, out)
        if not self.done:
            return "\n".join(out) + "\nF = F0\n"
        while self.pending:
            pc = self.pending.pop()
            out.append(f"def B{pc}(D, L, PL, META, a, x, n{self.mlist}):")
            self.emit(pc, 1, "n", 0, 0, out, entry=True)
        # shared tails return (function, state...) continuations; run them in a loop
        if self.pcap:  # backward jumps may loop: a bounded number of continuations
            out += [
                "def F(D, L, PL, META):",
                "    r = F0(D, L, PL, META)",
                f"    for _ in range(L + {LOOP_SLACK}):",
                "        if r[0].__class__ is int:",
                "            return r",
                "        r = r[0](D, L, PL, META, *r[1:])",
                "    if r[0].__class__ is int:",
                "        return r",
                "    return (0, r[3], r[1], r[2])",
            ]
            return "\n".join(out) + "\n"
        out += [
            "def F(D, L, PL, META):",
            "    r = F0(D, L, PL, META)",
            "    while r[0].__class__ is not int:",
            "        r = r[0](D, L, PL, META, *r[1:])",
            "    return r",
        ]
        return "\n".join(out) + "\n"


def _fault(msg: str, pc: int, count: int) -> RuntimeFault:
    """The exception generated code raises (``raise FAULT(...)``)."""
    return RuntimeFault(msg, pc=pc, insns=count)


class ClassicProgram:
    """A classic program translated once into Python; :meth:`run` it on many packets.

    ``semantics`` is ``"kernel"`` (Linux, the default) or ``"libpcap"`` (libpcap's
    user-space ``bpf_filter``, what ``tcpdump -r`` decides; see the module's docstring)."""

    def __init__(
        self, prog: Sequence[SockFilter], byteorder: str = "big", semantics: str = "kernel"
    ):
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder must be 'big' or 'little', not {byteorder!r}")
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be 'kernel' or 'libpcap', not {semantics!r}")
        self.prog = [SockFilter(*i) for i in prog]
        self.byteorder = byteorder
        self.semantics = semantics
        gen = _Gen(self.prog, byteorder, semantics)
        self.source = gen.source()
        e = ">" if byteorder == "big" else "<"
        ns: dict = {
            "M": M32,
            "UW": struct.Struct(e + "I").unpack_from,
            "UH": struct.Struct(e + "H").unpack_from,
            "SLOW": _slow_load,
            "ORDER": byteorder,
            "FAULT": _fault,
            "VLANP": _vlan_present,
            "POFF": payload_offset,
            "NLA": _nlattr,
            "NLAN": _nlattr_nest,
        }
        exec(compile(self.source, "<classic>", "exec"), ns)  # noqa: S102 - our own code
        self._fn: Callable = ns["F"]
        self._meta = PacketMeta()

    def run(
        self,
        data: bytes | bytearray | memoryview,
        meta: PacketMeta | None = None,
        wire_len: int | None = None,
    ) -> ClassicResult:
        """Run on one packet; ``wire_len`` is what ``len`` loads see (default ``len(data)``)."""
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        r = self._fn(data, n, n if wire_len is None else wire_len, meta or self._meta)
        return ClassicResult(r[0], r[1], r[2], r[3])

    def ret(self, data: bytes, wire_len: int | None = None, meta: PacketMeta | None = None) -> int:
        """Only the return value (the per-packet fast path; ``data`` must be ``bytes``)."""
        n = len(data)
        return self._fn(data, n, n if wire_len is None else wire_len, meta or self._meta)[0]


def compile_classic(
    prog: Sequence[SockFilter], byteorder: str = "big", semantics: str = "kernel"
) -> ClassicProgram:
    """Translate ``prog`` once; the result runs it on packet after packet.

    ``semantics="libpcap"`` runs it as libpcap's ``bpf_filter`` does (``tcpdump -r``)."""
    return ClassicProgram(prog, byteorder, semantics)


@functools.lru_cache(maxsize=256)
def _cached(prog: tuple, byteorder: str, semantics: str) -> ClassicProgram:
    return ClassicProgram(prog, byteorder, semantics)


# the last programs run_classic saw, by identity: (snapshot, (byteorder, semantics), compiled)
_BY_ID: dict[int, tuple[tuple, tuple[str, str], ClassicProgram]] = {}


def run_classic(
    prog: Sequence[SockFilter],
    data: bytes | bytearray | memoryview,
    *,
    meta: PacketMeta | None = None,
    byteorder: str = "big",
    wire_len: int | None = None,
    semantics: str = "kernel",
) -> ClassicResult:
    """Run ``prog`` on ``data`` and return its result (the kernel's classic semantics, or
    with ``semantics="libpcap"`` those of libpcap's ``bpf_filter``, as ``tcpdump -r``).

    ``wire_len`` is what ``len`` loads see (the packet's length on the wire; defaults
    to ``len(data)``), so a capture truncated by its snap length filters as tcpdump does.
    The translation is cached per program (the same list, unchanged, is found again
    without re-hashing it); for a hot loop use :func:`compile_classic`.
    """
    snap = prog if type(prog) is tuple else tuple(prog)
    mode = (byteorder, semantics)
    hit = _BY_ID.get(id(prog))
    if hit is not None and hit[1] == mode and hit[0] == snap:
        return hit[2].run(data, meta, wire_len)
    cp = _cached(tuple(SockFilter(*i) for i in snap), byteorder, semantics)
    if len(_BY_ID) > 64:
        _BY_ID.clear()
    _BY_ID[id(prog)] = (snap, mode, cp)
    return cp.run(data, meta, wire_len)
