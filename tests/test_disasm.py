"""Disassembler tests: per-class text in both dialects, round trips, and llvm cross-checks."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conformance_data import load_cases
from hypothesis import given, settings
from strategies import valid_instruction, valid_program

from bpfkit.cli.main import cli
from bpfkit.isa import builders as b
from bpfkit.isa import opcodes as op
from bpfkit.isa.asm import assemble_text
from bpfkit.isa.builders import R0, R1, R2, R3, R9, R10, Label
from bpfkit.isa.disasm import branch_target, disassemble, format_insn
from bpfkit.isa.instruction import Instruction, decode, encode, slot_positions

I = Instruction
C_DIR = Path(__file__).parent / "c"
CLANG, OBJDUMP, LLVM_MC = "clang-19", "llvm-objdump-19", "llvm-mc-19"
HAVE_LLVM = all(shutil.which(t) for t in (CLANG, OBJDUMP, LLVM_MC))
needs_llvm = pytest.mark.skipif(
    not HAVE_LLVM, reason="clang-19/llvm-objdump-19/llvm-mc-19 are not installed"
)

# (instruction, llvm text as llvm-objdump-19 prints it, conformance text)
TABLE = [
    (b.mov64(R0, 1), "r0 = 0x1", "mov %r0, 1"),
    (b.mov64(R0, -1), "r0 = -0x1", "mov %r0, -1"),
    (b.mov32(R1, 0x7FFFFFFF), "w1 = 0x7fffffff", "mov32 %r1, 0x7fffffff"),
    (b.add64(R1, R2), "r1 += r2", "add %r1, %r2"),
    (b.add32(R1, -0x80000000), "w1 += -0x80000000", "add32 %r1, -0x80000000"),
    (b.sub64(R1, 10), "r1 -= 0xa", "sub %r1, 10"),
    (b.mul32(R1, R2), "w1 *= w2", "mul32 %r1, %r2"),
    (b.div64(R1, 0), "r1 /= 0x0", "div %r1, 0"),
    (b.or64(R1, 255), "r1 |= 0xff", "or %r1, 255"),
    (b.and32(R1, R2), "w1 &= w2", "and32 %r1, %r2"),
    (b.lsh64(R1, 32), "r1 <<= 0x20", "lsh %r1, 32"),
    (b.rsh32(R1, R2), "w1 >>= w2", "rsh32 %r1, %r2"),
    (b.mod64(R1, R2), "r1 %= r2", "mod %r1, %r2"),
    (b.xor32(R1, 3), "w1 ^= 0x3", "xor32 %r1, 3"),
    (b.arsh64(R1, R2), "r1 s>>= r2", "arsh %r1, %r2"),
    (b.arsh32(R1, 3), "w1 s>>= 0x3", "arsh32 %r1, 3"),
    (b.neg64(R1), "r1 = -r1", "neg %r1"),
    (b.neg32(R0), "w0 = -w0", "neg32 %r0"),
    (b.sdiv64(R1, R2), "r1 s/= r2", "sdiv %r1, %r2"),
    (b.sdiv32(R1, 7), "w1 s/= 0x7", "sdiv32 %r1, 7"),
    (b.smod64(R1, 7), "r1 s%= 0x7", "smod %r1, 7"),
    (b.smod32(R1, R2), "w1 s%= w2", "smod32 %r1, %r2"),
    (b.mov64(R1, R2), "r1 = r2", "mov %r1, %r2"),
    (b.mov32(R1, R2), "w1 = w2", "mov32 %r1, %r2"),
    (b.movsx64(R1, R2, 8), "r1 = (s8)r2", "movsx864 %r1, %r2"),
    (b.movsx64(R1, R2, 32), "r1 = (s32)r2", "movsx3264 %r1, %r2"),
    (b.movsx32(R1, R2, 16), "w1 = (s16)w2", "movsx1632 %r1, %r2"),
    (b.be(R1, 16), "r1 = be16 r1", "be16 %r1"),
    (b.le(R1, 64), "r1 = le64 r1", "le64 %r1"),
    (b.bswap(R1, 32), "r1 = bswap32 r1", "bswap32 %r1"),
    (b.ldx(4, R1, R2, 4), "r1 = *(u32 *)(r2 + 0x4)", "ldxw %r1, [%r2+4]"),
    (b.ldx(8, R1, R10, -8), "r1 = *(u64 *)(r10 - 0x8)", "ldxdw %r1, [%r10-8]"),
    (b.ldx(1, R1, R2, 0), "r1 = *(u8 *)(r2 + 0x0)", "ldxb %r1, [%r2]"),
    (b.ldxs(2, R1, R2, -4), "r1 = *(s16 *)(r2 - 0x4)", "ldxsh %r1, [%r2-4]"),
    (b.st(4, R10, -8, 5), "*(u32 *)(r10 - 0x8) = 0x5", "stw [%r10-8], 5"),
    (b.st(8, R10, 0, -1), "*(u64 *)(r10 + 0x0) = -0x1", "stdw [%r10], -1"),
    (b.stx(2, R10, -8, R1), "*(u16 *)(r10 - 0x8) = r1", "stxh [%r10-8], %r1"),
    (b.stx(1, R1, 0x7FFF, R1), "*(u8 *)(r1 + 0x7fff) = r1", "stxb [%r1+32767], %r1"),
    (
        b.atomic(8, op.ATOMIC_ADD, R10, -8, R1),
        "lock *(u64 *)(r10 - 0x8) += r1",
        "lock add [%r10-8], %r1",
    ),
    (
        b.atomic(8, op.ATOMIC_XOR, R10, -8, R1),
        "lock *(u64 *)(r10 - 0x8) ^= r1",
        "lock xor [%r10-8], %r1",
    ),
    (
        b.atomic(4, op.ATOMIC_OR, R10, -8, R1),
        "lock *(u32 *)(r10 - 0x8) |= w1",
        "lock or32 [%r10-8], %r1",
    ),
    (
        b.atomic(8, op.ATOMIC_AND | op.FETCH, R10, -8, R1),
        "r1 = atomic_fetch_and((u64 *)(r10 - 0x8), r1)",
        "lock fetch and [%r10-8], %r1",
    ),
    (
        b.atomic(4, op.ATOMIC_ADD | op.FETCH, R1, 0, R2),
        "w2 = atomic_fetch_add((u32 *)(r1 + 0x0), w2)",
        "lock fetch add32 [%r1], %r2",
    ),
    (b.atomic(8, op.XCHG, R10, -8, R1), "r1 = xchg_64(r10 - 0x8, r1)", "lock xchg [%r10-8], %r1"),
    (
        b.atomic(4, op.XCHG, R10, -8, R1),
        "w1 = xchg32_32(r10 - 0x8, w1)",
        "lock xchg32 [%r10-8], %r1",
    ),
    (
        b.atomic(8, op.CMPXCHG, R10, -8, R1),
        "r0 = cmpxchg_64(r10 - 0x8, r0, r1)",
        "lock cmpxchg [%r10-8], %r1",
    ),
    (
        b.atomic(4, op.CMPXCHG, R10, -8, R1),
        "w0 = cmpxchg32_32(r10 - 0x8, w0, w1)",
        "lock cmpxchg32 [%r10-8], %r1",
    ),
    (b.lddw(R1, 0x1122334455667788), "r1 = 0x1122334455667788 ll", "lddw %r1, 0x1122334455667788"),
    (b.lddw(R2, -1), "r2 = -0x1 ll", "lddw %r2, 0xffffffffffffffff"),
    (b.ld_map_fd(R1, 5), "r1 = map_fd(0x5) ll", "lddw %r1, map_fd(5)"),
    (b.ld_map_value(R1, 5, 16), "r1 = map_value(0x5, 0x10) ll", "lddw %r1, map_value(5, 16)"),
    (b.lddw(R1, 7, op.PSEUDO_BTF_ID), "r1 = btf_id(0x7) ll", "lddw %r1, btf_id(7)"),
    (b.ld_func(R1, -3), "r1 = func(-0x3) ll", "lddw %r1, func(-3)"),
    (b.lddw(R1, 1, op.PSEUDO_MAP_IDX), "r1 = map_idx(0x1) ll", "lddw %r1, map_idx(1)"),
    (
        b.lddw(R1, 8 << 32, op.PSEUDO_MAP_IDX_VALUE),
        "r1 = map_idx_value(0x0, 0x8) ll",
        "lddw %r1, map_idx_value(0, 8)",
    ),
    (b.ld_abs(4, 12), "r0 = *(u32 *)skb[0xc]", "ldabsw 12"),
    (b.ld_abs(1, -4), "r0 = *(u8 *)skb[-0x4]", "ldabsb -4"),
    (b.ld_ind(2, R1, 0), "r0 = *(u16 *)skb[r1]", "ldindh %r1, 0"),
    (b.ld_ind(2, R1, 4), "r0 = *(u16 *)skb[r1 + 0x4]", "ldindh %r1, 4"),
    (b.jgt(R1, 2, 3), "if r1 > 0x2 goto +0x3", "jgt %r1, 2, +3"),
    (b.jeq(R1, R2, -1), "if r1 == r2 goto -0x1", "jeq %r1, %r2, -1"),
    (b.jset(R1, R2, 1), "if r1 & r2 goto +0x1", "jset %r1, %r2, +1"),
    (b.jsle(R1, -5, 0), "if r1 s<= -0x5 goto +0x0", "jsle %r1, -5, +0"),
    (b.jslt32(R1, R2, -1), "if w1 s< w2 goto -0x1", "jslt32 %r1, %r2, -1"),
    (b.jne32(R1, 0xB, 4), "if w1 != 0xb goto +0x4", "jne32 %r1, 11, +4"),
    (b.ja(5), "goto +0x5", "ja +5"),
    (b.ja(-1), "goto -0x1", "ja -1"),
    (b.gotol(100000), "gotol +0x186a0", "ja32 +100000"),
    (b.call(5), "call 0x5", "call 5"),
    (b.call_local(3), "call pc+0x3", "call local +3"),
    (b.call_local(-1), "call pc-0x1", "call local -1"),
    (b.call_kfunc(77), "call kfunc(0x4d)", "call runtime 77"),
    (b.call_kfunc(77, 2), "call kfunc(0x4d, 0x2)", "call runtime 77, 2"),
    (b.callx(R2), "callx r2", "call %r2"),
    (b.exit_(), "exit", "exit"),
]
IDS = [t[2] for t in TABLE]


@pytest.mark.parametrize(("insn", "llvm", "conf"), TABLE, ids=IDS)
def test_format_per_class(insn: Instruction, llvm: str, conf: str) -> None:
    assert format_insn(insn) == llvm
    assert format_insn(insn, "llvm") == llvm
    assert format_insn(insn, "conformance") == conf
    assert str(insn) == llvm
    assert assemble_text(llvm, "llvm") == [insn]
    assert assemble_text(conf, "conformance") == [insn]


def test_labels_and_refs() -> None:
    jmp = b.jgt(R1, 2, 3)
    assert format_insn(jmp, pc=10, labels={14: "out"}) == "if r1 > 0x2 goto out"
    assert format_insn(jmp, "conformance", pc=10, labels={14: "out"}) == "jgt %r1, 2, out"
    assert format_insn(jmp, pc=10, labels={13: "x"}) == "if r1 > 0x2 goto +0x3"
    assert format_insn(jmp, labels={14: "out"}) == "if r1 > 0x2 goto +0x3"  # no pc
    assert format_insn(b.call_local(2), pc=0, labels={3: "f"}) == "call f"
    assert format_insn(b.call_local(2), "conformance", pc=0, labels={3: "f"}) == "call local f"
    assert format_insn(b.ld_func(R1, 2), pc=0, labels={3: "f"}) == "r1 = func(f) ll"
    assert format_insn(b.gotol(2), "conformance", pc=0, labels={3: "f"}) == "ja32 f"
    # unresolved builder references print their label name
    assert format_insn(b.jeq(R1, 0, "done")) == "if r1 == 0x0 goto done"
    assert format_insn(b.ja("top"), "conformance") == "ja top"


def test_invalid_instructions_print_without_raising() -> None:
    bad = [I(0x8E, 1), I(0xFF, 15, 15, -1, -1), I(op.LDDW, 1, 9), I(0x07, 11, 0, 0, 1 << 40)]
    for insn in bad:
        for dialect in ("llvm", "conformance"):
            assert format_insn(insn, dialect).startswith("<invalid: ")
        assert str(insn)
    with pytest.raises(ValueError):
        format_insn(b.exit_(), "att")


def test_disassemble_with_labels() -> None:
    prog = b.assemble(
        [
            b.mov64(R0, 0),
            Label("loop"),
            b.add64(R0, 1),
            b.lddw(R3, 1 << 40),
            b.jlt(R0, 10, "loop"),
            b.call_local("f"),
            b.jeq(R0, 0, "end"),
            b.exit_(),
            Label("f"),
            b.mov64(R0, 7),
            b.exit_(),
            Label("end"),
        ]
    )
    text = disassemble(prog)
    assert text == (
        "r0 = 0x0\n"
        "L1:\n"
        "r0 += 0x1\n"
        "r3 = 0x10000000000 ll\n"
        "if r0 < 0xa goto L1\n"
        "call L8\n"
        "if r0 == 0x0 goto L10\n"
        "exit\n"
        "L8:\n"
        "r0 = 0x7\n"
        "exit\n"
        "L10:\n"
    )
    assert assemble_text(text, "llvm") == prog
    conf = disassemble(prog, "conformance")
    assert "jlt %r0, 10, L1\ncall local L8\n" in conf
    assert assemble_text(conf, "conformance") == prog
    plain = disassemble(prog, labels=False)
    assert "goto -0x4" in plain and "L1" not in plain
    assert assemble_text(plain, "llvm") == prog
    assert disassemble([]) == ""


def test_disassemble_jump_into_lddw_keeps_relative_offset() -> None:
    prog = [b.ja(1), b.lddw(R1, 5), b.exit_()]  # target slot 2 is lddw's second half
    text = disassemble(prog)
    assert "goto +0x1" in text
    assert assemble_text(text, "llvm") == prog


def test_helper_names() -> None:
    prog = [b.call(1), b.call(5), b.call(0x7FFF0000), b.exit_()]
    text = disassemble(prog, helper_names=True)
    assert text.splitlines()[:3] == [
        "call 0x1 # bpf_map_lookup_elem",
        "call 0x5 # bpf_ktime_get_ns",
        "call 0x7fff0000",
    ]
    assert assemble_text(text, "llvm") == prog
    conf = disassemble(prog, "conformance", helper_names=True)
    assert conf.splitlines()[0] == "call 1 # bpf_map_lookup_elem"
    assert assemble_text(conf, "conformance") == prog


def test_conformance_vectors_round_trip_both_dialects() -> None:
    cases = load_cases()
    assert len(cases) == 313
    for case in cases:
        code = encode(case.program)
        for dialect in ("llvm", "conformance"):
            for labels in (True, False):
                text = disassemble(case.program, dialect, labels=labels)
                assert encode(assemble_text(text, dialect)) == code, (case.name, dialect)
            assert assemble_text(disassemble(case.program, dialect), "auto") == case.program


# ---------------------------------------------------------------------------------------
# Properties


@settings(max_examples=400, deadline=None)
@given(valid_instruction())
def test_property_encode_decode(insn: Instruction) -> None:
    assert decode(insn.encode()) == [insn]


@settings(max_examples=400, deadline=None)
@given(valid_instruction())
def test_property_format_assemble(insn: Instruction) -> None:
    for dialect in ("llvm", "conformance"):
        text = format_insn(insn, dialect)
        assert assemble_text(text, dialect) == [insn], text
        assert assemble_text(text, "auto") == [insn], text


@settings(max_examples=150, deadline=None)
@given(valid_program())
def test_property_program_round_trip(prog: list[Instruction]) -> None:
    code = encode(prog)
    assert decode(code) == prog
    for dialect in ("llvm", "conformance"):
        text = disassemble(prog, dialect, helper_names=True)
        assert assemble_text(text, dialect) == prog, text


@settings(max_examples=50, deadline=None)
@given(valid_program(backward=False))
def test_valid_program_forward_only(prog: list[Instruction]) -> None:
    starts = slot_positions(prog)
    for insn, pc in zip(prog, starts, strict=True):
        target = branch_target(insn, pc)
        if target is not None:
            assert target > pc and target in starts
    assert prog[-1].is_exit


# ---------------------------------------------------------------------------------------
# LLVM cross-checks


def _objdump(path: Path, *args: str) -> str:
    return subprocess.run(
        [OBJDUMP, *args, str(path)], capture_output=True, text=True, check=True
    ).stdout


def _objdump_sections(output: str) -> dict[str, list[str]]:
    """objdump output split by ``Disassembly of section NAME:``."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        m = re.match(r"Disassembly of section (\S+):$", line)
        if m:
            current = sections.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    return sections


