"""Forged frame pointers: no instruction may write r10, on any engine, verified or not.

The engines' stack fast paths (the interpreter's direct stack-buffer accesses, the
JIT's unchecked ``[r10 + const]`` loads and stores, in every callee too) rest on r10
being the true frame pointer. These are the issue-16 attacks: an atomic fetch or
``xchg`` whose source register is r10 (the old value, attacker memory, lands in r10),
an ALU/``ldx``/``lddw`` into r10, then a bpf-to-bpf callee reading or rewriting "its
stack" — an immutable ``bytes`` object elsewhere in the process. Each runs in a child
process (a segfault fails the test) next to canaries; the load must be refused with a
``VerifierError`` naming the instruction, and no canary may change or leak.
"""

from __future__ import annotations

import pytest
from safety_child import run_in_child

from bpfkit.errors import VerifierError
from bpfkit.isa.asm import assemble_text

# mem[0] = where the forged frame pointer should point: 520 bytes into the canary, so
# that [r10-8] of a callee (r10 - 512 - 8) is the canary's first word
FORGE = ["CANARY+520"]

# (name, program, index of the r10 write)
ATTACKS = [
    (
        "xchg-then-callee-reads",
        "lock xchg [%r1+0], %r10\ncall f\nexit\nf:\nldxdw %r0, [%r10-8]\nexit",
        0,
    ),
    (
        "xchg32-then-callee-reads",
        "lock xchg32 [%r1+0], %r10\ncall f\nexit\nf:\nldxdw %r0, [%r10-8]\nexit",
        0,
    ),
    (
        "fetch-add-then-callee-writes",
        "mov %r6, %r10\nldxdw %r7, [%r1+0]\nsub %r7, %r6\nlock fetch add [%r1+0], %r10\n"
        "mov %r2, 0x41\ncall f\nexit\nf:\nstxdw [%r10-8], %r2\nmov %r0, 0\nexit",
        3,
    ),
    (
        "fetch-or-then-callee-writes",
        "stdw [%r10-8], 0\nlock fetch or [%r10-8], %r10\ncall f\nexit\n"
        "f:\nstdw [%r10-8], 0x41\nmov %r0, 0\nexit",
        1,
    ),
    ("ldx-into-r10", "ldxdw %r10, [%r1+0]\ncall f\nexit\nf:\nldxdw %r0, [%r10-8]\nexit", 0),
    (
        "mov-then-own-frame-write",
        "ldxdw %r6, [%r1+0]\nmov %r10, %r6\nstdw [%r10-8], 0x41\nmov %r0, 0\nexit",
        1,
    ),
    ("lddw-into-r10", "lddw %r10, 0x1000\ncall f\nexit\nf:\nldxdw %r0, [%r10-8]\nexit", 0),
    ("add-to-r10", "add %r10, 0x1000\ncall f\nexit\nf:\nstdw [%r10-8], 1\nmov %r0, 0\nexit", 0),
    ("neg-r10", "neg %r10\nmov %r0, 0\nexit", 0),
    ("bswap-r10", "be64 %r10\nmov %r0, 0\nexit", 0),
    ("alu32-r10", "mov32 %r10, %r1\nmov %r0, 0\nexit", 0),
]


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_forged_frame_pointer_is_refused_on_load(engine):
    cases = [{"kind": "raw", "engine": engine, "asm": text, "mem": FORGE} for _, text, _ in ATTACKS]
    for (name, _, idx), res in zip(ATTACKS, run_in_child(cases), strict=True):
        assert res["status"] == "contained", (name, res)
        assert res["error"] == "VerifierError", (name, res)
        assert f"insn {idx}: frame pointer is read only" in res["message"], (name, res)
        assert "writes r10" in res["message"], (name, res)
        assert not res["canaries"] and not res["leak"], (name, res)


def test_what_writes_r10():
    """The rule itself: every instruction form that writes r10, and none that does not."""
    from bpfkit.isa.loader import runnable_slots, writes_frame_pointer

    writes = [
        "mov %r10, 1",
        "add32 %r10, 1",
        "ldxb %r10, [%r1+0]",
        "lddw %r10, 1",
        "lock xchg [%r1+0], %r10",
        "lock fetch add [%r1+0], %r10",
        "lock fetch xor32 [%r1+0], %r10",
    ]
    reads = [
        "mov %r1, %r10",
        "stxdw [%r10-8], %r10",
        "lock add [%r1+0], %r10",  # no fetch: r10 is only read
        "lock cmpxchg [%r1+0], %r10",  # cmpxchg writes r0
        "ldxdw %r1, [%r10-8]",
        "jeq %r10, 0, +0",
        "lock fetch add [%r10-8], %r1",  # r10 is the address
    ]
    for text in writes:
        (insn,) = assemble_text(text)
        assert writes_frame_pointer(insn), text
    for text in reads:
        (insn,) = assemble_text(text)
        assert not writes_frame_pointer(insn), text
    with pytest.raises(VerifierError, match=r"insn 1: frame pointer is read only"):
        runnable_slots(assemble_text("mov %r0, 0\nlock xchg [%r1+0], %r10\nexit"))


