"""ELF objects → :class:`ObjectSpec`: programs, maps, globals, externs, BTF (no side effects)."""

from .loader import load_object
from .sections import SECTION_DEFS, SectionDef, match_section
from .spec import (
    CoreRelocation,
    ExternSpec,
    FuncInfo,
    LineInfo,
    MapSpec,
    ObjectSpec,
    Pinning,
    ProgramSpec,
    Relocation,
    RelocKind,
    VariableSpec,
    line_for,
)

__all__ = [
    "load_object",
    "line_for",
    "ObjectSpec",
    "ProgramSpec",
    "MapSpec",
    "VariableSpec",
    "ExternSpec",
    "Relocation",
    "RelocKind",
    "CoreRelocation",
    "FuncInfo",
    "LineInfo",
    "Pinning",
    "SectionDef",
    "SECTION_DEFS",
    "match_section",
]
