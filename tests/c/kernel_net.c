// SPDX-License-Identifier: GPL-2.0
/* Networking programs for the kernel backend's attach tests.
 *
 * xdp_drop_port and tc_drop_port drop IPv4/UDP packets to .rodata drop_port and pass
 * the rest; sock_keep (a socket filter) drops datagrams whose payload starts with 'd';
 * deny_udp (cgroup/sock_create) refuses AF_INET datagram sockets; count_egress
 * (cgroup_skb/egress) counts what a cgroup sends. Every decision is counted in `stats`.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define SOCK_DGRAM 2

enum {
	XDP_PASSED, XDP_DROPPED, TC_PASSED, TC_DROPPED,
	SOCK_KEPT, SOCK_DROPPED, SOCK_DENIED, EGRESS_SEEN, NSTATS
};

const volatile __u16 drop_port = 9;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void bump(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &i);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Whether [data, end) is an IPv4/UDP packet to drop_port (Ethernet framing). */
static __always_inline int udp_to_drop_port(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if (ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return 0;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(drop_port);
}

SEC("xdp")
int xdp_drop_port(struct xdp_md *ctx)
{
	if (udp_to_drop_port((void *)(long)ctx->data, (void *)(long)ctx->data_end)) {
		bump(XDP_DROPPED);
		return XDP_DROP;
	}
	bump(XDP_PASSED);
	return XDP_PASS;
}

SEC("tc")
int tc_drop_port(struct __sk_buff *skb)
{
	if (udp_to_drop_port((void *)(long)skb->data, (void *)(long)skb->data_end)) {
		bump(TC_DROPPED);
		return TC_ACT_SHOT;
	}
	bump(TC_PASSED);
	return TC_ACT_OK;
}

SEC("socket")
int sock_keep(struct __sk_buff *skb)
{
	__u8 first = 0;

	/* On a UDP socket the filter runs once the IP header is pulled: the data
	 * starts at the UDP header. */
	if (bpf_skb_load_bytes(skb, sizeof(struct udphdr), &first, 1) < 0)
		return skb->len;
	if (first == 'd') {
		bump(SOCK_DROPPED);
		return 0;
	}
	bump(SOCK_KEPT);
	return skb->len;
}

SEC("cgroup/sock_create")
int deny_udp(struct bpf_sock *sk)
{
	if (sk->family == AF_INET && sk->type == SOCK_DGRAM) {
		bump(SOCK_DENIED);
		return 0;
	}
	return 1;
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	bump(EGRESS_SEEN);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
