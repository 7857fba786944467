"""Program types: context layouts and conversion, test-run semantics — checked against the
running kernel field by field.

Small hand-written programs read one context field each (or call one packet helper) and
return it; the VM and ``BPF_PROG_TEST_RUN`` must return the same value for the same
packet and context.
"""

from __future__ import annotations

import errno
import os
import struct

import pytest

from bpfkit.errors import NotSupported, VerifierError
from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R6,
    R10,
    Label,
    add64,
    assemble,
    call,
    exit_,
    jeq,
    ld_abs,
    ldx,
    mov64,
    st,
    stx,
    sub64,
)
from bpfkit.uapi.ctx import CTX_ACCESS, SK_BUFF, XDP_MD, check_ctx_access
from bpfkit.uapi.enums import HELPER_IDS, ProgType
from bpfkit.uapi.progtypes import HELPERS_BY_PROG_TYPE, helper_allowed, prog_type_info
from bpfkit.vm.progtypes import TestRunError, convert_ctx_access, pointer_slots
from bpfkit.vm.runtime import VMRuntime

SKB_TYPES = (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.CGROUP_SKB)


def frame(dst_mac: bytes = bytes(6), ethertype: bytes = b"\x08\x00", body: bytes = b"") -> bytes:
    if not body and ethertype == b"\x08\x00":
        body = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]) + bytes(
            20
        )
    return dst_mac + b"\x02\x00\x00\x00\x00\x09" + ethertype + body


FRAMES = {
    "host": frame(),
    "other": frame(b"\x02\x11\x22\x33\x44\x55"),
    "broadcast": frame(b"\xff" * 6),
    "multicast": frame(b"\x01\x00\x5e\x00\x00\x01"),
    "ipv6": frame(
        ethertype=b"\x86\xdd",
        body=bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(range(32)) + bytes(8),
    ),
    "802.3": frame(ethertype=b"\x00\x2e", body=b"\xff\xff" + bytes(44)),
    "802.2": frame(ethertype=b"\x00\x2e", body=b"\xaa\xaa" + bytes(44)),
}

SKB_CTX = bytearray(SK_BUFF.size)
struct.pack_into("<I", SKB_CTX, SK_BUFF.offset_of("mark"), 0x1234)
struct.pack_into("<I", SKB_CTX, SK_BUFF.offset_of("priority"), 7)
struct.pack_into("<5I", SKB_CTX, SK_BUFF.offset_of("cb"), 1, 2, 3, 4, 5)
struct.pack_into("<Q", SKB_CTX, SK_BUFF.offset_of("tstamp"), 99)
struct.pack_into("<I", SKB_CTX, SK_BUFF.offset_of("gso_segs"), 2)
struct.pack_into("<I", SKB_CTX, SK_BUFF.offset_of("gso_size"), 1400)
SKB_CTX = bytes(SKB_CTX)


# ---- running one program on both sides --------------------------------------------------
class Both:
    def __init__(self) -> None:
        self.rt = VMRuntime()
        self.n = 0

    def vm(self, ptype, insns, data=b"", ctx=None):
        self.n += 1
        p = self.rt.load_program(f"p{self.n}", ptype, insns)
        return p.test_run(data=data, ctx=ctx)

    def kernel(self, ptype, insns, data=b"", ctx=None):
        from bpfkit.kernel import sys as ks

        fd = ks.prog_load(int(ptype), insns)
        try:
            return ks.prog_test_run(fd, data=data, ctx=ctx)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.rt.close()


@pytest.fixture
def both():
    b = Both()
    yield b
    b.close()


CB0 = SK_BUFF.offset_of("cb")


def emit(ptype: ProgType, body: list, reg=R0) -> list:
    """``body`` computes ``reg``; cgroup skb programs must return 0/1, so they store it in
    ``cb[0]`` (seen in ``ctx_out``) instead of returning it."""
    if ptype != ProgType.CGROUP_SKB:
        return assemble([*body, *([mov64(R0, reg)] if reg != R0 else []), exit_()])
    return assemble([*body, stx(8, R1, CB0, reg), mov64(R0, 1), exit_()])


def field_programs(ptype: ProgType):
    """(name, program) reading every readable field of the type's context."""
    acc = CTX_ACCESS[ptype]
    out = []
    for f in acc.layout.fields:
        if f.name not in acc.read or f.kind != "scalar":
            continue
        for off in range(f.offset, f.end, 4 if f.size > 8 else f.size):
            size = f.size if f.size <= 8 else 4
            if size not in f.sizes:
                size = max(s for s in f.sizes if f.size % s == 0)
            out.append((f"{f.name}+{off - f.offset}", emit(ptype, [ldx(size, R2, R1, off)], R2)))
    return out


