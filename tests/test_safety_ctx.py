"""Verified programs and short contexts: every context region is as large as what the
verifier lets a program read.

The verifier allows a tracepoint program to read up to 2 KB of its record, a raw
tracepoint program 12 arguments, a kprobe the whole ``pt_regs`` — whatever the caller
supplied — and the JIT drops the checks of the accesses it proved. So the VM's context
region is the whole context, zeros past the supplied bytes, on ``run`` (fire),
``test_run`` and the CLI, on both engines; syscall programs, whose context is the
caller's memory of any size below 64 KB, keep every context check instead (and a test
run refuses a context shorter than the program reads, as the kernel does). The
attacks run in a child process next to canaries (a JIT reading past the region read
heap memory before: a segfault or a leak fails the test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from safety_child import run_in_child

SRC = r"""
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64[256]);
} out SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_mid(void *ctx) { return *(__u64 *)(ctx + 64) != 0; }

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_far(void *ctx) { return *(__u64 *)(ctx + 2040) != 0; }

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_copy(void *ctx)
{
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&out, &k);
    if (!v)
        return 0;
#pragma unroll
    for (int i = 1; i < 256; i++)
        v[i] = *(__u64 *)(ctx + 8 * i);
    return 0;
}

SEC("raw_tp/x")
int rawtp_last(__u64 *ctx) { return ctx[11] != 0; }

SEC("perf_event")
int perf_addr(struct bpf_perf_event_data *ctx) { return ctx->addr != 0; }

SEC("kprobe/x")
int kp_last(void *ctx) { return *(__u64 *)(ctx + 160) != 0; }

SEC("syscall")
int sys_far(void *ctx) { return *(__u64 *)(ctx + 4000) != 0; }

char LICENSE[] SEC("license") = "GPL";
"""

ENGINES = ["interp", "jit"]
CTX8 = bytes(range(1, 9))


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("safetyctx")
    (d / "ctx.c").write_text(SRC)
    return compile_c(d / "ctx.c", d / "ctx.o").object


def _attack(path: Path, program: str, how: str, ctx: bytes) -> str:
    return f"""
import bpfkit
def attack(engine, C):
    with bpfkit.load({str(path)!r}, programs=[{program!r}]) as obj:
        p = obj.programs[{program!r}]
        res = p.{how}({ctx!r}, engine=engine) if {how!r} == "run" else p.test_run(
            b"", {ctx!r}, engine=engine)
        if {program!r} == "tp_copy":
            vals = obj.maps["out"][0]
            assert vals[0] == 0 and vals[1:] == [0] * 255, vals
        assert res.ctx_out is None or res.ctx_out.startswith({ctx!r}), res.ctx_out
        return res.retval
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_short_contexts_read_zeros(obj_path, engine):
    """tp_mid (``*(u64 *)(ctx + 64)`` with an 8-byte record, the issue's example),
    tp_far (offset 2040), a loop copying the whole record into a map, a raw tracepoint's
    12th argument, perf_event's ``addr``, the end of ``pt_regs``: all read zeros past
    the supplied bytes, on a run fired with a short context."""
    progs = ["tp_mid", "tp_far", "tp_copy", "rawtp_last", "perf_addr", "kp_last"]
    cases = [
        {"kind": "python", "engine": engine, "src": _attack(obj_path, p, "run", CTX8)}
        for p in progs
    ]
    for p, res in zip(progs, run_in_child(cases), strict=True):
        assert res["status"] == "ok", (p, res)
        assert res["r0"] == 0, (p, res)
        assert not res["canaries"] and not res["leak"], (p, res)


@pytest.mark.parametrize("engine", ENGINES)
def test_short_contexts_on_test_run(obj_path, engine):
    """``test_run`` of a raw tracepoint or syscall program reading past a short context
    is refused (EINVAL), as the kernel's ``ctx_size_in < max_ctx_offset`` check does."""
    cases = [
        {"kind": "python", "engine": engine, "src": _attack(obj_path, p, "test_run", CTX8)}
        for p in ("rawtp_last", "sys_far")
    ]
    for res in run_in_child(cases):
        assert res["status"] == "contained", res
        assert res["error"] == "TestRunError" and "Invalid argument" in res["message"], res
        assert not res["canaries"] and not res["leak"], res


@pytest.mark.parametrize("engine", ENGINES)
def test_cli_run_with_a_short_context(obj_path, tmp_path, engine):
    """``bpfkit run ctx.o --program tp_mid --ctx-file <8 bytes>`` (the issue's report)."""
    from bpfkit.cli.main import cli

    f = tmp_path / "ctx8"
    f.write_bytes(b"\xff" * 8)
    for prog in ("tp_mid", "tp_far", "kp_last"):
        res = CliRunner().invoke(
            cli,
            ["run", str(obj_path), "--program", prog, "--ctx-file", str(f)]
            + ["--engine", engine, "--json"],
        )
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["retval"] == 0 and out["ctx_out"].startswith("ff" * 8), out


def test_every_context_region_covers_the_verifiers_limit():
    """For every program type the VM runs: the context region of an empty context is at
    least as large as the furthest access the verifier's context rules allow (the two
    tables are independent: ``verifier/ctxinfo.py`` and ``uapi/ctx.py``); a type whose
    region can be shorter does not trust the verifier's context proofs."""
    from bpfkit.verifier import ctxinfo
    from bpfkit.vm.progtypes import PROG_TYPE_CLASSES, prog_type_vm

    checked = 0
    for ptype in PROG_TYPE_CLASSES:
        handler = prog_type_vm(ptype)
        if not handler.ctx_proven:
            assert handler.ctx_region_size(8) == 8
            continue
        limit = 0
        for off in range(0, 4096):
            for size in (1, 2, 4, 8):
                for write in (False, True):
                    if ctxinfo.check(int(ptype), off, size, write).ok:
                        limit = max(limit, off + size)
        assert limit > 0, ptype
        assert handler.ctx_region_size(0) >= limit, (ptype, handler.ctx_region_size(0), limit)
        checked += 1
    assert checked >= 9


def test_syscall_context_accesses_keep_their_checks(obj_path):
    """The JIT drops no context check of a syscall program (its context can be shorter
    than the verifier's 64 KB limit)."""
    import bpfkit

    with bpfkit.load(obj_path, programs=["sys_far", "tp_mid"]) as obj:
        sys_far, tp_mid = obj.programs["sys_far"].vm, obj.programs["tp_mid"].vm
        ctx_loads = [i for i, insn in enumerate(sys_far.insns) if insn.cls == 1]  # LDX
        assert ctx_loads and not set(ctx_loads) & sys_far.safe
        assert tp_mid.safe  # the tracepoint's context load is proven (and covered)
