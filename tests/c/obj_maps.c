// BTF-defined maps: every field libbpf understands, prog arrays and map-in-map.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
};

struct flow_stats {
	__u64 packets;
	__u64 bytes;
	char tag[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 16);
	__uint(max_entries, 4);
} sized SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 128);
	__uint(map_flags, BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE);
	__uint(numa_node, 1);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 2);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_array);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [2] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__type(key, __u32);
		__type(value, __u64);
		__uint(max_entries, 16);
	});
} outer_hash SEC(".maps");

int tail_a(struct __sk_buff *skb);
int tail_b(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jumps SEC(".maps") = {
	.values = { [0] = (void *)&tail_a, [1] = (void *)&tail_b },
};

SEC("tc")
int tail_a(struct __sk_buff *skb)
{
	return 1;
}

SEC("tc")
int tail_b(struct __sk_buff *skb)
{
	return 2;
}

SEC("tc")
int entry(struct __sk_buff *skb)
{
	struct flow_key key = { .proto = 6 };
	struct flow_stats *st, init = { .packets = 1 };
	__u32 idx = 0;
	__u64 *cnt;
	void *inner;

	st = bpf_map_lookup_elem(&flows, &key);
	if (!st) {
		bpf_map_update_elem(&flows, &key, &init, BPF_ANY);
	} else {
		__sync_fetch_and_add(&st->packets, 1);
		st->bytes += skb->len;
	}
	cnt = bpf_map_lookup_elem(&pinned_counters, &idx);
	if (cnt)
		*cnt += 1;
	inner = bpf_map_lookup_elem(&outer, &idx);
	if (inner) {
		__u32 *v = bpf_map_lookup_elem(inner, &idx);
		if (v)
			*v = 7;
	}
	bpf_ringbuf_output(&events, &idx, sizeof(idx), 0);
	bpf_tail_call(skb, &jumps, skb->mark & 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
