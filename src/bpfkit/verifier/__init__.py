"""The verifier: prove a BPF program safe before it runs, the way the kernel does.

    from bpfkit.verifier import verify, MapDesc
    result = verify(insns, prog_type="xdp", maps={3: MapDesc(MapType.ARRAY, 4, 8, 1)})
    result.stats.insns_processed

``verify`` raises :class:`~bpfkit.errors.VerifierError` on rejection (or returns a
result with ``ok=False`` and ``error`` set when ``raise_on_error=False``). Instruction
indices are slot indices, as in the kernel's log (an ``lddw`` takes two).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BpfError, VerifierError
from ..isa.instruction import Instruction, encode
from ..uapi.enums import MapType, ProgType
from .cfg import BPF_COMPLEXITY_LIMIT_INSNS, Reject, build
from .check import Checker, Stats
from .log import Log, _disasm, fmt_state

__all__ = [
    "verify",
    "verify_spec",
    "MapDesc",
    "VerifyResult",
    "Stats",
    "prog_type_of",
    "verify_on_load",
    "map_desc",
    "spin_lock_offset",
    "GlobalFunc",
    "global_funcs_of",
]


@dataclass
class MapDesc:
    """What the verifier needs to know about a map."""

    type: int
    key_size: int
    value_size: int
    max_entries: int = 1
    name: str = "map"
    flags: int = 0
    spin_lock_off: int = -1  # offset of a struct bpf_spin_lock in the value, or -1
    frozen: bool = False
    data: bytes | None = None  # initial contents of a read-only (frozen) array map
    inner: MapDesc | None = None  # a map-in-map's inner map template
    #: the special kernel objects the value holds at its top level (``spin_lock``,
    #: ``timer``, ``wq``, ``list_head``, ``rb_root``): some program types cannot use them
    special: frozenset[str] = frozenset()

    @property
    def rdonly_prog(self) -> bool:
        """Programs may not write the map (BPF_F_RDONLY_PROG)."""
        return bool(self.flags & (1 << 7))

    @property
    def wronly_prog(self) -> bool:
        """Programs may not read the map (BPF_F_WRONLY_PROG; BPF_F_RDONLY_PROG wins)."""
        return bool(self.flags & (1 << 8)) and not self.rdonly_prog

    @classmethod
    def of(cls, m: Any, name: str = "map") -> MapDesc:
        """Normalise a ``MapDesc``, a map spec-like object or a dict."""
        if isinstance(m, MapDesc):
            return m
        get = m.get if isinstance(m, Mapping) else (lambda k, d=None: getattr(m, k, d))
        mtype = get("type")
        if mtype is None:
            mtype = get("map_type")
        if isinstance(mtype, str):
            mtype = MapType[mtype.upper()]
        return cls(
            type=int(mtype),
            key_size=int(get("key_size", 0)),
            value_size=int(get("value_size", 0)),
            max_entries=int(get("max_entries", 1) or 1),
            name=str(get("name", name) or name),
            flags=int(get("flags", 0) or get("map_flags", 0) or 0),
            spin_lock_off=int(
                get("spin_lock_off", -1) if get("spin_lock_off", -1) is not None else -1
            ),
            frozen=bool(get("frozen", False)),
            data=get("data", None),
            special=frozenset(get("special", ()) or ()),
        )


@dataclass
class VerifyResult:
    """The outcome: ``ok``, kernel-like statistics, the log, and the error if rejected."""

    ok: bool
    stats: Stats
    log: str = ""
    error: VerifierError | None = None
    #: with ``record_accesses=True``: slot index of each load/store/atomic → the
    #: pointer types (``state.PTR_TO_*``) it went through on the explored paths
    accesses: dict[int, set[int]] | None = None

    def to_json(self) -> dict:
        """The ``bpfkit verify --json`` shape."""
        out: dict[str, Any] = {
            "ok": self.ok,
            "insn": None,
            "reason": None,
            "line": None,
            "stats": self.stats.to_json(),
        }
        if self.error is not None:
            e = self.error
            out.update(
                insn=e.insn,
                reason=e.reason,
                line=e.line,
                kernel_message=getattr(e, "kernel_message", None),
                disasm=getattr(e, "disasm", None),
                state=e.state,
            )
        return out


_TYPE_ALIASES = {
    "socket": ProgType.SOCKET_FILTER,
    "socket_filter": ProgType.SOCKET_FILTER,
    "tc": ProgType.SCHED_CLS,
    "classifier": ProgType.SCHED_CLS,
    "action": ProgType.SCHED_ACT,
    "tp": ProgType.TRACEPOINT,
    "raw_tp": ProgType.RAW_TRACEPOINT,
    "cgroup_skb": ProgType.CGROUP_SKB,
}


def prog_type_of(t: int | str | ProgType) -> int:
    """A program type from an int, a ``ProgType`` or a name (``xdp``, ``socket_filter``)."""
    if isinstance(t, str):
        key = t.strip().lower().replace("-", "_")
        if key in _TYPE_ALIASES:
            return int(_TYPE_ALIASES[key])
        try:
            return int(ProgType[key.upper()])
        except KeyError:
            raise VerifierError(f"unknown program type {t!r}") from None
    return int(t)


def _line_lookup(line_info: Any) -> Callable[[int], dict | None]:
    if line_info is None:
        return lambda _i: None
    if callable(line_info):
        return line_info
    if isinstance(line_info, Mapping):
        keys = sorted(line_info)

        def find(i: int) -> dict | None:
            best = None
            for k in keys:
                if k <= i:
                    best = k
                else:
                    break
            return None if best is None else _as_dict(line_info[best])

        return find
    seq = sorted(line_info, key=lambda x: x[0])
    return _line_lookup({k: v for k, v in seq})


def _as_dict(v: Any) -> dict | None:
    if v is None or isinstance(v, dict):
        return v
    if hasattr(v, "to_json"):
        return v.to_json()
    if hasattr(v, "__dict__"):
        return {k: x for k, x in vars(v).items() if not k.startswith("_")}
    return {"text": str(v)}


def verify(
    insns: Sequence[Instruction],
    *,
    prog_type: int | str | ProgType,
    maps: Mapping[int, Any] | Sequence[Any] | None = None,
    unpriv: bool = False,
    log_level: int = 0,
    line_info: Any = None,
    budget: int = BPF_COMPLEXITY_LIMIT_INSNS,
    license: str = "GPL",
    raise_on_error: bool = True,
    record_accesses: bool = False,
    global_funcs: Mapping[int, GlobalFunc] | None = None,
    cache: bool = True,
    attach_type: int | None = None,
    prog_flags: int = 0,
    exhaustive: bool = False,
) -> VerifyResult:
    """Verify ``insns`` as a program of ``prog_type``; raises ``VerifierError`` if unsafe.

    ``maps`` maps the fd (``map_fd`` lddw) or index (``map_idx`` lddw) a program uses
    to a map description (:class:`MapDesc`, or anything with ``type``, ``key_size``,
    ``value_size``, ``max_entries``); a sequence is indexed by position.
    ``record_accesses`` fills ``VerifyResult.accesses`` (what the JIT needs to drop
    bounds checks the verifier proved unnecessary). ``global_funcs`` (entry slot ->
    :class:`GlobalFunc`, see :func:`global_funcs_of`) are verified on their own, as the
    kernel verifies global functions; other subprograms are verified in their callers.
    ``attach_type`` is the program's expected attach type (``BPF_CGROUP_INET4_CONNECT``
    ...: return ranges, context fields and helpers depend on it, as in the kernel);
    ``prog_flags`` the load flags (``BPF_F_STRICT_ALIGNMENT``, ``BPF_F_SLEEPABLE`` ...).
    ``exhaustive`` walks every path without pruning (a testing aid: pruning must never
    hide an error that the exhaustive walk finds; loops then run into ``budget``).
    Results are kept in a process-wide cache keyed by every input (``cache=False``
    verifies again, e.g. to time it).
    """
    pt = prog_type_of(prog_type)
    if maps is None:
        mdict: dict[int, MapDesc] = {}
    elif isinstance(maps, Mapping):
        mdict = {int(k): MapDesc.of(v, f"map{k}") for k, v in maps.items()}
    else:
        mdict = {i: MapDesc.of(v, f"map{i}") for i, v in enumerate(maps)}
    lookup = _line_lookup(line_info)
    gpl = license in (
        "GPL",
        "GPL v2",
        "GPL and additional rights",
        "Dual BSD/GPL",
        "Dual MIT/GPL",
        "Dual MPL/GPL",
    )
    try:
        code = encode(insns)
    except BpfError:  # not encodable: the checker reports what is wrong with it
        code, cache = b"", False
    key = (
        code,
        pt,
        repr(sorted(mdict.items())),
        unpriv,
        log_level,
        budget,
        gpl,
        record_accesses,
        repr(sorted((global_funcs or {}).items())),
        attach_type,
        prog_flags,
        exhaustive,
    )
    out = _CACHE.get(key) if cache else None
    if out is None:
        out = _check(
            insns,
            pt,
            mdict,
            unpriv,
            log_level,
            budget,
            gpl,
            record_accesses,
            global_funcs,
            attach_type,
            prog_flags,
            exhaustive,
        )
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
    stats, log_text, accesses, rej, state_txt = out
    stats = copy.copy(stats)
    if rej is None:
        return VerifyResult(True, stats, log_text, accesses=copy.deepcopy(accesses))
    err = _error(rej, insns, state_txt, lookup, log_text)
    if raise_on_error:
        raise err from None
    return VerifyResult(False, stats, log_text, err)


#: verification results by everything they depend on: loading the same object again
#: (a test fixture, a second runtime) does not verify its programs again
_CACHE: dict[tuple, tuple] = {}
BPF_F_SLEEPABLE = 1 << 4
#: ``verify_spec`` numbers the object's maps from here (not a plausible fd)
SPEC_MAP_BASE = 1 << 24
_CACHE_MAX = 256


def _check(
    insns: Sequence[Instruction],
    pt: int,
    mdict: dict[int, MapDesc],
    unpriv: bool,
    log_level: int,
    budget: int,
    gpl: bool,
    record_accesses: bool,
    global_funcs: Mapping[int, GlobalFunc] | None,
    attach_type: int | None = None,
    prog_flags: int = 0,
    exhaustive: bool = False,
) -> tuple:
    """Run the checker: (stats, log text, accesses, Reject or None, state text)."""
    log = Log(log_level)
    checker = None
    accesses: dict[int, set[int]] | None = {} if record_accesses else None
    try:
        prog = build(insns, unpriv=unpriv)
        if exhaustive:
            prog.prune = set()  # no checkpoints: every path to its end
        checker = (_recorder(accesses) if accesses is not None else Checker)(
            prog,
            prog_type=pt,
            maps=mdict,
            unpriv=unpriv,
            budget=budget,
            log=log,
            gpl=gpl,
            global_funcs=global_funcs,
            attach_type=attach_type,
            prog_flags=prog_flags,
        )
        log.branches = checker.stack
        stats = checker.run()
    except Reject as rej:
        st = checker.st if checker is not None else None
        stats = checker.stats if checker is not None else Stats()
        state_txt = fmt_state(st) if st is not None else None
        log.error(rej.kmsg, st)
        if state_txt and log_level:
            log.lines.append(state_txt)
        _summary(log, stats, budget)
        return stats, log.text(), None, rej, state_txt
    _summary(log, stats, budget)
    return stats, log.text(), accesses, None, None


def _recorder(seen: dict[int, set[int]]) -> type[Checker]:
    """A Checker that notes the pointer type behind every checked memory access."""

    class Recorder(Checker):
        def mem_access(self, st, regno, base, off, size, **kw):  # type: ignore[override]
            seen.setdefault(self.pc, set()).add(base.type)
            return super().mem_access(st, regno, base, off, size, **kw)

    return Recorder


def _summary(log: Log, stats: Stats, budget: int) -> None:
    log.text()
    log.lines.append(
        f"processed {stats.insns_processed} insns (limit {budget}) max_states_per_insn "
        f"{stats.max_states_per_insn} total_states {stats.total_states} peak_states "
        f"{stats.peak_states} mark_read 0"
    )
    if stats.stack_depth:
        log.lines.append("stack depth " + "+".join(str(d) for d in stats.stack_depth))


def _error(
    rej: Reject,
    insns: Sequence[Instruction],
    state: str | None,
    lookup: Callable[[int], dict | None],
    log: str,
) -> VerifierError:
    at: dict[int, Instruction] = {}
    pos = 0
    for insn in insns:
        at[pos] = insn
        pos += insn.slots
    line = lookup(rej.insn) if rej.insn is not None else None
    err = VerifierError(rej.reason, insn=rej.insn, log=log, line=line, state=state)
    err.kernel_message = rej.kmsg or ""  # every line the kernel logs for it
    insn = at.get(rej.insn) if rej.insn is not None else None
    err.disasm = _disasm(insn) if insn is not None else None
    return err


def verify_on_load(
    insns: Sequence[Instruction],
    prog_type: int | str,
    maps: Any = None,
    *,
    enabled: bool = True,
    **kw: Any,
) -> VerifyResult | None:
    """The runtime's load hook: verify unless ``enabled`` is False (experiments)."""
    if not enabled:
        return None
    return verify(insns, prog_type=prog_type, maps=maps, **kw)


