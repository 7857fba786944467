/* Cross-check input: legacy packet loads (BPF_ABS/BPF_IND) through llvm intrinsics. */
typedef unsigned long long u64;

#define SEC(name) __attribute__((section(name), used))

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

SEC("socket")
int legacy(void *skb)
{
	u64 proto = load_half(skb, 12);
	u64 ihl = load_byte(skb, 14) & 0xf;
	u64 dport = load_half(skb, 14 + ihl * 4 + 2);
	u64 saddr = load_word(skb, 26);
	u64 b = load_byte(skb, ihl * 4);
	return (int)(proto + dport + saddr + b);
}
