"""The kernel's checker for classic programs, rule for rule.

Socket filters (``SO_ATTACH_FILTER``) go through ``bpf_check_classic`` in
net/core/filter.c: 1..4096 instructions, only the opcodes of ``chk_code_allowed``, no
division or modulo by a constant 0, no shift by a constant >= 32, scratch indexes < 16,
jumps forward and inside the program, only known ancillary offsets
(``SKF_AD_OFF + n``), a return at the end, and (``check_load_and_stores``) every scratch
slot written before it is read, on every path. Seccomp filters
(``SECCOMP_SET_MODE_FILTER``) pass that check and then ``seccomp_check_filter``
(kernel/seccomp.c): word loads only, at aligned offsets inside ``struct seccomp_data``,
no ancillary or indirect loads, and a shorter opcode list (no ``mod``). Finally the
kernel translates the program to eBPF (``bpf_convert_filter``), which refuses a jump
whose translated distance does not fit eBPF's 16-bit offset.

:func:`check` raises :class:`~bpfkit.errors.ClassicError` naming the first failing
instruction and the rule (``err.rule``); the order of the checks is the kernel's, so the
instruction named is the one the kernel stops at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from ..errors import ClassicError
from . import insn as c
from .insn import SockFilter

__all__ = ["check", "check_seccomp", "is_valid", "SECCOMP_DATA_SIZE", "SECCOMP_CODES", "RULES"]

M32 = 0xFFFFFFFF
SECCOMP_DATA_SIZE = 64  # sizeof(struct seccomp_data)

#: Every rule the checker enforces, by the id ``ClassicError.rule`` carries.
RULES = {
    "length": "a program has 1 to 4096 instructions",
    "opcode": "only the opcodes the kernel knows (chk_code_allowed)",
    "div-by-zero": "no division or modulo by a constant 0",
    "shift-range": "no shift by a constant of 32 or more",
    "scratch-index": "scratch slot indexes are 0..15",
    "jump-range": "jumps go forward and land inside the program",
    "ancillary": "loads at SKF_AD_OFF + n name a known ancillary field",
    "no-return": "the last instruction is a return",
    "scratch-uninit": "a scratch slot is read only after it is written, on every path",
    "seccomp-load": "seccomp: word loads at aligned offsets inside struct seccomp_data",
    "seccomp-opcode": "seccomp: only the opcodes seccomp_check_filter allows",
    "translate-jump": "the eBPF translation's jump distance fits 16 bits",
}

#: The opcodes ``seccomp_check_filter`` lets through (after ``bpf_check_classic``).
SECCOMP_CODES = frozenset(
    [c.RET | c.K, c.RET | c.RVAL_A, c.ALU | c.NEG, c.LD | c.IMM, c.LDX | c.IMM]
    + [
        c.ALU | op | s
        for op in (c.ADD, c.SUB, c.MUL, c.DIV, c.AND, c.OR, c.XOR, c.LSH, c.RSH)
        for s in (c.K, c.X)
    ]
    + [c.MISC | c.TAX, c.MISC | c.TXA, c.LD | c.MEM, c.LDX | c.MEM, c.ST, c.STX, c.JMP | c.JA]
    + sorted(c.COND_JUMPS)
    + [c.LD | c.W | c.ABS, c.LD | c.W | c.LEN, c.LDX | c.W | c.LEN]
)

_AD_BASE = c.SKF_AD_OFF & M32
_KNOWN_ANC = frozenset(c.ANCILLARY_NAMES)


def _fail(rule: str, pc: int | None, msg: str) -> ClassicError:
    return ClassicError(f"{msg} [{rule}]", pc, rule)


def _check_basic(prog: Sequence[SockFilter]) -> None:
    """``bpf_check_classic``'s per-instruction rules and the final return."""
    flen = len(prog)
    for pc, ins in enumerate(prog):
        code, k = ins.code, ins.k
        if code not in c.ALLOWED_CODES:
            raise _fail("opcode", pc, f"unknown or unsupported opcode {code:#06x}")
        if code in (c.ALU | c.DIV | c.K, c.ALU | c.MOD | c.K):
            if k == 0:
                raise _fail("div-by-zero", pc, "division or modulo by constant 0")
        elif code in (c.ALU | c.LSH | c.K, c.ALU | c.RSH | c.K):
            if k >= 32:
                raise _fail("shift-range", pc, f"shift by constant {k} (must be < 32)")
        elif code in (c.LD | c.MEM, c.LDX | c.MEM, c.ST, c.STX):
            if k >= c.MEMWORDS:
                raise _fail("scratch-index", pc, f"scratch index M[{k}] is not 0..15")
        elif code == c.JMP | c.JA:
            if k >= flen - pc - 1:
                raise _fail("jump-range", pc, f"ja +{k} lands outside the program")
        elif code in c.COND_JUMPS:
            if pc + ins.jt + 1 >= flen or pc + ins.jf + 1 >= flen:
                raise _fail(
                    "jump-range",
                    pc,
                    f"jt +{ins.jt}/jf +{ins.jf} land outside the program ({flen} insns)",
                )
        elif code in (c.LD | c.W | c.ABS, c.LD | c.H | c.ABS, c.LD | c.B | c.ABS):
            if k >= _AD_BASE and (k - _AD_BASE) not in _KNOWN_ANC:
                raise _fail("ancillary", pc, f"unknown ancillary load SKF_AD_OFF+{k - _AD_BASE}")
    if prog[-1].code not in (c.RET | c.K, c.RET | c.RVAL_A):
        raise _fail("no-return", flen - 1, "the program does not end with a return")


