"""Object parse time: ``bpfkit.obj.load_object`` next to ``bpftool btf dump`` and ``llvm-objdump``.

Objects: the largest tests/c/obj_*.c programs, a synthetic C file generated here with
100 BTF-defined maps and about 10,000 instructions (plus .text subprograms), and the
13,000-instruction unrolled program of ``bench/kernel_load.py``. Every tool
runs on the same file; times are the best of ``--repeat`` runs (external tools include
their process start-up, which is reported separately as the time of ``--version``).

Run: ``python bench/obj_parse.py [--repeat 5] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_load import LARGE_SRC  # noqa: E402

from bpfkit.btf import parse_btf
from bpfkit.obj import load_object
from bpfkit.obj.build import compile_c
from bpfkit.obj.elf import ElfFile

ROOT = Path(__file__).resolve().parents[1]
LARGEST = ["obj_sections.c", "obj_maps.c", "obj_btf_types.c", "obj_calls.c", "obj_globals.c"]


def synthetic_source(n_maps: int = 100, n_progs: int = 20, per_prog: int = 36) -> str:
    """C source with ``n_maps`` maps and roughly 10,000 instructions over ``n_progs`` programs."""
    out = ["#include <linux/bpf.h>", "#include <bpf/bpf_helpers.h>", ""]
    for i in range(n_maps):
        kind = ("BPF_MAP_TYPE_HASH", "BPF_MAP_TYPE_ARRAY", "BPF_MAP_TYPE_LRU_HASH")[i % 3]
        out.append(
            f"struct {{ __uint(type, {kind}); __type(key, __u32); __type(value, __u64);"
            f' __uint(max_entries, {16 + i}); }} m{i} SEC(".maps");'
        )
    out.append("__u64 g_total;")
    for s in range(4):
        out.append(
            f"static __noinline __u64 sub{s}(__u64 x) {{ g_total += x; return x * {s + 3} + g_total; }}"
        )
    for p in range(n_progs):
        out.append(f'SEC("tc") int prog{p}(struct __sk_buff *skb) {{')
        out.append("\t__u32 k = skb->mark; __u64 acc = 0, *v;")
        for j in range(per_prog):
            m = (p * per_prog + j) % n_maps
            out.append(
                f"\tk = k * 31 + {j}; v = bpf_map_lookup_elem(&m{m}, &k);"
                f" if (v) {{ acc += *v; *v = acc ^ {j}; }}"
            )
        out.append(f"\treturn sub{p % 4}(acc) & 1;")
        out.append("}")
    out.append('char LICENSE[] SEC("license") = "GPL";')
    return "\n".join(out) + "\n"


def best_of(fn, n: int) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_tool(cmd: list[str]) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bpfkit-bench-"))
    objs: list[Path] = []
    for name in LARGEST:
        objs.append(compile_c(ROOT / "tests" / "c" / name, work / name.replace(".c", ".o")).object)
    syn_src = work / "synthetic_10k.c"
    syn_src.write_text(synthetic_source())
    objs.append(compile_c(syn_src, work / "synthetic_10k.o").object)
    large_src = work / "unrolled_13k.c"  # one 13,000-instruction program (bench/kernel_load.py's)
    large_src.write_text(LARGE_SRC)
    objs.append(compile_c(large_src, work / "unrolled_13k.o").object)

    bpftool = shutil.which("bpftool")
    objdump = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump")
    startup = {}
    for name, tool in (("bpftool", bpftool), ("llvm-objdump", objdump)):
        if tool:
            startup[name] = best_of(lambda t=tool: run_tool([t, "--version"]), args.repeat)

    rows = []
    for path in objs:
        data = path.read_bytes()
        spec = load_object(data)
        insns = sum(len(p.instructions) for p in spec.programs.values())
        own = sum(p.own_insn_count for p in spec.programs.values())
        btf_raw = ElfFile(data).by_name(".BTF").data
        row = {
            "object": path.name,
            "bytes": len(data),
            "programs": len(spec.programs),
            "maps": len(spec.maps),
            "insns": own,
            "linked_insns": insns,
            "btf_types": len(spec.btf.types) - 1 if spec.btf else 0,
            "bpfkit_load_ms": best_of(lambda d=data: load_object(d), args.repeat) * 1e3,
            "bpfkit_btf_ms": best_of(lambda b=btf_raw: parse_btf(b), args.repeat) * 1e3,
        }
        if bpftool:
            row["bpftool_btf_dump_ms"] = (
                best_of(
                    lambda p=path: run_tool([bpftool, "btf", "dump", "file", str(p)]), args.repeat
                )
                * 1e3
            )
        if objdump:
            row["llvm_objdump_d_ms"] = (
                best_of(lambda p=path: run_tool([objdump, "-d", str(p)]), args.repeat) * 1e3
            )
        rows.append(row)

    vmlinux = Path("/sys/kernel/btf/vmlinux")
    vm_row = None
    try:
        raw = vmlinux.read_bytes()
    except OSError:
        raw = None
    if raw:
        vm_row = {
            "object": str(vmlinux),
            "bytes": len(raw),
            "btf_types": len(parse_btf(raw).types) - 1,
            "bpfkit_btf_ms": best_of(lambda: parse_btf(raw), max(1, args.repeat // 2)) * 1e3,
            # parse_btf is lazy: what a first lookup and a full decode add to it
            "bpfkit_btf_find_ms": best_of(
                lambda: parse_btf(raw).find("task_struct"), max(1, args.repeat // 2)
            )
            * 1e3,
            "bpfkit_btf_all_types_ms": best_of(lambda: list(parse_btf(raw).types), 1) * 1e3,
        }
        if bpftool:
            vm_row["bpftool_btf_dump_ms"] = (
                best_of(
                    lambda: run_tool([bpftool, "btf", "dump", "file", str(vmlinux)]),
                    max(1, args.repeat // 2),
                )
                * 1e3
            )

    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "objects": rows,
                    "vmlinux": vm_row,
                    "tool_startup_ms": {k: v * 1e3 for k, v in startup.items()},
                },
                indent=2,
            )
        )
        return 0

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Object parse time (best of {args.repeat}; ms)")
    for col in (
        "object",
        "KiB",
        "progs",
        "maps",
        "insns (linked)",
        "BTF types",
        "bpfkit load",
        "bpfkit BTF",
        "bpftool btf dump",
        "llvm-objdump -d",
    ):
        t.add_column(col, justify="left" if col == "object" else "right")
    for r in rows:
        t.add_row(
            r["object"],
            f"{r['bytes'] / 1024:.1f}",
            str(r["programs"]),
            str(r["maps"]),
            f"{r['insns']} ({r['linked_insns']})",
            str(r["btf_types"]),
            f"{r['bpfkit_load_ms']:.2f}",
            f"{r['bpfkit_btf_ms']:.2f}",
            f"{r.get('bpftool_btf_dump_ms', float('nan')):.2f}",
            f"{r.get('llvm_objdump_d_ms', float('nan')):.2f}",
        )
    if vm_row:
        t.add_row(
            "vmlinux BTF",
            f"{vm_row['bytes'] / 1024:.0f}",
            "-",
            "-",
            "-",
            str(vm_row["btf_types"]),
            "-",
            f"{vm_row['bpfkit_btf_ms']:.0f}",
            f"{vm_row.get('bpftool_btf_dump_ms', float('nan')):.0f}",
            "-",
        )
    console = Console(width=160)
    console.print(t)
    if vm_row:
        console.print(
            f"vmlinux BTF: parse_btf {vm_row['bpfkit_btf_ms']:.0f} ms, "
            f"+ find('task_struct') {vm_row['bpfkit_btf_find_ms']:.0f} ms, "
            f"+ every type decoded {vm_row['bpfkit_btf_all_types_ms']:.0f} ms"
        )
    if startup:
        console.print(
            "tool start-up (--version): "
            + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in startup.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
