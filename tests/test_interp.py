"""The interpreter: semantics per instruction class, faults, tracing, property tests."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from reference_interp import alu as ref_alu
from reference_interp import jmp as ref_jmp
from reference_interp import naive_run

from bpfkit.errors import DecodeError, NotSupported, RuntimeFault
from bpfkit.isa import opcodes as op
from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    R9,
    R10,
    Label,
    add32,
    add64,
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
    jne,
    jset32,
    jsgt,
    jslt32,
    ld_abs,
    ld_func,
    ld_ind,
    ld_map_fd,
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
    mul32,
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
    sub32,
)
from bpfkit.isa.instruction import Instruction, encode
from bpfkit.vm.env import Env
from bpfkit.vm.interp import CompiledProgram, run_program
from bpfkit.vm.memory import READ, Region

M = (1 << 64) - 1


def r0_of(items, mem: bytes = b"", **kw) -> int:
    return run_program(assemble(items), mem, **kw).r0


# ---- ALU ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "items, expect",
    [
        ([mov64(R0, -1)], M),
        ([mov32(R0, -1)], 0xFFFFFFFF),
        ([lddw(R0, 0xFFFFFFFF_00000005), add32(R0, 1)], 6),
        ([mov64(R0, 0), add64(R0, -1)], M),
        ([mov32(R0, 0), sub32(R0, 1)], 0xFFFFFFFF),
        ([lddw(R0, 1 << 40), mul32(R0, 3)], 0),
        ([mov64(R0, 7), div64(R0, 0)], 0),
        ([mov64(R0, 7), mov64(R1, 0), div64(R0, R1)], 0),
        ([mov64(R0, 7), mod64(R0, 0)], 7),
        ([lddw(R0, 0x1_0000_0007), mov64(R1, 0), mod32(R0, R1)], 7),
        ([lddw(R0, 0x1_0000_0007), div32(R0, 0)], 0),
        ([mov64(R0, -7), sdiv64(R0, 2)], (-3) & M),
        ([mov64(R0, -7), smod64(R0, 2)], (-1) & M),
        ([mov64(R0, 7), smod64(R0, -2)], 1),
        ([lddw(R0, 1 << 63), sdiv64(R0, -1)], 1 << 63),
        ([lddw(R0, 1 << 63), smod64(R0, -1)], 0),
        ([mov32(R0, -7), sdiv32(R0, 2)], (-3) & 0xFFFFFFFF),
        ([mov32(R0, 0x80000000), sdiv32(R0, -1)], 0x80000000),
        ([mov32(R0, -7), smod32(R0, 0)], 0xFFFFFFF9),
        ([mov64(R0, 1), lsh64(R0, 65)], 2),
        ([mov64(R0, 1), mov64(R1, 33), lsh32(R0, R1)], 2),
        ([lddw(R0, 1 << 63), rsh64(R0, 63)], 1),
        ([mov64(R0, -1), rsh32(R0, 4)], 0x0FFFFFFF),
        ([lddw(R0, 1 << 63), arsh64(R0, 62)], (-2) & M),
        ([mov32(R0, 0x80000000), arsh32(R0, 31)], 0xFFFFFFFF),
        ([mov64(R0, 5), neg64(R0)], (-5) & M),
        ([mov64(R0, 5), neg32(R0)], (-5) & 0xFFFFFFFF),
        ([mov64(R1, 0x80), movsx64(R0, R1, 8)], (-128) & M),
        ([mov64(R1, 0x8000), movsx64(R0, R1, 16)], (-32768) & M),
        ([mov64(R1, 0x80000000), movsx64(R0, R1, 32)], (-(1 << 31)) & M),
        ([mov64(R1, 0xFF), movsx32(R0, R1, 8)], 0xFFFFFFFF),
        ([lddw(R0, 0x1122334455667788), le(R0, 16)], 0x7788),
        ([lddw(R0, 0x1122334455667788), le(R0, 32)], 0x55667788),
        ([lddw(R0, 0x1122334455667788), le(R0, 64)], 0x1122334455667788),
        ([lddw(R0, 0x1122334455667788), be(R0, 16)], 0x8877),
        ([lddw(R0, 0x1122334455667788), be(R0, 32)], 0x88776655),
        ([lddw(R0, 0x1122334455667788), be(R0, 64)], 0x8877665544332211),
        ([lddw(R0, 0x1122334455667788), bswap(R0, 16)], 0x8877),
        ([lddw(R0, 0x1122334455667788), bswap(R0, 64)], 0x8877665544332211),
    ],
)
def test_alu(items, expect):
    assert r0_of(items + [exit_()]) == expect


_ALU_OPS = [o for o in op.ALU_OPS if o not in (op.NEG, op.END)]  # the two-operand ones
u64 = hs.one_of(
    hs.integers(0, M),
    hs.sampled_from(
        [0, 1, 2, 63, 64, M, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF]
    ),
)
s32 = hs.one_of(hs.integers(-(1 << 31), (1 << 31) - 1), hs.sampled_from([0, 1, -1, 31, 32, 63]))
# The operands both reference tests draw: width, two registers, an immediate, which is used.
_OPERANDS = dict(is64=hs.booleans(), a=u64, b=u64, imm=s32, use_imm=hs.booleans())


@settings(max_examples=1500, deadline=None)
@given(aop=hs.sampled_from(_ALU_OPS + ["sdiv", "smod"]), **_OPERANDS)
def test_alu_matches_reference(aop, is64, a, b, imm, use_imm):
    cls = op.ALU64 if is64 else op.ALU
    off = 0
    if aop in ("sdiv", "smod"):
        aop, off = (op.DIV if aop == "sdiv" else op.MOD), 1
    if use_imm:
        insn = Instruction(cls | aop | op.K, 1, 0, off, imm)
        src = imm & M if is64 else imm & 0xFFFFFFFF
    else:
        insn = Instruction(cls | aop | op.X, 1, 2, off, 0)
        src = b
    prog = [lddw(R1, a), lddw(R2, b), insn, mov64(R0, R1), exit_()]
    assert run_program(prog).r0 == ref_alu(aop, is64, a, src, off)


@settings(max_examples=1500, deadline=None)
@given(jop=hs.sampled_from(op.COND_JUMPS), **_OPERANDS)
def test_jumps_match_reference(jop, is64, a, b, imm, use_imm):
    cls = op.JMP if is64 else op.JMP32
    if use_imm:
        j = Instruction(cls | jop | op.K, 1, 0, 1, imm)
        src = imm & M
    else:
        j = Instruction(cls | jop | op.X, 1, 2, 1, 0)
        src = b
    prog = [lddw(R1, a), lddw(R2, b), mov64(R0, 0), j, exit_(), mov64(R0, 1), exit_()]
    assert run_program(prog).r0 == int(ref_jmp(jop, is64, a, src))


# ---- memory -------------------------------------------------------------------------
def test_loads_and_stores_on_input_and_stack():
    mem = bytes(range(16))
    prog = [
        ldx(8, R2, R1, 0),
        stx(8, R10, -8, R2),
        ldx(4, R3, R10, -8),
        ldx(2, R4, R10, -6),
        st(1, R1, 15, 0xAB),
        st(2, R10, -16, -2),
        ldxs(2, R0, R10, -16),
        add64(R0, R3),
        add64(R0, R4),
        exit_(),
    ]
    res = run_program(assemble(prog), mem)
    assert res.r0 == ((-2 + 0x03020100 + 0x0302) & M)
    assert res.mem[15] == 0xAB and res.mem[:15] == mem[:15]


@pytest.mark.parametrize("size", [1, 2, 4])
def test_sign_extending_loads(size):
    mem = b"\xff" * 8
    assert r0_of([ldxs(size, R0, R1, 0), exit_()], mem) == M
    assert r0_of([ldx(size, R0, R1, 0), exit_()], mem) == (1 << (8 * size)) - 1


def test_atomics():
    prog = [
        mov64(R2, 10),
        stx(8, R10, -8, R2),
        mov64(R3, 5),
        atomic(8, op.ATOMIC_ADD, R10, -8, R3),
        mov64(R4, 1),
        atomic(8, op.ATOMIC_ADD | op.FETCH, R10, -8, R4),  # r4 = 15, mem 16
        mov64(R6, 0xF0),
        atomic(8, op.ATOMIC_OR | op.FETCH, R10, -8, R6),  # r6 = 16, mem 0xf0|16
        mov64(R7, 0x30),
        atomic(8, op.ATOMIC_AND, R10, -8, R7),  # mem = 0x30
        mov64(R8, 7),
        atomic(8, op.XCHG, R10, -8, R8),  # r8 = 0x30, mem 7
        mov64(R0, 7),
        mov64(R9, 99),
        atomic(8, op.CMPXCHG, R10, -8, R9),  # r0 = 7, mem 99
        ldx(8, R1, R10, -8),
        mov32(R2, -1),
        stx(4, R10, -16, R2),
        mov64(R3, 1),
        atomic(4, op.ATOMIC_ADD | op.FETCH, R10, -16, R3),  # r3 = 0xffffffff, wraps to 0
        ldx(4, R2, R10, -16),
        # r0 = r4 + r6 + r8 + r0 + r1 + r3 + r2
        add64(R0, R4),
        add64(R0, R6),
        add64(R0, R8),
        add64(R0, R1),
        add64(R0, R3),
        add64(R0, R2),
        exit_(),
    ]
    assert r0_of(prog) == 15 + 16 + 0x30 + 7 + 99 + 0xFFFFFFFF + 0


def test_cmpxchg_miss_leaves_memory():
    prog = [
        mov64(R2, 1),
        stx(8, R10, -8, R2),
        mov64(R0, 2),
        mov64(R3, 3),
        atomic(8, op.CMPXCHG, R10, -8, R3),
        ldx(8, R4, R10, -8),
        lsh64(R0, 8),
        add64(R0, R4),
        exit_(),
    ]
    assert r0_of(prog) == (1 << 8) + 1


def test_legacy_packet_loads_are_big_endian_and_stop_out_of_bounds():
    pkt = bytes.fromhex("0102030405060708")
    assert r0_of([ld_abs(2, 2), exit_()], pkt) == 0x0304
    assert r0_of([mov64(R6, 4), ld_ind(4, R6, 0), exit_()], pkt) == 0x05060708
    assert r0_of([mov64(R0, 9), ld_abs(4, 6), mov64(R0, 9), exit_()], pkt) == 0


# ---- control flow and calls --------------------------------------------------------
def test_loops_and_gotol():
    prog = [
        mov64(R0, 0),
        mov64(R1, 100),
        Label("l"),
        add64(R0, R1),
        add64(R1, -1),
        jne(R1, 0, "l"),
        gotol("end"),
        mov64(R0, 0),
        Label("end"),
        exit_(),
    ]
    res = run_program(assemble(prog))
    assert res.r0 == 5050 and res.insns == 2 + 3 * 100 + 2


def test_local_calls_preserve_callee_saved_and_use_fresh_frames():
    prog = [
        mov64(R6, 6),
        st(8, R10, -8, 11),
        mov64(R1, 3),
        call_local("f"),
        ldx(8, R2, R10, -8),
        add64(R0, R2),
        add64(R0, R6),
        exit_(),
        Label("f"),
        st(8, R10, -8, 1000),
        mov64(R6, 0),
        mov64(R0, R1),
        mul64(R0, R0),
        exit_(),
    ]
    assert r0_of(prog) == 9 + 11 + 6


def test_recursion_depth_limit():
    # f calls itself forever: the 9th frame faults
    prog = [call_local("f"), exit_(), Label("f"), add64(R0, 1), call_local("f"), exit_()]
    with pytest.raises(RuntimeFault, match="call depth"):
        run_program(assemble(prog))
    # depth exactly 8 frames is allowed
    prog = [
        mov64(R1, 6),
        call_local("f"),
        exit_(),
        Label("f"),
        jeq(R1, 0, "out"),
        add64(R1, -1),
        call_local("f"),
        Label("out"),
        add64(R0, 1),
        exit_(),
    ]
    assert r0_of(prog) == 7


def test_callx_to_function_pointer_and_helper():
    prog = [
        ld_func(R2, "g"),
        mov64(R1, 20),
        callx(R2),
        mov64(R6, R0),
        mov64(R3, 5),
        callx(R3),  # helper 5 (ktime_get_ns) returns normally
        mov64(R0, R6),
        exit_(),
        Label("g"),
        mov64(R0, R1),
        add64(R0, 1),
        exit_(),
    ]
    assert r0_of(prog) == 21


def test_helper_registry_is_extensible():
    env = Env(helpers=Env().helpers.copy())
    env.helpers.register(1000, lambda env, a, b, c, d, e: a * 2 + b)
    res = run_program(assemble([mov64(R1, 20), mov64(R2, 2), call(1000), exit_()]), env=env)
    assert res.r0 == 42


# ---- faults ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "items, mem, match, pc",
    [
        ([ldx(8, R0, R1, 0), exit_()], b"1234", "invalid read of 8 bytes", 0),
        ([mov64(R0, 0), stx(4, R1, 6, R0), exit_()], b"12345678", "invalid write of 4 bytes", 1),
        ([mov64(R1, 0), ldx(1, R0, R1, 0), exit_()], b"", "invalid read of 1 byte", 1),
        ([ldx(8, R0, R10, 0), exit_()], b"", "invalid read", 0),
        ([stx(8, R10, -4096 - 8, R1), exit_()], b"", "invalid write", 0),
        ([mov64(R2, 1), atomic(8, op.ATOMIC_ADD, R10, -4, R2), exit_()], b"", "misaligned", 1),
        ([ja(5), exit_()], b"", "out of the program", 0),
        ([jeq(R1, R1, -3), exit_()], b"", "out of the program", 0),
        ([mov64(R0, 1)], b"", "fell off the end", 0),
        ([call(99999), exit_()], b"", "unknown helper", 0),
        ([mov64(R2, 123456), callx(R2), exit_()], b"", "neither a function nor a helper", 1),
        ([Label("l"), ja("l")], b"", "budget", 0),
    ],
)
def test_faults(items, mem, match, pc):
    with pytest.raises(RuntimeFault, match=match) as e:
        run_program(assemble(items), mem, budget=10_000)
    assert e.value.pc == pc
    assert e.value.insn


def test_jump_into_middle_of_lddw_faults():
    prog = [ja(1), lddw(R0, 5), exit_()]
    with pytest.raises(RuntimeFault, match="middle of lddw"):
        run_program(prog)


def test_read_only_region():
    env = Env()
    ro = env.space.add(Region.alloc("ro", 8, perms=READ, init=b"\x05" * 8))
    prog = CompiledProgram(assemble([ldx(1, R0, R1, 0), st(1, R1, 0, 1), exit_()]), env)
    with pytest.raises(RuntimeFault, match="read-only"):
        prog.run(ro.base)
    assert ro.bytes() == b"\x05" * 8


def test_budget_counts_exactly():
    prog = assemble([mov64(R0, 0), Label("l"), add64(R0, 1), jne(R0, 10, "l"), exit_()])
    assert run_program(prog, budget=22).insns == 22
    with pytest.raises(RuntimeFault, match="budget of 21"):
        run_program(prog, budget=21)


def test_invalid_bytecode_is_a_decode_error():
    with pytest.raises(DecodeError, match="byte offset 8"):
        run_program([mov64(R0, 0), Instruction(0xFF), exit_()])


def test_map_reference_without_runtime_is_not_supported():
    with pytest.raises(NotSupported, match="map"):
        run_program([ld_map_fd(R1, 3), exit_()])


def test_trace_records_changed_registers():
    res = run_program(assemble([mov64(R0, 1), add64(R0, 2), mov64(R3, 3), exit_()]), trace=True)
    assert [s.pc for s in res.trace] == [0, 1, 2, 3]
    assert res.trace[1].changed == {"r0": 3}
    assert res.trace[2].changed == {"r3": 3}
    assert res.trace[3].changed == {}


def test_stack_is_zeroed_and_frames_are_512_bytes():
    prog = [mov64(R1, 0), stx(8, R10, -512, R1), ldx(8, R0, R10, -512), exit_()]
    assert r0_of(prog) == 0


# ---- differential: compiled interpreter vs the naive reference on random programs ----
@settings(max_examples=300, deadline=None)
@given(data=hs.data())
def test_random_straight_line_programs_match_reference(data):
    n = data.draw(hs.integers(1, 30))
    prog = [lddw(R1, data.draw(u64)), lddw(R2, data.draw(u64)), mov64(R0, 0)]
    for _ in range(n):
        aop = data.draw(hs.sampled_from(_ALU_OPS))
        cls = data.draw(hs.sampled_from([op.ALU, op.ALU64]))
        dst = data.draw(hs.sampled_from([0, 1, 2]))
        if data.draw(hs.booleans()):
            prog.append(Instruction(cls | aop | op.K, dst, 0, 0, data.draw(s32)))
        else:
            prog.append(Instruction(cls | aop | op.X, dst, data.draw(hs.sampled_from([0, 1, 2]))))
        if data.draw(hs.booleans()):
            prog.append(stx(8, R10, -8 * data.draw(hs.integers(1, 8)), R0))
            prog.append(ldx(data.draw(hs.sampled_from([1, 2, 4, 8])), R2, R10, -64))
    prog.append(exit_())
    assert run_program(prog).r0 == naive_run(prog)[0]


def test_encode_decode_of_builders():
    from bpfkit.isa.instruction import decode

    prog = assemble(
        [mov64(R0, 1), jsgt(R0, R1, 1), jslt32(R0, -5, 0), jset32(R0, 3, 0), lddw(R3, M), exit_()]
    )
    assert decode(encode(prog)) == prog
    assert struct.calcsize("<BBhi") == 8


def test_out_of_bounds_packet_load_counts_executed_instructions():
    res = run_program(assemble([mov64(R0, 1), mov64(R2, 2), ld_abs(4, 100), exit_()]), b"\0" * 8)
    assert res.r0 == 0 and res.insns == 3


def test_region_removed_by_a_helper_faults_on_next_access():
    env = Env(helpers=Env().helpers.copy())
    victim = env.space.add(Region.alloc("value", 8))

    def free(env_, *args):
        env_.space.remove(victim)
        return 0

    env.helpers.register(1001, free)
    prog = CompiledProgram(
        assemble([ldx(8, R0, R1, 0), mov64(R6, R1), call(1001), ldx(8, R0, R6, 0), exit_()]), env
    )
    with pytest.raises(RuntimeFault, match="invalid read") as e:
        prog.run(victim.base)
    assert e.value.pc == 3
