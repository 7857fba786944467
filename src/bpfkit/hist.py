"""Histograms as bpftrace and BCC draw them: power-of-two (log2) and linear buckets.

Usable on its own — from values, or from a map of bucket counts that a BPF program
filled — and used by ``bpfkit trace`` for ``hist()``/``lhist()`` output::

    from bpfkit.hist import Log2Hist
    h = Log2Hist.from_values([1, 3, 900, 1024])
    print(h.text())             # bpftrace's layout: "[512, 1K)   1 |@@@@ ... |"
    print(h.text(style="bcc"))  # BCC's print_log2_hist layout
    h.to_json()                 # [{"min": 1, "max": 1, "count": 1}, ...] as bpftrace -f json

Bucket numbering follows bpftrace: for log2 histograms bucket 0 holds negative values,
1 holds 0, and bucket ``k >= 2`` holds ``[2**(k-2), 2**(k-1))``; for linear histograms
bucket 0 holds values below ``min``, ``1..n`` the steps, and ``n + 1`` values at or above
``max``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Log2Hist", "LinearHist", "log2_bucket", "linear_bucket"]

_BAR_WIDTH = 52  # bpftrace's bar
_BCC_STARS = 40  # BCC's distribution column


def log2_bucket(value: int) -> int:
    """bpftrace's log2 bucket of ``value``."""
    if value < 0:
        return 0
    if value == 0:
        return 1
    return value.bit_length() + 1


def linear_bucket(value: int, lo: int, hi: int, step: int) -> int:
    """bpftrace's lhist bucket of ``value`` for ``lhist(value, lo, hi, step)``."""
    if value < lo:
        return 0
    if value >= hi:
        return _linear_count(lo, hi, step) + 1
    return (value - lo) // step + 1


def _linear_count(lo: int, hi: int, step: int) -> int:
    return (hi - lo + step - 1) // step


def _power_label(power: int) -> str:
    """``2**power`` with bpftrace's K/M/G/T/P/E suffixes (``[1K, 2K)``)."""
    suffixes = "KMGTPE"
    n = power // 10
    if n == 0:
        return str(1 << power)
    return f"{1 << (power % 10)}{suffixes[n - 1]}"


def _linear_label(n: int) -> str:
    if n != 0 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n != 0 and n % (1 << 10) == 0:
        return f"{n >> 10}K"
    return str(n)


