/* What the VM must load because the kernel does (tests/test_parity_vmruns.py): a cgroup
 * array filter as BCC's tools keep one, and helpers the VM does not perform behind knobs,
 * so that they fault only when called. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroup_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __s64);
} out SEC(".maps");

const volatile int mode = 0;
struct bpf_pidns_info ns;

static void put(__u32 k, __s64 v)
{
	bpf_map_update_elem(&out, &k, &v, 0);
}

SEC("raw_tracepoint/sys_enter")
int on_raw(void *ctx)
{
	if (mode == 1)
		put(0, bpf_current_task_under_cgroup(&cgroup_map, 0));
	if (mode == 2)
		put(1, bpf_get_current_cgroup_id());
	if (mode == 3)
		put(2, bpf_get_ns_current_pid_tgid(1, 2, &ns, sizeof(ns)));
	return 0;
}

SEC("kprobe/do_nanosleep")
int on_kprobe(void *ctx)
{
	if (mode == 4)
		return bpf_get_func_ip(ctx) != 0;
	return 5;
}

SEC("socket")
int on_socket(struct __sk_buff *skb)
{
	if (mode == 5)
		return bpf_get_socket_cookie(skb) != 0;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
