"""The front door: bpfkit.load(), maps as MutableMappings through BTF, programs, engines."""

from __future__ import annotations

import errno
import struct

import pytest
from test_examples import build_source, tcp

import bpfkit
from bpfkit.api import (
    EXIST,
    NOEXIST,
    BloomFilter,
    Map,
    Object,
    Program,
    QueueMap,
    RingBuffer,
    TestRunResult,
)
from bpfkit.obj import load_object

API_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flow { __u32 saddr; __u16 sport; __u8 proto; __u8 pad; };
struct stats { __u64 packets; __u64 bytes; char tag[8]; };

struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, struct flow); __type(value, struct stats);
         __uint(max_entries, 4); } flows SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __type(key, __u32); __type(value, __s64);
         __uint(max_entries, 16); } per SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __type(value, __u32);
         __uint(max_entries, 3); } q SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __type(value, __u64);
         __uint(max_entries, 100); } seen SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u32);
               __uint(max_entries, 2); } inner_a SEC(".maps"), inner_b SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 2); __type(key, __u32);
         __array(values, struct inner); } outer SEC(".maps") = { .values = { &inner_a } };

__u64 counter = 0;

SEC("xdp")
int count(struct xdp_md *ctx)
{
	struct flow f = { .saddr = 1, .sport = 2, .proto = 6 };
	struct stats *s = bpf_map_lookup_elem(&flows, &f);
	__u32 k = 0, v = 7;
	__u32 *inner_map;

	counter++;
	if (s) {
		s->packets++;
		s->bytes += ctx->data_end - ctx->data;
	}
	bpf_map_push_elem(&q, &v, BPF_EXIST);
	inner_map = bpf_map_lookup_elem(&outer, &k);
	if (inner_map) {
		__u32 *x = bpf_map_lookup_elem(inner_map, &k);
		if (x)
			*x += 1;
	}
	bpf_ringbuf_output(&rb, &v, sizeof(v), 0);
	return XDP_PASS;
}

SEC("kprobe/anything")
int probe(void *ctx)
{
	counter += 100;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory):
    return build_source(tmp_path_factory.mktemp("api"), "api", API_C)


@pytest.fixture
def obj(obj_path):
    with bpfkit.load(obj_path, ncpus=2) as o:
        yield o


FLOW = {"saddr": 1, "sport": 2, "proto": 6}


def test_load_sources(obj_path):
    for src in (obj_path, str(obj_path), obj_path.read_bytes(), load_object(obj_path)):
        with bpfkit.load(src) as o:
            assert isinstance(o, Object) and o.backend == "vm"
            assert set(o.programs) == {"count", "probe"}
            assert isinstance(o.programs["count"], Program)
            assert o.program("xdp").name == "count"  # by section
    with pytest.raises(ValueError):
        bpfkit.load(obj_path, backend="nope")


def test_struct_keys_and_values(obj):
    flows = obj.maps["flows"]
    assert isinstance(flows, Map)
    flows[FLOW] = {"packets": 1, "tag": b"web"}
    assert flows[FLOW] == {"packets": 1, "bytes": 0, "tag": "web"}  # char[]: a C string
    obj.programs["count"].test_run(tcp(1, 2))
    assert flows[FLOW]["packets"] == 2 and flows[FLOW]["bytes"] == len(tcp(1, 2))
    assert list(flows) == [{"saddr": 1, "sport": 2, "proto": 6, "pad": 0}]
    raw_key = struct.pack("<IHBB", 1, 2, 6, 0)
    assert flows[raw_key]["packets"] == 2  # raw bytes always work
    flows[raw_key] = bytes(24)
    assert flows[FLOW]["packets"] == 0
    with pytest.raises(KeyError):
        flows[{"saddr": 9}]
    assert {"saddr": 9} not in flows and FLOW in flows


