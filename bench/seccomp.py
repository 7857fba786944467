"""seccomp filters: instructions executed per decision, and compile time — bpfkit vs libseccomp.

Instructions per decision: both programs — bpfkit's (libseccomp's argument code behind
a binary-search syscall dispatch) and the one libseccomp 2.5.4 exports for the same
profile (Debian's python3-seccomp; its default linear dispatch, and also its
``SCMP_FLTATR_CTL_OPTIMIZE=2`` binary tree) — run on the same ``seccomp_data`` in
bpfkit's classic interpreter, which counts executed instructions. Decisions are asserted
equal on every case. Profiles: Docker's default (x86_64 with i386/x32, every syscall
number of every ABI as cases) and generated allow-lists of 60, 200 and 350 syscalls
with argument rules.

Compile time: Docker's default profile, parse + compile, median of runs, against
libseccomp building the same filter and exporting it (timed inside its own process).

Run: ``python bench/seccomp.py [--cases N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import time

from rich.console import Console
from rich.progress import track
from rich.table import Table

from bpfkit.seccomp import actions as act
from bpfkit.seccomp import compile_profile, load_profile
from bpfkit.seccomp.check import run_filter, seccomp_data
from bpfkit.seccomp.libseccomp import SYSTEM_PYTHON, available, export, job
from bpfkit.seccomp.profile import Arg, Profile, Rule
from bpfkit.seccomp.tables import ARCHES, table

_KNOWN: list[str] = []


def _libseccomp_names() -> list[str]:
    """x86_64 names libseccomp 2.5.4 also knows (its table predates some 6.x calls)."""
    if not _KNOWN:
        from bpfkit.seccomp.libseccomp import resolve_names

        res = resolve_names("x86_64", sorted(table("x86_64")))
        _KNOWN.extend(n for n, nr in res.items() if nr is not None and nr >= 0)
    return _KNOWN


def generated(n: int, seed: int) -> Profile:
    """An allow-list of ``n`` x86_64 syscalls, a tenth of them with argument conditions."""
    rng = random.Random(seed)
    names = rng.sample(_libseccomp_names(), n)
    prof = Profile(act.RET_ERRNO | 1, ["i386"])
    plain = [x for x in names[: n - n // 10]]
    prof.rules.append(Rule(plain, act.RET_ALLOW))
    for name in names[n - n // 10 :]:
        prof.rules.append(Rule([name], act.RET_ALLOW, [Arg(0, "le", rng.randrange(1, 64))]))
        prof.rules.append(Rule([name], act.RET_KILL_PROCESS, [Arg(1, "masked_eq", 0xFF00, 0x100)]))
    return prof


def cases_for(prof: Profile, native: str, rng: random.Random, extra: int) -> list[bytes]:
    """Every syscall number of every ABI the profile covers, plus random numbers."""
    out = []
    for arch in [native, *prof.architectures]:
        tok = ARCHES[arch].audit
        for nr in sorted(table(arch).values()):
            args = [rng.choice([0, 1, 5, 0x100, 0x10000, rng.getrandbits(64)]) for _ in range(6)]
            out.append(seccomp_data(nr, tok, args))
    for _ in range(extra):
        out.append(
            seccomp_data(rng.getrandbits(10), ARCHES[native].audit, [rng.getrandbits(64)] * 6)
        )
    return out


def insn_stats(name: str, prof: Profile, native: str, extra: int, console: Console) -> dict:
    flt = compile_profile(prof, native)
    lin, tree = export([job(prof, native), job(prof, native, optimize=2)])
    if lin.error or tree.error:
        raise SystemExit(f"libseccomp refused {name}: {lin.error or tree.error}")
    rng = random.Random(1)
    ours: list[int] = []
    theirs: list[int] = []
    theirs2: list[int] = []
    for data in track(
        cases_for(prof, native, rng, extra), description=name, console=console, transient=True
    ):
        a = run_filter(flt.program, data)
        b = run_filter(lin.program, data)
        t = run_filter(tree.program, data)
        assert a.ret == b.ret == t.ret, (name, data.hex())
        ours.append(a.insns)
        theirs.append(b.insns)
        theirs2.append(t.insns)

    def summary(xs: list[int]) -> dict:
        xs_sorted = sorted(xs)
        return {
            "mean": statistics.mean(xs),
            "median": statistics.median(xs),
            "p90": xs_sorted[int(0.9 * (len(xs) - 1))],
            "max": max(xs),
        }

    return {
        "profile": name,
        "decisions": len(ours),
        "program_insns": {
            "bpfkit": len(flt.program),
            "libseccomp": len(lin.program),
            "libseccomp_tree": len(tree.program),
        },
        "bpfkit": summary(ours),
        "libseccomp": summary(theirs),
        "libseccomp_tree": summary(theirs2),
        "bpfkit_le_libseccomp": sum(a <= b for a, b in zip(ours, theirs, strict=True)) / len(ours),
        "hist": _hist(ours, theirs),
    }


def _hist(ours: list[int], theirs: list[int]) -> list[tuple[str, int, int]]:
    edges = [0, 8, 12, 16, 24, 32, 64, 128, 256, 512, 10_000]
    rows = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        rows.append(
            (f"{lo}-{hi - 1}", sum(lo <= x < hi for x in ours), sum(lo <= x < hi for x in theirs))
        )
    return rows


_LIBSECCOMP_TIMER = r"""
import json, sys, time, tempfile, os, seccomp
job = json.load(sys.stdin)
def s32(v):
    return v - (1 << 32) if v >= (1 << 31) else v
