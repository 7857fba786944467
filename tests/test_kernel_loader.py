"""The kernel loader: maps from specs, global data, pinning, BTF and line info, CO-RE
against the kernel's BTF (checked against the kernel's own CO-RE), kconfig and ksyms.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import struct
import threading

import pytest
from test_kernel_common import build_c, needs_clang

import bpfkit
from bpfkit.errors import BpfError, KernelError, VerifierError
from bpfkit.isa import opcodes as op
from bpfkit.kernel import sys as bsys
from bpfkit.kernel.btf import BtfFeatures, prepare_object_btf, vmlinux_btf
from bpfkit.kernel.kconfig import kernel_config, kernel_version_code
from bpfkit.kernel.loader import PinConflict, kernel_map_name
from bpfkit.obj import load_object
from bpfkit.uapi.enums import Cmd, MapType

pytestmark = [pytest.mark.kernel, needs_clang]


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernel_loader")
    return {n: build_c(n, d) for n in ("kernel_maps", "kernel_core", "kernel_bad")}


@pytest.fixture
def maps_obj(objs, bpffs):
    with bpfkit.load(objs["kernel_maps"], backend="kernel", pin_root=bpffs) as o:
        yield o


OUT = dict(
    SCALE=0,
    HZ=1,
    SYSCALL=2,
    VETH=3,
    MISSING=4,
    VERSION=5,
    FOPS=6,
    ITER=7,
    INNER=8,
    HAS_KFUNC=9,
    COUNTER=10,
)


def kallsyms(name):
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if parts[2] == name:
                return int(parts[0], 16)
    return None


# ---- maps and global data -------------------------------------------------------------
def test_maps_are_created_from_their_specs(maps_obj, objs):
    spec = load_object(objs["kernel_maps"])
    for name, ms in spec.maps.items():
        m = maps_obj.maps[name]
        info = m.kernel_info()
        assert int(info.type) == int(ms.type), name
        assert (info.key_size, info.value_size) == (ms.key_size, ms.value_size), name
        assert info.name == kernel_map_name(ms, spec.name)
        if ms.key_type_id and ms.value_type_id and ms.type in (MapType.HASH, MapType.ARRAY):
            assert info.btf_id and info.btf_value_type_id == ms.value_type_id, name
    assert maps_obj.maps["bloom"].kernel_info().map_extra == 3
    assert maps_obj.maps[".bss"].kernel_info().name.endswith(".bss")


def test_globals_kconfig_ksyms_kfuncs_and_map_in_map(maps_obj):
    maps_obj.maps["inner_b"][0] = 42
    maps_obj.programs["touch"].test_run(ctx=[0])
    out = maps_obj.maps["out"]
    cfg = kernel_config()
    assert out[OUT["SCALE"]] == 21  # .rodata scale = 3, frozen before load
    assert out[OUT["HZ"]] == int(cfg["CONFIG_HZ"])
    assert out[OUT["SYSCALL"]] == 1
    assert out[OUT["VETH"]] == {"y": 1, "m": 2, "n": 0}[cfg.get("CONFIG_VETH", "n")]
    assert out[OUT["MISSING"]] == 0  # __weak and absent
    assert out[OUT["VERSION"]] == kernel_version_code()
    assert out[OUT["FOPS"]] == kallsyms("schedule")
    assert out[OUT["ITER"]] == 0 + 1 + 2 + 3 + 4  # bpf_iter_num kfuncs
    assert out[OUT["INNER"]] == 42  # outer[1] = inner_b, from the spec's initial values
    assert out[OUT["HAS_KFUNC"]] == 0  # weak kfunc the kernel lacks
    assert maps_obj.maps[".bss"][0] == {"counter": 1}
    assert maps_obj.maps[".data"][0] == {"greeting": "hello"}  # char[]: a C string


def test_constants_and_rodata(objs, bpffs):
    with bpfkit.load(
        objs["kernel_maps"], backend="kernel", pin_root=bpffs, constants={"scale": 5, "counter": 10}
    ) as o:
        o.programs["touch"].test_run(ctx=[0])
        assert o.maps["out"][OUT["SCALE"]] == 35
        assert o.maps["out"][OUT["COUNTER"]] == 11
        rodata = o.maps[".rodata"]
        assert rodata[0] == {"scale": 5}
        with pytest.raises(KernelError) as ei:
            rodata[0] = {"scale": 6}
        assert ei.value.errno == errno.EPERM
        assert rodata.kernel_info().map_flags & bsys.F_RDONLY_PROG
        mem = o.maps[".bss"].memory()
        assert struct.unpack_from("<Q", mem)[0] == 11
        struct.pack_into("<Q", mem, 0, 100)
        assert o.maps[".bss"][0] == {"counter": 100}
        del mem
    with pytest.raises(BpfError, match="no global variable"):
        bpfkit.load(objs["kernel_maps"], backend="kernel", constants={"nope": 1})


def test_pinning_by_name_reuses_and_refuses(objs, bpffs):
    spec = load_object(objs["kernel_maps"])
    with bpfkit.load(spec, backend="kernel", pin_root=bpffs) as a:
        assert a.maps["pinned_counts"].pinned == f"{bpffs}/pinned_counts"
        a.programs["touch"].test_run(ctx=[0])
        assert a.maps["pinned_counts"][0] == 1
    assert os.path.exists(f"{bpffs}/pinned_counts")  # outlives the object
    with bpfkit.load(spec, backend="kernel", pin_root=bpffs) as b:
        b.programs["touch"].test_run(ctx=[0])
        assert b.maps["pinned_counts"][0] == 2  # the same map, reused
        assert b.loaded.maps["pinned_counts"].reused
    with pytest.raises(PinConflict, match="max_entries 16 != 32"):
        bpfkit.load(spec, backend="kernel", pin_root=bpffs, max_entries={"pinned_counts": 32})
    os.unlink(f"{bpffs}/pinned_counts")


def test_failed_load_closes_what_it_made(objs):
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(VerifierError):
        bpfkit.load(objs["kernel_bad"], backend="kernel")
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


def test_garbage_collection_closes_everything(objs):
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    o = bpfkit.load(objs["kernel_core"], backend="kernel")
    prog_id = o.programs["core_read"].id
    assert len(os.listdir("/proc/self/fd")) > before
    del o
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(KernelError):
        bsys.prog_get_fd_by_id(prog_id)


# ---- BTF, func and line info --------------------------------------------------------
def test_verifier_error_points_at_the_c_line(objs):
    with pytest.raises(VerifierError) as ei:
        bpfkit.load(objs["kernel_bad"], backend="kernel")
    e = ei.value
    assert "invalid access to map value" in e.log and e.insn == 10
    assert e.line is not None and "bpfkit: out of bounds" in e.line["text"]
    assert e.line["file"].endswith("kernel_bad.c") and e.line["line"] == 21
    assert "; return v[1] == 42" in e.log
    assert e.program == "read_too_far"


def test_func_and_line_info_reach_the_kernel(objs):
    with bpfkit.load(objs["kernel_core"], backend="kernel", log_level=1) as o:
        p = o.programs["core_read"]
        info = p.info()
        assert info.nr_func_info == 1 and info.nr_line_info > 10 and info.btf_id
        assert "processed" in p.log


def test_btf_sanitised_for_an_old_kernel_still_loads(objs, bpffs):
    """With every newer BTF kind replaced, the kernel still takes the object."""
    spec = load_object(objs["kernel_maps"])
    prep = prepare_object_btf(spec.btf, spec, features=BtfFeatures.none())
    assert prep.sanitised
    with bsys.FD(bsys.btf_load(prep.data)):
        pass
    with bpfkit.load(
        spec, backend="kernel", btf_features=BtfFeatures.none(), programs=[], pin_root=bpffs
    ) as o:
        assert o.btf_fd is not None


# ---- CO-RE --------------------------------------------------------------------------
R = dict(
    PID=0,
    TGID=1,
    PPID=2,
    COMM0=3,
    FLAVOUR_PID=4,
    HAS_FIELD=5,
    HAS_MISSING=6,
    HAS_GONE=7,
    TYPE_SIZE=8,
    COMM_SIZE=9,
    TYPE_ID=10,
    HAS_TYPE=11,
    HAS_BOGUS_TYPE=12,
    ENUM_TGID=13,
    ENUM_SID=14,
    HAS_ENUM_BOGUS=15,
    BITFIELD=16,
    PID_SIGNED=17,
    OFF_PID=18,
)


def test_core_reads_the_running_kernel(objs):
    kb = vmlinux_btf()
    ts = kb.find("task_struct")
    pid_off = next(m.bit_offset for m in ts.members if m.name == "pid") // 8
    pid_type = {v.name: v.value for v in kb.find("pid_type").values}
    with open(f"/proc/self/task/{threading.get_native_id()}/comm", "rb") as f:
        comm = f.read()
    with bpfkit.load(objs["kernel_core"], backend="kernel") as o:
        o.programs["core_read"].test_run(ctx=[0])
        r = o.maps["res"]
        assert r[R["PID"]] == threading.get_native_id()
        assert r[R["TGID"]] == os.getpid() and r[R["PPID"]] == os.getppid()
        assert r[R["COMM0"]] == comm[0]
        assert r[R["FLAVOUR_PID"]] == threading.get_native_id()  # task_struct___old
        assert (r[R["HAS_FIELD"]], r[R["HAS_MISSING"]], r[R["HAS_GONE"]]) == (1, 0, 0)
        assert r[R["TYPE_SIZE"]] == ts.size and r[R["COMM_SIZE"]] == 16
        assert r[R["TYPE_ID"]] == ts.id
        assert (r[R["HAS_TYPE"]], r[R["HAS_BOGUS_TYPE"]]) == (1, 0)
        assert r[R["ENUM_TGID"]] == pid_type["PIDTYPE_TGID"]
        assert r[R["ENUM_SID"]] == pid_type["PIDTYPE_SID"]
        assert r[R["HAS_ENUM_BOGUS"]] == 0
        assert r[R["BITFIELD"]] in (0, 1) and r[R["PID_SIGNED"]] == 1
        assert r[R["OFF_PID"]] == pid_off


def test_unguarded_missing_field_fails_with_the_relocation(objs):
    with pytest.raises(VerifierError, match=r"unresolved CO-RE relocation .*bpfkit_no_such_field"):
        bpfkit.load(objs["kernel_core"], backend="kernel", programs=["core_bad"])


def _kernel_core_load(spec, prog_name, maps):
    """Load ``prog_name`` letting the kernel do CO-RE (BPF_PROG_LOAD core_relos)."""
    ps = spec.programs[prog_name]
    access = sorted({cr.access for cr in ps.core_relocations})
    prep = prepare_object_btf(spec.btf, spec, extra_strings=access)
    btf_fd = bsys.FD(bsys.btf_load(prep.data))
    insns = list(ps.instructions)
    for rel in ps.relocations:
        if rel.kind == "map":
            insns[rel.index] = insns[rel.index].with_(src=op.PSEUDO_MAP_FD, imm=maps[rel.map])
    code = ctypes.create_string_buffer(b"".join(i.encode() for i in insns))
    relos = b"".join(
        struct.pack("<IIII", cr.slot * 8, cr.type_id, prep.string_offset(cr.access), int(cr.kind))
        for cr in ps.core_relocations
    )
    rbuf = ctypes.create_string_buffer(relos)
    finfo = b"".join(struct.pack("<II", f.slot, f.type_id) for f in ps.func_info)
    fbuf = ctypes.create_string_buffer(finfo)
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 20)
    attr = bsys.ProgLoadAttr(
        prog_type=int(ps.prog_type),
        insn_cnt=len(code.raw) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(lic),
        log_level=1,
        log_size=len(log),
        log_buf=ctypes.addressof(log),
        prog_btf_fd=btf_fd.fileno(),
        func_info_rec_size=8,
        func_info=ctypes.addressof(fbuf),
        func_info_cnt=len(ps.func_info),
        core_relos=ctypes.addressof(rbuf),
        core_relo_cnt=len(ps.core_relocations),
        core_relo_rec_size=16,
    )
    fd, err = bsys.bpf(Cmd.PROG_LOAD, attr)
    btf_fd.close()
    assert fd >= 0, (os.strerror(err), log.value.decode()[-2000:])
    return bsys.FD(fd)


def test_core_agrees_with_the_kernels_own_core(objs):
    """Our relocated program translates to exactly what the kernel's CO-RE makes of it."""
    spec = load_object(objs["kernel_core"])
    with bpfkit.load(spec, backend="kernel", programs=["core_read"]) as o:
        ours = o.programs["core_read"].info(xlated=True).xlated
        maps = {name: m.fd for name, m in o.maps.items()}
        with _kernel_core_load(spec, "core_read", maps) as theirs_fd:
            theirs = bsys.prog_info(theirs_fd, xlated=True).xlated
    assert ours and ours == theirs
