"""``bpfkit.kernel.sys`` against the running kernel: maps, programs, pinning, ids, links, BTF."""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import struct
import tempfile

import pytest

from bpfkit.errors import KernelError, NotSupported, VerifierError
from bpfkit.isa.builders import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R10,
    Label,
    add64,
    assemble,
    exit_,
    jgt,
    ld_map_fd,
    ldx,
    mov64,
    st,
)
from bpfkit.kernel import sys as bsys
from bpfkit.kernel.sys import FD
from bpfkit.uapi.enums import AttachType, Cmd, LinkType, MapType, ProgType

RET7 = [mov64(R0, 7), exit_()]


def k(i: int) -> bytes:
    return struct.pack("<I", i)


def v(i: int) -> bytes:
    return struct.pack("<Q", i)


@pytest.fixture
def hash_map(kernel):
    with FD(bsys.map_create(MapType.HASH, 4, 8, 4, name="t_hash")) as fd:
        yield fd


# ---------------------------------------------------------------------------
# Pure helpers (no kernel needed)
# ---------------------------------------------------------------------------


def test_syscall_numbers():
    assert bsys.syscall_number("x86_64") in (321, 357)
    assert bsys.syscall_number("aarch64") in (280, 386)
    assert bsys.syscall_number("s390x") == 351
    assert bsys.syscall_number("ppc64le") == 361
    assert bsys.syscall_number("riscv64") == 280
    assert bsys.syscall_number("armv7l") == 386
    with pytest.raises(NotSupported):
        bsys.syscall_number("vax")


def test_attr_sizes_match_linux_layout():
    sizes = {
        bsys.MapElemAttr: 32,
        bsys.MapBatchAttr: 56,
        bsys.TestRunAttr: 80,
        bsys.InfoAttr: 16,
        bsys.LinkCreateAttr: 64,
        bsys.BtfLoadAttr: 40,
    }
    for cls, size in sizes.items():
        assert ctypes.sizeof(cls) == size, cls.__name__
    assert bsys.ProgLoadAttr.fd_array.offset == 120
    assert bsys.ProgLoadAttr.log_true_size.offset == 140
    assert bsys.MapCreateAttr.map_extra.offset == 64
    assert bsys.TestRunAttr.batch_size.offset == 72
    assert bsys.LinkCreateAttr.u.offset == 16
    assert bsys.BpfProgInfo.verified_insns.offset == 216


def test_hints():
    # EPERM is about privileges only when this process lacks a capability bpf() checks
    from bpfkit.kernel.privileges import ALL_BPF_CAPS, holds

    eperm = bsys.hint_for(Cmd.PROG_LOAD, errno.EPERM)
    if holds(*ALL_BPF_CAPS):
        assert "not a privilege problem" in eperm
    else:
        assert "CAP_BPF" in eperm or "lacks" in eperm
    assert "too old" in bsys.hint_for(Cmd.MAP_CREATE, errno.E2BIG)
    assert "full" in bsys.hint_for(Cmd.MAP_UPDATE_ELEM, errno.E2BIG)
    e = KernelError(errno.EPERM, "BPF_PROG_LOAD", bsys.hint_for(Cmd.PROG_LOAD, errno.EPERM))
    assert isinstance(e, OSError) and e.errno == errno.EPERM and "BPF_PROG_LOAD" in str(e)


def test_parse_verifier_log():
    log = (
        "func#0 @0\n0: R1=ctx() R10=fp0\n; return *p; @ prog.c:12\n"
        "0: (b7) r1 = 0                        ; R1=0\n"
        "1: (79) r0 = *(u64 *)(r1 +0)\nR1 invalid mem access 'scalar'\n"
        "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 "
        "peak_states 0 mark_read 0\n\n"
    )
    msg, insn, src, state = bsys.parse_verifier_log(log)
    assert msg == "R1 invalid mem access 'scalar'"
    assert insn == 1
    assert state == "R1=0"
    assert src == {"text": "return *p;", "file": "prog.c", "line": 12}
    msg, insn, _, _ = bsys.parse_verifier_log(
        "jump out of range from insn 3 to 9\nprocessed 0 insns\n"
    )
    assert (msg, insn) == ("jump out of range from insn 3 to 9", 3)
    assert bsys.parse_verifier_log("")[1] is None


