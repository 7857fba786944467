"""Classic programs translated to eBPF run alike on every engine.

Engines: the classic interpreter (the reference), bpfkit's eBPF interpreter and JIT
(``SOCKET_FILTER`` test runs), and the kernel (``bpf()`` load + ``BPF_PROG_TEST_RUN``).
Programs: random classic programs and libpcap's (``tcpdump -ddd EXPR``). A socket
filter's test run sees the frame from the network header, the Ethernet header in front
(``SKF_LL_OFF`` reaches it), on the loopback device.
"""

from __future__ import annotations

import errno
import random

import pytest
from classic_strategies import (
    EXPRESSIONS,
    classic_program,
    examples,
    make_packet,
    random_program,
    tcpdump_dump,
    tcpdump_path,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfkit
from bpfkit.classic import insn as c
from bpfkit.classic.ebpf import to_ebpf
from bpfkit.classic.insn import SockFilter, stmt
from bpfkit.classic.interp import PacketMeta, compile_classic
from bpfkit.classic.listing import parse_decimal, parse_listing
from bpfkit.errors import ClassicError, NotSupported
from bpfkit.obj.spec import ObjectSpec, ProgramSpec
from bpfkit.uapi.ctx import SK_BUFF
from bpfkit.uapi.enums import ProgType

LOOPBACK_IFINDEX = 1
ANC_DETERMINISTIC = [
    c.SKF_AD_PROTOCOL,
    c.SKF_AD_PKTTYPE,
    c.SKF_AD_IFINDEX,
    c.SKF_AD_MARK,
    c.SKF_AD_QUEUE,
    c.SKF_AD_RXHASH,
    c.SKF_AD_VLAN_TAG,
    c.SKF_AD_VLAN_TAG_PRESENT,
    c.SKF_AD_VLAN_TPID,
    c.SKF_AD_ALU_XOR_X,
]


def _valid_frame(f: bytes) -> bool:
    """What BPF_PROG_TEST_RUN takes for an skb program (IPv4/IPv6 need whole headers)."""
    if len(f) < 14:
        return False
    proto = int.from_bytes(f[12:14], "big")
    return not (proto == 0x0800 and len(f) < 34 or proto == 0x86DD and len(f) < 54)


_rnd = random.Random(13)
FRAMES = [f for f in (make_packet(_rnd) for _ in range(400)) if _valid_frame(f)][:120]
# libpcap's programs expect a whole Ethernet frame at offset 0: wrap one in an outer
# header (an EtherType the test run does not parse) so the socket filter sees all of it
_rnd = random.Random(14)
WRAPPED = [bytes(12) + b"\x88\xb5" + make_packet(_rnd) for _ in range(60)]


def socket_view(frame: bytes, mark: int = 0) -> tuple[bytes, PacketMeta]:
    """The data and metadata a socket filter sees in a test run of ``frame``."""
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype >= 0x0600:
        proto = ethertype
    else:
        proto = 0x0001 if frame[14:16] == b"\xff\xff" else 0x0004
    dst = frame[:6]
    pkttype = 2 if dst[0] & 1 else (3 if dst != bytes(6) else 0)  # loopback's MAC is 0
    meta = PacketMeta(
        protocol=proto,
        pkttype=pkttype,
        ifindex=LOOPBACK_IFINDEX,
        mark=mark,
        hatype=772,
        net_offset=0,
        mac_offset=-14,
        headroom=frame[:14],
    )
    return frame[14:], meta


def _ctx(mark: int) -> bytes:
    ctx = bytearray(SK_BUFF.size)
    off = SK_BUFF["mark"].offset
    ctx[off : off + 4] = mark.to_bytes(4, "little")
    return bytes(ctx)


def _spec(insns) -> ObjectSpec:
    prog = ProgramSpec(
        name="classic",
        section="socket",
        prog_type=ProgType.SOCKET_FILTER,
        instructions=insns,
        license="GPL",
    )
    return ObjectSpec(programs={"classic": prog})


def _has_negative_offsets(prog) -> bool:
    for i in prog:
        if i.code & 0x07 in (c.LD, c.LDX) and i.code & 0xE0 in (c.ABS, c.IND, c.MSH):
            k = i.k
            if k & 0x80000000 and not (i.code & 0xE0 == c.ABS and k >= c.SKF_AD_OFF & 0xFFFFFFFF):
                return True
    return False


class Engines:
    """One translated program loaded into the VM and (when usable) the kernel."""

    def __init__(self, prog: list[SockFilter], kernel: bool, vm: bool = True):
        self.prog = prog
        self.classic = compile_classic(prog)
        self.ebpf = to_ebpf(prog)
        spec = _spec(self.ebpf)
        self.vm = bpfkit.load(spec, backend="vm") if vm else None
        self.kern = bpfkit.load(spec, backend="kernel") if kernel else None

    def close(self) -> None:
        for o in (self.vm, self.kern):
            if o is not None:
                o.close()

    def results(self, frame: bytes, mark: int = 0) -> dict[str, int]:
        data, meta = socket_view(frame, mark)
        out = {"classic": self.classic.run(data, meta).ret}
        ctx = _ctx(mark)
        if self.vm is not None:
            p = self.vm.programs["classic"]
            out["interp"] = p.test_run(frame, ctx, engine="interp").retval
            out["jit"] = p.test_run(frame, ctx, engine="jit").retval
        if self.kern is not None:
            out["kernel"] = self.kern.programs["classic"].test_run(frame, ctx).retval
        return out


def _kernel_ok() -> bool:
    from bpfkit.kernel.privileges import kernel_available

    return kernel_available()[0]


def _check_all(prog: list[SockFilter], frames, kernel: bool) -> int:
    vm = not _has_negative_offsets(prog)  # the VM's ld_abs has no SKF_NET_OFF/SKF_LL_OFF
    eng = Engines(prog, kernel, vm=vm)
    try:
        n = 0
        for i, f in enumerate(frames):
            r = eng.results(f, mark=(0, 1, 0xDEADBEEF)[i % 3])
            assert len(set(r.values())) == 1, (r, f.hex(), prog)
            n += 1
        return n
    finally:
        eng.close()


@pytest.mark.skipif(tcpdump_path() is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_libpcap_programs_all_engines(expr: str, kernel_if_available) -> None:
    prog = parse_decimal(tcpdump_dump(expr, "-ddd"))
    assert _check_all(prog, WRAPPED, kernel_if_available) == len(WRAPPED)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    classic_program(max_len=24, ancillary_set=ANC_DETERMINISTIC, negative_offsets=False),
    st.integers(0, len(FRAMES) - 8),
)
def test_random_programs_all_engines(kernel_if_available, prog, i: int) -> None:
    _check_all(prog, FRAMES[i : i + 4] + WRAPPED[i % 50 : i % 50 + 4], kernel_if_available)


@pytest.mark.kernel
@settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    classic_program(max_len=24, ancillary_set=ANC_DETERMINISTIC, negative_offsets=True),
    st.integers(0, len(FRAMES) - 8),
)
def test_random_programs_kernel(prog, i: int) -> None:
    """Negative offsets (SKF_NET_OFF/SKF_LL_OFF) included: the kernel against the classic
    interpreter only."""
    eng = Engines(prog, kernel=True, vm=False)
    try:
        for f in FRAMES[i : i + 8]:
            r = eng.results(f)
            assert r["classic"] == r["kernel"], (r, f.hex(), prog)
    finally:
        eng.close()


