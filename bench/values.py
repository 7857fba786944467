"""Typed values through BTF: struct-valued map updates and event decoding.

The anchor is the same operation on a ``u64``-valued map in the same process: a struct
value costs what a plain integer costs, plus its encoding. Measured:

1. ``Map.update_batch`` of N entries whose value is a 16-byte struct (``{pid, tgid, ts}``),
   µs per entry, in the VM and (when available) in the kernel, next to the same batch of
   ``u64`` values;
2. encoding and decoding one struct value (``Map.encode_value`` / ``decode_value``);
3. decoding ring-buffer-sized event records (a struct with a ``char[16]``) with
   ``bpfkit.events.event_type`` next to the generic walk (``bpfkit.btf.decode_value``).

Run: ``python bench/values.py [--n N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import bpfkit

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct val { __u32 pid; __u32 tgid; __u64 ts; };
struct event { __u32 pid; __u32 cpu; __u64 ts; char comm[16]; };

struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, __u32); __type(value, struct val);
         __uint(max_entries, 65536); } svals SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, __u32); __type(value, __u64);
         __uint(max_entries, 65536); } uvals SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, struct event);
         __uint(max_entries, 1); } sample SEC(".maps");

SEC("xdp")
int touch(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct val *v = bpf_map_lookup_elem(&svals, &k);
	__u64 *u = bpf_map_lookup_elem(&uvals, &k);
	struct event *e = bpf_map_lookup_elem(&sample, &k);
	return (v ? 1 : 0) + (u ? 1 : 0) + (e ? 1 : 0);
}
char LICENSE[] SEC("license") = "GPL";
"""


def _best(fn, reps: int = 5) -> float:
    """Best wall time of ``reps`` runs of ``fn()`` (seconds)."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _batches(obj, n: int) -> dict[str, float]:
    s, u = obj.maps["svals"], obj.maps["uvals"]
    svals = {i: {"pid": i, "tgid": i + 1, "ts": i * 1000} for i in range(n)}
    uvals = {i: i * 1000 for i in range(n)}
    return {
        "struct": _best(lambda: s.update_batch(svals)) / n * 1e6,
        "u64": _best(lambda: u.update_batch(uvals)) / n * 1e6,
    }


def _codecs(obj, k: int = 20000) -> list[tuple[str, float, float]]:
    """Encoding/decoding one value, and decoding events (µs each), with their anchors."""
    m, um = obj.maps["svals"], obj.maps["uvals"]
    v = {"pid": 1, "tgid": 2, "ts": 3}
    raw = m.encode_value(v)
    rows = [
        (
            "encode one struct value",
            _best(lambda: [m.encode_value(v) for _ in range(k)]) / k * 1e6,
            _best(lambda: [um.encode_value(7) for _ in range(k)]) / k * 1e6,
        ),
        (
            "decode one struct value",
            _best(lambda: [m.decode_value(raw) for _ in range(k)]) / k * 1e6,
            _best(lambda: [um.decode_value(b"\7" + bytes(7)) for _ in range(k)]) / k * 1e6,
        ),
    ]
    from bpfkit.btf.values import decode_value

    try:
        from bpfkit.events import event_type
    except ImportError:  # a bpfkit before bpfkit.events (for before/after runs)
        return rows

    ev = event_type("struct event", obj)
    rec = bytes(range(16)) + b"bash" + bytes(12)
    btf = obj.spec.btf
    tid = btf.find("event").id
    rows.append(
        (
            "decode a 32-byte event (compiled vs generic walk)",
            _best(lambda: [ev.decode(rec) for _ in range(k)]) / k * 1e6,
            _best(lambda: [decode_value(btf, tid, rec) for _ in range(k)]) / k * 1e6,
        )
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="entries per batch")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.n
    rows: list[tuple[str, float, float]] = []  # (what, us, anchor us)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "vals.c"
        src.write_text(SRC)
        path = bpfkit.build(src, Path(d) / "vals.o")
        backends = ["vm"]
        try:
            from bpfkit.kernel.privileges import kernel_available

            if kernel_available()[0]:
                backends.append("kernel")
        except Exception:  # noqa: BLE001 - the kernel column is optional
            pass
        for backend in backends:
            with bpfkit.load(path, backend=backend) as obj:
                b = _batches(obj, n)
                rows.append(
                    (f"update_batch, 16-byte struct value ({backend})", b["struct"], b["u64"])
                )
                if backend == "vm":
                    rows += _codecs(obj)
    if args.json:
        print(
            json.dumps(
                [{"what": w, "us": us, "anchor_us": a, "ratio": us / a} for w, us, a in rows]
            )
        )
        return
    t = Table(title=f"typed values (N = {n}); anchor: the same on u64 values / the generic walk")
    t.add_column("operation")
    t.add_column("µs", justify="right")
    t.add_column("anchor µs", justify="right")
    t.add_column("ratio", justify="right")
    for w, us, a in rows:
        t.add_row(w, f"{us:.2f}", f"{a:.2f}", f"{us / a:.2f}×")
    Console().print(t)


if __name__ == "__main__":
    main()
