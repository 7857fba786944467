// struct_ops: a struct of function pointers filled with programs from struct_ops/ sections.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct demo_ops {
	int (*init)(void);
	void (*release)(int);
	int flags;
	char name[16];
};

SEC("struct_ops/demo_init")
int demo_init(void)
{
	return 0;
}

SEC("struct_ops/demo_release")
void demo_release(int x)
{
}

SEC(".struct_ops")
struct demo_ops demo = {
	.init = (void *)demo_init,
	.release = (void *)demo_release,
	.flags = 5,
	.name = "demo",
};

SEC(".struct_ops.link")
struct demo_ops demo_link = {
	.init = (void *)demo_init,
	.name = "linked",
};

char LICENSE[] SEC("license") = "GPL";
