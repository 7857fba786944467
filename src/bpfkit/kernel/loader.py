"""Load an :class:`~bpfkit.obj.spec.ObjectSpec` into the running kernel.

The steps, in the order the kernel needs them:

1. BTF: the object's BTF made loadable (:func:`bpfkit.kernel.btf.prepare_object_btf`)
   and loaded once; maps and programs refer to it.
2. Maps: each created from its spec (BTF key/value types when the map type takes them,
   retried without when the kernel refuses), map-in-map templates for inner maps,
   global data filled with its initial contents (``.kconfig`` from the kernel's
   configuration) and ``.rodata``/``.kconfig`` frozen *before* programs load, so the
   verifier may treat them as constants. Maps with ``pinning = BY_NAME`` reuse a
   compatible map already pinned under ``pin_root`` (not refilled) and refuse an
   incompatible one with :class:`PinConflict`; new ones are pinned there.
3. Programs: CO-RE relocations resolved against the kernel's BTF
   (:mod:`bpfkit.kernel.core`), map references turned into fds, ``__ksym`` variables
   and kfuncs into kernel BTF ids, then ``BPF_PROG_LOAD`` with func and line info (so the
   verifier log shows C lines), the expected attach type and, for BTF-attached types
   (``fentry``, ``tp_btf``, ``lsm``, ``iter``), the target's BTF id.
4. Initial slots of prog arrays and map-in-maps.

Everything created is owned by :class:`LoadedObject` and closed with it (or when it is
garbage-collected); on any failure, what was created so far is closed again.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import sys
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..btf.fields import Data
from ..errors import BpfError, KernelError, NotSupported, VerifierError
from ..isa import opcodes as op
from ..isa.instruction import Instruction, decode, lddw_slots
from ..obj.spec import Pinning, Relocation, RelocKind
from ..uapi.btf import BtfKind
from ..uapi.enums import MapType, ProgType
from . import sys as bsys
from .btf import BtfFeatures, PreparedBtf, prepare_object_btf, vmlinux_btf

if TYPE_CHECKING:
    from ..btf.types import Btf
    from ..obj.spec import MapSpec, ObjectSpec, ProgramSpec

__all__ = [
    "LoadOptions",
    "LoadedMap",
    "LoadedProgram",
    "LoadedObject",
    "PinConflict",
    "load_spec",
    "DEFAULT_PIN_ROOT",
    "kernel_map_name",
    "value_size_of",
]

DEFAULT_PIN_ROOT = "/sys/fs/bpf"
#: helper id of a call to a kfunc the kernel does not have (``+ extern index``)
POISON_KFUNC = 0x0BAD_F000

# Map types whose key/value the kernel refuses to describe with BTF.
_NO_BTF_TYPES = frozenset(
    {
        MapType.PERF_EVENT_ARRAY,
        MapType.RINGBUF,
        MapType.USER_RINGBUF,
        MapType.PROG_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS,
        MapType.CGROUP_ARRAY,
        MapType.STACK_TRACE,
        MapType.DEVMAP,
        MapType.DEVMAP_HASH,
        MapType.CPUMAP,
        MapType.XSKMAP,
        MapType.SOCKMAP,
        MapType.SOCKHASH,
        MapType.REUSEPORT_SOCKARRAY,
        MapType.QUEUE,
        MapType.STACK,
        MapType.BLOOM_FILTER,
    }
)
_PERCPU = frozenset(
    {
        MapType.PERCPU_ARRAY,
        MapType.PERCPU_HASH,
        MapType.LRU_PERCPU_HASH,
        MapType.PERCPU_CGROUP_STORAGE,
    }
)
_BTF_ATTACH = {
    "fentry": ("", BtfKind.FUNC),
    "fexit": ("", BtfKind.FUNC),
    "fmod_ret": ("", BtfKind.FUNC),
    "tp_btf": ("btf_trace_", BtfKind.TYPEDEF),
    "lsm": ("bpf_lsm_", BtfKind.FUNC),
    "lsm_cgroup": ("bpf_lsm_", BtfKind.FUNC),
    "iter": ("bpf_iter_", BtfKind.FUNC),
}
_NAME_OK = re.compile(r"[^A-Za-z0-9_.]")
_U32 = struct.Struct("<I")


class PinConflict(BpfError):
    """A map pinned by name exists but does not match the object's definition."""


