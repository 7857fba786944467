"""Addresses to names, as bpftrace 0.17 names them (through BCC's symbol caches).

Kernel addresses: ``/proc/kallsyms`` without its data symbols, sorted by address; an
address is named after the closest symbol at or below it. User addresses: the
executable mappings of the process (``/proc/PID/maps``), then ``[vdso]`` and a JIT's
``/tmp/perf-PID.map``; a file's symbols are those of its separate debug file
(``/usr/lib/debug/.build-id``, then its ``.gnu_debuglink``) followed by its own
``.symtab``/``.dynsym`` -- every named symbol with a value, of any type -- sorted by
address; an address is named after a symbol that covers it (start + size).

Several symbols often share an address (``_text``/``_stext``, ``getenv``/``__GI_getenv``).
BCC sorts with ``std::sort`` on the address alone and names the address after the last
one of the run: :mod:`bpfkit.trace.cxxsort` reproduces where that sort leaves them, so
the same alias is chosen.
"""

from __future__ import annotations

import bisect
import functools
import os
from typing import Any

#: kallsyms types BCC skips ("data symbols")
_KALLSYMS_DATA = frozenset("bBdDrR")


def hex_addr(addr: int) -> str:
    """An address as C++ streams print a pointer (bpftrace's unresolved symbols): ``0``
    for NULL, else ``0x...``."""
    return hex(addr) if addr else "0"


class SymTable:
    """Symbols ``(start, size, name)`` in the order BCC collected them, sorted as BCC does."""

    def __init__(self, syms: list[tuple[int, int, str]]) -> None:
        from .cxxsort import sort_order

        order = sort_order([s[0] for s in syms])
        self.starts = [syms[i][0] for i in order]
        self.sizes = [syms[i][1] for i in order]
        self.names = [syms[i][2] for i in order]

    def find(self, offset: int) -> tuple[str, int] | None:
        """(name, offset into it) of the symbol covering ``offset`` (BCC's ``find_addr``:
        from the last symbol at or below it backwards, nested symbols allowed)."""
        i = bisect.bisect_right(self.starts, offset) - 1
        if i < 0:
            return None
        limit = self.starts[i]
        while offset >= self.starts[i]:
            end = self.starts[i] + self.sizes[i]
            if offset < end:
                return self.names[i], offset - self.starts[i]
            if limit > end or i == 0:
                break
            i -= 1
        return None

    def nearest(self, addr: int) -> tuple[str, int] | None:
        """(name, offset) of the last symbol at or below ``addr`` (kernel: no sizes)."""
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        return self.names[i], addr - self.starts[i]


# ---- the kernel ---------------------------------------------------------------------------


@functools.cache
def _kallsyms_raw() -> tuple[list[tuple[int, int, str]], dict[int, int]]:
    syms: list[tuple[int, int, str]] = []
    count: dict[int, int] = {}
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] in _KALLSYMS_DATA:
                    continue
                try:
                    a = int(parts[0], 16)
                except ValueError:
                    continue
                if a == 0 or a < 0xFFFFFFFF00000000 or a == (1 << 64) - 1:
                    continue
                syms.append((a, 0, parts[2]))
                count[a] = count.get(a, 0) + 1
    except OSError:
        pass
    return syms, count


@functools.cache
def _kallsyms_simple() -> tuple[list[int], list[str]]:
    """Addresses sorted; for an address with one symbol, that one is the answer."""
    syms, _ = _kallsyms_raw()
    pairs = sorted((a, n) for a, _, n in syms)
    return [a for a, _ in pairs], [n for _, n in pairs]


@functools.cache
def _kallsyms_table() -> SymTable:
    return SymTable(_kallsyms_raw()[0])


def resolve_ksym(addr: int) -> tuple[str, int] | None:
    """(name, offset) of a kernel address as BCC names it."""
    addrs, names = _kallsyms_simple()
    i = bisect.bisect_right(addrs, addr) - 1
    if i < 0:
        return None
    start = addrs[i]
    if _kallsyms_raw()[1].get(start, 1) > 1:  # aliases: the one std::sort leaves last
        return _kallsyms_table().nearest(addr)
    return names[i], addr - start


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


# ---- ELF files ----------------------------------------------------------------------------

_FUNC_TYPES = ("STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS")  # pyelftools calls IFUNC STT_LOOS


