"""Attach ``SEC("tracepoint/<category>/<name>")`` programs through a perf event."""

from __future__ import annotations

from typing import Any

from .link import Link
from .perf_event import PERF_TYPE_TRACEPOINT, PerfEventAttr, attach_perf_event, perf_event_open
from .tracefs import tracepoint_id

__all__ = ["attach_tracepoint"]


def attach_tracepoint(
    program: Any, category: str, name: str | None = None, *, cookie: int = 0
) -> Link:
    """Run ``program`` on tracepoint ``category:name`` (or ``"category/name"`` alone)."""
    if name is None:
        category, _, name = category.replace(":", "/").partition("/")
    tp = tracepoint_id(category, name)
    attr = PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=tp, sample_period=1, wakeup_events=1)
    ev = perf_event_open(attr, -1, 0)
    return attach_perf_event(
        program, ev, kind="tracepoint", target=f"{category}/{name}", cookie=cookie
    )