@pytest.fixture
def kernel_if_available() -> bool:
    """Whether the kernel takes part (it must under BPFKIT_REQUIRE_KERNEL=1)."""
    import os

    ok = _kernel_ok()
    if not ok and os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1":
        pytest.fail("BPFKIT_REQUIRE_KERNEL=1 but bpf() is unusable", pytrace=False)
    return ok


def test_translation_shape() -> None:
    """The kernel's register mapping and jump forms (net/core/filter.c)."""
    prog = parse_listing(
        "ldh [12]\njeq #0x800 jt 2 jf 3\nret #262144\njgt #0x80000000 jt 4 jf 5\nret a\nret #0"
    )
    text = [str(i) for i in to_ebpf(prog)]
    assert text[:3] == ["w0 = 0x0", "w7 = 0x0", "r6 = r1"]
    assert text[3] == "r0 = *(u16 *)skb[0xc]"
    assert text[4].startswith("if r0 != 0x800 goto")  # jt is next: one inverted jump
    assert text[5:7] == ["w0 = 0x40000", "exit"]
    assert text[7] == "w2 = -0x80000000" or text[7] == "w2 = 0x80000000"  # k >= 2^31 via r2
    assert text[8].startswith("if r0 <= r2 goto")  # jt is next: jgt becomes jle
    with pytest.raises(ClassicError):
        to_ebpf(parse_listing("ld M[0]\nret a"))
    for name in ("hatype", "poff", "nla", "nlan"):
        with pytest.raises(NotSupported):
            to_ebpf(parse_listing(f"ld [{name}]\nret a"))


def test_dead_code_is_dropped() -> None:
    prog = parse_listing("ret #1\nld #2\nret a")
    assert len(to_ebpf(prog)) == 5


def test_div_by_x_zero_and_ifindex_without_device() -> None:
    prog = parse_listing("ld #7\nldx #0\ndiv x\nret #9")
    eng = Engines(prog, kernel=False)
    try:
        assert set(eng.results(FRAMES[0]).values()) == {0}
    finally:
        eng.close()


def test_long_translation_too_far() -> None:
    far = (
        [stmt(c.JMP | c.JA, 2400)]
        + [stmt(c.LD | c.W | c.ABS, 20000)] * 2400
        + [stmt(c.RET | c.RVAL_A)]
    )
    with pytest.raises(ClassicError) as ei:
        to_ebpf(far)
    assert ei.value.rule == "translate-jump"
    _ = errno


@settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))
@given(random_program(max_len=16))
def test_translation_of_any_program_is_an_error_or_verifies(prog) -> None:
    """Hostile input: a refused program is a ClassicError, an untranslatable load
    NotSupported; what translates passes bpfkit's verifier as a socket filter."""
    from bpfkit.verifier import verify

    try:
        insns = to_ebpf(prog)
    except (ClassicError, NotSupported):
        return
    res = verify(insns, prog_type="socket_filter", raise_on_error=False)
    assert res.ok, (prog, res.error)
