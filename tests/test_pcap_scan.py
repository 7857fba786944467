"""The native scan: chunk boundaries, caches of programs and machine code, engines agree."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest
from test_filter_libpcap import LIBPCAP, needs_libpcap

from bpfkit.classic.insn import SockFilter
from bpfkit.errors import CaptureError, ClassicError, FilterSyntaxError
from bpfkit.pcap import CaptureReader, PcapngWriter, PcapWriter, codecache, compile_filter, scan
from bpfkit.pcap.synth import packet_mix


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    scan._cache.clear()
    yield tmp_path / "cache" / "bpfkit"
    scan._cache.clear()


def big_capture(path, n: int = 12000, seed: int = 4, writer=PcapWriter) -> None:
    """Records of 14 to 1514 bytes (many of them padded to full size), so that records
    straddle the scan's 256 KiB chunks in every possible way."""
    rng = random.Random(seed)
    with writer(path) as w:
        for i, (f, wl) in enumerate(packet_mix(n, seed)):
            if len(f) > 54 and rng.random() < 0.5:
                pad = rng.randrange(0, 1514 - len(f) + 1)
                f, wl = f + bytes(pad), wl + pad
            w.write(f, i, wl)


@pytest.mark.parametrize("expr", ["tcp port 80 or udp", "ip6 and not icmp6", ""])
def test_chunk_boundaries(tmp_path, expr: str) -> None:
    path = tmp_path / "big.pcap"
    big_capture(path)
    assert os.path.getsize(path) > 4 * scan.IN_CHUNK
    outs = {}
    for engine in ("jit", "interp"):
        out = tmp_path / f"{engine}.pcap"
        r = scan.filter_capture(path, lambda lt: compile_filter(expr, lt), engine=engine, out=out)
        outs[engine] = [(p.ts_ns, p.data, p.wirelen) for p in CaptureReader(out)]
        assert r.matched == len(outs[engine]) and r.packets == 12000
    assert outs["jit"] == outs["interp"]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("expr", ["tcp port 80 or udp", "vlan and ip6"])
def test_pcapng_chunk_boundaries_like_tcpdump(tmp_path, expr: str) -> None:
    """Blocks straddling the native loop's chunks: the packets tcpdump -r -w writes, byte
    for byte, from both engines."""
    path = tmp_path / "big.pcapng"
    big_capture(path, writer=PcapngWriter)
    assert os.path.getsize(path) > 4 * scan.IN_CHUNK
    want = tmp_path / "tcpdump.pcap"
    subprocess.run(
        ["tcpdump", "-r", str(path), "-w", str(want), expr], check=True, capture_output=True
    )
    for engine in ("jit", "interp"):
        out = tmp_path / f"{engine}.pcap"
        r = scan.filter_capture(path, lambda lt: compile_filter(expr, lt), engine=engine, out=out)
        assert (r.format, r.engine, r.packets) == ("pcapng", engine, 12000)
        assert out.read_bytes() == want.read_bytes()


def test_truncated_across_a_chunk(tmp_path) -> None:
    path = tmp_path / "big.pcap"
    big_capture(path)
    blob = path.read_bytes()
    for cut in (scan.IN_CHUNK + 24 + 7, 3 * scan.IN_CHUNK + 24 - 3, len(blob) - 5):
        p = tmp_path / "cut.pcap"
        p.write_bytes(blob[:cut])
        want = sum(1 for _ in _safe_iter(p))
        with pytest.raises(CaptureError) as info:
            scan.filter_capture(p, lambda lt: compile_filter("", lt), engine="jit")
        assert "truncated" in str(info.value)
        assert info.value.result.packets == want
    path = tmp_path / "big.pcapng"
    big_capture(path, writer=PcapngWriter)
    blob = path.read_bytes()
    for cut in (scan.IN_CHUNK + 7, 2 * scan.IN_CHUNK - 3, len(blob) - 5):
        p = tmp_path / "cut.pcapng"
        p.write_bytes(blob[:cut])
        want = sum(1 for _ in _safe_iter(p))
        with pytest.raises(CaptureError) as info:
            scan.filter_capture(p, lambda lt: compile_filter("", lt), engine="jit")
        assert "truncated" in str(info.value)
        assert info.value.result.packets == want


def _safe_iter(path):
    try:
        yield from CaptureReader(path)
    except CaptureError:
        return


