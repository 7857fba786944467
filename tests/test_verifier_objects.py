"""Every program of the C examples and of the JIT benchmark, built with clang (default
CPU and ``-mcpu=v3``), verified by bpfkit and loaded into the running kernel with its
BTF: the verdicts must agree."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

import bpfkit
from bpfkit.errors import BpfError, VerifierError
from bpfkit.verifier import verify_spec

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "examples").glob("*.c")) + sorted((ROOT / "bench" / "c").glob("*.c"))
# the prime sieve built for the default CPU runs into the 1M-instruction limit in the
# kernel and in bpfkit alike; verifying it takes ~15 s, so only its v3 build is checked
SLOW = {("primes", None)}


@functools.cache
def _build(src: str, mcpu: str | None, tmp: str):
    from bpfkit.obj import load_object
    from bpfkit.obj.build import compile_c

    out = Path(tmp) / f"{Path(src).stem}-{mcpu or 'default'}.o"
    compile_c(src, out, mcpu=mcpu)
    return out, load_object(out)


def _cases():
    import tempfile

    tmp = tempfile.mkdtemp(prefix="bpfkit-verifier-objects-")
    out = []
    for src in SOURCES:
        # the default build lists the programs (and is cached for the tests)
        for name in _build(str(src), None, tmp)[1].programs:
            for mcpu in (None, "v3"):
                if (src.stem, mcpu) in SLOW:
                    continue
                out.append(
                    pytest.param(
                        str(src), name, mcpu, tmp, id=f"{src.stem}/{name}/{mcpu or 'default'}"
                    )
                )
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("src,program,mcpu,tmp", _cases())
def test_object_program_agrees_with_kernel(src, program, mcpu, tmp, kernel):
    path, spec = _build(src, mcpu, tmp)
    ours = verify_spec(spec, program, raise_on_error=False)
    try:
        obj = bpfkit.load(path, backend="kernel", programs=[program], log_level=4)
    except VerifierError as e:
        kernel_ok, klog = False, e.log[-1500:]
    except BpfError as e:  # anything else is not a verdict
        pytest.fail(f"kernel load failed without a verdict: {e}")
    else:
        klog = obj.programs[program].log or ""
        obj.close()
        kernel_ok = True
    assert ours.ok == kernel_ok, (ours.error, klog)
    callbacks = any(
        i.is_helper_call and i.imm in (164, 181) for i in spec.program(program).instructions
    )
    if kernel_ok and not callbacks:
        # pruning at least about as effective as the kernel's (liveness, precision);
        # callbacks (bpf_loop, for_each_map_elem) mark everything precise, so they prune less
        m = re.search(r"processed (\d+) insns", klog)
        assert m, klog
        assert ours.stats.insns_processed <= 1.2 * int(m.group(1)) + 5, (
            ours.stats.insns_processed,
            m.group(1),
        )
