"""Packaging: llvmlite is the optional ``bpfkit[jit]`` extra. Without it the interpreter,
the verifier, the VM and the kernel backend still import and work, and asking for the JIT
says which extra to install. ``py.typed`` ships; C builds need clang, and say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter in which importing llvmlite fails, as on an install
# without the extra.
_BLOCK = """
import sys
class _NoLlvmlite:
    def find_spec(self, name, path=None, target=None):
        if name == "llvmlite" or name.startswith("llvmlite."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoLlvmlite())
"""

_BODY = """
import json, sys
out = {}
import bpfkit
from bpfkit.isa.asm import assemble_text
from bpfkit.vm.interp import run_program
from bpfkit.verifier import verify
prog = assemble_text("r0 = 0\\nloop:\\nr0 += r2\\nr2 += -1\\nif r2 != 0 goto loop\\nexit")
out["interp"] = run_program(prog, b"\\0" * 10).r0
obj = bpfkit.load(sys.argv[1])            # the VM: verified on load
packet = bytes.fromhex(open(sys.argv[2]).read())
out["vm"] = obj.programs["count_protocols"].test_run(data=packet).retval
bad = assemble_text("r0 = *(u64 *)(r1 + 0)\\nexit")  # xdp_md has no 8-byte field at 0
try:
    verify(bad, prog_type="xdp")
    out["verify"] = "accepted"
except bpfkit.VerifierError as e:
    out["verify"] = str(e)
try:
    obj.programs["count_protocols"].test_run(data=packet, engine="jit")
    out["jit"] = "ran"
except bpfkit.NotSupported as e:
    out["jit"] = str(e)
if sys.argv[3] == "1":
    with bpfkit.load(sys.argv[1], backend="kernel") as k:
        out["kernel"] = k.programs["count_protocols"].test_run(data=packet).retval
out["llvmlite_imported"] = "llvmlite" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def xdp_obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import bpfkit

    return bpfkit.build(
        ROOT / "examples" / "xdp_proto_count.c", tmp_path_factory.mktemp("p") / "x.o"
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _kernel_ok() -> bool:
    from bpfkit.kernel.privileges import kernel_available

    ok, _ = kernel_available()
    return ok


def test_works_without_llvmlite(xdp_obj: Path) -> None:
    use_kernel = _kernel_ok()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _BLOCK + _BODY,
            str(xdp_obj),
            str(ROOT / "examples" / "packet.hex"),
            "1" if use_kernel else "0",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["interp"] == 55
    assert out["vm"] == 2  # XDP_PASS
    assert out["verify"] != "accepted" and "context" in out["verify"]
    assert "bpfkit[jit]" in out["jit"]
    if use_kernel:
        assert out["kernel"] == 2
    assert out["llvmlite_imported"] is False


def test_cli_jit_without_llvmlite_is_a_usage_error() -> None:
    code = _BLOCK + "from bpfkit.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            str(ROOT / "examples" / "sum.s"),
            "--mem-hex",
            "01 02",
            "--engine",
            "jit",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "bpfkit[jit]" in json.loads(proc.stdout)["error"]


def test_metadata() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("llvmlite") for d in meta["dependencies"])
    assert any(d.startswith("llvmlite") for d in meta["optional-dependencies"]["jit"])
    assert (ROOT / "src" / "bpfkit" / "py.typed").exists()
    assert "[test,jit]" in (ROOT / "scripts" / "setup").read_text()


def test_load_c_without_clang_is_not_supported() -> None:
    env = _env()
    env["PATH"] = "/nonexistent"
    code = (
        "import bpfkit, sys\n"
        "try:\n    bpfkit.load(sys.argv[1])\n"
        "except bpfkit.NotSupported as e:\n    print('NotSupported:', e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "examples" / "xdp_proto_count.c")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("NotSupported:") and "clang" in proc.stdout


def test_load_c_builds_it() -> None:
    import bpfkit

    packet = bytes.fromhex((ROOT / "examples" / "packet.hex").read_text())
    obj = bpfkit.load(ROOT / "examples" / "xdp_proto_count.c")
    assert obj.programs["count_protocols"].test_run(data=packet).retval == 2
    assert obj.maps["counts"][6][0] == 1
