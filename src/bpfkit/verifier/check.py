"""The abstract interpreter: walk every path of a program over abstract states.

``Checker.run`` is the kernel's ``do_check``: depth-first over paths, forking at
conditional jumps whose outcome is unknown, pruning a path when a state already
verified at the same pruning point subsumes it (``state.states_equal``), detecting
loops that make no progress, and stopping at the instruction budget.

This module is the driver (the main loop, load-time and whole-program rules, exit);
each instruction class's rules are a mixin of their own module, combined in
:class:`Checker`: ``check_alu`` (arithmetic), ``check_jumps`` (branches, pruning),
``check_mem`` (loads, stores, atomics) and ``check_calls`` (helpers, subprograms).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

from ..isa import opcodes as op
from ..uapi.enums import ProgType
from . import ctxinfo, liveness, load, precision, scalar
from .cfg import MAY_GOTO, Program, Reject, check_stack_depth
from .check_alu import AluMixin
from .check_calls import _PKT_CHANGING_IDS, _TAIL_CALL, CallsMixin
from .check_common import _CLS_ALU64, _CLS_JMP32, CALLER_SAVED, _ptname
from .check_jumps import JumpsMixin, _Pruned, _widen_imprecise
from .check_mem import MemMixin
from .state import NOT_INIT, NOT_INIT_REG, PTR_TO_STACK, SCALAR, Frame, Reg, State
from .state import PTR_TO_CTX as T_CTX


@dataclass
class Stats:
    """Verification statistics like the kernel's final log line."""

    insns_processed: int = 0
    total_states: int = 0
    peak_states: int = 0
    max_states_per_insn: int = 0
    stack_depth: tuple[int, ...] = ()
    time_us: int = 0

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return {
            "insns_processed": self.insns_processed,
            "total_states": self.total_states,
            "peak_states": self.peak_states,
            "max_states_per_insn": self.max_states_per_insn,
            "stack_depth": list(self.stack_depth),
            "time_us": self.time_us,
        }


# opcode parts the main loop dispatches on (module constants: no attribute lookups)
_CLS_LD, _CLS_LDX, _CLS_ST, _CLS_STX = op.LD, op.LDX, op.ST, op.STX
_CLS_ALU, _CLS_JMP = op.ALU, op.JMP
_JA, _EXIT, _CALL, _LDDW = op.JA, op.EXIT, op.CALL, op.LDDW

#: Program types whose context is typed by kernel BTF (not modelled: rejected).
BTF_CTX_TYPES = frozenset({ProgType.TRACING, ProgType.LSM, ProgType.STRUCT_OPS, ProgType.EXT})

#: The program types an unprivileged loader may load.
UNPRIV_PROG_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB})


