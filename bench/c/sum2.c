/* Two 64-bit words from the packet, added and folded to 32 bits. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int sum2(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 *w = data;

	if ((void *)(w + 2) > end)
		return XDP_ABORTED;
	__u64 s = w[0] + w[1];
	return (__u32)(s ^ (s >> 32));
}

char LICENSE[] SEC("license") = "GPL";
