"""Values and events through BTF: compiled codecs against the generic BTF walk, C strings,
hashable struct keys, records decoded from a BTF name / C text / ctypes / a dataclass /
clang, the C parser's layouts against clang's, and the CLI's strings against bpftool."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import random
import shutil
import struct
import subprocess
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfkit
from bpfkit.btf.codec import FrozenRecord, Record, c_string, compile_type, freeze
from bpfkit.btf.cparse import parse_c
from bpfkit.btf.values import decode_value, encode_value
from bpfkit.errors import BpfError, SourceError
from bpfkit.events import event_type
from bpfkit.uapi.btf import BtfKind

ROOT = Path(__file__).resolve().parents[1]
CLANG = shutil.which("clang-19")
BPFTOOL = shutil.which("bpftool")

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flow { __u32 saddr; __u16 port; __u8 proto; char name[9]; };
struct stats { __u64 packets; __u32 flags: 3, kind: 5; char tag[8];
               union { __u32 u; __u16 h[2]; }; struct { __u8 a, b; } pair; __s16 neg[3]; };

struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, struct flow); __type(value, struct stats);
         __uint(max_entries, 64); } flows SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, char[16]); __type(value, __u64);
         __uint(max_entries, 64); } by_comm SEC(".maps");

SEC("xdp")
int touch(struct xdp_md *ctx)
{
	struct flow f = {};
	return bpf_map_lookup_elem(&flows, &f) ? 1 : 2;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("values")
    (d / "values.c").write_text(SRC)
    return bpfkit.build(d / "values.c", d / "values.o")


@pytest.fixture(scope="module")
def spec(obj_path: Path):
    from bpfkit.obj import load_object

    return load_object(obj_path)


def _types(spec) -> list[tuple[int, int]]:
    """(type id, size) of every map key and value type of the object."""
    out = []
    for ms in spec.maps.values():
        for tid, size in ((ms.key_type_id, ms.key_size), (ms.value_type_id, ms.value_size)):
            if tid:
                out.append((tid, size))
    return out


# ---- compiled codecs == the generic walk ----------------------------------------------------
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_compiled_codec_agrees_with_the_btf_walk(spec, data) -> None:
    btf = spec.btf
    for tid, size in _types(spec):
        raw = data.draw(st.binary(min_size=size, max_size=size))
        for key in (False, True):
            tc = compile_type(btf, tid, key=key)
            want = decode_value(btf, tid, raw)
            got = tc.decode(raw)
            assert got == (freeze(want) if key else want)
            # encoding what was decoded gives what the walk gives
            assert tc.encode(got) == encode_value(btf, tid, want)
            if key:
                hash(got)


def test_flat_structs_take_the_fast_path(spec) -> None:
    btf = spec.btf
    flow = btf.find("flow", BtfKind.STRUCT).id
    stats = btf.find("stats", BtfKind.STRUCT).id
    assert compile_type(btf, flow).compiled  # scalars and a char array: one struct format
    assert not compile_type(btf, stats).compiled  # bit-fields and a union: the walk


def test_vmlinux_structs_agree_with_the_walk() -> None:
    from bpfkit.kernel.btf import kernel_btf_available, vmlinux_btf

    if not kernel_btf_available():
        pytest.skip("no kernel BTF")
    btf = vmlinux_btf()
    rng = random.Random(11)
    compiled = 0
    for name in (
        "ethhdr",
        "iphdr",
        "tcphdr",
        "sockaddr_in",
        "bpf_sock_tuple",
        "pt_regs",
        "xdp_md",
        "__sk_buff",
        "bpf_perf_event_value",
        "timespec64",
        "task_struct",
    ):
        t = btf.find(name, BtfKind.STRUCT)
        if t is None:
            continue
        tc = compile_type(btf, t.id)
        compiled += tc.compiled
        for _ in range(5):
            raw = bytes(rng.randrange(256) for _ in range(t.size))
            v = tc.decode(raw)
            assert v == decode_value(btf, t.id, raw)
            assert tc.encode(v) == encode_value(btf, t.id, v)
    assert compiled >= 4


def test_encode_errors_name_the_problem(spec) -> None:
    tc = compile_type(spec.btf, spec.btf.find("flow", BtfKind.STRUCT).id)
    with pytest.raises(BpfError, match="no member"):
        tc.encode({"nope": 1})
    with pytest.raises(BpfError, match="does not fit"):
        tc.encode({"port": 1 << 20})
    with pytest.raises(BpfError, match="do not fit"):
        tc.encode({"name": "much too long"})


# ---- C strings ------------------------------------------------------------------------------------
@given(st.binary(max_size=24))
def test_c_string_is_exact(raw: bytes) -> None:
    v = c_string(raw)
    if isinstance(v, str):
        assert v.encode().ljust(len(raw), b"\0") == raw  # the text gives back these very bytes
        assert v.isprintable() and "\0" not in v
    else:
        assert v == raw


def test_c_string_examples() -> None:
    assert c_string(b"bash\0\0\0\0") == "bash"
    assert c_string(b"\0" * 4) == ""
    assert c_string(b"full") == "full"
    assert c_string(b"ab\0junk") == b"ab\0junk"  # garbage after the NUL: not a C string
    assert c_string(b"\x01\x02\0\0") == b"\x01\x02\0\0"
    assert c_string("café".encode() + b"\0") == "café"


# ---- maps: strings in, strings out; struct keys are hashable -------------------------------------
def _exercise(m_flows, m_comm) -> None:
    key = {"saddr": 0x0100007F, "port": 80, "proto": 6, "name": "web"}
    m_flows[key] = {
        "packets": 5,
        "flags": 3,
        "kind": 17,
        "tag": "hot",
        "u": 0x00020001,
        "pair": {"a": 1, "b": 2},
        "neg": [-1, 2],
    }
    m_flows[{**key, "port": 443, "name": "tls"}] = {"packets": 7}
    got = dict(m_flows.items())  # decoded struct keys index a dict
    assert len(got) == 2
    k = next(k for k in got if k["port"] == 80)
    assert isinstance(k, FrozenRecord) and k.name == "web" and k == key
    v = got[k]
    assert isinstance(v, Record) and v.tag == "hot" and v.pair.b == 2 and v.neg == [-1, 2, 0]
    assert v.h == [1, 2] and v.flags == 3 and v.kind == 17
    assert m_flows[k].packets == 5  # a decoded key looks its value up again
    assert {k: 1}[FrozenRecord(key)] == 1
    with pytest.raises(TypeError):
        k["port"] = 1  # type: ignore[index]
    m_comm["bash"] = 3
    m_comm[b"\xff\xfe" + bytes(14)] = 4  # not text: stays bytes
    assert dict(m_comm.items()) == {"bash": 3, b"\xff\xfe" + bytes(14): 4}


def test_vm_maps_decode_strings_and_hashable_keys(obj_path: Path) -> None:
    with bpfkit.load(obj_path) as obj:
        _exercise(obj.maps["flows"], obj.maps["by_comm"])


@pytest.mark.kernel
def test_kernel_maps_decode_strings_and_hashable_keys(obj_path: Path) -> None:
    with bpfkit.load(obj_path, backend="kernel") as obj:
        _exercise(obj.maps["flows"], obj.maps["by_comm"])
        obj.maps["flows"].update_batch(
            [
                (
                    {"saddr": i, "port": i, "proto": 17, "name": f"b{i}"},
                    {"packets": i, "tag": f"t{i}"},
                )
                for i in range(40)
            ]
        )
        got = obj.maps["flows"].lookup_batch()
        assert got[FrozenRecord({"saddr": 7, "port": 7, "proto": 17, "name": "b7"})].tag == "t7"


@pytest.mark.kernel
@pytest.mark.skipif(BPFTOOL is None, reason="bpftool not installed")
def test_cli_map_strings_match_bpftool(obj_path: Path, bpffs: str) -> None:
    from click.testing import CliRunner

    from bpfkit.cli.main import cli

    def run(*args: str) -> dict:
        res = CliRunner().invoke(cli, [*args, "--json"])
        assert res.exit_code == 0, res.output + res.stderr
        return json.loads(res.stdout)

    loaded = run("load", str(obj_path), "--pin", f"{bpffs}/v")
    pin = next(m["pinned"] for m in loaded["maps"] if m["name"] == "by_comm")
    run("map", "update", pin, "--key", "bash", "--value", "9")  # a bare word for char[16]
    run("map", "update", pin, "--key", '"sshd"', "--value", "4")  # or a JSON string
    ours = {e["key"]: e["value"] for e in run("map", "dump", pin)["entries"]}
    assert ours == {"bash": 9, "sshd": 4}
    theirs = json.loads(
        subprocess.run(
            [BPFTOOL, "map", "dump", "pinned", pin, "-j"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    raw = {bytes(int(x, 16) for x in e["key"]): e["value"] for e in theirs}
    assert set(raw) == {b"bash" + bytes(12), b"sshd" + bytes(12)}  # stored as C strings
    # bpftool's BTF-formatted view shows the same strings
    assert {e["formatted"]["key"] for e in theirs} == {"bash", "sshd"}
    run("map", "delete", pin, "--key", "bash")
    assert [e["key"] for e in run("map", "dump", pin)["entries"]] == ["sshd"]


# ---- events ----------------------------------------------------------------------------------------
EVENT_C = """
#define ADDR_LEN 4
struct event {
	__u32 len;
	__u8 protocol;
	__u8 ttl;
	__u16 kind;
	__u8 saddr[ADDR_LEN];
	__u32 daddr;
};
"""


class CEvent(ctypes.Structure):
    _fields_ = [
        ("len", ctypes.c_uint32),
        ("protocol", ctypes.c_uint8),
        ("ttl", ctypes.c_uint8),
        ("kind", ctypes.c_uint16),
        ("saddr", ctypes.c_uint8 * 4),
        ("daddr", ctypes.c_uint32),
    ]


@dataclasses.dataclass
class DEvent:
    len: typing.Annotated[int, "__u32"]
    protocol: ctypes.c_uint8
    ttl: ctypes.c_uint8
    kind: typing.Annotated[int, ctypes.c_uint16]
    saddr: typing.Annotated[list, "__u8[4]"]
    daddr: typing.Annotated[int, "u32"]


def _packets() -> list[bytes]:
    sys_path = str(ROOT / "examples")
    import sys

    sys.path.insert(0, sys_path)
    try:
        from ringbuf_consumer import packet
    finally:
        sys.path.remove(sys_path)
    return [packet(6, "10.0.0.1", "10.0.0.2", ttl=61), packet(17, "192.168.1.9", "10.9.8.7", ttl=7)]


@pytest.mark.parametrize("backend", ["vm", "kernel"])
def test_ring_buffer_records_decode_every_way(backend: str, tmp_path: Path) -> None:
    if backend == "kernel":
        from conftest import require_kernel

        require_kernel()
    with bpfkit.load(ROOT / "examples" / "ringbuf_events.c", backend=backend) as obj:
        for p in _packets():
            obj.programs["produce_events"].test_run(data=p)
        records = obj.maps["events"].consume()
        assert len(records) == 2
        want = [struct.unpack("<IBBH4sI", r) for r in records]  # the independent reading
        by_c = event_type(EVENT_C).decode_all(records)
        by_dc = event_type(DEvent).decode_all(records)
        by_ct = event_type(CEvent).decode_all(records)
        for w, c, d, t in zip(want, by_c, by_dc, by_ct, strict=True):
            length, proto, ttl, kind, saddr, daddr = w
            assert (c.len, c.protocol, c.ttl, c.kind, bytes(c.saddr), c.daddr) == w
            assert d == DEvent(length, proto, ttl, kind, list(saddr), daddr)
            assert (t.len, t.protocol, t.ttl, bytes(t.saddr), t.daddr) == (
                length,
                proto,
                ttl,
                saddr,
                daddr,
            )
        assert [c.ttl for c in by_c] == [61, 7]
        if CLANG:
            by_clang = event_type(EVENT_C, compiler="clang").decode_all(records)
            assert by_clang == by_c


def test_event_type_by_btf_name(obj_path: Path) -> None:
    with bpfkit.load(obj_path) as obj:
        ev = event_type("struct flow", obj)
        raw = ev.encode({"saddr": 1, "port": 2, "proto": 3, "name": "x"})
        assert ev.decode(raw + bytes(8)) == {"saddr": 1, "port": 2, "proto": 3, "name": "x"}
        with pytest.raises(BpfError, match="too short"):
            ev.decode(raw[:-1])
    from bpfkit.kernel.btf import kernel_btf_available

    if kernel_btf_available():
        iph = event_type("iphdr")  # not in the object: the kernel's BTF
        assert iph.size == 20


def test_event_type_errors() -> None:
    with pytest.raises(BpfError):
        event_type("struct nosuch_type_anywhere_ux")
    with pytest.raises(TypeError):
        event_type(int)
    with pytest.raises(SourceError):
        event_type("struct x { mystery_t a; };")

    @dataclasses.dataclass
    class Bad:
        a: int

    with pytest.raises(BpfError, match="C layout"):
        event_type(Bad)


# ---- the C parser against clang ------------------------------------------------------------------
_MEMBER_TYPES = [
    "char",
    "unsigned char",
    "short",
    "unsigned short",
    "int",
    "unsigned int",
    "long",
    "unsigned long long",
    "__u8",
    "__s16",
    "__u32",
    "__s64",
    "void *",
    "_Bool",
    "float",
    "double",
]


def _random_structs(rng: random.Random, n: int) -> str:
    out = ["#include <linux/types.h>", "#define N 3"]
    for i in range(n):
        members = []
        for j in range(rng.randint(1, 7)):
            t = rng.choice(_MEMBER_TYPES + ([f"struct s{rng.randrange(i)}"] if i else []))
            kind = rng.random()
            if kind < 0.15 and t in (
                "unsigned int",
                "int",
                "__u32",
                "unsigned char",
                "short",
                "__u8",
            ):
                width = rng.randint(1, {"unsigned char": 8, "__u8": 8, "short": 16}.get(t, 32))
                members.append(f"{t} m{j}: {width};")
            elif kind < 0.35:
                members.append(f"{t} m{j}[{rng.choice(['2', 'N', 'N*2', '5'])}];")
            else:
                members.append(f"{t} m{j};")
        attr = " __attribute__((packed))" if rng.random() < 0.2 else ""
        out.append(f"struct s{i} {{ {' '.join(members)} }}{attr};")
        out.append(f"struct s{i} *anchor{i};")
    return "\n".join(out) + "\n"


@pytest.mark.skipif(CLANG is None, reason="clang-19 not installed")
def test_c_parser_lays_out_like_clang(tmp_path: Path) -> None:
    from bpfkit.btf.parser import parse_btf
    from bpfkit.obj.elf import ElfFile

    text = _random_structs(random.Random(5), 120)
    (tmp_path / "s.c").write_text(text)
    bpfkit.build(tmp_path / "s.c", tmp_path / "s.o")  # clang-19 -g -target bpf
    theirs = parse_btf(ElfFile((tmp_path / "s.o").read_bytes()).by_name(".BTF").data)
    ours = parse_c(text.replace("#include <linux/types.h>\n", ""))
    for i in range(120):
        a = ours.btf.get(ours.find(f"struct s{i}"))
        b = theirs.find(f"s{i}", BtfKind.STRUCT)
        assert b is not None
        assert a.size == b.size, f"s{i}"
        assert [(m.name, m.bit_offset, m.bitfield_size) for m in a.members] == [
            (m.name, m.bit_offset, m.bitfield_size) for m in b.members
        ], f"s{i}"


@given(st.text(alphabet=st.sampled_from(list("struct{};[]()*:,=#define x_1 0x9-+<>")), max_size=80))
def test_c_parser_never_crashes(text: str) -> None:
    try:
        parse_c(text)
    except SourceError:
        pass