_ = field


@dataclass
class GlobalFunc:
    """A function's BTF prototype as the verifier uses it. A global (non-static) function
    is verified on its own from it. ``args`` holds one ``("scalar",)``, ``("ctx",)`` or ``("mem", size)`` per parameter;
    ``error`` says why the kernel would refuse the prototype (then the call fails).
    """

    name: str
    args: tuple = ()
    error: str = ""
    #: a static function (``global_funcs_of`` lists them too): verified in its callers,
    #: described only for the rules that look at its BTF prototype
    static: bool = False
    scalar_return: bool = True


# the context structs a global function's ``struct X *ctx`` parameter may name, per type
# (the kernel's btf_is_prog_ctx_type)
_SKB = ("__sk_buff",)
_CTX_STRUCTS: dict[int, tuple[str, ...]] = {
    ProgType.SOCKET_FILTER: _SKB,
    ProgType.SCHED_CLS: _SKB,
    ProgType.SCHED_ACT: _SKB,
    ProgType.CGROUP_SKB: _SKB,
    ProgType.LWT_IN: _SKB,
    ProgType.LWT_OUT: _SKB,
    ProgType.LWT_XMIT: _SKB,
    ProgType.LWT_SEG6LOCAL: _SKB,
    ProgType.SK_SKB: _SKB,
    ProgType.FLOW_DISSECTOR: _SKB,
    ProgType.XDP: ("xdp_md",),
    ProgType.KPROBE: ("pt_regs", "user_pt_regs"),
    ProgType.PERF_EVENT: ("bpf_perf_event_data",),
    ProgType.RAW_TRACEPOINT: ("bpf_raw_tracepoint_args",),
    ProgType.RAW_TRACEPOINT_WRITABLE: ("bpf_raw_tracepoint_args",),
    ProgType.SK_MSG: ("sk_msg_md",),
    ProgType.CGROUP_SOCK: ("bpf_sock",),
    ProgType.SOCK_OPS: ("bpf_sock_ops",),
    ProgType.CGROUP_SOCK_ADDR: ("bpf_sock_addr",),
    ProgType.SK_LOOKUP: ("bpf_sk_lookup",),
    ProgType.SK_REUSEPORT: ("sk_reuseport_md",),
    ProgType.CGROUP_SYSCTL: ("bpf_sysctl",),
    ProgType.CGROUP_SOCKOPT: ("bpf_sockopt",),
    ProgType.CGROUP_DEVICE: ("bpf_cgroup_dev_ctx",),
}


