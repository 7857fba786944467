"""The VM runtime: maps, programs and the state they share, built from an ``ObjectSpec``.

A :class:`VMRuntime` is one loaded object: an address space every map value, context,
packet and stack lives in; its maps (by name and by the address programs hold); its
programs, each relocated (map references become the VM's map fds), checked against the
helpers its type may call, with context accesses converted, and compiled on first use;
and the simulated machine around them — CPU count and current CPU, the current task,
the random source, the ``trace_pipe``.

:func:`load_spec` builds one from an :class:`~bpfkit.obj.spec.ObjectSpec`; the
user-facing objects (:mod:`bpfkit.vm.object`) wrap it.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BpfError, NotSupported, RuntimeFault, VerifierError
from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..isa.loader import runnable_slots
from ..uapi.enums import HELPER_NAMES, MapType, ProgType
from ..uapi.progtypes import prog_type_info
from .env import STACK_REGION_SIZE, Env
from .helpers_maps import TailCall
from .helpers_runtime import registry_for
from .interp import DEFAULT_BUDGET, CompiledProgram
from .maps import (
    F_RDONLY_PROG,
    ArrayMap,
    FdArrayMap,
    HashOfMapsMap,
    MapContext,
    MapError,
    PerfEventArrayMap,
    ProgArrayMap,
    QueueMap,
    RingBufMap,
    VMMap,
    create_map,
)
from .maps.native import NativeEnv
from .memory import AddressSpace, Region
from .prng import Prng
from .progtypes import ProgTypeVM, RunOutcome, RunState, prog_type_vm

if TYPE_CHECKING:
    from ..obj.spec import MapSpec, ObjectSpec, ProgramSpec

__all__ = [
    "NotVerified",
    "Task",
    "VMEnv",
    "VMRuntime",
    "VMProgram",
    "load_spec",
    "possible_cpus",
]

M64 = (1 << 64) - 1
CALLBACK_NEST = 8
#: helpers a repeated run must go through Python for: tail calls, callbacks
_PYTHON_LOOP_HELPERS = frozenset(
    i
    for i, name in HELPER_NAMES.items()
    if name
    in (
        "tail_call",
        "loop",
        "for_each_map_elem",
        "find_vma",
        "timer_set_callback",
        "user_ringbuf_drain",
    )
)


def possible_cpus() -> int:
    """The number of possible CPUs of this machine (what per-CPU maps size by)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        n = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            n += (int(hi) if hi else int(lo)) - int(lo) + 1
        return max(n, 1)
    except (OSError, ValueError):
        return os.cpu_count() or 1


@dataclass
class Task:
    """The task the program runs on behalf of (``bpf_get_current_*``)."""

    pid: int
    tgid: int
    uid: int = 0
    gid: int = 0
    comm: bytes = b""
    #: its cgroup v2 path (``bpf_current_task_under_cgroup``); None: read from /proc
    cgroup: str | None = None

    @classmethod
    def current(cls) -> Task:
        """This Python thread, as the kernel sees it (what a test run in the kernel gets)."""
        tid = threading.get_native_id()
        comm = b""
        for path in (f"/proc/self/task/{tid}/comm", "/proc/self/comm"):
            try:
                with open(path, "rb") as f:
                    comm = f.read().rstrip(b"\n")[:15]
                break
            except OSError:
                continue
        return cls(tid, os.getpid(), os.getuid(), os.getgid(), comm)


@dataclass(frozen=True)
class NotVerified:
    """``VMProgram.verification`` of a program loaded without verification because the VM
    can neither verify nor run its type (fentry/fexit, LSM, struct_ops, ext ...).

    Loading such a program lets an object load for its other programs; running it raises
    :class:`~bpfkit.errors.NotSupported` naming the type. ``ok`` is False (nothing was
    proven) and ``verified`` False; ``reason`` says why.
    """

    reason: str
    ok: bool = False
    verified: bool = False
    stats: Any = None
    log: str = ""
    error: Any = None
    accesses: Any = None

    def to_json(self) -> dict:
        """The shape of ``VerifyResult.to_json`` with ``verified`` false and the reason."""
        return {"ok": False, "verified": False, "insn": None, "reason": self.reason}