def test_program_cache(private_cache) -> None:
    prog = codecache.cached_program("tcp port 80", 1)
    assert prog == compile_filter("tcp port 80")
    files = list((private_cache / "filters").iterdir())
    assert len(files) == 1
    # a damaged entry is rebuilt
    files[0].write_text("{not json")
    assert codecache.cached_program("tcp port 80", "EN10MB") == prog
    # errors are raised, not cached
    with pytest.raises(FilterSyntaxError):
        codecache.cached_program("tcp port", 1)
    assert len(list((private_cache / "filters").iterdir())) == 1


@needs_libpcap
def test_machine_code_cache(private_cache, tmp_path) -> None:
    """Code compiled once, stored, and loaded by the next run without LLVM gives the
    same verdicts (libpcap's) as freshly compiled code."""
    prog = compile_filter("tcp[tcpflags] & tcp-syn != 0 or ip6")
    first = scan.compile_native(prog)
    assert not first.cached
    assert any((private_cache / "code").iterdir())
    scan._cache.clear()
    second = scan.compile_native(prog)
    assert second.cached
    want = LIBPCAP.matcher(LIBPCAP.compile("tcp[tcpflags] & tcp-syn != 0 or ip6"))
    for f, wl in packet_mix(500, seed=8):
        assert first.match(f, wl) == second.match(f, wl) == want(f, wl)
    # a damaged cache file is a miss, not a crash
    for p in (private_cache / "code").iterdir():
        p.write_bytes(b"\x05\x00\x00\x00{bad}")
    scan._cache.clear()
    assert not scan.compile_native(prog).cached


def test_elf_reader_refuses_relocations() -> None:
    assert codecache._elf_text(b"not an object", ["f"]) is None


@pytest.mark.parametrize(
    "prog, rule",
    [
        ([], "empty"),
        ([SockFilter(0x15, 3, 0, 1), SockFilter(6, 0, 0, 1)], "outside"),
        ([SockFilter(0x60, 0, 0, 16), SockFilter(6, 0, 0, 1)], "scratch"),
        ([SockFilter(0x34, 0, 0, 0), SockFilter(6, 0, 0, 1)], "division"),
        ([SockFilter(0x64, 0, 0, 40), SockFilter(6, 0, 0, 1)], "shift"),
        ([SockFilter(0xFF, 0, 0, 0), SockFilter(6, 0, 0, 1)], "opcode"),
        ([SockFilter(0x28, 0, 0, 12)], "return"),
    ],
)
def test_validation(prog, rule: str) -> None:
    with pytest.raises(ClassicError, match=rule):
        scan.validate(prog)


@pytest.mark.parametrize("seed", range(6))
def test_pcapng_damage_across_chunks(tmp_path, seed: int) -> None:
    """Random damage anywhere in a multi-chunk pcapng (lengths, trailers, block types,
    interface numbers): the native block loop gives the Python engine's packets, output
    bytes and error message."""
    path = tmp_path / "big.pcapng"
    big_capture(path, n=6000, seed=seed, writer=PcapngWriter)
    blob = bytearray(path.read_bytes())
    starts, pos = [], 0
    while pos + 8 <= len(blob):  # the blocks, to aim the damage at their fields
        starts.append(pos)
        pos += int.from_bytes(blob[pos + 4 : pos + 8], "little")
    rng = random.Random(seed)
    for _ in range(rng.randrange(1, 4)):
        b = rng.choice(starts[2:])  # after the section and interface headers
        end = b + int.from_bytes(blob[b + 4 : b + 8], "little")
        field = rng.choice([b, b + 4, b + 8, b + 20, b + 24, end - 4, rng.randrange(b, end)])
        blob[field + rng.randrange(4)] = rng.choice([0, 1, 2, 3, 6, 0x0A, 0xFF, rng.randrange(256)])
    if seed % 2:
        del blob[rng.randrange(len(blob) // 2, len(blob)) :]
    path.write_bytes(bytes(blob))
    results = {}
    for engine in ("jit", "interp"):
        out = tmp_path / f"{engine}.pcap"
        try:
            r = scan.filter_capture(
                path, lambda lt: compile_filter("tcp or ip6", lt), engine=engine, out=out
            )
            results[engine] = (r.packets, r.matched, None, out.read_bytes())
        except CaptureError as e:
            p = e.result
            results[engine] = (p.packets, p.matched, str(e), out.read_bytes())
        except FilterSyntaxError as e:  # damage hit an interface's link type
            results[engine] = (None, None, str(e), b"")
    assert results["jit"] == results["interp"]
