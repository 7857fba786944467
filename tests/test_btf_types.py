"""BTF: every kind parsed like bpftool, printed as C, values decoded/encoded, .BTF.ext line info."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.btf import (
    Btf,
    BtfKind,
    Datasec,
    DeclTag,
    Func,
    FuncProto,
    Int,
    Member,
    Struct,
    Var,
    VarSecinfo,
    decode_value,
    dump_c,
    encode_btf,
    encode_value,
    parse_btf,
    parse_btf_ext,
    type_to_c,
)
from bpfkit.btf.parser import _LAZY_MIN_TYPE_BYTES, _parse_btf_fast, _parse_btf_reference
from bpfkit.errors import BtfError
from bpfkit.obj.build import build_command, compile_c, find_clang
from bpfkit.obj.elf import ElfFile

C_DIR = Path(__file__).parent / "c"
SOURCES = sorted(p.name for p in C_DIR.glob("obj_*.c"))
BPFTOOL = shutil.which("bpftool")


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


def _raw_btf(name: str) -> tuple[bytes, bytes]:
    elf = ElfFile(_build(name).read_bytes())
    return elf.by_name(".BTF").data, elf.by_name(".BTF.ext").data


def _types_btf() -> Btf:
    return parse_btf(_raw_btf("obj_btf_types.c")[0])


# ---- parsing, against bpftool --------------------------------------------------------

_ENC = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_LINK = {0: "static", 1: "global", 2: "extern"}


def _name(s: str) -> str:
    return s or "(anon)"


def _as_bpftool(btf: Btf, t) -> dict:
    """Our view of a type in the shape of ``bpftool -j btf dump``."""
    k = t.kind
    d: dict = {"id": t.id, "kind": k.name, "name": _name(t.name)}
    if k == BtfKind.INT:
        d.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits, encoding=_ENC[t.encoding])
    elif k in (
        BtfKind.PTR,
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.TYPE_TAG,
    ):
        d["type_id"] = t.type
    elif k == BtfKind.ARRAY:
        d.update(type_id=t.type, index_type_id=t.index_type, nr_elems=t.nelems)
    elif k in (BtfKind.STRUCT, BtfKind.UNION):
        d.update(
            size=t.size,
            vlen=len(t.members),
            members=[
                {
                    "name": _name(m.name),
                    "type_id": m.type,
                    "bits_offset": m.bit_offset,
                    **({"bitfield_size": m.bitfield_size} if m.bitfield_size else {}),
                }
                for m in t.members
            ],
        )
    elif k in (BtfKind.ENUM, BtfKind.ENUM64):
        d.update(
            encoding="SIGNED" if t.signed else "UNSIGNED",
            size=t.size,
            vlen=len(t.values),
            values=[{"name": v.name, "val": v.value} for v in t.values],
        )
    elif k == BtfKind.FWD:
        d["fwd_kind"] = "union" if t.is_union else "struct"
    elif k == BtfKind.FUNC:
        d.update(type_id=t.type, linkage=_LINK[t.linkage])
    elif k == BtfKind.FUNC_PROTO:
        d.update(
            ret_type_id=t.return_type,
            vlen=len(t.params),
            params=[{"name": _name(p.name), "type_id": p.type} for p in t.params],
        )
    elif k == BtfKind.VAR:
        d.update(type_id=t.type, linkage=_LINK[t.linkage])
    elif k == BtfKind.DATASEC:
        d.update(
            size=t.size,
            vlen=len(t.vars),
            vars=[{"type_id": v.type, "offset": v.offset, "size": v.size} for v in t.vars],
        )
    elif k == BtfKind.FLOAT:
        d["size"] = t.size
    elif k == BtfKind.DECL_TAG:
        d.update(type_id=t.type, component_idx=t.component_idx)
    return d


@pytest.mark.skipif(BPFTOOL is None, reason="bpftool not installed")
@pytest.mark.parametrize("source", SOURCES)
def test_types_match_bpftool(source: str) -> None:
    path = _build(source)
    out = subprocess.run(
        [BPFTOOL, "-j", "btf", "dump", "file", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = json.loads(out)["types"]
    btf = parse_btf(_raw_btf(source)[0])
    ours = [_as_bpftool(btf, t) for t in btf.types[1:]]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        if b["kind"] in ("ENUM", "ENUM64") and b["encoding"] == "UNSIGNED":
            for v in b["values"]:
                v["val"] &= (1 << (8 * b["size"])) - 1
        assert a == b


def test_every_kind_is_present_in_the_test_objects() -> None:
    kinds = set()
    for s in SOURCES:
        kinds |= {t.kind for t in parse_btf(_raw_btf(s)[0]).types[1:]}
    assert kinds == set(BtfKind) - {BtfKind.UNKN}


@pytest.mark.parametrize("source", SOURCES)
def test_encode_roundtrip(source: str) -> None:
    raw = _raw_btf(source)[0]
    btf = parse_btf(raw)
    again = parse_btf(encode_btf(btf))
    assert again.types == btf.types
    assert encode_btf(again) == encode_btf(btf)


@pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(), reason="no vmlinux BTF")
def test_vmlinux_btf() -> None:
    try:
        raw = Path("/sys/kernel/btf/vmlinux").read_bytes()
    except OSError:
        pytest.skip("vmlinux BTF not readable")
    btf = parse_btf(raw)
    task = btf.find("task_struct", BtfKind.STRUCT)
    assert task is not None and task.size > 1000
    assert "pid_t pid;" in btf.format_c(task.id)
    assert btf.size_of(btf.find("u64", BtfKind.TYPEDEF).id) == 8


# ---- the fast (lazy) parser against the reference parser ----------------------------------


def _outcome(parse, raw: bytes, base: Btf | None = None):
    """What a parser makes of ``raw``: the error message, or every type and the name index."""
    try:
        btf = parse(raw, base)
    except BtfError as e:
        return ("error", str(e))
    return ("ok", list(btf.types), btf._names(), btf.kinds_summary())


@pytest.mark.parametrize("source", SOURCES)
def test_fast_parse_matches_reference(source: str) -> None:
    raw = _raw_btf(source)[0]
    btf = _parse_btf_fast(raw)
    assert btf._lazy is not None, "valid BTF must take the fast path"
    assert _outcome(_parse_btf_fast, raw) == _outcome(_parse_btf_reference, raw)
    assert encode_btf(btf) == encode_btf(_parse_btf_reference(raw))
    # parse_btf: small type sections go straight to the reference parser (decoded eagerly).
    (type_len,) = struct.unpack_from("<I", raw, 12)
    assert (parse_btf(raw)._lazy is None) == (type_len < _LAZY_MIN_TYPE_BYTES)


def test_lazy_types_behave_like_a_list() -> None:
    raw = _raw_btf("obj_btf_types.c")[0]
    ref = list(_parse_btf_reference(raw).types)
    btf = _parse_btf_fast(raw)
    assert len(btf) == len(btf.types) == len(ref)
    assert btf.types[-1] == ref[-1] and btf.types[2:5] == ref[2:5]
    assert btf[3] is btf.types[3] is btf.get(3)  # decoded once, then kept
    assert btf.types == ref and ref == list(btf.types) and btf.types != ref[:-1]
    with pytest.raises(IndexError):
        btf.types[len(ref)]
    with pytest.raises(BtfError):
        btf.get(len(ref))
    assert btf.find("record", BtfKind.STRUCT) is btf.find_all("record")[0]
    # Changing the list decodes everything first: a plain list from then on.
    btf.types.append(Int(len(ref), "extra", 4, 0, 0, 32))
    assert isinstance(btf.types, list) and btf.types[:-1] == ref
    assert btf.get(len(ref)).name == "extra"


def _split_blob(base: Btf) -> bytes:
    """Split BTF on top of ``base``: names from both string sections, refs into the base."""
    n = len(base.types)
    own = b"\0split_s\0x\0"
    strs = own
    boff = len(base.strings)
    int_name = base.strings.index(b"int\0") if b"\0int\0" in base.strings else 0
    types = b"".join(
        [
            struct.pack("<III", 0, 2 << 24, 1),  # n: ptr -> base type 1
            struct.pack("<III", boff + 1, (4 << 24) | 2, 16),  # n+1: struct split_s
            struct.pack("<III", boff + 9, 1, 0),  # x: base type 1
            struct.pack("<III", int_name, n, 64),  # int (base string): ptr n
            struct.pack("<III", 0, 10 << 24, n + 1),  # n+2: const struct split_s
        ]
    )
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs))
    return hdr + types + strs


@pytest.mark.parametrize("lazy_base", [False, True])
def test_split_btf_fast_matches_reference(lazy_base: bool) -> None:
    base_raw = _raw_btf("obj_btf_types.c")[0]
    base = _parse_btf_fast(base_raw) if lazy_base else _parse_btf_reference(base_raw)
    raw = _split_blob(base)
    split = parse_btf(raw, base)
    assert split._lazy is not None
    assert _outcome(parse_btf, raw, base) == _outcome(_parse_btf_reference, raw, base)
    n = len(base.types)
    assert split.types[1] is base.types[1] and split.start_id == n
    s = split.find("split_s", BtfKind.STRUCT)
    assert (
        s is not None and s.id == n + 1 and [m.name for m in s.members] == ["x", s.members[1].name]
    )
    assert split.find("record") is base.find("record")
    assert split.size_of(n + 2) == 16


def test_decl_tag_on_a_func_without_proto_is_an_error() -> None:
    from bpfkit.btf import Void

    # The tag (id 2) comes before the FUNC (id 3) whose type is an INT, not a FUNC_PROTO.
    types = [Void(0, "void"), Int(1, "int", 4, 1, 0, 32), DeclTag(2, "t", 3, 0), Func(3, "f", 1)]
    raw = encode_btf(Btf(types, b"\0"))
    for parse in (parse_btf, _parse_btf_fast):
        with pytest.raises(BtfError, match="not a FUNC_PROTO"):
            parse(raw)
        ok = [*types[:3], Func(3, "f", 4), FuncProto(4, "", 1, [])]
        with pytest.raises(BtfError, match="component 0 out of range"):
            parse(encode_btf(Btf(ok, b"\0")))


def _btf_corpus() -> list[bytes]:
    return [_raw_btf(s)[0] for s in SOURCES]


# Values that hit the parser's rules: kinds/vlen/kflag in an info word, small type ids,
# string offsets, sizes, bitfield offsets.
_WORDS = st.one_of(
    st.builds(
        lambda k, v, kf: (kf << 31) | (k << 24) | v,
        st.integers(0, 31),
        st.sampled_from([0, 1, 2, 3, 0xFFFF]),
        st.integers(0, 1),
    ),
    st.integers(0, 200),
    st.sampled_from([0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 1 << 24, 0xFFFFFF, 0x0F000000]),
    st.integers(0, (1 << 32) - 1),
)


@st.composite
def _btf_mutants(draw) -> bytes:
    raw = bytearray(draw(st.sampled_from(_btf_corpus())))
    hdr_len, type_off, type_len = struct.unpack_from("<III", raw, 4)
    start = hdr_len + type_off
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["word", "word", "word", "bit", "byte"]))
        if how == "word":
            pos = start + 4 * draw(st.integers(0, type_len // 4 - 1))
            struct.pack_into("<I", raw, pos, draw(_WORDS))
        elif how == "bit":
            pos = draw(st.integers(start, len(raw) - 1))
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    if draw(st.integers(0, 9)) == 0:
        del raw[draw(st.integers(0, len(raw))) :]
    return bytes(raw)


@settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_btf_mutants())
def test_fast_parse_fails_exactly_like_reference(raw: bytes) -> None:
    # Every blob: the same error message, or the same types (never another exception).
    assert _outcome(_parse_btf_fast, raw) == _outcome(_parse_btf_reference, raw)


# ---- C printing --------------------------------------------------------------------------


def test_type_names_as_c() -> None:
    btf = _types_btf()
    rec = btf.find("record", BtfKind.STRUCT)
    members = {m.name: m for m in rec.members}

    def decl(name: str) -> str:
        return type_to_c(btf, members[name].type, name)

    assert decl("id") == "u64_t id"
    assert decl("pair") == "pair_t pair"
    assert decl("name") == "char name[6]"
    assert decl("matrix") == "__s8 matrix[2][3]"
    assert decl("opq") == "struct opaque *opq"
    assert decl("opu") == "union opaque_u *opu"
    assert decl("cv") == "const volatile int *cv"
    assert decl("rp") == "int *restrict rp"
    assert decl("uptr") == 'int __attribute__((btf_type_tag("user"))) *uptr'
    assert decl("fn") == "int (*fn)(int, char *)"
    assert decl("s") == "enum small s"
    assert decl("ratio") == "float ratio" and decl("precise") == "double precise"
    assert btf.type_name(members["fn"].type) == "int (*)(int, char *)"
    func = btf.find("tagged_func", BtfKind.FUNC)
    assert btf.format_c(func.id) == "int tagged_func(int a, struct record *r);"


def test_struct_definition_as_c() -> None:
    btf = _types_btf()
    text = btf.format_c(btf.find("bits", BtfKind.STRUCT).id)
    assert text == (
        "struct bits {\n\tunsigned int lo: 4;\n\tunsigned int mid: 12;\n\tint neg: 8;\n"
        "\tunsigned char flag: 1;\n\t__u64 wide: 40;\n};"
    )
    rec = btf.format_c(btf.find("record", BtfKind.STRUCT).id)
    assert "\tunion {\n\t\t__u32 as_u32;\n\t\t__u8 as_bytes[4];\n\t};" in rec
    assert "\tstruct {\n\t\t__u16 x;\n\t\t__u16 y;\n\t} point;" in rec
    assert btf.format_c(btf.find("pair_t", BtfKind.TYPEDEF).id) == (
        "typedef struct {\n\tint a;\n\tint b;\n} pair_t;"
    )
    assert btf.format_c(btf.find("small", BtfKind.ENUM).id) == (
        "enum small {\n\tS_A = -1,\n\tS_B = 0,\n\tS_C = 7,\n};"
    )
    big = btf.format_c(btf.find("big", BtfKind.ENUM64).id)
    assert "B_B = 18446744073709551615," in big


@pytest.mark.parametrize("source", SOURCES)
def test_dump_c_compiles(source: str, tmp_path: Path) -> None:
    """The whole-blob C dump is a valid header (checked by clang -fsyntax-only)."""
    btf = parse_btf(_raw_btf(source)[0])
    header = tmp_path / "dump.h"
    header.write_text(dump_c(btf) + "\n")
    src = tmp_path / "use.c"
    src.write_text('#include "dump.h"\nint main_unused(void) { return 0; }\n')
    cmd = build_command(src, tmp_path / "use.o", clang=find_clang())
    cmd = [c for c in cmd if c not in ("-c",)]
    cmd = cmd[: cmd.index("-o")] + ["-fsyntax-only", "-Wno-everything"]
    cmd = [c for c in cmd if c != str(src)] + [str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[:2000]


# ---- values -----------------------------------------------------------------------------------


def _record_value() -> dict:
    return {
        "id": 0x1122334455667788,
        "pair": {"a": -5, "b": 6},
        "bits": {"lo": 9, "mid": 0xABC, "neg": -3, "flag": 1, "wide": (1 << 40) - 2},
        "as_u32": 0x01020304,
        "point": {"x": 1, "y": 65535},
        "s": -1,
        "b": 1 << 40,
        "name": "abc",
        "matrix": [[1, -2, 3], [-4, 5, -128]],
        "ratio": 0.5,
        "precise": -2.25,
        "ok": True,
        "opq": 0xFFFF888000000000,
        "opu": 0,
        "cv": 8,
        "rp": 16,
        "uptr": 24,
        "fn": 32,
        "tagged": 77,
    }


def test_struct_value_roundtrip() -> None:
    btf = _types_btf()
    rid = btf.find("record", BtfKind.STRUCT).id
    value = _record_value()
    raw = encode_value(btf, rid, value)
    assert len(raw) == 144
    back = decode_value(btf, rid, raw)
    # The anonymous union's members are merged into the record.
    assert back["as_bytes"] == [4, 3, 2, 1]
    del back["as_bytes"]
    assert back == value
    assert encode_value(btf, rid, back) == raw


def test_value_partial_dicts_and_enum_names() -> None:
    btf = _types_btf()
    rid = btf.find("record", BtfKind.STRUCT).id
    raw = encode_value(btf, rid, {"s": "S_C", "b": "B_B", "name": "hi"})
    back = decode_value(btf, rid, raw)
    assert back["s"] == 7 and back["b"] == (1 << 64) - 1 and back["name"] == "hi"
    assert back["id"] == 0 and back["bits"]["neg"] == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"nope": 1},
        {"pair": {"a": 1 << 40}},
        {"bits": {"lo": 16}},
        {"s": "NOT_AN_ENUMERATOR"},
        {"name": b"too long!"},
        {"matrix": [[1, 2, 3, 4]]},
        {"ratio": "x"},
        {"pair": [1, 2]},
        {"id": 1.5},
    ],
)
def test_value_encode_errors(bad: dict) -> None:
    btf = _types_btf()
    with pytest.raises(BtfError):
        encode_value(btf, btf.find("record", BtfKind.STRUCT).id, bad)


def test_value_decode_errors_and_fallbacks() -> None:
    btf = _types_btf()
    rid = btf.find("record", BtfKind.STRUCT).id
    with pytest.raises(BtfError):
        decode_value(btf, rid, b"\0" * 10)
    fwd = btf.find("opaque", BtfKind.FWD)
    with pytest.raises(BtfError):
        decode_value(btf, fwd.id, b"\0" * 8)
    # Bytes are accepted for any type of the right size.
    assert encode_value(btf, rid, bytes(range(144)))[:3] == b"\0\1\2"


def test_synthetic_btf_values_and_signed_ints() -> None:
    types = [
        None,
        Int(1, "int", 4, 1, 0, 32),
        Int(2, "unsigned char", 1, 0, 0, 8),
        Int(3, "_Bool", 1, 4, 0, 1),
        Struct(
            4,
            "s",
            12,
            [Member("a", 1, 0), Member("c", 2, 32), Member("flag", 3, 40), Member("sb", 1, 64, 5)],
            kflag=True,
        ),
        Var(5, "g", 4),
        Datasec(6, ".data", 12, [VarSecinfo(5, 0, 12)]),
    ]
    from bpfkit.btf import Void

    types[0] = Void(0, "void")
    btf = Btf(types, b"\0")
    btf = parse_btf(encode_btf(btf))
    raw = encode_value(btf, 4, {"a": -2, "c": 255, "flag": True, "sb": -16})
    assert decode_value(btf, 4, raw) == {"a": -2, "c": 255, "flag": True, "sb": -16}
    assert decode_value(btf, 6, raw) == {"g": {"a": -2, "c": 255, "flag": True, "sb": -16}}
    assert encode_value(btf, 6, {"g": {"a": 1}})[:4] == b"\1\0\0\0"
    with pytest.raises(BtfError):
        encode_value(btf, 4, {"sb": 32})
    assert btf.size_of(4) == 12 and btf.align_of(4) == 4


# ---- .BTF.ext ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_line_info_text_is_the_source_line(source: str) -> None:
    raw, ext_raw = _raw_btf(source)
    btf = parse_btf(raw)
    ext = parse_btf_ext(ext_raw, btf)
    lines = (C_DIR / source).read_text().splitlines()
    n = 0
    for recs in ext.line_info.values():
        for li in recs:
            assert Path(li.file).name == source
            assert 1 <= li.line <= len(lines)
            assert li.source == lines[li.line - 1], (li.line, li.source)
            n += 1
    assert n > 0
    funcs = {btf.get(fi.type_id).name for recs in ext.func_info.values() for fi in recs}
    assert funcs and all(
        btf.get(fi.type_id).kind == BtfKind.FUNC for recs in ext.func_info.values() for fi in recs
    )
