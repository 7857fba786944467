"""Interpreter speed: ns per executed instruction on loop-heavy programs.

Anchor: a naive decode-in-the-loop Python interpreter (tests/reference_interp.py) on the same
programs in the same process. Run: ``python bench/interp.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from programs import ALL  # noqa: E402
from reference_interp import naive_run  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bpfkit.vm.env import Env  # noqa: E402
from bpfkit.vm.interp import CompiledProgram  # noqa: E402
from bpfkit.vm.memory import Region  # noqa: E402


def best_of(fn, n: int = 3):
    best = None
    for _ in range(n):
        t0 = time.perf_counter_ns()
        res = fn()
        dt = time.perf_counter_ns() - t0
        best = dt if best is None or dt < best else best
    return best, res


def main() -> None:
    table = Table(title="bpfkit interpreter: ns per executed instruction")
    cols = (
        "program",
        "executed insns",
        "compile ms",
        "bpfkit ns/insn",
        "naive ns/insn",
        "speed-up vs naive",
    )
    for col in cols:
        table.add_column(col, justify="right")
    for make in ALL:
        b = make()
        env = Env()
        t0 = time.perf_counter_ns()
        prog = CompiledProgram(b.insns, env, budget=10**9)
        compile_ns = time.perf_counter_ns() - t0
        region = env.space.add(Region.alloc("input", len(b.mem), init=b.mem))
        dt, (r0, count) = best_of(lambda p=prog, r=region: p.run(r.base, r.size))
        assert r0 == b.expect, (b.name, r0, b.expect)
        ndt, (nr0, ncount) = best_of(lambda b=b: naive_run(b.insns, b.mem), 1)
        assert nr0 == b.expect and ncount == count, (b.name, nr0, ncount, count)
        table.add_row(
            b.name,
            f"{count:,}",
            f"{compile_ns / 1e6:.2f}",
            f"{dt / count:.1f}",
            f"{ndt / ncount:.1f}",
            f"{ndt / dt:.1f}x",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
