"""The JIT's native ring-buffer helpers agree with the interpreter (bpfkit.jit.hot).

``bpf_ringbuf_reserve``/``submit``/``discard``/``output``/``query`` have native twins
that share the ring's control block with the Python map. Programs reserve, submit,
discard and output records of odd sizes into small rings (so they fill up and wrap
around) under ``engine="interp"`` and ``engine="jit"``; the return values, the records
Python consumes afterwards (bytes and order), the positions, the drop count and the raw
ring memory must be equal. Counting wrappers around the Python helpers show that the
native calls do not reach Python. Hand-written (unverified) programs cover flags,
oversized records, more reservations than the native slots, reservations held across
runs and submitted from Python or the other engine, bad submits and faults.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import inspect
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import bpfkit
from bpfkit.errors import RuntimeFault
from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    R9,
    R10,
    Label,
    add64,
    and64,
    assemble,
    call,
    exit_,
    ja,
    jeq,
    jlt,
    jne,
    ld_map_fd,
    lddw,
    ldx,
    mov64,
    mul64,
    st,
    stx,
)
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm.maps import ringbuf as rbm
from bpfkit.vm.runtime import VMRuntime

pytest.importorskip("llvmlite")

OUTPUT, RESERVE, SUBMIT, DISCARD, QUERY = 130, 131, 132, 133, 134
RB_IDS = (OUTPUT, RESERVE, SUBMIT, DISCARD, QUERY)
ENGINES = ("interp", "jit")
M64 = (1 << 64) - 1

needs_clang = pytest.mark.skipif(
    not (shutil.which("clang-19") or shutil.which("clang")), reason="needs clang"
)

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } seq SEC(".maps");

struct r13 { __u8 b[13]; };
struct r1 { __u8 b; };
struct r24 { __u64 a, b, c; };
struct r7 { __u8 b[7]; };
struct r200 { __u64 w[25]; };

SEC("xdp")
int churn(struct xdp_md *ctx)
{
	__u32 z = 0;
	__u64 *sp = bpf_map_lookup_elem(&seq, &z);
	if (!sp)
		return 0;
	__u64 acc = 0;
	for (int i = 0; i < 40; i++) {
		__u64 s = *sp;
		*sp = s + 1;
		switch (s % 6) {
		case 0: {
			struct r13 *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
			if (!e) { acc += 1; break; }
			for (int j = 0; j < 13; j++)
				e->b[j] = (__u8)(s + j);
			bpf_ringbuf_submit(e, 0);
			break;
		}
		case 1: {
			struct r1 *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
			if (!e) { acc += 2; break; }
			e->b = (__u8)s;
			if (s & 8)
				bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
			else
				bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
			break;
		}
		case 2: {
			struct r24 *a = bpf_ringbuf_reserve(&rb, sizeof(*a), 0);
			if (!a) { acc += 3; break; }
			struct r7 *b = bpf_ringbuf_reserve(&rb, sizeof(*b), 0);
			a->a = s; a->b = ~s; a->c = s * 3;
			if (b) {
				for (int j = 0; j < 7; j++)
					b->b[j] = (__u8)(0xa0 + j);
				bpf_ringbuf_submit(b, 0);  /* the later record first */
			} else {
				acc += 4;
			}
			if (s & 16)
				bpf_ringbuf_discard(a, 0);
			else
				bpf_ringbuf_submit(a, 0);
			break;
		}
		case 3: {
			__u8 buf[48];
			for (int j = 0; j < 48; j++)
				buf[j] = (__u8)(s * 7 + j);
			__u32 n = ((__u32)s * 5) & 31;
			long r = bpf_ringbuf_output(&rb, buf, n + 1, 0);
			acc += r == 0 ? 5 : 6 + (r & 0xff);
			break;
		}
		case 4: {
			struct r200 *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
			if (!e) { acc += 7; break; }
			for (int j = 0; j < 25; j++)
				e->w[j] = s ^ j;
			bpf_ringbuf_submit(e, 0);
			break;
		}
		default:
			acc += bpf_ringbuf_query(&rb, BPF_RB_PROD_POS) - bpf_ringbuf_query(&rb, BPF_RB_CONS_POS);
			acc += bpf_ringbuf_query(&rb, BPF_RB_RING_SIZE);
		}
		acc = acc * 31 + bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
	}
	return (int)(acc ^ (acc >> 32));
}

SEC("xdp")
int one(struct xdp_md *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 16, 0);
	if (!e)
		return 1;
	e[0] = 0x1122334455667788ULL;
	e[1] = 42;
	bpf_ringbuf_submit(e, 0);
	return 2;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("jitrb")
    (d / "rb.c").write_text(SRC)
    return compile_c(d / "rb.c", d / "rb.o").object


def state(rb) -> tuple:
    """Everything observable about a ring: positions, drops, reservations, raw memory."""
    return (
        rb.producer_pos,
        rb.consumer_pos,
        rb.dropped,
        rb.available,
        rb.outstanding,
        bytes(rb.mv),
    )


def count_python_calls(prog, engine: str, ids=RB_IDS) -> collections.Counter:
    """Wrap the Python helpers ``ids`` of VMProgram ``prog``: what reaches them is counted.

    The JIT compiles first, with the real helpers: its code keeps calling the native
    twins it was built with, and every fallback goes through ``env.helpers`` at run time.
    The interpreter binds helpers when it compiles, so it compiles after the swap.
    """
    env = prog.env
    if engine == "jit":
        prog.engine("jit")
    calls: collections.Counter = collections.Counter()
    reg = env.helpers.copy()
    for hid in ids:
        fn = reg.get(hid).fn

        def wrap(env, *a, _f=fn, _id=hid):
            calls[_id] += 1
            return _f(env, *a)

        reg.register(hid, wrap)
    env.helpers = reg
    prog.engine(engine)
    return calls


# ---- a clang-built program ------------------------------------------------------------
def _churn(path: Path, engine: str, *, count: bool = False):
    with bpfkit.load(path) as obj:
        p = obj.programs["churn"]
        rb = obj.maps["rb"].vm
        calls = None
        if count:
            calls = count_python_calls(p.vm, engine)
        rets, got = [], []
        for j in range(30):
            rets.append(p.test_run(bytes(64), engine=engine).retval)
            if j % 3 == 2:  # let it fill up in between: NULL reserves and -EAGAIN outputs
                got.append(rb.consume())
        assert rb.dropped > 0 and rb.producer_pos > 4 * rb.size  # full, and wrapped around
        return rets, got, rb.consume(), state(rb), calls


@needs_clang
def test_churn_agrees_with_interpreter(obj_path):
    jit = _churn(obj_path, "jit")
    ref = _churn(obj_path, "interp")
    assert jit[:4] == ref[:4]
    # records of every size made it through, in order
    sizes = {len(r) for batch in ref[1] for r in batch}
    assert {13, 1, 24, 7, 200} <= sizes and len(sizes) > 8


@needs_clang
def test_churn_calls_stay_native(obj_path):
    jit = _churn(obj_path, "jit", count=True)
    ref = _churn(obj_path, "interp", count=True)
    assert jit[:4] == ref[:4]
    assert sum(ref[4].values()) > 1000  # the counting works: the interpreter calls Python
    assert set(ref[4]) == set(RB_IDS)
    assert not jit[4], jit[4]  # every ring-buffer call of the JIT stayed native


@needs_clang
@pytest.mark.parametrize("engine", ENGINES)
def test_repeat_fills_the_ring(obj_path, engine):
    with bpfkit.load(obj_path) as obj:
        rb = obj.maps["rb"].vm
        r = obj.programs["one"].test_run(bytes(64), repeat=300, engine=engine)
        assert r.retval == 1  # the ring (4096 bytes, 24 per record) filled up
        recs = rb.consume()
        assert len(recs) == 4095 // 24
        assert set(recs) == {(0x1122334455667788).to_bytes(8, "little") + bytes([42]) + bytes(7)}
        assert rb.dropped == 300 - len(recs)


# ---- hand-written programs (unverified: every access checked) -------------------------
def _runtime(size: int = 4096):
    kw = {"ncpus": 1}
    if "verify" in inspect.signature(VMRuntime).parameters:
        kw["verify"] = False  # these programs are deliberately unverified
    rt = VMRuntime(**kw)
    rb = rt.create_map("rb", MapType.RINGBUF, 0, 0, size)
    ptrs = rt.create_map("ptrs", MapType.ARRAY, 4, 8, 64)
    return rt, rb, ptrs


def _load(rt, insns, name="p"):
    return rt.load_program(name, ProgType.XDP, assemble(insns))


def producer(rb_fd: int, n: int, step: int, mod: int) -> list:
    """``n`` records of sizes ``(i * step) % mod + 1``, each byte written through a
    checked store; record ``i`` is submitted, or discarded when ``i % 3 == 1``. r0: the
    number of NULL reserves times 1000 plus the last query of available data."""
    return [
        mov64(R6, 0),  # i
        mov64(R9, 0),  # NULLs
        Label("loop"),
        mov64(R7, R6),
        mul64(R7, step),
        # r7 = (i * step) % mod + 1 (mod by repeated subtraction keeps it simple)
        Label("mod"),
        jlt(R7, mod, "modded"),
        add64(R7, -mod),
        ja("mod"),
        Label("modded"),
        add64(R7, 1),
        ld_map_fd(R1, rb_fd),
        mov64(R2, R7),
        mov64(R3, 0),
        call(RESERVE),
        jne(R0, 0, "got"),
        add64(R9, 1),
        ja("next"),
        Label("got"),
        mov64(R8, 0),  # j
        Label("fill"),
        mov64(R1, R0),
        add64(R1, R8),
        mov64(R2, R6),
        add64(R2, R8),
        stx(1, R1, 0, R2),
        add64(R8, 1),
        jlt(R8, R7, "fill"),
        mov64(R1, R0),
        mov64(R2, 0),
        mov64(R3, R6),
        # i % 3 == 1 → discard
        Label("m3"),
        jlt(R3, 3, "m3done"),
        add64(R3, -3),
        ja("m3"),
        Label("m3done"),
        jeq(R3, 1, "disc"),
        call(SUBMIT),
        ja("next"),
        Label("disc"),
        call(DISCARD),
        Label("next"),
        add64(R6, 1),
        jlt(R6, n, "loop"),
        ld_map_fd(R1, rb_fd),
        mov64(R2, 0),
        call(QUERY),
        mul64(R9, 1000),
        add64(R0, R9),
        exit_(),
    ]


def _produce(engine: str, size: int, n: int, step: int, mod: int, runs: int, consume_every: int):
    rt, rb, _ = _runtime(size)
    p = _load(rt, producer(rb.fd, n, step, mod))
    rets, got = [], []
    for j in range(runs):
        rets.append(p.test_run(data=bytes(64), engine=engine).retval)
        if j % consume_every == consume_every - 1:
            got.append(rb.consume())
    out = rets, got, rb.consume(), state(rb)
    rt.close()
    return out


@pytest.mark.parametrize(
    "size,n,step,mod,runs,every",
    [
        (4096, 60, 7, 61, 12, 2),  # odd sizes, fills, wraps
        (4096, 200, 13, 29, 6, 1),  # more than fits in one run
        (8192, 33, 97, 401, 20, 3),  # large records: many drops
        (4096, 40, 1, 1, 50, 7),  # 1-byte records
    ],
)
def test_odd_sizes_wrap_and_full(size, n, step, mod, runs, every):
    jit = _produce("jit", size, n, step, mod, runs, every)
    ref = _produce("interp", size, n, step, mod, runs, every)
    assert jit == ref
    rets, got, rest, st = ref
    assert st[2] > 0 and st[0] > size  # some reserves found the ring full; it wrapped
    assert any(r >= 1000 for r in rets)
    assert sum(map(len, got)) + len(rest) > 0


def _flags_prog(rb_fd: int, ret: int | None = None) -> list:
    """Flag errors, zero and oversized records, every query flag. r0: result ``ret``, or
    all results hashed in order."""
    calls = [
        # reserve with flags → NULL
        [ld_map_fd(R1, rb_fd), mov64(R2, 8), mov64(R3, 1), call(RESERVE)],
        # oversized reserve → NULL (not a drop)
        [ld_map_fd(R1, rb_fd), lddw(R2, 0x40000000), mov64(R3, 0), call(RESERVE)],
        # bigger than the ring → NULL (a drop)
        [ld_map_fd(R1, rb_fd), lddw(R2, 0x100000), mov64(R3, 0), call(RESERVE)],
        # output with unknown flags → -EINVAL
        [ld_map_fd(R1, rb_fd), mov64(R2, R10), add64(R2, -64), mov64(R3, 8), mov64(R4, 4)],
        # output of 0 bytes from NULL with both wakeup flags → 0
        [ld_map_fd(R1, rb_fd), mov64(R2, 0), mov64(R3, 0), mov64(R4, 3)],
        # output of 11 stack bytes → 0
        [ld_map_fd(R1, rb_fd), mov64(R2, R10), add64(R2, -80), mov64(R3, 11), mov64(R4, 1)],
        # output of 500 stack bytes → 0, and -EAGAIN once the ring is full
        [ld_map_fd(R1, rb_fd), mov64(R2, R10), add64(R2, -512), mov64(R3, 500), mov64(R4, 2)],
        [ld_map_fd(R1, rb_fd), mov64(R2, 0), call(QUERY)],
        [ld_map_fd(R1, rb_fd), mov64(R2, 1), call(QUERY)],
        [ld_map_fd(R1, rb_fd), mov64(R2, 2), call(QUERY)],
        [ld_map_fd(R1, rb_fd), mov64(R2, 3), call(QUERY)],
        [ld_map_fd(R1, rb_fd), mov64(R2, 7), call(QUERY)],
        # a zero-size record: reserved (not NULL), submitted
        [
            ld_map_fd(R1, rb_fd),
            mov64(R2, 0),
            mov64(R3, 0),
            call(RESERVE),
            mov64(R6, R0),
            mov64(R0, 66),
            jeq(R6, 0, 4),
            mov64(R1, R6),
            mov64(R2, 0),
            call(SUBMIT),
            mov64(R0, 77),
        ],
    ]
    for c in calls[3:7]:
        c.append(call(OUTPUT))
    seq: list = []
    for i, c in enumerate(calls):
        seq += [*c, stx(8, R10, -8 * (i + 1), R0)]
    if ret is not None:
        return [*seq, ldx(8, R0, R10, -8 * (ret + 1)), exit_()]
    seq.append(mov64(R0, 0))
    for i in range(len(calls)):
        seq += [mul64(R0, 1000003), ldx(8, R1, R10, -8 * (i + 1)), add64(R0, R1)]
    return [*seq, exit_()]


@pytest.mark.parametrize("size", [4096, 1 << 16])
def test_flags_and_edge_sizes(size):
    out = {}
    for engine in ENGINES:
        rt, rb, _ = _runtime(size)
        p = _load(rt, _flags_prog(rb.fd))
        rets = [p.test_run(data=bytes(64), engine=engine).retval for _ in range(25)]
        out[engine] = rets, rb.consume(), state(rb)
        rt.close()
    assert out["jit"] == out["interp"]
    _, recs, st = out["interp"]
    assert b"" in recs and any(len(r) == 11 for r in recs) and any(len(r) == 500 for r in recs)
    assert st[2] >= 25  # the 1 MiB reserves were drops (the oversized ones are not)


@pytest.mark.parametrize("engine", ENGINES)
def test_flag_results_are_the_kernels(engine):
    """Each result of _flags_prog on an empty ring (first run), then on a full one."""

    def model(runs: int) -> list[int]:  # the kernel's rules, on a 4096-byte ring
        used, r = 0, []
        for _ in range(runs):
            r = [0, 0, 0, -errno.EINVAL]
            for length in (8, 24, 512):  # outputs of 0, 11 and 500 bytes, with headers
                fits = used + length <= 4095
                used += length if fits else 0
                r.append(0 if fits else -errno.EAGAIN)
            r += [used, 4096, 0, used, 0]
            fits = used + 8 <= 4095  # the zero-size record
            used += 8 if fits else 0
            r.append(77 if fits else 66)
        return r

    first, last = model(1), model(30)
    assert -errno.EAGAIN in last and 66 in last
    for ret, (a, b) in enumerate(zip(first, last, strict=True)):
        rt, rb, _ = _runtime(4096)
        p = _load(rt, _flags_prog(rb.fd, ret))
        got = [p.test_run(data=bytes(64), engine=engine).retval for _ in range(30)]
        assert (got[0], got[-1]) == (a & 0xFFFFFFFF, b & 0xFFFFFFFF), ret  # XDP: u32
        rt.close()


def _hold_prog(rb_fd: int, ptrs_fd: int, n: int, size: int) -> list:
    """Reserve ``n`` records of ``size`` bytes at once, storing each pointer in ``ptrs``;
    then submit them from last to first (discarding every fourth), reading the pointers
    back. r0: the number of NULL reserves."""
    return [
        mov64(R6, 0),
        mov64(R9, 0),
        Label("res"),
        ld_map_fd(R1, rb_fd),
        mov64(R2, size),
        mov64(R3, 0),
        call(RESERVE),
        jne(R0, 0, "ok"),
        add64(R9, 1),
        Label("ok"),
        mov64(R7, R0),
        jeq(R7, 0, "store"),
        stx(8, R7, 0, R6),
        stx(1, R7, size - 1, R6),
        Label("store"),
        stx(4, R10, -4, R6),
        ld_map_fd(R1, ptrs_fd),
        mov64(R2, R10),
        add64(R2, -4),
        call(1),
        stx(8, R0, 0, R7),
        add64(R6, 1),
        jlt(R6, n, "res"),
        Label("sub"),
        add64(R6, -1),
        stx(4, R10, -4, R6),
        ld_map_fd(R1, ptrs_fd),
        mov64(R2, R10),
        add64(R2, -4),
        call(1),
        ldx(8, R1, R0, 0),
        jeq(R1, 0, "skip"),
        mov64(R2, 0),
        mov64(R3, R6),
        and64(R3, 3),
        jeq(R3, 3, "disc"),
        call(SUBMIT),
        ja("skip"),
        Label("disc"),
        call(DISCARD),
        Label("skip"),
        jne(R6, 0, "sub"),
        mov64(R0, R9),
        exit_(),
    ]


@pytest.mark.parametrize("n", [5, rbm.R_SLOTS, rbm.R_SLOTS + 9, 60])
def test_more_reservations_than_native_slots(n):
    out = {}
    for engine in ENGINES:
        rt, rb, ptrs = _runtime(4096)
        p = _load(rt, _hold_prog(rb.fd, ptrs.fd, n, 17))
        calls = count_python_calls(p, engine)
        rets = []
        for _ in range(4):
            rets.append(p.test_run(data=bytes(64), engine=engine).retval)
            rets.append(len(rb.consume()))
        assert rb.outstanding == 0 and not rb.reserved and not rb.native_reserved()
        out[engine] = rets, state(rb), dict(calls)
        rt.close()
    assert out["jit"][:2] == out["interp"][:2]
    held = min(n, 4095 // 32)  # what fits in the ring at once
    assert out["interp"][0][0] == n - held  # NULLs once the ring is full
    # Python sees only the reserves beyond the native slots, and their submits
    over = max(0, held - rbm.R_SLOTS)
    jit_calls = out["jit"][2]
    assert jit_calls.get(RESERVE, 0) == 4 * (over + n - held)
    assert jit_calls.get(SUBMIT, 0) + jit_calls.get(DISCARD, 0) == 4 * over
    assert not jit_calls.get(QUERY) and not jit_calls.get(OUTPUT)
    assert out["interp"][2][RESERVE] == 4 * n


def _reserve_only(rb_fd: int, ptrs_fd: int, size: int) -> list:
    """Reserve one record, write it, store the pointer in ptrs[0]; r0: the pointer."""
    return [
        ld_map_fd(R1, rb_fd),
        mov64(R2, size),
        mov64(R3, 0),
        call(RESERVE),
        mov64(R6, R0),
        jeq(R6, 0, "out"),
        st(8, R6, 0, 0x5A5A),
        st(1, R6, size - 1, 0x77),
        st(4, R10, -4, 0),
        ld_map_fd(R1, ptrs_fd),
        mov64(R2, R10),
        add64(R2, -4),
        call(1),
        stx(8, R0, 0, R6),
        Label("out"),
        mov64(R0, R6),
        exit_(),
    ]


def _commit_from_map(ptrs_fd: int, helper: int) -> list:
    """Submit (or discard) the record whose pointer is in ptrs[0]."""
    return [
        st(4, R10, -4, 0),
        ld_map_fd(R1, ptrs_fd),
        mov64(R2, R10),
        add64(R2, -4),
        call(1),
        ldx(8, R1, R0, 0),
        mov64(R2, 0),
        call(helper),
        exit_(),
    ]


@pytest.mark.parametrize("first", ENGINES)
@pytest.mark.parametrize("second", [*ENGINES, "python"])
@pytest.mark.parametrize("helper", [SUBMIT, DISCARD])
def test_reservation_held_across_runs(first, second, helper):
    rt, rb, ptrs = _runtime()
    hold = _load(rt, _reserve_only(rb.fd, ptrs.fd, 21), "hold")
    done = _load(rt, _commit_from_map(ptrs.fd, helper), "done")
    rb.output(b"before")
    assert hold.test_run(data=bytes(64), engine=first).retval  # (the pointer's low half)
    addr = int.from_bytes(ptrs.lookup(bytes(4)), "little")
    assert addr and rb.outstanding == 1
    assert (addr in rb.native_reserved()) == (first == "jit")
    rb.output(b"after")
    assert rb.consume() == [b"before"]  # the held record blocks the consumer
    if second == "python":
        assert rb.commit(addr, discard=helper == DISCARD)
    else:
        assert done.test_run(data=bytes(64), engine=second).retval == 0
    want = [] if helper == DISCARD else [(0x5A5A).to_bytes(8, "little") + bytes(12) + b"\x77"]
    assert rb.consume() == [*want, b"after"]
    assert rb.outstanding == 0
    # committing the same record again is a fault, in both engines
    for engine in ENGINES:
        with pytest.raises(RuntimeFault, match="not a reserved record"):
            done.test_run(data=bytes(64), engine=engine)
    rt.close()


def test_python_reservations_mix_with_native_ones():
    """Python reserves, writes and outputs around program runs: one consistent ring."""
    out = {}
    for engine in ENGINES:
        rt, rb, _ = _runtime()
        p = _load(rt, producer(rb.fd, 120, 5, 23))
        got, rets = [], []
        for j in range(40):
            a = rb.reserve(j % 11 + 1)
            if a:
                rb.space.write(a, bytes([j]) * (j % 11 + 1))
            rets.append(p.test_run(data=bytes(64), engine=engine).retval)
            rets.append(rb.output(b"py%d" % j))
            if a:
                rb.commit(a, discard=j % 4 == 1)
            if j % 2:
                got.append(rb.consume())
        out[engine] = rets, got, state(rb)
        rt.close()
    assert out["jit"] == out["interp"]
    assert out["interp"][2][2] > 0  # some drops


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_submit_faults(engine):
    rt, rb, ptrs = _runtime()
    hold = _load(rt, _reserve_only(rb.fd, ptrs.fd, 16), "hold")
    hold.test_run(data=bytes(64), engine=engine)  # one outstanding record
    held = int.from_bytes(ptrs.lookup(bytes(4)), "little")
    data = rb.alias.base if rb.alias.base <= held < rb.alias.end else ctypes.addressof(rb.buf)
    bad = [0, 8, rb.addr, held + 8, held - 8, data, data + 4096 + 8, data + 2 * 4096 + 8]
    for i, addr in enumerate(bad):
        p = _load(rt, [lddw(R1, addr), mov64(R2, 0), call(SUBMIT + i % 2), exit_()], f"b{i}")
        with pytest.raises(RuntimeFault, match="not a reserved record"):
            p.test_run(data=bytes(64), engine=engine)
    assert rb.outstanding == 1 and rb.commit(held) and len(rb.consume()) == 1
    rt.close()


# ---- faults: exact per-record bounds --------------------------------------------------
def _write_at(rb_fd: int, size: int, off: int, width: int = 8) -> list:
    """Reserve ``size`` bytes, then write ``width`` bytes at ``record + off`` (unverified)."""
    return [
        ld_map_fd(R1, rb_fd),
        mov64(R2, size),
        mov64(R3, 0),
        call(RESERVE),
        jeq(R0, 0, "out"),
        mov64(R6, R0),
        lddw(R7, off & M64),
        add64(R6, R7),
        st(width, R6, 0, -1),
        mov64(R1, R0),
        mov64(R2, 0),
        call(SUBMIT),
        mov64(R0, 1),
        Label("out"),
        exit_(),
    ]


def _fault(engine: str, size: int, off: int, width: int = 8, prog=None):
    """(fault, pc, message, address relative to the record) of ``_write_at`` (or of
    ``prog(rb_fd)``), or ("ok", ring state) when it runs through."""
    rt, rb, _ = _runtime(4096)
    p = _load(rt, prog(rb.fd) if prog else _write_at(rb.fd, size, off, width))
    rb.output(b"x" * 100)  # the record is not at the start of the data area
    # a native reserve points into the alias mapping, the Python one into the buffer
    base = rb.alias.base if engine == "jit" else ctypes.addressof(rb.buf)
    try:
        p.test_run(data=bytes(64), engine=engine)
    except RuntimeFault as e:
        rel = e.address - base - 120
        return ("fault", e.pc, e.reason.split(" at address")[0], rel, rb.outstanding)
    finally:
        st_ = state(rb)
        rb.consume()
        rt.close()
    return ("ok", st_)


@pytest.mark.parametrize(
    "off",
    [
        2 * 4096,  # past the whole data area
        2 * 4096 - 120,  # the first byte after the data area (the record is at 120)
        2 * 4096 - 120 - 4,  # straddling the end
        -120 - 8,  # before the data area
        -(1 << 20),
        1 << 40,
    ],
)
def test_write_outside_the_ring_faults(off):
    jit = _fault("jit", 16, off)
    assert jit[0] == "fault" and jit[3] == off
    assert jit == _fault("interp", 16, off)


@pytest.mark.parametrize(
    "size, off, width",
    [
        (16, 16, 8),  # right after the record
        (16, 24, 8),
        (16, -8, 8),  # the record's header
        (16, 16, 1),  # one byte past the record
        (16, 15, 2),  # straddling its end
        (16, 9, 8),
        (16, -1, 1),
        (16, 64, 8),  # further into the (unreserved) data area
        (3, 3, 1),  # records shorter than 8 bytes
        (3, 0, 4),
        (0, 0, 1),  # an empty record has no bytes at all
    ],
)
def test_write_past_the_record_inside_the_ring(size, off, width):
    ref = _fault("interp", size, off, width)
    assert ref[0] == "fault"
    assert ref[2] == f"invalid write of {width} byte{'s' if width > 1 else ''}"
    assert _fault("jit", size, off, width) == ref


@pytest.mark.parametrize(
    "size, off, width", [(16, 0, 8), (16, 8, 8), (16, 15, 1), (16, 14, 2), (3, 2, 1), (3, 0, 2)]
)
def test_writes_inside_the_record_run(size, off, width):
    ref = _fault("interp", size, off, width)
    assert ref[0] == "ok"
    assert _fault("jit", size, off, width) == ref


def _write_after_commit(helper: int, again: int) -> Callable:
    """Reserve 16 bytes, write them, submit/discard, then write ``record + again``."""

    def prog(rb_fd: int) -> list:
        return [
            ld_map_fd(R1, rb_fd),
            mov64(R2, 16),
            mov64(R3, 0),
            call(RESERVE),
            jeq(R0, 0, "out"),
            mov64(R6, R0),
            st(8, R6, 0, 0x11),  # fills r6's region cache with the record
            st(8, R6, 8, 0x22),
            mov64(R1, R6),
            mov64(R2, 0),
            call(helper),
            st(8, R6, again, 0x33),  # the record is gone
            mov64(R0, 1),
            Label("out"),
            exit_(),
        ]

    return prog


@pytest.mark.parametrize("helper", [SUBMIT, DISCARD])
@pytest.mark.parametrize("again", [0, 8])
def test_write_after_submit_faults(helper, again):
    prog = _write_after_commit(helper, again)
    ref = _fault("interp", 0, 0, prog=prog)
    assert ref[0] == "fault" and ref[2] == "invalid write of 8 bytes" and ref[3] == again
    assert ref[4] == 0  # nothing outstanding
    assert _fault("jit", 0, 0, prog=prog) == ref


def test_write_to_an_earlier_record_after_a_new_reserve_faults():
    """Two records in a row: after the first is submitted, a write through its pointer
    faults even though the second one (reserved later) is live and close by."""

    def prog(rb_fd: int) -> list:
        return [
            ld_map_fd(R1, rb_fd),
            mov64(R2, 16),
            mov64(R3, 0),
            call(RESERVE),
            jeq(R0, 0, "out"),
            mov64(R6, R0),
            st(8, R6, 0, 1),
            mov64(R1, R6),
            mov64(R2, 0),
            call(SUBMIT),
            ld_map_fd(R1, rb_fd),
            mov64(R2, 16),
            mov64(R3, 0),
            call(RESERVE),
            jeq(R0, 0, "out"),
            mov64(R7, R0),
            st(8, R7, 8, 2),  # the live record
            st(8, R6, 8, 3),  # the submitted one: fault
            Label("out"),
            exit_(),
        ]

    ref = _fault("interp", 0, 0, prog=prog)
    assert ref[0] == "fault" and ref[3] == 8 and ref[4] == 1
    assert _fault("jit", 0, 0, prog=prog) == ref


def _python_reads_the_record(rb_fd: int, ptrs_fd: int, hash_fd: int) -> list:
    """Reserve 24 bytes, fill them, then hand the record to helpers that Python serves:
    probe_read_kernel from it, map updates with key and value in it, output of it."""
    return [
        ld_map_fd(R1, rb_fd),
        mov64(R2, 24),
        mov64(R3, 0),
        call(RESERVE),
        jeq(R0, 0, "out"),
        mov64(R6, R0),
        lddw(R1, 0x1122334455667788),
        stx(8, R6, 0, R1),
        st(8, R6, 8, 7),
        st(8, R6, 16, 0x0BADCAFE),
        mov64(R1, R10),  # probe_read_kernel(fp - 24, 24, record)
        add64(R1, -24),
        mov64(R2, 24),
        mov64(R3, R6),
        call(113),
        mov64(R9, R0),
        ldx(8, R8, R10, -24),
        ldx(8, R1, R10, -16),
        add64(R8, R1),
        ldx(8, R1, R10, -8),
        add64(R8, R1),
        st(4, R10, -28, 3),  # ptrs[3] = record[16..24] (an array update from the record)
        ld_map_fd(R1, ptrs_fd),
        mov64(R2, R10),
        add64(R2, -28),
        mov64(R3, R6),
        add64(R3, 16),
        mov64(R4, 0),
        call(2),
        add64(R9, R0),
        ld_map_fd(R1, hash_fd),  # hash[record[8..12]] = record[0..8] (an insert)
        mov64(R2, R6),
        add64(R2, 8),
        mov64(R3, R6),
        mov64(R4, 0),
        call(2),
        add64(R9, R0),
        ld_map_fd(R1, rb_fd),  # output(rb, record + 4, 13)
        mov64(R2, R6),
        add64(R2, 4),
        mov64(R3, 13),
        mov64(R4, 0),
        call(OUTPUT),
        add64(R9, R0),
        mov64(R1, R6),
        mov64(R2, 0),
        call(SUBMIT),
        mov64(R0, R8),
        add64(R0, R9),
        Label("out"),
        exit_(),
    ]


def test_python_helpers_read_native_records():
    out = {}
    for engine in ENGINES:
        rt, rb, ptrs = _runtime()
        h = rt.create_map("h", MapType.HASH, 4, 8, 16)
        p = _load(rt, _python_reads_the_record(rb.fd, ptrs.fd, h.fd))
        if engine == "jit":
            calls = count_python_calls(p, engine, ids=(113, 2, OUTPUT, RESERVE))
        rets = [p.test_run(data=bytes(64), engine=engine).retval for _ in range(3)]
        out[engine] = (
            rets,
            rb.consume(),
            ptrs.lookup((3).to_bytes(4, "little")),
            h.lookup((7).to_bytes(4, "little")),
            state(rb),
        )
        rt.close()
    assert out["jit"] == out["interp"]
    rets, recs, arr, hv, _ = out["jit"]
    assert rets[0] == (0x1122334455667788 + 7 + 0x0BADCAFE) & 0xFFFFFFFF
    assert arr == (0x0BADCAFE).to_bytes(8, "little") and hv == (0x1122334455667788).to_bytes(
        8, "little"
    )
    assert (
        len(recs) == 6
        and recs[1]
        == (0x1122334455667788).to_bytes(8, "little")[4:] + (7).to_bytes(8, "little") + b"\xfe"
    )
    # the reserve stayed native; what reads the record went to Python
    assert not calls.get(RESERVE) and calls[113] == 3 and calls[OUTPUT] == 3 and calls[2] == 6


def test_held_native_record_is_a_region_between_runs():
    """A record a JIT run reserved and left outstanding is a Region until it is
    committed: the interpreter and Python reach exactly its bytes, as with their own."""
    rt, rb, ptrs = _runtime()
    hold = _load(rt, _reserve_only(rb.fd, ptrs.fd, 21), "hold")
    hold.test_run(data=bytes(64), engine="jit")
    addr = int.from_bytes(ptrs.lookup(bytes(4)), "little")
    assert addr in rb.native_reserved()
    r = rt.space.find(addr, 21)
    assert r is not None and r.base == addr and r.size == 21
    assert rt.space.find(addr, 22) is None and rt.space.find(addr - 8, 8) is None

    def poke(off: int, width: int) -> list:
        return [
            st(4, R10, -4, 0),
            ld_map_fd(R1, ptrs.fd),
            mov64(R2, R10),
            add64(R2, -4),
            call(1),
            ldx(8, R6, R0, 0),
            st(width, R6, off, 0x44),
            mov64(R0, 0),
            exit_(),
        ]

    for engine in ENGINES:
        ok = _load(rt, poke(20, 1), f"ok{engine}")
        assert ok.test_run(data=bytes(64), engine=engine).retval == 0
        bad = _load(rt, poke(20, 2), f"bad{engine}")
        with pytest.raises(RuntimeFault, match="invalid write of 2 bytes") as e:
            bad.test_run(data=bytes(64), engine=engine)
        assert e.value.address == addr + 20
    assert rb.commit(addr)
    assert rt.space.find(addr, 1) is None
    assert rb.consume() == [(0x5A5A).to_bytes(8, "little") + bytes(12) + b"\x44"]
    for engine in ENGINES:  # gone for both engines
        with pytest.raises(RuntimeFault, match="invalid write of 1 byte"):
            _load(rt, poke(0, 1), f"gone{engine}").test_run(data=bytes(64), engine=engine)
    rt.close()
