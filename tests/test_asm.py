"""Assembler tests: both dialects per instruction class, labels, errors, vectors, fuzzing."""

from __future__ import annotations

import json
import struct

import pytest
from click.testing import CliRunner
from conformance_data import EXPECTED_COUNT, asm_text, load_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import valid_instruction

from bpfkit.cli.main import cli
from bpfkit.errors import AsmError, BpfError, DecodeError, NotSupported
from bpfkit.isa import builders as b
from bpfkit.isa import opcodes as op
from bpfkit.isa.asm import assemble_text, guess_dialect
from bpfkit.isa.builders import R0, R1, R2, R3, R10
from bpfkit.isa.disasm import format_insn
from bpfkit.isa.instruction import Instruction, encode
from bpfkit.isa.loader import parse_hex, read_program

I = Instruction


def one(text: str, dialect: str) -> Instruction:
    insns = assemble_text(text, dialect)
    assert len(insns) == 1, insns
    return insns[0]


# ---------------------------------------------------------------------------------------
# Conformance dialect, per instruction class

CONFORMANCE = [
    # ALU64 / ALU32, immediate and register
    ("mov %r0, 1", b.mov64(R0, 1)),
    ("mov64 %r0, -1", b.mov64(R0, -1)),
    ("mov32 %r0, 0xffffffff", b.mov32(R0, -1)),
    ("add %r1, %r2", b.add64(R1, R2)),
    ("add32 %r0, -3", b.add32(R0, -3)),
    ("sub %r0, 0x10", b.sub64(R0, 16)),
    ("mul32 %r3, %r1", b.mul32(R3, R1)),
    ("div %r0, 2", b.div64(R0, 2)),
    ("mod32 %r0, %r1", b.mod32(R0, R1)),
    ("or %r0, 0xa3", b.or64(R0, 0xA3)),
    ("and32 %r0, %r1", b.and32(R0, R1)),
    ("lsh %r0, 32", b.lsh64(R0, 32)),
    ("rsh32 %r0, 19", b.rsh32(R0, 19)),
    ("arsh %r0, 124", b.arsh64(R0, 124)),
    ("xor %r0, 0x03", b.xor64(R0, 3)),
    ("neg %r0", b.neg64(R0)),
    ("neg32 %r0", b.neg32(R0)),
    ("sdiv %r1, %r2", b.sdiv64(R1, R2)),
    ("sdiv32 %r1, -7", b.sdiv32(R1, -7)),
    ("smod %r1, 3", b.smod64(R1, 3)),
    ("smod32 %r1, %r2", b.smod32(R1, R2)),
    ("movsx864 %r0, %r1", b.movsx64(R0, R1, 8)),
    ("movsx1664 %r0, %r1", b.movsx64(R0, R1, 16)),
    ("movsx3264 %r0, %r1", b.movsx64(R0, R1, 32)),
    ("movsx832 %r0, %r1", b.movsx32(R0, R1, 8)),
    ("movsx1632 %r0, %r1", b.movsx32(R0, R1, 16)),
    # byte swaps
    ("be16 %r0", b.be(R0, 16)),
    ("be64 %r0", b.be(R0, 64)),
    ("le32 %r0", b.le(R0, 32)),
    ("bswap16 %r0", b.bswap(R0, 16)),
    ("bswap64 %r0", b.bswap(R0, 64)),
    ("swap32 %r0", b.bswap(R0, 32)),
    # loads and stores
    ("ldxb %r9, [%r0+0]", b.ldx(1, R0.__class__(9), R0, 0)),
    ("ldxh %r8, [%r0+2]", b.ldx(2, R0.__class__(8), R0, 2)),
    ("ldxw %r0, [%r1]", b.ldx(4, R0, R1, 0)),
    ("ldxdw %r0, [%r10-16]", b.ldx(8, R0, R10, -16)),
    ("ldxsb %r0, [%r10-1]", b.ldxs(1, R0, R10, -1)),
    ("ldxsh %r0, [%r10-2]", b.ldxs(2, R0, R10, -2)),
    ("ldxsw %r0, [%r10-4]", b.ldxs(4, R0, R10, -4)),
    ("stb [%r10-1], 0xff", b.st(1, R10, -1, 0xFF)),
    ("sth [%r0], 0x1234", b.st(2, R0, 0, 0x1234)),
    ("stw [%r10-4], 0x80000001", b.st(4, R10, -4, 0x80000001)),
    ("stdw [%r10-16], 0xab", b.st(8, R10, -16, 0xAB)),
    ("stxb [%r10-1], %r1", b.stx(1, R10, -1, R1)),
    ("stxdw [%r10-8], %r0", b.stx(8, R10, -8, R0)),
    ("stxdw [%r10 - 8], %r0", b.stx(8, R10, -8, R0)),
    # atomics
    ("lock add [%r10-8], %r1", b.atomic(8, op.ATOMIC_ADD, R10, -8, R1)),
    ("lock add32 [%r10-8], %r1", b.atomic(4, op.ATOMIC_ADD, R10, -8, R1)),
    ("lock or [%r10-8], %r1", b.atomic(8, op.ATOMIC_OR, R10, -8, R1)),
    ("lock and32 [%r10-8], %r1", b.atomic(4, op.ATOMIC_AND, R10, -8, R1)),
    ("lock xor [%r10-8], %r1", b.atomic(8, op.ATOMIC_XOR, R10, -8, R1)),
    ("lock fetch add [%r10-8], %r1", b.atomic(8, op.ATOMIC_ADD | op.FETCH, R10, -8, R1)),
    ("lock fetch xor32 [%r10-8], %r1", b.atomic(4, op.ATOMIC_XOR | op.FETCH, R10, -8, R1)),
    ("lock xchg [%r10-8], %r1", b.atomic(8, op.XCHG, R10, -8, R1)),
    ("lock xchg32 [%r10-8], %r1", b.atomic(4, op.XCHG, R10, -8, R1)),
    ("lock cmpxchg [%r10-8], %r1", b.atomic(8, op.CMPXCHG, R10, -8, R1)),
    ("lock cmpxchg32 [%r10-8], %r1", b.atomic(4, op.CMPXCHG, R10, -8, R1)),
    # lddw and its pseudo forms
    ("lddw %r0, 0x1122334455667788", b.lddw(R0, 0x1122334455667788)),
    ("lddw %r0, -1", b.lddw(R0, -1)),
    ("lddw %r1, map_fd(5)", b.ld_map_fd(R1, 5)),
    ("lddw %r1, map_value(5, 16)", b.ld_map_value(R1, 5, 16)),
    ("lddw %r1, btf_id(7)", b.lddw(R1, 7, op.PSEUDO_BTF_ID)),
    ("lddw %r1, btf_id(7, 3)", b.lddw(R1, 7 | 3 << 32, op.PSEUDO_BTF_ID)),
    ("lddw %r1, func(+3)", b.ld_func(R1, 3)),
    ("lddw %r1, func(-2)", b.ld_func(R1, -2)),
    ("lddw %r1, map_idx(0)", b.lddw(R1, 0, op.PSEUDO_MAP_IDX)),
    ("lddw %r1, map_idx_value(1, 8)", b.lddw(R1, 1 | 8 << 32, op.PSEUDO_MAP_IDX_VALUE)),
    # legacy packet loads
    ("ldabsb 12", b.ld_abs(1, 12)),
    ("ldabsh 0x10", b.ld_abs(2, 16)),
    ("ldabsw -4", b.ld_abs(4, -4)),
    ("ldindb %r1, 4", b.ld_ind(1, R1, 4)),
    ("ldindw %r2, -1", b.ld_ind(4, R2, -1)),
    # jumps, calls, exit
    ("ja +3", b.ja(3)),
    ("ja -1", b.ja(-1)),
    ("ja32 +100000", b.gotol(100000)),
    ("jeq %r1, 0x80000000, +1", b.jeq(R1, 0x80000000, 1)),
    ("jgt %r1, %r2, -2", b.jgt(R1, R2, -2)),
    ("jsge32 %r1, 0xffffffff, +4", b.jsge32(R1, -1, 4)),
    ("jset32 %r1, %r3, +0", b.jset32(R1, R3, 0)),
    ("jslt %r1, -3, +7", b.jslt(R1, -3, 7)),
    ("call 5", b.call(5)),
    ("call %r2", b.callx(R2)),
    ("call local +3", b.call_local(3)),
    ("call runtime 77", b.call_kfunc(77)),
    ("call runtime 77, 2", b.call_kfunc(77, 2)),
    ("exit", b.exit_()),
]


