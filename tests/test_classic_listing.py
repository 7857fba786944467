"""The classic listing (``tcpdump -d``), C (``-dd``) and decimal (``-ddd``) forms.

Oracles: libpcap's own ``bpf_image`` (through ctypes) for every instruction, and
tcpdump's ``-d``/``-dd``/``-ddd`` output for real compiled programs.
"""

from __future__ import annotations

import pytest
from classic_strategies import (
    EXPRESSIONS,
    allowed_insn,
    bpf_image,
    classic_program,
    libpcap,
    tcpdump_dump,
    tcpdump_path,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.classic import insn as c
from bpfkit.classic.insn import SockFilter, normalize
from bpfkit.classic.listing import (
    format_c,
    format_decimal,
    format_insn,
    format_listing,
    guess_format,
    load_program,
    parse_c,
    parse_decimal,
    parse_listing,
)
from bpfkit.errors import BpfError, DecodeError, FilterSyntaxError

needs_tcpdump = pytest.mark.skipif(tcpdump_path() is None, reason="tcpdump is not installed")
needs_libpcap = pytest.mark.skipif(libpcap() is None, reason="libpcap is not installed")


@needs_tcpdump
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_tcpdump_forms_byte_identical(expr: str) -> None:
    listing = tcpdump_dump(expr, "-d")
    cform = tcpdump_dump(expr, "-dd")
    dec = tcpdump_dump(expr, "-ddd")
    prog = parse_decimal(dec)
    assert format_listing(prog) == listing
    assert format_c(prog) == cform
    assert format_decimal(prog) == dec
    # libpcap leaves garbage in fields an instruction ignores (tax with k=2): the listing
    # shows only what is used
    assert parse_listing(listing) == normalize(prog)
    assert parse_c(cform) == prog
    for text, kind in ((listing, "listing"), (cform, "c"), (dec, "decimal")):
        assert guess_format(text) == kind
        want = normalize(prog) if kind == "listing" else prog
        assert load_program(text) == want
        assert load_program(text.encode()) == want


@needs_tcpdump
@pytest.mark.parametrize("linktype", ["RAW", "LINUX_SLL", "LINUX_SLL2"])
def test_tcpdump_other_linktypes(linktype: str) -> None:
    for expr in ("tcp port 80", "ip6 and udp", "host 10.1.2.3 and not icmp"):
        dec = tcpdump_dump(expr, "-ddd", linktype)
        prog = parse_decimal(dec)
        assert format_listing(prog) == tcpdump_dump(expr, "-d", linktype)


@needs_libpcap
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        allowed_insn(),
        st.builds(
            SockFilter,
            st.integers(0, 0xFFFF),
            st.integers(0, 255),
            st.integers(0, 255),
            st.integers(0, 0xFFFFFFFF),
        ),
    ),
    st.integers(0, 9999),
)
def test_format_matches_bpf_image(ins: SockFilter, n: int) -> None:
    if ins.code == c.LDX | c.W | c.LEN:
        # libpcap 1.10 has no name for it ("unimp 0x81"); we print "ldx #pktlen" (as later
        # libpcap does) so that it reads back.
        assert bpf_image(ins, n).split()[1] == "unimp"
        return
    assert format_insn(ins, n) == bpf_image(ins, n)


@settings(max_examples=500)
@given(allowed_insn(), st.integers(0, 100))
def test_every_valid_instruction_round_trips(ins: SockFilter, n: int) -> None:
    ins = normalize([ins])[0]
    prefix = [c.stmt(c.MISC | c.TAX)] * n
    assert parse_listing(format_listing(prefix + [ins]))[n] == ins
    assert parse_listing("ret\n" * n + format_insn(ins, n).split(" ", 1)[1])[n] == ins


@settings(max_examples=150)
@given(classic_program(max_len=40))
def test_program_round_trips_all_forms(prog: list[SockFilter]) -> None:
    prog = normalize(prog)
    assert parse_listing(format_listing(prog)) == prog
    assert parse_c(format_c(prog)) == prog
    assert parse_decimal(format_decimal(prog)) == prog
    assert load_program(c.encode(prog)) == prog
    # without the (NNN) prefixes the listing still reads (line order gives the numbers)
    bare = "\n".join(line.split(") ", 1)[1] for line in format_listing(prog).splitlines())
    assert parse_listing(bare) == prog


