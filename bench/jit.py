"""JIT speed: bpfkit's JIT against the kernel's JIT (and bpfkit's interpreter), ns per run.

Each program in ``bench/c/`` is an XDP program built with ``clang-19 -O2 -target bpf
-mcpu=v3``; its section is read with pyelftools. It runs three ways on the same packet:

- the kernel's JIT through ``BPF_PROG_TEST_RUN`` with ``repeat=N`` (its reported mean
  duration; needs root or CAP_BPF+CAP_NET_ADMIN, else the column says n/a);
- bpfkit's JIT, ``JitProgram.run_repeat(N)`` (a native loop, no memory reset between
  runs, like the kernel), mean ns per run;
- bpfkit's interpreter, a Python loop of runs, mean ns per run.

For the VM engines the context is an ``xdp_md`` laid out the way bpfkit's runtime lays
it out (the UAPI struct followed by 64-bit ``data``/``data_end``/``data_meta`` slots), and
the program's ``ctx->data``/``ctx->data_end`` loads are rewritten to those slots by the
runtime's ``convert_ctx_access`` (what the kernel's ``convert_ctx_access`` does).

Run: ``python bench/jit.py [--quick] [--only NAME ...] [--json]``.

``python bench/jit.py --compile-time [--rounds N] [--opt-level L]`` instead measures the
CPU time of cold compiles (cache cleared, no tier-up thread) of large programs: three
generated ones (``tests/progen.py``) and a 956-instruction XDP firewall in C (70 unrolled
rules), with the Python (lowering) and LLVM (parse, IR passes, code generation) parts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from rich.console import Console
from rich.table import Table

from bpfkit.errors import BpfError
from bpfkit.isa.instruction import Instruction, decode
from bpfkit.jit import JitProgram, clear_cache, proven_safe, register_native
from bpfkit.jit.native import prandom_helper
from bpfkit.uapi.ctx import CTX_ACCESS
from bpfkit.uapi.enums import ProgType
from bpfkit.vm.env import Env
from bpfkit.vm.helpers import BASE
from bpfkit.vm.interp import CompiledProgram
from bpfkit.vm.memory import Region
from bpfkit.vm.progtypes.convert import convert_ctx_access, pointer_slots

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"
CLANG = os.environ.get("CLANG", "clang-19")
XDP = int(ProgType.XDP)
VERIFY_LIMIT = 50_000  # processed instructions bpfkit's (Python) verifier may spend


# ---- packets ------------------------------------------------------------------------
def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _tcp_packet() -> bytes:
    """Ethernet + IPv4 with one option word (ihl=6) + TCP (SYN|ACK) + payload, 74 bytes."""
    eth = bytes.fromhex("020000000002020000000001") + struct.pack("!H", 0x0800)
    payload = b"GET / HTTP/1.1\r\n"
    tcp = struct.pack("!HHIIBBHHH", 43210, 80, 1, 2, 5 << 4, 0x12, 65535, 0, 0)
    tot = 24 + len(tcp) + len(payload)
    ip = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x46,
            0,
            tot,
            1,
            0,
            64,
            6,
            0,
            bytes([10, 0, 0, 1]),
            bytes([10, 0, 0, 2]),
        )
        + b"\x01\x01\x01\x00"
    )
    return eth + ip + tcp + payload


def _bsearch_packet() -> bytes:
    arr = [3 * i + 1 for i in range(256)]
    keys = [3 * random.Random(k).randrange(256) + (k & 1) for k in range(32)]
    return struct.pack("<256I", *arr) + struct.pack("<32I", *keys)


def _strmem_packet() -> bytes:
    s = bytes(random.Random(7).choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(120))
    a = s + b"X" + b"\0" * 7
    b = s + b"Y" + b"\0" * 7
    return a + b


@dataclass
class Bench:
    """One benchmark program: its C file, entry function and input packet."""

    name: str
    source: str
    func: str
    packet: Callable[[], bytes]
    deterministic: bool = True


BENCHES = [
    Bench("return", "ret.c", "ret", lambda: _rand(64, 1)),
    Bench("sum2", "sum2.c", "sum2", lambda: _rand(64, 2)),
    Bench("log2", "log2.c", "log2_sum", lambda: _rand(256, 3)),
    Bench("primes", "primes.c", "primes", lambda: struct.pack("<I", 2000) + bytes(60)),
    Bench("switch64", "switch64.c", "switch64", lambda: _rand(256, 5)),
    Bench("strcmp+memcpy", "strmem.c", "strmem", _strmem_packet),
    Bench("checksum", "csum.c", "csum", lambda: _rand(1500, 6)),
    Bench("bsearch", "bsearch.c", "bsearch", _bsearch_packet),
    Bench("parse eth/ip/tcp", "parse.c", "parse", _tcp_packet),
    Bench("helpers", "helpers.c", "helpers", lambda: _rand(64, 9), deterministic=False),
]


# ---- building -----------------------------------------------------------------------
def _include_dirs() -> list[str]:
    return [
        f"-I{d}"
        for d in ("/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu")
        if os.path.isdir(d)
    ]


def build(b: Bench, outdir: Path) -> list[Instruction]:
    """Compile ``b`` and return the instructions of its program section."""
    obj = outdir / (Path(b.source).stem + ".o")
    cmd = [
        CLANG,
        "-O2",
        "-g0",
        "-target",
        "bpf",
        "-mcpu=v3",
        *_include_dirs(),
        "-c",
        str(C_DIR / b.source),
        "-o",
        str(obj),
    ]
    subprocess.run(cmd, check=True)
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols():
            if sym.name == b.func and sym["st_info"]["type"] == "STT_FUNC":
                sec = elf.get_section(sym["st_shndx"])
                if elf.get_section_by_name(".rel" + sec.name) is not None:
                    raise SystemExit(f"{b.source}: relocations are not supported by this bench")
                data = sec.data()
                start = sym["st_value"]
                return decode(data[start : start + (sym["st_size"] or len(data))])
    raise SystemExit(f"{b.source}: no function {b.func}")


# ---- the kernel -----------------------------------------------------------------------
class Kernel:
    """``BPF_PROG_LOAD`` + ``BPF_PROG_TEST_RUN`` through bpfkit.kernel.sys."""

    def __init__(self) -> None:
        self.error = ""
        try:
            from bpfkit.kernel import sys as ksys

            self.sys = ksys
            fd = ksys.prog_load(XDP, decode(bytes.fromhex("b7000000020000009500000000000000")))
            os.close(int(fd))
        except Exception as e:  # noqa: BLE001 - any failure means "no kernel column"
            self.sys = None
            self.error = f"{type(e).__name__}: {e}"

    @property
    def ok(self) -> bool:
        return self.sys is not None

    def load(self, insns: list[Instruction]) -> int:
        return int(self.sys.prog_load(XDP, insns, license="GPL"))

    def run(self, fd: int, data: bytes, repeat: int) -> tuple[int, float]:
        """(retval, mean ns per run) — the kernel reports whole nanoseconds."""
        r = self.sys.prog_test_run(fd, data=data, repeat=repeat)
        return r.retval, float(r.duration_ns)


# ---- the VM -------------------------------------------------------------------------
def vm_env() -> Env:
    """An environment with the helpers the benchmarks call (and their native twins)."""
    helpers = BASE.copy()

    def get_prandom_u32(env, *_args) -> int:
        return random.getrandbits(32)

    helpers.register("get_prandom_u32", get_prandom_u32)
    register_native(get_prandom_u32, prandom_helper())
    return Env(helpers=helpers)


def xdp_context(env: Env, packet: bytes) -> tuple[Region, Region]:
    """The packet and an ``xdp_md`` context (UAPI fields + 64-bit pointer slots)."""
    access = CTX_ACCESS[ProgType.XDP]
    slots = pointer_slots(access)
    size = max(slots.values()) + 8
    pkt = env.space.add(Region.alloc("packet", len(packet), init=packet))
    ctx = env.space.add(Region.alloc("xdp_md", size))
    ctx.mv[slots["data"] : slots["data"] + 8] = struct.pack("<Q", pkt.base)
    ctx.mv[slots["data_end"] : slots["data_end"] + 8] = struct.pack("<Q", pkt.end)
    ctx.mv[slots["data_meta"] : slots["data_meta"] + 8] = struct.pack("<Q", pkt.base)
    return pkt, ctx


def _calibrate(run_once: Callable[[int], float], target_s: float, cap: int) -> int:
    """A repeat count so that one measurement takes about ``target_s``."""
    n = 1
    while True:
        t = run_once(n) * n  # ns for n runs
        if t >= target_s * 1e9 / 4 or n >= cap:
            return max(1, min(cap, int(n * target_s * 1e9 / max(t, 1.0))))
        n *= 4


def interleaved_min(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """The minimum of each measurement over ``rounds`` interleaved rounds.

    This machine may be shared: short rounds, interleaved so that every engine sees
    the same background load, and the minimum (the run least disturbed) of each.
    """
    best = {k: math.inf for k in measures}
    for _ in range(rounds):
        for k, m in measures.items():
            best[k] = min(best[k], m())
    return best


@dataclass
class Row:
    name: str
    insns: int
    kernel: float | None
    jit: float
    jit_checked: float
    interp: float
    compile_ms: float
    agree: str
    proven: str


def bench_one(b: Bench, insns: list[Instruction], kernel: Kernel, quick: bool) -> Row:
    packet = b.packet()
    rounds = 8 if quick else 25
    target = 0.002 if quick else 0.004
    measures: dict[str, Callable[[], float]] = {}
    # the kernel
    k_ret = fd = None
    if kernel.ok:
        fd = kernel.load(insns)
        k_ret = kernel.run(fd, packet, 1)[0]
        k_rep = _calibrate(lambda n: kernel.run(fd, packet, n)[1], target, 1 << 22)
        measures["kernel"] = lambda: kernel.run(fd, packet, k_rep)[1]
    # bpfkit: the same program with the context loads converted
    vm_insns = convert_ctx_access(insns, CTX_ACCESS[ProgType.XDP], "xdp")
    env = vm_env()
    pkt, ctx = xdp_context(env, packet)
    # accesses bpfkit's verifier proves in bounds compile without region checks (the
    # verifier is Python: programs it cannot finish quickly keep every check)
    try:
        safe = proven_safe(insns, "xdp", limit=VERIFY_LIMIT)
    except BpfError:
        safe = set()
    mem_insns = sum(1 for i in insns if i.cls in (1, 2, 3))
    clear_cache()
    t0 = time.perf_counter_ns()
    jp = JitProgram(vm_insns, env, safe=safe)
    compile_ms = (time.perf_counter_ns() - t0) / 1e6
    checked = JitProgram(vm_insns, env) if safe else jp

    def jit_run(n: int, prog: JitProgram = jp) -> float:
        return prog.run_repeat(n, ctx.base)[2] / n

    j_rep = _calibrate(jit_run, target, 1 << 24)
    measures["jit"] = lambda: jit_run(j_rep)
    if checked is not jp:
        measures["checked"] = lambda: jit_run(j_rep, checked)
    try:
        best = interleaved_min(measures, rounds)
    finally:
        if fd is not None:
            os.close(fd)
    j_ret = jp.run(ctx.base)[0] & 0xFFFFFFFF
    ip = CompiledProgram(vm_insns, env)

    def interp_run(n: int) -> float:
        t = time.perf_counter_ns()
        for _ in range(n):
            ip.run(ctx.base)
        return (time.perf_counter_ns() - t) / n

    i_rep = _calibrate(interp_run, 0.02, 100_000)
    i_ns = interleaved_min({"i": lambda: interp_run(i_rep)}, 3 if quick else 5)["i"]
    i_ret = ip.run(ctx.base)[0] & 0xFFFFFFFF
    env.space.remove(pkt)
    env.space.remove(ctx)
    if not b.deterministic:
        agree = "n/a (random)"
    elif k_ret is None:
        agree = "yes" if j_ret == i_ret else f"NO jit={j_ret:#x} interp={i_ret:#x}"
    else:
        same = j_ret == i_ret == k_ret
        agree = "yes" if same else f"NO k={k_ret:#x} jit={j_ret:#x} interp={i_ret:#x}"
    return Row(
        b.name,
        len(insns),
        best.get("kernel"),
        best["jit"],
        best.get("checked", best["jit"]),
        i_ns,
        compile_ms,
        agree,
        f"{len(safe)}/{mem_insns}",
    )


def _fmt_ns(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


# ---- compile time -------------------------------------------------------------------
FIREWALL_C = r"""
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 71);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

