"""Tracing and utility helpers: printing, memory probes, the current task, stacks, strings.

``bpf_trace_printk``/``bpf_trace_vprintk`` append their line to the run's output (what
``trace_pipe`` would show after the task prefix). The probes read the VM's address space
and fail with ``-EFAULT`` (zeroing the destination) outside it. The current task, the
CPU and the stacks come from the runtime (``env.runtime``: ``task``, ``cpu``) and the
run (``env.run``: ``kernel_stack``, ``user_stack``).
"""

from __future__ import annotations

import errno
import struct
import time

from ..errors import RuntimeFault
from .helpers import HelperRegistry
from .helpers_format import FormatError, format_bpf
from .maps.stack_trace import (
    FAST_STACK_CMP,
    REUSE_STACKID,
    SKIP_FIELD_MASK,
    USER_STACK,
    StackTraceMap,
)

__all__ = ["HELPERS", "read_cstr", "HZ", "INITIAL_JIFFIES"]

HELPERS = HelperRegistry()
M64 = (1 << 64) - 1
HZ = 250
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFFFFFF
MAX_TRACE_PRINTK_SIZE = 1024
MAX_BPRINTF_VARARGS = 12
USER_BUILD_ID = 1 << 11


def neg(e: int) -> int:
    return (-e) & M64


def read_cstr(space, addr: int, limit: int) -> bytes | None:
    """A NUL-terminated string of at most ``limit`` bytes, or ``None`` if it runs off memory."""
    r = space.find(addr, 1)
    if r is None:
        return None
    o = addr - r.base
    chunk = bytes(r.mv[o : min(r.size, o + limit)])
    nul = chunk.find(b"\0")
    if nul >= 0:
        return chunk[:nul]
    return chunk if len(chunk) >= limit else None


def _readers(space):
    def read_mem(addr: int, n: int) -> bytes | None:
        try:
            return space.read(addr, n)
        except RuntimeFault:
            return None

    def read_str(addr: int, limit: int) -> bytes | None:
        return read_cstr(space, addr, limit)

    return read_mem, read_str


def _format(env, fmt_addr: int, fmt_size: int, args: list[int]) -> str | None:
    space = env.runtime.space
    try:
        fmt = space.read(fmt_addr, fmt_size)
    except RuntimeFault:
        return None
    nul = fmt.find(b"\0")
    if nul < 0:
        return None
    try:
        return format_bpf(fmt[:nul], args, *_readers(space))
    except FormatError:
        return None


def _emit(env, text: str) -> int:
    text = text[: MAX_TRACE_PRINTK_SIZE - 1]
    line = text[:-1] if text.endswith("\n") else text
    env.run.output.append(line)
    env.runtime.trace_pipe.append(line)
    return len(text.encode("latin-1"))


@HELPERS.register("trace_printk")
def trace_printk(env, r1, r2, r3, r4, r5):
    text = _format(env, r1, r2, [r3, r4, r5])
    if text is None:
        return neg(errno.EINVAL)
    return _emit(env, text)


def _u64_args(env, data: int, data_len: int) -> list[int] | None:
    if data_len % 8 or data_len > 8 * MAX_BPRINTF_VARARGS or (data_len and not data):
        return None
    if not data_len:
        return []
    try:
        raw = env.runtime.space.read(data, data_len)
    except RuntimeFault:
        return None
    return list(struct.unpack(f"<{data_len // 8}Q", raw))


@HELPERS.register("trace_vprintk")
def trace_vprintk(env, r1, r2, r3, r4, *_):
    args = _u64_args(env, r3, r4)
    text = None if args is None else _format(env, r1, r2, args)
    if text is None:
        return neg(errno.EINVAL)
    return _emit(env, text)


@HELPERS.register("snprintf")
def snprintf(env, r1, r2, r3, r4, r5):
    args = _u64_args(env, r4, r5)
    fmt_size = 1 << 16
    space = env.runtime.space
    fmt = read_cstr(space, r3, fmt_size)
    if args is None or fmt is None:
        return neg(errno.EINVAL)
    try:
        text = format_bpf(fmt, args, *_readers(space)).encode("latin-1")
    except FormatError:
        return neg(errno.EINVAL)
    if r2:
        out = text[: r2 - 1] + b"\0"
        space.write(r1, out)
    return len(text) + 1


