/* Count the primes below n (from the packet, at most 2000) by trial division. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LIMIT 2000

SEC("xdp")
int primes(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 *p = data;
	__u32 n, count = 0;

	if ((void *)(p + 1) > end)
		return XDP_ABORTED;
	n = *p;
	if (n > LIMIT)
		n = LIMIT;
	for (__u32 i = 2; i < LIMIT; i++) {
		__u32 prime = 1;

		if (i >= n)
			break;
		for (__u32 d = 2; d * d <= i; d++) {
			if (i % d == 0) {
				prime = 0;
				break;
			}
		}
		count += prime;
	}
	return count;
}

char LICENSE[] SEC("license") = "GPL";
