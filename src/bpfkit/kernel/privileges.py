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
