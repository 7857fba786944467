"""Attach programs to real hooks and watch them fire: tracepoints, raw tracepoints,
kprobes, uprobes, perf events, XDP, tc (tcx and clsact), socket filters and cgroups.

Network tests run inside namespaces they create (veth pairs, addresses only there, a few
dozen packets). Hooks this kernel lacks skip with the feature probe's reason.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time

import pytest
from test_kernel_common import build_c, needs_clang, require, veth_pair  # noqa: F401

import bpfkit
from bpfkit.errors import NotSupported
from bpfkit.kernel.cgroup import attach_cgroup, cgroup2_root
from bpfkit.kernel.kprobe import attach_kprobe
from bpfkit.kernel.link import open_pinned_link
from bpfkit.kernel.netns import netns
from bpfkit.kernel.object import open_map
from bpfkit.kernel.perf_event import sample_cpu_clock
from bpfkit.kernel.raw_tracepoint import attach_raw_tracepoint
from bpfkit.kernel.socket import attach_socket_filter
from bpfkit.kernel.tc import attach_tc
from bpfkit.kernel.tracepoint import attach_tracepoint
from bpfkit.kernel.uprobe import attach_uprobe, symbol_offset
from bpfkit.kernel.xdp import attach_xdp

pytestmark = [pytest.mark.kernel, needs_clang]

XDP_PASSED, XDP_DROPPED, TC_PASSED, TC_DROPPED = 0, 1, 2, 3
SOCK_KEPT, SOCK_DROPPED, SOCK_DENIED, EGRESS_SEEN = 4, 5, 6, 7


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernel_attach")
    return {n: build_c(n, d) for n in ("kernel_trace", "kernel_net")}


def load(objs, name, **kw):
    return bpfkit.load(objs[name], backend="kernel", **kw)


def wait_for(cond, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


# ---- tracing ------------------------------------------------------------------------
def test_tracepoint_sees_a_spawned_process(objs):
    require("tracepoint")
    with load(objs, "kernel_trace", programs=["on_execve"]) as obj:
        with obj.programs["on_execve"].attach() as link:
            assert link.kind == "tracepoint" and link.target == "syscalls/sys_enter_execve"
            proc = subprocess.Popen(["/bin/true"])
            proc.wait()
            seen = obj.maps["execs"][proc.pid]
            assert seen["count"] == 1
            assert seen["filename"] == "/bin/true"
        # detached: a second process is not seen
        proc = subprocess.Popen(["/bin/true"])
        proc.wait()
        assert proc.pid not in obj.maps["execs"]


def test_tracepoint_by_name(objs):
    require("tracepoint")
    with load(objs, "kernel_trace", programs=["on_execve"]) as obj:
        with attach_tracepoint(obj.programs["on_execve"], "syscalls", "sys_enter_execve"):
            subprocess.run(["/bin/true"], check=True)
            assert obj.maps["hits"][0]["count"] >= 1
            assert obj.maps["hits"][0]["value"] == 59 or obj.maps["hits"][0]["value"] > 0


def test_raw_tracepoint_counts_our_syscalls(objs):
    require("raw_tracepoint")
    with load(
        objs, "kernel_trace", programs=["on_sys_enter"], constants={"target_tgid": os.getpid()}
    ) as obj:
        prog = obj.programs["on_sys_enter"]
        with attach_raw_tracepoint(prog, "sys_enter") as link:
            assert link.info().details["tp_name"] == "sys_enter"
            for _ in range(50):
                os.getppid()
            n = obj.maps["hits"][1]["count"]
            assert n >= 50
            assert obj.maps["hits"][1]["last_pid"] == os.getpid()
        before = obj.maps["hits"][1]["count"]
        for _ in range(50):
            os.getppid()
        assert obj.maps["hits"][1]["count"] == before


def test_tp_btf_and_auto_attach(objs):
    with load(objs, "kernel_trace", programs=["on_exec_btf"]) as obj:
        link = obj.programs["on_exec_btf"].attach()
        subprocess.run(["/bin/true"], check=True)
        assert obj.maps["hits"][7]["count"] >= 1
    assert link.closed  # closing the object detached it


def test_pinned_link_outlives_the_object(objs, bpffs):
    require("raw_tracepoint")
    obj = load(
        objs, "kernel_trace", programs=["on_sys_enter"], constants={"target_tgid": os.getpid()}
    )
    link = obj.programs["on_sys_enter"].attach()
    link.pin(f"{bpffs}/link")
    obj.maps["hits"].pin(f"{bpffs}/hits")
    obj.close()
    assert link.closed
    hits = open_map(f"{bpffs}/hits")
    before = hits[1]["count"]
    os.getppid()
    assert hits[1]["count"] > before  # still attached through the pin
    pinned = open_pinned_link(f"{bpffs}/link")
    assert pinned.info().details["tp_name"] == "sys_enter"
    pinned.detach()
    os.unlink(f"{bpffs}/link")  # the kernel frees an unpinned link from a workqueue

    def settled():
        before = hits[1]["count"]
        os.getppid()
        return hits[1]["count"] == before

    assert wait_for(settled)
    hits.close()


def test_kprobe(objs):
    require("kprobe")
    with load(
        objs, "kernel_trace", programs=["on_openat"], constants={"target_tgid": os.getpid()}
    ) as obj:
        with attach_kprobe(obj.programs["on_openat"], "do_sys_openat2"):
            with open("/proc/self/stat"):
                pass
            assert obj.maps["hits"][2]["count"] >= 1


def test_kprobe_unsupported_says_why(objs):
    from bpfkit.kernel import features

    if features.attach_kind("kprobe").supported:
        pytest.skip("this kernel has kprobes")
    with load(objs, "kernel_trace", programs=["on_openat"]) as obj:
        with pytest.raises(NotSupported, match="CONFIG_KPROBES"):
            obj.programs["on_openat"].attach()


def test_fentry(objs):
    require("fentry")
    with load(
        objs, "kernel_trace", programs=["on_openat_fentry"], constants={"target_tgid": os.getpid()}
    ) as obj:
        with obj.programs["on_openat_fentry"].attach():
            with open("/proc/self/stat"):
                pass
            assert obj.maps["hits"][3]["count"] >= 1


@pytest.fixture(scope="module")
def utarget(tmp_path_factory):
    from test_kernel_common import C_DIR

    gcc = subprocess.run(["which", "gcc"], capture_output=True, text=True).stdout.strip()
    if not gcc:
        pytest.skip("needs gcc")
    out = tmp_path_factory.mktemp("utarget") / "utarget"
    subprocess.run([gcc, "-O1", "-o", str(out), str(C_DIR / "kernel_uprobe_target.c")], check=True)
    return str(out)


def test_uprobe_and_uretprobe_on_a_test_binary(objs, utarget):
    require("uprobe")
    assert symbol_offset(utarget, "bpfkit_add") > 0
    with load(objs, "kernel_trace", programs=["on_uprobe", "on_uretprobe"]) as obj:
        entry = attach_uprobe(obj.programs["on_uprobe"], utarget, "bpfkit_add")
        ret = attach_uprobe(obj.programs["on_uretprobe"], utarget, "bpfkit_add", retprobe=True)
        with entry, ret:
            out = subprocess.run(
                [utarget, "5", "3", "4"], capture_output=True, text=True, check=True
            )
            assert out.stdout.strip() == "35"
            assert obj.maps["hits"][4]["count"] == 5
            assert obj.maps["hits"][4]["value"] == 3004
            assert obj.maps["hits"][5]["count"] == 5 and obj.maps["hits"][5]["value"] == 7
        subprocess.run([utarget, "2"], capture_output=True, check=True)
        assert obj.maps["hits"][4]["count"] == 5  # detached


def test_uprobe_by_section_target(objs, utarget):
    require("uprobe")
    with load(objs, "kernel_trace", programs=["on_uprobe"]) as obj:
        with obj.programs["on_uprobe"].attach(f"{utarget}:bpfkit_add", pid=-1):
            subprocess.run([utarget, "3", "1", "1"], capture_output=True, check=True)
        assert obj.maps["hits"][4]["count"] == 3 and obj.maps["hits"][4]["value"] == 1001


def test_perf_event_samples_the_cpu_clock(objs):
    require("perf_event")
    with load(
        objs, "kernel_trace", programs=["on_sample"], constants={"target_tgid": os.getpid()}
    ) as obj:
        with sample_cpu_clock(obj.programs["on_sample"], frequency=1000) as links:
            assert len(links) == len(os.sched_getaffinity(0)) or len(links) >= 1
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                pass
            assert obj.maps["hits"][6]["count"] > 10
            assert obj.maps["hits"][6]["last_pid"] == os.getpid()


# ---- networking ---------------------------------------------------------------------
def _udp_exchange(pair, sends, ports, timeout=1.0):
    """Send ``sends`` [(port, payload)] from ns1 to ns2; what each receiving port got."""
    with netns(pair.ns2):
        rx = {}
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((pair.ip2, p))
            s.settimeout(0.05)
            rx[p] = s
    with netns(pair.ns1):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got = {p: [] for p in ports}
    try:
        for port, payload in sends:
            tx.sendto(payload, (pair.ip2, port))
        deadline = time.monotonic() + timeout
        want = len(sends)
        while time.monotonic() < deadline and sum(map(len, got.values())) < want:
            for p, s in rx.items():
                try:
                    got[p].append(s.recv(2048))
                except TimeoutError:
                    pass
    finally:
        tx.close()
        for s in rx.values():
            s.close()
    return got


def _sends(n=20):
    return [(9, b"x%d" % i) for i in range(n)] + [(7777, b"y%d" % i) for i in range(n)]


def test_xdp_generic_on_veth_passes_and_drops(objs, veth_pair):  # noqa: F811
    require("xdp")
    with load(objs, "kernel_net", programs=["xdp_drop_port"]) as obj:
        with netns(veth_pair.ns2):
            link = attach_xdp(obj.programs["xdp_drop_port"], veth_pair.dev2, mode="generic")
        with link:
            assert link.info().details["ifindex"] > 0
            got = _udp_exchange(veth_pair, _sends(), [9, 7777])
            assert got[9] == []
            assert sorted(got[7777]) == sorted(b"y%d" % i for i in range(20))
            stats = obj.maps["stats"]
            assert stats[XDP_DROPPED] == 20
            assert stats[XDP_PASSED] >= 20  # plus ARP
        got = _udp_exchange(veth_pair, [(9, b"after")], [9])
        assert got[9] == [b"after"]  # detached


@pytest.mark.parametrize("mode", ["tcx", "clsact"])
def test_tc_ingress_drops_by_port(objs, veth_pair, mode):  # noqa: F811
    require(mode)
    with load(objs, "kernel_net", programs=["tc_drop_port"], constants={"drop_port": 7777}) as obj:
        with netns(veth_pair.ns2):
            link = attach_tc(obj.programs["tc_drop_port"], veth_pair.dev2, "ingress", mode=mode)
        with link:
            assert link.kind == ("tcx" if mode == "tcx" else "tc")
            got = _udp_exchange(veth_pair, _sends(10), [9, 7777])
            assert got[7777] == [] and len(got[9]) == 10
            assert obj.maps["stats"][TC_DROPPED] == 10
        got = _udp_exchange(veth_pair, [(7777, b"after")], [7777])
        assert got[7777] == [b"after"]
        if mode == "clsact":
            out = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    veth_pair.ns2,
                    "tc",
                    "qdisc",
                    "show",
                    "dev",
                    veth_pair.dev2,
                ],
                capture_output=True,
                text=True,
            ).stdout
            assert "clsact" not in out  # the qdisc this attach created is gone


def test_tc_egress(objs, veth_pair):  # noqa: F811
    require("tcx")
    with load(objs, "kernel_net", programs=["tc_drop_port"], constants={"drop_port": 9}) as obj:
        with netns(veth_pair.ns1):
            link = attach_tc(obj.programs["tc_drop_port"], veth_pair.dev1, "egress")
        with link:
            got = _udp_exchange(veth_pair, _sends(5), [9, 7777])
            assert got[9] == [] and len(got[7777]) == 5


def test_socket_filter_on_a_real_socket(objs, veth_pair):  # noqa: F811
    require("socket_filter")
    with load(objs, "kernel_net", programs=["sock_keep"]) as obj:
        with netns(veth_pair.ns1):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind(("127.0.0.1", 0))
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.settimeout(0.2)
        with rx, tx:
            link = attach_socket_filter(obj.programs["sock_keep"], rx)
            for msg in (b"drop me", b"keep 1", b"dd", b"keep 2"):
                tx.sendto(msg, rx.getsockname())
            got = []
            while True:
                try:
                    got.append(rx.recv(100))
                except TimeoutError:
                    break
            assert got == [b"keep 1", b"keep 2"]
            stats = obj.maps["stats"]
            assert stats[SOCK_DROPPED] == 2 and stats[SOCK_KEPT] == 2
            link.close()
            tx.sendto(b"dropped? no", rx.getsockname())
            assert rx.recv(100) == b"dropped? no"


CHILD = r"""
import socket, sys
sys.stdin.readline()
out = []
for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
    try:
        socket.socket(socket.AF_INET, kind).close()
        out.append("ok")
    except PermissionError:
        out.append("EPERM")
