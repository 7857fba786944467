"""The abstract interpreter: walk every path of a program over abstract states.

``Checker.run`` is the kernel's ``do_check``: depth-first over paths, forking at
conditional jumps whose outcome is unknown, pruning a path when a state already
verified at the same pruning point subsumes it (``state.states_equal``), detecting
loops that make no progress, and stopping at the instruction budget.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from operator import attrgetter

from ..isa import opcodes as op
from ..isa.disasm import ALU_SYMBOLS
from ..isa.instruction import Instruction
from ..uapi.enums import HELPER_IDS, HELPER_NAMES, MapType, ProgType
from . import ctxinfo, kbtf, liveness, load, precision, scalar, tnum
from .cfg import MAY_GOTO, Program, Reject, check_stack_depth
from .helpers_proto import (
    ANYTHING,
    ARG_BTF_SOCK_COMMON,
    ARG_SOCK_COMMON,
    CONST_ALLOC_SIZE_OR_ZERO,
    CONST_MAP_PTR,
    CONST_SIZE,
    CONST_SIZE_OR_ZERO,
    PROTOS,
    PTR_TO_CONST_STR,
    PTR_TO_CTX,
    PTR_TO_CTX_OR_NULL,
    PTR_TO_LONG,
    PTR_TO_MAP_VALUE_OR_NULL,
    PTR_TO_MEM_OR_NULL,
    PTR_TO_RINGBUF_MEM,
    PTR_TO_SPIN_LOCK,
    PTR_TO_STACK_OR_NULL,
    PTR_TO_U32_OUT,
    PTR_TO_UNINIT_MAP_VALUE,
    PTR_TO_UNINIT_MEM,
    PTR_TO_UNINIT_MEM_OR_NULL,
    RET_MAP_VALUE,
    RET_MAP_VALUE_OR_NULL,
    RET_RINGBUF_MEM_OR_NULL,
    RET_SOCK_COMMON_OR_NULL,
    RET_SOCKET_OR_NULL,
    RET_TCP_SOCK_OR_NULL,
    RET_VOID,
    Proto,
    helper_allowed,
    map_func_error,
    proto_for,
)
from .helpers_proto import (
    PTR_TO_FUNC as ARG_FUNC,
)
from .helpers_proto import (
    PTR_TO_MAP_KEY as ARG_MAP_KEY,
)
from .helpers_proto import (
    PTR_TO_MAP_VALUE as ARG_MAP_VALUE,
)
from .helpers_proto import (
    PTR_TO_MEM as ARG_MEM,
)
from .state import (
    CONST_PTR_TO_MAP,
    MAX_BPF_STACK,
    NOT_INIT,
    NOT_INIT_REG,
    PACKET_TYPES,
    PTR_TO_BTF_ID,
    PTR_TO_FUNC,
    PTR_TO_MAP_KEY,
    PTR_TO_MAP_VALUE,
    PTR_TO_MEM,
    PTR_TO_PACKET,
    PTR_TO_PACKET_END,
    PTR_TO_PACKET_META,
    PTR_TO_SOCK_COMMON,
    PTR_TO_SOCKET,
    PTR_TO_STACK,
    PTR_TO_TCP_SOCK,
    PTR_TO_TP_BUFFER,
    PTR_TO_XDP_SOCK,
    S32_MAX,
    S32_MIN,
    SCALAR,
    SOCKET_TYPES,
    ST_INVALID,
    ST_MISC,
    ST_SPILL,
    ST_ZERO,
    Frame,
    Ref,
    Reg,
    Slot,
    State,
    fmt_reg,
    s64,
    states_equal,
)
from .state import (
    PTR_TO_CTX as T_CTX,
)
from .tnum import M32, M64, Tnum, _tnew

BPF_MAX_VAR_OFF = 1 << 29
# the kernel's bpf_alu_string: how its log names an ALU operation
_ALU_STRING = {**ALU_SYMBOLS, op.NEG: "neg", op.END: "endian"}
PKT_RIGHT_OPEN_EXTRA = 1  # "pkt + n < end" proves n + 1 bytes
BPF_MAX_VAR_SIZ = 1 << 29
MAX_CALL_FRAMES = 8
COMPLEXITY_LIMIT_JMP_SEQ = 8192
MAX_ERRNO = 4095

CALLER_SAVED = (1, 2, 3, 4, 5)
#: helpers whose prototype says ``might_sleep`` (copy_from_user, copy_from_user_task,
#: ima_inode_hash, ima_file_hash, sys_bpf, btf_find_by_name_kind, sys_close)
_MIGHT_SLEEP = frozenset({148, 191, 161, 193, 166, 167, 168})


def _possible_cpus() -> int:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        n = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            n = max(n, int(hi or lo) + 1)
        return n or 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


NR_CPUS = _possible_cpus()


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


class _Pruned(Exception):
    pass


# opcode parts the main loop dispatches on (module constants: no attribute lookups)
_CLS_LD, _CLS_LDX, _CLS_ST, _CLS_STX = op.LD, op.LDX, op.ST, op.STX
_CLS_ALU, _CLS_JMP, _CLS_JMP32, _CLS_ALU64 = op.ALU, op.JMP, op.JMP32, op.ALU64
_JA, _EXIT, _CALL, _LDDW = op.JA, op.EXIT, op.CALL, op.LDDW
_MOV, _X = op.MOV, op.X


_PKT_ANY = (PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_PACKET_END)
#: pointer types the kernel's ``reg_not_null`` knows are not NULL (when not maybe-null)
_NOT_NULL_TYPES = frozenset(
    {PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY, PTR_TO_MEM, CONST_PTR_TO_MAP, *SOCKET_TYPES}
)

# alu_state bits of the kernel's ALU sanitation (BPF_ALU_*)
_ALU_SANITIZE_SRC = 1
_ALU_SANITIZE_DST = 2
_ALU_NEG_VALUE = 4
_ALU_IMMEDIATE = 8
_ALU_NON_POINTER = 16

#: pointer types one load/store instruction may not share with another type (the
#: kernel's ``reg_type_mismatch_ok``: their accesses are rewritten per instruction)
_NO_MIX_TYPES = frozenset(
    {T_CTX, PTR_TO_SOCKET, PTR_TO_SOCK_COMMON, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK}
)
_REG_TYPE_NAMES = {
    T_CTX: "ctx",
    PTR_TO_SOCKET: "sock",
    PTR_TO_SOCK_COMMON: "sock_common",
    PTR_TO_TCP_SOCK: "tcp_sock",
    PTR_TO_XDP_SOCK: "xdp_sock",
    PTR_TO_STACK: "fp",
    PTR_TO_MAP_VALUE: "map_value",
    PTR_TO_PACKET: "pkt",
    PTR_TO_MEM: "mem",
}

#: Program types whose context is typed by kernel BTF (not modelled: rejected).
BTF_CTX_TYPES = frozenset({ProgType.TRACING, ProgType.LSM, ProgType.STRUCT_OPS, ProgType.EXT})

#: The program types an unprivileged loader may load.
UNPRIV_PROG_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB})


class Checker:
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

    # ------------------------------------------------------------ global functions
    def verify_global(self, entry: int) -> None:
        """Verify a global function on its own, its arguments as its BTF prototype says
        (the kernel's ``do_check_subprogs``): scalars unknown, pointers maybe NULL."""
        g = self.global_funcs[entry]
        if g.error:
            self.pc = entry
            raise self.fail(g.error, g.error)
        f = Frame(0, self.prog.subprog_of(entry))
        for i, arg in enumerate(g.args, start=1):
            if arg[0] == "ctx":
                f.regs[i] = Reg.pointer(T_CTX)
            elif arg[0] == "mem":
                nonnull = len(arg) > 2 and arg[2]  # __arg_nonnull
                f.regs[i] = Reg.pointer(
                    PTR_TO_MEM,
                    maybe_null=not nonnull,
                    id=0 if nonnull else self.new_id(),
                    mem_size=arg[1],
                )
            else:
                f.regs[i] = Reg.unknown()
        f.regs[10] = Reg.pointer(PTR_TO_STACK, frameno=0)
        st = State()
        st.frames = [f]
        self.log.text_line(f"Validating {g.name}() func#{f.subprog}...")
        self.in_global = entry
        try:
            self.explore_all(st, entry)
        finally:
            self.in_global = None

    def call_global(self, st: State, target: int, pc: int) -> int:
        """A call of a global function: check the arguments against its prototype; the
        result is an unknown number (the callee is verified on its own)."""
        g = self.global_funcs[target]
        try:
            self._global_args(st, g)
        except Reject as e:
            e.kmsg += (
                f"\nCaller passes invalid args into func#{self.prog.subprog_of(target)} "
                f"('{g.name}')"
            )
            raise
        regs = st.cur.regs
        if self.prog.subprog_of(target) in self.changes_pkt:
            self._map_regs(
                st, lambda r: Reg.unknown() if r.type in PACKET_TYPES + (PTR_TO_PACKET_END,) else r
            )
            regs = st.cur.regs
        for r in CALLER_SAVED:
            regs[r] = NOT_INIT_REG
        regs[0] = Reg.unknown()
        if target not in self.global_queue:
            self.global_queue.append(target)
        return pc + 1

    def _global_args(self, st: State, g) -> None:
        """The arguments of a global function's call against its prototype (the
        kernel's ``btf_check_func_arg_match``)."""
        regs = st.cur.regs
        for i, arg in enumerate(g.args, start=1):
            r = regs[i]
            if r.type == NOT_INIT:
                raise self._bad_type(i, r)
            if arg[0] == "scalar":
                if r.type != SCALAR:
                    raise self.fail(
                        f"r{i}: argument {i} of {g.name}() is a number; got a "
                        f"{self.reg_name(r)} pointer.",
                        f"R{i} is not a scalar",
                    )
            elif arg[0] == "ctx":
                if r.type != T_CTX or r.off or r.var_off != tnum.ZERO:
                    raise self.fail(
                        f"r{i}: argument {i} of {g.name}() must be the context pointer.",
                        f"arg#{i - 1} expects pointer to ctx",
                    )
            elif len(arg) > 2 and arg[2] and (r.is_null_const() or r.maybe_null):
                raise self.fail(
                    f"r{i}: argument {i} of {g.name}() must not be NULL (__arg_nonnull).",
                    f"arg#{i - 1} is expected to be non-NULL",
                )
            elif not r.is_null_const():
                for write in (False, True):
                    self.check_mem_arg(
                        st,
                        i,
                        r,
                        arg[1],
                        write=write,
                        zero_ok=False,
                        name=f"{g.name}()",
                        allow_null=True,
                        what=f"argument {i} of {g.name}()",
                    )

    def push(self, state: State, pc: int) -> None:
        """Queue ``state`` to explore from ``pc`` later."""
        if state.parent is not None:
            state.parent.branches += 1
        self.stack.append((state, pc, self.pc))
        if len(self.stack) > COMPLEXITY_LIMIT_JMP_SEQ:
            raise self.fail(
                f"The program has more than {COMPLEXITY_LIMIT_JMP_SEQ} pending "
                "branches; it is too complex to verify.",
                f"The sequence of {len(self.stack)} jumps is too complex.",
            )

    def path_done(self, state: State) -> None:
        """A path finished (exit or pruned): its checkpoints lose one open branch."""
        p = state.parent
        while p is not None:
            p.branches -= 1
            if p.branches > 0:
                break
            # fully explored: now usable for pruning
            self.explored.setdefault(p.insn, []).append(p)
            p = p.parent

    # ------------------------------------------------------------------ pruning
    def visit(self, state: State, pc: int) -> bool:
        """At a pruning point: True when an explored state subsumes ``state``."""
        allow_uninit = self.priv
        is_cb_call = self._cb_calls.get(pc)
        if is_cb_call is None:
            insn = self.prog.at[pc]
            is_cb_call = self._cb_calls[pc] = insn.is_helper_call and insn.imm in _CALLBACK_HELPERS
        sig = None
        active = self.active.get(pc)
        if active and self._is_may_goto(pc):
            # a may_goto loop: a state within one of an earlier round (another depth)
            # ends here, the runtime's counter ends the loop (RANGE_WITHIN, no liveness)
            for olds in active.values():
                for old in olds:
                    if (
                        old.branches > 0
                        and old.may_goto_depth != state.may_goto_depth
                        and states_equal(old, state, allow_uninit)
                    ):
                        # every scalar was compared by range; what the earlier round
                        # relies on so far is what this path inherits (the kernel's
                        # propagate_precision; marking everything would stop widening)
                        if self.priv:
                            keys = precision.live_keys(old)
                            if keys:
                                precision.mark_chain(self.prog.at, state, keys)
                            # the checkpoints of this round lean on the earlier round's
                            # continuation, not explored yet: their marks are not final,
                            # so they compare every scalar (the kernel compares states
                            # inside an unfinished loop exactly, for the same reason)
                            p = state.parent
                            while p is not None and p is not old:
                                p.all_prec = True
                                p = p.parent
                        self.path_done(state)
                        return True
        if active:
            sig = _signature(state)
            if is_cb_call:
                # a callback round back at its call: it ends when a round still being
                # explored covers it (RANGE_WITHIN: every scalar by range); what that
                # round relies on so far is what this path inherits (propagate_precision)
                for old in active.get("cb", ()):
                    if old.branches > 0 and states_equal(old, state, allow_uninit):
                        if self.priv:
                            keys = precision.live_keys(old)
                            if keys:
                                precision.mark_chain(self.prog.at, state, keys)
                            p = state.parent
                            while p is not None and p is not old:
                                p.all_prec = True
                                p = p.parent
                        self.path_done(state)
                        return True
        if active and not is_cb_call:  # no infinite-loop test at a callback's call
            for old in active.get(sig, ()):
                # the kernel's infinite-loop test compares states exactly (EXACT)
                if (
                    old.branches > 0
                    and old.may_goto_depth == state.may_goto_depth
                    and states_equal(old, state, allow_uninit, True)
                ):
                    raise self.fail(
                        f"Instruction {pc} starts a loop that never makes "
                        "progress (infinite loop).",
                        f"infinite loop detected at insn {pc}",
                    )
        sls = self.explored.get(pc)
        if sls:
            evict = None
            live = self.live
            use_prec = self.priv
            alu_exact = self.explore_alu_limits
            for old in sls:
                if states_equal(old, state, allow_uninit, False, live, use_prec, alu_exact):
                    old.hits += 1
                    if use_prec:
                        # the pruned path continues as the checkpoint's did: what was
                        # precise there is precise here
                        keys = precision.live_keys(old)
                        if keys:
                            precision.mark_chain(self.prog.at, state, keys)
                    self.path_done(state)
                    return True
                old.misses += 1
                if old.misses > old.hits * 3 + 3:
                    evict = evict or []
                    evict.append(old)
            if evict:
                sls[:] = [x for x in sls if x not in evict]
                self.cur_states -= len(evict)
        add = (
            (self.jmps - self.prev_jmps >= 2 and self.stats.insns_processed - self.prev_insns >= 8)
            or is_cb_call
            or self._is_may_goto(pc)  # a forced checkpoint (mark_force_checkpoint)
        )
        if not add:
            return False
        self.prev_jmps = self.jmps
        self.prev_insns = self.stats.insns_processed
        if sig is None:
            sig = _signature(state)
        ck = state.copy()
        ck.hist = state.hist
        state.hist = []
        ck.insn = pc
        ck.branches = 1
        ck.parent = state.parent
        state.parent = ck
        act = self.active.setdefault(pc, {})
        act.setdefault(sig, []).append(ck)
        if is_cb_call:
            act.setdefault("cb", []).append(ck)
        self.stats.total_states += 1
        self.cur_states += 1
        self.stats.peak_states = max(self.stats.peak_states, self.cur_states)
        n = len(sls or ()) + 1
        self.stats.max_states_per_insn = max(self.stats.max_states_per_insn, n)
        return False

    def _is_may_goto(self, pc: int) -> bool:
        mg = self._may_goto_pcs
        if mg is None:
            mg = self._may_goto_pcs = frozenset(
                i for i, x in enumerate(self.prog.at) if x is not None and x.opcode == MAY_GOTO
            )
        return pc in mg

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

    # ------------------------------------------------------------------ ALU
    def do_alu(self, st: State, insn: Instruction) -> None:
        code = insn.opcode
        is64 = (code & 7) == _CLS_ALU64
        aop = code & 0xF0
        use_src = bool(code & _X)
        dstno = insn.dst
        if aop == _MOV and not use_src and dstno != 10:
            st.frames[-1].regs[dstno] = Reg.const(insn.imm if is64 else insn.imm & M32)
            return
        if aop == op.END or aop == op.NEG:
            dst = self.read_reg(st, dstno)
            self.check_dst(dstno)
            if dst.is_pointer():
                if self.unpriv:
                    raise self.fail(
                        f"r{dstno}: arithmetic on a pointer is not allowed without privileges.",
                        f"R{dstno} pointer arithmetic prohibited",
                    )
                self.set_reg(st, dstno, Reg.unknown())
                return
            r = dst.clone()
            r.id = 0
            if aop == op.NEG:
                scalar.neg(r, is64)
            else:
                scalar.bswap(r, insn.imm, bool(insn.opcode & op.TO_BE), is64)
            self.set_reg(st, dstno, r)
            return
        if aop == op.MOV:
            self.check_dst(dstno)
            if use_src:
                src = self.read_reg(st, insn.src)
                if insn.off == 0:
                    if is64:
                        if src.type == SCALAR and not src.is_const() and not src.id:
                            # link the copies so a later comparison narrows both
                            src = src.clone()
                            src.id = self.new_id()
                            self.set_reg(st, insn.src, src)
                        self.set_reg(st, dstno, src)
                    else:
                        if src.is_pointer():
                            if self.unpriv:
                                raise self.fail(
                                    f"Copying the low half of pointer r{insn.src} would leak it.",
                                    f"R{insn.src} partial copy of pointer",
                                )
                            self.set_reg(st, dstno, scalar_zext_unknown())
                            return
                        # a value that fits 32 bits stays linked to its source
                        src = self._link_if(st, insn.src, src, src.umax.bit_length() <= 32)
                        r = src.clone()
                        if src.umax.bit_length() > 32:
                            r.id = 0
                        scalar.truncate(r, 4)
                        self.set_reg(st, dstno, r)
                else:
                    if src.is_pointer():
                        if self.unpriv:
                            raise self.fail(
                                f"Sign-extending part of pointer r{insn.src} would leak it.",
                                f"R{insn.src} sign-extension part of pointer",
                            )
                        self.set_reg(st, dstno, Reg.unknown() if is64 else scalar_zext_unknown())
                        return
                    # no sign to extend: the copy stays linked to its source
                    no_sext = src.umax < (1 << (insn.off - 1))
                    src = self._link_if(st, insn.src, src, no_sext)
                    r = src.clone()
                    if not no_sext:
                        r.id = 0
                    scalar.sext(r, insn.off, is64)
                    self.set_reg(st, dstno, r)
            else:
                v = insn.imm if is64 else insn.imm & M32
                self.set_reg(st, dstno, Reg.const(v))
            return
        dst = self.read_reg(st, dstno)
        self.check_dst(dstno)
        dvo = dst.var_off
        if use_src:
            src = self.read_reg(st, insn.src)
            if (
                not dvo[1]
                and dst.type == SCALAR
                and src.type == SCALAR
                and not src.var_off[1]
                and not (self.unpriv and aop in (op.ADD, op.SUB))
            ):
                # both known: what scalar.alu computes, without its call chain
                v = scalar.fold(aop, is64, dvo[0], src.var_off[0])
                if v is not None:
                    r = dst.clone()
                    r.id = 0
                    r.set_const(v)
                    st.frames[-1].regs[dstno] = r
                    return
        else:
            imm = insn.imm
            if aop in (op.DIV, op.MOD) and imm == 0:
                raise self.fail("Division by the constant zero.", "div by zero")
            if aop in (op.LSH, op.RSH, op.ARSH) and not 0 <= imm < (64 if is64 else 32):
                raise self.fail(
                    f"Shift by {imm} is outside the register width.",
                    f"invalid shift {imm}",
                )
            if not dvo[1] and dst.type == SCALAR:
                v = scalar.fold(aop, is64, dvo[0], imm & M64 if is64 else imm & M32)
                if v is not None:
                    r = dst.clone()
                    r.id = 0
                    r.set_const(v)
                    st.frames[-1].regs[dstno] = r
                    return
            src = Reg.const(imm if is64 else imm & M32)
        if dst.is_pointer() or src.is_pointer():
            self.set_reg(st, dstno, self.ptr_alu(st, insn, aop, is64, dst, src, dstno))
            return
        if self.unpriv and use_src and aop in (op.ADD, op.SUB):
            # the kernel's sanitize_val_alu: a scalar add/sub here on every path
            self.alu_window(insn, aop, _ALU_NON_POINTER, 0)
        r = dst.clone()
        r.id = 0
        scalar.alu(aop, is64, r, src, signed_divmod=insn.off == 1)
        self.set_reg(st, dstno, r)

    def _link_if(self, st: State, regno: int, src: Reg, cond: bool) -> Reg:
        """The kernel's assign_scalar_id_before_mov: when ``cond``, a scalar that is not
        a constant gets an id (in its register) so that the copy made next is linked."""
        if cond and src.type == SCALAR and not src.id and src.var_off.mask:
            src = src.clone()
            src.id = self.new_id()
            self.set_reg(st, regno, src)
        return src

    def ptr_alu(
        self, st: State, insn: Instruction, aop: int, is64: bool, dst: Reg, src: Reg, dstno: int
    ) -> Reg:
        """Pointer arithmetic (kernel ``adjust_ptr_min_max_vals``)."""
        opname = op.ALU_NAMES.get(aop, "?")
        # the scalar operand's value shapes the pointer
        if dst.type == SCALAR:
            self.precise(st, dstno)
        elif src.type == SCALAR and insn.opcode & op.X:
            self.precise(st, insn.src)
        if dst.is_pointer() and src.is_pointer():
            # any width: the kernel checks two pointers before it looks at the class
            if aop == op.SUB and self.priv:
                return Reg.unknown()
            raise self.fail(
                f"r{dstno}: {opname} of two pointers is not allowed.",
                f"R{dstno} pointer {_ALU_STRING.get(aop, opname)} pointer prohibited",
            )
        if not is64:
            if aop == op.SUB and self.priv:
                return Reg.unknown()
            raise self.fail(
                f"r{dstno}: 32-bit arithmetic on a pointer is not allowed.",
                f"R{dstno} 32-bit pointer arithmetic prohibited",
            )
        if src.is_pointer():
            if aop != op.ADD:
                if aop == op.SUB:
                    raise self.fail(
                        f"r{dstno}: subtracting a pointer from a scalar is not allowed.",
                        f"R{dstno} tried to subtract pointer from scalar",
                    )
                raise self.fail(
                    f"r{dstno}: {opname} with a pointer operand is not allowed.",
                    f"R{dstno} pointer arithmetic with {_ALU_STRING.get(aop, opname)} operator prohibited",
                )
            ptr, off = src, dst
        else:
            ptr, off = dst, src
        pname = ptr.type_name()
        if ptr.maybe_null:
            raise self.fail(
                f"r{dstno}: arithmetic on a {pname} pointer before its null check.",
                f"R{dstno} pointer arithmetic on {pname} prohibited, null-check it first",
            )
        if ptr.type == CONST_PTR_TO_MAP:
            if not (off.is_const() and off.value == 0 and aop == op.ADD):
                raise self.fail(
                    f"r{dstno}: arithmetic on a map pointer is not allowed.",
                    f"R{dstno} pointer arithmetic on map_ptr prohibited",
                )
            return ptr
        if ptr.type in (PTR_TO_PACKET_END, PTR_TO_FUNC, *SOCKET_TYPES) or (
            ptr.type == PTR_TO_MEM and ptr.rdonly and False
        ):
            raise self.fail(
                f"r{dstno}: arithmetic on a {pname} pointer is not allowed.",
                f"R{dstno} pointer arithmetic on {pname} prohibited",
            )
        if aop not in (op.ADD, op.SUB):
            if aop in (op.AND, op.OR, op.XOR):
                raise self.fail(
                    f"r{dstno}: bitwise {opname} on a pointer is not allowed.",
                    f"R{dstno} bitwise operator {_ALU_STRING[aop]} on pointer prohibited",
                )
            raise self.fail(
                f"r{dstno}: {opname} on a pointer is not allowed.",
                f"R{dstno} pointer arithmetic with {_ALU_STRING[aop]} operator prohibited",
            )
        known = off.is_const()
        self.sane_offset(dstno, off, pname)
        self.sane_offset(dstno, ptr, pname)
        # the kernel's Spectre v1 sanitation of register-operand add/sub (unprivileged)
        sanitize = self.unpriv and bool(insn.opcode & op.X) and aop in (op.ADD, op.SUB)
        if sanitize:
            offno = dstno if off is dst else insn.src
            ptrno = insn.src if off is dst else dstno
            alu_state, limit, to_left = self.sanitize_ptr(insn, aop, ptr, off, offno, ptrno)
        r = ptr.clone()
        if aop == op.ADD:
            if known:
                r.off = _s32_wrap(ptr.off + off.smin)
            else:
                scalar.alu(op.ADD, True, r, off)
                if r.type in PACKET_TYPES:
                    r.id = self.new_id()
                    r.range = 0
        else:
            if dst is off:
                raise self.fail(
                    f"r{dstno}: subtracting a pointer from a scalar is not allowed.",
                    f"R{dstno} tried to subtract pointer from scalar",
                )
            if ptr.type == PTR_TO_STACK:
                # for every loader: JITs may not cope with a frame pointer moved up
                raise self.fail(
                    f"r{dstno}: subtracting from a stack pointer is not allowed "
                    "(add a negative number instead).",
                    f"R{dstno} subtraction from stack pointer prohibited",
                )
            if known:
                r.off = _s32_wrap(ptr.off - off.smin)
            else:
                scalar.alu(op.SUB, True, r, off)
                if r.type in PACKET_TYPES:
                    r.id = self.new_id()
                    r.range = 0
        self.sane_offset(dstno, r, pname)
        if self.unpriv:
            self.sanitize_check_bounds(dstno, r)
        if sanitize:
            self.sanitize_commit(insn, aop, r, alu_state, limit, to_left)
        return r

    # ------------------------------------------------------- Spectre v1 sanitation
    _SANITIZE_ERR = "pointer arithmetic with it prohibited for !root"

    def _ptr_limit(self, insn: Instruction, aop: int, ptr: Reg, to_left: bool, ptrno: int) -> int:
        """How far the masked offset may move the pointer (``retrieve_ptr_limit``)."""
        if ptr.type == PTR_TO_STACK:
            mx = MAX_BPF_STACK + to_left
            limit = -(ptr.var_off.value + ptr.off) & M32
        elif ptr.type == PTR_TO_MAP_VALUE:
            mx = ptr.map.value_size
            limit = ((ptr.smin if to_left else ptr.umax) + ptr.off) & M32
        else:
            raise self.fail(
                f"r{ptrno}: adding a register to a {ptr.type_name()} pointer needs "
                "privileges (only stack and map value pointers can be sanitized).",
                f"R{ptrno} has pointer with unsupported alu operation, {self._SANITIZE_ERR}",
            )
        if limit >= mx:
            opname = "add" if aop == op.ADD else "sub"
            raise self.fail(
                f"r{insn.dst}: the pointer could be moved out of its object under "
                "speculation (not allowed without privileges).",
                f"R{insn.dst} tried to {opname} beyond pointer bounds, {self._SANITIZE_ERR}",
            )
        return limit

    def sanitize_ptr(
        self, insn: Instruction, aop: int, ptr: Reg, off: Reg, offno: int, ptrno: int
    ) -> tuple[int, int, bool]:
        """First half of the kernel's ``sanitize_ptr_alu`` (before the operation)."""
        off_is_imm = off.var_off.mask == 0
        off_is_neg = off.smin < 0
        if not off_is_imm and (off.smin < 0) != (off.smax < 0):
            raise self.fail(
                f"r{offno}: the offset may be negative or positive; without privileges "
                "pointer arithmetic needs an offset of known sign.",
                f"R{offno} has unknown scalar with mixed signed bounds, {self._SANITIZE_ERR}",
            )
        to_left = (aop == op.ADD and off_is_neg) or (aop == op.SUB and not off_is_neg)
        limit = self._ptr_limit(insn, aop, ptr, to_left, ptrno)
        alu_state = (_ALU_NEG_VALUE if off_is_neg else 0) | (_ALU_IMMEDIATE if off_is_imm else 0)
        alu_state |= _ALU_SANITIZE_SRC if ptrno == insn.dst else _ALU_SANITIZE_DST
        if not off_is_imm:
            # pruning compares scalars exactly from now on (the kernel's
            # explore_alu_limits), so every path reaches the masks below
            self.explore_alu_limits = True
        return alu_state, limit, to_left

    def sanitize_commit(
        self, insn: Instruction, aop: int, r: Reg, alu_state: int, limit: int, to_left: bool
    ) -> None:
        """Second half (after the operation): the masking window of this instruction
        must be the same on every path that reaches it."""
        after = self._ptr_limit(insn, aop, r, to_left, insn.dst)
        d = (limit - after) & M32
        d = d - (1 << 32) if d >= 1 << 31 else d
        self.alu_window(insn, aop, alu_state, abs(d))

    def alu_window(self, insn: Instruction, aop: int, alu_state: int, limit: int) -> None:
        """Record (or compare with) the ALU sanitation of instruction ``self.pc``."""
        seen = self.alu_aux.get(self.pc)
        if seen is None:
            self.alu_aux[self.pc] = (alu_state, limit)
        elif seen != (alu_state, limit):
            opname = "add" if aop == op.ADD else "sub"
            raise self.fail(
                f"r{insn.dst}: this {opname} mixes pointers and scalars (or different "
                "pointer ranges) on different paths; without privileges its speculation "
                "mask must be the same on every path.",
                f"R{insn.dst} tried to {opname} from different maps, paths or scalars, "
                f"{self._SANITIZE_ERR}",
            )

    def sanitize_check_bounds(self, dstno: int, r: Reg) -> None:
        """Unprivileged pointer arithmetic must stay inside the object
        (``sanitize_check_bounds``)."""
        if r.type == PTR_TO_STACK:
            if r.var_off.mask:
                raise self.fail(
                    f"r{dstno}: variable offsets on stack pointers need privileges.",
                    f"R{dstno} variable stack access prohibited for !root, "
                    f"var_off={tnum.fmt(r.var_off)} off={r.off}",
                )
            o = r.off + s64(r.var_off.value)
            if o < -MAX_BPF_STACK or o >= 0:
                raise self.fail(
                    f"r{dstno}: the stack pointer leaves the stack (not allowed "
                    "without privileges).",
                    f"R{dstno} stack pointer arithmetic goes out of range, "
                    f"prohibited for !root; off={o}",
                )
        elif r.type == PTR_TO_MAP_VALUE:
            if (
                r.off + r.smin < 0
                or r.umax >= BPF_MAX_VAR_OFF
                or r.off + r.umax + 1 > r.map.value_size
            ):
                raise self.fail(
                    f"r{dstno}: pointer arithmetic takes the map value pointer out "
                    "of range (not allowed without privileges).",
                    f"R{dstno} pointer arithmetic of map value goes out of range, "
                    "prohibited for !root",
                )

    def sane_offset(self, dstno: int, r: Reg, pname: str) -> None:
        """The kernel's limits on values in pointer arithmetic (``check_reg_sane_offset``)."""
        if r.var_off.mask == 0 and r.type == SCALAR:
            val = s64(r.var_off.value)
            if val >= BPF_MAX_VAR_OFF or val <= -BPF_MAX_VAR_OFF:
                raise self.fail(
                    f"r{dstno}: adding {val} takes the {pname} pointer far out of bounds.",
                    f"math between {pname} pointer and {val} is not allowed",
                )
        if r.off >= BPF_MAX_VAR_OFF or r.off <= -BPF_MAX_VAR_OFF:
            raise self.fail(
                f"r{dstno}: the {pname} pointer's offset {r.off} is out of bounds.",
                f"{pname} pointer offset {r.off} is not allowed",
            )
        if r.smin == -(1 << 63):
            raise self.fail(
                f"r{dstno}: the offset added to the {pname} pointer has no lower "
                "bound; bound it with a comparison first.",
                f"math between {pname} pointer and register with unbounded min "
                "value is not allowed",
            )
        if r.smin >= BPF_MAX_VAR_OFF or r.smin <= -BPF_MAX_VAR_OFF:
            raise self.fail(
                f"r{dstno}: the value {r.smin} takes the {pname} pointer out of bounds.",
                f"value {r.smin} makes {pname} pointer be out of bounds",
            )

    # ------------------------------------------------------------------ lddw
    def do_lddw(self, st: State, insn: Instruction) -> None:
        self.check_dst(insn.dst)
        src = insn.src
        if src == 0:
            self.set_reg(st, insn.dst, Reg.const(insn.imm))
            return
        if src == op.PSEUDO_FUNC:
            t = self.pc + 1 + s64(insn.imm)
            self.set_reg(st, insn.dst, Reg.pointer(PTR_TO_FUNC, subprog=self.prog.subprog_of(t)))
            return
        m = self.lookup_map(insn.imm_lo, src in (op.PSEUDO_MAP_IDX, op.PSEUDO_MAP_IDX_VALUE))
        if src in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_IDX):
            self.set_reg(st, insn.dst, Reg.pointer(CONST_PTR_TO_MAP, map=m))
            return
        off = insn.imm_hi  # a one-element array, off inside its value (load.resolve_maps)
        self.set_reg(st, insn.dst, Reg.pointer(PTR_TO_MAP_VALUE, map=m, off=off))

    def lookup_map(self, key: int, by_index: bool):
        """The map a pseudo ``lddw`` names."""
        m = self.maps.get(key)
        if m is None:
            kind = "index" if by_index else "fd"
            raise self.fail(
                f"lddw refers to map {kind} {key}, which is not a known map.",
                f"fd {key} is not pointing to valid bpf_map",
            )
        return m

    # ------------------------------------------------------------------ memory
    def do_ldx(self, st: State, insn: Instruction) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        signed = (insn.opcode & 0xE0) == op.MEMSX
        base = self.read_reg(st, insn.src)
        self.check_dst(insn.dst)
        val = self.mem_access(
            st, insn.src, base, insn.off, size, write=False, value=None, ldsx=signed
        )
        self.save_ptr_type(base.type)
        if val.type == SCALAR and size < 8:
            val = val.clone()
            if signed:
                scalar.sext(val, size * 8, True)
            else:
                scalar.truncate(val, size)
        elif signed and val.type == SCALAR:
            pass
        self.set_reg(st, insn.dst, val)

    def do_store(self, st: State, insn: Instruction) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        mode = insn.opcode & 0xE0
        base = self.read_reg(st, insn.dst)
        if insn.cls == op.ST:
            if base.type == T_CTX and False:
                pass
            val = Reg.const(insn.imm)
            self.mem_access(
                st,
                insn.dst,
                base,
                insn.off,
                size,
                write=True,
                value=val,
                value_regno=-1,
                imm_store=True,
            )
            self.save_ptr_type(base.type)
            return
        src = self.read_reg(st, insn.src)
        if mode == op.ATOMIC:
            self.do_atomic(st, insn, base, src, size)
            return
        self.mem_access(
            st, insn.dst, base, insn.off, size, write=True, value=src, value_regno=insn.src
        )
        self.save_ptr_type(base.type)

    def save_ptr_type(self, t: int) -> None:
        """One load/store instruction, one kind of pointer (the kernel's
        ``save_aux_ptr_type``): its context and socket accesses are rewritten for the
        type seen first, so another path reaching it with a different pointer where
        either is such a type is refused."""
        prev = self.aux_ptr.setdefault(self.pc, t)
        if prev != t and (prev in _NO_MIX_TYPES or t in _NO_MIX_TYPES):
            raise self.fail(
                "The same load/store instruction is reached with different kinds of "
                f"pointer ({_REG_TYPE_NAMES.get(prev, prev)} and "
                f"{_REG_TYPE_NAMES.get(t, t)}) on different paths.",
                "same insn cannot be used with different pointers",
            )

    def do_atomic(self, st: State, insn: Instruction, base: Reg, src: Reg, size: int) -> None:
        """An atomic read-modify-write (the kernel's ``check_atomic_rmw``)."""
        aimm = insn.imm
        if aimm == op.CMPXCHG:
            self.read_reg(st, 0)
            if st.cur.regs[0].is_pointer() and self.unpriv:
                raise self.fail("r0: comparing with a pointer leaks it.", "R0 leaks addr into mem")
        if src.is_pointer() and self.unpriv:
            raise self.fail(
                f"r{insn.src}: storing a pointer into memory leaks it.",
                f"R{insn.src} leaks addr into mem",
            )
        if base.type in (T_CTX, PTR_TO_PACKET, PTR_TO_PACKET_META):
            raise self.fail(
                f"Atomic operations on {base.type_name()} memory are not allowed.",
                f"BPF_ATOMIC stores into R{insn.dst} {base.type_name()} is not allowed",
            )
        loaded = self.mem_access(
            st, insn.dst, base, insn.off, size, write=False, value=None, strict_once=True
        )
        if loaded.is_pointer() and self.unpriv:
            raise self.fail(
                "An atomic operation on a stack slot holding a pointer would leak it.",
                f"leaking pointer from stack off {insn.off + base.off}",
            )
        self.save_ptr_type(st.cur.regs[insn.dst].type)
        self.mem_access(
            st,
            insn.dst,
            st.cur.regs[insn.dst],
            insn.off,
            size,
            write=True,
            value=Reg.unknown(),
            value_regno=-1,
        )
        # the old value (a spilled pointer stays a pointer, for a privileged loader)
        old = loaded if loaded.is_pointer() else scalar.load_sized(size, False)
        if aimm == op.CMPXCHG:
            self.set_reg(st, 0, old)
        elif aimm & op.FETCH:
            self.check_dst(insn.src)
            self.set_reg(st, insn.src, old)

    def mem_access(
        self,
        st: State,
        regno: int,
        base: Reg,
        off: int,
        size: int,
        *,
        write: bool,
        value: Reg | None,
        value_regno: int = -1,
        imm_store: bool = False,
        ldsx: bool = False,
        strict_once: bool = False,
    ) -> Reg:
        """Check one load or store through ``base``; returns the loaded value
        (``ldsx``: a sign-extending load; ``strict_once``: alignment is checked whatever
        the program's flags, as for atomics)."""
        t = base.type
        full = off + base.off
        if t != PTR_TO_STACK and size > 1 and (self.strict_align or strict_once):
            self.check_alignment(base, off, size)
        if t == PTR_TO_STACK:
            return self.stack_access(
                st, regno, base, off, size, write, value, value_regno, imm_store
            )
        if (
            write
            and value is not None
            and value.is_pointer()
            and self.unpriv
            and t in (PTR_TO_MAP_VALUE, PTR_TO_MEM, T_CTX, PTR_TO_PACKET)
        ):
            where = {PTR_TO_MAP_VALUE: "map", T_CTX: "ctx"}.get(t, "mem")
            raise self.fail(
                f"r{value_regno}: storing a pointer into {where} memory leaks it.",
                f"R{value_regno} leaks addr into {where}",
            )
        if t == PTR_TO_MAP_VALUE or t == PTR_TO_MAP_KEY:
            if base.maybe_null:
                raise self._bad_type(regno, base)
            m = base.map
            limit = m.value_size if t == PTR_TO_MAP_VALUE else m.key_size
            if t == PTR_TO_MAP_VALUE:
                self.map_access_type(m, off, size, write)
            if write and t == PTR_TO_MAP_KEY:
                raise self.fail(
                    "Writing through a map key pointer is not allowed.",
                    f"R{regno} cannot write into map_key",
                )
            self.region_access(
                regno,
                base,
                full,
                size,
                limit,
                "map value" if t == PTR_TO_MAP_VALUE else "map key",
                f"invalid access to map value, value_size={limit} off={{off}} size={size}",
            )
            if t == PTR_TO_MAP_VALUE and m.spin_lock_off >= 0:
                lo = full + base.smin
                hi = full + base.smax + size
                if lo < m.spin_lock_off + 4 and hi > m.spin_lock_off:
                    raise self.fail(
                        "The bpf_spin_lock in a map value cannot be read or written directly.",
                        "bpf_spin_lock cannot be accessed directly by load/store",
                    )
            if write:
                return Reg.unknown()
            if (
                not write
                and t == PTR_TO_MAP_VALUE
                and m.frozen
                and m.rdonly_prog
                and m.data is not None
                and base.var_off == tnum.ZERO
                and full + size <= len(m.data)
            ):
                v = int.from_bytes(m.data[full : full + size], "little")
                return Reg.const(v)
            return Reg.unknown()
        if t == PTR_TO_MEM:
            if base.maybe_null:
                raise self._bad_type(regno, base)
            if write and base.rdonly:
                raise self.fail(
                    "The memory is read-only.", f"R{regno} cannot write into {base.type_name()}"
                )
            self.region_access(
                regno,
                base,
                full,
                size,
                base.mem_size,
                "memory",
                f"invalid access to memory, mem_size={base.mem_size} off={{off}} size={size}",
            )
            return Reg.unknown()
        if t == T_CTX:
            self.check_ptr_off(regno, base)
            if write and value is not None and value.is_pointer():
                if self.unpriv:
                    raise self.fail(
                        f"r{value_regno}: storing a pointer into the context leaks it.",
                        f"R{value_regno} leaks addr into ctx",
                    )
            acc = ctxinfo.check(self.prog_type, full, size, write, self.unpriv, self.attach_type)
            if acc.ok and ldsx and acc.reg_type != SCALAR:
                acc = ctxinfo.CtxAccess(False)  # a pointer field cannot be sign-extended
            if not acc.ok:
                what = "write" if write else "read"
                raise self.fail(
                    f"The context of a {_ptname(self.prog_type)} program has no "
                    f"{size}-byte field to {what} at offset {full}.",
                    f"invalid bpf_context access off={full} size={size}",
                )
            if write:
                return Reg.unknown()
            if acc.reg_type in SOCKET_TYPES:
                # skb->sk and some others may be NULL: an id of their own for the check
                if acc.reg_type == PTR_TO_SOCK_COMMON or acc.extra.get("null"):
                    return Reg.pointer(acc.reg_type, maybe_null=True, id=self.new_id())
                return Reg.pointer(acc.reg_type)
            if acc.reg_type != SCALAR:
                r = Reg.pointer(acc.reg_type)
                if acc.reg_type in PACKET_TYPES:
                    r.id = 0
                return r
            return Reg.unknown()
        if t == CONST_PTR_TO_MAP:
            return self.map_ptr_access(regno, base, full, size, write)
        if t == PTR_TO_BTF_ID and not base.maybe_null:
            raise self.fail(
                f"r{regno}: reading kernel struct {base.map or ''} through its BTF is not "
                "supported by bpfkit's verifier.",
                f"R{regno} access through ptr_{base.map or ''} is not supported",
            )
        if t == PTR_TO_TP_BUFFER:
            # check_tp_buffer_access: a non-negative constant offset (the attach checks
            # the highest offset against the tracepoint's writable size)
            if full < 0:
                raise self.fail(
                    f"r{regno}: a negative offset ({full}) into the tracepoint buffer.",
                    f"R{regno} invalid tracepoint buffer access: off={full}, size={size}",
                )
            if base.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{regno}: a variable offset into the tracepoint buffer.",
                    f"R{regno} invalid variable buffer offset: off={full}, "
                    f"var_off={tnum.fmt(base.var_off)}",
                )
            return Reg.unknown()
        if t in SOCKET_TYPES and not base.maybe_null:
            tn = base.type_name()
            if write:
                raise self.fail(
                    f"r{regno}: a socket cannot be written.",
                    f"R{regno} cannot write into {tn}",
                )
            check = {
                PTR_TO_SOCK_COMMON: lambda o, n: ctxinfo.sock_common_access(o, n, False),
                PTR_TO_SOCKET: ctxinfo.bpf_sock_access,
                PTR_TO_TCP_SOCK: ctxinfo.tcp_sock_access,
                PTR_TO_XDP_SOCK: ctxinfo.xdp_sock_access,
            }[t]
            if not check(full, size):
                raise self.fail(
                    f"r{regno}: the {tn} has no readable {size}-byte field at offset {full}.",
                    f"R{regno} invalid {tn} access off={full} size={size}",
                )
            return Reg.unknown()
        if t in PACKET_TYPES:
            if write and self.prog_type not in ctxinfo.PKT_WRITE:
                raise self.fail(
                    "This program type cannot write into the packet.", "cannot write into packet"
                )
            if self.prog_type not in ctxinfo.PKT_READ:
                raise self._bad_type(regno, base)
            if base.smin < 0:
                raise self.fail(
                    f"r{regno}: the packet offset may be negative.",
                    f"R{regno} min value is negative, either use unsigned index "
                    "or do a if (index >=0) check.",
                )
            if full < 0 or full + size > base.range:
                raise self.fail(
                    f"r{regno}: a {size}-byte packet access at offset {full} is not proven to "
                    f"be within the packet (checked length {base.range}); compare with "
                    "data_end first.",
                    f"invalid access to packet, off={full} size={size}, R{regno}(id={base.id},"
                    f"off={base.off},r={base.range})\nR{regno} offset is outside of the packet",
                )
            return Reg.unknown()
        raise self._bad_type(regno, base)

    def map_ptr_access(self, regno: int, base: Reg, off: int, size: int, write: bool) -> Reg:
        """A read of the kernel's ``struct bpf_map`` behind a map pointer (the kernel's
        ``check_ptr_to_map_access``), walked in the running kernel's BTF."""
        m = base.map
        tname = kbtf.MAP_STRUCTS.get(m.type)
        sid = kbtf.struct_id(tname) if tname else None
        if sid is None:
            raise self.fail(
                f"r{regno}: reading the fields of map '{m.name}' needs the running kernel's "
                "BTF (/sys/kernel/btf/vmlinux); not supported without it.",
                f"map_ptr access not supported for map type {m.type}",
            )
        if self.unpriv:
            raise self.fail(
                f"r{regno}: reading a map's kernel struct needs CAP_PERFMON.",
                f"'struct {tname}' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN",
            )
        if off < 0:
            raise self.fail(
                f"r{regno}: a negative offset into the map's kernel struct.",
                f"R{regno} is {tname} invalid negative access: off={off}",
            )
        if write:
            raise self.fail(
                f"r{regno}: a map's kernel struct cannot be written.",
                f"only read from {tname} is supported",
            )
        try:
            kind, target = kbtf.struct_walk(kbtf.vmlinux(), sid, off, size)
        except kbtf.StructAccessError as e:
            raise self.fail(
                f"r{regno}: struct {tname} has no readable {size}-byte field at offset {off}.",
                str(e.args[0]),
            ) from None
        if kind == "ptr":
            return Reg.pointer(PTR_TO_BTF_ID, map=kbtf.vmlinux().get(target).name)
        return Reg.unknown()

    def check_ptr_off(self, regno: int, r: Reg, fixed_off_ok: bool = False) -> None:
        """A pointer that must be used unmodified (the context; the kernel's
        ``__check_ptr_off_reg``): no negative, fixed or variable offset."""
        tn = self.reg_name(r)
        if r.off < 0:
            raise self.fail(
                f"r{regno}: the {tn} pointer was moved before its start (offset {r.off}).",
                f"negative offset {tn} ptr R{regno} off={r.off} disallowed",
            )
        if r.off and not fixed_off_ok:
            raise self.fail(
                f"r{regno}: the {tn} pointer was modified (offset {r.off}); use the "
                "original pointer.",
                f"dereference of modified {tn} ptr R{regno} off={r.off} disallowed",
            )
        if r.var_off != tnum.ZERO:
            raise self.fail(
                f"r{regno}: the {tn} pointer has a variable offset.",
                f"variable {tn} access var_off={tnum.fmt(r.var_off)} disallowed",
            )

    def check_alignment(self, base: Reg, off: int, size: int) -> None:
        """Strict alignment (``BPF_F_STRICT_ALIGNMENT``, atomics): the kernel's
        ``check_ptr_alignment``; packet data is assumed to start 2 bytes past an
        aligned address (NET_IP_ALIGN)."""
        t = base.type
        vo = base.var_off
        if t in (PTR_TO_PACKET, PTR_TO_PACKET_META):
            at = tnum.add(vo, tnum.const(2 + base.off + off))
            if not tnum.is_aligned(at, size):
                raise self.fail(
                    f"Misaligned {size}-byte packet access (strict alignment).",
                    f"misaligned packet access off 2+{_tn(vo)}+{base.off}+{off} size {size}",
                )
            return
        desc = {
            PTR_TO_MAP_KEY: "key ",
            PTR_TO_MAP_VALUE: "value ",
            T_CTX: "context ",
            PTR_TO_STACK: "stack ",
            PTR_TO_SOCKET: "sock ",
            PTR_TO_SOCK_COMMON: "sock_common ",
            PTR_TO_TCP_SOCK: "tcp_sock ",
            PTR_TO_XDP_SOCK: "xdp_sock ",
        }.get(t, "")
        at = tnum.add(vo, tnum.const(base.off + off))
        if not tnum.is_aligned(at, size):
            raise self.fail(
                f"Misaligned {size}-byte {desc}access (strict alignment).",
                f"misaligned {desc}access off {_tn(vo)}+{base.off}+{off} size {size}",
            )

    def map_access_type(self, m, off: int, size: int, write: bool) -> None:
        """BPF_F_RDONLY_PROG / BPF_F_WRONLY_PROG (the kernel's ``check_map_access_type``)."""
        if write and m.rdonly_prog:
            raise self.fail(
                f"Map '{m.name}' is read-only for programs (BPF_F_RDONLY_PROG).",
                f"write into map forbidden, value_size={m.value_size} off={off} size={size}",
            )
        if not write and m.wronly_prog:
            raise self.fail(
                f"Map '{m.name}' is write-only for programs (BPF_F_WRONLY_PROG).",
                f"read from map forbidden, value_size={m.value_size} off={off} size={size}",
            )

    def _bad_type(self, regno: int, base: Reg) -> Reject:
        name = self.reg_name(base)
        if base.type == NOT_INIT:
            return self.fail(
                f"Register r{regno} is read before it is written.", f"R{regno} !read_ok"
            )
        if base.maybe_null:
            return self.fail(
                f"r{regno} may be NULL ({name}); check it against 0 before dereferencing it.",
                f"R{regno} invalid mem access '{name}'",
            )
        if base.type == SCALAR:
            return self.fail(
                f"r{regno} is a number, not a pointer; it cannot be dereferenced.",
                f"R{regno} invalid mem access 'scalar'",
            )
        return self.fail(
            f"r{regno} ({name}) cannot be dereferenced.", f"R{regno} invalid mem access '{name}'"
        )

    def region_access(
        self,
        regno: int,
        base: Reg,
        off: int,
        size: int,
        limit: int,
        what: str,
        kfmt: str,
        zero_ok: bool = False,
    ) -> None:
        """Bounds of a map value / memory access with the pointer's variable part."""
        smin = base.smin
        if smin < 0 and (
            smin == -(1 << 63) or smin + off < 0 or not -(1 << 31) <= off + smin < (1 << 31)
        ):
            raise self.fail(
                f"r{regno}: the {what} offset may be negative; check the index "
                "is not negative first.",
                f"R{regno} min value is negative, either use unsigned index or do "
                "a if (index >=0) check.",
            )
        lo = smin + off
        ok_size = size > 0 or (size == 0 and zero_ok)
        if not (lo >= 0 and ok_size and lo + size <= limit):
            raise self.fail(
                f"r{regno}: a {size}-byte access at offset {lo} is outside the "
                f"{what} (size {limit}).",
                kfmt.format(off=lo) + f"\nR{regno} min value is outside of the "
                "allowed memory range",
            )
        if base.umax >= BPF_MAX_VAR_OFF:
            raise self.fail(
                f"r{regno}: the {what} offset is unbounded; bound it with a comparison first.",
                f"R{regno} unbounded memory access, make sure to bounds check any such access",
            )
        hi = base.umax + off
        if not (hi >= 0 and ok_size and hi + size <= limit):
            raise self.fail(
                f"r{regno}: a {size}-byte access at offset up to {hi} can go past "
                f"the end of the {what} (size {limit}).",
                kfmt.format(off=hi) + f"\nR{regno} max value is outside of the "
                "allowed memory range",
            )

    # ------------------------------------------------------------------ stack
    def frame_of(self, st: State, ptr: Reg) -> Frame:
        """The frame a stack pointer points into."""
        return st.frames[ptr.frameno]

    def stack_bounds(
        self, regno: int, ptr: Reg, off: int, size: int, write: bool, what: str = ""
    ) -> tuple[int, int]:
        """(lowest, highest+1) stack offsets the access can touch; checks the 512 bytes."""
        full = ptr.off + off
        rw = "write to" if write else "read from"
        if ptr.var_off == tnum.ZERO:
            lo, hi = full, full + size
            if lo < -MAX_BPF_STACK or hi > 0 or lo > -1:
                raise self.fail(
                    f"r{regno}: a {size}-byte {rw} the stack at offset {full} is "
                    "outside the 512-byte frame.",
                    f"invalid {rw} stack R{regno} off={full} size={size}",
                )
            return lo, hi
        if self.unpriv:
            raise self.fail(
                f"r{regno}: stack access with a variable offset needs privileges.",
                f"R{regno} variable stack access prohibited for !root",
            )
        if ptr.smin <= -(1 << 40) or ptr.smax >= (1 << 40):
            raise self.fail(
                f"r{regno}: stack access with an unbounded variable offset.",
                f"invalid unbounded variable-offset stack R{regno}",
            )
        lo = full + ptr.smin
        hi = full + ptr.smax + size
        if lo < -MAX_BPF_STACK or hi > 0 or lo > -1:
            raise self.fail(
                f"r{regno}: a {size}-byte stack access at variable offset "
                f"[{lo}, {hi - size}] can leave the 512-byte frame.",
                f"invalid variable-offset {rw} stack "
                f"R{regno} var_off={tnum.fmt(ptr.var_off)} off={full} size={size}",
            )
        return lo, hi

    def stack_access(
        self,
        st: State,
        regno: int,
        ptr: Reg,
        off: int,
        size: int,
        write: bool,
        value: Reg | None,
        value_regno: int,
        imm_store: bool,
    ) -> Reg:
        full = ptr.off + off
        # stack accesses must be aligned (the spill tracking relies on it)
        if not tnum.is_aligned(tnum.add(ptr.var_off, tnum.const(full)), size):
            raise self.fail(
                f"r{regno}: misaligned {size}-byte stack access at offset {full}.",
                f"misaligned stack access off {_tn(ptr.var_off)}+{ptr.off}+{off} size {size}",
            )
        lo, hi = self.stack_bounds(regno, ptr, off, size, write)
        frame = self.frame_of(st, ptr)
        if -lo > frame.depth:
            frame.depth = -lo
            sp = frame.subprog
            self.depths[sp] = max(self.depths.get(sp, 0), -lo)
        if ptr.var_off != tnum.ZERO:
            if write:
                for a in range(lo, hi):
                    self._set_byte(frame, a, ST_MISC)
                return Reg.unknown()
            for a in range(lo, hi):
                c = self._byte(frame, a)
                if c == ST_INVALID and not self.priv:
                    raise self.fail(
                        f"r{regno}: the stack byte at {a} may be uninitialised.",
                        f"invalid variable-offset read from stack R{regno}",
                    )
                if c == ST_SPILL and self._slot(frame, a).spilled.is_pointer() and self.unpriv:
                    raise self.fail(
                        "Reading a spilled pointer through a variable offset.",
                        f"R{regno} variable stack read of spilled pointer",
                    )
            return Reg.unknown()
        spi = (-full - 1) // 8
        self.hx = precision.slot_key(ptr.frameno, spi)
        if write:
            self.stack_write(st, frame, spi, full, size, value, value_regno, imm_store, ptr)
            return Reg.unknown()
        return self.stack_read(frame, spi, full, size, regno)

    @staticmethod
    def _slot(frame: Frame, addr: int) -> Slot:
        return frame.stack.get((-addr - 1) // 8, Slot())

    @staticmethod
    def _byte(frame: Frame, addr: int) -> str:
        slot = frame.stack.get((-addr - 1) // 8)
        if slot is None:
            return ST_INVALID
        return slot.types[(-addr - 1) % 8]

    @staticmethod
    def _set_byte(frame: Frame, addr: int, kind: str) -> None:
        spi = (-addr - 1) // 8
        idx = (-addr - 1) % 8
        slot = frame.stack.get(spi)
        types = list(slot.types) if slot else [ST_INVALID] * 8
        if slot is not None and slot.is_spill():
            types = [ST_MISC if c == ST_SPILL else c for c in types]
        types[idx] = kind
        frame.stack[spi] = Slot("".join(types), None)

    def stack_write(
        self,
        st: State,
        frame: Frame,
        spi: int,
        full: int,
        size: int,
        value: Reg | None,
        value_regno: int,
        imm_store: bool,
        ptr: Reg,
    ) -> None:
        old = frame.stack.get(spi)
        aligned_slot = full % 8 == 0
        if (
            old is not None
            and old.is_spill()
            and old.spilled.is_pointer()
            and size != 8
            and self.unpriv
        ):
            raise self.fail(
                "A partial write would corrupt a spilled pointer on the stack.",
                "attempt to corrupt spilled pointer on stack",
            )
        if value is not None and value.is_pointer():
            if size != 8:
                raise self.fail(
                    f"A pointer (r{value_regno}) can only be spilled to the stack "
                    "with an 8-byte store.",
                    "invalid size of register spill",
                )
            if value.type == PTR_TO_STACK and ptr.frameno != len(st.frames) - 1:
                raise self.fail(
                    "A stack pointer cannot be stored into a caller's frame.",
                    "cannot spill pointers to stack into stack frame of the caller",
                )
            frame.stack[spi] = Slot(ST_SPILL * 8, value)
            return
        if aligned_slot and value is not None and value.type == SCALAR and self.priv:
            # spill a scalar (an 8-byte or a narrow aligned spill keeps its value); a
            # value that fits the spill stays linked to its register (the kernel's
            # assign_scalar_id_before_mov: it gets an id first), a wider one does not
            v = value
            fits = value.umax.bit_length() <= 8 * size
            if fits and not value.id and value.var_off.mask and value_regno >= 0:
                v = value.clone()
                v.id = self.new_id()
                self.set_reg(st, value_regno, v)
            if not fits:
                v = value.clone()
                v.id = 0
                scalar.truncate(v, size)
            prev = old.types if old is not None else ST_INVALID * 8
            if old is not None and old.is_spill():
                prev = "".join(ST_MISC if c == ST_SPILL else c for c in prev)
            keep = [c if c in (ST_ZERO, ST_INVALID) else ST_MISC for c in prev[: 8 - size]]
            types = "".join(keep) + ST_SPILL * size
            frame.stack[spi] = Slot(types, v)
            return
        # plain data write
        zero = value is not None and value.is_null_const()
        if zero and value_regno >= 0:
            self.precise(st, value_regno)  # the bytes become known zeros
        kind = ST_ZERO if zero else ST_MISC
        types = list(old.types) if old is not None else [ST_INVALID] * 8
        if old is not None and old.is_spill():
            types = [ST_MISC if c == ST_SPILL else c for c in types]
        slot_idx = -full - 1
        for i in range(size):
            types[(slot_idx - i) % 8] = kind
        frame.stack[spi] = Slot("".join(types), None)

    def stack_read(self, frame: Frame, spi: int, full: int, size: int, regno: int) -> Reg:
        slot = frame.stack.get(spi)
        slot_idx = -full - 1
        if slot is not None and slot.is_spill():
            ssize = slot.spill_size()
            sp = slot.spilled
            if size == 8 and ssize == 8:
                return sp
            if sp.type != SCALAR:
                raise self.fail(
                    "Reading part of a spilled pointer from the stack is not allowed.",
                    "invalid size of register fill",
                )
            if size <= ssize and full % 8 == 0:
                r = sp.clone()
                if sp.umax.bit_length() > 8 * size:
                    r.id = 0  # a narrowing fill breaks the link
                scalar.truncate(r, size)
                return r
        zeros = spills = 0
        for i in range(size):
            c = slot.types[(slot_idx - i) % 8] if slot is not None else ST_INVALID
            if c == ST_ZERO:
                zeros += 1
            elif c == ST_SPILL:
                spills += 1
            elif c == ST_MISC:
                continue
            elif c == ST_INVALID and self.priv:
                continue
            else:
                raise self.fail(
                    f"Reading {size} bytes at stack offset {full}: byte {i} was "
                    "never written (uninitialised stack).",
                    f"invalid read from stack off {full}+{i} size {size}",
                )
        if zeros == size:
            return Reg.const(0)
        if spills == size and slot.spilled is not None and slot.spilled.is_null_const():
            return Reg.const(0)  # part of a spilled zero
        return Reg.unknown()

    def stack_range_init(
        self, st: State, regno: int, ptr: Reg, size: int, write: bool, zero_ok: bool, what: str
    ) -> None:
        """A helper reads or writes ``size`` bytes of stack at ``ptr``."""
        if size == 0:
            if not zero_ok:
                raise self.fail(f"r{regno}: zero-sized {what} access.", "invalid zero-sized read")
            # no byte is touched, but the pointer must still point into the frame
            self.stack_bounds(regno, ptr, 0, 0, write, what="helper")
            return
        lo, hi = self.stack_bounds(regno, ptr, 0, size, write, what="helper")
        frame = self.frame_of(st, ptr)
        if -lo > frame.depth:
            frame.depth = -lo
            self.depths[frame.subprog] = max(self.depths.get(frame.subprog, 0), -lo)
        for a in range(lo, hi):
            c = self._byte(frame, a)
            if write:
                continue
            if c in (ST_MISC, ST_ZERO):
                continue
            if c == ST_SPILL:
                sp = self._slot(frame, a).spilled
                if sp.type == SCALAR or self.priv:
                    continue
                raise self.fail(
                    f"r{regno}: the helper would read a spilled pointer from the stack.",
                    f"invalid indirect read from stack R{regno}",
                )
            if c == ST_INVALID and self.priv:
                continue
            raise self.fail(
                f"r{regno}: the helper reads stack bytes that were never written (offset {a}).",
                f"invalid indirect read from stack R{regno} off {a}+0 size {size}",
            )
        if write:
            for a in range(lo, hi):
                self._set_byte(frame, a, ST_MISC)

    # ------------------------------------------------------------------ legacy packet loads
    def do_ld_abs(self, st: State, insn: Instruction, pc: int) -> int:
        """A legacy packet load; returns the next pc. It ends the program with 0 when the
        packet is too short: in a subprogram, that early return is a path of its own."""
        if self.prog_type not in ctxinfo.LD_ABS_TYPES:
            raise self.fail(
                "Legacy packet loads (ld_abs/ld_ind) are not allowed for this program type.",
                "BPF_LD_[ABS|IND] instructions not allowed for this program type",
            )
        if any(f.callback for f in st.frames[1:]):
            raise self.fail(
                "Legacy packet loads (ld_abs/ld_ind) are not allowed in a callback.",
                "cannot use BPF_LD_[ABS|IND] within callback",
            )
        if st.refs:
            raise self.fail(
                "ld_abs/ld_ind while holding a reference would leak it.",
                "BPF_LD_[ABS|IND] would lead to reference leak",
            )
        if st.lock is not None:
            raise self.fail(
                "ld_abs/ld_ind inside a spin-locked region.",
                "BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region",
            )
        r6 = self.read_reg(st, 6)
        if r6.type != T_CTX:
            raise self.fail(
                "ld_abs/ld_ind need r6 to hold the context (skb) pointer.",
                "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
            )
        if (insn.opcode & 0xE0) == op.IND:
            self.read_reg(st, insn.src)
        for r in CALLER_SAVED:
            st.cur.regs[r] = NOT_INIT_REG
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        st.cur.regs[0] = scalar.load_sized(size, False)
        if len(st.frames) == 1:
            return pc + 1
        # the load continues on a path of its own; this one returns 0 to the caller
        other = st.copy()
        other.hist.append(pc)
        self.push(other, pc + 1)
        st.cur.regs[0] = Reg.const(0)
        nxt = self.do_exit(st)
        assert nxt is not None
        return nxt

    # ------------------------------------------------------------------ jumps
    def do_cond_jmp(self, st: State, insn: Instruction, pc: int) -> int:
        code = insn.opcode
        jop = code & 0xF0
        is32 = (code & 7) == _CLS_JMP32
        dst = self.read_reg(st, insn.dst)
        if code & _X:
            src = self.read_reg(st, insn.src)
            srcno = insn.src
        else:
            src = Reg.const(insn.imm if not is32 else insn.imm & M32)
            srcno = -1
        target = pc + 1 + insn.off
        fall = pc + 1
        pkt_pair = dst.type in _PKT_ANY and src.type in _PKT_ANY
        if self.unpriv and srcno >= 0 and src.is_pointer() and not pkt_pair:
            raise self.fail(
                f"r{srcno}: comparing pointers leaks them (needs privileges).",
                f"R{srcno} pointer comparison prohibited",
            )
        taken = self.branch_taken(jop, dst, src, is32)
        if (
            self.unpriv
            and taken == -1
            and dst.is_pointer()
            and not pkt_pair
            and not (self._null_check(insn, jop, is32, dst))
        ):
            # only a null check of a maybe-null pointer (or a comparison whose outcome
            # is known) may look at a pointer's value
            raise self.fail(
                f"r{insn.dst}: comparing pointers leaks them (needs privileges).",
                f"R{insn.dst} pointer comparison prohibited",
            )
        scalars = [r for r, v in ((insn.dst, dst), (srcno, src)) if r >= 0 and v.type == SCALAR]
        if taken != -1 or len(scalars) < 1 + (srcno >= 0):
            # the outcome was decided by the values (or a pointer is involved)
            if scalars:
                self.precise(st, *scalars)
            if taken == 1:
                return target
            if taken == 0:
                return fall
        elif dst.id or (srcno >= 0 and src.id):
            # the refinement reaches the linked copies: they are precise together
            self.hx = self._linked_keys(st, insn.dst, dst, srcno, src)
        other = st.copy()
        if self.hx is not None:
            other.hist.append((pc, self.hx))
        else:
            other.hist.append(pc)
        o_dead = not self.refine_branch(other, insn, jop, is32, srcno, True, src)
        s_dead = not self.refine_branch(st, insn, jop, is32, srcno, False, src)
        if (
            not is32
            and srcno >= 0
            and jop in (op.JEQ, op.JNE)
            and dst.is_pointer()
            and src.is_pointer()
            and dst.maybe_null != src.maybe_null
        ):
            # equal to a pointer known not NULL: not NULL either (that register only)
            eq = other if jop == op.JEQ else st
            rno = srcno if src.maybe_null else insn.dst
            eq.cur.regs[rno] = _not_null(eq.cur.regs[rno])
        if (o_dead or s_dead) and scalars:
            self.precise(st, *scalars)
        if o_dead and s_dead:
            self.path_done(st)
            raise _Pruned
        if o_dead:
            return fall
        if s_dead:
            # continue on the taken branch in place
            return self._switch(st, other, target)
        self.push(other, target)
        return fall

    def do_may_goto(self, st: State, insn: Instruction, pc: int) -> int:
        """``may_goto``: the jump is explored first; the fall-through (the loop going on)
        is queued one may_goto deeper, its imprecise scalars widened against the same
        point on an earlier round so the rounds converge (the kernel's way)."""
        other = st.copy()
        other.hist.append(pc)
        other.may_goto_depth += 1
        prev = self._prev_entry(st, pc)
        if prev is not None:
            _widen_imprecise(prev, other)
        self.push(other, pc + 1)
        return pc + 1 + insn.off

    def _prev_entry(self, st: State, pc: int) -> State | None:
        """The checkpoint at ``pc`` on the current path (a loop's previous round)."""
        p = st.parent
        while p is not None:
            if (
                p.insn == pc
                and p.branches > 0
                and p.may_goto_depth < st.may_goto_depth  # not the checkpoint just made
                and len(p.frames) == len(st.frames)
            ):
                if all(a.callsite == b.callsite for a, b in zip(p.frames, st.frames, strict=True)):
                    return p
            p = p.parent
        return None

    def _prev_cb_entry(self, st: State, pc: int) -> State | None:
        """The checkpoint at a callback helper's call ``pc`` on the current path (the
        previous round; the kernel's ``find_prev_entry``)."""
        p = st.parent
        while p is not None:
            if p.insn == pc and p.branches > 0 and len(p.frames) == len(st.frames):
                if all(a.callsite == b.callsite for a, b in zip(p.frames, st.frames, strict=True)):
                    return p
            p = p.parent
        return None

    @staticmethod
    def _linked_keys(st: State, dno: int, dst: Reg, sno: int, src: Reg) -> tuple:
        """Precision keys of the jump operands and of every scalar linked to them."""
        f = len(st.frames) - 1
        keys = {f * 128 + dno}
        if sno >= 0:
            keys.add(f * 128 + sno)
        ids = {i for i in (dst.id, src.id if sno >= 0 else 0) if i}
        for fi, fr in enumerate(st.frames):
            for i, r in enumerate(fr.regs):
                if r.id in ids and r.type == SCALAR:
                    keys.add(fi * 128 + i)
            for spi, slot in fr.stack.items():
                sp = slot.spilled
                if sp is not None and sp.id in ids and sp.type == SCALAR:
                    keys.add(precision.slot_key(fi, spi))
        return tuple(keys)

    def _switch(self, st: State, other: State, target: int) -> int:
        """Continue on the taken branch in place (the fall-through was impossible)."""
        st.frames = other.frames
        st.refs = other.refs
        st.lock = other.lock
        return target

    @staticmethod
    def _null_check(insn: Instruction, jop: int, is32: bool, dst: Reg) -> bool:
        """``if rX == 0`` / ``!= 0`` (64-bit, immediate zero) on a maybe-null pointer:
        the only comparison that null-checks it (the kernel's ``check_cond_jmp_op``)."""
        return (
            not is32
            and not insn.opcode & op.X
            and insn.imm == 0
            and jop in (op.JEQ, op.JNE)
            and dst.maybe_null
        )

    def branch_taken(self, jop: int, a: Reg, b: Reg, is32: bool) -> int:
        """1 always taken, 0 never, -1 unknown."""
        if a.type == SCALAR and b.type == SCALAR:
            return scalar.branch_taken(jop, a, b, is32)
        if is32:
            # the low 32 bits of a valid pointer may well be zero: a 32-bit comparison
            # of a pointer is never decided (the rule of current kernels, 6.12.118 and
            # 6.18 among them; older ones decided it — deciding it is what may accept
            # what a kernel rejects, so bpfkit never does)
            return -1
        # pointer vs the constant zero: pointers the kernel knows are not NULL (map
        # values, memory, ...; not the context or the stack) are never zero
        for p, z, jo in ((a, b, jop), (b, a, scalar.FLIP.get(jop, jop))):
            if z.type != SCALAR or not p.is_pointer():
                continue
            zero = z.is_null_const()
            if zero and not p.maybe_null and p.type in _NOT_NULL_TYPES:
                if jo == op.JEQ:
                    return 0
                if jo == op.JNE:
                    return 1
            return -1
        return -1

    def refine_branch(
        self,
        st: State,
        insn: Instruction,
        jop: int,
        is32: bool,
        srcno: int,
        taken: bool,
        imm: Reg | None = None,
    ) -> bool:
        """Narrow ``st`` for one outcome of the comparison (``imm``: the immediate
        operand as a register, when there is no source register); False when the
        outcome is impossible (the refined bounds are empty)."""
        regs = st.frames[-1].regs
        dst = regs[insn.dst]
        if srcno >= 0:
            src = regs[srcno]
        elif imm is not None:
            src = imm
        else:
            src = Reg.const(insn.imm if not is32 else insn.imm & M32)
        # null checks of maybe-null pointers
        if self._null_check(insn, jop, is32, dst):
            is_null = (jop == op.JEQ) == taken
            self.mark_ptr_or_null(st, dst.id, is_null)
            return True
        if (
            dst.type in PACKET_TYPES + (PTR_TO_PACKET_END,)
            and src.type in PACKET_TYPES + (PTR_TO_PACKET_END,)
            and not is32
        ):
            self.pkt_compare(st, jop if taken else scalar.NEGATE.get(jop, jop), dst, src)
            return True
        if dst.type != SCALAR or src.type != SCALAR:
            return True
        a = dst.clone()
        b = src.clone()
        if taken:
            if jop == op.JSET:
                scalar.refine(op.JSET, a, b, is32)
            else:
                scalar.refine(jop, a, b, is32)
        else:
            if jop == op.JSET:
                scalar.refine_not_jset(a, b, is32)
            else:
                scalar.refine(scalar.NEGATE[jop], a, b, is32)
        for r in (a, b):
            scalar.sync(r)
        if scalar.is_empty(a) or scalar.is_empty(b):
            return False
        self.assign_scalar(st, insn.dst, dst, a)
        if srcno >= 0:
            self.assign_scalar(st, srcno, src, b)
        return True

    def assign_scalar(self, st: State, regno: int, old: Reg, new: Reg) -> None:
        """Store a refined scalar and propagate it to every register linked to it."""
        st.cur.regs[regno] = new
        if old.id:
            for f in st.frames:
                for i, r in enumerate(f.regs):
                    if r.type == SCALAR and r.id == old.id:
                        f.regs[i] = new
                for spi, slot in list(f.stack.items()):
                    sp = slot.spilled
                    if sp is not None and sp.type == SCALAR and sp.id == old.id:
                        # a narrow spill keeps its id only when the value fits it
                        f.stack[spi] = Slot(slot.types, new)

    def mark_ptr_or_null(self, st: State, pid: int, is_null: bool) -> None:
        """After a null check: every copy of the pointer becomes NULL or non-NULL."""
        if not pid:
            return
        ref_id = 0

        def conv(r: Reg) -> Reg:
            nonlocal ref_id
            if r.maybe_null and r.id == pid:
                if is_null:
                    if r.ref_obj_id and r.ref_obj_id == r.id:  # the acquired pointer itself
                        ref_id = r.ref_obj_id
                    return Reg.const(0)
                n = r.clone()
                n.maybe_null = False
                inner = getattr(n.map, "inner", None) if n.type == PTR_TO_MAP_VALUE else None
                if inner is not None:  # a map-in-map lookup: the inner map (its template)
                    return Reg.pointer(CONST_PTR_TO_MAP, map=inner)
                if n.type == PTR_TO_MAP_VALUE and n.map.type in _SOCK_MAPS:
                    return Reg.pointer(_SOCK_MAPS[n.map.type], id=n.id, ref_obj_id=n.ref_obj_id)
                if n.type == PTR_TO_MAP_VALUE and n.map.spin_lock_off < 0:
                    n.id = 0
                return n
            return r

        self._map_regs(st, conv)
        if is_null and ref_id:
            st.refs = [x for x in st.refs if x.id != ref_id]

    def _map_regs(self, st: State, fn) -> None:
        for f in st.frames:
            f.regs = [fn(r) for r in f.regs]
            for spi, slot in list(f.stack.items()):
                if slot.spilled is not None:
                    n = fn(slot.spilled)
                    if n is not slot.spilled:
                        f.stack[spi] = Slot(slot.types, n)

    def pkt_compare(self, st: State, jop: int, a: Reg, b: Reg) -> None:
        """``a <jop> b`` holds between packet pointers: extend the proven packet range."""
        if a.type == PTR_TO_PACKET_END or (
            a.type == PTR_TO_PACKET and b.type == PTR_TO_PACKET_META
        ):
            a, b = b, a
            jop = scalar.FLIP.get(jop, jop)
        if not (
            (a.type == PTR_TO_PACKET and b.type == PTR_TO_PACKET_END)
            or (
                a.type == PTR_TO_PACKET_META
                and b.type == PTR_TO_PACKET
                and b.off == 0
                and b.var_off == tnum.ZERO
            )
        ):
            return
        # now "a <jop> end": a <= end or a < end proves bytes before a are in the packet
        if jop == op.JLE:
            open_right = False
        elif jop == op.JLT:
            open_right = True
        else:
            return
        if a.off < 0 or (a.off == 0 and open_right):
            return
        if a.umax > 0xFFFF or a.umax + a.off > 0xFFFF:
            return
        self._set_range(st, a.type, a.id, a.off + (PKT_RIGHT_OPEN_EXTRA if open_right else 0))

    def _set_range(self, st: State, ptype: int, pid: int, new_range: int) -> None:
        def conv(r: Reg) -> Reg:
            if r.type == ptype and r.id == pid and r.range < new_range:
                n = r.clone()
                n.range = new_range
                return n
            return r

        self._map_regs(st, conv)

    # ------------------------------------------------------------------ calls
    def do_local_call(self, st: State, insn: Instruction, pc: int) -> int:
        target = pc + 1 + insn.imm
        if target in self.global_funcs:
            if st.lock is not None:
                raise self.fail(
                    "Function calls are not allowed while holding a spin lock.",
                    "function calls are not allowed while holding a lock",
                )
            return self.call_global(st, target, pc)
        if len(st.frames) >= MAX_CALL_FRAMES:
            raise self.fail(
                f"The call stack is deeper than {MAX_CALL_FRAMES} frames.",
                f"the call stack of {len(st.frames) + 1} frames is too deep !",
            )
        if st.lock is not None:
            raise self.fail(
                "Function calls are not allowed while holding a spin lock.",
                "function calls are not allowed while holding a lock",
            )
        caller = st.cur
        callee = Frame(len(st.frames), self.prog.subprog_of(target), callsite=pc)
        for r in CALLER_SAVED:
            callee.regs[r] = caller.regs[r]
        callee.regs[10] = Reg.pointer(PTR_TO_STACK, frameno=callee.frameno)
        st.frames.append(callee)
        self.hx = precision.CALL
        return target

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

    def do_helper_call(self, st: State, insn: Instruction, pc: int) -> int:
        hid = insn.imm
        proto = proto_for(hid, self.prog_type, self.unpriv, self.attach_type)
        name = HELPER_NAMES.get(hid) or _EXTRA_HELPERS.get(hid) or f"unknown#{hid}"
        if proto is None:
            if not 0 < hid <= _MAX_HELPER:
                raise self.fail(f"Helper {hid} does not exist.", f"invalid func unknown#{hid}")
            if not helper_allowed(hid, self.prog_type, self.unpriv, self.attach_type):
                raise self.fail(
                    f"A {_ptname(self.prog_type)} program cannot call helper bpf_{name}.",
                    f"program of this type cannot use helper bpf_{name}#{hid}",
                )
            if hid in _MIGHT_SLEEP and not self.prog_flags & load.BPF_F_SLEEPABLE:
                raise self.fail(
                    f"bpf_{name} may sleep: only a sleepable program can call it.",
                    "helper call might sleep in a non-sleepable prog",
                )
            # the kernel allows it; bpfkit does not model its arguments
            raise self.fail(
                f"Helper bpf_{name} ({hid}) is not supported by bpfkit's verifier (the "
                "kernel allows it here; its arguments are not modelled).",
                f"helper bpf_{name}#{hid} is not supported",
            )
        if proto.gpl_only and not self.gpl:
            raise self.fail(
                f"bpf_{name} is GPL-only; the program's license is not GPL-compatible.",
                "cannot call GPL-restricted function from non-GPL compatible program",
            )
        if st.lock is not None and proto.name not in ("spin_unlock",):
            raise self.fail(
                "Helper calls are not allowed while holding a spin lock.",
                "function calls are not allowed while holding a lock",
            )
        regs = st.cur.regs
        meta = _Meta()
        for i, kind in enumerate(proto.args):
            self.check_arg(st, proto, i + 1, kind, meta)
        # map compatibility
        if meta.map is not None:
            why = map_func_error(meta.map.type, proto.name, self.prog_type, self.attach_type)
            if why:
                raise self.fail(
                    f"bpf_{name} cannot be used with map '{meta.map.name}' of type "
                    f"{_mtname(meta.map.type)}.",
                    why,
                )
        # side effects
        if proto.name == "spin_lock":
            if st.lock is not None:
                raise self.fail(
                    "Taking a second spin lock while holding one.",
                    "Locking two bpf_spin_locks are not allowed",
                )
            st.lock = meta.lock
        elif proto.name == "spin_unlock":
            if st.lock is None:
                raise self.fail(
                    "bpf_spin_unlock without holding the lock.",
                    "bpf_spin_unlock without taking a lock",
                )
            if st.lock != meta.lock:
                raise self.fail(
                    "bpf_spin_unlock of a different lock than the one held.",
                    "bpf_spin_unlock of different lock",
                )
            st.lock = None
        if proto.name == "get_local_storage":
            flags = regs[2]
            if flags.type == SCALAR:
                self.precise(st, 2)
            if not flags.is_null_const():
                raise self.fail(
                    "bpf_get_local_storage's flags must be 0.",
                    "get_local_storage() doesn't support non-zero flags",
                )
        if hid == _TAIL_CALL and st.refs:
            raise self.fail(
                "A tail call while holding a reference would leak it.",
                "tail_call would lead to reference leak",
            )
        if proto.releases:
            self.release_ref(st, meta.ref_obj_id)
            regs = st.cur.regs  # _map_regs may have copied the frame's registers
        if proto.callback:
            return self.enter_callback(st, proto, meta, pc)
        for r in CALLER_SAVED:
            regs[r] = NOT_INIT_REG
        if proto.pkt_changing:
            self._map_regs(
                st, lambda r: Reg.unknown() if r.type in PACKET_TYPES + (PTR_TO_PACKET_END,) else r
            )
        st.cur.regs[0] = self.ret_value(st, proto, meta, pc)  # _map_regs may copy regs
        return pc + 1

    def ret_value(self, st: State, proto: Proto, meta: _Meta, pc: int) -> Reg:
        ret = proto.ret
        if ret == RET_VOID:
            return NOT_INIT_REG
        if ret == RET_MAP_VALUE_OR_NULL:
            m = meta.map
            if (
                proto.name == "map_lookup_elem"
                and m.type in _ARRAYS
                and meta.const_key is not None
                and meta.const_key < m.max_entries
            ):
                # an array lookup with a constant in-bounds key cannot fail; a value with
                # a spin lock still gets an id (the lock's identity, as in the kernel)
                return Reg.pointer(
                    PTR_TO_MAP_VALUE, map=m, id=self.new_id() if m.spin_lock_off >= 0 else 0
                )
            if proto.name == "map_lookup_elem" and m.type in (MapType.SOCKMAP, MapType.SOCKHASH):
                # a socket, referenced (is_acquire_function); a socket once NULL-checked
                rid = self.acquire_id()
                st.refs = st.refs + [Ref(rid, pc)]
                return Reg.pointer(PTR_TO_MAP_VALUE, map=m, maybe_null=True, id=rid, ref_obj_id=rid)
            r = Reg.pointer(PTR_TO_MAP_VALUE, map=m, maybe_null=True, id=self.new_id())
            return r
        if ret == RET_MAP_VALUE:  # bpf_get_local_storage: never NULL
            return Reg.pointer(PTR_TO_MAP_VALUE, map=meta.map)
        if ret in _SOCK_RETS:
            rtype = _SOCK_RETS[ret]
            if proto.acquires:
                rid = self.acquire_id()
                st.refs = st.refs + [Ref(rid, pc)]
                return Reg.pointer(rtype, maybe_null=True, id=rid, ref_obj_id=rid)
            ref = meta.ref_obj_id if proto.ptr_cast else 0
            return Reg.pointer(rtype, maybe_null=True, id=self.new_id(), ref_obj_id=ref)
        if ret == RET_RINGBUF_MEM_OR_NULL:
            rid = self.acquire_id()
            st.refs = st.refs + [Ref(rid, pc)]
            return Reg.pointer(
                PTR_TO_MEM,
                ringbuf=True,
                maybe_null=True,
                id=rid,
                ref_obj_id=rid,
                mem_size=meta.alloc_size,
            )
        r = Reg.unknown()
        if proto.ret_range == "cpu":
            r.umin, r.umax, r.smin, r.smax = 0, NR_CPUS - 1, 0, NR_CPUS - 1
            r.u32max, r.s32min, r.s32max = NR_CPUS - 1, 0, NR_CPUS - 1
            scalar.sync(r)
        elif proto.ret_range == "str" and meta.msize_max is not None:
            r.smin, r.s32min = -MAX_ERRNO, -MAX_ERRNO
            r.smax = r.s32max = meta.msize_max
            scalar.sync(r)
        return r

    def release_ref(self, st: State, ref_id: int) -> None:
        """Release a reference: every register holding it becomes invalid."""
        if not ref_id or not any(x.id == ref_id for x in st.refs):
            raise self.fail(
                "Releasing memory that is not an acquired reference.",
                "R1 must be referenced when passed to release function",
            )
        st.refs = [x for x in st.refs if x.id != ref_id]
        self._map_regs(st, lambda r: Reg.unknown() if r.ref_obj_id == ref_id else r)

    def enter_callback(self, st: State, proto: Proto, meta: _Meta, pc: int) -> int:
        """bpf_loop / bpf_for_each_map_elem: explore "not called" and "called"."""
        regs = st.cur.regs
        sub = meta.func_subprog
        start = self.prog.subprogs[sub]
        if len(st.frames) >= MAX_CALL_FRAMES:
            raise self.fail(
                f"The call stack is deeper than {MAX_CALL_FRAMES} frames.",
                f"the call stack of {len(st.frames) + 1} frames is too deep !",
            )
        callee = Frame(len(st.frames), sub, callsite=pc)
        callee.callback = proto.id
        callee.regs[10] = Reg.pointer(PTR_TO_STACK, frameno=callee.frameno)
        if proto.callback == "loop":
            idx = Reg.unknown()
            idx.umax = idx.u32max = 0xFFFFFFFF
            scalar.sync(idx)
            callee.regs[1] = idx
            callee.regs[2] = regs[3]
        else:
            m = meta.map
            callee.regs[1] = Reg.pointer(CONST_PTR_TO_MAP, map=m)
            callee.regs[2] = Reg.pointer(PTR_TO_MAP_KEY, map=m)
            callee.regs[3] = Reg.pointer(PTR_TO_MAP_VALUE, map=m)
            callee.regs[4] = regs[3]
        caller = st.cur
        if proto.callback == "loop":
            # bpf_loop: the iteration count decides how many rounds are explored
            # (precise); a round is queued while fewer than its maximum are
            self.precise(st, 1)
            push = caller.cb_depth < regs[1].umax
        else:
            push = True
        if push:
            called = st.copy()
            called.frames[-1].cb_depth += 1
            called.frames.append(callee)
            called.hist.append((pc, precision.CB_ENTER))
            self.push(called, start)
        caller.cb_depth = 0
        for r in CALLER_SAVED:
            regs[r] = NOT_INIT_REG
        regs[0] = Reg.unknown()
        return pc + 1

    # ------------------------------------------------------------------ helper args
    def check_arg(self, st: State, proto: Proto, argno: int, kind: str, meta: _Meta) -> None:
        regs = st.cur.regs
        r = regs[argno]
        name = f"bpf_{proto.name}"
        if r.type == NOT_INIT:
            raise self.fail(
                f"Argument {argno} (r{argno}) of {name} is not initialised.", f"R{argno} !read_ok"
            )
        if r.type in (PTR_TO_PACKET, PTR_TO_PACKET_META) and kind != ANYTHING:
            if not proto.pkt_access:
                raise self.fail(
                    f"r{argno}: {name} cannot take a packet pointer.",
                    "helper access to the packet is not allowed",
                )
        if kind in (ARG_SOCK_COMMON, ARG_BTF_SOCK_COMMON) or (
            kind == ARG_MAP_VALUE
            and meta.map is not None
            and meta.map.type in (MapType.SOCKMAP, MapType.SOCKHASH)
        ):
            # any kind of socket, not NULL (a sockmap's "value" is a socket)
            if r.type not in SOCKET_TYPES or r.maybe_null:
                expected = "sock_common, sock, tcp_sock, xdp_sock"
                if kind != ARG_SOCK_COMMON:
                    expected += ", ptr_, trusted_ptr_"
                raise self._arg_type(argno, name, r, expected)
            if proto.releases and not r.ref_obj_id:
                raise self.fail(
                    f"r{argno}: {name} releases a socket reference; this one was not "
                    "acquired (only lookups acquire one).",
                    f"R{argno} must be referenced when passed to release function",
                )
            meta.ref_obj_id = r.ref_obj_id
            return
        if kind == PTR_TO_MAP_VALUE_OR_NULL:
            if r.is_null_const():
                return
            kind = ARG_MAP_VALUE
        if kind == PTR_TO_CTX_OR_NULL:
            if r.is_null_const():
                return
            kind = PTR_TO_CTX
        if kind == PTR_TO_U32_OUT:
            self.check_mem_arg(
                st,
                argno,
                r,
                4,
                write=True,
                zero_ok=False,
                name=name,
                allow_null=False,
                what="result",
            )
            if r.type != SCALAR:
                self.check_alignment(r, 0, 4)  # MEM_ALIGNED
            return
        if kind == ANYTHING:
            if r.is_pointer() and self.unpriv:
                raise self.fail(
                    f"r{argno}: passing a pointer to {name} as a number leaks it.",
                    f"R{argno} leaks addr into helper function",
                )
            if proto.callback == "loop" and argno == 4 and r.type == SCALAR:
                pass
            return
        if kind == CONST_MAP_PTR:
            if r.type != CONST_PTR_TO_MAP:
                raise self._arg_type(argno, name, r, "map_ptr")
            meta.map = r.map
            return
        if kind == PTR_TO_CTX:
            if r.type != T_CTX:
                raise self._arg_type(argno, name, r, "ctx")
            self.check_ptr_off(argno, r)
            return
        if kind in (ARG_MAP_KEY, ARG_MAP_VALUE, PTR_TO_UNINIT_MAP_VALUE):
            if meta.map is None:
                raise self.fail(
                    f"{name}: a map argument must come first.", "invalid map_ptr to access map->key"
                )
            size = meta.map.key_size if kind == ARG_MAP_KEY else meta.map.value_size
            # a constant key can make an array lookup non-null (the kernel's
            # get_constant_map_key: bpf_capable loaders, array maps only); the value is
            # relied on, so a spilled constant becomes precise — only then, as in the kernel
            if (
                kind == ARG_MAP_KEY
                and r.type == PTR_TO_STACK
                and self.priv
                and meta.map.type in _ARRAYS
            ):
                meta.const_key = self.const_stack_value(st, r, size)
                if meta.const_key is not None and self._spilled_at(st, r):
                    self.precise_stack(st, r.frameno, r.off, r.off + size)
            self.check_mem_arg(
                st,
                argno,
                r,
                size,
                write=kind == PTR_TO_UNINIT_MAP_VALUE,
                zero_ok=False,
                name=name,
                allow_null=False,
                what="key" if kind == ARG_MAP_KEY else "value",
            )
            return
        if kind in (ARG_MEM, PTR_TO_MEM_OR_NULL, PTR_TO_UNINIT_MEM, PTR_TO_UNINIT_MEM_OR_NULL):
            if r.type == SCALAR:
                self.precise(st, argno)
            if kind in (PTR_TO_MEM_OR_NULL, PTR_TO_UNINIT_MEM_OR_NULL) and r.is_null_const():
                meta.mem_regno = argno
                meta.mem_null = True
                return
            if (
                r.type == SCALAR
                or r.maybe_null
                or r.type in (T_CTX, CONST_PTR_TO_MAP, PTR_TO_PACKET_END, PTR_TO_FUNC)
            ):
                raise self._arg_type(
                    argno,
                    name,
                    r,
                    "fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
                )
            meta.mem_regno = argno
            meta.mem_write = kind in (PTR_TO_UNINIT_MEM, PTR_TO_UNINIT_MEM_OR_NULL)
            meta.mem_null = False
            return
        if kind in (CONST_SIZE, CONST_SIZE_OR_ZERO):
            if r.type != SCALAR:
                raise self._arg_type(argno, name, r, "scalar")
            self.precise(st, argno)
            zero_ok = kind == CONST_SIZE_OR_ZERO
            if r.smin < 0:
                raise self.fail(
                    f"r{argno}: the size passed to {name} may be negative.",
                    f"R{argno} min value is negative, either use unsigned or 'var &= const'",
                )
            if r.umin == 0 and not zero_ok:
                raise self.fail(
                    f"r{argno}: the size passed to {name} may be zero.",
                    f"R{argno} invalid zero-sized read: u64=[{r.umin},{r.umax}]",
                )
            if r.umax >= BPF_MAX_VAR_SIZ:
                raise self.fail(
                    f"r{argno}: the size passed to {name} is unbounded; bound it "
                    "with a comparison first.",
                    f"R{argno} unbounded memory access, use 'var &= const' or 'if (var < const)'",
                )
            meta.msize_max = r.umax
            mr = meta.mem_regno
            if mr and meta.mem_null and r.umax > 0:
                # NULL is a valid buffer only when the size is known to be 0
                raise self.fail(
                    f"r{mr}: NULL is passed to {name} with a size that may not be 0.",
                    f"R{mr} type=scalar expected=fp",
                )
            if mr and not meta.mem_null:
                self.check_mem_arg(
                    st,
                    mr,
                    regs[mr],
                    r.umax,
                    write=meta.mem_write,
                    zero_ok=zero_ok,
                    name=name,
                    allow_null=False,
                    what="memory",
                )
            return
        if kind == CONST_ALLOC_SIZE_OR_ZERO:
            if r.type == SCALAR:
                self.precise(st, argno)
            if not r.is_const():
                raise self.fail(
                    f"r{argno}: the size passed to {name} must be a known constant.",
                    f"R{argno} is not a known constant'",
                )
            meta.alloc_size = r.value
            return
        if kind == PTR_TO_RINGBUF_MEM:
            if r.type != PTR_TO_MEM or not r.ringbuf or r.maybe_null:
                raise self._arg_type(argno, name, r, "ringbuf_mem")
            if r.off or r.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{argno}: {name} needs the pointer returned by "
                    "bpf_ringbuf_reserve, without an offset.",
                    f"R{argno} must have zero offset when passed to release func "
                    "or trusted arg to kfunc",
                )
            meta.ref_obj_id = r.ref_obj_id
            return
        if kind == ARG_FUNC:
            if r.type != PTR_TO_FUNC:
                raise self._arg_type(argno, name, r, "func")
            meta.func_subprog = r.subprog
            return
        if kind == PTR_TO_STACK_OR_NULL:
            if r.type == SCALAR:
                self.precise(st, argno)
            if r.is_null_const():
                return
            if r.type != PTR_TO_STACK:
                raise self._arg_type(argno, name, r, "fp")
            return
        if kind == PTR_TO_SPIN_LOCK:
            if r.type != PTR_TO_MAP_VALUE or r.maybe_null:
                raise self._arg_type(argno, name, r, "map_value")
            if r.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{argno}: the spin lock must be at a constant offset.",
                    f"R{argno} doesn't have constant offset. bpf_spin_lock has to "
                    "be at the constant offset",
                )
            m = r.map
            if m.spin_lock_off < 0:
                raise self.fail(
                    f"Map '{m.name}' has no bpf_spin_lock in its value.",
                    f"map '{m.name}' has no valid bpf_spin_lock",
                )
            if r.off != m.spin_lock_off:
                raise self.fail(
                    f"Offset {r.off} is not the bpf_spin_lock of map '{m.name}' "
                    f"(at {m.spin_lock_off}).",
                    f"off {r.off} doesn't point to 'struct bpf_spin_lock' that is "
                    f"at {m.spin_lock_off}",
                )
            meta.lock = (id(m), r.id)
            return
        if kind == PTR_TO_CONST_STR:
            if r.type != PTR_TO_MAP_VALUE or r.maybe_null:
                raise self._arg_type(argno, name, r, "map_value")
            m = r.map
            if not (m.rdonly_prog and m.frozen) or m.data is None:
                raise self.fail(
                    f"r{argno}: the format string must be in a read-only map.",
                    f"R{argno} does not point to a readonly map'",
                )
            if r.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{argno}: the string must be at a constant offset.",
                    f"R{argno} is not a constant address'",
                )
            if b"\0" not in bytes(m.data[r.off :]):
                raise self.fail(
                    "The constant string is not NUL-terminated.", "string is not zero-terminated"
                )
            return
        if kind == PTR_TO_LONG:
            self.check_mem_arg(
                st,
                argno,
                r,
                8,
                write=True,
                zero_ok=False,
                name=name,
                allow_null=False,
                what="result",
            )
            if r.type != SCALAR:
                self.check_alignment(r, 0, 8)  # MEM_ALIGNED
            return
        raise self.fail(f"Unsupported argument kind {kind}.", f"unsupported arg {kind}")

    def _spilled_at(self, st: State, r: Reg) -> bool:
        """The stack slot ``r`` points at holds a spilled register (not zero bytes)."""
        slot = self.frame_of(st, r).stack.get((-r.off - 1) // 8)
        return slot is not None and slot.is_spill()

    def const_stack_value(self, st: State, r: Reg, size: int) -> int | None:
        """The known value of ``size`` stack bytes at ``r``, if the state knows it."""
        if r.var_off != tnum.ZERO:
            return None
        full = r.off
        if full % 8 + size > 8 and full % 8 != 0 and (full % 8) + size > 8:
            return None
        frame = self.frame_of(st, r)
        slot = frame.stack.get((-full - 1) // 8)
        if slot is None:
            return None
        if slot.is_spill() and full % 8 == 0 and slot.spill_size() == size:
            sp = slot.spilled
            if sp.type == SCALAR and not (sp.var_off.mask & ((1 << (8 * size)) - 1)):
                return sp.var_off.value & ((1 << (8 * size)) - 1)
            return None
        if all(self._byte(frame, a) == ST_ZERO for a in range(full, full + size)):
            return 0
        return None

    def _arg_type(self, argno: int, name: str, r: Reg, expected: str) -> Reject:
        tn = self.reg_name(r)
        return self.fail(
            f"Argument {argno} of {name} has the wrong type: {tn}, expected {expected}.",
            f"R{argno} type={tn} expected={expected}",
        )

    def check_mem_arg(
        self,
        st: State,
        regno: int,
        r: Reg,
        size: int,
        *,
        write: bool,
        zero_ok: bool,
        name: str,
        allow_null: bool,
        what: str,
    ) -> None:
        """A helper accesses ``size`` bytes at ``r``."""
        t = r.type
        if r.maybe_null:
            raise self._arg_type(regno, name, r, "fp, pkt, map_value, mem")
        if t == PTR_TO_STACK:
            self.stack_range_init(st, regno, r, size, write, zero_ok, what)
            return
        if size == 0 and zero_ok:
            return
        if t in PACKET_TYPES:
            if (
                self.prog_type not in ctxinfo.PKT_READ
                or write
                and self.prog_type not in ctxinfo.PKT_WRITE
            ):
                raise self._arg_type(regno, name, r, "fp, map_value, mem")
            self.mem_access(st, regno, r, 0, size, write=False, value=None)
            return
        if t == PTR_TO_MAP_VALUE:
            self.map_access_type(r.map, r.off, size, write)
            self.region_access(
                regno,
                r,
                r.off,
                size,
                r.map.value_size,
                "map value",
                f"invalid access to map value, value_size={r.map.value_size} "
                f"off={{off}} size={size}",
                zero_ok,
            )
            return
        if t == PTR_TO_MAP_KEY:
            self.region_access(
                regno,
                r,
                r.off,
                size,
                r.map.key_size,
                "map key",
                f"invalid access to map key, key_size={r.map.key_size} off={{off}} size={size}",
                zero_ok,
            )
            return
        if t == PTR_TO_MEM:
            if write and r.rdonly:
                raise self._arg_type(regno, name, r, "fp, map_value, mem")
            self.region_access(
                regno,
                r,
                r.off,
                size,
                r.mem_size,
                "memory",
                f"invalid access to memory, mem_size={r.mem_size} off={{off}} size={size}",
                zero_ok,
            )
            return
        if t == T_CTX and self.prog_type in ctxinfo.RAW_CTX_TYPES:
            # a context the kernel does not rewrite (kprobe, tracepoint, raw_tp, syscall):
            # memory whose last byte must be accessible (check_helper_mem_access)
            if size == 0:
                if zero_ok:
                    return
                raise self.fail(
                    f"r{regno}: a zero-sized access to the context.",
                    f"R{regno} invalid zero-sized context access",
                )
            self.mem_access(
                st, regno, r, size - 1, 1, write=write, value=Reg.unknown() if write else None
            )
            return
        raise self._arg_type(regno, name, r, "fp")


class _Meta:
    __slots__ = (
        "map",
        "mem_regno",
        "mem_write",
        "mem_null",
        "msize_max",
        "alloc_size",
        "ref_obj_id",
        "func_subprog",
        "lock",
        "const_key",
    )

    def __init__(self) -> None:
        self.map = None
        self.mem_regno = 0
        self.mem_write = False
        self.mem_null = False
        self.msize_max = None
        self.alloc_size = 0
        self.ref_obj_id = 0
        self.func_subprog = 0
        self.lock = None
        self.const_key: int | None = None


_ARRAYS = (MapType.ARRAY, MapType.PERCPU_ARRAY)
_MAX_HELPER = 211  # bpf_cgrp_storage_delete: the last helper id (6.12 and 6.18)
_EXTRA_HELPERS = {210: "cgrp_storage_get", 211: "cgrp_storage_delete"}
_TAIL_CALL = 12
_SOCK_RETS = {
    RET_SOCKET_OR_NULL: PTR_TO_SOCKET,
    RET_SOCK_COMMON_OR_NULL: PTR_TO_SOCK_COMMON,
    RET_TCP_SOCK_OR_NULL: PTR_TO_TCP_SOCK,
}
#: maps whose lookups give sockets once NULL-checked
_SOCK_MAPS = {
    MapType.SOCKMAP: PTR_TO_SOCKET,
    MapType.SOCKHASH: PTR_TO_SOCKET,
    MapType.XSKMAP: PTR_TO_XDP_SOCK,
}
#: helpers after which packet pointers are stale (the kernel's
#: ``bpf_helper_changes_pkt_data``; a tail-called program could call any of them)
_PKT_CHANGING_IDS = frozenset(
    HELPER_IDS[n]
    for n in (
        "clone_redirect",
        "l3_csum_replace",
        "l4_csum_replace",
        "lwt_push_encap",
        "lwt_seg6_action",
        "lwt_seg6_adjust_srh",
        "lwt_seg6_store_bytes",
        "msg_pop_data",
        "msg_pull_data",
        "msg_push_data",
        "skb_adjust_room",
        "skb_change_head",
        "skb_change_proto",
        "skb_change_tail",
        "skb_pull_data",
        "skb_store_bytes",
        "skb_vlan_pop",
        "skb_vlan_push",
        "store_hdr_opt",
        "xdp_adjust_head",
        "xdp_adjust_meta",
        "xdp_adjust_tail",
        "tail_call",
    )
)
_CALLBACK_HELPERS = {p.id for p in PROTOS.values() if p.callback}
_KNOWN_TYPES = set(ctxinfo.RULES) | set(ctxinfo.RULES_ATTACH)


def _ptname(pt: int) -> str:
    try:
        return ProgType(pt).name.lower()
    except ValueError:
        return f"type-{pt}"


def _mtname(mt: int) -> str:
    try:
        return MapType(mt).name.lower()
    except ValueError:
        return str(mt)


def _not_null(r: Reg) -> Reg:
    """The kernel's mark_ptr_not_null_reg: this register (not its copies) is not NULL."""
    if not r.maybe_null:
        return r
    if r.type == PTR_TO_MAP_VALUE and r.map.type in _SOCK_MAPS:
        return Reg.pointer(_SOCK_MAPS[r.map.type], id=r.id, ref_obj_id=r.ref_obj_id)
    n = r.clone()
    n.maybe_null = False
    return n


def _tn(t: Tnum) -> str:
    """A tnum as the kernel's alignment messages print it (a constant as a number)."""
    return str(s64(t.value)) if not t.mask else tnum.fmt(t)


def _scalar_range(r: Reg) -> str:
    """`` smin=A smax=B`` as the kernel's ``verbose_invalid_scalar`` prints a range."""
    out = ""
    if r.smin > -(1 << 63):
        out += f" smin={r.smin}"
    if r.smax < (1 << 63) - 1:
        out += f" smax={r.smax}"
    return out or " unknown scalar value"


def _s32_wrap(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def scalar_zext_unknown() -> Reg:
    """An unknown 32-bit value, zero-extended."""
    r = Reg.unknown()
    r.var_off = _tnew(Tnum, (0, M32))
    scalar.sync(r)
    return r


def _widen_reg(old: Reg, cur: Reg) -> Reg:
    if cur.type != SCALAR or old.type != SCALAR:
        return cur
    from .state import range_within

    if range_within(old, cur) and tnum.contains(old.var_off, cur.var_off):
        return cur
    return Reg.unknown()


def _widen_imprecise(old: State, cur: State) -> None:
    """The kernel's widen_imprecise_scalars: a scalar of ``cur`` not the same as in the
    loop's previous round ``old`` and not marked precise there becomes unknown."""
    from .state import _IdMap, regs_exact

    if old.all_prec:
        return
    ids = _IdMap()
    prec = old.prec
    for fi, (of, cf) in enumerate(zip(old.frames, cur.frames, strict=True)):
        base = fi * 128
        regs = list(cf.regs)
        for i, (o, c) in enumerate(zip(of.regs, cf.regs, strict=True)):
            if (
                o.type == SCALAR
                and c.type == SCALAR
                and base + i not in prec
                and not regs_exact(o, c, ids)
            ):
                regs[i] = Reg.unknown()
        cf.regs = regs
        for spi, slot in list(cf.stack.items()):
            oslot = of.stack.get(spi)
            if oslot is None or not oslot.is_spill() or not slot.is_spill():
                continue
            o, c = oslot.spilled, slot.spilled
            if (
                o.type == SCALAR
                and c.type == SCALAR
                and precision.slot_key(fi, spi) not in prec
                and not regs_exact(o, c, ids)
            ):
                cf.stack[spi] = Slot(slot.types, Reg.unknown())


def _widen(old: State, cur: State) -> None:
    """Forget the scalars of ``cur`` that are not within ``old`` (loop convergence)."""
    for of, cf in zip(old.frames, cur.frames, strict=True):
        cf.regs = [_widen_reg(o, c) for o, c in zip(of.regs, cf.regs, strict=True)]
        for spi, slot in list(cf.stack.items()):
            oslot = of.stack.get(spi)
            if (
                slot.spilled is not None
                and oslot is not None
                and oslot.spilled is not None
                and slot.spill_size() == 8
                and oslot.spill_size() == 8
            ):
                n = _widen_reg(oslot.spilled, slot.spilled)
                if n is not slot.spilled:
                    cf.stack[spi] = Slot(slot.types, n)
            elif oslot is not None and oslot.types != slot.types and ST_ZERO in slot.types:
                cf.stack[spi] = Slot(slot.types.replace(ST_ZERO, ST_MISC), slot.spilled)


_SIG_FIELDS = attrgetter(
    "type",
    "off",
    "var_off",
    "smin",
    "smax",
    "umin",
    "umax",
    "s32min",
    "s32max",
    "u32min",
    "u32max",
    "id",
    "range",
    "maybe_null",
    "frameno",
    "mem_size",
)


def _signature(st: State) -> tuple:
    """Identity of the current frame's registers (equal signatures: maybe a loop).

    Each register's part is computed once and kept on it (``Reg.sig``)."""
    out = [len(st.frames)]
    for r in st.frames[-1].regs:
        s = r.sig
        if s is None:
            s = r.sig = _SIG_FIELDS(r)
        out.append(s)
    return tuple(out)


def _maybe_looping(old: State, cur: State) -> bool:
    """The current frame's registers are identical (the kernel's cheap loop test)."""
    if len(old.frames) != len(cur.frames):
        return False
    for a, b in zip(old.cur.regs, cur.cur.regs, strict=True):
        if a is b:
            continue
        for k in Reg.__slots__:
            if k != "sig" and getattr(a, k) != getattr(b, k):
                return False
    return True


_ = (S32_MIN, S32_MAX, M64, fmt_reg)