def global_funcs_of(prog: Any, btf: Any, prog_type: int) -> dict[int, GlobalFunc]:
    """The functions of a linked program (entry slot -> :class:`GlobalFunc`) from its BTF
    func info: the global ones, and the static ones marked ``static``; the entry function
    itself is not one of them."""
    from ..btf.types import Enum, Func, FuncProto, Int, Ptr, Struct

    out: dict[int, GlobalFunc] = {}
    if btf is None:
        return out
    for fi in getattr(prog, "func_info", None) or ():
        if fi.slot == 0:
            continue
        try:
            fn = btf[fi.type_id]
        except (KeyError, IndexError):
            continue
        if not isinstance(fn, Func):
            continue
        name = fn.name or fi.name or f"func@{fi.slot}"
        proto = btf.resolve(fn.type)
        if int(fn.linkage) != 1:
            # a static function: verified inline; only its return type matters here
            ret = btf.resolve(proto.return_type) if isinstance(proto, FuncProto) else None
            out[fi.slot] = GlobalFunc(name, static=True, scalar_return=_small_scalar(btf, ret))
            continue
        g = GlobalFunc(name)
        if not isinstance(proto, FuncProto):
            g.error = f"Global function {name}() has no prototype."
            out[fi.slot] = g
            continue
        ret = btf.resolve(proto.return_type) if proto.return_type else None
        g.scalar_return = _small_scalar(btf, ret)
        if not isinstance(ret, Int | Enum):
            g.error = f"Global function {name}() doesn't return scalar. Only those are supported."
        args: list[tuple] = []
        tags = _arg_tags(btf, fi.type_id)
        for i, p in enumerate(proto.params):
            t = btf.resolve(p.type) if p.type else None
            tg = tags.get(i, set())
            err = ""
            if not isinstance(t, Ptr):
                if tg:
                    err = f"arg#{i} has pointer tag, but is not a pointer type"
                elif isinstance(t, Int | Enum):
                    args.append(("scalar",))
                    continue
                else:
                    err = (
                        f"Arg#{i} type {type(t).__name__.upper()} in {name}() is not supported yet."
                    )
            else:
                target = btf.resolve(t.type) if t.type else None
                tname = getattr(target, "name", "")
                if "ctx" in tg or (
                    isinstance(target, Struct) and tname in _CTX_STRUCTS.get(prog_type, ())
                ):
                    if tg - {"ctx"}:
                        err = f"arg#{i} has invalid combination of tags"
                    else:
                        args.append(("ctx",))
                        continue
                elif tg & {"trusted", "arena"} or tname == "bpf_dynptr":
                    err = (
                        f"arg#{i} of {name}() is a kernel object pointer (BTF-typed, arena or "
                        "dynptr): not supported by bpfkit's verifier"
                    )
                elif "nullable" in tg or tg - {"nonnull"}:
                    err = f"arg#{i} has invalid combination of tags"
                else:
                    size = btf.size_of(t.type) if target is not None else 0
                    if isinstance(target, Int | Enum | Struct) and size > 0:
                        args.append(("mem", size, "nonnull" in tg))
                        continue
                    err = f"arg#{i} reference type of {name}() size cannot be determined"
            g.error = g.error or err
            args.append(("scalar",))
        g.args = tuple(args)
        out[fi.slot] = g
    return out


