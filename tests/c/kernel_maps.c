// SPDX-License-Identifier: GPL-2.0
/* Maps of every common kind, global data and externs, for the kernel loader's tests.
 *
 * touch(ctx): counts in per-CPU maps, looks through a map-in-map, reads the .rodata
 * constant `scale`, the .kconfig externs and a typeless kernel symbol, and iterates with
 * the bpf_iter_num kfuncs; results land in `out` (index = OUT_*).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;
extern void bpfkit_no_such_kfunc(void) __ksym __weak;

#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!(sym))
#endif

extern int CONFIG_HZ __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_VETH __kconfig;
extern int CONFIG_BPFKIT_NOT_AN_OPTION __kconfig __weak;
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern const void schedule __ksym;

enum { OUT_SCALE, OUT_HZ, OUT_SYSCALL, OUT_VETH, OUT_MISSING, OUT_VERSION, OUT_FOPS,
       OUT_ITER, OUT_INNER, OUT_HAS_KFUNC, OUT_COUNTER, NOUT };

const volatile __u64 scale = 3;
__u64 counter = 0;
char greeting[8] = "hello";

struct value {
	__u32 a;
	__u16 b;
	char tag[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NOUT);
	__type(key, __u32);
	__type(value, __u64);
} out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct value);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} pcpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4);
	__type(value, __u32);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__type(value, __u32);
} lifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 16);
	__type(value, __u32);
	__uint(map_extra, 3);
} bloom SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { &inner_a, &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counts SEC(".maps");

static __always_inline void put(__u32 k, __u64 v)
{
	bpf_map_update_elem(&out, &k, &v, BPF_ANY);
}

SEC("raw_tracepoint")
int touch(void *ctx)
{
	struct bpf_iter_num it;
	__u32 zero = 0, one = 1;
	__u64 *v, sum = 0, init = 1;
	void *inner;
	int *i;

	put(OUT_SCALE, scale * 7);
	put(OUT_HZ, CONFIG_HZ);
	put(OUT_SYSCALL, CONFIG_BPF_SYSCALL);
	put(OUT_VETH, CONFIG_VETH);
	put(OUT_MISSING, CONFIG_BPFKIT_NOT_AN_OPTION);
	put(OUT_VERSION, LINUX_KERNEL_VERSION);
	put(OUT_FOPS, (__u64)&schedule);
	bpf_iter_num_new(&it, 0, 5);
	while ((i = bpf_iter_num_next(&it)))
		sum += *i;
	bpf_iter_num_destroy(&it);
	put(OUT_ITER, sum);
	inner = bpf_map_lookup_elem(&outer, &one);
	if (inner) {
		v = bpf_map_lookup_elem(inner, &zero);
		if (v)
			put(OUT_INNER, *v);
	}
	put(OUT_HAS_KFUNC, bpf_ksym_exists(bpfkit_no_such_kfunc));
	if (bpf_ksym_exists(bpfkit_no_such_kfunc))
		bpfkit_no_such_kfunc();
	v = bpf_map_lookup_elem(&pcpu, &zero);
	if (v)
		*v += 1;
	v = bpf_map_lookup_elem(&pinned_counts, &zero);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&pinned_counts, &zero, &init, BPF_NOEXIST);
	counter += 1;
	put(OUT_COUNTER, counter);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