@dataclass(eq=False, repr=False)
class LoadOptions(Data):
    """How to load an object (every field optional)."""

    #: directory (on a bpf filesystem) of maps with ``pinning = BY_NAME``
    pin_root: str | None = None
    #: values for ``.kconfig`` externs, overriding the kernel's configuration
    kconfig: Mapping[str, Any] | None = None
    #: initial values of global variables by name (before ``.rodata`` is frozen)
    constants: Mapping[str, Any] | None = None
    #: verifier log level for every program (the log is kept on the program)
    log_level: int = 0
    #: program names to load (default: every program not marked ``SEC("?...")``)
    programs: Iterable[str] | None = None
    #: BTF to resolve CO-RE relocations against (path, ``Btf``; default: the kernel's)
    core_btf: str | Btf | None = None
    #: what BTF the kernel understands (default: all of it)
    btf_features: BtfFeatures | None = None
    #: per-map overrides of ``max_entries`` (e.g. a bigger ring buffer)
    max_entries: Mapping[str, int] | None = None
    #: per-program attach targets replacing the section's (``fentry`` function, ...)
    attach_targets: Mapping[str, str] | None = None
    #: per-map overrides of ``value_size`` (stack-trace maps that ship with 0)
    value_size: Mapping[str, int] | None = None
    #: program type for every program, or by program name (type or section name)
    prog_type: str | int | Mapping[str, str | int] | None = None
    #: expected attach type for every program, or by program name
    attach_type: str | int | Mapping[str, str | int] | None = None
    #: per-program autoload (loaded when ``programs`` is not given)
    autoload: Mapping[str, bool] | None = None


@dataclass(eq=False, repr=False)
class LoadedMap(Data):
    """A map in the kernel: its spec, owned fd, and where it is pinned."""

    name: str
    spec: MapSpec
    fd: bsys.FD
    value_size: int
    max_entries: int
    pinned: str | None = None
    reused: bool = False
    btf: bool = False


@dataclass(eq=False, repr=False)
class LoadedProgram(Data):
    """A program in the kernel: its spec, owned fd, final bytecode and verifier log.

    ``insns`` are the instructions of ``code`` (decoded on first use, or those the
    loader relocated as objects).
    """

    name: str
    spec: ProgramSpec
    fd: bsys.FD
    code: bytes
    log: str = ""
    core: list = field(default_factory=list)
    _insns: list[Instruction] | None = field(default=None, repr=False)

    @property
    def insns(self) -> list[Instruction]:
        """The instructions as loaded (relocated; CO-RE applied)."""
        if self._insns is None:
            self._insns = decode(self.code, strict=False)
        return self._insns

    @property
    def insn_count(self) -> int:
        """How many instructions (an ``lddw`` is one)."""
        if self._insns is not None:
            return len(self._insns)
        return len(self.code) // 8 - len(lddw_slots(self.code))

    @property
    def slot_count(self) -> int:
        """How many 8-byte slots (libbpf's and bpftool's ``insn_cnt``)."""
        return len(self.code) // 8


