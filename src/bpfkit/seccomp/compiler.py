"""Compile a seccomp profile to a classic BPF program (``struct sock_filter``).

Three steps:

1. the rules go into libseccomp's rule database (:mod:`bpfkit.seccomp.db`), one per
   architecture, in the order runc adds them — i386's socketcall/ipc forms included;
2. :mod:`bpfkit.seccomp.lsgen` generates the program libseccomp 2.5 would generate from
   that database, byte for byte: its decisions, quirks included, are the reference;
3. :mod:`bpfkit.seccomp.dispatch` replaces that program's linear syscall dispatch (one
   ``jeq`` per syscall, in libseccomp's priority order) with a binary search over
   syscall-number intervals, and keeps the argument-checking code unchanged, so every
   decision stays libseccomp's while a decision costs about log2(intervals) comparisons
   instead of up to one per syscall in the profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..classic import insn as c
from ..classic.insn import SockFilter
from ..errors import ProfileError
from . import actions as act
from .db import EQ, ArchDB, Cond, SyscallEntry
from .profile import Profile
from .tables import (
    IPC_NR_I386,
    IPCCALLS,
    SOCKETCALL_NR_I386,
    SOCKETCALLS,
    X32_SYSCALL_BIT,
    Arch,
    get_arch,
    native_arch,
    pseudo_numbers,
    syscall_number,
)

PSEUDO_MIN = 0x80000000  # libseccomp's pseudo syscall numbers are negative


# --- rule databases -------------------------------------------------------------------


def build_databases(profile: Profile, native: Arch) -> list[ArchDB]:
    """One libseccomp rule database per architecture: native first, then the profile's."""
    arches: list[Arch] = [native]
    for name in profile.architectures:
        a = get_arch(name)
        if a not in arches:
            arches.append(a)
    dbs = [ArchDB(a.name, a.arg_bits) for a in arches]
    for name, action, conds in profile.libseccomp_calls():
        for a, db in zip(arches, dbs, strict=True):
            _add(db, a, name, action, conds)
    return dbs


def _add(db: ArchDB, arch: Arch, name: str, action: int, conds: Sequence[Cond]) -> None:
    nr = syscall_number(arch, name)
    if arch.name == "i386" and (name in SOCKETCALLS or name in IPCCALLS):
        # libseccomp also filters the multiplexed form: socketcall(call, ...) / ipc(call, ...)
        mux, code, base = (
            (SOCKETCALL_NR_I386, SOCKETCALLS[name], 100)
            if name in SOCKETCALLS
            else (IPC_NR_I386, IPCCALLS[name], 200)
        )
        muxed = [Cond(0, EQ, code)] + [x for x in conds if x.index != 0]
        _db_add(db, mux, action, muxed, name)
        if nr is None:
            # and keeps the rule under the pseudo number -(base + call)
            _db_add(db, -(base + code) & 0xFFFFFFFF, action, conds, name)
            return
    elif nr is None:
        # a name this ABI lacks: libseccomp files the rule under its pseudo number
        # (never emitted, but it takes part in the ordering quirk of ``_loses_nr_load``)
        pnr = pseudo_numbers().get(name)
        if pnr is not None and arch.name != "i386":
            _db_add(db, pnr & 0xFFFFFFFF, action, conds, name)
        return
    _db_add(db, nr, action, conds, name)


def _db_add(db: ArchDB, nr: int, action: int, conds: Sequence[Cond], name: str) -> None:
    try:
        db.add(nr, action, conds)
    except ProfileError as e:
        raise ProfileError(f"syscall {name!r} on {db.arch_name}: {e}") from None


# --- architecture groups --------------------------------------------------------------


@dataclass
class ArchGroup:
    """The architectures sharing one ``AUDIT_ARCH`` token (x86_64 and x32), with their rules."""

    token: int
    arches: list[Arch]
    entries: dict[int, SyscallEntry]
    ordered: list[SyscallEntry] = field(default_factory=list)

    def loses_nr_load(self) -> bool:
        """libseccomp 2.5.4's ordering quirk: True when its filter never loads ``nr`` here.

        libseccomp emits the syscall checks in priority order (fewest tree nodes first,
        ties by number, pseudo numbers last) and loads ``nr`` in the first one's block
        — unless x86_64/x32 alone, whose ABI check loads it. A pseudo syscall is never
        emitted; when one is first, no block loads ``nr``, every check compares the
        architecture token, none matches, and every syscall of this ABI gets the
        default action. bpfkit reproduces that decision.
        """
        names = {a.name for a in self.arches}
        if names in ({"x86_64"}, {"x32"}):
            return False
        return bool(self.ordered) and self.ordered[0].num >= PSEUDO_MIN


