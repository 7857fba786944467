"""The run environment: address space, stack, helpers and per-run state shared by engines."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..uapi.enums import HELPER_IDS
from .helpers import BASE, HelperRegistry
from .memory import AddressSpace, Region

STACK_REGION_SIZE = op.STACK_SIZE * op.MAX_CALL_FRAMES
#: legacy packet loads at ``SKF_NET_OFF + n`` read the network header, at ``SKF_LL_OFF + n``
#: the link-layer (MAC) header (``include/uapi/linux/filter.h``)
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000
#: helpers that run more BPF code inside the run — callbacks (``bpf_loop`` ...) and a
#: tail call's target: the engines hand them the run's instruction count (``Env.insns``)
#: and take it back, so everything a run executes counts against one budget
COUNTING_HELPERS = frozenset(
    HELPER_IDS[name]
    for name in ("loop", "for_each_map_elem", "find_vma", "user_ringbuf_drain", "tail_call")
)


@dataclass(frozen=True)
class PacketHeaders:
    """Where a packet's headers lie, for legacy loads at ``SKF_NET_OFF``/``SKF_LL_OFF``.

    ``net`` and ``mac`` are offsets from the packet data (``skb->data``); a negative one
    lies in front of it (a socket filter's Ethernet header, in the headroom). ``mac`` is
    None when no link-layer header was set. ``front`` views the packet buffer from
    ``data + lo`` to the end of the data, ``lo`` the lowest of 0, ``net`` and ``mac``:
    every byte such a load can reach.
    """

    net: int
    mac: int | None
    front: Region
    lo: int

    def offset(self, k: int) -> int | None:
        """The data offset a negative load offset ``k`` means
        (``bpf_skb_load_helper_convert_offset``), or None when the load fails."""
        if k >= SKF_NET_OFF:
            return k - SKF_NET_OFF + self.net
        if k >= SKF_LL_OFF and self.mac is not None:
            return k - SKF_LL_OFF + self.mac
        return None


class Env:
    """What a program runs against: its address space, stack frames and helpers.

    ``resolve_lddw(insn, slot) -> int`` turns a pseudo ``lddw`` (map fd, map value, BTF
    id, ...) into the value the program sees; the runtime layer installs it.
    ``packet`` is the region legacy ``ld_abs``/``ld_ind`` loads read from (offsets from
    its start), ``packet_headers`` where its network and MAC headers are (None: loads at
    negative offsets fail, as for a packet without them).
    ``insns`` carries the run's instruction count across a helper of ``COUNTING_HELPERS``
    (callbacks, tail calls): the engines store their count there before such a call and
    take it back after, so the callbacks count against the same budget.
    """

    def __init__(
        self, helpers: HelperRegistry | None = None, space: AddressSpace | None = None
    ) -> None:
        self.space = space or AddressSpace()
        self.helpers = helpers if helpers is not None else BASE
        self.stack = self.space.add(Region.alloc("stack", STACK_REGION_SIZE))
        self.packet: Region | None = None
        self.packet_headers: PacketHeaders | None = None
        self.insns = 0
        self.resolve_lddw: Callable[[Instruction, int], int] | None = None
        self.output: list[str] = []  # trace_printk lines of the current run

    @property
    def frame_pointer(self) -> int:
        """r10 of the outermost frame (the stack grows down from the region's end)."""
        return self.stack.end

    def reset_stack(self) -> None:
        """Zero every stack frame (runs are deterministic)."""
        ctypes.memset(self.stack.buf, 0, self.stack.size)
