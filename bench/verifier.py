"""Verification time: bpfkit's verifier against the running kernel's, program by program.

The kernel's time and processed-instruction count come from its own statistics log
(``log_level`` 4: ``processed N insns ...`` and ``verification time T usec``). Run as
``python bench/verifier.py [--json] [--no-c]``; prints one row per program and the median
ratio. Besides the rule cases and generated programs it verifies every program of the C
examples and of the JIT benchmark (``bench/c``), loaded into the kernel with their BTF.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from bpfkit.isa.asm import assemble_text  # noqa: E402
from bpfkit.verifier import verify  # noqa: E402


def programs():
    """(name, insns, prog_type, maps): the accepted rule cases plus larger programs."""
    from progen import generate
    from test_verifier_cases import CASES

    for c in CASES:
        if c.kernel and c.expect == "accept":
            yield c.name, c.insns(), c.prog_type, c.maps
    for n in (200, 1000, 4000):
        yield f"progen_{n}", generate(7, length=n), "socket_filter", {}
    loop = "r0 = 0\nr1 = 0\nr1 += 3\nr0 += 1\nif r0 < {n} goto -3\nr0 = 0\nexit"
    for n in (100, 1000, 5000):
        yield f"loop_{n}", assemble_text(loop.format(n=n), dialect="llvm"), "socket_filter", {}


def c_programs():
    """(name, object spec, program): the C examples and the JIT benchmark programs."""
    import glob
    import tempfile

    from bpfkit.obj import load_object
    from bpfkit.obj.build import compile_c

    root = os.path.join(HERE, "..")
    tmp = tempfile.mkdtemp(prefix="bpfkit-bench-verifier-")
    srcs = sorted(glob.glob(os.path.join(root, "examples", "*.c")))
    srcs += sorted(glob.glob(os.path.join(HERE, "c", "*.c")))
    for src in srcs:
        base = os.path.splitext(os.path.basename(src))[0]
        out = os.path.join(tmp, base + ".o")
        compile_c(src, out, mcpu="v3")
        spec = load_object(out)
        for name in spec.programs:
            yield f"c:{base}/{name}", out, spec, name


def kernel_object_time(path: str, program: str) -> tuple[int, float] | None:
    """(processed insns, verification microseconds) of one program of an ELF object,
    loaded by bpfkit's kernel loader with BTF (log level 4: statistics only)."""
    import bpfkit
    from bpfkit.errors import BpfError

    try:
        obj = bpfkit.load(path, backend="kernel", programs=[program], log_level=4)
    except BpfError:
        return None
    with obj:
        log = obj.programs[program].log or ""
    m = re.search(r"processed (\d+) insns", log)
    t = re.search(r"verification time (\d+) usec", log)
    if not m or not t:
        return None
    return int(m.group(1)), float(t.group(1))


def kernel_time(insns, pt, maps) -> tuple[int, float] | None:
    """(processed insns, verification microseconds) from the kernel, or None."""
    from test_verifier_kernel import kernel_verdict

    ok, log = kernel_verdict(insns, pt, maps, log_level=4)
    m = re.search(r"processed (\d+) insns", log)
    t = re.search(r"verification time (\d+) usec", log)
    if not ok or not m or not t:
        return None
    return int(m.group(1)), float(t.group(1))


def main() -> None:
    as_json = "--json" in sys.argv
    rows = []
    for name, insns, pt, maps in programs():
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            res = verify(insns, prog_type=pt, maps=maps, cache=False)
            dt = (time.perf_counter() - t0) * 1e6
            best = dt if best is None else min(best, dt)
        k = kernel_time(insns, pt, maps)
        rows.append(
            {
                "program": name,
                "slots": sum(i.slots for i in insns),
                "ours_insns": res.stats.insns_processed,
                "ours_us": round(best, 1),
                "kernel_insns": k[0] if k else None,
                "kernel_us": k[1] if k else None,
                "ratio": round(best / max(k[1], 1.0), 1) if k else None,
            }
        )
    if "--no-c" not in sys.argv:
        from bpfkit.verifier import verify_spec

        for name, path, spec, prog in c_programs():
            t0 = time.perf_counter()
            res = verify_spec(spec, prog, raise_on_error=False, cache=False)
            dt = (time.perf_counter() - t0) * 1e6
            k = kernel_object_time(path, prog)
            rows.append(
                {
                    "program": name if res.ok else name + " (rejected)",
                    "slots": sum(i.slots for i in spec.programs[prog].instructions),
                    "ours_insns": res.stats.insns_processed,
                    "ours_us": round(dt, 1),
                    "kernel_insns": k[0] if k else None,
                    "kernel_us": k[1] if k else None,
                    "ratio": round(dt / max(k[1], 1.0), 1) if k else None,
                }
            )
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    summary = {"median_ratio": statistics.median(ratios) if ratios else None, "programs": len(rows)}
    big = [r for r in rows if r["program"].startswith(("progen_", "loop_"))]
    cprogs = [r for r in rows if r["program"].startswith("c:") and r["ratio"] is not None]
    if cprogs:
        summary["median_ratio_c"] = statistics.median(r["ratio"] for r in cprogs)
    if big:
        summary["median_ratio_large"] = statistics.median(
            r["ratio"] for r in big if r["ratio"] is not None
        )
    if as_json:
        print(json.dumps({"rows": rows, "summary": summary}))
        return
    print(
        f"{'program':28} {'slots':>6} {'ours insns':>10} {'kern insns':>10} "
        f"{'ours us':>10} {'kern us':>9} {'ratio':>7}"
    )
    for r in rows:
        print(
            f"{r['program']:28} {r['slots']:>6} {r['ours_insns']:>10} "
            f"{r['kernel_insns'] or '-':>10} {r['ours_us']:>10} {r['kernel_us'] or '-':>9} "
            f"{r['ratio'] or '-':>7}"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
