"""C definitions in scripts (``struct``/``union``/``enum``): laid out as gcc lays them out.

Oracles: gcc (random definitions compiled and their ``sizeof``/``offsetof`` and bit-field
positions printed), the kernel's BTF (a script struct embedding kernel types), the
kernel itself (a script struct over ``task_struct`` reading ``pid`` as ``tid`` sees it),
bpftrace (the same script, same output), and runqlen.bt (fails on this kernel exactly as
under bpftrace: since Linux 6.13 ``struct cfs_rq`` has ``nr_queued``, not ``nr_running``).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfError, ScriptError
from bpfkit.trace.parser import parse
from bpfkit.trace.semantic import Analyzer

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))
BPFTRACE = shutil.which("bpftrace")

INTS = ["char", "unsigned char", "short", "unsigned short", "int", "unsigned int", "long",
        "unsigned long", "long long", "unsigned long long", "u8", "u16", "u32", "u64",
        "signed char", "long unsigned int", "short int", "_Bool"]  # fmt: skip
BITS = {"char": 8, "unsigned char": 8, "short": 16, "unsigned short": 16, "int": 32,
        "unsigned int": 32, "long": 64, "unsigned long": 64, "u8": 8, "u16": 16, "u32": 32,
        "u64": 64}  # fmt: skip


def _gen(rng: random.Random, n: int) -> tuple[str, list[tuple[str, list[tuple[str, bool]]]]]:
    """``n`` random definitions (later ones may embed earlier ones) and their members."""
    defs: list[str] = []
    shapes: list[tuple[str, list[tuple[str, bool]]]] = []
    counter = 0
    for i in range(n):
        kind = "union" if rng.random() < 0.2 else "struct"
        tag = f"{kind} s{i}"
        members: list[tuple[str, bool]] = []
        lines = []

        def member(indent: str, lines: list = lines, members: list = members) -> None:
            nonlocal counter
            counter += 1
            name = f"m{counter}"
            r = rng.random()
            if r < 0.45:
                t = rng.choice(INTS)
                arr = f"[{rng.randint(1, 5)}]" if rng.random() < 0.25 else ""
                lines.append(f"{indent}{t} {name}{arr};")
                members.append((name, False))
            elif r < 0.6 and BITS:
                t = rng.choice(sorted(BITS))
                if rng.random() < 0.1:
                    lines.append(f"{indent}{t} :0;")
                w = rng.randint(1, BITS[t])
                lines.append(f"{indent}{t} {name} : {w};")
                members.append((name, True))
            elif r < 0.7:
                lines.append(f"{indent}{rng.choice(INTS + ['void', 'struct s0'])} *{name};")
                members.append((name, False))
            elif r < 0.8 and shapes:
                prev = rng.choice(shapes)[0]
                arr = f"[{rng.randint(1, 3)}]" if rng.random() < 0.3 else ""
                lines.append(f"{indent}{prev} {name}{arr};")
                members.append((name, False))
            elif r < 0.9 and indent == "\t":
                inner = rng.choice(["struct", "union"])
                lines.append(f"\t{inner} {{")
                for _ in range(rng.randint(1, 3)):
                    member("\t\t", lines, members)
                lines.append("\t};")
            else:
                lines.append(f"{indent}char {name}[{rng.randint(1, 9)}];")
                members.append((name, False))

        for _ in range(rng.randint(1, 7)):
            member("\t")
        if not members:
            counter += 1
            lines.append(f"\tint m{counter};")
            members.append((f"m{counter}", False))
        defs.append(f"{tag} {{\n" + "\n".join(lines) + "\n};")
        shapes.append((tag, members))
    return "\n".join(defs), shapes


def _gcc_layout(defs: str, shapes: list, tmp: Path) -> list[str]:
    body = []
    for tag, members in shapes:
        body.append(f'  printf("%zu\\n", sizeof({tag}));')
        for name, bit in members:
            if bit:  # where the set bits land in a zeroed object
                body.append(
                    f"  {{ {tag} x; memset(&x, 0, sizeof x); x.{name} = -1; bitpos(&x, sizeof x); }}"
                )
            else:
                body.append(f'  printf("%zu\\n", offsetof({tag}, {name}));')
    c = (
        "#include <stddef.h>\n#include <stdio.h>\n#include <string.h>\n"
        "typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;\n"
        "typedef unsigned long long u64;\n"
        "static void bitpos(void *p, size_t n) { unsigned char *b = p; int first = -1, cnt = 0;"
        " for (size_t i = 0; i < n * 8; i++) if (b[i / 8] >> (i % 8) & 1) { if (first < 0)"
        ' first = (int)i; cnt++; } printf("%d:%d\\n", first, cnt); }\n'
        + defs
        + "\nint main(void) {\n"
        + "\n".join(body)
        + "\n  return 0;\n}\n"
    )
    src = tmp / "layout.c"
    src.write_text(c)
    exe = tmp / "layout"
    subprocess.run(["gcc", "-w", "-o", str(exe), str(src)], check=True, capture_output=True)
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()


def _ours(defs: str, shapes: list) -> list[str]:
    prog = parse(defs + "\nBEGIN { }")
    an = Analyzer(prog, source=defs)
    out = []
    for tag, members in shapes:
        rec = an.cdefs.records[tag]
        out.append(str(rec.size))
        for name, bit in members:
            off, ty, b, bits = rec.fields.members[name]
            out.append(f"{off * 8 + b}:{bits}" if bit else str(off))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_layout_matches_gcc(seed: int, tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc (the oracle) is not installed")
    defs, shapes = _gen(random.Random(seed), 12)
    try:
        want = _gcc_layout(defs, shapes, tmp_path)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"the generator wrote C gcc refuses: {e.stderr}\n{defs}")
    assert _ours(defs, shapes) == want, defs


def test_kernel_types_inside_script_structs() -> None:
    """A script struct embedding BTF types: offsets from the BTF types' own alignment."""
    defs = (
        "struct w1 { char c; struct load_weight lw; unsigned int n; };\n"
        "struct w2 { short s; struct list_head lh; u8 tail; };\n"
        "struct w3 { char c; atomic_t a; };\n"
    )
    an = Analyzer(parse(defs + "BEGIN { }"), source=defs)
    try:
        btf = an.btf
    except BpfError:
        pytest.skip("no kernel BTF")
    lw = an.record_type("struct load_weight", parse("BEGIN {}"), script=False)
    lh = an.record_type("struct list_head", parse("BEGIN {}"), script=False)
    w1 = an.cdefs.records["struct w1"].fields
    w2 = an.cdefs.records["struct w2"].fields
    w3 = an.cdefs.records["struct w3"].fields
    assert lw.size == 16 and lh.size == 16  # two 8-byte words each (UAPI-stable shapes)
    assert w1.members["lw"][0] == 8 and w1.members["n"][0] == 24 and w1.size == 32
    assert w2.members["lh"][0] == 8 and w2.size == 32
    assert w3.members["a"][0] == 4 and w3.size == 8
    assert btf is not None