def _arg_tags(btf: Any, func_id: int) -> dict[int, set[str]]:
    """``arg:`` decl tags of a function's parameters (``__arg_ctx``, ``__arg_nonnull``
    ...): parameter index -> tag names."""
    from ..btf.types import DeclTag

    out: dict[int, set[str]] = {}
    for t in btf.types:
        if (
            isinstance(t, DeclTag)
            and t.type == func_id
            and t.component_idx >= 0
            and t.name.startswith("arg:")
        ):
            out.setdefault(t.component_idx, set()).add(t.name[4:])
    return out


def _small_scalar(btf: Any, t: Any) -> bool:
    """An int of at most 8 bytes or an enum (the kernel's ``btf_type_is_small_int`` or
    ``btf_is_any_enum``): a function returning one returns a scalar."""
    from ..btf.types import Enum, Int

    if isinstance(t, Enum):
        return True
    return isinstance(t, Int) and 0 < getattr(t, "size", 0) <= 8


#: the kernel's special structs a map value may hold (``btf_parse_fields``)
_SPECIAL_STRUCTS = {
    "bpf_spin_lock": "spin_lock",
    "bpf_res_spin_lock": "spin_lock",
    "bpf_timer": "timer",
    "bpf_wq": "wq",
    "bpf_list_head": "list_head",
    "bpf_rb_root": "rb_root",
}


