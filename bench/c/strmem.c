/* Byte-wise memcpy of 128 packet bytes into the stack, then strcmp against the packet. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LEN 128

SEC("xdp")
int strmem(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	volatile char buf[LEN];
	char *p = data, *q;
	int i, r = 0;

	if ((void *)(p + 2 * LEN) > end)
		return XDP_ABORTED;
	q = p + LEN;
#pragma clang loop unroll(disable)
	for (i = 0; i < LEN; i++)
		buf[i] = p[i];
#pragma clang loop unroll(disable)
	for (i = 0; i < LEN; i++) {
		char a = buf[i], b = q[i];

		if (a != b) {
			r = (unsigned char)a - (unsigned char)b;
			break;
		}
		if (!a)
			break;
	}
	return (i << 16) | (r & 0xffff);
}

char LICENSE[] SEC("license") = "GPL";