def test_unknown_opcode_prints_like_libpcap_and_keeps_code() -> None:
    prog = [SockFilter(0x75, 1, 2, 9), c.stmt(c.RET | c.K, 0)] + [c.stmt(c.RET | c.K)] * 2
    text = format_listing(prog)
    assert text.splitlines()[0] == "(000) unimp    0x75             jt 2\tjf 3"
    assert parse_listing(text)[0] == SockFilter(0x75, 1, 2, 0)


def test_ancillary_names_and_negative_offsets() -> None:
    prog = parse_listing("ld [proto]\nldh [vlan_tci]\nldb [-1048576]\nld [x + -4096]\nret")
    assert prog[0] == c.stmt(c.LD | c.W | c.ABS, c.SKF_AD_OFF + c.SKF_AD_PROTOCOL)
    assert prog[1] == c.stmt(c.LD | c.H | c.ABS, c.SKF_AD_OFF + c.SKF_AD_VLAN_TAG)
    assert prog[2] == c.stmt(c.LD | c.B | c.ABS, c.SKF_NET_OFF)
    assert prog[3].k == 0xFFFFF000
    assert prog[4] == c.stmt(c.RET | c.RVAL_A)


@pytest.mark.parametrize(
    "text,line,col,words",
    [
        ("(000) ldh [12]\n(001) bogus #1", 2, 7, "unknown instruction"),
        ("ldh [12]\njeq #0x800", 2, 11, "jt N jf N"),
        ("ldh [12]\n(005) ret #0", 2, 2, "(005)"),
        ("ld [nosuch]\nret #0", 1, 5, "unknown ancillary"),
        ("ld #0x100000000\nret #0", 1, 5, "32 bits"),
        ("jeq #1 jt 0 jf 2\nret #0", 1, 11, "jt target"),
        ("st [3]\nret #0", 1, 4, "'M[k]'"),
        ("tax #1", 1, 5, "no operand"),
        ("ret #0 jt 1 jf 2", 1, 8, "no jt/jf"),
        ("   ", 1, 1, "no instructions"),
    ],
)
def test_listing_errors_name_line_and_column(text: str, line: int, col: int, words: str) -> None:
    with pytest.raises(FilterSyntaxError) as ei:
        parse_listing(text)
    assert ei.value.line == line
    assert ei.value.column == col
    assert words in str(ei.value)


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("3\n6 0 0 0\n6 0 0 1\n", 1, "3 instructions but 2"),
        ("1\n6 0 0\n", 2, "four decimal"),
        ("x\n", 1, "count"),
        ("1\n6 0 300 0\n", 2, "jf 300"),
    ],
)
def test_decimal_errors(text: str, line: int, words: str) -> None:
    with pytest.raises(FilterSyntaxError) as ei:
        parse_decimal(text)
    assert ei.value.line == line
    assert words in str(ei.value)


def test_c_array_with_declaration_and_comments() -> None:
    text = (
        "struct sock_filter code[] = {  /* tcpdump -dd ip */\n"
        "{ 0x28, 0, 0, 0x0000000c },\n"
        "{ 0x15, 0, 1, 0x00000800 }, // ethertype\n"
        "{ 0x6, 0, 0, 0x00040000 },\n"
        "{ 0x6, 0, 0, 0x00000000 },\n"
        "};\n"
    )
    prog = parse_c(text)
    assert len(prog) == 4 and prog[1] == SockFilter(0x15, 0, 1, 0x800)
    with pytest.raises(FilterSyntaxError) as ei:
        parse_c("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, zz, 0x800 },\n")
    assert (ei.value.line, ei.value.column) == (2, 12)


def test_load_program_from_file(tmp_path) -> None:
    prog = [c.stmt(c.LD | c.H | c.ABS, 12), c.stmt(c.RET | c.RVAL_A)]
    for name, data in (
        ("p.bin", c.encode(prog)),
        ("p.txt", format_listing(prog).encode()),
        ("p.ddd", format_decimal(prog).encode()),
        ("p.c", format_c(prog).encode()),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        assert load_program(path) == prog
        assert load_program(str(path)) == prog
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(DecodeError):
        load_program(tmp_path / "odd.bin")


@settings(max_examples=400)
@given(
    st.text(
        alphabet=st.sampled_from(list("()0123456789 #[]x+-*&jtfelqdMnpksbr\n\t,{}")), max_size=80
    )
)
def test_hostile_text_gives_syntax_errors_only(text: str) -> None:
    for fn in (parse_listing, parse_c, parse_decimal, load_program):
        try:
            fn(text)
        except BpfError:
            pass
