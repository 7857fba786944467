"""bpfkit's per-user cache directory, shared by every on-disk cache (JIT objects, filter
programs and scan code, the filter grammar), and the one way its files are written.

Where: ``$BPFKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/bpfkit``, else ``~/.cache/bpfkit``.
A cache is used only from a private directory (ours, a directory, writable by nobody
else), because some of what is cached is machine code that is executed. Files are
written under a temporary name and renamed into place, so a reader never sees half a
file. Any failure only means the entry is rebuilt: nothing here raises.
"""

from __future__ import annotations

import os
import stat

__all__ = ["cache_root", "private_dir", "atomic_write"]


def cache_root() -> str:
    """The root of bpfkit's caches (it may not exist yet)."""
    base = os.environ.get("BPFKIT_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "bpfkit")


def private_dir(name: str = "", create: bool = True) -> str | None:
    """``cache_root()/name`` (the root itself for ``""``) when it is private to this user —
    created ``0700`` if ``create`` (and then also writable) — else ``None``."""
    d = os.path.join(cache_root(), name) if name else cache_root()
    try:
        if create:
            os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.lstat(d)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    if create and not os.access(d, os.W_OK):
        return None
    return d


def atomic_write(path: str, data: bytes) -> bool:
    """Write ``path`` (mode ``0600``) through a temporary file in its directory renamed
    into place; False (and no file left behind) when that fails."""
    import tempfile  # only on a cache miss: not a cost of every process's start-up

    d, base = os.path.split(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=d or ".", prefix=".tmp-", suffix=os.path.splitext(base)[1])
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
