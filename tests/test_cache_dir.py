"""bpfkit._cache: where the caches live, when a directory is private enough to use, and
that a write is all or nothing (the rules every on-disk cache relies on)."""

from __future__ import annotations

import os

import pytest

from bpfkit import _cache
from bpfkit.jit import cache as jit_cache
from bpfkit.pcap import codecache


def test_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("BPFKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_root() == str(tmp_path / "xdg" / "bpfkit")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.cache_root() == str(tmp_path / "home" / ".cache" / "bpfkit")
    monkeypatch.setenv("BPFKIT_CACHE_DIR", str(tmp_path / "own"))
    assert _cache.cache_root() == str(tmp_path / "own")
    # every cache lives under the one root
    assert jit_cache.cache_dir() == str(tmp_path / "own" / "jit")
    assert codecache._code_path("x").startswith(str(tmp_path / "own" / "code") + os.sep)


def test_private_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BPFKIT_CACHE_DIR", str(tmp_path / "c"))
    assert _cache.private_dir("a", create=False) is None  # absent, not created
    d = _cache.private_dir("a")
    assert d == str(tmp_path / "c" / "a")
    assert os.stat(d).st_mode & 0o777 == 0o700
    os.chmod(d, 0o777)  # writable by others: refused (its files could be swapped)
    assert _cache.private_dir("a") is None
    os.chmod(d, 0o700)
    os.symlink(d, tmp_path / "c" / "link")  # a link is not followed
    assert _cache.private_dir("link") is None
    (tmp_path / "c" / "file").write_bytes(b"")
    assert _cache.private_dir("file") is None
    assert _cache.private_dir() == str(tmp_path / "c")


def test_atomic_write(tmp_path):
    path = tmp_path / "entry.bin"
    assert _cache.atomic_write(str(path), b"one")
    assert _cache.atomic_write(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["entry.bin"]  # no temporary file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_atomic_write_failure_leaves_nothing(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        assert not _cache.atomic_write(str(d / "x.bin"), b"data")
        assert os.listdir(d) == []
    finally:
        d.chmod(0o700)


def test_atomic_write_failure_in_missing_dir(tmp_path):
    assert not _cache.atomic_write(str(tmp_path / "missing" / "x.bin"), b"data")
    assert not (tmp_path / "missing").exists()
