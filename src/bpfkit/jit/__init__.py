"""The JIT: eBPF → LLVM IR → native x86-64 code through llvmlite, same semantics as the VM.

from bpfkit.jit import JitProgram, run_program
prog = JitProgram(insns, env)          # compiled once (cached by program + bindings)
r0, count = prog.run(r1, r2)           # native run against env's address space
result = run_program(insns, mem, repeat=1000)   # like the interpreter's run_program
"""

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