@pytest.mark.parametrize(("text", "expected"), CONFORMANCE, ids=[t for t, _ in CONFORMANCE])
def test_conformance_dialect(text: str, expected: Instruction) -> None:
    assert one(text, "conformance") == expected
    assert one(text, "auto") == expected


def test_conformance_mnemonics_ignore_case() -> None:
    assert assemble_text("MOV %r0, 1\nEXIT", "conformance") == [b.mov64(R0, 1), b.exit_()]


# ---------------------------------------------------------------------------------------
# LLVM / kernel dialect, per instruction class

LLVM = [
    ("r0 = 1", b.mov64(R0, 1)),
    ("r0 = 0x1", b.mov64(R0, 1)),
    ("r0 = -0x1", b.mov64(R0, -1)),
    ("w0 = 0xffffffff", b.mov32(R0, -1)),
    ("w1 += w2", b.add32(R1, R2)),
    ("r1 -= 0x10", b.sub64(R1, 16)),
    ("r1 *= r2", b.mul64(R1, R2)),
    ("r1 /= 3", b.div64(R1, 3)),
    ("w1 |= 0xa3", b.or32(R1, 0xA3)),
    ("r1 &= -0x10", b.and64(R1, -16)),
    ("r1 <<= 0x20", b.lsh64(R1, 32)),
    ("w1 >>= w2", b.rsh32(R1, R2)),
    ("r1 %= r2", b.mod64(R1, R2)),
    ("r1 ^= 5", b.xor64(R1, 5)),
    ("r1 s>>= 3", b.arsh64(R1, 3)),
    ("w1 s>>= w3", b.arsh32(R1, R3)),
    ("r1 = -r1", b.neg64(R1)),
    ("w0 = -w0", b.neg32(R0)),
    ("r0 s/= r1", b.sdiv64(R0, R1)),
    ("w0 s/= 0x7", b.sdiv32(R0, 7)),
    ("r0 s%= r1", b.smod64(R0, R1)),
    ("w0 s%= w1", b.smod32(R0, R1)),
    ("r1 = r2", b.mov64(R1, R2)),
    ("w1 = w2", b.mov32(R1, R2)),
    ("r0 = (s8)r1", b.movsx64(R0, R1, 8)),
    ("r0 = (s32)r1", b.movsx64(R0, R1, 32)),
    ("w0 = (s16)w1", b.movsx32(R0, R1, 16)),
    ("r1 = be16 r1", b.be(R1, 16)),
    ("r1 = le32 r1", b.le(R1, 32)),
    ("r1 = bswap64 r1", b.bswap(R1, 64)),
    # loads and stores (llvm, alu32 and kernel spellings)
    ("r0 = *(u8 *)(r1 + 2)", b.ldx(1, R0, R1, 2)),
    ("r0 = *(u32 *)(r1 + 0x0)", b.ldx(4, R0, R1, 0)),
    ("w0 = *(u32 *)(r1 + 0x4)", b.ldx(4, R0, R1, 4)),
    ("r0 = *(u64 *)(r10 -8)", b.ldx(8, R0, R10, -8)),
    ("r0 = *(s16 *)(r1 + 2)", b.ldxs(2, R0, R1, 2)),
    ("r0 = *(s32 *)(r1 - 0x4)", b.ldxs(4, R0, R1, -4)),
    ("*(u32 *)(r10 - 4) = r1", b.stx(4, R10, -4, R1)),
    ("*(u16 *)(r10 - 0x2) = w1", b.stx(2, R10, -2, R1)),
    ("*(u64 *)(r10 - 8) = 5", b.st(8, R10, -8, 5)),
    ("*(u8 *)(r10 +0) = -1", b.st(1, R10, 0, -1)),
    # atomics: llvm, alu32 and kernel spellings
    ("lock *(u64 *)(r10 - 8) += r1", b.atomic(8, op.ATOMIC_ADD, R10, -8, R1)),
    ("lock *(u32 *)(r10 - 8) |= w1", b.atomic(4, op.ATOMIC_OR, R10, -8, R1)),
    ("lock *(u32 *)(r10 - 8) &= r1", b.atomic(4, op.ATOMIC_AND, R10, -8, R1)),
    ("lock *(u64 *)(r10 -8) ^= r1", b.atomic(8, op.ATOMIC_XOR, R10, -8, R1)),
    (
        "r0 = atomic_fetch_add((u64 *)(r10 - 8), r0)",
        b.atomic(8, op.ATOMIC_ADD | op.FETCH, R10, -8, R0),
    ),
    ("w0 = atomic_fetch_or((u32 *)(r1 + 0), w0)", b.atomic(4, op.ATOMIC_OR | op.FETCH, R1, 0, R0)),
    (
        "r2 = atomic64_fetch_and((u64 *)(r1 +16), r2)",
        b.atomic(8, op.ATOMIC_AND | op.FETCH, R1, 16, R2),
    ),
    (
        "r2 = atomic_fetch_xor((u32 *)(r1 +16), r2)",
        b.atomic(4, op.ATOMIC_XOR | op.FETCH, R1, 16, R2),
    ),
    ("r0 = xchg_64(r10 - 8, r0)", b.atomic(8, op.XCHG, R10, -8, R0)),
    ("w0 = xchg32_32(r10 - 8, w0)", b.atomic(4, op.XCHG, R10, -8, R0)),
    ("r1 = atomic64_xchg((u64 *)(r10 -8), r1)", b.atomic(8, op.XCHG, R10, -8, R1)),
    ("r0 = cmpxchg_64(r10 - 8, r0, r1)", b.atomic(8, op.CMPXCHG, R10, -8, R1)),
    ("w0 = cmpxchg32_32(r10 - 8, w0, w1)", b.atomic(4, op.CMPXCHG, R10, -8, R1)),
    ("r0 = atomic_cmpxchg((u32 *)(r10 -8), r0, r1)", b.atomic(4, op.CMPXCHG, R10, -8, R1)),
    # lddw and pseudo forms
    ("r1 = 0x1122334455667788 ll", b.lddw(R1, 0x1122334455667788)),
    ("r2 = -0x1 ll", b.lddw(R2, -1)),
    ("r1 = map_fd(5) ll", b.ld_map_fd(R1, 5)),
    ("r1 = map_value(5, 16) ll", b.ld_map_value(R1, 5, 16)),
    ("r1 = btf_id(0x7) ll", b.lddw(R1, 7, op.PSEUDO_BTF_ID)),
    ("r1 = func(+3) ll", b.ld_func(R1, 3)),
    ("r1 = func(pc-0x2) ll", b.ld_func(R1, -2)),
    ("r1 = map_idx(0) ll", b.lddw(R1, 0, op.PSEUDO_MAP_IDX)),
    ("r1 = map_idx_value(0, 8)", b.lddw(R1, 8 << 32, op.PSEUDO_MAP_IDX_VALUE)),
    # legacy packet loads
    ("r0 = *(u8 *)skb[12]", b.ld_abs(1, 12)),
    ("r0 = *(u32 *)skb[0x1a]", b.ld_abs(4, 26)),
    ("r0 = *(u16 *)skb[r1 + 4]", b.ld_ind(2, R1, 4)),
    ("r0 = *(u16 *)skb[r1]", b.ld_ind(2, R1, 0)),
    ("r0 = *(u8 *)skb[r7 - 0x1]", b.ld_ind(1, R0.__class__(7), -1)),
    # jumps and calls
    ("if r1 > 0x2 goto +3", b.jgt(R1, 2, 3)),
    ("if r1 > 0x2 goto +0x3 <LBB0_4>", b.jgt(R1, 2, 3)),
    ("if r1 == 0x0 goto pc+2", b.jeq(R1, 0, 2)),
    ("if w1 s< w2 goto -1", b.jslt32(R1, R2, -1)),
    ("if r1 & r2 goto +1", b.jset(R1, R2, 1)),
    ("if w1 & 0x8 goto +1", b.jset32(R1, 8, 1)),
    ("if r1 != r2 goto +0", b.jne(R1, R2, 0)),
    ("if r1 s>= -0x5 goto +0x7", b.jsge(R1, -5, 7)),
    ("if r1 <= 0xffffffff goto +1", b.jle(R1, -1, 1)),
    ("goto +5", b.ja(5)),
    ("goto -0x1 <prog+0x8>", b.ja(-1)),
    ("goto pc+5", b.ja(5)),
    ("gotol +100000", b.gotol(100000)),
    ("gotol -0x3", b.gotol(-3)),
    ("call 5", b.call(5)),
    ("call 0x5", b.call(5)),
    ("call bpf_map_lookup_elem#1", b.call(1)),
    ("call bpf_ktime_get_ns", b.call(5)),
    ("call pc+3", b.call_local(3)),
    ("call pc-0x1", b.call_local(-1)),
    ("call kfunc(0x4d)", b.call_kfunc(77)),
    ("call kfunc(0x4d, 0x2)", b.call_kfunc(77, 2)),
    ("call kfunc 77", b.call_kfunc(77)),
    ("callx r2", b.callx(R2)),
    ("exit", b.exit_()),
]


