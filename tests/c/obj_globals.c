// Global data in every section kind, externs from .kconfig and .ksyms.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct config {
	__u32 limit;
	__u16 port;
	__u8 enabled;
	char name[5];
};

int counter = 42;                               /* .data */
static int hidden = 3;                          /* .data, static */
__u64 zeroed;                                   /* .bss */
__u32 zero_array[16];                           /* .bss */
const volatile struct config cfg = {            /* .rodata */
	.limit = 1000, .port = 8080, .enabled = 1, .name = "eth0",
};
const volatile __u32 rodata_arr[3] = { 1, 2, 3 };
int custom_data SEC(".data.custom") = 11;       /* .data.custom */
const volatile int custom_ro SEC(".rodata.custom") = 22;

extern int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern _Bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern const void bpf_prog_active __ksym __weak;
extern void bpf_rcu_read_lock(void) __ksym __weak;
extern void bpf_rcu_read_unlock(void) __ksym __weak;

SEC("tp/syscalls/sys_enter_getpid")
int use_globals(void *ctx)
{
	__u32 i = counter & 15;

	counter++;
	hidden += 2;
	zeroed += cfg.limit + cfg.port;
	zero_array[i] = rodata_arr[i % 3] + custom_ro;
	custom_data += LINUX_KERNEL_VERSION + CONFIG_HZ + CONFIG_BPF_SYSCALL;
	if (&bpf_prog_active)
		zeroed++;
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	bpf_printk("counter %d hidden %d", counter, hidden);
	return cfg.enabled ? hidden : 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
