"""CO-RE resolution without a kernel: kernel_core.c's relocations against a pretend
kernel (tests/c/kernel_core_target.c) whose types are laid out differently."""

from __future__ import annotations

import pytest
from test_kernel_common import C_DIR, build_c, needs_clang

from bpfkit.isa import opcodes as op
from bpfkit.isa.instruction import Instruction
from bpfkit.kernel.core import (
    POISON_CORE,
    CoreError,
    apply_core,
    essential_name,
    poison_reason,
    resolve_relocation,
)
from bpfkit.obj import load_object
from bpfkit.obj.spec import CoreRelocation
from bpfkit.uapi.btf import CoreReloKind as K

pytestmark = needs_clang


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    import shutil
    import subprocess

    d = tmp_path_factory.mktemp("kernel_core")
    clang = shutil.which("clang-19") or shutil.which("clang")
    target = d / "target.o"
    subprocess.run(
        [
            clang,
            "-g",
            "-O2",
            "-target",
            "bpf",
            "-c",
            str(C_DIR / "kernel_core_target.c"),
            "-o",
            str(target),
        ],
        check=True,
    )
    return {
        "local": load_object(build_c("kernel_core", d)),
        "amb": load_object(build_c("kernel_core_local", d)),
        "target": load_object(target),
    }


def member(btf, struct, name):
    t = btf.find(struct)
    return next(m for m in t.members if m.name == name)


def relos(spec, prog="core_read"):
    p = spec.programs[prog]
    return p, {(r.type_name, r.access, int(r.kind)): r for r in p.core_relocations}


def res_for(specs, type_prefix, kind, access=None):
    local, target = specs["local"], specs["target"]
    _p, rs = relos(local)
    for (tname, acc, k), r in rs.items():
        if tname.startswith(type_prefix) and k == kind and (access is None or acc == access):
            return resolve_relocation(local.btf, r.type_id, r.access, r.kind, target.btf)
    raise AssertionError(f"no {type_prefix} relocation of kind {kind}")


def test_essential_names():
    assert essential_name("task_struct___old") == "task_struct"
    assert essential_name("task_struct") == "task_struct"
    assert essential_name("___x") == "___x"


def test_field_offsets_follow_the_target(specs):
    tb = specs["target"].btf
    pid = res_for(specs, "struct task_struct", K.FIELD_BYTE_OFFSET, "0:3")
    assert (
        pid.ok
        and pid.local_value == 28
        and pid.value == member(tb, "task_struct", "pid").bit_offset // 8
    )
    flav = res_for(specs, "struct task_struct___old", K.FIELD_BYTE_OFFSET)
    assert flav.ok and flav.value == 16  # task_struct___old matches task_struct
    size = res_for(specs, "struct task_struct", K.FIELD_BYTE_SIZE, "0:0")
    assert size.value == 16  # comm


def test_existence_and_missing_fields(specs):
    gone = res_for(specs, "struct task_struct", K.FIELD_EXISTS, "0:4")
    assert gone.ok and gone.value == 0 and gone.local_value == 1
    has = res_for(specs, "struct task_struct", K.FIELD_EXISTS, "0:3")
    assert has.ok and has.value == 1
    missing = res_for(specs, "struct task_struct", K.FIELD_BYTE_OFFSET, "0:4")
    assert not missing.ok and "bpfkit_no_such_field" in missing.reason


def test_types_and_enums(specs):
    tb = specs["target"].btf
    assert res_for(specs, "struct task_struct", K.TYPE_SIZE).value == tb.find("task_struct").size
    assert res_for(specs, "struct task_struct", K.TYPE_ID_TARGET).value == tb.find("task_struct").id
    bogus = res_for(specs, "struct bpfkit_no_such_type", K.TYPE_EXISTS)
    assert bogus.ok and bogus.value == 0
    local = specs["local"]
    _p, rs = relos(local)
    enum_vals = {
        r.access: resolve_relocation(local.btf, r.type_id, r.access, r.kind, tb)
        for (t, _a, k), r in rs.items()
        if t == "enum pid_type" and k == K.ENUMVAL_VALUE
    }
    assert sorted(v.value for v in enum_vals.values()) == [5, 6]  # TGID, SID in the target
    ex = res_for(specs, "enum pid_type", K.ENUMVAL_EXISTS)
    assert ex.ok and ex.value == 0  # BPFKIT_NO_SUCH_VALUE


