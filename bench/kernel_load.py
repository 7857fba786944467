"""Object load-to-attached time: ``bpfkit.load(..., backend="kernel")`` next to ``bpftool prog loadall``.

For each object: parse the ELF, create its maps, load every program (CO-RE resolved
against the kernel's BTF where the object has relocations) and, where a program says
where it goes (a tracepoint, a raw tracepoint), attach it; then close everything.
bpftool does the same work with ``prog loadall OBJ DIR`` (plus ``autoattach`` when it
supports it), pinning into a scratch bpffs; its time includes process start-up, reported
on its own as ``bpftool version``. ``bpfkit load --pin`` (the CLI, also a fresh process)
is the whole-process comparison.

Each time is the best of ``--repeat`` runs, as wall time and as CPU time (user + system:
of the child process for the CLI and bpftool, of this process in-process). On a shared
machine the CPU times are the steadier ones; the kernel's verifier runs in the loading
process's system time, so both sides pay it alike. The CLI runs with its bytecode cached
(as an installed package would; ``PYTHONDONTWRITEBYTECODE`` is dropped for it and the
cache goes to a scratch directory), and ``python -c pass`` shows what the interpreter's
own start-up costs on this machine. ``--breakdown`` splits the largest object's CLI
time: interpreter, imports, parse, load (without the verifier), the verifier.

Run as root: ``python bench/kernel_load.py [--repeat 5] [--only TEXT] [--breakdown] [--json]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bpfkit
from bpfkit.obj import load_object
from bpfkit.obj.build import compile_c

ROOT = Path(__file__).resolve().parents[1]
OBJECTS = {
    "xdp_proto_count": ROOT / "examples" / "xdp_proto_count.c",
    "tail_dispatch": ROOT / "examples" / "tail_dispatch.c",
    "globals_loop": ROOT / "examples" / "globals_loop.c",
    "kernel_trace (tracepoint+raw_tp attached)": ROOT / "tests" / "c" / "kernel_trace.c",
    "kernel_core (CO-RE vs vmlinux)": ROOT / "tests" / "c" / "kernel_core.c",
}
#: a 13,000-instruction program (a fully unrolled loop of map updates), generated here
LARGE = "large (13k insns, generated)"
LARGE_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64);
         __uint(max_entries, 1024); } arr SEC(".maps");
static __always_inline void step(__u32 i)
{
	__u32 k = i & 1023;
	__u64 *v = bpf_map_lookup_elem(&arr, &k);
	if (v)
		*v += i * 7 + 3;
}
SEC("xdp")
int large(struct xdp_md *ctx)
{
#pragma clang loop unroll(full)
	for (__u32 i = 0; i < 1300; i++)
		step(i);
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""
ATTACH = {"on_execve", "on_sys_enter", "on_exec_btf"}  # attachable on any kernel with tracing
SKIP = {"on_openat", "on_openat_fentry", "on_uprobe", "on_uretprobe", "on_sample"}


def best_of(fn, n: int) -> float:
    """Best wall time of ``fn()``; a callable it returns (teardown) runs outside the clock."""
    return best_both(fn, n)[0]


def best_both(fn, n: int) -> tuple[float, float]:
    """Best (wall, CPU) of ``fn()`` run in this process; teardown outside the clock."""
    wall = cpu = float("inf")
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        teardown = fn()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
        if callable(teardown):
            teardown()
    return wall, cpu


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall, CPU, stderr) of one run of ``cmd`` (CPU: user + system of the child);
    ``SystemExit`` with its output if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout}{p.stderr}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, p.stderr


def best_child(cmd_for, n: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Best (wall, CPU) of ``n`` child processes; ``cmd_for(i)`` -> (argv, teardown)."""
    wall = cpu = float("inf")
    for i in range(n):
        cmd, teardown = cmd_for(i)
        try:
            w, c, _ = run_child(cmd, env)
        finally:
            teardown()
        wall, cpu = min(wall, w), min(cpu, c)
    return wall, cpu


def cli_env(cache: str) -> dict[str, str]:
    """The environment of the CLI runs: this one, with bytecode cached under ``cache``."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def bpfkit_once(path: Path):
    """Parse, load and attach; returns the teardown (detach and close)."""
    spec = load_object(path)
    names = [p for p in spec.programs if p not in SKIP and spec.programs[p].autoload]
    obj = bpfkit.load(spec, backend="kernel", programs=names)
    links = [obj.programs[n].attach() for n in names if n in ATTACH]

    def teardown():
        for link in links:
            link.close()
        obj.close()

    return teardown


COLD = """
import sys, time
sys.path.insert(0, {bench!r})
import bpfkit.kernel.object, bpfkit.obj
from kernel_load import bpfkit_once
t, c = time.perf_counter(), time.process_time()
teardown = bpfkit_once(__import__("pathlib").Path({obj!r}))
print(time.perf_counter() - t, time.process_time() - c)
teardown()
"""


def cold(obj: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) of load-to-attached in a fresh process after imports (vmlinux BTF not
    yet indexed)."""
    code = COLD.format(bench=str(Path(__file__).parent), obj=str(obj))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(p.stderr)
    wall, cpu = p.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


