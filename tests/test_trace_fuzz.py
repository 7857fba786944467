"""Fuzzing ``bpfkit trace``'s front end, and its arithmetic against bpftrace.

- Random syntax trees printed back to text parse to the same tree (every node with a
  position), and their semantic analysis and code generation either succeed or raise a
  :class:`~bpfkit.errors.ScriptError` (never another exception); what they generate is
  loaded by bpfkit's verifier (the VM), which must accept it or say why.
- Random damage to valid scripts, through the command line: exit 0 or 2, an error with
  ``file:line:col`` and a caret, never a traceback.
- Random integer expressions (literals, map values read at run time, casts, every
  operator) printed by ``BEGIN`` under bpfkit and bpftrace 0.17: the same numbers.
"""

from __future__ import annotations

import datetime
import os
import random
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfError, NotSupported, ScriptError
from bpfkit.trace import ast as A
from bpfkit.trace.parser import parse

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))
BPFTRACE = shutil.which("bpftrace")

# ---- printing a tree back to text ------------------------------------------------------------


def unparse_expr(e: A.Expr) -> str:
    """Text for an expression, parenthesized so it parses back to the same tree."""
    if isinstance(e, A.Int):
        return f"({e.value})" if e.value < 0 else str(e.value)
    if isinstance(e, A.Str):
        return '"' + "".join(_esc(c) for c in e.value) + '"'
    if isinstance(e, A.Var):
        return f"${e.name}"
    if isinstance(e, A.Positional):
        return "$#" if e.count else f"${e.n}"
    if isinstance(e, A.MapRef):
        keys = "" if e.keys is None else "[" + ", ".join(map(unparse_expr, e.keys)) + "]"
        return f"@{e.name}{keys}"
    if isinstance(e, A.Builtin | A.Ident):
        return e.name
    if isinstance(e, A.Call):
        return f"{e.name}(" + ", ".join(map(unparse_expr, e.args)) + ")"
    if isinstance(e, A.Binop):
        return f"({unparse_expr(e.left)} {e.op} {unparse_expr(e.right)})"
    if isinstance(e, A.Unop):
        return f"({e.op}{unparse_expr(e.expr)})"
    if isinstance(e, A.IncDec):
        t = unparse_expr(e.target)
        return f"({e.op}{t})" if e.prefix else f"({t}{e.op})"
    if isinstance(e, A.Ternary):
        return f"({unparse_expr(e.cond)} ? {unparse_expr(e.then)} : {unparse_expr(e.other)})"
    if isinstance(e, A.Field):
        return f"{unparse_expr(e.expr)}{'->' if e.arrow else '.'}{e.name}"
    if isinstance(e, A.Index):
        return f"{unparse_expr(e.expr)}[{unparse_expr(e.index)}]"
    if isinstance(e, A.Cast):
        return f"(({e.type}){unparse_expr(e.expr)})"
    if isinstance(e, A.Tuple):
        return "(" + ", ".join(map(unparse_expr, e.items)) + ")"
    if isinstance(e, A.Sizeof):
        t = e.target
        return f"sizeof({t if isinstance(t, A.TypeName) else unparse_expr(t)})"
    if isinstance(e, A.Offsetof):
        return f"offsetof({e.type}, {e.field})"
    raise AssertionError(type(e))


def _esc(c: str) -> str:
    return {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}.get(c, c)


def unparse_stmts(body: list[A.Stmt]) -> str:
    return " ".join(unparse_stmt(s) for s in body)


def unparse_stmt(s: A.Stmt) -> str:
    if isinstance(s, A.ExprStmt):
        return unparse_expr(s.expr) + ";"
    if isinstance(s, A.Assign):
        return f"{unparse_expr(s.target)} {s.op or ''}= {unparse_expr(s.value)};"
    if isinstance(s, A.If):
        text = f"if ({unparse_expr(s.cond)}) {{ {unparse_stmts(s.then)} }}"
        return text + (f" else {{ {unparse_stmts(s.other)} }}" if s.other else "")
    if isinstance(s, A.Unroll):
        return f"unroll ({unparse_expr(s.count)}) {{ {unparse_stmts(s.body)} }}"
    if isinstance(s, A.While):
        return f"while ({unparse_expr(s.cond)}) {{ {unparse_stmts(s.body)} }}"
    if isinstance(s, A.Jump):
        return s.kind + ";"
    raise AssertionError(type(s))


