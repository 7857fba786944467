"""No import circle between the front door and the backends (issue 11, item 14): the
backend-neutral classes live in bpfkit.objects, which both backends import; bpfkit.api
(load) sits above them. Checked twice: what a fresh interpreter imports, and every import
statement (also those inside functions) of the backend packages."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "bpfkit"


def _loaded_after(module: str) -> list[str]:
    code = (
        f"import sys, json, {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('bpfkit'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "module,forbidden",
    [
        ("bpfkit.objects", ("bpfkit.api", "bpfkit.vm", "bpfkit.kernel")),
        ("bpfkit.vm.object", ("bpfkit.api", "bpfkit.kernel")),
        ("bpfkit.kernel.object", ("bpfkit.api", "bpfkit.vm")),
        ("bpfkit.api", ("bpfkit.vm", "bpfkit.kernel")),  # load() imports a backend on use
    ],
)
def test_a_fresh_interpreter_imports_no_circle(module, forbidden):
    loaded = _loaded_after(module)
    assert module in loaded
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not bad, f"importing {module} imported {bad}"


def _imports(path: Path, package: str) -> set[str]:
    """Every module an import statement of ``path`` names (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    parts = package.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _modules(sub: str):
    root = SRC / sub if sub else SRC
    files = [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))
    for f in files:
        rel = f.relative_to(SRC.parent).with_suffix("")
        pkg = ".".join(rel.parts[:-1]) if rel.name != "__init__" else ".".join(rel.parts[:-1])
        yield f, pkg


@pytest.mark.parametrize(
    "where,forbidden",
    [
        ("vm", ("bpfkit.api", "bpfkit.kernel")),
        ("kernel", ("bpfkit.api", "bpfkit.vm")),
        ("objects.py", ("bpfkit.api", "bpfkit.vm", "bpfkit.kernel")),
    ],
)
def test_no_import_statement_goes_up_or_across(where, forbidden):
    bad = []
    for path, pkg in _modules(where):
        for mod in _imports(path, pkg):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                bad.append((str(path.relative_to(SRC)), mod))
    assert not bad, bad


def test_the_front_door_still_offers_the_classes():
    import bpfkit.api as api
    import bpfkit.objects as objects

    for name in ("Object", "Program", "Map", "MapBase", "RingBuffer", "TestRunResult"):
        assert getattr(api, name) is getattr(objects, name)
