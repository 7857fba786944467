"""Refusals are explained by their cause: an EPERM blames privileges only when this
process lacks a capability the kernel checks (issue 11, item 1)."""

from __future__ import annotations

import errno

import pytest

from bpfkit.kernel.privileges import ALL_BPF_CAPS, effective_capabilities, eperm_hint


def test_capabilities_are_read_from_the_status_file(tmp_path):
    status = tmp_path / "status"
    # CAP_NET_ADMIN (12), CAP_SYS_ADMIN (21), CAP_BPF (39); not CAP_PERFMON (38)
    mask = (1 << 12) | (1 << 21) | (1 << 39)
    status.write_text(f"Name:\tx\nCapInh:\t0\nCapEff:\t{mask:016x}\n")
    assert effective_capabilities(str(status)) == {"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_BPF"}
    assert effective_capabilities(str(tmp_path / "missing")) == frozenset()


def test_eperm_hint_depends_on_what_is_held():
    full = frozenset(ALL_BPF_CAPS)
    assert "not a privilege problem" in eperm_hint(full)
    partial = full - {"CAP_PERFMON"}
    hint = eperm_hint(partial)
    assert "lacks CAP_PERFMON" in hint and "not a privilege problem" not in hint


@pytest.mark.kernel
def test_kernel_errors_carry_the_hint_for_this_process():
    """An EPERM's hint follows CapEff: a privilege problem only when a capability lacks."""
    from bpfkit.errors import KernelError
    from bpfkit.kernel import sys as bsys
    from bpfkit.uapi.enums import Cmd

    assert bsys.hint_for(Cmd.MAP_CREATE, errno.EPERM) == eperm_hint()
    held = all(c in effective_capabilities() for c in ALL_BPF_CAPS)
    try:
        bsys.map_create(33, 0, 0, 1, bsys.F_MMAPABLE)  # arena: refused on some kernels
    except KernelError as e:
        if e.errno == errno.EPERM:
            assert ("not a privilege problem" in str(e)) == held


@pytest.mark.kernel
def test_trampoline_types_are_explained_by_fentry():
    """ext and lsm programs run through BPF trampolines: refused with fentry, they say so."""
    from bpfkit.kernel import features as F

    fentry = F.attach_kind("fentry")
    if fentry.supported:
        pytest.skip("this kernel has BPF trampolines")
    for name in ("ext", "lsm"):
        p = F.prog_type(name)
        if p.supported or "EPERM" not in p.reason:
            continue
        assert "trampolines" in p.reason or "LSM" in p.reason, p
        if all(c in effective_capabilities() for c in ("CAP_BPF", "CAP_PERFMON")):
            assert "not a privilege problem" in p.reason, p
