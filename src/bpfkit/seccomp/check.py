"""Check a compiled filter's decisions without installing it.

A decision is what the program returns for one ``struct seccomp_data`` — so what is
checked is exactly what would be installed. The data is packed as the kernel lays it out
for a little-endian ABI (x86_64, i386, x32, aarch64): ``nr``, ``arch``,
``instruction_pointer``, then six 64-bit arguments.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..classic import insn as c
from ..classic.insn import SockFilter
from ..classic.interp import run_classic
from ..errors import ProfileError
from .compiler import SECCOMP_DATA_SIZE, Decision
from .tables import Arch, get_arch, resolve

if TYPE_CHECKING:
    from .compiler import Filter

_DATA = struct.Struct("<iIQ6Q")


def seccomp_data(
    nr: int, arch: int, args: Sequence[int] = (), instruction_pointer: int = 0
) -> bytes:
    """``struct seccomp_data`` (64 bytes, little-endian); missing arguments are 0."""
    if len(args) > 6:
        raise ProfileError(f"args: {len(args)} arguments given, a syscall has at most 6")
    vals = []
    for i, a in enumerate(args):
        if isinstance(a, bool) or not isinstance(a, int):
            raise ProfileError(f"args[{i}]: expected an integer, got {a!r}")
        if not -(1 << 63) <= a <= 0xFFFFFFFFFFFFFFFF:
            raise ProfileError(f"args[{i}]: {a} does not fit 64 bits")
        vals.append(a & 0xFFFFFFFFFFFFFFFF)
    vals += [0] * (6 - len(vals))
    nr &= 0xFFFFFFFF
    nr = nr - (1 << 32) if nr & 0x80000000 else nr
    return _DATA.pack(nr, arch & 0xFFFFFFFF, instruction_pointer & 0xFFFFFFFFFFFFFFFF, *vals)


def run_filter(program: Sequence[SockFilter], data: bytes) -> Decision:
    """Run a seccomp program on a packed ``seccomp_data``."""
    r = run_classic(program, data, byteorder="little")
    return Decision(r.ret, r.insns)


def check_filter(
    flt: Filter,
    syscall: str | int,
    args: Sequence[int] = (),
    arch: str | int | Arch | None = None,
    *,
    instruction_pointer: int = 0,
) -> Decision:
    """The decision ``flt`` makes for a syscall (name or number) on ``arch`` (default: native).

    A name is looked up in ``arch``'s table; an architecture the filter does not cover
    still gets an answer (the bad-architecture action), as it would in the kernel.
    """
    if arch is None:
        a: Arch | None = flt.arches[0]
        token = a.audit
    elif isinstance(arch, int) and not isinstance(arch, bool):
        token = arch & 0xFFFFFFFF
        try:
            a = get_arch(token)
        except ProfileError:
            a = None
    else:
        a = get_arch(arch)
        token = a.audit
    if (
        isinstance(syscall, str)
        and not syscall.strip().lstrip("-").isdigit()
        and not syscall.strip().lower().startswith("0x")
    ):
        if a is None:
            raise ProfileError(
                f"syscall {syscall!r}: give a number for architecture token {token:#x}"
            )
        nr = resolve(a, syscall)
    else:
        nr = resolve(a or flt.arches[0], syscall)
    return run_filter(flt.program, seccomp_data(nr, token, args, instruction_pointer))


# Opcodes the kernel's seccomp_check_filter accepts (after bpf_check_classic).
_SECCOMP_OPS = {
    c.LD | c.W | c.ABS,
    c.LD | c.W | c.LEN,
    c.LDX | c.W | c.LEN,
    c.RET | c.K,
    c.RET | c.RVAL_A,
    c.ALU | c.ADD | c.K, c.ALU | c.ADD | c.X, c.ALU | c.SUB | c.K, c.ALU | c.SUB | c.X,
    c.ALU | c.MUL | c.K, c.ALU | c.MUL | c.X, c.ALU | c.DIV | c.K, c.ALU | c.DIV | c.X,
    c.ALU | c.AND | c.K, c.ALU | c.AND | c.X, c.ALU | c.OR | c.K, c.ALU | c.OR | c.X,
    c.ALU | c.XOR | c.K, c.ALU | c.XOR | c.X, c.ALU | c.LSH | c.K, c.ALU | c.LSH | c.X,
    c.ALU | c.RSH | c.K, c.ALU | c.RSH | c.X, c.ALU | c.NEG,
    c.LD | c.IMM, c.LDX | c.IMM, c.MISC | c.TAX, c.MISC | c.TXA,
    c.LD | c.MEM, c.LDX | c.MEM, c.ST, c.STX,
    c.JMP | c.JA,
    c.JMP | c.JEQ | c.K, c.JMP | c.JEQ | c.X, c.JMP | c.JGE | c.K, c.JMP | c.JGE | c.X,
    c.JMP | c.JGT | c.K, c.JMP | c.JGT | c.X, c.JMP | c.JSET | c.K, c.JMP | c.JSET | c.X,
}  # fmt: skip


def validate(program: Sequence[SockFilter]) -> None:
    """Refuse a program the kernel's seccomp would refuse (EINVAL): the structural rules.

    Uses :mod:`bpfkit.classic.check` when it is available; otherwise checks length,
    opcodes, aligned in-bounds ``seccomp_data`` loads, jumps inside the program and a
    final ``ret``.
    """
    try:
        from ..classic import check as classic_check  # type: ignore[attr-defined]
    except ImportError:
        classic_check = None
    fn = getattr(classic_check, "check_seccomp", None) if classic_check is not None else None
    if fn is not None:
        fn(list(program))
        return
    n = len(program)
    if not 0 < n <= c.MAXINSNS:
        raise ProfileError(f"program has {n} instructions (1..{c.MAXINSNS})")
    for pc, ins in enumerate(program):
        if ins.code not in _SECCOMP_OPS:
            raise ProfileError(f"insn {pc}: opcode {ins.code:#x} not allowed in seccomp")
        if ins.code == c.LD | c.W | c.ABS and (ins.k % 4 or ins.k >= SECCOMP_DATA_SIZE):
            raise ProfileError(f"insn {pc}: load at offset {ins.k} outside seccomp_data")
        if ins.code & 0x07 == c.JMP:
            if ins.code == c.JMP | c.JA:
                if pc + 1 + ins.k >= n:
                    raise ProfileError(f"insn {pc}: jump out of the program")
            elif pc + 1 + max(ins.jt, ins.jf) >= n:
                raise ProfileError(f"insn {pc}: jump out of the program")
    if program[-1].code & 0x07 != c.RET:
        raise ProfileError("the program does not end with a ret")
