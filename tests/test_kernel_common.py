"""Helpers shared by the kernel backend's tests (and a few tests of the helpers themselves).

- :func:`build_c` compiles ``tests/c/<name>.c`` once per session;
- :func:`require` skips with the kernel's reason when a feature probe says it lacks
  something (a skip is then a fact about the kernel, not about the test: under
  ``BPFKIT_REQUIRE_KERNEL=1`` every probe's answer is checked against the kernel's
  configuration in ``test_kernel_features.py``);
- :func:`veth_pair` makes two network namespaces joined by a veth pair, with addresses
  only inside them, and removes them afterwards.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
C_DIR = ROOT / "c"
_BUILT: dict[str, Path] = {}
_seq = itertools.count()

needs_clang = pytest.mark.skipif(
    not (shutil.which("clang-19") or shutil.which("clang")), reason="needs clang"
)


def build_c(name: str, out_dir: Path) -> Path:
    """``tests/c/<name>.c`` compiled with ``bpfkit build`` (once per session)."""
    if name not in _BUILT:
        from bpfkit.obj.build import compile_c

        out = Path(out_dir) / f"{name}.o"
        compile_c(C_DIR / f"{name}.c", out)
        _BUILT[name] = out
    return _BUILT[name]


def require(kind: str) -> None:
    """Skip unless this kernel supports attach kind / feature ``kind`` (with its reason)."""
    from bpfkit.kernel import features

    probe = features.attach_kind(kind) if kind in features.ATTACH_KINDS else features.feature(kind)
    if not probe.supported:
        pytest.skip(f"kernel lacks {kind}: {probe.reason}")


def sh(*cmd: str) -> str:
    """Run a command, fail the test with its output if it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
    return p.stdout


@dataclass
class VethPair:
    """Two namespaces joined by veth: ``dev1``/``ip1`` in ``ns1``, ``dev2``/``ip2`` in ``ns2``."""

    ns1: str
    ns2: str
    dev1: str
    dev2: str
    ip1: str
    ip2: str


def make_veth_pair() -> VethPair:
    """Create the namespaces and the pair (see :func:`remove_veth_pair`)."""
    if not shutil.which("ip"):
        pytest.skip("needs iproute2")
    n = next(_seq)
    tag = f"bk{os.getpid() % 100000}x{n}"
    sub = 200 + (os.getpid() + n) % 50
    pair = VethPair(
        f"{tag}a",
        f"{tag}b",
        f"{tag}v0",
        f"{tag}v1",
        f"10.{sub}.{n % 250}.1",
        f"10.{sub}.{n % 250}.2",
    )
    sh("ip", "netns", "add", pair.ns1)
    sh("ip", "netns", "add", pair.ns2)
    sh(
        "ip",
        "link",
        "add",
        pair.dev1,
        "netns",
        pair.ns1,
        "type",
        "veth",
        "peer",
        "name",
        pair.dev2,
        "netns",
        pair.ns2,
    )
    for ns, dev, ip in ((pair.ns1, pair.dev1, pair.ip1), (pair.ns2, pair.dev2, pair.ip2)):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    return pair


def remove_veth_pair(pair: VethPair) -> None:
    """Delete both namespaces (and with them the pair)."""
    for ns in (pair.ns1, pair.ns2):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def veth_pair():
    pair = make_veth_pair()
    try:
        yield pair
    finally:
        remove_veth_pair(pair)


def test_require_skips_with_the_reason(monkeypatch):
    from bpfkit.kernel import features
    from bpfkit.kernel.features import Probe

    monkeypatch.setattr(features, "attach_kind", lambda k: Probe(k, False, "no such thing"))
    with pytest.raises(pytest.skip.Exception, match="kernel lacks kprobe: no such thing"):
        require("kprobe")
