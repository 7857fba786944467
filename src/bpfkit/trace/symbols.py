"""Addresses to names: kernel symbols (``/proc/kallsyms``), user symbols (ELF), users."""

from __future__ import annotations

import bisect
import functools
import os


@functools.cache
def _kallsyms() -> tuple[list[int], list[str]]:
    addrs: list[tuple[int, str]] = []
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    a = int(parts[0], 16)
                    if a:
                        addrs.append((a, parts[2]))
    except OSError:
        pass
    addrs.sort()
    return [a for a, _ in addrs], [n for _, n in addrs]


def kernel_symbol_address(name: str) -> int | None:
    """The address of kernel symbol ``name`` (``None``: not found or hidden)."""
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == name:
                    a = int(parts[0], 16)
                    return a or None
    except OSError:
        return None
    return None


def elf_symbol_address(path: str, name: str) -> int | None:
    """The value of symbol ``name`` in ELF file ``path``."""
    try:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        from ..kernel.uprobe import find_binary

        with open(find_binary(path), "rb") as f:
            elf = ELFFile(f)
            for sec in elf.iter_sections():
                if isinstance(sec, SymbolTableSection):
                    for s in sec.get_symbol_by_name(name) or []:
                        if s["st_value"]:
                            return int(s["st_value"])
    except Exception:  # noqa: BLE001 - any unreadable file means "not found"
        return None
    return None


class Symbols:
    """Caches for resolving addresses while printing."""

    def __init__(self) -> None:
        self._users: dict[int, str] | None = None

    def ksym(self, addr: int, offset: bool = False) -> str:
        addrs, names = _kallsyms()
        i = bisect.bisect_right(addrs, addr) - 1
        if i < 0 or not addrs:
            return hex(addr)
        return f"{names[i]}+{addr - addrs[i]}" if offset else names[i]

    def usym(self, addr: int, pid: int = 0, offset: bool = False) -> str:
        return hex(addr)

    def username(self, uid: int) -> str:
        if self._users is None:
            self._users = {}
            try:
                with open("/etc/passwd") as f:
                    for line in f:
                        p = line.split(":")
                        if len(p) > 2 and p[2].isdigit():
                            self._users.setdefault(int(p[2]), p[0])
            except OSError:
                pass
        return self._users.get(uid, "")

    def cgroup_path(self, cgid: int) -> str:
        root = "/sys/fs/cgroup"
        for d, _, _ in os.walk(root):
            try:
                if os.stat(d).st_ino == cgid:
                    return d[len(root) :] or "/"
            except OSError:
                continue
        return ""