def test_fd_ownership():
    r, w = os.pipe()
    os.close(w)
    fd = FD(r)
    assert fd.fileno() == r and int(fd) == r and not fd.closed
    fd.close()
    fd.close()  # idempotent
    assert fd.closed
    with pytest.raises(ValueError):
        fd.fileno()
    with pytest.raises(OSError):
        os.fstat(r)
    r, w = os.pipe()
    with FD(r) as a, FD(w):
        b = a.dup()
        assert b.fileno() != r
    with pytest.raises(OSError):
        os.fstat(r)
    b.close()
    r, w = os.pipe()
    os.close(w)
    FD(r)  # dropped: closed on garbage collection
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(r)
    r, w = os.pipe()
    os.close(w)
    raw = FD(r).detach()
    os.fstat(raw)
    os.close(raw)
    with pytest.raises(ValueError):
        FD(-1)


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------


def test_map_crud_and_errors(hash_map):
    fd = hash_map
    assert bsys.map_lookup(fd, k(1), 8) is None
    bsys.map_update(fd, k(1), v(10))
    assert bsys.map_lookup(fd, k(1), 8) == v(10)
    with pytest.raises(KernelError) as ei:
        bsys.map_update(fd, k(1), v(11), bsys.NOEXIST)
    assert ei.value.errno == errno.EEXIST and ei.value.command == "BPF_MAP_UPDATE_ELEM"
    with pytest.raises(KernelError) as ei:
        bsys.map_update(fd, k(2), v(11), bsys.EXIST)
    assert ei.value.errno == errno.ENOENT
    bsys.map_update(fd, k(1), v(12), bsys.EXIST)
    assert bsys.map_lookup(fd, k(1), 8) == v(12)
    bsys.map_delete(fd, k(1))
    with pytest.raises(KernelError) as ei:
        bsys.map_delete(fd, k(1))
    assert ei.value.errno == errno.ENOENT and "no such key" in str(ei.value)
    for i in range(4):
        bsys.map_update(fd, k(i), v(i))
    with pytest.raises(KernelError) as ei:
        bsys.map_update(fd, k(99), v(99))
    assert ei.value.errno == errno.E2BIG and "full" in ei.value.hint
    assert bsys.map_lookup_and_delete(fd, k(2), 8) == v(2)
    assert bsys.map_lookup(fd, k(2), 8) is None
    assert bsys.map_lookup_and_delete(fd, k(2), 8) is None


def test_array_map_errors(kernel):
    with FD(bsys.map_create(MapType.ARRAY, 4, 4, 2)) as fd:
        assert bsys.map_lookup(fd, k(0), 4) == b"\0" * 4
        with pytest.raises(KernelError) as ei:
            bsys.map_update(fd, k(5), k(1))
        assert ei.value.errno == errno.E2BIG
        with pytest.raises(KernelError) as ei:
            bsys.map_delete(fd, k(0))
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(ValueError):
            bsys.map_create(MapType.ARRAY, 4, 4, 2, name="bad name!")


def test_map_create_errors(kernel):
    with pytest.raises(KernelError) as ei:
        bsys.map_create(MapType.HASH, 0, 8, 4)
    assert ei.value.errno == errno.EINVAL and ei.value.command == "BPF_MAP_CREATE"