def _insn_lines(lines: list[str]) -> dict[int, str]:
    """slot → instruction text of ``--no-show-raw-insn`` lines."""
    out = {}
    for line in lines:
        m = re.match(r"\s*(\d+):\t(.*)$", line)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def _ours_as_llvm_prints(insn: Instruction) -> str:
    """Our llvm-dialect text, minus the one addition llvm cannot print (``call pc+N``)."""
    text = format_insn(insn, "llvm")
    if insn.is_local_call:
        text = "call " + text.removeprefix("call pc").lstrip("+")
    return text


def _llvm_text(line: str) -> str:
    """llvm's text minus the ``<sym+off>`` annotation of branch targets."""
    return re.sub(r"\s<[^<>]*>$", "", line) if "goto" in line else line


@pytest.fixture(scope="module")
def clang_objects(tmp_path_factory) -> list[Path]:
    if not HAVE_LLVM:
        pytest.skip("clang-19/llvm-objdump-19 are not installed")
    out = tmp_path_factory.mktemp("clang")
    objs = []
    sources = sorted(C_DIR.glob("asm_*.c"))
    assert len(sources) >= 3
    for src in sources:
        for cpu in ("v3", "v4"):
            obj = out / f"{src.stem}_{cpu}.o"
            subprocess.run(
                [
                    CLANG,
                    "-O2",
                    "-g",
                    "-target",
                    "bpf",
                    f"-mcpu={cpu}",
                    "-c",
                    str(src),
                    "-o",
                    str(obj),
                ],
                check=True,
                capture_output=True,
            )
            objs.append(obj)
    return objs