def _check_load_and_stores(prog: Sequence[SockFilter]) -> None:
    """``check_load_and_stores``: the kernel's one forward pass with a mask per target."""
    masks = [0xFFFF] * len(prog)
    valid = 0
    for pc, ins in enumerate(prog):
        valid &= masks[pc]
        code = ins.code
        if code in (c.ST, c.STX):
            valid |= 1 << ins.k
        elif code in (c.LD | c.MEM, c.LDX | c.MEM):
            if not valid & (1 << ins.k):
                raise _fail("scratch-uninit", pc, f"M[{ins.k}] may be read before it is written")
        elif code == c.JMP | c.JA:
            masks[pc + 1 + ins.k] &= valid
            valid = 0xFFFF
        elif code in c.COND_JUMPS:
            masks[pc + 1 + ins.jt] &= valid
            masks[pc + 1 + ins.jf] &= valid
            valid = 0xFFFF


def _check_seccomp(prog: Sequence[SockFilter]) -> list[SockFilter]:
    """``seccomp_check_filter``; returns the program as the kernel rewrites it."""
    out = []
    for pc, ins in enumerate(prog):
        code, k = ins.code, ins.k
        if code == c.LD | c.W | c.ABS:
            if k >= SECCOMP_DATA_SIZE or k & 3:
                raise _fail(
                    "seccomp-load",
                    pc,
                    f"ld [{k}] is not an aligned word inside struct seccomp_data (64 bytes)",
                )
            out.append(ins._replace(code=c.LDX | c.W | c.ABS))
        elif code == c.LD | c.W | c.LEN:
            out.append(SockFilter(c.LD | c.IMM, ins.jt, ins.jf, SECCOMP_DATA_SIZE))
        elif code == c.LDX | c.W | c.LEN:
            out.append(SockFilter(c.LDX | c.IMM, ins.jt, ins.jf, SECCOMP_DATA_SIZE))
        elif code in SECCOMP_CODES:
            out.append(ins)
        else:
            raise _fail("seccomp-opcode", pc, f"opcode {code:#06x} is not allowed in seccomp")
    return out


# ---- bpf_convert_filter's expansion (x86-64: unaligned loads are fine, little endian) --
_ANC_LEN = {
    c.SKF_AD_PROTOCOL: 2,
    c.SKF_AD_PKTTYPE: 2,
    c.SKF_AD_IFINDEX: 4,
    c.SKF_AD_HATYPE: 4,
    c.SKF_AD_MARK: 1,
    c.SKF_AD_RXHASH: 1,
    c.SKF_AD_QUEUE: 1,
    c.SKF_AD_VLAN_TAG: 1,
    c.SKF_AD_VLAN_TAG_PRESENT: 3,
    c.SKF_AD_VLAN_TPID: 2,
    c.SKF_AD_PAY_OFFSET: 4,
    c.SKF_AD_NLATTR: 4,
    c.SKF_AD_NLATTR_NEST: 4,
    c.SKF_AD_CPU: 4,
    c.SKF_AD_RANDOM: 4,
    c.SKF_AD_ALU_XOR_X: 1,
}


