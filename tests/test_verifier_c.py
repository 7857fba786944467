"""Verifier cases written in C, each rejection with its expected reason, against the kernel.

``tests/c/verifier_accept.c`` holds programs the verifier must accept and
``tests/c/verifier_reject.c`` one deliberately broken program per rule
(``verifier_reject_v4.c``: the same, built with ``-mcpu=v4``). They are compiled with
clang (``-O2 -g -target bpf``); every program is then checked three ways:

* ``test_bpfkit``: bpfkit's ``verify_spec`` against the table below (verdict, a regular
  expression in the kernel's wording matched against ``reason``/``kernel_message``, and
  the C line of the rejection: inside the right function, on the ``// BAD`` line);
* ``test_kernel``: the running kernel's verifier against the same table, each program
  loaded on its own with its maps and BTF (func and line info), so the table itself is
  checked against the ground truth;
* ``test_agrees``: bpfkit's verdict, rejected instruction and line against the kernel's.

A known bpfkit bug is an ``xfail(strict=True)`` that flips when it is fixed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_kernel_common import C_DIR, needs_clang

from bpfkit.errors import VerifierError

pytestmark = needs_clang

ACCEPT, REJECT, REJECT_V4 = "verifier_accept", "verifier_reject", "verifier_reject_v4"
MCPU = {REJECT_V4: "v4"}

# Bugs, referred to by the cases below.


@dataclass(frozen=True)
class Prog:
    """One C program and what both verifiers must say about it."""

    name: str
    expect: str | None = None  # None: accepted; else a regex in the kernel's wording
    func: str | None = None  # the C function the rejection points into (default: name)
    bug: str | None = None  # bpfkit's verdict/reason/line is wrong (xfail test_bpfkit)
    disagree: str | None = None  # bpfkit and the kernel disagree (xfail test_agrees)
    kpos: bool = True  # compare the kernel's reported instruction/line with bpfkit's
    needs_jit: bool = False  # the kernel's verdict holds only with the JIT on

    @property
    def src(self) -> str:
        if self.expect is None:
            return ACCEPT
        return REJECT_V4 if self.name.startswith("rej_v4_") else REJECT

    @property
    def id(self) -> str:
        return self.name


P = Prog
PROGS: list[Prog] = [
    # ---- accepted ------------------------------------------------------------------
    P("acc_xdp_parse"),
    P("acc_xdp_cmp_forms"),
    P("acc_xdp_loop"),
    P("acc_xdp_var_pkt"),
    P("acc_xdp_meta"),
    P("acc_xdp_loop_var"),
    P("acc_xdp_global"),
    P("acc_tc_hash"),
    P("acc_tc_narrow_ctx"),
    P("acc_tc_spin_lock"),
    P("acc_socket_uninit_stack"),
    P("acc_socket_subprog"),
    P("acc_socket_stack_chain", needs_jit=True),
    P("acc_tp_ringbuf"),
    P("acc_kprobe_bpf_loop"),
    P("acc_cgroup_skb"),
    # ---- map values ----------------------------------------------------------------
    P("rej_no_null_check", r"R0 invalid mem access 'map_value_or_null'"),
    P("rej_map_oob_const", r"invalid access to map value, value_size=32 off=32 size=8"),
    P("rej_map_oob_var", r"invalid access to map value, value_size=32 off=56 size=8"),
    P("rej_map_unbounded", r"R0 unbounded memory access, make sure to bounds check"),
    P("rej_map_neg_off", r"invalid access to map value, value_size=32 off=-8 size=8"),
    P(
        "rej_map_signed_idx",
        r"math between map_value pointer and register with unbounded min value",
    ),
    P(
        "rej_map_signed_shift",
        r"math between map_value pointer and register with unbounded min value",
    ),
    P("rej_signed_shift_branch", r"R1 invalid mem access 'scalar'"),
    P("rej_v4_mul_branch", r"R1 invalid mem access 'scalar'"),
    P("rej_rodata_write", r"write into map forbidden"),
    # ---- packet --------------------------------------------------------------------
    P("rej_pkt_no_check", r"invalid access to packet, off=12 size=1"),
    P("rej_pkt_short_check", r"invalid access to packet, off=23 size=1"),
    P("rej_pkt_off_by_one", r"invalid access to packet, off=14 size=1"),
    P("rej_pkt_after_adjust", r"R6 invalid mem access 'scalar'"),
    P("rej_pkt_len_scalar", r"invalid access to packet, off=10 size=1"),
    P("rej_cgroup_pkt_write", r"cannot write into packet"),
    # ---- stack ---------------------------------------------------------------------
    P(
        "rej_stack_oob_var",
        r"invalid variable-offset write to stack R2 var_off=\(0x0; 0x1f\) off=-16",
    ),
    P("rej_stack_oob_const", r"invalid write to stack R1 off=-616 size=1"),
    # ---- context -------------------------------------------------------------------
    P("rej_ctx_write_ro", r"invalid bpf_context access off=0 size=4"),
    P("rej_ctx_socket_data", r"invalid bpf_context access off=76 size=4"),
    P("rej_ctx_bad_off", r"invalid bpf_context access off=64 size=4"),
    P("rej_ctx_write_xdp", r"invalid bpf_context access off=0 size=4"),
    # ---- loops (the kernel's error position is the last instruction it walked) --------
    P("rej_infinite_loop", r"infinite loop detected at insn 1\b", kpos=False),
    # ---- references ----------------------------------------------------------------
    P("rej_ringbuf_leak", r"Unreleased reference id=\d+ alloc_insn=4"),
    P("rej_ringbuf_double_submit", r"R1 type=scalar expected=ringbuf_mem"),
    P("rej_ringbuf_use_after_submit", r"R6 invalid mem access 'scalar'"),
    P("rej_ringbuf_var_size", r"R2 is not a known constant"),
    P("rej_ringbuf_no_null_check", r"R0 invalid mem access 'ringbuf_mem_or_null'"),
    # ---- helpers -------------------------------------------------------------------
    P("rej_helper_size_unbounded", r"R4 unbounded memory access, use 'var &= const'"),
    P("rej_helper_size_zero", r"R4 invalid zero-sized read: u64=\[0,15\]"),
    P("rej_helper_size_too_big", r"invalid write to stack R3 off=-16 size=31"),
    P("rej_helper_wrong_map", r"cannot pass map_type 2 into func bpf_ringbuf_reserve#131"),
    P("rej_helper_wrong_type", r"program of this type cannot use helper bpf_skb_load_bytes#26"),
    # ---- return values -------------------------------------------------------------
    P("rej_cgroup_ret", r"At program exit the register R0 has .*should have been in \[0, 1\]"),
    P(
        "rej_loop_cb_ret",
        r"At callback return the register R0 has .*should have been in \[0, 1\]",
        func="bad_cb",
    ),
    P("rej_loop_cb_null_ctx", r"R2 invalid mem access 'scalar'", func="null_ctx_cb"),
    # ---- spin locks ----------------------------------------------------------------
    P(
        "rej_lock_not_released",
        r"bpf_spin_unlock is missing|cannot be used inside bpf_spin_lock-ed region",
    ),
    P(
        "rej_call_under_lock",
        r"function calls are not allowed while holding a lock",
    ),
    # ---- registers -----------------------------------------------------------------
    P("rej_uninit_reg", r"R7 !read_ok"),
    P(
        "rej_ptr_mul",
        r"R0 pointer arithmetic with \*= operator prohibited",
    ),
    # ---- calls ---------------------------------------------------------------------
    P(
        "rej_stack_depth_calls",
        r"combined stack size of 3 calls is \d+\. Too large",
        func="deep",
        kpos=False,  # the kernel reports no instruction
    ),
    P(
        "rej_global_no_null_check",
        r"R1 invalid mem access 'mem_or_null'",
        func="deref_arg",
    ),
    P(
        "rej_global_ret_unknown",
        r"R6 unbounded memory access, make sure to bounds check",
    ),
    P(
        "rej_global_scalar_arg",
        r"math between map_value pointer and register with unbounded min value",
        func="read_field",
    ),
]


def _params(attr: str) -> list:
    out = []
    for p in PROGS:
        reason = getattr(p, attr)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(p, id=p.name, marks=marks))
    return out


# ---- building and reading the C sources ---------------------------------------------
@functools.cache
def _spec(src: str):
    import tempfile

    from bpfkit.obj import load_object
    from bpfkit.obj.build import compile_c

    out = Path(tempfile.mkdtemp(prefix="bpfkit-verifier-c-")) / f"{src}.o"
    compile_c(C_DIR / f"{src}.c", out, mcpu=MCPU.get(src))
    return load_object(out)


_FUNC_DEF = re.compile(r"^[A-Za-z_][\w\s\*]*?\b(\w+)\(([^;]*)\)\s*$")


@functools.cache
def _functions(src: str) -> dict[str, tuple[int, int]]:
    """C function name -> (first, last) line of its definition (1-based)."""
    lines = (C_DIR / f"{src}.c").read_text().splitlines()
    out: dict[str, tuple[int, int]] = {}
    for i, text in enumerate(lines):
        m = _FUNC_DEF.match(text)
        if m and i + 1 < len(lines) and lines[i + 1] == "{":
            end = next(j for j in range(i + 1, len(lines)) if lines[j] == "}")
            out[m.group(1)] = (i + 1, end + 1)
    return out


def _source_line(src: str, n: int) -> str:
    return (C_DIR / f"{src}.c").read_text().splitlines()[n - 1]


def _has_bad_marker(p: Prog) -> bool:
    first, last = _functions(p.src)[p.func or p.name]
    return any("// BAD" in _source_line(p.src, n) for n in range(first, last + 1))


# ---- the two verifiers --------------------------------------------------------------
@dataclass
class Verdict:
    ok: bool
    message: str = ""  # what the expected regex is matched against
    insn: int | None = None
    line: int | None = None


@functools.cache
def bpfkit_verdict(src: str, name: str) -> Verdict:
    from bpfkit.verifier import verify_spec

    try:
        verify_spec(_spec(src), name)
    except VerifierError as e:
        line = e.line["line"] if e.line else None
        return Verdict(False, f"{e.reason}\n{e.kernel_message}", e.insn, line)
    return Verdict(True)


@functools.cache
def kernel_verdict(src: str, name: str) -> Verdict:
    """Load ``name`` alone (its maps, BTF, func and line info) into the running kernel."""
    from bpfkit.kernel.loader import load_spec

    try:
        loaded = load_spec(_spec(src), programs=[name], log_level=1)
    except VerifierError as e:
        line = e.line["line"] if e.line else None
        return Verdict(False, e.log or e.reason, e.insn, line)
    loaded.close()
    return Verdict(True)


def _check(p: Prog, v: Verdict, who: str) -> None:
    if p.expect is None:
        assert v.ok, f"{who} rejects {p.name}:\n{v.message[-1500:]}"
        return
    assert not v.ok, f"{who} accepts {p.name}, expected /{p.expect}/"
    assert re.search(p.expect, v.message), f"{who}: /{p.expect}/ not in\n{v.message[-1500:]}"


def _jit_off() -> bool:
    try:
        return Path("/proc/sys/net/core/bpf_jit_enable").read_text().strip() == "0"
    except OSError:
        return False


def _skip_without_jit(p: Prog) -> None:
    if p.needs_jit and _jit_off():
        pytest.skip("the kernel rounds frames to 32 bytes without the JIT, as bpfkit does")


# ---- tests --------------------------------------------------------------------------
@pytest.mark.parametrize("p", _params("bug"))
def test_bpfkit(p: Prog) -> None:
    v = bpfkit_verdict(p.src, p.name)
    _check(p, v, "bpfkit")
    if p.expect is None:
        return
    # Every program has line info: the rejection must point into the right function,
    # on the line marked "// BAD" when the function has one.
    assert v.line is not None, f"no C line for insn {v.insn}"
    first, last = _functions(p.src)[p.func or p.name]
    assert first <= v.line <= last, f"line {v.line} is outside {p.func or p.name}()"
    if _has_bad_marker(p):
        assert "// BAD" in _source_line(p.src, v.line), _source_line(p.src, v.line)


@pytest.mark.kernel
@pytest.mark.parametrize("p", PROGS, ids=lambda p: p.name)
def test_kernel(p: Prog) -> None:
    _skip_without_jit(p)
    v = kernel_verdict(p.src, p.name)
    _check(p, v, "the kernel")
    if p.expect is not None and p.kpos and v.line is not None and _has_bad_marker(p):
        assert "// BAD" in _source_line(p.src, v.line), _source_line(p.src, v.line)


@pytest.mark.kernel
@pytest.mark.parametrize("p", _params("disagree"))
def test_agrees(p: Prog) -> None:
    _skip_without_jit(p)
    k = kernel_verdict(p.src, p.name)
    ours = bpfkit_verdict(p.src, p.name)
    assert ours.ok == k.ok, (
        f"kernel {'accepts' if k.ok else 'rejects'}, bpfkit "
        f"{'accepts' if ours.ok else 'rejects: ' + ours.message}\n{k.message[-1000:]}"
    )
    if not k.ok and p.kpos:
        if k.insn is not None:
            assert ours.insn == k.insn, f"bpfkit blames insn {ours.insn}, the kernel {k.insn}"
        if k.line is not None:
            assert ours.line == k.line, f"bpfkit blames line {ours.line}, the kernel {k.line}"


def test_table_covers_every_program() -> None:
    """Every SEC() program of both files is in the table, and nothing else."""
    names = {n for src in (ACCEPT, REJECT, REJECT_V4) for n in _spec(src).programs}
    assert names == {p.name for p in PROGS}
    for p in PROGS:
        assert p.name.startswith("acc_" if p.expect is None else "rej_")
        assert (p.func or p.name) in _functions(p.src)