@pytest.mark.parametrize(("text", "expected"), LLVM, ids=[t for t, _ in LLVM])
def test_llvm_dialect(text: str, expected: Instruction) -> None:
    assert one(text, "llvm") == expected
    assert one(text, "auto") == expected


def test_kernel_verifier_log() -> None:
    log = """
        0: (b7) r0 = 0
        1: (85) call bpf_map_lookup_elem#1
        2: (bf) r1 = r0 ; R0_w=map_value_or_null(id=1)
        3: (15) if r1 == 0x0 goto pc+2
        4: (61) r2 = *(u32 *)(r1 +4)
        5: (63) *(u32 *)(r10 -4) = r2
        6: (db) r0 = atomic64_fetch_add((u64 *)(r10 -8), r0)
        7: (c3) r1 = atomic_xchg((u32 *)(r10 -8), r1)
        8: (85) call pc+1
        9: (06) gotol pc-9
        10: (95) exit
    """
    assert assemble_text(log, "auto") == [
        b.mov64(R0, 0),
        b.call(1),
        b.mov64(R1, R0),
        b.jeq(R1, 0, 2),
        b.ldx(4, R2, R1, 4),
        b.stx(4, R10, -4, R2),
        b.atomic(8, op.ATOMIC_ADD | op.FETCH, R10, -8, R0),
        b.atomic(4, op.XCHG, R10, -8, R1),
        b.call_local(1),
        b.gotol(-9),
        b.exit_(),
    ]