def _f32(x: float) -> float:
    """``x`` rounded to a C ``float``."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _bar_line(label: str, count: int, top: int, shown: int | None = None) -> str:
    """One bucket: ``shown`` (default ``count``) printed, the bar drawn from ``count``
    (in single precision, as bpftrace computes ``count / (float)top * 52``)."""
    width = int(_f32(_f32(_f32(count) / _f32(top)) * _BAR_WIDTH)) if top else 0
    shown = count if shown is None else shown
    return f"{label:<16}{shown:>8} |{'@' * width:<{_BAR_WIDTH}}|\n"


@dataclass
class _Hist:
    counts: dict[int, int] = field(default_factory=dict)

    def add_bucket(self, bucket: int, count: int = 1) -> None:
        """Add ``count`` to bucket ``bucket``."""
        self.counts[bucket] = self.counts.get(bucket, 0) + count

    @property
    def total(self) -> int:
        """The number of values counted."""
        return sum(self.counts.values())

    def _range(self) -> range:
        nz = [i for i, c in self.counts.items() if c > 0]
        if not nz:
            return range(0)
        return range(min(nz), max(nz) + 1)

    def _label(self, i: int) -> str:
        raise NotImplementedError

    def _json_bucket(self, i: int) -> dict:
        raise NotImplementedError

    def text(self, div: int = 1) -> str:
        """bpftrace's text drawing (the buckets from the first to the last non-empty)."""
        rng = self._range()
        if not rng:
            return ""
        vals = [self.counts.get(i, 0) for i in rng]
        top = max(vals)
        return "".join(
            _bar_line(self._label(i), v, top, v // div if div > 1 else v)
            for i, v in zip(rng, vals, strict=True)
        )

    def to_json(self, div: int = 1) -> list[dict]:
        """bpftrace's ``-f json`` list of ``{"min", "max", "count"}`` buckets."""
        out = []
        for i in self._range():
            d = self._json_bucket(i)
            c = self.counts.get(i, 0)
            d["count"] = c // div if div > 1 else c
            out.append(d)
        return out


@dataclass
class Log2Hist(_Hist):
    """A power-of-two histogram (bpftrace ``hist()``, BCC ``print_log2_hist``)."""

    @classmethod
    def from_values(cls, values: Iterable[int]) -> Log2Hist:
        """Count each value into its bucket."""
        h = cls()
        for v in values:
            h.add(v)
        return h

    @classmethod
    def from_buckets(cls, counts: Mapping[int, int]) -> Log2Hist:
        """From bpftrace bucket numbers (what ``hist()`` keeps in its map)."""
        return cls({int(k): int(v) for k, v in counts.items()})

    @classmethod
    def from_bcc_slots(cls, slots: Iterable[int] | Mapping[int, int]) -> Log2Hist:
        """From BCC slots (slot ``s`` holds ``[2**(s-1), 2**s)``, slot 0 holds 0)."""
        items = slots.items() if isinstance(slots, Mapping) else enumerate(slots)
        return cls({int(s) + 1: int(c) for s, c in items if c})

    def add(self, value: int, count: int = 1) -> None:
        """Count ``value``."""
        self.add_bucket(log2_bucket(value), count)

    def _label(self, i: int) -> str:
        if i == 0:
            return "(..., 0)"
        if i == 1:
            return "[0]"
        if i == 2:
            return "[1]"
        return f"[{_power_label(i - 2)}, {_power_label(i - 1)})"

    def _json_bucket(self, i: int) -> dict:
        if i == 0:
            return {"max": -1}
        if i == 1:
            return {"min": 0, "max": 0}
        return {"min": 1 << (i - 2), "max": (1 << (i - 1)) - 1}

    def text(self, div: int = 1, style: str = "bpftrace", val_type: str = "value") -> str:  # type: ignore[override]
        """Draw it: ``style="bpftrace"`` (default) or ``"bcc"`` (``print_log2_hist``)."""
        if style == "bpftrace":
            return super().text(div)
        if style != "bcc":
            raise ValueError(f"unknown histogram style {style!r}")
        slots = {i - 1: c for i, c in self.counts.items() if i >= 1}
        nz = [s for s, c in slots.items() if c > 0]
        if not nz:
            return ""
        idx_max = max(nz)
        top = max(slots.values())
        wide = idx_max > 32
        stars = _BCC_STARS // 2 if wide else _BCC_STARS
        head = (f"{'':15}{val_type:<29} : count     distribution" if wide
                else f"{'':5}{val_type:<19} : count     distribution")  # fmt: skip
        lines = [head] if idx_max > 0 else []
        for s in range(1, idx_max + 1):
            low, high = (1 << s) >> 1, (1 << s) - 1
            if low == high:
                low -= 1
            v = slots.get(s, 0) + (slots.get(0, 0) if s == 1 else 0)
            bar = _bcc_stars(v, top, stars)
            if wide:
                lines.append(f"{low:>20} -> {high:<20} : {v:<8} |{bar:<{stars}}|")
            else:
                lines.append(f"{low:>10} -> {high:<10} : {v:<8} |{bar:<{stars}}|")
        return "\n".join(lines) + "\n"


def _bcc_stars(val: int, val_max: int, width: int) -> str:
    # BCC draws a star for each i with i <= width * val / val_max - 1.
    n = 0
    while n <= width - 1 and n <= width * val / val_max - 1:
        n += 1
    text = "*" * n
    if val > val_max:
        text = text[:-1] + "+"
    return text


@dataclass
class LinearHist(_Hist):
    """A linear histogram: ``lhist(value, lo, hi, step)``."""

    lo: int = 0
    hi: int = 100
    step: int = 10

    def __post_init__(self) -> None:
        if self.step <= 0 or self.hi <= self.lo:
            raise ValueError("a linear histogram needs lo < hi and step > 0")

    @classmethod
    def from_values(cls, values: Iterable[int], lo: int, hi: int, step: int) -> LinearHist:
        """Count each value into its bucket."""
        h = cls({}, lo, hi, step)
        for v in values:
            h.add(v)
        return h

    @classmethod
    def from_buckets(cls, counts: Mapping[int, int], lo: int, hi: int, step: int) -> LinearHist:
        """From bucket numbers (what ``lhist()`` keeps in its map)."""
        return cls({int(k): int(v) for k, v in counts.items()}, lo, hi, step)

    @property
    def nbuckets(self) -> int:
        """Buckets between ``lo`` and ``hi`` (without the two open-ended ones)."""
        return _linear_count(self.lo, self.hi, self.step)

    def add(self, value: int, count: int = 1) -> None:
        """Count ``value``."""
        self.add_bucket(linear_bucket(value, self.lo, self.hi, self.step), count)

    def _label(self, i: int) -> str:
        if i == 0:
            return f"(..., {_linear_label(self.lo)})"
        if i == self.nbuckets + 1:
            return f"[{_linear_label(self.hi)}, ...)"
        a = self.lo + (i - 1) * self.step
        return f"[{_linear_label(a)}, {_linear_label(a + self.step)})"

    def _json_bucket(self, i: int) -> dict:
        if i == 0:
            return {"max": self.lo - 1}
        if i == self.nbuckets + 1:
            return {"min": self.hi}
        a = self.lo + (i - 1) * self.step
        return {"min": a, "max": a + self.step - 1}
