"""Lifetimes as Python users expect: a Program, Map or Link taken from an object keeps what
it needs alive after the object itself is dropped; links only the object held are detached
with it; and ``records(timeout=...)`` is an overall deadline (issue 11, item 8)."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest
from test_kernel_common import build_c, needs_clang

import bpfkit

pytestmark = needs_clang


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    return build_c("parity_lifetimes", tmp_path_factory.mktemp("life"))


@pytest.mark.parametrize("backend", ["vm", pytest.param("kernel", marks=pytest.mark.kernel)])
def test_a_program_or_map_outlives_its_object(obj, backend):
    p = bpfkit.load(obj, backend=backend).programs["answer"]
    m = bpfkit.load(obj, backend=backend).maps["calls"]
    gc.collect()
    assert p.test_run(bytes(64)).retval == 42
    m[0] = 5
    assert m[0] == 5


@pytest.mark.kernel
def test_a_held_link_stays_attached_and_a_dropped_one_detaches(obj):
    from bpfkit.kernel import sys as bsys

    o = bpfkit.load(obj, backend="kernel", constants={"target_tgid": os.getpid()})
    calls = o.maps["calls"]
    link = o.programs["on_sys_enter"].attach()
    dropped_id = o.programs["on_sys_enter"].attach().id  # only the object holds this one
    del o
    gc.collect()
    with pytest.raises(bpfkit.errors.KernelError):  # detached with the object
        bsys.FD(bsys.link_get_fd_by_id(dropped_id)).close()
    before = calls[0]
    os.getppid()
    os.getppid()
    assert calls[0] >= before + 2  # the held link still counts our system calls
    link.close()
    after = calls[0]
    os.getppid()
    assert calls[0] == after


@pytest.mark.kernel
def test_records_timeout_is_an_overall_deadline(obj):
    """Every system call makes a record, the consumer's own included: the ring is never
    idle, so only an overall deadline ends the iteration."""
    with bpfkit.load(obj, backend="kernel", constants={"target_tgid": os.getpid()}) as o:
        rb = o.maps["rb"]
        got: dict[str, float | int] = {}

        def consume() -> None:
            t = time.monotonic()
            n = 0
            for _ in rb.records(timeout=0.3, copy=True):
                n += 1
                os.getppid()  # keep it busy
            got["n"], got["s"] = n, time.monotonic() - t

        with o.programs["on_sys_enter"].attach():
            th = threading.Thread(target=consume, daemon=True)
            th.start()
            th.join(10)
        assert not th.is_alive(), "records(timeout=0.3) did not return on a busy ring"
        assert got["n"] > 0 and 0.3 <= got["s"] < 3
