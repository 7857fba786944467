"""bpfkit trace vs bpftrace: start-to-exit for ``BEGIN { exit(); }``, peak RSS, per-event cost.

Prints a table of ratios (bpfkit / bpftrace), each measured in this process's run:
- start: wall time of ``BEGIN { exit(); }`` (start, compile, load, attach, run BEGIN, exit);
- RSS: peak resident set of that run (``getrusage`` of the child);
- per event: extra wall time per ``read`` syscall of ``dd bs=1 count=N`` while a
  ``@[comm] = count()`` tracepoint script is attached, minus the untraced run.

Run as root: ``python3 bench/trace.py [--events N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
DD = "/usr/bin/dd if=/dev/zero of=/dev/null bs=1 count={n} status=none"
COUNT = "tracepoint:syscalls:sys_enter_read { @[comm] = count(); }"


def run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child run."""
    env = dict(os.environ, PYTHONPATH=SRC)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"{argv[:4]} failed with status {status}")
    del before
    return dt, ru.ru_maxrss


def best(argv: list[str], repeat: int) -> tuple[float, int]:
    runs = [run(argv) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    bt = shutil.which("bpftrace")
    if bt is None:
        raise SystemExit("bpftrace (the anchor) is not installed")
    mine = [sys.executable, "-m", "bpfkit", "trace"]
    start_m, rss_m = best([*mine, "-e", "BEGIN { exit(); }"], a.repeat)
    start_b, rss_b = best([bt, "-e", "BEGIN { exit(); }"], a.repeat)
    dd = DD.format(n=a.events)
    base, _ = best(["/bin/sh", "-c", dd], a.repeat)
    ev_m, _ = best([*mine, "-c", dd, "-e", COUNT], max(2, a.repeat // 2))
    ev_b, _ = best([bt, "-c", dd, "-e", COUNT], max(2, a.repeat // 2))
    # Subtract each tool's own start-up so the difference is the traced workload.
    per_m = max(0.0, ev_m - start_m - base) / a.events * 1e9
    per_b = max(0.0, ev_b - start_b - base) / a.events * 1e9
    rows = [
        ("start to exit, BEGIN { exit(); } (s)", start_m, start_b),
        ("peak RSS (MiB)", rss_m / 1024, rss_b / 1024),
        (f"per traced read(), {a.events} events (ns)", per_m, per_b),
    ]
    print(f"{'measure':44} {'bpfkit':>10} {'bpftrace':>10} {'ratio':>7}")
    for name, m, b in rows:
        ratio = m / b if b else float("nan")
        print(f"{name:44} {m:10.3f} {b:10.3f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
