"""Helpers: the kernel's ids, arguments, return codes and effects.

The C programs below call helpers with ordinary and edge-case arguments and store every
return value and output buffer in global data. They run in the VM and — where the
kernel can run them with ``BPF_PROG_TEST_RUN`` — in the kernel, and the globals must
come out identical. Helpers whose effects the kernel cannot show a test (trace output,
perf buffers, supplied stacks) are checked in the VM against the documented behaviour.
"""

from __future__ import annotations

import errno
import struct

import pytest
from test_examples import build_source, tcp
from test_examples_kernel import KernelSide, VMSide, agree

import bpfkit
from bpfkit.obj import load_object
from bpfkit.vm.helpers_format import FormatError, format_bpf
from bpfkit.vm.helpers_net import csum_fold, csum_partial


# ---- the format engine --------------------------------------------------------------
def fmt(f: str, *args: int, mem: dict[int, bytes] | None = None) -> str:
    mem = mem or {}

    def read_mem(addr, n):
        return mem.get(addr, b"")[:n] if addr in mem else None

    def read_str(addr, limit):
        return mem[addr].split(b"\0")[0][:limit] if addr in mem else None

    return format_bpf(f.encode(), list(args) + [0] * (3 - len(args)), read_mem, read_str)


@pytest.mark.parametrize(
    "f,args,out",
    [
        ("%d %i %u", (-1 & 0xFFFFFFFF, 7, -1), "-1 7 4294967295"),
        ("%ld %lld %llu", (-5, -(1 << 63), -1), f"-5 {-(1 << 63)} {2**64 - 1}"),
        ("%x %X %lx", (255, 255, 1 << 40), "ff FF 10000000000"),
        ("[%5d][%-5d][%05d]", (42, 42, -42), "[   42][42   ][-0042]"),
        ("[%+d][% d]", (3, 3), "[+3][ 3]"),
        ("%c%c", (ord("o"), ord("k")), "ok"),
        ("100%%", (), "100%"),
        ("%px", (0xDEAD,), "000000000000dead"),
    ],
)
def test_format_numbers(f, args, out):
    assert fmt(f, *args) == out


def test_format_memory_conversions():
    mem = {
        0x1000: b"hello\0world",
        0x2000: bytes([10, 0, 0, 1]),
        0x3000: bytes.fromhex("20010db8000000000000000000000001"),
    }
    assert fmt("[%s] [%8s]", 0x1000, 0x1000, mem=mem) == "[hello] [   hello]"
    assert fmt("%pI4 %pi4", 0x2000, 0x2000, mem=mem) == "10.0.0.1 010.000.000.001"
    assert fmt("%pI6", 0x3000, mem=mem) == "2001:0db8:0000:0000:0000:0000:0000:0001"
    assert fmt("%pi6", 0x3000, mem=mem) == "20010db8000000000000000000000001"
    assert fmt("%pI6c", 0x3000, mem=mem) == "2001:db8::1"
    assert fmt("[%s]", 0x9999, mem=mem) == "[]"  # unreadable: empty, like the kernel


@pytest.mark.parametrize("f", ["%d %d %d %d", "%f", "%n", "%hd", "%", "%pZ"])
def test_format_rejects(f):
    with pytest.raises(FormatError):
        fmt(f, 1, 2, 3)


def test_csum_partial_folds_like_the_kernel():
    data = bytes(range(40))
    assert csum_partial(b"", 0) == 0
    # the folded sum is the Internet checksum of the data
    words = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, 40, 2))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    assert csum_fold(csum_partial(data, 0)) == int.from_bytes(
        (~words & 0xFFFF).to_bytes(2, "big"), "little"
    )


# ---- programs run in both the VM and the kernel --------------------------------------
MISC_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char out[6][48] = {};
long rets[52] = {};
__u64 ids[3] = {};
char comm[16] = {};

