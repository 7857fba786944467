"""tracefs: tracepoint ids, legacy kprobe/uprobe events, and ``trace_pipe``.

The tracing filesystem is found where it is mounted (``/sys/kernel/tracing``, or
``/sys/kernel/debug/tracing``); when it is not mounted and the process may mount it,
it is mounted at ``/sys/kernel/tracing``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import select
import time

from ..errors import KernelError, NotSupported

__all__ = [
    "tracefs_root",
    "tracepoint_id",
    "tracepoint_exists",
    "add_probe_event",
    "remove_probe_event",
    "read_trace_pipe",
    "TracePipe",
]

_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _mounted(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "events")) or os.path.exists(
        os.path.join(path, "trace_pipe")
    )


@functools.cache
def tracefs_root() -> str:
    """Where tracefs is mounted (mounting it at ``/sys/kernel/tracing`` if needed)."""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs" and _mounted(parts[1]):
                    return parts[1]
    except OSError:
        pass
    for p in _CANDIDATES:
        if _mounted(p):
            return p
    target = _CANDIDATES[0]
    if os.path.isdir(target):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"tracefs", target.encode(), b"tracefs", 0, None) == 0 and _mounted(target):
            return target
        err = ctypes.get_errno()
        raise NotSupported(f"tracefs is not mounted and cannot be mounted: {os.strerror(err)}")
    raise NotSupported("tracefs is not available (kernel built without CONFIG_TRACING?)")


def tracepoint_id(category: str, name: str) -> int:
    """The perf event id of tracepoint ``category:name``."""
    if "/" in category or "/" in name or category.startswith("."):
        raise ValueError(f"bad tracepoint {category}:{name}")
    path = os.path.join(tracefs_root(), "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise KernelError(
            errno.ENOENT, "tracepoint", f"no tracepoint {category}:{name} ({path})"
        ) from None


def tracepoint_exists(category: str, name: str) -> bool:
    """Whether tracepoint ``category:name`` exists."""
    try:
        tracepoint_id(category, name)
    except (KernelError, NotSupported, ValueError):
        return False
    return True


def add_probe_event(kind: str, event: str, definition: str, retprobe: bool = False) -> int:
    """Create a legacy ``kprobe``/``uprobe`` event (group ``bpfkit``); its perf event id.

    ``definition`` is ``symbol+offset`` (kprobes) or ``/path:0xoffset`` (uprobes).
    """
    if kind not in ("kprobe", "uprobe"):
        raise ValueError(kind)
    ctl = os.path.join(tracefs_root(), f"{kind}_events")
    if not os.path.exists(ctl):
        raise NotSupported(f"this kernel has no {kind}_events (CONFIG_{kind.upper()}_EVENTS)")
    line = f"{'r' if retprobe else 'p'}:bpfkit/{event} {definition}\n"
    try:
        with open(ctl, "a") as f:
            f.write(line)
    except OSError as e:
        raise KernelError(
            e.errno or errno.EINVAL, f"{kind}_events", f"cannot add {line.strip()!r}"
        ) from None
    return tracepoint_id("bpfkit", event)


def remove_probe_event(kind: str, event: str) -> None:
    """Remove a legacy probe event made by :func:`add_probe_event`."""
    ctl = os.path.join(tracefs_root(), f"{kind}_events")
    try:
        with open(ctl, "a") as f:
            f.write(f"-:bpfkit/{event}\n")
    except OSError:
        pass


class TracePipe:
    """Non-blocking reader of ``trace_pipe`` (what ``bpf_trace_printk`` writes)."""

    def __init__(self) -> None:
        self._fd = os.open(os.path.join(tracefs_root(), "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        self._buf = b""

    def read(self, timeout: float = 0.0) -> list[str]:
        """Complete lines available within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            r, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
            if r:
                try:
                    chunk = os.read(self._fd, 65536)
                except BlockingIOError:
                    chunk = b""
                self._buf += chunk
                *done, self._buf = self._buf.split(b"\n")
                lines += [d.decode(errors="replace") for d in done]
            if lines or time.monotonic() >= deadline:
                return lines

    def close(self) -> None:
        """Close the pipe."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TracePipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace_pipe(timeout: float = 0.1) -> list[str]:
    """``trace_pipe`` lines available within ``timeout`` seconds."""
    with TracePipe() as tp:
        return tp.read(timeout)
