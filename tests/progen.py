"""A seeded random generator of BPF programs that the kernel verifier accepts.

Used by the differential tests (interpreter vs kernel, JIT vs interpreter, our verifier
vs the kernel's). Every program is a privileged ``SOCKET_FILTER``-compatible program
that needs no context, no maps and no helpers, always terminates, and whose result
depends only on its instructions (never on uninitialised memory or pointers):

    from progen import generate, fold_epilogue, combine

    insns = generate(seed=42, length=40)          # list[Instruction], ends in exit
    lo = fold_epilogue(insns, "lo")               # returns r0 (kernel keeps low 32 bits)
    hi = fold_epilogue(insns, "hi")               # returns r0 >> 32
    r0 = combine(kernel_retval(lo), kernel_retval(hi))

Shape of a program: a prologue sets r0-r9 from constants (small, boundary and random
64-bit values via ``lddw``, ``mov`` and ``mov32``) and stores a few stack slots; then
``length`` random instructions; then (``mix=True``) an epilogue hashes r1-r9 and some
initialised stack words into r0, so every register and the stack reach the result.

The body draws from feature groups (``features``, default :data:`FEATURES`):

- ``alu64`` / ``alu32``: add sub mul or and xor mov neg, with imm or register.
- ``div``: div/mod/sdiv/smod by registers that may be zero (imm divisors are non-zero).
- ``shift``: lsh/rsh/arsh by imm < width and by registers (any value; masked at run time).
- ``movsx``: sign-extending moves (8/16/32 bits; 8/16 for alu32).
- ``bswap``: le/be 16/32/64 and the unconditional bswap 16/32/64.
- ``lddw``: 64-bit immediate loads in the body (the prologue uses them too).
- ``jmp`` / ``jmp32``: forward conditional jumps (imm and register) over 1-6 instructions.
- ``ja``: if/else diamonds with ``ja`` or ``gotol`` (the skipped code stays reachable).
- ``stack``: st/stx of all sizes to aligned slots, ldx of all sizes from initialised slots.
- ``ldsx``: sign-extending loads (1/2/4 bytes) from initialised slots.
- ``atomic``: add/or/and/xor with and without fetch, xchg and cmpxchg, 32 and 64 bits,
  on initialised aligned stack slots.

``div``, ``shift`` and ``ja`` (:data:`MODIFIERS`) refine ``alu*`` and ``jmp*`` and select
nothing alone. ``max_jumps`` (default 16) caps conditional jumps so that long programs stay
under the verifier's complexity limit.

The generator tracks, per byte, which of the 512 stack bytes are written on *every* path
to each instruction, so loads and atomics never read uninitialised stack (the privileged
verifier would allow it, but the values would be garbage). r10 is only ever a memory
base; no register ever holds a pointer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from bpfkit.isa import opcodes as op
from bpfkit.isa.builders import (
    R0,
    R10,
    Label,
    Reg,
    assemble,
    atomic,
    be,
    bswap,
    exit_,
    gotol,
    ja,
    lddw,
    ldx,
    ldxs,
    le,
    mov32,
    mov64,
    movsx32,
    movsx64,
    mul64,
    neg32,
    neg64,
    rsh64,
    st,
    stx,
    xor64,
)
from bpfkit.isa.instruction import Instruction, slot_positions

FEATURES: frozenset[str] = frozenset(
    {
        "alu64",
        "alu32",
        "div",
        "shift",
        "movsx",
        "bswap",
        "lddw",
        "jmp",
        "jmp32",
        "ja",
        "stack",
        "ldsx",
        "atomic",
    }
)

#: Features that only refine others (alu ops, conditional jumps); alone they select nothing.
MODIFIERS: frozenset[str] = frozenset({"div", "shift", "ja"})

STACK = op.STACK_SIZE
MASK64 = (1 << 64) - 1
_MIX = 0x01000193  # multiplier of the epilogue hash (fits a 32-bit imm)

_INTERESTING64 = [
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    31,
    32,
    33,
    63,
    64,
    65,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0x80000001,
    0xFFFFFFFF,
    1 << 32,
    (1 << 32) + 1,
    0x7FFFFFFFFFFFFFFF,
    1 << 63,
    (1 << 63) + 1,
    MASK64,
    MASK64 - 1,
    0xFFFFFFFF80000000,
    0xFFFFFFFF7FFFFFFF,
    0x8000000000000001,
    0x0123456789ABCDEF,
    0xFEDCBA9876543210,
]
_INTERESTING32 = [
    0,
    1,
    2,
    3,
    7,
    8,
    16,
    31,
    32,
    63,
    64,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFFFFFF,
    -1,
    -2,
    -0x80,
    -0x8000,
    -0x80000000,
    -0x7FFFFFFF,
]

_ALU_BINARY = (op.ADD, op.SUB, op.MUL, op.OR, op.AND, op.XOR, op.MOV)
_SHIFTS = (op.LSH, op.RSH, op.ARSH)
_ATOMIC_OPS = op.ATOMIC_OPS


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class _Gen:
    """One program's generation state."""

    def __init__(self, seed: int, length: int, features: frozenset[str], mix: bool, max_jumps: int):
        self.rng = random.Random(seed)
        self.jumps_left = max_jumps
        self.length = length
        self.f = features
        self.mix = mix
        self.items: list[Instruction | Label] = []
        self.init = 0  # bit i set: stack byte (fp - 512 + i) written on every path
        self.pending: dict[int, list[int]] = {}  # target position -> init snapshots
        self.reserved_ja: set[int] = set()
        self.fallthrough = True

    # ---- values ------------------------------------------------------------
    def val64(self) -> int:
        r = self.rng.random()
        if r < 0.4:
            v = self.rng.choice(_INTERESTING64)
            return (-v) & MASK64 if self.rng.random() < 0.25 else v
        if r < 0.6:
            return self.rng.randrange(0, 256)
        if r < 0.75:
            return self.rng.getrandbits(32)
        return self.rng.getrandbits(64)

    def imm32(self) -> int:
        r = self.rng.random()
        if r < 0.45:
            return self.rng.choice(_INTERESTING32)
        if r < 0.75:
            return self.rng.randrange(-16, 256)
        return _s32(self.rng.getrandbits(32))

    def reg(self) -> Reg:
        return Reg(self.rng.randrange(10))

    # ---- stack -------------------------------------------------------------
    def slot(self, size: int) -> int:
        """A random aligned offset from r10 for an access of ``size`` bytes."""
        if self.rng.random() < 0.85:
            return -8 * self.rng.randrange(1, 9) + size * self.rng.randrange(8 // size)
        return -size * self.rng.randrange(1, STACK // size + 1)

    def _mask(self, off: int, size: int) -> int:
        return ((1 << size) - 1) << (STACK + off)

    def written(self, off: int, size: int) -> None:
        self.init |= self._mask(off, size)

    def readable(self, size: int) -> list[int]:
        """All aligned offsets whose ``size`` bytes are initialised on every path."""
        out = []
        init = self.init
        if not init:
            return out
        m = (1 << size) - 1
        for start in range(0, STACK, size):
            if (init >> start) & m == m:
                out.append(start - STACK)
        return out

    # ---- emission ----------------------------------------------------------
    def emit(self, insn: Instruction | Label) -> None:
        self.items.append(insn)

    def enter(self, pos: int) -> None:
        """Start position ``pos``: place its label and merge the paths reaching it."""
        snaps = self.pending.pop(pos, None)
        if snaps is None:
            assert self.fallthrough, f"position {pos} unreachable"
            return
        self.emit(Label(f"L{pos}"))
        merged = self.init if self.fallthrough else -1
        for s in snaps:
            merged &= s
        self.init = merged
        self.fallthrough = True

    def jump_to(self, target: int) -> str:
        self.pending.setdefault(target, []).append(self.init)
        return f"L{target}"

    # ---- instruction kinds ---------------------------------------------------
    def gen_alu(self, cls: int) -> None:
        rng = self.rng
        width = 64 if cls == op.ALU64 else 32
        dst = self.reg()
        kinds = ["bin"] * 6
        if "div" in self.f:
            kinds += ["div"] * 2
        if "shift" in self.f:
            kinds += ["shift"] * 2
        kinds.append("neg")
        kind = rng.choice(kinds)
        if kind == "neg":
            self.emit(neg64(dst) if width == 64 else neg32(dst))
            return
        if kind == "bin":
            aop, off = rng.choice(_ALU_BINARY), 0
        elif kind == "div":
            aop, off = rng.choice((op.DIV, op.MOD)), rng.randrange(2)
        else:
            aop, off = rng.choice(_SHIFTS), 0
        if rng.random() < 0.5:
            self.emit(Instruction(cls | aop | op.X, int(dst), int(self.reg()), off, 0))
            return
        if kind == "shift":
            imm = rng.randrange(width)
        else:
            imm = self.imm32()
            if kind == "div" and imm == 0:
                imm = rng.choice((1, -1, 3, 0x7FFFFFFF, -0x80000000))
        if aop == op.MOV and width == 64 and rng.random() < 0.3:
            imm = rng.choice((-1, -0x80000000, 0x7FFFFFFF))
        self.emit(Instruction(cls | aop | op.K, int(dst), 0, off, imm))

    def gen_movsx(self) -> None:
        if self.rng.random() < 0.6:
            self.emit(movsx64(self.reg(), self.reg(), self.rng.choice((8, 16, 32))))
        else:
            self.emit(movsx32(self.reg(), self.reg(), self.rng.choice((8, 16))))

    def gen_bswap(self) -> None:
        bits = self.rng.choice((16, 32, 64))
        self.emit(self.rng.choice((le, be, bswap))(self.reg(), bits))

    def gen_lddw(self) -> None:
        self.emit(lddw(self.reg(), self.val64()))

    def gen_store(self) -> None:
        size = self.rng.choice((1, 2, 4, 8))
        off = self.slot(size)
        if self.rng.random() < 0.35:
            self.emit(st(size, R10, off, self.imm32()))
        else:
            self.emit(stx(size, R10, off, self.reg()))
        self.written(off, size)

    def gen_load(self, signed: bool) -> None:
        size = self.rng.choice((1, 2, 4) if signed else (1, 2, 4, 8))
        offs = self.readable(size)
        if not offs:
            self.gen_store()
            return
        off = self.rng.choice(offs)
        self.emit((ldxs if signed else ldx)(size, self.reg(), R10, off))

    def gen_atomic(self) -> None:
        size = self.rng.choice((4, 8))
        offs = self.readable(size)
        if not offs:
            self.gen_store()
            return
        self.emit(
            atomic(size, self.rng.choice(_ATOMIC_OPS), R10, self.rng.choice(offs), self.reg())
        )

    def gen_cond_jump(self, pos: int) -> None:
        rng = self.rng
        room = self.length - pos - 1  # instructions between this jump and the epilogue
        k = rng.randrange(1, min(6, room) + 1)
        target = pos + 1 + k
        cls = (
            op.JMP32
            if "jmp32" in self.f and ("jmp" not in self.f or rng.random() < 0.4)
            else op.JMP
        )
        jop = rng.choice(op.COND_JUMPS)
        self.jumps_left -= 1
        label = self.jump_to(target)
        if rng.random() < 0.5:
            insn = Instruction(cls | jop | op.X, int(self.reg()), int(self.reg()), 0, 0, label)
        else:
            insn = Instruction(cls | jop | op.K, int(self.reg()), 0, 0, self.imm32(), label)
        self.emit(insn)
        # An if/else diamond: the last instruction of the skipped block jumps over an
        # else block that starts at ``target`` (reachable through this jump).
        ja_at = target - 1
        if (
            "ja" in self.f
            and k >= 2
            and target < self.length
            and ja_at not in self.reserved_ja
            and rng.random() < 0.35
        ):
            self.reserved_ja.add(ja_at)

    def gen_ja(self, pos: int) -> None:
        k = self.rng.randrange(1, min(5, self.length - pos - 1) + 1)
        label = self.jump_to(pos + 1 + k)
        self.emit(gotol(label) if self.rng.random() < 0.5 else ja(label))
        self.fallthrough = False

    # ---- program -----------------------------------------------------------
    def prologue(self) -> None:
        rng = self.rng
        for r in range(10):
            choice = rng.random()
            if choice < 0.5:
                self.emit(lddw(Reg(r), self.val64()))
            elif choice < 0.8:
                self.emit(mov64(Reg(r), self.imm32()))
            else:
                self.emit(mov32(Reg(r), self.imm32()))
        if "stack" in self.f or "atomic" in self.f or "ldsx" in self.f:
            for _ in range(rng.randrange(1, 4)):
                off = -8 * rng.randrange(1, 9)
                self.emit(stx(8, R10, off, self.reg()))
                self.written(off, 8)

    def body(self) -> None:
        f = self.f
        menu: list[tuple[str, int]] = []
        for name, feat, weight in (
            ("alu64", "alu64", 10),
            ("alu32", "alu32", 7),
            ("movsx", "movsx", 2),
            ("bswap", "bswap", 2),
            ("lddw", "lddw", 1),
            ("store", "stack", 4),
            ("load", "stack", 4),
            ("ldsx", "ldsx", 2),
            ("atomic", "atomic", 3),
            ("jump", "jmp", 4),
            ("jump", "jmp32", 3),
        ):
            if feat in f:
                menu.append((name, weight))
        if not menu:
            raise ValueError(f"no instruction kinds in features {sorted(f)}")
        names = [n for n, _ in menu]
        weights = [w for _, w in menu]
        for pos in range(self.length):
            self.enter(pos)
            if pos in self.reserved_ja:
                self.gen_ja(pos)
                continue
            kind = self.rng.choices(names, weights)[0]
            if kind == "jump" and (pos >= self.length - 1 or self.jumps_left <= 0):
                kind = "alu64" if "alu64" in f else names[0]
                if kind == "jump":
                    self.emit(mov64(R0, self.imm32()))
                    continue
            if kind == "alu64":
                self.gen_alu(op.ALU64)
            elif kind == "alu32":
                self.gen_alu(op.ALU)
            elif kind == "movsx":
                self.gen_movsx()
            elif kind == "bswap":
                self.gen_bswap()
            elif kind == "lddw":
                self.gen_lddw()
            elif kind == "store":
                self.gen_store()
            elif kind == "load":
                self.gen_load(signed=False)
            elif kind == "ldsx":
                self.gen_load(signed=True)
            elif kind == "atomic":
                self.gen_atomic()
            else:
                self.gen_cond_jump(pos)
        self.enter(self.length)
        assert not self.pending, self.pending

    def epilogue(self) -> None:
        if self.mix:
            for r in range(1, 10):
                self.emit(mul64(R0, _MIX))
                self.emit(xor64(R0, Reg(r)))
            offs = self.readable(8)
            self.rng.shuffle(offs)
            for off in sorted(offs[:4]):
                self.emit(ldx(8, Reg(1), R10, off))
                self.emit(mul64(R0, _MIX))
                self.emit(xor64(R0, Reg(1)))
        self.emit(exit_())


def generate(
    seed: int,
    *,
    length: int = 40,
    features: Iterable[str] | None = None,
    mix: bool = True,
    max_jumps: int = 16,
) -> list[Instruction]:
    """A complete program (ending in ``exit``) from ``seed``; same seed, same program.

    ``length`` is the number of random body instructions (the prologue and epilogue
    add about 10-35 more); ``features`` selects instruction groups (see the module doc);
    ``mix`` hashes r1-r9 and initialised stack words into r0 before ``exit``;
    ``max_jumps`` caps the conditional jumps, which keeps the kernel verifier's path
    exploration under its 1M-instruction complexity limit for long programs.
    """
    feats = FEATURES if features is None else frozenset(features)
    unknown = feats - FEATURES
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")
    if length < 0:
        raise ValueError("length must be >= 0")
    g = _Gen(seed, length, feats, mix, max_jumps)
    g.prologue()
    g.body()
    g.epilogue()
    return assemble(g.items)


def fold_epilogue(insns: Sequence[Instruction], part: str) -> list[Instruction]:
    """The program returning the ``"lo"`` or ``"hi"`` 32 bits of r0 (``r0 >>= 32`` before each exit).

    The kernel's ``BPF_PROG_TEST_RUN`` reports a 32-bit return value; run both parts and
    :func:`combine` them to compare all 64 bits. Jump offsets are adjusted; programs with
    bpf-to-bpf calls are not supported.
    """
    if part == "lo":
        return list(insns)
    if part != "hi":
        raise ValueError(f"part must be 'lo' or 'hi', not {part!r}")
    if any(i.is_local_call or (i.is_lddw and i.src == op.PSEUDO_FUNC) for i in insns):
        raise ValueError("fold_epilogue does not support bpf-to-bpf calls")
    old = slot_positions(insns)
    new_start: dict[int, int] = {}
    shift = 0
    for pos, insn in zip(old, insns, strict=True):
        new_start[pos] = pos + shift
        if insn.is_exit:
            shift += 1
    out: list[Instruction] = []
    for pos, insn in zip(old, insns, strict=True):
        if insn.is_jump:
            target = pos + 1 + insn.jump_offset
            if target not in new_start:
                raise ValueError(f"jump at slot {pos} leaves the program")
            rel = new_start[target] - (new_start[pos] + 1)
            if insn.opcode == (op.JMP32 | op.JA):
                insn = insn.with_(imm=rel)
            else:
                insn = insn.with_(off=rel)
        if insn.is_exit:
            out.append(rsh64(R0, 32))
        out.append(insn)
    return out


def combine(lo: int, hi: int) -> int:
    """The 64-bit r0 from the two 32-bit return values of the ``lo`` and ``hi`` programs."""
    return ((hi & 0xFFFFFFFF) << 32) | (lo & 0xFFFFFFFF)


def format_program(insns: Sequence[Instruction]) -> str:
    """One instruction per line with slot numbers (disassembly when available)."""
    lines = []
    for pos, insn in zip(slot_positions(insns), insns, strict=True):
        lines.append(f"{pos:4d}: {insn}    ; {insn.raw_repr()}")
    return "\n".join(lines)