def _debug_files(path: str, elf: Any) -> list[str]:
    """The separate debug file of ``path`` as BCC looks for it: by build id, then by
    ``.gnu_debuglink`` (next to the file, in ``.debug/``, under ``/usr/lib/debug``)."""
    for sec in elf.iter_sections():
        if sec.name != ".note.gnu.build-id":
            continue
        for note in sec.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                bid = note["n_desc"]
                dbg = f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"
                if os.path.isfile(dbg):
                    return [dbg]
    link = elf.get_section_by_name(".gnu_debuglink")
    if link is not None:
        name = link.data().split(b"\0", 1)[0].decode(errors="replace")
        d = os.path.dirname(os.path.realpath(path))
        for cand in (os.path.join(d, name), os.path.join(d, ".debug", name),
                     "/usr/lib/debug" + os.path.join(d, name)):  # fmt: skip
            if name and os.path.isfile(cand) and os.path.realpath(cand) != os.path.realpath(path):
                return [cand]
    return []


def _elf_symbols(file: str, types: tuple[str, ...] | None) -> list[tuple[int, int, str]]:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out = []
    with open(file, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for sym in sec.iter_symbols():
                name, value = sym.name, sym["st_value"]
                if not name or not value:
                    continue
                if types is not None and sym["st_info"]["type"] not in types:
                    continue
                out.append((int(value), int(sym["st_size"]), name))
    return out


class ElfSymbols:
    """The symbols of one ELF file, collected, sorted and looked up as BCC does."""

    def __init__(self, path: str, types: tuple[str, ...] | None = None) -> None:
        self.path = path
        self.type = "UNKNOWN"
        self.text_delta = 0  # .text's address minus its file offset (BCC's SO offsets)
        self.segments: list[tuple[int, int, int]] = []  # (file offset, size, vaddr)
        syms: list[tuple[int, int, str]] = []
        try:
            from elftools.common.exceptions import ELFError
            from elftools.elf.elffile import ELFFile

            with open(path, "rb") as f:
                elf = ELFFile(f)
                self.type = {"ET_EXEC": "EXEC", "ET_DYN": "SO"}.get(elf["e_type"], "UNKNOWN")
                text = elf.get_section_by_name(".text")
                if text is not None:
                    self.text_delta = text["sh_addr"] - text["sh_offset"]
                for seg in elf.iter_segments():
                    if seg["p_type"] == "PT_LOAD":
                        self.segments.append((seg["p_offset"], seg["p_filesz"], seg["p_vaddr"]))
                debug = _debug_files(path, elf)
            for file in [*debug, path]:
                try:
                    syms += _elf_symbols(file, types)
                except (OSError, ELFError, ValueError):
                    continue
        except (OSError, ELFError, ValueError, AttributeError):
            pass
        self.table = SymTable(syms)
        self._by_name: dict[str, int] | None = None
        self._raw = syms

    def lookup(self, offset: int) -> tuple[str, int] | None:
        """(symbol, offset into it) of an address in the file's link-time address space."""
        return self.table.find(offset)

    def address(self, name: str) -> int | None:
        """The value of the first symbol called ``name`` (BCC's search order)."""
        if self._by_name is None:
            self._by_name = {}
            for value, _, n in self._raw:
                self._by_name.setdefault(n, value)
        return self._by_name.get(name)

    def file_offset(self, vaddr: int) -> int | None:
        """The file offset of a link-time address (through the loadable segments)."""
        for off, size, va in self.segments:
            if va <= vaddr < va + max(size, 1):
                return vaddr - va + off
        return None


@functools.lru_cache(maxsize=64)
def elf_symbols(path: str) -> ElfSymbols:
    """Cached :class:`ElfSymbols` of a file (every symbol type: usym, ustack)."""
    return ElfSymbols(path)


@functools.lru_cache(maxsize=64)
def elf_functions(path: str) -> ElfSymbols:
    """Cached function symbols of a file (uprobe targets and ``-l``)."""
    return ElfSymbols(path, _FUNC_TYPES)


def elf_symbol_address(path: str, name: str) -> int | None:
    """The value of symbol ``name`` in ELF file ``path`` (or its debug file)."""
    try:
        from ..kernel.uprobe import find_binary

        return elf_symbols(find_binary(path)).address(name)
    except Exception:  # noqa: BLE001 - any unreadable file means "not found"
        return None


def function_offset(path: str, name: str) -> int | None:
    """The file offset of function ``name`` of ``path`` (where a uprobe on it goes)."""
    syms = elf_functions(path)
    value = syms.address(name)
    return None if value is None else syms.file_offset(value)


def function_names(path: str) -> list[str]:
    """The function names of an ELF file and its debug file, sorted and unique, as
    bpftrace lists and matches them (without the compiler's ``.part.N`` pieces)."""
    return sorted({n for _, _, n in elf_functions(path)._raw if ".part." not in n})


# ---- processes ----------------------------------------------------------------------------


def process_maps(pid: int, executable: bool = False) -> list[tuple[int, int, int, str]]:
    """The file-backed mappings of process ``pid``: (start, end, file offset, path);
    ``executable``: only those mapped executable, plus ``[vdso]`` (BCC's modules)."""
    out = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6:
                    continue
                path = parts[5].strip()
                if executable and (len(parts[1]) < 3 or parts[1][2] != "x"):
                    continue
                if not path.startswith("/") and not (executable and path == "[vdso]"):
                    continue
                if path.endswith(" (deleted)"):
                    path = path[: -len(" (deleted)")]
                lo, _, hi = parts[0].partition("-")
                out.append((int(lo, 16), int(hi, 16), int(parts[2], 16), path))
    except (OSError, ValueError):
        return []
    return out


@functools.cache
def _vdso_symbols() -> SymTable | None:
    """The vDSO's symbols (the same image in every process: read from this one)."""
    try:
        import io

        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        for lo, hi, _, path in process_maps(os.getpid(), executable=True):
            if path == "[vdso]":
                with open("/proc/self/mem", "rb") as m:
                    m.seek(lo)
                    image = m.read(hi - lo)
                break
        else:
            return None
        elf = ELFFile(io.BytesIO(image))
        syms = []
        for sec in elf.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym.name and sym["st_value"]:
                        syms.append((int(sym["st_value"]), int(sym["st_size"]), sym.name))
        return SymTable(syms)
    except Exception:  # noqa: BLE001 - no vDSO symbols then
        return None


def _perf_map(pid: int) -> SymTable | None:
    """A JIT's ``/tmp/perf-PID.map`` (``START SIZE name`` in hex), if it has one."""
    try:
        syms = []
        with open(f"/tmp/perf-{pid}.map") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) == 3:
                    syms.append((int(parts[0], 16), int(parts[1], 16), parts[2]))
        return SymTable(syms)
    except (OSError, ValueError):
        return None


