// CO-RE: field offsets, sizes, existence, bitfields, type and enum relocations.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_like {
	int pid;
	int tgid;
	unsigned int flags: 3;
	unsigned int state: 5;
	struct {
		long counter;
	} usage;
	char comm[16];
} __attribute__((preserve_access_index));

struct maybe_missing {
	int x;
} __attribute__((preserve_access_index));

enum colors { RED = 1, GREEN = 2, BLUE = 4 };

__u64 out[8];

SEC("raw_tp/sys_enter")
int core_prog(void *ctx)
{
	struct task_like *t = (void *)bpf_get_current_task();
	int pid = 0;

	bpf_core_read(&pid, sizeof(pid), &t->pid);
	out[0] = pid;
	out[1] = BPF_CORE_READ(t, usage.counter);
	out[2] = bpf_core_field_exists(t->tgid);
	out[3] = bpf_core_field_size(t->comm);
	out[4] = BPF_CORE_READ_BITFIELD_PROBED(t, state);
	out[5] = bpf_core_type_exists(struct maybe_missing);
	out[6] = bpf_core_enum_value(enum colors, GREEN);
	out[7] = bpf_core_type_id_local(struct task_like);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
