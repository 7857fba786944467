/* A 64-case switch on each of the first 256 packet bytes; every case does different work. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LEN 256

static __always_inline __u32 step(__u32 acc, __u8 b)
{
	switch (b & 63) {
	case 0: return acc + 1;
	case 1: return acc ^ 0x5bd1e995;
	case 2: return acc * 3;
	case 3: return acc - b;
	case 4: return acc << 1;
	case 5: return acc >> 1;
	case 6: return acc | 0x100;
	case 7: return acc & 0xfffffff0;
	case 8: return acc + b * 7;
	case 9: return ~acc;
	case 10: return acc ^ (acc >> 7);
	case 11: return acc + (acc << 3);
	case 12: return acc * 31 + b;
	case 13: return acc - 12345;
	case 14: return acc ^ (b << 8);
	case 15: return (acc << 5) | (acc >> 27);
	case 16: return acc + 0x9e3779b9;
	case 17: return acc ^ (acc << 13);
	case 18: return acc * 5 + 1;
	case 19: return acc >> 3;
	case 20: return acc & (acc - 1);
	case 21: return acc | b;
	case 22: return acc - (acc >> 2);
	case 23: return acc + (b ^ 0xaa);
	case 24: return acc ^ 0xdeadbeef;
	case 25: return acc * 9;
	case 26: return (acc >> 16) | (acc << 16);
	case 27: return acc + acc / 7;
	case 28: return acc ^ (acc >> 11);
	case 29: return acc - b * 3;
	case 30: return acc << 2;
	case 31: return acc + 77;
	case 32: return acc * 17 + 3;
	case 33: return acc ^ (b * 0x01010101);
	case 34: return acc & 0x0ff0ff0f;
	case 35: return acc | (acc >> 9);
	case 36: return acc + (acc >> 5);
	case 37: return acc - 1;
	case 38: return acc * 0x01000193;
	case 39: return acc ^ (acc << 7);
	case 40: return (acc << 9) | (acc >> 23);
	case 41: return acc + b * b;
	case 42: return acc >> 4;
	case 43: return acc ^ 0x12345678;
	case 44: return acc * 11 - b;
	case 45: return acc + (acc << 1);
	case 46: return acc % 65521;
	case 47: return acc | 0x80000000;
	case 48: return acc - (b << 4);
	case 49: return acc ^ (acc >> 17);
	case 50: return acc + 0x1234;
	case 51: return acc * 13;
	case 52: return acc & ~(__u32)b;
	case 53: return (acc << 3) + (acc >> 29);
	case 54: return acc + (b | 0x40);
	case 55: return acc ^ (acc * 3);
	case 56: return acc - 0x55555555;
	case 57: return acc >> 7;
	case 58: return acc * 7 + b;
	case 59: return acc ^ (b << 16);
	case 60: return acc + (acc >> 13);
	case 61: return acc | (b << 24);
	case 62: return acc * 19;
	default: return acc + 0x6b43a9b5;
	}
}

SEC("xdp")
int switch64(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 acc = 0;

	if ((void *)(p + LEN) > end)
		return XDP_ABORTED;
#pragma clang loop unroll(disable)
	for (int i = 0; i < LEN; i++)
		acc = step(acc, p[i]);
	return acc;
}

char LICENSE[] SEC("license") = "GPL";
