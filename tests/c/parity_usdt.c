/* USDT handlers through libbpf's usdt.bpf.h (its __hidden global functions, spec maps
 * and bpf_usdt_arg) for tests/test_parity_usdt.py; see parity_usdt_target.c. */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __s64);
} ticks SEC(".maps"); /* [i*4 + arg] = the value of tick's argument arg at i */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __s64);
} other SEC(".maps"); /* 0: guarded count, 1: guarded arg, 2, 3: consts, 4: cookie, 5: nargs */

SEC("usdt")
int BPF_USDT(on_tick, int i, long i3, int x, short y)
{
	__u32 k;
	__s64 v;

	if (i < 0 || i >= 16)
		return 0;
	k = i * 4;
	v = i;
	bpf_map_update_elem(&ticks, &k, &v, 0);
	k++;
	v = i3;
	bpf_map_update_elem(&ticks, &k, &v, 0);
	k++;
	v = x;
	bpf_map_update_elem(&ticks, &k, &v, 0);
	k++;
	v = y;
	bpf_map_update_elem(&ticks, &k, &v, 0);
	return 0;
}

SEC("usdt/./parity_usdt_target:bpfkit:guarded")
int BPF_USDT(on_guarded, unsigned char k)
{
	__u32 key = 0;
	__s64 *n = bpf_map_lookup_elem(&other, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	key = 1;
	__s64 v = k;
	bpf_map_update_elem(&other, &key, &v, 0);
	return 0;
}

SEC("usdt")
int on_consts(struct pt_regs *ctx)
{
	long a = 0, b = 0;
	__u32 key = 2;
	__s64 v;

	bpf_usdt_arg(ctx, 0, &a);
	bpf_usdt_arg(ctx, 1, &b);
	v = a;
	bpf_map_update_elem(&other, &key, &v, 0);
	key = 3;
	v = b;
	bpf_map_update_elem(&other, &key, &v, 0);
	key = 4;
	v = bpf_usdt_cookie(ctx);
	bpf_map_update_elem(&other, &key, &v, 0);
	key = 5;
	v = bpf_usdt_arg_cnt(ctx);
	bpf_map_update_elem(&other, &key, &v, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