const char fmt_num[] = "%d|%5u|%-4x|%08llx|%lld|%c|%%";
const char fmt_str[] = "[%s][%6s]%pI4 %pi4";
const char word[] = "bpfkit";
const char ip[4] = {192, 168, 0, 1};
const char nums[8][24] = {"  -123abc", "0x1f", "0777", "99999999999999999999", "-", "z",
                          "12", "-0x8"};

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 2);
	__type(value, __u32);
} q SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} h SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

static long sum_cb(void *map, __u32 *key, __u64 *val, long *acc)
{
	*acc += *val;
	return 0;
}

static long until3_cb(void *map, __u32 *key, __u64 *val, long *acc)
{
	*acc += *key;
	return *key == 3;
}

static long count_cb(__u32 i, long *acc)
{
	*acc += i;
	return i == 9;
}

SEC("raw_tp/misc")
int misc(void *ctx)
{
	__u64 args[6] = {-7, 42, 255, 0xabcdefULL, -(1LL << 40), 'Z'};
	__u64 sargs[4] = {(long)word, (long)word, (long)ip, (long)ip};
	long v = 0, acc = 0;
	__u32 k, val;
	int i = 0;

	rets[i++] = bpf_snprintf(out[0], sizeof(out[0]), fmt_num, args, sizeof(args));
	rets[i++] = bpf_snprintf(out[1], 8, fmt_num, args, sizeof(args));
	rets[i++] = bpf_snprintf(out[2], sizeof(out[2]), fmt_str, sargs, sizeof(sargs));
	rets[i++] = bpf_snprintf(out[3], 0, fmt_num, args, sizeof(args));
#pragma clang loop unroll(full)
	for (int j = 0; j < 8; j++) {
		rets[i++] = bpf_strtol(nums[j], sizeof(nums[j]), 0, &v);
		rets[i++] = v;
	}
	rets[i++] = bpf_strtoul(nums[0], sizeof(nums[0]), 10, (unsigned long *)&v);
	rets[i++] = bpf_strtoul(nums[6], sizeof(nums[6]), 16, (unsigned long *)&v);
	rets[i++] = v;
	rets[i++] = bpf_strtol(nums[1], sizeof(nums[1]), 7, &v);
	rets[i++] = bpf_strncmp(word, 6, "bpfkit");
	rets[i++] = bpf_strncmp(word, 3, "bpz");
	rets[i++] = bpf_strncmp(word, 6, "bpfkis");
	rets[i++] = bpf_probe_read_kernel_str(out[4], 5, word);
	rets[i++] = bpf_probe_read_kernel_str(out[5], 16, word);
	rets[i++] = bpf_probe_read_kernel(&v, 8, 0);
	ids[0] = bpf_get_current_pid_tgid();
	ids[1] = bpf_get_current_uid_gid();
	bpf_get_current_comm(comm, sizeof(comm));
	val = 1;
	rets[i++] = bpf_map_push_elem(&q, &val, 0);
	val = 2;
	rets[i++] = bpf_map_push_elem(&q, &val, 0);
	val = 3;
	rets[i++] = bpf_map_push_elem(&q, &val, 0);
	val = 9;
	rets[i++] = bpf_map_push_elem(&q, &val, BPF_EXIST);
	rets[i++] = bpf_map_peek_elem(&q, &val);
	rets[i++] = val;
	rets[i++] = bpf_map_pop_elem(&q, &val);
	rets[i++] = val;
#pragma clang loop unroll(full)
	for (int j = 0; j < 5; j++) {
		__u64 x = j * 10;

		k = j;
		bpf_map_update_elem(&h, &k, &x, BPF_ANY);
	}
	rets[i++] = bpf_for_each_map_elem(&h, sum_cb, &acc, 0);
	rets[i++] = acc;
	acc = 0;
	rets[i++] = bpf_for_each_map_elem(&arr, until3_cb, &acc, 0);
	rets[i++] = acc;
	acc = 0;
	rets[i++] = bpf_loop(100, count_cb, &acc, 0);
	rets[i++] = acc;
	rets[i++] = bpf_loop(1 << 24, count_cb, &acc, 0);
	rets[i++] = bpf_loop(1, count_cb, &acc, 1);
	k = 0;
	rets[i++] = bpf_map_lookup_percpu_elem(&pc, &k, 0) != 0;
	rets[i++] = bpf_map_lookup_percpu_elem(&pc, &k, 4096) != 0;
	rets[i++] = bpf_ringbuf_query(&rb, BPF_RB_RING_SIZE);
	rets[i++] = bpf_ringbuf_output(&rb, &args, 24, 0);
	rets[i++] = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
	rets[i++] = bpf_ringbuf_output(&rb, &args, 24, 8);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

PACKET_C = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

long rets[16] = {};

SEC("tc")
int rewrite(struct __sk_buff *skb)
{
	__u32 old_ip = 0, new_ip = bpf_htonl(0x0a0a0a0a), x = 0;
	__u16 old_port = 0, new_port = bpf_htons(8080);
	int i = 0;

	rets[i++] = bpf_skb_load_bytes(skb, 26, &old_ip, 4);
	rets[i++] = bpf_l3_csum_replace(skb, 24, old_ip, new_ip, 4);
	rets[i++] = bpf_l4_csum_replace(skb, 50, old_ip, new_ip, 4 | BPF_F_PSEUDO_HDR);
	rets[i++] = bpf_skb_store_bytes(skb, 26, &new_ip, 4, 0);
	rets[i++] = bpf_skb_load_bytes(skb, 36, &old_port, 2);
	rets[i++] = bpf_l4_csum_replace(skb, 50, old_port, new_port, 2);
	rets[i++] = bpf_skb_store_bytes(skb, 36, &new_port, 2, BPF_F_INVALIDATE_HASH);
	rets[i++] = bpf_csum_diff(&old_ip, 4, &new_ip, 4, 0);
	rets[i++] = bpf_csum_diff(0, 0, &new_ip, 4, 0x1234);
	rets[i++] = bpf_csum_diff(&old_ip, 3, &new_ip, 4, 0);
	rets[i++] = bpf_skb_store_bytes(skb, 1000, &x, 4, 0);
	rets[i++] = bpf_skb_load_bytes(skb, 1000, &x, 4);
	rets[i++] = bpf_l3_csum_replace(skb, 25, 0, 0, 4);
	rets[i++] = bpf_l3_csum_replace(skb, 24, 0, 0, 3);
	rets[i++] = bpf_skb_store_bytes(skb, 0, &x, 4, 4);
	return bpf_redirect(1, 0);
}

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} devs SEC(".maps");