class Checker(AluMixin, JumpsMixin, MemMixin, CallsMixin):
    """One verification run over one program."""

    def __init__(
        self,
        prog: Program,
        *,
        prog_type: int,
        maps: dict,
        unpriv: bool,
        budget: int,
        log,
        gpl: bool = True,
        global_funcs: dict | None = None,
        attach_type: int | None = None,
        prog_flags: int = 0,
    ) -> None:
        self.prog = prog
        #: the expected attach type (None: the program type's default; cgroup_sock and
        #: sk_reuseport programs get theirs, as bpf_prog_load fixes up an unset one)
        if not attach_type and prog_type in load.ATTACH_DEFAULT:
            attach_type = int(load.ATTACH_DEFAULT[prog_type])
        self.attach_type = attach_type
        self.prog_flags = prog_flags
        #: BPF_F_STRICT_ALIGNMENT without BPF_F_ANY_ALIGNMENT (x86 has efficient
        #: unaligned access: nothing else turns strict alignment on)
        self.strict_align = bool(prog_flags & 1) and not prog_flags & 2
        #: every function's BTF prototype (entry slot -> GlobalFunc)
        self.funcs: dict = dict(global_funcs or {})
        #: global (non-static) functions: entry slot -> GlobalFunc; verified on their own
        self.global_funcs: dict = {e: g for e, g in self.funcs.items() if not g.static}
        self.global_queue: list[int] = []
        self.in_global: int | None = None  # entry of the global function being verified
        self.prog_type = prog_type
        self.maps = maps
        self.unpriv = unpriv
        self.priv = not unpriv
        self.budget = budget
        self.log = log
        self.gpl = gpl
        self.id_gen = 0
        self.explored: dict[int, list[State]] = {}  # fully explored checkpoints
        self.active: dict[int, dict] = {}  # checkpoints still being explored, by signature
        self.stack: list[tuple[State, int, int]] = []  # (state, pc, from)
        self.stats = Stats()
        self.depths: dict[int, int] = {}
        self.cur_states = 0
        self.jmps = 0
        self.prev_jmps = 0
        self.prev_insns = 0
        self.pc = 0
        self.st: State | None = None
        self.live = liveness.analyze(
            prog,
            prog_type,
            unpriv,
            {prog.subprog_of(e): len(g.args) for e, g in self.global_funcs.items()},
        )
        self.hx = None  # extra history information of the current instruction
        #: per instruction: (alu_state, alu_limit) of its sanitized add/sub (unprivileged)
        self.alu_aux: dict[int, tuple[int, int]] = {}
        self._cb_calls: dict[int, bool] = {}  # pruning point -> a callback helper's call
        self._may_goto_pcs: frozenset[int] | None = None
        self.explore_alu_limits = False
        #: per load/store instruction: the pointer type it was first checked with
        self.aux_ptr: dict[int, int] = {}

    # ------------------------------------------------------------------ utils
    def new_id(self) -> int:
        """A fresh id for a pointer, a scalar link or a reference."""
        self.id_gen += 1
        return self.id_gen

    def acquire_id(self) -> int:
        """The id of a reference a helper returns: the kernel first numbers the
        maybe-NULL result, then the reference (``acquire_reference_state``), so the
        reference's id (the one its log prints) is the second."""
        self.id_gen += 1
        return self.new_id()

    def fail(self, reason: str, kmsg: str | None = None) -> Reject:
        """Build a rejection at the current instruction."""
        return Reject(reason, kmsg or reason, self.pc)

    def precise(self, st: State, *regnos: int) -> None:
        """The values of these registers of the current frame decide something here:
        mark where they came from precise in the checkpoints above (unprivileged
        programs compare every scalar exactly, so nothing to do)."""
        if self.priv:
            f = len(st.frames) - 1
            precision.mark_chain(self.prog.at, st, [f * 128 + r for r in regnos])

    def precise_stack(self, st: State, frameno: int, lo: int, hi: int) -> None:
        """The stack bytes [lo, hi) of frame ``frameno`` decide something here."""
        if self.priv:
            keys = {precision.slot_key(frameno, (-a - 1) // 8) for a in range(lo, hi) if a < 0}
            precision.mark_chain(self.prog.at, st, keys)

    def reg_name(self, r: Reg) -> str:
        """Kernel-style type name of a register."""
        return "scalar" if r.type == SCALAR else r.type_name() if r.type else "?"

    # ------------------------------------------------------------------ entry
    def initial_state(self) -> State:
        """The state at instruction 0: r1 = ctx, r10 = frame pointer."""
        st = State()
        f = Frame(0, 0)
        f.regs[1] = Reg.pointer(T_CTX)
        f.regs[10] = Reg.pointer(PTR_TO_STACK, frameno=0)
        st.frames = [f]
        return st

    def run(self) -> Stats:
        """Verify the whole program; raises :class:`Reject`.

        The cyclic garbage collector is paused meanwhile: the states are acyclic, and
        its passes over the many live checkpoints cost about a fifth of the time.
        """
        enabled = gc.isenabled()
        gc.disable()
        scalar._SYNC_CACHE.clear()  # per run: its time is this program's alone
        try:
            return self._run()
        finally:
            # drop the checkpoints first: freed now, they are not left to the collector
            self.explored = {}
            self.active = {}
            self.stack = []
            if enabled:
                gc.enable()

    def _run(self) -> Stats:
        t0 = time.perf_counter()
        if self.unpriv and self.prog_type not in UNPRIV_PROG_TYPES:
            # the kernel refuses the load (EPERM) before verifying anything
            raise Reject(
                f"A {_ptname(self.prog_type)} program needs privileges (CAP_BPF): an "
                "unprivileged loader may load only socket filters and cgroup skb programs.",
                f"program type {_ptname(self.prog_type)} needs CAP_BPF (EPERM)",
                0,
            )
        # bpf_prog_load's checks (EINVAL before the verifier), then bpf_check's map
        # references and its sleepable rule: whole-program rules, reachable or not
        load.check_prog_load(self.prog_type, self.attach_type, self.prog_flags)
        sleepable = bool(self.prog_flags & load.BPF_F_SLEEPABLE)
        load.resolve_maps(self.prog, self.maps, self.prog_type, sleepable)
        load.check_attach(
            self.prog_type,
            load.effective_attach_type(self.prog_type, self.attach_type),
            sleepable,
        )
        if self.prog_type in BTF_CTX_TYPES:
            # their context and return values are typed by the kernel's BTF of the attach
            # target: not modelled (nor run by the userspace VM)
            name = _ptname(self.prog_type)
            raise Reject(
                f"Program type {name} is not supported by bpfkit's verifier (its context "
                "is typed by the kernel's BTF of the attach target).",
                f"program type {name} is not supported",
                0,
            )
        self.check_func_returns()
        self.changes_pkt = self._changes_pkt_subprogs()
        state = self.initial_state()
        self.log.state_line(0, state)
        self.explore_all(state, 0)
        done: set[int] = set()
        while self.global_queue:
            entry = self.global_queue.pop(0)
            if entry not in done:
                done.add(entry)
                self.verify_global(entry)
        check_stack_depth(self.prog, self.depths)
        self.stats.time_us = int((time.perf_counter() - t0) * 1e6)
        self.stats.stack_depth = tuple(
            self.depths.get(i, 0) for i in range(len(self.prog.subprogs))
        )
        return self.stats

    def _changes_pkt_subprogs(self) -> set[int]:
        """Subprograms that may change packet data: they call a helper that does (or a
        tail call), directly or through the functions they call (the kernel's
        ``changes_pkt_data``); a call of such a global function forgets packet pointers."""
        prog = self.prog
        out: set[int] = set()
        edges: dict[int, set[int]] = {}
        for pc, insn in enumerate(prog.at):
            if insn is None:
                continue
            if insn.is_helper_call and insn.imm in _PKT_CHANGING_IDS:
                out.add(prog.subprog_of(pc))
            elif insn.is_local_call:
                edges.setdefault(prog.subprog_of(pc), set()).add(prog.subprog_of(pc + 1 + insn.imm))
        changed = True
        while changed:
            changed = False
            for caller, callees in edges.items():
                if caller not in out and callees & out:
                    out.add(caller)
                    changed = True
        return out

    def check_func_returns(self) -> None:
        """Subprograms using ld_abs/ld_ind or a tail call must return an int (their BTF
        prototype says so; the kernel's ``check_btf_func``): both can end the program
        early with a return value of 0."""
        prog = self.prog
        for entry, f in sorted(self.funcs.items()):
            if f.scalar_return or entry == 0:
                continue
            idx = prog.subprog_of(entry)
            for pc in range(prog.subprogs[idx], prog.subprog_end(idx)):
                insn = prog.at[pc]
                if insn is None:
                    continue
                what = None
                if insn.cls == op.LD and insn.opcode != _LDDW:
                    what = "LD_ABS"
                elif insn.is_helper_call and insn.imm == _TAIL_CALL:
                    what = "tail_call"
                if what:
                    raise Reject(
                        f"{f.name}() uses {what} but does not return an int (both can end "
                        "the program early with a return value).",
                        f"{what} is only allowed in functions that return 'int'.",
                        None,
                    )

    def explore_all(self, state: State, pc: int) -> None:
        """Explore every path from ``pc`` (depth first, branches from the stack)."""
        while True:
            try:
                self.explore(state, pc)
            except _Pruned:
                pass
            if not self.stack:
                break
            state, pc, frm = self.stack.pop()
            self.log.branch(frm, pc, state)

    # ------------------------------------------------------------------ main loop
    def explore(self, st: State, pc: int) -> None:
        """Follow one path from ``pc`` until it exits or is pruned."""
        at = self.prog.at
        prune = self.prog.prune
        logging = self.log.level >= 1
        log = self.log
        stats = self.stats
        budget = self.budget
        visit = self.visit
        do_alu = self.do_alu
        do_cond_jmp = self.do_cond_jmp
        self.st = st
        while True:
            self.pc = pc
            ipc = pc
            self.hx = None
            n = stats.insns_processed = stats.insns_processed + 1
            if n > budget:
                raise self.fail(
                    f"Verification needed more than {self.budget} instruction steps; the "
                    "program is too complex (or a loop is not provably bounded).",
                    f"BPF program is too large. Processed {self.budget + 1} insn",
                )
            if pc in prune and visit(st, pc):
                log.pruned(pc)
                raise _Pruned
            insn = at[pc]
            if logging:
                log.insn(pc, insn, st)
            code = insn.opcode
            cls = code & 7
            if cls == _CLS_ALU or cls == _CLS_ALU64:
                do_alu(st, insn)
                pc += 1
            elif cls == _CLS_JMP or cls == _CLS_JMP32:
                jop = code & 0xF0
                self.jmps += 1
                if jop == _JA:
                    pc = pc + 1 + insn.jump_offset
                elif jop == _EXIT:
                    nxt = self.do_exit(st)
                    if nxt is None:
                        self.path_done(st)
                        return
                    pc = nxt
                elif jop == _CALL:
                    if insn.is_local_call:
                        pc = self.do_local_call(st, insn, pc)
                    else:
                        pc = self.do_helper_call(st, insn, pc)
                elif code == MAY_GOTO:
                    pc = self.do_may_goto(st, insn, pc)
                else:
                    pc = do_cond_jmp(st, insn, pc)
            elif cls == _CLS_LDX:
                self.do_ldx(st, insn)
                pc += 1
            elif cls == _CLS_ST or cls == _CLS_STX:
                self.do_store(st, insn)
                pc += 1
            else:  # LD
                if code == _LDDW:
                    self.do_lddw(st, insn)
                    pc += 2
                else:
                    pc = self.do_ld_abs(st, insn, pc)
            hx = self.hx
            st.hist.append(ipc if hx is None else (ipc, hx))
            if logging:
                log.after(pc, st)

    # ------------------------------------------------------------------ registers
    def read_reg(self, st: State, regno: int) -> Reg:
        """A source operand: must be initialised."""
        r = st.frames[-1].regs[regno]
        if r.type == NOT_INIT:
            raise self.fail(
                f"Register r{regno} is read before it is written (uninitialised).",
                f"R{regno} !read_ok",
            )
        return r

    def check_dst(self, regno: int) -> None:
        """A destination: r10 is read-only."""
        if regno == 10:
            raise self.fail("The frame pointer r10 is read-only.", "frame pointer is read only")

    def set_reg(self, st: State, regno: int, r: Reg) -> None:
        """Write ``r`` to a register of the current frame."""
        st.frames[-1].regs[regno] = r

    def do_exit(self, st: State) -> int | None:
        """Return to the caller (the next pc) or finish the path (None)."""
        fr = st.cur
        r0 = fr.regs[0]
        if len(st.frames) > 1:
            # a static function may return without setting r0 (a void function): the
            # caller gets r0 uninitialised and fails only if it reads it (the kernel's
            # prepare_func_exit; issue 11: BCC tools have such functions)
            if fr.callback and r0.type == NOT_INIT:
                raise self.fail("r0 is not set when the callback returns.", "R0 !read_ok")
            if fr.callback:
                if r0.type == SCALAR:
                    self.precise(st, 0)
                if r0.type != SCALAR:
                    raise self.fail(
                        "A callback must return a number.",
                        f"At callback return the register R0 is not a known "
                        f"value ({self.reg_name(r0)})",
                    )
                if r0.smin < fr.cb_ret_lo or r0.smax > fr.cb_ret_hi or r0.umax > fr.cb_ret_hi:
                    raise self.fail(
                        f"A callback must return a value in [{fr.cb_ret_lo}, {fr.cb_ret_hi}].",
                        f"At callback return the register R0 has{_scalar_range(r0)}"
                        f" should have been in [{fr.cb_ret_lo}, {fr.cb_ret_hi}]",
                    )
            if r0.type == PTR_TO_STACK and r0.frameno == fr.frameno:
                raise self.fail(
                    "A function cannot return a pointer to its own stack.",
                    "cannot return stack pointer to the caller frame",
                )
            callsite = fr.callsite
            cb = fr.callback
            self.hx = precision.CB_EXIT if cb else precision.EXIT
            st.frames.pop()
            caller = st.cur
            # stack pointers into the dead frame are no longer valid
            dead = fr.frameno
            for f in st.frames:
                for i, r in enumerate(f.regs):
                    if r.type == PTR_TO_STACK and r.frameno >= dead:
                        f.regs[i] = NOT_INIT_REG
            if cb:
                # the helper may call the callback again: re-enter the call instruction,
                # the scalars this round changed and nothing relied on widened against
                # the round before (prepare_func_exit's widen_imprecise_scalars)
                prev = self._prev_cb_entry(st, callsite)
                if prev is not None:
                    _widen_imprecise(prev, st)
                return callsite
            caller.regs[0] = r0
            for r in CALLER_SAVED:
                caller.regs[r] = NOT_INIT_REG
            return callsite + 1
        # main program exit
        if st.lock is not None:
            raise self.fail(
                "The program exits while holding a spin lock.", "bpf_spin_unlock is missing"
            )
        if st.refs:
            ref = st.refs[0]
            raise self.fail(
                f"The program exits without releasing the reference acquired at "
                f"instruction {ref.insn} (a ringbuf reservation not submitted or "
                "discarded, a socket not released).",
                f"Unreleased reference id={ref.id} alloc_insn={ref.insn}",
            )
        if r0.type == NOT_INIT:
            raise self.fail("r0 (the return value) is not set at exit.", "R0 !read_ok")
        if self.in_global is not None:
            if r0.type != SCALAR:
                raise self.fail(
                    "A global function must return a number.",
                    f"At subprogram exit the register R0 is not a scalar value "
                    f"({self.reg_name(r0)})",
                )
            return None
        if r0.is_pointer() and self.unpriv:
            raise self.fail(
                "Returning a pointer in r0 leaks a kernel address.", "R0 leaks addr as return value"
            )
        rng = ctxinfo.return_range(self.prog_type, self.attach_type)
        if rng is not None:
            if r0.type == SCALAR:
                self.precise(st, 0)
            if r0.type != SCALAR:
                raise self.fail(
                    "The return value must be a number.",
                    f"At program exit the register R0 is not a known value ({self.reg_name(r0)})",
                )
            lo, hi = rng
            if r0.smin < lo or r0.smax > hi:
                raise self.fail(
                    f"The return value must be in [{lo}, {hi}] for a "
                    f"{_ptname(self.prog_type)} program.",
                    f"At program exit the register R0 has{_scalar_range(r0)} should have "
                    f"been in [{lo}, {hi}]",
                )
        return None


def _scalar_range(r: Reg) -> str:
    """`` smin=A smax=B`` as the kernel's ``verbose_invalid_scalar`` prints a range."""
    out = ""
    if r.smin > -(1 << 63):
        out += f" smin={r.smin}"
    if r.smax < (1 << 63) - 1:
        out += f" smax={r.smax}"
    return out or " unknown scalar value"
