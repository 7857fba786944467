"""Object load-to-attached time: ``bpfkit.load(..., backend="kernel")`` next to ``bpftool prog loadall``.

For each object: parse the ELF, create its maps, load every program (CO-RE resolved
against the kernel's BTF where the object has relocations) and, where a program says
where it goes (a tracepoint, a raw tracepoint), attach it; then close everything.
bpftool does the same work with ``prog loadall OBJ DIR`` (plus ``autoattach`` when it
supports it), pinning into a scratch bpffs; its time includes process start-up, reported
on its own as ``bpftool version``. ``bpfkit load`` (the CLI, also a fresh process) is
shown for the same comparison. Times are the best of ``--repeat`` runs.

Run as root: ``python bench/kernel_load.py [--repeat 5] [--json]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
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
    """Best time of ``fn()``; a callable it returns (teardown) runs outside the clock."""
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        teardown = fn()
        best = min(best, time.perf_counter() - t)
        if callable(teardown):
            teardown()
    return best


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
t = time.perf_counter()
teardown = bpfkit_once(__import__("pathlib").Path({obj!r}))
print(time.perf_counter() - t)
teardown()
"""


def cold(obj: Path) -> float:
    """Load-to-attached in a fresh process after imports (vmlinux BTF not yet indexed)."""
    code = COLD.format(bench=str(Path(__file__).parent), obj=str(obj))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return float(p.stdout.strip().splitlines()[-1])


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
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bpfkit-bench-"))
    (tmp / "large.c").write_text(LARGE_SRC)
    objects = {**OBJECTS, LARGE: tmp / "large.c"}
    if args.only:
        objects = {k: v for k, v in objects.items() if args.only in k}
    fs = mount_bpffs()
    bpftool = shutil.which("bpftool")
    auto = bool(bpftool) and bpftool_supports_autoattach()
    rows = []
    try:
        startup = (
            best_of(lambda: subprocess.run([bpftool, "version"], capture_output=True), args.repeat)
            if bpftool
            else None
        )
        py_startup = best_of(
            lambda: subprocess.run(
                [sys.executable, "-m", "bpfkit", "--version"], capture_output=True
            ),
            args.repeat,
        )
        for label, src in objects.items():
            obj = tmp / (src.stem + ".o")
            compile_c(src, obj, defines=["BPFKIT_BENCH"])
            bpfkit_once(obj)()  # warm: vmlinux BTF index, imports
            t_lib = best_of(lambda o=obj: bpfkit_once(o), args.repeat)
            n = [0]

            def cli(o=obj, n=n):
                n[0] += 1
                pin = os.path.join(fs, f"cli{n[0]}")
                p = subprocess.run(
                    [sys.executable, "-m", "bpfkit", "load", str(o), "--pin", pin, "--json"],
                    capture_output=True,
                    text=True,
                )
                if p.returncode:
                    raise SystemExit(p.stdout + p.stderr)
                return lambda: subprocess.run(["rm", "-rf", pin])

            t_cli = best_of(cli, args.repeat)
            t_cold = min(cold(obj) for _ in range(args.repeat))
            t_tool = None
            if bpftool:

                def tool(o=obj, n=n):
                    n[0] += 1
                    pin = os.path.join(fs, f"t{n[0]}")
                    cmd = [bpftool, "prog", "loadall", str(o), pin]
                    if auto:
                        cmd.append("autoattach")
                    p = subprocess.run(cmd, capture_output=True, text=True)
                    if p.returncode:
                        raise SystemExit(f"bpftool failed on {o}: {p.stderr}")
                    return lambda: subprocess.run(["rm", "-rf", pin])

                t_tool = best_of(tool, args.repeat)
            spec = load_object(obj)
            rows.append(
                {
                    "object": label,
                    "programs": len(spec.programs),
                    "maps": len(spec.maps),
                    "insns": sum(len(p.instructions) for p in spec.programs.values()),
                    "bpfkit_in_process_ms": round(t_lib * 1e3, 2),
                    "bpfkit_cold_ms": round(t_cold * 1e3, 1),
                    "bpfkit_cli_ms": round(t_cli * 1e3, 1),
                    "bpftool_loadall_ms": round(t_tool * 1e3, 1) if t_tool is not None else None,
                }
            )
    finally:
        ctypes.CDLL(None).umount2(fs.encode(), 2)
        os.rmdir(fs)
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "bpftool_startup_ms": round(startup * 1e3, 1) if startup else None,
        "bpfkit_cli_startup_ms": round(py_startup * 1e3, 1),
        "bpftool_autoattach": auto,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"process start-up: bpftool {result['bpftool_startup_ms']} ms, "
        f"bpfkit CLI {result['bpfkit_cli_startup_ms']} ms; bpftool autoattach: {auto}"
    )
    print(
        f"{'object':44} {'progs':>5} {'maps':>4} {'insns':>6} {'bpfkit warm':>11} "
        f"{'bpfkit cold':>11} {'bpfkit cli':>11} {'bpftool':>9} {'cli/bpftool':>11}"
    )
    for r in rows:
        tool = r["bpftool_loadall_ms"]
        ratio = f"{r['bpfkit_cli_ms'] / tool:10.2f}x" if tool else "-"
        print(
            f"{r['object']:44} {r['programs']:5} {r['maps']:4} {r['insns']:6} "
            f"{r['bpfkit_in_process_ms']:9.2f}ms {r['bpfkit_cold_ms']:9.1f}ms "
            f"{r['bpfkit_cli_ms']:9.1f}ms {tool if tool is not None else '-':>7}ms {ratio:>11}"
        )


if __name__ == "__main__":
    main()