def test_get_next_key_iteration(hash_map):
    fd = hash_map
    assert bsys.map_get_next_key(fd, None, 4) is None
    for i in (5, 6, 7):
        bsys.map_update(fd, k(i), v(i * 100))
    keys = []
    key = None
    while (key := bsys.map_get_next_key(fd, key, 4)) is not None:
        keys.append(key)
    assert sorted(keys) == [k(5), k(6), k(7)]
    assert sorted(bsys.map_keys(fd, 4)) == sorted(keys)
    # A missing key restarts from the first key.
    assert bsys.map_get_next_key(fd, k(1234), 4) in keys


def test_batch_ops(kernel):
    with FD(bsys.map_create(MapType.HASH, 4, 8, 64)) as fd:
        keys = [k(i) for i in range(40)]
        vals = [v(i * 3) for i in range(40)]
        assert bsys.map_update_batch(fd, keys, vals) == 40
        got: dict[bytes, bytes] = {}
        token = None
        for _ in range(100):
            res = bsys.map_lookup_batch(fd, 4, 8, 7, token)
            got.update(zip(res.keys, res.values, strict=True))
            if res.next_batch is None:
                break
            token = res.next_batch
        assert got == dict(zip(keys, vals, strict=True))
        assert bsys.map_delete_batch(fd, keys[:10]) == 10
        assert bsys.map_lookup(fd, keys[0], 8) is None
        drained: dict[bytes, bytes] = {}
        token = None
        while True:
            res = bsys.map_lookup_and_delete_batch(fd, 4, 8, 64, token)
            drained.update(zip(res.keys, res.values, strict=True))
            if res.next_batch is None:
                break
            token = res.next_batch
        assert drained == dict(zip(keys[10:], vals[10:], strict=True))
        assert bsys.map_get_next_key(fd, None, 4) is None


def test_freeze(kernel):
    with FD(bsys.map_create(MapType.ARRAY, 4, 8, 1)) as fd:
        bsys.map_update(fd, k(0), v(1))
        bsys.map_freeze(fd)
        with pytest.raises(KernelError) as ei:
            bsys.map_update(fd, k(0), v(2))
        assert ei.value.errno == errno.EPERM
        assert bsys.map_lookup(fd, k(0), 8) == v(1)
        with pytest.raises(KernelError) as ei:
            bsys.map_freeze(fd)
        assert ei.value.errno in (errno.EBUSY, errno.EPERM)  # EPERM since frozen is read-only
        assert "frozen" in ei.value.hint


def test_queue_map(kernel):
    with FD(bsys.map_create(MapType.QUEUE, 0, 4, 4)) as fd:
        for i in (1, 2, 3):
            bsys.map_update(fd, None, k(i))
        assert bsys.map_lookup(fd, None, 4) == k(1)  # peek
        assert [bsys.map_lookup_and_delete(fd, None, 4) for _ in range(4)] == [
            k(1),
            k(2),
            k(3),
            None,
        ]


def test_map_info_and_ids(kernel):
    with FD(
        bsys.map_create(MapType.HASH, 4, 8, 16, flags=bsys.F_NO_PREALLOC, name="t_info_map")
    ) as fd:
        info = bsys.map_info(fd)
        assert info.type == MapType.HASH and info.name == "t_info_map"
        assert (info.key_size, info.value_size, info.max_entries) == (4, 8, 16)
        assert info.map_flags & bsys.F_NO_PREALLOC and info.id > 0
        assert info.id in set(bsys.map_ids())
        nxt = bsys.map_get_next_id(info.id - 1)
        assert nxt is not None and nxt <= info.id
        with FD(bsys.map_get_fd_by_id(info.id)) as fd2:
            assert bsys.map_info(fd2).id == info.id
    with pytest.raises(KernelError) as ei:
        bsys.map_get_fd_by_id(0xFFFFFFF0)
    assert ei.value.errno == errno.ENOENT


def test_possible_cpus():
    assert bsys.possible_cpus() >= 1


# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------


