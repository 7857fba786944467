"""The binary-search dispatch keeps every decision of the program it replaces.

No oracle needed: bpfkit's rebuilt libseccomp program (equal to libseccomp's, see
test_seccomp_oracle.py) and the re-dispatched one run on the same ``seccomp_data`` for
hypothesis-chosen random profiles; both must decide alike and pass the kernel's
seccomp checks. Also: the dispatch analysis reads libseccomp's shapes (x32 checks,
-1, several architectures) and gives up cleanly on programs it does not understand.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_seccomp_oracle import cases, random_profile

from bpfkit.classic import insn as c
from bpfkit.errors import ProfileError
from bpfkit.seccomp import compile_profile, load_profile
from bpfkit.seccomp.check import run_filter, seccomp_data, validate
from bpfkit.seccomp.dispatch import analyse, redispatch
from bpfkit.seccomp.tables import ARCHES


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_redispatch_keeps_decisions(seed: int) -> None:
    rng = random.Random(seed)
    prof, native = random_profile(rng)
    try:
        flt = compile_profile(prof, native)
    except ProfileError:
        return  # refused (as libseccomp refuses: EEXIST)
    validate(flt.program)
    for tok, nr, args in cases(prof, native, rng, 80):
        data = seccomp_data(nr, tok, args)
        assert run_filter(flt.program, data).ret == run_filter(flt.libseccomp_program, data).ret


def test_docker_default_dispatch_map() -> None:
    flt = compile_profile(load_profile("docker-default", arch="x86_64"), "x86_64")
    tokens, other = analyse(flt.libseccomp_program)
    assert [t.token for t in tokens] == [ARCHES["x86_64"].audit, ARCHES["i386"].audit]
    assert flt.libseccomp_program[other[0]] == c.stmt(c.RET | c.K, 0)  # bad arch: KILL_THREAD
    x86 = tokens[0]
    # every u32 number is covered exactly once, x32 numbers included (x32 is in the profile)
    assert x86.intervals[0][0] == 0 and x86.intervals[-1][1] == 0xFFFFFFFF
    assert all(a[1] + 1 == b[0] for a, b in zip(x86.intervals, x86.intervals[1:], strict=False))
    # the new program is much smaller than libseccomp's linear list
    assert len(flt.program) < len(flt.libseccomp_program) / 2


def test_unknown_shapes_are_left_alone() -> None:
    # nr loaded before any architecture test: not libseccomp's shape
    prog = [c.stmt(c.LD | c.W | c.ABS, 0), c.stmt(c.RET | c.K, 0x7FFF0000)]
    assert redispatch(prog) is None
    prog = [
        c.stmt(c.LD | c.W | c.ABS, 4),
        c.jump(c.JMP | c.JGT | c.K, 5, 0, 1),
        c.stmt(c.RET | c.K, 0),
        c.stmt(c.RET | c.K, 0x7FFF0000),
    ]
    assert redispatch(prog) is None  # an ordered test on an unknown token


def test_x86_64_without_x32_keeps_the_abi_checks() -> None:
    from bpfkit.seccomp import Profile

    p = Profile.new("errno", errno=1)
    p.add("allow", ["read", "write"])
    flt = compile_profile(p, "x86_64")
    tok = ARCHES["x86_64"].audit
    for nr, want in [
        (0, 0x7FFF0000),
        (1, 0x7FFF0000),
        (2, 0x50001),
        (0x40000000, 0),
        (0xFFFFFFFF, 0x50001),
    ]:
        assert run_filter(flt.program, seccomp_data(nr, tok)).ret == want
