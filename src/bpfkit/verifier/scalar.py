"""Scalar bounds: signed/unsigned 64- and 32-bit intervals kept consistent with a tnum.

Functions here mutate a private :class:`~bpfkit.verifier.state.Reg` (one the caller
cloned). ``sync`` is the fixpoint the kernel calls ``reg_bounds_sync``: tighten each
interval from the others and from the known bits, then the known bits from the
intervals.
"""

from __future__ import annotations

from ..isa import opcodes as op
from . import tnum
from .state import (
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    SCALAR,
    U32_MAX,
    U64_MAX,
    Reg,
    s32,
    s64,
)
from .tnum import M32, M64, Tnum, _tnew

# ---------------------------------------------------------------------------
# Bounds synchronisation
# ---------------------------------------------------------------------------


def _update_from_tnum(r: Reg) -> None:
    v, m = r.var_off
    lo, hi = tnum.sbit_bounds(r.var_off, 32)
    r.s32min = max(r.s32min, lo)
    r.s32max = min(r.s32max, hi)
    r.u32min = max(r.u32min, v & M32)
    r.u32max = min(r.u32max, (v | m) & M32)
    lo, hi = tnum.sbit_bounds(r.var_off, 64)
    r.smin = max(r.smin, lo)
    r.smax = min(r.smax, hi)
    r.umin = max(r.umin, v)
    r.umax = min(r.umax, v | m)


def _deduce32(r: Reg) -> None:
    # 64 -> 32: when the high halves agree, the low halves are an interval too.
    if (r.umin >> 32) == (r.umax >> 32):
        lo, hi = r.umin & M32, r.umax & M32
        r.u32min = max(r.u32min, lo)
        r.u32max = min(r.u32max, hi)
        if s32(lo) <= s32(hi):
            r.s32min = max(r.s32min, s32(lo))
            r.s32max = min(r.s32max, s32(hi))
    if (r.smin >> 32) == (r.smax >> 32):
        lo, hi = r.smin & M32, r.smax & M32
        if lo <= hi:
            r.u32min = max(r.u32min, lo)
            r.u32max = min(r.u32max, hi)
        if s32(lo) <= s32(hi):
            r.s32min = max(r.s32min, s32(lo))
            r.s32max = min(r.s32max, s32(hi))
    r.s32min, r.s32max = _cross32(r.umin, r.umax, r.smin, r.smax, r.s32min, r.s32max)
    # signed <-> unsigned within 32 bits
    if s32(r.u32min) <= s32(r.u32max):
        r.s32min = max(r.s32min, s32(r.u32min))
        r.s32max = min(r.s32max, s32(r.u32max))
    if (r.s32min & M32) <= (r.s32max & M32):
        r.u32min = max(r.u32min, r.s32min & M32)
        r.u32max = min(r.u32max, r.s32max & M32)
    elif r.u32max < (r.s32min & M32):
        r.s32min = s32(r.u32min)
        r.u32max = min(r.u32max, r.s32max & M32)
    elif (r.s32max & M32) < r.u32min:
        r.s32max = s32(r.u32max)
        r.u32min = max(r.u32min, r.s32min & M32)


def _cross32(umin: int, umax: int, smin: int, smax: int, s32min: int, s32max: int):
    """The kernel's __reg32_deduce_bounds for 64-bit ranges whose high halves differ by
    one while the low halves cross from negative to non-negative: an s32 range."""
    if ((umin >> 32) + 1) & M32 == (umax >> 32) & M32:
        lo, hi = s32(umin & M32), s32(umax & M32)
        if lo < 0 <= hi:
            s32min, s32max = max(s32min, lo), min(s32max, hi)
    if (((smin >> 32) & M32) + 1) & M32 == (smax >> 32) & M32:
        lo, hi = s32(smin & M32), s32(smax & M32)
        if lo < 0 <= hi:
            s32min, s32max = max(s32min, lo), min(s32max, hi)
    return s32min, s32max


def _deduce64(r: Reg) -> None:
    if s64(r.umin) <= s64(r.umax):
        r.smin = max(r.smin, s64(r.umin))
        r.smax = min(r.smax, s64(r.umax))
    if (r.smin & M64) <= (r.smax & M64):
        r.umin = max(r.umin, r.smin & M64)
        r.umax = min(r.umax, r.smax & M64)
    elif r.umax < (r.smin & M64):  # only the non-negative part of the s64 range
        r.smin = s64(r.umin)
        r.umax = min(r.umax, r.smax & M64)
    elif (r.smax & M64) < r.umin:  # only the negative part
        r.smax = s64(r.umax)
        r.umin = max(r.umin, r.smin & M64)


