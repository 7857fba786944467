"""Tracing programs: kprobes (``pt_regs``), tracepoints (the raw record), raw tracepoints
(``u64`` arguments) and perf events (``bpf_perf_event_data``).

The kernel has no test run for kprobes, tracepoints and perf events: in the VM they are
fired with :meth:`run` and a context the caller supplies — bytes, or for ``pt_regs`` a
dict of register values (``rdi``/``di``/``parm1``..``parm6``, ``ret``, ...). Raw
tracepoints also have ``test_run`` as ``bpf_prog_test_run_raw_tp`` defines it: no data,
at most 12 arguments, no repeat.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from ...uapi.ctx import MAX_BPF_FUNC_ARGS, PERF_EVENT_DATA, PT_REGS, PT_REGS_NAMES
from .base import ProgTypeVM, RunOutcome, RunState, TestRunError, ctx_bytes

__all__ = [
    "KprobeProgType",
    "TracepointProgType",
    "RawTracepointProgType",
    "PerfEventProgType",
    "pt_regs",
    "REG_ALIASES",
]

#: Register names accepted in a ``pt_regs`` dict, beyond the UAPI ones.
REG_ALIASES = {
    "di": "rdi",
    "si": "rsi",
    "dx": "rdx",
    "cx": "rcx",
    "ax": "rax",
    "bx": "rbx",
    "bp": "rbp",
    "sp": "rsp",
    "ip": "rip",
    "flags": "eflags",
    "orig_ax": "orig_rax",
    "parm1": "rdi",
    "parm2": "rsi",
    "parm3": "rdx",
    "parm4": "rcx",
    "parm5": "r8",
    "parm6": "r9",
    "ret": "rax",
    "rc": "rax",
    "fp": "rbp",
}
M64 = (1 << 64) - 1


def pt_regs(values: Mapping[str, int] | bytes | None) -> bytes:
    """A ``struct pt_regs`` (x86-64) from register values by name, or bytes as they are."""
    if values is None:
        return bytes(PT_REGS.size)
    if isinstance(values, bytes | bytearray | memoryview):
        return ctx_bytes(values, PT_REGS.size, "pt_regs").ljust(PT_REGS.size, b"\0")
    regs = [0] * len(PT_REGS_NAMES)
    for name, v in values.items():
        key = REG_ALIASES.get(name.lower(), name.lower())
        if key not in PT_REGS_NAMES:
            raise ValueError(f"unknown register {name!r} (pt_regs has {', '.join(PT_REGS_NAMES)})")
        regs[PT_REGS_NAMES.index(key)] = int(v) & M64
    return struct.pack(f"<{len(regs)}Q", *regs)


class _Fired(ProgTypeVM):
    """A type whose programs fire with a context and have no packet."""

    def ctx_data(self, ctx: Any) -> bytes:
        return ctx_bytes(ctx, self.access.layout.size, self.access.layout.name)

    def run(
        self,
        prog,
        ctx: Any = None,
        *,
        engine: str = "interp",
        repeat: int = 1,
        kernel_stack: Sequence[int] = (),
        user_stack: Sequence[int] = (),
        **opts,
    ) -> RunOutcome:
        raw = self.ctx_data(ctx)
        # the whole context (zeros past what was supplied): a verified program may read
        # any field of it, and the JIT reads proven fields without a check
        c = self.alloc_ctx(prog, raw)
        run = RunState(kernel_stack=kernel_stack, user_stack=user_stack)
        try:
            r0, dt = self.repeat_runs(prog, run, c.base, repeat, engine)
            ctx_out = bytes(c.mv[: len(raw)])
        finally:
            prog.runtime.space.remove(c)
        return RunOutcome(r0 & 0xFFFFFFFF, r0, b"", ctx_out, dt, run.output, None, max(1, repeat))


class KprobeProgType(_Fired):
    """BPF_PROG_TYPE_KPROBE: ``struct pt_regs``."""

    def ctx_data(self, ctx: Any) -> bytes:
        return pt_regs(ctx)


class TracepointProgType(_Fired):
    """BPF_PROG_TYPE_TRACEPOINT: the event's record (8-byte common header first)."""

    def ctx_data(self, ctx: Any) -> bytes:
        raw = b"" if ctx is None else bytes(ctx)
        if len(raw) > self.access.layout.size:
            raise ValueError(f"a tracepoint record is at most {self.access.layout.size} bytes")
        return raw.ljust(8, b"\0")


class PerfEventProgType(_Fired):
    """BPF_PROG_TYPE_PERF_EVENT: ``struct bpf_perf_event_data``."""

    def ctx_data(self, ctx: Any) -> bytes:
        if isinstance(ctx, Mapping):
            d = dict(ctx)
            period = int(d.pop("sample_period", 0))
            addr = int(d.pop("addr", 0))
            regs = d.pop("regs", None) if "regs" in d else d
            return pt_regs(regs) + struct.pack("<QQ", period & M64, addr & M64)
        return ctx_bytes(ctx, PERF_EVENT_DATA.size, "bpf_perf_event_data").ljust(
            PERF_EVENT_DATA.size, b"\0"
        )


class RawTracepointProgType(_Fired):
    """BPF_PROG_TYPE_RAW_TRACEPOINT: ``u64 args[]``."""

    def ctx_data(self, ctx: Any) -> bytes:
        if ctx is None:
            return b""
        if isinstance(ctx, bytes | bytearray | memoryview):
            raw = bytes(ctx)
        else:
            raw = struct.pack(f"<{len(ctx)}Q", *(int(a) & M64 for a in ctx))
        if len(raw) > 8 * MAX_BPF_FUNC_ARGS:
            raise TestRunError(
                errno.EINVAL, f"raw tracepoints take at most {MAX_BPF_FUNC_ARGS} arguments"
            )
        return raw

    def test_run(
        self,
        prog,
        *,
        data: bytes = b"",
        ctx: Any = None,
        repeat: int = 1,
        engine: str = "interp",
        cpu: int | None = None,
        **opts,
    ) -> RunOutcome:
        if data or repeat > 1:
            raise TestRunError(errno.EINVAL, "raw tracepoint test runs take no data and no repeat")
        raw = self.ctx_data(ctx)
        if len(raw) < prog.max_ctx_offset:
            raise TestRunError(
                errno.EINVAL,
                f"the program reads {prog.max_ctx_offset} bytes "
                f"of arguments; only {len(raw)} given",
            )
        rt = prog.runtime
        old = rt.cpu
        if cpu is not None:
            if not 0 <= cpu < rt.ncpus:
                raise TestRunError(errno.ENXIO, f"no CPU {cpu}")
            rt.cpu = cpu
        try:
            out = self.run(prog, raw, engine=engine, **opts)
        finally:
            rt.cpu = old
        out.ctx_out = None
        return out