class VMEnv(Env):
    """A program's environment: its stack (and callback frames), helpers, runtime, run."""

    def __init__(self, runtime: VMRuntime, program: VMProgram, helpers) -> None:
        super().__init__(helpers=helpers, space=runtime.space)
        # one stack region for the program's frames and, below them, nested callbacks'
        self.space.remove(self.stack)
        self.stack = self.space.add(
            Region.alloc(f"stack:{program.name}", STACK_REGION_SIZE * (1 + CALLBACK_NEST))
        )
        self.runtime = runtime
        self.program = program
        self.prog_type = program.prog_type
        self.run: RunState | None = None
        self.compiled: Any = None
        self.cb_depth = 0
        self.resolve_lddw = runtime.resolve_lddw
        #: the runtime's native words (maps, CPU, PRNG) for the JIT's native helpers
        self.native_data = runtime.native.address

    def call_function(
        self, target: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0
    ) -> int:
        """Call the BPF function at code address ``target`` (a callback): its r0."""
        interp = self.program.interp()
        slot = None
        for prog in (self.compiled, interp):
            span = _code_span(prog)
            if span is not None and span[0] <= target < span[1] and not (target - span[0]) % 8:
                slot = (target - span[0]) // 8
                break
        if slot is None or interp.slot_insn[slot] is None:
            raise RuntimeFault(f"callback {target:#x} is not a function of the program")
        if self.cb_depth >= CALLBACK_NEST:
            raise RuntimeFault(f"callbacks nested more than {CALLBACK_NEST} deep")
        self.cb_depth += 1
        try:
            r10 = self.stack.end - self.cb_depth * STACK_REGION_SIZE
            # the count goes on from the caller's (``insns``, which the engines set
            # before a helper that runs callbacks): one budget bounds the program and
            # all its callbacks together (2^23 bpf_loop iterations of a 2^23-iteration
            # bpf_loop fault at the budget instead of running 2^46 callbacks)
            r0, self.insns = interp.function(slot)(r1, r2, r3, r4, r5, r10, 0, self.insns)
        finally:
            self.cb_depth -= 1
        return r0 & M64


def _code_span(prog: Any) -> tuple[int, int] | None:
    """[start, end) of the code buffer an engine's function pointers point into."""
    code = getattr(prog, "code", None)
    if isinstance(code, Region):
        return code.base, code.end
    code = getattr(getattr(prog, "compiled", None), "code", None)
    if code is not None:
        base = ctypes.addressof(code)
        return base, base + ctypes.sizeof(code)
    return None