def test_llvm_objdump_output_with_raw_bytes_and_relocations() -> None:
    listing = (
        "c1.o:\tfile format elf64-bpf\n\n"
        "Disassembly of section xdp:\n\n"
        "0000000000000000 <prog>:\n"
        "       0:\t71 12 01 00 00 00 00 00\tr2 = *(u8 *)(r1 + 0x1)\n"
        "       1:\t85 10 00 00 ff ff ff ff\tcall -0x1\n"
        "\t\t0000000000000008:  R_BPF_64_32\t.text\n"
        "       2:\t18 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr2 = 0x0 ll\n"
        "\t\t0000000000000010:  R_BPF_64_64\t.bss\n"
        "       4:\t05 00 ff ff 00 00 00 00\tgoto -0x1 <prog+0x20>\n"
        "       5:\t85 00 00 00 05 00 00 00\tcall 0x5\n"
        "       6:\t95 00 00 00 00 00 00 00\texit\n"
    )
    expected = [
        b.ldx(1, R2, R1, 1),
        b.call_local(-1),
        b.lddw(R2, 0),
        b.ja(-1),
        b.call(5),
        b.exit_(),
    ]
    assert assemble_text(listing, "llvm") == expected
    # the symbol line defines a label
    assert assemble_text("0000000000000000 <prog>:\ngoto prog\n", "llvm") == [b.ja(-1)]


