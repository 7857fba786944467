"""Parser and type errors (position, caret, never a traceback) and ``bpfkit.hist``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfError, ScriptError
from bpfkit.hist import LinearHist, Log2Hist, linear_bucket, log2_bucket
from bpfkit.trace.parser import parse


def test_parse_shapes() -> None:
    p = parse(
        "t:syscalls:sys_enter_read, tracepoint:a:b /pid == 1 && $1/ { @x[comm, 1] = count(); "
        '$y = (1, "a"); if (1) { @z++; } else { delete(@x[comm, 1]); } }'
    )
    texts = [a.text for a in p.probes[0].points]
    assert texts == ["t:syscalls:sys_enter_read", "tracepoint:a:b"]
    assert p.probes[0].pred is not None and len(p.probes[0].body) == 3


@pytest.mark.parametrize(
    "src, line, col",
    [
        ('BEGIN { printf("x" }', 1, 20),
        ("BEGIN {\n  @x = ;\n}", 2, 8),
        ("BEGIN { $x = 1 $y = 2; }", 1, 16),
        ('BEGIN { "unterminated }', 1, 9),
        ("BEGIN", 1, 6),
    ],
)
def test_syntax_errors_have_a_position(src: str, line: int, col: int) -> None:
    with pytest.raises(ScriptError) as ei:
        parse(src)
    assert (ei.value.line, ei.value.column) == (line, col)
    assert ei.value.caret().endswith("^")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='BEGIN{}()[];:@$/"\\ \n*+-=<>!&|,.x1tracepoint', max_size=60))
def test_parser_fuzz_raises_only_script_errors(src: str) -> None:
    try:
        parse(src)
    except ScriptError:
        pass


@given(st.integers(min_value=-(1 << 40), max_value=1 << 62))
def test_log2_bucket_bounds(v: int) -> None:
    h = Log2Hist.from_values([v])
    (bucket,) = h.to_json()
    assert bucket.get("min", v) <= v <= bucket.get("max", v)
    assert log2_bucket(v) in h.counts


@given(st.integers(min_value=-50, max_value=250))
def test_linear_bucket_bounds(v: int) -> None:
    (bucket,) = LinearHist.from_values([v], 0, 100, 10).to_json()
    assert bucket.get("min", v) <= v <= bucket.get("max", v)
    assert 0 <= linear_bucket(v, 0, 100, 10) <= 11


def test_hist_text_matches_bpftrace_layout() -> None:
    h = Log2Hist.from_values([4, 100])
    lines = h.text().splitlines()
    assert lines[0] == "[4, 8)                 1 |" + "@" * 52 + "|"
    assert lines[-1].startswith("[64, 128)")
    assert len(lines) == 5
    assert Log2Hist.from_values([1 << 20]).text().startswith("[1M, 2M)")
    assert LinearHist.from_values([2048], 0, 4096, 1024).text().startswith("[2K, 3K)")


def test_bcc_style() -> None:
    h = Log2Hist.from_bcc_slots([0, 5, 0, 2])
    text = h.text(style="bcc", val_type="usecs")
    assert text.splitlines()[0] == "     usecs               : count     distribution"
    assert text.splitlines()[1].startswith("         0 -> 1          : 5        |" + "*" * 40)
    with pytest.raises(ValueError):
        h.text(style="nope")


def test_semantic_errors(tmp_path) -> None:
    from bpfkit.trace.runtime import compile_script

    for src, msg in [
        ('BEGIN { @x = 1; @x = "s"; }', "type mismatch"),
        ("BEGIN { $y++; }", r"\$y must be"),
        ('BEGIN { printf("%d\\n"); }', "Not enough arguments"),
        ("BEGIN { foo(); }", "unknown function"),
        ('BEGIN { system("ls"); }', "unsafe"),
        ("BEGIN { @h = hist(1); @h = count(); }", "hist"),
    ]:
        with pytest.raises(BpfError, match=msg):
            compile_script(src)
