"""Writing a capture file without losing what the user already has.

``safe_output(path)`` is how ``bpfkit filter run -w`` opens its output: a regular file (or
a name that does not exist yet) is written to a temporary file in the same directory and
renamed over the target only when the run completes — so ``-w`` naming the input, an
interrupted run or a full disk never truncates or half-writes an existing file. The new
file keeps the old one's permission bits and (when we may) its owner; a symbolic link is
followed, so the file it points to is replaced, not the link. Anything else (``/dev/null``,
a FIFO, a terminal) is opened and written in place, as tcpdump does.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import CaptureError


def _create_aside(prefix: str, suffix: str, dir: str) -> tuple[int, str]:
    """A new file next to the target, created exclusively (no tempfile import: start-up
    time is part of what ``filter run`` is measured by)."""
    for n in range(100):
        name = os.path.join(dir, f"{prefix}{os.getpid()}-{os.urandom(4).hex()}{suffix}")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), name
        except FileExistsError:
            if n == 99:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def safe_output(
    path: str | os.PathLike[str], keep_on: tuple[type[BaseException], ...] = ()
) -> Iterator[BinaryIO]:
    """A binary file to write the capture into; see the module's docstring.

    The file replaces ``path`` when the block ends normally, or with one of ``keep_on``
    after something was written (``CaptureError`` for a damaged input: the packets before
    the damage are kept, as tcpdump keeps them); otherwise the old file is left as it was.
    """
    target = os.path.realpath(os.fspath(path))
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise CaptureError(f"{os.fspath(path)}: {e.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise CaptureError(f"{os.fspath(path)}: is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        # a device, a FIFO, a socket: nothing to lose, and renaming over it would be wrong
        try:
            f = open(target, "wb", buffering=1 << 16)  # noqa: SIM115
        except OSError as e:
            raise CaptureError(f"{os.fspath(path)}: {e.strerror}") from None
        with f:
            yield f
        return
    directory = os.path.dirname(target) or "."
    try:
        fd, tmp = _create_aside(
            prefix=f".{os.path.basename(target)}.", suffix=".part", dir=directory
        )
    except OSError as e:
        raise CaptureError(f"{os.fspath(path)}: cannot write here: {e.strerror}") from None
    done = False

    def commit(f: BinaryIO) -> None:
        nonlocal done
        try:
            f.flush()
            os.replace(tmp, target)
        except OSError as e:
            raise CaptureError(f"{os.fspath(path)}: {e.strerror or e}") from None
        done = True

    try:
        with contextlib.suppress(OSError):  # best effort: the old file's mode and owner
            if st is not None:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                    os.fchown(fd, st.st_uid, st.st_gid)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fd, 0o666 & ~umask)
        with open(fd, "wb", buffering=1 << 16, closefd=True) as f:
            try:
                yield f
            except keep_on:
                if f.tell():  # packets before the damage: kept, as tcpdump keeps them
                    commit(f)
                raise  # (nothing written — a bad header — leaves the old file alone)
            commit(f)
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
