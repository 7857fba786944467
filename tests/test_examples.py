"""The examples end to end in the VM: clang-built objects run unmodified.

Each example in ``examples/`` is built with ``bpfkit build`` (clang -O2 -g -target bpf),
loaded with ``bpfkit.load`` and driven through its maps and ``test_run``/``run``. The
same objects run in the kernel in ``test_examples_kernel.py``.
"""

from __future__ import annotations

import importlib.util
import io
import ipaddress
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import bpfkit
from bpfkit.errors import VerifierError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NAMES = (
    "xdp_proto_count",
    "sockfilter_http",
    "pid_counter",
    "ringbuf_events",
    "tail_dispatch",
    "lpm_firewall",
    "globals_loop",
    "latency_hist",
)

pytestmark = pytest.mark.skipif(
    not (shutil.which("clang-19") or shutil.which("clang")), reason="needs clang"
)


# ---- building -----------------------------------------------------------------------
_BUILT: dict[str, Path] = {}


def build_example(name: str, out_dir: Path) -> Path:
    """Compile ``examples/<name>.c`` once per session (what ``bpfkit build`` does)."""
    if name not in _BUILT:
        from bpfkit.obj.build import compile_c

        out = out_dir / f"{name}.o"
        compile_c(EXAMPLES / f"{name}.c", out)
        _BUILT[name] = out
    return _BUILT[name]


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("examples")
    return {n: build_example(n, d) for n in NAMES}


# ---- packets ------------------------------------------------------------------------
def ipv4(
    proto: int, src: str = "10.0.0.1", dst: str = "10.0.0.2", payload: bytes = b"", ttl: int = 64
) -> bytes:
    """An Ethernet + IPv4 frame (checksum left 0)."""
    eth = bytes.fromhex("02000000000102000000000208 00".replace(" ", ""))[:12] + b"\x08\x00"
    hdr = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0,
        0,
        ttl,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return eth + hdr + payload


def tcp(sport: int, dport: int, **kw) -> bytes:
    return ipv4(6, payload=struct.pack(">HH", sport, dport) + bytes(16), **kw)


def udp(sport: int, dport: int, **kw) -> bytes:
    return ipv4(17, payload=struct.pack(">HHHH", sport, dport, 8, 0), **kw)


IPV6_FRAME = bytes(12) + b"\x86\xdd" + bytes(40)
PACKETS = [
    tcp(1234, 80),
    tcp(80, 5555),
    tcp(22, 2222),
    udp(53, 5353),
    ipv4(1, payload=bytes(8)),
    ipv4(47, payload=bytes(4)),
    IPV6_FRAME,
]


def load_example(built, name: str, **kw):
    return bpfkit.load(built[name], **kw)


