"""bpfkit's seccomp compiler decides as libseccomp does (Debian's python3-seccomp as oracle).

Random profiles — several rules per syscall with different actions, several conditions
per rule, every operator, 64-bit values with high halves, socket/ipc calls that i386
multiplexes, foreign architectures and x32 — are built both by bpfkit and by libseccomp;
both programs run on the same ``seccomp_data`` (bpfkit's classic interpreter) and must
return the same value. A profile libseccomp refuses (EEXIST) must be refused by bpfkit.
bpfkit's rebuilt libseccomp program must equal libseccomp's byte for byte.

CI runs a fixed set of seeds (repeatable); ``BPFKIT_SECCOMP_SEED`` (a number, or
``random``) and ``BPFKIT_SECCOMP_PROFILES`` explore others. A long campaign over many
seeds, with a wider generator (pseudo syscalls, names only some ABIs have, many rules
per syscall), runs from the command line and writes every difference it finds:

    python3 tests/test_seccomp_oracle.py --seeds 1000-1099 --profiles 200 --wide \\
        --out campaign.jsonl

Every difference found that way becomes a profile in test_seccomp_regressions.py.

Skips where ``/usr/bin/python3`` lacks ``seccomp``; fails instead under
``BPFKIT_REQUIRE_KERNEL=1`` (CI installs python3-seccomp through scripts/setup).
"""

from __future__ import annotations

import functools
import os
import random
import sys
from collections.abc import Sequence

import pytest

from bpfkit.errors import ProfileError
from bpfkit.seccomp import Arg, Profile, compile_profile, load_profile
from bpfkit.seccomp import actions as act
from bpfkit.seccomp.check import run_filter, seccomp_data
from bpfkit.seccomp.compiler import reference_decision
from bpfkit.seccomp.libseccomp import HANG, OracleResult, available, export, job
from bpfkit.seccomp.profile import Rule
from bpfkit.seccomp.tables import ARCHES, IPCCALLS, SOCKETCALLS, X32_SYSCALL_BIT, table


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


def _wide_value(rng: random.Random, index: int) -> int:
    """Values for the wide generator: also socketcall/ipc call numbers, 2^31/2^32 edges."""
    r = rng.random()
    if index == 0 and r < 0.3:
        return rng.randrange(0, 25)  # socketcall(2) / ipc(2) call numbers
    if r < 0.45:
        v = rng.choice([1 << 31, 1 << 32, 1 << 63, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF])
        return (v + rng.choice([-1, 0, 1])) & 0xFFFFFFFFFFFFFFFF
    return _value(rng)


@functools.cache
def wide_pool() -> tuple[str, ...]:
    """Every name whose number bpfkit's tables and libseccomp 2.5.4 agree on, on every ABI.

    Names that exist only on some ABIs (``_llseek``, ``arch_prctl``, ``socketcall`` …)
    and libseccomp's pseudo syscalls (``send``, ``recv`` …) are included; names newer than
    libseccomp 2.5.4's table are not (libseccomp would not know them).
    """
    from bpfkit.seccomp.libseccomp import resolve_names
    from bpfkit.seccomp.tables import known_names

    names = sorted(known_names())
    ok = set(names)
    for arch in ARCHES:
        theirs = resolve_names(arch, names)
        ours = table(arch)
        for n in names:
            got = theirs[n]
            if got is None:
                ok.discard(n)  # unknown to libseccomp 2.5.4
            elif got < 0:
                if n in ours:
                    ok.discard(n)  # newer on this ABI than libseccomp's table
            elif arch == "i386" and (n in SOCKETCALLS or n in IPCCALLS) and got in (102, 117):
                continue  # libseccomp names the multiplexer
            elif ours.get(n) != got:
                ok.discard(n)
    return tuple(sorted(ok))


