"""Every example through ``bpfkit.load(backend="kernel")`` and the VM, with one scenario.

The same scenario function drives both :class:`~bpfkit.api.Object` implementations
through the public API only (typed map views, ``test_run``, ring-buffer ``consume``);
return values, output packets, raw and decoded map contents and ring-buffer records
must be equal. This is the kernel backend's side of the agreement test in
``test_examples_kernel.py`` (which uses raw ``bpf()`` plumbing).
"""

from __future__ import annotations

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
from bpfkit.api import FD_VALUE_TYPES, Map, RingBuffer
from bpfkit.obj import load_object

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernel_examples")
    return {n: build_example(n, d) for n in NAMES}


@contextmanager
def on_cpu0():
    """Run on CPU 0, where the VM puts per-CPU values."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def observe(obj) -> dict:
    """Everything a scenario can observe afterwards: raw and decoded maps, records."""
    out = {}
    for name, m in obj.maps.items():
        if isinstance(m, Map) and m.type in FD_VALUE_TYPES:
            out[name] = sorted(m.snapshot())  # values are kernel ids / VM ids: keys only
        elif isinstance(m, Map):
            out[name] = (m.snapshot(), sorted(map(repr, m.items())))
        elif isinstance(m, RingBuffer):
            out[name] = [bytes(r) for r in m.consume()]
    return out


def both(spec, scenario: Callable) -> tuple:
    """Run ``scenario(obj)`` on the kernel and on the VM; assert they agree."""
    res = {}
    with on_cpu0():
        for backend in ("kernel", "vm"):
            with bpfkit.load(spec, backend=backend) as obj:
                assert obj.backend == backend
                runs = scenario(obj)
                res[backend] = (runs, observe(obj))
    (k_runs, k_obs), (v_runs, v_obs) = res["kernel"], res["vm"]
    assert k_runs == v_runs
    assert k_obs.keys() == v_obs.keys()
    for name in k_obs:
        assert k_obs[name] == v_obs[name], name
    return k_runs, k_obs


def run(obj, prog, data=b"", ctx=None):
    r = obj.programs[prog].test_run(data, ctx)
    return r.retval, r.data_out


def test_every_example_loads_in_the_kernel(built):
    for name in NAMES:
        with bpfkit.load(built[name], backend="kernel") as obj:
            assert set(obj.programs) == set(load_object(built[name]).programs)
            for p in obj.programs.values():
                info = p.info()
                assert info.id > 0 and info.nr_line_info > 0 and info.nr_func_info > 0


def test_xdp_proto_count(built):
    short = bytes(12) + b"\x08\x00" + bytes(10)
    runs, obs = both(
        load_object(built["xdp_proto_count"]),
        lambda o: [run(o, "count_protocols", p) for p in PACKETS + [short]],
    )
    assert [r[0] for r in runs] == [2] * 7 + [0]


def test_sockfilter(built):
    runs, _ = both(
        load_object(built["sockfilter_http"]),
        lambda o: [run(o, "keep_http", p) for p in PACKETS],
    )
    assert [r[0] for r in runs] == [40, 40, 0, 0, 0, 0, 0]


def test_pid_counter_raw_tracepoint(built):
    def scenario(o):
        out = [run(o, "on_sys_enter", ctx=[0, nr]) for nr in (59, 60, 61)]
        out.append(dict(o.maps["counts"].items()) == {os.getpid(): {"count": 3, "last": 61}})
        return out

    runs, _ = both(load_object(built["pid_counter"]), scenario)
    assert runs[-1] is True


def test_ringbuf_events(built):
    pkts = PACKETS + [tcp(5, 6, ttl=i) for i in range(40)]
    _runs, obs = both(
        load_object(built["ringbuf_events"]),
        lambda o: [run(o, "produce_events", p) for p in pkts],
    )
    assert len(obs["events"]) == 6 + 40


def test_tail_dispatch(built):
    def scenario(o):
        out = [run(o, "dispatch", p) for p in PACKETS]
        o.maps["jmp_table"][47] = o.programs["handle_udp"]
        out.append(run(o, "dispatch", ipv4(47)))
        return out

    runs, _ = both(load_object(built["tail_dispatch"]), scenario)
    assert [r[0] for r in runs] == [3, 3, 3, 1, 2, 2, 2, 1]


def test_tail_chain_depth(tmp_path):
    spec = load_object(build_source(tmp_path, "chain", TAIL_CHAIN_C))

    def scenario(o):
        o.maps["self_table"][0] = o.programs["chain"]
        return [run(o, "chain", bytes(14))]

    _runs, obs = both(spec, scenario)
    assert obs["depth"][0] == {struct.pack("<I", 0): struct.pack("<Q", 34)}


def test_lpm_firewall(built):
    def scenario(o):
        rules = o.maps["rules"]
        rules[ip_key("10.0.0.0/8")] = 1
        rules[ip_key("10.1.0.0/16")] = 0
        rules[ip_key("192.168.7.7/32")] = 1
        srcs = ["10.9.9.9", "10.1.2.3", "192.168.7.7", "192.168.7.8", "8.8.8.8"]
        return [run(o, "firewall", tcp(1, 2, src=a)) for a in srcs]

    runs, _ = both(load_object(built["lpm_firewall"]), scenario)
    assert [r[0] for r in runs] == [1, 2, 1, 2, 2]


def test_globals_loop(built):
    pkts = [bytes(range(1, 61)), bytes(20), bytes([7]) * 200]
    _runs, obs = both(
        load_object(built["globals_loop"]),
        lambda o: [run(o, "sum_bytes", p) for p in pkts],
    )
    total, packets, last = struct.unpack_from("<QII", obs[".bss"][0][struct.pack("<I", 0)])
    assert (total, packets, last) == (sum(range(1, 33)) + 7 * 32, 3, 33)


def test_latency_hist(built):
    lat = [0, 999, 1000, 2000, 3999, 4000, 1_000_000, 2**40, 123456789]
    both(
        load_object(built["latency_hist"]),
        lambda o: [run(o, "record_latency", ctx=struct.pack("<Q", ns)) for ns in lat],
    )
