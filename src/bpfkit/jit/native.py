"""Native helper implementations the JIT calls directly instead of going through Python.

A helper in a :class:`~bpfkit.vm.helpers.HelperRegistry` is a Python function
``fn(env, r1, ..., r5)``. A hot helper can also have a native twin: a C-callable address
plus its signature (:class:`NativeHelper`), registered with :func:`register_native`
against the same Python function. When the JIT compiles a call to a helper whose Python
function has a native twin, it emits a direct call to the address; otherwise it calls
back into Python through the helper trampoline. The interpreter always uses the Python
function, so both must have the same observable behaviour.

Native calling convention: ``uint64_t fn([void *run_ctx,] [uint64_t data,] r1, ..., rN)``
with ``N = nargs``. ``run_ctx`` (with ``takes_ctx``) is the JIT's run context: a helper
that wants to fault stores a nonzero fault kind there (see :mod:`bpfkit.jit.abi`).
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from ..vm.helpers import BASE


@dataclass(frozen=True)
class NativeHelper:
    """A C-callable helper implementation: its address and how to call it."""

    address: int
    nargs: int = 5
    data: int | None = None
    takes_ctx: bool = False
    name: str = ""
    keepalive: object = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.nargs <= 5:
            raise ValueError("a helper takes 0 to 5 register arguments")
        if not self.address:
            raise ValueError("a native helper needs a nonzero address")

    @property
    def signature(self) -> tuple:
        """What generated code depends on (part of the compile-cache key)."""
        return (self.address, self.nargs, self.data, self.takes_ctx)


_NATIVE: weakref.WeakKeyDictionary[Callable, NativeHelper] = weakref.WeakKeyDictionary()


def register_native(fn: Callable, native: NativeHelper) -> None:
    """Declare ``native`` as the native twin of the Python helper function ``fn``."""
    _NATIVE[fn] = native


def unregister_native(fn: Callable) -> None:
    """Forget the native twin of ``fn`` (later compiles call the Python function)."""
    _NATIVE.pop(fn, None)


def native_for(fn: Callable) -> NativeHelper | None:
    """The native twin of a Python helper function, if one is registered."""
    try:
        return _NATIVE.get(fn) or getattr(fn, "__bpf_native__", None)
    except TypeError:  # not weak-referenceable (e.g. a builtin)
        return getattr(fn, "__bpf_native__", None)


def compile_native(
    ir: str, name: str, *, nargs: int = 5, data: int | None = None, takes_ctx: bool = False
) -> NativeHelper:
    """Compile LLVM IR defining ``name`` into a :class:`NativeHelper` (kept alive with it)."""
    from .engine import compile_module

    mod = compile_module(ir, opt_level=2)
    return NativeHelper(mod.address(name), nargs, data, takes_ctx, name, keepalive=mod)


# ---- built-in native twins -------------------------------------------------------
_libc = ctypes.CDLL(None)
_CLOCK_GETTIME = ctypes.cast(_libc.clock_gettime, ctypes.c_void_p).value or 0

_CLOCK_IR = """
define i64 @{name}(i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %a5) nounwind {{
  %ts = alloca [2 x i64], align 8
  %rc = call i32 @clock_gettime(i32 {clock}, ptr %ts)
  %sp = getelementptr inbounds [2 x i64], ptr %ts, i64 0, i64 0
  %np = getelementptr inbounds [2 x i64], ptr %ts, i64 0, i64 1
  %s = load i64, ptr %sp
  %n = load i64, ptr %np
  %ms = mul i64 %s, 1000000000
  %t = add i64 %ms, %n
  ret i64 %t
}}
"""

_PRANDOM_IR = """
@state = internal global i64 {seed}
define i64 @prandom_u32(i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %a5) nounwind {{
  %s = load i64, ptr @state
  %x1 = shl i64 %s, 13
  %s1 = xor i64 %s, %x1
  %x2 = lshr i64 %s1, 7
  %s2 = xor i64 %s1, %x2
  %x3 = shl i64 %s2, 17
  %s3 = xor i64 %s2, %x3
  store i64 %s3, ptr @state
  %r = lshr i64 %s3, 32
  ret i64 %r
}}
"""

_CLOCKS = {
    "ktime_get_ns": 1,  # CLOCK_MONOTONIC, like time.monotonic_ns()
    "ktime_get_boot_ns": 7,  # CLOCK_BOOTTIME
    "ktime_get_coarse_ns": 6,  # CLOCK_MONOTONIC_COARSE
    "ktime_get_tai_ns": 11,  # CLOCK_TAI
}
_builtin_done = False


_clock_module = None


def clock_helper(name: str) -> NativeHelper:
    """A native ``bpf_ktime_get_*_ns`` reading the same clock as the Python helper."""
    global _clock_module
    from .engine import compile_module

    if _clock_module is None:
        import llvmlite.binding as llvm

        # clock_gettime by name (not by address): the same IR in every process, so its
        # machine code can come from the JIT's disk cache
        llvm.add_symbol("clock_gettime", _CLOCK_GETTIME)
        ir = "declare i32 @clock_gettime(i32, ptr)\n" + "".join(
            _CLOCK_IR.format(name=n, clock=c) for n, c in _CLOCKS.items()
        )
        _clock_module = compile_module(ir, opt_level=2, cache=True)
    return NativeHelper(_clock_module.address(name), 5, None, False, name, keepalive=_clock_module)


def prandom_helper(seed: int = 0x9E3779B97F4A7C15) -> NativeHelper:
    """A native ``bpf_get_prandom_u32`` (xorshift64; each call gives a new state)."""
    return compile_native(
        _PRANDOM_IR.format(seed=seed - (1 << 64) if seed >> 63 else seed), "prandom_u32"
    )


def install_builtin() -> None:
    """Register the built-in native twins (clocks, map lookup/update, prandom) once."""
    global _builtin_done
    if _builtin_done:
        return
    _builtin_done = True
    from .hot import install as install_hot  # map lookup/update, prandom

    install_hot()
    if not _CLOCK_GETTIME:
        return
    for hid in BASE.ids():
        h = BASE.get(hid)
        if h is not None and h.name in _CLOCKS and native_for(h.fn) is None:
            register_native(h.fn, clock_helper(h.name))
