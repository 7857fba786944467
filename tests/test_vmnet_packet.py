"""Legacy packet loads (``ld_abs``/``ld_ind``) at negative offsets, against the kernel.

``SKF_NET_OFF + n`` reads the network header, ``SKF_LL_OFF + n`` the MAC header (in front
of a socket filter's data, in the headroom), anything else negative fails and the program
returns 0 (``bpf_skb_load_helper_convert_offset``). Each program here loads at an offset
taken from the context (``ld_ind``) or chosen by an index from a table of constants
(``ld_abs``), stores the value in ``cb[2]`` and returns 1: a failed load returns 0 and
leaves ``cb[2]`` alone. The kernel's ``BPF_PROG_TEST_RUN`` is the oracle for the VM's
interpreter and JIT: every size, offsets around every boundary and at random, socket
filters and tc classifiers/actions, frames of several lengths.
"""

from __future__ import annotations

import os
import random
import struct

import pytest

from bpfkit.errors import VerifierError
from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R6,
    Label,
    assemble,
    exit_,
    jeq,
    ld_abs,
    ld_ind,
    ldx,
    lsh64,
    mov64,
    or64,
    stx,
)
from bpfkit.uapi.ctx import SK_BUFF
from bpfkit.uapi.enums import ProgType
from bpfkit.vm.env import SKF_LL_OFF, SKF_NET_OFF
from bpfkit.vm.runtime import VMRuntime

pytestmark = pytest.mark.kernel

CB = SK_BUFF.offset_of("cb")
TYPES = (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT)
SIZES = (1, 2, 4)
ETH_HLEN = 14
SEED = int(os.environ.get("BPFKIT_TEST_SEED", "20250"))


def _frame(rnd: random.Random, n: int) -> bytes:
    """``n`` bytes of Ethernet frame: an EtherType the test run does not parse (so any
    length from 14 is taken), distinct bytes everywhere."""
    return bytes(rnd.randrange(256) for _ in range(12)) + b"\x88\xb5" + rnd.randbytes(n - 14)


def _ctx(*cb: int) -> bytes:
    ctx = bytearray(SK_BUFF.size)
    struct.pack_into(f"<{len(cb)}I", ctx, CB, *(v & 0xFFFFFFFF for v in cb))
    return bytes(ctx)


def _store_and_return_one() -> list:
    return [stx(4, R6, CB + 8, R0), mov64(R0, 1), exit_()]


def ind_program(size: int, imm: int) -> list:
    """``r0 = ld_ind(size, cb[0] | cb[1] << 32, imm)``: a 64-bit index register."""
    return assemble(
        [
            mov64(R6, R1),
            ldx(4, R2, R1, CB),
            ldx(4, R3, R1, CB + 4),
            lsh64(R3, 32),
            or64(R2, R3),
            ld_ind(size, R2, imm),
            *_store_and_return_one(),
        ]
    )


def abs_program(size: int, offsets: list[int]) -> list:
    """``ld_abs(size, offsets[cb[0]])``."""
    body: list = [mov64(R6, R1), ldx(4, R2, R1, CB)]
    body += [jeq(R2, i, f"k{i}") for i in range(len(offsets))]
    body += [mov64(R0, 2), exit_()]
    for i, k in enumerate(offsets):
        body += [Label(f"k{i}"), ld_abs(size, k), *_store_and_return_one()]
    return assemble(body)


def boundary_offsets(ptype: ProgType, length: int, size: int) -> list[int]:
    """Offsets around the start and end of what each base (data, network header, MAC
    header) reaches, and around the ends of the header ranges themselves."""
    data_len = length if ptype != ProgType.SOCKET_FILTER else length - ETH_HLEN
    out = set()
    for base in (0, SKF_NET_OFF, SKF_LL_OFF):
        for n in (0, data_len - size, data_len + ETH_HLEN - size, ETH_HLEN - size):
            out.update(base + n + d for d in range(-2, 3))
    out.update((SKF_NET_OFF - 1, SKF_LL_OFF - 1, -1, -(1 << 31), (1 << 31) - 1))
    return sorted(out)


class Engines:
    """One program in the kernel and the VM; results of (retval, cb[2]) on each."""

    def __init__(self, rt: VMRuntime, ptype: ProgType, insns: list, name: str) -> None:
        from bpfkit.kernel import sys as ks

        self.ks = ks
        self.fd = ks.prog_load(int(ptype), insns)
        self.vm = rt.load_program(name, ptype, insns)

    def results(self, data: bytes, ctx: bytes) -> dict[str, tuple[int, bytes]]:
        k = self.ks.prog_test_run(self.fd, data=data, ctx=ctx)
        out = {"kernel": (k.retval, bytes(k.ctx_out[CB : CB + 12]))}
        for eng in ("interp", "jit"):
            r = self.vm.test_run(data=data, ctx=ctx, engine=eng)
            out[eng] = (r.retval, bytes(r.ctx_out[CB : CB + 12]))
        return out

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture(scope="module")
def rt():
    r = VMRuntime()
    yield r
    r.close()