def test_flags_and_errors(obj):
    flows = obj.maps["flows"]
    with pytest.raises(OSError) as e:
        flows.put(FLOW, {}, EXIST)
    assert e.value.errno == errno.ENOENT
    flows.put(FLOW, {}, NOEXIST)
    with pytest.raises(bpfkit.KernelError) as e:
        flows.put(FLOW, {}, NOEXIST)
    assert e.value.errno == errno.EEXIST
    for i in range(3):
        flows[{"saddr": 10 + i}] = {}
    with pytest.raises(OSError) as e:
        flows[{"saddr": 99}] = {}
    assert e.value.errno == errno.E2BIG
    assert len(flows) == 4
    del flows[{"saddr": 10}]
    with pytest.raises(KeyError):
        del flows[{"saddr": 10}]
    assert flows.pop({"saddr": 11})["packets"] == 0
    assert flows.pop({"saddr": 11}, "gone") == "gone"
    with pytest.raises(ValueError):
        flows[b"short"] = {}
    flows.clear()
    assert len(flows) == 0


def test_batches(obj):
    per = obj.maps["per"]
    assert per.percpu and per.ncpus == 2
    n = per.update_batch({i: [i, -i] for i in range(5)})
    assert n == 5 and per[3] == [3, -3]
    per[7] = 9  # one value: every CPU
    assert per[7] == [9, 9]
    assert per.lookup_batch([1, 2, 42]) == {1: [1, -1], 2: [2, -2]}
    assert per.delete_batch([1, 2, 42]) == 2
    got = per.lookup_and_delete_batch()
    assert got == {0: [0, 0], 3: [3, -3], 4: [4, -4], 7: [9, 9]} and len(per) == 0


def test_queue_bloom_ringbuf(obj):
    q, seen, rb = obj.maps["q"], obj.maps["seen"], obj.maps["rb"]
    assert isinstance(q, QueueMap) and isinstance(seen, BloomFilter)
    assert isinstance(rb, RingBuffer)
    q.push(1)
    q.push(2)
    assert q.peek() == 1 and q.pop() == 1
    for _ in range(3):
        obj.programs["count"].test_run(bytes(14))
    assert q.drain() == [7, 7, 7]  # full: the program overwrote the oldest
    with pytest.raises(KeyError):
        q.pop()
    seen.push(12345)
    assert 12345 in seen and 54321 not in seen
    assert [struct.unpack("<I", r)[0] for r in rb] == [7, 7, 7]
    assert rb.consume() == []


def test_map_in_map_and_globals(obj):
    outer, a, b = obj.maps["outer"], obj.maps["inner_a"], obj.maps["inner_b"]
    assert outer[0] == a.fd and 1 not in dict(outer.items())
    obj.programs["count"].test_run(bytes(14))
    assert a[0] == 1
    outer[0] = b
    obj.programs["count"].test_run(bytes(14))
    assert (a[0], b[0]) == (1, 1)
    assert obj.maps[".bss"][0] == {"counter": 2}
    obj.maps[".bss"][0] = {"counter": 40}
    obj.programs["probe"].run()
    assert obj.maps[".bss"][0]["counter"] == 140
    mem = obj.maps[".bss"].memory()
    assert struct.unpack_from("<Q", mem, 0)[0] == 140


def test_program_results_and_engines(obj):
    prog = obj.programs["count"]
    r = prog.test_run(tcp(1, 2), repeat=3)
    assert isinstance(r, TestRunResult)
    assert (r.retval, r.data_out) == (2, tcp(1, 2)) and r.duration_ns == r.duration > 0
    assert r.trace_printk == [] and r.ctx_out is None
    try:
        import llvmlite  # noqa: F401
    except ImportError:
        pytest.skip("no llvmlite")
    rj = prog.test_run(tcp(1, 2), repeat=3, engine="jit")
    assert (rj.retval, rj.data_out) == (r.retval, r.data_out)
    assert obj.maps[".bss"][0]["counter"] == 6
    with pytest.raises(bpfkit.NotSupported):
        prog.test_run(bytes(14), engine="quantum")


def test_trace_program_run(obj):
    r = obj.programs["probe"].run({"ax": 1})
    assert r.retval == 0 and len(r.ctx_out) == 168
    assert obj.maps[".bss"][0]["counter"] == 100


def test_repr_and_info(obj):
    assert "flows" in repr(obj) and "hash" in repr(obj.maps["flows"])
    info = obj.maps["flows"].info()
    assert info["type"] == "hash" and info["key_size"] == 8 and info["value_size"] == 24
