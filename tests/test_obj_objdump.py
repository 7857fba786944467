"""Every program of every tests/c/obj_*.c object, instruction for instruction against llvm-objdump."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bpfkit.isa.instruction import decode
from bpfkit.obj import load_object
from bpfkit.obj.build import compile_c, find_clang

C_DIR = Path(__file__).parent / "c"
SOURCES = sorted(p.name for p in C_DIR.glob("obj_*.c"))
OBJDUMP = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump")

pytestmark = pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump not installed")


def _build(name: str) -> Path:
    """Compile tests/c/NAME once per content (cached in the temp dir)."""
    src = C_DIR / name
    clang = find_clang()
    key = hashlib.sha256(src.read_bytes() + clang.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "bpfkit-test-objs" / f"{src.stem}-{key}.o"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.o")
        compile_c(src, tmp)
        tmp.replace(out)
    return out


_INSN = re.compile(r"^\s*(\d+):\t((?:[0-9a-f]{2} )+[0-9a-f]{2})\t(.*)$")
_RELOC = re.compile(r"^\s+[0-9a-f]+:\s+(R_BPF_\w+)\s+(\S+)")
_SYM = re.compile(r"^([0-9a-f]{16}) <(.+)>:$")
_SEC = re.compile(r"^Disassembly of section (.+):$")


def objdump(path: Path) -> tuple[dict[str, dict[int, dict]], dict[str, tuple[str, int]]]:
    """Parse ``llvm-objdump -dr``: per section, slot -> {bytes, text, reloc}; symbol -> (section, slot)."""
    out = subprocess.run(
        [OBJDUMP, "-dr", str(path)], capture_output=True, text=True, check=True
    ).stdout
    secs: dict[str, dict[int, dict]] = {}
    syms: dict[str, tuple[str, int]] = {}
    cur: dict[int, dict] | None = None
    sec = ""
    last: dict | None = None
    for line in out.splitlines():
        if m := _SEC.match(line):
            sec = m.group(1)
            cur = secs.setdefault(sec, {})
        elif m := _SYM.match(line):
            syms[m.group(2)] = (sec, int(m.group(1), 16) // 8)
        elif (m := _INSN.match(line)) and cur is not None:
            last = {
                "bytes": bytes.fromhex(m.group(2).replace(" ", "")),
                "text": m.group(3),
                "reloc": None,
            }
            cur[int(m.group(1))] = last
        elif (m := _RELOC.match(line)) and last is not None:
            last["reloc"] = (m.group(1), m.group(2))
    return secs, syms


def _check_function(prog, start_idx: int, end_idx: int, entries: dict[int, dict], sec_slot: int):
    base_slot = prog.slot_of(start_idx)
    for k in range(start_idx, end_idx):
        insn = prog.instructions[k]
        slot = sec_slot + prog.slot_of(k) - base_slot
        assert slot in entries, f"{prog.name}: no objdump instruction at slot {slot}"
        e = entries[slot]
        original = decode(e["bytes"], strict=False)
        assert len(original) == 1
        orig = original[0]
        reloc = prog.relocation_at(k)
        if e["reloc"] is not None:
            assert reloc is not None, f"{prog.name}[{k}]: objdump relocation {e['reloc']} missing"
            assert reloc.symbol == e["reloc"][1]
            assert (insn.opcode, insn.dst) == (orig.opcode, orig.dst)
        elif orig.is_local_call:
            # A call within the section without a relocation: relinked, same shape.
            assert (insn.opcode, insn.dst, insn.src) == (orig.opcode, orig.dst, orig.src)
        else:
            assert reloc is None, f"{prog.name}[{k}]: unexpected relocation {reloc}"
            assert insn == orig, f"{prog.name}[{k}] slot {slot}: {insn} != objdump {e['text']}"


@pytest.mark.parametrize("source", SOURCES)
def test_programs_match_objdump(source: str) -> None:
    path = _build(source)
    spec = load_object(path)
    secs, syms = objdump(path)
    assert spec.programs, source
    for prog in spec.programs.values():
        bounds = [idx for _, idx in prog.functions] + [len(prog.instructions)]
        assert bounds[0] == 0 and bounds == sorted(bounds)
        for (fname, start), end in zip(prog.functions, bounds[1:], strict=False):
            sec, slot = syms[fname]
            if fname == prog.name:
                assert sec == prog.section and slot * 8 == prog.section_offset
                assert end - start == prog.own_insn_count
            _check_function(prog, start, end, secs[sec], slot)


@pytest.mark.parametrize("source", SOURCES)
def test_every_objdump_instruction_is_in_a_program(source: str) -> None:
    """Nothing is dropped: every instruction objdump shows belongs to some linked program."""
    path = _build(source)
    spec = load_object(path)
    secs, syms = objdump(path)
    covered: dict[str, set[int]] = {}
    for prog in spec.programs.values():
        bounds = [idx for _, idx in prog.functions] + [len(prog.instructions)]
        for (fname, start), end in zip(prog.functions, bounds[1:], strict=False):
            sec, slot = syms[fname]
            base = prog.slot_of(start)
            covered.setdefault(sec, set()).update(
                slot + prog.slot_of(k) - base for k in range(start, end)
            )
    for sec, entries in secs.items():
        missing = set(entries) - covered.get(sec, set())
        if sec == ".text":
            # .text functions nobody calls are not part of any program.
            called = {f for p in spec.programs.values() for f, _ in p.functions}
            uncalled = {n for n, (s, _) in syms.items() if s == ".text" and n not in called}
            assert not (missing and not uncalled), f"{source}: .text slots {sorted(missing)}"
            continue
        assert not missing, (
            f"{source}: section {sec} slots {sorted(missing)[:10]} not in any program"
        )


def _disasm():
    try:
        from bpfkit.isa.disasm import format_insn
    except ImportError:
        return None
    return format_insn


@pytest.mark.parametrize("source", SOURCES)
def test_disassembler_text_matches_objdump(source: str) -> None:
    """Cross-check: our llvm-dialect text of each original instruction equals objdump's."""
    format_insn = _disasm()
    if format_insn is None:
        pytest.skip("bpfkit.isa.disasm not available")
    path = _build(source)
    secs, _ = objdump(path)
    for sec, entries in secs.items():
        for slot, e in entries.items():
            insn = decode(e["bytes"], strict=False)[0]
            if insn.is_local_call:
                continue  # bpfkit prints pc-relative calls as "call pc+N" on purpose
            want = re.sub(r" <[^>]*>$", "", e["text"])
            assert format_insn(insn, "llvm") == want, f"{sec}+{slot}: {e['bytes'].hex()}"