class Symbols:
    """Caches for resolving addresses while printing."""

    def __init__(self, known: dict[str, Any] | None = None) -> None:
        self._users: dict[int, str] | None = None
        self._maps: dict[int, list[tuple[int, int, int, str]]] = {}
        #: names given instead of looking them up (a recorded stream's ``symbols``)
        self.known = known if isinstance(known, dict) else {}
        #: when a dict (``--record``): every name looked up, for the stream's header
        self.log: dict[str, dict[str, Any]] | None = None

    def _note(self, kind: str, key: str, value: Any) -> None:
        if self.log is not None:
            self.log.setdefault(kind, {})[key] = list(value) if value is not None else None

    def _given(self, kind: str, key: str) -> tuple[bool, Any]:
        table = self.known.get(kind)
        if isinstance(table, dict) and key in table:
            v = table[key]
            ok = v is None or (isinstance(v, list) and len(v) >= 2 and isinstance(v[0], str)
                               and isinstance(v[1], int))  # fmt: skip
            if ok:
                return True, tuple(v) if v is not None else None
        return False, None

    def remember(self, pid: int) -> None:
        """Snapshot a live process's mappings (its addresses resolve after it exits)."""
        m = process_maps(pid, executable=True)
        if m:
            self._maps[pid] = m

    def _modules(self, pid: int, fresh: bool) -> list[tuple[int, int, int, str]]:
        if fresh or pid not in self._maps:
            m = process_maps(pid, executable=True)
            if m:
                self._maps[pid] = m
        return self._maps.get(pid, [])

    def usym_parts(self, addr: int, pid: int) -> tuple[str, int, str] | None:
        """(symbol, offset, module) of a user address of process ``pid`` (BCC's lookup:
        the first module holding it; if it has no symbol there, only the perf map)."""
        key = f"{pid}:{addr:#x}"
        given, v = self._given("user", key)
        if given:
            return v if v is None or len(v) == 3 else (v[0], v[1], "")
        found = self._usym_parts(addr, pid)
        self._note("user", key, found)
        return found

    def _usym_parts(self, addr: int, pid: int) -> tuple[str, int, str] | None:
        if not pid:
            return None
        for fresh in (False, True):
            mods = self._modules(pid, fresh)
            hit = [m for m in mods if m[0] <= addr < m[1]]
            if hit or fresh:
                break
        for lo, _hi, off, path in hit[:1]:
            if path == "[vdso]":
                table = _vdso_symbols()
                found = table.find(addr - lo + off) if table is not None else None
            else:
                syms = elf_symbols(path)
                if syms.type == "SO":
                    found = syms.lookup(addr - lo + off + syms.text_delta)
                elif syms.type == "EXEC":
                    found = syms.lookup(addr)
                else:
                    found = None
            if found is not None:
                return found[0], found[1], path
        perf = _perf_map(pid)
        found = perf.find(addr) if perf is not None else None
        if found is not None:
            return found[0], found[1], f"/tmp/perf-{pid}.map"
        return None

    def ksym(self, addr: int, offset: bool = False) -> str:
        """A kernel address as bpftrace prints it: ``name`` (``name+off``), else hex."""
        key = f"{addr:#x}"
        given, hit = self._given("kernel", key)
        if not given:
            hit = resolve_ksym(addr)
            self._note("kernel", key, hit)
        if hit is None:
            return hex_addr(addr)
        return f"{hit[0]}+{hit[1]}" if offset else hit[0]

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

    def cgroup_path(self, cgid: int, pattern: str = "*") -> str:
        """``cgroup_path()`` as bpftrace prints it: ``name:path`` in every cgroup hierarchy
        mounted (``unified`` for cgroup v2, a v1 one by its mount directory's name),
        unified first, then by name, joined by commas; ``pattern`` filters the names."""
        import fnmatch

        out = []
        for name, root in cgroup_roots():
            if fnmatch.fnmatchcase(name, pattern):
                out.append((name, _cgroup_path_in(cgid, root)))
        out.sort(key=lambda p: (p[0] != "unified", p[0]))
        return ",".join(f"{n}:{p}" for n, p in out)


