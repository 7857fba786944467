"""The first JIT compile in a fresh process, with and without the on-disk code cache.

A fresh process compiles the JIT's runtime and native helpers before its first program.
With the cache (``bpfkit.jit.cache``) their machine code is loaded instead. Each row is
the best of ``--runs`` fresh processes; the time is the first ``run_program`` of a small
loop (helpers installed, the program compiled and run), measured inside the process
after every import, so Python's own start-up is not counted. The anchor is the same with
the cache turned off (``BPFKIT_JIT_CACHE=0``), as every process did before.

Run: ``python bench/jit_startup.py [--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

CHILD = r"""
import json, time
import bpfkit.jit.runtime, bpfkit.jit.engine, bpfkit.jit.hot  # every import first
from bpfkit.isa.asm import assemble_text
from bpfkit.jit import run_program
prog = assemble_text("r0 = 0\nloop:\nr0 += r2\nr2 += -1\nif r2 != 0 goto loop\nexit")
t0 = time.perf_counter()
r = run_program(prog, bytes(10))
t1 = time.perf_counter()
assert r.r0 == 55
print(json.dumps({"first_ms": (t1 - t0) * 1e3}))
"""


def _child(env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True
    ).stdout
    return json.loads(out)["first_ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    base = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="bpfkit-jitcache-") as d:
        off = dict(base, BPFKIT_JIT_CACHE="0")
        on = dict(base, BPFKIT_CACHE_DIR=d, BPFKIT_JIT_CACHE="1")
        anchor = min(_child(off) for _ in range(args.runs))
        cold = []
        for _ in range(args.runs):
            for f in Path(d).glob("jit/*.o"):
                f.unlink()
            cold.append(_child(on))
        warm = min(_child(on) for _ in range(args.runs))
    rows = [
        ("cache off (every process compiles)", anchor),
        ("cache empty (compile and store)", min(cold)),
        ("cache warm (load machine code)", warm),
    ]
    if args.json:
        print(json.dumps([{"what": w, "ms": ms, "ratio": ms / anchor} for w, ms in rows]))
        return
    t = Table(title=f"first JIT compile+run in a fresh process (best of {args.runs})")
    t.add_column("")
    t.add_column("ms", justify="right")
    t.add_column("vs cache off", justify="right")
    for w, ms in rows:
        t.add_row(w, f"{ms:.1f}", f"{ms / anchor:.2f}×")
    Console().print(t)


if __name__ == "__main__":
    main()
