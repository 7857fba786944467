"""LLVM through llvmlite: parse IR, optimize, generate native x86-64 code in-process (MCJIT)."""

from __future__ import annotations

import threading
import time

import llvmlite.binding as llvm

from ..errors import NotSupported

_lock = threading.Lock()
_target: llvm.Target | None = None
_host: tuple[str, str] = ("", "")


def _init() -> llvm.Target:
    global _target, _host
    if _target is None:
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


_QUICK_PASSES = ("sroa",)
_LIGHT_PASSES = (
    "sroa",
    "instruction_combine",
    "simplify_cfg",
    "new_gvn",
    "instruction_combine",
    "simplify_cfg",
)


def _optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, opt_level: int) -> None:
    """IR passes: 0 promotes registers only, 1 a short cleanup pipeline, 2/3 LLVM's -O2/-O3."""
    if opt_level >= 2:
        pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        pto.loop_vectorization = False
        pto.slp_vectorization = False
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=1))
    mpm = llvm.create_new_module_pass_manager()
    for name in _QUICK_PASSES if opt_level <= 0 else _LIGHT_PASSES:
        getattr(mpm, f"add_{name}_pass")()
    mpm.run(mod, pb)


def compile_module(ir: str, *, opt_level: int = 2) -> NativeModule:
    """Parse, verify, optimize and compile ``ir`` to native code.

    ``opt_level`` 0 is the quickest compile (registers promoted, fast instruction
    selection), 1 a light pipeline, 2 (the default) and 3 LLVM's ``-O2``/``-O3``.
    """
    if not 0 <= opt_level <= 3:
        raise ValueError("opt_level must be 0, 1, 2 or 3")
    with _lock:
        t0 = time.perf_counter_ns()
        tm = target_machine(opt_level)
        mod = llvm.parse_assembly(ir)
        mod.triple = llvm.get_process_triple()
        mod.data_layout = str(tm.target_data)
        mod.verify()
        t1 = time.perf_counter_ns()
        _optimize(mod, tm, opt_level)
        t2 = time.perf_counter_ns()
        engine = llvm.create_mcjit_compiler(mod, tm)
        engine.finalize_object()
        t3 = time.perf_counter_ns()
    return NativeModule(engine, mod, {"parse": t1 - t0, "opt": t2 - t1, "codegen": t3 - t2})