# ---- memory probes --------------------------------------------------------------------
#: Below this, a kernel probe reports -ERANGE (not a kernel address) rather than -EFAULT.
LOW_ADDRESS_LIMIT = 1 << 16


def _fault_errno(src: int, kernel: bool) -> int:
    return errno.ERANGE if kernel and src < LOW_ADDRESS_LIMIT else errno.EFAULT


def _probe_read(env, dst: int, size: int, src: int, kernel: bool = False) -> int:
    space = env.runtime.space
    try:
        data = space.read(src, size)
    except RuntimeFault:
        space.zero(dst, size)
        return neg(_fault_errno(src, kernel))
    space.write(dst, data)
    return 0


def _probe_read_str(env, dst: int, size: int, src: int, kernel: bool = False) -> int:
    space = env.runtime.space
    size &= 0xFFFFFFFF
    if size == 0:
        return 0
    r = space.find(src, 1)
    if r is None:
        space.zero(dst, size)
        return neg(_fault_errno(src, kernel))
    o = src - r.base
    chunk = bytes(r.mv[o : min(r.size, o + size - 1)])
    nul = chunk.find(b"\0")
    if nul >= 0:
        space.write(dst, chunk[: nul + 1])
        return nul + 1
    if len(chunk) == size - 1:
        space.write(dst, chunk + b"\0")
        return size
    space.zero(dst, size)
    return neg(errno.EFAULT)


for _name in ("probe_read", "probe_read_user"):
    HELPERS.register(_name, lambda env, r1, r2, r3, *_: _probe_read(env, r1, r2, r3))
for _name in ("probe_read_str", "probe_read_user_str"):
    HELPERS.register(_name, lambda env, r1, r2, r3, *_: _probe_read_str(env, r1, r2, r3))
HELPERS.register(
    "probe_read_kernel", lambda env, r1, r2, r3, *_: _probe_read(env, r1, r2, r3, True)
)
HELPERS.register(
    "probe_read_kernel_str", lambda env, r1, r2, r3, *_: _probe_read_str(env, r1, r2, r3, True)
)


# ---- the current task -----------------------------------------------------------------
@HELPERS.register("get_current_pid_tgid")
def get_current_pid_tgid(env, *_):
    t = env.runtime.task
    return ((t.tgid & 0xFFFFFFFF) << 32) | (t.pid & 0xFFFFFFFF)


@HELPERS.register("get_current_uid_gid")
def get_current_uid_gid(env, *_):
    t = env.runtime.task
    return ((t.gid & 0xFFFFFFFF) << 32) | (t.uid & 0xFFFFFFFF)


@HELPERS.register("get_current_comm")
def get_current_comm(env, r1, r2, *_):
    if not r2:
        return neg(errno.EINVAL)
    env.runtime.space.write_padded(r1, env.runtime.task.comm[: r2 - 1], r2)
    return 0


@HELPERS.register("get_current_task")
def get_current_task(env, *_):
    return env.runtime.task_addr


@HELPERS.register("get_current_task_btf")
def get_current_task_btf(env, *_):
    return env.runtime.task_addr


# ---- CPU, time, randomness ------------------------------------------------------------
@HELPERS.register("get_smp_processor_id")
def get_smp_processor_id(env, *_):
    return env.runtime.cpu


@HELPERS.register("get_numa_node_id")
def get_numa_node_id(env, *_):
    return 0


@HELPERS.register("get_prandom_u32")
def get_prandom_u32(env, *_):
    return env.runtime.prng.next()


