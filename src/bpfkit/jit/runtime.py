"""JIT programs: compile (with a cache), bind to an :class:`~bpfkit.vm.env.Env`, run natively.

The compiled code depends only on the program's bytes, the budget, the proven-safe set,
the values of its pseudo ``lddw``s and the native helpers it calls, so compiled modules
are cached on exactly that key and shared by every environment that agrees on them.
A :class:`JitProgram` binds one compiled module to one environment: its run context
(region table snapshot, packet, callbacks into Python) is rebuilt at each run.
"""

from __future__ import annotations

import ctypes
import dataclasses
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import BpfError, NotSupported, RuntimeFault
from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..vm.env import COUNTING_HELPERS, SKF_LL_OFF, SKF_NET_OFF, STACK_REGION_SIZE, Env
from ..vm.interp import DEFAULT_BUDGET, RunResult, with_pc
from ..vm.maps import native as nm
from ..vm.maps import ringbuf as rbm
from ..vm.memory import READ, WRITE, Region
from . import abi, cfg
from .engine import NativeModule, compile_module
from .lower import Lowering, StaticFault, module_text, runtime_address
from .native import NativeHelper, install_builtin, native_for

M = (1 << 64) - 1
M32 = 0xFFFFFFFF
#: a header adjustment that puts every offset far past any packet (no such header)
_NO_HEADER = 1 << 40

#: A tail-call resolver: ``(env, map_pointer, index) -> JitProgram | None``.
TailCallResolver = Callable[[Env, int, int], "JitProgram | None"]


def _s64(v: int) -> int:
    v &= M
    return v - (1 << 64) if v >> 63 else v


def _nb(size: int) -> str:
    return "1 byte" if size == 1 else f"{size} bytes"


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


@dataclass
class Compiled:
    """One program compiled to native code (shared through the cache)."""

    layout: cfg.Layout
    funcs: dict[int, cfg.Function]
    static: list[StaticFault]
    native: NativeModule
    code: ctypes.Array  # function pointers of lddw src=func point into this buffer
    ir: str
    compile_ns: int
    func_addr: int = 0  # the entry function (fastcc), run by the shared bpf_run loop
    opt_level: int = 2


_run_fn: Callable | None = None


def _bpf_run() -> Callable:
    """The shared native run loop (repeat, tail calls), compiled once per process."""
    global _run_fn
    if _run_fn is None:
        _run_fn = abi.RUN_PYFUNC(runtime_address("bpf_run"))
    return _run_fn


def _native_rings(env_data: int) -> list:
    """The ring buffers of a runtime's native words (``env.native_data``)."""
    if not env_data:
        return []
    w = (ctypes.c_uint64 * nm.ENV_WORDS).from_address(env_data)
    n = w[nm.E_NRINGS]
    if not n:
        return []
    cbs = (ctypes.c_uint64 * n).from_address(w[nm.E_RINGS])
    return [rb for a in cbs if (rb := rbm.by_control_block(a)) is not None]


# ---- the compile cache -----------------------------------------------------------
_CACHE: OrderedDict[tuple, Compiled] = OrderedDict()
_CACHE_MAX = 512
_cache_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}


def cache_info() -> dict[str, int]:
    """Compile-cache statistics: hits, misses, current size."""
    return {**_stats, "size": len(_CACHE), "max": _CACHE_MAX}


def clear_cache() -> None:
    """Drop every cached compiled program (live JitPrograms keep theirs)."""
    with _cache_lock:
        _CACHE.clear()


@dataclass
class _Plan:
    """Everything a compile depends on, computed from a program and its environment."""

    layout: cfg.Layout
    funcs: dict[int, cfg.Function]
    budget: int
    safe_slots: frozenset[int]
    lddw: dict[int, int | None]
    natives: dict[int, NativeHelper]
    opt_level: int
    key: tuple = ()
    code: bytes = b""  # the program's bytes (computed once; a replace() keeps them)

    def __post_init__(self) -> None:
        if not self.code:
            self.code = _code_bytes(self.layout.insns)
        self.key = (
            self.code,
            self.budget,
            self.safe_slots,
            tuple(sorted(self.lddw.items())),
            tuple(sorted((h, n.signature) for h, n in self.natives.items())),
            self.opt_level,
        )


