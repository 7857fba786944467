// SPDX-License-Identifier: GPL-2.0
/* A ring-buffer event producer: one event per IPv4 packet, read by a Python consumer.
 *
 * TCP and UDP packets become a full event (reserve, fill, submit); ICMP events are
 * reserved and then discarded (the consumer never sees them); non-IP frames produce a
 * short record with bpf_ringbuf_output. The packet is always passed.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct event {
	__u32 len;
	__u8 protocol;
	__u8 ttl;
	__u16 kind;
	__u32 saddr;
	__u32 daddr;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} events SEC(".maps");

SEC("xdp")
int produce_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct event *e;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		__u32 len = data_end - data;

		bpf_ringbuf_output(&events, &len, sizeof(len), 0);
		return XDP_PASS;
	}
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return XDP_PASS;
	e->len = data_end - data;
	e->protocol = ip->protocol;
	e->ttl = ip->ttl;
	e->kind = 1;
	e->saddr = ip->saddr;
	e->daddr = ip->daddr;
	if (ip->protocol == IPPROTO_ICMP)
		bpf_ringbuf_discard(e, 0);
	else
		bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
