"""Kernel agreement: every example runs in the running kernel and in the VM alike.

The same ``ObjectSpec`` is loaded twice: into the VM with ``bpfkit.load`` and into the
kernel through the minimal ``bpf()`` plumbing below (maps created with
``bpfkit.kernel.sys``, map references relocated to their fds, BTF and func info for
programs with callbacks, prog arrays filled). Each scenario runs the same inputs through
``BPF_PROG_TEST_RUN`` on both; retval, data_out, map contents and ring-buffer records
must be equal. Under ``BPFKIT_REQUIRE_KERNEL=1`` these tests cannot skip.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from contextlib import contextmanager

import pytest
from test_examples import (
    NAMES,
    PACKETS,
    TAIL_CHAIN_C,
    build_example,
    build_source,
    ip_key,
    ipv4,
    tcp,
)

import bpfkit
from bpfkit.isa import opcodes as op
from bpfkit.obj import load_object
from bpfkit.uapi.enums import MapType, ProgType

pytestmark = pytest.mark.kernel

PAGE = mmap.PAGESIZE


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("examples_kernel")
    return {n: build_example(n, d) for n in NAMES}


PERCPU = {MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH}


# ---- a minimal kernel loader --------------------------------------------------------
class KernelObject:
    """An ObjectSpec loaded into the kernel with raw ``bpf()`` calls."""

    def __init__(self, spec) -> None:
        from bpfkit.kernel import sys as ks

        self.ks = ks
        self.spec = spec
        self.fds: list[int] = []
        self.ncpus = ks.possible_cpus()
        self.maps: dict[str, tuple[int, object]] = {}
        self.progs: dict[str, int] = {}
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _fd(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def _load(self) -> None:
        ks, spec = self.ks, self.spec
        btf_fd = 0
        if spec.btf is not None and any(p.func_info for p in spec.programs.values()):
            btf_fd = self._fd(ks.btf_load(spec.btf_bytes()))
        for ms in spec.maps.values():
            inner = 0
            if ms.inner_map is not None:
                im = ms.inner_map
                inner = self._fd(
                    ks.map_create(im.type, im.key_size, im.value_size, im.max_entries, im.flags)
                )
            n = ms.max_entries or (self.ncpus if ms.type == MapType.PERF_EVENT_ARRAY else 0)
            name = "".join(c for c in ms.name if c.isalnum() or c in "_.")[:15]
            fd = self._fd(
                ks.map_create(
                    ms.type,
                    ms.key_size,
                    ms.value_size,
                    n,
                    ms.flags,
                    name=name,
                    inner_map_fd=inner,
                    map_extra=ms.map_extra,
                )
            )
            if ms.contents is not None:
                ks.map_update(fd, bytes(4), bytes(ms.contents).ljust(ms.value_size, b"\0"))
            if ms.frozen:
                ks.map_freeze(fd)
            self.maps[ms.name] = (fd, ms)
        for ps in spec.programs.values():
            insns = list(ps.instructions)
            for rel in ps.relocations:
                kind = getattr(rel.kind, "value", rel.kind)
                if kind not in ("map", "map_value"):
                    continue
                fd = self.maps[rel.map][0]
                insn = insns[rel.index]
                if kind == "map":
                    insns[rel.index] = insn.with_(src=op.PSEUDO_MAP_FD, imm=fd)
                else:
                    off = insn.imm_hi or rel.offset
                    insns[rel.index] = insn.with_(src=op.PSEUDO_MAP_VALUE, imm=(off << 32) | fd)
            fi = b"".join(struct.pack("<II", f.slot, f.type_id) for f in ps.func_info)
            kw = {}
            if btf_fd and fi:
                kw = {"prog_btf_fd": btf_fd, "func_info": fi, "func_info_rec_size": 8}
            self.progs[ps.name] = self._fd(
                ks.prog_load(
                    int(ps.prog_type),
                    insns,
                    ps.license or spec.license or "GPL",
                    expected_attach_type=int(ps.expected_attach_type or 0),
                    name=ps.name[:15],
                    **kw,
                )
            )
        for ms in spec.maps.values():
            fd = self.maps[ms.name][0]
            for index, target in ms.values.items():
                obj = self.progs[target] if ms.type == MapType.PROG_ARRAY else self.maps[target][0]
                ks.map_update(fd, struct.pack("<I", index), struct.pack("<I", obj))

    def value_size(self, name: str) -> int:
        _fd, ms = self.maps[name]
        if ms.type in PERCPU:
            return ((ms.value_size + 7) & ~7) * self.ncpus
        return ms.value_size

    def snapshot(self, name: str) -> dict[bytes, bytes]:
        fd, ms = self.maps[name]
        out = {}
        for k in self.ks.map_keys(fd, ms.key_size):
            v = self.ks.map_lookup(fd, k, self.value_size(name))
            if v is not None:
                out[k] = v
        return out

    def ringbuf(self, name: str) -> list[bytes]:
        fd, ms = self.maps[name]
        size = ms.max_entries
        cons = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        prod = mmap.mmap(fd, PAGE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
        try:
            cpos = struct.unpack_from("<Q", cons, 0)[0]
            ppos = struct.unpack_from("<Q", prod, 0)[0]
            out = []
            while cpos < ppos:
                off = PAGE + (cpos & (size - 1))
                word = struct.unpack_from("<I", prod, off)[0]
                if word & (1 << 31):
                    break
                n = word & ~(3 << 30)
                if not word & (1 << 30):
                    out.append(bytes(prod[off + 8 : off + 8 + n]))
                cpos += (n + 8 + 7) & ~7
            struct.pack_into("<Q", cons, 0, cpos)
            return out
        finally:
            cons.close()
            prod.close()

    def close(self) -> None:
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds.clear()


# ---- the two sides ------------------------------------------------------------------
class KernelSide:
    def __init__(self, spec) -> None:
        self.obj = KernelObject(spec)

    def set(self, m: str, key: bytes, value: bytes) -> None:
        self.obj.ks.map_update(self.obj.maps[m][0], key, value)

    def set_prog(self, m: str, index: int, prog: str) -> None:
        self.set(m, struct.pack("<I", index), struct.pack("<I", self.obj.progs[prog]))

    def run(self, prog: str, data: bytes = b"", ctx: bytes | None = None):
        ptype = ProgType(int(self.obj.spec.programs[prog].prog_type))
        if ptype in (ProgType.RAW_TRACEPOINT, ProgType.SYSCALL):
            r = self.obj.ks.prog_test_run(self.obj.progs[prog], ctx=ctx, repeat=0, ctx_out_size=0)
        else:
            r = self.obj.ks.prog_test_run(self.obj.progs[prog], data=data, ctx=ctx)
        return r.retval, r.data_out

    def snapshot(self, m: str) -> dict[bytes, bytes]:
        return self.obj.snapshot(m)

    def ringbuf(self, m: str) -> list[bytes]:
        return self.obj.ringbuf(m)

    def close(self) -> None:
        self.obj.close()


class VMSide:
    def __init__(self, spec) -> None:
        self.obj = bpfkit.load(spec)

    def set(self, m: str, key: bytes, value: bytes) -> None:
        self.obj.maps[m].update_raw(key, value)

    def set_prog(self, m: str, index: int, prog: str) -> None:
        self.obj.maps[m][index] = self.obj.programs[prog]

    def run(self, prog: str, data: bytes = b"", ctx: bytes | None = None):
        r = self.obj.programs[prog].test_run(data, ctx)
        return r.retval, r.data_out

    def snapshot(self, m: str) -> dict[bytes, bytes]:
        return self.obj.maps[m].snapshot()

    def ringbuf(self, m: str) -> list[bytes]:
        return self.obj.maps[m].consume()

    def close(self) -> None:
        self.obj.close()


@contextmanager
def on_cpu0():
    """Pin this process to CPU 0 so per-CPU values land where the VM (cpu 0) puts them."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def agree(spec, scenario: Callable, maps: list[str] = (), ringbufs: list[str] = ()):
    """Run ``scenario(side)`` on the kernel and the VM; everything observable must match."""
    results = {}
    with on_cpu0():
        for name, cls in (("kernel", KernelSide), ("vm", VMSide)):
            side = cls(spec)
            try:
                runs = scenario(side)
                snaps = {m: side.snapshot(m) for m in maps}
                recs = {m: side.ringbuf(m) for m in ringbufs}
                results[name] = (runs, snaps, recs)
            finally:
                side.close()
    k_runs, k_maps, k_recs = results["kernel"]
    v_runs, v_maps, v_recs = results["vm"]
    assert v_runs == k_runs
    for m in maps:
        assert v_maps[m] == k_maps[m], m
    for m in ringbufs:
        assert v_recs[m] == k_recs[m], m
    return results["vm"]


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def spec_of(built, name):
    return load_object(built[name])


