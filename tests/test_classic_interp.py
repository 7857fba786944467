"""The classic interpreter: libpcap's bpf_filter, a plain step interpreter and the kernel's
documented semantics (ancillary loads, negative offsets, division by zero) as oracles."""

from __future__ import annotations

import random

import pytest
from classic_reference import run_reference
from classic_strategies import (
    EXPRESSIONS,
    classic_program,
    libpcap,
    libpcap_filter,
    make_meta,
    make_packet,
    random_program,
    tcpdump_dump,
    tcpdump_path,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.classic import insn as c
from bpfkit.classic.insn import SockFilter, stmt
from bpfkit.classic.interp import PacketMeta, compile_classic, payload_offset, run_classic
from bpfkit.classic.listing import parse_decimal, parse_listing
from bpfkit.errors import RuntimeFault

PACKETS = [make_packet(random.Random(i)) for i in range(300)]


def _run(text: str, data: bytes = b"", **kw):
    return run_classic(parse_listing(text), data, **kw)


@pytest.mark.skipif(tcpdump_path() is None or libpcap() is None, reason="needs tcpdump/libpcap")
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_libpcap_programs_match_bpf_filter(expr: str) -> None:
    prog = parse_decimal(tcpdump_dump(expr, "-ddd"))
    cp = compile_classic(prog)
    matched = 0
    for i, pkt in enumerate(PACKETS):
        wire = len(pkt) + (i % 3) * 7  # some captures are truncated by their snap length
        want = libpcap_filter(prog, pkt, wire)
        got = cp.run(pkt, wire_len=wire)
        assert got.ret == want, (expr, pkt.hex())
        assert got == run_reference(prog, pkt, wire_len=wire)
        matched += bool(want)
    assert 0 <= matched <= len(PACKETS)


def _no_linux_extensions(prog: list[SockFilter]) -> bool:
    """Programs on which the kernel and libpcap must agree. Left out: Linux's ancillary and
    negative offsets, shifts by X, and indexed loads whose X may be large — the kernel adds
    X + k in 64 bits and truncates to an int offset (X + k >= 2**31 is a negative, Linux
    extension offset; 2**32 wraps to 0), where libpcap refuses the load."""
    indexed = any(i.code & 0x07 == c.LD and i.code & 0xE0 == c.IND for i in prog)
    for i in prog:
        if indexed and (
            i.code in (c.MISC | c.TAX, c.LDX | c.MEM)
            or (i.code == c.LDX | c.IMM and i.k >= 0x10000)
        ):
            return False  # X from A, a scratch slot or a large constant
        if i.code & 0x07 in (c.LD, c.LDX) and i.code & 0xE0 in (c.ABS, c.IND, c.MSH):
            if i.k >= 0x7FFF0000:  # negative, or made negative by X < 0x10000
                return False
        if i.code in (c.ALU | c.LSH | c.X, c.ALU | c.RSH | c.X):
            return False  # libpcap: shift by X >= 32 gives 0; the kernel masks to 5 bits
    return True


@pytest.mark.skipif(libpcap() is None, reason="needs libpcap")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classic_program(max_len=30, ancillary=False, negative_offsets=False), st.integers(0, 299))
def test_random_programs_match_bpf_filter(prog: list[SockFilter], i: int) -> None:
    if not _no_linux_extensions(prog):
        return
    pkt = PACKETS[i]
    assert compile_classic(prog).run(pkt).ret == libpcap_filter(prog, pkt)


@pytest.mark.skipif(libpcap() is None, reason="needs libpcap")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classic_program(max_len=30), st.integers(0, 299), st.integers(0, 80))
def test_libpcap_semantics_match_bpf_filter(prog: list[SockFilter], i: int, cut: int) -> None:
    """``semantics="libpcap"`` is libpcap's bpf_filter on every program, Linux extensions
    (ancillary and negative offsets) and shifts by X included, on whole and cut packets."""
    pkt = PACKETS[i][: max(0, len(PACKETS[i]) - cut)]
    wire = len(PACKETS[i])
    want = libpcap_filter(prog, pkt, wire)
    assert compile_classic(prog, semantics="libpcap").run(pkt, wire_len=wire).ret == want
    assert run_classic(prog, pkt, wire_len=wire, semantics="libpcap").ret == want