def packet_span_program(ptype: ProgType, start: str, end: str):
    layout = CTX_ACCESS[ptype].layout
    return emit(
        ptype,
        [
            ldx(4, R2, R1, layout.offset_of(start)),
            ldx(4, R3, R1, layout.offset_of(end)),
            sub64(R3, R2),
        ],
        R3,
    )


def sock_program(ptype: ProgType, field: str):
    from bpfkit.uapi.ctx import BPF_SOCK

    return emit(
        ptype,
        [
            ldx(8, R2, R1, SK_BUFF.offset_of("sk")),
            mov64(R3, 0xFFF),
            jeq(R2, 0, "out"),
            ldx(4, R3, R2, BPF_SOCK.offset_of(field)),
            Label("out"),
        ],
        R3,
    )


# ---- layout/access tables and conversion (no kernel needed) ---------------------------
def test_tables_are_consistent():
    for ptype, names in HELPERS_BY_PROG_TYPE.items():
        assert all(n in HELPER_IDS for n in names), ptype
    assert helper_allowed(ProgType.XDP, HELPER_IDS["xdp_adjust_head"])
    assert not helper_allowed(ProgType.SOCKET_FILTER, HELPER_IDS["xdp_adjust_head"])
    assert not helper_allowed(ProgType.KPROBE, HELPER_IDS["skb_load_bytes"])
    assert check_ctx_access(ProgType.XDP, 0, 4).name == "data"
    assert check_ctx_access(ProgType.XDP, 0, 2) is None  # no narrow pointer loads
    assert check_ctx_access(ProgType.SOCKET_FILTER, 76, 4) is None  # no data for sk filters
    assert check_ctx_access(ProgType.SCHED_CLS, 8, 4, write=True).name == "mark"
    assert check_ctx_access(ProgType.SCHED_CLS, 8, 2, write=True) is None
    assert check_ctx_access(ProgType.SCHED_CLS, 48, 8, write=True).name == "cb"
    assert check_ctx_access(ProgType.SCHED_CLS, 17, 1).name == "protocol"
    assert prog_type_info(ProgType.XDP).returns[2] == "XDP_PASS"
    assert pointer_slots(CTX_ACCESS[ProgType.XDP]) == {"data": 24, "data_end": 32, "data_meta": 40}


def test_conversion_rewrites_pointer_loads_only():
    prog = assemble(
        [
            ldx(4, R2, R1, 0),  # data
            ldx(4, R3, R1, 4),  # data_end
            ldx(4, R6, R1, 12),  # ingress_ifindex: unchanged
            mov64(R0, 2),
            exit_(),
        ]
    )
    out = convert_ctx_access(prog, CTX_ACCESS[ProgType.XDP])
    assert (out[0].opcode, out[0].off) == (0x79, 24)
    assert (out[1].opcode, out[1].off) == (0x79, 32)
    assert out[2] == prog[2]


def test_conversion_follows_spills_and_copies():
    prog = assemble(
        [
            mov64(R6, R1),
            stx(8, R10, -8, R6),
            mov64(R1, 0),
            ldx(8, R2, R10, -8),
            ldx(4, R3, R2, 4),  # ctx->data_end through a spilled copy
            mov64(R0, 0),
            exit_(),
        ]
    )
    out = convert_ctx_access(prog, CTX_ACCESS[ProgType.XDP])
    assert (out[4].opcode, out[4].off) == (0x79, 32)


@pytest.mark.parametrize(
    "insns,message",
    [
        ([ldx(4, R0, R1, 2), exit_()], "invalid bpf_context access off=2 size=4"),
        ([st(4, R1, 0, 1), mov64(R0, 0), exit_()], "BPF_ST stores into R1 ctx is not allowed"),
        (
            [mov64(R2, 0), stx(4, R1, 0, R2), mov64(R0, 0), exit_()],
            "invalid bpf_context access off=0 size=4",
        ),
        ([add64(R1, 4), ldx(4, R0, R1, 0), exit_()], "dereference of modified ctx ptr"),
    ],
)
def test_conversion_rejects_bad_accesses(insns, message):
    with pytest.raises(VerifierError, match=message):
        convert_ctx_access(insns, CTX_ACCESS[ProgType.XDP])


def test_helper_not_allowed_is_a_load_error():
    rt = VMRuntime()
    with pytest.raises(VerifierError, match="cannot use helper bpf_skb_load_bytes#26"):
        rt.load_program("x", ProgType.XDP, [call(26), exit_()])
    rt.close()


