"""Static register and stack-slot liveness, per instruction and per function.

A register or an 8-byte stack slot is *live* at an instruction when some path from it
may read the value before overwriting it. Pruning (``state.states_equal``) ignores
what is dead at a checkpoint: no continuation can observe it. This is the static
counterpart of the kernel's ``REG_LIVE_*`` marks (and of its 6.x stack liveness pass);
being a may-read analysis over every path of the control-flow graph it is sound for
any exploration order, so it can be used against checkpoints still being explored.

Rules (per subprogram, backward, to a fixpoint; local calls use the callee's live-in
arguments, also to a fixpoint across subprograms):

* ALU: reads its operands (not the destination of a ``mov``), writes the destination;
  ``ldx`` reads its base and, through ``r10``, the slot; ``st``/``stx`` read base and
  source and kill a slot only when all 8 bytes are written through ``r10``; atomics read
  the slot, ``cmpxchg`` reads ``r0``.
* helper calls read ``r1``..``rN`` (N from the prototype; all five when unknown) and
  clobber ``r0``..``r5``; local calls read the callee's live argument registers;
  ``ld_abs``/``ld_ind`` read ``r6`` (and the index) and clobber ``r0``..``r5``;
  ``exit`` reads ``r0``.
* a function that uses ``r10`` other than as the base of a load or store (copies it,
  compares it, stores it) may let its stack be reached through pointers: all its slots
  are live everywhere.

Outer frames of a checkpoint inside a callee are judged at the caller's continuation:
``r6``..``r9`` and the slots live after the call (``live_after_call``), or, for a
callback frame's caller, everything live at the helper call that re-enters the callback.
"""

from __future__ import annotations

from ..isa import opcodes as op
from .helpers_proto import proto_for

ALL_SLOTS = (1 << 64) - 1
R0_R5 = 0b111111
R1_R5 = 0b111110
R6_R9 = 0b1111000000
R10 = 1 << 10


class Liveness:
    """Live-in registers (bit per register) and stack slots (bit per ``spi``) per slot."""

    __slots__ = ("regs", "slots")

    def __init__(self, n: int) -> None:
        self.regs = [0] * n
        self.slots = [0] * n

    def at(self, pc: int) -> tuple[int, int]:
        """(registers, slots) live before the instruction at ``pc`` (r10 always)."""
        return self.regs[pc] | R10, self.slots[pc]

    def after_call(self, callsite: int) -> tuple[int, int]:
        """What of the caller's frame is live while its callee at ``callsite`` runs."""
        return (self.regs[callsite + 1] & R6_R9) | R10, self.slots[callsite + 1]