print(",".join(out), flush=True)
"""


@pytest.fixture
def cgroup_dir():
    require("cgroup")
    path = os.path.join(cgroup2_root(), f"bpfkit-test-{os.getpid()}")
    os.mkdir(path)
    try:
        yield path
    finally:
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.02)


def _run_in_cgroup(path: str) -> str:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(child.pid))
    out, _ = child.communicate("go\n", timeout=30)
    return out.strip()


@pytest.mark.parametrize("legacy", [False, True])
def test_cgroup_sock_create_denies_udp(objs, cgroup_dir, legacy):
    with load(objs, "kernel_net", programs=["deny_udp"]) as obj:
        link = attach_cgroup(obj.programs["deny_udp"], cgroup_dir, legacy=legacy)
        with link:
            assert link.has_link is (not legacy)
            assert _run_in_cgroup(cgroup_dir) == "EPERM,ok"
            assert obj.maps["stats"][SOCK_DENIED] == 1
        assert _run_in_cgroup(cgroup_dir) == "ok,ok"
        # Our own sockets never were affected: we are not in that cgroup.
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()


def test_cgroup_skb_egress_counts(objs, cgroup_dir):
    with load(objs, "kernel_net", programs=["count_egress"]) as obj:
        with obj.programs["count_egress"].attach(cgroup_dir):
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import socket,sys; sys.stdin.readline(); s=socket.socket(socket.AF_INET, "
                    "socket.SOCK_DGRAM); [s.sendto(b'x', ('127.0.0.1', 9)) for _ in range(5)]",
                ],
                stdin=subprocess.PIPE,
                text=True,
            )
            with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
                f.write(str(child.pid))
            child.communicate("go\n", timeout=30)
            assert wait_for(lambda: obj.maps["stats"][EGRESS_SEEN] >= 5)


def test_xdp_through_netlink_and_link_update(objs, veth_pair):  # noqa: F811
    require("xdp")
    with (
        load(objs, "kernel_net", programs=["xdp_drop_port"]) as a,
        load(objs, "kernel_net", programs=["xdp_drop_port"], constants={"drop_port": 7777}) as b,
    ):
        with netns(veth_pair.ns2):
            legacy = attach_xdp(
                a.programs["xdp_drop_port"], veth_pair.dev2, "generic", netlink=True
            )
            assert not legacy.has_link
            with pytest.raises(NotSupported):
                legacy.pin("/sys/fs/bpf/nope")
            out = subprocess.run(
                ["ip", "link", "show", veth_pair.dev2], capture_output=True, text=True
            )
            assert "xdpgeneric" in out.stdout
            legacy.close()
            out = subprocess.run(
                ["ip", "link", "show", veth_pair.dev2], capture_output=True, text=True
            )
            assert "xdpgeneric" not in out.stdout
            link = attach_xdp(a.programs["xdp_drop_port"], veth_pair.dev2, "generic")
        with link:
            assert _udp_exchange(veth_pair, [(9, b"a"), (7777, b"b")], [9, 7777]) == {
                9: [],
                7777: [b"b"],
            }
            link.update(b.programs["xdp_drop_port"])  # now drops 7777 instead
            assert link.info().prog_id == b.programs["xdp_drop_port"].id
            assert _udp_exchange(veth_pair, [(9, b"a"), (7777, b"b")], [9, 7777]) == {
                9: [b"a"],
                7777: [],
            }


def test_tracepoint_without_a_perf_link(objs):
    """The PERF_EVENT_IOC_SET_BPF path older kernels need: no link fd, still detaches."""
    require("tracepoint")
    from bpfkit.kernel.perf_event import (
        PERF_TYPE_TRACEPOINT,
        PerfEventAttr,
        attach_perf_event,
        perf_event_open,
    )
    from bpfkit.kernel.tracefs import tracepoint_id

    with load(objs, "kernel_trace", programs=["on_execve"]) as obj:
        ev = perf_event_open(
            PerfEventAttr(
                type=PERF_TYPE_TRACEPOINT,
                config=tracepoint_id("syscalls", "sys_enter_execve"),
                sample_period=1,
            ),
            -1,
            0,
        )
        with attach_perf_event(obj.programs["on_execve"], ev, force_ioctl=True) as link:
            assert not link.has_link
            proc = subprocess.Popen(["/bin/true"])
            proc.wait()
            assert obj.maps["execs"][proc.pid]["count"] == 1
        proc = subprocess.Popen(["/bin/true"])
        proc.wait()
        assert proc.pid not in obj.maps["execs"]


def test_attach_all_by_section(objs):
    require("tracepoint")
    with load(objs, "kernel_trace", programs=["on_execve", "on_sys_enter", "on_exec_btf"]) as obj:
        links = obj.attach_all()
        assert sorted(link.kind for link in links) == ["raw_tracepoint", "tp_btf", "tracepoint"]
        subprocess.run(["/bin/true"], check=True)
        assert obj.maps["hits"][0]["count"] and obj.maps["hits"][7]["count"]
    assert all(link.closed for link in links)


def test_uprobe_for_one_process_and_on_libc(objs, utarget):
    require("uprobe")
    from bpfkit.kernel.uprobe import find_binary

    with load(objs, "kernel_trace", programs=["on_uprobe"]) as obj:
        # The process execs utarget after we attached to its pid: only it is counted.
        proc = subprocess.Popen(
            ["sh", "-c", f"read x; exec {utarget} 4 2 2"], stdin=subprocess.PIPE
        )
        with attach_uprobe(obj.programs["on_uprobe"], utarget, "bpfkit_add", pid=proc.pid):
            subprocess.run([utarget, "3"], capture_output=True, check=True)  # another pid
            proc.communicate(b"go\n", timeout=30)
            assert obj.maps["hits"][4]["count"] == 4 and obj.maps["hits"][4]["last_pid"] == proc.pid
    libc = find_binary("c")
    assert symbol_offset(libc, "getpid") > 0