def test_test_run_input_checks():
    rt = VMRuntime()
    skb = rt.load_program("s", ProgType.SCHED_CLS, [mov64(R0, 0), exit_()])
    xdp = rt.load_program("x", ProgType.XDP, [mov64(R0, 2), exit_()])
    kp = rt.load_program("k", ProgType.KPROBE, [mov64(R0, 0), exit_()])
    with pytest.raises(TestRunError) as e:
        skb.test_run(data=bytes(13))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(TestRunError):
        skb.test_run(data=bytes(3713))
    with pytest.raises(TestRunError):
        skb.test_run(data=bytes(14), ctx=b"\x01" + bytes(191))  # len is not settable
    with pytest.raises(TestRunError):
        xdp.test_run(data=bytes(14), ctx=struct.pack("<III", 0, 99, 0))  # data_end != size
    with pytest.raises(NotSupported):
        kp.test_run()
    assert kp.fire({"di": 1}).retval == 0
    rt.close()


# ---- agreement with the kernel -------------------------------------------------------
@pytest.mark.kernel
@pytest.mark.parametrize("ptype", SKB_TYPES, ids=lambda t: t.name.lower())
def test_skb_fields_match_kernel(both, ptype):
    progs = field_programs(ptype)
    if "data" in CTX_ACCESS[ptype].read:
        progs.append(("data_end-data", packet_span_program(ptype, "data", "data_end")))
    for field in ("family", "state", "src_ip4", "dst_ip4", "src_port", "dst_port"):
        progs.append((f"sk.{field}", sock_program(ptype, field)))
    ctxs = (None, SKB_CTX) if ptype != ProgType.CGROUP_SKB else (bytes(192), SKB_CTX)
    mismatches = []
    for fname, data in FRAMES.items():
        for ctx in ctxs:
            for name, insns in progs:
                k = both.kernel(ptype, insns, data, ctx)
                v = both.vm(ptype, insns, data, ctx)
                got = (v.retval, v.data_out, v.ctx_out or b"")
                want = (k.retval, k.data_out, k.ctx_out)
                if got != want:
                    mismatches.append((fname, ctx is not None, name, got, want))
    assert not mismatches, mismatches[:5]


@pytest.mark.kernel
def test_xdp_fields_match_kernel(both):
    progs = field_programs(ProgType.XDP) + [
        ("data_end-data", packet_span_program(ProgType.XDP, "data", "data_end")),
        ("data-data_meta", packet_span_program(ProgType.XDP, "data_meta", "data")),
    ]
    ctxs = [None] + [struct.pack("<6I", meta, 64, 0, 0, 0, 0) for meta in (0, 8, 48)]
    for ctx in ctxs:
        for name, insns in progs:
            k = both.kernel(ProgType.XDP, insns, (FRAMES["host"] + bytes(10)), ctx)
            v = both.vm(ProgType.XDP, insns, (FRAMES["host"] + bytes(10)), ctx)
            assert (v.retval, v.data_out, v.ctx_out or b"") == (k.retval, k.data_out, k.ctx_out), (
                name,
                ctx,
            )


def xdp_helper_program(helper: str, delta: int):
    return assemble(
        [
            mov64(R6, R1),
            mov64(R2, delta),
            call(HELPER_IDS[helper]),
            exit_(),
        ]
    )


@pytest.mark.kernel
@pytest.mark.parametrize(
    "helper,deltas",
    [
        ("xdp_adjust_head", [-256, -217, -216, -215, -100, -1, 0, 1, 49, 50, 51, 64]),
        ("xdp_adjust_tail", [-51, -50, -49, -1, 0, 1, 100, 3456, 3457, 4000]),
        ("xdp_adjust_meta", [-256, -220, -217, -216, -36, -32, -4, -3, 0, 4]),
    ],
)
def test_xdp_adjust_helpers_match_kernel(both, helper, deltas):
    data = FRAMES["host"] + bytes(10)
    for delta in deltas:
        insns = xdp_helper_program(helper, delta)
        try:
            k = both.kernel(ProgType.XDP, insns, data)
        except VerifierError as e:
            # some kernel builds refuse the helper for XDP: then the VM refuses it too
            assert "cannot use helper" in str(e), e
            with pytest.raises(VerifierError, match="cannot use helper"):
                both.vm(ProgType.XDP, insns, data)
            continue
        v = both.vm(ProgType.XDP, insns, data)
        assert (v.retval, v.data_out) == (k.retval, k.data_out), delta


@pytest.mark.kernel
def test_xdp_large_frame_matches_kernel(both):
    insns = packet_span_program(ProgType.XDP, "data", "data_end")
    for size in (3520, 3521, 5000):
        data = bytes(i % 251 for i in range(size))
        k = both.kernel(ProgType.XDP, insns, data)
        v = both.vm(ProgType.XDP, insns, data)
        assert (v.retval, v.data_out) == (k.retval, k.data_out), size


@pytest.mark.kernel
def test_ld_abs_socket_filter_matches_kernel(both):
    insns = assemble([mov64(R6, R1), ld_abs(1, 9), exit_()])  # the IP protocol byte
    for data in FRAMES.values():
        k = both.kernel(ProgType.SOCKET_FILTER, insns, data)
        v = both.vm(ProgType.SOCKET_FILTER, insns, data)
        assert v.retval == k.retval


