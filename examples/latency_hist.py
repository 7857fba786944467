"""Print the log2 latency histogram of latency_hist.c, BCC style, with rich.

    python examples/latency_hist.py latency_hist.o

Fires the program with a few thousand synthetic latencies (log-normal, seeded) and
prints the "usecs : count distribution" table the BCC tools print.
"""

from __future__ import annotations

import random
import sys

from rich.console import Console
from rich.table import Table

import bpfkit

STARS = 40


def buckets(hist) -> list[tuple[int, int, int]]:
    """(low, high, count) of every bucket up to the last non-empty one."""
    counts = [hist[i] for i in range(hist.max_entries)]
    last = max((i for i, c in enumerate(counts) if c), default=-1)
    out = []
    for i in range(last + 1):
        low = 0 if i == 0 else 1 << i
        out.append((low, (1 << (i + 1)) - 1, counts[i]))
    return out


def render(rows: list[tuple[int, int, int]], unit: str = "usecs") -> Table:
    """The histogram as a rich Table (one row per bucket, stars scaled to the maximum)."""
    peak = max((c for _, _, c in rows), default=0) or 1
    table = Table(box=None, show_edge=False, pad_edge=False)
    table.add_column(unit, justify="right")
    table.add_column("count", justify="right")
    table.add_column("distribution", justify="left")
    for low, high, count in rows:
        stars = "*" * (count * STARS // peak)
        table.add_row(f"{low} -> {high}", str(count), f"|{stars:<{STARS}}|")
    return table


def main(path: str, samples: int = 2000, seed: int = 7, console: Console | None = None):
    obj = bpfkit.load(path)
    prog = obj.programs["record_latency"]
    rng = random.Random(seed)
    for _ in range(samples):
        ns = int(rng.lognormvariate(11, 1.5))  # around 60 us, with a long tail
        prog.test_run(ctx=[ns])
    rows = buckets(obj.maps["hist"])
    (console or Console()).print(render(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "latency_hist.o")
