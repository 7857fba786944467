// SPDX-License-Identifier: GPL-2.0
/* An IP firewall on an LPM trie: the longest matching prefix of the source address
 * decides (1 = drop, anything else = pass); no match passes. stats[0] counts passed,
 * stats[1] dropped packets.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct ipv4_lpm_key {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipv4_lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} stats SEC(".maps");

SEC("xdp")
int firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct ipv4_lpm_key key;
	__u32 *action, slot = 0;
	__u64 *n;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	key.prefixlen = 32;
	key.addr = ip->saddr;
	action = bpf_map_lookup_elem(&rules, &key);
	if (action && *action == 1)
		slot = 1;
	n = bpf_map_lookup_elem(&stats, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
	return slot ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
