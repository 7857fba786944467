/* The Internet checksum (16-bit ones' complement sum) over up to 1500 packet bytes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int csum(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 *p = data;
	__u32 sum = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 750; i++) {
		if ((void *)(p + i + 1) > end)
			break;
		sum += p[i];
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

char LICENSE[] SEC("license") = "GPL";