# ---- the examples -------------------------------------------------------------------
def test_build_cli(tmp_path):
    out = tmp_path / "x.o"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpfkit",
            "build",
            str(EXAMPLES / "xdp_proto_count.c"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_xdp_proto_count(built):
    with load_example(built, "xdp_proto_count", ncpus=4) as obj:
        prog, counts = obj.programs["count_protocols"], obj.maps["counts"]
        for i, pkt in enumerate(PACKETS):
            obj.cpu = i % 4
            r = prog.test_run(pkt)
            assert r.retval == 2 and r.data_out == pkt
        assert counts[6] == [1, 1, 1, 0]
        assert counts[17] == [0, 0, 0, 1]
        assert counts[1] == [1, 0, 0, 0] and counts[47] == [0, 1, 0, 0]
        assert sum(sum(v) for v in counts.values()) == 6
        obj.cpu = 0
        assert prog.test_run(bytes(14), repeat=5).retval == 2
        assert prog.test_run(bytes(12) + b"\x08\x00" + bytes(10)).retval == 0  # truncated
        r = prog.test_run(tcp(1, 2), repeat=100)
        assert counts[6] == [101, 1, 1, 0] and r.duration > 0


def test_socket_filter_keeps_port_80(built):
    with load_example(built, "sockfilter_http") as obj:
        prog, stats = obj.programs["keep_http"], obj.maps["stats"]
        kept = [prog.test_run(p) for p in PACKETS]
        assert [r.retval for r in kept] == [40, 40, 0, 0, 0, 0, 0]
        # the kernel hands back the frame with a cleared Ethernet header
        assert kept[0].data_out == bytes(14) + PACKETS[0][14:]
        assert stats[0] == 2 and stats[1] == 5


def test_pid_counter_kprobe_and_raw_tracepoint(built):
    with load_example(built, "pid_counter") as obj:
        rt = obj.runtime
        tgid = rt.task.tgid
        on_open, on_sys = obj.programs["on_open"], obj.programs["on_sys_enter"]
        assert on_open.type_name == "kprobe"
        on_open.run({"di": 5, "si": 0x1000})
        on_open.run({"rdi": 7})
        assert obj.maps["counts"][tgid] == {"count": 2, "last": 7}
        on_sys.test_run(ctx=[0, 59])
        assert obj.maps["counts"][tgid] == {"count": 3, "last": 59}
        # another task: its own entry
        from bpfkit.vm.runtime import Task

        rt.task = Task(pid=4242, tgid=4242, comm=b"other")
        on_open.run(bytes(112) + (3).to_bytes(8, "little"))  # rdi at offset 112
        assert obj.maps["counts"][4242] == {"count": 1, "last": 3}
        assert len(obj.maps["counts"]) == 2
        with pytest.raises(bpfkit.NotSupported):
            on_open.test_run(b"")  # the kernel has no test run for kprobes


def test_ringbuf_consumer(built):
    path = EXAMPLES / "ringbuf_consumer.py"
    spec = importlib.util.spec_from_file_location("ringbuf_consumer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    events = mod.main(str(built["ringbuf_events"]))
    assert [e["kind"] for e in events] == ["ip", "ip", "non-ip"]
    assert events[0]["protocol"] == 6 and events[0]["saddr"] == "10.0.0.1"
    assert events[1]["ttl"] == 3 and events[1]["daddr"] == "8.8.8.8"
    assert events[2]["len"] == 64


def test_ringbuf_many_records_wrap(built):
    with load_example(built, "ringbuf_events") as obj:
        prog, rb = obj.programs["produce_events"], obj.maps["events"]
        seen = 0
        for i in range(3000):
            prog.test_run(tcp(i, 80, ttl=i % 256))
            if i % 7 == 0:
                recs = rb.consume()
                seen += len(recs)
                assert all(
                    r[5] == j % 256
                    for r, j in zip(recs, range(i - len(recs) + 1, i + 1), strict=True)
                )
        seen += len(rb.consume())
        assert seen == 3000


def test_tail_call_dispatcher(built):
    with load_example(built, "tail_dispatch") as obj:
        dispatch, hits = obj.programs["dispatch"], obj.maps["hits"]
        table = obj.maps["jmp_table"]
        assert table[6] == obj.programs["handle_tcp"].fd
        assert [dispatch.test_run(p).retval for p in PACKETS] == [3, 3, 3, 1, 2, 2, 2]
        assert [hits[i] for i in range(4)] == [3, 1, 1, 1]
        del table[6]  # no handler: the tail call falls through
        assert dispatch.test_run(tcp(1, 2)).retval == 2
        assert hits[3] == 2
        table[47] = obj.programs["handle_udp"]
        assert dispatch.test_run(ipv4(47)).retval == 1


TAIL_CHAIN_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64);
         __uint(max_entries, 1); } depth SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1); __type(key, __u32);
         __type(value, __u32); } self_table SEC(".maps");
