"""Program types in the VM: contexts, context-access conversion, test runs.

:func:`prog_type_vm` gives the handler of a program type; ``PROG_TYPE_CLASSES`` lists
which class implements which type.
"""

from __future__ import annotations

from functools import cache

from ...errors import NotSupported
from ...uapi.enums import ProgType
from ...uapi.progtypes import prog_type_info
from .base import ProgTypeVM, RunOutcome, RunState, TestRunError
from .convert import convert_ctx_access, pointer_slots
from .packet import PacketBuffer
from .skb import SkbProgType
from .syscall import SyscallProgType
from .tracing import (
    KprobeProgType,
    PerfEventProgType,
    RawTracepointProgType,
    TracepointProgType,
    pt_regs,
)
from .xdp import XdpProgType

__all__ = [
    "ProgTypeVM",
    "RunOutcome",
    "RunState",
    "TestRunError",
    "PacketBuffer",
    "prog_type_vm",
    "convert_ctx_access",
    "pointer_slots",
    "pt_regs",
    "PROG_TYPE_CLASSES",
]

PROG_TYPE_CLASSES: dict[ProgType, type[ProgTypeVM]] = {
    ProgType.SOCKET_FILTER: SkbProgType,
    ProgType.SCHED_CLS: SkbProgType,
    ProgType.SCHED_ACT: SkbProgType,
    ProgType.CGROUP_SKB: SkbProgType,
    ProgType.XDP: XdpProgType,
    ProgType.KPROBE: KprobeProgType,
    ProgType.TRACEPOINT: TracepointProgType,
    ProgType.RAW_TRACEPOINT: RawTracepointProgType,
    ProgType.RAW_TRACEPOINT_WRITABLE: RawTracepointProgType,
    ProgType.PERF_EVENT: PerfEventProgType,
    ProgType.SYSCALL: SyscallProgType,
}


@cache
def prog_type_vm(prog_type: int) -> ProgTypeVM:
    """The VM handler of ``prog_type`` (``NotSupported`` for types the VM cannot run)."""
    info = prog_type_info(prog_type)
    try:
        cls = PROG_TYPE_CLASSES[ProgType(prog_type)]
    except (ValueError, KeyError):
        cls = None
    if info is None or cls is None:
        name = getattr(prog_type, "name", str(prog_type))
        raise NotSupported(f"the VM cannot run {str(name).lower()} programs yet")
    return cls(info)
