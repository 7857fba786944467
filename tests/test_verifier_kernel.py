"""Differential tests: our verifier and the running kernel's agree on accept/reject.

``kernel_verdict`` creates the program's maps in the kernel, points its map loads at
the new descriptors, loads it with the same program type, and reports the verdict.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from bpfkit.errors import KernelError, VerifierError  # noqa: E402
from bpfkit.isa import opcodes as op  # noqa: E402
from bpfkit.verifier import MapDesc, prog_type_of, verify  # noqa: E402


def kernel_verdict(insns, prog_type, maps=None, log_level: int = 4) -> tuple[bool, str]:
    """(accepted, log) from the running kernel's verifier.

    The default log level 4 asks only for statistics (cheap even for a program that
    runs into the one-million-instruction limit); pass 1 for the messages.
    """
    from bpfkit.kernel import sys as ks

    fds: dict[int, int] = {}
    try:
        for k, m in (maps or {}).items():
            d = MapDesc.of(m)
            fds[k] = ks.map_create(d.type, d.key_size, d.value_size, d.max_entries, flags=d.flags)
        return load_verdict(prog_type_of(prog_type), patch_map_fds(insns, fds), log_level)
    finally:
        for fd in fds.values():
            os.close(fd)


def patch_map_fds(insns, fds: dict[int, int]) -> list:
    """The program with its map loads (``map_fd``/``map_value`` numbers) pointing at ``fds``."""
    out = []
    for insn in insns:
        if insn.is_lddw and insn.src in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_VALUE):
            if insn.imm_lo in fds:
                insn = insn.with_(imm=(insn.imm & ~0xFFFFFFFF) | fds[insn.imm_lo])
        out.append(insn)
    return out


def load_verdict(prog_type: int, insns, log_level: int) -> tuple[bool, str]:
    """(accepted, log) of one ``BPF_PROG_LOAD`` (the program is closed again)."""
    from bpfkit.kernel import sys as ks

    logs: list[str] = []
    try:
        fd = ks.prog_load(prog_type, insns, log_level=log_level, log_out=logs)
    except VerifierError as e:
        return False, e.log
    except KernelError as e:
        return False, str(e)
    os.close(fd)
    return True, "".join(logs)


def kernel_stats(log: str) -> dict:
    """``processed N insns ... total_states ... peak_states`` from a kernel log."""
    m = re.search(r"processed (\d+) insns .*? total_states (\d+) peak_states (\d+)", log)
    if not m:
        return {}
    return {
        "insns_processed": int(m.group(1)),
        "total_states": int(m.group(2)),
        "peak_states": int(m.group(3)),
    }


def _cases():
    from test_verifier_cases import CASES

    return [c for c in CASES if c.kernel]


@pytest.mark.kernel
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.name)
def test_case_agrees_with_kernel(case) -> None:
    insns = case.insns()
    kok, klog = kernel_verdict(insns, case.prog_type, case.maps)
    try:
        verify(insns, prog_type=case.prog_type, maps=case.maps, budget=case.budget)
        ook, msg = True, ""
    except VerifierError as e:
        ook, msg = False, e.kernel_message
    assert kok == ook, (
        f"kernel {'accepts' if kok else 'rejects'}, we say {msg or 'accept'}\n{klog[-600:]}"
    )
    if not kok and case.expect != "reject":
        # the case's expected text is the kernel's wording: the kernel's log has it,
        # and so has bpfkit's kernel_message
        assert case.expect in klog, (case.expect, klog[-600:])
        assert case.expect in msg, (case.expect, msg)


@pytest.mark.kernel
@pytest.mark.parametrize("seed", [415, 994])
def test_path_after_an_impossible_fallthrough_is_fully_explored(seed):
    """A jump whose fall-through is impossible continues on the taken branch; the path
    must stay alive for later jumps (a stale 'dead' mark once skipped their
    fall-throughs): the processed-instruction count equals the kernel's."""
    from progen import generate

    insns = generate(seed, length=60)
    ok, log = kernel_verdict(insns, "socket_filter")
    res = verify(insns, prog_type="socket_filter", cache=False)
    assert ok and res.ok
    assert res.stats.insns_processed == kernel_stats(log)["insns_processed"]
