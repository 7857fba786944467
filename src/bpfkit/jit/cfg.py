"""Functions and basic blocks of a program, partitioned exactly like the interpreter's.

The executed-instruction count is charged per basic block when the block is entered, so
the JIT must use the same block boundaries as :mod:`bpfkit.vm.interp` for its counts
(and the pc of a budget fault) to agree with the reference interpreter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..isa.loader import runnable_slots


@dataclass
class Layout:
    """A validated program: its instructions and the slot → instruction-index map."""

    insns: list[Instruction]
    slot_insn: list[int | None]
    #: per slot: successor slots and whether the instruction ends a block (see _flow)
    _flow: tuple[list, list] | None = field(default=None, repr=False, compare=False)

    @property
    def nslots(self) -> int:
        """Number of 8-byte slots (an ``lddw`` takes two)."""
        return len(self.slot_insn)

    def valid(self, slot: int) -> bool:
        """Whether ``slot`` is the first slot of an instruction."""
        return 0 <= slot < len(self.slot_insn) and self.slot_insn[slot] is not None

    def at(self, slot: int) -> Instruction:
        """The instruction starting at ``slot``."""
        return self.insns[self.slot_insn[slot]]  # type: ignore[index]

    def describe(self, slot: int | None) -> str:
        """Printable text of the instruction at ``slot`` (empty when there is none)."""
        if slot is not None and self.valid(slot):
            return str(self.at(slot))
        return ""


def layout(insns: Sequence[Instruction]) -> Layout:
    """Validate ``insns`` like the interpreter does (well-formed, r10 never written) and
    map slots to instructions."""
    insns = list(insns)
    return Layout(insns, runnable_slots(insns))


@dataclass
class Function:
    """One BPF function: its entry slot and its reachable basic blocks (leader → slots)."""

    entry: int
    blocks: dict[int, list[int]] = field(default_factory=dict)


def _is_ja(insn: Instruction) -> bool:
    return (insn.opcode & 0xF0) == op.JA


def successors(lay: Layout, slot: int) -> list[int]:
    """Slots control may reach after the instruction at ``slot`` (calls fall through)."""
    insn = lay.at(slot)
    if insn.is_exit:
        return []
    if insn.is_jump:
        tgt = slot + 1 + insn.jump_offset
        return [tgt] if _is_ja(insn) else [slot + insn.slots, tgt]
    return [slot + insn.slots]


def _flow(lay: Layout) -> tuple[list, list]:
    """Per slot: the successors (``successors``) and whether it ends a block (a jump or
    an exit); None for the second slot of an ``lddw``. Computed once per layout."""
    if lay._flow is None:
        n = lay.nslots
        succ: list = [None] * n
        ends: list = [False] * n
        for s, idx in enumerate(lay.slot_insn):
            if idx is None:
                continue
            insn = lay.insns[idx]
            if insn.is_exit:
                succ[s], ends[s] = (), True
            elif insn.is_jump:
                tgt = s + 1 + insn.jump_offset
                succ[s] = (tgt,) if _is_ja(insn) else (s + insn.slots, tgt)
                ends[s] = True
            else:
                succ[s] = (s + insn.slots,)
        lay._flow = (succ, ends)
    return lay._flow


def function(lay: Layout, entry: int) -> Function:
    """Discover the blocks of the function starting at ``entry`` (same rules as the interpreter)."""
    succ, ends = _flow(lay)
    n = len(succ)
    seen: set[int] = set()
    leaders = {entry}
    work = [entry]
    while work:
        s = work.pop()
        if s in seen or not 0 <= s < n or succ[s] is None:
            continue
        seen.add(s)
        ss = succ[s]
        if ends[s]:
            leaders.update(ss)
        work.extend(ss)
    fn = Function(entry)
    for lead in sorted(s for s in leaders if s in seen):
        slots = []
        s = lead
        while True:
            slots.append(s)
            if ends[s]:
                break
            s = succ[s][0]
            if s in leaders or not 0 <= s < n or succ[s] is None:
                break
        fn.blocks[lead] = slots
    return fn


def func_targets(lay: Layout, fn: Function) -> set[int]:
    """Valid entry slots of the functions ``fn`` may call directly."""
    out: set[int] = set()
    for slots in fn.blocks.values():
        for s in slots:
            insn = lay.at(s)
            if insn.is_local_call:
                t = s + 1 + insn.imm
                if lay.valid(t):
                    out.add(t)
    return out


def pseudo_func_targets(lay: Layout) -> set[int]:
    """Valid slots whose address some ``lddw src=func`` takes (possible ``callx`` targets)."""
    out: set[int] = set()
    pos = 0
    for insn in lay.insns:
        if insn.is_lddw and insn.src == op.PSEUDO_FUNC:
            lo = insn.imm & 0xFFFFFFFF
            t = pos + 1 + (lo - (1 << 32) if lo & 0x80000000 else lo)
            if lay.valid(t):
                out.add(t)
        pos += insn.slots
    return out


def functions(lay: Layout) -> dict[int, Function]:
    """Every function reachable from slot 0 by calls, plus every ``lddw src=func`` target."""
    out: dict[int, Function] = {}
    work = [0, *sorted(pseudo_func_targets(lay))]
    while work:
        e = work.pop()
        if e in out:
            continue
        fn = out[e] = function(lay, e)
        work.extend(sorted(func_targets(lay, fn) - out.keys()))
    return dict(sorted(out.items()))


def block_successors(lay: Layout, fn: Function) -> dict[int, list[int]]:
    """Successor leaders of each block of ``fn`` (bad targets are left out)."""
    out: dict[int, list[int]] = {}
    for lead, slots in fn.blocks.items():
        last = slots[-1]
        insn = lay.at(last)
        if insn.is_jump or insn.is_exit:
            succ = successors(lay, last)
        else:
            succ = [last + insn.slots]
        out[lead] = [s for s in dict.fromkeys(succ) if s in fn.blocks]
    return out


def loop_heads(lay: Layout, fn: Function) -> set[int]:
    """The function entry and every target of a backward jump (every cycle has one)."""
    heads = {fn.entry}
    for slots in fn.blocks.values():
        li = lay.at(slots[-1])
        if li.is_jump:
            tgt = slots[-1] + 1 + li.jump_offset
            if tgt <= slots[-1] and tgt in fn.blocks:
                heads.add(tgt)
    return heads


def _idoms(order: list[int], preds: dict[int, list[int]], root: int) -> dict[int, int]:
    """Immediate dominators in an acyclic graph given in topological ``order``."""
    pos = {b: i for i, b in enumerate(order)}
    idom = {root: root}
    for b in order:
        if b == root:
            continue
        ps = [p for p in preds.get(b, ()) if p in idom]
        if not ps:
            continue
        d = ps[0]
        for p in ps[1:]:
            x, y = d, p
            while x != y:
                while pos[x] > pos[y]:
                    x = idom[x]
                while pos[y] > pos[x]:
                    y = idom[y]
            d = x
        idom[b] = d
    return idom


def charges(lay: Layout, fn: Function, heads: set[int]) -> dict[int, int]:
    """How many instructions each block charges to the count when it runs (see
    :func:`charge_plan`)."""
    return charge_plan(lay, fn, heads)[0]


def charge_plan(
    lay: Layout, fn: Function, heads: set[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """(charge, ahead): what each block charges to the count when it runs, and how many
    instructions of later blocks are already charged when it starts.

    Within one iteration (the graph without edges into loop headers), a block that is
    dominated by an earlier block and post-dominates it runs exactly once each time
    that block runs, so its length is charged there. Totals at exits and at loop
    headers stay exact; only conditionally executed blocks keep their own charge.
    ``ahead[b]`` is how many instructions are charged, at the end of ``b``, that have
    not run yet (later blocks of the groups whose tops ran before ``b``): the exact count
    at an instruction of ``b`` is the charged count less ``ahead[b]`` and less the rest
    of ``b`` (what calls, tail calls and early exits need).
    """
    succ = block_successors(lay, fn)
    src, sink = -1, -2
    dag: dict[int, list[int]] = {src: sorted(heads & fn.blocks.keys())}
    for b, ss in succ.items():
        nxt = [s for s in ss if s not in heads]
        dag[b] = nxt if len(nxt) == len(ss) and ss else [*nxt, sink]
    dag[sink] = []
    # topological order (Kahn)
    indeg = {b: 0 for b in dag}
    for ss in dag.values():
        for s in ss:
            indeg[s] += 1
    order, work = [], [b for b, d in indeg.items() if d == 0]
    while work:
        b = work.pop()
        order.append(b)
        for s in dag[b]:
            indeg[s] -= 1
            if indeg[s] == 0:
                work.append(s)
    preds: dict[int, list[int]] = {b: [] for b in dag}
    for b, ss in dag.items():
        for s in ss:
            preds[s].append(b)
    idom = _idoms(order, preds, src)
    ipdom = _idoms(order[::-1], dag, sink)
    # the post-dominator tree as DFS intervals: x post-dominates y iff
    # tin[x] <= tin[y] < tout[x]
    children: dict[int, list[int]] = {}
    for b, p in ipdom.items():
        if b != sink:
            children.setdefault(p, []).append(b)
    tin: dict[int, int] = {}
    tout: dict[int, int] = {}
    t = 0
    stack: list[tuple[int, bool]] = [(sink, False)]
    while stack:
        x, done = stack.pop()
        if done:
            tout[x] = t
            continue
        tin[x] = t
        t += 1
        stack.append((x, True))
        stack.extend((c, False) for c in children.get(x, ()))
    # up[x]: the highest block of x's dominator chain (without src) that x post-dominates
    # along with every block in between (x itself if none): x runs exactly once each time
    # up[x] runs. Post-domination is transitive and, along a dominator chain, holds for a
    # prefix, so up[] of x's immediate dominator lets the walk skip ahead.
    up: dict[int, int] = {}
    for x in order:
        if x == src or x == sink or x not in idom:
            continue
        top = x
        tx = tin.get(x)
        if tx is not None:
            ox = tout[x]
            r = idom[x]
            while r != src:
                tr = tin.get(r)
                if tr is None or not tx <= tr < ox:
                    break
                top = up.get(r, r)
                r = idom[top]
        up[x] = top
    out = {b: len(slots) for b, slots in fn.blocks.items()}
    for b in fn.blocks:
        if b in heads or b not in ipdom:
            continue
        top = up.get(b, b)
        if top != b:
            out[top] += len(fn.blocks[b])
            out[b] -= len(fn.blocks[b])
    # ahead[b]: the count charged beyond the instructions run, at the end of b. It is
    # the same on every path to b (the totals at exits and loop headers are exact, so
    # any two paths to b, continued alike, end with the same excess): one walk in
    # topological order finds it. A block that runs between a group's top and its
    # members inherits what the group charged ahead (an early exit there gives it back).
    ahead: dict[int, int] = {}
    pending: dict[int, int] = dict.fromkeys(heads & fn.blocks.keys(), 0)
    for b in order:
        if b not in fn.blocks or b not in pending:
            continue
        a = ahead[b] = pending[b] + out[b] - len(fn.blocks[b])
        for s in dag[b]:
            if s == sink:
                ok = a == 0
            elif s in pending:
                ok = pending[s] == a
            else:
                pending[s], ok = a, True
            if not ok:  # (never expected) charge every block whole: exact everywhere
                return {b: len(slots) for b, slots in fn.blocks.items()}, dict.fromkeys(
                    fn.blocks, 0
                )
    for b in fn.blocks.keys() - ahead.keys():  # (unreachable in the walk)
        ahead[b] = 0
    return out, ahead
