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
    eng = Engines(prog, kernel)
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


@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    classic_program(max_len=24, ancillary_set=ANC_DETERMINISTIC, negative_offsets=True),
    st.integers(0, len(FRAMES) - 8),
)
def test_random_programs_with_header_offsets_all_engines(kernel_if_available, prog, i: int):
    """Negative offsets (SKF_NET_OFF/SKF_LL_OFF, the Ethernet header in front of the data)
    included: the classic interpreter, the VM's interpreter and JIT, and the kernel."""
    _check_all(prog, FRAMES[i : i + 6] + WRAPPED[i % 50 : i % 50 + 2], kernel_if_available)


# tcpdump-style filters for a socket that sees packets from the network header (a
# tcpdump -d listing): the link-layer header through SKF_LL_OFF, the IP header through
# SKF_NET_OFF
_NET, _LL = c.SKF_NET_OFF, c.SKF_LL_OFF
HEADER_FILTERS = {
    # ether proto \\ip and ip proto \\tcp
    "ll ethertype, net proto": f"""
        (000) ldh [{_LL + 12}]
        (001) jeq #0x800 jt 2 jf 5
        (002) ldb [{_NET + 9}]
        (003) jeq #0x6 jt 4 jf 5
        (004) ret #65535
        (005) ret #0""",
    # tcp dst port 80 through the network header: IHL with ldxb, then [x + SKF_NET_OFF + 2]
    "net ihl, tcp port": f"""
        (000) ldb [{_NET + 9}]
        (001) jeq #0x6 jt 2 jf 6
        (002) ldxb 4*([{_NET}]&0xf)
        (003) ldh [x + {_NET + 2}]
        (004) jeq #0x50 jt 5 jf 6
        (005) ret #-1
        (006) ret #0""",
    # ether src 01:02:03:04:05:06: in front of the data
    "ll src mac": f"""
        (000) ld [{_LL + 6}]
        (001) jeq #0x1020304 jt 2 jf 5
        (002) ldh [{_LL + 10}]
        (003) jeq #0x506 jt 4 jf 5
        (004) ret #1
        (005) ret #0""",
    # loads straddling the end of the MAC header and the end of the packet
    "ll straddle": f"""
        (000) ld [{_LL + 12}]
        (001) tax
        (002) ld #pktlen
        (003) add #12
        (004) st M[0]
        (005) ldx M[0]
        (006) ldh [x + {_LL}]
        (007) ret a""",
    # TCP: an offset below SKF_LL_OFF fails (the filter returns 0); else one just below
    # SKF_NET_OFF (the MAC header's 0xfffff-th byte) fails
    "no header": f"""
        (000) ldb [{_NET + 9}]
        (001) jeq #0x6 jt 2 jf 4
        (002) ldb [{_LL - 1}]
        (003) ret #7
        (004) jeq #0x11 jt 5 jf 6
        (005) ldb [{_NET - 1}]
        (006) ret #8""",
}


def _tcp_frame(ihl: int, dport: int) -> bytes:
    """Ethernet, IPv4 with ``ihl`` words of header (options zero), TCP to ``dport``."""
    ip = bytearray(4 * ihl)
    ip[0], ip[9] = 0x40 | ihl, 6
    ip[2:4] = (4 * ihl + 20).to_bytes(2, "big")
    ip[12:20] = bytes([10, 0, 0, 1, 10, 0, 0, 2])
    tcp = (40000).to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(16)
    return bytes(6) + bytes.fromhex("010203040506") + b"\x08\x00" + bytes(ip) + tcp


HEADER_FRAMES = [_tcp_frame(ihl, port) for ihl in (5, 6, 15) for port in (80, 81)]


@pytest.mark.parametrize("name", sorted(HEADER_FILTERS))
def test_tcpdump_style_header_filters_end_to_end(name: str, kernel_if_available) -> None:
    """Hand-written filters addressing the headers (as a cooked or network-layer socket's
    filter does) agree on every engine, and match where they should."""
    prog = parse_listing(HEADER_FILTERS[name])
    frames = HEADER_FRAMES + FRAMES + WRAPPED
    assert _check_all(prog, frames, kernel_if_available) == len(frames)
    eng = Engines(prog, kernel=False)
    try:
        hits = sum(eng.results(f)["jit"] != 0 for f in frames)
    finally:
        eng.close()
    assert hits, f"{name} matched none of the frames: the test would not see a wrong header"


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
