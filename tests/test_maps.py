"""VM maps: the kernel's flags, errors, iteration, pointers — and agreement with the kernel."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from bpfkit.errors import RuntimeFault
from bpfkit.uapi.enums import MapType
from bpfkit.vm.maps import (
    ANY,
    EXIST,
    F_NO_PREALLOC,
    NOEXIST,
    MapContext,
    MapError,
    create_map,
)
from bpfkit.vm.maps.ringbuf import BUSY_BIT

u32 = struct.Struct("<I").pack
u64 = struct.Struct("<Q").pack


def mk(t, ks, vs, n, flags=0, ncpus=2, **kw):
    return create_map(t, ks, vs, n, flags, name="m", ctx=MapContext(ncpus=ncpus), **kw)


def errno_of(fn, *a):
    try:
        r = fn(*a)
    except MapError as e:
        return ("err", e.errno)
    return ("ok", r)


# ---- array ---------------------------------------------------------------------------
def test_array_semantics():
    m = mk(MapType.ARRAY, 4, 4, 3)
    assert m.lookup(u32(2)) == bytes(4)
    m.update(u32(1), u32(7))
    assert m.lookup(u32(1)) == u32(7)
    assert errno_of(m.update, u32(3), u32(1)) == ("err", errno.E2BIG)
    assert errno_of(m.update, u32(0), u32(1), NOEXIST) == ("err", errno.EEXIST)
    assert errno_of(m.update, u32(0), u32(1), 3) == ("err", errno.EINVAL)
    assert errno_of(m.delete, u32(0)) == ("err", errno.EINVAL)
    assert errno_of(m.lookup, u32(5)) == ("err", errno.ENOENT)
    assert list(m.keys()) == [u32(0), u32(1), u32(2)]
    assert m.get_next_key(None) == u32(0)
    assert m.get_next_key(u32(99)) == u32(0)
    assert errno_of(m.get_next_key, u32(2)) == ("err", errno.ENOENT)


def test_array_create_checks():
    with pytest.raises(MapError) as e:
        mk(MapType.ARRAY, 8, 4, 1)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(MapError):
        mk(MapType.HASH, 4, 4, 0)


def test_array_pointer_is_shared_with_python():
    m = mk(MapType.ARRAY, 4, 8, 4)
    key = m.space.add(
        __import__("bpfkit.vm.memory", fromlist=["Region"]).Region.alloc("k", 4, init=u32(2))
    )
    p = m.prog_lookup(key.base)
    assert p and m.space.load(p, 8) == 0
    m.space.store(p, 8, 0x1122)
    assert m.lookup(u32(2)) == u64(0x1122)
    m.update(u32(2), u64(5))
    assert m.space.load(p, 8) == 5


def test_percpu_array():
    m = mk(MapType.PERCPU_ARRAY, 4, 4, 2, ncpus=3)
    assert len(m.lookup(u32(0))) == 3 * 8
    m.update(u32(0), u32(9))  # one value: every CPU
    assert m.lookup(u32(0)) == (u32(9) + bytes(4)) * 3
    k = m.space.add(_region(u32(0)))
    m.ctx.cpu = 1
    p1 = m.prog_lookup(k.base)
    m.space.store(p1, 4, 42)
    m.ctx.cpu = 2
    assert m.space.load(m.prog_lookup(k.base), 4) == 9
    assert m.lookup(u32(0)) == u32(9) + bytes(4) + u32(42) + bytes(4) + u32(9) + bytes(4)
    assert m.prog_lookup_percpu(k.base, 1) == p1
    assert m.prog_lookup_percpu(k.base, 3) == 0


def _region(data: bytes):
    from bpfkit.vm.memory import Region

    return Region.alloc("scratch", len(data), init=data)


# ---- hash ----------------------------------------------------------------------------
def test_hash_flags_and_full():
    m = mk(MapType.HASH, 4, 4, 2)
    assert errno_of(m.update, u32(1), u32(1), EXIST) == ("err", errno.ENOENT)
    m.update(u32(1), u32(1), NOEXIST)
    assert errno_of(m.update, u32(1), u32(2), NOEXIST) == ("err", errno.EEXIST)
    m.update(u32(1), u32(2), EXIST)
    m.update(u32(2), u32(3))
    assert errno_of(m.update, u32(3), u32(3)) == ("err", errno.E2BIG)
    m.update(u32(2), u32(4))  # replacing in a full map is fine
    assert errno_of(m.delete, u32(9)) == ("err", errno.ENOENT)
    m.delete(u32(1))
    m.update(u32(3), u32(5))
    assert sorted(m.keys()) == [u32(2), u32(3)]
    assert len(m) == 2
    assert m.lookup_and_delete(u32(3)) == u32(5)
    assert len(m) == 1


def test_hash_iteration_is_stable_while_deleting():
    m = mk(MapType.HASH, 4, 4, 100)
    for i in range(50):
        m.update(u32(i), u32(i))
    seen = []
    key = None
    prev = None
    while True:
        try:
            key = m.get_next_key(key)
        except MapError:
            break
        seen.append(key)
        if prev is not None and struct.unpack("<I", prev)[0] % 3 == 0:
            m.delete(prev)  # deleting behind the cursor does not disturb the walk
        if struct.unpack("<I", key)[0] == 10:
            m.update(u32(1000), u32(0))  # neither does inserting
        prev = key
    assert seen[:50] == [u32(i) for i in range(50)] and seen[50:] == [u32(1000)]
    assert m.get_next_key(u32(7777)) == u32(1)  # an unknown key restarts at the first


def test_hash_pointer_dies_with_element():
    m = mk(MapType.HASH, 4, 8, 4)
    m.update(u32(1), u64(77))
    k = m.space.add(_region(u32(1)))
    p = m.prog_lookup(k.base)
    assert m.space.load(p, 8) == 77
    m.space.store(p, 8, 78)
    assert m.lookup(u32(1)) == u64(78)
    m.delete(u32(1))
    with pytest.raises(RuntimeFault):
        m.space.load(p, 8)
    assert m.prog_lookup(k.base) == 0


def test_percpu_hash_and_prog_update():
    m = mk(MapType.PERCPU_HASH, 4, 8, 4, ncpus=2)
    k = m.space.add(_region(u32(5)))
    v = m.space.add(_region(u64(3)))
    m.ctx.cpu = 1
    assert m.prog_update(k.base, v.base, ANY) == 0
    assert m.lookup(u32(5)) == u64(0) + u64(3)
    assert m.prog_update(k.base, v.base, NOEXIST) == -errno.EEXIST
    assert m.prog_delete(k.base) == 0
    assert m.prog_delete(k.base) == -errno.ENOENT


def test_lru_evicts_least_recently_used():
    m = mk(MapType.LRU_HASH, 4, 4, 3)
    for i in range(3):
        m.update(u32(i), u32(i))
    k0 = m.space.add(_region(u32(0)))
    assert m.prog_lookup(k0.base)  # 0 becomes most recent
    m.update(u32(3), u32(3))  # evicts 1
    assert sorted(m.keys()) == [u32(0), u32(2), u32(3)]
    assert m.evictions == 1


# ---- queue / stack / bloom -----------------------------------------------------------
def test_queue_and_stack():
    q = mk(MapType.QUEUE, 0, 4, 2)
    s = mk(MapType.STACK, 0, 4, 2)
    for m in (q, s):
        assert errno_of(m.pop) == ("err", errno.ENOENT)
        m.push(u32(1))
        m.push(u32(2))
        assert errno_of(m.push, u32(3)) == ("err", errno.E2BIG)
        m.push(u32(3), EXIST)  # overwrite the oldest (1)
    assert q.pop() == u32(2) and q.pop() == u32(3)
    assert s.peek() == u32(3) and s.pop() == u32(3) and s.pop() == u32(2)
    assert errno_of(q.push, u32(1), NOEXIST) == ("err", errno.EINVAL)


def test_bloom_filter():
    b = mk(MapType.BLOOM_FILTER, 0, 4, 100, map_extra=3)
    for i in range(50):
        b.push(u32(i))
    assert all(b.contains(u32(i)) for i in range(50))
    fp = sum(b.contains(u32(i)) for i in range(1000, 2000))
    assert fp < 100
    assert errno_of(b.pop) == ("err", errno.EOPNOTSUPP)


# ---- LPM trie ------------------------------------------------------------------------
def lpm_key(plen: int, ip: str) -> bytes:
    return u32(plen) + bytes(int(x) for x in ip.split("."))


def test_lpm_trie_longest_match_and_order():
    m = mk(MapType.LPM_TRIE, 8, 4, 10, F_NO_PREALLOC)
    m.update(lpm_key(16, "192.168.0.0"), u32(16))
    m.update(lpm_key(24, "192.168.0.0"), u32(24))
    m.update(lpm_key(24, "192.168.1.0"), u32(241))
    m.update(lpm_key(24, "192.168.128.0"), u32(2428))
    assert m.lookup(lpm_key(32, "192.168.1.7")) == u32(241)
    assert m.lookup(lpm_key(32, "192.168.7.7")) == u32(16)
    assert m.lookup(lpm_key(20, "192.168.1.7")) == u32(16)
    assert errno_of(m.lookup, lpm_key(32, "10.0.0.1")) == ("err", errno.ENOENT)
    order = list(m.keys())
    assert order == [
        lpm_key(24, "192.168.0.0"),
        lpm_key(24, "192.168.1.0"),
        lpm_key(24, "192.168.128.0"),
        lpm_key(16, "192.168.0.0"),
    ]
    assert errno_of(m.update, lpm_key(33, "1.1.1.1"), u32(0)) == ("err", errno.EINVAL)
    assert errno_of(m.delete, lpm_key(8, "10.0.0.0")) == ("err", errno.ENOENT)
    with pytest.raises(MapError):
        mk(MapType.LPM_TRIE, 8, 4, 10)  # needs BPF_F_NO_PREALLOC


def test_lpm_trie_full_is_enospc():
    m = mk(MapType.LPM_TRIE, 8, 4, 1, F_NO_PREALLOC)
    m.update(lpm_key(8, "10.0.0.0"), u32(1))
    assert errno_of(m.update, lpm_key(8, "11.0.0.0"), u32(1)) == ("err", errno.ENOSPC)


# ---- ring buffer ---------------------------------------------------------------------
def test_ringbuf_reserve_submit_discard_and_wrap():
    rb = mk(MapType.RINGBUF, 0, 0, 4096)
    a = rb.reserve(10)
    b = rb.reserve(20)
    rb.space.write(a, b"A" * 10)
    rb.space.write(b, b"B" * 20)
    rb.commit(b)
    assert rb.consume() == []  # a is still busy
    rb.commit(a, discard=True)
    assert rb.consume() == [b"B" * 20]
    with pytest.raises(RuntimeFault):
        rb.space.write(b, b"x")  # a submitted record is no longer writable
    # wrap around many times; records come out whole and in order
    got = []
    for i in range(500):
        assert rb.output(bytes([i % 256]) * (i % 97 + 1)) == 0
        got += rb.consume()
    assert got == [bytes([i % 256]) * (i % 97 + 1) for i in range(500)]
    assert rb.query(1) == 4096


def test_ringbuf_full():
    rb = mk(MapType.RINGBUF, 0, 0, 4096)
    n = 0
    while rb.output(b"x" * 100) == 0:
        n += 1
    assert n == 4095 // 112
    assert rb.output(b"x" * 100) == -errno.EAGAIN
    assert rb.output(b"y") == 0  # a small record still fits
    first = rb.mv[0:4].tobytes()
    assert not struct.unpack("<I", first)[0] & BUSY_BIT
    assert len(rb.consume()) == n + 1


def test_ringbuf_create_checks():
    for size in (1000, 4096 * 3):
        with pytest.raises(MapError):
            mk(MapType.RINGBUF, 0, 0, size)


# ---- fd arrays, maps of maps, perf event array ---------------------------------------
def test_map_in_map():
    ctx = MapContext()
    tmpl = create_map(MapType.ARRAY, 4, 4, 2, ctx=ctx, name="tmpl")
    inner = create_map(MapType.ARRAY, 4, 4, 2, ctx=ctx, name="inner")
    bad = create_map(MapType.ARRAY, 4, 8, 2, ctx=ctx, name="bad")
    outer = create_map(MapType.ARRAY_OF_MAPS, 4, 4, 4, ctx=ctx, name="outer", inner=tmpl)
    outer.update(u32(1), u32(inner.fd))
    assert outer.lookup(u32(1)) == u32(inner.id)
    assert errno_of(outer.update, u32(2), u32(bad.fd)) == ("err", errno.EINVAL)
    assert errno_of(outer.update, u32(2), u32(9999)) == ("err", errno.EBADF)
    k = ctx.space.add(_region(u32(1)))
    assert outer.prog_lookup(k.base) == inner.addr
    h = create_map(MapType.HASH_OF_MAPS, 4, 4, 4, ctx=ctx, name="houter", inner=tmpl)
    h.update(u32(1), inner)
    assert h.prog_lookup(k.base) == inner.addr
    h.delete(u32(1))
    assert h.prog_lookup(k.base) == 0


def test_perf_event_array():
    m = mk(MapType.PERF_EVENT_ARRAY, 4, 4, 2)
    assert m.output(0xFFFFFFFF, b"abc") == -errno.ENOENT
    m.open()
    assert m.output(0xFFFFFFFF, b"abc") == 0
    assert m.output(5, b"abc") == -errno.E2BIG
    recs = m.read()
    assert [(r.cpu, r.data) for r in recs] == [(0, b"abc\0")]


# ---- agreement with the kernel -------------------------------------------------------
def _kernel_ops(fd, ks, vs):
    from bpfkit.kernel import sys as ks_

    def run(op, *a):
        try:
            if op == "update":
                ks_.map_update(fd, a[0], a[1], a[2] if len(a) > 2 else 0)
                return ("ok", None)
            if op == "lookup":
                v = ks_.map_lookup(fd, a[0], vs)
                return ("err", errno.ENOENT) if v is None else ("ok", v)
            if op == "delete":
                ks_.map_delete(fd, a[0])
                return ("ok", None)
            if op == "push":
                ks_.map_update(fd, None, a[0], a[1] if len(a) > 1 else 0)
                return ("ok", None)
            if op == "pop":
                v = ks_.map_lookup_and_delete(fd, None, vs)
                return ("err", errno.ENOENT) if v is None else ("ok", v)
            if op == "keys":
                return ("ok", sorted(ks_.map_keys(fd, ks)))
        except OSError as e:
            return ("err", e.errno)
        raise AssertionError(op)

    return run


def _vm_ops(m):
    def run(op, *a):
        try:
            if op == "update":
                m.update(a[0], a[1], a[2] if len(a) > 2 else 0)
                return ("ok", None)
            if op == "lookup":
                return ("ok", m.lookup(a[0]))
            if op == "delete":
                m.delete(a[0])
                return ("ok", None)
            if op == "push":
                m.push(a[0], a[1] if len(a) > 1 else 0)
                return ("ok", None)
            if op == "pop":
                return ("ok", m.pop())
            if op == "keys":
                return ("ok", sorted(m.keys()))
        except MapError as e:
            return ("err", e.errno)
        raise AssertionError(op)

    return run


SCRIPTS = {
    "array": (
        (MapType.ARRAY, 4, 8, 4, 0),
        [
            ("update", u32(1), u64(5)),
            ("update", u32(4), u64(1)),
            ("update", u32(0), u64(1), 1),
            ("update", u32(0), u64(1), 3),
            ("delete", u32(1)),
            ("lookup", u32(1)),
            ("lookup", u32(9)),
            ("update", u32(2), u64(9), 2),
            ("keys",),
        ],
    ),
    "hash": (
        (MapType.HASH, 4, 4, 3, 0),
        [
            ("update", u32(1), u32(1), 2),
            ("update", u32(1), u32(1)),
            ("update", u32(1), u32(2), 1),
            ("update", u32(2), u32(2)),
            ("update", u32(3), u32(3)),
            ("update", u32(4), u32(4)),
            ("delete", u32(9)),
            ("delete", u32(2)),
            ("update", u32(4), u32(4)),
            ("lookup", u32(4)),
            ("lookup", u32(2)),
            ("keys",),
            ("update", u32(4), u32(5), 4),
        ],
    ),
    "percpu_hash": (
        (MapType.PERCPU_HASH, 4, 4, 2, 0),
        [
            ("update", u32(1), u32(7) + bytes(4) + u32(8) + bytes(4)),
            ("lookup", u32(1)),
            ("update", u32(2), u32(1) * 4),
            ("update", u32(3), u32(1) * 4),
            ("keys",),
        ],
    ),
    "lru_hash": (
        (MapType.LRU_HASH, 4, 4, 64, 0),
        [
            # the kernel's LRU is approximate (it may evict before the map is full), so only
            # the most recent elements are compared
            *[("update", u32(i), u32(i)) for i in range(64)],
            ("lookup", u32(63)),
            ("update", u32(63), u32(1), 1),
            ("update", u32(999), u32(1), 2),
            ("delete", u32(62)),
        ],
    ),
    "queue": (
        (MapType.QUEUE, 0, 4, 2, 0),
        [
            ("pop",),
            ("push", u32(1)),
            ("push", u32(2)),
            ("push", u32(3)),
            ("push", u32(3), 2),
            ("push", u32(4), 1),
            ("pop",),
            ("pop",),
            ("pop",),
        ],
    ),
    "stack": (
        (MapType.STACK, 0, 4, 2, 0),
        [
            ("push", u32(1)),
            ("push", u32(2)),
            ("push", u32(3), 2),
            ("pop",),
            ("pop",),
            ("pop",),
        ],
    ),
    "lpm": (
        (MapType.LPM_TRIE, 8, 4, 3, F_NO_PREALLOC),
        [
            ("update", lpm_key(8, "10.0.0.0"), u32(8)),
            ("update", lpm_key(24, "10.1.2.0"), u32(24)),
            ("lookup", lpm_key(32, "10.1.2.3")),
            ("lookup", lpm_key(32, "10.9.9.9")),
            ("lookup", lpm_key(32, "11.1.1.1")),
            ("update", lpm_key(33, "1.1.1.1"), u32(1)),
            ("update", lpm_key(8, "10.0.0.0"), u32(9), 1),
            ("update", lpm_key(9, "10.0.0.0"), u32(9), 2),
            ("update", lpm_key(16, "10.1.0.0"), u32(16)),
            ("update", lpm_key(12, "10.1.0.0"), u32(1)),
            ("delete", lpm_key(8, "10.0.0.0")),
            ("delete", lpm_key(8, "10.0.0.0")),
            ("keys",),
        ],
    ),
}


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_syscall_semantics_match_kernel(name):
    from bpfkit.kernel import sys as ks_

    (t, ksz, vsz, n, flags), ops = SCRIPTS[name]
    ncpus = ks_.possible_cpus()
    percpu = t in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH)
    if percpu:
        ops = [
            (o[0], o[1], o[2][:8] * ncpus, *o[3:]) if o[0] == "update" and len(o[2]) > 8 else o
            for o in ops
        ]
    fd = ks_.map_create(t, ksz, vsz, n, flags)
    try:
        kern = _kernel_ops(fd, ksz, ((vsz + 7) & ~7) * ncpus if percpu else vsz)
        vm = _vm_ops(create_map(t, ksz, vsz, n, flags, name="m", ctx=MapContext(ncpus=ncpus)))
        for op in ops:
            assert vm(*op) == kern(*op), op
    finally:
        os.close(fd)