def _deduce_64_from_32(r: Reg) -> None:
    # The kernel's __reg_deduce_mixed_bounds: the 32-bit unsigned range replaces the low
    # half of each 64-bit bound (u32 -> u64 and u32 -> s64 tightening; always sound: the
    # nearest value inside the bound whose low half is inside the 32-bit range).
    r.umin = max(r.umin, (r.umin & _HI32) | r.u32min)
    r.umax = min(r.umax, (r.umax & _HI32) | r.u32max)
    r.smin = max(r.smin, (r.smin & ~M32) | r.u32min)
    r.smax = min(r.smax, (r.smax & ~M32) | r.u32max)
    lo, hi = r.s32min & M32, r.s32max & M32
    if lo <= hi:  # s32 -> u64 and s64
        r.umin = max(r.umin, (r.umin & _HI32) | lo)
        r.umax = min(r.umax, (r.umax & _HI32) | hi)
        r.smin = max(r.smin, (r.smin & ~M32) | lo)
        r.smax = min(r.smax, (r.smax & ~M32) | hi)
    # A 64-bit value within s32 range whose 32-bit range is non-negative: the kernel
    # (__reg_deduce_mixed_bounds) takes the 32-bit range, and only then; a negative
    # s32min teaches it nothing about the 64-bit bounds, so neither may it teach us.
    if r.s32min >= 0 and S32_MIN <= r.smin and r.smax <= S32_MAX:
        r.smin = max(r.smin, r.s32min)
        r.smax = min(r.smax, r.s32max)
        r.umin = max(r.umin, r.s32min)
        r.umax = min(r.umax, r.s32max)


_S63 = 1 << 63
_S31 = 1 << 31
_T64 = 1 << 64
_T32 = 1 << 32
_HI32 = M64 & ~M32


#: sync's results by its inputs (a pure function; loops meet the same bounds again)
_SYNC_CACHE: dict[tuple, tuple] = {}
_SYNC_CACHE_MAX = 1 << 16


def sync(r: Reg) -> None:
    """Make the intervals and the known bits agree (kernel ``reg_bounds_sync``).

    The same steps as :func:`sync_reference` (kept for tests), inlined on locals
    (:func:`_sync`) and remembered by their inputs.
    """
    vo = r.var_off
    if vo[1] == 0:
        sync_reference(r)
        return
    key = (vo, r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max)
    out = _SYNC_CACHE.get(key)
    if out is None:
        out = _sync(key)
        if len(_SYNC_CACHE) >= _SYNC_CACHE_MAX:
            _SYNC_CACHE.clear()
        _SYNC_CACHE[key] = out
    (r.var_off, r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max) = out


def _sync(key: tuple) -> tuple:
    """:func:`sync` of (var_off, umin, umax, smin, smax, u32min, u32max, s32min, s32max)
    for an unknown var_off; the same tuple, synced."""
    vo, umin, umax, smin, smax, u32min, u32max, s32min, s32max = key
    v, m = vo
    if (
        m == M64
        and umin == 0
        and umax == M64
        and smin == S64_MIN
        and smax == S64_MAX
        and u32min == 0
        and u32max == M32
        and s32min == S32_MIN
        and s32max == S32_MAX
    ):
        return key  # nothing known: nothing to deduce
    for rnd in (0, 1):
        # _update_from_tnum
        v32, k32 = v & M32, m & M32
        lo = v32 | (k32 & _S31)
        hi = v32 | (k32 & (_S31 - 1))
        if lo & _S31:
            lo -= _T32
        if hi & _S31:
            hi -= _T32
        if lo > s32min:
            s32min = lo
        if hi < s32max:
            s32max = hi
        if v32 > u32min:
            u32min = v32
        t = (v | m) & M32
        if t < u32max:
            u32max = t
        lo = v | (m & _S63)
        hi = v | (m & (_S63 - 1))
        if lo & _S63:
            lo -= _T64
        if hi & _S63:
            hi -= _T64
        if lo > smin:
            smin = lo
        if hi < smax:
            smax = hi
        if v > umin:
            umin = v
        t = v | m
        if t < umax:
            umax = t
        if rnd:
            break
        for step in (0, 1):
            # _deduce32
            if (umin >> 32) == (umax >> 32):
                lo, hi = umin & M32, umax & M32
                if lo > u32min:
                    u32min = lo
                if hi < u32max:
                    u32max = hi
                slo = lo - _T32 if lo & _S31 else lo
                shi = hi - _T32 if hi & _S31 else hi
                if slo <= shi:
                    if slo > s32min:
                        s32min = slo
                    if shi < s32max:
                        s32max = shi
            if (smin >> 32) == (smax >> 32):
                lo, hi = smin & M32, smax & M32
                if lo <= hi:
                    if lo > u32min:
                        u32min = lo
                    if hi < u32max:
                        u32max = hi
                slo = lo - _T32 if lo & _S31 else lo
                shi = hi - _T32 if hi & _S31 else hi
                if slo <= shi:
                    if slo > s32min:
                        s32min = slo
                    if shi < s32max:
                        s32max = shi
            s32min, s32max = _cross32(umin, umax, smin, smax, s32min, s32max)
            slo = u32min - _T32 if u32min & _S31 else u32min
            shi = u32max - _T32 if u32max & _S31 else u32max
            if slo <= shi:
                if slo > s32min:
                    s32min = slo
                if shi < s32max:
                    s32max = shi
            lo, hi = s32min & M32, s32max & M32
            if lo <= hi:
                if lo > u32min:
                    u32min = lo
                if hi < u32max:
                    u32max = hi
            elif u32max < lo:  # the u32 range overlaps only the non-negative s32 part
                s32min = u32min - _T32 if u32min & _S31 else u32min
                if hi < u32max:
                    u32max = hi
            elif hi < u32min:  # ... only the negative part
                s32max = u32max - _T32 if u32max & _S31 else u32max
                if lo > u32min:
                    u32min = lo
            # _deduce64
            slo = umin - _T64 if umin & _S63 else umin
            shi = umax - _T64 if umax & _S63 else umax
            if slo <= shi:
                if slo > smin:
                    smin = slo
                if shi < smax:
                    smax = shi
            lo, hi = smin & M64, smax & M64
            if lo <= hi:
                if lo > umin:
                    umin = lo
                if hi < umax:
                    umax = hi
            elif umax < lo:  # the u64 range overlaps only the non-negative s64 part
                smin = umin - _T64 if umin & _S63 else umin
                if hi < umax:
                    umax = hi
            elif hi < umin:  # ... only the negative part
                smax = umax - _T64 if umax & _S63 else umax
                if lo > umin:
                    umin = lo
            if step:
                break
            # _deduce_64_from_32 (the kernel's __reg_deduce_mixed_bounds)
            t = (umin & _HI32) | u32min
            if t > umin:
                umin = t
            t = (umax & _HI32) | u32max
            if t < umax:
                umax = t
            t = (smin & ~M32) | u32min
            if t > smin:
                smin = t
            t = (smax & ~M32) | u32max
            if t < smax:
                smax = t
            lo, hi = s32min & M32, s32max & M32
            if lo <= hi:  # s32 -> u64 and s64, when the s32 range is one u32 range
                t = (umin & _HI32) | lo
                if t > umin:
                    umin = t
                t = (umax & _HI32) | hi
                if t < umax:
                    umax = t
                t = (smin & ~M32) | lo
                if t > smin:
                    smin = t
                t = (smax & ~M32) | hi
                if t < smax:
                    smax = t
            if s32min >= 0 and S32_MIN <= smin and smax <= S32_MAX:
                if s32min > smin:
                    smin = s32min
                if s32max < smax:
                    smax = s32max
                if s32min > umin:
                    umin = s32min
                if s32max < umax:
                    umax = s32max
        # known bits from the intervals
        if umin <= umax:
            diff = (umin ^ umax).bit_length()
            if diff <= 63:
                delta = (1 << diff) - 1
                tv = umin & ~delta & M64
                nv = v | tv
                m = m & delta
                v = nv & ~m & M64
        if u32min <= u32max and (u32min or u32max != M32):
            diff = (u32min ^ u32max).bit_length()
            if diff <= 63:
                delta = (1 << diff) - 1
                tv = u32min & ~delta & M64
            else:
                delta, tv = M64, 0
            lv = (v & M32) | tv
            lm = (m & M32) & delta
            lv = lv & ~lm & M64
            # with_subreg: high half of (v, m) with the new low half
            hv = (v >> 32) << 32
            hm = (m >> 32) << 32
            nv = hv | (lv & M32)
            nm = hm | (lm & M32)
            v, m = nv, nm & ~nv & M64
    return (_tnew(Tnum, (v, m)), umin, umax, smin, smax, u32min, u32max, s32min, s32max)


