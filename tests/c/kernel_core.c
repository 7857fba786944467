// SPDX-License-Identifier: GPL-2.0
/* CO-RE against the running kernel's BTF: local definitions that only name what they
 * use (in another order, one field the kernel does not have, a flavoured copy, an enum
 * with other values), resolved at load time. core_read(ctx) stores the results in `res`.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef bpf_core_field_signed
#define bpf_core_field_signed(field) \
	__builtin_preserve_field_info(field, BPF_FIELD_SIGNED)
#endif
#ifndef bpf_core_field_offset
#define bpf_core_field_offset(field) \
	__builtin_preserve_field_info(field, BPF_FIELD_BYTE_OFFSET)
#endif

struct task_struct {
	char comm[16];
	struct task_struct *real_parent;
	int tgid;
	int pid;
	int bpfkit_no_such_field;
	unsigned int sched_reset_on_fork:1;
} __attribute__((preserve_access_index));

struct task_struct___old {
	int pid;
	long bpfkit_gone;
} __attribute__((preserve_access_index));

enum pid_type {
	PIDTYPE_SID = 0,
	PIDTYPE_TGID = 7,
	BPFKIT_NO_SUCH_VALUE = 9,
};

struct bpfkit_no_such_type {
	int x;
};

enum {
	R_PID, R_TGID, R_PPID, R_COMM0, R_FLAVOUR_PID, R_HAS_FIELD, R_HAS_MISSING, R_HAS_GONE,
	R_TYPE_SIZE, R_COMM_SIZE, R_TYPE_ID, R_HAS_TYPE, R_HAS_BOGUS_TYPE, R_ENUM_TGID,
	R_ENUM_SID, R_HAS_ENUM_BOGUS, R_BITFIELD, R_PID_SIGNED, R_OFF_PID, NRES
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NRES);
	__type(key, __u32);
	__type(value, __u64);
} res SEC(".maps");

static __always_inline void put(__u32 k, __u64 v)
{
	bpf_map_update_elem(&res, &k, &v, BPF_ANY);
}

SEC("raw_tracepoint")
int core_read(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	struct task_struct___old *o = (void *)t;
	char comm[16];

	put(R_PID, BPF_CORE_READ(t, pid));
	put(R_TGID, BPF_CORE_READ(t, tgid));
	put(R_PPID, BPF_CORE_READ(t, real_parent, tgid));
	BPF_CORE_READ_INTO(&comm, t, comm);
	put(R_COMM0, comm[0]);
	put(R_FLAVOUR_PID, BPF_CORE_READ(o, pid));
	put(R_HAS_FIELD, bpf_core_field_exists(t->pid));
	put(R_HAS_MISSING, bpf_core_field_exists(t->bpfkit_no_such_field));
	put(R_HAS_GONE, bpf_core_field_exists(o->bpfkit_gone));
	put(R_TYPE_SIZE, bpf_core_type_size(struct task_struct));
	put(R_COMM_SIZE, bpf_core_field_size(t->comm));
	put(R_TYPE_ID, bpf_core_type_id_kernel(struct task_struct));
	put(R_HAS_TYPE, bpf_core_type_exists(struct task_struct));
	put(R_HAS_BOGUS_TYPE, bpf_core_type_exists(struct bpfkit_no_such_type));
	put(R_ENUM_TGID, bpf_core_enum_value(enum pid_type, PIDTYPE_TGID));
	put(R_ENUM_SID, bpf_core_enum_value(enum pid_type, PIDTYPE_SID));
	put(R_HAS_ENUM_BOGUS, bpf_core_enum_value_exists(enum pid_type, BPFKIT_NO_SUCH_VALUE));
	put(R_BITFIELD, BPF_CORE_READ_BITFIELD_PROBED(t, sched_reset_on_fork));
	put(R_PID_SIGNED, bpf_core_field_signed(t->pid));
	put(R_OFF_PID, bpf_core_field_offset(t->pid));
	if (bpf_core_field_exists(t->bpfkit_no_such_field))
		put(R_HAS_MISSING, BPF_CORE_READ(t, bpfkit_no_such_field) + 100);
	return 0;
}

#ifndef BPFKIT_BENCH /* bpftool loadall cannot pin a program it did not load */
/* Reads a field the kernel does not have, unguarded: must not load. */
SEC("?raw_tracepoint")
int core_bad(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();

	put(0, BPF_CORE_READ(t, bpfkit_no_such_field));
	return 0;
}
#endif

char LICENSE[] SEC("license") = "GPL";