def _agree(eng: Engines, data: bytes, ctx: bytes, what: str) -> tuple[int, bytes]:
    r = eng.results(data, ctx)
    assert r["interp"] == r["kernel"] and r["jit"] == r["kernel"], (what, r, data.hex())
    return r["kernel"]


LENGTHS = (14, 15, 17, 20, 60, 257)


@pytest.mark.parametrize("ptype", TYPES, ids=lambda t: t.name.lower())
@pytest.mark.parametrize("size", SIZES)
def test_ld_abs_at_the_boundaries(rt, ptype, size):
    rnd = random.Random(SEED + size + 10 * int(ptype))
    loaded = failed = 0
    for length in LENGTHS:
        data = _frame(rnd, length)
        offsets = boundary_offsets(ptype, length, size)
        for start in range(0, len(offsets), 60):
            chunk = offsets[start : start + 60]
            eng = Engines(
                rt, ptype, abs_program(size, chunk), f"abs{ptype}_{size}_{length}_{start}"
            )
            try:
                for i, k in enumerate(chunk):
                    ret, _ = _agree(eng, data, _ctx(i, 0, 0xA5A5A5A5), f"ld_abs {size} [{k}]")
                    loaded += ret == 1
                    failed += ret == 0
            finally:
                eng.close()
    # the boundaries were crossed both ways
    assert loaded > 50 and failed > 50, (loaded, failed)


@pytest.mark.parametrize("ptype", TYPES, ids=lambda t: t.name.lower())
@pytest.mark.parametrize("size", SIZES)
def test_ld_ind_random_and_boundary_offsets(rt, ptype, size):
    """Offsets from the context: the boundaries, random 32-bit values, and 64-bit index
    registers whose sum with ``imm`` wraps (the helper takes the low 32 bits)."""
    rnd = random.Random(SEED + 7 * size + int(ptype))
    outcomes = set()
    for imm in (0, -3, SKF_NET_OFF, SKF_LL_OFF + 5, 1 << 20):
        eng = Engines(rt, ptype, ind_program(size, imm), f"ind{ptype}_{size}_{imm}")
        try:
            for length in LENGTHS:
                data = _frame(rnd, length)
                ks = boundary_offsets(ptype, length, size)
                ks += [rnd.randrange(-(1 << 31), 1 << 31) for _ in range(8)]
                ks += [SKF_LL_OFF + rnd.randrange(0x200000) for _ in range(8)]
                for k in ks:
                    x = (k - imm) & 0xFFFFFFFF
                    hi = rnd.choice((0, 0, 1, 0xFFFFFFFF, rnd.randrange(1 << 32)))
                    ret, cb = _agree(
                        eng, data, _ctx(x, hi, 0x5A5A5A5A), f"ld_ind {size} [{x:#x} + {imm}]"
                    )
                    outcomes.add(ret)
        finally:
            eng.close()
    assert outcomes == {0, 1}


def test_repeated_runs_read_the_headers(rt):
    """The JIT's native repeat loop reads the MAC header in front of the data too."""
    rnd = random.Random(SEED)
    data = _frame(rnd, 40)
    insns = abs_program(4, [SKF_LL_OFF + 10, SKF_NET_OFF + 22])
    eng = Engines(rt, ProgType.SOCKET_FILTER, insns, "repeat")
    try:
        for i in range(2):
            k = eng.ks.prog_test_run(eng.fd, data=data, ctx=_ctx(i), repeat=5)
            for engine in ("interp", "jit"):
                r = eng.vm.test_run(data=data, ctx=_ctx(i), engine=engine, repeat=5)
                assert (r.retval, r.ctx_out[CB + 8 : CB + 12]) == (
                    k.retval,
                    k.ctx_out[CB + 8 : CB + 12],
                ), engine
                assert r.retval == 1
    finally:
        eng.close()


@pytest.mark.parametrize("ptype", (ProgType.CGROUP_SKB, ProgType.XDP), ids=lambda t: t.name)
def test_types_without_legacy_loads_refuse_them(rt, ptype):
    """Only socket filters and tc programs may use ld_abs/ld_ind (``may_access_skb``):
    the kernel and the VM both refuse the others at load."""
    from bpfkit.kernel import sys as ks

    insns = assemble([mov64(R6, R1), ld_abs(1, SKF_NET_OFF), exit_()])
    with pytest.raises(VerifierError, match="not allowed for this program type"):
        ks.prog_load(int(ptype), insns)
    with pytest.raises(VerifierError, match="not allowed for this program type"):
        rt.load_program(f"refused{ptype}", ptype, insns)