def test_libpcap_semantics_edges() -> None:
    """The places where the two rule sets differ, each way."""
    pkt = bytes(range(64))
    for text, data, kernel, pcap in [
        ("ld #1\nldx #33\nlsh x\nret a", b"", 2, 0),
        ("ld #0x80000000\nldx #32\nrsh x\nret a", b"", 0x80000000, 0),
        ("ld #0x80000000\nldx #31\nrsh x\nret a", b"", 1, 1),
        ("ldx #0xffffffff\nld [x + 2]\nret a", pkt, 0x01020304, 0),  # kernel: wraps to 1
        ("ld [proto]\nret #9", pkt, 9, 0),  # ancillary data: libpcap has none
        ("ldb [vlanp]\nret #9", pkt, 9, 0),
        ("ld #7\nldxb 4*([0x80000000]&0xf)\nret #9", pkt, 0, 0),
    ]:
        prog = parse_listing(text)
        assert run_classic(prog, data).ret == kernel, text
        assert run_classic(prog, data, semantics="libpcap").ret == pcap, text
        assert libpcap_filter(prog, data) == pcap, text
    with pytest.raises(ValueError):
        compile_classic(parse_listing("ret #1"), semantics="bsd")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classic_program(max_len=40), st.integers(0, 299), st.integers(0, 10**6))
def test_compiled_matches_step_interpreter(prog, i: int, seed: int) -> None:
    pkt = PACKETS[i]
    meta_a = make_meta(random.Random(seed))
    meta_b = make_meta(random.Random(seed))
    assert run_classic(prog, pkt, meta=meta_a) == run_reference(prog, pkt, meta=meta_b)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_program(max_len=16), st.integers(0, 299))
def test_unchecked_programs_fault_alike(prog, i: int) -> None:
    """Programs the checker would refuse: both interpreters fault at the same pc, or agree."""
    pkt = PACKETS[i]
    try:
        want = run_reference(prog, pkt)
    except RuntimeFault as e:
        with pytest.raises(RuntimeFault) as ei:
            run_classic(prog, pkt)
        assert (ei.value.pc, ei.value.insns) == (e.pc, e.insns)
        return
    assert run_classic(prog, pkt) == want


def test_semantics() -> None:
    pkt = bytes(range(64))
    assert _run("ld [60]\nret a", pkt).ret == 0x3C3D3E3F
    assert _run("ld [61]\nret #7", pkt).ret == 0  # past the end: the program ends with 0
    assert _run("ldh [62]\nret a", pkt).ret == 0x3E3F
    assert _run("ldb [64]\nret #1", pkt).ret == 0
    assert _run("ldx #3\nld [x + 60]\nret #1", pkt).ret == 0
    assert _run("ldxb 4*([14]&0xf)\ntxa\nret a", pkt).ret == (14 & 0xF) * 4
    assert _run("ld #10\nldx #0\ndiv x\nret #5").ret == 0
    assert _run("ld #10\nldx #0\nmod x\nret #5").ret == 0
    assert _run("ld #10\nldx #3\nmod x\nret a").ret == 1
    assert _run("ld #1\nldx #33\nlsh x\nret a").ret == 2  # shift counts use 5 bits
    assert _run("ld #0x80000000\nldx #63\nrsh x\nret a").ret == 1
    assert _run("ld #1\nneg\nret a").ret == 0xFFFFFFFF
    assert _run("ld #0xffffffff\nadd #2\nret a").ret == 1
    assert _run("ld #0\nsub #1\nret a").ret == 0xFFFFFFFF
    assert _run("ld #0x10000\nmul #0x10000\nret a").ret == 0
    assert _run("ld #pktlen\nret a", pkt, wire_len=1500).ret == 1500
    assert _run("ldx #pktlen\ntxa\nret a", pkt).ret == 64
    assert _run("st M[3]\nld #9\nldx M[3]\ntxa\nret a").ret == 0
    r = _run("ld #7\ntax\nld #5\njgt x jt 4 jf 5\nret #1\nret #2\nret #3")
    assert (r.ret, r.insns) == (2, 5)
    assert (
        _run("ld #0x80000000\njge #0x7fffffff jt 2 jf 3\nret #1\nret #2\nret #3").ret == 1
    )  # unsigned
    assert _run("ld #6\njset #1 jt 2 jf 3\nret #1\nret #2\nret #3").ret == 2


