"""Profiles on which bpfkit once differed from libseccomp 2.5.4 — always checked.

Each one came from a random run (test_seccomp_oracle.py, its seed and index in the
comment) and was fixed in bpfkit; the test compiles it with both, requires bpfkit's
rebuilt libseccomp program to equal libseccomp's byte for byte, and bpfkit's program to
decide as libseccomp's on cases around the profile's values — including the
``witness`` decisions that differed before the fix. Oracle: Debian's python3-seccomp
(skips without it; fails under ``BPFKIT_REQUIRE_KERNEL=1``).
"""

from __future__ import annotations

import random
import time

import pytest
from test_seccomp_oracle import cases, require_oracle

from bpfkit.errors import ProfileError
from bpfkit.seccomp import Arg, Profile, compile_profile
from bpfkit.seccomp.check import run_filter, seccomp_data
from bpfkit.seccomp.libseccomp import export, job
from bpfkit.seccomp.profile import Rule
from bpfkit.seccomp.tables import ARCHES, table

T7 = 0x7FF00007  # SCMP_ACT_TRACE(7)

# name: (native, default action, architectures, [(names, action, [(index, op, value[, two])])])
REGRESSIONS: dict[str, tuple[str, int, list[str], list]] = {
    # seed 202612061 #12 (the lead's failure). libseccomp 2.5.4 hashes a block's
    # accumulator states with its instructions: x32's "jeq #0" on args[2] (reached with
    # args[2] loaded) and x86_64's "jeq #0" on args[0].hi were one block in bpfkit
    'x32-acc-state-202612061': (
        'x32', 0x80000000, ['x86_64', 'i386', 'aarch64'],
        [
            (['socket'], 0x50001, [(0, 'ge', 0x1ffffffff), (2, 'le', 0x100000001)]),
            (['fcntl', 'socketcall', 'socket'], 0x80000000, []),
            (['fcntl', 'socketcall'], 0x7ff00007, [(0, 'lt', 2)]),
            (['socketcall', 'socket'], 0x50001, []),
            (['socketcall', 'fcntl'], 0x5000d, [(2, 'ne', 5)]),
            (['socket', 'socketcall'], 0x7ffc0000, [(0, 'eq', 0x100000000), (1, 'ge', 2)]),
            (['socketcall'], 0x7ffc0000, [(1, 'masked_eq', 0xf0f0), (1, 'masked_eq', 0)]),
            (['socketcall', 'socket', 'fcntl'], 0x7ff00007,
             [(2, 'ne', 0x80000000), (2, 'ne', 0x8000000000000000)]),
        ],
    ),
    # the same cause, reduced; here the shared block changed a decision: i386's fcntl
    # fell into aarch64's args[0].hi test with args[2] in the accumulator
    'acc-state-aarch64-i386': (
        'aarch64', 0x80000000, ['i386'],
        [
            (['fcntl'], T7, [(0, 'lt', 2)]),
            (['fcntl'], T7, [(2, 'ne', 0x80000000)]),
            (['fcntl'], T7, [(2, 'ne', 0x8000000000000000)]),
        ],
    ),
    # wide seed 5001 #3: a legitimate merge took bpfkit >2M steps (13 s) and it refused the
    # profile as an endless loop; libseccomp's prune repeats identical walks, now memoised
    'deep-merge-x32-5001': (
        'x32', 0x7ff00000, ['i386', 'x86_64'],
        [
            (['arm_fadvise64_64', 'socketcall', 'unshare'], 0x30000,
             [(4, 'eq', 0x7fffffffffffffff), (0, 'gt', 0xffffffff00000000), (0, 'ne', 5),
              (0, 'gt', 0x8000000000000000), (2, 'eq', 0x7fffffffffffffff),
              (0, 'eq', 0x100000000)]),
            (['arm_fadvise64_64'], 0x50001,
             [(0, 'ne', 0xffffffffffffffff), (0, 'masked_eq', 0xf0f0), (1, 'masked_eq', 255, 255)]),
            (['arm_fadvise64_64', 'socketcall'], 0x0,
             [(3, 'lt', 0xdaba997a5bdc4d40), (4, 'eq', 0x10000000b), (3, 'eq', 0x80000000),
              (4, 'ge', 0x1ffffffff)]),
            (['unshare', 'socketcall'], 0x7fff0000,
             [(2, 'ge', 0xc9d5f37265e7c7b4), (3, 'masked_eq', 0xffffffff, 0xffffffff),
              (3, 'lt', 0x80000000)]),
            (['socketcall'], 0x30000, [(1, 'ge', 0x80000001)]),
            (['arm_fadvise64_64', 'socketcall'], 0x500fe,
             [(3, 'gt', 0xffffffff00000007), (0, 'masked_eq', 255, 3), (2, 'eq', 0x9a7da9406263f1c3)]),
            (['arm_fadvise64_64', 'unshare'], 0x7ff00007,
             [(2, 'ge', 0x80000000), (2, 'le', 0x13d5309c5b6eded0), (0, 'ne', 20),
              (0, 'gt', 0xbd8adfdcee526017), (5, 'ge', 0x8000000000000000),
              (2, 'eq', 0x8000000000000000)]),
            (['unshare'], 0x7ff00000, [(1, 'masked_eq', 0xffffffff, 0x8000000000000001), (5, 'lt', 3)]),
            (['arm_fadvise64_64', 'unshare'], 0x7ff00007, []),
            (['arm_fadvise64_64'], 0x5000d, [(0, 'gt', 0xffffffff), (1, 'lt', 0xffffffff)]),
            (['arm_fadvise64_64'], 0x5000d, [(2, 'eq', 0xfffffffe), (2, 'lt', 0x85a89cce922fde06)]),
            (['unshare'], 0x0, [(3, 'gt', 0x47bcce28900f5480), (0, 'lt', 11)]),
            (['socketcall'], 0x50001, []),
            (['arm_fadvise64_64', 'unshare', 'socketcall'], 0x0, []),
            (['arm_fadvise64_64'], 0x50001, [(0, 'ge', 0x7fffffff)]),
            (['arm_fadvise64_64', 'socketcall'], 0x80000000,
             [(0, 'masked_eq', 0xffffffff00000000, 0x100000000), (0, 'ne', 0x8000000000000000),
              (5, 'le', 0x7fffffffffffffff), (4, 'lt', 2), (2, 'le', 0xeb031a4be36fa67d),
              (4, 'eq', 0x849705c7f837716b)]),
        ],
    ),
}  # fmt: skip

