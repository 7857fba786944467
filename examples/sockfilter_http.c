// SPDX-License-Identifier: GPL-2.0
/* A socket filter that keeps TCP segments to or from port 80 and drops the rest.
 *
 * A socket filter sees the packet from the network header; it returns how many bytes
 * to keep (the whole packet) or 0 to drop it. stats[0] counts kept packets, stats[1]
 * dropped ones.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} stats SEC(".maps");

static __always_inline int verdict(int keep, struct __sk_buff *skb)
{
	__u32 key = keep ? 0 : 1;
	__u64 *n = bpf_map_lookup_elem(&stats, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return keep ? skb->len : 0;
}

SEC("socket")
int keep_http(struct __sk_buff *skb)
{
	__u8 ver_ihl, proto;
	__u16 ports[2];
	__u32 ihl;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return verdict(0, skb);
	if (bpf_skb_load_bytes(skb, 0, &ver_ihl, 1) < 0 || (ver_ihl >> 4) != 4)
		return verdict(0, skb);
	if (bpf_skb_load_bytes(skb, 9, &proto, 1) < 0 || proto != IPPROTO_TCP)
		return verdict(0, skb);
	ihl = (ver_ihl & 0xf) * 4;
	if (bpf_skb_load_bytes(skb, ihl, ports, sizeof(ports)) < 0)
		return verdict(0, skb);
	return verdict(ports[0] == bpf_htons(80) || ports[1] == bpf_htons(80), skb);
}

char LICENSE[] SEC("license") = "GPL";
