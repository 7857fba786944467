"""Attach ``uprobe``/``uretprobe`` programs to a function of an executable or library.

A uprobe is a perf event of the ``uprobe`` PMU naming a file and a *file offset*. A
symbol is turned into that offset from the ELF: its address (``.symtab``, else
``.dynsym``) minus the virtual address of the loadable segment containing it, plus that
segment's file offset. Kernels without the PMU get a legacy ``uprobe_events`` entry.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
from typing import Any

from ..errors import BpfError, NotSupported
from .link import Link
from .perf_event import PerfEventAttr, attach_perf_event, perf_event_open
from .tracefs import add_probe_event, remove_probe_event

__all__ = ["attach_uprobe", "symbol_offset", "uprobe_pmu_type", "find_binary"]

_PMU_DIR = "/sys/bus/event_source/devices/uprobe"
_seq = itertools.count()
_STT_FUNC, _STT_GNU_IFUNC = 2, 10


def uprobe_pmu_type() -> int | None:
    """The perf type of the uprobe PMU, or ``None``."""
    try:
        with open(os.path.join(_PMU_DIR, "type")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _retprobe_bit() -> int:
    try:
        with open(os.path.join(_PMU_DIR, "format", "retprobe")) as f:
            return 1 << int(f.read().strip().split(":", 1)[1])
    except (OSError, ValueError, IndexError):
        return 1


_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def _find_library(name: str) -> str | None:
    """A shared library by file name (``libc.so.6``) or stem (``c``, ``libc``)."""
    wanted = (
        {name, f"lib{name}.so", f"{name}.so"}
        if not name.startswith("lib")
        else {name, f"{name}.so"}
    )
    dirs = list(_LIB_DIRS)
    for d in _LIB_DIRS:  # multiarch directories (/usr/lib/x86_64-linux-gnu)
        try:
            dirs += [os.path.join(d, e) for e in os.listdir(d) if e.endswith("-linux-gnu")]
        except OSError:
            continue
    for d in dirs:
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in sorted(entries):
            base = e.split(".so", 1)[0] + ".so" if ".so" in e else e
            if (e in wanted or base in wanted) and _is_elf(os.path.join(d, e)):
                return os.path.join(d, e)
    return None


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_binary(name: str) -> str:
    """An absolute path for ``name``: as given, on ``PATH``, or a shared library by name."""
    if os.sep in name:
        path = os.path.abspath(name)
    else:
        found = shutil.which(name) or _find_library(name)
        if found is None:
            raise BpfError(f"{name!r} is neither on PATH nor a shared library in {_LIB_DIRS}")
        path = found
    if not os.path.isfile(path):
        raise BpfError(f"no such file {path!r}")
    return os.path.realpath(path)


def symbol_offset(path: str, symbol: str) -> int:
    """The file offset of function ``symbol`` in ELF file ``path``."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            addr = None
            for secname in (".symtab", ".dynsym"):
                sec = elf.get_section_by_name(secname)
                if sec is None:
                    continue
                for sym in sec.iter_symbols():
                    name = sym.name.split("@", 1)[0]
                    if name != symbol or not sym["st_value"]:
                        continue
                    if sym["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC"):
                        continue
                    addr = sym["st_value"]
                    break
                if addr is not None:
                    break
            if addr is None:
                raise BpfError(f"no function {symbol!r} in {path}")
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD":
                    continue
                lo = seg["p_vaddr"]
                if lo <= addr < lo + seg["p_memsz"]:
                    return addr - lo + seg["p_offset"]
    except ELFError as e:
        raise BpfError(f"{path}: not a valid ELF file ({e})") from None
    raise BpfError(f"function {symbol!r} of {path} is not in a loadable segment")


def attach_uprobe(
    program: Any,
    binary: str,
    symbol: str | None = None,
    offset: int = 0,
    *,
    retprobe: bool = False,
    pid: int = -1,
    ref_ctr_offset: int = 0,
    cookie: int = 0,
    legacy: bool = False,
) -> Link:
    """Run ``program`` when ``symbol`` (+``offset``) of ``binary`` runs (or returns).

    ``pid`` limits the probe to one process (``-1``: every process running the file).
    """
    path = find_binary(binary)
    if symbol and "+" in symbol:
        symbol, _, extra = symbol.partition("+")
        offset += int(extra, 0)
    off = (symbol_offset(path, symbol) if symbol else 0) + offset
    kind = "uretprobe" if retprobe else "uprobe"
    target = f"{path}:{symbol or hex(off)}"
    pmu = None if legacy else uprobe_pmu_type()
    cpu = 0 if pid == -1 else -1
    if pmu is not None:
        pbuf = ctypes.create_string_buffer(os.fsencode(path))
        attr = PerfEventAttr(type=pmu, config=_retprobe_bit() if retprobe else 0)
        attr.config |= ref_ctr_offset << 32
        attr.config1 = ctypes.addressof(pbuf)
        attr.config2 = off
        attr.sample_period = 1
        attr.wakeup_events = 1
        ev = perf_event_open(attr, pid, cpu)
        return attach_perf_event(program, ev, kind=kind, target=target, cookie=cookie)
    event = (
        f"{os.path.basename(path).replace('.', '_').replace('-', '_')}_{os.getpid()}_{next(_seq)}"
    )
    try:
        tp = add_probe_event("uprobe", event, f"{path}:{off:#x}", retprobe)
    except NotSupported:
        raise NotSupported("kernel built without CONFIG_UPROBE_EVENTS (no uprobe PMU)") from None
    try:
        ev = perf_event_open(
            PerfEventAttr(type=2, config=tp, sample_period=1, wakeup_events=1), pid, cpu
        )
    except BaseException:
        remove_probe_event("uprobe", event)
        raise
    return attach_perf_event(
        program,
        ev,
        kind=kind,
        target=target,
        cookie=cookie,
        cleanup=[lambda: remove_probe_event("uprobe", event)],
    )
