"""The object loader's parsed form (bytes, columns) against the instruction objects.

``load_object`` links programs as bytecode and builds ``instructions``, ``relocations``
and ``line_info`` from it on first use; the kernel loader patches map fds into those
bytes. Each of these is checked against the object path it replaces: the bulk decoder
against the slot-by-slot reference decoder (hypothesis), every program's bytes against
its decoded instructions re-encoded, the kernel relocation of bytes against the
relocation of instructions, and (with a kernel and bpftool) the program tags the
kernel computes against libbpf's load of the same objects.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernel_common import build_c

import bpfkit
from bpfkit.errors import DecodeError
from bpfkit.isa.instruction import _decode_each, decode, lddw_slots
from bpfkit.kernel import sys as bsys
from bpfkit.kernel.btf import prepare_object_btf
from bpfkit.kernel.loader import LoadOptions, _Loader, line_strings
from bpfkit.obj import load_object
from bpfkit.obj.build import compile_c
from bpfkit.obj.overrides import apply_overrides
from bpfkit.obj.spec import RelocKind

ROOT = Path(__file__).resolve().parents[1]
C_DIR = ROOT / "tests" / "c"
SOURCES = [
    "obj_calls.c",
    "obj_maps.c",
    "obj_globals.c",
    "obj_core.c",
    "obj_legacy.c",
    "obj_struct_ops.c",
    "obj_sections.c",
    "kernel_maps.c",
    "kernel_trace.c",
    "kernel_net.c",
]
EXAMPLES = ["xdp_proto_count.c", "tail_dispatch.c", "globals_loop.c", "latency_hist.c"]
#: an unrolled loop of map lookups: thousands of instructions, hundreds of lddw
UNROLLED = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64);
         __uint(max_entries, 64); } arr SEC(".maps");
__u64 total = 0;
static __noinline int helper(__u32 i) { return i * 3 + 1; }
SEC("xdp")
int unrolled(struct xdp_md *ctx)
{
#pragma clang loop unroll(full)
	for (__u32 i = 0; i < 200; i++) {
		__u32 k = i & 63;
		__u64 *v = bpf_map_lookup_elem(&arr, &k);
		if (v)
			*v += i * 7 + 3;
	}
	total += helper(ctx->ingress_ifindex);
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, Path]:
    if not (shutil.which("clang-19") or shutil.which("clang")):
        pytest.skip("needs clang")
    d = tmp_path_factory.mktemp("obj_raw")
    out = {name: build_c(Path(name).stem, d) for name in SOURCES}
    for name in EXAMPLES:
        out[name] = d / (Path(name).stem + ".o")
        compile_c(ROOT / "examples" / name, out[name])
    (d / "unrolled.c").write_text(UNROLLED)
    out["unrolled"] = d / "unrolled.o"
    compile_c(d / "unrolled.c", out["unrolled"])
    return out


# ---- the bulk decoder -------------------------------------------------------------------

_OPS = [0x18, 0x85, 0x07, 0xB7, 0x95, 0x61, 0x00, 0x05, 0x15, 0xDB, 0xBF, 0x7B]


_SLOT = st.tuples(
    st.sampled_from(_OPS) | st.integers(0, 255),
    st.sampled_from([0, 1, 0x10, 0x21, 0xA1]) | st.integers(0, 255),
    st.sampled_from([0, 1, -1, 0x7FFF]) | st.integers(-0x8000, 0x7FFF),
    st.sampled_from([0, 1, -1, 16, 0x7FFFFFFF]) | st.integers(-(1 << 31), 2**31 - 1),
)


@st.composite
def _streams(draw) -> bytes:
    out = bytearray()
    for op, regs, off, imm in draw(st.lists(_SLOT, max_size=24)):
        out += bytes([op, regs]) + off.to_bytes(2, "little", signed=True)
        out += imm.to_bytes(4, "little", signed=True)
    if out and draw(st.booleans()):
        out += bytes([0x18]) + bytes(7)  # sometimes an lddw without a second slot
    return bytes(out)


def _outcome(fn, *args, **kw):
    try:
        return [(i.opcode, i.dst, i.src, i.off, i.imm, i.ref) for i in fn(*args, **kw)]
    except DecodeError as e:
        return ("error", str(e), e.offset)


@settings(max_examples=300, deadline=None)
@given(_streams(), st.booleans())
def test_bulk_decode_is_the_slot_by_slot_decode(code: bytes, strict: bool) -> None:
    """Same instructions, or the same first error at the same offset."""
    assert _outcome(decode, code, strict=strict) == _outcome(_decode_each, code, strict)
    assert _outcome(decode, bytearray(code), strict=strict) == _outcome(decode, code, strict=strict)


@settings(max_examples=150, deadline=None)
@given(_streams())
def test_lddw_slots_are_where_decode_puts_an_lddw(code: bytes) -> None:
    try:
        insns = _decode_each(code, False)
    except DecodeError as e:
        with pytest.raises(DecodeError) as got:
            lddw_slots(code)
        assert got.value.offset == e.offset
        return
    slot, want = 0, []
    for i in insns:
        if i.is_lddw:
            want.append(slot)
        slot += i.slots
    assert lddw_slots(code) == want


# ---- the parsed form of every program -----------------------------------------------------


def _decoded(p):
    """A copy of ``p`` whose instructions, relocations and line info are objects."""
    q = dataclasses.replace(p)  # reads (so builds) every field
    assert q._raw_parts() == (None, None, None)
    return q


def test_programs_bytes_are_their_instructions(objects) -> None:
    n = 0
    for path in objects.values():
        spec = load_object(path)
        for p in spec.programs.values():
            fresh = load_object(path).programs[p.name]
            code, rels, lines = fresh._raw_parts()
            assert code is not None and rels is not None
            q = _decoded(p)
            # bytecode() of the parsed bytes == the decoded instructions encoded again
            assert fresh.bytecode() == q.bytecode(), p.name
            assert fresh.to_json() == q.to_json()
            assert [
                (r.index, r.slot, r.kind, r.symbol, r.map, r.offset, r.target)
                for r in q.relocations
            ] == rels
            for r in q.relocations:  # every relocation names its instruction
                insn = q.instructions[r.index]
                assert q.slots[r.index] == r.slot
                assert insn.is_lddw or insn.is_call
            if lines is not None:
                assert [li.slot for li in q.line_info] == lines.slots
                assert all(q.slots[li.index] == li.slot for li in q.line_info)
            n += 1
    assert n >= 20


def test_overrides_keep_programs_parsed(objects) -> None:
    spec = load_object(objects["unrolled"])
    out = apply_overrides(spec, prog_type="socket_filter")
    p, q = spec.programs["unrolled"], out.programs["unrolled"]
    assert q._raw_parts()[0] is not None  # not decoded by the copy
    assert q.prog_type != p.prog_type
    assert (
        dataclasses.replace(
            p,
            prog_type=q.prog_type,
            expected_attach_type=q.expected_attach_type,
            attach_kind=q.attach_kind,
            flags=q.flags,
        )
        == q
    )


# ---- the kernel loader on bytes -----------------------------------------------------------


def _loader(spec) -> _Loader:
    """A kernel loader whose maps are fake fds (no kernel needed to relocate)."""
    ld = _Loader(spec, LoadOptions())
    for i, name in enumerate(spec.maps):
        fd = 100 + i
        ld.out.maps[name] = SimpleNamespace(fd=SimpleNamespace(fileno=lambda fd=fd: fd))
    return ld


_KERNEL_ONLY = {RelocKind.KSYM, RelocKind.KFUNC}


def test_kernel_relocation_of_bytes_is_that_of_instructions(objects) -> None:
    n = 0
    for path in objects.values():
        spec = load_object(path)
        ld = _loader(spec)
        for p in spec.programs.values():
            if p.core_relocations or any(r[2] in _KERNEL_ONLY for r in p._raw_parts()[1]):
                continue  # the object path (CO-RE) or kernel symbols
            code, rels, _ = p._raw_parts()
            got = ld.relocate_code(p, code, rels)
            insns, _, _ = ld.relocate(_decoded(p))
            assert got == bsys.encode_for_load(insns), p.name
            n += 1
    assert n >= 15


def test_line_info_of_columns_is_that_of_objects(objects) -> None:
    n = 0
    for path in objects.values():
        spec = load_object(path)
        if spec.btf is None:
            continue
        decoded = load_object(path)
        for name, p in decoded.programs.items():
            decoded.programs[name] = _decoded(p)
        assert list(dict.fromkeys(line_strings(spec))) == list(dict.fromkeys(line_strings(decoded)))
        info = []
        for which in (spec, decoded):
            ld = _loader(which)
            ld.out.btf = prepare_object_btf(which.btf, which, extra_strings=line_strings(which))
            ld.out.btf_fd = "btf fd"  # type: ignore[assignment]
            info.append({name: ld._btf_info(p) for name, p in which.programs.items()})
        assert info[0] == info[1]
        n += sum(1 for kw in info[0].values() if kw.get("line_info"))
    assert n >= 10


# ---- against libbpf -----------------------------------------------------------------------


@pytest.mark.kernel
def test_program_tags_match_libbpf(objects, kernel, bpffs) -> None:
    """The kernel's tag of each program (a hash of its instructions with map references
    cleared) is the same whether bpftool (libbpf) or bpfkit loaded the object."""
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("needs bpftool")
    compared = 0
    for key in ("unrolled", *EXAMPLES, "obj_calls.c"):
        path = objects[key]
        pin = os.path.join(bpffs, f"loadperf_{Path(path).stem}")
        r = subprocess.run(
            [bpftool, "prog", "loadall", str(path), pin], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
        try:
            tool = {}
            for name in os.listdir(pin):
                fd = bsys.FD(bsys.obj_get(os.path.join(pin, name)))
                try:
                    info = bsys.prog_info(fd)
                finally:
                    fd.close()
                tool[info.name] = info.tag
        finally:
            shutil.rmtree(pin, ignore_errors=True)
        with bpfkit.load(path, backend="kernel") as o:
            mine = {}
            for p in o.programs.values():
                info = p.info()
                mine[info.name] = info.tag
        assert mine == tool, key
        compared += len(mine)
    assert compared >= 8


# ---- shared dataclass methods -------------------------------------------------------------


@functools.cache
def _shared_classes() -> list[type]:
    from bpfkit.btf import ext as btf_ext
    from bpfkit.btf import types as btf_types
    from bpfkit.btf.fields import Data
    from bpfkit.kernel import loader
    from bpfkit.obj import elf, sections, spec

    out = []
    for mod in (btf_types, btf_ext, spec, elf, sections, loader):
        for v in vars(mod).values():
            if isinstance(v, type) and issubclass(v, Data) and dataclasses.is_dataclass(v):
                if v.__module__ == mod.__name__:
                    out.append(v)
    return out


@functools.cache
def _reference(cls: type) -> type:
    """The class ``@dataclass`` would make with its own ``__eq__``/``__hash__``/``__repr__``."""
    fs = [
        (f.name, object, dataclasses.field(compare=f.compare, repr=f.repr))
        for f in dataclasses.fields(cls)
    ]
    frozen = cls.__dataclass_params__.frozen
    ref = dataclasses.make_dataclass(cls.__name__, fs, frozen=frozen, eq=True)
    ref.__qualname__ = cls.__qualname__
    return ref


_VALUES = st.one_of(
    st.integers(-3, 3), st.text(max_size=3), st.none(), st.lists(st.integers(0, 2), max_size=2)
)


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_shared_methods_are_the_generated_ones(data) -> None:
    """Equality, hash and repr of the classes built on ``bpfkit.btf.fields`` against
    ``dataclasses.make_dataclass`` with the same fields."""
    classes = _shared_classes()
    assert len(classes) >= 30
    for cls in classes:
        ref = _reference(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        a = {n: data.draw(_VALUES) for n in names}
        b = dict(a)
        if names and data.draw(st.booleans()):
            b[data.draw(st.sampled_from(names))] = data.draw(_VALUES)
        mine = [object.__new__(cls) for _ in range(2)]
        refs = [ref(**a), ref(**b)]
        for obj, vals in zip(mine, (a, b), strict=True):
            for f in dataclasses.fields(cls):  # set every slot, past frozen and lazy fields
                object.__setattr__(obj, f.name, vals.get(f.name))
            for f in dataclasses.fields(ref):
                if f.name not in vals:
                    object.__setattr__(refs[0 if vals is a else 1], f.name, None)
        assert repr(mine[0]) == repr(refs[0])
        assert (mine[0] == mine[1]) == (refs[0] == refs[1])
        assert (mine[0] == refs[0]) is False  # another class is never equal
        if cls.__dataclass_params__.frozen:
            try:
                want = hash(refs[0])
            except TypeError:
                continue  # an unhashable field value
            assert hash(mine[0]) == want
        else:
            with pytest.raises(TypeError):
                hash(mine[0])