_SLOT = struct.Struct("<BBhi")


def _code_bytes(insns: Sequence[Instruction]) -> bytes:
    """The program's bytecode (like ``encode``, without re-validating what ``cfg.layout``
    already checked)."""
    pack = _SLOT.pack
    out = []
    for i in insns:
        regs = (i.src << 4) | i.dst
        if i.is_lddw:
            out.append(pack(i.opcode, regs, 0, _s32(i.imm)) + pack(0, 0, 0, _s32(i.imm >> 32)))
        else:
            out.append(pack(i.opcode, regs, i.off, i.imm))
    return b"".join(out)


def _lookup(key: tuple) -> Compiled | None:
    with _cache_lock:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            _stats["hits"] += 1
        return hit


def _store(key: tuple, comp: Compiled) -> None:
    with _cache_lock:
        _stats["misses"] += 1
        _CACHE[key] = comp
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)


def _compile(plans: Sequence[_Plan]) -> list[Compiled]:
    """Compile plans (cache misses share one LLVM module) and return them in order."""
    out: list[Compiled | None] = [_lookup(p.key) for p in plans]
    todo: dict[tuple, list[int]] = {}
    for i, p in enumerate(plans):
        if out[i] is None:
            todo.setdefault(p.key, []).append(i)
    if not todo:
        return out  # type: ignore[return-value]
    by_opt: dict[int, list[tuple]] = {}
    for key, idxs in todo.items():
        by_opt.setdefault(plans[idxs[0]].opt_level, []).append(key)
    for opt_level, keys in by_opt.items():
        t0 = time.perf_counter_ns()
        parts = []
        for k, key in enumerate(keys):
            p = plans[todo[key][0]]
            code = (ctypes.c_ubyte * (8 * p.layout.nslots))()
            low = Lowering(
                p.layout,
                p.funcs,
                budget=p.budget,
                code_base=ctypes.addressof(code),
                safe_slots=p.safe_slots,
                lddw_values=p.lddw,
                natives=p.natives,
                prefix=f"p{k}_",
            ).functions()
            parts.append((key, p, code, low))
        ir = module_text([low.ir for _, _, _, low in parts])
        mod = compile_module(ir, opt_level=opt_level)
        each = (time.perf_counter_ns() - t0) // len(parts)
        for k, (key, p, code, low) in enumerate(parts):
            comp = Compiled(
                p.layout,
                p.funcs,
                low.static,
                mod,
                code,
                module_text([low.ir]),
                each,
                ctypes.c_uint64.from_address(mod.global_address(f"p{k}_entry")).value,
                opt_level,
            )
            _store(key, comp)
            for i in todo[key]:
                out[i] = comp
    return out  # type: ignore[return-value]


#: programs up to this many slots get opt level 2 by default, larger ones level 1: LLVM's
#: compile time grows with the program, and a large program's run time rarely
#: depends on the last 10-30% the full pipeline buys (see docs/jit.md)
AUTO_FULL_OPT_SLOTS = 400


def auto_opt_level(nslots: int) -> int:
    """The default opt level of a program of ``nslots`` slots."""
    return 2 if nslots <= AUTO_FULL_OPT_SLOTS else 1


