"""The JIT against the reference interpreter: same r0, count, memory and faults."""

from __future__ import annotations

import ctypes
import re
import struct

import pytest

from bpfkit.errors import DecodeError, NotSupported, RuntimeFault, VerifierError
from bpfkit.isa import opcodes as op
from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    Label,
    add64,
    and64,
    arsh32,
    arsh64,
    assemble,
    atomic,
    be,
    bswap,
    call,
    call_local,
    callx,
    div32,
    div64,
    exit_,
    gotol,
    ja,
    jeq,
    jgt,
    jne,
    jslt,
    ld_abs,
    ld_func,
    ld_ind,
    lddw,
    ldx,
    ldxs,
    le,
    lsh32,
    lsh64,
    mod32,
    mod64,
    mov32,
    mov64,
    movsx32,
    movsx64,
    mul64,
    neg32,
    neg64,
    rsh32,
    rsh64,
    sdiv32,
    sdiv64,
    smod32,
    smod64,
    st,
    stx,
    sub64,
)
from bpfkit.isa.instruction import Instruction
from bpfkit.jit import JitProgram, NativeHelper, cache_info, register_native
from bpfkit.jit import run_program as jit_run
from bpfkit.jit.native import compile_native, unregister_native
from bpfkit.vm.env import Env
from bpfkit.vm.interp import CompiledProgram
from bpfkit.vm.interp import run_program as interp_run
from bpfkit.vm.memory import READ, Region

M = (1 << 64) - 1


def agree(insns, mem: bytes = b"", **kw):
    """Run under both engines; assert r0, count and memory are equal; return the JIT's."""
    a = interp_run(insns, mem, **kw)
    b = jit_run(insns, mem, **kw)
    assert (b.r0, b.insns, b.mem) == (a.r0, a.insns, a.mem)
    return b


def fault_both(insns, mem: bytes = b"", **kw) -> tuple[RuntimeFault, RuntimeFault]:
    """Both engines fault; same pc and address; return both faults."""
    with pytest.raises(RuntimeFault) as ei:
        interp_run(insns, mem, **kw)
    with pytest.raises(RuntimeFault) as ej:
        jit_run(insns, mem, **kw)
    e, f = ei.value, ej.value
    if "budget" in e.reason:  # detected at different points; both past the budget
        assert "budget" in f.reason and f.insns > kw["budget"] and e.insns > kw["budget"]
        return e, f
    assert f.pc == e.pc
    assert (f.address is None) == (e.address is None)
    assert _unaddr(f.reason) == _unaddr(e.reason)
    return e, f


def _unaddr(msg: str) -> str:
    """A fault message without addresses (runs allocate their memory afresh)."""
    return re.sub(r"0x[0-9a-f]{6,}", "ADDR", msg)


EDGE = [
    0,
    1,
    2,
    7,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    M,
    M - 1,
    0x123456789ABCDEF0,
    0xFFFFFFFF80000000,
]


def _binop_prog(build, a: int, b: int, imm: int | None = None):
    body = [lddw(R0, a), lddw(R1, b)]
    body.append(build(R0, R1 if imm is None else imm))
    body.append(exit_())
    return assemble(body)


def batch(cases) -> tuple[list, bytes]:
    """One program computing many cases, each storing r0 into its own 8-byte slot."""
    prog = [mov64(R9, R1)]
    cases = list(cases)
    for i, body in enumerate(cases):
        prog += [*body, stx(8, R9, 8 * i, R0)]
    prog += [mov64(R0, 0), exit_()]
    return assemble(prog), bytes(8 * len(cases))


ALU_BUILDERS = [
    div64,
    mod64,
    div32,
    mod32,
    sdiv64,
    smod64,
    sdiv32,
    smod32,
    lsh64,
    rsh64,
    arsh64,
    lsh32,
    rsh32,
    arsh32,
    mul64,
    sub64,
    add64,
    and64,
]


