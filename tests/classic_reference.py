"""A plain step-by-step classic interpreter: the reference the compiled one is held to.

(The first interpreter bpfkit had, kept as a test oracle; negative offsets now map
through ``meta.mac_offset``/``meta.headroom`` as in the kernel.)

State is ``A``, ``X`` and ``M[16]`` (all u32, zero at start). A packet load past the
end of the data ends the program with 0, as does a division or modulo by ``X == 0``;
shifts by ``X`` use the low five bits (the kernel runs classic programs as eBPF's
32-bit ALU). Loads at ``SKF_AD_OFF + n`` answer the packet's metadata
(:class:`PacketMeta`), ``SKF_NET_OFF``/``SKF_LL_OFF`` offsets address the network and
link-layer headers. With ``byteorder="little"`` word loads read native-endian data, as
the kernel's seccomp does for ``struct seccomp_data``.

The program is assumed to have passed :mod:`bpfkit.classic.check`-style structural
checks only where noted: jumps out of the program, unknown opcodes and scratch indexes
out of range raise :class:`~bpfkit.errors.RuntimeFault` naming the pc.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfkit.classic import insn as c
from bpfkit.classic.interp import ClassicResult, PacketMeta, _nlattr, _nlattr_nest, payload_offset
from bpfkit.errors import RuntimeFault

M32 = 0xFFFFFFFF


_ANC_FIELDS = {
    c.SKF_AD_PROTOCOL: "protocol",
    c.SKF_AD_PKTTYPE: "pkttype",
    c.SKF_AD_IFINDEX: "ifindex",
    c.SKF_AD_MARK: "mark",
    c.SKF_AD_QUEUE: "queue",
    c.SKF_AD_HATYPE: "hatype",
    c.SKF_AD_RXHASH: "rxhash",
    c.SKF_AD_CPU: "cpu",
    c.SKF_AD_VLAN_TPID: "vlan_tpid",
}


def _ancillary(off: int, meta: PacketMeta, a: int, x: int, data: bytes):
    """The value an ``SKF_AD_OFF + off`` load gives, "exit" to end with A, None if unknown."""
    if off in (c.SKF_AD_IFINDEX, c.SKF_AD_HATYPE) and not meta.dev:
        return "exit"
    name = _ANC_FIELDS.get(off)
    if name is not None:
        width = {"pkttype": 7, "protocol": 0xFFFF, "queue": 0xFFFF, "hatype": 0xFFFF}
        return int(getattr(meta, name)) & width.get(name, M32 if name != "vlan_tpid" else 0xFFFF)
    if off == c.SKF_AD_VLAN_TAG:
        return meta.vlan_tci & 0xFFFF
    if off == c.SKF_AD_VLAN_TAG_PRESENT:
        return 1 if (meta.vlan_present or meta.vlan_tci or meta.vlan_tpid) else 0
    if off == c.SKF_AD_ALU_XOR_X:
        return (a ^ x) & M32
    if off == c.SKF_AD_RANDOM:
        return meta.random.getrandbits(32)
    if off == c.SKF_AD_PAY_OFFSET:
        return payload_offset(data, meta)
    if off == c.SKF_AD_NLATTR:
        return _nlattr(data, a, x)
    if off == c.SKF_AD_NLATTR_NEST:
        return _nlattr_nest(data, a, x)
    return None


def _load(data: bytes, k: int, size: int, meta: PacketMeta, order: str) -> int | None:
    """Packet bytes at (signed) offset ``k``; None when outside the data (ends the run)."""
    if k < 0:
        if k >= c.SKF_NET_OFF:
            k = k - c.SKF_NET_OFF + meta.net_offset
        elif k >= c.SKF_LL_OFF and meta.mac_offset is not None:
            k = k - c.SKF_LL_OFF + meta.mac_offset
        else:
            return None
    if k + size > len(data):
        return None
    whole = meta.headroom + data
    k += len(meta.headroom)
    if k < 0:
        return None
    return int.from_bytes(whole[k : k + size], order)


_SIZES = {c.W: 4, c.H: 2, c.B: 1}


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v & 0x80000000 else v


def run_reference(
    prog: Sequence[c.SockFilter],
    data: bytes | bytearray | memoryview,
    *,
    meta: PacketMeta | None = None,
    byteorder: str = "big",
    wire_len: int | None = None,
) -> ClassicResult:
    """Run ``prog`` on ``data`` and return its result (the kernel's classic semantics).

    ``wire_len`` is what ``len`` loads see (the packet's length on the wire; defaults
    to ``len(data)``), so a capture truncated by its snap length filters as tcpdump does.
    """
    data = bytes(data)
    meta = meta or PacketMeta()
    plen = len(data) if wire_len is None else wire_len
    a = x = 0
    mem = [0] * c.MEMWORDS
    pc = 0
    n = len(prog)
    count = 0
    while True:
        if not 0 <= pc < n:
            raise RuntimeFault("classic jump out of the program", pc=pc, insns=count)
        ins = prog[pc]
        code, k = ins.code, ins.k
        count += 1
        if code not in c.ALLOWED_CODES:
            raise RuntimeFault(f"unknown classic opcode {code:#06x}", pc=pc, insns=count)
        cls = code & 0x07
        if cls == c.RET:
            rv = code & 0x18
            ret = a if rv == c.RVAL_A else x if rv == c.X else k
            return ClassicResult(ret & M32, count, a, x)
        if cls == c.LD or cls == c.LDX:
            mode = code & 0xE0
            size = _SIZES.get(code & 0x18)
            if mode == c.IMM:
                v = k
            elif mode == c.LEN:
                v = plen
            elif mode == c.MEM:
                if k >= c.MEMWORDS:
                    raise RuntimeFault(f"scratch index {k} out of range", pc=pc, insns=count)
                v = mem[k]
            elif mode == c.MSH and cls == c.LDX:
                b = _load(data, _s32(k), 1, meta, byteorder)
                if b is None:
                    return ClassicResult(0, count, a, x)
                v = (b & 0xF) << 2
            elif cls == c.LD and mode in (c.ABS, c.IND) and size is not None:
                off = _s32(k) if mode == c.ABS else _s32(x + k)
                if mode == c.ABS and c.SKF_AD_OFF <= off < 0:
                    v = _ancillary(off - c.SKF_AD_OFF, meta, a, x, data)
                    if v == "exit":
                        return ClassicResult(a, count, a, x)
                    if v is None:
                        raise RuntimeFault(
                            f"unknown ancillary load SKF_AD_OFF+{off - c.SKF_AD_OFF}",
                            pc=pc,
                            insns=count,
                        )
                else:
                    v = _load(data, off, size, meta, byteorder)
                    if v is None:
                        return ClassicResult(0, count, a, x)
            else:
                raise RuntimeFault(f"unknown classic opcode {code:#06x}", pc=pc, insns=count)
            if cls == c.LD:
                a = v & M32
            else:
                x = v & M32
            pc += 1
            continue
        if cls == c.ST or cls == c.STX:
            if k >= c.MEMWORDS:
                raise RuntimeFault(f"scratch index {k} out of range", pc=pc, insns=count)
            mem[k] = a if cls == c.ST else x
            pc += 1
            continue
        if cls == c.ALU:
            op = code & 0xF0
            s = x if code & c.X else k
            if op == c.ADD:
                a = (a + s) & M32
            elif op == c.SUB:
                a = (a - s) & M32
            elif op == c.MUL:
                a = (a * s) & M32
            elif op == c.DIV:
                if s == 0:
                    return ClassicResult(0, count, a, x)
                a = a // s
            elif op == c.MOD:
                if s == 0:
                    return ClassicResult(0, count, a, x)
                a = a % s
            elif op == c.OR:
                a |= s
            elif op == c.AND:
                a &= s
            elif op == c.XOR:
                a ^= s
            elif op == c.LSH:
                a = (a << (s & 31)) & M32
            elif op == c.RSH:
                a = a >> (s & 31)
            elif op == c.NEG:
                a = (-a) & M32
            else:
                raise RuntimeFault(f"unknown classic opcode {code:#06x}", pc=pc, insns=count)
            pc += 1
            continue
        if cls == c.JMP:
            op = code & 0xF0
            if op == c.JA:
                pc += 1 + k
                continue
            s = x if code & c.X else k
            if op == c.JEQ:
                t = a == s
            elif op == c.JGT:
                t = a > s
            elif op == c.JGE:
                t = a >= s
            elif op == c.JSET:
                t = (a & s) != 0
            else:
                raise RuntimeFault(f"unknown classic opcode {code:#06x}", pc=pc, insns=count)
            pc += 1 + (ins.jt if t else ins.jf)
            continue
        if cls == c.MISC:
            mop = code & 0xF8
            if mop == c.TAX:
                x = a
            elif mop == c.TXA:
                a = x
            else:
                raise RuntimeFault(f"unknown classic opcode {code:#06x}", pc=pc, insns=count)
            pc += 1
            continue
        raise RuntimeFault(f"unknown classic opcode {code:#06x}", pc=pc, insns=count)
