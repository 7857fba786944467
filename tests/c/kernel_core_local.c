// SPDX-License-Identifier: GPL-2.0
/* Local side of the ambiguity test: reads ambiguous.x, which the target defines twice. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct ambiguous {
	int x;
} __attribute__((preserve_access_index));

SEC("raw_tracepoint")
int amb(void *ctx)
{
	struct ambiguous *a = (void *)bpf_get_current_task();

	return BPF_CORE_READ(a, x);
}

char LICENSE[] SEC("license") = "GPL";
