"""Ring-buffer and perf-buffer readers against programs producing events in the kernel.

The headline test pushes 1,000,000 events through a 4 MiB ring buffer from a producer
thread (``BPF_PROG_TEST_RUN`` of a ``bpf_loop`` program, 50,000 events a run, waiting
for room like a well-behaved producer) while the test thread consumes with epoll and
batched reads; every sequence number must arrive, in order, and the program must never
have failed a reserve.
"""

from __future__ import annotations

import os
import struct
import threading
import time

import pytest
from test_kernel_common import build_c, needs_clang

import bpfkit
from bpfkit.kernel.ringbuf import RingBufferSet, RingBufReader

pytestmark = [pytest.mark.kernel, needs_clang]


@pytest.fixture(scope="module")
def rb_obj(tmp_path_factory):
    return build_c("kernel_ringbuf", tmp_path_factory.mktemp("kernel_ringbuf"))


@pytest.fixture
def obj(rb_obj):
    with bpfkit.load(rb_obj, backend="kernel") as o:
        yield o


def produce(obj, start, count):
    obj.programs["produce"].test_run(ctx=[start, count])


def test_million_events_none_lost(obj):
    total, chunk = 1_000_000, 50_000
    rb = obj.maps["rb"]
    reader = rb.reader
    room = reader.size - 16 * chunk
    errors: list[BaseException] = []

    def producer():
        try:
            for start in range(0, total, chunk):
                while reader.available > room:
                    time.sleep(0.0005)
                produce(obj, start, chunk)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t0 = time.perf_counter()
    th = threading.Thread(target=producer)
    th.start()
    got = 0
    deadline = time.monotonic() + 60
    try:
        while got < total and time.monotonic() < deadline and not errors:
            reader.wait(0.5)
            batch = reader.unpack("<Q")
            if not batch:
                continue
            seq = [v for (v,) in batch]
            assert seq == list(range(got, got + len(seq)))
            got += len(seq)
    finally:
        th.join()
    elapsed = time.perf_counter() - t0
    assert not errors
    assert got == total
    assert obj.maps["drops"][0] == 0
    assert reader.available == 0
    print(f"\n1,000,000 ring-buffer events in {elapsed:.2f}s ({total / elapsed / 1e6:.2f} M/s)")


def test_reader_forms(obj):
    rb = obj.maps["rb"]
    produce(obj, 100, 5)
    views = rb.read_batch()
    assert [int.from_bytes(v, "little") for v in views] == [100, 101, 102, 103, 104]
    assert all(isinstance(v, memoryview) for v in views)
    pos = rb.reader.consumer_pos
    assert rb.reader.available == 5 * 16  # still held by the views
    assert rb.read_batch() == [] and rb.reader.consumer_pos == pos + 5 * 16
    produce(obj, 0, 10)
    seen = []

    def stop_after_3(v):
        seen.append(int.from_bytes(v, "little"))
        return -1 if len(seen) == 3 else 0

    assert rb.consume(stop_after_3) == 3 and seen == [0, 1, 2]
    assert [int.from_bytes(b, "little") for b in rb.consume(limit=4)] == [3, 4, 5, 6]
    assert rb.reader.unpack("<Q") == [(7,), (8,), (9,)]
    produce(obj, 50, 3)
    assert list(rb.records(timeout=0.05, copy=True)) == [
        struct.pack("<Q", 50 + i) for i in range(3)
    ]
    assert rb.poll(timeout=0.01) == []


def test_epoll_wakes_the_consumer(obj):
    rb = obj.maps["rb"]
    rb.reader.wait(0)  # set up epoll

    def later():
        time.sleep(0.05)
        produce(obj, 7, 1)

    th = threading.Thread(target=later)
    th.start()
    t0 = time.monotonic()
    assert rb.reader.wait(5.0)
    th.join()
    assert time.monotonic() - t0 < 4
    assert rb.consume() == [struct.pack("<Q", 7)]
    assert rb.reader.wait(0.01) is False


def test_ringbuffer_set_and_standalone_reader(rb_obj):
    with bpfkit.load(rb_obj, backend="kernel") as a, bpfkit.load(rb_obj, backend="kernel") as b:
        ra = RingBufReader(a.maps["rb"].fd)
        rbb = RingBufReader(b.maps["rb"].fd, b.maps["rb"].max_entries)
        got: list[tuple[str, int]] = []
        rs = RingBufferSet()
        rs.add(ra, lambda v: got.append(("a", int.from_bytes(v, "little"))))
        rs.add(rbb, lambda v: got.append(("b", int.from_bytes(v, "little"))))
        produce(a, 1, 2)
        produce(b, 10, 1)
        assert rs.poll(1.0) == 3
        assert sorted(got) == [("a", 1), ("a", 2), ("b", 10)]
        rs.close()
        ra.close()
        rbb.close()


def test_ringbuf_discarded_records_are_skipped(tmp_path):
    from test_examples import build_example, tcp

    path = build_example("ringbuf_events", tmp_path)
    with bpfkit.load(path, backend="kernel") as o:
        prog = o.programs["produce_events"]
        for i in range(3000):  # wraps the 16 KiB buffer many times
            pkt = tcp(i, 80, ttl=i % 256)
            if i % 3 == 0:
                pkt = pkt[:23] + b"\x01" + pkt[24:]  # ICMP: reserved, then discarded
            prog.test_run(pkt)
            if i % 50 == 49:
                recs = o.maps["events"].consume()
                assert len(recs) == 50 - len([j for j in range(i - 49, i + 1) if j % 3 == 0])


def test_perf_buffer_samples_and_lost_counts(obj):
    cpu = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        pe = obj.maps["samples"]
        pe.open(pages=1)
        obj.programs["perf_produce"].test_run(ctx=[0, 10])
        samples = pe.read()
        assert [(c, struct.unpack_from("<Q", d)[0]) for c, d in samples] == [
            (0, i) for i in range(10)
        ]
        assert all(len(d) == 12 for _c, d in samples)  # padded like the kernel pads raw samples
        obj.programs["perf_produce"].test_run(ctx=[100, 1000])  # overflows one page
        kept = pe.read()
        dropped = obj.maps["drops"][1]
        assert dropped > 0 and len(kept) + dropped == 1000
        obj.programs["perf_produce"].test_run(ctx=[5000, 1])
        after = pe.read()
        assert [struct.unpack_from("<Q", d)[0] for _c, d in after] == [5000]
        assert pe.lost == dropped
    finally:
        os.sched_setaffinity(0, cpu)
