"""Early exits count exactly on both engines: a failed legacy packet load ends its
function with 0 after the instructions that ran, wherever it sits.

The JIT charges a block that always runs after another (it post-dominates and is
dominated by it) together with the earlier one, so in the blocks between them the
charged count runs ahead of the executed one; an early exit, a call or a callback there
must give back exactly that much. Each program below is hand-assembled so that the
number of instructions a run executes follows from the instruction set alone (every
executed instruction counts once, an ``lddw`` too, a failed load included). Each kind
of failing load (offset past the data, ``-1``, each header class out of range, below
``SKF_LL_OFF``, headers missing, no packet at all, ``ld_ind`` with a negative or a
wrapping register) runs in five places: the group's first block, a block between it
and the group's later block, the later block, a loop body after back edges, and a
BPF-to-BPF callee (whose caller goes on). A load of the same kind that succeeds runs
the program to its end. Then budgets around the exit point: both engines stop at the
same instruction with the same count (a failed load faults past the budget, as an
``exit`` does).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import RuntimeFault
from bpfkit.isa import opcodes as op
from bpfkit.isa.builders import (
    R0,
    R1,
    R6,
    R7,
    R8,
    Label,
    add64,
    assemble,
    call_local,
    exit_,
    jgt,
    jlt,
    ld_abs,
    ld_ind,
    lddw,
    mov64,
)
from bpfkit.isa.instruction import Instruction
from bpfkit.jit import JitProgram, cfg
from bpfkit.vm.env import SKF_LL_OFF, SKF_NET_OFF, Env, PacketHeaders
from bpfkit.vm.interp import CompiledProgram
from bpfkit.vm.memory import Region

PKT = 64  # bytes of packet data; the network header at 14, the MAC header at 0
NET, MAC = 14, 0

# kind: (r7 for ld_ind, failing load, succeeding load of the same kind or None, headers)
# headers: "both" (net and MAC), "net" (no MAC header), "none" (no headers), "nopkt"
KINDS = {
    "abs past the end": (0, ld_abs(4, PKT - 3), ld_abs(4, PKT - 4), "both"),
    "abs -1": (0, ld_abs(1, -1), None, "both"),
    "abs net header past the end": (
        0,
        ld_abs(2, SKF_NET_OFF + PKT - NET - 1),
        ld_abs(2, SKF_NET_OFF + PKT - NET - 2),
        "both",
    ),
    "abs mac header past the end": (
        0,
        ld_abs(4, SKF_LL_OFF + PKT - 3),
        ld_abs(4, SKF_LL_OFF + PKT - 4),
        "both",
    ),
    "abs below the mac header class": (0, ld_abs(1, SKF_LL_OFF - 1), None, "both"),
    "abs net header, no headers": (0, ld_abs(1, SKF_NET_OFF), ld_abs(1, 0), "none"),
    "abs mac header, no mac header": (0, ld_abs(1, SKF_LL_OFF), ld_abs(1, SKF_NET_OFF), "net"),
    "abs without a packet": (0, ld_abs(1, 0), None, "nopkt"),
    "ind past the end": (PKT - 4, ld_ind(4, R7, 1), ld_ind(4, R7, 0), "both"),
    "ind negative": (-1, ld_ind(1, R7, 0), ld_ind(1, R7, 1), "both"),
    "ind wrapping to s32 min": (0x7FFF_FFFF, ld_ind(1, R7, 1), ld_ind(1, R7, -0x7FFF_FFFF), "both"),
}


def _adds(n: int) -> list:
    return [add64(R0, 1)] * n


def shape(where: str, r7: int, load) -> tuple[list, int, int, int]:
    """(instructions, count and r0 of a run whose load fails, count of one whose load
    succeeds (r0 then depends on the bytes read only where the load is the last write))."""
    if where == "group top":  # the load in the block that charges the later one
        items = [mov64(R0, 0), lddw(R7, r7), load, mov64(R0, 0), jgt(R0, 5, "join")]
        items += [mov64(R8, 1), mov64(R0, 1), Label("join"), *_adds(20), exit_()]
        return assemble(items), 3, 0, 5 + 2 + 21
    if where == "between":  # conditional, between the group's top and its later block
        items = [mov64(R0, 0), lddw(R7, r7), jgt(R0, 5, "join")]
        items += [mov64(R8, 1), load, mov64(R0, 1), Label("join"), *_adds(20), exit_()]
        return assemble(items), 5, 0, 3 + 3 + 21
    if where == "later block":  # in the block charged ahead
        items = [mov64(R0, 0), lddw(R7, r7), jgt(R0, 5, "join"), mov64(R8, 1), mov64(R0, 1)]
        items += [Label("join"), *_adds(10), load, mov64(R0, 1), *_adds(10), exit_()]
        return assemble(items), 3 + 2 + 11, 0, 3 + 2 + 22 + 1
    if where == "loop body":  # between blocks of a loop iteration, on the 4th iteration
        items = [mov64(R0, 0), lddw(R7, r7), mov64(R6, 0), Label("loop")]
        items += [add64(R6, 1), jlt(R6, 4, "join"), mov64(R8, 1), load, mov64(R0, 1)]
        items += [Label("join"), *_adds(3), jlt(R6, 4, "loop"), exit_()]
        return assemble(items), 3 + 3 * 6 + 4, 0, 3 + 3 * 6 + 9 + 1
    assert where == "callee"  # the callee returns 0 early; the caller goes on
    items = [mov64(R0, 0), lddw(R1, r7), jgt(R0, 5, "join"), call_local("sub"), add64(R0, 100)]
    items += [Label("join"), *_adds(5), exit_()]
    items += [Label("sub"), mov64(R7, R1), mov64(R0, 0), jgt(R0, 5, "sjoin")]
    items += [mov64(R8, 1), load, mov64(R0, 1), Label("sjoin"), *_adds(5), exit_()]
    return assemble(items), 3 + 1 + 5 + 1 + 6, 105, 3 + 1 + 12 + 1 + 6


WHERE = ["group top", "between", "later block", "loop body", "callee"]


def _env(headers: str) -> tuple[Env, int]:
    """An environment with the packet (bytes 0x40..0x7f) and its headers: (env, r1)."""
    env = Env()
    if headers == "nopkt":
        return env, 0
    region = env.space.add(Region.alloc("pkt", PKT, init=bytes(range(0x40, 0x40 + PKT))))
    env.packet = region
    if headers != "none":
        env.packet_headers = PacketHeaders(NET, MAC if headers == "both" else None, region, 0)
    return env, region.base


def _runs(insns: list, headers: str, budget: int = 10_000) -> dict:
    """Each engine's ('ok', r0, count) or ('fault', pc, count, reason)."""
    out = {}
    for name, engine in (("interp", CompiledProgram), ("jit", JitProgram)):
        env, r1 = _env(headers)
        try:
            r0, n = engine(insns, env, budget=budget).run(r1, PKT)
            out[name] = ("ok", r0, n)
        except RuntimeFault as e:
            out[name] = ("fault", e.pc, e.insns, e.reason)
    return out


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_failed_load_counts_exactly(kind, where):
    r7, bad, good, headers = KINDS[kind]
    insns, early, r0, _full = shape(where, r7, bad)
    out = _runs(insns, headers)
    assert out["interp"] == out["jit"] == ("ok", r0, early), out
    if good is not None:  # the same kind of load in range: the program runs to its end
        insns, _early, _r0, full = shape(where, r7, good)
        out = _runs(insns, headers)
        assert out["interp"] == out["jit"], out
        assert out["interp"][0] == "ok" and out["interp"][2] == full, out


