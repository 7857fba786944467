"""Feature probes: each answer checked against the kernel's own configuration and version,
so that a test skipped for a missing feature really is missing from this kernel."""

from __future__ import annotations

import errno
import os
import time

import pytest

from bpfkit.kernel import features as F
from bpfkit.kernel.btf import BtfFeatures
from bpfkit.kernel.kconfig import kernel_config, kernel_version_code
from bpfkit.uapi.enums import HELPER_NAMES, MapType, ProgType

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def cfg():
    c = kernel_config()
    if not c:
        pytest.skip("no kernel configuration (/proc/config.gz or /boot/config-*) to compare with")
    return c


def on(cfg, name):
    return cfg.get(name, "n") in ("y", "m")


def version_at_least(major, minor):
    return kernel_version_code() >= (major << 16) + (minor << 8)


@pytest.mark.parametrize(
    "kind,option",
    [
        ("kprobe", "CONFIG_KPROBES"),
        ("uprobe", "CONFIG_UPROBE_EVENTS"),
        ("tracepoint", "CONFIG_FTRACE_SYSCALLS"),
        ("cgroup", "CONFIG_CGROUP_BPF"),
        ("perf_event", "CONFIG_PERF_EVENTS"),
    ],
)
def test_attach_probes_agree_with_the_config(cfg, kind, option):
    assert F.attach_kind(kind).supported == on(cfg, option), F.attach_kind(kind)


def test_link_probes_agree_with_config_and_version(cfg):
    assert F.link_kind("kprobe_multi").supported == on(cfg, "CONFIG_FPROBE")
    assert F.link_kind("tcx").supported == (version_at_least(6, 6) and on(cfg, "CONFIG_NET_XGRESS"))
    assert F.link_kind("xdp").supported == version_at_least(5, 9)
    assert F.link_kind("cgroup").supported == (
        version_at_least(5, 7) and on(cfg, "CONFIG_CGROUP_BPF")
    )
    assert F.link_kind("perf_event").supported == version_at_least(5, 15)
    assert F.link_kind("raw_tracepoint").supported


def test_program_and_map_types(cfg):
    assert F.prog_type("xdp") and F.prog_type(ProgType.SOCKET_FILTER) and F.prog_type("syscall")
    assert F.prog_type("lirc_mode2").supported == on(cfg, "CONFIG_BPF_LIRC_MODE2")
    assert F.map_type("ringbuf").supported == version_at_least(5, 8)
    assert F.map_type(MapType.BLOOM_FILTER).supported == version_at_least(5, 16)
    _check_arena(cfg)
    for name in ("hash", "array", "lru_hash", "lpm_trie", "array_of_maps", "queue", "sk_storage"):
        assert F.map_type(name), name
    assert F.feature("ringbuf") and F.feature("mmapable_arrays") and F.feature("batch_ops")
    assert F.feature("kernel_btf").supported == on(cfg, "CONFIG_DEBUG_INFO_BTF")


def _check_arena(cfg):
    """Arena maps: known from 6.9 with an MMU; created only if the kernel agrees — what it
    answers decides, and a refusal is blamed on privileges only when some are missing."""
    from bpfkit.errors import KernelError
    from bpfkit.kernel import sys as bsys
    from bpfkit.kernel.privileges import holds

    arena = F.map_type("arena")
    if not (version_at_least(6, 9) and on(cfg, "CONFIG_MMU")):
        assert not arena.supported
        return
    try:  # the kernel's own answer to a valid arena (1 page, mmapable)
        os.close(bsys.map_create(33, 0, 0, 1, bsys.F_MMAPABLE))
        err = 0
    except KernelError as e:
        err = e.errno
    assert arena.supported == (err == 0), arena
    if err == errno.EPERM:
        if holds("CAP_BPF"):
            assert "not a privilege problem" in arena.reason and "needs" not in arena.reason
        else:
            assert "CAP_BPF" in arena.reason and "lacks" in arena.reason


def test_btf_probes():
    feats = F.btf_features()
    if version_at_least(6, 0):
        assert feats == BtfFeatures()
    for k in F.BTF_FEATURES:
        assert F.btf_feature(k).name == f"btf_{k}"
    with pytest.raises(ValueError):
        F.btf_feature("nope")


@pytest.mark.parametrize(
    "ptype", [ProgType.XDP, ProgType.KPROBE, ProgType.SCHED_CLS, ProgType.CGROUP_SKB]
)
def test_helper_probes_match_what_the_vm_allows(ptype):
    """The helpers the VM lets a program type call are the running kernel's (kernel
    builds differ: one 6.18 build refuses bpf_xdp_adjust_meta for XDP, another allows
    it); the per-helper probe (another program, another code path) must agree."""
    from bpfkit.vm.helpers_runtime import allowed_ids_for

    vm = {HELPER_NAMES[h] for h in allowed_ids_for(ptype) if h in HELPER_NAMES}
    probed = {n for n, p in F.helpers(ptype).items() if p.supported}
    assert probed == vm


def test_probes_are_cached():
    F.prog_type("xdp")
    t = time.perf_counter()
    for _ in range(1000):
        F.prog_type("xdp")
        F.attach_kind("kprobe")
    assert time.perf_counter() - t < 0.05


def test_unsupported_answers_carry_a_reason():
    everything = F.probe_all()
    for section, items in everything.items():
        for name, p in items.items():
            assert p["supported"] or p.get("reason"), (section, name)


def test_require_raises_with_the_reason():
    from bpfkit.errors import NotSupported

    F.require("socket_filter")
    missing = [k for k in F.ATTACH_KINDS if not F.attach_kind(k).supported]
    for k in missing:
        with pytest.raises(NotSupported, match=k):
            F.require(k)


def test_a_missing_fentry_is_about_trampolines():
    p = F.attach_kind("fentry")
    if p.supported:
        pytest.skip("this kernel has fentry")
    assert "EPERM" in p.reason
    assert F.prog_type("tracing").supported  # tp_btf programs load: only trampolines fail
