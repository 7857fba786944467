"""bpftool parity of the CLI, with bpftool, iproute2 and clang as the oracles: program
listings (``prog show --xlated``), links (list, show, detach), pins, BTF dumps (raw, and
a C header that compiles with every layout intact), ``attach`` inferring a pinned
program's kind, and ``prog tracelog``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfkit.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
BPFTOOL = shutil.which("bpftool")
CLANG = shutil.which("clang-19")
needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool not installed (scripts/setup)")
needs_clang = pytest.mark.skipif(CLANG is None, reason="clang-19 not installed (scripts/setup)")


def bpfkit(*args: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == code, f"{args}: {res.exit_code}\n{res.output}\n{res.stderr}"
    return res.stdout


def bpfkit_json(*args: str, code: int = 0) -> dict:
    return json.loads(bpfkit(*args, "--json", code=code))


def tool(*args: str) -> str:
    return subprocess.run([BPFTOOL, *args], capture_output=True, text=True, check=True).stdout  # type: ignore[list-item]


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import bpfkit as bk

    d = tmp_path_factory.mktemp("objs")
    names = [
        "xdp_proto_count",
        "syscall_latency",
        "tail_dispatch",
        "globals_loop",
        "ringbuf_events",
    ]
    out = {n: bk.build(ROOT / "examples" / f"{n}.c", d / f"{n}.o") for n in names}
    out["verifier_accept"] = bk.build(ROOT / "tests" / "c" / "verifier_accept.c", d / "va.o")
    return out


# ---- prog show --xlated ------------------------------------------------------------------
@pytest.mark.kernel
@needs_bpftool
def test_xlated_listing_matches_bpftool(objects: dict[str, Path]) -> None:
    import bpfkit as bk

    compared = 0
    for path in objects.values():
        with bk.load(path, backend="kernel") as obj:
            for prog in obj.programs.values():
                pid = str(prog.info().id)  # type: ignore[attr-defined]
                ours = bpfkit("prog", "show", pid, "--xlated").splitlines(keepends=True)[2:]
                theirs = tool("prog", "dump", "xlated", "id", pid)
                assert "".join(ours) == theirs, f"{path.name}:{prog.name}"
                shown = bpfkit_json("prog", "show", pid, "--xlated")
                calls = [ln for ln in shown["xlated"] if ln["text"].startswith("call ")]
                assert all("#" in c["text"] for c in calls)
                compared += 1
    assert compared >= 15


# ---- btf dump ----------------------------------------------------------------------------
@needs_bpftool
def test_btf_raw_matches_bpftool_for_vmlinux() -> None:
    vmlinux = "/sys/kernel/btf/vmlinux"
    if not os.path.exists(vmlinux):
        pytest.skip("kernel without BTF")
    assert bpfkit("btf", "dump", vmlinux) == tool("btf", "dump", "file", vmlinux, "format", "raw")


@needs_bpftool
def test_btf_raw_matches_bpftool_for_objects(objects: dict[str, Path]) -> None:
    for path in objects.values():
        ours = bpfkit("btf", "dump", str(path))
        assert ours == tool("btf", "dump", "file", str(path), "format", "raw"), path.name


def _layout_asserts(header: str) -> str:
    """C asserting the size of every struct/union and offset of every member the BTF says."""
    from bpfkit.btf.cdump import CHeader
    from bpfkit.btf.parser import parse_btf
    from bpfkit.uapi.btf import BtfKind

    btf = parse_btf(Path("/sys/kernel/btf/vmlinux").read_bytes())
    h = CHeader(btf)

    def has_va_list(tid: int, depth: int = 0) -> bool:
        # __builtin_va_list is a 24-byte array on x86-64 and a pointer on the BPF target
        t = btf.get(tid)
        if depth > 20:
            return False
        if t.kind == BtfKind.TYPEDEF and t.name == "__builtin_va_list":
            return True
        if t.kind in (BtfKind.TYPEDEF, BtfKind.ARRAY, BtfKind.CONST, BtfKind.VOLATILE):
            return has_va_list(t.type, depth + 1)
        if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
            return any(has_va_list(m.type, depth + 1) for m in t.members)
        return False

    out = [f'#include "{header}"']
    checked = 0
    for t in h._types():
        if t.kind not in (BtfKind.STRUCT, BtfKind.UNION) or not t.name or has_va_list(t.id):
            continue
        tn = f"{'struct' if t.kind == BtfKind.STRUCT else 'union'} {h.tag_names[t.id]}"
        out.append(f'_Static_assert(sizeof({tn}) == {t.size}, "{tn}");')
        for m in t.members:
            if m.name and not m.bitfield_size:
                out.append(
                    f"_Static_assert(__builtin_offsetof({tn}, {m.name}) == {m.bit_offset // 8}, "
                    f'"{tn}.{m.name}");'
                )
        checked += 1
    assert checked > 1000
    return "\n".join(out) + "\n"


PROGRAM = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");

SEC("raw_tracepoint/sched_process_exec")
int on_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	int *e = bpf_ringbuf_reserve(&events, sizeof(int), 0);
	if (!e)
		return 0;
	*e = BPF_CORE_READ(t, real_parent, tgid);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


@needs_clang
def test_vmlinux_h_compiles_and_keeps_every_layout(tmp_path: Path) -> None:
    vmlinux = "/sys/kernel/btf/vmlinux"
    if not os.path.exists(vmlinux):
        pytest.skip("kernel without BTF")
    header = tmp_path / "vmlinux.h"
    bpfkit("btf", "dump", vmlinux, "--format", "c", "-o", str(header))
    (tmp_path / "prog.bpf.c").write_text(PROGRAM)
    import bpfkit as bk

    obj = bk.build(tmp_path / "prog.bpf.c", tmp_path / "prog.bpf.o", includes=[str(tmp_path)])
    from bpfkit.obj import load_object

    spec = load_object(obj)
    assert list(spec.programs) == ["on_exec"]
    assert spec.programs["on_exec"].core_relocations  # CO-RE through preserve_access_index
    (tmp_path / "layout.c").write_text(_layout_asserts("vmlinux.h"))
    proc = subprocess.run(
        [CLANG, "-target", "bpf", "-fsyntax-only", "-ferror-limit=5", "layout.c"],  # type: ignore[list-item]
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@needs_clang
def test_object_btf_as_c_compiles(objects: dict[str, Path], tmp_path: Path) -> None:
    for name, path in objects.items():
        h = tmp_path / f"{name}.h"
        bpfkit("btf", "dump", str(path), "--format", "c", "-o", str(h))
        (tmp_path / f"{name}.c").write_text(f'#include "{name}.h"\n')
        proc = subprocess.run(
            [CLANG, "-target", "bpf", "-fsyntax-only", f"{name}.c"],  # type: ignore[list-item]
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr


# ---- pins, links, attach by inferred kind ------------------------------------------------
@pytest.fixture
def veth() -> str:
    name = "uxbt0"
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    r = subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", "uxbt1"],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.skip(f"cannot create a veth pair: {r.stderr.strip()}")
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def _xdp_prog_on(iface: str) -> int | None:
    info = json.loads(
        subprocess.run(
            ["ip", "-j", "-d", "link", "show", iface], capture_output=True, text=True
        ).stdout
    )[0]
    xdp = info.get("xdp")
    return xdp.get("prog", {}).get("id") if xdp else None


@pytest.mark.kernel
@needs_bpftool
def test_attach_pinned_infers_kind_and_links_detach(
    objects: dict[str, Path], bpffs: str, veth: str
) -> None:
    d = os.path.join(bpffs, "xdp")
    loaded = bpfkit_json("load", str(objects["xdp_proto_count"]), "--pin", d)
    pin = loaded["programs"][0]["pinned"]
    link_pin = os.path.join(d, "link")
    out = bpfkit_json("attach", pin, "--target", veth, "--pin-link", link_pin)  # no --kind
    assert out["kind"] == "xdp"
    prog_id = loaded["programs"][0]["id"]
    assert _xdp_prog_on(veth) == prog_id  # iproute2 sees it attached
    links = {ln["id"]: ln for ln in bpfkit_json("link", "list")["links"]}
    theirs = {ln["id"]: ln for ln in json.loads(tool("link", "list", "-j"))}
    assert out["link_id"] in links and out["link_id"] in theirs
    for lid, ln in theirs.items():
        if lid in links:
            assert (links[lid]["type"], links[lid]["prog_id"]) == (ln["type"], ln["prog_id"])
    shown = bpfkit_json("link", "show", link_pin)
    assert shown["id"] == out["link_id"] and shown["ifindex"] > 0
    bpfkit_json("link", "detach", link_pin)
    assert _xdp_prog_on(veth) is None  # detached, though the link still exists (pinned)
    bpfkit_json("unpin", "--recursive", d)
    assert not os.path.exists(d)
    assert out["link_id"] not in {ln["id"] for ln in json.loads(tool("link", "list", "-j"))}


@pytest.mark.kernel
def test_undetachable_link_is_a_clear_usage_error(objects: dict[str, Path], bpffs: str) -> None:
    d = os.path.join(bpffs, "sl")
    loaded = bpfkit_json("load", str(objects["syscall_latency"]), "--pin", d)
    enter = next(p["pinned"] for p in loaded["programs"] if p["name"] == "on_enter")
    lp = os.path.join(d, "link")
    out = bpfkit_json("attach", enter, "--target", "sys_enter", "--pin-link", lp)
    assert out["kind"] == "raw_tracepoint"
    err = bpfkit_json("link", "detach", lp, code=2)["error"]
    assert "cannot be detached" in err
    bpfkit_json("unpin", "-r", d)


@pytest.mark.kernel
@needs_bpftool
def test_pin_and_unpin(objects: dict[str, Path], bpffs: str, tmp_path: Path) -> None:
    import bpfkit as bk

    with bk.load(objects["xdp_proto_count"], backend="kernel") as obj:
        map_id = obj.maps["counts"].kernel_info().id  # type: ignore[attr-defined]
        prog_id = obj.programs["count_protocols"].info().id  # type: ignore[attr-defined]
        mp, pp = os.path.join(bpffs, "m"), os.path.join(bpffs, "p")
        bpfkit_json("pin", "map", str(map_id), mp)
        bpfkit_json("pin", "prog", str(prog_id), pp)
    # the pins keep them alive after the object closed
    assert json.loads(tool("map", "show", "pinned", mp, "-j"))["id"] == map_id
    assert json.loads(tool("prog", "show", "pinned", pp, "-j"))["id"] == prog_id
    bpfkit_json("unpin", mp)
    bpfkit_json("unpin", pp)
    assert not os.path.exists(mp) and not os.path.exists(pp)
    plain = tmp_path / "not-a-pin"
    plain.write_text("keep me")
    assert "not a BPF pin" in bpfkit_json("unpin", str(plain), code=2)["error"]
    assert plain.read_text() == "keep me"


# ---- prog tracelog -----------------------------------------------------------------------
TRACER = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int say(struct xdp_md *ctx)
{
	bpf_printk("uxmark %d", 4242);
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.kernel
def test_tracelog_streams_printk_lines(tmp_path: Path) -> None:
    import bpfkit as bk

    (tmp_path / "say.c").write_text(TRACER)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with bk.load(tmp_path / "say.c", backend="kernel") as obj:
        for _attempt in range(3):  # trace_pipe is shared: another reader may take a line
            p = subprocess.Popen(
                [sys.executable, "-m", "bpfkit", "prog", "tracelog", "--json", "--timeout", "20"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            time.sleep(1.0)
            for _ in range(20):
                obj.programs["say"].test_run(data=bytes(64))
            got = None
            assert p.stdout is not None
            for line in p.stdout:
                rec = json.loads(line)
                if "uxmark 4242" in rec["message"]:
                    got = rec
                    break
            p.kill()
            p.wait()
            if got is not None:
                break
        assert got is not None, "no trace line arrived"
        assert got["function"] == "bpf_trace_printk" and got["message"] == "uxmark 4242"
        assert isinstance(got["pid"], int) and isinstance(got["timestamp"], float)
        assert re.fullmatch(r"\S+", got["task"])


# ---- hostile input -------------------------------------------------------------------------
def _small_btf() -> bytes:
    from bpfkit.btf.cparse import parse_c
    from bpfkit.btf.parser import encode_btf

    decls = parse_c(
        "struct in { __u16 a; char n[6]; }; typedef struct in in_t;"
        "struct s { __u32 x: 3, y: 5; in_t i[2]; union { int p; void *q; }; enum { E = 1 } e; };"
    )
    return encode_btf(decls.btf)


@pytest.mark.parametrize("fmt", ["raw", "c"])
def test_btf_dump_of_damaged_btf_never_crashes(fmt: str, tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    blob = _small_btf()
    path = tmp_path / "x.btf"

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=6))
    def check(flips: list[tuple[int, int]]) -> None:
        data = bytearray(blob)
        for pos, val in flips:
            data[pos] = val
        path.write_bytes(bytes(data))
        res = CliRunner().invoke(cli, ["btf", "dump", str(path), "--format", fmt])
        assert res.exit_code in (0, 2), res.output + res.stderr
        assert "Traceback" not in res.output + res.stderr
        if res.exit_code == 2:
            assert res.stderr.startswith("bpfkit: error: ")

    check()


@pytest.mark.kernel
def test_map_dump_draws_histograms(bpffs: str) -> None:
    loaded = bpfkit_json("load", str(ROOT / "examples" / "latency_hist.c"), "--pin", f"{bpffs}/h")
    pin = loaded["maps"][0]["pinned"]
    for key, count in ((3, 5), (10, 2)):  # [8, 16) us five times, [1K, 2K) twice
        bpfkit_json("map", "update", pin, "--key", str(key), "--value", str(count))
    text = bpfkit("map", "dump", pin, "--hist", "pow2")
    assert re.search(r"^\[8, 16\)\s+5 \|@{52}\|$", text, re.M)
    assert re.search(r"^\[1K, 2K\)\s+2 \|@{20}\s+\|$", text, re.M)
    bcc = bpfkit("map", "dump", pin, "--hist", "pow2", "--hist-style", "bcc")
    assert re.search(r"^\s+8 -> 15\s+: 5\s+\|\*{40}\|$", bcc, re.M)
    hist = bpfkit_json("map", "dump", pin, "--hist", "pow2")["hist"]
    assert {(b["min"], b["max"], b["count"]) for b in hist if b["count"]} == {
        (8, 15, 5),
        (1024, 2047, 2),
    }
    bpfkit_json("unpin", "-r", f"{bpffs}/h")