def _plan(
    insns: Sequence[Instruction],
    env: Env,
    budget: int,
    safe: Iterable[int] | None,
    opt_level: int | None,
) -> _Plan:
    if not 0 < budget <= abi.MAX_BUDGET:
        raise ValueError(f"budget must be in 1..{abi.MAX_BUDGET}")
    install_builtin()
    lay = cfg.layout(insns)
    if opt_level is None:
        opt_level = auto_opt_level(lay.nslots)
    funcs = cfg.functions(lay)
    slot_of = {i: s for s, i in enumerate(lay.slot_insn) if i is not None}
    safe_slots = frozenset(slot_of[i] for i in (safe or ()) if i in slot_of)
    return _Plan(
        lay,
        funcs,
        budget,
        safe_slots,
        _resolve_lddw(env, lay, funcs),
        _natives(env, lay),
        opt_level,
    )


def _resolve_lddw(env: Env, lay: cfg.Layout, funcs: dict[int, cfg.Function]) -> dict:
    """Values of the pseudo ``lddw``s (map fds, map values, BTF ids) from the environment."""
    out: dict[int, int | None] = {}
    resolve = env.resolve_lddw
    entry_slots = {s for b in funcs[0].blocks.values() for s in b}
    for slot, idx in enumerate(lay.slot_insn):
        if idx is None:
            continue
        insn = lay.insns[idx]
        if not insn.is_lddw or insn.src in (0, op.PSEUDO_FUNC):
            continue
        if resolve is None:
            if slot in entry_slots:  # the interpreter raises when it compiles the entry
                raise NotSupported(
                    f"lddw at slot {slot} references a {op.LDDW_PSEUDOS[insn.src]} "
                    "(maps and BTF ids need an object loaded with bpfkit.load)"
                )
            out[slot] = None
        else:
            out[slot] = resolve(insn, slot) & M
    return out


def _natives(env: Env, lay: cfg.Layout) -> dict[int, NativeHelper]:
    """Native twins of the helpers the program may call (directly or through callx)."""
    ids = {i.imm for i in lay.insns if i.is_helper_call}
    if any(i.is_callx for i in lay.insns):
        ids.update(env.helpers.ids())
    out = {}
    for hid in sorted(ids):
        h = env.helpers.get(hid)
        nat = native_for(h.fn) if h is not None else None
        if nat is not None and hid >= 0:
            out[hid] = nat
    return out