def _priority_insert(order: list[SyscallEntry], entries: Iterable[SyscallEntry]) -> None:
    """libseccomp's priority sort (gen_bpf.c): by priority, ties in insertion order."""
    for e in sorted(entries, key=lambda e: e.num):
        if not order:
            order.append(e)
            continue
        i = 0
        while i < len(order) - 1 and e.priority <= order[i].priority:
            i += 1
        if e.priority > order[i].priority:
            order.insert(i, e)
        else:
            order.append(e)


def _groups(dbs: Sequence[ArchDB]) -> list[ArchGroup]:
    groups: list[ArchGroup] = []
    for db in dbs:
        a = get_arch(db.arch_name)
        for g in groups:
            if g.token == a.audit:
                g.arches.append(a)
                g.entries.update(db.syscalls)
                _priority_insert(g.ordered, db.syscalls.values())
                break
        else:
            g = ArchGroup(a.audit, [a], dict(db.syscalls))
            _priority_insert(g.ordered, db.syscalls.values())
            groups.append(g)
    return groups


# --- the front door --------------------------------------------------------------------


@dataclass
class Filter:
    """A compiled profile: the classic program and what it was compiled for."""

    program: list[SockFilter]
    arches: list[Arch]
    default_action: int
    bad_arch_action: int
    databases: list[ArchDB] = field(repr=False, default_factory=list)
    warnings: list[str] = field(default_factory=list)
    libseccomp_program: list[SockFilter] = field(repr=False, default_factory=list)

    def raw(self) -> bytes:
        """The ``sock_filter`` array, as libseccomp's ``seccomp_export_bpf`` writes it."""
        return c.encode(self.program)

    def check(
        self,
        syscall: str | int,
        args: Sequence[int] = (),
        arch: str | int | Arch | None = None,
        *,
        instruction_pointer: int = 0,
    ) -> Decision:
        """Run the program on a ``seccomp_data`` and describe the decision."""
        from .check import check_filter

        return check_filter(self, syscall, args, arch, instruction_pointer=instruction_pointer)


@dataclass(frozen=True)
class Decision:
    """One filter decision: the 32-bit return value, its action name and data."""

    ret: int
    insns: int = 0

    @property
    def action(self) -> str:
        return act.action_name(self.ret)

    @property
    def data(self) -> int:
        return self.ret & act.RET_DATA

    def to_json(self) -> dict[str, int | str]:
        return act.describe(self.ret)


def compile_profile(profile: Profile, arch: str | Arch | None = None) -> Filter:
    """Compile ``profile`` for the native architecture ``arch`` (default: this machine)."""
    from . import dispatch, lsgen
    from .check import validate

    native = get_arch(arch) if arch is not None else native_arch()
    dbs = build_databases(profile, native)
    groups = [(g.token, {a.name for a in g.arches}, g.ordered) for g in _groups(dbs)]
    ls_prog = lsgen.generate(groups, profile.default_action, profile.bad_arch_action)
    prog = dispatch.redispatch(ls_prog) or ls_prog
    validate(prog)
    return Filter(
        prog,
        [get_arch(db.arch_name) for db in dbs],
        profile.default_action,
        profile.bad_arch_action,
        list(dbs),
        list(profile.warnings),
        ls_prog,
    )


def reference_decision(
    dbs: Iterable[ArchDB],
    default: int,
    bad_arch: int,
    arch_token: int,
    nr: int,
    args: Sequence[int],
) -> int:
    """The decision straight from the rule databases (no program): a cross-check."""
    from .db import evaluate_chain

    groups = {g.token: g for g in _groups(list(dbs))}
    g = groups.get(arch_token & 0xFFFFFFFF)
    if g is None:
        return bad_arch
    names = {a.name for a in g.arches}
    nr &= 0xFFFFFFFF
    if names == {"x86_64"} and nr >= X32_SYSCALL_BIT and nr != 0xFFFFFFFF:
        return bad_arch
    if names == {"x32"} and nr < X32_SYSCALL_BIT:
        return bad_arch
    if g.loses_nr_load():
        return default
    e = g.entries.get(nr)
    if e is None or not e.valid or nr >= PSEUDO_MIN:
        return default
    if e.chains is None:
        return e.action
    return evaluate_chain(e.chains, args, default)