def test_loaded_program_writing_r10_is_refused_even_unverified():
    """``bpfkit.load(..., verify=False)``'s path (VMRuntime.load_program) refuses it too."""
    from bpfkit.uapi.enums import ProgType
    from bpfkit.vm.runtime import VMRuntime

    rt = VMRuntime(verify=False)
    try:
        with pytest.raises(VerifierError, match=r"insn 1: frame pointer is read only"):
            rt.load_program(
                "p",
                ProgType.RAW_TRACEPOINT,
                assemble_text("mov %r2, %r10\nlock xchg [%r2-8], %r10\nexit"),
            )
    finally:
        rt.close()


DEEP = """
    mov %r6, 0
    call f1
    exit
f1: stdw [%r10-512], 1
    stdw [%r10-8], 2
    call f2
    ldxdw %r1, [%r10-512]
    add %r0, %r1
    exit
f2: stdw [%r10-512], 3
    call f3
    ldxdw %r1, [%r10-512]
    add %r0, %r1
    exit
f3: call f4
    exit
f4: call f5
    exit
f5: call f6
    exit
f6: call f7
    exit
f7: stdw [%r10-512], 100
    stdw [%r10-8], 200
    ldxdw %r0, [%r10-512]
    ldxdw %r1, [%r10-8]
    add %r0, %r1
    exit
"""


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_deepest_frame_stays_in_the_stack(engine):
    """Eight frames (the limit): the deepest frame's [r10-512] is the stack region's first
    byte, no guard below it changes; a ninth frame faults."""
    ninth = DEEP.replace("f7: stdw", "f7: call f8\n    exit\nf8: stdw")
    res, deeper = run_in_child(
        [
            {"kind": "raw", "engine": engine, "asm": DEEP},
            {"kind": "raw", "engine": engine, "asm": ninth},
        ]
    )
    assert res["status"] == "ok", res
    assert res["r0"] == 300 + 3 + 1, res
    assert not res["canaries"] and not res["leak"], res
    assert deeper["status"] == "contained" and deeper["error"] == "RuntimeFault", deeper
    assert "call depth exceeds 8 frames" in deeper["message"], deeper
    assert not deeper["canaries"], deeper


# callx: the target is a register. Only a function of this program (its code address,
# from ``lddw src=func``) or a helper id may be called; anything else faults.
def _callx_cases() -> dict[str, tuple[list, str]]:
    from bpfkit.isa.builders import (
        R0,
        R2,
        R6,
        R10,
        Label,
        add64,
        callx,
        exit_,
        ld_func,
        lddw,
        mov64,
    )

    f = [Label("f"), mov64(R0, 7), exit_()]
    return {
        "canary-address": (
            [lddw(R2, 0xCA0A000000000000), callx(R2), exit_()],
            "neither a function",
        ),
        "stack-address": ([mov64(R2, R10), callx(R2), exit_()], "neither a function"),
        "huge-helper-id": ([lddw(R2, 0x7FFFFFFF), callx(R2), exit_()], "neither a function"),
        "negative": ([mov64(R2, -1), callx(R2), exit_()], "neither a function"),
        "misaligned-code": (
            [ld_func(R2, "f"), add64(R2, 4), callx(R2), exit_(), *f],
            "neither a function",
        ),
        "past-the-code": (
            [ld_func(R2, "f"), add64(R2, 800), callx(R2), exit_(), *f],
            "neither a function",
        ),
        "mid-lddw": (
            [ld_func(R2, "f"), add64(R2, 8), callx(R2), exit_(), Label("f"), lddw(R0, 7), exit_()],
            "lddw",
        ),
        "recursion": (
            [
                ld_func(R6, "f"),
                callx(R6),
                exit_(),
                Label("f"),
                ld_func(R6, "f"),
                callx(R6),
                exit_(),
            ],
            "depth",
        ),
        "ok": ([ld_func(R2, "f"), callx(R2), exit_(), *f], ""),
    }


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_callx_targets(engine):
    from bpfkit.isa.builders import assemble
    from bpfkit.isa.instruction import encode

    table = _callx_cases()
    names = list(table)
    cases = [
        {"kind": "raw", "engine": engine, "hex": encode(assemble(table[n][0])).hex()} for n in names
    ]
    for name, res in zip(names, run_in_child(cases), strict=True):
        assert not res["canaries"] and not res["leak"], (name, res)
        if name == "ok":
            assert res["status"] == "ok" and res["r0"] == 7, res
            continue
        assert res["status"] == "contained" and res["error"] == "RuntimeFault", (name, res)
        assert table[name][1] in res["message"], (name, res)