# ---- programs --------------------------------------------------------------------
class JitProgram:
    """A program compiled to native code for one :class:`Env`; call :meth:`run` repeatedly.

    ``safe`` is a set of instruction indices a verifier proved to access memory safely:
    their loads and stores compile without a region check. ``tail_call_resolver`` (if
    set) makes ``bpf_tail_call`` jump to another JitProgram of the same environment.
    """

    def __init__(
        self,
        insns: Sequence[Instruction],
        env: Env,
        *,
        budget: int = DEFAULT_BUDGET,
        safe: Iterable[int] | None = None,
        opt_level: int | None = None,
        tier_up: bool = True,
        _compiled: Compiled | None = None,
    ) -> None:
        self.env = env
        self.budget = budget
        self.tail_call_resolver: TailCallResolver | None = None
        #: level-2 code compiled in the background for a large program (tier-up)
        self._upgrade: Compiled | None = None
        self._upgrade_thread: threading.Thread | None = None
        if _compiled is None:
            plan = _plan(insns, env, budget, safe, opt_level)
            _compiled = _compile([plan])[0]
            if opt_level is None and plan.opt_level < 2 and tier_up:
                self._tier_up(dataclasses.replace(plan, opt_level=2))
        self.compiled = _compiled
        self.insns = _compiled.layout.insns
        self._ctx = abi.RunContext()
        self._ctx_addr = ctypes.addressof(self._ctx)
        self._w = self._ctx.w
        self._exc: BaseException | None = None
        self._snapshot: list[tuple[Region, int]] = []
        self._table: ctypes.Array | None = None
        self._running = False
        self._tail_keep: list[JitProgram] = []
        #: the environment's ring buffers (their native reservations, see _sync_rings)
        self._rings: list = []
        # Callbacks are bound to this program; C holds only their addresses.
        self._helper_cfn = abi.HELPER_CFUNC(self._helper_cb)
        self._region_cfn = abi.REGION_CFUNC(self._region_cb)
        self._tail_cfn = abi.TAIL_CFUNC(self._tail_cb)
        self._w[abi.HELPER_CB] = ctypes.cast(self._helper_cfn, ctypes.c_void_p).value or 0
        self._w[abi.REGION_CB] = ctypes.cast(self._region_cfn, ctypes.c_void_p).value or 0

    def _tier_up(self, plan: _Plan) -> None:
        """Compile ``plan`` (opt level 2) on a background thread; runs switch to it once
        it is ready. LLVM releases the GIL, so this uses an otherwise idle core."""
        hit = _lookup(plan.key)
        if hit is not None:
            self._upgrade = hit
            return

        def work() -> None:
            try:
                self._upgrade = _compile([plan])[0]
            except BaseException:  # the level-1 code stays; nothing is lost
                pass

        t = threading.Thread(target=work, name="bpfkit-jit-tier-up", daemon=True)
        self._upgrade_thread = t
        t.start()

    def wait_tier_up(self, timeout: float | None = None) -> bool:
        """Wait for the background level-2 compile (if any); True when it is in use next run."""
        t = self._upgrade_thread
        if t is not None:
            t.join(timeout)
        return self._upgrade is not None or (t is None and self.opt_level == 2)

    @property
    def opt_level(self) -> int:
        """The opt level of the code the next run uses."""
        c = self._upgrade or self.compiled
        return c.opt_level

    # -- introspection --
    @property
    def ir(self) -> str:
        """The LLVM IR this program was lowered to (before optimization)."""
        return self.compiled.ir

    @property
    def compile_ns(self) -> int:
        """Time the original compile took (a batch's share; a cache hit reports the original's)."""
        return self.compiled.compile_ns

    @property
    def func_address(self) -> int:
        """Native address of the program's entry function (a tail-call target; fastcc)."""
        return self.compiled.func_addr

    def asm(self) -> str:
        """x86-64 assembly of the compiled program."""
        return self.compiled.native.asm()

    # -- running --
    def run(
        self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0, *, insns: int = 0
    ) -> tuple[int, int]:
        """Run from the entry: returns ``(r0, executed instructions)``. ``insns`` is the
        count the run starts from (what it executed before a tail call into this
        program): the budget bounds them together."""
        r0, n, _ = self.run_repeat(1, r1, r2, r3, r4, r5, insns=insns)
        return r0, n

    def run_repeat(
        self,
        repeat: int,
        r1: int = 0,
        r2: int = 0,
        r3: int = 0,
        r4: int = 0,
        r5: int = 0,
        *,
        insns: int = 0,
    ) -> tuple[int, int, int]:
        """Run ``repeat`` times in a native loop: ``(r0, count, total ns)`` of the last run
        (each run starting from the count ``insns``)."""
        if repeat < 1:
            raise ValueError("repeat must be at least 1")
        if not 0 <= insns < abi.MAX_BUDGET:  # past the budget: the first check faults
            raise ValueError(f"a run cannot start from {insns} instructions")
        if self._running:
            raise BpfError("a JitProgram cannot be re-entered while it runs")
        if self._upgrade is not None:  # the tier-up compile finished: switch (same layout)
            self.compiled, self._upgrade = self._upgrade, None
        if self.env.stack.size < STACK_REGION_SIZE:  # the unchecked stack accesses' premise
            raise BpfError(f"the environment's stack is smaller than {STACK_REGION_SIZE} bytes")
        self._running = True
        w = self._w
        try:
            self._begin(r1 & M)
            t0 = time.perf_counter_ns()
            r0 = _bpf_run()(
                self._ctx_addr,
                self.compiled.func_addr,
                r1 & M,
                r2 & M,
                r3 & M,
                r4 & M,
                r5 & M,
                self.env.frame_pointer,
                repeat,
                self.budget - insns,
            )
            dt = time.perf_counter_ns() - t0
            if w[abi.FAULT_KIND]:
                raise self._fault()
            return r0, self.budget - _s64(w[abi.LEFT_OUT]), dt
        finally:
            self._running = False
            self._exc = None
            self._tail_keep.clear()
            # records reserved natively and still outstanding become Regions until the
            # next JIT run, so the interpreter and Python find them like their own
            for rb in self._rings:
                rb.sync_native()

    # Natively reserved ring-buffer records are not in the region table: generated code
    # finds them through the rings' reservation slots (bpf_mem_slow), which are exact —
    # a record is addressable while it is reserved, and only its bytes. Python (helpers,
    # region look-ups) sees them as Regions registered just around its callbacks, and
    # between runs; never in the table, so a native submit needs no table update.
    def _sync_rings(self) -> bool:
        """Register the rings' native reservations as Regions; True if any are."""
        synced = False
        for rb in self._rings:
            if rb.sync_native():
                synced = True
        return synced

    def _unsync_rings(self) -> None:
        for rb in self._rings:
            rb.unsync_native()

    def _begin(self, r1: int) -> None:
        w = self._w
        for i in (
            abi.FAULT_KIND,
            abi.FAULT_PC,
            abi.FAULT_ADDR,
            abi.FAULT_AUX,
            abi.RUNS_DONE,
            abi.TAIL_COUNT,
            abi.SITE,
        ):
            w[i] = 0
        w[abi.LEFT_OUT] = self.budget
        w[abi.ENV_DATA] = env_data = getattr(self.env, "native_data", 0) or 0
        self._rings = rings = _native_rings(env_data)
        for rb in rings:
            rb.unsync_native()
        self._sync_table()
        self._sync_packet()
        # seed r1's region cache with the region r1 points into (the context, usually)
        r = self.env.space.find(r1, 1) if r1 else None
        if r is not None:
            lim = r.size - 7 if r.size >= 8 else 0
            w[abi.ARG_BASE] = r.base
            w[abi.ARG_RLIM] = lim if r.perms & READ else 0
            w[abi.ARG_WLIM] = lim if r.perms & WRITE else 0
        else:
            w[abi.ARG_BASE] = w[abi.ARG_RLIM] = w[abi.ARG_WLIM] = 0
        if self.tail_call_resolver is not None:
            w[abi.TAIL_CB] = ctypes.cast(self._tail_cfn, ctypes.c_void_p).value or 0
        else:
            w[abi.TAIL_CB] = 0

    def _sync_table(self) -> None:
        """Snapshot the address space into the sorted (base, span, perms) table."""
        regions = self.env.space.regions
        snap = [(r, r.perms) for r in regions]
        if snap == self._snapshot and self._table is not None:
            return
        table = (ctypes.c_uint64 * max(3, 3 * len(regions)))()
        for i, r in enumerate(regions):
            table[3 * i], table[3 * i + 1], table[3 * i + 2] = r.base, r.size, r.perms
        self._table, self._snapshot = table, snap
        w = self._w
        w[abi.TABLE] = ctypes.addressof(table)
        w[abi.TABLE_LEN] = len(regions)
        # cached regions may be gone: forget the seeds
        for i in (
            abi.ARG_BASE,
            abi.ARG_RLIM,
            abi.ARG_WLIM,
            abi.SEED_BASE,
            abi.SEED_RLIM,
            abi.SEED_WLIM,
        ):
            w[i] = 0

    def _sync_packet(self) -> None:
        env = self.env
        pkt = env.packet
        w = self._w
        w[abi.PKT_BASE] = pkt.base if pkt is not None else 0
        w[abi.PKT_LEN] = pkt.size if pkt is not None else 0
        hdr = env.packet_headers if pkt is not None else None
        if hdr is None:  # every negative offset fails
            w[abi.PKT_NEG_BASE] = w[abi.PKT_NEG_SPAN] = 0
            w[abi.PKT_NET_ADJ] = w[abi.PKT_MAC_ADJ] = _NO_HEADER
            return
        # the reachable bytes end where the data ends (``lo`` is at most 0)
        w[abi.PKT_NEG_BASE] = hdr.front.base
        w[abi.PKT_NEG_SPAN] = pkt.size - hdr.lo
        w[abi.PKT_NET_ADJ] = (hdr.net - SKF_NET_OFF - hdr.lo) & M
        w[abi.PKT_MAC_ADJ] = _NO_HEADER if hdr.mac is None else (hdr.mac - SKF_LL_OFF - hdr.lo) & M

    # -- callbacks from native code (must never raise into ctypes) --
    def _record(self, exc: BaseException) -> None:
        if self._exc is None:
            self._exc = exc
        self._w[abi.FAULT_KIND] = abi.F_PYTHON

    def _helper_cb(self, _ctx, hid: int, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        try:
            site = self._w[abi.SITE]
            pc, callx = site & M32, site >> 32
            h = self.env.helpers.get(hid if callx else _s32(hid))
            if h is None:
                if callx:
                    msg = f"callx to {hid:#x}, which is neither a function nor a helper"
                else:
                    msg = f"call to unknown helper {_s32(hid)}"
                raise RuntimeFault(msg, pc=pc, insn=self.compiled.layout.describe(pc))
            synced = self._sync_rings()
            env = self.env
            w = self._w
            # callbacks (and a tail call's target) count on from the generated code's count
            counting = callx or hid in COUNTING_HELPERS
            if counting:
                env.insns = self.budget - _s64(w[abi.CB_LEFT])
            try:
                v = h.fn(env, r1, r2, r3, r4, r5) & M
            finally:
                if synced:
                    self._unsync_rings()
            if counting:
                w[abi.CB_LEFT] = (self.budget - env.insns) & M
            self._sync_table()
            self._sync_packet()
            return v
        except BaseException as e:  # noqa: BLE001 - re-raised after the native call
            self._record(e)
            return 0

    def _region_cb(self, _ctx, addr: int, size: int, perm: int, pc: int) -> int:
        try:
            self._sync_table()
            synced = self._sync_rings()
            try:
                r = self.env.space.find(addr, size)
            finally:
                if synced:
                    self._unsync_rings()
            if r is not None and (r.perms & perm) == perm:
                w = self._w
                w[abi.HIT_BASE] = r.base
                w[abi.HIT_LIM] = r.size - 7 if r.size >= 8 else 0
                return 1
            kind = "write" if perm & WRITE else "read"
            msg = f"invalid {kind} of {_nb(size)} at address {addr:#x}"
            if r is not None and perm != READ | WRITE:
                if not perm & WRITE:
                    why = "not readable"
                else:
                    why = "read-only" if r.perms & READ else "not accessible"
                msg += f" (region {r.name} is {why})"
            self._record(
                RuntimeFault(msg, pc=pc, insn=self.compiled.layout.describe(pc), address=addr)
            )
            return 0
        except BaseException as e:  # noqa: BLE001
            self._record(e)
            return 0

    def _tail_cb(self, _ctx, r1: int, r2: int, r3: int) -> int:
        try:
            resolver = self.tail_call_resolver
            target = resolver(self.env, r2, r3) if resolver is not None else None
            if target is None:
                return 0
            if target.env is not self.env or target.budget != self.budget:
                raise NotSupported("a tail call target must share the environment and budget")
            self._tail_keep.append(target)
            return target.func_address
        except BaseException as e:  # noqa: BLE001
            self._record(e)
            return 0

    # -- faults --
    def _fault(self) -> BaseException:
        w = self._w
        kind, pc, addr, aux = (
            w[i] for i in (abi.FAULT_KIND, abi.FAULT_PC, abi.FAULT_ADDR, abi.FAULT_AUX)
        )
        lay = self.compiled.layout
        if kind == abi.F_PYTHON:
            if isinstance(self._exc, RuntimeFault):  # a helper's fault: name its call
                at = w[abi.SITE] & M32
                return with_pc(self._exc, at, lay.describe(at))
            if self._exc is not None:
                return self._exc
            at = w[abi.SITE] & M32  # a native helper flagged the fault itself
            return RuntimeFault("a native helper reported a fault", pc=at, insn=lay.describe(at))
        if kind == abi.F_STATIC:
            sf = self.compiled.static[aux]
            if sf.not_supported:
                return NotSupported(sf.message)
            return RuntimeFault(sf.message, pc=pc, insn=lay.describe(pc))
        if kind == abi.F_BUDGET:
            # Checked where the interpreter checks: before a loop header (or function
            # entry) with the count so far, and at an exit with the total.
            n = self.budget - _s64(addr)
            return RuntimeFault(
                f"instruction budget of {self.budget} exceeded",
                pc=pc,
                insn=lay.describe(pc),
                insns=n,
            )
        if kind == abi.F_MISALIGNED:
            return RuntimeFault(
                f"misaligned atomic access of {_nb(aux)} at address {addr:#x}",
                pc=pc,
                insn=lay.describe(pc),
                address=addr,
            )
        if kind == abi.F_CALLX:
            msg = {
                0: f"callx to {addr:#x}, which is neither a function nor a helper",
                1: f"callx into the middle of lddw (slot {addr})",
                2: f"callx to slot {addr}, which the JIT did not compile as a function entry "
                "(only call and lddw src=func targets are)",
            }[aux]
            return RuntimeFault(msg, pc=pc, insn=lay.describe(pc))
        return RuntimeFault(f"native code reported fault kind {kind}", pc=pc)


def compile_many(
    programs: Iterable[Sequence[Instruction]],
    env: Env | None = None,
    *,
    budget: int = DEFAULT_BUDGET,
    opt_level: int | None = None,
) -> list[JitProgram]:
    """Compile several programs at once (one LLVM module: much less per-program overhead)."""
    env = env or Env()
    plans = [_plan(p, env, budget, None, opt_level) for p in programs]
    return [
        JitProgram(p.layout.insns, env, budget=budget, opt_level=opt_level, _compiled=c)
        for p, c in zip(plans, _compile(plans), strict=True)
    ]


def compile_program(
    insns: Sequence[Instruction],
    env: Env | None = None,
    *,
    budget: int = DEFAULT_BUDGET,
    safe: Iterable[int] | None = None,
) -> JitProgram:
    """Compile once for repeated runs against ``env``."""
    return JitProgram(insns, env or Env(), budget=budget, safe=safe)


def run_program(
    insns: Sequence[Instruction],
    mem: bytes | bytearray = b"",
    *,
    budget: int = DEFAULT_BUDGET,
    env: Env | None = None,
    repeat: int = 1,
    packet: bool = True,
    safe: Iterable[int] | None = None,
) -> RunResult:
    """Run like the conformance vectors (r1 = memory, r2 = its length) on native code.

    With ``repeat > 1`` the program runs that many times in a native loop without
    resetting memory between runs (like ``BPF_PROG_TEST_RUN``); ``duration_ns`` is the
    mean per run, and r0 and the count are those of the last run.
    """
    env = env or Env()
    prog = JitProgram(insns, env, budget=budget, safe=safe)
    region = env.space.add(Region.alloc("input", len(mem), init=bytes(mem)))
    r1 = region.base if len(mem) else 0
    if packet:
        env.packet = region
    env.reset_stack()
    try:
        r0, n, dt = prog.run_repeat(repeat, r1, len(mem))
    finally:
        env.space.remove(region)
        if packet:
            env.packet = None
    return RunResult(r0 & M, n, region.bytes(), dt // repeat)
