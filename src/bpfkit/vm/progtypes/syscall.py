"""BPF_PROG_TYPE_SYSCALL: the context is plain memory the caller passes in and gets back.

The test run follows ``bpf_prog_test_run_syscall``: no data, no repeat; the context (at
most 65535 bytes, at least as much as the program reads) is copied in, the program may
read and write it, and it is copied back out.
"""

from __future__ import annotations

import errno
from typing import Any

from .base import ProgTypeVM, RunOutcome, RunState, TestRunError

__all__ = ["SyscallProgType"]


class SyscallProgType(ProgTypeVM):
    """BPF_PROG_TYPE_SYSCALL.

    The context is exactly the caller's bytes: the verifier allows any constant offset
    below 65535, so its proof says nothing about a shorter context and the JIT keeps
    every context access's check (``ctx_proven``); like the kernel, a test run refuses a
    context shorter than the furthest access the program makes.
    """

    ctx_proven = False

    def ctx_region_size(self, supplied: int) -> int:
        return supplied

    def test_run(
        self,
        prog,
        *,
        data: bytes = b"",
        ctx: Any = None,
        repeat: int = 1,
        engine: str = "interp",
        **opts,
    ) -> RunOutcome:
        if data or repeat > 1:
            raise TestRunError(errno.EINVAL, "syscall test runs take no data and no repeat")
        raw = b"" if ctx is None else bytes(ctx)
        if len(raw) > 0xFFFF or len(raw) < prog.max_ctx_offset:
            raise TestRunError(
                errno.EINVAL, f"the context must be {prog.max_ctx_offset}..65535 bytes"
            )
        c = self.alloc_ctx(prog, raw, size=len(raw))
        run = RunState()
        try:
            r0, dt = self.repeat_runs(prog, run, c.base if raw else 0, 1, engine)
            ctx_out = bytes(c.mv[: c.size])
        finally:
            prog.runtime.space.remove(c)
        return RunOutcome(
            r0 & 0xFFFFFFFF, r0, b"", ctx_out if raw else None, dt, run.output, None, 1
        )