def random_profile(
    rng: random.Random, *, wide: bool = False, pool: Sequence[str] | None = None
) -> tuple[Profile, str]:
    """A random profile and the native architecture to compile it for.

    ``wide``: the campaign's generator — names from ``pool`` (pseudo syscalls, names only
    some ABIs have), up to 30 rules on few syscalls (deep merges), up to six conditions
    per rule, errno/trace data, call numbers for i386's socketcall/ipc.
    """
    native = rng.choice(["x86_64", "x86_64", "i386", "aarch64", "x32"])
    others = [a for a in ARCHES if a != native]
    extra = rng.sample(others, rng.randrange(0, len(others) + 1))
    if not wide:
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
                    two = _value(rng) & mask if rng.random() < 0.7 else _value(rng)
                    args.append(Arg(idx, op, mask, two))
                else:
                    args.append(Arg(idx, op, _value(rng)))
            prof.rules.append(Rule(nm, rng.choice(ACTIONS), args))
        return prof, native
    pool = list(pool if pool is not None else POOL)
    actions = ACTIONS + [act.RET_ERRNO | rng.randrange(0, 4096), act.RET_TRACE | 0]
    prof = Profile(rng.choice(actions), extra)
    k = rng.choice([1, 1, 2, 3, 5, 8, 15])
    names = rng.sample(pool, min(k, len(pool)))
    if rng.random() < 0.3:
        names.append(rng.choice(["socketcall", "ipc", "socket", "send", "semop", "shmat"]))
    n_rules = rng.choice([1, 2, 4, 6, 10, 16, 30])
    for _ in range(n_rules):
        nm = rng.sample(names, rng.randrange(1, min(4, len(names)) + 1))
        args = []
        for _ in range(rng.choice([0, 0, 1, 1, 2, 2, 3, 4, 6])):
            op = rng.choice(OPS)
            r = rng.random()
            idx = rng.randrange(0, 6) if r < 0.5 else (0 if r < 0.8 else rng.randrange(1, 3))
            if op == "masked_eq":
                mask = rng.choice(
                    [_wide_value(rng, idx), 0xFF, 0xFFFFFFFF00000000, 0, 0xF0F0, 0xFFFFFFFF]
                )
                v = _wide_value(rng, idx)
                args.append(Arg(idx, op, mask, v & mask if rng.random() < 0.7 else v))
            else:
                args.append(Arg(idx, op, _wide_value(rng, idx)))
        prof.rules.append(Rule(nm, rng.choice(actions), args))
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


def new_stats() -> dict[str, int]:
    """The counters :func:`check_profile` adds to."""
    return {"profiles": 0, "refused_both": 0, "identical_programs": 0, "decisions": 0,
            "mismatches": 0, "tree_differs": 0, "libseccomp_hangs": 0}  # fmt: skip


def check_profile(
    prof: Profile,
    native: str,
    res: OracleResult,
    rng: random.Random,
    per_profile: int,
    stats: dict[str, int],
) -> list[dict]:
    """Compare bpfkit with libseccomp's result ``res`` on one profile; the differences.

    Three checks: bpfkit's rebuilt libseccomp program equals libseccomp's byte for byte;
    bpfkit's own (binary-search) program decides as libseccomp's on ``per_profile``
    cases; both refuse the same profiles. ``tree_differs`` counts decisions where
    libseccomp's program departs from its own rule tree (its generator's quirks) —
    bpfkit follows the program. Each difference is ``{"kind": ..., "detail": ...}``.
    """
    stats["profiles"] += 1
    if res.error == HANG:
        # libseccomp never returns from seccomp_rule_add: bpfkit must refuse too
        try:
            compile_profile(prof, native)
        except ProfileError as e:
            if "loop forever" in str(e):
                stats["libseccomp_hangs"] += 1
                return []
        return [{"kind": "hang", "detail": "libseccomp loops forever, bpfkit does not refuse"}]
    try:
        flt = compile_profile(prof, native)
    except ProfileError as e:
        if res.error is None:
            return [{"kind": "refused", "detail": f"bpfkit refused, libseccomp accepted: {e}"}]
        stats["refused_both"] += 1
        return []
    if res.error is not None:
        return [{"kind": "accepted", "detail": f"libseccomp refused ({res.error}), bpfkit not"}]
    out: list[dict] = []
    if flt.libseccomp_program == res.program:
        stats["identical_programs"] += 1
    else:
        first = next(
            (
                i
                for i, (a, b) in enumerate(zip(flt.libseccomp_program, res.program, strict=False))
                if a != b
            ),
            min(len(flt.libseccomp_program), len(res.program)),
        )
        out.append(
            {
                "kind": "bytes",
                "detail": f"rebuilt libseccomp program differs from instruction {first} "
                f"({len(flt.libseccomp_program)} vs {len(res.program)} instructions)",
            }
        )
    assert res.program is not None
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
            if sum(d["kind"] == "decision" for d in out) < 3:
                out.append(
                    {
                        "kind": "decision",
                        "detail": f"token {tok:#x} nr {nr:#x} args {[hex(a) for a in args]}: "
                        f"bpfkit {ours:#x} libseccomp {theirs:#x}",
                    }
                )
    return out


