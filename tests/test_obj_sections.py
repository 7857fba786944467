"""The section-name table, and objects assembled by llvm-mc (no BTF, unusual layouts)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bpfkit.errors import ElfError
from bpfkit.isa import opcodes as op
from bpfkit.obj import RelocKind, load_object, match_section
from bpfkit.obj.sections import ATTACH_BTF, SECTION_DEFS, SLEEPABLE, XDP_FRAGS
from bpfkit.uapi.attach import NewAttachType
from bpfkit.uapi.enums import AttachType, ProgType


@pytest.mark.parametrize(
    "name, ptype, atype, target",
    [
        ("xdp", ProgType.XDP, AttachType.XDP, None),
        ("xdp/foo", ProgType.UNSPEC, None, None),  # "xdp" matches exactly only
        ("xdp.frags/cpumap", ProgType.XDP, AttachType.XDP_CPUMAP, None),
        ("tc", ProgType.SCHED_CLS, None, None),
        ("tc/ingress", ProgType.SCHED_CLS, NewAttachType.TCX_INGRESS, None),
        ("tcx/egress", ProgType.SCHED_CLS, NewAttachType.TCX_EGRESS, None),
        ("netkit/peer", ProgType.SCHED_CLS, NewAttachType.NETKIT_PEER, None),
        ("kprobe", ProgType.KPROBE, None, None),
        ("kprobe/", ProgType.KPROBE, None, None),
        ("kprobe/do_sys_open+0x10", ProgType.KPROBE, None, "do_sys_open+0x10"),
        ("kprobefoo", ProgType.UNSPEC, None, None),
        ("kprobe.multi/tcp_*", ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, "tcp_*"),
        ("uprobe.multi/bin:f*", ProgType.KPROBE, NewAttachType.TRACE_UPROBE_MULTI, "bin:f*"),
        ("tracepoint/sched/sched_switch", ProgType.TRACEPOINT, None, "sched/sched_switch"),
        ("raw_tracepoint/sys_enter", ProgType.RAW_TRACEPOINT, None, "sys_enter"),
        ("raw_tp.w/x", ProgType.RAW_TRACEPOINT_WRITABLE, None, "x"),
        ("fexit.s/f", ProgType.TRACING, AttachType.TRACE_FEXIT, "f"),
        ("lsm_cgroup/socket_bind", ProgType.LSM, AttachType.LSM_CGROUP, "socket_bind"),
        ("iter.s/task_file", ProgType.TRACING, AttachType.TRACE_ITER, "task_file"),
        ("cgroup/skb", ProgType.CGROUP_SKB, None, None),
        ("cgroup/sock", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, None),
        ("cgroup/sendmsg6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP6_SENDMSG, None),
        ("cgroup/connect_unix", ProgType.CGROUP_SOCK_ADDR, NewAttachType.CGROUP_UNIX_CONNECT, None),
        ("cgroup/setsockopt", ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_SETSOCKOPT, None),
        ("sk_skb", ProgType.SK_SKB, None, None),
        (
            "sk_reuseport/migrate",
            ProgType.SK_REUSEPORT,
            AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE,
            None,
        ),
        ("struct_ops.s/init", ProgType.STRUCT_OPS, None, "init"),
        ("lwt_seg6local", ProgType.LWT_SEG6LOCAL, None, None),
        ("lirc_mode2", ProgType.LIRC_MODE2, AttachType.LIRC_MODE2, None),
        ("usdt", ProgType.KPROBE, None, None),
        (".text", ProgType.UNSPEC, None, None),
    ],
)
def test_match_section(name: str, ptype, atype, target) -> None:
    d, t = match_section(name)
    assert (d.prog_type, d.attach_type, t) == (ptype, atype, target)


def test_traits() -> None:
    assert match_section("fentry.s/x")[0].traits == ATTACH_BTF | SLEEPABLE
    assert match_section("xdp.frags")[0].traits == XDP_FRAGS
    assert match_section("syscall")[0].traits == SLEEPABLE
    assert match_section("kretprobe/x")[0].kind == "kretprobe"


def test_table_is_well_formed() -> None:
    patterns = [d.pattern for d in SECTION_DEFS]
    assert len(patterns) == len(set(patterns))
    for d in SECTION_DEFS:
        assert d.kind
        # Every pattern matches itself (without the '+' marker) and finds its own row first
        # unless an earlier, more specific row claims it.
        base = d.pattern.rstrip("+")
        assert d.matches(base) or d.pattern.endswith("/")


# ---- objects from llvm-mc ---------------------------------------------------------------

LLVM_MC = shutil.which("llvm-mc-19") or shutil.which("llvm-mc")


def _assemble(tmp_path: Path, text: str) -> Path:
    if LLVM_MC is None:
        pytest.skip("llvm-mc not installed")
    src = tmp_path / "t.s"
    src.write_text(text)
    out = tmp_path / "t.o"
    subprocess.run(
        [LLVM_MC, "-triple", "bpf", "-filetype=obj", str(src), "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_section_without_symbols_is_one_program(tmp_path: Path) -> None:
    path = _assemble(
        tmp_path,
        """
	.section	xdp,"ax",@progbits
	r0 = 1
	call 2
	exit
	.section	license,"aw",@progbits
	.asciz	"MIT"