# ---------------------------------------------------------------------------------------
# Labels, comments, numbers


def test_labels_forward_and_backward() -> None:
    text = """
    start:
        mov %r0, 0
        jeq %r1, 0, out       # forward
        add %r0, 1
        ja start              ; backward
    out:
        exit
    """
    assert assemble_text(text, "conformance") == [
        b.mov64(R0, 0),
        b.jeq(R1, 0, 2),
        b.add64(R0, 1),
        b.ja(-4),
        b.exit_(),
    ]


def test_labels_count_lddw_as_two_slots() -> None:
    text = "goto L\nr1 = 0x1122334455667788 ll\nL:\nexit\nr0 = func(L) ll\n"
    insns = assemble_text(text, "llvm")
    assert insns[0] == b.ja(2)
    assert insns[3] == b.ld_func(R0, -2)  # L is slot 3, the load sits at slot 4


def test_label_on_same_line_and_at_end() -> None:
    assert assemble_text("top: ja32 end\nend:", "conformance") == [b.gotol(0)]
    assert assemble_text("a: b: goto a", "llvm") == [b.ja(-1)]


def test_exit_as_label_means_first_exit() -> None:
    text = "jeq %r1, 1, exit\nmov %r0, 2\nexit\nmov %r0, 3\nexit\n"
    assert assemble_text(text, "conformance")[0] == b.jeq(R1, 1, 1)
    # a defined label named exit wins
    text = "ja exit\nexit\nexit:\nexit\n"
    assert assemble_text(text, "conformance")[0] == b.ja(1)


