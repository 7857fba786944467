// SPDX-License-Identifier: GPL-2.0
/* Rejected programs that need clang -mcpu=v4 code (sign-extending loads, 32-bit signed
 * compares); tests/test_verifier_c.py compiles this file with -mcpu=v4.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* x = (s32) load; 32-bit compare x >= -2, 64-bit compare x <= 1; x * 8. The kernel
 * keeps the 64-bit minimum at -2^31 (it does not carry the 32-bit minimum over when
 * the 64-bit range crosses zero), so x * 8 < -100 is possible to it. */
SEC("xdp")
int rej_v4_mul_branch(struct xdp_md *ctx)
{
	long x = (int)ctx->ingress_ifindex;

	if (x < -2)
		return XDP_PASS;
	asm volatile("" : "+r"(x));
	if (x > 1)
		return XDP_PASS;
	asm volatile("%[x] *= 8" : [x] "+r"(x));
	if (x < -100)
		return *(volatile int *)x; // BAD
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
