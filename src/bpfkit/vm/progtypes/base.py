"""What every program type shares: the run state helpers see, run outcomes, the base class.

A program type knows its context (the UAPI layout and the VM's kernel-like struct behind
it), converts context accesses at load time, and implements ``test_run`` the way
``BPF_PROG_TEST_RUN`` does for it, or ``run`` for hooks without a test run (kprobes,
tracepoints, perf events), which fire with a context the caller supplies.
"""

from __future__ import annotations

import ctypes
import errno
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import KernelError, NotSupported
from ...isa.instruction import Instruction
from ...uapi.ctx import CtxAccess
from ...uapi.progtypes import ProgTypeInfo
from ..memory import Region
from .convert import convert_ctx_access, pointer_slots

if TYPE_CHECKING:
    from .packet import PacketBuffer

__all__ = ["RunState", "RunOutcome", "ProgTypeVM", "TestRunError"]

M64 = (1 << 64) - 1


class TestRunError(KernelError):
    """A test run the kernel would refuse (``EINVAL`` and friends), with the reason."""

    __test__ = False

    def __init__(self, err: int, hint: str):
        super().__init__(err, "BPF_PROG_TEST_RUN", hint)


@dataclass
class RunState:
    """Per-run state helpers read and write (shared across tail calls)."""

    packet: PacketBuffer | None = None
    output: list[str] = field(default_factory=list)
    tail_calls: int = 0
    redirect: dict[str, Any] | None = None
    kernel_stack: Sequence[int] = ()
    user_stack: Sequence[int] = ()


@dataclass
class RunOutcome:
    """What one test run (or fired run) produced."""

    retval: int
    r0: int
    data_out: bytes = b""
    ctx_out: bytes | None = None
    duration_ns: int = 0
    trace: list[str] = field(default_factory=list)
    redirect: dict[str, Any] | None = None
    runs: int = 1


class ProgTypeVM:
    """A program type in the VM (subclasses per family)."""

    info: ProgTypeInfo

    def __init__(self, info: ProgTypeInfo) -> None:
        self.info = info
        self.access: CtxAccess = info.ctx
        self.slots = pointer_slots(self.access)
        self.kernel_ctx_size = ((self.access.layout.size + 7) & ~7) + 8 * len(self.slots)

    @property
    def name(self) -> str:
        return self.info.type.name.lower()

    def convert(self, insns: Sequence[Instruction]) -> tuple[list[Instruction], int]:
        """Check and convert context accesses (load time): (insns, max context offset)."""
        info: dict = {}
        out = convert_ctx_access(insns, self.access, self.name, info)
        return out, info["max_ctx_offset"]

    #: Whether the verifier's proof of a context access holds in the VM (the JIT then
    #: drops the access's check): true when every context region of this type is at
    #: least as large as the verifier lets a program read (:meth:`ctx_region_size`).
    ctx_proven = True

    def ctx_region_size(self, supplied: int) -> int:
        """Bytes of the context region given ``supplied`` bytes of context: never less
        than the whole context, the most the verifier lets a program of this type read
        or write (the bytes past what was supplied are zeros)."""
        return max(supplied, self.kernel_ctx_size)

    # ---- running ----------------------------------------------------------------------
    def alloc_ctx(self, prog, init: bytes = b"", size: int | None = None) -> Region:
        """A context Region in the program's address space, ``init`` copied in: of
        ``size`` bytes (``ctx_region_size`` of the init if not given)."""
        n = self.ctx_region_size(len(init)) if size is None else size
        r = Region.alloc(f"ctx:{self.name}", max(n, 1), init=init)
        r.size, r.end = n, r.base + n
        if n:
            prog.runtime.space.add(r)
        return r

    @staticmethod
    def repeat_runs(prog, run: RunState, r1: int, repeat: int, engine: str) -> tuple[int, int]:
        """Run ``repeat`` times (at least once): (last r0, mean duration in ns)."""
        repeat = max(1, repeat)
        compiled = prog.engine(engine)  # compile outside the timed loop
        if repeat > 1 and hasattr(compiled, "run_repeat") and prog.native_repeat_ok:
            # the JIT: one native loop, like the kernel's BPF_PROG_TEST_RUN repeat
            return prog.execute_repeat(run, r1, repeat, engine)
        t0 = time.perf_counter_ns()
        r0 = 0
        for _ in range(repeat):
            r0 = prog.execute(run, r1, engine)
        return r0, (time.perf_counter_ns() - t0) // repeat

    def test_run(
        self,
        prog,
        *,
        data: bytes = b"",
        ctx: bytes | None = None,
        repeat: int = 1,
        engine: str = "interp",
        **opts,
    ) -> RunOutcome:
        raise NotSupported(
            f"the kernel has no BPF_PROG_TEST_RUN for {self.name} programs; "
            "fire them with .run(ctx=...)"
        )

    def run(self, prog, ctx: Any = None, *, engine: str = "interp", **opts) -> RunOutcome:
        """Fire the program once with a context (default: test_run semantics)."""
        return self.test_run(prog, ctx=ctx, engine=engine, **opts)


def ctx_bytes(ctx: Any, size: int, what: str) -> bytes:
    """A context given as bytes (or ``None``) checked against its struct size."""
    if ctx is None:
        return b""
    if isinstance(ctx, ctypes.Structure | ctypes.Array):
        ctx = bytes(ctx)
    if not isinstance(ctx, bytes | bytearray | memoryview):
        raise TypeError(f"{what} context must be bytes, not {type(ctx).__name__}")
    ctx = bytes(ctx)
    if len(ctx) > size and any(ctx[size:]):
        raise TestRunError(
            errno.EINVAL, f"{what} context is {len(ctx)} bytes; fields past {size} must be zero"
        )
    return ctx[:size]
