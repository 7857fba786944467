// SPDX-License-Identifier: GPL-2.0
/* Programs the verifier must reject, one broken rule each (tests/test_verifier_c.py
 * loads every program on its own, in bpfkit and in the kernel, and checks the reason).
 * The line the verifier should blame carries a "BAD" comment where there is one.
 * Each bug was checked to survive clang -O2 with llvm-objdump-19 -d.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct value {
	__u64 f[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct value);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct value);
} array SEC(".maps");

struct locked {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct locked);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* ---- map values ----------------------------------------------------------------- */

/* The lookup may return NULL: dereferenced without a check. */
SEC("xdp")
int rej_no_null_check(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index;
	struct value *v = bpf_map_lookup_elem(&hash, &key);

	return v->f[0] ? XDP_DROP : XDP_PASS; // BAD
}

/* A constant offset past the end of the value (f[4] of a 4-element array). */
SEC("xdp")
int rej_map_oob_const(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index;
	struct value *v = bpf_map_lookup_elem(&hash, &key);
	volatile __u64 *f;

	if (!v)
		return XDP_PASS;
	f = v->f;
	return f[4] ? XDP_DROP : XDP_PASS; // BAD
}

/* A variable index bounded to 0..7 into a 4-element array. */
SEC("xdp")
int rej_map_oob_var(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);
	__u32 i = ctx->ingress_ifindex & 7;

	if (!v)
		return XDP_PASS;
	v->f[i] += 1; // BAD
	return XDP_PASS;
}

/* A variable index with no upper bound at all. */
SEC("xdp")
int rej_map_unbounded(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);
	__u32 i = ctx->ingress_ifindex;

	if (!v)
		return XDP_PASS;
	v->f[i] = 1; // BAD
	return XDP_PASS;
}

/* A negative offset before the start of the value. */
SEC("xdp")
int rej_map_neg_off(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);
	volatile __u64 *f;

	if (!v)
		return XDP_PASS;
	f = v->f;
	asm volatile("" : "+r"(f));
	return f[-1] ? XDP_DROP : XDP_PASS; // BAD
}

/* A signed index checked only against the upper bound: it may be negative. */
SEC("xdp")
int rej_map_signed_idx(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);
	int i = ctx->ingress_ifindex;

	if (!v || i >= 4)
		return XDP_PASS;
	return v->f[i] ? XDP_DROP : XDP_PASS; // BAD
}

/* A signed index in [-2, 1], shifted left: the kernel forgets the signed bounds of a
 * left shift (except <<32 of a non-negative value), so the sum is rejected even though
 * f + 2 + i stays inside the value. */
SEC("xdp")
int rej_map_signed_shift(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);
	long off = (int)ctx->ingress_ifindex;

	if (!v || off < -2)
		return XDP_PASS;
	asm volatile("" : "+r"(off)); /* two signed comparisons, not one unsigned */
	if (off > 1)
		return XDP_PASS;
	asm volatile("%[o] <<= 3" : [o] "+r"(off));
	return *(__u64 *)((char *)v + 16 + off) ? XDP_DROP : XDP_PASS; // BAD
}

/* The same shift, then a branch only the kernel thinks possible: after a left shift it
 * knows nothing of the sign, so it walks into the dereference of a number. */
SEC("xdp")
int rej_signed_shift_branch(struct xdp_md *ctx)
{
	long x = (int)ctx->ingress_ifindex;

	if (x < -2)
		return XDP_PASS;
	asm volatile("" : "+r"(x));
	if (x > 1)
		return XDP_PASS;
	asm volatile("%[x] <<= 3" : [x] "+r"(x));
	if (x < -100)
		return *(volatile int *)x; // BAD
	return XDP_PASS;
}

/* Read-only global data (.rodata, frozen) is written. */
const volatile __u32 config = 1;

SEC("xdp")
int rej_rodata_write(struct xdp_md *ctx)
{
	volatile __u32 *p = (volatile __u32 *)&config;

	asm volatile("" : "+r"(p));
	*p = 2; // BAD
	return XDP_PASS;
}

/* ---- packet --------------------------------------------------------------------- */

/* The Ethernet header is read with no data_end check. */
SEC("xdp")
int rej_pkt_no_check(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	return eth->h_proto == 8 ? XDP_DROP : XDP_PASS; // BAD
}

/* Only the Ethernet header was checked, the IP header is read past it. */
SEC("tc")
int rej_pkt_short_check(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(eth + 1) > data_end)
		return 0;
	return ip->protocol == 6; // BAD
}

/* The check is off by one: data + 14 <= data_end proven, 15 bytes read. */
SEC("xdp")
int rej_pkt_off_by_one(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if ((void *)(data + 14) > data_end)
		return XDP_PASS;
	return data[14] ? XDP_DROP : XDP_PASS; // BAD
}

