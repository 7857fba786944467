"""bpfkit trace vs bpftrace: start-to-exit for ``BEGIN { exit(); }``, peak RSS, per-event cost.

Prints a table of ratios (bpfkit / bpftrace), each measured in this process's run, the
two tools' runs interleaved so that both see the same machine load:
- start: wall time of ``BEGIN { exit(); }`` (start, compile, load, attach, run BEGIN,
  exit), the best of ``--repeat`` runs, and the CPU time (user + system) of that run —
  on a loaded machine wall time mostly measures waiting for a CPU, CPU time does not;
- RSS: peak resident set of that run (``getrusage`` of the child);
- per event, in the kernel: the BPF program's own run time per invocation
  (``BPF_ENABLE_STATS``: the kernel's ``run_time_ns / run_cnt`` of the tool's program)
  while ``@[comm] = count()`` is attached to ``sys_enter_read`` and ``dd bs=1`` reads;
- per traced read(), the workload's view: ``dd``'s own system time (``/usr/bin/time``
  around it, as the ``-c`` command) per read, minus the untraced run's — the tracepoint
  and the program together, whatever the tool does meanwhile; and the same for wall time
  (noisy on a shared machine).

Python children run with bytecode caches (as an installed package has them): the
environment's ``PYTHONDONTWRITEBYTECODE`` is dropped and one warm-up run writes them.

Run as root: ``python3 bench/trace.py [--events N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
sys.path.insert(0, SRC)
DD = "/usr/bin/dd if=/dev/zero of=/dev/null bs=1 count={n} status=none"
TIMED = "/usr/bin/time -f BENCHDD:%e:%S " + DD
COUNT = "tracepoint:syscalls:sys_enter_read { @[comm] = count(); }"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = SRC


def run(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of one child run."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"{argv[:4]} failed with status {status}")
    return dt, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def child_times(argv: list[str]) -> tuple[float, float]:
    """Wall and system seconds of the timed ``dd`` that ``argv`` runs (its stderr line)."""
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV,
                       text=True, check=False)  # fmt: skip
    for line in r.stderr.splitlines():
        if line.startswith("BENCHDD:"):
            _, wall, system = line.split(":")
            return float(wall), float(system)
    raise SystemExit(f"{argv[:4]}: no timing of the workload: {r.stderr[-300:]}")


def interleaved(a: list[str], b: list[str], repeat: int) -> tuple[tuple, tuple]:
    """The best (by wall time) run of each command, the two alternating; the max RSS."""
    ra, rb = [], []
    for _ in range(repeat):
        ra.append(run(a))
        rb.append(run(b))

    def best(rs: list[tuple[float, float, int]]) -> tuple[float, float, int]:
        w, c, _ = min(rs)
        return w, c, max(r[2] for r in rs)

    return best(ra), best(rb)


class ProgStats:
    """Polls programs created after it starts; keeps the largest run count seen per id."""

    def __init__(self) -> None:
        from bpfkit.kernel import sys as bsys

        self.bsys = bsys
        self.known = set(bsys.prog_ids())
        self.best: dict[int, tuple[int, int, str]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(0.05):
            for pid in list(self.bsys.prog_ids()):
                if pid in self.known:
                    continue
                try:
                    fd = self.bsys.FD(self.bsys.prog_get_fd_by_id(pid))
                except OSError:
                    continue
                try:
                    info = self.bsys.prog_info(fd)
                finally:
                    fd.close()
                if info.run_cnt >= self.best.get(pid, (0, 0, ""))[0]:
                    self.best[pid] = (info.run_cnt, info.run_time_ns, info.name)

    def finish(self) -> float:
        """ns per run of the busiest new program."""
        self.stop.set()
        self.thread.join()
        if not self.best:
            return float("nan")
        cnt, ns, _ = max(self.best.values())
        return ns / cnt if cnt else float("nan")


def per_run_ns(argv: list[str]) -> float:
    stats = ProgStats()
    run(argv)
    return stats.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    bt = shutil.which("bpftrace")
    if bt is None:
        raise SystemExit("bpftrace (the anchor) is not installed")
    mine = [sys.executable, "-m", "bpfkit", "trace"]
    begin = "BEGIN { exit(); }"
    run([*mine, "-e", begin])  # writes the bytecode caches
    py, _ = interleaved([sys.executable, "-c", "pass"], ["/bin/true"], a.repeat)
    (wm, cm, rss_m), (wb, cb, rss_b) = interleaved([*mine, "-e", begin], [bt, "-e", begin],
                                                   a.repeat)  # fmt: skip
    dd = DD.format(n=a.events)
    from bpfkit.kernel import sys as bsys

    stats_fd = bsys.FD(bsys.enable_stats())
    try:
        ns_m = min(per_run_ns([*mine, "-c", dd, "-e", COUNT]) for _ in range(2))
        ns_b = min(per_run_ns([bt, "-c", dd, "-e", COUNT]) for _ in range(2))
    finally:
        stats_fd.close()
    timed = TIMED.format(n=a.events)
    base, traced_m, traced_b = [], [], []
    for _ in range(max(2, a.repeat // 2)):
        base.append(child_times(timed.split()))
        traced_m.append(child_times([*mine, "-c", timed, "-e", COUNT]))
        traced_b.append(child_times([bt, "-c", timed, "-e", COUNT]))

    def per_event(runs: list[tuple[float, float]], i: int) -> float:
        extra = min(r[i] for r in runs) - min(r[i] for r in base)
        return max(0.0, extra) / a.events * 1e9

    rows = [
        ("start to exit, BEGIN { exit(); }, wall (s)", wm, wb),
        ("start to exit, BEGIN { exit(); }, CPU (s)", cm, cb),
        ("peak RSS (MiB)", rss_m / 1024, rss_b / 1024),
        ("per event, BPF program run time (ns)", ns_m, ns_b),
        (
            f"per traced read(), dd's system time, {a.events} reads (ns)",
            per_event(traced_m, 1),
            per_event(traced_b, 1),
        ),
        (
            f"per traced read(), dd's wall time, {a.events} reads (ns)",
            per_event(traced_m, 0),
            per_event(traced_b, 0),
        ),
    ]
    print(f"{'measure':58} {'bpfkit':>10} {'bpftrace':>10} {'ratio':>7}")
    for name, m, b in rows:
        ratio = m / b if b else float("nan")
        print(f"{name:58} {m:10.3f} {b:10.3f} {ratio:7.2f}")
    print(f"(python3 -c pass here: {py[0]:.3f} s wall, {py[1]:.3f} s CPU; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")  # fmt: skip


if __name__ == "__main__":
    main()
