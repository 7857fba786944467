// Every BTF kind clang emits: ints, pointers, arrays, structs, unions, enums (32/64),
// forward declarations, typedefs, modifiers, functions, variables, sections, floats, tags.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __user __attribute__((btf_type_tag("user")))

struct opaque;                                  /* FWD */
union opaque_u;
typedef unsigned long long u64_t;               /* TYPEDEF */
typedef struct { int a, b; } pair_t;            /* anonymous struct behind a typedef */

enum small { S_A = -1, S_B = 0, S_C = 7 };      /* signed ENUM */
enum big { B_A = 1ULL << 40, B_B = 0xffffffffffffffffULL };  /* ENUM64 */

struct bits {
	unsigned int lo: 4;
	unsigned int mid: 12;
	int neg: 8;
	unsigned char flag: 1;
	__u64 wide: 40;
};

struct record {
	u64_t id;
	pair_t pair;
	struct bits bits;
	union {
		__u32 as_u32;
		__u8 as_bytes[4];
	};
	struct {
		__u16 x, y;
	} point;
	enum small s;
	enum big b;
	char name[6];
	__s8 matrix[2][3];
	float ratio;
	double precise;
	_Bool ok;
	struct opaque *opq;
	union opaque_u *opu;
	const volatile int *cv;
	int *restrict rp;
	int __user *uptr;
	int (*fn)(int, char *);
	int tagged __tag("member_tag");
};

struct record records[2] __tag("var_tag");
struct record single;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, enum small);
	__type(value, struct record);
	__uint(max_entries, 4);
} rec_map SEC(".maps");

__noinline __tag("func_tag") int tagged_func(int a __tag("param_tag"), struct record *r)
{
	return a + r->bits.lo + r->pair.b;
}

SEC("tc")
int types_prog(struct __sk_buff *skb)
{
	enum small k = S_C;
	struct record *r = bpf_map_lookup_elem(&rec_map, &k);

	if (!r)
		return 0;
	single.bits.mid = r->bits.mid;
	records[1].as_u32 = r->point.x;
	return tagged_func(skb->len, r) + (r->b == B_A);
}

char LICENSE[] SEC("license") = "GPL";