def test_local_call_and_helper_names() -> None:
    text = "call local f\nexit\nf:\nmov %r0, 1\nexit\n"
    assert assemble_text(text, "conformance")[0] == b.call_local(1)
    assert assemble_text("call f\nexit\nf:\nexit\n", "llvm")[0] == b.call_local(1)
    assert assemble_text("call bpf_map_update_elem\n", "llvm") == [b.call(2)]


def test_comments_blank_lines_and_crlf() -> None:
    text = (
        "# leading comment\r\n\r\n   \r\n"
        "mov %r0, 1 # trailing\r\n"
        "add %r0, 2 ; semicolon\r\n"
        "add %r0, 3 // slashes\r\n"
        "exit\r\n"
    )
    assert assemble_text(text, "conformance") == [
        b.mov64(R0, 1),
        b.add64(R0, 2),
        b.add64(R0, 3),
        b.exit_(),
    ]
    assert assemble_text("", "conformance") == []
    assert assemble_text("\n# only comments\n", "llvm") == []


@pytest.mark.parametrize(
    ("text", "imm"),
    [
        ("mov %r0, 10", 10),
        ("mov %r0, 0x10", 16),
        ("mov %r0, 0X1f", 31),
        ("mov %r0, -5", -5),
        ("mov %r0, -0x80000000", -(1 << 31)),
        ("mov %r0, 0xffffffff", -1),
        ("mov %r0, 4294967295", -1),
        ("mov %r0, +7", 7),
    ],
)
def test_numbers(text: str, imm: int) -> None:
    assert one(text, "conformance").imm == imm


def test_guess_dialect() -> None:
    assert guess_dialect("mov %r0, 1\nexit") == "conformance"
    assert guess_dialect("L1:\nldxw %r0, [%r1]\n") == "conformance"
    assert guess_dialect("exit\nlock fetch add [%r1], %r2") == "conformance"
    assert guess_dialect("r0 = 1\nexit") == "llvm"
    assert guess_dialect("# c\ngoto +1\nexit") == "llvm"
    assert guess_dialect("exit") == "llvm"
    assert guess_dialect("call local f\nf:\nexit") == "conformance"


# ---------------------------------------------------------------------------------------
# Errors: AsmError with line, column and the offending text

