"""Map, iteration, tail-call, ring-buffer, perf-output and spin-lock helpers.

Helpers are ``fn(env, r1, r2, r3, r4, r5) -> int`` with the kernel's argument order and
return codes. ``env`` is the program's :class:`~bpfkit.vm.runtime.VMEnv`: ``env.runtime``
owns the maps (``maps_by_addr``), ``env.run`` is the current run's state.
"""

from __future__ import annotations

import errno

from ..errors import RuntimeFault
from .helpers import HelperRegistry
from .maps import MAX_TAIL_CALL_CNT, ProgArrayMap, RingBufMap, VMMap
from .maps.perf_event import PerfEventArrayMap
from .maps.ringbuf import FORCE_WAKEUP, NO_WAKEUP
from .memory import WRITE

__all__ = ["HELPERS", "TailCall", "BPF_MAX_LOOPS"]

HELPERS = HelperRegistry()
M64 = (1 << 64) - 1
BPF_MAX_LOOPS = 1 << 23
F_INDEX_MASK = 0xFFFFFFFF
F_CTXLEN_MASK = 0xFFFFF << 32


def neg(e: int) -> int:
    return (-e) & M64


class TailCall(Exception):  # noqa: N818 - control flow, not an error
    """Raised by ``bpf_tail_call``: the run continues in ``target`` with context ``ctx``."""

    def __init__(self, target: object, ctx: int) -> None:
        super().__init__("tail call")
        self.target = target
        self.ctx = ctx


def _map(env, addr: int) -> VMMap | None:
    return env.runtime.maps_by_addr.get(addr)


def _bad_map(addr: int) -> RuntimeFault:
    return RuntimeFault(f"helper called with {addr:#x}, which is not a map", address=addr)


