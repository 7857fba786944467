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

from ..classic.insn import SockFilter
from ..classic.interp import run_classic
from ..errors import ProfileError
from .compiler import Decision
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


def validate(program: Sequence[SockFilter]) -> None:
    """Refuse what ``seccomp(SECCOMP_SET_MODE_FILTER)`` would refuse (``ClassicError``).

    The kernel's ``bpf_check_classic`` and ``seccomp_check_filter`` rules, as
    :func:`bpfkit.classic.check.check_seccomp` implements them.
    """
    from ..classic.check import check_seccomp

    check_seccomp(list(program))