class VMProgram:
    """A loaded program: converted instructions, its environment, engines on demand."""

    def __init__(
        self,
        runtime: VMRuntime,
        name: str,
        prog_type: ProgType | int,
        insns: Sequence[Instruction],
        *,
        section: str = "",
        license: str = "",
        spec: ProgramSpec | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = name
        try:
            self.prog_type: ProgType | int = ProgType(prog_type)
        except ValueError:
            self.prog_type = int(prog_type)
        self.section = section
        self.license = license
        self.spec = spec
        self.handler: ProgTypeVM | None
        self.unsupported: str | None = None
        insns = list(insns)
        check_helpers(insns, self.prog_type)
        #: the verifier's result on load (None when verification is off; a NotVerified
        #: saying why for a type the VM cannot run), and the instructions it proved in bounds
        self.verification: Any = None
        self.safe: frozenset[int] | None = None
        try:
            self.handler = prog_type_vm(self.prog_type)
        except NotSupported:
            where = f" (section {section})" if section else ""
            self.unsupported = (
                f"program {name!r}: the VM cannot run {self.type_name} programs{where}; "
                "it was loaded without verification and will not run"
            )
            self.handler = None
            self.max_ctx_offset = 0
            self.verification = NotVerified(
                f"the VM can neither verify nor run {self.type_name} programs"
            )
        else:
            if runtime.verify:
                self._verify(insns)
            insns, self.max_ctx_offset = self.handler.convert(insns)
        runnable_slots(insns)  # what every engine refuses (r10 written ...), at load
        self.insns = insns
        self.env = VMEnv(runtime, self, registry_for(int(self.prog_type)))
        self._engines: dict[str, Any] = {}
        self.id = runtime.ctx.new_id(self)
        self.runs = 0

    def _verify(self, insns: list[Instruction]) -> None:
        """Run bpfkit's verifier as the kernel would on load; keep what it proved."""
        from ..jit.safety import safe_indices
        from ..verifier import global_funcs_of, map_desc, spec_lines, verify

        rt = self.runtime
        maps: dict[int, Any] = {}
        for insn in insns:
            if insn.is_lddw and insn.src in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_VALUE):
                m = rt.map_by_fd(insn.imm_lo)
                if m is None or insn.imm_lo in maps:
                    continue
                desc = map_desc(m, m.name, rt.btf)
                if m.frozen and isinstance(m, ArrayMap):
                    desc.data = bytes(m.mv[: m.value_size])
                maps[insn.imm_lo] = desc
        spec = self.spec
        line_info = spec_lines(spec) if spec is not None and spec.line_info else None
        # the load flags and attach type the kernel would get (a syscall program is
        # always loaded sleepable, as libbpf loads SEC("syscall"))
        flags = int(getattr(spec, "flags", 0) or 0) if spec is not None else 0
        if self.prog_type == ProgType.SYSCALL:
            flags |= 1 << 4  # BPF_F_SLEEPABLE
        attach = getattr(spec, "expected_attach_type", None) if spec is not None else None
        self.verification = verify(
            insns,
            prog_type=int(self.prog_type),
            maps=maps,
            unpriv=rt.unpriv,
            line_info=line_info,
            license=self.license or "GPL",
            record_accesses=True,
            global_funcs=global_funcs_of(spec, rt.btf, int(self.prog_type)) if spec else None,
            prog_flags=flags,
            attach_type=None if attach is None else int(attach),
        )
        self.safe = frozenset(
            safe_indices(insns, self.verification.accesses or {}, self._trusted(maps))
        )

    def _trusted(self, maps: dict[int, Any]) -> dict[int, int]:
        """What the verifier's proof of an access is worth in the VM, per pointer type
        (READ/WRITE): the JIT drops the check of an access only where its proof holds.

        - context: only if every context region of the type is as large as the
          verifier's limit (``ctx_proven``; not for syscall programs' caller memory);
        - map values: the verifier bounds an access by the value size, but knows
          neither the map's ``BPF_F_RDONLY_PROG``/``BPF_F_WRONLY_PROG`` permissions nor
          that a hash element dies with its delete (a pointer kept past it must fault,
          as it does in the interpreter). Trusted only when every map the program can
          reach is an array (values live as long as the map), and only for the kinds
          of access every such map's values allow programs.
        """
        from ..jit.safety import proven_types
        from ..verifier import state as vstate

        trusted = proven_types()
        handler = self.handler
        if handler is None or not handler.ctx_proven:
            trusted.pop(vstate.PTR_TO_CTX, None)
        mv = vstate.PTR_TO_MAP_VALUE
        for fd in maps:
            m = self.runtime.map_by_fd(fd)
            if isinstance(m, RingBufMap | PerfEventArrayMap | ProgArrayMap | QueueMap):
                continue  # programs get no pointers to their values
            if not isinstance(m, ArrayMap):
                trusted.pop(mv, None)  # elements that can be freed, or maps of maps
                break
            trusted[mv] &= m.region.perms
        return trusted

    @property
    def fd(self) -> int:
        """The VM's fd of this program (its id), for prog arrays."""
        return self.id

    @property
    def type_name(self) -> str:
        return getattr(self.prog_type, "name", str(self.prog_type)).lower()

    # ---- engines ------------------------------------------------------------------------
    def runnable(self) -> None:
        """Raise ``NotSupported`` (naming the type) unless the VM can run this program:
        a program of a type the VM cannot verify or run never runs, not even through a
        tail call."""
        if self.handler is None:
            raise NotSupported(self.unsupported or f"the VM cannot run {self.type_name} programs")

    def interp(self) -> CompiledProgram:
        """The interpreter's compiled form (made on first use)."""
        self.runnable()
        p = self._engines.get("interp")
        if p is None:
            p = self._engines["interp"] = CompiledProgram(
                self.insns, self.env, budget=self.runtime.budget
            )
        return p

    def engine(self, name: str) -> Any:
        """The compiled program of engine ``interp`` or ``jit`` (or a traced ``trace``)."""
        if name == "interp":
            return self.interp()
        self.runnable()
        if name == "trace" and "trace" in self._engines:
            return self._engines["trace"]
        if name != "jit":
            raise NotSupported(f"unknown engine {name!r} (interp or jit)")
        p = self._engines.get("jit")
        if p is None:
            p = self._engines["jit"] = _jit_compile(self)
        return p

    def set_tracer(self, tracer: Any) -> None:
        """Compile engine ``trace``: the interpreter calling ``tracer(pc, *regs)`` per insn."""
        self.runnable()
        self._engines["trace"] = CompiledProgram(
            self.insns, self.env, budget=self.runtime.budget, trace=tracer
        )

    def require_handler(self) -> ProgTypeVM:
        """The type's handler (``NotSupported`` for a type the VM cannot run)."""
        self.runnable()
        assert self.handler is not None
        return self.handler

    # ---- running ------------------------------------------------------------------------
    def execute(self, run: RunState, r1: int, engine: str = "interp") -> int:
        """One invocation from the hook (following tail calls): r0."""
        prog = self
        run.tail_calls = 0
        packet = run.packet.data_region if run.packet is not None else None
        headers = run.packet.headers() if run.packet is not None else None
        self.runtime.settle_maps()
        insns = 0  # one budget for the run: a tail call's target counts on
        while True:
            env = prog.env
            env.run = run
            env.packet = packet
            env.packet_headers = headers
            env.insns = insns
            compiled = prog.engine(engine)
            env.compiled = compiled
            ctypes.memset(env.stack.end - STACK_REGION_SIZE, 0, STACK_REGION_SIZE)
            prog.runs += 1
            try:
                r0, _n = compiled.run(r1, insns=insns)
                return r0 & M64
            except TailCall as tc:
                prog = tc.target  # type: ignore[assignment]
                r1 = tc.ctx
                insns = env.insns  # the count at the tail call (the engines set it)
            except RecursionError:
                raise RuntimeFault("call stack exhausted") from None
            finally:
                env.run = None

    @property
    def native_repeat_ok(self) -> bool:
        """Whether repeated runs may loop in native code: no tail calls (which unwind
        through Python to the dispatch loop of :meth:`execute`), no callbacks (which run
        in the interpreter, through Python)."""
        return not any(
            (i.is_helper_call and i.imm in _PYTHON_LOOP_HELPERS) or i.is_callx for i in self.insns
        )

    def execute_repeat(self, run: RunState, r1: int, repeat: int, engine: str = "jit") -> tuple:
        """``repeat`` invocations in the engine's native loop: (last r0, mean ns per run).

        Like the kernel's test-run loop, the runs share the context and packet and the
        stack is not cleared between them.
        """
        env = self.env
        run.tail_calls = 0
        env.run = run
        env.insns = 0
        self.runtime.settle_maps()
        env.packet = run.packet.data_region if run.packet is not None else None
        compiled = self.engine(engine)
        env.compiled = compiled
        ctypes.memset(env.stack.end - STACK_REGION_SIZE, 0, STACK_REGION_SIZE)
        self.runs += repeat
        try:
            r0, _n, total = compiled.run_repeat(repeat, r1)
        except RecursionError:
            raise RuntimeFault("call stack exhausted") from None
        finally:
            env.run = None
        return r0 & M64, total // repeat

    def test_run(
        self,
        *,
        data: bytes = b"",
        ctx: Any = None,
        repeat: int = 1,
        engine: str = "interp",
        cpu: int | None = None,
        **opts,
    ) -> RunOutcome:
        """``BPF_PROG_TEST_RUN`` for this program's type."""
        handler = self.require_handler()
        rt = self.runtime
        old = rt.cpu
        if cpu is not None and handler.info.test_run != "raw_tp":
            rt.cpu = cpu
            cpu = None
        try:
            if cpu is not None:
                opts["cpu"] = cpu
            return handler.test_run(self, data=data, ctx=ctx, repeat=repeat, engine=engine, **opts)
        finally:
            rt.cpu = old

    def fire(
        self, ctx: Any = None, *, engine: str = "interp", cpu: int | None = None, **opts
    ) -> RunOutcome:
        """Run once with a supplied context, as its hook would (tracing types)."""
        handler = self.require_handler()
        rt = self.runtime
        old = rt.cpu
        if cpu is not None:
            rt.cpu = cpu
        try:
            return handler.run(self, ctx, engine=engine, **opts)
        finally:
            rt.cpu = old

    def close(self) -> None:
        self.runtime.space.remove(self.env.stack)
        self.runtime.ctx.objects.pop(self.id, None)

    def __repr__(self) -> str:
        return f"<VMProgram {self.name!r} {self.type_name} {len(self.insns)} insns>"


