/* Binary search (lower bound) of 32 keys in a sorted array of 256 32-bit words, all in
 * the packet. The step is written without data-dependent branches on the array values,
 * which keeps the kernel verifier's path count linear. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define N 256
#define KEYS 32

SEC("xdp")
int bsearch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 *a = data, *keys = a + N;
	__u32 found = 0, pos = 0;

	if ((void *)(keys + KEYS) > end)
		return XDP_ABORTED;
#pragma clang loop unroll(disable)
	for (int k = 0; k < KEYS; k++) {
		__u64 key = keys[k], lo = 0, len = N;

#pragma clang loop unroll(disable)
		while (len > 1) {
			__u64 half = len / 2, mid = (lo + half) & (N - 1);
			__u64 less = ((__u64)a[mid] - key) >> 63;	/* a[mid] < key */

			lo += less * half;
			len -= half;
		}
		lo &= N - 1;
		lo += ((__u64)a[lo] - key) >> 63;
		if (lo < N && a[lo & (N - 1)] == key) {
			found++;
			pos += lo;
		}
	}
	return (found << 16) | (pos & 0xffff);
}

char LICENSE[] SEC("license") = "GPL";
