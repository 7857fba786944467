"""USDT: libbpf's usdt.bpf.h handlers load and verify (their ``__hidden`` global functions
are static, as libbpf marks them), the ``.note.stapsdt`` reader agrees with ``readelf -n``
and with the binary's bytes, and attaching fills the spec map so the handler reads the
probe's arguments — checked against what the traced program computed (issue 11, item 3)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernel_common import C_DIR, build_c, needs_clang, require

from bpfkit.errors import ElfError
from bpfkit.obj.usdt import UsdtArg, find_usdt, parse_usdt_args, read_usdt

needs_gcc = pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
SDT = any(
    os.path.exists(p) for p in ("/usr/include/sys/sdt.h", "/usr/include/x86_64-linux-gnu/sys/sdt.h")
)
needs_sdt = pytest.mark.skipif(not SDT, reason="needs sys/sdt.h (systemtap-sdt-dev)")
N = 6  # ticks per run of the target


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """The USDT target built four ways: -O0/-O2, PIE and not."""
    if not (shutil.which("gcc") and SDT):
        pytest.skip("needs gcc and sys/sdt.h (systemtap-sdt-dev)")
    d = tmp_path_factory.mktemp("usdt")
    out = {}
    for name, flags in (("o2", ["-O2"]), ("o0", ["-O0"]), ("nopie", ["-O2", "-no-pie"])):
        path = d / f"parity_usdt_target_{name}"
        subprocess.run(
            ["gcc", *flags, "-o", str(path), str(C_DIR / "parity_usdt_target.c")], check=True
        )
        out[name] = str(path)
    return out


@pytest.fixture(scope="module")
def usdt_obj(tmp_path_factory):
    return build_c("parity_usdt", tmp_path_factory.mktemp("usdtobj"))


def expected_ticks(n: int) -> list[tuple[int, int, int, int]]:
    """(i, i*3, x, y) at every tick, as the target computes them."""
    out, x, y = [], 0, 0
    for i in range(n):
        x += i
        y -= 1
        out.append((i, i * 3, x, y))
    return out


# ---- the reader -------------------------------------------------------------------------
def _readelf_notes(path: str) -> list[dict]:
    """``readelf -n``'s view of the stapsdt notes (the oracle)."""
    text = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    notes = []
    for m in re.finditer(
        r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: (0x[0-9a-f]+), "
        r"Semaphore: (0x[0-9a-f]+)\s+Arguments:([^\n]*)",
        text,
    ):
        notes.append(
            {
                "provider": m.group(1),
                "name": m.group(2),
                "location": int(m.group(3), 16),
                "base": int(m.group(4), 16),
                "semaphore": int(m.group(5), 16),
                "args": m.group(6).split(),
            }
        )
    return notes


