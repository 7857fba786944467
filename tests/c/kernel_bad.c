// SPDX-License-Identifier: GPL-2.0
/* A program the verifier must reject: it reads past the end of a map value. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} small SEC(".maps");

SEC("xdp")
int read_too_far(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&small, &key);

	if (!v)
		return XDP_PASS;
	return v[1] == 42 ? XDP_DROP : XDP_PASS; /* bpfkit: out of bounds */
}

char LICENSE[] SEC("license") = "GPL";
