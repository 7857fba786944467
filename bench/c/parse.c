/* Parse Ethernet, IPv4 (with options) and TCP; hash the flow and flags. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 h;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	if (ip->version != 4 || ip->ihl < 5)
		return XDP_DROP;
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS;
	if (ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return XDP_ABORTED;
	if (tcp->doff < 5)
		return XDP_DROP;
	h = ip->saddr * 0x9e3779b1;
	h ^= ip->daddr + 0x7f4a7c15 + (h << 6) + (h >> 2);
	h ^= ((__u32)tcp->source << 16 | tcp->dest) + (h << 6) + (h >> 2);
	h ^= (tcp->syn << 1 | tcp->ack << 4 | tcp->fin) * 0x85ebca6b;
	h ^= bpf_ntohs(ip->tot_len) + ip->ttl;
	return h;
}

char LICENSE[] SEC("license") = "GPL";
