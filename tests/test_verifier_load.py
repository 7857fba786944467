"""The load-time rules around the verifier, against the running kernel.

Before the verifier walks a program the kernel checks its load flags, its program type
and expected attach type (``bpf_prog_load``: EINVAL), every map it references
(``resolve_pseudo_ldimm64``: the map exists, direct value loads name a one-element
array, ``check_map_prog_compatibility``: spin locks, timers, the maps of sleepable
programs) and who may be sleepable (``check_attach_btf_id``). Each test loads the same
program with the same flags, attach type and maps into the kernel and into bpfkit's
``verify()``, and compares the verdicts (and the kernel's message where it logs one).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest
from test_kernel_common import C_DIR, needs_clang

from bpfkit.errors import BpfError, KernelError, VerifierError
from bpfkit.isa import opcodes as op
from bpfkit.isa.asm import assemble_text
from bpfkit.verifier import MapDesc, verify
from bpfkit.verifier.check import BTF_CTX_TYPES
from bpfkit.verifier.load import (
    ATTACH_ALLOWED,
    BPF_F_SLEEPABLE,
    PROG_NETFILTER,
    SLEEPABLE_MAPS,
)

pytestmark = pytest.mark.kernel

LIRC_MODE2 = 20
RET1 = "r0 = 1\nexit"


def _kernel(insns, prog_type: int, attach: int = 0, flags: int = 0) -> tuple[bool, str]:
    """(accepted, the last line of the kernel's log or the errno) of one load."""
    from bpfkit.kernel import sys as ks

    try:
        fd = ks.prog_load(
            prog_type, insns, expected_attach_type=attach, prog_flags=flags, log_level=1
        )
    except (VerifierError, KernelError) as e:
        log = getattr(e, "log", "") or ""
        lines = [ln for ln in log.splitlines() if ln and not ln.startswith("processed")]
        if lines:
            return False, lines[-1]
        return False, f"errno {e.errno}" if isinstance(e, KernelError) else ""
    os.close(fd)
    return True, ""


def _ours(insns, prog_type: int, attach: int | None = 0, flags: int = 0, maps=None):
    return verify(
        insns,
        prog_type=prog_type,
        attach_type=attach,
        prog_flags=flags,
        maps=maps,
        raise_on_error=False,
        cache=False,
    )


@functools.cache
def _has_prog_type(prog_type: int) -> bool:
    """Whether this kernel was built with ``prog_type`` (lirc_mode2 needs
    CONFIG_BPF_LIRC_MODE2): a trivial program of it loads with some attach type."""
    insns = assemble_text(RET1, dialect="llvm")
    return any(_kernel(insns, prog_type, at)[0] for at in (0, 16))


def _types() -> list[int]:
    return [t for t in range(1, PROG_NETFILTER + 1) if t != LIRC_MODE2 or _has_prog_type(t)]


def test_attach_types_per_program_type() -> None:
    """Every program type with every expected attach type (and a few past the last):
    the kernel's ``bpf_prog_load_check_attach`` and bpfkit agree on each pair."""
    insns = assemble_text(RET1, dialect="llvm")
    bad = []
    checked = 0
    for pt in _types():
        for at in range(0, 62):
            k, why = _kernel(insns, pt, at)
            o = _ours(insns, pt, at)
            checked += 1
            if k != o.ok:
                bad.append((pt, at, why, o.error and o.error.kernel_message))
    assert not bad, bad
    assert checked > 1500


def test_load_flags_per_program_type() -> None:
    """Every load flag bit (known and unknown) on every program type: sleepable only for
    kprobe (uprobes; the BTF-typed types bpfkit does not model), syscall programs only
    sleepable, unknown bits refused."""
    insns = assemble_text(RET1, dialect="llvm")
    default_attach = {9: 2, 18: 10, 21: 39, 25: 21, 30: 36, PROG_NETFILTER: 45}
    bad = []
    for pt in _types():
        at = default_attach.get(pt, 0)
        for flags in [0] + [1 << b for b in range(20)] + [BPF_F_SLEEPABLE | 1 << 2]:
            k, why = _kernel(insns, pt, at, flags)
            o = _ours(insns, pt, at, flags)
            if k != o.ok:
                bad.append((pt, hex(flags), why, o.error and o.error.kernel_message))
            elif not k and why and not why.startswith("errno") and pt not in BTF_CTX_TYPES:
                # the kernel logged why: bpfkit says the same
                assert o.error.kernel_message == why, (pt, hex(flags), why)
    assert not bad, bad


def test_syscall_program_must_be_sleepable() -> None:
    """The case that started this: ``BPF_PROG_TYPE_SYSCALL`` without ``BPF_F_SLEEPABLE``."""
    insns = assemble_text("r0 = 0\nexit", dialect="llvm")
    k, why = _kernel(insns, 31, 0, 0)
    assert not k and why == "Syscall programs can only be sleepable"
    o = _ours(insns, "syscall")
    assert not o.ok and o.error.kernel_message == why
    assert _kernel(insns, 31, 0, BPF_F_SLEEPABLE)[0]
    assert _ours(insns, "syscall", flags=BPF_F_SLEEPABLE).ok


def test_attach_table_names_only_known_types() -> None:
    """The table of allowed attach types covers the kernel's restricted program types."""
    assert set(ATTACH_ALLOWED) == {8, 9, 18, 21, 25, 28, 30, 31, PROG_NETFILTER}


# ---- maps: created in the kernel, described to bpfkit under the same fd ------------
def _map(mtype: int, key: int, value: int, entries: int, flags: int = 0, inner=None):
    from bpfkit.kernel import sys as ks

    fd = ks.map_create(
        mtype, key, value, entries, flags=flags, inner_map_fd=inner[0] if inner else 0
    )
    desc = MapDesc(mtype, key, value, entries, flags=flags, inner=inner[1] if inner else None)
    return fd, desc


#: a creatable shape of each map type (key, value, max_entries, flags); types needing
#: BTF or a cgroup are left out
SHAPES = {
    1: (4, 8, 4, 0),
    2: (4, 8, 4, 0),
    3: (4, 4, 4, 0),
    4: (4, 4, 4, 0),
    5: (4, 8, 4, 0),
    6: (4, 8, 4, 0),
    7: (4, 8, 4, 0),
    8: (4, 4, 4, 0),
    9: (4, 8, 4, 0),
    10: (4, 8, 4, 0),
    11: (8, 8, 4, 1),
    14: (4, 4, 4, 0),
    15: (4, 4, 4, 0),
    16: (4, 4, 4, 0),
    17: (4, 4, 4, 0),
    18: (4, 4, 4, 0),
    19: (8, 8, 0, 0),
    20: (4, 4, 4, 0),
    21: (8, 8, 0, 0),
    22: (0, 8, 4, 0),
    23: (0, 8, 4, 0),
    25: (4, 4, 4, 0),
    27: (0, 0, 4096, 0),
    30: (0, 8, 4, 0),
    31: (0, 0, 4096, 0),
}


def _map_ref(fd: int) -> list:
    insns = assemble_text(f"r1 = {fd} ll\nr0 = 0\nexit", dialect="llvm")
    insns[0] = insns[0].with_(src=op.PSEUDO_MAP_FD)
    return insns


def _compare_map(fd: int, desc: MapDesc, cases) -> list:
    bad = []
    insns = _map_ref(fd)
    for pt, flags in cases:
        k, why = _kernel(insns, pt, 0, flags)
        o = _ours(insns, pt, 0, flags, maps={fd: desc})
        if k != o.ok or (not k and why and o.error.kernel_message != why):
            bad.append((desc.type, pt, flags, why, o.error and o.error.kernel_message))
    return bad


def test_maps_of_sleepable_programs() -> None:
    """Which maps a sleepable program (syscall, uprobe.s) may reference, map type by map
    type, and through a map-in-map's inner map; non-sleepable kprobes may use them all."""
    cases = [(31, BPF_F_SLEEPABLE), (2, BPF_F_SLEEPABLE), (2, 0)]
    bad, seen = [], set()
    for mtype, shape in SHAPES.items():
        try:
            fd, desc = _map(mtype, *shape)
        except BpfError:
            continue  # not in this kernel
        try:
            bad += _compare_map(fd, desc, cases)
            seen.add(mtype)
        finally:
            os.close(fd)
    for itype in (2, 4, 11, 27, 30):
        ifd, idesc = _map(itype, *SHAPES[itype])
        try:
            for otype in (12, 13):
                fd, desc = _map(otype, 4, 4, 4, inner=(ifd, idesc))
                try:
                    bad += _compare_map(fd, desc, cases)
                finally:
                    os.close(fd)
        finally:
            os.close(ifd)
    assert not bad, bad
    # both kinds were compared
    assert seen & SLEEPABLE_MAPS and seen - SLEEPABLE_MAPS


def test_cgroup_storage_one_of_each_type() -> None:
    """Two cgroup storage maps of one type in one program are refused; one of each is not."""
    maps = [_map(t, 8, 8, 0) for t in (19, 19, 21)]
    try:
        for a, b, want in ((0, 1, False), (0, 2, True), (0, 0, True)):
            fa, fb = maps[a][0], maps[b][0]
            insns = assemble_text(f"r1 = {fa} ll\nr2 = {fb} ll\nr0 = 1\nexit", dialect="llvm")
            insns = [i.with_(src=op.PSEUDO_MAP_FD) if i.is_lddw else i for i in insns]
            k, why = _kernel(insns, 8)
            o = _ours(insns, 8, maps={m[0]: m[1] for m in maps})
            assert k == o.ok == want, (a, b, why)
            if not k:
                assert (
                    why
                    == o.error.kernel_message
                    == "only one cgroup storage of each type is allowed"
                )
    finally:
        for fd, _ in maps:
            os.close(fd)


@pytest.mark.parametrize(
    "mtype,entries,off",
    [(2, 1, 0), (2, 1, 4), (2, 1, 8), (2, 1, 1 << 29), (2, 2, 0), (1, 1, 0), (6, 1, 0)],
)
def test_direct_value_loads(mtype: int, entries: int, off: int) -> None:
    """A ``map_value`` lddw needs a one-element array and an offset inside its value."""
    fd, desc = _map(mtype, 4, 8, entries)
    try:
        insns = assemble_text(f"r1 = {fd} ll\nr0 = 0\nexit", dialect="llvm")
        insns[0] = insns[0].with_(src=op.PSEUDO_MAP_VALUE, imm=(off << 32) | fd)
        k, why = _kernel(insns, 1)
        o = _ours(insns, 1, maps={fd: desc})
        assert k == o.ok, (why, o.error and o.error.kernel_message)
        if not k and why:
            assert o.error.kernel_message == why
    finally:
        os.close(fd)


def test_map_references_checked_on_dead_paths() -> None:
    """The kernel resolves every map reference before it walks the program: a bad one on
    a branch never taken still rejects it."""
    insns = assemble_text("r0 = 0\nif r0 == 0 goto +2\nr1 = 4000 ll\nr0 = 0\nexit", dialect="llvm")
    insns = [i.with_(src=op.PSEUDO_MAP_FD) if i.is_lddw else i for i in insns]
    k, why = _kernel(insns, 1)
    o = _ours(insns, 1)
    assert not k and not o.ok
    assert why == o.error.kernel_message == "fd 4000 is not pointing to valid bpf_map"


def test_might_sleep_helper_in_non_sleepable_program() -> None:
    """bpf_copy_from_user in a non-sleepable kprobe: the kernel's reason, not "not supported"."""
    src = "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall 148\nr0 = 0\nexit"
    insns = assemble_text(src, dialect="llvm")
    k, why = _kernel(insns, 2)
    o = _ours(insns, 2)
    assert not k and not o.ok
    assert why == o.error.kernel_message == "helper call might sleep in a non-sleepable prog"


# ---- C programs: maps with spin locks and timers (BTF), sleepable sections ----------
@functools.cache
def _spec():
    from bpfkit.obj.build import compile_c

    out = Path(tempfile.mkdtemp(prefix="bpfkit-verifier-load-")) / "verifier_load.o"
    compile_c(C_DIR / "verifier_load.c", out)
    return out


def _c_programs() -> list[str]:
    import re

    text = (C_DIR / "verifier_load.c").read_text()
    return re.findall(r'^SEC\("[^"]+"\) int (\w+)\(', text, re.M)


@needs_clang
@pytest.mark.parametrize("name", _c_programs())
def test_map_program_compatibility(name: str) -> None:
    """Each program of ``tests/c/verifier_load.c`` alone, through bpfkit's kernel loader
    (maps with BTF, the section's flags) and through ``verify_spec``: same verdict, and
    the kernel's reason."""
    from bpfkit.kernel.loader import load_spec
    from bpfkit.obj import load_object
    from bpfkit.verifier import verify_spec

    path = _spec()
    try:
        load_spec(load_object(path), programs=[name], log_level=1).close()
        k, log = True, ""
    except VerifierError as e:
        k, log = False, e.log or ""
    r = verify_spec(load_object(path), name, raise_on_error=False, cache=False)
    assert r.ok == k, (log[-500:], r.error and r.error.kernel_message)
    if not k:
        assert r.error.kernel_message in log