@pytest.mark.parametrize("build", ALU_BUILDERS, ids=lambda f: f.__name__)
def test_alu_edges(build):
    cases = [[lddw(R0, a), lddw(R1, b), build(R0, R1)] for a in EDGE for b in EDGE]
    cases += [
        [lddw(R0, a), build(R0, imm)]
        for a in EDGE
        for imm in (0, 1, -1, 2, 31, 32, 63, 64, -0x80000000, 0x7FFFFFFF, -7)
    ]
    agree(*batch(cases))


def test_div_mod_by_zero_and_overflow_values():
    """The documented corner cases, spelled out."""
    assert agree(_binop_prog(div64, 5, 0)).r0 == 0
    assert agree(_binop_prog(mod64, 5, 0)).r0 == 5
    assert agree(_binop_prog(mod32, (7 << 32) | 5, 0)).r0 == 5
    assert agree(_binop_prog(sdiv64, 1 << 63, M)).r0 == 1 << 63
    assert agree(_binop_prog(smod64, 1 << 63, M)).r0 == 0
    assert agree(_binop_prog(sdiv32, 0x80000000, 0xFFFFFFFF)).r0 == 0x80000000
    assert agree(_binop_prog(smod32, 0x80000000, 0xFFFFFFFF)).r0 == 0
    assert agree(_binop_prog(sdiv64, 1 << 63, 0, -1)).r0 == 1 << 63


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_byte_swaps_and_sign_extension(bits):
    cases = [[lddw(R0, v), build(R0, bits)] for v in EDGE for build in (le, be, bswap)]
    agree(*batch(cases))


def test_moves_and_negation():
    cases = []
    for v in EDGE:
        cases += [[lddw(R1, v), movsx64(R0, R1, sx)] for sx in (8, 16, 32)]
        cases += [[lddw(R1, v), movsx32(R0, R1, sx)] for sx in (8, 16)]
        cases += [[lddw(R0, v), neg64(R0)], [lddw(R0, v), neg32(R0)], [lddw(R1, v), mov32(R0, R1)]]
    cases += [[mov32(R0, -1)], [mov64(R0, -1)], [mov32(R0, 0x7FFFFFFF)], [mov64(R0, -0x80000000)]]
    agree(*batch(cases))


@pytest.mark.parametrize("jop", op.COND_JUMPS, ids=lambda j: op.JMP_NAMES[j])
@pytest.mark.parametrize("cls", [op.JMP, op.JMP32], ids=["jmp", "jmp32"])
def test_conditional_jumps(cls, jop):
    vals = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 63, M, 0x100000001]
    cases = []
    if True:
        for a in vals:
            for b in vals:
                cases.append(
                    [
                        lddw(R1, a),
                        lddw(R2, b),
                        mov64(R0, 0),
                        Instruction(cls | jop | op.X, 1, 2, 1),
                        mov64(R0, 1),
                    ]
                )
            for imm in (0, 1, -1, 0x7FFFFFFF, -0x80000000):
                cases.append(
                    [
                        lddw(R1, a),
                        mov64(R0, 0),
                        Instruction(cls | jop | op.K, 1, 0, 1, imm),
                        mov64(R0, 1),
                    ]
                )
    agree(*batch(cases))


def test_loop_counts_match():
    p = assemble(
        [
            mov64(R0, 0),
            mov64(R1, 100),
            Label("l"),
            add64(R0, R1),
            sub64(R1, 1),
            jne(R1, 0, "l"),
            exit_(),
        ]
    )
    r = agree(p)
    assert r.r0 == 5050 and r.insns == 2 + 3 * 100 + 1


def test_gotol_and_ja():
    agree(
        assemble(
            [
                mov64(R0, 1),
                gotol("x"),
                mov64(R0, 2),
                Label("x"),
                ja("y"),
                mov64(R0, 3),
                Label("y"),
                exit_(),
            ]
        )
    )


def test_memory_loads_stores_all_sizes():
    mem = bytes(range(1, 65))
    prog = [mov64(R0, 0)]
    for size in (1, 2, 4, 8):
        prog += [
            ldx(size, R2, R1, 8),
            add64(R0, R2),
            ldxs(size, R3, R1, 40) if size < 8 else ldx(8, R3, R1, 40),
            add64(R0, R3),
            stx(size, R1, 16 + size, R0),
            st(size, R1, 32, -3),
        ]
    prog += [
        lddw(R4, 0x8081828384858687),
        stx(8, R1, 48, R4),
        ldxs(1, R5, R1, 48),
        add64(R0, R5),
        ldxs(2, R5, R1, 48),
        add64(R0, R5),
        ldxs(4, R5, R1, 48),
        add64(R0, R5),
        exit_(),
    ]
    agree(assemble(prog), mem)


