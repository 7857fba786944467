"""Generated programs, valid and deliberately broken, checked against the kernel verifier.

``mutant(seed)`` draws one program from a family of templates (stack, map value,
packet and context accesses, null checks, loops, helper arguments, references, return
values, uninitialised registers) with parameters chosen around the boundary between
safe and unsafe, so about half are rejected. ``progen.generate`` adds valid scalar/stack
programs. Every program is loaded into the running kernel with the same type and maps;
the verdicts must agree.
"""

from __future__ import annotations

import os
import random
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from progen import generate  # noqa: E402

from bpfkit.errors import VerifierError  # noqa: E402
from bpfkit.isa.asm import assemble_text  # noqa: E402
from bpfkit.uapi.enums import MapType  # noqa: E402
from bpfkit.verifier import verify  # noqa: E402

N_MUTANTS = int(os.environ.get("BPFKIT_VERIFIER_GEN", "800"))
N_PROGEN = int(os.environ.get("BPFKIT_VERIFIER_PROGEN", "250"))

HASH = {5: {"type": MapType.HASH, "key_size": 8, "value_size": 16, "max_entries": 8}}
ARRAY = {5: {"type": MapType.ARRAY, "key_size": 4, "value_size": 24, "max_entries": 4}}
RINGBUF = {6: {"type": MapType.RINGBUF, "key_size": 0, "value_size": 0, "max_entries": 4096}}

LOOKUP = "r1 = map_fd(5) ll\nr2 = 0\n*(u64 *)(r10 - 8) = r2\nr2 = r10\nr2 += -8\ncall 1\n"


def _stack(rng: random.Random):
    size = rng.choice([1, 2, 4, 8])
    off = rng.choice([-512, -520, -8, -16, -4, -2, -1, 0, 8, -504, -513, -256 - 3])
    off -= off % size if rng.random() < 0.7 else 0
    write = rng.random() < 0.5
    sz = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]
    if write:
        body = f"*({sz} *)(r10 {'-' if off < 0 else '+'} {abs(off)}) = {rng.randint(0, 9)}\n"
    else:
        body = f"r3 = *({sz} *)(r10 {'-' if off < 0 else '+'} {abs(off)})\n"
    return "r0 = 0\n" + body + "exit", "socket_filter", {}


def _map_value(rng: random.Random):
    size = rng.choice([1, 2, 4, 8])
    off = rng.randint(-2, 18)
    null_check = rng.random() < 0.8
    maps = rng.choice([HASH, ARRAY])
    sz = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]
    access = f"r1 = *({sz} *)(r0 {'-' if off < 0 else '+'} {abs(off)})\n"
    key = (
        "r1 = map_fd(5) ll\nr2 = 0\n*(u64 *)(r10 - 8) = r2\nr2 = r10\nr2 += -8\ncall 1\n"
        if maps is HASH
        else f"r1 = map_fd(5) ll\nr2 = {rng.randint(0, 5)}\n*(u32 *)(r10 - 8) = r2\n"
        "r2 = r10\nr2 += -8\ncall 1\n"
    )
    check = "if r0 == 0 goto +1\n" if null_check else ""
    return key + check + access + "r0 = 0\nexit", "socket_filter", maps


def _map_index(rng: random.Random):
    bound = rng.randint(10, 26)
    size = rng.choice([1, 2, 4])
    sz = {1: "u8", 2: "u16", 4: "u32"}[size]
    how = rng.choice(["jgt", "and", "jge", "none", "sjgt"])
    load = "r1 = *(u32 *)(r0 + 0)\n" if how != "sjgt" else "r1 = *(s32 *)(r0 + 0)\n"
    if how == "jgt":
        clamp = f"if r1 > {bound} goto +3\n"
    elif how == "jge":
        clamp = f"if r1 >= {bound} goto +3\n"
    elif how == "sjgt":
        clamp = f"if r1 s> {bound} goto +3\n"
    elif how == "and":
        clamp = f"r1 &= {rng.choice([7, 15, 31, 8, 16])}\nr1 += 0\nr1 += 0\n"
    else:
        clamp = "r1 += 0\nr1 += 0\nr1 += 0\n"
    return (
        (
            LOOKUP + "if r0 == 0 goto +6\n" + load + clamp + "r0 += r1\n"
            f"r1 = *({sz} *)(r0 + 0)\nr0 = 0\nexit\nr0 = 0\nexit"
        ),
        "socket_filter",
        HASH,
    )