def sync_reference(r: Reg) -> None:
    """Make the intervals and the known bits agree (kernel ``reg_bounds_sync``)."""
    v, m = r.var_off
    if m == 0:
        # a known value: consistent bounds collapse onto it, inconsistent ones stay empty
        sv = v - (1 << 64) if v >> 63 else v
        lo = v & M32
        slo = lo - (1 << 32) if lo >> 31 else lo
        if (
            r.umin <= v <= r.umax
            and r.smin <= sv <= r.smax
            and r.u32min <= lo <= r.u32max
            and r.s32min <= slo <= r.s32max
        ):
            r.umin = r.umax = v
            r.smin = r.smax = sv
            r.u32min = r.u32max = lo
            r.s32min = r.s32max = slo
        else:
            r.umin, r.umax = 1, 0
        return
    _update_from_tnum(r)
    _deduce32(r)
    _deduce64(r)
    _deduce_64_from_32(r)
    _deduce32(r)
    _deduce64(r)
    if r.umin <= r.umax:
        t = tnum.trange(r.umin, r.umax)
        if t.mask != M64:
            r.var_off = tnum.intersect(r.var_off, t)
    if r.u32min <= r.u32max and (r.u32min or r.u32max != M32):
        low = tnum.intersect(tnum.subreg(r.var_off), tnum.trange(r.u32min, r.u32max))
        r.var_off = tnum.with_subreg(r.var_off, low)
    _update_from_tnum(r)


def is_empty(r: Reg) -> bool:
    """The bounds admit no value (an impossible path)."""
    if r.umin > r.umax or r.smin > r.smax or r.u32min > r.u32max or r.s32min > r.s32max:
        return True
    v, m = r.var_off
    if v & m:
        return True
    return False


def zext32(r: Reg) -> None:
    """Result of a 32-bit operation: the high half becomes zero."""
    r.var_off = tnum.subreg(r.var_off)
    r.umin, r.umax = r.u32min, r.u32max
    r.smin, r.smax = r.u32min, r.u32max


def from_64(r: Reg) -> None:
    """Derive the 32-bit bounds from the known bits (after a 64-bit result was set)."""
    r.s32min, r.s32max, r.u32min, r.u32max = S32_MIN, S32_MAX, 0, U32_MAX