def test_stack_fast_path_and_pointer_access():
    prog = assemble(
        [
            st(8, R10, -8, 5),
            st(4, R10, -512, 7),
            mov64(R2, R10),
            add64(R2, -8),
            ldx(8, R0, R2, 0),
            ldx(4, R3, R10, -512),
            add64(R0, R3),
            stx(8, R10, -16, R0),
            ldx(8, R0, R10, -16),
            exit_(),
        ]
    )
    assert agree(prog).r0 == 12


def test_stack_out_of_frame_goes_through_checks():
    # r10 + 8 is above the stack region: a checked access that faults in both engines.
    fault_both(assemble([ldx(8, R0, R10, 0), exit_()]))
    # r10 - 520 is in the next frame's part of the stack region: valid, checked.
    agree(assemble([st(8, R10, -520, 9), ldx(8, R0, R10, -520), exit_()]))


@pytest.mark.parametrize("size", [4, 8])
def test_atomics(size):
    ops = [op.ATOMIC_ADD, op.ATOMIC_OR, op.ATOMIC_AND, op.ATOMIC_XOR]
    for aop in ops + [a | op.FETCH for a in ops] + [op.XCHG, op.CMPXCHG]:
        for base in ("stack", "mem"):
            prog = [lddw(R2, 0xF0F0F0F0AAAAAAAA), lddw(R3, 0x0FF00FF0CCCCCCCC)]
            if base == "stack":
                prog += [stx(8, R10, -8, R2), mov64(R4, R10), add64(R4, -8)]
            else:
                prog += [mov64(R4, R1)]
                prog += [stx(8, R4, 0, R2)]
            prog += [
                lddw(R0, 0xF0F0F0F0AAAAAAAA),
                atomic(size, aop, R4, 0, R3),
                ldx(8, R5, R4, 0),
                xor_into(R0, R5),
                xor_into(R0, R3),
                exit_(),
            ]
            agree(assemble(prog), bytes(16))
    # cmpxchg that fails leaves memory alone and returns the old value
    agree(
        assemble(
            [
                st(8, R10, -8, 3),
                mov64(R0, 4),
                mov64(R3, 9),
                atomic(size, op.CMPXCHG, R10, -8, R3),
                ldx(8, R1, R10, -8),
                add64(R0, R1),
                exit_(),
            ]
        )
    )


def xor_into(d, s):
    return Instruction(op.ALU64 | op.XOR | op.X, int(d), int(s))


def test_misaligned_atomic_faults_with_pc():
    prog = assemble([mov64(R2, 1), atomic(8, op.ATOMIC_ADD, R1, 1, R2), exit_()])
    _, f = fault_both(prog, bytes(16))
    assert f.pc == 1 and "misaligned" in f.reason


def test_out_of_bounds_and_wild_pointers():
    fault_both(assemble([ldx(8, R0, R1, 60), exit_()]), bytes(64))  # straddles the end
    fault_both(assemble([ldx(1, R0, R1, -1), exit_()]), bytes(64))
    fault_both(assemble([lddw(R2, 0xDEAD0000), stx(4, R2, 0, R1), exit_()]))
    fault_both(assemble([mov64(R0, 0), ldx(8, R0, R0, 0), exit_()]))
    fault_both(assemble([lddw(R2, M), ldx(4, R0, R2, -2), exit_()]))  # wraps around
    fault_both(assemble([mov64(R0, 1), st(4, R1, 0, 1), exit_()]))  # empty input memory
    e, f = fault_both(
        assemble([mov64(R0, 0), mov64(R0, 0), ldx(8, R0, R1, 100), exit_()]), bytes(8)
    )
    assert f.pc == 2 and f.address is not None


