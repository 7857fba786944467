/* Baseline: return XDP_PASS and nothing else (the cost of a run). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int ret(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
