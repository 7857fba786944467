"""bpfkit's seccomp compiler decides as libseccomp does (Debian's python3-seccomp as oracle).

Random profiles — several rules per syscall with different actions, several conditions
per rule, every operator, 64-bit values with high halves, socket/ipc calls that i386
multiplexes, foreign architectures and x32 — are built both by bpfkit and by libseccomp;
both programs run on the same ``seccomp_data`` (bpfkit's classic interpreter) and must
return the same value. A profile libseccomp refuses (EEXIST) must be refused by bpfkit.
The programs themselves may differ.

Skips where ``/usr/bin/python3`` lacks ``seccomp``; fails instead under
``BPFKIT_REQUIRE_KERNEL=1`` (CI installs python3-seccomp through scripts/setup).
"""

from __future__ import annotations

import os
import random

import pytest

from bpfkit.errors import ProfileError
from bpfkit.seccomp import Arg, Profile, compile_profile, load_profile
from bpfkit.seccomp import actions as act
from bpfkit.seccomp.check import run_filter, seccomp_data
from bpfkit.seccomp.compiler import reference_decision
from bpfkit.seccomp.libseccomp import HANG, available, export, job
from bpfkit.seccomp.tables import ARCHES, X32_SYSCALL_BIT, table


def require_oracle() -> None:
    ok, why = available()
    if ok:
        return
    if os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1":
        pytest.fail(
            f"BPFKIT_REQUIRE_KERNEL=1 but the libseccomp oracle is missing: {why}", pytrace=False
        )
    pytest.skip(why)


# Names known to libseccomp 2.5.4 and to the 6.12 tables; the socket/ipc ones exercise
# i386's socketcall/ipc multiplexing.
POOL = [
    "read", "write", "close", "openat", "mmap", "ioctl", "fcntl", "prctl", "clone",
    "personality", "kill", "futex", "mkdir", "getpid", "arch_prctl", "socket", "connect",
    "sendto", "recvmsg", "accept4", "shutdown", "semop", "shmget", "msgsnd", "socketcall",
    "ipc", "_llseek", "time", "getrandom", "pipe",
]  # fmt: skip

OPS = ["eq", "ne", "lt", "le", "gt", "ge", "masked_eq"]
ACTIONS = [
    act.RET_ALLOW,
    act.RET_ERRNO | 1,
    act.RET_ERRNO | 13,
    act.RET_KILL_THREAD,
    act.RET_KILL_PROCESS,
    act.RET_TRAP,
    act.RET_TRACE | 7,
    act.RET_LOG,
]

EDGE = [0, 1, 2, 3, 5, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x100000001,
        0x1FFFFFFFF, 0xFFFFFFFF00000000, 0xFFFFFFFFFFFFFFFF, 0x8000000000000000]  # fmt: skip


