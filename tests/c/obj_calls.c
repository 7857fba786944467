// bpf-to-bpf calls: static and global subprograms, nesting, shared callees, callbacks.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} vals SEC(".maps");

__u64 total;

static __noinline int leaf(int x)
{
	return x * 3 + 1;
}

static __noinline int middle(int x)
{
	if (x > 10)
		return leaf(x) + leaf(x - 1);
	return leaf(x + 2);
}

__noinline int global_helper(int x)
{
	return middle(x) ^ 0x55;
}

static int loop_cb(__u32 index, void *ctx)
{
	__u64 *acc = ctx;

	*acc += index;
	return 0;
}

static __u64 sum_cb(struct bpf_map *map, __u32 *key, __u64 *val, void *ctx)
{
	total += *val + *key;
	return 0;
}

SEC("xdp")
int calls_xdp(struct xdp_md *ctx)
{
	__u64 acc = 0;

	bpf_loop(10, loop_cb, &acc, 0);
	bpf_for_each_map_elem(&vals, sum_cb, &acc, 0);
	return global_helper((int)acc) + middle(ctx->ingress_ifindex) > 0 ? XDP_PASS : XDP_DROP;
}

SEC("socket")
int calls_socket(struct __sk_buff *skb)
{
	return leaf(skb->len);
}

SEC("tc")
int no_calls(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
