"""Map dump rate: a kernel hash map read from Python next to ``bpftool map dump``.

The map (u32 keys, a 16-byte BTF struct value) is filled with ``--entries`` elements,
then read back whole:

- ``bpfkit batch raw``: ``BPF_MAP_LOOKUP_BATCH`` in chunks, raw key/value bytes;
- ``bpfkit batch typed``: the same, keys and values decoded through BTF (``items()``);
- ``bpfkit key by key``: ``GET_NEXT_KEY`` + ``LOOKUP_ELEM`` per entry (what maps without
  batch support cost);
- ``bpftool map dump``: its plain and ``-j`` output, process start-up included.

Run as root: ``python bench/kernel_mapdump.py [--entries 100000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import bpfkit
from bpfkit.api import Map
from bpfkit.obj.build import compile_c

SOURCE = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct value { __u64 total; __u32 count; __u32 last; };
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct value);
} dump_me SEC(".maps");
SEC("xdp") int touch(struct xdp_md *ctx) { __u32 k = 0; return bpf_map_lookup_elem(&dump_me, &k) ? 2 : 1; }
char LICENSE[] SEC("license") = "GPL";
"""


def best_of(fn, n: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(n):
        t = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t)
    return best, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.entries
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "dump.c"
        src.write_text(SOURCE)
        obj_path = Path(d) / "dump.o"
        compile_c(src, obj_path, defines=[f"MAX_ENTRIES={n}"])
        with bpfkit.load(obj_path, backend="kernel") as obj:
            m = obj.maps["dump_me"]
            m.update_batch({i: {"total": i * 3, "count": i, "last": i ^ 0xFFFF} for i in range(n)})
            assert len(m) == n

            def raw():
                return sum(1 for _ in m.batch_items_raw())

            def typed():
                return len(list(m.items()))

            def key_by_key():
                return sum(1 for _ in Map.raw_items(m))

            for label, fn in (
                ("bpfkit batch raw", raw),
                ("bpfkit batch typed", typed),
                ("bpfkit key by key", key_by_key),
            ):
                t, c = best_of(fn, args.repeat)
                assert c == n, (label, c)
                rows[label] = {"seconds": round(t, 4), "per_second": round(n / t)}
            tool = shutil.which("bpftool")
            if tool:
                mid = str(m.id)
                for label, cmd in (
                    ("bpftool map dump", [tool, "map", "dump", "id", mid]),
                    ("bpftool map dump -j", [tool, "-j", "map", "dump", "id", mid]),
                ):

                    def run(cmd=cmd):
                        p = subprocess.run(cmd, capture_output=True, text=True)
                        if p.returncode:
                            raise SystemExit(p.stderr)
                        return n

                    t, _ = best_of(run, args.repeat)
                    rows[label] = {"seconds": round(t, 4), "per_second": round(n / t)}
    out = {"entries": n, "value_bytes": 16, "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{n} entries, u32 -> 16-byte struct")
    for label, r in rows.items():
        print(f"{label:22} {r['seconds'] * 1e3:9.1f} ms  {r['per_second'] / 1e6:6.2f} M entries/s")


if __name__ == "__main__":
    main()
