/* floor(log2(x)) of each of 64 32-bit words in the packet (branchy bit search), summed. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define N 64

SEC("xdp")
int log2_sum(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 *a = data;
	__u32 total = 0;

	if ((void *)(a + N) > end)
		return XDP_ABORTED;
#pragma clang loop unroll(disable)
	for (int i = 0; i < N; i++) {
		__u32 v = a[i], r = 0;

		if (v >> 16) { v >>= 16; r += 16; }
		if (v >> 8) { v >>= 8; r += 8; }
		if (v >> 4) { v >>= 4; r += 4; }
		if (v >> 2) { v >>= 2; r += 2; }
		if (v >> 1)
			r += 1;
		total += r;
	}
	return total;
}

char LICENSE[] SEC("license") = "GPL";
