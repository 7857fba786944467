// SPDX-License-Identifier: GPL-2.0
/* Tracing programs for the kernel backend's attach tests: each counts hits of one hook
 * (for the process whose tgid is in .rodata target_tgid, or for every process when 0)
 * into the array `hits` and remembers the last pid and a value the hook saw.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 target_tgid = 0;

struct hit {
	__u64 count;
	__u64 last_pid;
	__u64 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct hit);
} hits SEC(".maps");

static __always_inline int record(__u32 slot, __u64 value)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hit *h;

	if (target_tgid && (id >> 32) != target_tgid)
		return 0;
	h = bpf_map_lookup_elem(&hits, &slot);
	if (!h)
		return 0;
	__sync_fetch_and_add(&h->count, 1);
	h->last_pid = id >> 32;
	h->value = value;
	return 0;
}

struct exec_seen {
	__u64 count;
	char filename[32];
};

/* Every execve, by the pid that makes it, with the file it executes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct exec_seen);
} execs SEC(".maps");

/* The fields of syscalls/sys_enter_execve after the common header. */
struct execve_args {
	__u64 common;
	__s32 nr;
	__u32 pad;
	const char *filename;
	const char *const *argv;
	const char *const *envp;
};

SEC("tracepoint/syscalls/sys_enter_execve")
int on_execve(struct execve_args *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct exec_seen zero = {}, *e;

	bpf_map_update_elem(&execs, &pid, &zero, BPF_NOEXIST);
	e = bpf_map_lookup_elem(&execs, &pid);
	if (!e)
		return 0;
	e->count++;
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), ctx->filename);
	return record(0, ctx->nr);
}

SEC("raw_tracepoint/sys_enter")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	return record(1, ctx->args[1]);
}

SEC("kprobe/do_sys_openat2")
int on_openat(struct pt_regs *ctx)
{
	return record(2, PT_REGS_PARM2(ctx));
}

#ifndef BPFKIT_BENCH /* some kernels refuse BPF trampolines: benchmarks build without */
SEC("fentry/do_sys_openat2")
int BPF_PROG(on_openat_fentry, int dfd, const char *filename)
{
	return record(3, dfd);
}
#endif

SEC("uprobe")
int BPF_KPROBE(on_uprobe, long a, long b)
{
	return record(4, a * 1000 + b);
}

SEC("uretprobe")
int BPF_KRETPROBE(on_uretprobe, long ret)
{
	return record(5, ret);
}

SEC("perf_event")
int on_sample(void *ctx)
{
	return record(6, bpf_get_smp_processor_id());
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec_btf)
{
	return record(7, 1);
}

char LICENSE[] SEC("license") = "GPL";
