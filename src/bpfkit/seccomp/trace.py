"""Write a seccomp profile by watching a process tree's system calls with eBPF.

Two programs, built with bpfkit's instruction builders and loaded through the kernel
backend (no compiler at run time):

- on ``raw_syscalls:sys_enter``: if the current process (tgid) is in the ``pids`` map,
  count the syscall number in ``calls``, keyed by ``nr | compat << 32`` — ``compat`` is
  ``TS_COMPAT`` in the task's ``thread_info.status`` (an i386 call on x86_64), found with
  the kernel's BTF; x32 calls carry their 0x40000000 bit in ``nr``;
- on ``sched:sched_process_fork``: if the forking process is traced, add the child.

The tracer inserts the command's pid before letting it exec (the child waits on a
pipe), so everything from its ``execve`` on is seen. The result is the minimal
allow-list: every name seen, allowed; everything else gets the default action.
"""

from __future__ import annotations

import os
import re
import select
import signal
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import KernelError, NotSupported
from . import actions as act
from .install import RunResult, spawn, wait
from .profile import Profile, Rule
from .tables import X32_SYSCALL_BIT, native_arch, syscall_name

HELPER_MAP_LOOKUP = 1
HELPER_MAP_UPDATE = 2
HELPER_GET_CURRENT_PID_TGID = 14
HELPER_GET_CURRENT_TASK = 35
HELPER_PROBE_READ_KERNEL = 113
TS_COMPAT = 0x0002  # arch/x86/include/asm/thread_info.h

PIDS_MAX = 32768
CALLS_MAX = 4096


def tracepoint_field_offset(category: str, name: str, fld: str) -> int:
    """The offset of ``fld`` in a tracepoint's record (from its tracefs ``format``)."""
    from ..kernel.tracefs import tracefs_root

    path = os.path.join(tracefs_root(), "events", category, name, "format")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise NotSupported(f"tracepoint {category}:{name} not available: {e.strerror}") from None
    m = re.search(rf"field:[^;]*\b{re.escape(fld)}(\[\d+\])?;\s*offset:(\d+);", text)
    if not m:
        raise NotSupported(f"tracepoint {category}:{name} has no field {fld}")
    return int(m.group(2))


def _compat_status_offset() -> int | None:
    """Offset of ``thread_info.status`` in ``task_struct`` (x86_64 only), from vmlinux BTF."""
    if os.uname().machine != "x86_64":
        return None
    try:
        from ..btf.types import BtfKind
        from ..kernel.btf import vmlinux_btf

        btf = vmlinux_btf()
        task = btf.find("task_struct", BtfKind.STRUCT)
        ti = btf.find("thread_info", BtfKind.STRUCT)
        if task is None or ti is None:
            return None
        base = next((m.bit_offset for m in task.members if m.name == "thread_info"), None)
        status = next((m.bit_offset for m in ti.members if m.name == "status"), None)
        if base is None or status is None:
            return None
        return (base + status) // 8
    except Exception:  # noqa: BLE001 - no BTF: record native calls only
        return None


def _map_lookup(map_fd: int, key_off: int) -> list:
    """``R0 = bpf_map_lookup_elem(map, FP + key_off)``."""
    from ..isa.builders import FP, R1, R2, add64, call, ld_map_fd, mov64

    return [
        ld_map_fd(R1, map_fd),
        mov64(R2, FP),
        add64(R2, key_off),
        call(HELPER_MAP_LOOKUP),
    ]


def _map_update(map_fd: int, key_off: int, value_off: int, flags: int) -> list:
    """``bpf_map_update_elem(map, FP + key_off, FP + value_off, flags)``."""
    from ..isa.builders import FP, R1, R2, R3, R4, add64, call, ld_map_fd, mov64

    return [
        ld_map_fd(R1, map_fd),
        mov64(R2, FP),
        add64(R2, key_off),
        mov64(R3, FP),
        add64(R3, value_off),
        mov64(R4, flags),
        call(HELPER_MAP_UPDATE),
    ]


def _if_traced(pids_fd: int) -> list:
    """Both programs' start: the context kept in R6, and a jump to ``out`` unless the
    calling process (its tgid, stored at FP-4) is in the ``pids`` map."""
    from ..isa.builders import FP, R0, R1, R6, call, jeq, mov64, rsh64, stx

    return [
        mov64(R6, R1),
        call(HELPER_GET_CURRENT_PID_TGID),
        rsh64(R0, 32),
        stx(4, FP, -4, R0),
        *_map_lookup(pids_fd, -4),
        jeq(R0, 0, "out"),
    ]


