"""Differential tests in unprivileged mode: bpfkit's ``verify(..., unpriv=True)`` and the
running kernel's verifier as seen by a loader without capabilities agree on accept/reject.

The kernel side needs ``kernel.unprivileged_bpf_disabled=0``: the module fixture (as
root) sets it for the module's duration and restores the old value afterwards. Programs
are loaded by a forked worker that dropped every capability (``setgroups([])``,
``setgid``/``setuid`` to nobody, checked in ``CapEff``); it creates the maps itself,
unprivileged, points the program's map loads at them, and reports ``(accepted, log)``
back through a pipe. Without a writable sysctl the tests skip (fail under
``BPFKIT_REQUIRE_KERNEL=1``).
"""

from __future__ import annotations

import atexit
import os
import pickle
import random
import struct
import sys
from dataclasses import dataclass, field

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from conftest import kernel_required, require_kernel  # noqa: E402
from progen import generate  # noqa: E402

from bpfkit.errors import KernelError, VerifierError  # noqa: E402
from bpfkit.isa.asm import assemble_text  # noqa: E402
from bpfkit.uapi.enums import MapType  # noqa: E402
from bpfkit.verifier import MapDesc, prog_type_of, verify  # noqa: E402

SYSCTL = "/proc/sys/kernel/unprivileged_bpf_disabled"
NOBODY = 65534
#: capabilities that would make the kernel treat the loader as privileged
CAPS = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}
#: the only program types an unprivileged loader may load
UNPRIV_TYPES = ("socket_filter", "cgroup_skb")

# ---------------------------------------------------------------------------
# The unprivileged loader
# ---------------------------------------------------------------------------