#: the CLI with its CPU time split by stage (printed as JSON on stderr at exit)
BREAKDOWN = """
import atexit, json, sys, time
T = {"interpreter start-up": time.process_time()}
V = [0.0]
import bpfkit
load = bpfkit.load
def mark(stage):
    T[stage] = time.process_time()
def timed_load(source, backend="vm", **opts):
    mark("imports: click, the CLI, kernel commands")
    import bpfkit.obj.loader
    mark("imports: object reader")
    spec = bpfkit.obj.loader.load_object(source)
    mark("parse (load_object)")
    import bpfkit.api, bpfkit.kernel.object, bpfkit.kernel.sys_progs as sp
    mark("imports: kernel backend")
    bpf = sp.bpf
    def timed_bpf(*a, **k):
        c = time.process_time()
        try:
            return bpf(*a, **k)
        finally:
            V[0] += time.process_time() - c
    sp.bpf = timed_bpf
    try:
        return load(spec, backend, **opts)
    finally:
        sp.bpf = bpf
        mark("load: maps, relocation, BTF")
bpfkit.load = timed_load
def report():
    mark("output and exit")
    out, prev = {}, 0.0
    for k, v in T.items():
        out[k] = v - prev
        prev = v
    out["load: maps, relocation, BTF"] -= V[0]
    out["verifier (BPF_PROG_LOAD)"] = V[0]
    print(json.dumps(out), file=sys.stderr)
atexit.register(report)
from bpfkit.cli.main import main
sys.argv = ["bpfkit"] + sys.argv[1:]
main()
"""


def bpftool_supports_autoattach() -> bool:
    out = subprocess.run(["bpftool", "prog", "help"], capture_output=True, text=True)
    return "autoattach" in (out.stdout + out.stderr)


