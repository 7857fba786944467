"""Hostile ELF and BTF: truncated, bit-flipped, overwritten and random inputs.

Whatever the bytes, parsing ends quickly with a spec or an ``ElfError``/``BtfError``
carrying a reason, never another exception or a hang.
"""

from __future__ import annotations

import hashlib
import signal
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.btf import decode_value, dump_c, parse_btf, parse_btf_ext
from bpfkit.errors import BtfError, ElfError
from bpfkit.obj import load_object
from bpfkit.obj.build import compile_c, find_clang
from bpfkit.obj.elf import ElfFile
from bpfkit.obj.listing import format_object_listing
from bpfkit.uapi.btf import BtfKind

C_DIR = Path(__file__).parent / "c"
CORPUS_SOURCES = [
    "obj_calls.c",
    "obj_maps.c",
    "obj_globals.c",
    "obj_core.c",
    "obj_legacy.c",
    "obj_struct_ops.c",
    "obj_btf_types.c",
]
PER_CASE_SECONDS = 10


def _build(name: str) -> Path:
    src = C_DIR / name
    clang = find_clang()
    key = hashlib.sha256(src.read_bytes() + clang.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "bpfkit-test-objs" / f"{src.stem}-{key}.o"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.o")
        compile_c(src, tmp)
        tmp.replace(out)
    return out


_CORPUS: list[bytes] = []
_BTF_CORPUS: list[tuple[bytes, bytes]] = []


def corpus() -> list[bytes]:
    if not _CORPUS:
        _CORPUS.extend(_build(s).read_bytes() for s in CORPUS_SOURCES)
    return _CORPUS


def btf_corpus() -> list[tuple[bytes, bytes]]:
    if not _BTF_CORPUS:
        for data in corpus():
            elf = ElfFile(data)
            _BTF_CORPUS.append((elf.by_name(".BTF").data, elf.by_name(".BTF.ext").data))
    return _BTF_CORPUS


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    def on_alarm(signum, frame):
        raise Hang(f"parsing took longer than {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_object(data: bytes) -> None:
    """Parse ``data``; only a spec or ElfError/BtfError with a reason are acceptable."""
    with time_limit(PER_CASE_SECONDS):
        try:
            spec = load_object(data)
        except (ElfError, BtfError) as e:
            assert str(e), "error without a reason"
            assert "malformed object:" not in str(e), f"unexpected internal error: {e}"
            return
        # A spec that parsed must also be listable.
        format_object_listing(spec)
        format_object_listing(spec, as_json=True)


def exercise_btf(raw: bytes, ext: bytes | None) -> None:
    """Parse BTF (and .BTF.ext) and use every type: names, sizes, C, values."""
    with time_limit(PER_CASE_SECONDS):
        try:
            btf = parse_btf(raw)
        except BtfError as e:
            assert str(e)
            return
        for t in btf.types[1:]:
            for fn, args in (
                (btf.type_name, (t.id, "x")),
                (btf.format_c, (t.id,)),
                (btf.size_of, (t.id,)),
                (btf.align_of, (t.id,)),
            ):
                try:
                    fn(*args)
                except BtfError as e:
                    assert str(e)
            if t.kind in (
                BtfKind.STRUCT,
                BtfKind.UNION,
                BtfKind.ARRAY,
                BtfKind.INT,
                BtfKind.DATASEC,
                BtfKind.ENUM,
                BtfKind.ENUM64,
            ):
                try:
                    size = btf.size_of(t.id)
                    if 0 <= size <= 1 << 16:
                        decode_value(btf, t.id, bytes(size))
                except BtfError as e:
                    assert str(e)
        try:
            dump_c(btf)
        except BtfError as e:
            assert str(e)
        if ext is not None:
            try:
                parse_btf_ext(ext, btf)
            except BtfError as e:
                assert str(e)


# ---- strategies ------------------------------------------------------------------------

INTERESTING = [
    0,
    1,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    0xFFFFFFFFFFFFFFFF,
    1 << 32,
    1 << 40,
]


@st.composite
def mutated(draw, source):
    data = bytearray(draw(st.sampled_from(source())))
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "splice", "mixed"]))
    if kind in ("truncate", "mixed"):
        data = data[: draw(st.integers(0, len(data)))]
    if kind in ("flip", "mixed") and data:
        for _ in range(draw(st.integers(1, 8))):
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
    if kind == "overwrite" and len(data) >= 8:
        for _ in range(draw(st.integers(1, 4))):
            width = draw(st.sampled_from([1, 2, 4, 8]))
            pos = draw(st.integers(0, len(data) - width))
            value = draw(st.sampled_from(INTERESTING) | st.integers(0, (1 << (8 * width)) - 1))
            data[pos : pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    if kind == "splice" and data:
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


def _header_heavy(source):
    """Mutations aimed at the ELF header and section header table."""

    @st.composite
    def strat(draw):
        data = bytearray(draw(st.sampled_from(source())))
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        shnum = struct.unpack_from("<H", data, 0x3C)[0]
        field = draw(st.integers(0, shnum - 1))
        off = draw(
            st.sampled_from(
                [0x10, 0x12, 0x28, 0x3A, 0x3C, 0x3E]
                + [shoff + field * 64 + k for k in (0, 4, 8, 24, 32, 40, 44)]
            )
        )
        width = draw(st.sampled_from([2, 4, 8]))
        value = draw(st.sampled_from(INTERESTING) | st.integers(0, 1 << 20))
        if off + width <= len(data):
            data[off : off + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        return bytes(data)

    return strat()


def _in_section(source):
    """Mutations confined to one section's bytes (symbols, relocations, BTF, code, maps)."""

    @st.composite
    def strat(draw):
        data = bytearray(draw(st.sampled_from(source())))
        secs = [s for s in ElfFile(bytes(data)).sections if s.size and s.type != 8]
        sec = draw(st.sampled_from(secs))
        for _ in range(draw(st.integers(1, 4))):
            width = draw(st.sampled_from([1, 2, 4, 8]))
            if sec.size < width:
                continue
            pos = sec.offset + draw(st.integers(0, sec.size - width))
            if draw(st.booleans()):
                data[pos] ^= 1 << draw(st.integers(0, 7))
            else:
                value = draw(st.sampled_from(INTERESTING) | st.integers(0, 64))
                data[pos : pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(
                    width, "little"
                )
        return bytes(data)

    return strat()


FUZZ = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(mutated(corpus))
def test_mutated_objects(data: bytes) -> None:
    check_object(data)


@settings(FUZZ, max_examples=2000)
@given(_in_section(corpus))
def test_mutated_sections(data: bytes) -> None:
    check_object(data)


@settings(FUZZ, max_examples=700)
@given(_header_heavy(corpus))
def test_mutated_section_headers(data: bytes) -> None:
    check_object(data)


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    check_object(data)


@settings(FUZZ, max_examples=300)
@given(st.binary(min_size=0, max_size=2048))
def test_elf_header_then_random(data: bytes) -> None:
    header = corpus()[0][:64]
    check_object(header + data)


def _btf_mutant(which: int):
    @st.composite
    def strat(draw):
        raw, ext = draw(st.sampled_from(btf_corpus()))
        blob = bytearray(raw if which == 0 else ext)
        kind = draw(st.sampled_from(["truncate", "flip", "overwrite"]))
        if kind == "truncate":
            blob = blob[: draw(st.integers(0, len(blob)))]
        elif kind == "flip" and blob:
            for _ in range(draw(st.integers(1, 6))):
                pos = draw(st.integers(0, len(blob) - 1))
                blob[pos] ^= 1 << draw(st.integers(0, 7))
        elif len(blob) >= 4:
            # Overwrite a 32-bit word in the header or the type section.
            pos = draw(st.integers(0, (len(blob) - 4) // 4)) * 4
            value = draw(st.sampled_from(INTERESTING) | st.integers(0, 1 << 32 - 1))
            blob[pos : pos + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
        return (bytes(blob), ext) if which == 0 else (raw, bytes(blob))

    return strat()


@settings(FUZZ, max_examples=1200)
@given(_btf_mutant(0))
def test_mutated_btf(pair: tuple[bytes, bytes]) -> None:
    exercise_btf(*pair)


@settings(FUZZ, max_examples=500)
@given(_btf_mutant(1))
def test_mutated_btf_ext(pair: tuple[bytes, bytes]) -> None:
    exercise_btf(*pair)


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=512))
def test_random_btf(data: bytes) -> None:
    exercise_btf(b"\x9f\xeb\x01\x00\x18\x00\x00\x00" + data, None)
    exercise_btf(data, None)


@pytest.mark.parametrize("cut", [0, 1, 4, 63, 64, 100, 1000])
def test_truncations_have_reasons(cut: int) -> None:
    data = corpus()[0][:cut]
    with pytest.raises(ElfError) as e:
        load_object(data)
    assert str(e.value)


def test_specific_malformations() -> None:
    good = corpus()[0]
    with pytest.raises(ElfError, match="not an ELF"):
        load_object(b"hello world" * 10)
    with pytest.raises(ElfError, match="64-bit"):
        load_object(good[:4] + b"\x01" + good[5:])
    with pytest.raises(ElfError, match="big-endian"):
        load_object(good[:5] + b"\x02" + good[6:])
    bad_machine = bytearray(good)
    struct.pack_into("<H", bad_machine, 0x12, 62)
    with pytest.raises(ElfError, match="not a BPF object"):
        load_object(bytes(bad_machine))
    with pytest.raises(ElfError, match="cannot read"):
        load_object("/nonexistent/file.o")
    with pytest.raises(BtfError, match="magic"):
        parse_btf(b"\0" * 32)
    with pytest.raises(BtfError, match="too short"):
        parse_btf(b"\x9f\xeb")