def unparse(p: A.Program) -> str:
    out = []
    for probe in p.probes:
        pred = f" /{unparse_expr(probe.pred)}/" if probe.pred is not None else ""
        pts = ", ".join(a.text for a in probe.points)
        out.append(f"{pts}{pred} {{ {unparse_stmts(probe.body)} }}")
    return "\n".join(out)


def canon(n: object) -> object:
    """A tree as nested tuples, without positions or types (to compare trees)."""
    if isinstance(n, A.Node):
        return (type(n).__name__, *(canon(getattr(n, f)) for f in n._fields))
    if isinstance(n, list | tuple):
        return tuple(canon(x) for x in n)
    if isinstance(n, dict):
        return tuple(sorted((k, canon(v)) for k, v in n.items()))
    return n


def positions_ok(n: object) -> bool:
    if isinstance(n, A.Node):
        if not (n.line >= 1 and n.col >= 1):
            return False
        return all(positions_ok(getattr(n, f)) for f in n._fields)
    if isinstance(n, list | tuple):
        return all(positions_ok(x) for x in n)
    return True


# ---- random trees ----------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "x", "cnt", "_t"])
BUILTINS = st.sampled_from(["pid", "tid", "uid", "comm", "nsecs", "cpu", "curtask", "elapsed",
                            "arg0", "arg1", "retval", "probe", "args", "cgroup"])  # fmt: skip
FUNCS = st.sampled_from(["str", "count", "sum", "hist", "lhist", "printf", "ksym", "usym",
                         "exit", "print", "delete", "buf", "ntop", "strncmp", "bswap"])  # fmt: skip
TYPES = st.builds(
    A.TypeName,
    st.sampled_from(["uint8", "int16", "uint32", "int64", "struct task_struct", "char"]),
    st.integers(0, 2),
    st.none() | st.integers(1, 8),
)
BINOPS = st.sampled_from(["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=",
                          "<", "<=", ">", ">=", "&&", "||"])  # fmt: skip
LEAVES = st.one_of(
    st.builds(A.Int, st.integers(-(1 << 63), (1 << 64) - 1)),
    st.builds(A.Str, st.text(alphabet='ab \n\t"\\%d', max_size=6)),
    st.builds(A.Var, NAMES),
    st.builds(A.Positional, st.integers(1, 3)),
    st.builds(A.MapRef, NAMES, st.none()),
    st.builds(A.Builtin, BUILTINS),
)


def _exprs(children: st.SearchStrategy) -> st.SearchStrategy:
    lists = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        st.builds(A.Binop, BINOPS, children, children),
        st.builds(A.Unop, st.sampled_from(["!", "~", "*"]), children),
        st.builds(A.Unop, st.just("-"), children.filter(lambda c: not isinstance(c, A.Int))),
        st.builds(A.Ternary, children, children, children),
        st.builds(A.MapRef, NAMES, lists),
        st.builds(A.Call, FUNCS, st.lists(children, max_size=3)),
        st.builds(A.Field, children, st.sampled_from(["pid", "comm", "fd", "x"]), st.booleans()),
        # a map's value cannot be indexed in the language (@m[k][i] is no expression)
        st.builds(A.Index, children.filter(lambda c: not isinstance(c, A.MapRef)), children),
        st.builds(A.Cast, TYPES, children),
        st.builds(A.Tuple, st.lists(children, min_size=2, max_size=3)),
        st.builds(A.Sizeof, TYPES | children),
        st.builds(
            A.IncDec,
            st.sampled_from(["++", "--"]),
            st.booleans(),
            st.builds(A.Var, NAMES) | st.builds(A.MapRef, NAMES, st.none()),
        ),  # fmt: skip
    )


EXPRS = st.recursive(LEAVES, _exprs, max_leaves=8)


def _stmts(children: st.SearchStrategy) -> st.SearchStrategy:
    body = st.lists(children, max_size=3)
    return st.one_of(
        st.builds(A.If, EXPRS, body, body),
        st.builds(A.While, EXPRS, body),
        st.builds(A.Unroll, st.builds(A.Int, st.integers(0, 120)), body),
    )


