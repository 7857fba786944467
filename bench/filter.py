"""bpfkit filter run vs tcpdump: whole-process time to filter a capture file.

For each capture and expression, runs (best of --repeat, after one warm-up run each)

    tcpdump -r FILE -w /dev/null EXPR
    python -m bpfkit filter run EXPR FILE -w /dev/null

and prints wall-clock and CPU (user+sys) seconds of each process and the ratio
bpfkit/tcpdump (below 1: bpfkit is faster). The captures are generated once into --dir:
``small`` repeats bpfkit.pcap.synth's mix (about 86 bytes a packet: headers only, so the
filter dominates), ``mtu`` pads almost half of the frames to 1514 bytes (about 430 bytes
a packet: the reading dominates), ``ng`` is ``small`` written as pcapng (one interface,
Enhanced Packet Blocks). Both tools' verdicts are compared on every pair.

    python3 bench/filter.py [--packets 1000000,3000000] [--repeat 3] [--dir DIR]
                            [--before OTHER/src]

``--before`` adds a second bpfkit — another source tree, say an export of an earlier
commit (``git archive REV src | tar -x -C /tmp/before``) — run in the same rounds as the
other two (interleaved, so a busy machine weighs on all three alike) and shown beside it.
``--packets 10000`` shows the fixed cost of a run (Python's start, imports, caches).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")
sys.path.insert(0, SRC)

EXPRESSIONS = [
    "tcp port 80",
    "host 10.0.0.1 or host 1.2.3.4",
    "udp and not port 53",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
    "vlan and ip6",
    "ip[6:2] & 0x1fff != 0 or icmp",
]


def child_env(src: str = SRC) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=src)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode cached
    return env


def run(argv: list[str], src: str = SRC) -> tuple[float, float]:
    """Wall and CPU (user+sys) seconds of one child process."""
    t = time.perf_counter()
    p = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(src)
    )
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... failed with status {status}")
    return wall, ru.ru_utime + ru.ru_stime


def best(cmds: list[tuple[list[str], str]], repeat: int) -> list[tuple[float, float]]:
    """(best wall, best CPU) of each (argv, source tree), run in interleaved rounds."""
    for argv, src in cmds:
        run(argv, src)  # warm-up: page cache, bytecode and grammar caches
    runs: list[list[tuple[float, float]]] = [[] for _ in cmds]
    for _ in range(repeat):
        for i, (argv, src) in enumerate(cmds):
            runs[i].append(run(argv, src))
    return [(min(r[0] for r in rs), min(r[1] for r in rs)) for rs in runs]


def generate(path: str, n: int, kind: str) -> None:
    from rich.progress import Progress

    from bpfkit.pcap import PcapngWriter, PcapWriter
    from bpfkit.pcap.synth import packet_mix

    rng = random.Random(11)
    mix = []
    for f, wl in packet_mix(20000, seed=5):
        if kind == "mtu" and len(f) > 54 and rng.random() < 0.45:
            pad = 1514 - len(f)
            f, wl = f + bytes(pad), wl + pad
        mix.append((f, wl))
    tmp = path + ".part"
    writer = PcapngWriter if kind == "ng" else PcapWriter
    with Progress(transient=True) as prog, writer(tmp) as w:
        task = prog.add_task(f"writing {os.path.basename(path)}", total=n)
        for i in range(n):
            f, wl = mix[i % len(mix)]
            w.write(f, i * 1000, wl)
            if not i % 65536:
                prog.update(task, completed=i)
    os.replace(tmp, path)


def matched(argv_out: list[str], out: str) -> int:
    """Packets in a pcap the tool wrote (counted by bpfkit's native scan)."""
    from bpfkit.pcap import compile_filter
    from bpfkit.pcap.scan import filter_capture

    subprocess.run(argv_out, check=True, capture_output=True, env=child_env())
    return filter_capture(out, lambda lt: compile_filter("", lt)).packets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", default="1000000,3000000", help="capture sizes (comma-separated)")
    ap.add_argument("--kinds", default="small,mtu,ng", help="capture kinds: small, mtu, ng")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join("/tmp", "bpfkit-bench-filter"))
    ap.add_argument(
        "--expr", action="append", help="expression (repeatable; default: a set of six)"
    )
    ap.add_argument("--before", help="another bpfkit source tree (its src/) to compare with")
    a = ap.parse_args()
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise SystemExit("tcpdump (the anchor) is not installed")
    os.makedirs(a.dir, exist_ok=True)
    exprs = a.expr or EXPRESSIONS
    sizes = [int(x) for x in a.packets.split(",")]
    kinds = a.kinds.split(",")
    rows = []
    for kind in kinds:
        for n in sizes:
            if kind == "mtu" and n > 2_000_000:
                n = n // 2  # keep the file near 1 GB
            ext = "pcapng" if kind == "ng" else "pcap"
            path = os.path.join(a.dir, f"{kind}-{n}.{ext}")
            if not os.path.exists(path):
                generate(path, n, kind)
            mb = os.path.getsize(path) / 1e6
            for expr in exprs:
                td = [tcpdump, "-r", path, "-w", "/dev/null", expr]
                bk = [
                    sys.executable,
                    "-m",
                    "bpfkit",
                    "filter",
                    "run",
                    expr,
                    path,
                    "-w",
                    "/dev/null",
                ]
                out_t = os.path.join(a.dir, "tcpdump-out.pcap")
                out_b = os.path.join(a.dir, "bpfkit-out.pcap")
                m_t = matched([tcpdump, "-r", path, "-w", out_t, expr], out_t)
                m_b = matched([*bk[:-1], out_b], out_b)
                if m_t != m_b:
                    raise SystemExit(
                        f"verdicts differ on {path} {expr!r}: tcpdump {m_t}, bpfkit {m_b}"
                    )
                cmds = [(td, SRC), (bk, SRC)] + ([(bk, a.before)] if a.before else [])
                times = best(cmds, a.repeat)
                (wt, ct), (wb, cb) = times[0], times[1]
                cbb = times[2][1] if a.before else None
                rows.append((f"{kind} {n / 1e6:g}M ({mb:.0f} MB)", expr, m_t, wt, wb, ct, cb, cbb))
                print(
                    f"{rows[-1][0]:22} {expr[:40]:40} wall {wt:6.3f} {wb:6.3f} ({wb / wt:4.2f})"
                    f"  cpu {ct:6.3f} {cb:6.3f} ({cb / ct:4.2f})"
                    + (f"  before cpu {cbb:6.3f} ({cbb / ct:4.2f})" if cbb is not None else ""),
                    file=sys.stderr,
                )
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"bpfkit filter run / tcpdump -r FILE -w /dev/null EXPR (best of {a.repeat})")
    for col in (
        "capture",
        "expression",
        "matched",
        "tcpdump wall s",
        "bpfkit wall s",
        "wall ratio",
        "tcpdump cpu s",
        "bpfkit cpu s",
        "cpu ratio",
        *(("before cpu s", "before cpu ratio") if a.before else ()),
    ):
        t.add_column(col, justify="right" if col not in ("capture", "expression") else "left")
    for cap, expr, m, wt, wb, ct, cb, cbb in rows:
        t.add_row(
            cap,
            escape(expr),
            str(m),
            f"{wt:.3f}",
            f"{wb:.3f}",
            f"{wb / wt:.2f}",
            f"{ct:.3f}",
            f"{cb:.3f}",
            f"{cb / ct:.2f}",
            *((f"{cbb:.3f}", f"{cbb / ct:.2f}") if cbb is not None else ()),
        )
    Console(width=180).print(t)


if __name__ == "__main__":
    main()
