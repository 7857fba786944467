// SPDX-License-Identifier: GPL-2.0
/* Global data and bpf_loop: a byte sum over the start of each packet.
 *
 * max_bytes (in .rodata, fixed at load time) bounds how many leading bytes are summed;
 * the bytes are copied with bpf_xdp_load_bytes and summed by a bpf_loop callback;
 * totals accumulate in .bss, the greeting printed by bpf_printk lives in .data.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BUF_SIZE 64

const volatile __u32 max_bytes = 32;
__u64 total_sum = 0;
__u32 packets = 0;
__u32 last_iterations = 0;
char greeting[8] = "sum";

struct sum_ctx {
	__u8 buf[BUF_SIZE];
	__u32 len;
	__u64 sum;
};

static int add_byte(__u32 i, struct sum_ctx *c)
{
	if (i >= c->len)
		return 1;
	c->sum += c->buf[i & (BUF_SIZE - 1)];
	return 0;
}

SEC("xdp")
int sum_bytes(struct xdp_md *ctx)
{
	struct sum_ctx c = {};
	__u32 len = ctx->data_end - ctx->data;
	long n;

	if (len > max_bytes)
		len = max_bytes;
	if (len > BUF_SIZE)
		len = BUF_SIZE;
	if (len < 1)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, 0, c.buf, len) < 0)
		return XDP_ABORTED;
	c.len = len;
	n = bpf_loop(BUF_SIZE, add_byte, &c, 0);
	total_sum += c.sum;
	packets += 1;
	last_iterations = n;
	bpf_printk("%s: %ld iterations, sum %llu", greeting, n, c.sum);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