@HELPERS.register("jiffies64")
def jiffies64(env, *_):
    return (INITIAL_JIFFIES + time.clock_gettime_ns(time.CLOCK_BOOTTIME) * HZ // 10**9) & M64


# ---- stacks ---------------------------------------------------------------------------
def _stack(env, flags: int) -> list[int]:
    run = env.run
    frames = run.user_stack if flags & USER_STACK else run.kernel_stack
    return list(frames or [])[flags & SKIP_FIELD_MASK :]


@HELPERS.register("get_stackid")
def get_stackid(env, r1, r2, r3, *_):
    m = env.runtime.maps_by_addr.get(r2)
    if not isinstance(m, StackTraceMap):
        raise RuntimeFault(f"bpf_get_stackid with {r2:#x}, which is not a stack trace map")
    if r3 & ~(SKIP_FIELD_MASK | USER_STACK | FAST_STACK_CMP | REUSE_STACKID):
        return neg(errno.EINVAL)
    return m.get_stackid(_stack(env, r3), r3) & M64


@HELPERS.register("get_stack")
def get_stack(env, r1, r2, r3, r4, *_):
    space = env.runtime.space
    size = r3 & 0xFFFFFFFF
    err = 0
    if r4 & ~(SKIP_FIELD_MASK | USER_STACK | USER_BUILD_ID) or (
        r4 & USER_BUILD_ID and not r4 & USER_STACK
    ):
        err = errno.EINVAL
    elem = 32 if r4 & USER_BUILD_ID else 8
    if not err and size % elem:
        err = errno.EINVAL
    if not err and r4 & USER_BUILD_ID:
        err = errno.EOPNOTSUPP
    frames = [] if err else _stack(env, r4)[: size // 8]
    if not err and not frames:
        err = errno.EFAULT
    if err:
        space.zero(r2, size)
        return neg(err)
    data = struct.pack(f"<{len(frames)}Q", *(f & M64 for f in frames))
    space.write_padded(r2, data, size)
    return len(data)


# ---- strings --------------------------------------------------------------------------
def _parse_ull(buf: bytes, flags: int) -> tuple[int, int, bool]:
    """(consumed or -errno, value, negative) like the kernel's ``__bpf_strtoull``."""
    base = flags & 0x1F
    if not buf or flags & ~0x1F or base not in (0, 8, 10, 16):
        return -errno.EINVAL, 0, False
    i = 0
    while i < len(buf) and buf[i] in b" \t\n\v\f\r":
        i += 1
    negative = i < len(buf) and buf[i] == 0x2D
    if negative:
        i += 1
    consumed = i
    s = buf[i : i + 63]
    if not s:
        return -errno.EINVAL, 0, negative
    j = 0
    low = s.lower()
    if base == 0:
        if low[:1] == b"0":
            base = 16 if low[1:2] == b"x" and low[2:3] and low[2:3] in b"0123456789abcdef" else 8
        else:
            base = 10
    if base == 16 and low[:2] == b"0x":
        j = 2
    val = 0
    overflow = False
    start = j
    while j < len(low):
        ch = low[j]
        if 0x30 <= ch <= 0x39:
            d = ch - 0x30
        elif 0x61 <= ch <= 0x66:
            d = ch - 0x61 + 10
        else:
            break
        if d >= base:
            break
        val = val * base + d
        if val > M64:
            overflow = True
            val &= M64
        j += 1
    if overflow:
        return -errno.ERANGE, 0, negative
    if j == start:
        return -errno.EINVAL, 0, negative
    return consumed + j, val, negative


def _strto(env, r1, r2, r3, r4, signed: bool) -> int:
    space = env.runtime.space
    space.store(r4, 8, 0)  # the kernel clears the result first
    try:
        buf = space.read(r1, r2 & 0xFFFFFFFF) if r2 else b""
    except RuntimeFault:
        return neg(errno.EFAULT)
    n, val, negative = _parse_ull(buf, r3)
    if n < 0:
        return n & M64
    if signed:
        if negative:
            v = -val
            if v > 0 or v < -(1 << 63):
                return neg(errno.ERANGE)
        else:
            if val >> 63:
                return neg(errno.ERANGE)
            v = val
        space.store(r4, 8, v & M64)
    else:
        if negative:
            return neg(errno.EINVAL)
        space.store(r4, 8, val)
    return n


@HELPERS.register("strtol")
def strtol(env, r1, r2, r3, r4, *_):
    return _strto(env, r1, r2, r3, r4, True)


@HELPERS.register("strtoul")
def strtoul(env, r1, r2, r3, r4, *_):
    return _strto(env, r1, r2, r3, r4, False)


@HELPERS.register("strncmp")
def strncmp(env, r1, r2, r3, *_):
    space = env.runtime.space
    n = r2 & 0xFFFFFFFF
    s1 = space.read(r1, n)
    s2 = read_cstr(space, r3, max(n, 1)) or b""
    for i in range(n):
        c1 = s1[i]
        c2 = s2[i] if i < len(s2) else 0
        if c1 != c2:
            return 1 if c1 > c2 else M64
        if not c1:
            break
    return 0