def _spis(off: int, size: int) -> int:
    """Mask of the slots an access of ``size`` bytes at ``r10 + off`` touches."""
    m = 0
    for a in range(off, off + size):
        if -512 <= a < 0:
            m |= 1 << ((-a - 1) // 8)
    return m


def _summary(insn, prog_type: int, unpriv: bool) -> tuple:
    """(use regs, def regs, use slots, def slots, escapes r10) of one instruction."""
    cls = insn.cls
    code = insn.opcode
    d, s = insn.dst, insn.src
    if cls in (op.ALU, op.ALU64):
        aop = code & 0xF0
        x = bool(code & op.X)
        if aop == op.MOV:
            use = (1 << s) if x else 0
        elif aop in (op.NEG, op.END):
            use = 1 << d
        else:
            use = (1 << d) | ((1 << s) if x else 0)
        return use, 1 << d, 0, 0, bool(use & R10)
    if cls == op.LDX:
        size = op.SIZE_BYTES[code & 0x18]
        su = _spis(insn.off, size) if s == 10 else 0
        return 1 << s, 1 << d, su, 0, False
    if cls == op.ST:
        size = op.SIZE_BYTES[code & 0x18]
        sd = _spis(insn.off, 8) if d == 10 and size == 8 and insn.off % 8 == 0 else 0
        return 1 << d, 0, 0, sd, False
    if cls == op.STX:
        size = op.SIZE_BYTES[code & 0x18]
        use = (1 << d) | (1 << s)
        esc = s == 10
        if (code & 0xE0) == op.ATOMIC:
            su = _spis(insn.off, size) if d == 10 else 0
            dfn = 0
            if insn.imm == op.CMPXCHG:
                use |= 1
                dfn = 1
            elif insn.imm & op.FETCH:
                dfn = 1 << s
            return use, dfn, su, 0, esc
        sd = _spis(insn.off, 8) if d == 10 and size == 8 and insn.off % 8 == 0 else 0
        return use, 0, 0, sd, esc
    if cls == op.LD:
        if insn.is_lddw:
            return 0, 1 << d, 0, 0, False
        use = 1 << 6
        if (code & 0xE0) == op.IND:
            use |= 1 << s
        return use, R0_R5, 0, 0, bool(use & R10)
    # jumps
    jop = code & 0xF0
    if jop == op.JA:
        return 0, 0, 0, 0, False
    if jop == op.EXIT:
        return 1, 0, 0, 0, False
    if jop == op.CALL:
        if insn.is_local_call:  # the callee's live arguments: filled in by analyze()
            return 0, R0_R5, 0, 0, False
        proto = proto_for(insn.imm, prog_type, unpriv) if insn.src == 0 else None
        n = len(proto.args) if proto is not None else 5
        return ((1 << (n + 1)) - 2) & R1_R5, R0_R5, 0, 0, False
    use = 1 << d
    if code & op.X:
        use |= 1 << s
    return use, 0, 0, 0, bool(use & R10)


def analyze(
    prog, prog_type: int, unpriv: bool, global_nargs: dict[int, int] | None = None
) -> Liveness:
    """Liveness of every instruction of ``prog`` (a :class:`cfg.Program`).

    ``global_nargs`` maps global functions (subprogram index) to their argument count: a
    call of one reads all its arguments (their types are checked at the call).
    """
    global_nargs = global_nargs or {}
    at = prog.at
    n = len(at)
    live = Liveness(n)
    nsub = len(prog.subprogs)
    entry: dict[int, int] = {i: 0 for i in range(nsub)}
    # per-instruction summaries and successors (no call edges: a call returns to pc + 1)
    succ: list[tuple[int, ...]] = [()] * n
    local_callee: dict[int, int] = {}
    for pc, insn in enumerate(at):
        if insn is None:
            continue
        nxt = pc + insn.slots
        if insn.is_exit:
            succ[pc] = ()
        elif insn.is_jump:
            t = pc + 1 + insn.jump_offset
            succ[pc] = (t,) if insn.opcode & 0xF0 == op.JA else (nxt, t)
        else:
            succ[pc] = (nxt,)
        if insn.is_local_call:
            local_callee[pc] = prog.subprog_of(pc + 1 + insn.imm)
    escapes = [False] * nsub
    summaries: list = [None] * n
    for idx in range(nsub):
        for pc in range(prog.subprogs[idx], prog.subprog_end(idx)):
            insn = at[pc]
            if insn is None:
                continue
            sm = summaries[pc] = _summary(insn, prog_type, unpriv)
            if sm[4]:
                escapes[idx] = True
    changed_entry = True
    rounds = 0
    while changed_entry and rounds < 50:
        changed_entry = False
        rounds += 1
        for idx in range(nsub):
            start, end = prog.subprogs[idx], prog.subprog_end(idx)
            all_slots = escapes[idx]
            summ = {}
            for pc in range(start, end):
                insn = at[pc]
                if insn is None:
                    continue
                if pc in local_callee:
                    callee = local_callee[pc]
                    if callee in global_nargs:
                        use = ((1 << (global_nargs[callee] + 1)) - 2) & R1_R5
                        summ[pc] = (use, R0_R5, 0, 0)
                    else:
                        summ[pc] = (entry[local_callee[pc]] & R1_R5, R0_R5, 0, 0)
                else:
                    summ[pc] = summaries[pc][:4]
            regs, slots = live.regs, live.slots
            changed = True
            while changed:
                changed = False
                for pc in range(end - 1, start - 1, -1):
                    sm = summ.get(pc)
                    if sm is None:
                        continue
                    ro = so = 0
                    for t in succ[pc]:
                        if t < n:
                            ro |= regs[t]
                            so |= slots[t]
                    use, dfn, su, sd = sm
                    r = use | (ro & ~dfn)
                    s = ALL_SLOTS if all_slots else su | (so & ~sd)
                    if r != regs[pc] or s != slots[pc]:
                        regs[pc] = r
                        slots[pc] = s
                        changed = True
            e = live.regs[start] & R1_R5
            if e != entry[idx]:
                entry[idx] = e
                changed_entry = True
    if changed_entry:  # recursion that did not settle: be conservative
        for pc in range(n):
            live.regs[pc] |= R1_R5 | R6_R9 | 1
            live.slots[pc] = ALL_SLOTS
    return live
