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


#: ``Tnum(v, m)`` without the named tuple's Python-level ``__new__`` (hot paths)
_tnew = tuple.__new__


def tnew(v: int, m: int) -> Tnum:
    """``Tnum(v, m)``; hot callers use ``tuple.__new__(Tnum, (v, m))`` directly."""
    return _tnew(Tnum, (v, m))


UNKNOWN = Tnum(0, M64)
ZERO = _tnew(Tnum, (0, 0))


def const(v: int) -> Tnum:
    """A fully known value."""
    return _tnew(Tnum, (v & M64, 0))


def trange(lo: int, hi: int) -> Tnum:
    """The smallest tnum containing every unsigned value in ``[lo, hi]``."""
    lo &= M64
    hi &= M64
    diff = lo ^ hi
    bits = diff.bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return _tnew(Tnum, (lo & ~delta & M64, delta))


def lshift(a: Tnum, n: int) -> Tnum:
    """``a << n`` (64-bit)."""
    return _tnew(Tnum, ((a.value << n) & M64, (a.mask << n) & M64))


def rshift(a: Tnum, n: int) -> Tnum:
    """Logical ``a >> n`` (64-bit)."""
    return _tnew(Tnum, (a.value >> n, a.mask >> n))


def arshift(a: Tnum, n: int, bits: int = 64) -> Tnum:
    """Arithmetic ``a >> n`` at width ``bits`` (32 or 64); the result is zero-extended."""
    width_mask = M64 if bits == 64 else M32

    def sar(x: int) -> int:
        x &= width_mask
        if x >> (bits - 1):
            x -= 1 << bits
        return (x >> n) & width_mask

    return _tnew(Tnum, (sar(a.value), sar(a.mask)))


def add(a: Tnum, b: Tnum) -> Tnum:
    """``a + b`` (64-bit, wrapping)."""
    sm = (a.mask + b.mask) & M64
    sv = (a.value + b.value) & M64
    sigma = (sm + sv) & M64
    chi = sigma ^ sv
    mu = chi | a.mask | b.mask
    return _tnew(Tnum, (sv & ~mu & M64, mu))


def sub(a: Tnum, b: Tnum) -> Tnum:
    """``a - b`` (64-bit, wrapping)."""
    dv = (a.value - b.value) & M64
    alpha = (dv + a.mask) & M64
    beta = (dv - b.mask) & M64
    chi = alpha ^ beta
    mu = chi | a.mask | b.mask
    return _tnew(Tnum, (dv & ~mu & M64, mu))


def neg(a: Tnum) -> Tnum:
    """``-a`` (64-bit, wrapping)."""
    return sub(ZERO, a)


def and_(a: Tnum, b: Tnum) -> Tnum:
    """``a & b``."""
    alpha = a.value | a.mask
    beta = b.value | b.mask
    v = a.value & b.value
    return _tnew(Tnum, (v, alpha & beta & ~v & M64))


def or_(a: Tnum, b: Tnum) -> Tnum:
    """``a | b``."""
    v = a.value | b.value
    mu = a.mask | b.mask
    return _tnew(Tnum, (v, mu & ~v & M64))


def xor(a: Tnum, b: Tnum) -> Tnum:
    """``a ^ b``."""
    v = a.value ^ b.value
    mu = a.mask | b.mask
    return _tnew(Tnum, (v & ~mu & M64, mu))


def mul(a: Tnum, b: Tnum) -> Tnum:
    """``a * b`` (64-bit, wrapping): shift-and-add over the bits of ``a``.

    The kernel's ``tnum_mul`` on local integers: ``acc_m = add(acc_m, (0, x))`` for
    each bit of ``a`` that is known one (``x = b.mask``) or unknown (``x = b.value |
    b.mask``), ``a >>= 1``, ``b <<= 1``.
    """
    av, am = a
    bv, bm = b
    acc_v = (av * bv) & M64
    xv = xm = 0
    while av or am:
        if av & 1:
            y = bm
        elif am & 1:
            y = bv | bm
        else:
            y = -1
        if y >= 0:
            # add((xv, xm), (0, y)); xv is already within 64 bits
            sigma = (((xm + y) & M64) + xv) & M64
            mu = (sigma ^ xv) | xm | y
            xv, xm = xv & ~mu & M64, mu
        av >>= 1
        am >>= 1
        bv = (bv << 1) & M64
        bm = (bm << 1) & M64
    return add(_tnew(Tnum, (acc_v, 0)), _tnew(Tnum, (xv, xm)))


def intersect(a: Tnum, b: Tnum) -> Tnum:
    """Values in both ``a`` and ``b`` (assumes they are compatible)."""
    v = a.value | b.value
    mu = a.mask & b.mask
    return _tnew(Tnum, (v & ~mu & M64, mu))


def union(a: Tnum, b: Tnum) -> Tnum:
    """The smallest tnum containing every value of ``a`` and of ``b``."""
    mu = a.mask | b.mask | (a.value ^ b.value)
    return _tnew(Tnum, (a.value & ~mu & M64, mu))


def cast(a: Tnum, size: int) -> Tnum:
    """Truncate to ``size`` bytes."""
    m = (1 << (size * 8)) - 1
    return _tnew(Tnum, (a.value & m, a.mask & m))


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
    return _tnew(Tnum, (a[0] & M32, a[1] & M32))


def clear_subreg(a: Tnum) -> Tnum:
    """The high 32 bits, low half zero."""
    return lshift(rshift(a, 32), 32)


def with_subreg(a: Tnum, low: Tnum) -> Tnum:
    """``a`` with its low 32 bits replaced by ``low``
    (``or_(clear_subreg(a), subreg(low))``)."""
    v = ((a[0] >> 32) << 32) | (low[0] & M32)
    mu = ((a[1] >> 32) << 32) | (low[1] & M32)
    return _tnew(Tnum, (v, mu & ~v & M64))


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
