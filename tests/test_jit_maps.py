"""The JIT's native map and prandom helpers agree with the interpreter (bpfkit.jit.hot).

A clang-built program churns array, per-CPU array, hash (7-byte packed and u32 keys) and
LRU maps with lookups and updates of every flag; Python deletes and clears between runs so
the native hash index must follow; ``test_run(repeat=N)`` loops natively under the JIT.
"""

from __future__ import annotations

import collections
import random
import shutil
import struct
from pathlib import Path

import pytest

import bpfkit

pytest.importorskip("llvmlite")
pytestmark = pytest.mark.skipif(
    not (shutil.which("clang-19") or shutil.which("clang")), reason="needs clang"
)

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct key { __u32 a; __u16 b; __u8 c; } __attribute__((packed));

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, struct key); __type(value, __u64); } h7 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 24); __type(key, __u32); __type(value, __u64); } h4 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 8); __type(key, __u32); __type(value, __u64); } lru SEC(".maps");

SEC("xdp")
int churn(struct xdp_md *ctx)
{
	__u64 acc = 0;
	for (__u32 i = 0; i < 48; i++) {
		__u32 k = i % 20;
		__u64 val = i * 3 + 1;
		__u64 *v = bpf_map_lookup_elem(&arr, &k);
		if (v) { *v += i; acc += *v; } else acc += 1000;
		acc += bpf_map_update_elem(&arr, &k, &val, i % 5 == 0 ? BPF_NOEXIST : (i % 7 == 0 ? 7 : BPF_ANY));
		struct key hk = { .a = i % 9, .b = (__u16)(i % 3), .c = 3 };
		v = bpf_map_lookup_elem(&h7, &hk);
		if (v) (*v)++; else acc += bpf_map_update_elem(&h7, &hk, &val, BPF_NOEXIST) + 77;
		acc += bpf_map_update_elem(&h7, &hk, &val, (i & 1) ? BPF_EXIST : BPF_NOEXIST);
		__u32 k4 = i * 7 % 31;
		acc += bpf_map_update_elem(&h4, &k4, &val, i % 4 == 3 ? BPF_EXIST : BPF_ANY);
		v = bpf_map_lookup_elem(&h4, &k4);
		if (v) acc += *v;
		__u32 pk = i % 5;
		v = bpf_map_lookup_elem(&pcpu, &pk);
		if (v) *v += 1; else acc += 5;
		__u32 lk = i % 11;
		v = bpf_map_lookup_elem(&lru, &lk);
		if (v) *v += 1; else acc += bpf_map_update_elem(&lru, &lk, &val, BPF_ANY);
		acc = acc * 31 + (bpf_get_prandom_u32() & 0xff);
	}
	return acc;
}

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } counter SEC(".maps");

SEC("xdp")
int count(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&counter, &k);
	if (!v) return XDP_ABORTED;
	*v += 1;
	return XDP_PASS;
}

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __type(key, __u64); __type(value, __u64); } big SEC(".maps");

SEC("xdp")
int sum_big(struct xdp_md *ctx)
{
	__u64 acc = 0;
	for (__u64 i = 0; i < 300; i++) {
		__u64 k = i * 1000003;
		__u64 *v = bpf_map_lookup_elem(&big, &k);
		if (v) { acc += *v; *v += 1; }
		else acc += 1;
	}
	return acc;
}

SEC("xdp")
int rnd(struct xdp_md *ctx)
{
	return bpf_get_prandom_u32();
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("jitmaps")
    (d / "jm.c").write_text(SRC)
    return compile_c(d / "jm.c", d / "jm.o").object


def _snap(obj) -> dict:
    return {n: m.snapshot() for n, m in obj.maps.items() if hasattr(m, "snapshot")}


def _run_churn(path: Path, engine: str):
    with bpfkit.load(path, seed=5) as obj:
        p = obj.programs["churn"]
        out = []
        for j in range(4):
            out.append(p.test_run(bytes(64), engine=engine).retval)
            if j == 1:  # Python deletes: the native index must forget these keys
                for m in (obj.maps["h7"], obj.maps["h4"]):
                    for k in list(m.keys())[:3]:
                        del m[k]
            if j == 2:
                obj.maps["h4"].clear()
                obj.maps["h7"][struct.pack("<IHB", 1, 1, 3)] = 12345
        return out, _snap(obj)


def test_churn_agrees_with_interpreter(obj_path):
    assert _run_churn(obj_path, "jit") == _run_churn(obj_path, "interp")


def test_array_and_hash_calls_stay_native(obj_path):
    with bpfkit.load(obj_path, seed=5) as obj:
        p = obj.programs["churn"]
        vp = p.vm
        vp.engine("jit")
        calls: collections.Counter = collections.Counter()
        reg = vp.env.helpers.copy()
        for hid in (1, 2):  # what reaches Python counts (the native twins are compiled in)
            fn = reg.get(hid).fn

            def wrap(env, r1, *a, _f=fn, _id=hid):
                calls[env.runtime.maps_by_addr[r1].name] += 1
                return _f(env, r1, *a)

            reg.register(hid, wrap)
        vp.env.helpers = reg
        p.test_run(bytes(64), engine="jit")
        calls.clear()
        p.test_run(bytes(64), engine="jit")
        # LRU maps, inserts and E2BIG are native too now: nothing reaches Python
        assert not calls, calls


def _big(path: Path, engine: str):
    with bpfkit.load(path) as obj:
        m = obj.maps["big"]
        for i in range(0, 600, 2):
            m[i * 1000003] = i
        p = obj.programs["sum_big"]
        out = [p.test_run(bytes(64), engine=engine).retval]
        for i in range(0, 600, 4):
            del m[i * 1000003]
        out.append(p.test_run(bytes(64), engine=engine).retval)
        for i in range(600, 3000):  # grows the native index past several rebuilds
            m[i * 1000003] = 1
        out.append(p.test_run(bytes(64), engine=engine).retval)
        m.clear()
        out.append(p.test_run(bytes(64), engine=engine).retval)
        return out, _snap(obj)


def test_hash_index_follows_python(obj_path):
    jit = _big(obj_path, "jit")
    assert jit == _big(obj_path, "interp")
    assert jit[0][3] == 300  # every key gone after clear


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_prandom_sequence_is_the_seeds(obj_path, engine):
    ref = random.Random(7)
    want = [ref.getrandbits(32) for _ in range(1400)]
    with bpfkit.load(obj_path, seed=7) as obj:
        p = obj.programs["rnd"]
        got = [p.test_run(bytes(64), engine=engine).retval for _ in range(700)]
        assert got == want[:700]
        r = p.test_run(bytes(64), engine=engine, repeat=700)  # crosses a regeneration
        assert r.retval == want[1399]


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_repeat_counts_every_run(obj_path, engine):
    with bpfkit.load(obj_path) as obj:
        r = obj.programs["count"].test_run(bytes(64), repeat=5000, engine=engine)
        assert r.retval == 2 and r.duration > 0
        assert obj.maps["counter"][0] == 5000
