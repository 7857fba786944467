"""The kernel verifier selftests bpfkit does not agree with, each with the reason — the one
place the selftest comparison (``selftests.py``) and its tests look them up.

``EXCLUDED`` lists programs the kernel accepts and bpfkit rejects on purpose (features the
userspace VM cannot run: bpfkit rejects them saying "not supported") or knowingly (a
documented imprecision). Nothing the kernel rejects may ever be listed: an accept of a
program the kernel rejects is always a failure. ``SLOW`` lists programs left out of the
default test run because verifying them takes long (they run with ``BPFKIT_SLOW=1`` and in
``bench/verifier_selftests.py``).
"""

from __future__ import annotations

import re
from typing import Any

#: (object stem, program) -> why bpfkit rejects what the kernel accepts
EXCLUDED: dict[tuple[str, str], str] = {}

#: (object stem, program) verified only in the slow run (seconds of bpfkit time each)
SLOW: frozenset[tuple[str, str]] = frozenset(
    {
        ("verifier_search_pruning", "short_loop1"),  # 1M instructions in both verifiers
        ("verifier_loops1", "loop_after_a_conditional_jump"),  # likewise
    }
)

# bpfkit message (kernel wording) -> cause of a false reject, first match wins
_CAUSES: list[tuple[str, str]] = [
    (r"kfunc|calling kernel function", "kfunc"),
    (r"program of this type cannot use helper|invalid func", "helper not allowed"),
    (r"bpf_context access|ctx", "context"),
    (r"may_goto|invalid (BPF_JMP|opcode|insn)|unknown opcode", "instruction"),
    (r"arg#|global function|Global function", "global function"),
    (r"R0 !read_ok", "r0 unset"),
    (r"infinite loop", "loop detection"),
    (r"loop|callback", "callback"),
    (r"map_type|map_ptr|map", "map"),
    (r"invalid access|min value|max value|out of bound|unbounded|outside", "bounds"),
    (r"stack", "stack"),
    (r"pointer|ptr", "pointer"),
]


def cause_of(ours: Any) -> str:
    """The group a false reject belongs to, from bpfkit's message."""
    if getattr(ours, "not_supported", False):
        return "not supported"
    text = f"{ours.message} {ours.reason}"
    for pat, cause in _CAUSES:
        if re.search(pat, text):
            return cause
    return "other"
