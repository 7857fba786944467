"""The JIT's on-disk cache of machine code for modules that are the same in every process.

The JIT's runtime and its native helpers (map lookups, ring buffers, clocks) are LLVM IR
compiled in every fresh process — about a quarter of a second before the first program
runs. Their object code is kept here instead, one file per module, keyed by a SHA-256 of
everything the code depends on: the IR, the optimisation level, the process-wide LLVM
options, llvmlite's and LLVM's versions, the host CPU and its features.

Where: ``$BPFKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/bpfkit``, else ``~/.cache/bpfkit``
(a ``jit`` folder in it). ``BPFKIT_JIT_CACHE=0`` turns the cache off.

Safety: machine code from the cache is executed, so the cache is used only when its
directory belongs to this user and nobody else may write to it (it is created ``0700``),
every file is read without following symbolic links and must belong to this user and be
writable by nobody else, and every file carries its key and the SHA-256 of its contents:
a file that is truncated, corrupted, or written for another key is ignored (and removed),
and the module is compiled as if the cache were empty. Files are written to a temporary
name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence

from .._cache import cache_root, private_dir

__all__ = ["cache_dir", "key", "load", "store", "clear", "enabled"]

_MAGIC = b"BPFKJIT1"
_MAX_OBJECT = 64 << 20
_HEADER = len(_MAGIC) + 32 + 32  # magic, key, sha256 of the object


def enabled() -> bool:
    """Whether the cache is in use (``BPFKIT_JIT_CACHE=0`` turns it off)."""
    return os.environ.get("BPFKIT_JIT_CACHE", "1") != "0"


def cache_dir() -> str:
    """The directory the JIT's objects are kept in."""
    return os.path.join(cache_root(), "jit")


def _safe_dir(create: bool) -> str | None:
    """The cache directory when it is ours and private (created so when asked), else None."""
    return private_dir("jit", create)


def key(ir: str, opt_level: int, host: tuple[str, str], options: Sequence[str]) -> bytes | None:
    """The cache key of a module (``None`` when the cache is off)."""
    if not enabled():
        return None
    import llvmlite
    import llvmlite.binding as llvm

    h = hashlib.sha256()
    for part in (
        _MAGIC.decode(),
        llvmlite.__version__,
        ".".join(map(str, llvm.llvm_version_info)),
        llvm.get_process_triple(),
        host[0],
        host[1],
        str(opt_level),
        "\0".join(options),
        ir,
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.digest()


def _path(d: str, k: bytes) -> str:
    return os.path.join(d, k.hex() + ".o")


def load(k: bytes | None) -> bytes | None:
    """The object code stored under ``k``, or ``None`` (absent, unsafe or damaged)."""
    if k is None:
        return None
    d = _safe_dir(create=False)
    if d is None:
        return None
    path = _path(d, k)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o022
            or not _HEADER < st.st_size <= _HEADER + _MAX_OBJECT
        ):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(_HEADER + _MAX_OBJECT + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    magic, stored_key = data[: len(_MAGIC)], data[len(_MAGIC) : len(_MAGIC) + 32]
    digest, obj = data[len(_MAGIC) + 32 : _HEADER], data[_HEADER:]
    if magic != _MAGIC or stored_key != k or hashlib.sha256(obj).digest() != digest:
        try:
            os.unlink(path)  # damaged or foreign: compile again, and replace it
        except OSError:
            pass
        return None
    return obj


def store(k: bytes | None, obj: bytes) -> None:
    """Keep ``obj`` under ``k`` (silently nothing when the cache cannot be used)."""
    if k is None or not obj or len(obj) > _MAX_OBJECT:
        return
    d = _safe_dir(create=True)
    if d is None:
        return
    data = _MAGIC + k + hashlib.sha256(obj).digest() + obj
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".o")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, _path(d, k))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def clear() -> int:
    """Remove every cached object; returns how many were removed."""
    d = _safe_dir(create=False)
    if d is None:
        return 0
    n = 0
    for name in os.listdir(d):
        if name.endswith(".o"):
            try:
                os.unlink(os.path.join(d, name))
                n += 1
            except OSError:
                pass
    return n