SEC("xdp")
int chain(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *d = bpf_map_lookup_elem(&depth, &k);
	if (d)
		*d += 1;
	bpf_tail_call(ctx, &self_table, 0);
	return XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
"""


def build_source(tmp_path: Path, name: str, source: str) -> Path:
    from bpfkit.obj.build import compile_c

    src = tmp_path / f"{name}.c"
    src.write_text(source)
    return compile_c(src, tmp_path / f"{name}.o").object


def test_tail_calls_stop_after_33(tmp_path):
    with bpfkit.load(build_source(tmp_path, "chain", TAIL_CHAIN_C)) as obj:
        obj.maps["self_table"][0] = obj.programs["chain"]
        r = obj.programs["chain"].test_run(bytes(14))
        assert r.retval == 1
        assert obj.maps["depth"][0] == 34  # the first run and 33 tail calls


def ip_key(cidr: str) -> dict:
    net = ipaddress.IPv4Network(cidr)
    return {
        "prefixlen": net.prefixlen,
        "addr": int.from_bytes(net.network_address.packed, "little"),
    }


def test_lpm_firewall(built):
    with load_example(built, "lpm_firewall") as obj:
        fw, rules, stats = obj.programs["firewall"], obj.maps["rules"], obj.maps["stats"]
        rules[ip_key("10.0.0.0/8")] = 1
        rules[ip_key("10.1.0.0/16")] = 0  # a more specific allow inside the deny
        rules[ip_key("192.168.7.7/32")] = 1
        cases = {"10.9.9.9": 1, "10.1.2.3": 2, "192.168.7.7": 1, "192.168.7.8": 2, "8.8.8.8": 2}
        for src, action in cases.items():
            assert fw.test_run(tcp(1, 2, src=src)).retval == action, src
        assert stats[0] == 3 and stats[1] == 2
        assert len(rules) == 3
        assert [k["prefixlen"] for k in rules] == [16, 8, 32]
        del rules[ip_key("10.0.0.0/8")]
        assert fw.test_run(tcp(1, 2, src="10.9.9.9")).retval == 2


def test_globals_and_bpf_loop(built):
    with load_example(built, "globals_loop") as obj:
        prog = obj.programs["sum_bytes"]
        pkt = bytes(range(1, 61))
        r = prog.test_run(pkt)
        assert r.retval == 2
        assert r.trace == [f"sum: 33 iterations, sum {sum(range(1, 33))}"]
        bss = obj.maps[".bss"][0]
        assert bss == {"total_sum": sum(range(1, 33)), "packets": 1, "last_iterations": 33}
        assert obj.maps[".rodata"][0]["max_bytes"] == 32
        with pytest.raises(OSError):
            obj.maps[".rodata"][0] = {"max_bytes": 5}  # frozen
        obj.maps[".data"][0] = {"greeting": b"total"}
        r = prog.test_run(bytes(20))
        assert r.trace == ["total: 21 iterations, sum 0"]
        assert obj.maps[".bss"][0]["packets"] == 2


def test_globals_rodata_is_read_only_to_programs(tmp_path):
    src = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
const volatile int limit = 3;
SEC("xdp") int poke(struct xdp_md *ctx) { *(volatile int *)&limit = 4; return limit; }
char LICENSE[] SEC("license") = "GPL";
"""
    path = build_source(tmp_path, "poke", src)
    # the verifier refuses the store on load, as the kernel's does
    with pytest.raises(bpfkit.VerifierError, match="read-only"):
        bpfkit.load(path)
    # unverified, the runtime still refuses the write: the map value region is read-only
    with bpfkit.load(path, verify=False) as obj:
        with pytest.raises(bpfkit.RuntimeFault):
            obj.programs["poke"].test_run(bytes(14))


def test_latency_histogram_rich(built):
    from rich.console import Console

    path = EXAMPLES / "latency_hist.py"
    spec = importlib.util.spec_from_file_location("latency_hist", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    buf = io.StringIO()
    rows = mod.main(str(built["latency_hist"]), samples=300, console=Console(file=buf, width=100))
    text = buf.getvalue()
    assert "usecs" in text and "distribution" in text and "*" * 10 in text
    assert sum(c for _, _, c in rows) == 300
    assert rows[0][:2] == (0, 1) and rows[5][:2] == (32, 63)


def test_latency_buckets_exact(built):
    with load_example(built, "latency_hist") as obj:
        prog, hist = obj.programs["record_latency"], obj.maps["hist"]
        for ns in (0, 999, 1000, 2000, 3999, 4000, 1_000_000, 2**40):
            prog.test_run(ctx=[ns])
        assert {k: v for k, v in hist.items() if v} == {0: 3, 1: 2, 2: 1, 9: 1, 30: 1}


def test_cli_run_object_reports_map_changes(built):
    pkt = tcp(1234, 80)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpfkit",
            "run",
            str(built["xdp_proto_count"]),
            "--program",
            "count_protocols",
            "--data-hex",
            pkt.hex(),
            "--json",
            "--repeat",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["retval"] == 2 and out["data_out"] == pkt.hex()
    assert out["engine"] == "interp" and out["duration_ns"] > 0
    changes = out["maps_changed"]["counts"]
    assert changes == [
        {
            "key": 6,
            "old": [0] * len(changes[0]["old"]),
            "new": [3] + [0] * (len(changes[0]["old"]) - 1),
        }
    ]


def test_cli_run_trace_printk(built):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpfkit",
            "run",
            str(built["globals_loop"]),
            "--data-hex",
            "01" * 20,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    out = json.loads(proc.stdout)
    assert out["trace_printk"] == ["sum: 21 iterations, sum 20"]
    assert out["maps_changed"][".bss"][0]["new"]["packets"] == 1


def test_helper_not_allowed_for_type_is_a_load_error(tmp_path):
    src = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("socket") int f(struct __sk_buff *skb) { return bpf_xdp_adjust_head((void *)skb, 0); }
char LICENSE[] SEC("license") = "GPL";
"""
    with pytest.raises(VerifierError, match="cannot use helper bpf_xdp_adjust_head#44"):
        bpfkit.load(build_source(tmp_path, "bad", src))


JIT_CASES = {
    "xdp_proto_count": ("count_protocols", "data"),
    "sockfilter_http": ("keep_http", "data"),
    "tail_dispatch": ("dispatch", "data"),
    "ringbuf_events": ("produce_events", "data"),
    "globals_loop": ("sum_bytes", "data"),
    "latency_hist": ("record_latency", "args"),
}


@pytest.mark.parametrize("name", sorted(JIT_CASES))
def test_jit_engine_agrees_with_interpreter(built, name):
    pytest.importorskip("llvmlite")
    prog_name, kind = JIT_CASES[name]
    seen = {}
    for engine in ("interp", "jit"):
        with load_example(built, name) as obj:
            prog = obj.programs[prog_name]
            if kind == "data":
                runs = [prog.test_run(p, engine=engine) for p in PACKETS]
            else:
                runs = [prog.test_run(ctx=[ns], engine=engine) for ns in (0, 5000, 10**9)]
            outs = [(r.retval, r.data_out, r.trace) for r in runs]
            maps = {n: m.snapshot() for n, m in obj.maps.items() if hasattr(m, "snapshot")}
            recs = [m.consume() for m in obj.maps.values() if hasattr(m, "consume")]
            seen[engine] = (outs, maps, recs)
    assert seen["jit"] == seen["interp"]