def test_enums_and_errors() -> None:
    src = "enum colour { RED, GREEN = 5, BLUE };\nstruct p { enum colour c; int x; };\n"
    an = Analyzer(parse(src + "BEGIN { @ = BLUE; }"), source=src)
    assert an.cdefs.enums == {"RED": 0, "GREEN": 5, "BLUE": 6}
    assert an.cdefs.records["struct p"].fields.members["x"][0] == 4
    for bad, where in [
        ("struct a { int x };", 1),
        ("struct a {\n  int x;\n  mystery_t y;\n};", 3),
        ("struct a { struct undefined_thing u; };", 1),
        ("struct a { int x : 40; };", 1),
    ]:
        an = Analyzer(parse(bad + "\nBEGIN { }"), source=bad)
        with pytest.raises(ScriptError) as ei:
            an.cdefs  # noqa: B018
        assert ei.value.line == where, (bad, ei.value)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="structunion{};:*[]()0123456789 abcdefghijklmnopqrsxyz_,=\n", max_size=60))
def test_definition_parser_fuzz(body: str) -> None:
    src = f"struct fz {{ {body} }};\nBEGIN {{ }}"
    try:
        an = Analyzer(parse(src), source=src)
        an.cdefs  # noqa: B018
    except ScriptError:
        pass


# ---- with the kernel ---------------------------------------------------------------------------


def _run(tool: list[str], path: str) -> subprocess.CompletedProcess:
    return subprocess.run([*tool, path], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=SRC), check=False)  # fmt: skip


@pytest.mark.kernel
def test_script_struct_over_task_struct_matches_bpftrace(tmp_path: Path) -> None:
    an = Analyzer(parse("BEGIN { }"))
    off, _, _, _ = an.record_member(an.record_type("struct task_struct", parse("BEGIN{}")),
                                    "pid", parse("BEGIN{}"))  # fmt: skip
    script = tmp_path / "pidish.bt"
    script.write_text(
        f"struct pidish {{ char pad[{off}]; int pid; int tgid; }};\n"
        "BEGIN { $p = (struct pidish *)curtask;"
        ' printf("%d %d %d\\n", $p->pid == tid, $p->tgid == pid, sizeof(struct pidish)); exit(); }\n'
    )
    a = _run([sys.executable, "-m", "bpfkit", "trace"], str(script))
    assert a.returncode == 0, a.stderr
    assert a.stdout.splitlines()[1] == f"1 1 {off + 8}"
    if BPFTRACE is None:
        pytest.skip("bpftrace (the oracle) is not installed")
    b = _run([BPFTRACE], str(script))
    assert a.stdout == b.stdout


@pytest.mark.kernel
def test_runqlen_fails_like_bpftrace_and_runs_with_this_kernels_layout(tmp_path: Path) -> None:
    tool = "/usr/sbin/runqlen.bt"
    if not os.path.exists(tool):
        pytest.skip("bpftrace's tools are not installed")
    an = Analyzer(parse("BEGIN { }"))
    rq = an.record_type("struct cfs_rq", parse("BEGIN{}"))
    try:
        an.record_member(rq, "nr_running", parse("BEGIN{}"))
        pytest.skip("this kernel's cfs_rq still has nr_running: runqlen.bt runs as it is")
    except ScriptError:
        pass
    a = subprocess.run([sys.executable, "-m", "bpfkit", "trace", "--dry-run", tool],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=SRC),
                       timeout=120, check=False)  # fmt: skip
    assert a.returncode == 2 and "no field named 'nr_running'" in a.stderr
    assert a.stderr.splitlines()[0].startswith(f"{tool}:37:")
    # with BTF the #ifndef block is skipped (as bpftrace does); a script that defines the
    # struct as this kernel has it (nr_queued, named nr_running here) runs
    off, _, _, _ = an.record_member(rq, "nr_queued", parse("BEGIN{}"))
    text = Path(tool).read_text()
    body = text[text.index("BEGIN") :]
    variant = tmp_path / "runqlen.bt"
    variant.write_text(
        f"struct cfs_rq {{ char pad[{off}]; unsigned int nr_running; }};\n"
        + body
        + "\ninterval:ms:700 { exit(); }\n"
    )
    r = _run([sys.executable, "-m", "bpfkit", "trace"], str(variant))
    assert r.returncode == 0, r.stderr
    assert "@runqlen:" in r.stdout and "[0, 1)" in r.stdout