def _packet(rng: random.Random):
    pt = rng.choice(["xdp", "sched_cls"])
    data, end = (0, 4) if pt == "xdp" else (76, 80)
    n = rng.randint(0, 40)
    size = rng.choice([1, 2, 4, 8])
    off = rng.randint(0, 44)
    sz = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]
    op = rng.choice([">", ">=", "<", "<=", "none"])
    head = f"r2 = *(u32 *)(r1 + {data})\nr3 = *(u32 *)(r1 + {end})\nr4 = r2\nr4 += {n}\n"
    acc = f"r0 = *({sz} *)(r2 + {off})\n"
    if op in (">", ">="):
        body = f"if r4 {op} r3 goto +1\n" + acc + "r0 = 0\nexit"
    elif op in ("<", "<="):
        body = f"if r4 {op} r3 goto +2\nr0 = 0\nexit\n" + acc + "r0 = 0\nexit"
    else:
        body = acc + "r0 = 0\nexit"
    if rng.random() < 0.2:
        body = body.replace("r0 = *(", "*(").replace(f"(r2 + {off})\n", f"(r2 + {off}) = 1\n", 1)
        body = body.replace(
            "*(" + sz + " *)(r2 + " + str(off) + ") = 1",
            "*(" + sz + " *)(r2 + " + str(off) + ") = 1",
        )
    return head + body, pt, {}


_CTX = {
    "socket_filter": 200,
    "sched_cls": 200,
    "xdp": 28,
    "kprobe": 176,
    "tracepoint": 64,
    "cgroup_skb": 200,
}


def _ctx(rng: random.Random):
    pt = rng.choice(list(_CTX))
    size = rng.choice([1, 2, 4, 8])
    off = rng.randrange(0, _CTX[pt])
    if rng.random() < 0.7:
        off -= off % size
    write = rng.random() < 0.25
    sz = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]
    if write:
        body = f"r2 = 1\n*({sz} *)(r1 + {off}) = r2\n"
    else:
        body = f"r2 = *({sz} *)(r1 + {off})\n"
    return body + "r0 = 0\nexit", pt, {}


def _loop(rng: random.Random):
    start = rng.randint(0, 5)
    limit = rng.choice([3, 10, 50, -1])
    step = rng.choice([1, 2, 0, -1])
    cmp = rng.choice(["<", "!=", "s<"])
    lim = limit if limit >= 0 else "r6"
    head = "call 7\nr6 = r0\n" if limit < 0 else ""
    return (
        head + f"r0 = {start}\nr0 += {step}\nif r0 {cmp} {lim} goto -2\nr0 = 0\nexit",
        "socket_filter",
        {},
    )


def _helper(rng: random.Random):
    kind = rng.choice(["comm", "printk", "probe", "lookup_key", "update"])
    if kind == "comm":
        n = rng.choice([0, 1, 8, 16, 17, 512, 513])
        off = rng.choice([-16, -8, -512, -4])
        return (f"r1 = r10\nr1 += {off}\nr2 = {n}\ncall 16\nr0 = 0\nexit", "kprobe", {})
    if kind == "printk":
        n = rng.choice([0, 4, 8, 9])
        return (
            f"r6 = 0\n*(u64 *)(r10 - 8) = r6\nr1 = r10\nr1 += -8\nr2 = {n}\ncall 6\nr0 = 0\nexit",
            "kprobe",
            {},
        )
    if kind == "probe":
        clamp = rng.choice(["r2 &= 15\n", "if r2 > 16 goto +3\n", "", "if r2 > 17 goto +3\n"])
        return (
            "call 7\nr2 = r0\n" + clamp + "r1 = r10\nr1 += -16\nr3 = 0\ncall 113\nr0 = 0\nexit",
            "kprobe",
            {},
        )
    if kind == "lookup_key":
        off = rng.choice([-8, -4, 0, -512, -16])
        return (
            f"r1 = map_fd(5) ll\nr2 = r10\nr2 += {off}\ncall 1\nr0 = 0\nexit",
            "socket_filter",
            HASH,
        )
    arg = rng.choice(["r10", "r0", "r1", "const"])
    val = {
        "r10": "r3 = r10\nr3 += -16\n",
        "r0": "r3 = r0\n",
        "r1": "r3 = r1\n",
        "const": "r3 = 0\n",
    }[arg]
    return (
        LOOKUP + "r1 = map_fd(5) ll\nr2 = r10\nr2 += -8\n" + val + "r4 = 0\ncall 2\nr0 = 0\nexit",
        "socket_filter",
        HASH,
    )


