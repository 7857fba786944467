// SPDX-License-Identifier: GPL-2.0
/* Programs the verifier must accept (tests/test_verifier_c.py checks bpfkit and the
 * kernel on each one, loaded on its own). One or more programs per program type:
 * bounded loops, packet parsing with data_end checks, map lookups with null checks,
 * ring buffer reserve/submit, a bpf_loop callback, a spin lock in a map value, static
 * and global subprograms, map value fields, division by a variable.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct stats {
	__u64 packets;
	__u64 bytes;
	__u32 slots[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct stats);
} by_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct stats);
} by_mark SEC(".maps");

struct locked {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct locked);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct event {
	__u32 pid;
	__u32 cpu;
	__u64 ts;
};

/* Ethernet + IPv4 header parsing, every access behind a data_end check. */
SEC("xdp")
int acc_xdp_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct stats *s;
	__u32 key;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	key = ip->protocol;
	s = bpf_map_lookup_elem(&by_proto, &key);
	if (!s)
		return XDP_PASS;
	__sync_fetch_and_add(&s->packets, 1);
	__sync_fetch_and_add(&s->bytes, data_end - data);
	return XDP_PASS;
}

/* A bounded loop over the fields of a map value, with a variable but masked index. */
SEC("xdp")
int acc_xdp_loop(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index & 0xff;
	struct stats *s = bpf_map_lookup_elem(&by_proto, &key);
	__u32 sum = 0;
	int i;

	if (!s)
		return XDP_PASS;
#pragma clang loop unroll(disable)
	for (i = 0; i < 8; i++)
		sum += s->slots[i];
	s->slots[sum & 7] += 1;
	return sum > 100 ? XDP_DROP : XDP_PASS;
}

/* The other ways of writing the data_end comparison. */
SEC("xdp")
int acc_xdp_cmp_forms(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *data_end = (void *)(long)ctx->data_end;
	int r = 0;

	if (data_end >= data + 4)
		r += data[3];
	if (data + 8 <= data_end)
		r += data[7];
	if (!(data_end < data + 12))
		r += data[11];
	return r & 1 ? XDP_DROP : XDP_PASS;
}

/* A variable packet offset, bounded, then checked against data_end. */
SEC("xdp")
int acc_xdp_var_pkt(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 off = ctx->rx_queue_index & 0xff;

	if ((void *)(data + off + 1) > data_end)
		return XDP_PASS;
	return data[off] == 0x45 ? XDP_DROP : XDP_PASS;
}

/* Metadata before the packet, checked against data. */
SEC("xdp")
int acc_xdp_meta(struct xdp_md *ctx)
{
	__u32 *meta = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;

	if ((void *)(meta + 1) > data)
		return XDP_PASS;
	return *meta == 7 ? XDP_DROP : XDP_PASS;
}

/* A loop bounded both by a value read from a map and by a constant. */
SEC("xdp")
int acc_xdp_loop_var(struct xdp_md *ctx)
{
	__u32 key = 1;
	struct stats *s = bpf_map_lookup_elem(&by_proto, &key);
	__u32 i, n, sum = 0;

	if (!s)
		return XDP_PASS;
	n = s->slots[0];
	for (i = 0; i < n && i < 8; i++)
		sum += s->slots[i];
	return sum & 1 ? XDP_DROP : XDP_PASS;
}

/* A global function is verified on its own: ctx and scalar arguments. */
__noinline int classify(struct xdp_md *ctx, int bias)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char *p = data;

	if ((void *)(p + 1) > data_end)
		return bias;
	return *p + bias;
}

/* A global function with a pointer argument checks it for NULL before using it. */
__noinline int read_or_zero(__u64 *p)
{
	if (!p)
		return 0;
	return *p & 0xff;
}

SEC("xdp")
int acc_xdp_global(struct xdp_md *ctx)
{
	__u64 v = ctx->ingress_ifindex;

	return (classify(ctx, 3) + read_or_zero(&v)) & 1 ? XDP_PASS : XDP_DROP;
}

