// SPDX-License-Identifier: GPL-2.0
/* A tail-call dispatcher: the entry program jumps to a handler per IP protocol.
 *
 * jmp_table[protocol] holds the handler (TCP, UDP, ICMP here, set up declaratively);
 * a protocol without a handler falls through the tail call and is counted as unknown.
 * hits[0..3] count TCP, UDP, ICMP and unknown packets.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} hits SEC(".maps");

static __always_inline void hit(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&hits, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int handle_tcp(struct xdp_md *ctx)
{
	hit(0);
	return XDP_TX;
}

SEC("xdp")
int handle_udp(struct xdp_md *ctx)
{
	hit(1);
	return XDP_DROP;
}

SEC("xdp")
int handle_icmp(struct xdp_md *ctx)
{
	hit(2);
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__array(values, int (void *));
} jmp_table SEC(".maps") = {
	.values = {
		[IPPROTO_TCP] = (void *)&handle_tcp,
		[IPPROTO_UDP] = (void *)&handle_udp,
		[IPPROTO_ICMP] = (void *)&handle_icmp,
	},
};

SEC("xdp")
int dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	bpf_tail_call(ctx, &jmp_table, ip->protocol);
	hit(3);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