def _jit_compile(prog: VMProgram) -> Any:
    try:
        from .. import jit  # type: ignore[attr-defined]
    except ImportError:
        raise NotSupported("the JIT engine is not available in this build") from None
    for attr in ("JitProgram", "CompiledJit", "compile_program"):
        maker = getattr(jit, attr, None)
        if maker is not None:
            return maker(prog.insns, prog.env, budget=prog.runtime.budget, safe=prog.safe)
    raise NotSupported("the JIT engine is not available in this build")


def check_helpers(insns: Sequence[Instruction], prog_type: ProgType | int) -> None:
    """A load error for a helper call the program type may not make (as the kernel's)."""
    from .helpers_runtime import allowed_ids_for

    allowed = allowed_ids_for(prog_type)
    if not allowed:
        return
    for i, insn in enumerate(insns):
        if insn.is_helper_call and insn.imm not in allowed:
            name = HELPER_NAMES.get(insn.imm)
            if name is None:
                raise VerifierError(f"invalid func unknown#{insn.imm}", insn=i)
            raise VerifierError(
                f"program of this type cannot use helper bpf_{name}#{insn.imm}", insn=i
            )


class VMRuntime:
    """One loaded object in the VM: address space, maps, programs, simulated machine."""

    def __init__(
        self,
        *,
        ncpus: int | None = None,
        cpu: int = 0,
        task: Task | None = None,
        seed: int | None = None,
        budget: int = DEFAULT_BUDGET,
        space: AddressSpace | None = None,
        verify: bool = True,
        unpriv: bool = False,
        btf: Any = None,
    ) -> None:
        n = ncpus or possible_cpus()
        if not 0 <= cpu < n:
            raise ValueError(f"cpu {cpu} is not one of the {n} CPUs")
        self.ctx = MapContext(space=space or AddressSpace(), ncpus=n, cpu=cpu)
        self.space = self.ctx.space
        self.maps: dict[str, VMMap] = {}
        self.maps_by_addr: dict[int, VMMap] = {}
        self.programs: dict[str, VMProgram] = {}
        self.task = task or Task.current()
        self.task_region = self.space.add(Region.alloc("task_struct", 64, perms=0))
        self.task_addr = self.task_region.base
        #: native words the JIT's native helpers read (map table, CPU, PRNG state)
        self.native = NativeEnv()
        self.native.set_cpu(cpu)
        #: the ``bpf_get_prandom_u32`` source (``random.Random(seed)``'s 32-bit sequence)
        self.prng = Prng(seed)
        self.native.set_prng(self.prng.address)
        self.trace_pipe: list[str] = []
        self.budget = budget
        #: verify programs on load (``False`` for experiments with unverified code)
        self.verify = verify
        #: verify as for an unprivileged loader (no pointer leaks, no back-edges...)
        self.unpriv = unpriv
        #: the object's BTF (spin locks in map values), when loaded from an object
        self.btf = btf
        #: the object's spec as loaded, when loaded from one (:func:`load_spec`)
        self.spec: ObjectSpec | None = None

    # ---- the machine --------------------------------------------------------------------
    @property
    def cpu(self) -> int:
        return self.ctx.cpu

    @cpu.setter
    def cpu(self, value: int) -> None:
        if not 0 <= value < self.ctx.ncpus:
            raise ValueError(f"cpu {value} is not one of the {self.ctx.ncpus} CPUs")
        self.ctx.cpu = value
        self.native.set_cpu(value)

    @property
    def ncpus(self) -> int:
        return self.ctx.ncpus

    @property
    def ringbufs(self) -> list[RingBufMap]:
        return [m for m in self.maps_by_addr.values() if isinstance(m, RingBufMap)]

    # ---- maps ---------------------------------------------------------------------------
    def add_map(self, m: VMMap, name: str | None = None) -> VMMap:
        """Register a map (by name when given) so programs and helpers can find it."""
        if name is not None:
            self.maps[name] = m
        self.maps_by_addr[m.addr] = m
        self.native.add_map(m.addr, getattr(m, "native_desc", None))
        return m

    def create_map(
        self,
        name: str,
        map_type: MapType | int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int = 0,
        **kw,
    ) -> VMMap:
        """Create and register a map (``MapError`` as ``BPF_MAP_CREATE`` would fail)."""
        m = create_map(
            map_type, key_size, value_size, max_entries, flags, name=name, ctx=self.ctx, **kw
        )
        return self.add_map(m, name)

    def settle_maps(self) -> None:
        """A run starts: slots of elements deleted in earlier runs may be reused (those
        deleted during a run are not, while the map has others: a pointer a program
        kept to a deleted element faults instead of reaching a new one)."""
        for m in self.maps_by_addr.values():
            m.settle()

    def map_by_fd(self, fd: int) -> VMMap | None:
        obj = self.ctx.resolve(fd)
        return obj if isinstance(obj, VMMap) else None

    # ---- programs -----------------------------------------------------------------------
    def resolve_lddw(self, insn: Instruction, slot: int) -> int:
        """The value a pseudo ``lddw`` loads: a map's address or a map value's address."""
        kind = insn.src
        if kind in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_VALUE):
            m = self.map_by_fd(insn.imm_lo)
            if m is None:
                raise VerifierError(f"fd {insn.imm_lo} is not pointing to valid bpf_map", insn=slot)
            if kind == op.PSEUDO_MAP_FD:
                return m.addr
            if not isinstance(m, ArrayMap):
                raise VerifierError("direct value access on a map that is not an array", insn=slot)
            off = insn.imm_hi
            if off >= m.value_size:
                raise VerifierError(
                    f"invalid access to map value pointer, value_size={m.value_size} off={off}",
                    insn=slot,
                )
            return m.base + off
        raise NotSupported(f"lddw {op.LDDW_PSEUDOS.get(kind, kind)} is not supported by the VM")

    def load_program(
        self, name: str, prog_type: ProgType | int, insns: Sequence[Instruction], **kw
    ) -> VMProgram:
        """Check, convert and register a program whose map references are VM fds."""
        p = VMProgram(self, name, prog_type, insns, **kw)
        self.programs[name] = p
        return p

    def __enter__(self) -> VMRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every map and program region."""
        for p in self.programs.values():
            p.close()
        for m in list(self.maps_by_addr.values()):
            self.native.remove_map(m.addr)
            m.close()
        self.space.remove(self.task_region)
        self.programs.clear()
        self.maps.clear()
        self.maps_by_addr.clear()


# ---- ObjectSpec → runtime -----------------------------------------------------------
def _make_map(rt: VMRuntime, spec: MapSpec) -> VMMap:
    max_entries = spec.max_entries
    mtype = int(spec.type)
    if mtype == MapType.PERF_EVENT_ARRAY and not max_entries:
        max_entries = rt.ncpus
    inner = spec.inner_map
    try:
        m = rt.create_map(
            spec.name,
            mtype,
            spec.key_size,
            spec.value_size,
            max_entries,
            spec.flags,
            map_extra=spec.map_extra,
            inner=inner,
            btf_key_type=spec.key_type_id,
            btf_value_type=spec.value_type_id,
        )
    except MapError as e:  # name the map the way the kernel backend does
        err = MapError(e.errno or 0, f"map_create of map {spec.name!r}", e.hint)
        err.map = spec.name  # type: ignore[attr-defined]
        raise err from None
    from ..verifier import spin_lock_offset

    lock = spin_lock_offset(rt.btf, spec.value_type_id)
    if lock >= 0:
        m.spin_lock_off = lock
    if spec.contents is not None and isinstance(m, ArrayMap):
        data = bytes(spec.contents)[: m.value_size]
        m.mv[: len(data)] = data
    if spec.frozen:
        m.freeze()
        if isinstance(m, ArrayMap):
            m.set_prog_readonly()
    elif spec.flags & F_RDONLY_PROG and isinstance(m, ArrayMap):
        m.set_prog_readonly()
    return m


def relocate(spec: ProgramSpec, rt: VMRuntime) -> list[Instruction]:
    """The program's instructions with map references turned into the VM's map fds."""
    insns = list(spec.instructions)
    for rel in spec.relocations:
        kind = getattr(rel.kind, "value", rel.kind)
        insn = insns[rel.index]
        if kind in ("map", "map_value", "kconfig"):
            name = rel.map or (".kconfig" if kind == "kconfig" else None)
            m = rt.maps.get(name or "")
            if m is None:
                raise BpfError(f"program {spec.name}: relocation against unknown map {name!r}")
            if kind == "map":
                insns[rel.index] = insn.with_(src=op.PSEUDO_MAP_FD, imm=m.fd)
            else:
                off = insn.imm_hi if kind != "kconfig" else rel.offset
                off = off or rel.offset
                insns[rel.index] = insn.with_(
                    src=op.PSEUDO_MAP_VALUE, imm=((off & 0xFFFFFFFF) << 32) | m.fd
                )
        elif kind in ("ksym", "kfunc"):
            raise NotSupported(
                f"program {spec.name}: kernel symbol {rel.target or rel.symbol!r}"
                " cannot be resolved in the VM"
            )
    return insns


def load_spec(
    spec: ObjectSpec,
    *,
    ncpus: int | None = None,
    cpu: int = 0,
    task: Task | None = None,
    seed: int | None = None,
    budget: int = DEFAULT_BUDGET,
    verify: bool = True,
    unpriv: bool = False,
    programs: Iterable[str] | None = None,
    **overrides: Any,
) -> VMRuntime:
    """Create every map and program of ``spec`` in a new :class:`VMRuntime`.

    Each program is verified on load, as the kernel does (``verify=False`` loads
    unverified code for experiments; the JIT then keeps every bounds check).
    ``programs`` loads only the named programs (default: every program whose
    ``autoload`` is set; the others' prog-array slots stay empty). ``overrides`` are
    the load-time overrides both backends take (:func:`bpfkit.obj.overrides.apply_overrides`:
    ``value_size``, ``max_entries``, ``constants``, ``prog_type``, ``attach_type``,
    ``autoload``).
    """
    from ..obj.overrides import OVERRIDE_KEYS, apply_overrides

    unknown = set(overrides) - set(OVERRIDE_KEYS)
    if unknown:
        raise TypeError(f"unknown VM load option(s): {', '.join(sorted(unknown))}")
    spec = apply_overrides(spec, **overrides)
    wanted = set(programs) if programs is not None else None
    if wanted is not None:
        unknown = wanted - set(spec.programs)
        if unknown:
            raise BpfError(f"no program named {', '.join(sorted(unknown))} in the object")
    rt = VMRuntime(
        ncpus=ncpus,
        cpu=cpu,
        task=task,
        seed=seed,
        budget=budget,
        verify=verify,
        unpriv=unpriv,
        btf=spec.btf,
    )
    #: the spec as loaded (load-time overrides applied)
    rt.spec = spec
    try:
        for mspec in spec.maps.values():
            _make_map(rt, mspec)
        for pspec in spec.programs.values():
            if wanted is not None and pspec.name not in wanted:
                continue
            if wanted is None and not pspec.autoload:
                continue
            insns = relocate(pspec, rt)
            try:
                rt.load_program(
                    pspec.name,
                    pspec.prog_type,
                    insns,
                    section=pspec.section,
                    license=pspec.license or spec.license,
                    spec=pspec,
                )
            except VerifierError as e:
                raise e.for_program(pspec.name) from None
        for mspec in spec.maps.values():
            if not mspec.values:
                continue
            m = rt.maps[mspec.name]
            for index, target in mspec.values.items():
                obj = (
                    rt.programs.get(target)
                    if int(mspec.type) == MapType.PROG_ARRAY
                    else rt.maps.get(target)
                )
                if obj is None and target in spec.programs:
                    continue  # a program not selected for loading
                if obj is None:
                    raise BpfError(f"map {mspec.name}: slot {index} names unknown {target!r}")
                key = int(index).to_bytes(m.key_size, "little")
                if isinstance(m, FdArrayMap | HashOfMapsMap):
                    m.update(key, obj)
    except BaseException:
        rt.close()
        raise
    return rt


def prog_type_name(t: ProgType | int) -> str:
    info = prog_type_info(t)
    return info.type.name.lower() if info else str(t)