@pytest.mark.parametrize("where", WHERE)
def test_the_budget_stops_both_engines_at_the_same_instruction(where):
    """Budgets below, at and above the failed load's count: a fault at the same pc
    with the same count, or the same result."""
    insns, early, r0, _full = shape(where, 0, ld_abs(4, PKT - 3))
    load_pc = next(
        pc
        for pc, i in enumerate(_slots(insns))
        if i is not None and i.cls == op.LD and not i.is_lddw
    )
    for budget in sorted({1, 2, early // 2, early - 1, early, early + 1}):
        out = _runs(insns, "both", budget)
        assert out["interp"] == out["jit"], (budget, out)
        if budget >= early:
            assert out["interp"] == ("ok", r0, early), (budget, out)
        else:
            kind, pc, count, reason = out["interp"]
            assert kind == "fault" and reason == f"instruction budget of {budget} exceeded"
            assert budget < count <= early, (budget, out)
    # just below the count: no loop header or exit before the load checks it
    if where in ("group top", "between", "later block"):
        out = _runs(insns, "both", early - 1)
        assert out["interp"][1:3] == (load_pc, early), out


def _slots(insns: list) -> list:
    """Instruction per slot (None for the second slot of an ``lddw``)."""
    out: list = []
    for i in insns:
        out += [i] + [None] * (i.slots - 1)
    return out


def test_a_call_between_charged_blocks_keeps_the_callee_budget_exact():
    """A BPF-to-BPF call in a block the JIT runs between charged blocks: the callee's
    loop sees the exact budget left, so a fault inside it happens at the same point."""
    items = [mov64(R0, 0), jgt(R0, 5, "join"), call_local("sub"), Label("join")]
    items += [*_adds(30), exit_()]
    items += [Label("sub"), mov64(R6, 0), Label("loop"), add64(R6, 1), jlt(R6, 10, "loop")]
    items += [mov64(R0, 0), exit_()]
    insns = assemble(items)
    total = 2 + 1 + (1 + 20 + 2) + 31
    out = _runs(insns, "both", total)
    assert out["interp"] == out["jit"] == ("ok", 30, total), out
    for budget in sorted({*range(3, total, 4), total - 2, total - 1}):
        out = _runs(insns, "both", budget)
        assert out["interp"] == out["jit"], (budget, out)
        assert out["interp"][0] == "fault", (budget, out)


@st.composite
def _flow_program(draw) -> list:
    """Random control flow: moves, conditional jumps and ``ja`` forward and backward
    (loops), exits, local calls; every target inside the program."""
    n = draw(st.integers(2, 40))
    kinds = draw(st.lists(st.sampled_from("mmmjjaxc"), min_size=n - 1, max_size=n - 1))
    out = []
    for pc, k in enumerate(kinds):
        rel = draw(st.integers(0, n - 1)) - pc - 1
        if k == "m":
            out.append(mov64(R0, pc))
        elif k == "j":
            out.append(jlt(R0, draw(st.integers(0, 50)), rel))
        elif k == "a":
            out.append(Instruction(op.JMP | op.JA, off=rel))
        elif k == "x":
            out.append(exit_())
        else:
            out.append(Instruction(op.CALL_OP, src=op.PSEUDO_CALL, imm=rel))
    return [*out, exit_()]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(insns=_flow_program(), seed=st.integers(0, 2**32 - 1))
def test_the_charge_plan_is_exact_on_every_path(insns, seed):
    """What the JIT's plan says is charged ahead at the end of a block equals what
    random walks charge beyond the instructions they run; nothing is left charged at an
    exit or a loop header (where the count must be exact)."""
    lay = cfg.layout(insns)
    rnd = random.Random(seed)
    for fn in cfg.functions(lay).values():
        heads = cfg.loop_heads(lay, fn)
        charge, ahead = cfg.charge_plan(lay, fn, heads)
        succ = cfg.block_successors(lay, fn)
        assert sum(charge.values()) == sum(map(len, fn.blocks.values()))
        for start in sorted(heads & fn.blocks.keys()):
            for _ in range(20):
                b, excess = start, 0
                while True:
                    excess += charge[b] - len(fn.blocks[b])
                    assert excess == ahead[b] >= 0, (b, excess, ahead)
                    nxt = succ[b]
                    if not nxt or lay.at(fn.blocks[b][-1]).is_exit:
                        assert excess == 0
                        break
                    b = rnd.choice(nxt)
                    if b in heads:
                        assert excess == 0
                        break


@pytest.mark.parametrize("blocks", [30, 1200])
def test_the_budget_is_checked_at_the_same_instructions(blocks):
    """A chain of forward branches, then a loop: 30 blocks pass the interpreter's
    inlining depth, 1200 make its function segmented; either way it checks the budget
    only where the JIT does (loop headers, exits), so a run stops at the same pc with
    the same count."""
    items = [mov64(R0, 0)]
    for i in range(blocks):
        items += [add64(R0, 1), jgt(R0, 1 << 20, f"l{i}"), Label(f"l{i}")]
    items += [mov64(R6, 0), Label("loop"), add64(R6, 1), jlt(R6, 5, "loop"), exit_()]
    insns = assemble(items)
    chain = 1 + 2 * blocks  # instructions before the loop header
    total = chain + 1 + 2 * 5 + 1
    head = len(_slots(insns)) - 3  # the loop header's slot
    for budget in (chain // 2, chain - 1, chain, total - 1, total):
        out = _runs(insns, "both", budget)
        assert out["interp"] == out["jit"], (budget, out)
        if budget == total:
            assert out["interp"] == ("ok", blocks, total)
        elif budget < chain:  # the first check is at the loop header
            assert out["interp"][1:3] == (head, chain + 1), (budget, out)