""",
    )
    spec = load_object(path)
    p = spec.programs["xdp"]
    assert p.prog_type == ProgType.XDP and len(p.instructions) == 3 and p.license == "MIT"
    assert p.instructions[1].is_helper_call and p.relocations == [] and spec.btf is None


def test_local_calls_without_relocations(tmp_path: Path) -> None:
    path = _assemble(
        tmp_path,
        """
	.section	socket,"ax",@progbits
	.globl	main
	.type	main,@function
main:
	r0 = 1
	call sub
	exit
	.type	sub,@function
sub:
	r0 = 2
	call sub2
	exit
	.type	sub2,@function
sub2:
	r0 = 3
	exit
""",
    )
    spec = load_object(path)
    assert list(spec.programs) == ["main"] and spec.subprograms == ["sub", "sub2"]
    p = spec.programs["main"]
    assert p.functions == [("main", 0), ("sub", 3), ("sub2", 6)]
    assert [r.target for r in p.relocations if r.kind == RelocKind.CALL] == ["sub", "sub2"]
    assert p.instructions[1].imm == 1 and p.instructions[4].imm == 1


def test_calls_into_text_from_two_sections(tmp_path: Path) -> None:
    path = _assemble(
        tmp_path,
        """
	.text
	.type	helper,@function
helper:
	r0 = r1
	exit
	.section	socket,"ax",@progbits
	.globl	a
	.type	a,@function
a:
	r1 = 7
	call helper
	exit
	.section	tc,"ax",@progbits
	.globl	b
	.type	b,@function
b:
	r6 = 1
	r1 = 2
	call helper
	r0 += r6
	exit
""",
    )
    spec = load_object(path)
    a, b = spec.programs["a"], spec.programs["b"]
    for p, call_idx in ((a, 1), (b, 2)):
        insn = p.instructions[call_idx]
        assert insn.src == op.PSEUDO_CALL
        assert call_idx + insn.imm + 1 == dict(p.functions)["helper"]
        assert p.instructions[-2:] == spec.programs["a"].instructions[-2:]


def test_reference_to_a_non_data_section_is_an_error(tmp_path: Path) -> None:
    path = _assemble(
        tmp_path,
        """
	.section	xdp,"ax",@progbits
	.globl	p
	.type	p,@function
p:
	r1 = lic ll
	r0 = 0
	exit
	.section	license,"aw",@progbits
lic:
	.asciz	"GPL"
""",
    )
    with pytest.raises(ElfError, match="neither maps nor global data"):
        load_object(path)


def test_global_data_reference_from_assembly(tmp_path: Path) -> None:
    path = _assemble(
        tmp_path,
        """
	.section	xdp,"ax",@progbits
	.globl	p
	.type	p,@function
p:
	r1 = val ll
	r0 = *(u32 *)(r1 + 0)
	exit
	.data
	.long	1
val:
	.long	7
""",
    )
    spec = load_object(path)
    r = spec.programs["p"].relocations[0]
    assert (r.kind, r.map, r.offset) == (RelocKind.MAP_VALUE, ".data", 4)
    assert spec.programs["p"].instructions[0].imm == 4 << 32
    assert spec.maps[".data"].contents == (1).to_bytes(4, "little") + (7).to_bytes(4, "little")


def test_optional_program_sections(tmp_path: Path) -> None:
    path = _assemble(
        tmp_path,
        """
	.section	"?kprobe/do_exit","ax",@progbits
	.globl	maybe
	.type	maybe,@function
maybe:
	r0 = 0
	exit
""",
    )
    p = load_object(path).programs["maybe"]
    assert not p.autoload and p.prog_type == ProgType.KPROBE and p.attach_target == "do_exit"
