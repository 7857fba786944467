"""Loop-heavy BPF programs (built with bpfkit's builders) shared by the benchmarks."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    Label,
    add64,
    and64,
    assemble,
    exit_,
    ja,
    jeq,
    jge,
    jgt,
    jle,
    jlt,
    ldx,
    mod64,
    mov64,
    mul64,
    rsh64,
    stx,
)


@dataclass
class Bench:
    name: str
    insns: list
    mem: bytes
    expect: int


def primes(limit: int = 2000) -> Bench:
    """Count primes below ``limit`` by trial division."""
    p = assemble(
        [
            mov64(R6, 0),
            mov64(R1, 2),
            Label("outer"),
            jge(R1, limit, "done"),
            mov64(R2, 2),
            Label("inner"),
            mov64(R3, R2),
            mul64(R3, R2),
            jgt(R3, R1, "prime"),
            mov64(R4, R1),
            mod64(R4, R2),
            jeq(R4, 0, "next"),
            add64(R2, 1),
            ja("inner"),
            Label("prime"),
            add64(R6, 1),
            Label("next"),
            add64(R1, 1),
            ja("outer"),
            Label("done"),
            mov64(R0, R6),
            exit_(),
        ]
    )
    expect = sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))
    return Bench(f"primes<{limit}", p, b"", expect)


def memcpy(size: int = 65536) -> Bench:
    """Byte-wise copy of ``size`` bytes from the first half of memory to the second."""
    p = assemble(
        [
            mov64(R6, R1),
            mov64(R7, R1),
            add64(R7, size),
            mov64(R8, R7),
            Label("loop"),
            ldx(1, R4, R6, 0),
            stx(1, R7, 0, R4),
            add64(R6, 1),
            add64(R7, 1),
            jlt(R6, R8, "loop"),
            ldx(1, R0, R7, -1),
            exit_(),
        ]
    )
    mem = bytes(i * 7 & 0xFF for i in range(size)) + bytes(size)
    return Bench(f"memcpy {size // 1024} KiB", p, mem, mem[size - 1])


def switch64(n: int = 4096) -> Bench:
    """A 64-case switch (binary tree of compares) over ``n`` inputs."""
    body: list = [mov64(R0, 0), mov64(R6, 0)]
    body.append(Label("loop"))
    body += [mov64(R2, R6), and64(R2, 63)]

    def tree(lo: int, hi: int) -> list:
        if hi - lo == 1:
            return [add64(R0, (lo * 2654435761) & 0x7FFF), ja("next")]
        mid = (lo + hi) // 2
        right = f"c{mid}_{hi}"
        return [jge(R2, mid, right)] + tree(lo, mid) + [Label(right)] + tree(mid, hi)

    body += tree(0, 64)
    body += [Label("next"), add64(R6, 1), jlt(R6, n, "loop"), exit_()]
    expect = sum(((i & 63) * 2654435761) & 0x7FFF for i in range(n))
    return Bench(f"switch64 x{n}", assemble(body), b"", expect)


def log2s(n: int = 1024) -> Bench:
    """floor(log2(x)) summed over ``n`` 32-bit integers read from memory."""
    vals = [(i * 2654435761) & 0xFFFFFFFF | 1 for i in range(n)]
    mem = struct.pack(f"<{n}I", *vals)
    p = assemble(
        [
            mov64(R0, 0),
            mov64(R6, R1),
            mov64(R7, R1),
            add64(R7, 4 * n),
            Label("loop"),
            ldx(4, R2, R6, 0),
            mov64(R3, 0),
            Label("l2"),
            jle(R2, 1, "done1"),
            rsh64(R2, 1),
            add64(R3, 1),
            ja("l2"),
            Label("done1"),
            add64(R0, R3),
            add64(R6, 4),
            jlt(R6, R7, "loop"),
            exit_(),
        ]
    )
    return Bench(f"log2 x{n}", p, mem, sum(v.bit_length() - 1 for v in vals))


ALL = [primes, memcpy, switch64, log2s]