def _send(fd: int, obj) -> None:
    data = pickle.dumps(obj)
    os.write(fd, struct.pack("<I", len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _recv(fd: int):
    def read(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError("unprivileged loader exited")
            buf += chunk
        return buf

    (n,) = struct.unpack("<I", read(4))
    return pickle.loads(read(n))


def cap_eff() -> int:
    """This process's effective capability set (from /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise RuntimeError("no CapEff in /proc/self/status")


def _load(insns: bytes, prog_type: int, maps: list, log_level: int) -> tuple:
    """In the worker: (accepted or None if a map cannot be created, log)."""
    from bpfkit.isa.instruction import decode
    from bpfkit.kernel import sys as ks

    fds: dict[int, int] = {}
    try:
        for k, mtype, ksz, vsz, entries, flags in maps:
            try:
                fds[k] = ks.map_create(mtype, ksz, vsz, entries, flags=flags)
            except (KernelError, OSError) as e:
                return None, f"map {k} (type {mtype}) not creatable unprivileged: {e}"
        from test_verifier_kernel import load_verdict, patch_map_fds

        out = patch_map_fds(decode(insns, strict=False), fds)
        return load_verdict(prog_type, out, log_level)
    finally:
        for fd in fds.values():
            os.close(fd)


def _worker(req: int, rep: int) -> None:
    """The forked child: drop privileges, then serve load requests until EOF."""
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        eff = cap_eff()
        left = [name for name, bit in CAPS.items() if eff >> bit & 1]
        if eff or os.geteuid() == 0:
            _send(rep, ("error", f"capabilities left after setuid: {left} (CapEff {eff:#x})"))
            return
        _send(rep, ("ready", eff))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        _send(rep, ("error", f"cannot drop privileges: {e!r}"))
        return
    while True:
        try:
            args = _recv(req)
        except EOFError:
            return
        try:
            _send(rep, ("ok", _load(*args)))
        except Exception as e:  # noqa: BLE001 - reported to the parent
            _send(rep, ("error", repr(e)))


class UnprivLoader:
    """A forked worker without capabilities that loads programs into the kernel."""

    def __init__(self) -> None:
        self.pid = 0
        self._start()

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                os.close(req_w)
                os.close(rep_r)
                _worker(req_r, rep_w)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(rep_w)
        self.pid, self.req, self.rep = pid, req_w, rep_r
        kind, info = _recv(self.rep)
        if kind != "ready":
            self.close()
            raise RuntimeError(info)

    def verdict(self, insns, prog_type, maps=None, log_level: int = 1) -> tuple[bool | None, str]:
        """(accepted, log) from the kernel for an unprivileged loader; ``accepted`` is
        None when a map cannot be created without privileges."""
        from bpfkit.isa.instruction import encode

        mlist = []
        for k, m in (maps or {}).items():
            d = MapDesc.of(m)
            mlist.append((k, d.type, d.key_size, d.value_size, d.max_entries, d.flags))
        args = (encode(insns), prog_type_of(prog_type), mlist, log_level)
        try:
            _send(self.req, args)
            kind, info = _recv(self.rep)
        except (EOFError, BrokenPipeError):
            self.close()
            self._start()
            raise
        if kind != "ok":
            raise RuntimeError(f"unprivileged loader: {info}")
        return info

    def close(self) -> None:
        if not self.pid:
            return
        for fd in (self.req, self.rep):
            try:
                os.close(fd)
            except OSError:
                pass
        os.waitpid(self.pid, 0)
        self.pid = 0


def _unavailable(reason: str) -> None:
    if kernel_required():
        pytest.fail(f"BPFKIT_REQUIRE_KERNEL=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def unpriv_kernel():
    """An :class:`UnprivLoader` with ``kernel.unprivileged_bpf_disabled=0`` meanwhile."""
    require_kernel()
    try:
        with open(SYSCTL) as f:
            old = f.read().strip()
    except OSError as e:
        _unavailable(f"cannot read {SYSCTL}: {e}")
    changed = False
    loader = None

    def restore() -> None:
        with open(SYSCTL, "w") as f:
            f.write(old)

    try:
        if old != "0":
            try:
                with open(SYSCTL, "w") as f:
                    f.write("0")
                changed = True
                atexit.register(restore)  # also if the session dies before teardown
            except OSError as e:
                _unavailable(
                    f"kernel.unprivileged_bpf_disabled={old} cannot be set to 0 "
                    f"({e.strerror}; 1 is permanent until reboot, 2 needs root)"
                )
        try:
            loader = UnprivLoader()
        except (OSError, RuntimeError) as e:
            _unavailable(f"no unprivileged loader: {e}")
        ok, log = loader.verdict(assemble_text("r0 = 0\nexit"), "socket_filter")
        if not ok:
            _unavailable(f"an unprivileged loader cannot load a trivial program: {log}")
        yield loader
    finally:
        if loader is not None:
            loader.close()
        if changed:
            restore()
            atexit.unregister(restore)


# ---------------------------------------------------------------------------
# Our verdict
# ---------------------------------------------------------------------------

BUDGET = 50_000


def ours(insns, prog_type, maps=None, budget: int = BUDGET) -> tuple[bool, str]:
    """(accepted, message) from bpfkit's verifier in unprivileged mode."""
    try:
        verify(insns, prog_type=prog_type, maps=maps, unpriv=True, budget=budget)
        return True, ""
    except VerifierError as e:
        return False, f"insn {e.insn}: {e.kernel_message}"


def _tail(log: str, n: int = 4) -> str:
    return "\n".join(log.strip().splitlines()[-n:])


def check_agree(loader, insns, prog_type, maps=None, expect: bool | None = None) -> bool | None:
    """Assert that the kernel (unprivileged) and bpfkit agree; return the verdict."""
    kok, klog = loader.verdict(insns, prog_type, maps)
    if kok is None:
        pytest.skip(klog)
    ook, msg = ours(insns, prog_type, maps)
    assert kok == ook, (
        f"kernel {'accepts' if kok else 'rejects'}, bpfkit "
        f"{'accepts' if ook else 'rejects: ' + msg}\nkernel: {_tail(klog)}"
    )
    if expect is not None:
        assert kok == expect, f"kernel {'accepts' if kok else 'rejects'}: {_tail(klog)}"
    return kok


# ---------------------------------------------------------------------------
# (a) the rule cases of test_verifier_cases.py for the unprivileged program types
# ---------------------------------------------------------------------------


def _rule_cases():
    from test_verifier_cases import CASES

    # spin-lock maps need BTF in the kernel (without it the value has no lock field)
    return [
        c
        for c in CASES
        if c.prog_type in UNPRIV_TYPES
        and all(MapDesc.of(m).spin_lock_off < 0 for m in c.maps.values())
    ]


@pytest.mark.parametrize("case", _rule_cases(), ids=lambda c: c.name)
def test_rule_case_unpriv(unpriv_kernel, case) -> None:
    check_agree(unpriv_kernel, case.insns(), case.prog_type, case.maps)


# ---------------------------------------------------------------------------
# (b) targeted unprivileged programs
# ---------------------------------------------------------------------------

HASH = {5: {"type": MapType.HASH, "key_size": 8, "value_size": 16, "max_entries": 8}}
ARRAY = {5: {"type": MapType.ARRAY, "key_size": 4, "value_size": 24, "max_entries": 4}}
PROGS = {5: {"type": MapType.PROG_ARRAY, "key_size": 4, "value_size": 4, "max_entries": 4}}
RINGBUF = {6: {"type": MapType.RINGBUF, "key_size": 0, "value_size": 0, "max_entries": 4096}}
LOOKUP = "r1 = map_fd(5) ll\nr2 = 0\n*(u64 *)(r10 - 8) = r2\nr2 = r10\nr2 += -8\ncall 1\n"
RESERVE = "r1 = map_fd(6) ll\nr2 = 16\nr3 = 0\ncall 131\n"
SUBMIT = "r1 = r0\nr2 = 0\ncall 132\n"
#: a non-null map value in r6 (its first byte in r7), a random number in r8
VALUE = LOOKUP + "if r0 == 0 goto Lout\nr6 = r0\nr7 = *(u8 *)(r0 + 0)\ncall 7\nr8 = r0\n"
LOUT = "Lout:\nr0 = 0\nexit\n"
OUT = "r0 = 0\nexit\n" + LOUT
#: filler that lets the first path save pruning checkpoints after a join
FILL = "goto +0\nr1 = 0\nr1 = 0\nr1 = 0\nr1 = 0\ngoto +0\nr1 = 0\nr1 = 0\nr1 = 0\nr1 = 0\n"


def _paths(first: str, second: str, use: str) -> str:
    """Two paths (on a random number) into one ``use`` of the map value in r6."""
    return VALUE + f"if r8 > 5 goto Lb\n{first}goto Lj\nLb:\n{second}Lj:\n{use}" + OUT


@dataclass
class U:
    """A targeted program: the kernel's verdict for an unprivileged loader (``"accept"``
    or a substring of its message), which bpfkit must give too."""

    name: str
    text: str
    expect: str = "accept"
    prog_type: str = "socket_filter"
    maps: dict = field(default_factory=dict)

    def insns(self):
        return assemble_text(self.text.strip(), dialect="llvm")


LEAK = "leaks addr"
CMP = "pointer comparison prohibited"
ROOT = "prohibited for !root"
TARGETED: list[U] = [
    # ---- pointer leaks ----------------------------------------------------------
    U("leak_map_value_into_map", VALUE + "*(u64 *)(r6 + 0) = r6\n" + OUT, LEAK, maps=HASH),
    U("leak_ctx_into_map", "r9 = r1\n" + VALUE + "*(u64 *)(r6 + 8) = r9\n" + OUT, LEAK, maps=HASH),
    U("leak_fp_into_map", VALUE + "*(u64 *)(r6 + 0) = r10\n" + OUT, LEAK, maps=HASH),
    U("leak_scalar_into_map", VALUE + "*(u64 *)(r6 + 0) = r8\n" + OUT, maps=HASH),
    U("leak_into_ctx_cb", "*(u32 *)(r1 + 48) = r1\nr0 = 0\nexit", LEAK),
    U("leak_fp_into_ctx_cb64", "r2 = r10\n*(u64 *)(r1 + 48) = r2\nr0 = 0\nexit", LEAK),
    U(
        "leak_into_ringbuf",
        RESERVE + "if r0 == 0 goto +4\n*(u64 *)(r0 + 0) = r10\n" + SUBMIT + "r0 = 0\nexit",
        LEAK,
        maps=RINGBUF,
    ),
    U("leak_return_fp", "r0 = r10\nexit", LEAK),
    U("leak_return_ctx", "r0 = r1\nexit", LEAK),
    U("leak_return_map_value", LOOKUP + "if r0 == 0 goto +1\nexit\nr0 = 0\nexit", LEAK, maps=HASH),
    U("leak_return_map_ptr", "r0 = map_fd(5) ll\nexit", LEAK, maps=HASH),
    U("leak_return_cgroup_skb", "r0 = r1\nexit", LEAK, prog_type="cgroup_skb"),
    U(
        "leak_ptr_as_helper_scalar",
        "r2 = map_fd(5) ll\nr3 = r10\ncall 12\nr0 = 0\nexit",
        LEAK,
        maps=PROGS,
    ),
    U(
        "leak_ptr_as_update_flags",
        LOOKUP + "r1 = map_fd(5) ll\nr2 = r10\nr2 += -8\n"
        "*(u64 *)(r10 - 24) = 0\n*(u64 *)(r10 - 16) = 0\nr3 = r10\nr3 += -24\nr4 = r10\n"
        "call 2\nr0 = 0\nexit",
        LEAK,
        maps=HASH,
    ),
    U("ptr_into_no_arg_helper", "r1 = r10\ncall 7\nr0 = 0\nexit"),
    U("leak_mov32_ptr", "w0 = w1\nr0 = 0\nexit", "partial copy of pointer"),
    U("leak_neg_ptr", "r1 = -r1\nr0 = 0\nexit", "pointer arithmetic prohibited"),
    U("leak_bswap_ptr", "r1 = be64 r1\nr0 = 0\nexit", "pointer arithmetic prohibited"),
    U("leak_ptr_sub_ptr", "r2 = r10\nr2 -= r10\nr0 = 0\nexit", "pointer prohibited"),
    U(
        "leak_atomic_add_ptr",
        "*(u64 *)(r10 - 8) = r1\nr2 = 1\nlock *(u64 *)(r10 - 8) += r2\nr0 = 0\nexit",
        "leak",
    ),
    U(
        "leak_xchg_ptr_into_stack",
        "*(u64 *)(r10 - 8) = 0\nr2 = r10\nr2 = atomic_xchg((u64 *)(r10 - 8), r2)\nr0 = 0\nexit",
        LEAK,
    ),
    # ---- pointer comparisons ----------------------------------------------------
    U("cmp_ctx_imm", "r0 = 0\nif r1 > 5 goto +0\nexit", CMP),
    U("cmp_ctx_zero", "r0 = 0\nif r1 != 0 goto +1\nr0 = 1\nexit", CMP),
    U("cmp_fp_zero", "r0 = 0\nif r10 == 0 goto +1\nr0 = 1\nexit", CMP),
    U("cmp_ctx32_zero", "r0 = 0\nif w1 != 0 goto +1\nr0 = 1\nexit", CMP),
    U("cmp_scalar_ptr", "r0 = 0\nr2 = 5\nif r2 > r1 goto +0\nexit", CMP),
    U("cmp_ptr_ptr", "r0 = 0\nif r1 == r10 goto +0\nexit", CMP),
    U("cmp_ctx_reg_zero", "r2 = 0\nr0 = 0\nif r1 != r2 goto +1\nr0 = 1\nexit", CMP),
    U("cmp_map_value_null_check", LOOKUP + "if r0 != 0 goto +1\nexit\nr0 = 0\nexit", maps=HASH),
    # a second null check of a known non-null map value is decided, hence allowed
    U("cmp_map_value_again", VALUE + "if r6 == 0 goto +1\nr0 = 0\n" + OUT, maps=HASH),
    U("cmp_map_value_again_ne", VALUE + "if r6 != 0 goto +1\nr0 = 0\n" + OUT, maps=HASH),
    # ... but not a 32-bit one: the low half of a valid pointer may be zero (issue 11)
    U("cmp_map_value_again_32", VALUE + "if w6 == 0 goto +1\nr0 = 0\n" + OUT, CMP, maps=HASH),
    U("cmp_map_value_vs_5", VALUE + "if r6 == 5 goto +1\nr0 = 0\n" + OUT, CMP, maps=HASH),
    U("cmp_maybe_null_vs_5", LOOKUP + "if r0 == 5 goto +0\nr0 = 0\nexit", CMP, maps=HASH),
    U("cmp_maybe_null_32", LOOKUP + "if w0 == 0 goto +0\nr0 = 0\nexit", CMP, maps=HASH),
    U(
        "cmp_maybe_null_reg_zero",
        LOOKUP + "r2 = 0\nif r0 == r2 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
        CMP,
        maps=HASH,
    ),
    # ---- pointer arithmetic (the kernel's Spectre v1 sanitation) ----------------
    U(
        "arith_map_value_unbounded",
        VALUE + "r1 = *(u64 *)(r6 + 0)\nr6 += r1\n" + OUT,
        "unbounded min value",
        maps=HASH,
    ),
    U(
        "arith_map_value_masked",
        VALUE + "r7 &= 15\nr6 += r7\nr0 = *(u8 *)(r6 + 0)\n" + OUT,
        maps=HASH,
    ),
    U(
        "arith_map_value_masked_too_far",
        VALUE + "r7 &= 31\nr6 += r7\n" + OUT,
        "map value goes out of range",
        maps=HASH,
    ),
    U(
        "arith_map_value_mixed_signs",
        VALUE + "r7 &= 7\nr7 -= 4\nr6 += 8\nr6 += r7\nr0 = *(u8 *)(r6 + 0)\n" + OUT,
        "mixed signed bounds",
        maps=HASH,
    ),
    U(
        "arith_map_value_negative_reg",
        VALUE + "r7 &= 7\nr7 = -r7\nr6 += 8\nr6 += r7\nr0 = *(u8 *)(r6 + 0)\n" + OUT,
        "mixed signed bounds",
        maps=HASH,
    ),
    U(
        "arith_map_value_sub_reg",
        VALUE + "r7 &= 7\nr6 += 8\nr6 -= r7\nr0 = *(u8 *)(r6 + 0)\n" + OUT,
        "map value goes out of range",
        maps=HASH,
    ),
    U(
        "arith_map_value_const_past_end",
        VALUE + "r6 += 16\n" + OUT,
        "map value goes out of range",
        maps=HASH,
    ),
    U(
        "arith_map_value_const_before",
        VALUE + "r6 += -1\n" + OUT,
        "map value goes out of range",
        maps=HASH,
    ),
    U(
        "arith_map_value_reg_const",
        VALUE + "r1 = 8\nr6 += r1\nr0 = *(u64 *)(r6 + 0)\n" + OUT,
        maps=HASH,
    ),
    U(
        "arith_map_value_neg_reg_const",
        VALUE + "r6 += 8\nr1 = -4\nr6 += r1\nr0 = *(u32 *)(r6 + 0)\n" + OUT,
        maps=HASH,
    ),
    U(
        "arith_fp_var",
        "call 7\nr0 &= 7\nr1 = r10\nr1 += -16\nr1 += r0\nr0 = 0\nexit",
        "variable stack access prohibited",
    ),
    U(
        "arith_fp_mixed_signs",
        "call 7\nr0 &= 7\nr0 -= 4\nr1 = r10\nr1 += -16\nr1 += r0\nr0 = 0\nexit",
        "mixed signed bounds",
    ),
    U("arith_fp_below_stack", "r1 = r10\nr1 += -600\nr0 = 0\nexit", "goes out of range"),
    U("arith_fp_above", "r1 = r10\nr1 += 8\nr0 = 0\nexit", "goes out of range"),
    U("arith_fp_plus_zero", "r1 = r10\nr1 += 0\nr0 = 0\nexit", "goes out of range"),
    U("arith_fp_sub_imm", "r1 = r10\nr1 -= 8\nr0 = 0\nexit", "subtraction from stack pointer"),
    U("arith_fp_reg_const", "r1 = r10\nr2 = -8\nr1 += r2\n*(u64 *)(r1 + 0) = 0\nr0 = 0\nexit"),
    U(
        "arith_fp_reg_beyond",
        "r1 = r10\nr1 += -512\nr2 = 8\nr1 += r2\nr0 = 0\nexit",
        "beyond pointer bounds",
    ),
    U("arith_fp_reg_to_bottom", "r1 = r10\nr2 = -512\nr1 += r2\nr0 = 0\nexit"),
    U("arith_scalar_plus_fp", "r2 = -8\nr2 += r10\n*(u64 *)(r2 + 0) = 0\nr0 = 0\nexit"),
    U("arith_ctx_imm", "r1 += 4\nr0 = 0\nexit"),
    U("arith_ctx_reg", "r2 = 4\nr1 += r2\nr0 = 0\nexit", "unsupported alu operation"),
    U("arith_scalar_plus_ctx", "r2 = 4\nr2 += r1\nr0 = 0\nexit", "unsupported alu operation"),
    U(
        "arith_ringbuf_reg",
        RESERVE + "if r0 == 0 goto +5\nr1 = 4\nr0 += r1\n" + SUBMIT + "r0 = 0\nexit",
        "unsupported alu operation",
        maps=RINGBUF,
    ),
    U("arith_map_ptr", "r1 = map_fd(5) ll\nr1 += 8\nr0 = 0\nexit", "map_ptr prohibited", maps=HASH),
    # the same add/sub must be masked the same way on every path
    U(
        "paths_pointer_and_scalar",
        _paths("r7 &= 3\n", "r7 &= 3\nr6 = 5\n", "r6 += r7\n"),
        "different maps, paths or scalars",
        maps=HASH,
    ),
    U(
        "paths_scalar_and_pointer",
        _paths("r7 &= 3\nr6 = 5\n", "r7 &= 3\n", "r6 += r7\n"),
        "different maps, paths or scalars",
        maps=HASH,
    ),
    U(
        "paths_different_bounds",
        _paths("r7 &= 3\n", "r7 &= 7\n", "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n"),
        "different maps, paths or scalars",
        maps=HASH,
    ),
    U(
        "paths_same_bounds",
        _paths("r7 &= 7\n", "r7 &= 7\n", "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n"),
        maps=HASH,
    ),
    U(
        "paths_different_pointer_offsets",
        _paths("r7 &= 3\n", "r7 &= 3\nr6 += 4\n", "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n"),
        maps=HASH,
    ),
    U(
        "paths_different_constants",
        _paths("r7 = 2\n", "r7 = 4\n", "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n"),
        "different maps, paths or scalars",
        maps=HASH,
    ),
    U(
        "paths_constant_and_unknown",
        _paths("r7 = 2\n", "r7 &= 3\n", "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n"),
        "different maps, paths or scalars",
        maps=HASH,
    ),
    U(
        "paths_stack_and_map_value",
        _paths("r7 = 4\nr6 = r10\nr6 += -16\n", "r7 = 4\n", "r6 += r7\n"),
        maps=HASH,
    ),
    U("paths_two_scalars", _paths("r7 = 4\nr6 = 1\n", "r7 = 5\nr6 = 2\n", "r6 += r7\n"), maps=HASH),
    # a path subsumed by an explored one is still walked: its window could differ
    U(
        "paths_subsumed_not_pruned",
        _paths("r7 &= 7\n", "r7 &= 3\n", FILL + "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n"),
        "different maps, paths or scalars",
        maps=HASH,
    ),
    U(
        "paths_equal_pruned",
        _paths("r7 &= 7\n", "r7 &= 7\n", FILL + "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n"),
        maps=HASH,
    ),
    # ---- stack: spills, fills, uninitialised reads --------------------------------
    U("spill_fp_fill", "*(u64 *)(r10 - 8) = r10\nr1 = *(u64 *)(r10 - 8)\nr0 = 0\nexit"),
    U(
        "spill_ctx_fill_use",
        "*(u64 *)(r10 - 8) = r1\nr2 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r2 + 0)\nexit",
    ),
    U(
        "spill_ptr_fill_u32",
        "*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nexit",
        "invalid size of register fill",
    ),
    U(
        "spill_ptr_overwrite_u32",
        "*(u64 *)(r10 - 8) = r1\n*(u32 *)(r10 - 8) = 0\nr0 = 0\nexit",
        "corrupt spilled pointer",
    ),
    U(
        "spill_ptr_overwrite_u8_reg",
        "*(u64 *)(r10 - 8) = r1\nr2 = 0\n*(u8 *)(r10 - 5) = r2\nr0 = 0\nexit",
        "corrupt spilled pointer",
    ),
    U(
        "spill_ptr_overwrite_u64",
        "*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 8) = 0\nr0 = *(u64 *)(r10 - 8)\nexit",
    ),
    U("spill_ptr_misaligned", "*(u64 *)(r10 - 12) = r1\nr0 = 0\nexit", "misaligned stack"),
    U("spill_ptr_u32", "*(u32 *)(r10 - 8) = r1\nr0 = 0\nexit", "invalid size of register spill"),
    U("spill_scalar_fill_u32", "r1 = 5\n*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nexit"),
    U(
        "spill_map_value_fill_use",
        VALUE + "*(u64 *)(r10 - 16) = r6\nr1 = *(u64 *)(r10 - 16)\nr0 = *(u64 *)(r1 + 8)\n" + OUT,
        maps=HASH,
    ),
    U("uninit_read_u64", "r0 = *(u64 *)(r10 - 8)\nexit", "invalid read from stack"),
    U("uninit_read_u8", "r0 = *(u8 *)(r10 - 1)\nexit", "invalid read from stack"),
    U(
        "uninit_read_partly",
        "*(u32 *)(r10 - 8) = 0\nr0 = *(u64 *)(r10 - 8)\nexit",
        "invalid read from stack",
    ),
    U("init_read_half", "*(u32 *)(r10 - 4) = 0\nr0 = *(u32 *)(r10 - 4)\nexit"),
    U(
        "uninit_map_key",
        "r1 = map_fd(5) ll\nr2 = r10\nr2 += -8\ncall 1\nr0 = 0\nexit",
        "read from stack",
        maps=HASH,
    ),
    U(
        "uninit_helper_buffer",
        "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall 182\nr0 = 0\nexit",
        "read from stack",
    ),
    U(
        "uninit_helper_out_buffer",
        "r2 = 0\nr3 = r10\nr3 += -16\nr4 = 16\ncall 26\nr0 = *(u64 *)(r10 - 16)\nexit",
    ),
    U(
        "array_const_key_still_nullable",
        "r1 = map_fd(5) ll\n*(u32 *)(r10 - 8) = 0\n"
        "r2 = r10\nr2 += -8\ncall 1\nr0 = *(u64 *)(r0 + 16)\nr0 = 0\nexit",
        "map_value_or_null",
        maps=ARRAY,
    ),
    # ---- control flow -----------------------------------------------------------
    U("loop_bounded", "r0 = 0\nr0 += 1\nif r0 < 10 goto -2\nr0 = 0\nexit", "back-edge"),
    U("loop_goto_back", "r0 = 0\nif r0 > 5 goto +1\ngoto -2\nexit", "back-edge"),
    U("subprog_call", "r1 = 1\ncall pc+2\nr0 = 0\nexit\nr0 = r1\nexit", "CAP_BPF"),
    U(
        "bpf_loop",
        "r1 = 10\nr2 = func(+0x6) ll\nr3 = 0\nr4 = 0\ncall 181\nr0 = 0\nexit\nr0 = 0\nexit",
        "CAP_BPF",
    ),
    U("dead_branch_bad_code", "r1 = 5\nif r1 < 10 goto +1\nr0 = *(u64 *)(r1 + 0)\nr0 = 0\nexit"),
    U("tail_call", "r2 = map_fd(5) ll\nr3 = 0\ncall 12\nr0 = 0\nexit", maps=PROGS),
    U("ld_abs", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit"),
    # ---- helpers, context, program types ------------------------------------------
    U(
        "helper_trace_printk",
        "r1 = 0\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 8\ncall 6\nr0 = 0\nexit",
        "cannot use helper",
    ),
    U(
        "helper_probe_read",
        "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall 4\nr0 = 0\nexit",
        "cannot use helper",
    ),
    U(
        "helper_for_each_map_elem",
        "r1 = map_fd(5) ll\nr2 = func(+0x4) ll\nr3 = 0\nr4 = 0\n"
        "call 164\nr0 = 0\nexit\nr0 = 0\nexit",
        "CAP_BPF",
        maps=HASH,
    ),
    U("helper_ktime_get_ns", "call 5\nr0 = 0\nexit"),
    U("helper_get_current_pid_tgid", "call 14\nr0 = 0\nexit"),
    U("helper_get_current_uid_gid", "call 15\nr0 = 0\nexit", prog_type="cgroup_skb"),
    U("helper_ringbuf", RESERVE + "if r0 == 0 goto +3\n" + SUBMIT + "r0 = 0\nexit", maps=RINGBUF),
    U(
        "ctx_cgroup_skb_data",
        "r2 = *(u32 *)(r1 + 76)\nr0 = 1\nexit",
        "invalid bpf_context",
        prog_type="cgroup_skb",
    ),
    U(
        "ctx_cgroup_skb_tstamp_write",
        "r2 = 1\n*(u64 *)(r1 + 152) = r2\nr0 = 1\nexit",
        "invalid bpf_context",
        prog_type="cgroup_skb",
    ),
    U(
        "ctx_cgroup_skb_mark_write",
        "r2 = 1\n*(u32 *)(r1 + 8) = r2\nr0 = 1\nexit",
        prog_type="cgroup_skb",
    ),
    U("type_xdp", "r0 = 0\nexit", "CAP_BPF", prog_type="xdp"),
    U("type_sched_cls", "r0 = 0\nexit", "CAP_BPF", prog_type="sched_cls"),
    U("type_kprobe", "r0 = 0\nexit", "CAP_BPF", prog_type="kprobe"),
]


@pytest.mark.parametrize("case", TARGETED, ids=lambda c: c.name)
def test_targeted_ours(case: U) -> None:
    """bpfkit's verdict (and message) for each targeted program, without a kernel."""
    ok, msg = ours(case.insns(), case.prog_type, case.maps)
    if case.expect == "accept":
        assert ok, msg
    else:
        assert not ok, f"accepted, expected {case.expect!r}"
        assert case.expect in msg, msg


@pytest.mark.parametrize("case", TARGETED, ids=lambda c: c.name)
def test_targeted_kernel(unpriv_kernel, case: U) -> None:
    """The kernel gives the same verdict to an unprivileged loader."""
    ok = check_agree(unpriv_kernel, case.insns(), case.prog_type, case.maps)
    assert ok == (case.expect == "accept")


#: known privileged differences (docs/verifier.md)
PRIV_KNOWN = {"bpf_loop": "the kernel needs BTF func info for a bpf_loop callback"}


@pytest.mark.kernel
@pytest.mark.parametrize("case", TARGETED, ids=lambda c: c.name)
def test_targeted_privileged(case: U) -> None:
    """The same programs loaded privileged: bpfkit's default mode agrees too (several
    of the comparison and stack-pointer rules apply to every loader)."""
    from test_verifier_kernel import kernel_verdict

    if case.name in PRIV_KNOWN:
        pytest.skip(PRIV_KNOWN[case.name])
    insns = case.insns()
    kok, klog = kernel_verdict(insns, case.prog_type, case.maps, log_level=1)
    try:
        verify(insns, prog_type=case.prog_type, maps=case.maps, budget=BUDGET)
        ook, msg = True, ""
    except VerifierError as e:
        ook, msg = False, e.kernel_message
    assert kok == ook, f"kernel {'accepts' if kok else 'rejects'}, bpfkit {msg or 'accepts'}\n" + (
        _tail(klog)
    )


# ---------------------------------------------------------------------------
# Sweeps: helper availability and context fields
# ---------------------------------------------------------------------------

_UNAVAILABLE = ("unknown func", "cannot use helper", "invalid func")
#: helpers the kernel gives these types unprivileged that bpfkit does not implement
#: (bpfkit rejects calls to them for every loader)
NOT_IMPLEMENTED = {
    "socket_filter": {46, 47, 68, 120, 122},
    "cgroup_skb": {
        46,
        47,
        68,
        79,
        81,
        83,
        84,
        85,
        86,
        95,
        96,
        97,
        98,
        99,
        107,
        108,
        120,
        122,
        128,
        129,
    },
}


@pytest.mark.parametrize("prog_type", UNPRIV_TYPES)
def test_helper_availability(unpriv_kernel, prog_type) -> None:
    """``call N`` for every helper id: a helper is unavailable to the kernel exactly when
    it is to bpfkit (the other arguments then fail or pass alike, which the targeted
    programs check)."""
    bad = []
    for hid in range(1, 212):
        insns = assemble_text(f"call {hid}\nr0 = 0\nexit")
        kok, klog = unpriv_kernel.verdict(insns, prog_type)
        lines = [x for x in klog.strip().splitlines() if x.strip()]
        k_avail = kok or not any(u in lines[-2] for u in _UNAVAILABLE) if lines else kok
        ook, msg = ours(insns, prog_type)
        o_avail = ook or not any(u in msg for u in _UNAVAILABLE)
        if k_avail != o_avail and not (k_avail and hid in NOT_IMPLEMENTED[prog_type]):
            bad.append((hid, "kernel allows" if k_avail else "kernel refuses", msg))
    assert not bad, bad


_SZ = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}


@pytest.mark.parametrize("prog_type", UNPRIV_TYPES)
def test_context_fields(unpriv_kernel, prog_type) -> None:
    """Every read and write of the ``__sk_buff`` context, every offset and size."""
    bad = []
    for off in range(0, 204):
        for size in (1, 2, 4, 8):
            for write in (False, True):
                if write:
                    text = f"r2 = 1\n*({_SZ[size]} *)(r1 + {off}) = r2\nr0 = 0\nexit"
                else:
                    text = f"r2 = *({_SZ[size]} *)(r1 + {off})\nr0 = 0\nexit"
                insns = assemble_text(text)
                kok, _ = unpriv_kernel.verdict(insns, prog_type, log_level=0)
                ook, msg = ours(insns, prog_type)
                if kok != ook:
                    bad.append((off, size, "write" if write else "read", kok, msg))
    assert not bad, bad[:20]


# ---------------------------------------------------------------------------
# (c) generated programs
# ---------------------------------------------------------------------------

N_PROGEN = int(os.environ.get("BPFKIT_UNPRIV_PROGEN", "300"))
N_MUTANTS = int(os.environ.get("BPFKIT_UNPRIV_MUTANTS", "800"))
N_UNPRIV = int(os.environ.get("BPFKIT_UNPRIV_GEN", "600"))


def _pointer(rng: random.Random) -> tuple[str, str, int]:
    """Code that leaves a pointer in r6: (code, kind, size of the object)."""
    kind = rng.choice(["fp", "fp", "value", "value", "ctx"])
    if kind == "fp":
        return f"r6 = r10\nr6 += {rng.choice([-8, -16, -64, -512])}\n", kind, 0
    if kind == "ctx":
        return "r6 = r9\n", kind, 0
    return "", kind, 16


def _offset(rng: random.Random) -> str:
    """Code that leaves an offset in r7 (the map value's first byte is in r7)."""
    return rng.choice(
        [
            f"r7 = {rng.choice([0, 1, 4, 8, 15, 16, -4, -8])}\n",
            f"r7 &= {rng.choice([1, 3, 7, 8, 15, 16, 31])}\n",
            f"r7 &= {rng.choice([1, 3, 7])}\n",
            f"r7 &= {rng.choice([3, 7])}\nr7 -= {rng.choice([1, 4])}\n",
            f"r7 &= {rng.choice([3, 7])}\nr7 = -r7\n",
            f"if r7 > {rng.choice([7, 15, 16])} goto Lout\n",
            "",
        ]
    )


def _g_arith(rng: random.Random) -> str:
    code, kind, _ = _pointer(rng)
    a = rng.choice(["+=", "+=", "+=", "-="])
    how = rng.choice(["reg", "reg", "imm"])
    if how == "imm":
        use = f"r6 {a} {rng.choice([0, 1, 4, 8, 15, 16, -1, -8, 512])}\n"
    else:
        use = _offset(rng) + f"r6 {a} r7\n"
    if rng.random() < 0.6:
        sz = rng.choice([1, 4, 8])
        acc = rng.choice(["read", "write"])
        use += (
            f"r0 = *({_SZ[sz]} *)(r6 + 0)\n" if acc == "read" else f"*({_SZ[sz]} *)(r6 + 0) = 0\n"
        )
    if kind == "fp":
        use = "*(u64 *)(r10 - 64) = 0\n*(u64 *)(r10 - 16) = 0\n*(u64 *)(r10 - 8) = 0\n" + use
    return VALUE + code + use + OUT


def _g_paths(rng: random.Random) -> str:
    sides = []
    for _ in range(2):
        side = _offset(rng) if rng.random() < 0.3 else rng.choice(["r7 &= 3\n", "r7 &= 7\n"])
        if rng.random() < 0.25:
            side += rng.choice(["r6 += 4\n", "r6 = 5\n", "r6 = r10\nr6 += -16\n"])
        sides.append(side)
    fill = FILL if rng.random() < 0.5 else ""
    use = fill + "r6 " + rng.choice(["+=", "+=", "-="]) + " r7\n"
    return "*(u64 *)(r10 - 16) = 0\n" + _paths(sides[0], sides[1], use)


def _g_spill(rng: random.Random) -> str:
    code, kind, _ = _pointer(rng)
    off = rng.choice([-8, -16, -12, -24])
    ssz = rng.choice([8, 8, 4])
    body = code + f"*({_SZ[ssz]} *)(r10 - {-off}) = r6\n"
    after = rng.choice(["none", "over8", "over4", "overb", "fill8", "fill4", "fill_use"])
    if after == "over8":
        body += f"*(u64 *)(r10 - {-off}) = 0\n"
    elif after == "over4":
        body += f"*(u32 *)(r10 - {-off}) = 0\n"
    elif after == "overb":
        body += f"r2 = 0\n*(u8 *)(r10 - {-(off + rng.randint(0, 7))}) = r2\n"
    elif after == "fill8":
        body += f"r2 = *(u64 *)(r10 - {-off})\n"
    elif after == "fill4":
        body += f"r2 = *(u32 *)(r10 - {-off})\n"
    elif after == "fill_use":
        body += f"r2 = *(u64 *)(r10 - {-off})\nr0 = *(u8 *)(r2 + 0)\n"
    if rng.random() < 0.3:
        return VALUE + body + f"r0 = *(u64 *)(r10 - {-off})\nexit\n" + LOUT
    return VALUE + body + OUT


def _g_stack_read(rng: random.Random) -> str:
    body = ""
    for _ in range(rng.randint(0, 3)):
        sz = rng.choice([1, 2, 4, 8])
        off = -rng.choice([8, 16, 24]) + rng.choice([0, 0, sz])
        off -= off % sz if off % sz else 0
        body += f"*({_SZ[sz]} *)(r10 - {-off}) = {rng.randint(0, 9)}\n"
    sz = rng.choice([1, 2, 4, 8])
    off = -rng.choice([8, 16, 24]) + rng.choice([0, 0, 4])
    off -= off % sz
    if rng.random() < 0.4:
        body += f"*({_SZ[sz]} *)(r10 - {-off}) = 1\n"
    if rng.random() < 0.3:
        # through a helper: a map key read from the stack
        return (
            body + f"r1 = map_fd(5) ll\nr2 = r10\nr2 += {-rng.choice([8, 16, 24])}\n"
            "call 1\nr0 = 0\nexit\n"
        )
    return body + f"r0 = *({_SZ[sz]} *)(r10 - {-off})\nexit\n"


def _g_compare(rng: random.Random) -> str:
    code, kind, _ = _pointer(rng)
    reg = rng.choice(["r6", "w6", "r7", "r8"])
    rhs = rng.choice(["0", "5", "r7", "r10", "r2"])
    opx = rng.choice(["==", "!=", ">", "s<"])
    pre = "r2 = 0\n" if rhs == "r2" else ""
    return (
        VALUE + code + pre + f"if {reg} {opx} {rhs if reg[0] == 'r' else rhs.replace('r', 'w')}"
        " goto +1\nr0 = 0\n" + OUT
    )


def _g_leak(rng: random.Random) -> str:
    code, kind, _ = _pointer(rng)
    where = rng.choice(["map", "ctx", "ret", "ret_scalar", "helper", "stack_ret"])
    if where == "map":
        return VALUE + code + f"*(u64 *)(r6 + 0) = r{rng.choice([6, 7, 10])}\n" + OUT
    if where == "ctx":
        return VALUE + code + f"r1 = r9\n*(u32 *)(r1 + 48) = r{rng.choice([6, 7])}\n" + OUT
    if where == "ret":
        return VALUE + code + "r0 = r6\nexit\n" + LOUT
    if where == "ret_scalar":
        return VALUE + code + "r0 = r7\nexit\n" + LOUT
    if where == "helper":
        return VALUE + code + "r1 = r6\ncall 7\n" + OUT
    return VALUE + code + "*(u64 *)(r10 - 8) = r6\nr0 = *(u64 *)(r10 - 8)\nexit\n" + LOUT


def _g_join_side(rng: random.Random) -> str:
    out = ""
    for _ in range(rng.randint(0, 3)):
        k = rng.random()
        off = rng.choice([8, 16, 24])
        if k < 0.4:
            sz = rng.choice([1, 2, 4, 8])
            o = off - rng.choice([0, sz]) if sz < 8 else off
            out += f"*({_SZ[sz]} *)(r10 - {o}) = {rng.randint(0, 3)}\n"
        elif k < 0.6:
            out += f"*(u64 *)(r10 - {off}) = r{rng.choice([6, 7, 9, 10])}\n"
        elif k < 0.8:
            out += f"r{rng.choice([2, 3, 7])} = {rng.randint(0, 20)}\n"
        else:
            out += f"r7 &= {rng.choice([3, 7, 15])}\n"
    return out


def _g_join(rng: random.Random) -> str:
    """Two paths set up the stack and registers differently, then (after checkpoints)
    something reads them: pruning must not hide what the second path lacks."""
    off = rng.choice([8, 16, 24])
    use = rng.choice(
        [
            f"r0 = *({_SZ[rng.choice([1, 4, 8])]} *)(r10 - {off})\n",
            f"r4 = *(u64 *)(r10 - {off})\nr0 = *(u8 *)(r4 + 0)\n",
            "r6 += r7\nr0 = *(u8 *)(r6 + 0)\n",
            f"r1 = r10\nr1 += -{off}\nr1 += r2\n",
            f"r4 = *(u64 *)(r10 - {off})\nr4 += 1\n*(u64 *)(r6 + 0) = r4\n",
        ]
    )
    fill = FILL if rng.random() < 0.7 else ""
    first, second = _g_join_side(rng), _g_join_side(rng)
    return "*(u64 *)(r10 - 8) = 0\n" + _paths(first, second, fill + use + "r0 = 0\n")


UNPRIV_FAMILIES = [
    _g_arith,
    _g_arith,
    _g_paths,
    _g_spill,
    _g_stack_read,
    _g_compare,
    _g_leak,
    _g_join,
]


def unpriv_mutant(seed: int):
    """One generated program aimed at the unprivileged rules: (insns, type, maps)."""
    rng = random.Random(seed)
    text = "r9 = r1\n" + rng.choice(UNPRIV_FAMILIES)(rng)
    return assemble_text(text, dialect="llvm"), rng.choice(UNPRIV_TYPES), HASH


def _compare_all(loader, programs) -> tuple[int, int, list]:
    """(programs compared, rejected by the kernel, mismatches)."""
    n = rejected = 0
    bad = []
    for key, insns, pt, maps in programs:
        kok, klog = loader.verdict(insns, pt, maps)
        if kok is None:  # a map an unprivileged loader cannot create
            continue
        ook, msg = ours(insns, pt, maps)
        n += 1
        rejected += not kok
        if kok != ook:
            bad.append((key, pt, kok, msg, _tail(klog, 3)))
    return n, rejected, bad


def test_generated_progen(unpriv_kernel) -> None:
    """progen's ALU/stack/jump programs, verified as an unprivileged loader's."""
    progs = [(s, generate(s, length=40), "socket_filter", {}) for s in range(N_PROGEN)]
    n, rejected, bad = _compare_all(unpriv_kernel, progs)
    print(f"unprivileged progen agreement: {n - len(bad)}/{n} ({rejected} rejected)")
    assert n >= N_PROGEN and not bad, bad[:10]


def test_generated_templates(unpriv_kernel) -> None:
    """test_verifier_gen's rule templates (those of the unprivileged program types)."""
    from test_verifier_gen import mutant

    progs = []
    for s in range(N_MUTANTS):
        insns, pt, maps = mutant(s)
        if pt in UNPRIV_TYPES:
            progs.append((s, insns, pt, maps))
    n, rejected, bad = _compare_all(unpriv_kernel, progs)
    print(f"unprivileged template agreement: {n - len(bad)}/{n} ({rejected} rejected)")
    assert not bad, bad[:10]


def test_generated_unpriv_rules(unpriv_kernel) -> None:
    """Programs built around the unprivileged rules: pointer arithmetic and its masking
    on several paths, spills, uninitialised reads, pointer comparisons and leaks."""
    progs = [(s, *unpriv_mutant(s)) for s in range(N_UNPRIV)]
    n, rejected, bad = _compare_all(unpriv_kernel, progs)
    print(f"unprivileged rule-program agreement: {n - len(bad)}/{n} ({rejected} rejected)")
    assert not bad, bad[:10]
    assert 0.2 * n < rejected < 0.9 * n


def test_unpriv_families_both_verdicts() -> None:
    oks = sum(ours(*unpriv_mutant(s))[0] for s in range(200))
    assert 30 < oks < 170
