"""One instruction budget bounds a whole run: the program, its callbacks, its tail calls.

The programs below are hand-assembled so that the number of instructions a run executes
follows from the instruction set alone (every executed instruction counts once, an
``lddw`` too): a main loop, ``bpf_loop`` whose callback calls ``bpf_loop`` again, whose
callback loops; then another main loop; and a chain of tail calls that loop. With a
budget of exactly that total a run completes on both engines; one less and it faults
with the budget's message — the fault (pc, count) the same on the interpreter and the
JIT, the count just past the budget. Before, callbacks had a budget of their own, so a
run could execute twice the budget (and each tail call a budget more).
"""

from __future__ import annotations

import random

import pytest

from bpfkit.errors import RuntimeFault
from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    Label,
    add64,
    assemble,
    call,
    call_local,
    exit_,
    jgt,
    jlt,
    ld_func,
    ld_map_fd,
    mov64,
)
from bpfkit.uapi.enums import HELPER_IDS, MapType, ProgType
from bpfkit.vm.runtime import VMRuntime

LOOP = HELPER_IDS["loop"]
TAIL_CALL = HELPER_IDS["tail_call"]
ENGINES = ("interp", "jit")


def _count_loop(reg, n: int, label: str) -> list:
    """``reg = 0; do reg += 1 while reg < n``: 1 + 2n instructions."""
    return [mov64(reg, 0), Label(label), add64(reg, 1), jlt(reg, n, label)]


def nested_loops(m: int, n1: int, n2: int, k: int, p: int) -> tuple[list, int]:
    """A main loop of ``m``, ``bpf_loop(n1, outer)`` with ``outer`` calling
    ``bpf_loop(n2, inner)`` and ``inner`` looping ``k`` times, then a main loop of ``p``:
    (instructions, how many a run executes)."""
    insns = assemble(
        [
            *_count_loop(R6, m, "main1"),  # 1 + 2m
            mov64(R1, n1),  # 5 to the call
            ld_func(R2, "outer"),
            mov64(R3, 0),
            mov64(R4, 0),
            call(LOOP),
            *_count_loop(R7, p, "main2"),  # 1 + 2p
            mov64(R0, 0),  # 2
            exit_(),
            Label("outer"),
            mov64(R1, n2),  # 5 to the call, 2 after
            ld_func(R2, "inner"),
            mov64(R3, 0),
            mov64(R4, 0),
            call(LOOP),
            mov64(R0, 0),
            exit_(),
            Label("inner"),
            mov64(R0, 0),  # 1, then 1 + 2k, then 1
            *_count_loop(R1, k, "inner_loop"),
            exit_(),
        ]
    )
    total = (1 + 2 * m) + 5 + (1 + 2 * p) + 2 + n1 * (5 + 2 + n2 * (1 + (1 + 2 * k) + 1))
    return insns, total


def from_a_subprogram(n: int, k: int) -> tuple[list, int]:
    """``bpf_loop(n, cb)`` from a BPF-to-BPF callee, in a block whose count the JIT
    charges together with a later block (so its count at the call is the charged one
    less what has not run yet); ``cb`` loops ``k`` times."""
    insns = assemble(
        [
            mov64(R6, 0),  # 2 to the call, 3 after
            call_local("sub"),
            add64(R0, R6),
            mov64(R0, 0),
            exit_(),
            Label("sub"),
            mov64(R1, n),  # 6 to the branch, then 1 (r0 is at most n) and 2
            ld_func(R2, "cb"),
            mov64(R3, 0),
            mov64(R4, 0),
            call(LOOP),
            jgt(R0, 1000, "skip"),
            add64(R0, 1),
            Label("skip"),
            add64(R0, 2),
            exit_(),
            Label("cb"),
            mov64(R0, 0),  # 1, 1 + 2k, 1
            *_count_loop(R1, k, "cb_loop"),
            exit_(),
        ]
    )
    return insns, 2 + 3 + 6 + 1 + 2 + n * (1 + (1 + 2 * k) + 1)


