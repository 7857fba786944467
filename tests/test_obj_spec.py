"""ObjectSpec semantics for the tests/c/obj_*.c programs: programs, maps, globals, relocations."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest

from bpfkit.btf import decode_value, encode_value
from bpfkit.isa import encode
from bpfkit.isa import opcodes as op
from bpfkit.obj import RelocKind, line_for, load_object
from bpfkit.obj.build import compile_c, find_clang
from bpfkit.obj.maps import BPF_F_LINK, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG
from bpfkit.obj.sections import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS
from bpfkit.uapi.attach import NewAttachType, NewProgType
from bpfkit.uapi.btf import CoreReloKind
from bpfkit.uapi.enums import AttachType, MapType, ProgType

C_DIR = Path(__file__).parent / "c"


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


_SPECS: dict[str, object] = {}


def spec_of(name: str):
    if name not in _SPECS:
        _SPECS[name] = load_object(_build(name))
    return _SPECS[name]


# ---- programs and the section table ----------------------------------------------

EXPECTED_SECTIONS = {
    # name: (prog type, expected attach type, attach target)
    "xdp_a": (ProgType.XDP, AttachType.XDP, None),
    "xdp_b": (ProgType.XDP, AttachType.XDP, None),
    "xdp_frags": (ProgType.XDP, AttachType.XDP, None),
    "xdp_devmap": (ProgType.XDP, AttachType.XDP_DEVMAP, None),
    "tc_prog": (ProgType.SCHED_CLS, None, None),
    "classifier_prog": (ProgType.SCHED_CLS, None, None),
    "tcx_in": (ProgType.SCHED_CLS, NewAttachType.TCX_INGRESS, None),
    "tcx_eg": (ProgType.SCHED_CLS, NewAttachType.TCX_EGRESS, None),
    "act_prog": (ProgType.SCHED_ACT, None, None),
    "socket_prog": (ProgType.SOCKET_FILTER, None, None),
    "kprobe_prog": (ProgType.KPROBE, None, "do_unlinkat"),
    "kretprobe_prog": (ProgType.KPROBE, None, "do_unlinkat"),
    "uprobe_prog": (ProgType.KPROBE, None, "/usr/bin/true:main"),
    "uretprobe_prog": (ProgType.KPROBE, None, "/usr/bin/true:main"),
    "kmulti_prog": (ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, "vfs_*"),
    "ksyscall_prog": (ProgType.KPROBE, None, "openat"),
    "usdt_prog": (ProgType.KPROBE, None, "libc.so.6:libc:setjmp"),
    "tracepoint_prog": (ProgType.TRACEPOINT, None, "syscalls/sys_enter_openat"),
    "tp_prog": (ProgType.TRACEPOINT, None, "sched/sched_switch"),
    "raw_tp_prog": (ProgType.RAW_TRACEPOINT, None, "sched_switch"),
    "raw_tp_w_prog": (ProgType.RAW_TRACEPOINT_WRITABLE, None, "bpf_test_finish"),
    "tp_btf_prog": (ProgType.TRACING, AttachType.TRACE_RAW_TP, "sched_wakeup"),
    "fentry_prog": (ProgType.TRACING, AttachType.TRACE_FENTRY, "do_unlinkat"),
    "fexit_prog": (ProgType.TRACING, AttachType.TRACE_FEXIT, "do_unlinkat"),
    "fmod_ret_prog": (ProgType.TRACING, AttachType.MODIFY_RETURN, "bpf_modify_return_test"),
    "fentry_s_prog": (ProgType.TRACING, AttachType.TRACE_FENTRY, "do_unlinkat"),
    "freplace_prog": (ProgType.EXT, None, "handler"),
    "lsm_prog": (ProgType.LSM, AttachType.LSM_MAC, "file_open"),
    "lsm_s_prog": (ProgType.LSM, AttachType.LSM_MAC, "bprm_committed_creds"),
    "iter_prog": (ProgType.TRACING, AttachType.TRACE_ITER, "task"),
    "perf_prog": (ProgType.PERF_EVENT, None, None),
    "cg_ingress": (ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, None),
    "cg_egress": (ProgType.CGROUP_SKB, AttachType.CGROUP_INET_EGRESS, None),
    "cg_connect4": (ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT, None),
    "cg_sock_create": (ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, None),
    "cg_sysctl": (ProgType.CGROUP_SYSCTL, AttachType.CGROUP_SYSCTL, None),
    "cg_getsockopt": (ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_GETSOCKOPT, None),
    "cg_dev": (ProgType.CGROUP_DEVICE, AttachType.CGROUP_DEVICE, None),
    "sockops_prog": (ProgType.SOCK_OPS, AttachType.CGROUP_SOCK_OPS, None),
    "sk_msg_prog": (ProgType.SK_MSG, AttachType.SK_MSG_VERDICT, None),
    "sk_skb_verdict": (ProgType.SK_SKB, AttachType.SK_SKB_STREAM_VERDICT, None),
    "sk_skb_parser": (ProgType.SK_SKB, AttachType.SK_SKB_STREAM_PARSER, None),
    "sk_lookup_prog": (ProgType.SK_LOOKUP, AttachType.SK_LOOKUP, None),
    "flow_prog": (ProgType.FLOW_DISSECTOR, AttachType.FLOW_DISSECTOR, None),
    "lwt_in_prog": (ProgType.LWT_IN, None, None),
    "syscall_prog": (ProgType.SYSCALL, None, None),
    "struct_ops_prog": (ProgType.STRUCT_OPS, None, "my_init"),
    "netfilter_prog": (NewProgType.NETFILTER, NewAttachType.NETFILTER, None),
    "reuseport_prog": (ProgType.SK_REUSEPORT, AttachType.SK_REUSEPORT_SELECT, None),
    "unknown_prog": (ProgType.UNSPEC, None, None),
}


def test_section_table_on_compiled_programs() -> None:
    spec = spec_of("obj_sections.c")
    assert set(spec.programs) == set(EXPECTED_SECTIONS)
    for name, (ptype, atype, target) in EXPECTED_SECTIONS.items():
        p = spec.programs[name]
        assert (p.prog_type, p.expected_attach_type, p.attach_target) == (ptype, atype, target), (
            name
        )
        assert p.license == "GPL" and p.kernel_version == 0x060100
        assert len(p.instructions) == 2  # r0 = 0; exit
    assert spec.kernel_version == 0x060100
    assert spec.programs["xdp_frags"].flags == BPF_F_XDP_HAS_FRAGS
    assert spec.programs["fentry_s_prog"].flags == BPF_F_SLEEPABLE
    assert spec.programs["lsm_s_prog"].sleepable and spec.programs["syscall_prog"].sleepable
    assert spec.programs["kretprobe_prog"].attach_kind == "kretprobe"
    assert spec.programs["uprobe_prog"].attach_kind == "uprobe"


def test_several_programs_per_section() -> None:
    spec = spec_of("obj_sections.c")
    a, b = spec.programs["xdp_a"], spec.programs["xdp_b"]
    assert a.section == b.section == "xdp"
    assert (a.section_offset, b.section_offset) == (0, 16)
    maps = spec_of("obj_maps.c")
    assert [p.name for p in maps.programs.values() if p.section == "tc"] == [
        "tail_a",
        "tail_b",
        "entry",
    ]


def test_program_lookup_helpers() -> None:
    spec = spec_of("obj_calls.c")
    assert spec.program().name == "calls_xdp"
    assert spec.program("socket").name == "calls_socket"  # by section
    with pytest.raises(KeyError):
        spec.program("nope")


# ---- linking: bpf-to-bpf calls and callbacks --------------------------------------


def _call_target(prog, idx: int) -> int:
    """The instruction index a pseudo call / func lddw at ``idx`` lands on."""
    insn = prog.instructions[idx]
    rel = (
        insn.imm
        if not insn.is_lddw
        else (insn.imm_lo - (1 << 32) if insn.imm_lo >> 31 else insn.imm_lo)
    )
    target_slot = prog.slot_of(idx) + rel + 1
    t = prog.index_of_slot(target_slot)
    assert t is not None, f"call at {idx} lands mid-instruction"
    return t


def test_subprograms_linked_once_and_calls_fixed() -> None:
    spec = spec_of("obj_calls.c")
    p = spec.programs["calls_xdp"]
    names = [n for n, _ in p.functions]
    assert names[0] == "calls_xdp"
    assert sorted(names[1:]) == ["global_helper", "leaf", "loop_cb", "middle", "sum_cb"]
    starts = dict(p.functions)
    calls = [r for r in p.relocations if r.kind == RelocKind.CALL]
    assert {r.target for r in calls} == {"global_helper", "middle", "leaf"}
    for r in calls:
        insn = p.instructions[r.index]
        assert insn.opcode == op.CALL_OP and insn.src == op.PSEUDO_CALL
        assert _call_target(p, r.index) == starts[r.target]
    # leaf is called three times from middle, middle twice: still linked once each.
    assert sum(1 for r in calls if r.target == "leaf") == 3
    assert names.count("leaf") == 1


def test_callbacks_become_pseudo_func_loads() -> None:
    p = spec_of("obj_calls.c").programs["calls_xdp"]
    starts = dict(p.functions)
    funcs = [r for r in p.relocations if r.kind == RelocKind.FUNC_ADDR]
    assert {r.target for r in funcs} == {"loop_cb", "sum_cb"}
    for r in funcs:
        insn = p.instructions[r.index]
        assert insn.is_lddw and insn.src == op.PSEUDO_FUNC and insn.imm_hi == 0
        assert _call_target(p, r.index) == starts[r.target]


def test_programs_without_calls_get_no_subprograms() -> None:
    spec = spec_of("obj_calls.c")
    assert [n for n, _ in spec.programs["no_calls"].functions] == ["no_calls"]
    sock = spec.programs["calls_socket"]
    assert [n for n, _ in sock.functions] == ["calls_socket", "leaf"]
    assert set(spec.subprograms) == {"leaf", "middle", "global_helper", "loop_cb", "sum_cb"}


def test_func_info_covers_every_linked_function() -> None:
    p = spec_of("obj_calls.c").programs["calls_xdp"]
    assert [(fi.index, fi.name) for fi in p.func_info] == [(i, n) for n, i in p.functions]
    assert p.btf_func_id == p.func_info[0].type_id
    btf = spec_of("obj_calls.c").btf
    assert btf.get(p.btf_func_id).name == "calls_xdp"


# ---- maps -------------------------------------------------------------------------------


def test_btf_defined_maps() -> None:
    spec = spec_of("obj_maps.c")
    m = spec.maps
    flows = m["flows"]
    assert (flows.type, flows.key_size, flows.value_size, flows.max_entries, flows.flags) == (
        MapType.HASH,
        16,
        24,
        1024,
        1,
    )
    assert flows.key_type == "struct flow_key" and flows.value_type == "struct flow_stats"
    sized = m["sized"]
    assert (sized.key_size, sized.value_size, sized.key_type_id) == (4, 16, None)
    pinned = m["pinned_counters"]
    assert pinned.type == MapType.PERCPU_ARRAY and pinned.pinning == 1
    lru = m["lru"]
    assert (lru.type, lru.flags, lru.numa_node) == (MapType.LRU_HASH, 2 | 4, 1)
    assert (m["events"].type, m["events"].max_entries, m["events"].key_size) == (
        MapType.RINGBUF,
        4096,
        0,
    )


def test_map_in_map_and_prog_array_values() -> None:
    m = spec_of("obj_maps.c").maps
    outer = m["outer"]
    assert outer.type == MapType.ARRAY_OF_MAPS and outer.value_size == 4
    assert outer.inner_map is not None and outer.inner_map.type == MapType.ARRAY
    assert (outer.inner_map.key_size, outer.inner_map.value_size, outer.inner_map.max_entries) == (
        4,
        4,
        2,
    )
    assert outer.values == {0: "inner_a", 2: "inner_b"}
    oh = m["outer_hash"]
    assert oh.inner_map.type == MapType.HASH and oh.inner_map.value_size == 8 and not oh.values
    jumps = m["jumps"]
    assert jumps.type == MapType.PROG_ARRAY and (jumps.key_size, jumps.value_size) == (4, 4)
    assert jumps.values == {0: "tail_a", 1: "tail_b"}


def test_map_references_are_symbolic() -> None:
    spec = spec_of("obj_maps.c")
    p = spec.programs["entry"]
    refs = [r for r in p.relocations if r.kind == RelocKind.MAP]
    assert {r.map for r in refs} >= {"flows", "pinned_counters", "outer", "events", "jumps"}
    for r in refs:
        insn = p.instructions[r.index]
        assert insn.is_lddw and insn.src == op.PSEUDO_MAP_FD and insn.imm == 0
        assert r.map in spec.maps and r.slot == p.slot_of(r.index)


def test_legacy_maps_and_version() -> None:
    spec = spec_of("obj_legacy.c")
    h, a = spec.maps["legacy_hash"], spec.maps["legacy_array"]
    assert (h.type, h.key_size, h.value_size, h.max_entries, h.kind) == (
        MapType.HASH,
        4,
        8,
        64,
        "legacy",
    )
    assert (a.type, a.max_entries) == (MapType.ARRAY, 2)
    p = spec.programs["legacy_prog"]
    assert {r.map for r in p.relocations if r.kind == RelocKind.MAP} == {
        "legacy_hash",
        "legacy_array",
    }
    assert p.kernel_version == 0x050A00 and p.attach_target == "sys_write"


def test_struct_ops_maps() -> None:
    spec = spec_of("obj_struct_ops.c")
    demo, link = spec.maps["demo"], spec.maps["demo_link"]
    assert demo.type == MapType.STRUCT_OPS and demo.value_type == "struct demo_ops"
    assert demo.values == {0: "demo_init", 1: "demo_release"}
    assert link.values == {0: "demo_init"} and link.flags == BPF_F_LINK
    value = decode_value(spec.btf, demo.value_type_id, demo.contents)
    assert value["flags"] == 5 and value["name"] == "demo"


# ---- global data, variables, externs ----------------------------------------------------


def test_global_data_maps() -> None:
    spec = spec_of("obj_globals.c")
    m = spec.maps
    assert {".data", ".rodata", ".bss", ".data.custom", ".rodata.custom", ".kconfig"} <= set(m)
    data, ro, bss = m[".data"], m[".rodata"], m[".bss"]
    assert data.type == MapType.ARRAY and (data.key_size, data.max_entries) == (4, 1)
    assert data.contents[:8] == (42).to_bytes(4, "little") + (3).to_bytes(4, "little")
    assert ro.frozen and ro.flags == BPF_F_MMAPABLE | BPF_F_RDONLY_PROG and not data.frozen
    assert bss.contents == bytes(bss.value_size) and bss.value_size == 8 + 64
    assert m[".data.custom"].contents == (11).to_bytes(4, "little")
    assert m[".rodata.custom"].frozen


def test_variables_and_their_values() -> None:
    spec = spec_of("obj_globals.c")
    v = spec.variables
    assert (v["counter"].map, v["counter"].offset, v["counter"].size) == (".data", 0, 4)
    assert v["hidden"].linkage == "static" and v["counter"].linkage == "global"
    cfg = v["cfg"]
    assert cfg.map == ".rodata" and cfg.type_name == "const volatile struct config"
    raw = spec.maps[".rodata"].contents[cfg.offset : cfg.offset + cfg.size]
    val = decode_value(spec.btf, cfg.type_id, raw)
    assert val == {"limit": 1000, "port": 8080, "enabled": 1, "name": "eth0"}
    assert encode_value(spec.btf, cfg.type_id, val) == raw
    arr = v["rodata_arr"]
    raw = spec.maps[".rodata"].contents[arr.offset : arr.offset + arr.size]
    assert decode_value(spec.btf, arr.type_id, raw) == [1, 2, 3]
    # The DATASEC value type of a whole section decodes to every variable in it.
    data = spec.maps[".data"]
    assert decode_value(spec.btf, data.value_type_id, data.contents) == {"counter": 42, "hidden": 3}


def test_global_data_references() -> None:
    spec = spec_of("obj_globals.c")
    p = spec.programs["use_globals"]
    vals = [r for r in p.relocations if r.kind == RelocKind.MAP_VALUE]
    by_map = {r.map for r in vals}
    assert {".data", ".rodata", ".bss", ".data.custom", ".rodata.custom"} <= by_map
    for r in vals:
        insn = p.instructions[r.index]
        assert insn.src == op.PSEUDO_MAP_VALUE and insn.imm_hi == r.offset and insn.imm_lo == 0
        assert 0 <= r.offset <= spec.maps[r.map].value_size
    # bpf_printk's format string lives in .rodata (function-local static).
    fmt = spec.variables["use_globals.____fmt"]
    assert any(r.map == ".rodata" and r.offset == fmt.offset for r in vals)


def test_externs() -> None:
    spec = spec_of("obj_globals.c")
    e = spec.externs
    assert e["LINUX_KERNEL_VERSION"].kind == "kconfig" and not e["LINUX_KERNEL_VERSION"].weak
    assert e["CONFIG_HZ"].kind == "kconfig" and e["CONFIG_HZ"].weak
    assert e["CONFIG_BPF_SYSCALL"].type_name == "_Bool"
    assert e["bpf_prog_active"].kind == "ksym"
    assert e["bpf_rcu_read_lock"].kind == "kfunc"
    offsets = sorted((x.offset, x.size) for x in e.values() if x.kind == "kconfig")
    assert offsets == [(0, 4), (4, 4), (8, 1)]
    kc = spec.maps[".kconfig"]
    assert kc.frozen and kc.value_size == 16
    p = spec.programs["use_globals"]
    kinds = {
        r.target: r.kind
        for r in p.relocations
        if r.kind in (RelocKind.KCONFIG, RelocKind.KSYM, RelocKind.KFUNC)
    }
    assert kinds == {
        "LINUX_KERNEL_VERSION": RelocKind.KCONFIG,
        "CONFIG_HZ": RelocKind.KCONFIG,
        "CONFIG_BPF_SYSCALL": RelocKind.KCONFIG,
        "bpf_prog_active": RelocKind.KSYM,
        "bpf_rcu_read_lock": RelocKind.KFUNC,
        "bpf_rcu_read_unlock": RelocKind.KFUNC,
    }
    for r in p.relocations:
        insn = p.instructions[r.index]
        if r.kind == RelocKind.KFUNC:
            assert insn.src == op.PSEUDO_KFUNC_CALL and insn.imm == 0
        elif r.kind == RelocKind.KSYM:
            assert insn.src == op.PSEUDO_BTF_ID
        elif r.kind == RelocKind.KCONFIG:
            assert r.map == ".kconfig" and insn.imm_hi == e[r.target].offset


# ---- CO-RE, line info ----------------------------------------------------------------------


def test_core_relocations() -> None:
    spec = spec_of("obj_core.c")
    p = spec.programs["core_prog"]
    kinds = {c.kind for c in p.core_relocations}
    assert {
        CoreReloKind.FIELD_BYTE_OFFSET,
        CoreReloKind.FIELD_EXISTS,
        CoreReloKind.FIELD_BYTE_SIZE,
        CoreReloKind.TYPE_EXISTS,
        CoreReloKind.ENUMVAL_VALUE,
        CoreReloKind.TYPE_ID_LOCAL,
        CoreReloKind.FIELD_LSHIFT_U64,
        CoreReloKind.FIELD_RSHIFT_U64,
    } <= kinds
    for c in p.core_relocations:
        assert 0 <= c.index < len(p.instructions) and p.slot_of(c.index) == c.slot
        assert c.access and c.type_name
    pid = [
        c
        for c in p.core_relocations
        if c.kind == CoreReloKind.FIELD_BYTE_OFFSET and c.access == "0:0"
    ]
    assert pid and pid[0].type_name == "struct task_like"
    enum = [c for c in p.core_relocations if c.kind == CoreReloKind.ENUMVAL_VALUE]
    assert enum[0].type_name == "enum colors" and enum[0].access == "1"


def test_line_info_maps_instructions_to_source() -> None:
    spec = spec_of("obj_calls.c")
    p = spec.programs["calls_xdp"]
    first = line_for(p, 0)
    assert first is not None and first.file.endswith("obj_calls.c")
    assert "calls_xdp" in first.source
    texts = [line_for(p, i).source for i in range(len(p.instructions)) if line_for(p, i)]
    assert any("bpf_loop(10, loop_cb" in t for t in texts)
    leaf = dict(p.functions)["leaf"]
    assert "x * 3 + 1" in line_for(p, leaf + 1).source or "leaf" in line_for(p, leaf).source
    # Every instruction of a linked subprogram maps to a line of that subprogram.
    for name, start in p.functions[1:]:
        assert line_for(p, start) is not None, name
    assert line_for(p, -1) is None and line_for(p, len(p.instructions)) is None
    assert [li.slot for li in p.line_info] == sorted(li.slot for li in p.line_info)


# ---- determinism, bytes input -----------------------------------------------------------


@pytest.mark.parametrize("source", sorted(p.name for p in C_DIR.glob("obj_*.c")))
def test_deterministic_and_bytes_input(source: str) -> None:
    path = _build(source)
    a = load_object(path)
    b = load_object(path.read_bytes())
    assert a.programs == b.programs and a.maps == b.maps and a.variables == b.variables
    assert a.externs == b.externs
    assert a.btf.types == b.btf.types
    for p in a.programs.values():
        assert encode(p.instructions) == p.bytecode()  # every linked instruction is valid
        assert len(p.bytecode()) == 8 * (
            p.slot_of(len(p.instructions) - 1) + p.instructions[-1].slots
        )


def test_btf_bytes_have_fixed_datasecs() -> None:
    from bpfkit.btf import parse_btf

    spec = spec_of("obj_globals.c")
    btf = parse_btf(spec.btf_bytes())
    data = btf.find(".data")
    assert data.size == spec.maps[".data"].value_size
    offs = {btf.get(v.type).name: v.offset for v in data.vars}
    assert offs == {"counter": 0, "hidden": 4}