ERRORS = [
    ("foo %r1", "conformance", "unknown mnemonic 'foo'", 1, 1, "foo"),
    ("exit\n  frob r1", "llvm", "unknown mnemonic 'frob'", 2, 3, "frob"),
    ("mov 5, %r1", "conformance", "expected register", 1, 5, "5"),
    ("r1 += ", "llvm", "expected register or immediate", 1, 7, "r1 +="),
    ("mov %r11, 1", "conformance", "expected register", 1, 6, "r11"),
    (
        "mov32 %r0, 0x1ffffffff",
        "conformance",
        "immediate 0x1ffffffff does not fit in 32 bits",
        1,
        12,
        "0x1ffffffff",
    ),
    ("add %r0, -0x80000001", "conformance", "does not fit in 32 bits", 1, 10, "-0x80000001"),
    (
        "r0 = 0x1ffffffff",
        "llvm",
        "does not fit in 32 bits (write 'r0 = 0x1ffffffff ll'",
        1,
        6,
        "0x1ffffffff",
    ),
    ("lddw %r0, 0x10000000000000000", "conformance", "does not fit in 64 bits", 1, 11, None),
    ("ja x", "conformance", "undefined label 'x'", 1, 4, "x"),
    ("exit\ngoto nowhere", "llvm", "undefined label 'nowhere'", 2, 6, "nowhere"),
    ("L:\nL:\nexit", "llvm", "label 'L' defined twice", 2, 1, "L"),
    (
        "ldxw %r0, [%r1+40000]",
        "conformance",
        "offset 40000 does not fit in 16 bits",
        1,
        15,
        "40000",
    ),
    ("ja +40000", "conformance", "does not fit in 16 bits", 1, 4, None),
    ("r1 += w2", "llvm", "expected a 64-bit register", 1, 7, "w2"),
    ("w1 = (s32)w2", "llvm", "s8 or s16", 1, 7, "s32"),
    ("r0 = xchg_64(r10 - 8, r1)", "llvm", "returns into its value register", 1, 23, "r1"),
    ("r1 = *(u8 *)skb[0]", "llvm", "always write r0", 1, 1, None),
    ("jeq %r1, 1, +1 extra", "conformance", "unexpected 'extra'", 1, 16, "extra"),
    ("if r1 > r2 goto", "llvm", "expected a jump target", 1, 16, None),
    ("r1 = 1 @", "llvm", "unexpected character '@'", 1, 8, "@"),
    ("lock fetch xchg [%r1], %r2", "conformance", "unknown atomic operation", 1, 12, None),
    ("ldxsdw %r0, [%r1]", "conformance", "unknown mnemonic", 1, 1, None),
    ("mov %r0, 12ab", "conformance", "invalid number", 1, 10, "12ab"),
    ("lddw %r1, map_value(5)", "conformance", "takes two arguments", 1, 11, None),
    ("r1 = 0x1 ll\nw1 = 0x1 ll", "llvm", "64-bit register", 2, 1, None),
]


@pytest.mark.parametrize(
    ("text", "dialect", "msg", "line", "col", "tok"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_errors(
    text: str,
    dialect: str,
    msg: str,
    line: int,
    col: int,
    tok: str | None,
) -> None:
    with pytest.raises(AsmError) as ei:
        assemble_text(text, dialect)
    e = ei.value
    assert msg in e.msg
    assert (e.line, e.column) == (line, col)
    if tok is not None:
        assert e.text == tok
    assert str(e).startswith(f"line {line}, column {col}: ")


def test_bad_dialect_and_non_text() -> None:
    with pytest.raises(ValueError):
        assemble_text("exit", "gnu")
    with pytest.raises(AsmError):
        assemble_text(b"exit", "llvm")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# The conformance vectors


@pytest.fixture(scope="module")
def cases():
    return load_cases()


def test_every_conformance_vector_assembles(cases) -> None:
    assert len(cases) == EXPECTED_COUNT
    for case in cases:
        assert case.program, case.name
        assert case.result is not None, case.name
        text = asm_text(case.path)
        assert assemble_text(text, "auto") == assemble_text(text, "conformance"), case.name


def test_asm_section_matches_raw_section(cases) -> None:
    (case,) = [c for c in cases if c.name == "lddw"]
    assert assemble_text(asm_text(case.path), "conformance") == case.program
    assert encode(case.program) == struct.pack("<QQQ", 0x5566778800000018, 0x1122334400000000, 0x95)


# ---------------------------------------------------------------------------------------
# Fuzzing: any text gives instructions or an AsmError, nothing else

_PIECES = list("r w%0123456789x+-*()[],:#;/=<>&|^!slkbfgotcaexiquR_.\t\n\r") + [
    "r1",
    "w2",
    "%r3",
    " = ",
    "goto ",
    "if ",
    "call ",
    "lock ",
    "*(u32 *)",
    "(r10 - 0x8)",
    "skb[",
    " ll",
    "0x",
    "exit",
    "mov ",
    "lddw ",
    "func(",
    "map_value(",
    "atomic_fetch_add(",
    "xchg_64(",
    "cmpxchg32_32(",
    "(s8)",
    "be16 ",
    "jeq ",
    "local ",
    "runtime ",
    "pc+",
    "kfunc(",
    "L1:",
    "\u2028",
    "\u00b2",
    "\u0663",
    "99999999999999999999999",
    "0" * 5000,
    "\x00",
]
_TEXTS = st.one_of(
    st.text(max_size=80), st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)
)


def _only_asm_errors(text: str) -> None:
    for dialect in ("llvm", "conformance", "auto"):
        try:
            insns = assemble_text(text, dialect)
        except AsmError as e:
            assert e.line is not None and e.line >= 1
            assert e.column is None or e.column >= 1
        else:
            encode(insns)  # whatever assembles is a valid encoding


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXTS)
def test_fuzz_random_text_only_asm_error(text: str) -> None:
    _only_asm_errors(text)


