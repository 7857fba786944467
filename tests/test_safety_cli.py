"""``bpfkit run`` on malformed input: one line (one JSON object with ``--json``), exit
0, 1 or 2 — never a Python traceback.

Hypothesis feeds it random bytecode, mutated assembler text, mutated ELF objects (bit
flips, truncations, spliced bytes: through the ELF/BTF reader, the VM's loader, the
verifier and a run), hostile input memory and context files. The interpreter runs
in-process (pure Python); the JIT's safety on hostile code is the child-process
suite's (``test_safety_fuzz``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.cli.main import cli

EXAMPLES = int(os.environ.get("BPFKIT_SAFETY_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=os.environ.get("BPFKIT_SAFETY_RANDOM") != "1",
)

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
const volatile __u32 limit = 3;

static long cb(__u32 i, void *ctx) { (*(__u64 *)ctx) += i; return 0; }

SEC("xdp")
int prog(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    unsigned char *p = data;
    __u64 n = 0;
    if (p + 4 > (unsigned char *)end)
        return XDP_PASS;
    __u32 key = p[0] & 7;
    __u64 *v = bpf_map_lookup_elem(&counts, &key);
    if (v)
        *v += p[1];
    bpf_loop(limit, cb, &n, 0);
    __u64 *r = bpf_ringbuf_reserve(&rb, 8, 0);
    if (r) { *r = n; bpf_ringbuf_submit(r, 0); }
    return XDP_PASS;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tp(void *ctx) { return *(__u32 *)(ctx + 16) & 1; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> bytes:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("safetycli")
    (d / "p.c").write_text(SRC)
    return Path(compile_c(d / "p.c", d / "p.o").object).read_bytes()


def _invoke(args: list[str]) -> None:
    res = CliRunner().invoke(cli, [*args, "--json"])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"bpfkit {' '.join(args)}: {res.exception!r}") from res.exception
    assert res.exit_code in (0, 1, 2), (res.exit_code, res.output)
    out = json.loads(res.output)  # exactly one JSON object
    assert isinstance(out, dict)
    if res.exit_code:
        assert out.get("error"), out
        assert "Traceback" not in out["error"]


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@SETTINGS
@given(data=st.binary(min_size=0, max_size=200), mem=st.binary(max_size=64))
def test_random_bytecode(tmp_path_factory, data, mem):
    d = tmp_path_factory.mktemp("raw")
    prog = _write(d, "p.bin", data)
    _invoke(["run", prog, "--format", "raw", "--mem-hex", mem.hex(), "--budget", "5000"])


_ASM = "mov %r0, 1\nldxw %r1, [%r1+0]\nadd %r0, %r1\njeq %r0, 2, +1\ncall 5\nexit\n"


@SETTINGS
@given(
    cuts=st.lists(st.tuples(st.integers(0, len(_ASM)), st.text(max_size=6)), max_size=4),
    mem=st.text(max_size=20),
)
def test_mutated_assembler(tmp_path_factory, cuts, mem):
    text = _ASM
    for pos, ins in cuts:
        text = text[:pos] + ins + text[pos + 1 :]
    d = tmp_path_factory.mktemp("asm")
    prog = _write(d, "p.s", text.encode("utf-8", "surrogatepass"))
    _invoke(["run", prog, "--format", "asm", "--mem-hex", mem or "00", "--budget", "5000"])


@st.composite
def _mutations(draw, size: int) -> list[tuple[str, int, int]]:
    kinds = st.sampled_from(["flip", "byte", "truncate", "zero", "dup"])
    return [
        (draw(kinds), draw(st.integers(0, size - 1)), draw(st.integers(0, 255)))
        for _ in range(draw(st.integers(1, 6)))
    ]


def _mutate(data: bytes, muts) -> bytes:
    b = bytearray(data)
    for kind, pos, val in muts:
        pos %= max(len(b), 1)
        if not b:
            break
        if kind == "flip":
            b[pos] ^= 1 << (val & 7)
        elif kind == "byte":
            b[pos] = val
        elif kind == "truncate":
            del b[pos:]
        elif kind == "zero":
            b[pos : pos + val] = bytes(len(b[pos : pos + val]))
        else:
            b[pos:pos] = b[pos : pos + val]
    return bytes(b)


@SETTINGS
@given(muts=_mutations(4096), program=st.sampled_from(["prog", "tp", None]))
def test_mutated_objects(tmp_path_factory, elf, muts, program):
    """The object, its sections, BTF, relocations and code damaged; loaded, verified
    and (if all that passes) run."""
    d = tmp_path_factory.mktemp("elf")
    obj = _write(d, "p.o", _mutate(elf, muts))
    args = ["run", obj, "--data-hex", "01020304" * 4]
    if program:
        args += ["--program", program]
    _invoke(args)


@SETTINGS
@given(ctx=st.binary(max_size=3000), data=st.binary(max_size=128), no_verify=st.booleans())
def test_hostile_contexts_and_data(tmp_path_factory, elf, ctx, data, no_verify):
    d = tmp_path_factory.mktemp("ctx")
    obj = _write(d, "p.o", elf)
    ctxf = _write(d, "ctx", ctx)
    for program in ("prog", "tp"):
        args = ["run", obj, "--program", program, "--ctx-file", ctxf, "--data-hex", data.hex()]
        _invoke(args + (["--no-verify"] if no_verify else []))