def special_fields(btf: Any, value_type_id: int | None) -> frozenset[str]:
    """The special kernel objects (``spin_lock``, ``timer`` ...) among a map value's
    top-level members (arrays of them included), found through its BTF."""
    from ..btf.types import Array

    if btf is None or not value_type_id:
        return frozenset()
    try:
        t = btf.resolve(value_type_id)
    except (KeyError, IndexError, ValueError, BpfError):
        return frozenset()
    out = set()
    for m in getattr(t, "members", None) or ():
        try:
            mt = btf.resolve(m.type)
            while isinstance(mt, Array):  # an array of them
                mt = btf.resolve(mt.type)
        except (KeyError, IndexError, ValueError, BpfError):
            continue
        kind = _SPECIAL_STRUCTS.get(getattr(mt, "name", "") or "")
        if kind and hasattr(mt, "members"):
            out.add(kind)
    return frozenset(out)


def spin_lock_offset(btf: Any, value_type_id: int | None) -> int:
    """Offset of the top-level ``struct bpf_spin_lock`` member of a map value, or -1.

    The kernel finds it in the value's BTF the same way (only a direct member counts).
    """
    if btf is None or not value_type_id:
        return -1
    try:
        t = btf.resolve(value_type_id)
    except (KeyError, IndexError, ValueError):
        return -1
    for m in getattr(t, "members", None) or ():
        try:
            mt = btf.resolve(m.type)
        except (KeyError, IndexError, ValueError):
            continue
        if getattr(mt, "name", "") == "bpf_spin_lock" and hasattr(mt, "members"):
            return m.bit_offset // 8
    return -1