@dataclass(eq=False, repr=False)
class LoadedObject(Data):
    """Every kernel object a load created; ``close()`` releases them."""

    spec: ObjectSpec
    maps: dict[str, LoadedMap] = field(default_factory=dict)
    programs: dict[str, LoadedProgram] = field(default_factory=dict)
    btf_fd: bsys.FD | None = None
    btf: PreparedBtf | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Close every program, map and BTF fd (pinned objects stay in bpffs)."""
        for p in self.programs.values():
            p.fd.close()
        for m in self.maps.values():
            m.fd.close()
        if self.btf_fd is not None:
            self.btf_fd.close()


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------


def kernel_map_name(spec: MapSpec, obj_name: str = "") -> str:
    """The name a map gets in the kernel (15 characters; global data prefixed by the object)."""
    name = spec.name
    if spec.kind in ("data", "rodata", "bss", "kconfig") or name.startswith("."):
        stem = os.path.splitext(os.path.basename(obj_name))[0] if obj_name else ""
        sfx = name if len(name) <= 15 else name[:15]
        pfx = _NAME_OK.sub("_", stem)[: max(0, 15 - len(sfx))]
        name = pfx + sfx
    return _NAME_OK.sub("_", name)[:15]


def value_size_of(map_type: int, value_size: int, ncpus: int) -> int:
    """The size of a user-space value buffer (per-CPU maps: all possible CPUs, 8-aligned)."""
    if map_type in _PERCPU:
        return ((value_size + 7) & ~7) * ncpus
    return value_size


def line_strings(spec: ObjectSpec) -> list[str]:
    """The file names and source lines the programs' line info refers to, in order of
    first use (they go into the BTF loaded with the object)."""
    strings: list[str] = []
    for p in spec.programs.values():
        lines = p._raw_parts()[2]
        if lines is not None:  # the distinct offsets in record order, then their text
            offs = dict.fromkeys(chain.from_iterable(zip(lines.files, lines.lines, strict=True)))
            strings += map(lines.string, offs)
            continue
        for li in p.line_info:
            strings.append(li.file)
            strings.append(li.source)
    return strings


def _btf_ids(spec: MapSpec, btf_fd: bsys.FD | None) -> tuple[int, int]:
    if btf_fd is None or spec.type in _NO_BTF_TYPES:
        return 0, 0
    if spec.kind in ("data", "rodata", "bss", "kconfig"):
        return 0, spec.value_type_id or 0
    if spec.key_type_id and spec.value_type_id:
        return spec.key_type_id, spec.value_type_id
    return 0, 0


def _create(
    spec: MapSpec,
    name: str,
    max_entries: int,
    btf_fd: bsys.FD | None,
    inner_fd: bsys.FD | None,
    notes: list[str],
) -> tuple[bsys.FD, bool]:
    key_id, value_id = _btf_ids(spec, btf_fd)
    numa = spec.numa_node if spec.numa_node else None
    kwargs = dict(
        flags=spec.flags,
        name=name,
        inner_map_fd=inner_fd if inner_fd is not None else 0,
        map_extra=spec.map_extra,
        numa_node=numa,
    )
    if value_id:
        try:
            fd = bsys.map_create(
                spec.type,
                spec.key_size,
                spec.value_size,
                max_entries,
                btf_fd=btf_fd,  # type: ignore[arg-type]
                btf_key_type_id=key_id,
                btf_value_type_id=value_id,
                **kwargs,  # type: ignore[arg-type]
            )
            return bsys.FD(fd), True
        except KernelError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, bsys.ENOTSUPP):
                raise
            notes.append(f"map {spec.name}: created without BTF ({e.strerror})")
    fd = bsys.map_create(spec.type, spec.key_size, spec.value_size, max_entries, **kwargs)  # type: ignore[arg-type]
    return bsys.FD(fd), False


def _check_pin(path: str, fd: bsys.FD, spec: MapSpec, max_entries: int) -> None:
    info = bsys.map_info(fd)
    problems = []
    for what, have, want in (
        ("type", int(info.type), int(spec.type)),
        ("key_size", info.key_size, spec.key_size),
        ("value_size", info.value_size, spec.value_size),
        ("max_entries", info.max_entries, max_entries),
        ("map_flags", info.map_flags, spec.flags),
        ("map_extra", info.map_extra, spec.map_extra),
    ):
        if have != want:
            problems.append(f"{what} {have} != {want}")
    if problems:
        raise PinConflict(
            f"map {spec.name!r}: the map pinned at {path} is incompatible ({', '.join(problems)}); "
            "remove the pin or change the definition"
        )


# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------


def _kallsyms_address(name: str) -> int | None:
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == name:
                    return int(parts[0], 16)
    except OSError:
        return None
    return None


def _attach_btf_id(ps: ProgramSpec, target: str | None) -> int:
    kind = ps.attach_kind or ""
    if kind not in _BTF_ATTACH:
        return 0
    if not target:
        raise BpfError(f"program {ps.name}: section {ps.section!r} names no attach target")
    prefix, btf_kind = _BTF_ATTACH[kind]
    kbtf = vmlinux_btf()
    ids = kbtf.ids_named(prefix + target, btf_kind)
    if not ids:
        raise NotSupported(
            f"program {ps.name}: the kernel's BTF has no {btf_kind.name.lower()} "
            f"{prefix + target!r} to attach {kind} to"
        )
    return ids[0]


def _explain(e: VerifierError, core_notes: dict[int, str]) -> None:
    """Add what a poisoned call stands for to a verifier error's message."""
    m = re.search(r"unknown#(\d+)", e.reason or "")
    if not m:
        return
    from .core import poison_reason

    hid = int(m.group(1))
    n = poison_reason(hid)
    if n is not None and n in core_notes:
        e.reason = f"{e.reason}: unresolved CO-RE relocation #{n} ({core_notes[n]})"
    elif POISON_KFUNC <= hid < POISON_KFUNC + 0x1000:
        e.reason = f"{e.reason}: call to a kernel function this kernel does not have"
    else:
        return
    e.args = (f"insn {e.insn}: {e.reason}" if e.insn is not None else e.reason,)