def _sections(path: str) -> dict[str, tuple[int, int]]:
    """name -> (address, file offset), from ``readelf -S -W``."""
    text = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True).stdout
    out = {}
    for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]{8,})\s+([0-9a-f]{6,})", text):
        out[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    return out


def _binaries_with_probes(targets) -> list[str]:
    paths = list(targets.values())
    for extra in (
        sys.executable,
        "/usr/bin/python3.11",
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
    ):
        real = os.path.realpath(extra)
        if os.path.exists(real) and real not in paths:
            paths.append(real)
    return paths


@needs_gcc
@needs_sdt
def test_reader_matches_readelf_and_the_bytes(targets):
    if not shutil.which("readelf"):
        pytest.skip("needs readelf")
    checked = 0
    for path in _binaries_with_probes(targets):
        oracle = _readelf_notes(path)
        probes = read_usdt(path)
        assert len(probes) == len(oracle), path
        data = open(path, "rb").read()
        secs = _sections(path)
        for p, o in zip(probes, oracle, strict=True):
            assert (p.provider, p.name, p.base, p.semaphore) == (
                o["provider"],
                o["name"],
                o["base"],
                o["semaphore"],
            )
            assert [a.spec for a in p.args] == o["args"]
            # not prelinked: the site is where the note says, and it is a nop
            assert p.address == o["location"]
            assert data[p.offset] == 0x90, (path, p.name)
            if p.semaphore:
                addr, off = secs[".probes"]
                assert p.semaphore_offset == off + p.semaphore - addr
            checked += 1
    assert checked >= 9


@needs_gcc
@needs_sdt
def test_argument_forms_of_the_target(targets):
    o0 = {p.name: p for p in read_usdt(targets["o0"])}
    deref = o0["tick"].args[0]  # -4@-N(%rbp): i lives on the stack at -O0
    assert deref.kind == "reg_deref" and deref.register == "rbp" and deref.value < 0
    assert deref.size == 4 and deref.signed and deref.reg_off == 32  # pt_regs.rbp
    consts = {p.name: p for p in read_usdt(targets["o2"])}["consts"].args
    assert [(a.kind, a.value, a.size, a.signed) for a in consts] == [
        ("const", -7, 4, True),
        ("const", 123456789012, 8, True),
    ]
    guarded = o0["guarded"].args[0]
    assert (guarded.kind, guarded.size, guarded.signed, guarded.bitshift) == ("reg", 1, False, 56)
    with pytest.raises(ElfError, match="no USDT probe bpfkit:nope.*bpfkit:tick"):
        find_usdt(targets["o2"], "bpfkit", "nope")


_REGS = ["rax", "eax", "ax", "al", "r8", "r8d", "r8w", "r8b", "rbp", "esp", "dil", "rip"]


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from([1, 2, 4, 8]),
    signed=st.booleans(),
    form=st.sampled_from(["const", "reg", "deref", "deref0"]),
    reg=st.sampled_from(_REGS),
    value=st.integers(-(1 << 40), 1 << 40),
)
def test_argument_parser_round_trips(size, signed, form, reg, value):
    sz = -size if signed else size
    loc = {
        "const": f"${value}",
        "reg": f"%{reg}",
        "deref": f"{value}(%{reg})",
        "deref0": f"(%{reg})",
    }[form]
    (a,) = parse_usdt_args(f"{sz}@{loc}")
    assert a.size == size and a.signed == signed and a.supported
    assert a.bitshift == 64 - 8 * size
    if form == "const":
        assert a.kind == "const" and a.value == value
    else:
        assert a.kind == ("reg" if form == "reg" else "reg_deref")
        assert a.value == (value if form == "deref" else 0)
        assert a.reg_off % 8 == 0 and 0 <= a.reg_off < 168


def test_unsupported_arguments_are_reported_not_guessed():
    (a,) = parse_usdt_args("-4@%ah")
    assert not a.supported and "ah" in a.reason
    (b,) = parse_usdt_args("8@foo+8(%rip)")
    assert not b.supported
    for bad in ("4%rax", "3@%rax", "x@%rax"):
        with pytest.raises(ElfError):
            parse_usdt_args(bad)
    assert isinstance(parse_usdt_args("")[0:0], tuple)
    assert UsdtArg("8@%rax", 8, False, "reg", 0, "rax", 80).libbpf_spec()["reg_off"] == 80


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=512))
def test_hostile_binaries_give_elf_errors(blob):
    for data in (blob, b"\x7fELF\x02\x01\x01" + blob):
        try:
            read_usdt(data)
        except ElfError:
            pass


# ---- __hidden functions are static (libbpf's mark_btf_static) -----------------------------
@needs_clang
def test_hidden_global_functions_are_static_and_verify_in_the_vm(usdt_obj):
    import bpfkit
    from bpfkit.btf.types import Func
    from bpfkit.obj import load_object
    from bpfkit.uapi.btf import FuncLinkage

    spec = load_object(usdt_obj)
    funcs = {t.name: t for t in spec.btf.types if isinstance(t, Func)}
    for name in ("bpf_usdt_arg", "bpf_usdt_arg_cnt", "bpf_usdt_cookie"):
        assert funcs[name].linkage == FuncLinkage.STATIC, name
    assert funcs["on_tick"].linkage == FuncLinkage.GLOBAL  # visible: stays global
    with bpfkit.load(usdt_obj) as obj:  # the VM verifies every program on load
        assert set(obj.programs) == {"on_tick", "on_consts", "on_guarded"}
        assert all(p.verification.ok for p in obj.programs.values())


@needs_clang
@pytest.mark.kernel
def test_usdt_handlers_load_in_the_kernel(usdt_obj):
    import bpfkit

    with bpfkit.load(usdt_obj, backend="kernel") as obj:
        assert set(obj.programs) == {"on_tick", "on_consts", "on_guarded"}


# ---- attaching ------------------------------------------------------------------------------
def _run(path: str, n: int = N, wait_ms: int = 0) -> str:
    return subprocess.run(
        [path, str(n), str(wait_ms)], capture_output=True, text=True, check=True
    ).stdout


