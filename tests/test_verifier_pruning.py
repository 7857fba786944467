"""Pruning hides nothing: bpfkit's verdict with pruning equals its verdict exploring
every path (``verify(..., exhaustive=True)``), wherever the exhaustive walk finishes.

bpfkit processes fewer instructions than the kernel on some programs (it adds
checkpoints inside loops where the kernel holds back, a speed heuristic of the kernel's);
each prune must still be sound: the state it drops is covered by a finished checkpoint.
This checks it where it can be checked: a program that the exhaustive walk (no
checkpoints at all, every path to its end) rejects must be rejected with pruning too.
Corpus: the kernel's verifier selftests (the day's rotating quarter; all of them with
``BPFKIT_SLOW=1``), the C examples and JIT benchmark programs, and generated programs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from bpfkit.errors import BpfError  # noqa: E402
from bpfkit.verifier import selftests as st  # noqa: E402
from bpfkit.verifier import verify, verify_spec  # noqa: E402
from bpfkit.verifier.selftests_exclusions import SLOW  # noqa: E402

#: the exhaustive walk's budget (it processes at least what the pruned walk does: a
#: program above it is skipped without trying)
BUDGET = 100_000 if os.environ.get("BPFKIT_SLOW") == "1" else 15_000
ROOT = Path(__file__).resolve().parent.parent


def _finished(res) -> bool:
    """The exhaustive walk reached a verdict (not the instruction or jump budget)."""
    if res.ok:
        return True
    msg = res.error.kernel_message or ""
    return "too large" not in msg and "too complex" not in msg


def _compare(spec, name: str, flags: int = 0):
    a = verify_spec(spec, name, raise_on_error=False, cache=False, prog_flags=flags, budget=BUDGET)
    if not _finished(a):
        return None  # the exhaustive walk could not finish either
    b = verify_spec(
        spec,
        name,
        raise_on_error=False,
        cache=False,
        prog_flags=flags,
        exhaustive=True,
        budget=BUDGET,
    )
    if not _finished(b):
        return None
    return a.ok, b.ok, (b.error.kernel_message if b.error else "")


def test_selftests_pruned_equals_exhaustive() -> None:
    from test_verifier_selftests import PARTS, SLOW_RUN, _corpus, _need_corpus

    from bpfkit.obj import load_object

    _need_corpus()
    corpus = _corpus()
    stems = [p.stem for p in corpus.sources()]
    if not SLOW_RUN:
        stems = [p.stem for p in st.rotating_subset([Path(s) for s in stems], PARTS)]
    corpus = _corpus(stems)
    checked, differ = 0, []
    for obj in corpus.objects():
        if obj.stem not in stems:
            continue
        try:
            spec = load_object(obj)
        except BpfError:
            continue
        tags = st.program_tags(spec)
        for name, prog in spec.programs.items():
            if prog.core_relocations or (obj.stem, name) in SLOW:
                continue
            r = _compare(spec, name, tags.get(name, st.Tags()).flags)
            if r is None:
                continue
            checked += 1
            if r[0] != r[1]:
                differ.append((obj.stem, name, r))
    assert checked > 100
    assert not differ, differ


@pytest.mark.parametrize("seed", range(40))
def test_generated_pruned_equals_exhaustive(seed: int) -> None:
    from progen import generate

    insns = generate(1000 + seed, length=120)
    a = verify(insns, prog_type="socket_filter", raise_on_error=False, cache=False)
    if a.stats.insns_processed > BUDGET:
        return
    b = verify(
        insns,
        prog_type="socket_filter",
        raise_on_error=False,
        cache=False,
        exhaustive=True,
        budget=BUDGET,
    )
    if _finished(b):
        assert a.ok == b.ok, (b.error and b.error.kernel_message, a.error)


def test_examples_pruned_equals_exhaustive(tmp_path) -> None:
    from bpfkit.obj import load_object
    from bpfkit.obj.build import compile_c

    checked = 0
    for src in sorted((ROOT / "examples").glob("*.c")) + sorted((ROOT / "bench" / "c").glob("*.c")):
        out = tmp_path / (src.stem + ".o")
        try:
            compile_c(src, out, mcpu="v3")
        except BpfError:
            continue
        spec = load_object(out)
        for name in spec.programs:
            r = _compare(spec, name)
            if r is not None:
                checked += 1
                assert r[0] == r[1], (src.stem, name, r)
    assert checked >= 10