def test_prog_load_and_test_run(kernel):
    with FD(bsys.prog_load(ProgType.SOCKET_FILTER, RET7, name="t_ret7")) as fd:
        res = bsys.prog_test_run(fd, b"\xaa" * 64)
        assert res.retval == 7 and len(res.data_out) == 64 and res.duration_ns >= 0
        res = bsys.prog_test_run(fd, b"\xaa" * 64, repeat=100)
        assert res.retval == 7
    # Raw bytes are accepted too.
    code = bytes.fromhex("b7000000050000009500000000000000")
    with FD(bsys.prog_load(ProgType.SOCKET_FILTER, code)) as fd:
        assert bsys.prog_test_run(fd, b"\0" * 20).retval == 5


def _xdp_write_first_byte(byte: int) -> list:
    return assemble(
        [
            ldx(4, R2, R1, 0),  # data
            ldx(4, R3, R1, 4),  # data_end
            mov64(R4, R2),
            add64(R4, 1),
            mov64(R0, 2),  # XDP_PASS
            jgt(R4, R3, "out"),
            st(1, R2, 0, byte),
            Label("out"),
            exit_(),
        ]
    )


def test_test_run_data_out(kernel):
    with FD(bsys.prog_load(ProgType.XDP, _xdp_write_first_byte(0x42))) as fd:
        data = bytes(range(64))
        res = bsys.prog_test_run(fd, data)
        assert res.retval == 2
        assert res.data_out == b"\x42" + data[1:]
        # A too-small output buffer is grown once on ENOSPC.
        res = bsys.prog_test_run(fd, data, data_out_size=8)
        assert res.data_out == b"\x42" + data[1:]


def test_verifier_error(kernel):
    prog = [mov64(R1, 0), ldx(8, R0, R1, 0), exit_()]
    with pytest.raises(VerifierError) as ei:
        bsys.prog_load(ProgType.SOCKET_FILTER, prog)
    e = ei.value
    assert e.insn == 1
    assert "invalid mem access" in e.reason and "\n" not in e.reason
    assert "invalid mem access" in e.log and "processed" in e.log
    assert str(e).startswith("insn 1:")
    with pytest.raises(VerifierError) as ei:
        bsys.prog_load(ProgType.SOCKET_FILTER, [exit_()])
    assert "R0 !read_ok" in ei.value.reason and ei.value.insn == 0


def test_verifier_log_on_success(kernel):
    out: list[str] = []
    with FD(bsys.prog_load(ProgType.SOCKET_FILTER, RET7, log_level=2, log_out=out)):
        pass
    assert out and "processed" in out[0]


def test_prog_load_kernel_error(kernel):
    with pytest.raises(KernelError) as ei:
        bsys.prog_load(9999, RET7)
    assert ei.value.errno == errno.EINVAL and ei.value.command == "BPF_PROG_LOAD"


def test_unknown_attribute_gives_e2big(kernel):
    class Big(ctypes.Structure):
        _fields_ = [("raw", ctypes.c_uint8 * 1024)]

    attr = Big()
    attr.raw[1000] = 1  # a field this kernel does not have, non-zero
    res, err = bsys.bpf(Cmd.MAP_CREATE, attr)
    assert res < 0 and err == errno.E2BIG
    assert "too old" in bsys.hint_for(Cmd.MAP_CREATE, err)


def test_prog_info(kernel):
    with FD(bsys.map_create(MapType.ARRAY, 4, 8, 1)) as map_fd:
        prog = [ld_map_fd(R1, map_fd.fileno()), mov64(R0, 0), exit_()]
        with FD(bsys.prog_load(ProgType.SOCKET_FILTER, prog, name="t_info_prog")) as fd:
            info = bsys.prog_info(fd, xlated=True, jited=True)
            assert info.type == ProgType.SOCKET_FILTER and info.name == "t_info_prog"
            assert info.id > 0 and len(info.tag) == 16 and info.gpl_compatible
            assert info.verified_insns >= 3
            assert info.xlated_prog_len == 32 and len(info.xlated) == 32
            assert info.jited_prog_len > 0 and len(info.jited) == info.jited_prog_len
            assert info.map_ids == (bsys.map_info(map_fd).id,)
            assert info.id in set(bsys.prog_ids())
            assert bsys.prog_get_next_id(info.id - 1) is not None
            with FD(bsys.prog_get_fd_by_id(info.id)) as fd2:
                assert bsys.prog_info(fd2).tag == info.tag
    with pytest.raises(KernelError) as ei:
        bsys.prog_get_fd_by_id(0xFFFFFFF0)
    assert ei.value.errno == errno.ENOENT and "no program" in ei.value.hint


