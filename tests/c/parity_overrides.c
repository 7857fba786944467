/* Load-time overrides (tests/test_parity_overrides.py): const volatile knobs, a stack-trace
 * map shipped with value_size 0 (set before load, as libbpf-tools do), a map resized at
 * load, a program in a section that names no type, and an optional program. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_STACK_DEPTH 127

const volatile int knob = 3;
const volatile unsigned long long big_knob = 1;
const volatile _Bool flag = 0;
const volatile char word[8] = "abc";
int counter = 0;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(max_entries, 16);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} sized SEC(".maps");

SEC("xdp")
int knobs(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 v = big_knob + (flag ? 1000 : 0) + word[1];

	bpf_map_update_elem(&sized, &k, &v, 0);
	counter++;
	return knob;
}

/* an old-style section that names no program type: loaded with prog_type="xdp" */
SEC("mysection")
int untyped(struct xdp_md *ctx)
{
	return 2;
}

SEC("?xdp")
int optional(struct xdp_md *ctx)
{
	return 1;
}

SEC("kprobe")
int uses_stacks(void *ctx)
{
	return bpf_get_stackid(ctx, &stacks, 0) < 0;
}

char LICENSE[] SEC("license") = "GPL";
