"""Size tiers of the JIT: large programs compile quickly at opt level 1 and switch to
level-2 code compiled on a background thread; every tier computes what the interpreter does."""

from __future__ import annotations

import pytest
from progen import generate

from bpfkit.jit import JitProgram
from bpfkit.jit.runtime import _CACHE, AUTO_FULL_OPT_SLOTS, auto_opt_level
from bpfkit.vm.env import Env
from bpfkit.vm.interp import CompiledProgram


def _interp(insns, env):
    env.reset_stack()
    return CompiledProgram(insns, env).run()


def _jit(jp, env):
    env.reset_stack()
    r0, count = jp.run()
    return r0, count, env.stack.bytes()


def test_auto_level_follows_size():
    assert auto_opt_level(AUTO_FULL_OPT_SLOTS) == 2
    assert auto_opt_level(AUTO_FULL_OPT_SLOTS + 1) == 1
    small = generate(5, length=30)
    assert JitProgram(small, Env()).opt_level == 2


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_large_program_tiers_up_with_the_same_results(seed):
    insns = generate(seed, length=AUTO_FULL_OPT_SLOTS + 100, max_jumps=60)
    assert len(insns) > AUTO_FULL_OPT_SLOTS
    env = Env()
    want = _interp(insns, env)
    want_stack = env.stack.bytes()
    _CACHE.clear()
    jp = JitProgram(insns, env)
    assert jp.compiled.opt_level == 1
    first = _jit(jp, env)
    assert first == (*want, want_stack)
    assert jp.wait_tier_up(timeout=60)
    second = _jit(jp, env)
    assert jp.compiled.opt_level == 2  # the run switched to the background compile
    assert second == first


def test_tier_up_can_be_turned_off_and_explicit_levels_stay():
    insns = generate(21, length=AUTO_FULL_OPT_SLOTS + 50, max_jumps=40)
    env = Env()
    _CACHE.clear()
    jp = JitProgram(insns, env, tier_up=False)
    assert jp._upgrade_thread is None
    jp.run()
    assert jp.compiled.opt_level == 1
    jp2 = JitProgram(insns, env, opt_level=2)
    assert jp2._upgrade_thread is None and jp2.compiled.opt_level == 2
    assert jp.run() == jp2.run()
    # a later compile of the same program finds the level-2 code in the cache: no thread
    jp3 = JitProgram(insns, env)
    assert jp3._upgrade is not None and jp3._upgrade_thread is None
    jp3.run()
    assert jp3.compiled.opt_level == 2


def _charges_reference(lay, fn, heads):
    """cfg.charges as first written: walk the dominator chain, test post-dominance by
    walking the post-dominator chain (quadratic, obviously right)."""
    from bpfkit.jit import cfg

    succ = cfg.block_successors(lay, fn)
    src, sink = -1, -2
    dag = {src: sorted(heads & fn.blocks.keys())}
    for b, ss in succ.items():
        nxt = [s for s in ss if s not in heads]
        dag[b] = nxt if len(nxt) == len(ss) and ss else [*nxt, sink]
    dag[sink] = []
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
    preds = {b: [] for b in dag}
    for b, ss in dag.items():
        for s in ss:
            preds[s].append(b)
    idom = cfg._idoms(order, preds, src)
    ipdom = cfg._idoms(order[::-1], dag, sink)
    out = {b: len(slots) for b, slots in fn.blocks.items()}
    for b in fn.blocks:
        if b in heads or b not in idom or b not in ipdom:
            continue
        top, r = None, idom[b]
        while r != src:
            x = r
            while x != b and x != sink:
                x = ipdom.get(x, sink)
            if x != b:
                break
            top, r = r, idom[r]
        if top is not None:
            out[top] += len(fn.blocks[b])
            out[b] -= len(fn.blocks[b])
    return out


@pytest.mark.parametrize("length, jumps", [(40, 8), (200, 60), (900, 200), (950, 16)])
def test_block_charges_match_the_reference(length, jumps):
    """The count each block charges (control-equivalent blocks merged) is what the
    straightforward algorithm computes; the interpreter agreement tests rely on it."""
    from bpfkit.jit import cfg

    merged = 0
    for seed in range(40 if length < 500 else 8):
        lay = cfg.layout(generate(seed, length=length, max_jumps=jumps))
        for fn in cfg.functions(lay).values():
            heads = cfg.loop_heads(lay, fn)
            got = cfg.charges(lay, fn, heads)
            assert got == _charges_reference(lay, fn, heads)
            merged += sum(1 for b, n in got.items() if n != len(fn.blocks[b]))
    assert merged  # the programs do have control-equivalent blocks