def test_enable_stats(kernel):
    with FD(bsys.prog_load(ProgType.SOCKET_FILTER, RET7)) as fd:
        with FD(bsys.enable_stats()):
            bsys.prog_test_run(fd, b"\0" * 20, repeat=10)
        info = bsys.prog_info(fd)
        assert info.run_cnt >= 10 and info.run_time_ns > 0


# ---------------------------------------------------------------------------
# Pinning
# ---------------------------------------------------------------------------


def test_pin_and_get(bpffs, tmp_path):
    with (
        FD(bsys.prog_load(ProgType.SOCKET_FILTER, RET7)) as pfd,
        FD(bsys.map_create(MapType.ARRAY, 4, 4, 1)) as mfd,
    ):
        ppath = os.path.join(bpffs, "prog")
        mpath = os.path.join(bpffs, "map")
        bsys.obj_pin(pfd, ppath)
        bsys.obj_pin(mfd, mpath)
        with FD(bsys.obj_get(ppath)) as p2:
            assert bsys.prog_info(p2).id == bsys.prog_info(pfd).id
        with FD(bsys.obj_get(mpath, bsys.F_RDONLY)) as m2:
            assert bsys.map_info(m2).id == bsys.map_info(mfd).id
            with pytest.raises(KernelError):
                bsys.map_update(m2, k(0), k(1))
        with pytest.raises(KernelError) as ei:
            bsys.obj_pin(pfd, ppath)
        assert ei.value.errno == errno.EEXIST
        with pytest.raises(KernelError) as ei:
            bsys.obj_get(os.path.join(bpffs, "missing"))
        assert ei.value.errno == errno.ENOENT and "pinned" in ei.value.hint
        with pytest.raises(KernelError) as ei:
            bsys.obj_pin(pfd, str(tmp_path / "not-bpffs"))
        assert ei.value.errno == errno.EPERM
        os.unlink(ppath)
        os.unlink(mpath)


# ---------------------------------------------------------------------------
# Links and attachment
# ---------------------------------------------------------------------------


def test_raw_tracepoint_link(kernel):
    with FD(bsys.prog_load(ProgType.RAW_TRACEPOINT, [mov64(R0, 0), exit_()])) as pfd:
        with FD(bsys.raw_tracepoint_open("sys_enter", pfd)) as lfd:
            info = bsys.link_info(lfd)
            assert info.type == LinkType.RAW_TRACEPOINT
            assert info.prog_id == bsys.prog_info(pfd).id
            assert info.details["tp_name"] == "sys_enter"
            assert info.id in set(bsys.link_ids())
            with FD(bsys.link_get_fd_by_id(info.id)) as l2:
                assert bsys.link_info(l2).id == info.id
        with pytest.raises(KernelError) as ei:
            bsys.raw_tracepoint_open("no_such_tracepoint_bpfkit", pfd)
        assert ei.value.errno == errno.ENOENT


def _cgroup2_root() -> str | None:
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return parts[1]
    return None


@pytest.fixture
def cgroup_fd(kernel):
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    path = tempfile.mkdtemp(prefix="bpfkit-", dir=root)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)
        os.rmdir(path)


