/* A tiny user-space program for uprobe tests: calls bpfkit_add(a, b) N times. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) long bpfkit_add(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1;
	long a = argc > 2 ? atol(argv[2]) : 1;
	long b = argc > 3 ? atol(argv[3]) : 2;
	long sum = 0;

	for (long i = 0; i < n; i++)
		sum += bpfkit_add(a, b);
	printf("%ld\n", sum);
	return 0;
}
