// SPDX-License-Identifier: GPL-2.0
/* Count events per process, kprobe style.
 *
 * The kprobe on do_sys_openat2 counts opens per process (tgid) and remembers the last
 * directory fd it was given; the raw tracepoint on sys_enter does the same for every
 * system call, remembering the last syscall number. Both share one hash map.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct counter {
	__u64 count;
	__u64 last;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, 1024);
} counts SEC(".maps");

static __always_inline int record(__u64 arg)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct counter *c = bpf_map_lookup_elem(&counts, &tgid);

	if (!c) {
		struct counter first = { .count = 1, .last = arg };

		bpf_map_update_elem(&counts, &tgid, &first, BPF_NOEXIST);
		return 0;
	}
	__sync_fetch_and_add(&c->count, 1);
	c->last = arg;
	return 0;
}

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(on_open, int dfd, const char *filename)
{
	return record(dfd);
}

SEC("raw_tracepoint/sys_enter")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	return record(ctx->args[1]);
}

char LICENSE[] SEC("license") = "GPL";