def _ticks(obj, n: int = N) -> list[tuple[int, ...]]:
    t = obj.maps["ticks"]
    return [tuple(t[4 * i + k] for k in range(4)) for i in range(n)]


@needs_clang
@pytest.mark.kernel
@pytest.mark.parametrize("build", ["o2", "o0", "nopie"])
def test_usdt_arguments_reach_the_handler(usdt_obj, targets, build):
    import bpfkit

    require("uprobe")
    path = targets[build]
    with bpfkit.load(usdt_obj, backend="kernel") as obj:
        with (
            obj.programs["on_tick"].attach_usdt(path, "bpfkit", "tick"),
            obj.programs["on_consts"].attach_usdt(path, "bpfkit", "consts", cookie=0xC0FFEE),
        ):
            out = _run(path)
        assert out.split() == [str(sum(range(N))), str(sum(range(N))), str(-N)]
        assert _ticks(obj) == expected_ticks(N)
        other = obj.maps["other"]
        assert [other[2], other[3], other[4], other[5]] == [-7, 123456789012, 0xC0FFEE, 2]
        # detached: nothing more arrives
        for k in range(4 * N):
            obj.maps["ticks"][k] = 0
        _run(path)
        assert _ticks(obj) == [(0, 0, 0, 0)] * N


@needs_clang
@pytest.mark.kernel
def test_semaphore_is_raised_only_while_attached(usdt_obj, targets, tmp_path):
    import bpfkit

    require("uprobe")
    # the section names the binary relative to the working directory, like libbpf's
    shutil.copy(targets["o2"], tmp_path / "parity_usdt_target")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with bpfkit.load(usdt_obj, backend="kernel") as obj:
            other = obj.maps["other"]
            _run("./parity_usdt_target")
            assert other[0] == 0  # semaphore 0: the probe's branch is not taken
            with obj.programs["on_guarded"].attach():  # SEC("usdt/./parity_usdt_target:...")
                _run("./parity_usdt_target")
            assert other[0] == N and other[1] == 200 + N - 1
            _run("./parity_usdt_target")
            assert other[0] == N
    finally:
        os.chdir(cwd)


@needs_clang
@pytest.mark.kernel
def test_without_cookies_the_ip_map_is_used(usdt_obj, targets):
    """LINUX_HAS_BPF_COOKIE=false: usdt.bpf.h looks the spec up by the probe's address."""
    import bpfkit

    require("uprobe")
    path = targets["o2"]
    with bpfkit.load(usdt_obj, backend="kernel", kconfig={"LINUX_HAS_BPF_COOKIE": False}) as obj:
        with pytest.raises(bpfkit.errors.NotSupported, match="pid"):
            obj.programs["on_tick"].attach_usdt(path, "bpfkit", "tick")
        proc = subprocess.Popen([path, str(N), "400"], stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.1)
            link = obj.programs["on_tick"].attach_usdt(path, "bpfkit", "tick", pid=proc.pid)
            assert len(obj.maps["__bpf_usdt_ip_to_spec_id"]) == 1
            proc.communicate(timeout=10)
        finally:
            proc.kill()
        assert _ticks(obj) == expected_ticks(N)
        link.close()
        assert len(obj.maps["__bpf_usdt_ip_to_spec_id"]) == 0


@needs_clang
@pytest.mark.kernel
def test_cli_lists_and_attaches_usdt(usdt_obj, targets, bpffs):
    require("uprobe")
    path = targets["o2"]
    env = dict(os.environ)
    cli = [sys.executable, "-m", "bpfkit"]
    listed = json.loads(
        subprocess.run(
            [*cli, "usdt", path, "--json"], capture_output=True, text=True, env=env
        ).stdout
    )
    assert [p["name"] for p in listed["probes"]] == [p.name for p in read_usdt(path)]
    r = subprocess.run(
        [
            *cli,
            "attach",
            str(usdt_obj),
            "--program",
            "on_tick",
            "--kind",
            "usdt",
            "--target",
            f"{path}:bpfkit:tick",
            "--pin-link",
            f"{bpffs}/tick",
            "--pin",
            f"{bpffs}/obj",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["kind"] == "usdt"
    _run(path)  # the pinned uprobes outlive the command
    dump = subprocess.run(
        [*cli, "map", "dump", f"{bpffs}/obj/maps/ticks", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    entries = {e["key"]: e["value"] for e in json.loads(dump.stdout)["entries"]}
    got = [tuple(entries[4 * i + k] for k in range(4)) for i in range(N)]
    assert got == expected_ticks(N)