SIMPLE_STMTS = st.one_of(
    st.builds(A.ExprStmt, EXPRS),
    st.builds(A.Assign, st.builds(A.Var, NAMES), EXPRS, st.none()),
    st.builds(
        A.Assign,
        st.builds(A.MapRef, NAMES, st.none() | st.lists(EXPRS, min_size=1, max_size=2)),
        EXPRS,
        st.sampled_from([None, "+", "-", "<<", "&"]),
    ),  # fmt: skip
    st.builds(A.Jump, st.sampled_from(["break", "continue", "return"])),
)
STMTS = st.recursive(SIMPLE_STMTS, _stmts, max_leaves=6)
POINTS = st.sampled_from(["BEGIN", "END", "interval:s:1", "profile:hz:99", "kprobe:vfs_read",
                          "uprobe:/bin/sh:main", "rawtracepoint:sys_enter"])  # fmt: skip
PROBES = st.builds(
    A.Probe,
    st.lists(st.builds(A.AttachPoint, POINTS), min_size=1, max_size=2),
    st.none() | EXPRS,
    st.lists(STMTS, max_size=4),
)
PROGRAMS = st.builds(A.Program, st.lists(PROBES, min_size=1, max_size=2))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(PROGRAMS)
def test_trees_print_and_parse_back(prog: A.Program) -> None:
    text = unparse(prog)
    back = parse(text)
    assert canon(back.probes) == canon(prog.probes), text
    assert positions_ok(back.probes)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(PROGRAMS)
def test_analysis_and_codegen_never_crash(prog: A.Program) -> None:
    from bpfkit.trace import codegen as CG
    from bpfkit.trace.runtime import compile_script

    text = unparse(prog)
    try:
        compiled = compile_script(text, "fuzz.bt", params=["1", "x"], unsafe=True)
    except ScriptError as e:
        assert e.line is not None and e.msg, text
        return
    except NotSupported:
        return
    an = compiled.analyzer
    cc = CG.CompileContext(an, {n: 3 + i for i, n in enumerate(sorted(an.maps))},
                           events_fd=100, scratch_fd=101, stack_fd=102, start_ns=1,
                           elapsed_fd=103, instances=compiled.instances)  # fmt: skip
    for inst in compiled.instances:
        an.inst = inst
        an.analyze_instance(inst)
        try:
            insns, where = CG.generate_mapped(cc, inst)
        except ScriptError as e:
            assert e.msg, text
            continue
        assert insns and len(where) == sum(i.slots for i in insns)


def test_generated_programs_load_on_the_vm_or_say_why() -> None:
    """Well-typed random programs, run through ``--vm``: they load and run, or the
    verifier's refusal points at a script line (exit 1); never a traceback."""
    from click.testing import CliRunner

    from bpfkit.cli.main import cli

    rnd = random.Random(datetime.date.today().toordinal())
    runner = CliRunner()
    for _ in range(25):
        body = " ".join(_random_stmt(rnd) for _ in range(rnd.randint(1, 6)))
        script = f"BEGIN {{ $a = 3; @m = 7; @k[1] = 2; {body} exit(); }}"
        r = runner.invoke(cli, ["trace", "--vm", "-e", script])
        assert "Traceback" not in r.output and not isinstance(r.exception, BpfError | KeyError)
        assert r.exit_code in (0, 1, 2), (script, r.output)
        if r.exit_code:
            assert "ERROR" in r.output and "^" in r.output, (script, r.output)


def _random_stmt(rnd: random.Random) -> str:
    e = _random_int_expr(rnd, 3)
    return rnd.choice([
        f"$a = {e};", f"@m = {e};", f"@k[{_random_int_expr(rnd, 1)}] = {e};",
        f"if ({e}) {{ @c = count(); }} else {{ @s = sum({e}); }}",
        f'printf("%ld %d\\n", {e}, {_random_int_expr(rnd, 2)});',
        f"@h = hist({e});", f"@l = lhist({e}, 0, 100, 10);", f"@x = max({e});",
        f"unroll(2) {{ $a += {e}; }}", f"@t = ({e}, {_random_int_expr(rnd, 1)});",
    ])  # fmt: skip


# ---- damaged scripts through the command line -------------------------------------------------

