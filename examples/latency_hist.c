// SPDX-License-Identifier: GPL-2.0
/* A BCC-style log2 latency histogram.
 *
 * Fired with a latency in nanoseconds as its first argument (a raw tracepoint), it adds
 * one to the power-of-two bucket of the latency in microseconds: bucket k holds
 * [2^k, 2^(k+1)) us, bucket 0 also holds 0.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_SLOTS 32

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MAX_SLOTS);
} hist SEC(".maps");

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFF) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

SEC("raw_tp/latency")
int record_latency(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 usecs = ctx->args[0] / 1000;
	__u32 slot = log2_u64(usecs);
	__u64 *n;

	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	n = bpf_map_lookup_elem(&hist, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
