"""Classic BPF (``struct sock_filter``) as data: opcode fields, ``SockFilter``, encode/decode.

The classic machine is the 1992 BSD packet filter: an accumulator ``A``, an index
register ``X``, sixteen 32-bit scratch words ``M[]`` and 8-byte instructions
``(code: u16, jt: u8, jf: u8, k: u32)`` — the layout of ``<linux/filter.h>``.
Constants come from ``<linux/bpf_common.h>`` and ``<linux/filter.h>``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ..errors import DecodeError, EncodeError

# Instruction classes (code & 0x07).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# ld/ldx sizes (code & 0x18) and modes (code & 0xe0).
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
# alu/jmp operations (code & 0xf0).
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00,
    0x10,
    0x20,
    0x30,
    0x40,
    0x50,
    0x60,
    0x70,
    0x80,
    0x90,
    0xA0,
)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# Sources (code & 0x08): K = the immediate, X = the index register.
K, X = 0x00, 0x08
# ret sources (code & 0x18): K, X (Linux extension) or A.
RVAL_A = 0x10
# misc operations (code & 0xf8).
TAX, TXA = 0x00, 0x80

MEMWORDS = 16  # BPF_MEMWORDS
MAXINSNS = 4096  # BPF_MAXINSNS

# Linux ancillary data: loads at SKF_AD_OFF + n answer packet metadata, not packet bytes.
#: libpcap's user-space rules allow a backward ``ja``: protochain loops over IPv6 extension
#: headers, each round at least 8 bytes further into the packet. bpfkit's engines allow a
#: program as many backward jumps on a packet as it has captured bytes, plus this many, and
#: then stop it and reject the packet (libpcap would spin forever on a program or packet
#: that loops; a crafted AH chain can make even protochain's program do that)
LOOP_SLACK = 256

SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8
SKF_AD_NLATTR = 12
SKF_AD_NLATTR_NEST = 16
SKF_AD_MARK = 20
SKF_AD_QUEUE = 24
SKF_AD_HATYPE = 28
SKF_AD_RXHASH = 32
SKF_AD_CPU = 36
SKF_AD_ALU_XOR_X = 40
SKF_AD_VLAN_TAG = 44
SKF_AD_VLAN_TAG_PRESENT = 48
SKF_AD_PAY_OFFSET = 52
SKF_AD_RANDOM = 56
SKF_AD_VLAN_TPID = 60
SKF_AD_MAX = 64
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000

#: ``SKF_AD_*`` offsets by the names libpcap's listing prints (``ld [proto]``).
ANCILLARY_NAMES = {
    SKF_AD_PROTOCOL: "proto",
    SKF_AD_PKTTYPE: "type",
    SKF_AD_IFINDEX: "ifidx",
    SKF_AD_NLATTR: "nla",
    SKF_AD_NLATTR_NEST: "nlan",
    SKF_AD_MARK: "mark",
    SKF_AD_QUEUE: "queue",
    SKF_AD_HATYPE: "hatype",
    SKF_AD_RXHASH: "rxhash",
    SKF_AD_CPU: "cpu",
    SKF_AD_ALU_XOR_X: "xor_x",
    SKF_AD_VLAN_TAG: "vlan_tci",
    SKF_AD_VLAN_TAG_PRESENT: "vlanp",
    SKF_AD_PAY_OFFSET: "poff",
    SKF_AD_RANDOM: "random",
    SKF_AD_VLAN_TPID: "vlan_tpid",
}

_ALU_OPS = (ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH)
_CONDS = (JEQ, JGE, JGT, JSET)

#: The opcodes the kernel accepts in a socket filter (``chk_code_allowed`` in
#: net/core/filter.c): every other 16-bit code is refused.
ALLOWED_CODES = frozenset(
    [ALU | o | s for o in _ALU_OPS for s in (K, X)]
    + [ALU | NEG]
    + [LD | sz | m for m in (ABS, IND) for sz in (W, H, B)]
    + [LD | W | LEN, LD | IMM, LD | MEM, LDX | W | LEN, LDX | B | MSH, LDX | IMM, LDX | MEM]
    + [ST, STX, MISC | TAX, MISC | TXA, RET | K, RET | RVAL_A, JMP | JA]
    + [JMP | o | s for o in _CONDS for s in (K, X)]
)

#: Conditional jump opcodes (``jt``/``jf`` are used).
COND_JUMPS = frozenset(JMP | o | s for o in _CONDS for s in (K, X))

_SLOT = struct.Struct("<HBBI")
SIZE = _SLOT.size  # 8 bytes per instruction


def bpf_class(code: int) -> int:
    return code & 0x07


def bpf_size(code: int) -> int:
    return code & 0x18


def bpf_mode(code: int) -> int:
    return code & 0xE0


def bpf_op(code: int) -> int:
    return code & 0xF0


def bpf_src(code: int) -> int:
    return code & 0x08


def bpf_rval(code: int) -> int:
    return code & 0x18


def bpf_miscop(code: int) -> int:
    return code & 0xF8


class SockFilter(NamedTuple):
    """One classic instruction, ``struct sock_filter``: ``code``, ``jt``, ``jf``, ``k``."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def validate(self) -> SockFilter:
        """Raise ``EncodeError`` unless every field fits its C type."""
        if not 0 <= self.code <= 0xFFFF:
            raise EncodeError(f"classic code {self.code:#x} does not fit u16")
        if not 0 <= self.jt <= 0xFF or not 0 <= self.jf <= 0xFF:
            raise EncodeError(f"classic jump offsets jt={self.jt} jf={self.jf} do not fit u8")
        if not 0 <= self.k <= 0xFFFFFFFF:
            raise EncodeError(f"classic k={self.k} does not fit u32")
        return self