def build():
    f = seccomp.SyscallFilter(s32(job["default"]))
    for a in job["arches"][1:]:
        a = getattr(seccomp.Arch, a)
        if not f.exist_arch(a):
            f.add_arch(a)
    for name, action, conds in job["rules"]:
        args = [seccomp.Arg(i, op, mask, d) if op == 7 else seccomp.Arg(i, op, d) for i, op, d, mask in conds]
        f.add_rule(s32(action), name, *args)
    with open(os.devnull, "wb") as fh:
        f.export_bpf(fh)
times = []
for _ in range(job["runs"]):
    t = time.perf_counter(); build(); times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[len(times) // 2]))
"""


def compile_times(runs: int) -> dict:
    prof = load_profile("docker-default", arch="x86_64")
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        p = load_profile("docker-default", arch="x86_64")
        compile_profile(p, "x86_64")
        times.append(time.perf_counter() - t)
    ours = sorted(times)[len(times) // 2]
    j = job(prof, "x86_64")
    j["runs"] = runs
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", _LIBSECCOMP_TIMER],
        input=json.dumps(j),
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(out.stdout)
    return {"bpfkit_s": ours, "libseccomp_s": theirs, "ratio": ours / theirs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--cases", type=int, default=500, help="random extra numbers per profile")
    ap.add_argument("--runs", type=int, default=9, help="compile-time runs (median)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ok, why = available()
    if not ok:
        raise SystemExit(f"needs libseccomp: {why}")
    console = Console(stderr=args.json, width=None if Console().is_terminal else 150)
    profiles = [("docker-default", load_profile("docker-default", arch="x86_64"))]
    profiles += [(f"allow-{n}", generated(n, n)) for n in (60, 200, 350)]
    rows = [insn_stats(name, prof, "x86_64", args.cases, console) for name, prof in profiles]
    ct = compile_times(args.runs)
    if args.json:
        print(json.dumps({"instructions": rows, "compile": ct}))
        return
    t = Table(title="instructions executed per decision (x86_64 filter; every ABI's numbers)")
    for col in ("profile", "decisions", "prog insns bpfkit/libseccomp", "bpfkit mean", "libseccomp mean",
                "ratio", "bpfkit max", "libseccomp max", "bpfkit ≤ libseccomp", "libseccomp tree mean"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            r["profile"],
            str(r["decisions"]),
            f"{r['program_insns']['bpfkit']}/{r['program_insns']['libseccomp']}",
            f"{r['bpfkit']['mean']:.1f}",
            f"{r['libseccomp']['mean']:.1f}",
            f"{r['bpfkit']['mean'] / r['libseccomp']['mean']:.3f}",
            str(r["bpfkit"]["max"]),
            str(r["libseccomp"]["max"]),
            f"{100 * r['bpfkit_le_libseccomp']:.1f}%",
            f"{r['libseccomp_tree']['mean']:.1f}",
        )
    console.print(t)
    h = Table(title=f"distribution, {rows[0]['profile']}: decisions by instructions executed")
    for col in ("insns", "bpfkit", "", "libseccomp", ""):
        h.add_column(col, justify="right" if col else "left")
    top = max(max(a, b) for _, a, b in rows[0]["hist"]) or 1
    for label, a, b in rows[0]["hist"]:
        h.add_row(
            label,
            str(a),
            "[green]" + "█" * (30 * a // top),
            str(b),
            "[red]" + "█" * (30 * b // top),
        )
    console.print(h)
    c = Table(title="compiling Docker's default profile (median)")
    for col in ("bpfkit", "libseccomp (anchor)", "ratio"):
        c.add_column(col, justify="right")
    c.add_row(
        f"{ct['bpfkit_s'] * 1e3:.1f} ms",
        f"{ct['libseccomp_s'] * 1e3:.2f} ms",
        f"{ct['ratio']:.1f}x",
    )
    console.print(c)


if __name__ == "__main__":
    main()