def compare(
    seed: int, profiles: int, per_profile: int, *, wide: bool = False
) -> tuple[dict[str, int], list[dict]]:
    """Compile ``profiles`` random profiles both ways; the counts and every difference."""
    rng = random.Random(seed)
    pool = wide_pool() if wide else None
    built = [random_profile(rng, wide=wide, pool=pool) for _ in range(profiles)]
    oracle = export([job(p, native) for p, native in built])
    stats = new_stats()
    found: list[dict] = []
    for i, ((prof, native), res) in enumerate(zip(built, oracle, strict=True)):
        for d in check_profile(prof, native, res, rng, per_profile, stats):
            d.update(seed=seed, index=i, native=native, wide=wide, profile=repr(prof))
            found.append(d)
    return stats, found


N_PROFILES = int(os.environ.get("BPFKIT_SECCOMP_PROFILES", "60"))
# CI's fixed slice: a few plain seeds and wide ones (the regression profiles of
# test_seccomp_regressions.py always run besides)
DEFAULT_SEEDS = [(1, False), (2, False), (202612061, False), (3, True)]


def _seeds() -> list[tuple[int, bool]]:
    env = os.environ.get("BPFKIT_SECCOMP_SEED")
    if env is None:
        return DEFAULT_SEEDS
    base = random.randrange(1 << 30) if env == "random" else int(env)
    return [(base * 10 + 1, False), (base * 10 + 2, True)]


@pytest.mark.parametrize("seed,wide", _seeds())
def test_random_profiles_agree_with_libseccomp(seed: int, wide: bool) -> None:
    require_oracle()
    stats, found = compare(seed, N_PROFILES, 50, wide=wide)
    assert not found, "\n\n".join(
        f"seed {d['seed']} #{d['index']} native {d['native']}: {d['kind']}: {d['detail']}\n"
        f"{d['profile']}"
        for d in found[:5]
    )
    assert stats["decisions"] > 20 * N_PROFILES
    print(f"seed {seed} wide={wide}: {stats}")


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


# --- the long campaign (command line) -----------------------------------------------------


def _parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run a campaign: every seed's profiles against libseccomp; differences to JSON Lines."""
    import argparse
    import json
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--seeds", default="1000-1009", help="e.g. 1000-1099,5")
    ap.add_argument("--profiles", type=int, default=200, help="profiles per seed")
    ap.add_argument("--cases", type=int, default=40, help="decisions per profile")
    ap.add_argument("--wide", action="store_true", help="the wide generator")
    ap.add_argument("--mixed", action="store_true", help="odd seeds wide, even seeds plain")
    ap.add_argument("--out", default="seccomp-campaign.jsonl", help="differences (JSON Lines)")
    ap.add_argument("--stats", default=None, help="also append each seed's counts here")
    a = ap.parse_args(argv)
    ok, why = available()
    if not ok:
        print(why, file=sys.stderr)
        return 2
    seeds = _parse_seeds(a.seeds)
    total = new_stats()
    total["differences"] = 0
    t0 = time.time()
    with open(a.out, "a") as out, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
    ) as bar:  # fmt: skip
        task = bar.add_task("seeds", total=len(seeds), info="")
        for seed in seeds:
            wide = a.wide or (a.mixed and seed % 2 == 1)
            stats, found = compare(seed, a.profiles, a.cases, wide=wide)
            for k, v in stats.items():
                total[k] += v
            total["differences"] += len(found)
            for d in found:
                out.write(json.dumps(d) + "\n")
            out.flush()
            if a.stats:
                with open(a.stats, "a") as f:
                    f.write(json.dumps({"seed": seed, "wide": wide, **stats}) + "\n")
            info = (
                f"{total['profiles']} profiles, {total['decisions']} decisions, "
                f"{total['differences']} differences"
            )
            bar.update(task, advance=1, info=info)
    total["seconds"] = round(time.time() - t0)
    print(json.dumps({"seeds": a.seeds, "wide": a.wide, "mixed": a.mixed, **total}))
    return 1 if total["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