def _outcome(prog, engine: str):
    """('ok', r0) or ('fault', pc, count, message) of one run."""
    try:
        return ("ok", prog.fire(None, engine=engine).retval)
    except RuntimeFault as e:
        return ("fault", e.pc, e.insns, e.reason)


def _outcomes(insns: list, budget: int) -> dict:
    with VMRuntime(budget=budget) as rt:
        prog = rt.load_program("nested", ProgType.RAW_TRACEPOINT, insns)
        assert prog.verification.ok
        return {engine: _outcome(prog, engine) for engine in ENGINES}


SHAPES = {
    # the budget runs out in the inner callback's loop
    "inner loop heavy": (3, 4, 5, 20, 2),
    # ... in the main loop after the callbacks
    "main loop after callbacks": (2, 3, 2, 3, 200),
    # ... in the main loop before them, and callbacks that do little
    "main loop before": (150, 5, 3, 1, 4),
}


@pytest.mark.parametrize("shape", [*sorted(SHAPES), "from a subprogram"])
def test_callbacks_and_main_loops_share_one_budget(shape):
    if shape in SHAPES:
        insns, total = nested_loops(*SHAPES[shape])
    else:
        insns, total = from_a_subprogram(6, 7)
    # a budget of exactly the run's instructions suffices, on both engines
    ok = _outcomes(insns, total)
    assert ok == {"interp": ("ok", 0), "jit": ("ok", 0)}, ok
    # one less, and lower budgets: a fault at the budget, the same on both engines
    rnd = random.Random(total)
    for budget in (total - 1, *rnd.sample(range(1, total - 1), 5)):
        out = _outcomes(insns, budget)
        assert out["interp"] == out["jit"], (budget, out)
        kind, _pc, count, reason = out["interp"]
        assert kind == "fault" and reason == f"instruction budget of {budget} exceeded", out
        # checked at loop headers and exits: just past the budget (at most a loop body
        # and the instructions before the next check)
        assert budget < count <= budget + 8, (budget, count)


def test_twice_the_budget_is_refused():
    """Callbacks alone would each fit the budget; together with the main program they do
    not (the old per-run callback budget let this run to the end)."""
    insns, total = nested_loops(300, 1, 1, 150, 1)
    budget = total * 2 // 3  # more than the main program's and the callbacks' own part
    out = _outcomes(insns, budget)
    assert out["interp"] == out["jit"] and out["interp"][0] == "fault", out


def _tail_chain(rt: VMRuntime, hops: int, k: int) -> tuple[object, int]:
    """Programs 0..hops: each loops ``k`` times, then tail-calls the next (the last
    returns): (the first program, instructions a run executes)."""
    jmp = rt.create_map("jmp", MapType.PROG_ARRAY, 4, 4, hops + 1)
    progs = []
    for i in range(hops + 1):
        body = [mov64(R6, R1), *_count_loop(R7, k, "l")]  # 2 + 2k
        if i < hops:
            body += [mov64(R1, R6), ld_map_fd(R2, jmp.fd), mov64(R3, i + 1), call(TAIL_CALL)]
        body += [mov64(R0, i), exit_()]  # 4 to the tail call; 2 at the end
        progs.append(rt.load_program(f"hop{i}", ProgType.SOCKET_FILTER, assemble(body)))
    for i, p in enumerate(progs):
        jmp.update(i.to_bytes(4, "little"), p)
    return progs[0], (hops + 1) * (2 + 2 * k) + hops * 4 + 2


@pytest.mark.parametrize("engine", ENGINES)
def test_tail_calls_share_the_budget(engine):
    hops, k = 5, 40
    with VMRuntime() as probe:
        _, total = _tail_chain(probe, hops, k)
    for budget, ok in ((total, True), (total - 1, False), (total // 2, False)):
        with VMRuntime(budget=budget) as rt:
            first, _ = _tail_chain(rt, hops, k)
            if ok:
                assert first.test_run(data=bytes(64), engine=engine).retval == hops
            else:
                with pytest.raises(RuntimeFault, match=f"instruction budget of {budget} exceeded"):
                    first.test_run(data=bytes(64), engine=engine)