/* A packet pointer used after bpf_xdp_adjust_head, which invalidates it. */
SEC("xdp")
int rej_pkt_after_adjust(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if ((void *)(data + 20) > data_end)
		return XDP_PASS;
	bpf_xdp_adjust_head(ctx, 4);
	return data[0] ? XDP_DROP : XDP_PASS; // BAD
}

/* The packet length as a number (data_end - data) does not prove a range. */
SEC("tc")
int rej_pkt_len_scalar(struct __sk_buff *skb)
{
	unsigned char *data = (void *)(long)skb->data;
	unsigned char *data_end = (void *)(long)skb->data_end;
	long len = data_end - data;

	if (len < 20)
		return 0;
	return data[10]; // BAD
}

/* cgroup_skb programs may read the packet but not write it. */
SEC("cgroup_skb/egress")
int rej_cgroup_pkt_write(struct __sk_buff *skb)
{
	unsigned char *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if ((void *)(data + 1) > data_end)
		return 1;
	data[0] = 0; // BAD
	return 1;
}

/* ---- stack ---------------------------------------------------------------------- */

/* A variable index 0..31 into a 16-byte stack buffer. */
SEC("socket")
int rej_stack_oob_var(struct __sk_buff *skb)
{
	volatile char buf[16] = {};
	__u32 i = skb->len & 31;

	buf[i] = 1; // BAD
	return buf[0];
}

/* A constant stack offset below the 512-byte frame. */
SEC("socket")
int rej_stack_oob_const(struct __sk_buff *skb)
{
	char buf[16] = {};
	char *p = buf;

	asm volatile("" : "+r"(p)); /* hide p from clang, which drops the UB store */
	p[-600] = 1; // BAD
	return buf[0];
}

/* ---- context -------------------------------------------------------------------- */

/* __sk_buff->len is read-only. */
SEC("socket")
int rej_ctx_write_ro(struct __sk_buff *skb)
{
	skb->len = 0; // BAD
	return 0;
}

/* Socket filters may not read skb->data (no direct packet access). */
SEC("socket")
int rej_ctx_socket_data(struct __sk_buff *skb)
{
	return skb->data != 0; // BAD
}

/* An offset past the end of struct xdp_md. */
SEC("xdp")
int rej_ctx_bad_off(struct xdp_md *ctx)
{
	return *(__u32 *)((char *)ctx + 64); // BAD
}

/* Writing xdp_md->data is not allowed. */
SEC("xdp")
int rej_ctx_write_xdp(struct xdp_md *ctx)
{
	ctx->data = 0; // BAD
	return XDP_PASS;
}

/* ---- loops ---------------------------------------------------------------------- */

/* Loops until a random number is zero: the same state comes back. */
SEC("xdp")
int rej_infinite_loop(struct xdp_md *ctx)
{
	for (;;) {
		__u32 r = bpf_get_prandom_u32();

		asm volatile("" : "+r"(r));
		if (r == 0 && ctx->rx_queue_index == 12345)
			break;
	}
	return XDP_PASS;
}

/* ---- references ----------------------------------------------------------------- */

/* A ring buffer record reserved and never submitted or discarded. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int rej_ringbuf_leak(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	*e = bpf_get_current_pid_tgid();
	return 0;
}

/* The record is submitted twice. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int rej_ringbuf_double_submit(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	*e = 1;
	bpf_ringbuf_submit(e, 0);
	bpf_ringbuf_submit(e, 0); // BAD
	return 0;
}

/* The record is written after it was submitted. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int rej_ringbuf_use_after_submit(void *ctx)
{
	volatile __u64 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	bpf_ringbuf_submit((void *)e, 0);
	*e = 2; // BAD
	return 0;
}

/* bpf_ringbuf_reserve needs a constant size. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int rej_ringbuf_var_size(void *ctx)
{
	__u32 size = (bpf_get_prandom_u32() & 7) + 8;
	__u64 *e = bpf_ringbuf_reserve(&events, size, 0); // BAD

	if (!e)
		return 0;
	bpf_ringbuf_discard(e, 0);
	return 0;
}

/* The reservation is used without checking it for NULL. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int rej_ringbuf_no_null_check(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	*e = 1; // BAD
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

/* The size argument of bpf_skb_load_bytes has no upper bound. */
SEC("tc")
int rej_helper_size_unbounded(struct __sk_buff *skb)
{
	char buf[64];
	__u32 len = skb->len;

	if (len == 0)
		return 0;
	bpf_skb_load_bytes(skb, 0, buf, len); // BAD
	return buf[0];
}

/* The size may be zero, which bpf_skb_load_bytes does not accept. */
SEC("tc")
int rej_helper_size_zero(struct __sk_buff *skb)
{
	char buf[16];
	__u32 len = skb->len & 15;

	bpf_skb_load_bytes(skb, 0, buf, len); // BAD
	return buf[0];
}