def test_bitfield_shifts(specs):
    tb = specs["target"].btf
    m = member(tb, "task_struct", "sched_reset_on_fork")
    off = res_for(specs, "struct task_struct", K.FIELD_BYTE_OFFSET, "0:5")
    size = res_for(specs, "struct task_struct", K.FIELD_BYTE_SIZE, "0:5")
    lsh = res_for(specs, "struct task_struct", K.FIELD_LSHIFT_U64, "0:5")
    rsh = res_for(specs, "struct task_struct", K.FIELD_RSHIFT_U64, "0:5")
    assert off.bitfield and size.value in (1, 2, 4, 8)
    # The load covers the bit; shifting left then right isolates exactly that bit.
    start = off.value * 8
    assert start <= m.bit_offset and m.bit_offset + 1 <= start + size.value * 8
    assert lsh.value == 64 - (m.bit_offset + 1 - start) and rsh.value == 63


def test_apply_core_patches_and_poisons(specs):
    local, target = specs["local"], specs["target"]
    p, _ = relos(local)
    out, results = apply_core(
        p.instructions, p.core_relocations, local.btf, target.btf, program="t"
    )
    assert len(results) == len(p.core_relocations)
    bad = [i for i, (_idx, r) in enumerate(results) if not r.ok]
    assert bad
    calls = [i for i in out if i.opcode == op.CALL_OP and poison_reason(i.imm) is not None]
    assert {poison_reason(c.imm) for c in calls} == set(bad)
    slots = sum(i.slots for i in p.instructions)
    assert sum(i.slots for i in out) == slots  # poisoning never moves code


def test_load_size_follows_a_resized_field(specs):
    local, target = specs["local"], specs["target"]
    ts = local.btf.find("task_struct")
    tgid_idx = next(i for i, m in enumerate(ts.members) if m.name == "tgid")
    rel = CoreRelocation(0, 0, ts.id, f"0:{tgid_idx}", K.FIELD_BYTE_OFFSET)
    ldx = Instruction(op.LDX | op.MEM | op.W, 1, 2, 24, 0)  # r1 = *(u32 *)(r2 + 24)
    out, _ = apply_core([ldx], [rel], local.btf, target.btf)
    assert out[0].off == 20 and out[0].opcode == op.LDX | op.MEM | op.H  # short in the target
    wrong = Instruction(op.LDX | op.MEM | op.W, 1, 2, 99, 0)
    with pytest.raises(CoreError, match="holds 99"):
        apply_core([wrong], [rel], local.btf, target.btf)


def test_lddw_poison_keeps_two_slots(specs):
    local, target = specs["local"], specs["target"]
    ts = local.btf.find("task_struct")
    missing = next(i for i, m in enumerate(ts.members) if m.name == "bpfkit_no_such_field")
    rel = CoreRelocation(0, 0, ts.id, f"0:{missing}", K.FIELD_BYTE_OFFSET)
    lddw = Instruction(op.LDDW, 1, 0, 0, 32)
    out, res = apply_core([lddw, Instruction(op.EXIT_OP)], [rel], local.btf, target.btf)
    assert [i.opcode for i in out] == [op.CALL_OP, op.JMP | op.JA, op.EXIT_OP]
    assert out[0].imm == POISON_CORE and not res[0][1].ok


def test_ambiguous_candidates_are_an_error(specs):
    amb, target = specs["amb"], specs["target"]
    p = amb.programs["amb"]
    with pytest.raises(CoreError, match="ambiguous"):
        apply_core(p.instructions, p.core_relocations, amb.btf, target.btf)


def test_bad_access_string(specs):
    local = specs["local"]
    ts = local.btf.find("task_struct")
    with pytest.raises(CoreError):
        resolve_relocation(local.btf, ts.id, "0:x", K.FIELD_BYTE_OFFSET, local.btf)
    with pytest.raises(CoreError):
        resolve_relocation(local.btf, ts.id, "0:99", K.FIELD_BYTE_OFFSET, local.btf)
