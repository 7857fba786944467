"""A per-user cache of compiled filters: expression → program, IR → machine code.

``bpfkit filter run`` is measured against tcpdump as a whole process, so work that a
repeated run would redo is kept in bpfkit's cache directory (:mod:`bpfkit._cache`:
``$BPFKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/bpfkit``, else ``~/.cache/bpfkit``):

* the classic program of an expression, keyed by the expression, link type, snapshot
  length and a fingerprint of the compiler's source files (so an edited compiler never
  sees a stale program);
* the native code of a scan function, keyed by its LLVM IR: position-independent code
  for the baseline CPU of the architecture, with no relocations, that is copied into an
  executable mapping and called — without loading LLVM at all.

A missing, unwritable or damaged cache only costs the time to rebuild the entry.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import struct
from collections.abc import Sequence

from .._cache import atomic_write, private_dir
from .capfile import LINKTYPE_NAMES

try:  # the built-in module: importing hashlib loads OpenSSL, a few ms of start-up
    from _sha256 import sha256
except ImportError:  # pragma: no cover - other Pythons
    from hashlib import sha256

VERSION = "1"


# -- programs ---------------------------------------------------------------------------

_fingerprint: str | None = None


def compiler_fingerprint() -> str:
    """Changes whenever a source file of the filter compiler changes."""
    global _fingerprint
    if _fingerprint is None:
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "filter")
        h = sha256(VERSION.encode())
        for name in sorted(os.listdir(here)):
            if name.endswith(".py"):
                st = os.stat(os.path.join(here, name))
                h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
        _fingerprint = h.hexdigest()[:16]
    return _fingerprint


def _program_path(expr: str, linktype: str, snaplen: int) -> str | None:
    d = private_dir("filters")
    if d is None:
        return None
    key = sha256(f"{compiler_fingerprint()}\0{linktype}\0{snaplen}\0{expr}".encode())
    return os.path.join(d, key.hexdigest()[:32] + ".json")


def cached_program(expr: str, linktype: str | int, snaplen: int = 262144):
    """The compiled program of ``expr`` (list of SockFilter), compiled and stored on a miss;
    a compile error is raised as usual (and not stored)."""
    from ..classic.insn import SockFilter

    if isinstance(linktype, int):
        name = LINKTYPE_NAMES.get(linktype)
        if name is None:  # let the compiler say why
            from .filter import compile_filter

            return compile_filter(expr, linktype, snaplen=snaplen)
        linktype = name
    path = _program_path(expr, linktype, snaplen)
    if path is not None:
        try:
            with open(path, "rb") as f:
                obj = json.loads(f.read())
            if obj.get("expr") == expr:
                return [SockFilter(*i) for i in obj["insns"]]
        except (OSError, ValueError, TypeError, KeyError):
            pass
    from .filter import compile_filter

    prog = compile_filter(expr, linktype, snaplen=snaplen)
    if path is not None:
        atomic_write(path, json.dumps({"expr": expr, "insns": [list(i) for i in prog]}).encode())
    return prog


# -- machine code -----------------------------------------------------------------------

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class LoadedCode:
    """Machine code in an executable mapping; ``address(name)`` of an exported function."""

    def __init__(self, text: bytes, symbols: dict[str, int]):
        size = max(len(text), 1)
        self._map = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._map.write(text)
        self._anchor = ctypes.c_char.from_buffer(self._map)
        self.base = ctypes.addressof(self._anchor)
        page = mmap.PAGESIZE
        start = self.base & ~(page - 1)
        length = (self.base + size - start + page - 1) & ~(page - 1)
        if _libc.mprotect(start, length, PROT_READ | PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect(PROT_EXEC) refused")
        self.symbols = symbols

    def address(self, name: str) -> int:
        return self.base + self.symbols[name]


def _elf_text(obj: bytes, names: Sequence[str]) -> tuple[bytes, dict[str, int]] | None:
    """The .text bytes and the offsets of ``names`` in a relocatable ELF64 object, or None
    when the code needs relocating (calls, constant pools) and so cannot be copied."""
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        return None
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", obj, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    shstr = secs[shstrndx]

    def name_at(tab_off: int, off: int) -> str:
        end = obj.index(b"\0", tab_off + off)
        return obj[tab_off + off : end].decode()

    by_name = {name_at(shstr[4], s[0]): (i, s) for i, s in enumerate(secs)}
    text = by_name.get(".text")
    symtab = by_name.get(".symtab")
    if text is None or symtab is None:
        return None
    text_idx, ts = text
    for i, s in enumerate(secs):
        # any relocation against .text, or allocated data the code might reference
        if s[1] in (4, 9) and s[7] == text_idx and s[5]:
            return None
        sname = name_at(shstr[4], s[0])
        if s[2] & 2 and i != text_idx and s[5] and not sname.startswith(".note"):
            if sname not in (".eh_frame",):
                return None
    strtab = secs[symtab[1][6]]
    syms = {}
    for off in range(symtab[1][4], symtab[1][4] + symtab[1][5], 24):
        st_name, _info, _other, shndx, value, _size = struct.unpack_from("<IBBHQQ", obj, off)
        if shndx == text_idx and st_name:
            syms[name_at(strtab[4], st_name)] = value
    if not all(n in syms for n in names):
        return None
    return obj[ts[4] : ts[4] + ts[5]], {n: syms[n] for n in names}


def _code_path(ir: str) -> str | None:
    d = private_dir("code")
    if d is None:
        return None
    key = sha256(f"{VERSION}\0{os.uname().machine}\0{ir}".encode()).hexdigest()[:32]
    return os.path.join(d, key + ".bin")


def load_cached_code(ir: str, names: Sequence[str]) -> LoadedCode | None:
    """Previously compiled code for ``ir`` (None on a miss)."""
    path = _code_path(ir)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            blob = f.read()
        (hlen,) = struct.unpack_from("<I", blob, 0)
        symbols = json.loads(blob[4 : 4 + hlen])
        if not all(n in symbols for n in names):
            return None
        return LoadedCode(blob[4 + hlen :], symbols)
    except (OSError, ValueError, struct.error, KeyError):
        return None


def optimized_module(ir: str, tm):
    """``ir`` parsed for the process's triple and ``tm``'s data layout, verified, and run
    through LLVM's -O2 pipeline (the scan's code, cached or not, is built this way)."""
    import llvmlite.binding as llvm

    mod = llvm.parse_assembly(ir)
    mod.triple = llvm.get_process_triple()
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2))
    pb.getModulePassManager().run(mod, pb)
    return mod


def compile_and_cache(ir: str, names: Sequence[str]) -> LoadedCode | None:
    """Compile ``ir`` to relocation-free code with llvmlite and store it; None when the
    code cannot be cached (it needs relocations, or the object is not ELF64 x86/arm)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    cpu = "x86-64" if os.uname().machine in ("x86_64", "AMD64") else "generic"
    tm = target.create_target_machine(cpu=cpu, opt=2, reloc="pic", codemodel="small")
    found = _elf_text(tm.emit_object(optimized_module(ir, tm)), names)
    if found is None:
        return None
    text, symbols = found
    path = _code_path(ir)
    if path is not None:
        header = json.dumps(symbols).encode()
        atomic_write(path, struct.pack("<I", len(header)) + header + text)
    return LoadedCode(text, symbols)
