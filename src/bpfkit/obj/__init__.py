"""ELF objects → :class:`ObjectSpec`: programs, maps, globals, externs, BTF (no side effects)."""

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    home = _HOME.get(name, "spec" if name in __all__ else None)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