def _exec_sections(obj: Path) -> dict[str, bytes]:
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    with obj.open("rb") as f:
        elf = ELFFile(f)
        return {
            s.name: s.data()
            for s in elf.iter_sections()
            if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s.data_size
        }


@needs_llvm
def test_llvm_objdump_text_equals_ours(clang_objects: list[Path]) -> None:
    """Line for line against ``llvm-objdump-19 -d --no-show-raw-insn``.

    32-bit atomics are compared with ``--mcpu=v4`` output (plain objdump prints them as
    ``<unknown>``, or fetch-add as a plain add); local calls compare without our ``pc``.
    """
    seen = set()
    for obj in clang_objects:
        plain = _objdump_sections(_objdump(obj, "-d", "--no-show-raw-insn"))
        alu32 = _objdump_sections(_objdump(obj, "-d", "--no-show-raw-insn", "--mcpu=v4"))
        for name, code in _exec_sections(obj).items():
            theirs, theirs32 = _insn_lines(plain[name]), _insn_lines(alu32[name])
            insns = decode(code)
            assert sorted(theirs) == slot_positions(insns)
            for insn, pc in zip(insns, slot_positions(insns), strict=True):
                want = (theirs32 if insn.opcode == op.STX | op.ATOMIC | op.W else theirs)[pc]
                assert _ours_as_llvm_prints(insn) == _llvm_text(want), (obj.name, name, pc)
                seen.add(insn.opcode if not insn.is_local_call else "local")
    # the C sources exercise what they claim to
    for needed in (
        op.ALU64 | op.DIV | op.K,
        op.LDX | op.MEMSX | op.B,
        op.STX | op.ATOMIC | op.W,
        op.STX | op.ATOMIC | op.DW,
        op.ALU64 | op.END,
        op.JMP32 | op.JLT | op.K,
        op.LD | op.ABS | op.H,
        op.LD | op.IND | op.B,
        op.LDDW,
        "local",
    ):
        assert needed in seen, needed