def stmt(code: int, k: int = 0) -> SockFilter:
    """``BPF_STMT(code, k)``; a negative ``k`` is stored as its u32 two's complement."""
    return SockFilter(code, 0, 0, k & 0xFFFFFFFF)


def jump(code: int, k: int, jt: int, jf: int) -> SockFilter:
    """``BPF_JUMP(code, k, jt, jf)``."""
    return SockFilter(code, jt, jf, k & 0xFFFFFFFF)


def encode(prog: Iterable[SockFilter]) -> bytes:
    """The ``sock_filter`` array in native (little-endian) byte order."""
    out = bytearray()
    for ins in prog:
        ins = SockFilter(*ins).validate()
        out += _SLOT.pack(ins.code, ins.jt, ins.jf, ins.k)
    return bytes(out)


def decode(data: bytes | bytearray | memoryview) -> list[SockFilter]:
    """Read a ``sock_filter`` array; its length must be a multiple of 8 bytes."""
    data = bytes(data)
    if len(data) % SIZE:
        raise DecodeError(
            f"classic program is {len(data)} bytes, not a multiple of {SIZE}", len(data)
        )
    return [SockFilter(*t) for t in _SLOT.iter_unpack(data)]


def as_tuples(prog: Sequence[SockFilter]) -> list[list[int]]:
    """``[[code, jt, jf, k], ...]`` for JSON output."""
    return [[i.code, i.jt, i.jf, i.k] for i in prog]


def uses_k(code: int) -> bool:
    """Whether the instruction reads its ``k`` field (TAX, ``ret a``, ``add x`` ... do not)."""
    cls = code & 0x07
    if cls in (LD, LDX):
        return code & 0xE0 != LEN
    if cls in (ST, STX):
        return True
    if cls == ALU:
        return code & 0xF0 != NEG and not code & X
    if cls == JMP:
        return code & 0xF0 == JA or not code & X
    if cls == RET:
        return code & 0x18 == K
    return False


def normalize(prog: Iterable[SockFilter]) -> list[SockFilter]:
    """The program with the fields its instructions ignore zeroed (libpcap leaves garbage
    there, e.g. ``tax`` with ``k=2``); a listing shows only what is used."""
    out = []
    for ins in prog:
        ins = SockFilter(*ins)
        if ins.code not in ALLOWED_CODES:
            out.append(ins)
            continue
        jt, jf = (ins.jt, ins.jf) if ins.code in COND_JUMPS else (0, 0)
        out.append(SockFilter(ins.code, jt, jf, ins.k if uses_k(ins.code) else 0))
    return out