/* The size may be larger than the buffer. */
SEC("tc")
int rej_helper_size_too_big(struct __sk_buff *skb)
{
	char buf[16];
	__u32 len = skb->len & 31;

	if (len == 0)
		return 0;
	bpf_skb_load_bytes(skb, 0, buf, len); // BAD
	return buf[0];
}

/* bpf_ringbuf_reserve needs a ring buffer map. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int rej_helper_wrong_map(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&array, 8, 0); // BAD

	if (!e)
		return 0;
	bpf_ringbuf_discard(e, 0);
	return 0;
}

/* bpf_skb_load_bytes does not exist for kprobes. */
SEC("kprobe/do_nanosleep")
int rej_helper_wrong_type(void *ctx)
{
	char buf[8];

	bpf_skb_load_bytes(ctx, 0, buf, sizeof(buf)); // BAD
	return buf[0];
}

/* ---- return values -------------------------------------------------------------- */

/* cgroup_skb programs return 0 or 1. */
SEC("cgroup_skb/ingress")
int rej_cgroup_ret(struct __sk_buff *skb)
{
	return skb->len > 100 ? 1 : 5;
}

static int bad_cb(__u32 index, void *data)
{
	return 7; // BAD
}

/* A bpf_loop callback returns 0 or 1. */
SEC("xdp")
int rej_loop_cb_ret(struct xdp_md *ctx)
{
	bpf_loop(4, bad_cb, 0, 0);
	return XDP_PASS;
}

static int null_ctx_cb(__u32 index, void *data)
{
	return *(__u32 *)data & 1; // BAD
}

/* bpf_loop with a NULL callback context, which the callback dereferences. */
SEC("xdp")
int rej_loop_cb_null_ctx(struct xdp_md *ctx)
{
	bpf_loop(4, null_ctx_cb, 0, 0);
	return XDP_PASS;
}

/* ---- spin locks ----------------------------------------------------------------- */

/* The lock is still held at exit. */
SEC("tc")
int rej_lock_not_released(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct locked *l = bpf_map_lookup_elem(&counters, &key);

	if (!l)
		return 0;
	bpf_spin_lock(&l->lock);
	l->count += 1;
	return 0;
}

/* No helper calls while a lock is held. */
SEC("tc")
int rej_call_under_lock(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct locked *l = bpf_map_lookup_elem(&counters, &key);

	if (!l)
		return 0;
	bpf_spin_lock(&l->lock);
	l->count += bpf_get_prandom_u32(); // BAD
	bpf_spin_unlock(&l->lock);
	return 0;
}

/* ---- registers ------------------------------------------------------------------ */

/* r7 is read before anything was written to it. */
SEC("socket")
int rej_uninit_reg(struct __sk_buff *skb)
{
	__u64 x;

	asm volatile("%[x] = r7" : [x] "=r"(x)); // BAD
	return x;
}

/* A map value pointer multiplied: pointer arithmetic other than add/sub. */
SEC("socket")
int rej_ptr_mul(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);
	__u64 x;

	if (!v)
		return 0;
	x = (__u64)v;
	asm volatile("%[x] *= 3" : [x] "+r"(x)); // BAD
	return x != 0;
}

/* ---- global functions ----------------------------------------------------------- */

/* Verified on its own, p may be NULL: dereferenced without a check. */
__noinline int deref_arg(__u64 *p)
{
	return *p & 1; // BAD
}

SEC("xdp")
int rej_global_no_null_check(struct xdp_md *ctx)
{
	__u64 v = ctx->ingress_ifindex;

	return deref_arg(&v) ? XDP_DROP : XDP_PASS;
}

/* The caller may not rely on what a global function returns: it is any scalar. */
__noinline int small_index(int x)
{
	return x & 3;
}

SEC("xdp")
int rej_global_ret_unknown(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);

	if (!v)
		return XDP_PASS;
	return v->f[small_index(ctx->rx_queue_index)] ? XDP_DROP : XDP_PASS; // BAD
}

/* A global function's scalar argument is any value, whatever the caller passes. */
__noinline int read_field(int i)
{
	__u32 key = 0;
	struct value *v = bpf_map_lookup_elem(&array, &key);

	if (!v)
		return 0;
	return v->f[i]; // BAD
}

SEC("xdp")
int rej_global_scalar_arg(struct xdp_md *ctx)
{
	return read_field(1) ? XDP_DROP : XDP_PASS;
}

/* ---- calls ---------------------------------------------------------------------- */

static __noinline int deep(int x)
{
	volatile char buf[300];

	buf[x & 0xff] = 1;
	return buf[7];
}

static __noinline int outer(int x)
{
	volatile char buf[300];

	buf[x & 0xff] = 2;
	return deep(x) + buf[3];
}

/* Two frames of 300 bytes: more than 512 bytes of stack for the chain. */
SEC("socket")
int rej_stack_depth_calls(struct __sk_buff *skb)
{
	return outer(skb->len);
}

char LICENSE[] SEC("license") = "GPL";
