"""ELF objects → :class:`ObjectSpec`: programs, maps, globals, externs, BTF (no side effects)."""

from typing import TYPE_CHECKING

from .._lazy import exports

if TYPE_CHECKING:
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

# Names come from their modules on first use (PEP 562): the kernel backend imports the
# spec classes without the parser, the parser without the section table's users.
_HOME = {"load_object": "loader", "SectionDef": "sections", "SECTION_DEFS": "sections"}
_HOME["match_section"] = "sections"


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

__getattr__, __dir__ = exports(__name__, {**dict.fromkeys(__all__, "spec"), **_HOME})