def test_read_only_region_write_faults():
    env_i, env_j = Env(), Env()
    ro_i = env_i.space.add(Region.alloc("ro", 16, perms=READ, init=b"\x05" * 16))
    ro_j = env_j.space.add(Region.alloc("ro", 16, perms=READ, init=b"\x05" * 16))
    prog = assemble([ldx(1, R0, R1, 3), stx(1, R1, 3, R0), exit_()])
    with pytest.raises(RuntimeFault) as ei:
        CompiledProgram(prog, env_i).run(ro_i.base)
    with pytest.raises(RuntimeFault) as ej:
        JitProgram(prog, env_j).run(ro_j.base)
    assert ej.value.pc == ei.value.pc == 1
    assert _unaddr(ej.value.reason) == _unaddr(ei.value.reason)
    assert "read-only" in ej.value.reason


def test_budget_exhaustion_on_infinite_loop():
    prog = assemble([mov64(R0, 0), Label("l"), add64(R0, 1), mov64(R1, R0), ja("l")])
    for budget in (1, 2, 3, 100, 1001):
        e, f = fault_both(prog, budget=budget)
        assert f.pc in (1, 2, 3) and e.pc in (1, 2, 3)


def test_budget_exact_limit_is_allowed():
    prog = assemble([mov64(R0, 1), mov64(R0, 2), exit_()])
    assert agree(prog, budget=3).insns == 3
    fault_both(prog, budget=2)


def test_jump_out_of_range_and_fall_off_end():
    fault_both([mov64(R0, 0), Instruction(op.JMP | op.JA, off=5)])
    fault_both([mov64(R0, 0), Instruction(op.JMP | op.JA, off=-3)])
    fault_both([lddw(R0, 1), Instruction(op.JMP | op.JA, off=-2), exit_()])  # middle of lddw
    fault_both([mov64(R0, 0), mov64(R1, 1)])
    fault_both([mov64(R0, 0), jeq(R0, 0, 1)])  # fallthrough past the end is never taken...
    fault_both([mov64(R0, 1), jeq(R0, 0, 1)])  # ...and is here


def test_legacy_packet_loads():
    pkt = bytes(range(32))
    for size in (1, 2, 4):
        agree(assemble([ld_abs(size, 3), exit_()]), pkt)
        agree(assemble([ld_abs(size, 32 - size), exit_()]), pkt)
        agree(assemble([mov64(R0, 7), ld_abs(size, 31), exit_()]), pkt)  # out of bounds → 0
        agree(assemble([mov64(R0, 7), ld_abs(size, -1), exit_()]), pkt)
        agree(assemble([mov64(R6, 5), ld_ind(size, R6, 2), exit_()]), pkt)
        agree(assemble([lddw(R6, 0xFFFFFFFF), ld_ind(size, R6, 2), exit_()]), pkt)
        agree(assemble([lddw(R6, 0x100000003), ld_ind(size, R6, 0), exit_()]), pkt)
    agree(assemble([ld_abs(4, 0), exit_()]), pkt, packet=False)
    # an out-of-bounds packet load in a subprogram returns 0 from that subprogram
    agree(
        assemble(
            [
                mov64(R6, 9),
                call_local("f"),
                add64(R0, R6),
                exit_(),
                Label("f"),
                mov64(R0, 3),
                ld_abs(4, 100),
                mov64(R0, 4),
                exit_(),
            ]
        ),
        pkt,
    )


def test_local_calls_preserve_registers_and_frames():
    prog = assemble(
        [
            mov64(R6, 6),
            mov64(R7, 7),
            mov64(R1, 10),
            mov64(R2, 20),
            st(8, R10, -8, 99),
            call_local("f"),
            add64(R0, R6),
            add64(R0, R7),
            add64(R0, R1),
            add64(R0, R2),
            ldx(8, R3, R10, -8),
            add64(R0, R3),
            exit_(),
            Label("f"),
            mov64(R6, 1000),
            st(8, R10, -8, 5),
            mov64(R0, R1),
            mul64(R0, R2),
            ldx(8, R3, R10, -8),
            add64(R0, R3),
            mov64(R1, 0),
            exit_(),
        ]
    )
    assert agree(prog).r0 == 200 + 5 + 6 + 7 + 10 + 20 + 99


