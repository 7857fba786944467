"""``perf_event_open`` through ctypes, and attaching programs to perf events.

Perf events are how kprobes, uprobes and tracepoints reach BPF, and how a
``SEC("perf_event")`` program samples: :func:`attach_perf_event` connects a program to
an open event (a ``BPF_LINK_TYPE_PERF_EVENT`` link where the kernel has it, else
``PERF_EVENT_IOC_SET_BPF``); :func:`sample_cpu_clock` opens a sampling CPU-clock event on
every CPU and attaches a profiling program to each.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Iterable
from typing import Any

from ..errors import KernelError, NotSupported
from . import sys as bsys
from .link import Link, MultiLink

__all__ = [
    "PerfEventAttr",
    "perf_event_open",
    "attach_perf_event",
    "sample_cpu_clock",
    "online_cpus",
    "PERF_TYPE_HARDWARE",
    "PERF_TYPE_SOFTWARE",
    "PERF_TYPE_TRACEPOINT",
    "PERF_COUNT_SW_CPU_CLOCK",
    "PERF_COUNT_SW_BPF_OUTPUT",
    "PERF_SAMPLE_RAW",
    "ioctl_enable",
    "ioctl_disable",
    "ioctl_set_bpf",
]

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, PERF_TYPE_TRACEPOINT = 0, 1, 2
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_TASK_CLOCK = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3

# perf_event_attr flag bits.
ATTR_DISABLED = 1 << 0
ATTR_FREQ = 1 << 10
ATTR_WATERMARK = 1 << 14

# ioctls: _IO('$', n) and _IOW('$', 8, __u32).
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408

_NR = {
    "x86_64": 298,
    "aarch64": 241,
    "riscv64": 241,
    "loongarch64": 241,
    "s390x": 331,
    "ppc64le": 319,
    "ppc64": 319,
    "i686": 336,
    "i386": 336,
}


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` (``PERF_ATTR_SIZE_VER7``, 128 bytes)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),  # union with sample_freq
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),  # union with wakeup_watermark
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),  # bp_addr / kprobe_func / uprobe_path
        ("config2", ctypes.c_uint64),  # bp_len / kprobe_addr / probe_offset
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("_reserved2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("_reserved3", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def perf_event_open(
    attr: PerfEventAttr, pid: int = -1, cpu: int = 0, group_fd: int = -1, flags: int = 0
) -> bsys.FD:
    """``perf_event_open(2)``; the owned fd (``KernelError`` naming the event on failure)."""
    nr = _NR.get(os.uname().machine)
    if nr is None:
        raise NotSupported(f"perf_event_open number unknown for {os.uname().machine}")
    attr.size = ctypes.sizeof(PerfEventAttr)
    ctypes.set_errno(0)
    fd = _syscall(
        ctypes.c_long(nr),
        ctypes.byref(attr),
        ctypes.c_int(pid),
        ctypes.c_int(cpu),
        ctypes.c_int(group_fd),
        ctypes.c_ulong(flags | PERF_FLAG_FD_CLOEXEC),
    )
    if fd < 0:
        err = ctypes.get_errno()
        hints = {
            errno.ENOENT: "no such event (type/config unknown to this kernel)",
            errno.EACCES: "not permitted (perf_event_paranoid, or needs CAP_PERFMON)",
            errno.EPERM: "not permitted (perf_event_paranoid, or needs CAP_PERFMON)",
            errno.EINVAL: "invalid event attributes for this kernel",
            errno.ENODEV: "no such CPU or PMU",
            errno.EOPNOTSUPP: "sampling not supported by this event/PMU",
        }
        raise KernelError(err, "perf_event_open", hints.get(err, ""))
    return bsys.FD(int(fd))


def _ioctl(fd: bsys.FdLike, req: int, arg: int = 0) -> None:
    try:
        fcntl.ioctl(bsys.fdnum(fd), req, arg)
    except OSError as e:
        raise KernelError(e.errno or errno.EINVAL, f"ioctl({req:#x})", "") from None


def ioctl_enable(fd: bsys.FdLike) -> None:
    """``PERF_EVENT_IOC_ENABLE``."""
    _ioctl(fd, PERF_EVENT_IOC_ENABLE)


def ioctl_disable(fd: bsys.FdLike) -> None:
    """``PERF_EVENT_IOC_DISABLE``."""
    _ioctl(fd, PERF_EVENT_IOC_DISABLE)


def ioctl_set_bpf(fd: bsys.FdLike, prog_fd: bsys.FdLike) -> None:
    """``PERF_EVENT_IOC_SET_BPF``: run ``prog_fd`` on the event (no link)."""
    _ioctl(fd, PERF_EVENT_IOC_SET_BPF, bsys.fdnum(prog_fd))


def online_cpus() -> list[int]:
    """The CPUs that are online (what per-CPU perf events are opened on)."""
    try:
        with open("/sys/devices/system/cpu/online") as f:
            text = f.read().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _prog_fd(program: Any) -> int:
    return program.fd if hasattr(program, "fd") else bsys.fdnum(program)


def attach_perf_event(
    program: Any,
    event: bsys.FD,
    *,
    kind: str = "perf_event",
    target: Any = None,
    cookie: int = 0,
    cleanup: Iterable = (),
    force_ioctl: bool = False,
) -> Link:
    """Run ``program`` on an open perf event; the :class:`Link` owns (and closes) the event."""
    pfd = _prog_fd(program)
    if not force_ioctl:
        try:
            lfd = bsys.link_create(pfd, event, bsys.ATTACH_PERF_EVENT, cookie=cookie)
        except KernelError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, bsys.ENOTSUPP):
                event.close()
                raise
        else:
            return Link(
                lfd, kind, target=target, program=program, extra_fds=[event], cleanup=cleanup
            )
    if cookie:
        event.close()
        raise NotSupported("BPF cookies need perf-event links (kernel 5.15+)")
    try:
        ioctl_set_bpf(event, pfd)
        ioctl_enable(event)
    except BaseException:
        event.close()
        raise
    return Link(None, kind, target=target, program=program, extra_fds=[event], cleanup=cleanup)


def sample_cpu_clock(
    program: Any,
    *,
    frequency: int | None = 99,
    period: int | None = None,
    cpus: Iterable[int] | None = None,
    pid: int = -1,
) -> MultiLink:
    """Attach a ``perf_event`` program to a sampling CPU-clock event on each CPU (profiling).

    ``frequency`` samples per second (default 99), or every ``period`` nanoseconds of
    CPU time. ``pid`` restricts sampling to one process (``-1``: everything).
    """
    links: list[Link] = []
    try:
        for cpu in cpus if cpus is not None else online_cpus():
            attr = PerfEventAttr(type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_CPU_CLOCK)
            if period:
                attr.sample_period = period
            else:
                attr.sample_period = frequency or 99
                attr.flags |= ATTR_FREQ
            ev = perf_event_open(attr, pid, cpu)
            links.append(attach_perf_event(program, ev, kind="perf_event", target=f"cpu{cpu}"))
    except BaseException:
        for link in links:
            link.close()
        raise
    return MultiLink(links, "perf_event", target="cpu-clock")