/* Hash map lookup with a null check, fields read and written; division by a variable. */
SEC("tc")
int acc_tc_hash(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	struct stats *s = bpf_map_lookup_elem(&by_mark, &key);
	struct stats init = {};
	__u32 len = skb->len;

	if (!s) {
		init.packets = 1;
		init.bytes = len;
		bpf_map_update_elem(&by_mark, &key, &init, BPF_NOEXIST);
		return 0;
	}
	s->packets += 1;
	s->bytes += len;
	s->slots[0] = s->bytes / (s->packets | 1);
	skb->mark = s->slots[0] % (len | 1);
	return s->slots[1] > 10 ? 2 : 0;
}

/* A privileged loader may pass uninitialised stack memory to a helper. */
SEC("socket")
int acc_socket_uninit_stack(struct __sk_buff *skb)
{
	__u32 key = skb->ifindex;
	struct stats s;

	s.packets = skb->len;
	bpf_map_update_elem(&by_mark, &key, &s, BPF_ANY);
	return 0;
}

/* Narrow reads of context fields, writes to skb->cb. */
SEC("tc")
int acc_tc_narrow_ctx(struct __sk_buff *skb)
{
	__u8 low = *(volatile __u8 *)&skb->len;
	__u16 proto = *(volatile __u16 *)&skb->protocol;

	skb->cb[0] = low;
	skb->cb[4] = proto;
	return skb->cb[1] + low > 3 ? 2 : 0;
}

/* A spin lock in a map value: lock, update, unlock. */
SEC("tc")
int acc_tc_spin_lock(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct locked *l = bpf_map_lookup_elem(&counters, &key);

	if (!l)
		return 0;
	bpf_spin_lock(&l->lock);
	l->count += skb->len;
	bpf_spin_unlock(&l->lock);
	return 0;
}

static __noinline int header_sum(struct __sk_buff *skb, __u32 off)
{
	__u8 buf[16];
	int i, sum = 0;

	if (bpf_skb_load_bytes(skb, off, buf, sizeof(buf)) < 0)
		return 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < sizeof(buf); i++)
		sum += buf[i];
	return sum;
}

/* A socket filter with a static subprogram reading packet bytes into the stack. */
SEC("socket")
int acc_socket_subprog(struct __sk_buff *skb)
{
	if (skb->len < 30)
		return 0;
	return header_sum(skb, 14) > 1000 ? skb->len : 0;
}

static __noinline int inner_frame(int x)
{
	volatile char buf[240];

	buf[x & 0x7f] = 1;
	return buf[7];
}

static __noinline int outer_frame(int x)
{
	volatile char buf[240];

	buf[x & 0x7f] = 2;
	return inner_frame(x) + buf[3];
}

/* Two subprogram frames of 240 bytes: 480 bytes for the chain, under 512. */
SEC("socket")
int acc_socket_stack_chain(struct __sk_buff *skb)
{
	return outer_frame(skb->len);
}

/* Ring buffer reserve, fill, submit (and discard on the other branch). */
SEC("tracepoint/syscalls/sys_enter_getpid")
int acc_tp_ringbuf(void *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	__u64 id = bpf_get_current_pid_tgid();

	if (!e)
		return 0;
	e->pid = id >> 32;
	e->cpu = bpf_get_smp_processor_id();
	e->ts = bpf_ktime_get_ns();
	if (e->pid == 1) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

struct loop_ctx {
	__u64 sum;
	__u32 limit;
};

static int add_index(__u32 index, void *data)
{
	struct loop_ctx *c = data;

	if (index >= c->limit)
		return 1;
	c->sum += index;
	return 0;
}

/* bpf_loop with a callback working on a stack struct. */
SEC("kprobe/do_nanosleep")
int acc_kprobe_bpf_loop(struct pt_regs *regs)
{
	struct loop_ctx c = { .sum = 0, .limit = 50 };

	bpf_loop(100, add_index, &c, 0);
	return c.sum > 1000;
}

/* cgroup_skb: reads skb fields, returns 0 or 1 only. */
SEC("cgroup_skb/ingress")
int acc_cgroup_skb(struct __sk_buff *skb)
{
	__u32 key = skb->protocol & 0xff;
	struct stats *s = bpf_map_lookup_elem(&by_proto, &key);

	if (s)
		__sync_fetch_and_add(&s->packets, 1);
	return skb->len > 65000 ? 0 : 1;
}

char LICENSE[] SEC("license") = "GPL";
