/* A helper-call-heavy loop: 32 x (bpf_ktime_get_ns + bpf_get_prandom_u32). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int helpers(struct xdp_md *ctx)
{
	__u64 acc = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 32; i++) {
		acc ^= bpf_ktime_get_ns();
		acc += bpf_get_prandom_u32();
	}
	return acc ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