def test_little_endian_seccomp_data() -> None:
    data = (59).to_bytes(4, "little") + (0xC000003E).to_bytes(4, "little") + bytes(56)
    prog = parse_listing("ld [4]\njeq #0xc000003e jt 2 jf 4\nld [0]\nret a\nret #0")
    assert run_classic(prog, data, byteorder="little").ret == 59
    assert run_classic(prog, data).ret == 0


def test_ancillary_loads_read_meta() -> None:
    meta = PacketMeta(
        protocol=0x86DD,
        pkttype=3,
        ifindex=7,
        mark=0xDEADBEEF,
        queue=2,
        hatype=772,
        rxhash=0x12345678,
        cpu=1,
        vlan_tci=0x2064,
        vlan_tpid=0x88A8,
    )
    want = {
        "proto": 0x86DD,
        "type": 3,
        "ifidx": 7,
        "mark": 0xDEADBEEF,
        "queue": 2,
        "hatype": 772,
        "rxhash": 0x12345678,
        "cpu": 1,
        "vlan_tci": 0x2064,
        "vlanp": 1,
        "vlan_tpid": 0x88A8,
    }
    for name, value in want.items():
        for size in ("ld", "ldh", "ldb"):  # the size is ignored for ancillary loads
            assert _run(f"{size} [{name}]\nret a", b"", meta=meta).ret == value, name
    assert _run("ld [vlanp]\nret a", b"", meta=PacketMeta()).ret == 0
    assert _run("ld #6\nldx #3\nld [xor_x]\nret a").ret == 5
    r1 = _run("ld [random]\nret a", meta=PacketMeta(random=random.Random(5))).ret
    assert r1 == random.Random(5).getrandbits(32)
    # no device: ifindex/hatype end the program returning A (the kernel's translation)
    r = _run("ld #42\nld [ifidx]\nret #1", meta=PacketMeta(dev=False))
    assert (r.ret, r.insns) == (42, 2)


def test_unknown_ancillary_faults_when_reached() -> None:
    prog = [stmt(c.LD | c.W | c.ABS, c.SKF_AD_OFF + 2), stmt(c.RET | c.RVAL_A)]
    with pytest.raises(RuntimeFault) as ei:
        run_classic(prog, b"")
    assert ei.value.pc == 0


def test_negative_offsets_reach_the_headers() -> None:
    frame = bytes.fromhex("ffffffffffff0011223344550800") + bytes([0x45]) + bytes(19)
    # an AF_PACKET socket sees the frame from the link layer
    link = PacketMeta(net_offset=14, mac_offset=0)
    assert _run("ldb [-1048576]\nret a", frame, meta=link).ret == 0x45  # SKF_NET_OFF
    assert _run("ldh [-2097140]\nret a", frame, meta=link).ret == 0x0800  # SKF_LL_OFF + 12
    # a UDP socket (or BPF_PROG_TEST_RUN) sees it from the network header
    net = PacketMeta(net_offset=0, mac_offset=-14, headroom=frame[:14])
    data = frame[14:]
    assert _run("ldb [-1048576]\nret a", data, meta=net).ret == 0x45
    assert _run("ldh [-2097140]\nret a", data, meta=net).ret == 0x0800
    assert _run("ld [-2097140]\nret a", data, meta=net).ret == 0x08004500  # straddles
    assert _run("ldx #0xffe00006\nldh [x + 0]\nret a", data, meta=net).ret == 0x0011
    assert _run("ldb [-2097152]\nret #1", data, meta=PacketMeta(mac_offset=None)).ret == 0
    assert _run("ldb [-3000000]\nret #1", data, meta=net).ret == 0
    assert _run("ldxb 4*([-1048576]&0xf)\ntxa\nret a", data, meta=net).ret == 20


