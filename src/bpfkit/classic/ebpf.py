"""Classic programs as eBPF, the way the kernel's ``bpf_convert_filter`` maps them.

The registers are the kernel's: ``A`` lives in r0, ``X`` in r7, the context (the
``__sk_buff``) in r6, r2 is scratch, and ``M[k]`` is the stack word at ``r10 - 4k - 4``.
Arithmetic is 32-bit eBPF ALU on r0; a division or modulo by ``X`` first tests ``X`` and
ends the program with 0 when it is zero; conditional jumps become one eBPF jump (two
when both targets are not the next instruction), comparing against r2 when ``k`` does
not fit a positive immediate; ``ret #k`` sets ``w0`` and exits.

Packet loads stay legacy ``ld_abs``/``ld_ind`` instructions (the kernel's verifier
rewrites them into its own skb load helpers, with the same semantics as the classic
loads: past the end the program ends with 0), so the result loads with ``bpf()`` as a
``SOCKET_FILTER`` and runs on bpfkit's interpreter and JIT. Ancillary loads read the
``__sk_buff`` fields (protocol, pkt_type, ifindex, mark, queue_mapping, hash, vlan_*)
or call ``bpf_get_smp_processor_id``/``bpf_get_prandom_u32``; the three with no eBPF
counterpart for socket filters (``hatype``, ``poff``, ``nla``/``nlan``) raise
:class:`~bpfkit.errors.NotSupported`.

Seccomp programs (``mode="seccomp"``) are translated as the kernel does after
``seccomp_check_filter``: ``ld [k]`` reads the word at ``ctx + k`` of
``struct seccomp_data`` and ``len`` is 64.

Unlike the kernel (whose translation is never verified), the result must pass the eBPF
verifier, so instructions no path reaches are dropped and the registers start at
``w0 = 0``/``w7 = 0`` rather than xor-ing themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from ..errors import ClassicError, EncodeError, NotSupported
from ..isa import builders as b
from ..isa.builders import R0, R1, R2, R6, R7, R10, Label
from ..isa.instruction import Instruction
from ..uapi.ctx import SK_BUFF
from . import insn as c
from .check import SECCOMP_DATA_SIZE, check
from .insn import SockFilter

__all__ = ["to_ebpf", "UNSUPPORTED_ANCILLARY"]

A, X, TMP, CTX = R0, R7, R2, R6
M32 = 0xFFFFFFFF
_AD_BASE = c.SKF_AD_OFF & M32
HELPER_GET_PRANDOM_U32 = 7
HELPER_GET_SMP_PROCESSOR_ID = 8

#: Ancillary loads with no eBPF counterpart in a socket filter's context.
UNSUPPORTED_ANCILLARY = {
    c.SKF_AD_HATYPE: "the device type has no __sk_buff field",
    c.SKF_AD_PAY_OFFSET: "the payload offset (flow dissector) has no eBPF helper",
    c.SKF_AD_NLATTR: "the netlink attribute search has no eBPF helper",
    c.SKF_AD_NLATTR_NEST: "the netlink attribute search has no eBPF helper",
}

_SIZE = {c.W: 4, c.H: 2, c.B: 1}


def _field(name: str) -> int:
    return SK_BUFF[name].offset


def _reachable(prog: Sequence[SockFilter]) -> list[bool]:
    seen = [False] * len(prog)
    seen[0] = True
    for pc, ins in enumerate(prog):  # jumps are forward: one pass in order suffices
        if not seen[pc]:
            continue
        code = ins.code
        if code & 0x07 == c.RET:
            continue
        if code == c.JMP | c.JA:
            seen[pc + 1 + ins.k] = True
        elif code in c.COND_JUMPS:
            seen[pc + 1 + ins.jt] = True
            seen[pc + 1 + ins.jf] = True
        else:
            seen[pc + 1] = True
    return seen


def _ancillary(off: int, pc: int) -> list[Instruction | Label]:
    if off in UNSUPPORTED_ANCILLARY:
        name = c.ANCILLARY_NAMES[off]
        raise NotSupported(
            f"classic insn {pc}: ancillary load [{name}] cannot be translated to eBPF: "
            f"{UNSUPPORTED_ANCILLARY[off]}"
        )
    if off == c.SKF_AD_PROTOCOL:
        return [b.ldx(4, A, CTX, _field("protocol")), b.be(A, 16)]
    if off == c.SKF_AD_VLAN_TPID:
        return [b.ldx(4, A, CTX, _field("vlan_proto")), b.be(A, 16)]
    if off == c.SKF_AD_IFINDEX:
        # no device: the kernel's translation exits with A; a real ifindex is never 0
        skip = f"ifidx{pc}"
        return [
            b.ldx(4, TMP, CTX, _field("ifindex")),
            b.jne(TMP, 0, skip),
            b.exit_(),
            Label(skip),
            b.mov64(A, TMP),
        ]
    fields = {
        c.SKF_AD_PKTTYPE: "pkt_type",
        c.SKF_AD_MARK: "mark",
        c.SKF_AD_QUEUE: "queue_mapping",
        c.SKF_AD_RXHASH: "hash",
        c.SKF_AD_VLAN_TAG: "vlan_tci",
        c.SKF_AD_VLAN_TAG_PRESENT: "vlan_present",
    }
    if off in fields:
        return [b.ldx(4, A, CTX, _field(fields[off]))]
    if off == c.SKF_AD_CPU:
        return [b.call(HELPER_GET_SMP_PROCESSOR_ID)]
    if off == c.SKF_AD_RANDOM:
        return [b.call(HELPER_GET_PRANDOM_U32)]
    if off == c.SKF_AD_ALU_XOR_X:
        return [b.xor32(A, X)]
    raise ClassicError(f"unknown ancillary load SKF_AD_OFF+{off}", pc, "ancillary")


_ALU = {
    c.ADD: b.add32,
    c.SUB: b.sub32,
    c.MUL: b.mul32,
    c.DIV: b.div32,
    c.MOD: b.mod32,
    c.AND: b.and32,
    c.OR: b.or32,
    c.XOR: b.xor32,
    c.LSH: b.lsh32,
    c.RSH: b.rsh32,
}
_JMP = {c.JEQ: b.jeq, c.JGT: b.jgt, c.JGE: b.jge, c.JSET: b.jset}
_JMP_INV = {c.JEQ: b.jne, c.JGT: b.jle, c.JGE: b.jlt}


def _imm(k: int) -> int:
    return k - (1 << 32) if k & 0x80000000 else k


def _one(ins: SockFilter, pc: int, mode: str) -> list[Instruction | Label]:
    code, k = ins.code, ins.k
    cls = code & 0x07
    L = lambda t: f"L{t}"  # noqa: E731
    if mode == "seccomp":
        if code == c.LD | c.W | c.ABS:
            return [b.ldx(4, A, CTX, k)]  # struct seccomp_data, native order
        if code == c.LD | c.W | c.LEN:
            return [b.mov32(A, SECCOMP_DATA_SIZE)]
        if code == c.LDX | c.W | c.LEN:
            return [b.mov32(X, SECCOMP_DATA_SIZE)]
    if cls == c.ALU:
        op = code & 0xF0
        if op == c.NEG:
            return [b.neg32(A)]
        if code & c.X:
            pre: list[Instruction | Label] = []
            if op in (c.DIV, c.MOD):
                ok = f"nz{pc}"
                pre = [b.jne(X, 0, ok), b.mov32(A, 0), b.exit_(), Label(ok)]
            return pre + [_ALU[op](A, X)]
        return [_ALU[op](A, _imm(k))]
    if cls == c.LD:
        mode_ = code & 0xE0
        if mode_ == c.IMM:
            return [b.mov32(A, _imm(k))]
        if mode_ == c.LEN:
            return [b.ldx(4, A, CTX, _field("len"))]
        if mode_ == c.MEM:
            return [b.ldx(4, A, R10, -4 * k - 4)]
        size = _SIZE[code & 0x18]
        if mode_ == c.ABS:
            if k >= _AD_BASE:
                return _ancillary(k - _AD_BASE, pc)
            return [b.ld_abs(size, _imm(k))]
        return [b.ld_ind(size, X, _imm(k))]
    if cls == c.LDX:
        mode_ = code & 0xE0
        if mode_ == c.IMM:
            return [b.mov32(X, _imm(k))]
        if mode_ == c.LEN:
            return [b.ldx(4, X, CTX, _field("len"))]
        if mode_ == c.MEM:
            return [b.ldx(4, X, R10, -4 * k - 4)]
        # ldxb 4*([k]&0xf): A survives in X while ld_abs overwrites r0 (and r1-r5)
        return [
            b.mov64(X, A),
            b.ld_abs(1, _imm(k)),
            b.and32(A, 0xF),
            b.lsh32(A, 2),
            b.mov64(TMP, X),
            b.mov64(X, A),
            b.mov64(A, TMP),
        ]
    if cls == c.ST:
        return [b.stx(4, R10, -4 * k - 4, A)]
    if cls == c.STX:
        return [b.stx(4, R10, -4 * k - 4, X)]
    if cls == c.MISC:
        return [b.mov64(X, A)] if code == c.MISC | c.TAX else [b.mov64(A, X)]
    if cls == c.RET:
        if code == c.RET | c.K:
            return [b.mov32(A, _imm(k)), b.exit_()]
        return [b.exit_()]
    # jumps
    if code == c.JMP | c.JA:
        return [b.ja(L(pc + 1 + k))]
    op = code & 0xF0
    out: list[Instruction | Label] = []
    if code & c.X:
        src = X
    elif k & 0x80000000:
        out.append(b.mov32(TMP, _imm(k)))  # zero-extended: compare as u32
        src = TMP
    else:
        src = k
    t, f = pc + 1 + ins.jt, pc + 1 + ins.jf
    if ins.jf == 0:
        return out + [_JMP[op](A, src, L(t))]
    if ins.jt == 0 and op in _JMP_INV:
        return out + [_JMP_INV[op](A, src, L(f))]
    return out + [_JMP[op](A, src, L(t)), b.ja(L(f))]


def to_ebpf(
    prog: Sequence[SockFilter], mode: Literal["socket", "seccomp"] = "socket"
) -> list[Instruction]:
    """Translate a classic program to eBPF (see the module docstring).

    The program is checked first (:func:`bpfkit.classic.check.check`, ``mode`` selects the
    socket or seccomp rules); a refused program raises :class:`ClassicError`, an
    untranslatable ancillary load :class:`NotSupported`.
    """
    prog = [SockFilter(*i) for i in prog]
    check(prog, mode=mode)
    live = _reachable(prog)
    items: list[Instruction | Label] = [b.mov32(A, 0), b.mov32(X, 0), b.mov64(CTX, R1)]
    for pc, ins in enumerate(prog):
        if not live[pc]:
            continue
        items.append(Label(f"L{pc}"))
        items += _one(ins, pc, mode)
    try:
        return b.assemble(items)
    except EncodeError as e:
        raise ClassicError(
            f"the eBPF translation does not encode: {e}", None, "translate-jump"
        ) from None
