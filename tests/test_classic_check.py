"""The classic checker against the kernel: SO_ATTACH_FILTER and seccomp must agree with it.

Each rule has a hand-made program that breaks it (the checker names the instruction and
the rule, and the kernel refuses it too); random and mutated programs then hold the
checker's verdict equal to the kernel's on every program.
"""

from __future__ import annotations

import errno

import pytest
from classic_oracles import (
    require_seccomp,
    require_socket_filters,
    seccomp_verdict,
    socket_verdict,
)
from classic_strategies import classic_program, examples, random_program
from hypothesis import HealthCheck, given, settings

from bpfkit.classic import insn as c
from bpfkit.classic.check import check, is_valid
from bpfkit.classic.insn import SockFilter, stmt
from bpfkit.classic.listing import parse_listing
from bpfkit.errors import ClassicError

RET0 = stmt(c.RET | c.K, 0)
RETA = stmt(c.RET | c.RVAL_A)

# (listing or program, mode, failing insn, rule)
CASES = [
    ([], "socket", None, "length"),
    ([RET0] * 4097, "socket", None, "length"),
    ([SockFilter(0x0E, 0, 0, 0), RET0], "socket", 0, "opcode"),  # ret x
    ([SockFilter(0x08, 0, 0, 0), RET0], "socket", 0, "opcode"),  # ldh #imm
    ([SockFilter(0x21, 0, 0, 0), RET0], "socket", 0, "opcode"),  # seccomp's internal ldx abs
    ("ld #1\ndiv #0\nret a", "socket", 1, "div-by-zero"),
    ("ld #1\nmod #0\nret a", "socket", 1, "div-by-zero"),
    ("lsh #32\nret a", "socket", 0, "shift-range"),
    ("rsh #31\nlsh #-1\nret a", "socket", 1, "shift-range"),
    ("st M[16]\nret a", "socket", 0, "scratch-index"),
    ("ld #0\nja 3\nret a", "socket", 1, "jump-range"),
    ("ja 1\nret a", "socket", None, None),
    ("jeq #0 jt 1 jf 2\nret a", "socket", 0, "jump-range"),
    ("ld [rxhash]\nld [-4034]\nret a", "socket", 1, "ancillary"),  # SKF_AD_OFF + 62
    ("ld [-1048576]\nld [-2097152]\nldb [x + -4096]\nret a", "socket", None, None),
    ("ld #1\nret #0\ntax", "socket", 2, "no-return"),
    ("ld M[0]\nret a", "socket", 0, "scratch-uninit"),
    ("ld #0\njeq #1 jt 2 jf 3\nst M[1]\nld M[1]\nret a", "socket", 3, "scratch-uninit"),
    ("st M[1]\njeq #1 jt 2 jf 3\nst M[2]\nldx M[1]\nret a", "socket", None, None),
    ("st M[3]\nret #0\nld M[3]\nret a", "socket", None, None),  # kernel: straight-line pass
    ("ja 2\nst M[0]\nret #0\nld M[0]\nret a", "socket", 3, "scratch-uninit"),
    ("ld [0]\nld [60]\nret a", "seccomp", None, None),
    ("ld [64]\nret a", "seccomp", 0, "seccomp-load"),
    ("ld [2]\nret a", "seccomp", 0, "seccomp-load"),
    ("ldh [0]\nret a", "seccomp", 0, "seccomp-opcode"),
    ("ld [x + 0]\nret a", "seccomp", 0, "seccomp-opcode"),
    ("ldxb 4*([0]&0xf)\nret a", "seccomp", 0, "seccomp-opcode"),
    ("ld [proto]\nret a", "seccomp", 0, "seccomp-load"),
    ("ld #5\nmod #3\nret a", "seccomp", 1, "seccomp-opcode"),
    ("ld #pktlen\nldx #pktlen\nret a", "seccomp", None, None),
    ("ld M[0]\nret a", "seccomp", 0, "scratch-uninit"),
]


def _prog(p) -> list[SockFilter]:
    return parse_listing(p) if isinstance(p, str) else p


@pytest.mark.parametrize("prog,mode,insn,rule", CASES)
def test_rules(prog, mode: str, insn: int | None, rule: str | None) -> None:
    prog = _prog(prog)
    if rule is None:
        check(prog, mode=mode)
    else:
        with pytest.raises(ClassicError) as ei:
            check(prog, mode=mode)
        assert ei.value.rule == rule
        assert ei.value.insn == insn
        assert f"[{rule}]" in str(ei.value)


@pytest.mark.parametrize("prog,mode,insn,rule", CASES)
def test_rules_agree_with_kernel(prog, mode: str, insn: int | None, rule: str | None) -> None:
    prog = _prog(prog)
    if mode == "socket":
        require_socket_filters()
        verdict = socket_verdict(prog)
    else:
        require_seccomp()
        verdict = seccomp_verdict(prog)
    assert verdict == (0 if rule is None else errno.EINVAL)


def _long_jump(n_loads: int, pad: int = 0) -> list[SockFilter]:
    """ja over ``n_loads`` word loads (14 eBPF instructions each in the kernel) and
    ``pad`` immediate loads (one each)."""
    body = [stmt(c.LD | c.W | c.ABS, 20000)] * n_loads + [stmt(c.LD | c.IMM, 0)] * pad
    return [stmt(c.JMP | c.JA, len(body))] + body + [RETA]


def test_translated_jump_must_fit_16_bits() -> None:
    require_socket_filters()
    far = _long_jump(2400)  # 2400 * 14 > 32767
    with pytest.raises(ClassicError) as ei:
        check(far)
    assert (ei.value.rule, ei.value.insn) == ("translate-jump", 0)
    assert socket_verdict(far) == errno.EINVAL
    # the boundary, exactly: 2340 * 14 + 7 = 32767 is the longest offset eBPF holds;
    # accepted programs this long may still exceed the socket's optmem (ENOMEM)
    assert is_valid(_long_jump(2340, 7))
    assert socket_verdict(_long_jump(2340, 7)) in (0, errno.ENOMEM)
    assert not is_valid(_long_jump(2340, 8))
    assert socket_verdict(_long_jump(2340, 8)) == errno.EINVAL


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_program(max_len=14))
def test_random_programs_agree_with_so_attach_filter(prog: list[SockFilter]) -> None:
    require_socket_filters()
    verdict = socket_verdict(prog)
    assert verdict in (0, errno.EINVAL, errno.ENOMEM)
    assert is_valid(prog) == (verdict != errno.EINVAL), prog


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classic_program(max_len=30))
def test_generated_programs_are_valid(prog: list[SockFilter]) -> None:
    require_socket_filters()
    check(prog)
    assert socket_verdict(prog) == 0


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_program(max_len=10))
def test_random_programs_agree_with_seccomp(prog: list[SockFilter]) -> None:
    require_seccomp()
    verdict = seccomp_verdict(prog)
    assert verdict in (0, errno.EINVAL)
    assert is_valid(prog, mode="seccomp") == (verdict == 0), prog


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classic_program(max_len=12, seccomp=True))
def test_seccomp_shaped_programs_agree_with_seccomp(prog: list[SockFilter]) -> None:
    require_seccomp()
    assert is_valid(prog, mode="seccomp") == (seccomp_verdict(prog) == 0), prog


def test_bad_mode() -> None:
    with pytest.raises(ValueError):
        check([RET0], mode="xdp")  # type: ignore[arg-type]
