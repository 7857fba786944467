"""What the checker's concern modules share: constants and small helpers."""

from __future__ import annotations

from ..isa import opcodes as op
from ..uapi.enums import ProgType
from .helpers_proto import PROTOS

BPF_MAX_VAR_OFF = 1 << 29

CALLER_SAVED = (1, 2, 3, 4, 5)
_CLS_JMP32, _CLS_ALU64 = op.JMP32, op.ALU64
_MOV, _X = op.MOV, op.X
_CALLBACK_HELPERS = {p.id for p in PROTOS.values() if p.callback}


def _ptname(pt: int) -> str:
    try:
        return ProgType(pt).name.lower()
    except ValueError:
        return f"type-{pt}"