def _ld_abs_len(size: int, indirect: bool, k: int) -> int:
    """Instructions ``convert_bpf_ld_abs`` emits for one packet load."""
    n = 8  # slow path: ctx, data, headlen, offset, call, jsge, xor, exit
    if indirect:
        n += 1 if k else 0
        return n
    off = k - (1 << 32) if k & 0x80000000 else k
    if off >= 0:  # the direct path first
        n += 1 + (1 if off else 0) + 1 + (1 if off <= 0x7FFF else 3) + (size != c.B) + 1
    return n


def kernel_insn_len(ins: SockFilter) -> int:
    """How many eBPF instructions the kernel's ``bpf_convert_filter`` makes of ``ins``."""
    code, k = ins.code, ins.k
    cls = code & 0x07
    if cls == c.LD and code & 0xE0 in (c.ABS, c.IND):
        if code & 0xE0 == c.ABS and k >= _AD_BASE and (k - _AD_BASE) in _ANC_LEN:
            return _ANC_LEN[k - _AD_BASE]
        return _ld_abs_len(code & 0x18, code & 0xE0 == c.IND, k)
    if code in (c.ALU | c.DIV | c.X, c.ALU | c.MOD | c.X):
        return 5
    if code == c.LDX | c.B | c.MSH:
        return 1 + _ld_abs_len(c.B, False, k) + 5
    if code == c.RET | c.K:
        return 2
    if code in c.COND_JUMPS:
        neg = 1 if not code & c.X and k & 0x80000000 else 0
        if ins.jf == 0 or (ins.jt == 0 and code & 0xF0 != c.JSET):
            return neg + 1
        return neg + 2
    return 1


def _check_translation(prog: Sequence[SockFilter]) -> None:
    """``bpf_convert_filter``'s ``BPF_EMIT_JMP``: every jump offset must fit s16."""
    addrs = []
    at = 0
    for ins in prog:
        addrs.append(at)
        at += kernel_insn_len(ins)

    def emit(pc: int, target: int, idx: int) -> None:
        off = addrs[target] - addrs[pc] - 1 - idx
        if not -0x8000 <= off <= 0x7FFF:
            raise _fail(
                "translate-jump",
                pc,
                f"the jump to insn {target} becomes {off} eBPF instructions, beyond 16 bits",
            )

    for pc, ins in enumerate(prog):
        code = ins.code
        if code == c.JMP | c.JA:
            emit(pc, pc + ins.k + 1, 0)
        elif code in c.COND_JUMPS:
            j = 1 if not code & c.X and ins.k & 0x80000000 else 0
            if ins.jf == 0:
                emit(pc, pc + ins.jt + 1, j)
            elif ins.jt == 0 and code & 0xF0 != c.JSET:
                emit(pc, pc + ins.jf + 1, j)
            else:
                emit(pc, pc + ins.jt + 1, j)
                emit(pc, pc + ins.jf + 1, j + 1)


def check(prog: Sequence[SockFilter], *, mode: Literal["socket", "seccomp"] = "socket") -> None:
    """Raise :class:`ClassicError` unless the kernel would accept ``prog``.

    ``mode="socket"`` is ``SO_ATTACH_FILTER``'s check, ``mode="seccomp"`` adds
    ``seccomp_check_filter``. The error's ``insn`` is the first failing instruction and
    its ``rule`` one of :data:`RULES`.
    """
    if mode not in ("socket", "seccomp"):
        raise ValueError(f"unknown classic check mode {mode!r}")
    prog = [SockFilter(*i) for i in prog]
    if not 1 <= len(prog) <= c.MAXINSNS:
        raise _fail("length", None, f"{len(prog)} instructions (must be 1..{c.MAXINSNS})")
    _check_basic(prog)
    _check_load_and_stores(prog)
    if mode == "seccomp":
        prog = _check_seccomp(prog)
    _check_translation(prog)


def is_valid(prog: Sequence[SockFilter], *, mode: Literal["socket", "seccomp"] = "socket") -> bool:
    """Whether :func:`check` accepts ``prog``."""
    try:
        check(prog, mode=mode)
    except ClassicError:
        return False
    return True


def check_seccomp(prog: Sequence[SockFilter]) -> None:
    """``check(prog, mode="seccomp")``: what ``seccomp(SECCOMP_SET_MODE_FILTER)`` accepts."""
    check(prog, mode="seccomp")