def _sys_enter_prog(pids_fd: int, calls_fd: int, id_off: int, status_off: int | None):
    from ..isa.builders import (
        FP,
        R0,
        R1,
        R2,
        R3,
        R6,
        R7,
        Label,
        add64,
        and64,
        assemble,
        atomic,
        call,
        exit_,
        jeq,
        ldx,
        lsh64,
        mov64,
        or64,
        rsh64,
        st,
        stx,
    )
    from ..isa.opcodes import ATOMIC_ADD

    body = [
        *_if_traced(pids_fd),
        ldx(8, R7, R6, id_off),
        lsh64(R7, 32),
        rsh64(R7, 32),  # the u32 number (x32 keeps its bit)
    ]
    if status_off is not None:
        body += [
            st(4, FP, -16, 0),
            call(HELPER_GET_CURRENT_TASK),
            mov64(R3, R0),
            add64(R3, status_off),
            mov64(R1, FP),
            add64(R1, -16),
            mov64(R2, 4),
            call(HELPER_PROBE_READ_KERNEL),
            ldx(4, R0, FP, -16),
            and64(R0, TS_COMPAT),
            jeq(R0, 0, "key"),
            mov64(R0, 1),
            lsh64(R0, 32),
            or64(R7, R0),
        ]
    body += [
        Label("key"),
        stx(8, FP, -24, R7),
        *_map_lookup(calls_fd, -24),
        jeq(R0, 0, "new"),
        mov64(R1, 1),
        atomic(8, ATOMIC_ADD, R0, 0, R1),
        mov64(R0, 0),
        exit_(),
        Label("new"),
        st(8, FP, -32, 1),
        # BPF_NOEXIST: a racing CPU may have created it; its count wins
        *_map_update(calls_fd, -24, -32, 1),
        Label("out"),
        mov64(R0, 0),
        exit_(),
    ]
    return assemble(body)


def _fork_prog(pids_fd: int, child_off: int):
    from ..isa.builders import (
        FP,
        R0,
        R6,
        Label,
        assemble,
        exit_,
        ldx,
        mov64,
        st,
        stx,
    )

    return assemble(
        [
            *_if_traced(pids_fd),
            ldx(4, R0, R6, child_off),
            stx(4, FP, -8, R0),
            st(1, FP, -9, 1),
            *_map_update(pids_fd, -8, -9, 0),
            Label("out"),
            mov64(R0, 0),
            exit_(),
        ]
    )


@dataclass
class TraceResult:
    """What a trace saw: counts per (architecture, number), and how the command ended."""

    calls: dict[tuple[str, int], int]
    run: RunResult | None = None
    compat_detection: bool = False
    unknown: list[tuple[str, int]] = field(default_factory=list)

    @property
    def names(self) -> dict[str, list[str]]:
        """Syscall names seen, per architecture."""
        out: dict[str, set[str]] = {}
        for (arch, nr), _ in self.calls.items():
            name = syscall_name(arch, nr)
            if name is not None:
                out.setdefault(arch, set()).add(name)
        return {a: sorted(v) for a, v in sorted(out.items())}

    def profile(self, default_action: int = act.RET_ERRNO | act.EPERM) -> Profile:
        """The minimal allow-list profile: the names seen allowed, everything else denied."""
        native = native_arch().name
        names = sorted({n for v in self.names.values() for n in v})
        arches = [a for a in self.names if a != native]
        prof = Profile(default_action, arches)
        if names:
            prof.rules.append(Rule(names, act.RET_ALLOW))
        return prof

    def to_json(self) -> dict:
        out = {
            "syscalls": self.names,
            "calls": sum(self.calls.values()),
            "distinct": len(self.calls),
            "compat_detection": self.compat_detection,
        }
        if self.unknown:
            out["unknown"] = [{"arch": a, "nr": n} for a, n in self.unknown]
        if self.run is not None:
            out["command"] = self.run.to_json()
        return out