# ---- element access -------------------------------------------------------------------
@HELPERS.register("map_lookup_elem")
def map_lookup_elem(env, r1, r2, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    return m.prog_lookup(r2)


def _writable(m: VMMap, helper: str) -> VMMap:
    """``m``, if programs may change it: the kernel refuses ``update``/``delete``/
    ``push``/``pop`` on a map read-only for programs ("write into map forbidden")."""
    if not m.prog_perms & WRITE:
        raise RuntimeFault(
            f"write into map forbidden: bpf_{helper} on map {m.name!r}, "
            "which is read-only for programs (BPF_F_RDONLY_PROG)",
            address=m.addr,
        )
    return m


@HELPERS.register("map_update_elem")
def map_update_elem(env, r1, r2, r3, r4, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    return _writable(m, "map_update_elem").prog_update(r2, r3, r4) & M64


@HELPERS.register("map_delete_elem")
def map_delete_elem(env, r1, r2, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    return _writable(m, "map_delete_elem").prog_delete(r2) & M64


@HELPERS.register("map_push_elem")
def map_push_elem(env, r1, r2, r3, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    return _writable(m, "map_push_elem").prog_push(r2, r3) & M64


@HELPERS.register("map_pop_elem")
def map_pop_elem(env, r1, r2, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    return _writable(m, "map_pop_elem").prog_pop(r2) & M64


@HELPERS.register("map_peek_elem")
def map_peek_elem(env, r1, r2, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    return m.prog_peek(r2) & M64


@HELPERS.register("map_lookup_percpu_elem")
def map_lookup_percpu_elem(env, r1, r2, r3, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    return m.prog_lookup_percpu(r2, r3 & 0xFFFFFFFF)


# ---- iteration ------------------------------------------------------------------------
@HELPERS.register("for_each_map_elem")
def for_each_map_elem(env, r1, r2, r3, r4, *_):
    m = _map(env, r1)
    if m is None:
        raise _bad_map(r1)
    if r4:
        return neg(errno.EINVAL)
    n = 0
    for key_addr, value_addr in m.prog_items():
        n += 1
        if env.call_function(r2, m.addr, key_addr, value_addr, r3, 0) & M64:
            break
    return n


@HELPERS.register("loop")
def loop(env, r1, r2, r3, r4, *_):
    nr = r1 & 0xFFFFFFFF
    if r4:
        return neg(errno.EINVAL)
    if nr > BPF_MAX_LOOPS:
        # the kernel inlines bpf_loop when flags is 0; its inlined check sets a 32-bit -E2BIG
        return neg(errno.E2BIG) & 0xFFFFFFFF
    call = env.call_function
    for i in range(nr):
        if call(r2, i, r3, 0, 0, 0) & M64:
            return i + 1
    return nr


# ---- tail calls -----------------------------------------------------------------------
@HELPERS.register("tail_call")
def tail_call(env, r1, r2, r3, *_):
    m = _map(env, r2)
    if not isinstance(m, ProgArrayMap):
        raise _bad_map(r2)
    target = m.get(r3 & 0xFFFFFFFF)
    run = env.run
    if target is None or run.tail_calls >= MAX_TAIL_CALL_CNT:
        return neg(errno.ENOENT)
    run.tail_calls += 1
    raise TailCall(target, r1)


# ---- ring buffer ----------------------------------------------------------------------
# The JIT calls native twins of these (bpfkit.jit.hot) and comes here only for what they
# leave to Python; a record a native reserve handed out points into the ring's alias
# mapping, and RingBufMap.commit accepts it like one reserved here.
def _ringbuf(env, addr: int) -> RingBufMap:
    m = _map(env, addr)
    if not isinstance(m, RingBufMap):
        raise _bad_map(addr)
    return m


@HELPERS.register("ringbuf_output")
def ringbuf_output(env, r1, r2, r3, r4, *_):
    rb = _ringbuf(env, r1)
    if r4 & ~(NO_WAKEUP | FORCE_WAKEUP):
        return neg(errno.EINVAL)
    return rb.output(env.runtime.space.read(r2, r3)) & M64


@HELPERS.register("ringbuf_reserve")
def ringbuf_reserve(env, r1, r2, r3, *_):
    rb = _ringbuf(env, r1)
    if r3:
        return 0
    return rb.reserve(r2)


def _commit(env, addr: int, flags: int, discard: bool) -> int:
    for rb in env.runtime.ringbufs:
        if rb.commit(addr, discard):
            return 0
    raise RuntimeFault(
        f"ring buffer {'discard' if discard else 'submit'} of {addr:#x}, "
        "which is not a reserved record",
        address=addr,
    )


@HELPERS.register("ringbuf_submit")
def ringbuf_submit(env, r1, r2, *_):
    return _commit(env, r1, r2, False)


@HELPERS.register("ringbuf_discard")
def ringbuf_discard(env, r1, r2, *_):
    return _commit(env, r1, r2, True)


@HELPERS.register("ringbuf_query")
def ringbuf_query(env, r1, r2, *_):
    return _ringbuf(env, r1).query(r2) & M64


# ---- perf event output ----------------------------------------------------------------
@HELPERS.register("perf_event_output")
def perf_event_output(env, r1, r2, r3, r4, r5):
    m = _map(env, r2)
    if not isinstance(m, PerfEventArrayMap):
        raise _bad_map(r2)
    data = env.runtime.space.read(r4, r5)
    pkt = env.run.packet if env.run is not None else None
    if pkt is not None:  # skb/xdp flavour: the upper bits ask for packet bytes too
        if r3 & ~(F_CTXLEN_MASK | F_INDEX_MASK):
            return neg(errno.EINVAL)
        ctxlen = (r3 & F_CTXLEN_MASK) >> 32
        if ctxlen:
            if ctxlen > pkt.length:
                return neg(errno.EFAULT)
            data += pkt.read(0, ctxlen)
    elif r3 & ~F_INDEX_MASK:
        return neg(errno.EINVAL)
    return m.output(r3 & F_INDEX_MASK, data) & M64


# ---- spin locks -----------------------------------------------------------------------
@HELPERS.register("spin_lock")
def spin_lock(env, r1, *_):
    space = env.runtime.space
    if space.load(r1, 4):
        raise RuntimeFault(f"bpf_spin_lock at {r1:#x} is already held (deadlock)", address=r1)
    space.store(r1, 4, 1)
    return 0


@HELPERS.register("spin_unlock")
def spin_unlock(env, r1, *_):
    env.runtime.space.store(r1, 4, 0)
    return 0
