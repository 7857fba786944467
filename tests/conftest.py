"""Shared pytest fixtures and hooks."""

from __future__ import annotations

import ctypes
import os
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import settings as _hypothesis_settings

#: Property tests draw the same examples on every run (reproducible: what passes here passes
#: in CI) and have no per-example deadline (a loaded machine is not a bug);
#: ``BPFKIT_EXPLORE=1`` draws fresh examples (and fresh seeds where a test takes one).
EXPLORE = os.environ.get("BPFKIT_EXPLORE") == "1"
_hypothesis_settings.register_profile("bpfkit", derandomize=not EXPLORE, deadline=None)
_hypothesis_settings.load_profile("bpfkit")

# ---------------------------------------------------------------------------
# The running kernel's bpf()
# ---------------------------------------------------------------------------


def kernel_required() -> bool:
    """Whether a missing kernel must fail tests instead of skipping them (CI sets it)."""
    return os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1"


def require_kernel() -> None:
    """Skip the calling test without a usable ``bpf()``; fail under ``BPFKIT_REQUIRE_KERNEL=1``."""
    from bpfkit.kernel.privileges import kernel_available

    ok, reason = kernel_available()
    if ok:
        return
    if kernel_required():
        pytest.fail(f"BPFKIT_REQUIRE_KERNEL=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply the ``kernel`` marker: ``@pytest.mark.kernel`` or ``pytestmark = pytest.mark.kernel``."""
    if item.get_closest_marker("kernel") is not None:
        require_kernel()


@pytest.fixture
def kernel() -> None:
    """Request the running kernel's ``bpf()`` (same policy as the ``kernel`` marker)."""
    require_kernel()


@pytest.fixture
def bpffs() -> Iterator[str]:
    """A fresh bpf filesystem mounted at a temporary directory, unmounted afterwards."""
    require_kernel()
    libc = ctypes.CDLL(None, use_errno=True)
    path = tempfile.mkdtemp(prefix="bpfkit-bpffs-")
    if libc.mount(b"bpf", path.encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        os.rmdir(path)
        reason = f"cannot mount a bpf filesystem: {os.strerror(err)}"
        if kernel_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield path
    finally:
        libc.umount2(path.encode(), 2)  # MNT_DETACH
        os.rmdir(path)