@needs_llvm
def test_assembling_llvm_objdump_output_gives_section_bytes(clang_objects: list[Path]) -> None:
    """``llvm-objdump-19 -dr --mcpu=v4`` text (with and without raw bytes) assembles back."""
    for obj in clang_objects:
        plain = _objdump_sections(_objdump(obj, "-dr", "--no-show-raw-insn", "--mcpu=v4"))
        raw = _objdump_sections(_objdump(obj, "-dr", "--mcpu=v4"))
        for name, code in _exec_sections(obj).items():
            for listing in (plain[name], raw[name]):
                got = encode(assemble_text("\n".join(listing), "llvm"))
                assert got == code, (obj.name, name)
            assert encode(assemble_text("\n".join(plain[name]), "auto")) == code


def _every_kind() -> list[Instruction]:
    """One or more instances of every instruction kind llvm's disassembler prints."""
    out: list[Instruction] = []
    for cls in (op.ALU, op.ALU64):
        for aop in (
            op.ADD,
            op.SUB,
            op.MUL,
            op.DIV,
            op.OR,
            op.AND,
            op.LSH,
            op.RSH,
            op.MOD,
            op.XOR,
            op.MOV,
            op.ARSH,
        ):
            out += [I(cls | aop | op.K, 3, 0, 0, v) for v in (0, 1, -1, 0x7FFFFFFF, -(1 << 31))]
            out.append(I(cls | aop | op.X, 10, 9))
        out += [
            I(cls | op.DIV | op.K, 1, 0, 1, -7),
            I(cls | op.MOD | op.X, 1, 2, 1),
            I(cls | op.NEG, 4),
        ]
        out += [I(cls | op.MOV | op.X, 1, 2, bits) for bits in (8, 16)]
    out.append(I(op.ALU64 | op.MOV | op.X, 1, 2, 32))
    for bits in (16, 32, 64):
        out += [b.be(R1, bits), b.le(R1, bits), b.bswap(R1, bits)]
    for size in (1, 2, 4, 8):
        out += [
            b.ldx(size, R1, R10, -8),
            b.ldx(size, R0, R1, 0x7FFF),
            b.st(size, R10, -8, -2),
            b.stx(size, R1, -0x8000, R2),
        ]
        if size < 8:
            out += [b.ldxs(size, R1, R2, 3), b.ld_abs(size, 12), b.ld_ind(size, R3, 0)]
    for size in (4, 8):
        out += [b.atomic(size, a, R10, -8, R1 if a != op.CMPXCHG else R2) for a in op.ATOMIC_OPS]
    for jop in op.COND_JUMPS:
        for cls in (op.JMP, op.JMP32):
            out += [I(cls | jop | op.K, 1, 0, 3, -5), I(cls | jop | op.X, 1, 2, -1)]
    out += [
        b.ja(0),
        b.ja(-0x8000),
        b.gotol(-(1 << 31)),
        b.call(5),
        b.call(-1),
        b.callx(R3),
        b.exit_(),
        b.lddw(R1, 0x8000000000000000),
        b.lddw(R9, 5),
    ]
    return out


