"""Adversarial programs, verifier off: the process never crashes and never changes (or
leaks) memory outside the program's regions, on either engine.

Hypothesis draws hostile instruction streams — every instruction form, biased towards
pointers (r1 = the input or context, r10 = the stack, addresses of canary objects and
map values and handles loaded into registers), small offsets around region edges,
helper calls with such arguments, local calls, ``callx``, loops — and mutations of
valid random programs. Each runs on the interpreter and on the JIT in a child process
(``safety_child.ChildServer``; a segfault fails the example) next to canaries: an
immutable ``bytes`` object, a ctypes buffer, guard bytes right below and above the
stack and the input. After every run: no canary changed, no canary's bytes reached r0
or the output memory, the run ended normally or with a ``BpfError`` (never another
Python exception), and the two engines agree (same outcome; same r0, count and memory
when both finish).

Examples per run: ``BPFKIT_SAFETY_EXAMPLES`` (default 150 per test, four tests).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safety_child import PLACE, ChildServer

from bpfkit.isa import opcodes as op
from bpfkit.isa.instruction import Instruction, encode

EXAMPLES = int(os.environ.get("BPFKIT_SAFETY_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("BPFKIT_SAFETY_RANDOM") != "1",
)

# (no clocks: ktime_get_*_ns and jiffies differ between two runs)
KPROBE_HELPERS = [1, 2, 3, 4, 6, 7, 8, 12, 14, 16, 25, 35, 45, 87, 88, 89, 93, 94]
KPROBE_HELPERS += [105, 106, 112, 113, 114, 115, 130, 131, 132, 133, 134, 164, 165]
KPROBE_HELPERS += [177, 181, 182, 195]
BASE_HELPERS = [0, 1, 2, 3, 4, 6, 7, 12, 14, 16, 35, 130, 131, 181]

# registers: r1-r5 arguments, r6-r9 callee-saved scratch (pointers land there), r0
DST = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 8, 7, 6])
SRC = st.sampled_from(list(range(11)) + [10, 10, 1, 1, 6, 7])
BASE = st.sampled_from([1, 10, 10, 6, 7, 8, 9, 2, 3, 0])
OFF = st.one_of(
    st.integers(-520, 72),
    st.sampled_from([-512, -8, -4, -1, 0, 1, 7, 8, 56, 60, 63, 64, 0x7FFF, -0x8000]),
)
IMM = st.one_of(
    st.integers(-1024, 1024),
    st.integers(-(1 << 31), (1 << 31) - 1),
    st.sampled_from([-1, 0x7FFFFFFF, -(1 << 31), 4096, 8, 16, 64, 512]),
)
SIZE = st.sampled_from([op.B, op.H, op.W, op.DW])
ALU_OPS = [op.ADD, op.SUB, op.MUL, op.DIV, op.OR, op.AND, op.LSH, op.RSH, op.NEG, op.MOD]
ALU_OPS += [op.XOR, op.MOV, op.ARSH]


@st.composite
def _alu(draw) -> Instruction:
    cls = draw(st.sampled_from([op.ALU64, op.ALU64, op.ALU]))
    aop = draw(st.sampled_from(ALU_OPS))
    dst = draw(DST)
    if aop == op.NEG:
        return Instruction(cls | op.NEG, dst)
    signed = aop in (op.DIV, op.MOD) and draw(st.booleans())
    if draw(st.booleans()):
        return Instruction(cls | aop | op.X, dst, draw(SRC), int(signed))
    return Instruction(cls | aop | op.K, dst, 0, int(signed), draw(IMM))


@st.composite
def _mem(draw) -> Instruction:
    kind = draw(st.sampled_from(["ldx", "ldx", "st", "stx", "stx", "atomic", "abs", "ind"]))
    size = draw(SIZE)
    base, off = draw(BASE), draw(OFF)
    if kind == "ldx":
        return Instruction(op.LDX | op.MEM | size, draw(DST), base, off)
    if kind == "st":
        return Instruction(op.ST | op.MEM | size, base, 0, off, draw(IMM))
    if kind == "stx":
        return Instruction(op.STX | op.MEM | size, base, draw(SRC), off)
    if kind == "atomic":
        aop = draw(st.sampled_from(op.ATOMIC_OPS))
        size = draw(st.sampled_from([op.W, op.DW]))
        return Instruction(op.STX | op.ATOMIC | size, base, draw(SRC), off, aop)
    size = draw(st.sampled_from([op.B, op.H, op.W]))
    if kind == "abs":
        return Instruction(op.LD | op.ABS | size, 0, 0, 0, draw(IMM))
    return Instruction(op.LD | op.IND | size, 0, draw(SRC), 0, draw(IMM))


@st.composite
def _pointer(draw) -> Instruction:
    """A register gets an interesting address: a canary, a map value or handle, the
    stack or input (in the child), a map (pseudo map fd), or r10/r1 plus a bit."""
    dst = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    kind = draw(st.sampled_from(["place", "map", "map", "mapvalue", "copy"]))
    if kind == "place":
        return Instruction(op.LDDW, dst, 0, 0, PLACE | draw(st.integers(0, 3)))
    if kind == "map":
        return Instruction(op.LDDW, dst, op.PSEUDO_MAP_FD, 0, draw(st.integers(0, 7)))
    if kind == "mapvalue":
        off = draw(st.sampled_from([0, 8, 15]))
        return Instruction(op.LDDW, dst, op.PSEUDO_MAP_VALUE, 0, off << 32 | 1)
    return Instruction(op.ALU64 | op.MOV | op.X, dst, draw(st.sampled_from([1, 10])))


@st.composite
def _branch(draw) -> Instruction:
    kind = draw(st.sampled_from(["cond", "cond", "ja", "local", "callx", "func", "exit"]))
    if kind == "cond":
        jop = draw(st.sampled_from(op.COND_JUMPS))
        cls = draw(st.sampled_from([op.JMP, op.JMP32]))
        if draw(st.booleans()):
            return Instruction(cls | jop | op.X, draw(SRC), draw(SRC), 0)
        return Instruction(cls | jop | op.K, draw(SRC), 0, 0, draw(IMM))
    if kind == "ja":
        return Instruction(op.JMP | op.JA)
    if kind == "local":
        return Instruction(op.CALL_OP, src=op.PSEUDO_CALL)
    if kind == "func":
        return Instruction(op.LDDW, draw(DST), op.PSEUDO_FUNC, 0, 0)
    if kind == "callx":
        return Instruction(op.CALLX_OP, dst=draw(DST))
    return Instruction(op.EXIT_OP)


def _call(helpers: list[int]):
    return st.sampled_from(helpers).map(lambda h: Instruction(op.CALL_OP, imm=h))


def _any_r10_write():
    """Rarely: a write to r10 (must be refused at load on both engines)."""
    return st.sampled_from(
        [
            Instruction(op.ALU64 | op.ADD | op.K, 10, 0, 0, -8),
            Instruction(op.STX | op.ATOMIC | op.DW, 1, 10, 0, op.XCHG),
            Instruction(op.LDX | op.MEM | op.DW, 10, 1, 0),
        ]
    )


@st.composite
def hostile_program(draw, helpers: list[int], max_len: int = 40) -> list[Instruction]:
    """Instructions with branch targets inside the program, ending in ``exit``."""
    parts = st.one_of(_alu(), _mem(), _mem(), _pointer(), _branch(), _call(helpers), _call(helpers))
    body = draw(st.lists(parts, min_size=1, max_size=max_len))
    if draw(st.integers(0, 30)) == 0:
        body.insert(draw(st.integers(0, len(body))), draw(_any_r10_write()))
    body.append(Instruction(op.EXIT_OP))
    return _targets(draw, body)


def _targets(draw, body: list[Instruction]) -> list[Instruction]:
    starts, pos = [], 0
    for insn in body:
        starts.append(pos)
        pos += insn.slots
    out = []
    for insn, pc in zip(body, starts, strict=True):
        if insn.is_jump or insn.is_local_call or (insn.is_lddw and insn.src == op.PSEUDO_FUNC):
            # mostly forward (programs that end), sometimes anywhere (loops, budget)
            fwd = [s for s in starts if s > pc]
            pool = fwd if fwd and draw(st.integers(0, 4)) else starts
            rel = draw(st.sampled_from(pool)) - (pc + 1)
            if draw(st.integers(0, 40)) == 0:
                rel += draw(st.sampled_from([-1000, 1, 1000]))  # a bad target
            if insn.is_local_call:
                insn = insn.with_(imm=rel)
            elif insn.is_lddw:
                insn = insn.with_(imm=rel & 0xFFFFFFFF)
            elif insn.is_jump:
                insn = insn.with_(off=max(-0x8000, min(0x7FFF, rel)))
        out.append(insn)
    return out


@st.composite
def mutated_program(draw, helpers: list[int]) -> list[Instruction]:
    """A valid random program (``progen``: loops, memory, calls) with a few fields of a
    few instructions changed."""
    from progen import generate

    insns = list(generate(draw(st.integers(0, 2**32 - 1))))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(insns) - 1))
        insn = insns[i]
        field = draw(st.sampled_from(["dst", "src", "off", "imm", "swap"]))
        if field == "dst" and not insn.is_lddw:
            insn = insn.with_(dst=draw(st.integers(0, 9)))
        elif field == "src" and not insn.is_lddw and not insn.is_call:
            insn = insn.with_(src=draw(st.integers(0, 10)))
        elif field == "off":
            insn = insn.with_(off=draw(OFF))
        elif field == "imm" and not insn.is_lddw:
            insn = insn.with_(imm=draw(IMM))
        elif field == "swap":
            insn = draw(st.one_of(_mem(), _pointer(), _call(helpers)))
        insns[i] = insn
    return insns


def _valid_hex(insns: list[Instruction]) -> str | None:
    try:
        return encode(insns).hex()
    except Exception:  # noqa: BLE001 - an unencodable mutation is just skipped
        return None


@pytest.fixture(scope="module")
def child():
    server = ChildServer()
    yield server
    server.close()


def _agree(a: dict, b: dict, case: dict, values: bool = True) -> None:
    event(f"{a['status']} {a.get('error', '')} / {b['status']} {b.get('error', '')}")
    assert a["status"] == b["status"], (a, b, case)
    if a["status"] == "ok":
        if values:
            assert (a["r0"], a["mem"], a["insns"]) == (b["r0"], b["mem"], b["insns"]), (a, b, case)
    else:
        assert a["error"] == b["error"], (a, b, case)


def _check_raw(child: ChildServer, case: dict) -> None:
    """Both engines in one environment (same stack and input addresses): same outcome,
    and the same r0, count and memory when both finish."""
    r = child.run({**case, "kind": "both"})
    assert r["status"] != "escaped", r
    assert not r["canaries"] and not r["leak"], r
    _agree(r["engines"]["interp"], r["engines"]["jit"], case)


def _check_vm(child: ChildServer, case: dict) -> None:
    """Each engine in a runtime of its own: never an escape, a canary touched or a leak, and
    the same outcome. Addresses differ from run to run, and a program may compute on them
    (``r6 = r1; r6 |= 0x1000; *(u8 *)(r6 + 0) = 0`` is in bounds or not by where the
    context lies), so the outcomes must agree in one of a few runs: an engine that
    disagrees on the program itself disagrees in all of them."""
    for attempt in range(4):
        res = {}
        for engine in ("interp", "jit"):
            r = child.run({**case, "engine": engine})
            assert r["status"] != "escaped", (engine, r)
            assert not r["canaries"] and not r["leak"], (engine, r)
            res[engine] = r
        try:
            _agree(res["interp"], res["jit"], case, values=False)
            return
        except AssertionError:
            if attempt == 3:
                raise


@SETTINGS
@given(prog=hostile_program(BASE_HELPERS))
def test_hostile_programs_on_a_plain_env(child, prog):
    """Conformance-style runs: r1 = a 64-byte input between guards, r10 on a guarded
    stack; pointers to every canary are one ``lddw`` away."""
    hexcode = _valid_hex(prog)
    if hexcode is not None:
        _check_raw(child, {"hex": hexcode, "mem": ["CANARY", "BUF+8"]})


@SETTINGS
@given(prog=hostile_program(KPROBE_HELPERS))
def test_hostile_programs_with_maps_and_helpers(child, prog):
    """Kprobe programs in a VM runtime with hash, array, LRU, per-CPU, queue, ring
    buffer, prog array and perf maps: helpers get hostile pointers and sizes."""
    hexcode = _valid_hex(prog)
    if hexcode is not None:
        _check_vm(child, {"kind": "vm", "hex": hexcode, "type": "KPROBE"})


@SETTINGS
@given(prog=hostile_program(KPROBE_HELPERS + [23, 28, 44, 54, 65, 189, 190]))
def test_hostile_xdp_programs(child, prog):
    """XDP test runs: the packet region, its adjust helpers, redirects."""
    hexcode = _valid_hex(prog)
    if hexcode is not None:
        _check_vm(child, {"kind": "vm", "hex": hexcode, "type": "XDP"})


@SETTINGS
@given(prog=mutated_program(BASE_HELPERS))
def test_mutated_valid_programs(child, prog):
    """Valid random programs (loops, stack, input, calls) with a few fields changed."""
    hexcode = _valid_hex(prog)
    if hexcode is not None:
        _check_raw(child, {"hex": hexcode, "mem": ["CANARY", "BUF+8"]})