def _ringbuf(rng: random.Random):
    size = rng.choice([8, 16, 0])
    null = rng.random() < 0.85
    release = rng.choice(["submit", "discard", "none", "both_paths", "one_path"])
    off = rng.choice([0, 8, 12, 4])
    body = f"r1 = map_fd(6) ll\nr2 = {size}\nr3 = 0\ncall 131\n"
    body += "if r0 == 0 goto +L\n" if null else ""
    body += f"*(u32 *)(r0 + {off}) = 1\n"
    rel = {
        "submit": "r1 = r0\nr2 = 0\ncall 132\n",
        "discard": "r1 = r0\nr2 = 0\ncall 133\n",
        "none": "",
        "both_paths": "r6 = r0\ncall 7\nr1 = r6\nr2 = 0\n"
        "if r0 > 5 goto +2\ncall 132\ngoto +1\ncall 133\n",
        "one_path": "r6 = r0\ncall 7\nr1 = r6\nr2 = 0\nif r0 > 5 goto +1\ncall 132\n",
    }
    tail = rel[release]
    n = tail.count("\n") + 1
    body = body.replace("+L", f"+{n}") + tail + "r0 = 0\nexit"
    return body, "socket_filter", RINGBUF


def _retval(rng: random.Random):
    v = rng.choice(
        [
            "r0 = 1",
            "r0 = 0",
            "r0 = 2",
            "r0 = -1",
            "call 7\nr0 &= 1",
            "call 7\nr0 &= 3",
            "call 7",
            "r0 = r1",
            "call 7\nif r0 > 1 goto +1",
        ]
    )
    return v + "\nexit" + ("\nr0 = 0\nexit" if "goto" in v else ""), "cgroup_skb", {}


def _uninit(rng: random.Random):
    reg = rng.randint(0, 9)
    wr = rng.sample(range(0, 10), rng.randint(0, 6))
    body = "".join(f"r{r} = {i}\n" for i, r in enumerate(wr))
    use = rng.choice(
        [f"r0 = r{reg}\n", f"r0 = 0\nr0 += r{reg}\n", f"r0 = 0\nif r{reg} > 3 goto +0\n"]
    )
    return body + use + "exit", "socket_filter", {}


def _call(rng: random.Random):
    frames = rng.randint(1, 10)
    depth = rng.choice([8, 64, 256, 504])
    lines = []
    for i in range(frames):
        lines.append(
            f"*(u64 *)(r10 - {depth}) = r1\n" if i else f"r1 = 0\n*(u64 *)(r10 - {depth}) = r1\n"
        )
        if i + 1 < frames:
            lines.append("call pc+2\nr0 = 0\nexit\n")
        else:
            lines.append("r0 = 0\nexit\n")
    return "".join(lines), "socket_filter", {}


FAMILIES = [
    _stack,
    _map_value,
    _map_index,
    _packet,
    _ctx,
    _loop,
    _helper,
    _ringbuf,
    _retval,
    _uninit,
    _call,
]


def mutant(seed: int):
    """One generated program: (instructions, program type, maps)."""
    rng = random.Random(seed)
    text, pt, maps = rng.choice(FAMILIES)(rng)
    return assemble_text(text, dialect="llvm"), pt, maps


#: Our instruction budget for generated programs: every valid one needs far fewer steps,
#: and the unbounded loops reach it sooner than the kernel's one million (same verdict).
GEN_BUDGET = 50_000


def ours(insns, pt, maps) -> tuple[bool, str]:
    try:
        verify(insns, prog_type=pt, maps=maps, budget=GEN_BUDGET)
        return True, ""
    except VerifierError as e:
        return False, f"insn {e.insn}: {e.kernel_message}"


@pytest.mark.kernel
def test_generated_agree_with_kernel() -> None:
    from test_verifier_kernel import kernel_verdict

    mismatches = []
    rejected = 0
    for seed in range(N_MUTANTS):
        insns, pt, maps = mutant(seed)
        kok, klog = kernel_verdict(insns, pt, maps)
        ook, msg = ours(insns, pt, maps)
        rejected += not kok
        if kok != ook:
            mismatches.append((seed, pt, kok, msg, klog.strip().splitlines()[-3:]))
    for seed in range(N_PROGEN):
        insns = generate(seed, length=40)
        kok, klog = kernel_verdict(insns, "socket_filter", {})
        ook, msg = ours(insns, "socket_filter", {})
        if kok != ook:
            mismatches.append((f"progen{seed}", "socket_filter", kok, msg, klog[-200:]))
    total = N_MUTANTS + N_PROGEN
    print(
        f"verifier agreement: {total - len(mismatches)}/{total} "
        f"({rejected} of {N_MUTANTS} mutants rejected by the kernel)"
    )
    assert not mismatches, mismatches[:10]


def test_generated_families_both_verdicts() -> None:
    oks = rejs = 0
    for seed in range(200):
        ok, _ = ours(*mutant(seed))
        oks += ok
        rejs += not ok
    assert oks > 40 and rejs > 40
