"""The kernel as the oracle for classic programs: does it accept them, and what do they return.

* ``socket_verdict``: ``SO_ATTACH_FILTER`` on a UDP socket (no privileges needed).
* ``seccomp_verdict``: ``seccomp(SECCOMP_SET_MODE_FILTER)`` in a forked child with
  ``no_new_privs``; the child reports through shared memory before its next system
  call (which the new filter may kill, trap or fail).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import resource
import signal
import socket

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.socket import attach_classic_filter, sock_fprog

SYS_seccomp = 317  # x86-64
SECCOMP_SET_MODE_FILTER = 1
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


def _require(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1":
        pytest.fail(f"BPFKIT_REQUIRE_KERNEL=1 but {reason}", pytrace=False)
    pytest.skip(reason)


_SOCK: socket.socket | None = None


def _sock() -> socket.socket:
    global _SOCK
    if _SOCK is None:
        _SOCK = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return _SOCK


def socket_verdict(prog) -> int:
    """0 when ``SO_ATTACH_FILTER`` takes ``prog``, else the errno (EINVAL: refused).

    ENOMEM means the checker and translation passed but the socket's option memory
    (``net.core.optmem_max``) cannot hold the translated program.
    """
    try:
        attach_classic_filter(_sock(), prog)
    except KernelError as e:
        return e.errno
    return 0


def require_socket_filters() -> None:
    ok = True
    reason = ""
    try:
        v = socket_verdict([(0x06, 0, 0, 0)])
        ok = v == 0
        reason = f"SO_ATTACH_FILTER fails with {errno.errorcode.get(v, v)}"
    except OSError as e:  # pragma: no cover - not Linux
        ok, reason = False, f"SO_ATTACH_FILTER unavailable: {e}"
    _require(ok, reason)


def seccomp_verdict(prog) -> int:
    """0 when ``seccomp(SECCOMP_SET_MODE_FILTER)`` takes ``prog``, else the errno."""
    shm = mmap.mmap(-1, 16, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    view = (ctypes.c_int * 2).from_buffer(shm)
    fprog, arr = sock_fprog(prog)
    pid = os.fork()
    if pid == 0:  # child: nothing that may allocate between the call and the store
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                view[1] = ctypes.get_errno()
                view[0] = 2
                os._exit(0)
            r = _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog))
            view[1] = 0 if r == 0 else ctypes.get_errno()
            view[0] = 1
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    done, err = view[0], view[1]
    del view
    shm.close()
    del arr
    if done == 2:
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS)")
    if done == 1:
        return err
    # the child died before storing: only an installed filter can do that
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGSYS, signal.SIGKILL):
        return 0
    raise AssertionError(f"seccomp child ended with status {status:#x} without a report")


def require_seccomp() -> None:
    try:
        v = seccomp_verdict([(0x06, 0, 0, 0x7FFF0000)])  # SECCOMP_RET_ALLOW
        _require(v == 0, f"seccomp filters fail with {errno.errorcode.get(v, v)}")
    except OSError as e:
        _require(False, f"seccomp unavailable: {e}")
