"""The checker's branches: conditional jumps (what each side learns), may_goto,
queued paths, and pruning at checkpoints (mixed into :class:`~.check.Checker`)."""

from __future__ import annotations

from operator import attrgetter

from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..uapi.enums import MapType
from . import precision, scalar, tnum
from .cfg import MAY_GOTO
from .check_common import _CALLBACK_HELPERS, _CLS_JMP32, _X
from .state import (
    CONST_PTR_TO_MAP,
    PACKET_TYPES,
    PTR_TO_MAP_KEY,
    PTR_TO_MAP_VALUE,
    PTR_TO_MEM,
    PTR_TO_PACKET,
    PTR_TO_PACKET_END,
    PTR_TO_PACKET_META,
    PTR_TO_SOCKET,
    PTR_TO_XDP_SOCK,
    SCALAR,
    SOCKET_TYPES,
    ST_MISC,
    ST_ZERO,
    Reg,
    Slot,
    State,
    states_equal,
)
from .tnum import M32

PKT_RIGHT_OPEN_EXTRA = 1  # "pkt + n < end" proves n + 1 bytes
COMPLEXITY_LIMIT_JMP_SEQ = 8192


class _Pruned(Exception):
    pass


_PKT_ANY = (PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_PACKET_END)
#: pointer types the kernel's ``reg_not_null`` knows are not NULL (when not maybe-null)
_NOT_NULL_TYPES = frozenset(
    {PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY, PTR_TO_MEM, CONST_PTR_TO_MAP, *SOCKET_TYPES}
)


class JumpsMixin:
    """Conditional jumps, branch refinement and pruning."""

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

    def _inherit_round(self, state: State, old: State) -> None:
        """``state`` ends at ``old``, a round still being explored: it inherits the
        precision ``old`` relies on so far (the kernel's ``propagate_precision``), and
        its checkpoints since ``old`` compare every scalar, since they lean on ``old``'s
        continuation, not explored yet: their marks are not final (the kernel compares
        states inside an unfinished loop exactly, for the same reason)."""
        keys = precision.live_keys(old)
        if keys:
            precision.mark_chain(self.prog.at, state, keys)
        p = state.parent
        while p is not None and p is not old:
            p.all_prec = True
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
                            self._inherit_round(state, old)
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
                            self._inherit_round(state, old)
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


#: maps whose lookups give sockets once NULL-checked
_SOCK_MAPS = {
    MapType.SOCKMAP: PTR_TO_SOCKET,
    MapType.SOCKHASH: PTR_TO_SOCKET,
    MapType.XSKMAP: PTR_TO_XDP_SOCK,
}


def _not_null(r: Reg) -> Reg:
    """The kernel's mark_ptr_not_null_reg: this register (not its copies) is not NULL."""
    if not r.maybe_null:
        return r
    if r.type == PTR_TO_MAP_VALUE and r.map.type in _SOCK_MAPS:
        return Reg.pointer(_SOCK_MAPS[r.map.type], id=r.id, ref_obj_id=r.ref_obj_id)
    n = r.clone()
    n.maybe_null = False
    return n


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