/* rule i: source net 10.(i*37).(i*11).0/(16 + i % 9), protocol TCP or UDP, destination
 * ports [1000 * i, 1000 * i + 64 * (i % 5 + 1)], drop on odd rules, pass on even */
#define NRULES 70

SEC("xdp")
int firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end)
        return XDP_PASS;
    __u32 saddr = bpf_ntohl(ip->saddr);
    __u8 proto = ip->protocol;
    __u8 tos = ip->tos, ttl = ip->ttl;
    __u16 dport;
    if (proto == IPPROTO_TCP) {
        struct tcphdr *t = (void *)(ip + 1);
        if ((void *)(t + 1) > end)
            return XDP_PASS;
        dport = bpf_ntohs(t->dest);
    } else if (proto == IPPROTO_UDP) {
        struct udphdr *u = (void *)(ip + 1);
        if ((void *)(u + 1) > end)
            return XDP_PASS;
        dport = bpf_ntohs(u->dest);
    } else {
        return XDP_PASS;
    }
    __u32 rule = NRULES;
#pragma unroll
    for (int i = 0; i < NRULES; i++) {
        __u32 net = (10u << 24) | ((i * 37u & 255) << 16) | ((i * 11u & 255) << 8);
        __u32 mask = ~0u << (16 - i % 9);
        __u8 p = i % 3 ? IPPROTO_TCP : IPPROTO_UDP;
        __u16 lo = 1000 * i, hi = 1000 * i + 64 * (i % 5 + 1);
        if ((saddr & mask) == (net & mask) && proto == p && dport >= lo && dport <= hi &&
            (tos >> 2) != (i & 63) && ttl > (i & 7)) {
            rule = i;
            break;
        }
    }
    __u64 *c = bpf_map_lookup_elem(&hits, &rule);
    if (c)
        __sync_fetch_and_add(c, 1);
    if (rule == NRULES)
        return XDP_PASS;
    return rule & 1 ? XDP_DROP : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def compile_subjects(tmp: Path) -> list[tuple[str, list[Instruction], Env, frozenset | None]]:
    """The programs of ``--compile-time``: three generated ones (tests/progen.py) and an
    XDP firewall in C with 70 unrolled rules, loaded with bpfkit.load (its env, safe set)."""
    import bpfkit
    from bpfkit.obj.build import compile_c

    sys.path.insert(0, str(HERE.parent / "tests"))
    from progen import generate

    out = [
        (f"progen({seed}, {n}, {j})", generate(seed, length=n, max_jumps=j), Env(), None)
        for seed, n, j in ((7, 900, 200), (3, 950, 16), (11, 480, 100))
    ]
    src = tmp / "firewall.c"
    src.write_text(FIREWALL_C)
    obj = bpfkit.load(compile_c(src, tmp / "firewall.o").object)
    p = obj.programs["firewall"].vm
    out.append(("C firewall (70 rules)", list(p.insns), p.env, p.safe))
    out[-1][2]._bench_obj = obj  # keep the object (its maps) alive
    return out


