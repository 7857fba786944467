// Programs for the load-time rules around the verifier (tests/test_verifier_load.py):
// which program types may use which maps (spin locks, timers, sleepable programs) and
// who may be sleepable. Each is loaded alone into the kernel and verified by bpfkit.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct lockval {
	struct bpf_spin_lock lock;
	int v;
};
struct timerval {
	struct bpf_timer t;
	int v;
};
struct lockarr {
	int v;
	struct bpf_spin_lock locks[1];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct lockval);
} lockmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, int);
	__type(value, struct timerval);
} timermap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct lockarr);
} lockarrmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
} perfmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, 4);
	__uint(value_size, 4);
} progs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, int);
	__type(value, long);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

// look a map up (its value is not used)
#define LOOKUP(m)                                              \
	do {                                                   \
		int k = 0;                                     \
		if (bpf_map_lookup_elem(&m, &k))               \
			return 1;                              \
	} while (0)
// load the map's address only (maps that cannot be looked up)
#define MAPREF(m) asm volatile("r1 = %[map] ll" ::[map] "i"(&m) : "r1")

SEC("socket") int socket_lock(void *ctx) { LOOKUP(lockmap); return 0; }
SEC("socket") int socket_lock_array(void *ctx) { LOOKUP(lockarrmap); return 0; }
SEC("tc") int tc_lock(void *ctx) { LOOKUP(lockmap); return 0; }
SEC("kprobe/do_nanosleep") int kprobe_lock(void *ctx) { LOOKUP(lockmap); return 0; }
SEC("tracepoint/syscalls/sys_enter_nanosleep") int tp_timer(void *ctx) { LOOKUP(timermap); return 0; }
SEC("raw_tp/sys_enter") int raw_tp_timer(void *ctx) { LOOKUP(timermap); return 0; }
SEC("tc") int tc_timer(void *ctx) { LOOKUP(timermap); return 0; }
SEC("xdp") int xdp_timer_lock(void *ctx) { LOOKUP(timermap); LOOKUP(lockmap); return 2; }
SEC("syscall") int syscall_array(void *ctx) { LOOKUP(arr); return 0; }
SEC("syscall") int syscall_ringbuf(void *ctx) { MAPREF(rb); return 0; }
SEC("syscall") int syscall_perf(void *ctx) { MAPREF(perfmap); return 0; }
SEC("syscall") int syscall_progs(void *ctx) { MAPREF(progs); return 0; }
SEC("syscall") int syscall_lock(void *ctx) { LOOKUP(lockmap); return 0; }
SEC("uprobe.s") int uprobe_s_array(void *ctx) { LOOKUP(arr); return 0; }
SEC("uprobe.s") int uprobe_s_progs(void *ctx) { MAPREF(progs); return 0; }
SEC("uprobe") int uprobe_progs(void *ctx) { MAPREF(progs); return 0; }

char LICENSE[] SEC("license") = "GPL";
