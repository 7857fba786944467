// Legacy "maps" section (struct bpf_map_def) and a kernel "version" section, no .text.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct legacy_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct legacy_map_def SEC("maps") legacy_hash = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 64,
};

struct legacy_map_def SEC("maps") legacy_array = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 2,
	.map_flags = 0,
};

SEC("kprobe/sys_write")
int legacy_prog(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&legacy_hash, &key);

	if (v)
		(*v)++;
	bpf_map_lookup_elem(&legacy_array, &key);
	return 0;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x050a00;