def unknown_64(r: Reg) -> None:
    """Forget the 64-bit intervals (keep the tnum)."""
    r.smin, r.smax, r.umin, r.umax = S64_MIN, S64_MAX, 0, U64_MAX


def unknown_32(r: Reg) -> None:
    """Forget the 32-bit intervals (keep the tnum)."""
    r.s32min, r.s32max, r.u32min, r.u32max = S32_MIN, S32_MAX, 0, U32_MAX


def mark_unknown(r: Reg) -> None:
    """Make ``r`` an unknown scalar."""
    r.type = SCALAR
    r.maybe_null = r.rdonly = r.ringbuf = False
    r.off = 0
    r.id = r.ref_obj_id = 0
    r.range = 0
    r.map = None
    r.mem_size = r.frameno = r.subprog = 0
    r.mark_unknown_bounds()


# ---------------------------------------------------------------------------
# ALU on scalars
# ---------------------------------------------------------------------------


def _add_bounds(dmin, dmax, smin, smax, lo, hi):
    a, b = dmin + smin, dmax + smax
    if a < lo or b > hi:
        return None
    return a, b


def _sub_bounds(dmin, dmax, smin, smax, lo, hi):
    a, b = dmin - smax, dmax - smin
    if a < lo or b > hi:
        return None
    return a, b


def _wrap_add_unsigned(dmin, dmax, smin, smax, top):
    lo, hi = dmin + smin, dmax + smax
    if hi <= top:
        return lo, hi
    if lo > top:  # both wrapped
        return lo - top - 1, hi - top - 1
    return 0, top


def _wrap_sub_unsigned(dmin, dmax, smin, smax, top):
    lo, hi = dmin - smax, dmax - smin
    if lo >= 0:
        return lo, hi
    if hi < 0:
        return lo + top + 1, hi + top + 1
    return 0, top


def _signed_wrap(a_lo, a_hi, lo, hi):
    span = hi - lo + 1
    if a_lo >= lo and a_hi <= hi:
        return a_lo, a_hi
    if a_hi - a_lo < span:
        nlo = (a_lo - lo) % span + lo
        nhi = (a_hi - lo) % span + lo
        if nlo <= nhi:
            return nlo, nhi
    return lo, hi


def _mul_bounds(a: tuple, b: tuple, lo: int, hi: int):
    prods = [x * y for x in a for y in b]
    mn, mx = min(prods), max(prods)
    if mn < lo or mx > hi:
        return None
    return mn, mx


def fold(aop: int, is64: bool, a: int, b: int) -> int | None:
    """The result of ``a <aop> b`` on known values (None: not folded here)."""
    if is64:
        if aop == op.ADD:
            return (a + b) & M64
        if aop == op.SUB:
            return (a - b) & M64
        if aop == op.MUL:
            return (a * b) & M64
        if aop == op.AND:
            return a & b
        if aop == op.OR:
            return a | b
        if aop == op.XOR:
            return a ^ b
        if b < 64:
            if aop == op.LSH:
                return (a << b) & M64
            if aop == op.RSH:
                return a >> b
            if aop == op.ARSH:
                return (s64(a) >> b) & M64
        return None
    a &= M32
    if b >= 32 and aop in (op.LSH, op.RSH, op.ARSH):
        return None  # the kernel does not compute it (its 64-bit umax is >= 32)
    b &= M32
    if aop == op.ADD:
        return (a + b) & M32
    if aop == op.SUB:
        return (a - b) & M32
    if aop == op.MUL:
        return (a * b) & M32
    if aop == op.AND:
        return a & b
    if aop == op.OR:
        return a | b
    if aop == op.XOR:
        return a ^ b
    if b < 32:
        if aop == op.LSH:
            return (a << b) & M32
        if aop == op.RSH:
            return a >> b
        if aop == op.ARSH:
            return (s32(a) >> b) & M32
    return None


def safe_to_compute(aop: int, is64: bool, src: Reg) -> bool:
    """Whether the kernel computes the result's range (``is_safe_to_compute_dst_reg_range``):
    add, sub, mul and the bitwise operations always; shifts by a constant below the width
    (judged on the source's 64-bit maximum, also for 32-bit shifts); nothing else —
    division and modulo results are unknown, 64 bits wide, even of known operands."""
    if aop in (op.ADD, op.SUB, op.MUL, op.AND, op.OR, op.XOR, op.NEG):
        return True
    if aop in (op.LSH, op.RSH, op.ARSH):
        if is64:
            const = src.var_off.mask == 0 and src.smin == src.smax and src.umin == src.umax
            return const and src.umax < 64
        const = (
            src.var_off.mask & M32 == 0 and src.s32min == src.s32max and src.u32min == src.u32max
        )
        return const and src.umax < 32
    return False