# ---- scenarios ----------------------------------------------------------------------
def test_xdp_proto_count_agrees(built):
    short = bytes(12) + b"\x08\x00" + bytes(10)
    runs, snaps, _ = agree(
        spec_of(built, "xdp_proto_count"),
        lambda s: [s.run("count_protocols", p) for p in PACKETS + [short]],
        maps=["counts"],
    )
    assert [r[0] for r in runs] == [2] * 7 + [0]


def test_sockfilter_agrees(built):
    runs, snaps, _ = agree(
        spec_of(built, "sockfilter_http"),
        lambda s: [s.run("keep_http", p) for p in PACKETS],
        maps=["stats"],
    )
    assert runs[0][0] == 40 and runs[0][1][:14] == bytes(14)


def test_pid_counter_agrees(built):
    def scenario(s):
        return [s.run("on_sys_enter", ctx=struct.pack("<QQ", 0, nr)) for nr in (59, 60, 61)]

    _runs, snaps, _ = agree(spec_of(built, "pid_counter"), scenario, maps=["counts"])
    assert snaps["counts"] == {u32(os.getpid()): struct.pack("<QQ", 3, 61)}


def test_ringbuf_agrees(built):
    pkts = PACKETS + [tcp(5, 6, ttl=i) for i in range(40)]
    _runs, _snaps, recs = agree(
        spec_of(built, "ringbuf_events"),
        lambda s: [s.run("produce_events", p) for p in pkts],
        ringbufs=["events"],
    )
    assert len(recs["events"]) == 6 + 40