# decisions that differed before the fix: (name, arch, syscall, args)
WITNESSES = [
    ("acc-state-aarch64-i386", "i386", "fcntl", [2, 0, 0x80000000]),
]


def build(name: str) -> tuple[Profile, str]:
    """The regression profile ``name`` and its native architecture."""
    native, default, arches, rules = REGRESSIONS[name]
    prof = Profile(default, list(arches))
    for names, action, conds in rules:
        prof.rules.append(Rule(list(names), action, [Arg(*c) for c in conds]))
    return prof, native


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_profile_agrees_with_libseccomp(name: str) -> None:
    require_oracle()
    prof, native = build(name)
    t0 = time.perf_counter()
    flt = compile_profile(prof, native)
    took = time.perf_counter() - t0
    res = export([job(prof, native)])[0]
    assert res.error is None, res.error
    assert flt.libseccomp_program == res.program  # byte for byte
    rng = random.Random(name)
    n = 0
    for tok, nr, args in cases(prof, native, rng, 400):
        data = seccomp_data(nr, tok, args)
        assert run_filter(flt.program, data).ret == run_filter(res.program, data).ret, (
            hex(tok),
            hex(nr),
            [hex(a) for a in args],
        )
        n += 1
    for wname, arch, syscall, args in WITNESSES:
        if wname != name:
            continue
        data = seccomp_data(table(arch)[syscall], ARCHES[arch].audit, args)
        assert run_filter(flt.program, data).ret == run_filter(res.program, data).ret
    assert n == 400
    assert took < 20, f"compiling took {took:.1f} s"


def test_witnesses_name_regressions() -> None:
    for wname, arch, syscall, _ in WITNESSES:
        assert wname in REGRESSIONS and syscall in table(arch)


def test_regressions_compile_without_the_oracle() -> None:
    """Without libseccomp: every regression profile compiles (none is refused)."""
    for name in REGRESSIONS:
        prof, native = build(name)
        try:
            compile_profile(prof, native)
        except ProfileError as e:  # pragma: no cover - a failure message
            pytest.fail(f"{name}: {e}")