@pytest.mark.kernel
def test_skb_writes_and_ctx_out_match_kernel(both):
    insns = assemble(
        [
            mov64(R2, 77),
            stx(4, R1, SK_BUFF.offset_of("mark"), R2),
            stx(4, R1, SK_BUFF.offset_of("tc_classid"), R2),
            stx(4, R1, SK_BUFF.offset_of("cb") + 8, R2),
            mov64(R0, 0),
            exit_(),
        ]
    )
    k = both.kernel(ProgType.SCHED_CLS, insns, FRAMES["host"], SKB_CTX)
    v = both.vm(ProgType.SCHED_CLS, insns, FRAMES["host"], SKB_CTX)
    assert v.ctx_out == k.ctx_out
    assert struct.unpack_from("<I", v.ctx_out, 8)[0] == 77


@pytest.mark.kernel
def test_raw_tracepoint_args_match_kernel(both):
    insns = assemble([ldx(8, R2, R1, 8), ldx(4, R0, R1, 16), add64(R0, R2), exit_()])
    args = struct.pack("<3Q", 1, 1000, 5)
    from bpfkit.kernel import sys as ks

    fd = ks.prog_load(ProgType.RAW_TRACEPOINT, insns)
    try:
        k = ks.prog_test_run(fd, ctx=args, repeat=0, ctx_out_size=0)
        with pytest.raises(OSError):
            ks.prog_test_run(fd, ctx=args[:16], repeat=0, ctx_out_size=0)
    finally:
        os.close(fd)
    rt = VMRuntime()
    p = rt.load_program("r", ProgType.RAW_TRACEPOINT, insns)
    assert p.test_run(ctx=args).retval == k.retval == 1005
    with pytest.raises(TestRunError):
        p.test_run(ctx=args[:16])  # shorter than what the program reads
    rt.close()
    _ = XDP_MD


def test_syscall_context_in_and_out():
    insns = assemble(
        [
            ldx(4, R2, R1, 0),
            add64(R2, 1),
            stx(4, R1, 4, R2),
            mov64(R0, R2),
            exit_(),
        ]
    )
    rt = VMRuntime()
    p = rt.load_program("s", ProgType.SYSCALL, insns)
    r = p.test_run(ctx=struct.pack("<II", 41, 0))
    assert r.retval == 42 and r.ctx_out == struct.pack("<II", 41, 42)
    with pytest.raises(TestRunError):
        p.test_run(ctx=b"\0" * 4)  # the program reads 8 bytes
    with pytest.raises(TestRunError):
        p.test_run(ctx=bytes(8), repeat=2)
    rt.close()


@pytest.mark.kernel
def test_syscall_retval_matches_kernel():
    from bpfkit.kernel import sys as ks

    insns = assemble([ldx(4, R2, R1, 0), add64(R2, 1), stx(4, R1, 4, R2), mov64(R0, R2), exit_()])
    fd = ks.prog_load(ProgType.SYSCALL, insns, prog_flags=1 << 4)  # BPF_F_SLEEPABLE
    try:
        k = ks.prog_test_run(fd, ctx=struct.pack("<II", 41, 0), repeat=0, ctx_out_size=0)
    finally:
        os.close(fd)
    rt = VMRuntime()
    v = rt.load_program("s", ProgType.SYSCALL, insns).test_run(ctx=struct.pack("<II", 41, 0))
    assert v.retval == k.retval == 42
    rt.close()


def test_fired_tracing_contexts():
    rt = VMRuntime()
    # perf_event: sample_period at 168, regs->rdi at 112
    pe = rt.load_program(
        "pe",
        ProgType.PERF_EVENT,
        assemble([ldx(8, R2, R1, 168), ldx(8, R0, R1, 112), add64(R0, R2), exit_()]),
    )
    assert pe.fire({"sample_period": 1000, "rdi": 5}).retval == 1005
    # tracepoint: a field after the 8-byte common header
    tp = rt.load_program("tp", ProgType.TRACEPOINT, assemble([ldx(4, R0, R1, 8), exit_()]))
    assert tp.fire(bytes(8) + struct.pack("<I", 77)).retval == 77
    with pytest.raises(VerifierError):
        rt.load_program("tp0", ProgType.TRACEPOINT, assemble([ldx(4, R0, R1, 0), exit_()]))
    # kprobe: register names, aliases and PT_REGS_PARMn
    kp = rt.load_program("kp", ProgType.KPROBE, assemble([ldx(8, R0, R1, 112), exit_()]))
    assert kp.fire({"parm1": 9}).retval == kp.fire({"di": 9}).retval == 9
    with pytest.raises(ValueError):
        kp.fire({"nope": 1})
    rt.close()
