"""Reads of a map's kernel struct through a map pointer (``*(u64 *)(map_ptr + off)``),
walked in the running kernel's BTF as ``btf_struct_access`` does — against the kernel.

Every offset and size over ``struct bpf_array`` and ``struct bpf_htab`` (and the first
bytes of a few other map types' structs) is loaded into the kernel and verified by
bpfkit; the verdicts agree, and so do the kernel's messages."""

from __future__ import annotations

import os

import pytest

from bpfkit.errors import BpfError, KernelError, VerifierError
from bpfkit.isa import builders as b
from bpfkit.isa.instruction import Instruction
from bpfkit.verifier import MapDesc, kbtf, verify

pytestmark = pytest.mark.kernel


def _prog(fd: int, off: int, size: int, write: bool = False) -> list[Instruction]:
    """r1 = map; r6 = *(size *)(r1 + off) (or a store); r0 = 1; exit."""
    access = b.st(size, b.R1, off, 0) if write else b.ldx(size, b.R6, b.R1, off)
    return [b.ld_map_fd(b.R1, fd), access, b.mov64(b.R0, 1), b.exit_()]


def _kernel(insns) -> tuple[bool, str]:
    from bpfkit.kernel import sys as ks

    try:
        fd = ks.prog_load(1, insns, log_level=1)
    except (VerifierError, KernelError) as e:
        lines = [ln for ln in (getattr(e, "log", "") or "").splitlines() if ln]
        lines = [ln for ln in lines if not ln.startswith(("processed", "verification time"))]
        return False, lines[-1] if lines else ""
    os.close(fd)
    return True, ""


def _sweep(mtype: int, key: int, value: int, entries: int, offsets) -> list:
    from bpfkit.kernel import sys as ks

    try:
        fd = ks.map_create(mtype, key, value, entries)
    except BpfError as e:
        pytest.skip(f"map type {mtype}: {e}")
    desc = MapDesc(mtype, key, value, entries)
    bad = []
    try:
        for off in offsets:
            for size in (1, 2, 4, 8):
                insns = _prog(fd, off, size)
                k, why = _kernel(insns)
                r = verify(insns, prog_type=1, maps={fd: desc}, raise_on_error=False, cache=False)
                if k != r.ok or (not k and why and why not in r.error.kernel_message):
                    bad.append((off, size, why, r.error and r.error.kernel_message))
    finally:
        os.close(fd)
    return bad


@pytest.fixture(scope="module", autouse=True)
def _btf() -> None:
    if kbtf.vmlinux() is None:
        pytest.skip("no readable /sys/kernel/btf/vmlinux")


@pytest.mark.parametrize("mtype,name", [(2, "bpf_array"), (1, "bpf_htab")])
def test_every_offset_of_the_map_struct(mtype: int, name: str) -> None:
    size = kbtf.vmlinux().get(kbtf.struct_id(name)).size
    bad = _sweep(mtype, 4, 8, 4, range(-8, size + 9))
    assert not bad, bad[:20]


@pytest.mark.parametrize("mtype", [5, 6, 9, 22, 27, 30])
def test_other_map_types(mtype: int) -> None:
    """The first bytes of other map types' structs (percpu array and hash, LRU hash,
    queue, ring buffer, bloom filter)."""
    shapes = {22: (0, 8, 4), 27: (0, 0, 4096), 30: (0, 8, 4)}
    bad = _sweep(mtype, *shapes.get(mtype, (4, 8, 4)), range(0, 64, 3))
    assert not bad, bad[:20]


def test_writes_and_unprivileged() -> None:
    """A write is refused ("only read from ..."); an unprivileged loader may not read."""
    from bpfkit.kernel import sys as ks

    fd = ks.map_create(2, 4, 8, 1)
    try:
        insns = _prog(fd, 16, 4, write=True)
        k, why = _kernel(insns)
        desc = {fd: MapDesc(2, 4, 8, 1)}
        r = verify(insns, prog_type=1, maps=desc, raise_on_error=False, cache=False)
        assert not k and not r.ok and why == r.error.kernel_message
        r = verify(_prog(fd, 16, 4), prog_type=1, maps=desc, unpriv=True, raise_on_error=False)
        assert not r.ok and "CAP_PERFMON" in r.error.kernel_message
    finally:
        os.close(fd)


