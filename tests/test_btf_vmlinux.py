"""The running kernel's BTF (/sys/kernel/btf/vmlinux) through ``parse_btf``, against bpftool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from bpfkit.btf import Btf, BtfKind, parse_btf
from bpfkit.btf.parser import _parse_btf_reference

VMLINUX = Path("/sys/kernel/btf/vmlinux")
BPFTOOL = shutil.which("bpftool")

pytestmark = pytest.mark.skipif(not VMLINUX.exists(), reason="no vmlinux BTF")
needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool not installed")


@cache
def _raw() -> bytes:
    try:
        return VMLINUX.read_bytes()
    except OSError:
        pytest.skip("vmlinux BTF not readable")


@cache
def _btf() -> Btf:
    return parse_btf(_raw())


@cache
def _bpftool_raw() -> str:
    return subprocess.run(
        [BPFTOOL, "btf", "dump", "file", str(VMLINUX), "format", "raw"],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _raw_struct(text: str, name: str) -> tuple[int, int, list[tuple[str, int, int, int]]]:
    """Id, size and members (name, type id, bit offset, bitfield size) of one struct in
    ``bpftool btf dump ... format raw`` output."""
    m = re.search(rf"^\[(\d+)\] STRUCT '{re.escape(name)}' size=(\d+) vlen=(\d+)$", text, re.M)
    assert m, name
    members = []
    lines = text[m.end() + 1 :].splitlines()[: int(m.group(3))]
    for line in lines:
        mm = re.match(r"\t'(.*)' type_id=(\d+) bits_offset=(\d+)(?: bitfield_size=(\d+))?$", line)
        assert mm, line
        members.append((mm.group(1), int(mm.group(2)), int(mm.group(3)), int(mm.group(4) or 0)))
    return int(m.group(1)), int(m.group(2)), members


def test_vmlinux_takes_the_fast_path() -> None:
    btf = parse_btf(_raw())
    assert btf._lazy is not None  # checked, but no type decoded yet
    assert sum(t is not None for t in btf._types) <= 1  # just void
    assert len(btf.types) > 1000


@needs_bpftool
@pytest.mark.parametrize("name", ["task_struct", "sk_buff", "pt_regs", "file", "bpf_prog"])
def test_structs_match_bpftool_raw(name: str) -> None:
    btf = parse_btf(_raw())  # a fresh, untouched lazy Btf: the lookup decodes on demand
    tid, size, members = _raw_struct(_bpftool_raw(), name)
    t = btf.find(name, BtfKind.STRUCT)
    assert t is not None and t.id == tid and t.size == size
    assert [(m.name or "(anon)", m.type, m.bit_offset, m.bitfield_size) for m in t.members] == [
        (n or "(anon)", ty, off, bf) for n, ty, off, bf in members
    ]
    assert btf.size_of(tid) == size


def test_lookups_on_vmlinux() -> None:
    btf = _btf()
    regs = btf.find("pt_regs", BtfKind.STRUCT)
    assert regs is not None and btf.size_of(regs.id) == len(regs.members) * 8
    task = btf.find("task_struct", BtfKind.STRUCT)
    assert task is not None
    pid = next(m for m in task.members if m.name == "pid")
    assert btf.type_name(pid.type) == "pid_t" and btf.size_of(pid.type) == 4
    assert btf.resolve(pid.type).kind == BtfKind.INT
    assert btf.size_of(btf.find("u64", BtfKind.TYPEDEF).id) == 8
    funcs = btf.find_all("bpf_prog_put")
    assert [f.kind for f in funcs] == [BtfKind.FUNC]
    assert btf.get(funcs[0].type).kind == BtfKind.FUNC_PROTO
    assert btf.find("no such type, surely") is None


@needs_bpftool
def test_every_vmlinux_type_matches_bpftool_json() -> None:
    from test_btf_types import _as_bpftool

    out = subprocess.run(
        [BPFTOOL, "-j", "btf", "dump", "file", str(VMLINUX)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = json.loads(out)["types"]
    btf = parse_btf(_raw())
    assert len(btf.types) - 1 == len(theirs)
    for t, b in zip(btf.types[1:], theirs, strict=True):
        if b["kind"] in ("ENUM", "ENUM64") and b["encoding"] == "UNSIGNED":
            for v in b["values"]:
                v["val"] &= (1 << (8 * b["size"])) - 1
        assert _as_bpftool(btf, t) == b


def test_vmlinux_same_as_reference_parser() -> None:
    fast, ref = parse_btf(_raw()), _parse_btf_reference(_raw())
    assert fast.kinds_summary() == ref.kinds_summary()
    assert fast._names() == ref._names()
    assert fast.types == ref.types