def compile_times(rounds: int, opt_level: int | None, as_json: bool) -> None:
    """CPU time (time.process_time) of a cold compile, the default tier, no tier-up thread."""
    from bpfkit.jit.runtime import _CACHE

    JitProgram(decode(bytes.fromhex("b7000000020000009500000000000000")), vm_env())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, insns, env, safe in compile_subjects(Path(tmp)):
            cpu, parts = [], []
            for _ in range(rounds):
                _CACHE.clear()
                t0 = time.process_time()
                jp = JitProgram(insns, env, safe=safe, opt_level=opt_level, tier_up=False)
                cpu.append(time.process_time() - t0)
                parts.append(jp.compiled.native.timings)
            best = min(range(rounds), key=lambda i: cpu[i])
            t = parts[best]
            llvm_ms = sum(t.values()) / 1e6
            rows.append(
                {
                    "program": name,
                    "insns": len(insns),
                    "jumps": sum(1 for i in insns if i.is_jump),
                    "level": jp.compiled.opt_level,
                    "cpu_ms_min": 1e3 * cpu[best],
                    "cpu_ms_median": 1e3 * sorted(cpu)[rounds // 2],
                    "python_ms": 1e3 * cpu[best] - llvm_ms,
                    "parse_ms": t["parse"] / 1e6,
                    "opt_ms": t["opt"] / 1e6,
                    "codegen_ms": t["codegen"] / 1e6,
                    "ir_kb": len(jp.ir) / 1024,
                }
            )
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"JIT compile time, CPU ms (best of {rounds}; LLVM phases wall-clock)")
    for col in rows[0]:
        table.add_column(col, justify="left" if col == "program" else "right")
    for r in rows:
        table.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r.values()))
    Console(width=max(160, Console().width)).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter measurements")
    ap.add_argument("--only", nargs="*", help="benchmark names to run")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument(
        "--compile-time",
        action="store_true",
        help="measure the CPU time of cold compiles of large programs instead",
    )
    ap.add_argument("--rounds", type=int, default=7, help="compiles per program (--compile-time)")
    ap.add_argument("--opt-level", type=int, default=None, help="opt level (--compile-time)")
    args = ap.parse_args()
    if shutil.which(CLANG) is None:
        raise SystemExit(f"{CLANG} not found (set CLANG=...)")
    if args.compile_time:
        compile_times(args.rounds, args.opt_level, args.json)
        return
    kernel = Kernel()
    # warm up: the shared runtime module and the native helpers compile once per process
    JitProgram(decode(bytes.fromhex("b7000000020000009500000000000000")), vm_env())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for b in BENCHES:
            if args.only and b.name not in args.only:
                continue
            rows.append(bench_one(b, build(b, Path(tmp)), kernel, args.quick))
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1))
        return
    table = Table(title="bpfkit JIT vs the kernel's JIT: ns per run (BPF_PROG_TEST_RUN style)")
    cols = (
        "program",
        "insns",
        "kernel",
        "JIT",
        "JIT all-checked",
        "interp",
        "JIT/kernel",
        "checked/kernel",
        "interp/kernel",
        "compile ms",
        "proven safe",
        "same r0",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("program", "same r0") else "right")
    ratios, checked_ratios = [], []
    for r in rows:
        jk = r.jit / r.kernel if r.kernel else None
        ck = r.jit_checked / r.kernel if r.kernel else None
        ik = r.interp / r.kernel if r.kernel else None
        if jk is not None:
            ratios.append(jk)
            checked_ratios.append(ck)
        table.add_row(
            r.name,
            str(r.insns),
            _fmt_ns(r.kernel),
            _fmt_ns(r.jit),
            _fmt_ns(r.jit_checked),
            _fmt_ns(r.interp),
            f"{jk:.2f}x" if jk is not None else "n/a",
            f"{ck:.2f}x" if ck is not None else "n/a",
            f"{ik:,.0f}x" if ik is not None else "n/a",
            f"{r.compile_ms:.1f}",
            r.proven,
            r.agree,
        )
    console = Console(width=max(160, Console().width))
    console.print(table)
    if ratios:
        for label, rs in (("JIT", ratios), ("JIT all-checked", checked_ratios)):
            geo = math.exp(sum(math.log(x) for x in rs) / len(rs))
            console.print(
                f"geometric mean {label}/kernel: {geo:.2f}x "
                f"(worst {max(rs):.2f}x, {len(rs)} programs)"
            )
    else:
        console.print(f"kernel column unavailable: {kernel.error}")


if __name__ == "__main__":
    sys.exit(main())
