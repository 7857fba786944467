"""The JIT: eBPF → LLVM IR → native x86-64 code through llvmlite, same semantics as the VM.

from bpfkit.jit import JitProgram, run_program
prog = JitProgram(insns, env)          # compiled once (cached by program + bindings)
r0, count = prog.run(r1, r2)           # native run against env's address space
result = run_program(insns, mem, repeat=1000)   # like the interpreter's run_program

llvmlite is an optional dependency (``pip install 'bpfkit[jit]'``): the names below are
imported on first use, so ``bpfkit.jit.safety`` (which the VM's load path uses) and the
rest of bpfkit work without it, and asking for the JIT without it raises
:class:`~bpfkit.errors.NotSupported` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import exports

if TYPE_CHECKING:
    from .native import NativeHelper, compile_native, register_native, unregister_native
    from .runtime import (
        JitProgram,
        TailCallResolver,
        cache_info,
        clear_cache,
        compile_many,
        compile_program,
        run_program,
    )
    from .safety import proven_safe

_WHERE = {
    "NativeHelper": "native",
    "compile_native": "native",
    "register_native": "native",
    "unregister_native": "native",
    "JitProgram": "runtime",
    "TailCallResolver": "runtime",
    "cache_info": "runtime",
    "clear_cache": "runtime",
    "compile_many": "runtime",
    "compile_program": "runtime",
    "run_program": "runtime",
    "proven_safe": "safety",
}

__all__ = [
    "JitProgram",
    "NativeHelper",
    "TailCallResolver",
    "cache_info",
    "clear_cache",
    "compile_many",
    "compile_native",
    "compile_program",
    "proven_safe",
    "register_native",
    "run_program",
    "unregister_native",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
