"""The public BPF conformance vectors under the JIT (all 313), checked against the interpreter."""

from __future__ import annotations

import pytest
from conformance_data import load_cases

from bpfkit.jit import compile_many
from bpfkit.jit import run_program as jit_run
from bpfkit.vm.interp import run_program as interp_run

CASES = load_cases()


@pytest.fixture(scope="module", autouse=True)
def _precompiled():
    """Compile every vector in one LLVM module; the runs below hit the compile cache."""
    compile_many([c.program for c in CASES])


def test_all_vectors_present():
    assert len(CASES) == 313


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_vector(case):
    res = jit_run(case.program, case.mem)
    assert res.r0 == case.result
    ref = interp_run(case.program, case.mem)
    assert (res.insns, res.mem) == (ref.insns, ref.mem)