@settings(max_examples=400, deadline=None)
@given(valid_instruction(), st.data())
def test_fuzz_mutated_listing_only_asm_error(insn: Instruction, data) -> None:
    for dialect in ("llvm", "conformance"):
        text = format_insn(insn, dialect)
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 3)))
        ins = data.draw(
            st.sampled_from(
                ["", "x", "-", "9", " ", ",", "(", "w", "%", "0x", "99999999999", ":", "#"]
            )
        )
        _only_asm_errors(text[:i] + ins + text[j:])


# ---------------------------------------------------------------------------------------
# Loader


def test_read_program_formats(tmp_path) -> None:
    code = encode([b.mov64(R0, 1), b.exit_()])
    raw = tmp_path / "p.bin"
    raw.write_bytes(code)
    txt = tmp_path / "p.s"
    txt.write_text("mov %r0, 1\nexit\n")
    llvm = tmp_path / "p.txt"
    llvm.write_text("r0 = 1\nexit\n")
    expected = [b.mov64(R0, 1), b.exit_()]
    assert read_program(str(raw)) == expected
    assert read_program(str(raw), "raw") == expected
    assert read_program(str(txt)) == expected
    assert read_program(str(llvm), "asm", "llvm") == expected
    elf = tmp_path / "p.o"
    elf.write_bytes(b"\x7fELF" + bytes(60))
    with pytest.raises(NotSupported, match="bpfkit.obj"):
        read_program(str(elf))
    bad = tmp_path / "bad.s"
    bad.write_bytes(b"exit\n\xff\xfe\n")
    with pytest.raises(AsmError) as ei:
        read_program(str(bad), "asm")
    assert (ei.value.line, ei.value.column) == (2, 1)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(code[:12])
    with pytest.raises(DecodeError):
        read_program(str(odd))
    with pytest.raises(BpfError, match="cannot read"):
        read_program(str(tmp_path / "missing"))
    with pytest.raises(BpfError, match="unknown program format"):
        read_program(str(raw), "hex")


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("aa bb cc", b"\xaa\xbb\xcc"),
        ("aabbcc", b"\xaa\xbb\xcc"),
        ("0xaa,0xbb", b"\xaa\xbb"),
        ("0xaa, 0xbb\n0x1", b"\xaa\xbb\x01"),
        ("AA\tBB\n", b"\xaa\xbb"),
        ("", b""),
        ("00 00 c0 9f", b"\x00\x00\xc0\x9f"),
    ],
)
def test_parse_hex(text: str, data: bytes) -> None:
    assert parse_hex(text) == data


@pytest.mark.parametrize("text", ["abc", "zz", "0x", "0xabc", "aa g0"])
def test_parse_hex_errors(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_hex(text)


# ---------------------------------------------------------------------------------------
# CLI: bpfkit asm


def test_cli_asm(tmp_path) -> None:
    src = tmp_path / "p.s"
    src.write_text("mov %r0, 1\nexit\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["asm", str(src)])
    assert res.exit_code == 0, res.output
    assert parse_hex(res.output) == encode([b.mov64(R0, 1), b.exit_()])
    out = tmp_path / "p.bin"
    res = runner.invoke(cli, ["asm", str(src), "-o", str(out), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output) == {
        "insns": 2,
        "bytes": out.read_bytes().hex(),
        "output": str(out),
    }
    res = runner.invoke(cli, ["asm", str(src), "--dialect", "conformance", "--json"])
    assert json.loads(res.output)["output"] is None


def test_cli_asm_errors(tmp_path) -> None:
    src = tmp_path / "bad.s"
    src.write_text("exit\nmov32 %r0, 0x1ffffffff\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["asm", str(src)])
    assert res.exit_code == 2
    assert "line 2, column 12" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["asm", str(src), "--json"])
    assert res.exit_code == 2
    assert "does not fit in 32 bits" in json.loads(res.output)["error"]
    res = runner.invoke(cli, ["asm", str(tmp_path / "missing.s"), "--json"])
    assert res.exit_code == 2 and "cannot read" in json.loads(res.output)["error"]
