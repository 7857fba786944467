"""LLVM through llvmlite: parse IR, optimize, generate native x86-64 code in-process (MCJIT).

Modules compiled with ``cache=True`` (the JIT's built-in runtime and native helpers, the
same in every process) keep their machine code on disk, so a fresh process loads them
instead of compiling them again (:mod:`bpfkit.jit.cache`).
"""

from __future__ import annotations

import threading
import time

from ..errors import NotSupported

try:
    import llvmlite.binding as llvm
except ImportError as _e:  # the optional extra is not installed
    raise NotSupported(
        "the JIT needs llvmlite, which is not installed: pip install 'bpfkit[jit]'"
    ) from _e

_lock = threading.Lock()
_target: llvm.Target | None = None
_host: tuple[str, str] = ("", "")


# Keep the program's branches as branches: LLVM otherwise if-converts BPF's many small
# diamonds (and their instruction-count updates) into select chains, which costs more
# than well-predicted branches do. These are process-wide LLVM options.
LLVM_OPTIONS = (
    "-phi-node-folding-threshold=0",
    "-two-entry-phi-node-folding-threshold=0",
)


def _init() -> llvm.Target:
    global _target, _host
    if _target is None:
        for option in LLVM_OPTIONS:
            llvm.set_option("bpfkit", option)
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _target = llvm.Target.from_default_triple()
        _host = (llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())
    return _target


def target_machine(opt_level: int = 2) -> llvm.TargetMachine:
    """A target machine for the host CPU (a new one each time: an engine owns its machine)."""
    target = _init()
    cpu, features = _host
    return target.create_target_machine(
        cpu=cpu, features=features, opt=opt_level, codemodel="jitdefault"
    )


class NativeModule:
    """Compiled native code of one LLVM module; the code lives as long as this object."""

    def __init__(self, engine: llvm.ExecutionEngine, module: llvm.ModuleRef, timings: dict):
        self._engine = engine
        self._module = module
        self.timings = timings

    def address(self, name: str) -> int:
        """Address of the exported function ``name``."""
        addr = self._engine.get_function_address(name)
        if not addr:
            raise NotSupported(f"compiled module has no function {name!r}")
        return addr

    def global_address(self, name: str) -> int:
        """Address of the global variable ``name``."""
        addr = self._engine.get_global_value_address(name)
        if not addr:
            raise NotSupported(f"compiled module has no global {name!r}")
        return addr

    def asm(self) -> str:
        """x86-64 assembly of the optimized module (for inspection; compiles again)."""
        return target_machine(2).emit_assembly(self._module)


# The IR pipelines of opt levels 0-2 (3 is LLVM's own -O2 pipeline). Level 2 gets about
# all of -O2's speed on BPF code (promoted registers, folded constants and checks, rotated
# loops, redundant loads removed) in about half its compile time. Level 1, for large
# programs, is one clean-up round with LLVM's fast instruction selector: about half of
# level 2's compile time for code that is 0-30% slower.
_PASSES = {
    0: ("sroa",),
    1: ("sroa", "sccp", "simplify_cfg"),
    2: (
        "sroa",
        "instruction_combine",
        "simplify_cfg",
        "sccp",
        "loop_rotate",
        "new_gvn",
        "jump_threading",
        "instruction_combine",
        "simplify_cfg",
        "dead_store_elimination",
    ),
}


# Code-generator options of opt level 1 (process-wide LLVM options, so set and reset
# under the compile lock): the fast instruction selector, and none of the optional
# machine passes — CodeGenPrepare, the machine scheduler, machine CSE, LICM and sinking,
# peephole, stack-slot coloring, late copy propagation, branch folding, tail
# duplication, block placement (the IR already puts cold blocks last). Together about a
# third of level 1's code-generation time; on the benchmark programs the code runs as
# fast (within noise) as with them, and large programs run at level 1 only until their
# level-2 compile is ready.
_LEVEL1_CODEGEN = tuple(
    (f"-{name}={on}", f"-{name}={off}")
    for name, on, off in (
        ("fast-isel", "true", "false"),
        ("disable-cgp", "true", "false"),
        ("enable-misched", "false", "true"),
        ("disable-machine-cse", "true", "false"),
        ("disable-machine-licm", "true", "false"),
        ("disable-machine-sink", "true", "false"),
        ("disable-peephole", "true", "false"),
        ("disable-ssc", "true", "false"),
        ("disable-copyprop", "true", "false"),
        ("disable-branch-fold", "true", "false"),
        ("disable-tail-duplicate", "true", "false"),
        ("disable-early-taildup", "true", "false"),
        ("disable-block-placement", "true", "false"),
    )
)


def _optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, opt_level: int) -> None:
    """Run the IR pipeline of ``opt_level`` (see ``_PASSES``; 3 is LLVM's -O2)."""
    if opt_level >= 3:
        pto = llvm.create_pipeline_tuning_options(speed_level=2)
        pto.loop_vectorization = False
        pto.slp_vectorization = False
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=1))
    mpm = llvm.create_new_module_pass_manager()
    for name in _PASSES[opt_level]:
        getattr(mpm, f"add_{name}_pass")()
    mpm.run(mod, pb)


def compile_module(ir: str, *, opt_level: int = 2, cache: bool = False) -> NativeModule:
    """Parse, verify, optimize and compile ``ir`` to native code.

    ``opt_level`` 0 is the quickest compile (registers promoted, fast instruction
    selection and register allocation), 1 a light cleanup with fast instruction
    selection, 2 (the default) a short -O2-like pipeline, 3 LLVM's full ``-O2`` pipeline.
    With ``cache`` the machine code is kept on disk, keyed by everything it depends on
    (``ir`` must then hold no process-specific addresses: name external functions).
    """
    if not 0 <= opt_level <= 3:
        raise ValueError("opt_level must be 0, 1, 2 or 3")
    from . import cache as jit_cache

    with _lock:
        t0 = time.perf_counter_ns()
        tm = target_machine(opt_level)
        key = jit_cache.key(ir, opt_level, _host, LLVM_OPTIONS) if cache else None
        cached = jit_cache.load(key) if key is not None else None
        mod = llvm.parse_assembly(ir)
        mod.triple = llvm.get_process_triple()
        mod.data_layout = str(tm.target_data)
        if opt_level != 1 and cached is None:
            # level 1 is the first tier of large programs (compile time first): the
            # lowering's IR is the same at every level, and tests verify it at 0 and 2
            mod.verify()
        t1 = time.perf_counter_ns()
        if cached is None:
            _optimize(mod, tm, opt_level)
        t2 = time.perf_counter_ns()
        # LLVM reads these options when it builds the code generator (at
        # finalize_object); they are process-wide, so they are set and reset under the lock
        options = _LEVEL1_CODEGEN if opt_level == 1 else ()
        for on, _off in options:
            llvm.set_option("bpfkit", on)
        produced: list[bytes] = []
        try:
            engine = llvm.create_mcjit_compiler(mod, tm)
            if key is not None:
                engine.set_object_cache(
                    notify_func=lambda _m, obj: produced.append(bytes(obj)),
                    getbuffer_func=lambda _m: cached,
                )
            engine.finalize_object()
        finally:
            for _on, off in options:
                llvm.set_option("bpfkit", off)
        t3 = time.perf_counter_ns()
    if key is not None and cached is None and produced:
        jit_cache.store(key, produced[-1])
    timings = {"parse": t1 - t0, "opt": t2 - t1, "codegen": t3 - t2, "cached": cached is not None}
    return NativeModule(engine, mod, timings)