def test_recursion_and_depth_limit():
    def fact(n):
        return assemble(
            [
                mov64(R1, n),
                call_local("fact"),
                exit_(),
                Label("fact"),
                mov64(R0, 1),
                jeq(R1, 0, "done"),
                mov64(R6, R1),
                sub64(R1, 1),
                call_local("fact"),
                mul64(R0, R6),
                Label("done"),
                exit_(),
            ]
        )

    assert agree(fact(6)).r0 == 720  # 8 frames: the entry + 7 calls
    _, f = fault_both(fact(7))
    assert "depth" in f.reason


def test_callx_function_pointer_and_helper():
    env = Env()
    env.helpers = env.helpers.copy()
    env.helpers.register(7, lambda env, *a: 77)
    prog = assemble(
        [
            ld_func(R6, "g"),
            mov64(R1, 5),
            callx(R6),
            mov64(R7, R0),
            mov64(R8, 7),
            callx(R8),
            add64(R0, R7),
            exit_(),
            Label("g"),
            mov64(R0, R1),
            add64(R0, 1),
            exit_(),
        ]
    )
    a = interp_run(prog, env=env)
    env2 = Env(helpers=env.helpers)
    b = jit_run(prog, env=env2)
    assert (a.r0, a.insns) == (b.r0, b.insns) == (83, a.insns)
    fault_both(assemble([lddw(R6, 1 << 40), callx(R6), exit_()]))
    fault_both(assemble([mov64(R6, 123456), callx(R6), exit_()]))


def test_callx_into_middle_of_lddw():
    prog = assemble(
        [ld_func(R6, "g"), add64(R6, 8), callx(R6), exit_(), Label("g"), lddw(R0, 1), exit_()]
    )
    _, f = fault_both(prog)
    assert "middle of lddw" in f.reason


def test_helpers_through_python_and_errors():
    seen = []

    def h(env, r1, r2, r3, r4, r5):
        seen.append((r1, r2, r3, r4, r5))
        return r1 + r2 - 1

    env = Env()
    env.helpers = env.helpers.copy()
    env.helpers.register(100, h)
    prog = assemble(
        [
            mov64(R1, 3),
            mov64(R2, 4),
            mov64(R3, 5),
            mov64(R4, 6),
            lddw(R5, M),
            call(100),
            add64(R0, R1),
            exit_(),
        ]
    )
    assert JitProgram(prog, env).run() == (3 + 4 - 1 + 3, 8)
    assert seen == [(3, 4, 5, 6, M)]

    def bad(env, *a):
        raise KeyError("boom")

    env.helpers.register(101, bad)
    with pytest.raises(KeyError):
        JitProgram(assemble([call(101), exit_()]), env).run()
    _, f = fault_both(assemble([mov64(R0, 0), call(9999), exit_()]))
    assert "unknown helper" in f.reason


def test_helper_adds_region_during_run():
    env = Env()
    env.helpers = env.helpers.copy()
    made: list[Region] = []

    def alloc(env, r1, *a):
        r = env.space.add(Region.alloc("value", 16, init=b"\x2a" * 16))
        made.append(r)
        return r.base

    def free(env, r1, *a):
        env.space.remove(made.pop())
        return 0

    env.helpers.register(200, alloc)
    env.helpers.register(201, free)
    prog = assemble(
        [
            call(200),
            mov64(R6, R0),
            ldx(1, R7, R6, 3),
            st(1, R6, 4, 1),
            mov64(R1, R6),
            call(201),
            mov64(R0, R7),
            ldx(1, R0, R6, 4),
            exit_(),
        ]
    )
    with pytest.raises(RuntimeFault) as ej:
        JitProgram(prog, env).run()
    assert ej.value.pc == 7  # the region was freed by the helper before this load
    ok = assemble([call(200), mov64(R6, R0), ldx(1, R0, R6, 3), exit_()])
    assert JitProgram(ok, env).run()[0] == 0x2A


