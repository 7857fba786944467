"""The code is laid out along the seams a reader expects (issue 11 item 14).

The verifier's abstract interpreter is a driver (``verifier/check.py``: the main loop,
program-level rules, exit) combined from one mixin module per concern; no verifier
module grows past what a reader can hold, and a concern module does not import the
driver back (no import circle).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import bpfkit.verifier as verifier_pkg
from bpfkit.verifier.check import Checker

VERIFIER = Path(verifier_pkg.__file__).parent
MAX_LINES = 1200

#: concern module -> (its mixin class, methods a reader looks for there)
CONCERNS = {
    "check_alu": ("AluMixin", ["do_alu", "ptr_alu", "sanitize_ptr"]),
    "check_jumps": ("JumpsMixin", ["do_cond_jmp", "refine_branch", "branch_taken", "visit"]),
    "check_mem": ("MemMixin", ["do_ldx", "do_store", "do_atomic", "mem_access", "do_ld_abs"]),
    "check_calls": ("CallsMixin", ["do_helper_call", "do_local_call", "check_arg"]),
}
#: what stays in the driver
DRIVER = ["run", "explore", "explore_all", "do_exit", "check_func_returns", "initial_state"]


@pytest.mark.parametrize("path", sorted(VERIFIER.glob("*.py")), ids=lambda p: p.name)
def test_verifier_modules_stay_small(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines (more than {MAX_LINES}): split it"


@pytest.mark.parametrize("module", sorted(CONCERNS))
def test_concern_module_is_mixed_into_the_checker(module: str) -> None:
    cls_name, methods = CONCERNS[module]
    mod = importlib.import_module(f"bpfkit.verifier.{module}")
    mixin = getattr(mod, cls_name)
    assert mixin in Checker.__mro__, f"Checker does not combine {cls_name}"
    for m in methods:
        # defined in the concern module, and what the Checker runs (not overridden)
        assert m in vars(mixin), f"{m} is not in {module}.{cls_name}"
        assert getattr(Checker, m) is vars(mixin)[m], f"Checker overrides {m}"


def test_driver_keeps_the_main_loop() -> None:
    for m in DRIVER:
        assert m in vars(Checker), f"{m} should be in the driver (check.py)"


def _runtime_imports(path: Path) -> set[str]:
    """Relative modules ``path`` imports at run time (not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in skip:
            if node.module:
                out.add(node.module)
            else:
                out.update(a.name for a in node.names)
    return out


def test_driver_imports_every_concern_and_no_concern_imports_the_driver() -> None:
    driver = _runtime_imports(VERIFIER / "check.py")
    for module in CONCERNS:
        assert module in driver, f"check.py does not import {module}"
        assert "check" not in _runtime_imports(VERIFIER / f"{module}.py"), (
            f"{module} imports the driver back (an import circle)"
        )
