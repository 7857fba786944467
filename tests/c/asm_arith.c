/* Cross-check input for the assembler/disassembler tests: arithmetic, signed
 * division, sign-extending loads, byte swaps, 32-bit compares, a BPF-to-BPF call,
 * a large switch and a loop. Built with clang -target bpf at -mcpu=v3 and v4. */
typedef unsigned long long u64;
typedef long long s64;
typedef unsigned int u32;
typedef int s32;
typedef unsigned short u16;
typedef short s16;
typedef signed char s8;

#define SEC(name) __attribute__((section(name), used))
#define NOINLINE static __attribute__((noinline))

NOINLINE u64 mix(u64 a, u64 b, u32 c)
{
	a ^= b << 13;
	a += (u64)c * 2654435761u;
	a -= b >> 7;
	a |= (s64)a >> 3;
	a &= ~(u64)c;
	return a * 31 + (a % 1000003);
}

#if __BPF_CPU_VERSION__ >= 4
#define SDIV(a, b) ((a) / (b))
#define SMOD(a, b) ((a) % (b))
#else /* signed division is a v4 instruction */
#define SDIV(a, b) ((a) + (b))
#define SMOD(a, b) ((a) - (b))
#endif

NOINLINE s64 sdivide(s64 a, s64 b, s32 c, s32 d)
{
	if (b == 0 || d == 0)
		return 0;
	return SDIV(a, b) + SMOD(a, b) + (s64)SDIV(c, d) + (s64)SMOD(c, d);
}

SEC("xdp")
int arith(unsigned char *p)
{
	s8 sb = *(s8 *)(p + 1);
	s16 sh = *(s16 *)(p + 2);
	s32 sw = *(s32 *)(p + 4);
	u32 w = *(u32 *)(p + 8);
	u64 x = *(u64 *)(p + 16);
	u16 port = *(u16 *)(p + 24);
	u64 acc = 0;

	acc += mix(x, (u64)sb + sh, w);
	acc += sdivide((s64)x, sw, sw, sb);
	acc += __builtin_bswap64(x) + __builtin_bswap32(w) + __builtin_bswap16(port);
	acc += __builtin_bswap16(port) == 0x1f90 ? 1 : 2;
	if ((s32)w < -5)
		acc += 7;
	if (w > 100000 && (u32)sw != w)
		acc ^= 0x1234567890abcdefULL;
	if ((s32)w >= sw)
		acc -= 3;
	return (int)acc;
}

SEC("tc")
int big_switch(unsigned char *p)
{
	u32 v = *(u32 *)p;
	u64 r = 0;

	for (int i = 0; i < 24; i++) {
		switch ((v + i) & 15) {
		case 0: r += 11; break;
		case 1: r ^= r << 3; break;
		case 2: r -= 5; break;
		case 3: r *= 7; break;
		case 4: r |= 0x80; break;
		case 5: r &= 0xfffffff0; break;
		case 6: r = r / 3; break;
		case 7: r = SDIV((s64)r, -9); break;
		case 8: r += p[i]; break;
		case 9: r >>= 2; break;
		case 10: r = (s64)r >> 1; break;
		case 11: r += 0x7fffffff; break;
		case 12: r -= 0x100000000ULL; break;
		default: r += v; break;
		}
	}
	return (int)r;
}
