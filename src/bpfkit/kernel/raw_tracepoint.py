"""Attach ``SEC("raw_tracepoint/<name>")`` programs (``BPF_RAW_TRACEPOINT_OPEN``)."""

from __future__ import annotations

from typing import Any

from . import sys as bsys
from .link import Link

__all__ = ["attach_raw_tracepoint"]


def attach_raw_tracepoint(program: Any, name: str, *, cookie: int = 0) -> Link:
    """Run ``program`` on raw tracepoint ``name`` (``sys_enter``, ``sched_switch``...)."""
    pfd = program.fd if hasattr(program, "fd") else bsys.fdnum(program)
    fd = bsys.raw_tracepoint_open(name, pfd, cookie)
    return Link(fd, "raw_tracepoint", target=name, program=program)
