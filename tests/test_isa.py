"""Instruction encoding: validation of every field, decode errors naming the byte offset."""

from __future__ import annotations

import struct

import pytest

from bpfkit.errors import DecodeError, EncodeError
from bpfkit.isa import opcodes as op
from bpfkit.isa.builders import R0, R1, Label, assemble, exit_, ja, lddw, mov64
from bpfkit.isa.instruction import Instruction, check, decode, encode


def slot(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


EXIT = slot(op.EXIT_OP)


@pytest.mark.parametrize(
    "bad, reason",
    [
        (slot(0xFF), "unknown opcode"),
        (slot(0x06 | 0x80 | 0x08), "unknown opcode"),  # jmp32|call|x
        (slot(op.ALU64 | op.MOV | op.X, dst=11), "invalid destination register r11"),
        (slot(op.ALU64 | op.MOV | op.X, dst=1, src=12), "invalid source register r12"),
        (slot(op.ALU64 | op.ADD | op.K, dst=1, src=2, imm=1), "reserved source"),
        (slot(op.ALU64 | op.ADD | op.X, dst=1, src=2, imm=1), "reserved immediate"),
        (slot(op.ALU64 | op.ADD | op.K, dst=1, off=1), "reserved offset"),
        (slot(op.ALU64 | op.MOV | op.X, dst=1, src=2, off=7), "sign-extension width"),
        (slot(op.ALU | op.MOV | op.X, dst=1, src=2, off=32), "sign-extension width"),
        (slot(op.ALU | op.END, dst=1, imm=24), "byte swap"),
        (slot(op.ALU64 | op.END | op.X, dst=1, imm=16), "unknown opcode"),
        (slot(op.ALU64 | op.NEG, dst=1, imm=3), "reserved fields of neg"),
        (slot(op.JMP | op.JA, imm=1), "reserved immediate of ja"),
        (slot(op.JMP32 | op.JA, off=1), "reserved offset of gotol"),
        (slot(op.EXIT_OP, dst=1), "reserved fields of exit"),
        (slot(op.CALL_OP, dst=1, imm=1), "reserved destination of call"),
        (slot(op.CALL_OP, src=3, imm=1), "invalid call source"),
        (slot(op.JMP | op.JEQ | op.X, dst=1, src=2, imm=1), "reserved immediate"),
        (slot(op.LDX | op.MEM | op.W, dst=1, src=2, imm=1), "reserved immediate of a load"),
        (slot(op.LDX | op.MEMSX | op.DW, dst=1, src=2), "unknown opcode"),
        (slot(op.ST | op.MEM | op.W, dst=1, src=2), "reserved source"),
        (slot(op.STX | op.ATOMIC | op.B, dst=1, src=2), "atomic operation on a byte"),
        (slot(op.STX | op.ATOMIC | op.W, dst=1, src=2, imm=0x11), "unknown atomic operation"),
        (slot(op.LD | op.ABS | op.DW), "double word"),
        (slot(op.LD | op.ABS | op.W, src=1), "reserved fields"),
    ],
)
def test_invalid_encodings_name_reason_and_offset(bad, reason):
    data = EXIT + bad + EXIT
    with pytest.raises(DecodeError, match=reason) as e:
        decode(data)
    assert e.value.offset == 8
    assert "byte offset 8" in str(e.value)


def test_incomplete_lddw():
    with pytest.raises(DecodeError, match="incomplete lddw") as e:
        decode(EXIT + slot(op.LDDW, dst=1, imm=5))
    assert e.value.offset == 8


def test_lddw_second_slot_reserved_fields():
    with pytest.raises(DecodeError, match="second slot") as e:
        decode(slot(op.LDDW, dst=1, imm=5) + slot(0, dst=1) + EXIT)
    assert e.value.offset == 8


def test_lddw_bad_pseudo_source():
    with pytest.raises(DecodeError, match="lddw source"):
        decode(slot(op.LDDW, dst=1, src=7) + slot(0) + EXIT)


def test_length_not_multiple_of_8():
    with pytest.raises(DecodeError, match="multiple of 8"):
        decode(EXIT + b"\x00\x01\x02")


@pytest.mark.parametrize("pseudo", sorted(op.LDDW_PSEUDOS))
def test_lddw_every_pseudo_source_roundtrips(pseudo):
    insn = lddw(R1, 0x1122334455667788, pseudo)
    assert insn.slots == 2
    assert decode(insn.encode()) == [insn]


def test_lddw_is_one_instruction_of_two_slots():
    prog = assemble([ja("x"), lddw(R0, -1), Label("x"), exit_()])
    assert prog[0].off == 2
    assert decode(encode(prog)) == prog
    assert prog[1].imm == (1 << 64) - 1 and prog[1].imm_hi == 0xFFFFFFFF


def test_encode_rejects_bad_fields_and_unresolved_labels():
    with pytest.raises(EncodeError, match="unresolved"):
        ja("nowhere").encode()
    with pytest.raises(EncodeError, match="undefined label"):
        assemble([ja("nowhere")])
    with pytest.raises(EncodeError, match="out of 32-bit range"):
        Instruction(op.ALU64 | op.MOV | op.K, 1, 0, 0, 1 << 40).encode()
    with pytest.raises(EncodeError, match="does not fit"):
        mov64(R0, 1 << 40)
    assert check(mov64(R0, R1)) is None


def test_non_strict_decode_accepts_reserved_fields():
    insns = decode(slot(op.ALU64 | op.ADD | op.K, dst=1, src=2) + EXIT, strict=False)
    assert insns[0].src == 2