def alu(aop: int, is64: bool, dst: Reg, src: Reg, signed_divmod: bool = False) -> None:
    """``dst = dst <aop> src`` for scalars; ``dst`` is a private copy and is updated."""
    if not safe_to_compute(aop, is64, src):
        # the kernel's __mark_reg_unknown: all 64 bits unknown, even after a 32-bit op
        dst.mark_unknown_bounds()
        return
    if dst.var_off.mask == 0 and src.var_off.mask == 0:
        # both known: fold (the same result the interval/tnum rules reach, faster)
        v = fold(aop, is64, dst.var_off.value, src.var_off.value)
        if v is not None:
            dst.set_const(v)
            return
    if not is64:
        _alu32(aop, dst, src)
        zext32(dst)
        sync(dst)
        return
    if aop == op.ADD:
        dst.var_off = tnum.add(dst.var_off, src.var_off)
        s = _signed_wrap(dst.smin + src.smin, dst.smax + src.smax, S64_MIN, S64_MAX)
        u = _wrap_add_unsigned(dst.umin, dst.umax, src.umin, src.umax, U64_MAX)
        s3 = _signed_wrap(dst.s32min + src.s32min, dst.s32max + src.s32max, S32_MIN, S32_MAX)
        u3 = _wrap_add_unsigned(dst.u32min, dst.u32max, src.u32min, src.u32max, U32_MAX)
        dst.smin, dst.smax = s
        dst.umin, dst.umax = u
        dst.s32min, dst.s32max = s3
        dst.u32min, dst.u32max = u3
    elif aop == op.SUB:
        dst.var_off = tnum.sub(dst.var_off, src.var_off)
        s = _signed_wrap(dst.smin - src.smax, dst.smax - src.smin, S64_MIN, S64_MAX)
        u = _wrap_sub_unsigned(dst.umin, dst.umax, src.umin, src.umax, U64_MAX)
        s3 = _signed_wrap(dst.s32min - src.s32max, dst.s32max - src.s32min, S32_MIN, S32_MAX)
        u3 = _wrap_sub_unsigned(dst.u32min, dst.u32max, src.u32min, src.u32max, U32_MAX)
        dst.smin, dst.smax = s
        dst.umin, dst.umax = u
        dst.s32min, dst.s32max = s3
        dst.u32min, dst.u32max = u3
    elif aop == op.MUL:
        dst.var_off = tnum.mul(dst.var_off, src.var_off)
        u = _mul_bounds((dst.umin, dst.umax), (src.umin, src.umax), 0, U64_MAX)
        s = _mul_bounds((dst.smin, dst.smax), (src.smin, src.smax), S64_MIN, S64_MAX)
        u3 = _mul_bounds((dst.u32min, dst.u32max), (src.u32min, src.u32max), 0, U32_MAX)
        s3 = _mul_bounds((dst.s32min, dst.s32max), (src.s32min, src.s32max), S32_MIN, S32_MAX)
        dst.umin, dst.umax = u or (0, U64_MAX)
        dst.smin, dst.smax = s or (S64_MIN, S64_MAX)
        dst.u32min, dst.u32max = u3 or (0, U32_MAX)
        dst.s32min, dst.s32max = s3 or (S32_MIN, S32_MAX)
    elif aop in (op.AND, op.OR, op.XOR):
        f = {op.AND: tnum.and_, op.OR: tnum.or_, op.XOR: tnum.xor}[aop]
        dst.var_off = f(dst.var_off, src.var_off)
        if aop == op.AND:
            umax = min(dst.umax, src.umax)
            u32max = min(dst.u32max, src.u32max)
            unknown_64(dst)
            unknown_32(dst)
            dst.umax = umax
            dst.u32max = u32max
        elif aop == op.OR:
            umin = max(dst.umin, src.umin)
            u32min = max(dst.u32min, src.u32min)
            unknown_64(dst)
            unknown_32(dst)
            dst.umin = umin
            dst.u32min = u32min
        else:
            unknown_64(dst)
            unknown_32(dst)
    elif aop in (op.LSH, op.RSH, op.ARSH):
        if not src.is_const() or src.value >= 64:
            dst.mark_unknown_bounds()
            return
        n = src.value
        if aop == op.LSH:
            # the kernel's scalar_min_max_lsh: signed bounds survive only ``<< 32`` of a
            # non-negative 32-bit range; unsigned ones unless the top bit may shift out
            smax = dst.s32max << 32 if n == 32 and dst.s32max >= 0 else S64_MAX
            smin = dst.s32min << 32 if n == 32 and dst.s32min >= 0 else S64_MIN
            if dst.umax > (1 << (63 - n)):
                umin, umax = 0, U64_MAX
            else:
                umin, umax = dst.umin << n, dst.umax << n
            if n > 31 or dst.u32max > (1 << (31 - n)):
                u32min, u32max = 0, U32_MAX
            else:
                u32min, u32max = dst.u32min << n, dst.u32max << n
            dst.var_off = tnum.lshift(dst.var_off, n)
            dst.umin, dst.umax, dst.smin, dst.smax = umin, umax, smin, smax
            dst.u32min, dst.u32max = u32min, u32max
            dst.s32min, dst.s32max = S32_MIN, S32_MAX
        elif aop == op.RSH:
            dst.var_off = tnum.rshift(dst.var_off, n)
            umin, umax = dst.umin >> n, dst.umax >> n
            unknown_64(dst)
            unknown_32(dst)
            dst.umin, dst.umax = umin, umax
        else:
            dst.var_off = tnum.arshift(dst.var_off, n, 64)
            smin, smax = dst.smin >> n, dst.smax >> n
            unknown_64(dst)
            unknown_32(dst)
            dst.smin, dst.smax = smin, smax
    else:
        # div, mod, and anything the kernel does not track: the result is unknown.
        dst.mark_unknown_bounds()
        return
    sync(dst)


