"""bpfkit's verifier against the running kernel on the kernel's own verifier selftests.

Builds ``tools/testing/selftests/bpf/progs/verifier_*.c`` from Debian's linux-source-6.12
(cached under ~/.cache/bpfkit/selftests), loads every program alone into the kernel
through libbpf (the oracle, its verdicts cached) and verifies it with bpfkit; prints the
agreement table (agree / unsafe accepts / false rejects by cause / no oracle /
excluded), how often bpfkit's message matches the test's ``__msg`` where the kernel's
does, processed-instruction and time ratios against the kernel's own statistics.

    python3 bench/verifier_selftests.py [--objects a,b] [--list unsafe,false_reject] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import time

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bpfkit.verifier.selftests import Corpus, compare_object, libbpf_version


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", help="comma-separated object stems (default: all)")
    ap.add_argument("--list", default="unsafe", help="outcomes to list program by program")
    ap.add_argument("--skip-slow", action="store_true", help="leave out the SLOW programs")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    con = Console(stderr=args.json)
    only = set(args.objects.split(",")) if args.objects else None
    t0 = time.perf_counter()
    with Progress(console=Console(stderr=True), transient=True) as prog:
        corpus = Corpus.prepare(only=only, progress=prog)
        objs = [o for o in corpus.objects() if only is None or o.stem in only]
        rows = []
        task = prog.add_task("comparing", total=len(objs))
        for o in objs:
            rows += compare_object(corpus, o, skip_slow=args.skip_slow)
            prog.advance(task)
    wall = time.perf_counter() - t0
    outcomes = collections.Counter(r.outcome for r in rows)
    causes = collections.Counter(r.cause for r in rows if r.outcome == "false_reject")
    nooracle = collections.Counter(_why(r.kernel.why) for r in rows if r.outcome == "no_oracle")
    msg_rows = [r for r in rows if r.msg_match is not None]
    msg_ok = sum(1 for r in msg_rows if r.msg_match)
    # processed instructions and time, where both accepted
    both = [r for r in rows if r.outcome == "agree" and r.ours.verdict == "accept"]
    ratios = [r.ours.processed / r.kernel.processed for r in both if r.kernel.processed]
    fewer = sorted(
        (r for r in both if r.kernel.processed and r.ours.processed < 0.8 * r.kernel.processed),
        key=lambda r: r.ours.processed / r.kernel.processed,
    )
    tratio = [
        r.ours.time_s * 1e6 / r.kernel.time_us
        for r in rows
        if r.kernel.time_us and r.kernel.time_us >= 20 and r.ours.time_s
    ]
    judged = len(rows) - outcomes["no_oracle"] - outcomes["excluded"]
    summary = {
        "corpus": str(corpus.src.name),
        "kernel": corpus.release,
        "libbpf": libbpf_version(),
        "mcpu": corpus.mcpu,
        "objects": len(objs),
        "build_errors": sorted(corpus.build_errors),
        "programs": len(rows),
        "outcomes": dict(outcomes),
        "judged": judged,
        "false_reject_causes": dict(causes.most_common()),
        "no_oracle": dict(nooracle.most_common()),
        "msg_match": [msg_ok, len(msg_rows)],
        "processed_ratio_median": statistics.median(ratios) if ratios else None,
        "processed_fewer_than_0.8": [
            (r.object, r.program, r.ours.processed, r.kernel.processed) for r in fewer
        ],
        "time_ratio_median": statistics.median(tratio) if tratio else None,
        "ours_total_s": sum(r.ours.time_s for r in rows),
        "kernel_total_s": sum((r.kernel.time_us or 0) for r in rows) / 1e6,
        "wall_s": wall,
    }
    listed = set(args.list.split(",")) if args.list else set()
    details = [
        {
            "object": r.object,
            "program": r.program,
            "outcome": r.outcome,
            "cause": r.cause,
            "kernel": r.kernel.message.splitlines()[-1:] if r.kernel.message else r.kernel.why,
            "ours": r.ours.message.splitlines()[:1],
            "excluded": r.excluded,
        }
        for r in rows
        if r.outcome in listed
    ]
    if args.json:
        print(json.dumps({**summary, "listed": details}))
        return 0
    t = Table(title=f"verifier selftests ({summary['corpus']}, kernel {corpus.release})")
    t.add_column("outcome")
    t.add_column("programs", justify="right")
    for k in ("agree", "unsafe", "false_reject", "excluded", "no_oracle"):
        t.add_row(k, str(outcomes.get(k, 0)))
    t.add_row("total", str(len(rows)))
    con.print(t)
    if causes:
        c = Table(title="false rejects by cause")
        c.add_column("cause")
        c.add_column("programs", justify="right")
        for k, v in causes.most_common():
            c.add_row(k, str(v))
        con.print(c)
    if nooracle:
        c = Table(title="no kernel verdict (why)")
        c.add_column("why")
        c.add_column("programs", justify="right")
        for k, v in nooracle.most_common():
            c.add_row(k, str(v))
        con.print(c)
    con.print(f"__msg matched by bpfkit where the kernel's log matches: {msg_ok}/{len(msg_rows)}")
    if ratios:
        con.print(
            f"processed insns ours/kernel (both accept): median {statistics.median(ratios):.2f}, "
            f"{len(fewer)} programs below 0.8"
        )
    for r in fewer[:10]:
        con.print(f"  {r.object}/{r.program}: {r.ours.processed} vs {r.kernel.processed}")
    if tratio:
        con.print(
            f"time ours/kernel: median {statistics.median(tratio):.1f}x over {len(tratio)} "
            f"programs (kernel >= 20 us); total ours {summary['ours_total_s']:.1f} s, "
            f"kernel {summary['kernel_total_s']:.2f} s"
        )
    for d in details:
        con.print(
            f"[bold]{d['outcome']}[/] {d['object']}/{d['program']} ({d['cause']}): "
            f"kernel={d['kernel']} ours={d['ours']}"
        )
    con.print(f"wall {wall:.1f} s")
    return 0


def _why(text: str) -> str:
    """A no-oracle reason without the program's name, for grouping."""
    text = re.sub(r"prog '[^']*': ", "", text)
    return re.sub(r"\s+", " ", text)[:70]


if __name__ == "__main__":
    sys.exit(main())