def test_netlink_attribute_search() -> None:
    def nla(t: int, payload: bytes) -> bytes:
        ln = 4 + len(payload)
        return ln.to_bytes(2, "little") + t.to_bytes(2, "little") + payload + bytes(-ln % 4)

    inner = nla(5, b"\x01\x02") + nla(9, b"abcd")
    msg = bytes(16) + nla(1, b"xyz") + nla(2 | 0x8000, inner) + nla(3, b"")
    prog = "ld #16\nldx #3\nld [nla]\nret a"
    assert _run(prog, msg).ret == 16 + 8 + 4 + len(inner)
    assert _run("ld #16\nldx #7\nld [nla]\nret a", msg).ret == 0
    nest_at = 16 + 8
    assert _run(f"ld #{nest_at}\nldx #9\nld [nlan]\nret a", msg).ret == nest_at + 4 + 8
    assert _run(f"ld #{len(msg)}\nldx #1\nld [nla]\nret a", msg).ret == 0


def test_payload_offset() -> None:
    pkt = PACKETS
    ip_tcp = (
        bytes(14) + bytes([0x46]) + bytes(8) + b"\x06" + bytes(14) + bytes(12) + b"\x80" + bytes(30)
    )
    meta = PacketMeta(protocol=0x0800)
    assert payload_offset(ip_tcp, meta) == 14 + 24 + 32
    assert _run("ld [poff]\nret a", ip_tcp, meta=meta).ret == 70
    assert _run("ld [poff]\nret a", ip_tcp, meta=PacketMeta(pay_offset=9)).ret == 9
    assert payload_offset(pkt[0][:10], PacketMeta(protocol=0x86DD)) == 0


def test_faults_name_the_pc() -> None:
    with pytest.raises(RuntimeFault) as ei:
        run_classic([stmt(c.LD | c.IMM, 1), SockFilter(0x0F, 0, 0, 0)], b"")
    assert ei.value.pc == 1 and ei.value.insns == 2
    with pytest.raises(RuntimeFault) as ei:
        run_classic([stmt(c.JMP | c.JA, 5), stmt(c.RET | c.K, 0)], b"")
    assert ei.value.pc == 6
    with pytest.raises(RuntimeFault) as ei:
        run_classic([stmt(c.LD | c.IMM, 1)], b"")
    assert "out of the program" in str(ei.value)
    with pytest.raises(RuntimeFault):
        run_classic([stmt(c.LD | c.MEM, 16), stmt(c.RET | c.RVAL_A)], b"")


def test_big_programs_compile() -> None:
    # 4096 instructions: a chain of tests each jumping to a shared tail
    n = 4095
    prog = []
    for i in range(n - 3):
        prog.append(c.jump(c.JMP | c.JEQ | c.K, i, min(255, n - 3 - i), 0))
    prog += [stmt(c.RET | c.K, 1), stmt(c.RET | c.K, 2), stmt(c.RET | c.RVAL_A)]
    prog = prog[: n - 3] + prog[-3:]
    cp = compile_classic(prog)
    r = cp.run(b"")
    assert r == run_reference(prog, b"")
    # a diamond lattice whose paths would explode if every tail were copied
    lattice = []
    for _ in range(60):
        lattice += [c.jump(c.JMP | c.JSET | c.K, 1, 0, 1), stmt(c.ALU | c.ADD | c.K, 3)]
        lattice += [stmt(c.ALU | c.MUL | c.K, 5)] * 30
    lattice.append(stmt(c.RET | c.RVAL_A))
    cp = compile_classic(lattice)
    assert len(cp.source) < 2_000_000
    for a in (0, 1):
        prog = [stmt(c.LD | c.IMM, a)] + lattice
        assert run_classic(prog, b"") == run_reference(prog, b"")
