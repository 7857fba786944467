"""Architectures and syscall tables (name <-> number) for seccomp filters.

The tables are generated from the Linux 6.12 source by ``scripts/gen_syscalls.py`` into
``data/syscalls.json``: x86_64 and x32 from ``syscall_64.tbl``, i386 from
``syscall_32.tbl``, aarch64 from the generic ``scripts/syscall.tbl``. x32 numbers carry
``__X32_SYSCALL_BIT`` (0x40000000), as the kernel sees them in ``seccomp_data.nr``.

``data/libseccomp_pnr.json`` lists the names libseccomp knows that have no number on
some architecture (its "pseudo syscalls", e.g. ``send``, which i386 only reaches through
``socketcall(2)``); a profile may name them, and they then filter nothing there.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources

from ..errors import ProfileError

X32_SYSCALL_BIT = 0x40000000

# <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000)
AUDIT_ARCH_X86_64 = 62 | 0x80000000 | 0x40000000
AUDIT_ARCH_I386 = 3 | 0x40000000
AUDIT_ARCH_AARCH64 = 183 | 0x80000000 | 0x40000000


@dataclass(frozen=True)
class Arch:
    """One ABI a filter can check: its names, its ``AUDIT_ARCH_*`` token, its argument width.

    ``arg_bits`` is libseccomp's view: 32-bit ABIs (i386, x32) compare only the low
    32 bits of an argument. ``goarch`` is the name Docker's profiles use in
    ``includes.arches``.
    """

    name: str
    scmp: str
    audit: int
    arg_bits: int
    goarch: str
    aliases: tuple[str, ...] = ()


ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("x86_64", "SCMP_ARCH_X86_64", AUDIT_ARCH_X86_64, 64, "amd64", ("amd64",)),
        Arch("i386", "SCMP_ARCH_X86", AUDIT_ARCH_I386, 32, "386", ("x86", "i686", "386")),
        Arch("x32", "SCMP_ARCH_X32", AUDIT_ARCH_X86_64, 32, "x32"),
        Arch("aarch64", "SCMP_ARCH_AARCH64", AUDIT_ARCH_AARCH64, 64, "arm64", ("arm64",)),
    )
}

# libseccomp architectures bpfkit knows the name of but has no table for.
OTHER_SCMP_ARCHES = (
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
)

_BY_KEY: dict[str, Arch] = {}
for _a in ARCHES.values():
    for _k in (_a.name, _a.scmp, *_a.aliases):
        _BY_KEY[_k.lower()] = _a


def get_arch(key: str | int | Arch) -> Arch:
    """An ``Arch`` from a name (``x86_64``, ``SCMP_ARCH_X86``, ``arm64`` ...) or a token.

    A number is an ``AUDIT_ARCH_*`` token; ``AUDIT_ARCH_X86_64`` means x86_64 (x32 shares
    it: ask for x32 by name). Raises ``ProfileError`` for anything else.
    """
    if isinstance(key, Arch):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        for a in ARCHES.values():
            if a.audit == key:
                return a
        raise ProfileError(f"unknown architecture token {key:#x}")
    if isinstance(key, str):
        text = key.strip()
        a = _BY_KEY.get(text.lower())
        if a is not None:
            return a
        try:
            return get_arch(int(text, 0))
        except ValueError:
            pass
        if text.upper() in OTHER_SCMP_ARCHES:
            raise ProfileError(
                f"architecture {text} is not supported (bpfkit has syscall tables for "
                f"{', '.join(a.scmp for a in ARCHES.values())})"
            )
    raise ProfileError(
        f"unknown architecture {key!r} (one of {', '.join(sorted(ARCHES))} or an AUDIT_ARCH number)"
    )


def native_arch() -> Arch:
    """The architecture of the running machine (x86_64 or aarch64; i386 for i686)."""
    machine = os.uname().machine
    try:
        return get_arch(machine)
    except ProfileError:
        raise ProfileError(f"no seccomp syscall table for this machine ({machine})") from None


@functools.cache
def _data(name: str) -> dict:
    with resources.files(__package__).joinpath("data", name).open("r") as f:
        return json.load(f)


@functools.cache
def table(arch: str | Arch) -> dict[str, int]:
    """``name -> number`` for one architecture (x32 numbers include the x32 bit)."""
    return dict(_data("syscalls.json")["tables"][get_arch(arch).name])


@functools.cache
def reverse_table(arch: str | Arch) -> dict[int, str]:
    """``number -> name`` for one architecture."""
    return {nr: name for name, nr in table(arch).items()}


@functools.cache
def pseudo_numbers() -> dict[str, int]:
    """libseccomp's pseudo numbers (negative) for names some architecture lacks."""
    return dict(_data("libseccomp_pnr.json")["pnr"])


@functools.cache
def known_names() -> frozenset[str]:
    """Every syscall name a profile may use: in some table, or known to libseccomp."""
    names: set[str] = set(pseudo_numbers())
    for a in ARCHES.values():
        names.update(table(a))
    return frozenset(names)


def syscall_number(arch: str | Arch, name: str) -> int | None:
    """The number of ``name`` on ``arch``, or None when that ABI has no such call."""
    return table(arch).get(name)


def syscall_name(arch: str | Arch, nr: int) -> str | None:
    """The name of syscall ``nr`` on ``arch`` (None when unassigned)."""
    return reverse_table(arch).get(nr)


def resolve(arch: str | Arch, syscall: str | int) -> int:
    """A syscall number from a name or number on ``arch``; a one-line error otherwise."""
    if isinstance(syscall, int) and not isinstance(syscall, bool):
        return syscall & 0xFFFFFFFF
    text = str(syscall).strip()
    try:
        return int(text, 0) & 0xFFFFFFFF
    except ValueError:
        pass
    a = get_arch(arch)
    nr = syscall_number(a, text)
    if nr is not None:
        return nr
    if text in known_names():
        raise ProfileError(f"syscall {text!r} does not exist on {a.name}")
    raise ProfileError(f"unknown syscall {text!r}")


# Calls i386 also reaches through socketcall(2) / ipc(2), with the call number in
# argument 0: SYS_* of <linux/net.h> and the ipc(2) operation numbers.
SOCKETCALL_NR_I386 = 102
IPC_NR_I386 = 117
SOCKETCALLS = {
    "socket": 1, "bind": 2, "connect": 3, "listen": 4, "accept": 5, "getsockname": 6,
    "getpeername": 7, "socketpair": 8, "send": 9, "recv": 10, "sendto": 11, "recvfrom": 12,
    "shutdown": 13, "setsockopt": 14, "getsockopt": 15, "sendmsg": 16, "recvmsg": 17,
    "accept4": 18, "recvmmsg": 19, "sendmmsg": 20,
}  # fmt: skip
IPCCALLS = {
    "semop": 1, "semget": 2, "semctl": 3, "semtimedop": 4, "msgsnd": 11, "msgrcv": 12,
    "msgget": 13, "msgctl": 14, "shmat": 21, "shmdt": 22, "shmget": 23, "shmctl": 24,
}  # fmt: skip