def test_native_helper_is_called_directly():
    calls = []

    def py_impl(env, r1, r2, *a):
        calls.append(1)
        return r1 * r2

    nat = compile_native(
        "define i64 @mulh(i64 %a, i64 %b, i64 %c, i64 %d, i64 %e) {\n"
        "  %r = mul i64 %a, %b\n  ret i64 %r\n}\n",
        "mulh",
    )
    register_native(py_impl, nat)
    try:
        env = Env()
        env.helpers = env.helpers.copy()
        env.helpers.register(150, py_impl)
        prog = assemble([mov64(R1, 6), mov64(R2, 7), call(150), exit_()])
        assert JitProgram(prog, env).run()[0] == 42
        assert calls == []
        assert CompiledProgram(prog, env).run()[0] == 42 and calls == [1]
    finally:
        unregister_native(py_impl)


def test_native_helper_with_data_argument():
    nat_code = compile_native(
        "define i64 @adddata(i64 %d, i64 %a) {\n  %r = add i64 %d, %a\n  ret i64 %r\n}\n", "adddata"
    )
    nat = NativeHelper(nat_code.address, nargs=1, data=1000, keepalive=nat_code)

    def py_impl(env, r1, *a):
        return r1 + 1000

    register_native(py_impl, nat)
    try:
        env = Env()
        env.helpers = env.helpers.copy()
        env.helpers.register(151, py_impl)
        assert JitProgram(assemble([mov64(R1, 5), call(151), exit_()]), env).run()[0] == 1005
    finally:
        unregister_native(py_impl)


def test_clock_helper_is_native_and_monotonic():
    prog = assemble([call(5), mov64(R6, R0), call(5), sub64(R0, R6), exit_()])
    jp = JitProgram(prog, Env())
    assert "inttoptr" in jp.ir and jp.run()[0] < 10**9


def test_repeat_does_not_reset_memory():
    prog = assemble([ldx(8, R0, R1, 0), add64(R0, 1), stx(8, R1, 0, R0), exit_()])
    r = jit_run(prog, bytes(8), repeat=1000)
    assert r.r0 == 1000 and struct.unpack("<Q", r.mem)[0] == 1000 and r.insns == 4


def test_cache_hits_across_environments():
    prog = assemble([mov64(R0, 0x5EED), exit_()])
    JitProgram(prog, Env())
    before = cache_info()["hits"]
    jp = JitProgram(prog, Env())
    assert cache_info()["hits"] == before + 1 and jp.run() == (0x5EED, 2)


def test_safe_instructions_skip_checks():
    prog = assemble([ldx(8, R0, R1, 0), ldx(8, R2, R1, 8), add64(R0, R2), exit_()])
    env = Env()
    checked = JitProgram(prog, env)
    unchecked = JitProgram(prog, env, safe={0, 1})
    assert checked.ir.count("@mem_slow") > unchecked.ir.count("@mem_slow")
    buf = env.space.add(Region.alloc("in", 16, init=struct.pack("<QQ", 40, 2)))
    assert unchecked.run(buf.base) == checked.run(buf.base) == (42, 4)


def test_regions_can_change_between_runs():
    env = Env()
    prog = assemble([ldx(4, R0, R1, 0), exit_()])
    jp = JitProgram(prog, env)
    r = env.space.add(Region.alloc("a", 4, init=b"\x01\x00\x00\x00"))
    assert jp.run(r.base)[0] == 1
    env.space.remove(r)
    with pytest.raises(RuntimeFault):
        jp.run(r.base)


def test_invalid_programs_are_rejected():
    with pytest.raises(DecodeError):
        JitProgram([], Env())
    with pytest.raises(DecodeError):
        JitProgram([Instruction(0xFF)], Env())
    with pytest.raises(NotSupported):
        JitProgram([lddw(R1, 3, op.PSEUDO_MAP_FD), exit_()], Env())


def test_pseudo_lddw_resolution_is_a_constant():
    env = Env()
    env.resolve_lddw = lambda insn, slot: 0x1234 + slot
    prog = [mov64(R0, 0), lddw(R0, 3, op.PSEUDO_MAP_FD), exit_()]
    assert JitProgram(prog, env).run()[0] == CompiledProgram(prog, env).run()[0] == 0x1235


