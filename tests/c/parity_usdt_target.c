/* A user-space program with USDT probes (sys/sdt.h) for the USDT tests.
 * bpfkit:tick(i, i * 3, s) fires N times; bpfkit:guarded(k) has a semaphore and fires only
 * when a tracer is attached (its semaphore is non-zero); bpfkit:consts(a, b) passes constants.
 */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <unistd.h>

/* with _SDT_HAS_SEMAPHORES every probe has a semaphore; only "guarded" tests its own */
unsigned short bpfkit_tick_semaphore __attribute__((section(".probes")));
unsigned short bpfkit_guarded_semaphore __attribute__((section(".probes")));
unsigned short bpfkit_consts_semaphore __attribute__((section(".probes")));

struct point {
	int x;
	short y;
};

__attribute__((noinline)) static int work(int n, struct point *p)
{
	int s = 0;
	for (int i = 0; i < n; i++) {
		s += i;
		p->x += i;
		p->y -= 1;
		DTRACE_PROBE4(bpfkit, tick, i, (long)i * 3, p->x, p->y);
		if (__builtin_expect(bpfkit_guarded_semaphore, 0))
			DTRACE_PROBE1(bpfkit, guarded, (unsigned char)(i + 200));
	}
	DTRACE_PROBE2(bpfkit, consts, -7, 123456789012L);
	return s;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	int wait = argc > 2 ? atoi(argv[2]) : 0;
	struct point p = { 0, 0 };

	if (wait)
		usleep(wait * 1000);
	int s = work(n, &p);

	printf("%d %d %d\n", s, p.x, p.y);
	return 0;
}