def map_desc(m: Any, name: str, btf: Any = None) -> MapDesc:
    """A :class:`MapDesc` of a map spec or VM map, its spin lock found through ``btf``."""
    desc = MapDesc.of(m, name)
    contents = getattr(m, "contents", None)
    if contents is not None:
        desc.data = bytes(contents)
    desc.frozen = bool(getattr(m, "frozen", False))
    inner = getattr(m, "inner_map", None) or getattr(m, "inner", None)
    if inner is not None and desc.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        desc.inner = map_desc(inner, getattr(inner, "name", "inner") or "inner", btf)
    vt = getattr(m, "value_type_id", None) or getattr(m, "btf_value_type", None)
    if desc.spin_lock_off < 0:
        desc.spin_lock_off = spin_lock_offset(btf, vt)
    if not desc.special:
        desc.special = special_fields(btf, vt)
    return desc


def spec_lines(prog: Any) -> Callable[[int], dict | None]:
    """Slot -> the C line (BTF line info) of a :class:`~bpfkit.obj.spec.ProgramSpec`."""
    from ..obj.spec import line_for

    by_slot = {s: i for i, s in enumerate(prog.slots)}

    def line(slot: int) -> dict | None:
        i = by_slot.get(slot)
        li = line_for(prog, i) if i is not None else None
        return li.to_json() if li is not None else None

    return line


def verify_spec(obj: Any, program: str | None = None, **kw: Any) -> VerifyResult:
    """Verify one program of an :class:`~bpfkit.obj.spec.ObjectSpec` (maps, type, lines).

    Map references become ``SPEC_MAP_BASE`` plus the map's position in ``obj.maps`` (a
    map load without a relocation keeps its number, which names no map — as in the
    kernel, where it is not a map fd); the C source line of a rejection comes from the
    program's BTF line info.
    """
    prog = obj.program(program)
    names = list(obj.maps)
    maps: dict[int, MapDesc] = {}
    for i, name in enumerate(names):
        maps[SPEC_MAP_BASE + i] = map_desc(obj.maps[name], name, getattr(obj, "btf", None))
    insns = list(prog.instructions)
    for rel in prog.relocations:
        if rel.map is not None and rel.map in obj.maps and 0 <= rel.index < len(insns):
            insn = insns[rel.index]
            if insn.is_lddw:
                idx = SPEC_MAP_BASE + names.index(rel.map)
                insns[rel.index] = insn.with_(imm=(insn.imm & ~0xFFFFFFFF) | idx)
    kw.setdefault("prog_type", prog.prog_type)
    if prog.expected_attach_type is not None:
        kw.setdefault("attach_type", int(prog.expected_attach_type))
    flags = int(getattr(prog, "flags", 0) or 0)  # the section's load flags (libbpf's)
    if getattr(prog, "sleepable", False):
        flags |= BPF_F_SLEEPABLE
    kw["prog_flags"] = kw.get("prog_flags", 0) | flags
    kw.setdefault("license", prog.license or obj.license or "GPL")
    kw.setdefault(
        "global_funcs", global_funcs_of(prog, getattr(obj, "btf", None), int(kw["prog_type"]))
    )
    return verify(insns, maps=maps, line_info=spec_lines(prog), **kw)
