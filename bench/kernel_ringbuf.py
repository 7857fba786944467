"""Ring-buffer events consumed per second in Python (:mod:`bpfkit.kernel.ringbuf`).

A ``bpf_loop`` program (tests/c/kernel_ringbuf.c) fills a 4 MiB ring buffer with 8-byte
events through ``BPF_PROG_TEST_RUN``; each reader form then drains it, timed alone:

- ``unpack``: ``reader.unpack("<Q")`` — tuples decoded at C speed (one ``iter_unpack``);
- ``views``: ``read_batch()`` — a zero-copy ``memoryview`` per record;
- ``copies``: ``consume()`` — a ``bytes`` per record;
- ``callback``: ``consume(fn)`` — one Python call per record;
- ``count``: ``count_available()`` — walk the headers only.

``stream`` runs producer and consumer at once (a producer thread, epoll wake-ups,
``unpack`` batches) for ``--events`` events and reports the end-to-end rate and drops.

Run as root: ``python bench/kernel_ringbuf.py [--events 2000000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import bpfkit
from bpfkit.obj.build import compile_c

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 100_000  # events per test run (1.6 MB of a 4 MiB ring)


def fill(obj, n: int = 2 * CHUNK) -> int:
    p = obj.programs["produce"]
    for start in range(0, n, CHUNK):
        p.test_run(ctx=[start, min(CHUNK, n - start)])
    return n


def timed(obj, fn, rounds: int) -> float:
    """Events per second of the consumer form ``fn(reader)`` over ``rounds`` fills."""
    reader = obj.maps["rb"].reader
    total, spent = 0, 0.0
    for _ in range(rounds):
        fill(obj)
        t = time.perf_counter()
        got = fn(reader)
        spent += time.perf_counter() - t
        reader.commit()
        assert got == 2 * CHUNK, got
        total += got
    return total / spent


def stream(obj, events: int) -> dict:
    reader = obj.maps["rb"].reader
    room = reader.size - 16 * CHUNK
    done = threading.Event()

    def producer():
        p = obj.programs["produce"]
        for start in range(0, events, CHUNK):
            while reader.available > room:
                time.sleep(0.0002)
            p.test_run(ctx=[start, min(CHUNK, events - start)])
        done.set()

    got, expected_next = 0, 0
    th = threading.Thread(target=producer)
    t = time.perf_counter()
    th.start()
    while got < events:
        reader.wait(1.0)
        batch = reader.unpack("<Q")
        if batch:
            if batch[0][0] != expected_next:
                raise SystemExit(f"out of order: {batch[0][0]} != {expected_next}")
            expected_next = batch[-1][0] + 1
            got += len(batch)
        elif done.is_set() and reader.available == 0:
            break
    elapsed = time.perf_counter() - t
    th.join()
    return {
        "events": got,
        "seconds": round(elapsed, 3),
        "per_second": round(got / elapsed),
        "drops": obj.maps["drops"][0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rb.o"
        compile_c(ROOT / "tests" / "c" / "kernel_ringbuf.c", path)
        with bpfkit.load(path, backend="kernel") as obj:
            forms = {
                "unpack": lambda r: len(r.unpack("<Q")),
                "views": lambda r: len(r.read_batch()),
                "copies": lambda r: len(r.consume()),
                "callback": lambda r: r.consume(lambda v: None),
                "count": lambda r: r.count_available(),
            }
            rates = {k: round(timed(obj, f, args.rounds)) for k, f in forms.items()}
            st = stream(obj, args.events)
    out = {"consume_per_second": rates, "stream": st}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in rates.items():
        print(f"{k:10} {v / 1e6:6.2f} M events/s")
    print(
        f"stream     {st['per_second'] / 1e6:6.2f} M events/s end to end "
        f"({st['events']} events, {st['drops']} dropped)"
    )


if __name__ == "__main__":
    main()
