"""The BPF instruction set as data: opcodes, instructions, encode/decode, builders."""

from . import opcodes
from .builders import *  # noqa: F403
from .builders import Label, Reg, assemble
from .instruction import Instruction, check, decode, encode, slot_positions

__all__ = [
    "opcodes",
    "Instruction",
    "check",
    "decode",
    "encode",
    "slot_positions",
    "Label",
    "Reg",
    "assemble",
]
