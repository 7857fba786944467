"""Capture files: bpfkit's pcap/pcapng readers and pcap writer against libpcap's reader.

Files of every supported shape (pcap in either byte order with µs or ns timestamps;
pcapng with several sections, byte orders, interfaces, timestamp resolutions, EPB, SPB,
PB and unknown blocks) are read by bpfkit and by libpcap (pcap_next_ex, in-process) and
must give the same packets. Damaged files — every truncation point, random corruption —
must give the packets before the damage and then one CaptureError, from the Python
reader and from the native scan alike; never another exception, a hang, or memory that
grows with the file.
"""

from __future__ import annotations

import ctypes
import os
import random
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_filter_libpcap import LIBPCAP, needs_libpcap

from bpfkit.errors import CaptureError, FilterSyntaxError
from bpfkit.pcap import CaptureReader, PcapWriter, compile_filter, read_packets
from bpfkit.pcap.scan import filter_capture
from bpfkit.pcap.synth import packet_mix

# -- libpcap's reader -----------------------------------------------------------------


class _Hdr(ctypes.Structure):
    _fields_ = [
        ("sec", ctypes.c_long),
        ("frac", ctypes.c_long),
        ("caplen", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
    ]


def libpcap_read(path) -> tuple[list[tuple[int, bytes, int]], str | None]:
    """(packets as (ts_ns, data, wirelen), error or None) as libpcap reads the file."""
    lib = LIBPCAP.lib
    lib.pcap_open_offline_with_tstamp_precision.restype = ctypes.c_void_p
    lib.pcap_open_offline_with_tstamp_precision.argtypes = [
        ctypes.c_char_p,
        ctypes.c_uint,
        ctypes.c_char_p,
    ]
    lib.pcap_next_ex.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.POINTER(_Hdr)),
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
    ]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    err = ctypes.create_string_buffer(256)
    h = lib.pcap_open_offline_with_tstamp_precision(os.fsencode(path), 1, err)
    if not h:
        return [], err.value.decode()
    out = []
    hdr = ctypes.POINTER(_Hdr)()
    data = ctypes.POINTER(ctypes.c_ubyte)()
    error = None
    try:
        while True:
            rc = lib.pcap_next_ex(h, ctypes.byref(hdr), ctypes.byref(data))
            if rc == 1:
                hd = hdr.contents
                out.append(
                    (hd.sec * 1_000_000_000 + hd.frac, ctypes.string_at(data, hd.caplen), hd.len)
                )
            elif rc == -2:
                break
            else:
                error = LIBPCAP.lib.pcap_geterr(h).decode()
                break
    finally:
        lib.pcap_close(h)
    return out, error


def ours(path) -> tuple[list[tuple[int, bytes, int]], str | None]:
    out = []
    try:
        for p in CaptureReader(path):
            out.append((p.ts_ns, p.data, p.wirelen))
    except CaptureError as e:
        return out, str(e)
    return out, None


# -- file builders ----------------------------------------------------------------------


def sample_packets(n: int = 40, seed: int = 3) -> list[tuple[bytes, int, int]]:
    rng = random.Random(seed)
    return [
        (f, wl, 1_600_000_000_000_000_000 + i * 1_234_567 + rng.randrange(1000))
        for i, (f, wl) in enumerate(packet_mix(n, seed))
    ]


def build_pcap(pkts, order: str = "<", nanosecond: bool = False, linktype: int = 1) -> bytes:
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = bytearray(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
    for data, wirelen, ts in pkts:
        sec, rem = divmod(ts, 1_000_000_000)
        frac = rem if nanosecond else rem // 1000
        out += struct.pack(order + "IIII", sec, frac, len(data), wirelen) + data
    return bytes(out)


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order: str) -> bytes:
    opts = option(order, 4, b"bpfkit test") + option(order, 0, b"")
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def idb(order: str, linktype: int = 1, tsresol: int | None = None, tsoffset: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(order, 9, bytes([tsresol]))
    if tsoffset:
        opts += option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += option(order, 0, b"")
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, 262144) + opts)


def epb(order: str, iface: int, ts_units: int, data: bytes, wirelen: int) -> bytes:
    body = struct.pack(
        order + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), wirelen
    )
    return block(
        order,
        6,
        body + data + b"\0" * (-len(data) % 4) + option(order, 1, b"c") + option(order, 0, b""),
    )


