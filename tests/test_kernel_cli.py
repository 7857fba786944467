"""The kernel subcommands: load, attach, prog list|show, map list|dump|update|delete,
features, and ``run --engine kernel`` next to the VM engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from test_examples import NAMES, build_example, tcp
from test_kernel_common import build_c, needs_clang

from bpfkit.cli.main import cli

pytestmark = [pytest.mark.kernel, needs_clang]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernel_cli")
    out = {n: build_example(n, d) for n in NAMES}
    out["kernel_trace"] = build_c("kernel_trace", d)
    return out


def run(*args, code=0):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, (res.output, res.exception)
    return json.loads(res.output) if "--json" in args else res.output


def test_load_without_pin_reports_and_unloads(built):
    out = run("load", built["xdp_proto_count"], "--json")
    (prog,) = out["programs"]
    assert prog["name"] == "count_protocols" and prog["type"] == "xdp" and prog["pinned"] is None
    assert out["maps"][0]["name"] == "counts" and out["pinned"] is False
    ids = {p["id"] for p in run("prog", "list", "--json")["programs"]}
    assert prog["id"] not in ids  # gone with the command


def test_load_pin_then_inspect_and_edit_maps(built, bpffs):
    pin = os.path.join(bpffs, "lpm")
    out = run("load", built["lpm_firewall"], "--pin", pin, "--json")
    prog = out["programs"][0]
    assert prog["pinned"] == os.path.join(pin, "firewall")
    rules = next(m for m in out["maps"] if m["name"] == "rules")
    assert rules["pinned"] == os.path.join(pin, "maps", "rules")
    shown = run("prog", "show", prog["pinned"], "--xlated", "--json")
    assert shown["id"] == prog["id"] and shown["xlated"] and rules["id"] in shown["map_ids"]
    assert prog["id"] in {p["id"] for p in run("prog", "list", "--json")["programs"]}
    assert rules["id"] in {m["id"] for m in run("map", "list", "--json")["maps"]}
    key = json.dumps({"prefixlen": 8, "addr": 10})
    upd = run("map", "update", rules["pinned"], "--key", key, "--value", "1", "--json")
    assert upd["updated"]["value"] == 1
    dump = run("map", "dump", str(rules["id"]), "--json")
    assert dump["entries"] == [{"key": {"prefixlen": 8, "addr": 10}, "value": 1}]
    raw = run("map", "dump", rules["pinned"], "--raw", "--json")
    assert raw["entries"][0]["key"] == "080000000a000000"
    run(
        "map",
        "update",
        rules["pinned"],
        "--key",
        "080000000b000000",
        "--value",
        "00000000",
        "--hex",
        "--json",
    )
    assert len(run("map", "dump", rules["pinned"], "--json")["entries"]) == 2
    assert run("map", "delete", rules["pinned"], "--key", key, "--json") == {
        "deleted": {"prefixlen": 8, "addr": 10}
    }
    missing = run("map", "delete", rules["pinned"], "--key", key, "--json", code=1)
    assert "no key" in missing["error"]
    text = run("map", "dump", rules["pinned"])
    assert "(1 entries)" in text


def test_attach_with_duration_and_pinned_link(built, bpffs):
    out = run(
        "attach", built["kernel_trace"], "--program", "on_sys_enter", "--duration", "0.2", "--json"
    )
    assert out["kind"] == "raw_tracepoint" and out["target"] == "sys_enter"
    assert out["maps"]["hits"][1]["value"]["count"] > 0  # syscalls happened meanwhile
    link = os.path.join(bpffs, "link")
    out = run(
        "attach",
        built["kernel_trace"],
        "--program",
        "on_sys_enter",
        "--pin-link",
        link,
        "--pin",
        os.path.join(bpffs, "obj"),
        "--json",
    )
    assert out["pinned"] == link and out["link_id"]
    hits = os.path.join(bpffs, "obj", "maps", "hits")
    before = run("map", "dump", hits, "--json")["entries"][1]["value"]["count"]
    os.getppid()
    after = run("map", "dump", hits, "--json")["entries"][1]["value"]["count"]
    assert after > before  # still attached after the command exited
    os.unlink(link)


def test_attach_a_pinned_program_by_kind(built, bpffs):
    pin = os.path.join(bpffs, "tr")
    run("load", built["kernel_trace"], "--program", "on_sys_enter", "--pin", pin, "--json")
    out = run(
        "attach",
        os.path.join(pin, "on_sys_enter"),
        "--kind",
        "raw_tracepoint",
        "--target",
        "sys_enter",
        "--duration",
        "0.05",
        "--json",
    )
    assert out["kind"] == "raw_tracepoint"
    res = CliRunner().invoke(cli, ["attach", os.path.join(pin, "on_sys_enter"), "--duration", "0"])
    # the kind is inferred from the program's type (raw_tracepoint); the tracepoint is not
    assert res.exit_code == 2 and "needs a target" in res.output


def test_features(built):
    out = run("features", "--json")
    assert out["program_types"]["xdp"]["supported"] is True
    assert out["map_types"]["ringbuf"]["supported"] is True
    assert set(out["attach"]) >= {"kprobe", "uprobe", "xdp", "tcx", "cgroup"}
    for probe in out["attach"].values():
        assert probe["supported"] or probe["reason"]
    out = run("features", "--helpers", "xdp", "--json")
    assert "map_lookup_elem" in out["helpers"]["xdp"]
    assert (
        "skb_store_bytes" not in out["helpers"]["xdp"]
        and "xdp_adjust_head" in out["helpers"]["xdp"]
    )


def test_map_errors_are_usage_errors(built):
    res = CliRunner().invoke(cli, ["map", "dump", "bpfkit_no_such_map_name", "--json"])
    assert res.exit_code == 2 and "no maps named" in json.loads(res.output)["error"]


@pytest.mark.parametrize(
    "name,args",
    [
        ("xdp_proto_count", ["--data-hex", tcp(1, 80).hex()]),
        ("sockfilter_http", ["--data-hex", tcp(1234, 80).hex()]),
        ("lpm_firewall", ["--data-hex", tcp(1, 2).hex()]),
        ("tail_dispatch", ["--data-hex", tcp(1, 2).hex()]),
    ],
)
def test_run_engine_kernel_matches_the_vm(built, name, args):
    def go(engine):
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "bpfkit",
                "run",
                str(built[name]),
                "--engine",
                engine,
                "--json",
                *args,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        assert p.returncode == 0, p.stdout + p.stderr
        return json.loads(p.stdout)

    k, v = go("kernel"), go("interp")
    assert k["engine"] == "kernel"
    assert (k["retval"], k["data_out"]) == (v["retval"], v["data_out"])

    # per-CPU counters may land on another CPU in the kernel: compare the totals
    def total(changes):
        out = {}
        for m, ch in changes.items():
            for c in ch:
                new = c["new"]
                out[(m, json.dumps(c["key"]))] = sum(new) if isinstance(new, list) else new
        return out

    assert total(k["maps_changed"]) == total(v["maps_changed"])


def test_load_rejected_program_exits_1_with_the_instruction(tmp_path):
    bad = build_c("kernel_bad", tmp_path)
    res = CliRunner().invoke(cli, ["load", str(bad), "--json"])
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["insn"] == 10 and "insn 10" in out["error"]
