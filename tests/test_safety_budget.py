"""Bounded work: callbacks count against the run's instruction budget.

``bpf_loop`` may run 2^23 callbacks, and a callback may call ``bpf_loop`` again: without
a shared count a program ran 2^46 callbacks (forever). Every callback instruction of a
run now counts against one budget (the program's own instructions have theirs), so
both engines stop such a program with a ``RuntimeFault`` naming the budget; a program
that stays inside it runs to the end with the same result on both engines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safety_child import run_in_child

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static long inner(__u32 i, void *ctx) { (*(__u64 *)ctx)++; return 0; }

static long outer(__u32 i, void *ctx)
{
    bpf_loop(1 << 23, inner, ctx, 0);
    return 0;
}

SEC("raw_tp/x")
int nested(void *c)
{
    __u64 n = 0;
    bpf_loop(1 << 23, outer, &n, 0);
    return n;
}

SEC("raw_tp/x")
int small(void *c)
{
    __u64 n = 0;
    bpf_loop(30, outer_small, &n, 0);
    return n;
}
char LICENSE[] SEC("license") = "GPL";
"""
# outer_small: 30 x 40 callbacks, well inside a budget of 100,000
SRC = SRC.replace(
    'SEC("raw_tp/x")\nint small',
    "static long outer_small(__u32 i, void *ctx)\n{\n    bpf_loop(40, inner, ctx, 0);\n"
    '    return 0;\n}\n\nSEC("raw_tp/x")\nint small',
)


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("safetybudget")
    (d / "loop.c").write_text(SRC)
    return compile_c(d / "loop.c", d / "loop.o").object


def _run(path: Path, program: str) -> str:
    return f"""
import bpfkit
def attack(engine, C):
    with bpfkit.load({str(path)!r}, programs=[{program!r}], budget=100_000) as obj:
        return obj.programs[{program!r}].run(b"", engine=engine).retval
"""


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_nested_bpf_loop_is_bounded_by_the_budget(obj_path, engine):
    cases = [
        {"kind": "python", "engine": engine, "src": _run(obj_path, p)} for p in ("nested", "small")
    ]
    nested, small = run_in_child(cases, timeout=120)
    assert nested["status"] == "contained" and nested["error"] == "RuntimeFault", nested
    assert "instruction budget of 100000 exceeded" in nested["message"], nested
    assert " at pc " in nested["message"], nested
    assert small["status"] == "ok" and small["r0"] == 30 * 40, small


TAIL_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 runs = 0;

SEC("raw_tp/x")
int again(void *ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, 4);
    __array(values, int(void *));
} jmp SEC(".maps") = { .values = { [0] = (void *)&again } };

SEC("raw_tp/x")
int again(void *ctx)
{
    runs++;
    bpf_tail_call(ctx, &jmp, 0);
    return runs;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def tail_obj(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("safetytail")
    (d / "tail.c").write_text(TAIL_SRC)
    return compile_c(d / "tail.c", d / "tail.o").object


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_a_tail_call_loop_stops_after_33(tail_obj, engine):
    """A program tail-calling itself runs 1 + 33 times (MAX_TAIL_CALL_CNT), then its
    failed tail call falls through; each run gets a fresh frame on its own stack."""
    import bpfkit

    with bpfkit.load(tail_obj) as obj:
        assert obj.programs["again"].run(b"", engine=engine).retval == 34


@pytest.mark.kernel
def test_tail_call_limit_agrees_with_the_kernel(tail_obj):
    import bpfkit

    with bpfkit.load(tail_obj, backend="kernel") as kobj:
        assert kobj.programs["again"].test_run(b"", None).retval == 34
