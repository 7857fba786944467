"""Differential test: the interpreter against the running kernel on random programs.

Each run generates ``BPFKIT_DIFF_N`` (default 2,000) programs with :mod:`progen` from a
fixed base seed (``BPFKIT_EXPLORE=1``: a fresh one; ``BPFKIT_DIFF_SEED`` pins it), loads each as a socket filter twice (r0's
low and high halves, since ``BPF_PROG_TEST_RUN`` reports 32 bits), runs them with
``BPF_PROG_TEST_RUN``, and compares the 64-bit result with the interpreter's ``r0``.
Every generated program must pass the kernel verifier (a rejection is a generator bug)
and there must be zero disagreements. Reproduce one program with
``progen.generate(seed, **params)`` using the seed and parameters printed on failure.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from dataclasses import dataclass

import pytest
from conftest import EXPLORE
from progen import FEATURES, MODIFIERS, combine, fold_epilogue, format_program, generate

from bpfkit.errors import BpfError, VerifierError
from bpfkit.isa import encode
from bpfkit.isa import opcodes as op
from bpfkit.isa.builders import R0, R1, Label, assemble, exit_, gotol, jeq, lddw, mov64
from bpfkit.kernel import sys as bsys
from bpfkit.uapi.enums import ProgType
from bpfkit.vm.interp import run_program

N_PROGRAMS = int(os.environ.get("BPFKIT_DIFF_N", "2000"))
PACKET = bytes(64)  # socket-filter test runs need at least an Ethernet header
MAX_REPORTED = 5


def program_params(seed: int) -> dict:
    """Length and feature set for the program of ``seed`` (mostly all features, some subsets)."""
    rng = random.Random(seed ^ 0x5EED)
    length = rng.choice((5, 10, 20, 40, 40, 40, 40, 60, 80))
    if rng.random() < 0.75:
        return {"length": length}
    kinds = sorted(FEATURES - MODIFIERS)
    feats = set(rng.sample(kinds, rng.randrange(1, 5)))
    feats |= {f for f in sorted(MODIFIERS) if rng.random() < 0.7}
    return {"length": length, "features": sorted(feats)}


def kernel_r0(insns) -> int:
    """All 64 bits of r0 from the kernel: two loads and two test runs."""
    halves = []
    for part in ("lo", "hi"):
        fd = bsys.prog_load(ProgType.SOCKET_FILTER, fold_epilogue(insns, part))
        try:
            halves.append(bsys.prog_test_run(fd, PACKET).retval)
        finally:
            os.close(fd)
    return combine(*halves)


def kernel_rewrote(insns) -> int | None:
    """r0 of bpfkit's interpreter on the kernel's own rewritten program (xlated), when the
    kernel's verifier rewrote it (dead branches hard-wired or removed), else None.

    The kernel's verifier removes branches it believes are never taken. When that belief
    is wrong (a kernel verifier bug), the kernel runs a different program than it was
    given; running the interpreter on the xlated code tells that apart from an
    interpreter bug: if the two then agree, the kernel changed the program's meaning.
    """
    from bpfkit.isa.instruction import decode

    def cond_jumps(prog) -> int:
        return sum(1 for i in prog if i.is_jump and (i.opcode & 0xF0) not in (op.JA, 0x80, 0x90))

    halves = []
    hard_wired = False
    for part in ("lo", "hi"):
        prog = fold_epilogue(insns, part)
        fd = bsys.prog_load(ProgType.SOCKET_FILTER, prog)
        try:
            xl = bsys.prog_info(fd, xlated=True).xlated
        finally:
            os.close(fd)
        xinsns = decode(xl)
        # the kernel adds guard jumps (division by a register) but removes a branch
        # only when its verifier decided the branch's outcome
        if cond_jumps(xinsns) < cond_jumps(prog):
            hard_wired = True
        halves.append(run_program(xinsns, budget=1_000_000).r0 & 0xFFFFFFFF)
    return combine(*halves) if hard_wired else None


@dataclass
class Finding:
    seed: int
    params: dict
    insns: list
    what: str

    def report(self) -> str:
        return f"seed={self.seed} params={self.params}: {self.what}\n{format_program(self.insns)}"


# Programs that once exposed a disagreement: (seed, generate() params, sha256 prefix of the
# encoded program, what was wrong). The digest pins the program: if progen changes, the
# seed makes a different program and the test says so; re-derive the seed or drop it.
REGRESSIONS = [
    (
        1018891505374,
        {"length": 80, "features": ["alu64", "bswap", "div", "ja", "jmp32", "lddw"]},
        "6d030bc79bdae524",
        "interpreter: two block transfers merged into a chained conditional expression",
    ),
]


@pytest.mark.kernel
@pytest.mark.parametrize(
    "seed,params,digest,what", REGRESSIONS, ids=[f"seed{r[0]}" for r in REGRESSIONS]
)
def test_regression_programs(seed, params, digest, what):
    insns = generate(seed, **params)
    got = hashlib.sha256(encode(insns)).hexdigest()[:16]
    assert got == digest, (
        f"progen now makes a different program for seed {seed}; update REGRESSIONS"
    )
    k = kernel_r0(insns)
    r = run_program(insns, budget=1_000_000).r0
    assert r == k, f"{what}\nkernel r0={k:#018x} interpreter r0={r:#018x}\n{format_program(insns)}"


@pytest.mark.kernel
def test_interpreter_matches_kernel():
    fresh = random.SystemRandom().randrange(1 << 40) if EXPLORE else 20261207 << 8
    base = int(os.environ.get("BPFKIT_DIFF_SEED", fresh))
    rejected: list[Finding] = []
    disagreements: list[Finding] = []
    kernel_bugs: list[Finding] = []  # the kernel's verifier rewrote the program wrongly
    t_gen = t_kernel = t_interp = 0.0
    t_start = time.perf_counter()
    for i in range(N_PROGRAMS):
        seed = base + i
        params = program_params(seed)
        t0 = time.perf_counter()
        insns = generate(seed, **params)
        t1 = time.perf_counter()
        try:
            k = kernel_r0(insns)
        except VerifierError as e:
            rejected.append(
                Finding(seed, params, insns, f"kernel verifier rejected: {e}\n{e.log[-2000:]}")
            )
            continue
        t2 = time.perf_counter()
        try:
            r = run_program(insns, budget=1_000_000).r0
        except BpfError as e:
            r = None
            what = f"interpreter failed ({type(e).__name__}: {e}); kernel r0={k:#018x}"
        t3 = time.perf_counter()
        t_gen, t_kernel, t_interp = t_gen + t1 - t0, t_kernel + t2 - t1, t_interp + t3 - t2
        if r != k:
            if r is not None:
                what = f"kernel r0={k:#018x} interpreter r0={r:#018x} (xor {k ^ r:#x})"
                if kernel_rewrote(insns) == k:
                    kernel_bugs.append(Finding(seed, params, insns, what))
                    continue
            disagreements.append(Finding(seed, params, insns, what))
    total = time.perf_counter() - t_start
    summary = (
        f"{N_PROGRAMS} programs from base seed {base} in {total:.1f}s "
        f"(generate {t_gen:.1f}s, kernel {t_kernel:.1f}s, interpreter {t_interp:.1f}s): "
        f"{len(rejected)} rejected by the kernel, {len(disagreements)} disagreements, "
        f"{len(kernel_bugs)} programs the kernel's verifier rewrote wrongly"
    )
    print(summary)
    for f in kernel_bugs:
        print(f"kernel verifier rewrote: {f.report()}")
    problems = rejected + disagreements
    if problems:
        details = "\n\n".join(f.report() for f in problems[:MAX_REPORTED])
        pytest.fail(f"{summary}\n\n{details}", pytrace=False)


# ---------------------------------------------------------------------------
# The generator itself (no kernel needed)
# ---------------------------------------------------------------------------


def test_generate_is_deterministic():
    assert generate(7) == generate(7)
    assert generate(7) != generate(8)
    assert generate(7, length=10) != generate(7, length=30)


def test_generate_features_and_shape():
    for seed in range(50):
        insns = generate(seed, length=30, features={"alu32", "div"})
        assert insns[-1].is_exit
        assert not any(i.is_jump for i in insns)
        assert not any(i.cls == op.STX and i.opcode & 0xE0 == op.ATOMIC for i in insns)
    with pytest.raises(ValueError):
        generate(1, features={"nonsense"})
    with pytest.raises(ValueError):
        generate(1, features={"div"})  # a modifier alone selects no instruction kind


def test_generate_covers_the_requested_kinds():
    seen: set[str] = set()
    for seed in range(200):
        for insn in generate(seed):
            c, code = insn.cls, insn.opcode
            if insn.is_lddw:
                seen.add("lddw")
            elif c == op.ALU64 and code & 0xF0 == op.END:
                seen.add("bswap")
            elif c in (op.ALU, op.ALU64) and code & 0xF0 in (op.DIV, op.MOD) and insn.off == 1:
                seen.add("sdiv/smod")
            elif c in (op.ALU, op.ALU64) and code & 0xF0 == op.MOV and insn.off:
                seen.add("movsx")
            elif c == op.JMP32 and code & 0xF0 == op.JA:
                seen.add("gotol")
            elif c == op.JMP and code & 0xF0 == op.JA:
                seen.add("ja")
            elif c == op.JMP32:
                seen.add("jmp32")
            elif c == op.JMP and insn.is_jump:
                seen.add("jmp")
            elif c == op.LDX and code & 0xE0 == op.MEMSX:
                seen.add("ldsx")
            elif c == op.STX and code & 0xE0 == op.ATOMIC:
                seen.add({op.XCHG: "xchg", op.CMPXCHG: "cmpxchg"}.get(insn.imm, "atomic"))
            elif c == op.ST:
                seen.add("st")
    assert seen >= {
        "lddw",
        "bswap",
        "sdiv/smod",
        "movsx",
        "gotol",
        "ja",
        "jmp32",
        "jmp",
        "ldsx",
        "xchg",
        "cmpxchg",
        "atomic",
        "st",
    }


def test_fold_epilogue_keeps_jumps_right():
    # Two exits, a jump onto an exit, and a gotol over an lddw.
    prog = assemble(
        [
            lddw(R0, 0x1122334455667788),
            jeq(R1, 0, "other"),
            exit_(),
            Label("other"),
            lddw(R0, 0x99AABBCCDDEEFF00),
            gotol("end"),
            mov64(R0, 0),
            Label("end"),
            exit_(),
        ]
    )
    for mem, expect in ((b"", 0x99AABBCCDDEEFF00), (b"x", 0x1122334455667788)):
        lo = run_program(fold_epilogue(prog, "lo"), mem=mem).r0
        hi = run_program(fold_epilogue(prog, "hi"), mem=mem).r0
        assert combine(lo, hi) == expect
        assert hi == expect >> 32
    with pytest.raises(ValueError):
        fold_epilogue(prog, "middle")


def test_generated_programs_run_in_interpreter():
    for seed in range(30):
        insns = generate(seed, length=60)
        res = run_program(insns)
        assert 0 <= res.r0 < 1 << 64 and res.insns > 0
        assert run_program(fold_epilogue(insns, "hi")).r0 == res.r0 >> 32


def test_program_params_are_valid():
    for seed in range(300):
        generate(seed, **program_params(seed))
