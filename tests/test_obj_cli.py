"""``bpfkit build``, ``bpfkit inspect`` and object listings (``disasm`` of ELF files)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfkit.cli.main import cli
from bpfkit.errors import BpfError
from bpfkit.obj import load_object
from bpfkit.obj.build import BuildError, compile_c, find_clang
from bpfkit.obj.listing import format_object_listing

C_DIR = Path(__file__).parent / "c"


def _build(name: str) -> Path:
    src = C_DIR / name
    clang = find_clang()
    key = hashlib.sha256(src.read_bytes() + clang.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "bpfkit-test-objs" / f"{src.stem}-{key}.o"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.o")
        compile_c(src, tmp)
        tmp.replace(out)
    return out


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


DEFINE_SRC = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "answer.h"
#ifndef MAGIC
#error MAGIC not defined
#endif
SEC("xdp") int x(struct xdp_md *ctx) { return MAGIC + ANSWER; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_build_with_defines_includes_and_mcpu(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "answer.h").write_text("#define ANSWER 40\n")
    src = tmp_path / "prog.c"
    src.write_text(DEFINE_SRC)
    out = tmp_path / "out" / "prog.o"
    out.parent.mkdir()
    code, stdout, _ = run(
        "build",
        str(src),
        "-o",
        str(out),
        "-I",
        str(tmp_path / "inc"),
        "-D",
        "MAGIC=2",
        "--mcpu",
        "v3",
        "--json",
    )
    assert code == 0, stdout
    doc = json.loads(stdout)
    assert doc["object"] == str(out) and doc["programs"] == ["x"]
    assert "-mcpu=v3" in doc["command"] and "-DMAGIC=2" in doc["command"]
    assert {"-O2", "-g", "-target", "bpf"} <= set(doc["command"])
    assert any(c.startswith("-D__TARGET_ARCH_") for c in doc["command"])
    spec = load_object(out)
    assert spec.programs["x"].instructions[0].imm == 42


def test_build_default_output_and_text(tmp_path: Path) -> None:
    src = tmp_path / "p.c"
    src.write_text(DEFINE_SRC.replace('#include "answer.h"', "#define ANSWER 1"))
    code, stdout, _ = run("build", str(src), "-DMAGIC=1")
    assert code == 0 and (tmp_path / "p.o").exists()
    assert "1 program(s)" in stdout


def test_build_errors_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "bad.c"
    src.write_text("int broken(\n")
    code, stdout, stderr = run("build", str(src))
    assert code == 2 and "clang failed" in stderr and "bad.c" in stderr
    code, stdout, _ = run("build", str(src), "--json")
    doc = json.loads(stdout)
    assert code == 2 and "clang failed" in doc["error"] and "error" in doc["output"]
    code, _, stderr = run("build", str(tmp_path / "missing.c"))
    assert code == 2 and "not found" in stderr
    code, _, stderr = run("build", str(src), "--mcpu", "v9")
    assert code == 2 and "mcpu" in stderr
    assert "Traceback" not in stderr


def test_missing_clang_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BuildError, match="clang-19"):
        find_clang()


def test_find_clang_prefers_clang_19() -> None:
    if shutil.which("clang-19") is None:
        pytest.skip("clang-19 not installed")
    assert find_clang().endswith("clang-19")


def test_inspect_json_shape() -> None:
    code, stdout, _ = run("inspect", str(_build("obj_maps.c")), "--json")
    assert code == 0
    doc = json.loads(stdout)
    progs = {p["name"]: p for p in doc["programs"]}
    assert progs["entry"]["section"] == "tc" and progs["entry"]["type"] == "sched_cls"
    assert progs["entry"]["insns"] > 10 and progs["entry"]["license"] == "GPL"
    assert {"name", "section", "type", "insns"} <= set(progs["tail_a"])
    maps = {m["name"]: m for m in doc["maps"]}
    assert maps["flows"]["type"] == "hash" and maps["flows"]["key_type"] == "struct flow_key"
    assert maps["flows"]["max_entries"] == 1024 and maps["flows"]["flags"] == 1
    assert maps["jumps"]["values"] == {"0": "tail_a", "1": "tail_b"}
    assert maps["outer"]["inner_map"]["type"] == "array"
    assert maps["pinned_counters"]["pinning"] == "by_name"
    assert doc["btf"]["types"] > 50 and doc["btf"]["line_info"] > 0


def test_inspect_globals_and_externs_json() -> None:
    code, stdout, _ = run("inspect", str(_build("obj_globals.c")), "--json")
    doc = json.loads(stdout)
    assert code == 0
    variables = {v["name"]: v for v in doc["variables"]}
    assert (
        variables["cfg"]["map"] == ".rodata"
        and variables["cfg"]["type"] == "const volatile struct config"
    )
    assert {e["name"]: e["kind"] for e in doc["externs"]}["bpf_rcu_read_lock"] == "kfunc"
    assert doc["license"] == "Dual BSD/GPL"


def test_inspect_tables() -> None:
    code, stdout, _ = run("inspect", str(_build("obj_core.c")))
    assert code == 0
    for word in ("Programs", "core_prog", "raw_tp/sys_enter", "Global variables", "BTF:", "CO-RE"):
        assert word in stdout


def test_inspect_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"\x7fELF" + b"\0" * 10)
    code, stdout, stderr = run("inspect", str(junk))
    assert code == 2 and stderr.startswith("bpfkit: error:") and "Traceback" not in stderr
    code, stdout, _ = run("inspect", str(junk), "--json")
    assert code == 2 and "error" in json.loads(stdout)
    code, _, stderr = run("inspect", str(tmp_path / "none.o"))
    assert code == 2


def test_listing_interleaves_source_and_names() -> None:
    text = format_object_listing(_build("obj_calls.c"), program="calls_xdp")
    assert text.startswith("Disassembly of program calls_xdp (section xdp, type xdp):")
    assert "; \tbpf_loop(10, loop_cb, &acc, 0);" in text
    assert "<leaf>:" in text and "<middle>:" in text
    assert "map vals" in text
    assert "loop_cb" in text and "sum_cb" in text
    lines = text.splitlines()
    # A source line comes right before the instructions it produced.
    i = lines.index("; \t__u64 acc = 0;")
    assert lines[i + 1].strip().split(":")[0].isdigit()


def test_listing_globals_and_json() -> None:
    path = _build("obj_globals.c")
    text = format_object_listing(path)
    assert "(counter)" in text and "kconfig LINUX_KERNEL_VERSION" in text
    assert "kfunc bpf_rcu_read_lock" in text or "bpf_rcu_read_lock" in text
    doc = format_object_listing(path, as_json=True)
    insns = doc["programs"][0]["insns"]
    assert insns[0]["source"]["line"] > 0 and insns[0]["pc"] == 0
    relocs = [i["reloc"] for i in insns if i["reloc"]]
    assert any(r["kind"] == "map_value" and r["map"] == ".data" for r in relocs)
    with pytest.raises(BpfError, match="no program"):
        format_object_listing(path, program="nope")


def test_disasm_command_on_objects() -> None:
    if "disasm" not in cli.commands:
        pytest.skip("disasm command not registered")
    code, stdout, stderr = run("disasm", str(_build("obj_calls.c")), "--program", "calls_socket")
    assert code == 0, stderr
    assert "calls_socket" in stdout and "<leaf>:" in stdout and "; " in stdout