class _Tracer:
    """The maps, the two programs and their links; a context manager."""

    def __init__(self) -> None:
        from ..kernel import sys as bsys
        from ..kernel.tracepoint import attach_tracepoint
        from ..uapi.enums import MapType, ProgType

        self._fds: list[int] = []
        self._links: list = []
        try:
            self.pids = bsys.map_create(MapType.HASH, 4, 1, PIDS_MAX, name="seccomp_pids")
            self._fds.append(self.pids)
            self.calls = bsys.map_create(MapType.HASH, 8, 8, CALLS_MAX, name="seccomp_calls")
            self._fds.append(self.calls)
            self.status_off = _compat_status_offset()
            id_off = tracepoint_field_offset("raw_syscalls", "sys_enter", "id")
            child_off = tracepoint_field_offset("sched", "sched_process_fork", "child_pid")
            enter = bsys.prog_load(
                ProgType.TRACEPOINT,
                _sys_enter_prog(self.pids, self.calls, id_off, self.status_off),
                "GPL",
                name="seccomp_enter",
            )
            self._fds.append(enter)
            fork = bsys.prog_load(
                ProgType.TRACEPOINT, _fork_prog(self.pids, child_off), "GPL", name="seccomp_fork"
            )
            self._fds.append(fork)
            self._links.append(attach_tracepoint(fork, "sched", "sched_process_fork"))
            self._links.append(attach_tracepoint(enter, "raw_syscalls", "sys_enter"))
        except BaseException:
            self.close()
            raise

    def add_pid(self, pid: int) -> None:
        from ..kernel import sys as bsys

        bsys.map_update(self.pids, struct.pack("<I", pid), b"\x01")

    def counts(self) -> tuple[dict[tuple[str, int], int], list[tuple[str, int]]]:
        from ..kernel import sys as bsys

        native = native_arch().name
        out: dict[tuple[str, int], int] = {}
        unknown: list[tuple[str, int]] = []
        for key in bsys.map_keys(self.calls, 8):
            val = bsys.map_lookup(self.calls, key, 8)
            if val is None:
                continue
            k = struct.unpack("<Q", key)[0]
            nr, compat = k & 0xFFFFFFFF, k >> 32
            if compat and native == "x86_64":
                arch = "i386"
            elif native == "x86_64" and nr & X32_SYSCALL_BIT and nr != 0xFFFFFFFF:
                arch = "x32"
            else:
                arch = native
            if nr == 0xFFFFFFFF:
                continue  # a tracer's "skip this call"
            out[(arch, nr)] = out.get((arch, nr), 0) + struct.unpack("<Q", val)[0]
            if syscall_name(arch, nr) is None:
                unknown.append((arch, nr))
        return out, unknown

    def close(self) -> None:
        for link in self._links:
            try:
                link.close()
            except OSError:
                pass
        self._links = []
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def __enter__(self) -> _Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require_init_pidns() -> None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("NSpid:") and len(line.split()) > 2:
                    raise NotSupported(
                        "seccomp trace compares kernel pids; run it in the initial PID namespace"
                    )
    except OSError:
        pass


def trace_command(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None
) -> TraceResult:
    """Run ``argv`` and record the system calls it and its children make."""
    _require_init_pidns()
    r, w = os.pipe()
    with _Tracer() as tracer:

        def hold() -> None:
            # in the child: wait until the tracer watches this pid (the pipe's fds are
            # close-on-exec, so the command does not inherit them)
            os.close(w)
            os.read(r, 1)

        pid = spawn(list(argv), hold, env=env, cwd=cwd)
        os.close(r)
        try:
            tracer.add_pid(pid)
        except KernelError:
            os.kill(pid, signal.SIGKILL)
            wait(pid)
            os.close(w)
            raise
        os.write(w, b"g")
        os.close(w)
        res = wait(pid)
        calls, unknown = tracer.counts()
        return TraceResult(calls, res, tracer.status_off is not None, unknown)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its parent does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def trace_pid(
    pid: int, *, duration: float | None = None, ready: Callable[[], None] | None = None
) -> TraceResult:
    """Record the system calls of running process ``pid`` (and children it forks from now).

    Stops when the process exits, after ``duration`` seconds, or on Ctrl-C; ``ready`` is
    called once the tracer watches the process.
    """
    _require_init_pidns()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise NotSupported(f"no process {pid}") from None
    with _Tracer() as tracer:
        tracer.add_pid(pid)
        if ready is not None:
            ready()
        end = time.monotonic() + duration if duration else None
        try:
            while _alive(pid) and (end is None or time.monotonic() < end):
                select.select([], [], [], 0.1)
        except KeyboardInterrupt:
            pass
        calls, unknown = tracer.counts()
        return TraceResult(calls, None, tracer.status_off is not None, unknown)
