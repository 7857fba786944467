"""A veth pair into a fresh network namespace, for the live-capture tests: created under
unique names (a prefix and this process's id), IPv6 autoconfiguration off on both ends
(no chatter on the link), removed afterwards; skipped where it cannot be set up (a
failure under ``BPFKIT_REQUIRE_KERNEL=1``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def require(reason: str) -> None:
    """Skip the calling test for ``reason``; fail it under ``BPFKIT_REQUIRE_KERNEL=1``."""
    if os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1":
        pytest.fail(f"BPFKIT_REQUIRE_KERNEL=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def ip(*args: str) -> subprocess.CompletedProcess:
    """``ip ARGS`` (iproute2), its output captured."""
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@contextlib.contextmanager
def veth_pair(prefix: str) -> Iterator[tuple[str, str, str]]:
    """(host-side interface, namespace, far-side interface), named ``PREFIX{A,N,B}<pid>``."""
    if shutil.which("ip") is None:
        require("iproute2 (ip) is not installed")
    tag = f"{os.getpid() % 100000}"
    ns, a, b = f"{prefix}N{tag}", f"{prefix}A{tag}", f"{prefix}B{tag}"
    r = ip("netns", "add", ns)
    if r.returncode != 0:
        require(f"cannot create a network namespace: {r.stderr.strip()}")
    try:
        # interfaces that come into the namespace start without IPv6
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-q", "-w"]
            + ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
            capture_output=True,
        )
        for step in (
            ("link", "add", a, "type", "veth", "peer", "name", b, "netns", ns),
            ("link", "set", a, "up"),
            ("-n", ns, "link", "set", b, "up"),
        ):
            r = ip(*step)
            if r.returncode != 0:
                require(f"cannot set up a veth pair: {r.stderr.strip()}")
        for cmd in (
            ["sysctl", "-q", "-w", f"net.ipv6.conf.{a}.disable_ipv6=1"],
            ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{b}.disable_ipv6=1"],
        ):
            subprocess.run(cmd, capture_output=True)
        yield a, ns, b
    finally:
        ip("link", "del", a)
        ip("netns", "del", ns)


def wait_for_packet_socket(ifname: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until a packet socket is bound to ``ifname`` — the capture ``proc`` started
    is listening — or ``proc`` has exited, or ``timeout`` seconds have passed."""
    ifindex = socket.if_nametoindex(ifname)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        with open("/proc/net/packet") as f:
            next(f)  # the header line
            if any(int(line.split()[4]) == ifindex for line in f):
                return
        time.sleep(0.05)
