"""Load-time overrides (value_size, max_entries, constants, program type, autoload) work
the same on both backends: the kernel's own view of what was created (map info, the
program's return value in BPF_PROG_TEST_RUN) is the oracle, and the VM must agree with
it (issue 11, item 4)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernel_common import build_c, needs_clang

import bpfkit
from bpfkit.errors import BpfError
from bpfkit.obj import load_object
from bpfkit.obj.overrides import apply_overrides, prog_type_by_name
from bpfkit.uapi.enums import AttachType, ProgType

pytestmark = needs_clang
PKT = bytes(64)
KW = dict(
    value_size={"stacks": 127 * 8},
    max_entries={"sized": 9},
    constants={"knob": 7, "big_knob": 1 << 40, "flag": True, "word": "xyz"},
    prog_type={"untyped": "xdp"},
    autoload={"optional": True},
)


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    return build_c("parity_overrides", tmp_path_factory.mktemp("ov"))


def observe(o) -> dict:
    """What a loaded object shows of the overrides, the same way on both backends."""
    return {
        "programs": sorted(o.programs),
        "knob": o.programs["knobs"].test_run(PKT).retval,
        "untyped": o.programs["untyped"].test_run(PKT).retval,
        "sized0": o.maps["sized"][0],
        "stacks_value_size": o.maps["stacks"].value_size,
        "sized_max": o.maps["sized"].max_entries,
    }


EXPECTED = {
    "programs": ["knobs", "optional", "untyped", "uses_stacks"],
    "knob": 7,
    "untyped": 2,
    "sized0": (1 << 40) + 1000 + ord("y"),  # big_knob + (flag ? 1000 : 0) + word[1]
    "stacks_value_size": 127 * 8,
    "sized_max": 9,
}


def test_vm_applies_the_overrides(obj):
    with bpfkit.load(obj, **KW) as o:
        assert observe(o) == EXPECTED


@pytest.mark.kernel
def test_kernel_applies_them_alike(obj):
    from bpfkit.kernel import sys as bsys

    with bpfkit.load(obj, backend="kernel", **KW) as o:
        assert observe(o) == EXPECTED
        info = {n: bsys.map_info(m.fd) for n, m in o.maps.items()}
        assert info["stacks"].value_size == 127 * 8 and info["sized"].max_entries == 9
        assert bsys.prog_info(o.programs["untyped"].fd).type == ProgType.XDP


def test_without_overrides_the_defaults_hold(obj):
    spec = load_object(obj)
    with pytest.raises(BpfError, match="stacks"):  # value_size 0, as shipped
        bpfkit.load(spec)
    with bpfkit.load(spec, value_size={"stacks": 8}) as o:
        assert "optional" not in o.programs  # SEC("?xdp"): autoload off
        assert o.programs["knobs"].test_run(PKT).retval == 3
        assert o.maps["sized"].max_entries == 4
    assert spec.maps["stacks"].value_size == 0  # the parsed spec is left alone
    assert spec.programs["untyped"].prog_type == ProgType.UNSPEC


@settings(max_examples=25, deadline=None)
@given(st.integers(-(1 << 31), (1 << 31) - 1))
def test_int_constants_reach_the_program(obj, value):
    spec = load_object(obj)
    with bpfkit.load(spec, value_size={"stacks": 8}, constants={"knob": value}) as o:
        assert o.programs["knobs"].test_run(PKT).retval == value & 0xFFFFFFFF


def test_bad_overrides_name_what_is_wrong(obj):
    spec = load_object(obj)
    cases = [
        (dict(max_entries={"nope": 1}), "no map 'nope'"),
        (dict(value_size={"sized": -1}), "not a 32-bit count"),
        (dict(value_size={".rodata": 8}), "global data"),
        (dict(constants={"nope": 1}), "no global variable 'nope'"),
        (dict(constants={"knob": 1 << 40}), "knob"),
        (dict(prog_type={"nope": "xdp"}), "no program"),
        (dict(prog_type="no_such_type"), "unknown program type"),
        (dict(attach_type={"knobs": "nope"}), "unknown attach type"),
    ]
    for kw, msg in cases:
        with pytest.raises(BpfError, match=msg):
            apply_overrides(spec, **kw)
    with pytest.raises(TypeError, match="frobnicate"):
        bpfkit.load(spec, frobnicate=1)


def test_type_names_follow_libbpf_sections():
    assert prog_type_by_name("xdp")[0] == ProgType.XDP
    assert prog_type_by_name("sched_cls")[0] == ProgType.SCHED_CLS
    assert prog_type_by_name("tc")[0] == ProgType.SCHED_CLS
    t, a, kind, _ = prog_type_by_name("cgroup/skb")
    assert t == ProgType.CGROUP_SKB and kind == "cgroup"
    t, a, kind, _ = prog_type_by_name("cgroup_skb/ingress")
    assert a == AttachType.CGROUP_INET_INGRESS
    assert prog_type_by_name(6)[0] == 6


@pytest.mark.kernel
def test_cli_load_takes_the_same_overrides(obj):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpfkit",
            "load",
            str(obj),
            "--const",
            "knob=7",
            "--const",
            'word="xyz"',
            "--max-entries",
            "sized=9",
            "--value-size",
            f"stacks={127 * 8}",
            "--type",
            "untyped=xdp",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    maps = {m["name"]: m for m in doc["maps"]}
    assert maps["stacks"]["value_size"] == 127 * 8 and maps["sized"]["max_entries"] == 9
    progs = {p["name"]: p for p in doc["programs"]}
    assert progs["untyped"]["type"] == "xdp"
    bad = subprocess.run(
        [sys.executable, "-m", "bpfkit", "load", str(obj), "--max-entries", "sized", "--json"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "MAP=" not in bad.stderr
    assert "NAME=VALUE" in json.loads(bad.stdout)["error"]