def _alu32(aop: int, dst: Reg, src: Reg) -> None:
    dv = tnum.subreg(dst.var_off)
    sv = tnum.subreg(src.var_off)
    if aop == op.ADD:
        t = tnum.subreg(tnum.add(dv, sv))
        s3 = _signed_wrap(dst.s32min + src.s32min, dst.s32max + src.s32max, S32_MIN, S32_MAX)
        u3 = _wrap_add_unsigned(dst.u32min, dst.u32max, src.u32min, src.u32max, U32_MAX)
    elif aop == op.SUB:
        t = tnum.subreg(tnum.sub(dv, sv))
        s3 = _signed_wrap(dst.s32min - src.s32max, dst.s32max - src.s32min, S32_MIN, S32_MAX)
        u3 = _wrap_sub_unsigned(dst.u32min, dst.u32max, src.u32min, src.u32max, U32_MAX)
    elif aop == op.MUL:
        t = tnum.subreg(tnum.mul(dv, sv))
        u3 = _mul_bounds((dst.u32min, dst.u32max), (src.u32min, src.u32max), 0, U32_MAX)
        s3 = _mul_bounds((dst.s32min, dst.s32max), (src.s32min, src.s32max), S32_MIN, S32_MAX)
        u3 = u3 or (0, U32_MAX)
        s3 = s3 or (S32_MIN, S32_MAX)
    elif aop == op.AND:
        t = tnum.and_(dv, sv)
        u3 = (0, min(dst.u32max, src.u32max))
        s3 = (S32_MIN, S32_MAX)
    elif aop == op.OR:
        t = tnum.or_(dv, sv)
        u3 = (max(dst.u32min, src.u32min), U32_MAX)
        s3 = (S32_MIN, S32_MAX)
    elif aop == op.XOR:
        t = tnum.xor(dv, sv)
        u3 = (0, U32_MAX)
        s3 = (S32_MIN, S32_MAX)
    elif aop in (op.LSH, op.RSH, op.ARSH) and src.is_const32() and (src.value & M32) < 32:
        n = src.value & M32
        if aop == op.LSH:
            t = tnum.subreg(tnum.lshift(dv, n))
            if dst.u32max <= (1 << (31 - n)):  # the kernel's test: no top bit shifted out
                u3 = (dst.u32min << n, dst.u32max << n)
            else:
                u3 = (0, U32_MAX)
            s3 = (S32_MIN, S32_MAX)
        elif aop == op.RSH:
            t = tnum.rshift(dv, n)
            u3 = (dst.u32min >> n, dst.u32max >> n)
            s3 = (S32_MIN, S32_MAX)
        else:
            t = tnum.arshift(dv, n, 32)
            s3 = (dst.s32min >> n, dst.s32max >> n)
            u3 = (0, U32_MAX)
    else:
        t = _tnew(Tnum, (0, M32))
        u3 = (0, U32_MAX)
        s3 = (S32_MIN, S32_MAX)
    dst.var_off = t
    dst.u32min, dst.u32max = u3
    dst.s32min, dst.s32max = s3
    _update_from_tnum32(dst)


def _update_from_tnum32(r: Reg) -> None:
    v, m = r.var_off
    lo, hi = tnum.sbit_bounds(r.var_off, 32)
    r.s32min = max(r.s32min, lo)
    r.s32max = min(r.s32max, hi)
    r.u32min = max(r.u32min, v & M32)
    r.u32max = min(r.u32max, (v | m) & M32)
    for _ in range(2):
        if s32(r.u32min) <= s32(r.u32max):
            r.s32min = max(r.s32min, s32(r.u32min))
            r.s32max = min(r.s32max, s32(r.u32max))
        if (r.s32min & M32) <= (r.s32max & M32):
            r.u32min = max(r.u32min, r.s32min & M32)
            r.u32max = min(r.u32max, r.s32max & M32)


def neg(r: Reg, is64: bool) -> None:
    """``r = -r``."""
    src = r.clone()
    r.set_const(0)
    alu(op.SUB, is64, r, src)


