"""Tristate numbers: a 64-bit value where each bit is known 0, known 1, or unknown.

A tnum is ``(value, mask)``: bits set in ``mask`` are unknown, the others equal the
bits of ``value`` (``value & mask == 0``). This is the bit-level half of the verifier's
scalar domain; the other half is the signed/unsigned interval bounds in ``scalar.py``.
"""

from __future__ import annotations

from typing import NamedTuple

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


class Tnum(NamedTuple):
    """A tristate number: ``value`` holds the known bits, ``mask`` the unknown ones."""

    value: int
    mask: int

    def is_const(self) -> bool:
        """True when every bit is known."""
        return self.mask == 0

    def __str__(self) -> str:
        return f"({self.value:#x}; {self.mask:#x})"


UNKNOWN = Tnum(0, M64)
ZERO = Tnum(0, 0)


def const(v: int) -> Tnum:
    """A fully known value."""
    return Tnum(v & M64, 0)


def trange(lo: int, hi: int) -> Tnum:
    """The smallest tnum containing every unsigned value in ``[lo, hi]``."""
    lo &= M64
    hi &= M64
    diff = lo ^ hi
    bits = diff.bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return Tnum(lo & ~delta & M64, delta)


def lshift(a: Tnum, n: int) -> Tnum:
    """``a << n`` (64-bit)."""
    return Tnum((a.value << n) & M64, (a.mask << n) & M64)


def rshift(a: Tnum, n: int) -> Tnum:
    """Logical ``a >> n`` (64-bit)."""
    return Tnum(a.value >> n, a.mask >> n)


def arshift(a: Tnum, n: int, bits: int = 64) -> Tnum:
    """Arithmetic ``a >> n`` at width ``bits`` (32 or 64); the result is zero-extended."""
    width_mask = M64 if bits == 64 else M32

    def sar(x: int) -> int:
        x &= width_mask
        if x >> (bits - 1):
            x -= 1 << bits
        return (x >> n) & width_mask

    return Tnum(sar(a.value), sar(a.mask))


def add(a: Tnum, b: Tnum) -> Tnum:
    """``a + b`` (64-bit, wrapping)."""
    sm = (a.mask + b.mask) & M64
    sv = (a.value + b.value) & M64
    sigma = (sm + sv) & M64
    chi = sigma ^ sv
    mu = chi | a.mask | b.mask
    return Tnum(sv & ~mu & M64, mu)


def sub(a: Tnum, b: Tnum) -> Tnum:
    """``a - b`` (64-bit, wrapping)."""
    dv = (a.value - b.value) & M64
    alpha = (dv + a.mask) & M64
    beta = (dv - b.mask) & M64
    chi = alpha ^ beta
    mu = chi | a.mask | b.mask
    return Tnum(dv & ~mu & M64, mu)


def neg(a: Tnum) -> Tnum:
    """``-a`` (64-bit, wrapping)."""
    return sub(ZERO, a)


def and_(a: Tnum, b: Tnum) -> Tnum:
    """``a & b``."""
    alpha = a.value | a.mask
    beta = b.value | b.mask
    v = a.value & b.value
    return Tnum(v, alpha & beta & ~v & M64)


def or_(a: Tnum, b: Tnum) -> Tnum:
    """``a | b``."""
    v = a.value | b.value
    mu = a.mask | b.mask
    return Tnum(v, mu & ~v & M64)


def xor(a: Tnum, b: Tnum) -> Tnum:
    """``a ^ b``."""
    v = a.value ^ b.value
    mu = a.mask | b.mask
    return Tnum(v & ~mu & M64, mu)


def mul(a: Tnum, b: Tnum) -> Tnum:
    """``a * b`` (64-bit, wrapping): shift-and-add over the bits of ``a``."""
    acc_v = (a.value * b.value) & M64
    acc_m = ZERO
    while a.value or a.mask:
        if a.value & 1:
            acc_m = add(acc_m, Tnum(0, b.mask))
        elif a.mask & 1:
            acc_m = add(acc_m, Tnum(0, b.value | b.mask))
        a = rshift(a, 1)
        b = lshift(b, 1)
    return add(const(acc_v), acc_m)


def intersect(a: Tnum, b: Tnum) -> Tnum:
    """Values in both ``a`` and ``b`` (assumes they are compatible)."""
    v = a.value | b.value
    mu = a.mask & b.mask
    return Tnum(v & ~mu & M64, mu)


def union(a: Tnum, b: Tnum) -> Tnum:
    """The smallest tnum containing every value of ``a`` and of ``b``."""
    mu = a.mask | b.mask | (a.value ^ b.value)
    return Tnum(a.value & ~mu & M64, mu)


def cast(a: Tnum, size: int) -> Tnum:
    """Truncate to ``size`` bytes."""
    m = (1 << (size * 8)) - 1
    return Tnum(a.value & m, a.mask & m)


def is_aligned(a: Tnum, size: int) -> bool:
    """Every possible value is a multiple of ``size`` (a power of two)."""
    if not size:
        return True
    return not ((a.value | a.mask) & (size - 1))


def contains(a: Tnum, b: Tnum) -> bool:
    """``b`` is a subset of ``a`` (every value of ``b`` is a value of ``a``)."""
    if b.mask & ~a.mask:
        return False
    return (b.value & ~a.mask) == a.value


def compatible(a: Tnum, b: Tnum) -> bool:
    """``a`` and ``b`` share at least one value."""
    known = ~(a.mask | b.mask) & M64
    return (a.value & known) == (b.value & known)


def subreg(a: Tnum) -> Tnum:
    """The low 32 bits."""
    return cast(a, 4)


def clear_subreg(a: Tnum) -> Tnum:
    """The high 32 bits, low half zero."""
    return lshift(rshift(a, 32), 32)


def with_subreg(a: Tnum, low: Tnum) -> Tnum:
    """``a`` with its low 32 bits replaced by ``low``."""
    return or_(clear_subreg(a), subreg(low))


def umin(a: Tnum) -> int:
    """Smallest unsigned value."""
    return a.value


def umax(a: Tnum) -> int:
    """Largest unsigned value."""
    return a.value | a.mask


def sbit_bounds(a: Tnum, bits: int = 64) -> tuple[int, int]:
    """Signed (min, max) of the low ``bits`` bits of ``a``."""
    m = M64 if bits == 64 else M32
    sign = 1 << (bits - 1)
    v, k = a.value & m, a.mask & m
    lo = v | (k & sign)
    hi = v | (k & (sign - 1))
    if lo & sign:
        lo -= 1 << bits
    if hi & sign:
        hi -= 1 << bits
    return lo, hi


def fmt(a: Tnum) -> str:
    """Kernel-style text: ``(0x0; 0xff)``."""
    return f"({a.value:#x}; {a.mask:#x})"