def test_kfunc_call_faults():
    fault_both([Instruction(op.CALL_OP, src=op.PSEUDO_KFUNC_CALL, imm=5), exit_()])


def test_tail_call_hook():
    env = Env()
    target = JitProgram(assemble([mov64(R0, R1), add64(R0, 1000), exit_()]), env)
    caller = JitProgram(
        assemble([mov64(R6, 5), mov64(R2, 0), mov64(R3, 0), call(12), mov64(R0, 7), exit_()]), env
    )
    asked = []

    def resolve(env, map_ptr, index):
        asked.append(index)
        return target if index == 0 else None

    caller.tail_call_resolver = resolve
    r0, n = caller.run(r1=1)
    # the count is exact at the tail call: 4 of the caller's 6, then the target's 3
    assert r0 == 1001 and n == 4 + 3 and asked == [0]
    failing = JitProgram(assemble([mov64(R3, 1), call(12), mov64(R0, 7), exit_()]), env)
    failing.tail_call_resolver = resolve
    assert failing.run() == (7, 4)
    # a program that tail-calls itself stops after 33 tail calls
    looping = JitProgram(
        assemble(
            [
                ldx(8, R0, R1, 0),
                add64(R0, 1),
                stx(8, R1, 0, R0),
                mov64(R3, 0),
                call(12),
                ldx(8, R0, R1, 0),
                exit_(),
            ]
        ),
        env,
    )
    looping.tail_call_resolver = lambda env, m, i: looping
    buf = env.space.add(Region.alloc("count", 8))
    assert looping.run(buf.base)[0] == 34


def test_counter_in_shared_memory_is_visible_to_python():
    buf = (ctypes.c_uint64 * 1)()
    env = Env()
    env.space.add(Region("shared", buf))
    prog = assemble([mov64(R2, 5), atomic(8, op.ATOMIC_ADD, R1, 0, R2), exit_()])
    jp = JitProgram(prog, env)
    for _ in range(3):
        jp.run(ctypes.addressof(buf))
    assert buf[0] == 15


def test_r9_r8_r7_init_to_zero():
    agree(assemble([mov64(R0, R6), add64(R0, R7), add64(R0, R8), add64(R0, R9), exit_()]))


def test_many_registers_and_lsh_shift_chain():
    prog = [lddw(R0, 0x0123456789ABCDEF)]
    for r in (R1, R2, R3, R4, R5, R6, R7, R8, R9):
        prog += [mov64(r, R0), lsh64(r, int(r)), rsh32(r, int(r)), arsh64(r, 3)]
    for r in (R1, R2, R3, R4, R5, R6, R7, R8, R9):
        prog += [xor_into(R0, r)]
    prog += [jslt(R0, 0, "neg"), exit_(), Label("neg"), neg64(R0), exit_()]
    agree(assemble(prog))


def test_jgt_signed_loop_with_memory():
    mem = struct.pack("<16I", *range(100, 116))
    prog = assemble(
        [
            mov64(R0, 0),
            mov64(R2, 0),
            Label("l"),
            mov64(R3, R2),
            lsh64(R3, 2),
            add64(R3, R1),
            ldx(4, R4, R3, 0),
            add64(R0, R4),
            add64(R2, 1),
            jgt(R2, 15, "out"),
            ja("l"),
            Label("out"),
            exit_(),
        ]
    )
    assert agree(prog, mem).r0 == sum(range(100, 116))


def test_frame_pointer_write_is_refused_by_both_engines():
    """r10 is read-only on every engine (the stack fast paths rest on it)."""
    prog = assemble(
        [mov64(R6, R10), add64(R10, -16), st(8, R10, -8, 4), ldx(8, R0, R10, -8), exit_()]
    )
    for run in (interp_run, jit_run):
        with pytest.raises(VerifierError, match=r"insn 1: frame pointer is read only"):
            run(prog)