def _value(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.choice(EDGE)
    if r < 0.8:
        return rng.randrange(0, 16) | (rng.choice([0, 1, 0xFFFFFFFF]) << 32)
    return rng.getrandbits(64)


def random_profile(rng: random.Random) -> tuple[Profile, str]:
    """A random profile and the native architecture to compile it for."""
    native = rng.choice(["x86_64", "x86_64", "i386", "aarch64", "x32"])
    others = [a for a in ARCHES if a != native]
    extra = rng.sample(others, rng.randrange(0, len(others) + 1))
    prof = Profile(rng.choice(ACTIONS), extra)
    names = rng.sample(POOL, rng.randrange(1, 7))
    for _ in range(rng.randrange(1, 10)):
        nm = rng.sample(names, rng.randrange(1, min(3, len(names)) + 1))
        args = []
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            op = rng.choice(OPS)
            idx = rng.randrange(0, 6) if rng.random() < 0.5 else rng.randrange(0, 2)
            if op == "masked_eq":
                mask = rng.choice([_value(rng), 0xFF, 0xFFFFFFFF00000000, 0, 0xF0F0])
                args.append(
                    Arg(idx, op, mask, _value(rng) & mask if rng.random() < 0.7 else _value(rng))
                )
            else:
                args.append(Arg(idx, op, _value(rng)))
        prof.rules.append(
            __import__("bpfkit.seccomp.profile", fromlist=["Rule"]).Rule(
                nm, rng.choice(ACTIONS), args
            )
        )
    return prof, native


def cases(
    prof: Profile, native: str, rng: random.Random, n: int
) -> list[tuple[int, int, list[int]]]:
    """(arch token, nr, args) near the profile's numbers and values, plus foreign ones."""
    values = set(EDGE)
    for r in prof.rules:
        for a in r.args:
            for v in (a.value, a.value_two, a.value & a.value_two):
                for d in (v, v + 1, v - 1, v ^ (1 << 32), v & 0xFFFFFFFF, v >> 32 << 32):
                    values.add(d & 0xFFFFFFFFFFFFFFFF)
    values_l = sorted(values)
    arches = [native, *prof.architectures]
    tokens = sorted({ARCHES[a].audit for a in ARCHES} | {0x40000028, 0xC00000F3})
    names = [n for r in prof.rules for n in r.names] + ["socketcall", "ipc", "getppid"]
    out = []
    for _ in range(n):
        arch = rng.choice(arches + ["x86_64", "i386"])
        tok = ARCHES[arch].audit if rng.random() < 0.9 else rng.choice(tokens)
        name = rng.choice(names)
        nr = table(arch).get(name)
        if nr is None or rng.random() < 0.08:
            nr = rng.choice(
                [
                    0xFFFFFFFF,
                    X32_SYSCALL_BIT,
                    X32_SYSCALL_BIT | 1,
                    rng.getrandbits(32),
                    520,
                    0x40000200,
                ]
            )
        args = [
            rng.choice(values_l) if rng.random() < 0.8 else rng.getrandbits(64) for _ in range(6)
        ]
        out.append((tok, nr, args))
    return out


def compare(seed: int, profiles: int, per_profile: int) -> dict[str, int]:
    """Compile ``profiles`` random profiles both ways; count decisions and disagreements.

    Three checks per profile: bpfkit's rebuilt libseccomp program equals libseccomp's
    byte for byte; bpfkit's own (binary-search) program decides as libseccomp's on every
    case; both refuse the same profiles. ``tree_differs`` counts decisions where
    libseccomp's program departs from its own rule tree (its generator's accumulator
    quirks) — bpfkit follows the program.
    """
    rng = random.Random(seed)
    built = [random_profile(rng) for _ in range(profiles)]
    oracle = export([job(p, native) for p, native in built])
    stats = {"profiles": 0, "refused_both": 0, "identical_programs": 0, "decisions": 0,
             "mismatches": 0, "tree_differs": 0, "libseccomp_hangs": 0}  # fmt: skip
    failures: list[str] = []
    for (prof, native), res in zip(built, oracle, strict=True):
        stats["profiles"] += 1
        if res.error == HANG:
            # libseccomp never returns from seccomp_rule_add: bpfkit must refuse too
            try:
                compile_profile(prof, native)
            except ProfileError as e:
                if "loop forever" in str(e):
                    stats["libseccomp_hangs"] += 1
                    continue
            failures.append(
                f"seed {seed}: libseccomp loops forever, bpfkit does not refuse\n{prof}"
            )
            continue
        try:
            flt = compile_profile(prof, native)
        except ProfileError as e:
            if res.error is None:
                failures.append(f"seed {seed}: bpfkit refused, libseccomp accepted: {e}\n{prof}")
            else:
                stats["refused_both"] += 1
            continue
        if res.error is not None:
            failures.append(
                f"seed {seed}: libseccomp refused ({res.error}), bpfkit accepted\n{prof}"
            )
            continue
        if flt.libseccomp_program == res.program:
            stats["identical_programs"] += 1
        elif len(failures) < 5:
            failures.append(
                f"seed {seed} native {native}: rebuilt libseccomp program differs\n{prof}"
            )
        for tok, nr, args in cases(prof, native, rng, per_profile):
            data = seccomp_data(nr, tok, args)
            ours = run_filter(flt.program, data).ret
            theirs = run_filter(res.program, data).ret
            ref = reference_decision(
                flt.databases, flt.default_action, flt.bad_arch_action, tok, nr, args
            )
            stats["decisions"] += 1
            stats["tree_differs"] += ref != theirs
            if ours != theirs:
                stats["mismatches"] += 1
                if len(failures) < 5:
                    failures.append(
                        f"seed {seed} native {native} token {tok:#x} nr {nr:#x} "
                        f"args {[hex(a) for a in args]}: bpfkit {ours:#x} "
                        f"libseccomp {theirs:#x}\n{prof}"
                    )
    assert not failures, "\n\n".join(failures)
    return stats


N_PROFILES = int(os.environ.get("BPFKIT_SECCOMP_PROFILES", "150"))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_profiles_agree_with_libseccomp(seed: int) -> None:
    require_oracle()
    # a fixed slice by default (CI must be repeatable); BPFKIT_SECCOMP_SEED=random (or a
    # number) explores others — 2,000 profiles over seeds 100-109 agreed (docs/seccomp.md)
    env = os.environ.get("BPFKIT_SECCOMP_SEED", "20261206")
    base = random.randrange(1 << 30) if env == "random" else int(env)
    stats = compare(base * 10 + seed, N_PROFILES, 60)
    assert stats["decisions"] > 1000
    print(f"seed {base * 10 + seed}: {stats}")


def test_docker_default_agrees_with_libseccomp() -> None:
    require_oracle()
    rng = random.Random(7)
    for native in ("x86_64", "aarch64"):
        prof = load_profile("docker-default", arch=native)
        flt = compile_profile(prof, native)
        res = export([job(prof, native)])[0]
        assert res.error is None, res.error
        assert flt.libseccomp_program == res.program  # rebuilt byte for byte
        n = 0
        for arch in ("x86_64", "i386", "x32", "aarch64"):
            for nr in table(arch).values():
                for _ in range(2):
                    args = [rng.choice(EDGE + [8, 40, 131072, 0x7E020000]) for _ in range(6)]
                    data = seccomp_data(nr, ARCHES[arch].audit, args)
                    assert run_filter(flt.program, data).ret == run_filter(res.program, data).ret, (
                        native,
                        arch,
                        nr,
                        args,
                    )
                    n += 1
        assert n > 2500


def test_a_rule_set_libseccomp_loops_forever_on_is_refused() -> None:
    """Found by the random test (seed 70): libseccomp 2.5.4 never returns; bpfkit says so."""
    from bpfkit.seccomp.profile import Rule

    prof = Profile(
        act.RET_ERRNO | 13,
        ["x32", "x86_64", "i386"],
        [
            Rule(["mkdir", "ipc"], act.RET_TRACE | 7,
                 [Arg(2, "lt", 10490537430546668354), Arg(4, "ge", 1), Arg(0, "le", 3)]),
            Rule(["mkdir"], act.RET_TRACE | 7, [Arg(4, "le", 2**64 - 1), Arg(0, "le", 3)]),
            Rule(["mkdir", "socketcall"], act.RET_ERRNO | 1, [Arg(4, "lt", 2147483647)]),
        ],
    )  # fmt: skip
    with pytest.raises(ProfileError, match="loop forever"):
        compile_profile(prof, "aarch64")
    ok, _ = available()
    if ok:
        assert export([job(prof, "aarch64")], timeout=3, job_timeout=3)[0].error == HANG