def test_tail_dispatch_agrees(built):
    def scenario(s):
        out = [s.run("dispatch", p) for p in PACKETS]
        s.set_prog("jmp_table", 47, "handle_udp")
        out.append(s.run("dispatch", ipv4(47)))
        return out

    runs, _, _ = agree(spec_of(built, "tail_dispatch"), scenario, maps=["hits"])
    assert [r[0] for r in runs] == [3, 3, 3, 1, 2, 2, 2, 1]


def test_tail_chain_depth_agrees(tmp_path):
    spec = load_object(build_source(tmp_path, "chain", TAIL_CHAIN_C))

    def scenario(s):
        s.set_prog("self_table", 0, "chain")
        return [s.run("chain", bytes(14))]

    _runs, snaps, _ = agree(spec, scenario, maps=["depth"])
    assert snaps["depth"] == {u32(0): struct.pack("<Q", 34)}


def test_lpm_firewall_agrees(built):
    def key(cidr):
        k = ip_key(cidr)
        return struct.pack("<II", k["prefixlen"], k["addr"])

    def scenario(s):
        s.set("rules", key("10.0.0.0/8"), u32(1))
        s.set("rules", key("10.1.0.0/16"), u32(0))
        s.set("rules", key("192.168.7.7/32"), u32(1))
        srcs = ["10.9.9.9", "10.1.2.3", "192.168.7.7", "192.168.7.8", "8.8.8.8"]
        return [s.run("firewall", tcp(1, 2, src=a)) for a in srcs]

    runs, _, _ = agree(spec_of(built, "lpm_firewall"), scenario, maps=["stats", "rules"])
    assert [r[0] for r in runs] == [1, 2, 1, 2, 2]


def test_globals_loop_agrees(built):
    pkts = [bytes(range(1, 61)), bytes(20), bytes([7]) * 200]
    _runs, snaps, _ = agree(
        spec_of(built, "globals_loop"),
        lambda s: [s.run("sum_bytes", p) for p in pkts],
        maps=[".bss", ".data"],
    )
    total, packets, last = struct.unpack_from("<QII", snaps[".bss"][u32(0)])
    assert (total, packets, last) == (sum(range(1, 33)) + 7 * 32, 3, 33)


def test_latency_hist_agrees(built):
    lat = [0, 999, 1000, 2000, 3999, 4000, 1_000_000, 2**40, 123456789]
    agree(
        spec_of(built, "latency_hist"),
        lambda s: [s.run("record_latency", ctx=struct.pack("<Q", ns)) for ns in lat],
        maps=["hist"],
    )


def test_kprobe_program_loads_in_kernel(built):
    """The kprobe flavour cannot be test-run in the kernel, but it must load there."""
    obj = KernelObject(spec_of(built, "pid_counter"))
    try:
        assert obj.progs["on_open"] > 0
    finally:
        obj.close()