def bswap(r: Reg, bits: int, to_be: bool, is64_insn: bool) -> None:
    """Byte swap / truncation: constants stay known, anything else becomes unknown."""
    width_mask = (1 << bits) - 1
    if r.is_const():
        v = r.value & width_mask
        if to_be or is64_insn:
            v = int.from_bytes(v.to_bytes(bits // 8, "little"), "big")
        r.set_const(v)
        return
    if not to_be and not is64_insn:
        # to-little-endian on a little-endian host is a zero-extending truncation.
        r.var_off = tnum.cast(r.var_off, bits // 8)
        unknown_64(r)
        unknown_32(r)
        sync(r)
        return
    r.mark_unknown_bounds()
    if bits < 64:
        r.var_off = _tnew(Tnum, (0, width_mask))
        sync(r)


def sext(r: Reg, bits: int, is64: bool) -> None:
    """Sign-extend the low ``bits`` bits (``movsx``, ``ldsx``): to 64 bits or, for alu32,
    to 32 — the kernel's ``coerce_reg_to_size_sx`` / ``coerce_subreg_to_size_sx``, no
    more precise than they are."""
    top = 1 << (bits - 1)
    mask = (1 << bits) - 1

    def ext(v: int) -> int:
        v &= mask
        return v - (1 << bits) if v & top else v

    if not r.var_off.mask:
        v = ext(r.var_off.value)
        r.set_const(v & (M64 if is64 else M32))
        if not is64:
            zext32(r)
            sync(r)
        return
    if is64:
        hi_max = (r.smax & M64) >> bits
        hi_min = (r.smin & M64) >> bits
        if hi_max == hi_min:
            a, b = ext(r.smax), ext(r.smin)
            lo, hi = min(a, b), max(a, b)
            if (lo >= 0) == (hi >= 0):
                r.smin = r.s32min = lo
                r.smax = r.s32max = hi
                r.umin = r.u32min = lo & M64
                r.umax = r.u32max = hi & M64
                r.u32min &= M32
                r.u32max &= M32
                r.var_off = tnum.trange(lo & M64, hi & M64)
                return
        # set_sext64_default_val
        r.smin = r.s32min = -top
        r.smax = r.s32max = top - 1
        r.umin = r.u32min = 0
        r.umax = M64
        r.u32max = M32
        r.var_off = tnum.UNKNOWN
        return
    hi_max = (r.s32max & M32) >> bits
    hi_min = (r.s32min & M32) >> bits
    done = False
    if hi_max == hi_min:
        a, b = ext(r.s32max), ext(r.s32min)
        lo, hi = min(a, b), max(a, b)
        if (lo >= 0) == (hi >= 0):
            r.s32min, r.s32max = lo, hi
            r.u32min, r.u32max = lo & M32, hi & M32
            r.var_off = tnum.subreg(tnum.trange(lo & M32, hi & M32))
            done = True
    if not done:  # set_sext32_default_val
        r.s32min, r.s32max = -top, top - 1
        r.u32min, r.u32max = 0, M32
        r.var_off = tnum.subreg(tnum.UNKNOWN)
    zext32(r)
    sync(r)


def truncate(r: Reg, size: int) -> None:
    """Keep the low ``size`` bytes (a narrow load or a zero-extending move)."""
    if size >= 8:
        return
    if not r.var_off[1] and r.umin == r.umax:
        # a known value (the steps below reach the same constant)
        r.set_const(r.umin & ((1 << (size * 8)) - 1))
        return
    cast = tnum.cast(r.var_off, size)  # the low bits stay as known as they were
    top = (1 << (size * 8)) - 1
    if size < 8 and (r.umin >> (size * 8)) == (r.umax >> (size * 8)):
        lo, hi = r.umin & top, r.umax & top
    else:
        lo, hi = 0, top
    r.mark_unknown_bounds()
    r.var_off = tnum.intersect(cast, tnum.trange(lo, hi))
    r.umin, r.umax = lo, hi
    sync(r)


def load_sized(size: int, signed: bool) -> Reg:
    """The value of a ``size``-byte load from memory the verifier knows nothing about."""
    r = Reg.unknown()
    if size == 8:
        return r
    bits = size * 8
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        r.smin, r.smax = lo, hi
        r.s32min, r.s32max = lo, hi
    else:
        r.var_off = _tnew(Tnum, (0, (1 << bits) - 1))
    sync(r)
    return r


# ---------------------------------------------------------------------------
# Conditional jumps: decide and refine
# ---------------------------------------------------------------------------

NEGATE = {
    op.JEQ: op.JNE,
    op.JNE: op.JEQ,
    op.JGT: op.JLE,
    op.JLE: op.JGT,
    op.JGE: op.JLT,
    op.JLT: op.JGE,
    op.JSGT: op.JSLE,
    op.JSLE: op.JSGT,
    op.JSGE: op.JSLT,
    op.JSLT: op.JSGE,
}
FLIP = {
    op.JEQ: op.JEQ,
    op.JNE: op.JNE,
    op.JSET: op.JSET,
    op.JGT: op.JLT,
    op.JLT: op.JGT,
    op.JGE: op.JLE,
    op.JLE: op.JGE,
    op.JSGT: op.JSLT,
    op.JSLT: op.JSGT,
    op.JSGE: op.JSLE,
    op.JSLE: op.JSGE,
}


def _view(r: Reg, is32: bool):
    if is32:
        return (r.u32min, r.u32max, r.s32min, r.s32max, tnum.subreg(r.var_off))
    return (r.umin, r.umax, r.smin, r.smax, r.var_off)


def branch_taken(jop: int, a: Reg, b: Reg, is32: bool) -> int:
    """1 if ``a <jop> b`` always holds, 0 if never, -1 if unknown (scalars)."""
    aumin, aumax, asmin, asmax, at = _view(a, is32)
    bumin, bumax, bsmin, bsmax, bt = _view(b, is32)
    if jop == op.JEQ:
        if at.mask == 0 and bt.mask == 0:
            return int(at.value == bt.value)
        if not tnum.compatible(at, bt):
            return 0
        if aumin > bumax or aumax < bumin or asmin > bsmax or asmax < bsmin:
            return 0
        return -1
    if jop == op.JNE:
        r = branch_taken(op.JEQ, a, b, is32)
        return -1 if r < 0 else 1 - r
    if jop == op.JSET:
        if at.value & bt.value:
            return 1
        if not ((at.value | at.mask) & (bt.value | bt.mask)):
            return 0
        return -1
    if jop == op.JGT:
        if aumin > bumax:
            return 1
        if aumax <= bumin:
            return 0
    elif jop == op.JGE:
        if aumin >= bumax:
            return 1
        if aumax < bumin:
            return 0
    elif jop == op.JLT:
        if aumax < bumin:
            return 1
        if aumin >= bumax:
            return 0
    elif jop == op.JLE:
        if aumax <= bumin:
            return 1
        if aumin > bumax:
            return 0
    elif jop == op.JSGT:
        if asmin > bsmax:
            return 1
        if asmax <= bsmin:
            return 0
    elif jop == op.JSGE:
        if asmin >= bsmax:
            return 1
        if asmax < bsmin:
            return 0
    elif jop == op.JSLT:
        if asmax < bsmin:
            return 1
        if asmin >= bsmax:
            return 0
    elif jop == op.JSLE:
        if asmax <= bsmin:
            return 1
        if asmin > bsmax:
            return 0
    return -1


def refine(jop: int, a: Reg, b: Reg, is32: bool) -> None:
    """Narrow private copies ``a`` and ``b`` assuming ``a <jop> b`` holds."""
    if jop == op.JEQ:
        if is32:
            lo = max(a.u32min, b.u32min)
            hi = min(a.u32max, b.u32max)
            slo = max(a.s32min, b.s32min)
            shi = min(a.s32max, b.s32max)
            t = tnum.intersect(tnum.subreg(a.var_off), tnum.subreg(b.var_off))
            for r in (a, b):
                r.u32min, r.u32max, r.s32min, r.s32max = lo, hi, slo, shi
                r.var_off = tnum.with_subreg(r.var_off, t)
        else:
            lo, hi = max(a.umin, b.umin), min(a.umax, b.umax)
            slo, shi = max(a.smin, b.smin), min(a.smax, b.smax)
            t = tnum.intersect(a.var_off, b.var_off)
            lo32, hi32 = max(a.u32min, b.u32min), min(a.u32max, b.u32max)
            slo32, shi32 = max(a.s32min, b.s32min), min(a.s32max, b.s32max)
            for r in (a, b):
                r.umin, r.umax, r.smin, r.smax, r.var_off = lo, hi, slo, shi, t
                r.u32min, r.u32max, r.s32min, r.s32max = lo32, hi32, slo32, shi32
    elif jop == op.JNE:
        # Only a constant at the edge of the other's range can be cut off.
        for x, y in ((a, b), (b, a)):
            if y.is_const32() if is32 else y.is_const():
                _ne_const(x, y.value & (M32 if is32 else M64), is32)
    elif jop == op.JSET:
        for x, y in ((a, b), (b, a)):
            if y.is_const32() if is32 else y.is_const():
                val = y.value & (M32 if is32 else M64)
                if val and not (val & (val - 1)):
                    x.var_off = tnum.or_(x.var_off, tnum.const(val))
    elif jop in (op.JGT, op.JGE, op.JLT, op.JLE):
        if jop in (op.JLT, op.JLE):
            a, b = b, a
            jop = op.JGT if jop == op.JLT else op.JGE
        strict = 1 if jop == op.JGT else 0
        # a > b (or >=)
        if is32:
            a.u32min = max(a.u32min, b.u32min + strict)
            b.u32max = min(b.u32max, a.u32max - strict)
        else:
            a.umin = max(a.umin, b.umin + strict)
            b.umax = min(b.umax, a.umax - strict)
    elif jop in (op.JSGT, op.JSGE, op.JSLT, op.JSLE):
        if jop in (op.JSLT, op.JSLE):
            a, b = b, a
            jop = op.JSGT if jop == op.JSLT else op.JSGE
        strict = 1 if jop == op.JSGT else 0
        if is32:
            a.s32min = max(a.s32min, b.s32min + strict)
            b.s32max = min(b.s32max, a.s32max - strict)
        else:
            a.smin = max(a.smin, b.smin + strict)
            b.smax = min(b.smax, a.smax - strict)


def refine_not_jset(a: Reg, b: Reg, is32: bool) -> None:
    """Narrow ``a`` assuming ``a & b == 0`` for a constant ``b``."""
    for x, y in ((a, b), (b, a)):
        if y.is_const32() if is32 else y.is_const():
            val = y.value & (M32 if is32 else M64)
            inv = ~val & (M32 if is32 else M64)
            if is32:
                inv |= ~M32 & M64
            x.var_off = tnum.and_(x.var_off, _tnew(Tnum, (inv, 0)))


def _ne_const(x: Reg, c: int, is32: bool) -> None:
    if is32:
        if x.u32min == c:
            x.u32min += 1
        if x.u32max == c:
            x.u32max -= 1
        if x.s32min == s32(c):
            x.s32min += 1
        if x.s32max == s32(c):
            x.s32max -= 1
    else:
        if x.umin == c:
            x.umin += 1
        if x.umax == c:
            x.umax -= 1
        if x.smin == s64(c):
            x.smin += 1
        if x.smax == s64(c):
            x.smax -= 1
