/* Lifetimes and deadlines (tests/test_parity_lifetimes.py): every system call of the
 * target process bumps a counter and submits a ring-buffer record, so a consumer that
 * makes system calls itself keeps the ring busy forever. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} rb SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int on_sys_enter(void *ctx)
{
	__u32 k = 0;
	__u64 *n, *e;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	n = bpf_map_lookup_elem(&calls, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (e) {
		*e = 42;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

SEC("socket")
int answer(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&calls, &k);

	return n ? 40 + 2 * (*n == 0) : 0;
}

char LICENSE[] SEC("license") = "GPL";
