/* Cross-check input: atomics (64- and 32-bit, with and without fetch, xchg, cmpxchg). */
typedef unsigned long long u64;
typedef unsigned int u32;

#define SEC(name) __attribute__((section(name), used))

u64 counter64;
u32 counter32;

SEC("xdp")
int atomics(unsigned char *p)
{
	u64 v = p[0];
	u32 w = p[1];
	u64 r = 0;

	__sync_fetch_and_add(&counter64, v);
	__sync_fetch_and_add(&counter32, w);
	r += __sync_fetch_and_add(&counter64, 3);
	r += __sync_fetch_and_add(&counter32, 5);
	r += __sync_fetch_and_or(&counter64, v);
	r += __sync_fetch_and_and(&counter32, w);
	r += __sync_fetch_and_xor(&counter64, 0x55);
	__sync_fetch_and_or(&counter32, 2);
	__sync_fetch_and_and(&counter64, 6);
	__sync_fetch_and_xor(&counter32, 9);
	r += __atomic_exchange_n(&counter64, v, __ATOMIC_SEQ_CST);
	r += __atomic_exchange_n(&counter32, w, __ATOMIC_SEQ_CST);
	r += __sync_val_compare_and_swap(&counter64, v, r);
	r += __sync_val_compare_and_swap(&counter32, w, (u32)r);
	return (int)r;
}