def mount_bpffs() -> str:
    d = tempfile.mkdtemp(prefix="bpfkit-bench-")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", d.encode(), b"bpf", 0, None) != 0:
        raise SystemExit(f"cannot mount bpffs: {os.strerror(ctypes.get_errno())}")
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", help="only the objects whose label contains this text")
    ap.add_argument(
        "--breakdown", action="store_true", help="split the largest object's CLI time by stage"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bpfkit-bench-"))
    (tmp / "large.c").write_text(LARGE_SRC)
    objects = {**OBJECTS, LARGE: tmp / "large.c"}
    if args.only:
        objects = {k: v for k, v in objects.items() if args.only in k}
    env = cli_env(str(tmp / "pycache"))
    fs = mount_bpffs()
    bpftool = shutil.which("bpftool")
    auto = bool(bpftool) and bpftool_supports_autoattach()
    rows = []
    n = [0]

    def pinned(prefix: str, argv):
        def cmd_for(_i: int):
            n[0] += 1
            pin = os.path.join(fs, f"{prefix}{n[0]}")
            return argv(pin), lambda: shutil.rmtree(pin, ignore_errors=True)

        return cmd_for

    try:
        py = [sys.executable]
        run_child(py + ["-m", "bpfkit", "--version"], env)  # fills the bytecode cache
        startup = {
            "python -c pass": best_child(
                lambda i: (py + ["-c", "pass"], lambda: None), args.repeat, env
            ),
            "bpfkit --help": best_child(
                lambda i: (py + ["-m", "bpfkit", "--help"], lambda: None), args.repeat, env
            ),
        }
        if bpftool:
            startup["bpftool version"] = best_child(
                lambda i: ([bpftool, "version"], lambda: None), args.repeat
            )
        largest = None
        for label, src in objects.items():
            obj = tmp / (src.stem + ".o")
            compile_c(src, obj, defines=["BPFKIT_BENCH"])
            bpfkit_once(obj)()  # warm: vmlinux BTF index, imports
            lib = best_both(lambda o=obj: bpfkit_once(o), args.repeat)
            cli_argv = lambda pin, o=obj: (
                py + ["-m", "bpfkit", "load", str(o), "--pin", pin, "--json"]
            )  # noqa: E731
            run_child(cli_argv(os.path.join(fs, "warm")), env)  # bytecode of the load path
            shutil.rmtree(os.path.join(fs, "warm"), ignore_errors=True)
            cli = best_child(pinned("cli", cli_argv), args.repeat, env)
            colds = [cold(obj, env) for _ in range(args.repeat)]
            cold_best = (min(c[0] for c in colds), min(c[1] for c in colds))
            tool = None
            if bpftool:
                tool_argv = lambda pin, o=obj: (
                    [bpftool, "prog", "loadall", str(o), pin]
                    + (  # noqa: E731
                        ["autoattach"] if auto else []
                    )
                )
                tool = best_child(pinned("t", tool_argv), args.repeat)
            spec = load_object(obj)
            insns = sum(len(p.instructions) for p in spec.programs.values())
            row = {
                "object": label,
                "programs": len(spec.programs),
                "maps": len(spec.maps),
                "insns": insns,
                "bpfkit_in_process_ms": round(lib[0] * 1e3, 2),
                "bpfkit_in_process_cpu_ms": round(lib[1] * 1e3, 2),
                "bpfkit_cold_ms": round(cold_best[0] * 1e3, 1),
                "bpfkit_cold_cpu_ms": round(cold_best[1] * 1e3, 1),
                "bpfkit_cli_ms": round(cli[0] * 1e3, 1),
                "bpfkit_cli_cpu_ms": round(cli[1] * 1e3, 1),
                "bpftool_loadall_ms": round(tool[0] * 1e3, 1) if tool else None,
                "bpftool_loadall_cpu_ms": round(tool[1] * 1e3, 1) if tool else None,
            }
            rows.append(row)
            if largest is None or insns > largest[1]:
                largest = (obj, insns, label)
        breakdown = None
        if args.breakdown and largest is not None:
            runs = []
            for i in range(args.repeat):
                pin = os.path.join(fs, f"bd{i}")
                _, _, err = run_child(
                    py + ["-c", BREAKDOWN, "load", str(largest[0]), "--pin", pin, "--json"], env
                )
                shutil.rmtree(pin, ignore_errors=True)
                runs.append(json.loads(err.strip().splitlines()[-1]))
            breakdown = {
                "object": largest[2],
                "cpu_ms": {k: round(min(r[k] for r in runs) * 1e3, 1) for k in runs[0]},
            }
    finally:
        ctypes.CDLL(None).umount2(fs.encode(), 2)
        os.rmdir(fs)
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "startup_ms": {
            k: {"wall": round(w * 1e3, 1), "cpu": round(c * 1e3, 1)}
            for k, (w, c) in startup.items()
        },
        "bpftool_autoattach": auto,
        "rows": rows,
        "breakdown": breakdown,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        "process start-up (wall / CPU): "
        + ", ".join(f"{k} {v['wall']} / {v['cpu']} ms" for k, v in result["startup_ms"].items())
        + f"; bpftool autoattach: {auto}"
    )
    print(f"best of {args.repeat}; each cell wall / CPU in ms; ratios of CPU time (wall)")
    print(
        f"{'object':44} {'progs':>5} {'insns':>6} {'in-process':>15} {'cold':>13} "
        f"{'bpfkit load':>13} {'bpftool':>13} {'CLI/bpftool':>13} {'in-proc/bpftool':>16}"
    )

    def ratio(a: float, b: float | None, aw: float, bw: float | None) -> str:
        return f"{a / b:.2f}x ({aw / bw:.2f}x)" if b and bw else "-"

    for r in rows:
        tool, toolw = r["bpftool_loadall_cpu_ms"], r["bpftool_loadall_ms"]
        print(
            f"{r['object']:44} {r['programs']:5} {r['insns']:6} "
            f"{r['bpfkit_in_process_ms']:6.1f} / {r['bpfkit_in_process_cpu_ms']:6.1f} "
            f"{r['bpfkit_cold_ms']:5.0f} / {r['bpfkit_cold_cpu_ms']:5.0f} "
            f"{r['bpfkit_cli_ms']:5.0f} / {r['bpfkit_cli_cpu_ms']:5.0f} "
            f"{toolw if toolw is not None else '-':>5} / {tool if tool is not None else '-':>5} "
            f"{ratio(r['bpfkit_cli_cpu_ms'], tool, r['bpfkit_cli_ms'], toolw):>13} "
            f"{ratio(r['bpfkit_in_process_cpu_ms'], tool, r['bpfkit_in_process_ms'], toolw):>16}"
        )
    if breakdown:
        print(f"bpfkit load of {breakdown['object']}, CPU by stage (best of {args.repeat}):")
        for k, v in breakdown["cpu_ms"].items():
            print(f"  {k:44} {v:7.1f} ms")


if __name__ == "__main__":
    main()
