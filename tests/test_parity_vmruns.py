"""The VM runs what the kernel loads: cgroup arrays (BCC's cgroup filter) with the kernel's
answers to bpf_current_task_under_cgroup / bpf_get_current_cgroup_id, and helpers the VM
does not perform accepted at load, faulting only when a run calls one (issue 11, item 7).
The kernel, running the same program in the same thread, is the oracle."""

from __future__ import annotations

import contextlib
import errno
import os

import pytest
from test_kernel_common import build_c, needs_clang

import bpfkit
from bpfkit.errors import RuntimeFault
from bpfkit.vm.maps.cgroup_array import cgroup2_mounts

pytestmark = needs_clang
M64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    return build_c("parity_vmruns", tmp_path_factory.mktemp("vmruns"))


def _run_raw(o) -> list[int]:
    o.programs["on_raw"].run([0, 0])
    return [o.maps["out"][i] for i in range(3)]


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_knobs_that_do_not_call_a_missing_helper_run(obj, mode):
    """Every program loads; only the run that calls bpf_get_ns_current_pid_tgid faults."""
    with bpfkit.load(obj, constants={"mode": mode}) as o:
        assert set(o.programs) == {"on_raw", "on_kprobe", "on_socket"}
        if mode == 3:
            with pytest.raises(RuntimeFault, match="bpf_get_ns_current_pid_tgid .* not perform"):
                _run_raw(o)
        else:
            _run_raw(o)
        assert o.programs["on_kprobe"].run(bytes(168)).retval == 5
        assert o.programs["on_socket"].test_run(bytes(64)).retval == 1


@pytest.mark.parametrize(
    "mode,prog,helper",
    [(4, "on_kprobe", "get_func_ip"), (5, "on_socket", "get_socket_cookie")],
)
def test_a_missing_helper_faults_when_called(obj, mode, prog, helper):
    with bpfkit.load(obj, constants={"mode": mode}) as o:
        with pytest.raises(RuntimeFault, match=f"bpf_{helper}"):
            p = o.programs[prog]
            p.run(bytes(168)) if prog == "on_kprobe" else p.test_run(bytes(64))


def test_an_empty_slot_is_eagain_and_the_type_is_checked(obj):
    with bpfkit.load(obj, constants={"mode": 1}) as o:
        assert _run_raw(o)[0] == -errno.EAGAIN
        fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)  # not a cgroup v2 directory
        try:
            with pytest.raises(bpfkit.errors.KernelError) as ei:
                o.maps["cgroup_map"][0] = fd
            assert ei.value.errno == errno.EBADF
        finally:
            os.close(fd)
    # bpf_current_task_under_cgroup is one of the kernel's base helpers for a privileged
    # loader: every program type may call it (the verifier's helper table is the running
    # kernel's, bench/verifier_helpers.py), so a socket filter using it loads too
    bpfkit.load(obj, constants={"mode": 1}, prog_type={"on_raw": "socket"}).close()


@contextlib.contextmanager
def _in_cgroup(path: str):
    """Move this process into cgroup directory ``path`` (v2) and back."""
    before = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                before = line[3:].strip()
    root = cgroup2_mounts()[0]
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        with open(os.path.join(root, (before or "/").lstrip("/"), "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


@pytest.mark.kernel
def test_cgroup_answers_match_the_kernel(obj, tmp_path):
    mounts = cgroup2_mounts()
    if not mounts:
        pytest.skip("no cgroup v2 hierarchy mounted")
    root = mounts[0]
    child = os.path.join(root, f"parity_{os.getpid()}")
    sibling = child + "_sib"
    os.mkdir(child)
    os.mkdir(sibling)
    try:
        with _in_cgroup(child):
            for slot, want in ((root, 1), (child, 1), (sibling, 0)):
                got = {}
                for backend in ("vm", "kernel"):
                    with bpfkit.load(
                        obj, backend=backend, constants={"mode": 1}, programs=["on_raw"]
                    ) as o:
                        fd = os.open(slot, os.O_RDONLY | os.O_DIRECTORY)
                        try:
                            o.maps["cgroup_map"][0] = fd
                        finally:
                            os.close(fd)
                        got[backend] = _run_raw(o)[0]
                assert got == {"vm": want, "kernel": want}, slot
            ids = {}
            for backend in ("vm", "kernel"):
                with bpfkit.load(
                    obj, backend=backend, constants={"mode": 2}, programs=["on_raw"]
                ) as o:
                    ids[backend] = _run_raw(o)[1]
            assert ids["vm"] == ids["kernel"] == os.stat(child).st_ino
    finally:
        os.rmdir(child)
        os.rmdir(sibling)


@pytest.mark.kernel
@pytest.mark.parametrize("mode", [3, 4, 5])
def test_the_kernel_loads_them_too(obj, mode):
    with bpfkit.load(obj, backend="kernel", constants={"mode": mode}) as o:
        assert set(o.programs) == {"on_raw", "on_kprobe", "on_socket"}