@needs_llvm
def test_every_kind_matches_llvm_mc_round_trip(tmp_path: Path) -> None:
    """Encode every kind, let llvm-mc/llvm-objdump print it, compare with our printer."""
    insns = _every_kind()
    code = encode(insns)
    src = tmp_path / "kinds.s"
    src.write_text(
        "\t.text\n" + "".join(f"\t.quad {v:#x}\n" for (v,) in struct.iter_unpack("<Q", code))
    )
    obj = tmp_path / "kinds.o"
    subprocess.run(
        [LLVM_MC, "-triple", "bpfel", "-filetype=obj", str(src), "-o", str(obj)],
        check=True,
        capture_output=True,
    )
    plain = _insn_lines(_objdump_sections(_objdump(obj, "-d", "--no-show-raw-insn"))[".text"])
    alu32 = _insn_lines(
        _objdump_sections(_objdump(obj, "-d", "--no-show-raw-insn", "--mcpu=v4"))[".text"]
    )
    for insn, pc in zip(insns, slot_positions(insns), strict=True):
        want = (alu32 if insn.opcode == op.STX | op.ATOMIC | op.W else plain)[pc]
        assert format_insn(insn) == _llvm_text(want), (pc, insn.raw_repr())
        assert assemble_text(want, "llvm") == [insn]