def cgroup_roots() -> list[tuple[str, str]]:
    """Mounted cgroup hierarchies from ``/proc/mounts``: (name, mount point)."""
    out = []
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if (
                    len(parts) >= 3
                    and parts[0] in ("cgroup", "cgroup2")
                    and os.path.isdir(parts[1])
                ):
                    name = "unified" if parts[0] == "cgroup2" else os.path.basename(parts[1])
                    out.append((name, parts[1]))
    except OSError:
        pass
    return out


def _cgroup_path_in(cgid: int, root: str) -> str:
    """The directory of ``root`` whose inode is ``cgid`` ("/" for the root; "" if none)."""
    try:
        if os.stat(root).st_ino == cgid:
            return "/"
    except OSError:
        return ""
    for d, subdirs, _ in os.walk(root):
        for sd in subdirs:
            path = os.path.join(d, sd)
            try:
                if os.stat(path).st_ino == cgid:
                    return path[len(root) :]
            except OSError:
                continue
    return ""


def resolve_cgroupid(path: str) -> int:
    """A cgroup's id as ``cgroupid()`` takes it: its file handle (``name_to_handle_at``;
    ``OSError`` when the path has none of 8 bytes, e.g. not in a cgroup file system)."""
    import ctypes
    import errno as _errno

    class _Handle(ctypes.Structure):
        _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int),
                    ("id", ctypes.c_uint64)]  # fmt: skip

    libc = ctypes.CDLL(None, use_errno=True)
    h = _Handle(8, 0, 0)
    mount_id = ctypes.c_int(0)
    r = libc.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(h), ctypes.byref(mount_id), 0)
    if r != 0:
        err = ctypes.get_errno() or _errno.EINVAL
        raise OSError(err, os.strerror(err), path)
    return int(h.id)
