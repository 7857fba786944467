"""Helper functions by id: the registry the interpreter and JIT call into.

A helper implementation is ``fn(env, r1, r2, r3, r4, r5) -> int``; ``env`` is the
run environment (:class:`bpfkit.vm.env.Env`: address space, maps, task, output).
Later layers register more helpers and restrict them per program type.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..uapi.enums import HELPER_IDS, HELPER_NAMES

HelperFn = Callable[..., int]


@dataclass(frozen=True)
class Helper:
    """A helper: kernel id, name, and the Python implementation."""

    id: int
    name: str
    fn: HelperFn


class HelperRegistry:
    """Helpers by id. ``copy()`` makes a registry a program type can extend or restrict."""

    def __init__(self, helpers: dict[int, Helper] | None = None) -> None:
        self._by_id: dict[int, Helper] = dict(helpers or {})

    def register(self, name_or_id: str | int, fn: HelperFn | None = None):
        """Register ``fn`` under a kernel helper name or id; usable as a decorator."""
        hid = name_or_id if isinstance(name_or_id, int) else HELPER_IDS[name_or_id]
        name = HELPER_NAMES.get(hid, f"helper_{hid}")

        def deco(f: HelperFn) -> HelperFn:
            self._by_id[hid] = Helper(hid, name, f)
            return f

        return deco(fn) if fn is not None else deco

    def get(self, hid: int) -> Helper | None:
        return self._by_id.get(hid)

    def __contains__(self, hid: object) -> bool:
        return hid in self._by_id

    def ids(self) -> list[int]:
        return sorted(self._by_id)

    def copy(self) -> HelperRegistry:
        return HelperRegistry(self._by_id)

    def only(self, ids: set[int]) -> HelperRegistry:
        """A registry restricted to ``ids`` (the helpers a program type may call)."""
        return HelperRegistry({k: v for k, v in self._by_id.items() if k in ids})


#: The base registry: helpers that need nothing but the clock and the address space.
BASE = HelperRegistry()


@BASE.register("ktime_get_ns")
def _ktime_get_ns(env, *_args) -> int:
    return time.monotonic_ns()


@BASE.register("ktime_get_boot_ns")
def _ktime_get_boot_ns(env, *_args) -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


@BASE.register("ktime_get_coarse_ns")
def _ktime_get_coarse_ns(env, *_args) -> int:
    return time.clock_gettime_ns(getattr(time, "CLOCK_MONOTONIC_COARSE", time.CLOCK_MONOTONIC))


@BASE.register("ktime_get_tai_ns")
def _ktime_get_tai_ns(env, *_args) -> int:
    return time.clock_gettime_ns(getattr(time, "CLOCK_TAI", time.CLOCK_REALTIME))
