"""Classic interpreter speed: ns per packet on libpcap's own programs.

Anchors, in the same process: the plain step interpreter (tests/classic_reference.py, the
first classic interpreter bpfkit had) and libpcap's ``bpf_filter`` through ctypes (native
code plus the ctypes call). Programs: ``tcpdump -ddd EXPR``; packets: generated frames
(tests/classic_strategies.py). Run: ``python bench/classic.py``.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from classic_reference import run_reference  # noqa: E402
from classic_strategies import _BpfInsn, libpcap, make_packet  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bpfkit.classic.interp import compile_classic, run_classic  # noqa: E402
from bpfkit.classic.listing import parse_decimal  # noqa: E402

EXPRS = [
    "ip",
    "tcp port 80",
    "host 10.0.0.1 and (tcp or udp)",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
    "vlan and ip and udp port 53",
    "ip6 net fe80::/10 or arp or portrange 1000-2000",
]


def per_packet(fn, packets, rounds: int = 3) -> float:
    """Best-of-``rounds`` ns per packet of ``fn`` over ``packets``."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for p in packets:
            fn(p)
        best = min(best, (time.perf_counter_ns() - t0) / len(packets))
    return best


def main() -> None:
    rnd = random.Random(1)
    packets = [make_packet(rnd) for _ in range(4000)]
    lib = libpcap()
    table = Table(title="classic interpreter: ns per packet (best of 3)")
    for col in (
        "expression",
        "insns",
        "compile µs",
        "compiled .ret",
        "run_classic",
        "step interp",
        "libpcap (ctypes)",
        "vs step",
        "vs libpcap",
    ):
        table.add_column(col, justify="right")
    for expr in EXPRS:
        text = subprocess.run(
            ["tcpdump", "-y", "EN10MB", "-ddd", expr], capture_output=True, text=True, check=True
        ).stdout
        prog = parse_decimal(text)
        t0 = time.perf_counter_ns()
        cp = compile_classic(prog)
        compile_us = (time.perf_counter_ns() - t0) / 1000
        fast = per_packet(cp.ret, packets)
        full = per_packet(lambda p, prog=prog: run_classic(prog, p), packets)
        step = per_packet(lambda p, prog=prog: run_reference(prog, p), packets[:1000], 1)
        native = float("nan")
        if lib is not None:
            arr = (_BpfInsn * len(prog))(*[_BpfInsn(*i) for i in prog])
            f = lib.bpf_filter
            native = per_packet(lambda p, arr=arr, f=f: f(arr, p, len(p), len(p)), packets)
        for p in packets[:500]:
            assert cp.ret(p) == run_reference(prog, p).ret
        table.add_row(
            expr,
            str(len(prog)),
            f"{compile_us:.0f}",
            f"{fast:.0f}",
            f"{full:.0f}",
            f"{step:.0f}",
            f"{native:.0f}",
            f"{step / fast:.1f}x",
            f"{native / fast:.2f}x",
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
