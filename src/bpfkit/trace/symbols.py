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


def process_maps(pid: int) -> list[tuple[int, int, int, str]]:
    """The file-backed mappings of process ``pid``: (start, end, file offset, path)."""
    out = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6 or not parts[5].startswith("/"):
                    continue
                lo, _, hi = parts[0].partition("-")
                path = parts[5].strip()
                if path.endswith(" (deleted)"):
                    path = path[: -len(" (deleted)")]
                out.append((int(lo, 16), int(hi, 16), int(parts[2], 16), path))
    except (OSError, ValueError):
        return []
    return out


class ElfSymbols:
    """The function and object symbols of one ELF file (and of its separate debug file).

    Symbols sharing an address are named once: the global name before a weak one before a
    local one, then the one with fewer leading underscores (``open64`` over ``__GI___open``).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.segments: list[tuple[int, int, int]] = []  # (file offset, size, vaddr)
        self.starts: list[int] = []
        self.entries: list[tuple[int, int, str]] = []  # (start, size, name)
        best: dict[int, tuple[tuple, int, str]] = {}
        seen = 0
        for file in self._files(path):
            try:
                from elftools.common.exceptions import ELFError
                from elftools.elf.elffile import ELFFile
                from elftools.elf.sections import SymbolTableSection

                with open(file, "rb") as f:
                    elf = ELFFile(f)
                    if file == path:
                        for seg in elf.iter_segments():
                            if seg["p_type"] == "PT_LOAD":
                                self.segments.append(
                                    (seg["p_offset"], seg["p_filesz"], seg["p_vaddr"])
                                )
                    for sec in elf.iter_sections():
                        if not isinstance(sec, SymbolTableSection):
                            continue
                        for sym in sec.iter_symbols():
                            info = sym["st_info"]
                            if info["type"] not in ("STT_FUNC", "STT_OBJECT", "STT_GNU_IFUNC"):
                                continue
                            addr, name = sym["st_value"], sym.name.split("@", 1)[0]
                            if not addr or not name:
                                continue
                            bind = {"STB_GLOBAL": 0, "STB_WEAK": 1}.get(info["bind"], 2)
                            rank = (bind, len(name) - len(name.lstrip("_")), seen)
                            seen += 1
                            cur = best.get(addr)
                            if cur is None or rank < cur[0]:
                                best[addr] = (rank, sym["st_size"], name)
            except (OSError, ELFError, ValueError):
                continue
        for addr in sorted(best):
            _, size, name = best[addr]
            self.starts.append(addr)
            self.entries.append((addr, size, name))

    @staticmethod
    def _files(path: str) -> list[str]:
        """``path`` and, if installed, its debug file (``/usr/lib/debug/.build-id/``)."""
        files = [path]
        try:
            from elftools.elf.elffile import ELFFile

            with open(path, "rb") as f:
                elf = ELFFile(f)
                for sec in elf.iter_sections():
                    if sec.name != ".note.gnu.build-id":
                        continue
                    for note in sec.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            bid = note["n_desc"]
                            dbg = f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"
                            if os.path.exists(dbg):
                                files.append(dbg)
        except Exception:  # noqa: BLE001 - no debug file then
            pass
        return files

    def vaddr(self, file_offset: int) -> int | None:
        """The link-time address of a file offset (through the loadable segments)."""
        for off, size, va in self.segments:
            if off <= file_offset < off + max(size, 1):
                return file_offset - off + va
        return None

    def lookup(self, vaddr: int) -> tuple[str, int] | None:
        """(symbol, offset into it) of a link-time address."""
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i < 0:
            return None
        start, size, name = self.entries[i]
        if size and vaddr >= start + size:
            return None
        return name, vaddr - start


@functools.lru_cache(maxsize=64)
def elf_symbols(path: str) -> ElfSymbols:
    """Cached :class:`ElfSymbols` of a file."""
    return ElfSymbols(path)


class Symbols:
    """Caches for resolving addresses while printing."""

    def __init__(self) -> None:
        self._users: dict[int, str] | None = None
        self._maps: dict[int, list[tuple[int, int, int, str]]] = {}

    def remember(self, pid: int) -> None:
        """Snapshot a live process's mappings (its addresses resolve after it exits)."""
        m = process_maps(pid)
        if m:
            self._maps[pid] = m

    def _mapping(self, addr: int, pid: int) -> tuple[int, int, int, str] | None:
        for fresh in (False, True):
            if fresh or pid not in self._maps:
                m = process_maps(pid)
                if m:
                    self._maps[pid] = m
            for lo, hi, off, path in self._maps.get(pid, ()):
                if lo <= addr < hi:
                    return lo, hi, off, path
        return None

    def usym_parts(self, addr: int, pid: int) -> tuple[str, int, str] | None:
        """(symbol, offset, file) of a user address of process ``pid``."""
        m = self._mapping(addr, pid) if pid else None
        if m is None:
            return None
        lo, _hi, off, path = m
        syms = elf_symbols(path)
        va = syms.vaddr(addr - lo + off)
        hit = syms.lookup(va) if va is not None else None
        if hit is None:
            return None
        return hit[0], hit[1], path

    def ksym(self, addr: int, offset: bool = False) -> str:
        addrs, names = _kallsyms()
        i = bisect.bisect_right(addrs, addr) - 1
        if i < 0 or not addrs:
            return hex_addr(addr)
        return f"{names[i]}+{addr - addrs[i]}" if offset else names[i]

    def usym(self, addr: int, pid: int = 0, offset: bool = False, module: bool = False) -> str:
        """A user address as bpftrace prints it: ``name`` (``name+off``), else hex."""
        parts = self.usym_parts(addr, pid)
        if parts is None:
            return hex_addr(addr) + (" ([unknown])" if module else "")
        name, off, path = parts
        text = f"{name}+{off}" if offset else name
        return f"{text} ({path})" if module else text

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


def hex_addr(addr: int) -> str:
    """An address as C++ streams print a pointer (bpftrace's unresolved symbols): ``0``
    for NULL, else ``0x...``."""
    return hex(addr) if addr else "0"


def function_names(path: str) -> list[str]:
    """The defined function symbols of an ELF file (``.dynsym`` and ``.symtab``), sorted."""
    names: set[str] = set()
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        with open(path, "rb") as f:
            for sec in ELFFile(f).iter_sections():
                if isinstance(sec, SymbolTableSection):
                    for sym in sec.iter_symbols():
                        if (sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC")
                                and sym["st_value"] and sym.name):  # fmt: skip
                            names.add(sym.name.split("@", 1)[0])
    except (OSError, ELFError, ValueError):
        return []
    return sorted(names)