class _Loader:
    def __init__(self, spec: ObjectSpec, opts: LoadOptions) -> None:
        from ..obj.overrides import apply_overrides

        self.spec = spec = apply_overrides(
            spec,
            value_size=opts.value_size,
            max_entries=opts.max_entries,
            constants=opts.constants,
            prog_type=opts.prog_type,
            attach_type=opts.attach_type,
            autoload=opts.autoload,
        )
        self.opts = opts
        self.out = LoadedObject(spec)
        self.ncpus = bsys.possible_cpus()
        self._core_target: Btf | None = None
        #: pins this load made (removed again if the load fails)
        self.created_pins: list[str] = []

    # ---- BTF ------------------------------------------------------------------
    def load_btf(self) -> None:
        spec = self.spec
        if spec.btf is None:
            return
        try:
            prepared = prepare_object_btf(
                spec.btf, spec, extra_strings=line_strings(spec), features=self.opts.btf_features
            )
        except BpfError as e:
            self.out.notes.append(f"BTF not usable: {e}")
            return
        try:
            self.out.btf_fd = bsys.FD(bsys.btf_load(prepared.data))
        except KernelError as e:
            # Like libbpf: carry on without BTF; programs that need it will say so.
            self.out.notes.append(f"BTF rejected by the kernel: {e}")
            return
        self.out.btf = prepared

    # ---- maps -----------------------------------------------------------------
    def create_maps(self) -> None:
        spec, out = self.spec, self.out
        kcfg = None
        if ".kconfig" in spec.maps:
            from .kconfig import kconfig_contents

            kcfg = kconfig_contents(spec, dict(self.opts.kconfig or {}))
        for ms in spec.maps.values():
            max_entries = ms.max_entries
            if ms.type == MapType.PERF_EVENT_ARRAY and not max_entries:
                max_entries = self.ncpus
            name = kernel_map_name(ms, spec.name)
            pin_path = None
            if ms.pinning not in (Pinning.NONE, Pinning.BY_NAME):
                out.notes.append(
                    f"map {ms.name}: pinning {int(ms.pinning)} is not libbpf's "
                    "(0 none, 1 by name); not pinned"
                )
            if ms.pinning == Pinning.BY_NAME:
                root = self.opts.pin_root or DEFAULT_PIN_ROOT
                pin_path = os.path.join(root, ms.name.replace(".", "_"))
                try:
                    fd = bsys.FD(bsys.obj_get(pin_path))
                except KernelError as e:
                    if e.errno != errno.ENOENT:
                        raise
                else:
                    try:
                        _check_pin(pin_path, fd, ms, max_entries)
                    except BaseException:
                        fd.close()
                        raise
                    vs = value_size_of(int(ms.type), ms.value_size, self.ncpus)
                    out.maps[ms.name] = LoadedMap(
                        ms.name, ms, fd, vs, max_entries, pin_path, reused=True
                    )
                    continue
            inner_fd = None
            try:
                if ms.inner_map is not None:
                    im = ms.inner_map
                    inner_fd, _ = _create(im, "", im.max_entries, self.out.btf_fd, None, out.notes)
                fd, with_btf = _create(ms, name, max_entries, self.out.btf_fd, inner_fd, out.notes)
            except KernelError as e:  # name the map the kernel refused
                what = "the inner map of map" if inner_fd is None and ms.inner_map else "map"
                dims = (
                    f"{ms.type_name.lower()}, key {ms.key_size}, value {ms.value_size}, "
                    f"max_entries {max_entries}"
                )
                err = KernelError(
                    e.errno or 0, f"BPF_MAP_CREATE of {what} {ms.name!r} ({dims})", e.hint
                )
                err.map = ms.name  # type: ignore[attr-defined]
                raise err from None
            finally:
                if inner_fd is not None:
                    inner_fd.close()
            lm = LoadedMap(
                ms.name,
                ms,
                fd,
                value_size_of(int(ms.type), ms.value_size, self.ncpus),
                max_entries,
                btf=with_btf,
            )
            out.maps[ms.name] = lm
            data = kcfg if ms.kind == "kconfig" else ms.contents
            if data is not None and ms.value_size:
                bsys.map_update(
                    fd, bytes(4), bytes(data).ljust(ms.value_size, b"\0")[: ms.value_size]
                )
            if ms.frozen:
                bsys.map_freeze(fd)
            if pin_path is not None:
                try:
                    bsys.obj_pin(fd, pin_path)
                except KernelError as e:
                    raise KernelError(
                        e.errno or 0, f"BPF_OBJ_PIN of map {ms.name!r} at {pin_path}", e.hint
                    ) from None
                lm.pinned = pin_path
                self.created_pins.append(pin_path)

    # ---- programs ---------------------------------------------------------------
    def core_target(self) -> Btf:
        if self._core_target is None:
            src = self.opts.core_btf
            if src is None:
                self._core_target = vmlinux_btf()
            elif isinstance(src, str | os.PathLike):
                self._core_target = vmlinux_btf(os.fspath(src))
            else:
                self._core_target = src
        return self._core_target

    def _map_fd(self, ps: ProgramSpec, mname: str | None) -> int:
        mname = mname or ".kconfig"
        lm = self.out.maps.get(mname)
        if lm is None:
            raise BpfError(f"program {ps.name}: relocation against unknown map {mname!r}")
        return lm.fd.fileno()

    def relocate_code(self, ps: ProgramSpec, code: bytes, relocs: list[tuple]) -> bytes:
        """``relocate`` on bytecode (no CO-RE): map fds, kernel symbols and kfuncs patched
        into the parsed bytes, the same bytes ``relocate`` and encoding would give."""
        buf = bytearray(code)
        fds: dict[str | None, int] = {}
        map_ref, map_value, kconfig = RelocKind.MAP, RelocKind.MAP_VALUE, RelocKind.KCONFIG
        fd_src, value_src = op.PSEUDO_MAP_FD << 4, op.PSEUDO_MAP_VALUE << 4
        u32 = _U32
        for n, t in enumerate(relocs):
            kind, at = t[2], t[1] * 8
            if kind == map_ref or kind == map_value or kind == kconfig:
                fd = fds.get(t[4])
                if fd is None:
                    fd = fds[t[4]] = self._map_fd(ps, t[4]) & 0xFFFFFFFF
                if kind == map_ref:
                    src, hi = fd_src, 0
                else:
                    src = value_src
                    hi = t[5] if kind == kconfig else (u32.unpack_from(buf, at + 12)[0] or t[5])
                buf[at + 1] = (buf[at + 1] & 0x0F) | src
                u32.pack_into(buf, at + 4, fd)
                u32.pack_into(buf, at + 12, hi & 0xFFFFFFFF)
            elif kind in (RelocKind.KSYM, RelocKind.KFUNC):
                width = 16 if buf[at] == op.LDDW else 8
                insn = decode(buf[at : at + width], strict=False)[0]
                rel = Relocation(*t)
                if kind == RelocKind.KSYM:
                    new = self._ksym(ps, rel, insn)
                else:
                    new = self._kfunc(ps, rel, insn, n)
                enc = bsys.encode_for_load([new])
                if len(enc) != width:
                    raise BpfError(f"program {ps.name}: relocation changed an instruction's size")
                buf[at : at + width] = enc
        return bytes(buf)

    def relocate(self, ps: ProgramSpec) -> tuple[list[Instruction], list, dict[int, str]]:
        spec, maps = self.spec, self.out.maps
        insns = list(ps.instructions)
        for n, rel in enumerate(ps.relocations):
            kind = rel.kind
            insn = insns[rel.index]
            if kind in (RelocKind.MAP, RelocKind.MAP_VALUE, RelocKind.KCONFIG):
                mname = rel.map or ".kconfig"
                lm = maps.get(mname)
                if lm is None:
                    raise BpfError(f"program {ps.name}: relocation against unknown map {mname!r}")
                fd = lm.fd.fileno()
                if kind == RelocKind.MAP:
                    insns[rel.index] = insn.with_(src=op.PSEUDO_MAP_FD, imm=fd)
                else:
                    off = rel.offset if kind == RelocKind.KCONFIG else (insn.imm_hi or rel.offset)
                    insns[rel.index] = insn.with_(
                        src=op.PSEUDO_MAP_VALUE, imm=((off & 0xFFFFFFFF) << 32) | fd
                    )
            elif kind == RelocKind.KSYM:
                insns[rel.index] = self._ksym(ps, rel, insn)
            elif kind == RelocKind.KFUNC:
                insns[rel.index] = self._kfunc(ps, rel, insn, n)
        core_notes: dict[int, str] = {}
        results: list = []
        if ps.core_relocations:
            if spec.btf is None:
                raise BpfError(f"program {ps.name}: CO-RE relocations without BTF")
            from .core import CoreError, apply_core

            try:
                insns, results = apply_core(
                    insns, ps.core_relocations, spec.btf, self.core_target(), program=ps.name
                )
            except CoreError as e:
                raise BpfError(f"program {ps.name}: {e}") from None
            for n, (_idx, res) in enumerate(results):
                if not res.ok:
                    cr = ps.core_relocations[n]
                    core_notes[n] = f"{cr.type_name} {cr.access}: {res.reason}"
        return insns, results, core_notes

    def _extern(self, name: str):
        return self.spec.externs.get(name)

    def _ksym(self, ps: ProgramSpec, rel, insn: Instruction) -> Instruction:
        name = rel.target or rel.symbol
        ext = self._extern(name)
        weak = bool(ext and ext.weak)
        typed = bool(ext and ext.type_id and self._is_typed(ext.type_id))
        if typed:
            ids = vmlinux_btf().ids_named(name, BtfKind.VAR)
            if ids:
                return insn.with_(src=op.PSEUDO_BTF_ID, imm=ids[0])
        else:
            addr = _kallsyms_address(name)
            if addr:
                return insn.with_(src=0, imm=addr)
        if weak:
            return insn.with_(src=0, imm=0)
        raise NotSupported(f"program {ps.name}: kernel symbol {name!r} not found")

    def _is_typed(self, type_id: int) -> bool:
        btf = self.spec.btf
        if btf is None:
            return False
        try:
            return btf.resolve(type_id).kind != BtfKind.UNKN
        except BpfError:
            return False

    def _kfunc(self, ps: ProgramSpec, rel, insn: Instruction, n: int) -> Instruction:
        name = rel.target or rel.symbol
        ext = self._extern(name)
        ids = (
            vmlinux_btf().ids_named(name, BtfKind.FUNC)
            if os.path.exists("/sys/kernel/btf/vmlinux")
            else []
        )
        if ids:
            return insn.with_(src=op.PSEUDO_KFUNC_CALL, imm=ids[0], off=0)
        if ext is not None and ext.weak:
            return Instruction(op.CALL_OP, 0, 0, 0, POISON_KFUNC + min(n, 0xFFF))
        raise NotSupported(f"program {ps.name}: the kernel has no kfunc {name!r}")

    def _btf_info(self, ps: ProgramSpec) -> dict[str, Any]:
        prepared, btf_fd = self.out.btf, self.out.btf_fd
        if prepared is None or btf_fd is None or not ps.func_info:
            return {}
        kw: dict[str, Any] = {
            "prog_btf_fd": btf_fd,
            "func_info": b"".join(struct.pack("<II", f.slot, f.type_id) for f in ps.func_info),
            "func_info_rec_size": 8,
        }
        lines = ps._raw_parts()[2]
        if lines is not None:
            # Columns to records: string offsets moved to the prepared BTF's.
            where = {
                off: prepared.string_offset(lines.string(off))
                for off in set(lines.files) | set(lines.lines)
            }
            rec = array("I", bytes(16 * len(lines.slots)))
            rec[0::4] = array("I", lines.slots)
            rec[1::4] = array("I", map(where.__getitem__, lines.files))
            rec[2::4] = array("I", map(where.__getitem__, lines.lines))
            rec[3::4] = array("I", lines.cols)
            if sys.byteorder != "little":  # pragma: no cover
                rec.byteswap()
            kw["line_info"] = rec.tobytes()
            kw["line_info_rec_size"] = 16
        elif ps.line_info:
            kw["line_info"] = b"".join(
                struct.pack(
                    "<IIII",
                    li.slot,
                    prepared.string_offset(li.file),
                    prepared.string_offset(li.source),
                    (li.line << 10) | (li.column & 0x3FF),
                )
                for li in ps.line_info
            )
            kw["line_info_rec_size"] = 16
        return kw

    def load_program(self, ps: ProgramSpec) -> LoadedProgram:
        code, relocs, _lines = ps._raw_parts()
        insns: list[Instruction] | None = None
        if code is not None and not ps.core_relocations:
            # Still the parsed bytes: patch them, no instruction objects.
            if relocs is None:
                relocs = [
                    (r.index, r.slot, r.kind, r.symbol, r.map, r.offset, r.target)
                    for r in ps.relocations
                ]
            code = self.relocate_code(ps, code, relocs)
            core_results: list = []
            core_notes: dict[int, str] = {}
        else:
            insns, core_results, core_notes = self.relocate(ps)
            code = bsys.encode_for_load(insns)
        target = (self.opts.attach_targets or {}).get(ps.name, ps.attach_target)
        attach_btf_id = _attach_btf_id(ps, target)
        btf_kw = self._btf_info(ps)
        kver = ps.kernel_version or self.spec.kernel_version
        if not kver and int(ps.prog_type) == ProgType.KPROBE:
            from .kconfig import kernel_version_code

            kver = kernel_version_code()
        license = ps.license or self.spec.license or "GPL"
        name = _NAME_OK.sub("_", ps.name)[:15]
        logs: list[str] = []
        attempt = dict(btf_kw)
        while True:
            try:
                fd = bsys.prog_load(
                    int(ps.prog_type),
                    code,
                    license,
                    expected_attach_type=int(ps.expected_attach_type or 0),
                    name=name,
                    log_level=self.opts.log_level,
                    kern_version=kver,
                    attach_btf_id=attach_btf_id,
                    prog_flags=ps.flags,
                    log_out=logs,
                    **attempt,
                )
                break
            except VerifierError as e:
                log = e.log or ""
                if "line_info" in log and "line_info" in attempt:
                    # A kernel that disagrees with the line info: keep func info.
                    attempt.pop("line_info")
                    attempt.pop("line_info_rec_size")
                    self.out.notes.append(f"program {ps.name}: loaded without line info")
                    logs.clear()
                    continue
                _explain(e, core_notes)
                raise e.for_program(ps.name) from None
            except KernelError as e:
                err = KernelError(e.errno or 0, f"BPF_PROG_LOAD of {ps.name!r}", e.hint)
                err.log = getattr(e, "log", "")  # type: ignore[attr-defined]
                raise err from None
        return LoadedProgram(
            ps.name,
            ps,
            bsys.FD(fd),
            code,
            logs[-1] if logs else "",
            core_results,
            insns,
        )

    def load_programs(self) -> None:
        wanted = set(self.opts.programs) if self.opts.programs is not None else None
        if wanted is not None:
            unknown = wanted - set(self.spec.programs)
            if unknown:
                raise BpfError(f"no program(s) {', '.join(sorted(unknown))} in the object")
        for ps in self.spec.programs.values():
            if wanted is not None and ps.name not in wanted:
                continue
            if wanted is None and not getattr(ps, "autoload", True):
                continue
            if int(ps.prog_type) == ProgType.UNSPEC:
                raise BpfError(
                    f"program {ps.name}: section {ps.section!r} does not name a program type"
                )
            self.out.programs[ps.name] = self.load_program(ps)

    def fill_slots(self) -> None:
        out = self.out
        for ms in self.spec.maps.values():
            if not ms.values:
                continue
            lm = out.maps[ms.name]
            if lm.reused:
                continue
            for index, target in ms.values.items():
                if ms.type == MapType.PROG_ARRAY:
                    obj = out.programs.get(target)
                    if obj is None:
                        if target in self.spec.programs:
                            continue  # not loaded (autoload off)
                        raise BpfError(f"map {ms.name}: slot {index} names unknown {target!r}")
                    tfd = obj.fd.fileno()
                else:
                    tm = out.maps.get(target)
                    if tm is None:
                        raise BpfError(f"map {ms.name}: slot {index} names unknown map {target!r}")
                    tfd = tm.fd.fileno()
                bsys.map_update(
                    lm.fd, int(index).to_bytes(ms.key_size, "little"), struct.pack("<I", tfd)
                )

    def run(self) -> LoadedObject:
        try:
            self.load_btf()
            self.create_maps()
            self.load_programs()
            self.fill_slots()
        except BaseException:
            self.out.close()
            for path in reversed(self.created_pins):  # a failed load leaves no pins behind
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise
        return self.out


def load_spec(spec: ObjectSpec, options: LoadOptions | None = None, **kw: Any) -> LoadedObject:
    """Create the maps and load the programs of ``spec`` into the kernel."""
    opts = options or LoadOptions(**kw)
    return _Loader(spec, opts).run()