def test_cgroup_link_and_attach(cgroup_fd):
    ret1 = [mov64(R0, 1), exit_()]
    ingress, egress = AttachType.CGROUP_INET_INGRESS, AttachType.CGROUP_INET_EGRESS
    with (
        FD(bsys.prog_load(ProgType.CGROUP_SKB, ret1, name="a")) as p1,
        FD(bsys.prog_load(ProgType.CGROUP_SKB, ret1, name="b")) as p2,
    ):
        id1, id2 = bsys.prog_info(p1).id, bsys.prog_info(p2).id
        with FD(bsys.link_create(p1, cgroup_fd, ingress)) as link:
            info = bsys.link_info(link)
            assert info.type == LinkType.CGROUP and info.prog_id == id1
            assert info.details["attach_type"] == ingress
            assert bsys.prog_query(cgroup_fd, ingress).prog_ids == [id1]
            bsys.link_update(link, p2)
            assert bsys.prog_query(cgroup_fd, ingress).prog_ids == [id2]
            bsys.link_update(link, p1, old_prog_fd=p2)
            with pytest.raises(KernelError):
                bsys.link_update(link, p2, old_prog_fd=p2)  # p2 is no longer attached
            bsys.link_detach(link)
            assert bsys.prog_query(cgroup_fd, ingress).prog_ids == []
        bsys.prog_attach(p1, cgroup_fd, egress, bsys.F_ALLOW_MULTI)
        bsys.prog_attach(p2, cgroup_fd, egress, bsys.F_ALLOW_MULTI)
        q = bsys.prog_query(cgroup_fd, egress)
        assert sorted(q.prog_ids) == sorted([id1, id2])
        assert q.attach_flags == bsys.F_ALLOW_MULTI
        bsys.prog_detach(cgroup_fd, egress, p1)
        bsys.prog_detach(cgroup_fd, egress, p2)
        assert bsys.prog_query(cgroup_fd, egress).prog_ids == []
        with pytest.raises(KernelError):
            bsys.prog_detach(cgroup_fd, egress, p2)


# ---------------------------------------------------------------------------
# BTF
# ---------------------------------------------------------------------------


def _btf(types: bytes, strings: bytes) -> bytes:
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_btf_load_and_info(kernel):
    # One type: int, 4 bytes, 32 bits, signed.
    int_type = struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32)
    with FD(bsys.btf_load(_btf(int_type, b"\0int\0"))) as fd:
        info = bsys.btf_info(fd, data=True)
        assert info.id > 0 and not info.kernel_btf
        assert info.data == _btf(int_type, b"\0int\0")
        assert info.id in set(bsys.btf_ids())
        with FD(bsys.btf_get_fd_by_id(info.id)) as fd2:
            assert bsys.btf_info(fd2).id == info.id
    # A name offset outside the string section is rejected, with the kernel's log.
    bad = struct.pack("<IIII", 99, 1 << 24, 4, (1 << 24) | 32)
    with pytest.raises(KernelError) as ei:
        bsys.btf_load(_btf(bad, b"\0int\0"))
    assert ei.value.errno == errno.EINVAL and ei.value.command == "BPF_BTF_LOAD"
    assert "invalid BTF" in ei.value.hint and ei.value.log


def test_vmlinux_btf_enumerated(kernel):
    names = []
    for btf_id in bsys.btf_ids():
        try:
            with FD(bsys.btf_get_fd_by_id(btf_id)) as fd:
                info = bsys.btf_info(fd)
        except KernelError:
            continue  # freed meanwhile
        if info.kernel_btf:
            names.append(info.name)
    if os.path.exists("/sys/kernel/btf/vmlinux"):
        assert "vmlinux" in names


def test_stack_program_roundtrip(kernel):
    prog = [st(8, R10, -8, 0x1234), ldx(8, R0, R10, -8), exit_()]
    with FD(bsys.prog_load(ProgType.SOCKET_FILTER, prog)) as fd:
        assert bsys.prog_test_run(fd, b"\0" * 20).retval == 0x1234