SEC("xdp")
int redir(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *sel = data;

	if ((void *)(sel + 1) > end)
		return XDP_ABORTED;
	switch (*sel) {
	case 0: return bpf_redirect(1, 0);
	case 1: return bpf_redirect(1, 1);
	case 2: return bpf_redirect_map(&devs, 0, XDP_PASS);
	case 3: return bpf_redirect_map(&devs, 3, XDP_DROP);
	case 4: return bpf_redirect_map(&devs, 3, 8);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    d = tmp_path_factory.mktemp("helpers")
    return {
        name: load_object(build_source(d, name, src))
        for name, src in (("misc", MISC_C), ("packet", PACKET_C))
    }


def misc_results(side):
    side.run("misc", ctx=b"")
    return []


def decode_misc(bss: bytes) -> dict:
    out = [bss[i * 48 : (i + 1) * 48].split(b"\0")[0] for i in range(6)]
    rets = list(struct.unpack_from("<52q", bss, 6 * 48))
    ids = struct.unpack_from("<3Q", bss, 6 * 48 + 52 * 8)
    comm = bss[6 * 48 + 52 * 8 + 24 :][:16].split(b"\0")[0]
    return {"out": out, "rets": rets, "ids": ids, "comm": comm}


def check_misc(r: dict) -> None:
    rets = r["rets"]
    assert r["out"][0] == b"-7|   42|ff  |00abcdef|-1099511627776|Z|%"
    assert rets[0] == len(r["out"][0]) + 1
    assert r["out"][1] == r["out"][0][:7] and rets[1] == rets[0]
    # clang builds the pointer array from a relocated constant, which BPF loaders leave
    # zero: the conversions see NULL, print "" and 0.0.0.0 (the kernel does the same)
    assert r["out"][2] == b"[][      ]0.0.0.0 000.000.000.000"
    assert rets[3] == rets[0] and r["out"][3] == b""  # size 0: only the length
    strtol = [tuple(rets[4 + 2 * j : 6 + 2 * j]) for j in range(8)]
    assert strtol[0] == (6, -123)  # leading spaces, sign and digits
    assert strtol[1] == (4, 0x1F) and strtol[2] == (4, 0o777)
    assert strtol[3][0] == -errno.ERANGE
    assert strtol[4][0] == -errno.EINVAL and strtol[5][0] == -errno.EINVAL
    assert strtol[6] == (2, 12) and strtol[7] == (4, -8)
    assert rets[20] == -errno.EINVAL  # strtoul of a negative number
    assert (rets[21], rets[22]) == (2, 0x12)
    assert rets[23] == -errno.EINVAL  # base 7
    assert rets[24] == 0 and rets[25] < 0 and rets[26] > 0
    assert (rets[27], r["out"][4]) == (5, b"bpfk")
    assert (rets[28], r["out"][5]) == (7, b"bpfkit")
    assert rets[29] == -errno.ERANGE  # NULL is not a kernel address
    assert rets[30:34] == [0, 0, -errno.E2BIG, 0]
    assert rets[34:38] == [0, 2, 0, 2]  # oldest (1) overwritten: 2 is next
    assert rets[38:40] == [5, 100]
    assert rets[40:42] == [4, 6]  # stops at key 3: 0+1+2+3
    assert rets[42:44] == [10, 45]
    assert rets[44:46] == [(-errno.E2BIG) & 0xFFFFFFFF, -errno.EINVAL]  # inlined bpf_loop
    assert rets[46:48] == [1, 0]
    assert rets[48:50] == [4096, 0]


@pytest.mark.kernel
def test_misc_helpers_match_kernel(objs):
    _runs, snaps, _ = agree(objs["misc"], misc_results, maps=[".bss"])
    r = decode_misc(snaps[".bss"][b"\0\0\0\0"])
    check_misc(r)
    import os
    import threading

    assert r["ids"][0] == (os.getpid() << 32) | threading.get_native_id()
    assert r["ids"][1] == (os.getgid() << 32) | os.getuid()


def test_misc_helpers_vm(objs):
    with bpfkit.load(objs["misc"]) as obj:
        obj.programs["misc"].test_run(ctx=b"")
        r = decode_misc(obj.maps[".bss"].lookup_raw(b"\0\0\0\0"))
        check_misc(r)
        assert r["comm"] == obj.runtime.task.comm
        assert len(obj.maps["rb"].consume()) == 1


def ipv4_tcp() -> bytes:
    pkt = bytearray(tcp(1234, 80, src="10.0.0.1", dst="10.0.0.2"))
    ip = pkt[14:34]
    s = sum(int.from_bytes(ip[i : i + 2], "big") for i in range(0, 20, 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    pkt[24:26] = (~s & 0xFFFF).to_bytes(2, "big")
    pkt[50:52] = b"\x12\x34"  # some TCP checksum
    return bytes(pkt)


@pytest.mark.kernel
def test_packet_helpers_match_kernel(objs):
    def scenario(s):
        return [s.run("rewrite", ipv4_tcp())] + [
            s.run("redir", bytes([i]) + bytes(20)) for i in range(6)
        ]

    def with_dev(cls):
        class Side(cls):
            def __init__(self, spec):
                super().__init__(spec)
                self.set("devs", b"\0\0\0\0", struct.pack("<I", 1))

        return Side

    results = {}
    for name, cls in (("kernel", with_dev(KernelSide)), ("vm", with_dev(VMSide))):
        side = cls(objs["packet"])
        try:
            results[name] = (scenario(side), side.snapshot(".bss"))
        finally:
            side.close()
    assert results["vm"] == results["kernel"]
    runs, bss = results["vm"]
    assert [r[0] for r in runs] == [7, 4, 0, 4, 1, 4, 2]
    rets = struct.unpack("<16q", bss[b"\0\0\0\0"])
    # csum_diff (6.12+): any sizes, folded to 16 bits
    assert rets[7:10] == (0x130A, 0x2648, 0x140A)
    assert rets[10:15] == (
        -errno.EFAULT,
        -errno.EFAULT,
        -errno.EFAULT,
        -errno.EINVAL,
        -errno.EINVAL,
    )
    # the rewritten IPv4 header still checksums to zero
    out = runs[0][1]
    s = sum(int.from_bytes(out[14 + i : 16 + i], "big") for i in range(0, 20, 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    assert s == 0xFFFF and out[26:30] == b"\x0a\x0a\x0a\x0a"


# ---- helpers only the VM can show ------------------------------------------------------
TRACE_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 8 * sizeof(__u64));
} stacks SEC(".maps");

long rets[8] = {};
__u64 stack_copy[4] = {};

SEC("kprobe/whatever")
int trace(struct pt_regs *ctx)
{
	__u64 data = 0x1122334455667788ULL;

	rets[0] = bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &data, 6);
	rets[1] = bpf_get_stackid(ctx, &stacks, 0);
	rets[2] = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK | 1);
	rets[3] = bpf_get_stack(ctx, stack_copy, sizeof(stack_copy), 0);
	rets[4] = bpf_get_stack(ctx, stack_copy, 12, 0);
	rets[5] = bpf_get_smp_processor_id();
	bpf_printk("cpu %d pid %d", rets[5], bpf_get_current_pid_tgid() >> 32);
	bpf_printk("no newline");
	rets[6] = bpf_trace_printk("bad %d %d %d %d", 16, 1, 2, 3);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_tracing_helpers_vm(tmp_path):
    with bpfkit.load(build_source(tmp_path, "trace", TRACE_C), ncpus=2) as obj:
        prog = obj.programs["trace"]
        obj.maps["events"].open()
        obj.cpu = 1
        r = prog.run(
            {"di": 1}, kernel_stack=[0xFFFF1, 0xFFFF2, 0xFFFF3], user_stack=[0x401000, 0x402000]
        )
        rets = struct.unpack("<8q", obj.maps[".bss"].lookup_raw(b"\0\0\0\0")[:64])
        assert rets[0] == 0
        # raw sample data is padded so that its u32 size plus the data is 8-aligned
        assert obj.maps["events"].read() == [
            (1, struct.pack("<Q", 0x1122334455667788)[:6] + bytes(6))
        ]
        sid, usid = rets[1], rets[2]
        assert sid >= 0 and usid >= 0
        assert obj.maps["stacks"][sid][:3] == [0xFFFF1, 0xFFFF2, 0xFFFF3]
        assert obj.maps["stacks"][usid][:2] == [0x402000, 0]  # one frame skipped
        assert rets[3] == 24 and rets[4] == -errno.EINVAL
        assert rets[5] == 1
        pid = obj.runtime.task.tgid
        assert r.trace == [f"cpu 1 pid {pid}", "no newline"]
        assert rets[6] == -errno.EINVAL
        assert obj.trace_pipe == r.trace
