"""Attach ``kprobe``/``kretprobe`` (and ``ksyscall``, ``kprobe.multi``) programs.

A kprobe is a perf event of the ``kprobe`` PMU (``/sys/bus/event_source/devices/kprobe``)
naming a kernel symbol and offset; kernels without that PMU get a legacy probe event
written to ``tracefs/kprobe_events``. ``kprobe.multi`` attaches one program to many
functions at once with a ``BPF_LINK_TYPE_KPROBE_MULTI`` link (needs ``CONFIG_FPROBE``).
A kernel built without ``CONFIG_KPROBES`` has neither; attaching then raises
:class:`~bpfkit.errors.NotSupported` saying so.
"""

from __future__ import annotations

import ctypes
import fnmatch
import functools
import itertools
import os
from collections.abc import Sequence
from typing import Any

from ..errors import NotSupported
from . import sys as bsys
from .link import Link
from .perf_event import PerfEventAttr, attach_perf_event, perf_event_open
from .tracefs import add_probe_event, remove_probe_event, tracefs_root

__all__ = [
    "attach_kprobe",
    "attach_kprobe_multi",
    "attach_ksyscall",
    "kprobe_pmu_type",
    "kprobes_supported",
    "syscall_prefix",
]

_PMU_DIR = "/sys/bus/event_source/devices/{}"
_seq = itertools.count()


def _pmu_type(name: str) -> int | None:
    try:
        with open(os.path.join(_PMU_DIR.format(name), "type")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _retprobe_bit(name: str) -> int:
    try:
        with open(os.path.join(_PMU_DIR.format(name), "format", "retprobe")) as f:
            text = f.read().strip()  # "config:0"
        return 1 << int(text.split(":", 1)[1])
    except (OSError, ValueError, IndexError):
        return 1


def kprobe_pmu_type() -> int | None:
    """The perf type of the kprobe PMU, or ``None`` when the kernel has none."""
    return _pmu_type("kprobe")


@functools.cache
def kprobes_supported() -> tuple[bool, str]:
    """Whether this kernel can attach kprobes, and why not."""
    if kprobe_pmu_type() is not None:
        return True, ""
    try:
        if os.path.exists(os.path.join(tracefs_root(), "kprobe_events")):
            return True, ""
    except NotSupported:
        pass
    return False, "kernel built without CONFIG_KPROBES (no kprobe PMU and no kprobe_events)"


def _prog_fd(program: Any) -> int:
    return program.fd if hasattr(program, "fd") else bsys.fdnum(program)


def attach_kprobe(
    program: Any,
    symbol: str,
    offset: int = 0,
    *,
    retprobe: bool = False,
    cookie: int = 0,
    legacy: bool = False,
) -> Link:
    """Run ``program`` when kernel function ``symbol`` (+``offset``) is entered (or returns)."""
    if "+" in symbol and not offset:
        symbol, _, off = symbol.partition("+")
        offset = int(off, 0)
    kind = "kretprobe" if retprobe else "kprobe"
    pmu = None if legacy else kprobe_pmu_type()
    if pmu is not None:
        name = ctypes.create_string_buffer(symbol.encode())
        attr = PerfEventAttr(type=pmu, config=_retprobe_bit("kprobe") if retprobe else 0)
        attr.config1 = ctypes.addressof(name)
        attr.config2 = offset
        attr.sample_period = 1
        attr.wakeup_events = 1
        ev = perf_event_open(attr, -1, 0)
        return attach_perf_event(program, ev, kind=kind, target=symbol, cookie=cookie)
    ok, why = kprobes_supported()
    if not ok:
        raise NotSupported(why)
    event = f"{symbol.replace('.', '_')}_{os.getpid()}_{next(_seq)}"
    definition = f"{symbol}+{offset}" if offset else symbol
    tp = add_probe_event("kprobe", event, definition, retprobe)
    try:
        attr = PerfEventAttr(type=2, config=tp, sample_period=1, wakeup_events=1)
        ev = perf_event_open(attr, -1, 0)
    except BaseException:
        remove_probe_event("kprobe", event)
        raise
    return attach_perf_event(
        program,
        ev,
        kind=kind,
        target=symbol,
        cookie=cookie,
        cleanup=[lambda: remove_probe_event("kprobe", event)],
    )


@functools.cache
def syscall_prefix() -> str:
    """The prefix of syscall entry points in this kernel (``__x64_sys_``, ``__arm64_sys_``...)."""
    arch = {
        "x86_64": "x64",
        "aarch64": "arm64",
        "s390x": "s390x",
        "riscv64": "riscv",
        "ppc64le": "powerpc",
        "loongarch64": "loongarch",
    }.get(os.uname().machine, "")
    want = f"__{arch}_sys_bpf"
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                if line.rstrip().endswith(" " + want):
                    return f"__{arch}_sys_"
    except OSError:
        pass
    return "sys_"


def attach_ksyscall(program: Any, syscall: str, *, retprobe: bool = False) -> Link:
    """A kprobe on the entry point of system call ``syscall`` (``openat``, ``execve``...)."""
    return attach_kprobe(program, syscall_prefix() + syscall, retprobe=retprobe)


def _kallsyms() -> list[str]:
    out = []
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1].lower() == "t":
                out.append(parts[2])
    return out


def attach_kprobe_multi(
    program: Any,
    symbols: Sequence[str] | str,
    *,
    retprobe: bool = False,
    cookies: Sequence[int] | None = None,
) -> Link:
    """One ``kprobe.multi`` link for many functions (a list, or a glob like ``"tcp_*"``)."""
    if isinstance(symbols, str):
        if any(c in symbols for c in "*?["):
            syms = sorted({s for s in _kallsyms() if fnmatch.fnmatchcase(s, symbols)})
            if not syms:
                raise NotSupported(f"no kernel function matches {symbols!r}")
        else:
            syms = [symbols]
    else:
        syms = list(symbols)
    fd = bsys.link_create(
        _prog_fd(program),
        0,
        bsys.ATTACH_TRACE_KPROBE_MULTI,
        kprobe_syms=syms,
        kprobe_cookies=cookies,
        kprobe_flags=bsys.F_KPROBE_MULTI_RETURN if retprobe else 0,
    )
    kind = "kretprobe.multi" if retprobe else "kprobe.multi"
    return Link(fd, kind, target=syms, program=program)