GOOD = [
    'BEGIN { printf("%d %s\\n", 1, "x"); @a[1, "k"] = count(); exit(); }',
    "tracepoint:syscalls:sys_enter_read /pid == 1/ { @[comm] = hist(args->count); }",
    "BEGIN { $x = 5; while ($x > 0) { $x--; if ($x == 2) { break; } } @ = $x; }",
    'BEGIN { @t = (1, "two"); $s = ((struct task_struct *)curtask)->pid; print(@t); }',
    "uprobe:/bin/sh:main { @[ustack] = count(); } END { clear(@); }",
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(GOOD), st.data())
def test_damaged_scripts_exit_2_with_a_caret(good: str, data: st.DataObject) -> None:
    from click.testing import CliRunner

    from bpfkit.cli.main import cli

    text = list(good)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["del", "ins", "dup"]))
        if op == "del" and i < len(text):
            del text[i]
        elif op == "ins":
            text.insert(i, data.draw(st.sampled_from(list('{}()[];:@$/"\\*=<>!&|,.x1\n'))))
        elif i < len(text):
            text.insert(i, text[i])
    src = "".join(text)
    r = CliRunner().invoke(cli, ["trace", "--dry-run", "-e", src])
    assert r.exception is None or isinstance(r.exception, SystemExit), (src, r.exception)
    assert "Traceback" not in r.output
    assert r.exit_code in (0, 1, 2), (src, r.output)
    if r.exit_code == 2 and "stdin:" in r.output:
        assert "ERROR" in r.output and r.output.rstrip().endswith("^"), (src, r.output)


# ---- arithmetic against bpftrace ------------------------------------------------------------


def _random_int_expr(rnd: random.Random, depth: int) -> str:
    """An integer expression whose value bpftrace and C agree on (no overflow in a
    division, shifts below 64, no division by zero)."""
    if depth <= 0 or rnd.random() < 0.25:
        return rnd.choice([
            str(rnd.randint(0, 300)), str(rnd.choice([0, 1, 7, 255, 65536, 1 << 40])),
            f"({-rnd.randint(1, 300)})", "@m", "$a", "@k[1]",
        ])  # fmt: skip
    a, b = _random_int_expr(rnd, depth - 1), _random_int_expr(rnd, depth - 1)
    kind = rnd.random()
    if kind < 0.5:
        op = rnd.choice(["+", "-", "*", "&", "|", "^", "==", "!=", "<", "<=", ">", ">=",
                         "&&", "||"])  # fmt: skip
        return f"({a} {op} {b})"
    if kind < 0.6:
        return f"({a} {rnd.choice(['<<', '>>'])} {rnd.randint(0, 62)})"
    if kind < 0.7:
        return f"({a} {rnd.choice(['/', '%'])} {rnd.randint(1, 97)})"
    if kind < 0.8:
        return f"(({rnd.choice(['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32'])}){a})"
    if kind < 0.9:
        return f"({a} ? {b} : {_random_int_expr(rnd, depth - 1)})"
    if a.startswith("((int"):  # -/~ of a signed narrow value: bpftrace prints it
        return f"(!{a})"  # zero-extended (its bug, not reproduced: docs/trace.md)
    return f"({rnd.choice(['!', '~', '-'])}{a})"


@pytest.mark.kernel
def test_integer_expressions_are_bpftraces() -> None:
    if BPFTRACE is None:
        pytest.skip("bpftrace (the oracle) is not installed")
    rnd = random.Random(datetime.date.today().toordinal())  # a new set every day
    exprs = [_random_int_expr(rnd, rnd.randint(1, 4)) for _ in range(60)]
    body = " ".join(f'printf("{i} %ld\\n", {e});' for i, e in enumerate(exprs))
    script = f"BEGIN {{ $a = 3; @m = 7; @k[1] = -2; {body} exit(); }}"
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    a = subprocess.run([sys.executable, "-m", "bpfkit", "trace", "-e", script],
                       capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    b = subprocess.run([BPFTRACE, "-e", script], capture_output=True, text=True, timeout=120,
                       check=False)  # fmt: skip
    if b.returncode != 0:
        pytest.skip(f"bpftrace refused the script: {b.stderr[-300:]}")
    assert a.returncode == 0, a.stderr
    mine = dict(x.split(" ", 1) for x in a.stdout.splitlines() if x[:1].isdigit())
    theirs = dict(x.split(" ", 1) for x in b.stdout.splitlines() if x[:1].isdigit())
    bad = [(exprs[int(i)], mine.get(i), v) for i, v in theirs.items() if mine.get(i) != v]
    assert not bad, bad[:5]
