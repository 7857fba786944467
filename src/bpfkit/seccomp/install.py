"""Install a compiled filter with seccomp(2) and exec a command under it.

The filter is installed in a forked child, never in the calling process: the child sets
``no_new_privs`` (``prctl(PR_SET_NO_NEW_PRIVS)``, required to install a filter without
``CAP_SYS_ADMIN`` and what Docker does), calls ``seccomp(SECCOMP_SET_MODE_FILTER)`` with the
program, and execs the command. The parent waits and hands back the exit status (128 + the
signal number when a signal ended the command, as shells report it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..classic.insn import encode
from ..errors import NotSupported, ProfileError
from .compiler import Filter

PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4

# __NR_seccomp (<asm/unistd_64.h>, asm-generic for aarch64)
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277, "i686": 354, "i386": 354}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def install_in_this_process(program_bytes: bytes, flags: int = 0) -> None:
    """``no_new_privs`` then ``seccomp(SECCOMP_SET_MODE_FILTER)`` — irreversible, for children.

    Raises ``OSError`` when the kernel refuses the filter.
    """
    nr = _NR_SECCOMP.get(os.uname().machine)
    if nr is None:
        raise NotSupported(f"seccomp(2) number unknown for {os.uname().machine}")
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    buf = ctypes.create_string_buffer(program_bytes, len(program_bytes))
    prog = _SockFprog(len(program_bytes) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(
        ctypes.c_long(nr),
        ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
        ctypes.c_ulong(flags),
        ctypes.byref(prog),
    )
    if r != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")


@dataclass
class RunResult:
    """How the confined command ended."""

    pid: int
    exit_code: int | None
    signal: int | None
    #: why the command never ran (set up or exec failed in the child), else ``None``
    error: str | None = None
    #: the command itself could not be executed (not found, not executable): bad input
    not_run: bool = False

    @property
    def status(self) -> int:
        """The shell-style status: the exit code, or 128 + signal number."""
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 1

    def to_json(self) -> dict:
        out = {
            "pid": self.pid,
            "exit_code": self.exit_code,
            "signal": signal.Signals(self.signal).name if self.signal else None,
            "status": self.status,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


#: pid -> read end of the close-on-exec pipe through which that child reports a failure
#: before or in exec (EOF: the exec succeeded); read by :func:`wait`
_ERR_PIPES: dict[int, int] = {}


def spawn(
    argv: Sequence[str],
    before_exec: Callable[[], None] | None = None,
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> int:
    """Fork a child that runs ``before_exec`` and then execs ``argv``; its pid.

    A failure in ``before_exec`` or ``execvp`` makes the child exit 126 (could not set up)
    or 127 (could not run the command); the message comes back through a close-on-exec
    pipe and :func:`wait` puts it in :attr:`RunResult.error` (the caller reports it, so
    that it is one line and can be JSON).
    """
    argv = list(argv)
    if not argv:
        raise ValueError("no command to run")
    sys.stdout.flush()
    sys.stderr.flush()
    er, ew = os.pipe()  # both close-on-exec
    pid = os.fork()
    if pid != 0:
        os.close(ew)
        _ERR_PIPES[pid] = er
        return pid
    os.close(er)
    code = 126
    try:
        try:
            if cwd is not None:
                os.chdir(cwd)
            if before_exec is not None:
                before_exec()
            code = 127
            if env is None:
                os.execvp(argv[0], argv)
            else:
                os.execvpe(argv[0], argv, env)
        except BaseException as e:  # noqa: BLE001 - the child must never return to the caller
            what = "cannot run" if code == 127 else "cannot confine"
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            msg = f"{what} {argv[0]}: {reason}"
            try:
                os.write(ew, msg.encode())
            except OSError:
                try:
                    os.write(2, f"bpfkit: error: {msg}\n".encode())
                except OSError:
                    pass
    finally:
        os._exit(code)


def wait(pid: int) -> RunResult:
    """Wait for ``pid``, forwarding SIGINT/SIGTERM to it meanwhile; a child of :func:`spawn`
    that failed before or in exec has :attr:`RunResult.error` set."""

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    old = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        try:
            old[s] = signal.signal(s, forward)
        except ValueError:  # not the main thread
            pass
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    error = _child_error(pid)
    if os.WIFSIGNALED(status):
        return RunResult(pid, None, os.WTERMSIG(status), error)
    code = os.WEXITSTATUS(status)
    return RunResult(pid, code, None, error, error is not None and code == 127)


def _child_error(pid: int) -> str | None:
    """The failure a child of :func:`spawn` reported before exec (``None``: it exec'd)."""
    fd = _ERR_PIPES.pop(pid, None)
    if fd is None:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    text = b"".join(chunks).decode(errors="replace").strip()
    return " ".join(text.split()) or None


def run(
    flt: Filter,
    argv: Sequence[str],
    *,
    flags: int = 0,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> RunResult:
    """Run ``argv`` confined by ``flt`` in a child process; how it ended.

    The filter must have been compiled for this machine's architecture (its first one),
    or every system call of the command would get the bad-architecture action.
    """
    from .tables import native_arch

    if flt.arches[0].name != native_arch().name:
        raise ProfileError(
            f"the filter was compiled for {flt.arches[0].name}; this machine is {native_arch().name}"
        )
    raw = encode(flt.program)
    pid = spawn(argv, lambda: install_in_this_process(raw, flags), env=env, cwd=cwd)
    return wait(pid)