def test_kernel_pointer_read_is_not_supported() -> None:
    """Reading a pointer member gives a kernel struct pointer; following it is beyond
    bpfkit (rejected as not supported, never accepted)."""
    btf = kbtf.vmlinux()
    bpf_map = btf.get(kbtf.struct_id("bpf_map"))
    ops = next(m for m in bpf_map.members if m.name == "ops")
    from bpfkit.kernel import sys as ks

    fd = ks.map_create(2, 4, 8, 1)
    try:
        insns = _prog(fd, ops.bit_offset // 8, 8)
        insns[2:2] = [b.ldx(8, b.R7, b.R6, 0)]  # r7 = ops->first
        k, _ = _kernel(insns)
        r = verify(insns, prog_type=1, maps={fd: MapDesc(2, 4, 8, 1)}, raise_on_error=False)
        assert k and not r.ok and "not supported" in r.error.kernel_message
    finally:
        os.close(fd)


def _ops_uses(fd: int, o: int) -> dict[str, list[Instruction]]:
    """Programs using the ``ops`` pointer read from a map (offset ``o``)."""
    head = [b.ld_map_fd(b.R1, fd), b.ldx(8, b.R6, b.R1, o)]
    ret0 = [b.mov64(b.R0, 0), b.exit_()]
    return {
        "deref": head + [b.ldx(8, b.R0, b.R6, 0), b.exit_()],
        "to_helper": head
        + [b.mov64(b.R1, b.R6), b.mov64(b.R2, 8), b.mov64(b.R3, 0), b.call(113)]
        + ret0,
        "spill_fill": head + [b.stx(8, b.R10, -8, b.R6), b.ldx(8, b.R7, b.R10, -8)] + ret0,
        "spill_fill_deref": head
        + [b.stx(8, b.R10, -8, b.R6), b.ldx(8, b.R7, b.R10, -8), b.ldx(8, b.R0, b.R7, 0)]
        + [b.exit_()],
        "returned": head + [b.mov64(b.R0, b.R6), b.exit_()],
        "add_const": head + [b.add64(b.R6, 8)] + ret0,
        "add_const_deref": head + [b.add64(b.R6, 8), b.ldx(8, b.R0, b.R6, 0), b.exit_()],
        "alu32": head + [b.add32(b.R6, 1), b.mov64(b.R0, b.R6), b.exit_()],
        "null_check_deref": head
        + [b.mov64(b.R0, 0), b.jeq(b.R6, 0, 1), b.ldx(8, b.R0, b.R6, 0), b.exit_()],
        "map_ptr_add": [b.ld_map_fd(b.R1, fd), b.add64(b.R1, 8), b.ldx(4, b.R6, b.R1, 0)] + ret0,
        "store_to_map_ptr": [b.ld_map_fd(b.R1, fd), b.stx(8, b.R1, 0, b.R1)] + ret0,
    }


def test_uses_of_a_read_kernel_pointer() -> None:
    """What a program does with the pointer it read (``map->ops``): wherever the kernel
    rejects, bpfkit rejects with the kernel's message; following the pointer, which the
    kernel allows (as an untrusted, fault-tolerant load), is "not supported" in bpfkit —
    never an accept the kernel refuses."""
    from bpfkit.kernel import sys as ks

    bpf_map = kbtf.vmlinux().get(kbtf.struct_id("bpf_map"))
    o = next(m for m in bpf_map.members if m.name == "ops").bit_offset // 8
    fd = ks.map_create(2, 4, 8, 1)
    try:
        desc = {fd: MapDesc(2, 4, 8, 1)}
        bad = []
        for name, insns in _ops_uses(fd, o).items():
            k, why = _kernel(insns)
            r = verify(insns, prog_type=1, maps=desc, raise_on_error=False, cache=False)
            if r.ok and not k:
                bad.append((name, "unsafe accept", why))
            elif not r.ok and not k and why.split(" expected=")[0] not in r.error.kernel_message:
                bad.append((name, why, r.error.kernel_message))
            elif not r.ok and k and "not supported" not in r.error.kernel_message:
                bad.append((name, "false reject", r.error.kernel_message))
        assert not bad, bad
    finally:
        os.close(fd)
