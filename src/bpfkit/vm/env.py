"""The run environment: address space, stack, helpers and per-run state shared by engines."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from ..isa import opcodes as op
from ..isa.instruction import Instruction
from .helpers import BASE, HelperRegistry
from .memory import AddressSpace, Region

STACK_REGION_SIZE = op.STACK_SIZE * op.MAX_CALL_FRAMES


class Env:
    """What a program runs against: its address space, stack frames and helpers.

    ``resolve_lddw(insn, slot) -> int`` turns a pseudo ``lddw`` (map fd, map value, BTF
    id, ...) into the value the program sees; the runtime layer installs it.
    ``packet`` is the region legacy ``ld_abs``/``ld_ind`` loads read from.
    """

    def __init__(
        self, helpers: HelperRegistry | None = None, space: AddressSpace | None = None
    ) -> None:
        self.space = space or AddressSpace()
        self.helpers = helpers if helpers is not None else BASE
        self.stack = self.space.add(Region.alloc("stack", STACK_REGION_SIZE))
        self.packet: Region | None = None
        self.resolve_lddw: Callable[[Instruction, int], int] | None = None
        self.output: list[str] = []  # trace_printk lines of the current run

    @property
    def frame_pointer(self) -> int:
        """r10 of the outermost frame (the stack grows down from the region's end)."""
        return self.stack.end

    def reset_stack(self) -> None:
        """Zero every stack frame (runs are deterministic)."""
        ctypes.memset(self.stack.buf, 0, self.stack.size)