# ---------------------------------------------------------------------------------------
# CLI: bpfkit disasm


def test_cli_disasm(tmp_path: Path) -> None:
    prog = [b.mov64(R0, 1), b.jeq(R1, 0, 1), b.lddw(R2, 1 << 33), b.exit_()]
    raw = tmp_path / "p.bin"
    raw.write_bytes(encode(prog))
    runner = CliRunner()
    res = runner.invoke(cli, ["disasm", str(raw)])
    assert res.exit_code == 0, res.output
    assert assemble_text(res.output, "llvm") == prog
    res = runner.invoke(cli, ["disasm", str(raw), "--dialect", "conformance", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert [e["pc"] for e in data["insns"]] == [0, 1, 2, 4]
    assert data["insns"][0] == {"pc": 0, "text": "mov %r0, 1", "hex": "b700000001000000"}
    assert data["insns"][2]["hex"] == encode([prog[2]]).hex()
    assert assemble_text(data["listing"], "conformance") == prog
    src = tmp_path / "p.s"
    src.write_text("mov %r0, 1\nexit\n")
    res = runner.invoke(cli, ["disasm", str(src), "--format", "asm"])
    assert res.output == "r0 = 0x1\nexit\n"


def test_cli_disasm_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    odd = tmp_path / "odd.bin"
    odd.write_bytes(bytes(12))
    res = runner.invoke(cli, ["disasm", str(odd), "--format", "raw"])
    assert res.exit_code == 2 and "multiple of 8" in res.output
    res = runner.invoke(cli, ["disasm", str(odd), "--format", "raw", "--json"])
    assert res.exit_code == 2 and "error" in json.loads(res.output)
    res = runner.invoke(cli, ["disasm", str(odd), "--program", "x", "--format", "raw"])
    assert res.exit_code == 2 and "ELF" in res.output
    res = runner.invoke(cli, ["disasm", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "cannot read" in res.output


@needs_llvm
def test_cli_disasm_elf(clang_objects: list[Path]) -> None:
    """ELF input goes to bpfkit.obj.listing when present, else a clear exit-2 error."""
    runner = CliRunner()
    res = runner.invoke(cli, ["disasm", str(clang_objects[0])])
    try:
        import bpfkit.obj.listing  # noqa: F401
    except ModuleNotFoundError:
        assert res.exit_code == 2 and "ELF support" in res.output
    else:
        assert res.exit_code == 0, res.output