def test_helper_freeing_a_region_invalidates_caches_filled_later_in_a_loop():
    """A call before (in program order) an access in a loop still resets its region cache."""
    env = Env()
    env.helpers = env.helpers.copy()
    made: list[Region] = []
    calls = []

    def alloc(env, *a):
        made.append(env.space.add(Region.alloc("value", 16)))
        return made[-1].base

    def maybe_free(env, *a):
        calls.append(1)
        if len(calls) == 2:
            env.space.remove(made[-1])
        return 0

    env.helpers.register(210, alloc)
    env.helpers.register(211, maybe_free)
    prog = assemble(
        [
            call(210),
            mov64(R7, R0),
            mov64(R6, 0),
            Label("loop"),
            call(211),
            ldx(8, R8, R7, 0),
            add64(R6, 1),
            jslt(R6, 3, "loop"),
            mov64(R0, R6),
            exit_(),
        ]
    )
    with pytest.raises(RuntimeFault) as ej:
        JitProgram(prog, env).run()
    assert ej.value.pc == 4 and len(calls) == 2


def test_proven_safe_from_the_verifier():
    from bpfkit.errors import VerifierError
    from bpfkit.jit import proven_safe

    prog = assemble(
        [
            mov64(R2, R10),
            add64(R2, -16),
            st(8, R2, 0, 5),
            st(8, R2, 8, 6),
            ldx(8, R0, R2, 0),
            ldx(8, R3, R2, 8),
            add64(R0, R3),
            exit_(),
        ]
    )
    safe = proven_safe(prog, "socket_filter")
    assert safe == {2, 3, 4, 5}
    env = Env()
    checked, unchecked = JitProgram(prog, env), JitProgram(prog, env, safe=safe)
    assert "@mem_slow" in checked.ir and unchecked.ir.count("@mem_slow") == 1  # the global only
    assert unchecked.run() == checked.run() == CompiledProgram(prog, env).run()
    with pytest.raises(VerifierError):
        proven_safe(assemble([ldx(8, R0, R1, 100000), exit_()]), "socket_filter")


def test_generated_programs_with_verifier_proven_accesses():
    from progen import generate

    from bpfkit.jit import compile_many, proven_safe

    progs = [generate(seed, length=30) for seed in range(7000, 7010)]
    env = Env()
    for prog in progs:
        jp = JitProgram(prog, env, safe=proven_safe(prog, "socket_filter"))
        env.reset_stack()
        want = CompiledProgram(prog, env).run()
        env.reset_stack()
        assert jp.run() == want
    assert len(compile_many(progs, env)) == len(progs)


def test_cli_run_with_the_jit(tmp_path):
    import json

    from click.testing import CliRunner

    from bpfkit.cli.main import cli
    from bpfkit.isa.instruction import encode

    path = tmp_path / "prog.bin"
    path.write_bytes(encode(assemble([ldx(1, R0, R1, 1), add64(R0, R2), exit_()])))
    for repeat in ("1", "100"):
        res = CliRunner().invoke(
            cli,
            [
                "run",
                str(path),
                "--format",
                "raw",
                "--engine",
                "jit",
                "--mem-hex",
                "0a0b0c",
                "--repeat",
                repeat,
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["r0"] == 0x0B + 3 and out["insns"] == 3 and out["engine"] == "jit"


def test_native_helper_can_report_a_fault():
    from bpfkit.jit import abi

    nat_code = compile_native(
        "define i64 @nfault(ptr %ctx, i64 %a) {\n"
        f"  %p = getelementptr i8, ptr %ctx, i64 {8 * abi.FAULT_KIND}\n"
        f"  store i64 {abi.F_PYTHON}, ptr %p\n  ret i64 0\n}}\n",
        "nfault",
    )
    nat = NativeHelper(nat_code.address, nargs=1, takes_ctx=True, keepalive=nat_code)

    def py_impl(env, *a):
        raise RuntimeFault("python twin")

    register_native(py_impl, nat)
    try:
        env = Env()
        env.helpers = env.helpers.copy()
        env.helpers.register(152, py_impl)
        with pytest.raises(RuntimeFault) as ej:
            JitProgram(assemble([mov64(R0, 0), call(152), exit_()]), env).run()
        assert ej.value.pc == 1 and "native helper" in ej.value.reason
    finally:
        unregister_native(py_impl)
