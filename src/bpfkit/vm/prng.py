"""The VM's ``bpf_get_prandom_u32`` source: MT19937 state in native memory.

The sequence is exactly ``random.Random(seed).getrandbits(32)``'s. The state (624 words
and the position, ``state[624]``) lives in a ctypes buffer so that the JIT's native twin
(``bpfkit.jit.hot``) draws from the same state as the interpreter's Python helper: both
engines, and any mix of them within a run, give the same numbers for the same seed. The
native twin only tempers; when the 624 words are used up it calls the Python helper,
which regenerates them with CPython's own generator.
"""

from __future__ import annotations

import ctypes
import random

__all__ = ["Prng"]

N = 624


class Prng:
    def __init__(self, seed: int | None = None) -> None:
        self.state = (ctypes.c_uint32 * (N + 1))()
        self.address = ctypes.addressof(self.state)
        self.seed(seed)

    def seed(self, seed: int | None = None) -> None:
        st = random.Random(seed).getstate()[1]
        self.state[:] = st

    def _twist(self) -> None:
        r = random.Random()
        r.setstate((3, (*self.state[:N], N), None))
        r.getrandbits(32)  # regenerates the words and uses word 0
        self.state[:] = r.getstate()[1]
        self.state[N] = 0

    def next(self) -> int:
        """The next 32-bit value (``genrand_uint32``)."""
        st = self.state
        i = st[N]
        if i >= N:
            self._twist()
            i = 0
        st[N] = i + 1
        y = st[i]
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        return y ^ (y >> 18)
