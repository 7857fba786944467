// SPDX-License-Identifier: GPL-2.0
/* Event producers for the ring-buffer and perf-buffer readers.
 *
 * produce(start, count): count 8-byte records holding start, start + 1, ... into the
 * ring buffer `rb` (the last one wakes the consumer); a failed reserve is counted in
 * `drops[0]`. perf_produce(start, count): the same records through the perf event
 * array `samples` on the current CPU.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct run {
	__u64 start;
	__u64 count;
	void *ctx;
};

static void drop(__u32 i)
{
	__u64 *d = bpf_map_lookup_elem(&drops, &i);

	if (d)
		__sync_fetch_and_add(d, 1);
}

static long emit(__u64 i, struct run *r)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);

	if (!e) {
		drop(0);
		return 0;
	}
	*e = r->start + i;
	bpf_ringbuf_submit(e, i + 1 == r->count ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("raw_tracepoint")
int produce(struct bpf_raw_tracepoint_args *ctx)
{
	struct run r = { .start = ctx->args[0], .count = ctx->args[1] };

	bpf_loop(r.count, emit, &r, 0);
	return 0;
}

static long emit_perf(__u64 i, struct run *r)
{
	__u64 v = r->start + i;

	if (bpf_perf_event_output(r->ctx, &samples, BPF_F_CURRENT_CPU, &v, sizeof(v)))
		drop(1);
	return 0;
}

SEC("raw_tracepoint")
int perf_produce(struct bpf_raw_tracepoint_args *ctx)
{
	struct run r = { .start = ctx->args[0], .count = ctx->args[1], .ctx = ctx };

	bpf_loop(r.count, emit_perf, &r, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