def build_pcapng(
    pkts, order: str = "<", resol: int | None = 9, switch: bool = True
) -> tuple[bytes, list]:
    """A pcapng of two sections (with ``switch``, the second in the other byte order),
    unknown blocks, EPB and SPB; returns the bytes and the packets a reader must see."""
    units = 10 ** (resol if resol is not None and resol < 128 else 6)
    if resol is not None and resol & 0x80:
        units = 2 ** (resol & 0x7F)
    out = shb(order) + idb(order, 1, resol) + block(order, 0xB0BA, b"unknown block body")
    expect = []
    half = len(pkts) // 2
    for data, wirelen, ts in pkts[:half]:
        t = ts * units // 1_000_000_000
        out += epb(order, 0, t, data, wirelen)
        expect.append((t * 1_000_000_000 // units, data, wirelen))
    other = (">" if order == "<" else "<") if switch else order
    out += shb(other) + idb(other, 1, 9) + block(other, 5, struct.pack(other + "III", 0, 0, 0))
    for data, wirelen, ts in pkts[half:]:
        out += epb(other, 0, ts, data, wirelen)
        expect.append((ts, data, wirelen))
    spb_data = pkts[0][0]
    out += block(other, 3, struct.pack(other + "I", len(spb_data)) + spb_data)
    expect.append((0, spb_data, len(spb_data)))
    return out, expect


# -- tests --------------------------------------------------------------------------------


@needs_libpcap
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_reads_like_libpcap(tmp_path, order: str, nanosecond: bool) -> None:
    pkts = sample_packets()
    path = tmp_path / "x.pcap"
    path.write_bytes(build_pcap(pkts, order, nanosecond))
    got, err = ours(path)
    want, werr = libpcap_read(path)
    assert err is None and werr is None
    assert got == want and len(got) == len(pkts)
    r = CaptureReader(path)
    assert (r.format, r.linktype, r.nanosecond, r.byteorder) == ("pcap", 1, nanosecond, order)
    r.close()


@needs_libpcap
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("resol", [None, 6, 9, 0x80 | 20])
def test_pcapng_reads_like_libpcap(tmp_path, order: str, resol: int | None) -> None:
    pkts = sample_packets(30)
    # libpcap cannot follow a section that changes byte order: compare on files whose
    # sections share one; the switching files are checked against the builder's record
    data, expect = build_pcapng(pkts, order, resol, switch=True)
    path = tmp_path / "switch.pcapng"
    path.write_bytes(data)
    got, err = ours(path)
    assert err is None
    assert got == expect
    data, expect = build_pcapng(pkts, order, resol, switch=False)
    path = tmp_path / "x.pcapng"
    path.write_bytes(data)
    got, err = ours(path)
    assert err is None
    assert got == expect
    want, werr = libpcap_read(path)
    assert werr is None
    # libpcap reports SPB packets with a zero timestamp too; compare everything
    assert [(d, wl) for _t, d, wl in want] == [(d, wl) for _t, d, wl in got]
    assert [t for t, _d, _wl in want[:-1]] == [t for t, _d, _wl in got[:-1]]


def test_pcapng_interfaces_of_different_link_types(tmp_path) -> None:
    """Several interfaces with their own link types and resolutions (libpcap refuses
    such files; bpfkit reads them, each packet with its interface's link type)."""
    o = "<"
    eth = bytes(12) + b"\x08\x00" + b"\x45" + bytes(19)
    raw = b"\x45" + bytes(19)
    data = (
        shb(o)
        + idb(o, 1, 6)
        + idb(o, 101, 9, tsoffset=10)
        + epb(o, 0, 5_000_000, eth, 60)
        + epb(o, 1, 7, raw, len(raw))
    )
    path = tmp_path / "two.pcapng"
    path.write_bytes(data)
    pk = list(read_packets(path))
    assert [(p.linktype, p.interface, p.ts_ns, p.wirelen) for p in pk] == [
        (1, 0, 5_000_000_000, 60),
        (101, 1, 10_000_000_007, len(raw)),
    ]
    # filtering compiles a program per link type
    r = filter_capture(path, lambda lt: compile_filter("ip", lt), engine="jit")
    assert (r.packets, r.matched) == (2, 2)


@needs_libpcap
@pytest.mark.parametrize("nanosecond", [False, True])
def test_writer_output_reads_in_libpcap(tmp_path, nanosecond: bool) -> None:
    pkts = sample_packets()
    path = tmp_path / "w.pcap"
    with PcapWriter(path, 1, 65535, nanosecond=nanosecond) as w:
        for data, wirelen, ts in pkts:
            w.write(data, ts, wirelen)
    want, err = libpcap_read(path)
    assert err is None
    scale = 1 if nanosecond else 1000
    assert want == [(ts // scale * scale, d, wl) for d, wl, ts in pkts]


@needs_libpcap
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_every_truncation_point(tmp_path, kind: str) -> None:
    """Cut the file anywhere: the packets before the cut, then an error (or a clean end
    exactly at a record boundary) — from the reader and from both scan engines."""
    pkts = sample_packets(6)
    blob = build_pcap(pkts) if kind == "pcap" else build_pcapng(pkts)[0]
    full, _ = ours_blob(tmp_path, blob)
    path = tmp_path / "cut"
    for cut in range(0, len(blob)):
        path.write_bytes(blob[:cut])
        got, err = ours(path)
        assert got == full[: len(got)]
        if err is None:
            assert cut >= 24
        else:
            assert "\n" not in err
        if kind == "pcap" and cut >= 24:
            want, werr = libpcap_read(path)
            assert [(d, wl) for _t, d, wl in got] == [(d, wl) for _t, d, wl in want]
            assert (err is None) == (werr is None)
        for engine in ("jit", "interp"):
            try:
                r = filter_capture(path, lambda lt: compile_filter("", lt), engine=engine)
            except CaptureError as e:
                assert err is not None
                partial = getattr(e, "result", None)
                assert partial is None or partial.packets == len(got)
                if kind == "pcapng" and cut >= 28:
                    assert str(e) == err  # the reader's own message, from either engine
            else:
                assert err is None and r.packets == len(got)


def ours_blob(tmp_path, blob: bytes):
    p = tmp_path / "blob"
    p.write_bytes(blob)
    return ours(p)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["pcap", "pcapng"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 10_000),
)
def test_corrupt_files_never_crash(tmp_path, kind: str, edits, cut: int) -> None:
    """Random byte damage: packets, then at most one CaptureError; the native scan agrees
    with the reader on how many packets come before the damage."""
    pkts = sample_packets(10)
    blob = bytearray(build_pcap(pkts) if kind == "pcap" else build_pcapng(pkts)[0])
    for pos, val in edits:
        if blob:
            blob[pos % len(blob)] = val
    if cut < len(blob):
        del blob[max(cut, 4) :]
    path = tmp_path / "corrupt"
    path.write_bytes(bytes(blob))
    got, err = ours(path)
    count = {}
    for engine in ("jit", "interp"):
        try:
            r = filter_capture(path, lambda lt: compile_filter("", lt), engine=engine)
            count[engine] = (r.packets, None)
        except CaptureError as e:
            partial = getattr(e, "result", None)
            count[engine] = (partial.packets if partial else 0, "error")
        except FilterSyntaxError as e:  # the damage hit the link-type field
            assert "link type" in str(e)
            return
    assert count["interp"] == (len(got), None if err is None else "error")
    if kind == "pcap" and len(blob) >= 24:
        # the native scan stops at the same record (it may find a bad length sooner,
        # as its limit on a record's length is the one libpcap uses)
        assert count["jit"][0] <= len(got)
    if kind == "pcapng":
        # the native block loop hands every doubtful block to the reader: exactly alike
        assert count["jit"] == count["interp"]


def test_hostile_lengths_fail_fast(tmp_path) -> None:
    """A record claiming 4 GiB fails at once, without allocating it."""
    blob = build_pcap([]) + struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 0xFFFFFFF0)
    path = tmp_path / "huge.pcap"
    path.write_bytes(blob)
    tracemalloc.start()
    with pytest.raises(CaptureError, match="corrupt record"):
        list(read_packets(path))
    with pytest.raises(CaptureError, match="corrupt record"):
        filter_capture(path, lambda lt: compile_filter("ip", lt), engine="jit")
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 32 << 20
    ng = shb("<") + idb("<") + struct.pack("<II", 6, 0xFFFFFFF0)
    path.write_bytes(ng)
    with pytest.raises(CaptureError):
        list(read_packets(path))


@pytest.mark.parametrize("content", [b"", b"\xd4\xc3", b"not a capture file at all"])
def test_not_a_capture(tmp_path, content: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(CaptureError):
        CaptureReader(path)
    with pytest.raises(CaptureError):
        filter_capture(path, lambda lt: compile_filter("ip", lt))


def test_memory_stays_constant(tmp_path) -> None:
    """Streaming: the peak memory of reading and scanning does not grow with the file."""
    frames = [f for f, _wl in packet_mix(500, seed=9)]

    def write(n: int):
        path = tmp_path / f"m{n}.pcap"
        with PcapWriter(path) as w:
            for i in range(n):
                w.write(frames[i % len(frames)], i)
        return path

    peaks = []
    for n in (20_000, 80_000):
        path = write(n)
        tracemalloc.start()
        count = sum(1 for _ in CaptureReader(path))
        r = filter_capture(path, lambda lt: compile_filter("tcp", lt), engine="jit", out=os.devnull)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n and r.packets == n
        peaks.append(peak)
    assert peaks[1] < peaks[0] * 1.5 + (1 << 20)
    assert peaks[1] < 24 << 20


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("resol", [None, 9, 0x80 | 20])
def test_pcapng_native_writes_what_python_writes(tmp_path, order: str, resol) -> None:
    """The native block loop and the Python reader write the same bytes for -w (sections
    switching byte order, unknown blocks, SPB, timestamp units the loop leaves to Python,
    and a block longer than the loop takes)."""
    pkts = sample_packets(60)
    blob, _ = build_pcapng(pkts, order, resol)
    big = bytes(12) + b"\x08\x00" + bytes(300_000)  # an EPB past MAX_SCAN_BLOCK
    blob += epb(">" if order == "<" else "<", 0, 5, big, len(big))
    blob += block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    blob += idb(order, 1, 6) + epb(order, 0, 77, pkts[1][0], pkts[1][1])
    path = tmp_path / "x.pcapng"
    path.write_bytes(blob)
    for expr in ("", "ip", "tcp or ip6"):
        outs = {}
        for engine in ("jit", "interp"):
            out = tmp_path / f"{engine}.pcap"
            r = filter_capture(
                path, lambda lt, e=expr: compile_filter(e, lt), engine=engine, out=out
            )
            outs[engine] = (r.packets, r.matched, out.read_bytes())
        assert outs["jit"] == outs["interp"]
        assert outs["jit"][0] == len(pkts) + 3
