/* A map pinned by name next to a program the verifier rejects: a failed load must not
 * leave the pin behind (tests/test_parity_errors.py). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} parity_pinned SEC(".maps");

SEC("xdp")
int fine(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&parity_pinned, &k);

	return v ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int broken(struct xdp_md *ctx)
{
	__u32 k = ctx->ingress_ifindex; /* not a constant: the lookup may fail */
	__u64 *v = bpf_map_lookup_elem(&parity_pinned, &k);

	return *v ? XDP_PASS : XDP_DROP; /* parity: no NULL check */
}

char LICENSE[] SEC("license") = "GPL";
