"""inspect and load accept what libbpf accepts: e_machine EM_NONE (old clang), map pinning
values other loaders define (reported, not refused), and every program's size in 8-byte
slots beside its instruction count — checked against the ELF symbol sizes
(issue 11, item 5)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
from test_kernel_common import build_c, needs_clang

import bpfkit
from bpfkit.obj import load_object
from bpfkit.obj.elf import ElfFile

pytestmark = needs_clang


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    d = tmp_path_factory.mktemp("accept")
    return {n: build_c(n, d) for n in ("parity_pinning", "parity_overrides")}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfkit", *args], capture_output=True, text=True)


def test_em_none_objects_are_accepted(objs, tmp_path):
    data = bytearray(objs["parity_pinning"].read_bytes())
    assert struct.unpack_from("<H", data, 18)[0] == 247  # EM_BPF as clang writes it today
    struct.pack_into("<H", data, 18, 0)  # EM_NONE, as old clang wrote it
    old = tmp_path / "em_none.o"
    old.write_bytes(bytes(data))
    spec = load_object(old)
    assert list(spec.programs) == ["count"]
    r = _cli("inspect", str(old), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["programs"][0]["name"] == "count"
    struct.pack_into("<H", data, 18, 62)  # EM_X86_64: not BPF, still refused
    (tmp_path / "x86.o").write_bytes(bytes(data))
    r = _cli("inspect", str(tmp_path / "x86.o"), "--json")
    assert r.returncode == 2 and "not a BPF object" in json.loads(r.stdout)["error"]


def test_unknown_pinning_is_reported(objs):
    spec = load_object(objs["parity_pinning"])
    assert spec.maps["odd_pin"].pinning == 16
    r = _cli("inspect", str(objs["parity_pinning"]), "--json")
    assert r.returncode == 0
    maps = {m["name"]: m for m in json.loads(r.stdout)["maps"]}
    assert maps["odd_pin"]["pinning"] == 16
    with bpfkit.load(spec) as o:  # the VM has no pins: nothing to refuse
        assert o.programs["count"].test_run(bytes(64)).retval == 0
        assert o.maps["odd_pin"][0] == 1


@pytest.mark.kernel
def test_unknown_pinning_loads_unpinned_with_a_note(objs):
    with bpfkit.load(objs["parity_pinning"], backend="kernel") as o:
        assert any("pinning 16" in n for n in o.notes)
        assert o.maps["odd_pin"].pinned is None


def _symbol_sizes(path) -> dict[str, int]:
    elf = ElfFile(path.read_bytes())
    return {s.name: s.size for s in elf.symbols if s.type == 2 and s.name}  # STT_FUNC


def test_slots_count_what_the_elf_says(objs):
    """A program without subprograms occupies its function symbol: size / 8 slots."""
    path = objs["parity_overrides"]
    sizes = _symbol_sizes(path)
    doc = json.loads(_cli("inspect", str(path), "--json").stdout)
    progs = {p["name"]: p for p in doc["programs"]}
    assert progs["knobs"]["slots"] == sizes["knobs"] // 8
    assert progs["knobs"]["insns"] < progs["knobs"]["slots"]  # it has lddw (two slots each)
    for name, p in progs.items():
        assert p["slots"] == sizes[name] // 8, name


@pytest.mark.kernel
def test_load_reports_slots(objs):
    path = objs["parity_overrides"]
    sizes = _symbol_sizes(path)
    r = _cli("load", str(path), "--value-size", "stacks=8", "--type", "untyped=xdp", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    progs = {p["name"]: p for p in json.loads(r.stdout)["programs"]}
    assert progs["knobs"]["slots"] == sizes["knobs"] // 8
    assert progs["knobs"]["insns"] < progs["knobs"]["slots"]
