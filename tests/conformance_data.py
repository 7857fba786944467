"""The bpf_conformance test vectors (``shared/conformance/bpf_conformance/*.data``) as data.

Each file has sections introduced by ``-- name`` lines: ``asm`` (conformance-dialect
text), ``raw`` (64-bit slots, wins over ``asm``), ``mem`` (hex bytes), ``result`` (the
expected ``r0``), ``error``; ``c`` and ``no register offset`` are ignored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from bpfkit.isa.asm import assemble_text
from bpfkit.isa.instruction import Instruction, decode
from bpfkit.isa.loader import parse_hex

CONFORMANCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "bpf_conformance"
EXPECTED_COUNT = 313


@dataclass
class Case:
    """One conformance vector: its program, input memory and expected outcome."""

    name: str
    path: Path
    program: list[Instruction]
    mem: bytes
    result: int | None
    error: str | None


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped.startswith("--"):
            current = sections.setdefault(stripped[2:].strip(), [])
            continue
        if current is not None:
            current.append(raw)
    return sections


def _content(lines: list[str]) -> list[str]:
    """Non-empty lines with ``#`` comments removed."""
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def parse_case(path: Path) -> Case:
    """Parse one ``.data`` file; the program is assembled in the conformance dialect."""
    sections = _sections(path.read_text(encoding="utf-8"))
    if "raw" in sections:
        words = " ".join(_content(sections["raw"])).split()
        code = b"".join(struct.pack("<Q", int(w, 0) & ((1 << 64) - 1)) for w in words)
        program = decode(code)
    elif "asm" in sections:
        program = assemble_text("\n".join(sections["asm"]), "conformance")
    else:
        raise ValueError(f"{path.name}: no asm or raw section")
    mem = parse_hex(" ".join(_content(sections.get("mem", []))))
    result = None
    lines = _content(sections.get("result", []))
    if lines:
        last = lines[-1]
        result = int(last, 16) if "0x" in last.lower() else int(last)
        result &= (1 << 64) - 1
    error_lines = _content(sections.get("error", []))
    error = " ".join(error_lines) if error_lines else None
    return Case(path.stem, path, program, mem, result, error)


def load_cases() -> list[Case]:
    """Every vector, sorted by name; a missing vector directory is an error, not a skip."""
    if not CONFORMANCE_DIR.is_dir():
        raise FileNotFoundError(
            f"conformance vectors not found at {CONFORMANCE_DIR} (expected the shared/ "
            "checkout beside the repository)"
        )
    paths = sorted(CONFORMANCE_DIR.glob("*.data"))
    if not paths:
        raise FileNotFoundError(f"no *.data files in {CONFORMANCE_DIR}")
    return [parse_case(p) for p in paths]


def asm_text(path: Path) -> str:
    """The raw ``-- asm`` section of a vector file (for assembler tests)."""
    return "\n".join(_sections(path.read_text(encoding="utf-8")).get("asm", []))
