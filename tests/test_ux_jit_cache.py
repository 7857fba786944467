"""The JIT's on-disk code cache: a fresh process loads the built-in modules' machine code
instead of compiling it, gets the same results, and never uses a cache file that is
damaged, written for another key, a symbolic link, or in a directory others may write."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llvmlite")

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, time
from bpfkit.isa.asm import assemble_text
from bpfkit.jit import run_program
from bpfkit.jit import hot, lower, native
# sum 1..10, then add the low bit of bpf_ktime_get_ns() - itself (0): exercises the clock twin
prog = assemble_text(
    "r0 = 0\nloop:\nr0 += r2\nr2 += -1\nif r2 != 0 goto loop\nr6 = r0\ncall 5\nr7 = r0\n"
    "r0 = r6\nr0 += r7\nr0 -= r7\nexit"
)
r = run_program(prog, bytes(10))
print(json.dumps({
    "r0": r.r0,
    "cached": {
        "hot": hot._module.timings["cached"],
        "runtime": lower._runtime_module.timings["cached"],
        "clock": native._clock_module.timings["cached"] if native._clock_module else None,
    },
}))
"""


def run_child(cache: Path, **env: str) -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT / "src"), BPFKIT_CACHE_DIR=str(cache))
    e.pop("BPFKIT_JIT_CACHE", None)
    e.update(env)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=e, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def files(cache: Path) -> list[Path]:
    return sorted((cache / "jit").glob("*.o"))


def test_second_process_loads_machine_code(tmp_path: Path) -> None:
    first = run_child(tmp_path)
    assert first["r0"] == 55 and not any(first["cached"].values())
    fs = files(tmp_path)
    assert len(fs) == 3  # runtime, hot helpers, clocks
    d = tmp_path / "jit"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in fs)
    second = run_child(tmp_path)
    assert second["r0"] == 55 and all(second["cached"].values())


def test_damaged_or_foreign_files_are_ignored_and_replaced(tmp_path: Path) -> None:
    run_child(tmp_path)
    fs = files(tmp_path)
    good = {f.name: f.read_bytes() for f in fs}
    # flip one byte of the machine code in one file, truncate another, and give the
    # third the (valid) contents written for a different key
    a, b, c = fs
    raw = bytearray(a.read_bytes())
    raw[-10] ^= 0xFF
    a.write_bytes(bytes(raw))
    b.write_bytes(b.read_bytes()[:40])
    c.write_bytes(good[a.name])
    res = run_child(tmp_path)
    assert res["r0"] == 55 and not any(res["cached"].values())
    assert {f.name: f.read_bytes() for f in files(tmp_path)} == good  # rewritten correctly
    assert all(run_child(tmp_path)["cached"].values())


def test_unsafe_directory_or_links_are_not_used(tmp_path: Path) -> None:
    run_child(tmp_path)
    d = tmp_path / "jit"
    os.chmod(d, 0o777)  # others may write: nothing from it is executed
    try:
        res = run_child(tmp_path)
        assert res["r0"] == 55 and not any(res["cached"].values())
    finally:
        os.chmod(d, 0o700)
    f = files(tmp_path)[0]
    target = tmp_path / "elsewhere.o"
    target.write_bytes(f.read_bytes())
    f.unlink()
    f.symlink_to(target)
    res = run_child(tmp_path)
    assert res["r0"] == 55 and list(res["cached"].values()).count(False) == 1
    os.chmod(files(tmp_path)[1], 0o666)  # a writable file is not trusted either
    res = run_child(tmp_path)
    assert list(res["cached"].values()).count(False) >= 1


def test_cache_can_be_turned_off(tmp_path: Path) -> None:
    res = run_child(tmp_path, BPFKIT_JIT_CACHE="0")
    assert res["r0"] == 55 and not any(res["cached"].values())
    assert not (tmp_path / "jit").exists()
