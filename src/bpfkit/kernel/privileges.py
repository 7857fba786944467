"""Can this process use the kernel's ``bpf()``? One cached probe, with a reason when not."""

from __future__ import annotations

import functools
import os

from ..errors import BpfError
from ..uapi.enums import MapType, ProgType

# r0 = 0; exit
_TRIVIAL_PROG = bytes.fromhex("b7000000000000009500000000000000")


@functools.cache
def kernel_available() -> tuple[bool, str]:
    """Whether this process can create a map and load a trivial socket filter, and why not."""
    try:
        from . import sys as bsys
    except Exception as exc:  # noqa: BLE001 - report any import-time failure as the reason
        return False, f"bpf() interface unavailable: {exc}"
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False, "bpf() needs Linux"
    try:
        map_fd = bsys.map_create(MapType.ARRAY, 4, 4, 1)
        os.close(map_fd)
        prog_fd = bsys.prog_load(ProgType.SOCKET_FILTER, _TRIVIAL_PROG)
        os.close(prog_fd)
    except (BpfError, OSError) as exc:
        return False, f"kernel bpf() not usable by this process: {exc}"
    return True, ""


# ---------------------------------------------------------------------------
# Capabilities: is an EPERM about privileges at all?
# ---------------------------------------------------------------------------

#: capability numbers (linux/capability.h) of the ones bpf() checks
CAPABILITIES = {
    "CAP_NET_ADMIN": 12,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
}
#: what the kernel's bpf() checks between them: holding these, no bpf() command is
#: refused for lack of privilege (CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON,
#: never for CAP_NET_ADMIN)
ALL_BPF_CAPS = ("CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN")


def effective_capabilities(status: str = "/proc/self/status") -> frozenset[str]:
    """The names (of :data:`CAPABILITIES`) in this process's effective set (``CapEff``)."""
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    mask = int(line.split()[1], 16)
                    return frozenset(n for n, bit in CAPABILITIES.items() if mask >> bit & 1)
    except (OSError, ValueError, IndexError):
        pass
    return frozenset()


def holds(*caps: str) -> bool:
    """Whether this process holds every capability named (``"CAP_BPF"``, ...)."""
    have = effective_capabilities()
    return all(c in have for c in caps)


def eperm_hint(have: frozenset[str] | None = None) -> str:
    """What an ``EPERM`` from ``bpf()`` means for this process.

    Holding every capability ``bpf()`` checks, an ``EPERM`` is not about privileges:
    the kernel refuses the request itself (a feature it lacks or disables, such as BPF
    trampolines; lockdown; an LSM). Otherwise: which capabilities are missing.
    """
    if have is None:
        have = effective_capabilities()
    # Before 5.11 the kernel charged BPF memory to RLIMIT_MEMLOCK and said EPERM.
    memlock = "; or raise RLIMIT_MEMLOCK (kernels before 5.11)" if _before_5_11() else ""
    if all(c in have for c in ALL_BPF_CAPS):
        return (
            f"not a privilege problem: this process holds {', '.join(ALL_BPF_CAPS)}, so "
            "the kernel refuses this itself (a feature it lacks or disables, lockdown, or "
            f"an LSM){memlock}"
        )
    missing = [c for c in ALL_BPF_CAPS if c not in have]
    return (
        f"needs privileges: this process lacks {', '.join(missing)} (root, or CAP_BPF with "
        "CAP_PERFMON for tracing and CAP_NET_ADMIN for networking programs)" + memlock
    )


def _before_5_11() -> bool:
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < (5, 11)
