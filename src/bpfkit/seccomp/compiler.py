"""Compile a seccomp profile to a classic BPF program (``struct sock_filter``).

Decisions are libseccomp's (the rule database of :mod:`bpfkit.seccomp.db`); the program
shape is bpfkit's own:

1. load ``seccomp_data.arch`` and compare it with each architecture's ``AUDIT_ARCH_*``
   token; any other token gets the bad-architecture action (KILL_THREAD);
2. load ``seccomp_data.nr`` and find its interval with a binary search over syscall
   numbers (``jge`` splits; ``jeq`` for a few isolated numbers), so a decision costs
   about log2(number of intervals) comparisons instead of one per syscall;
   on x86_64 without x32, numbers with the x32 bit (0x40000000) other than -1 are a bad
   architecture, as libseccomp makes them;
3. for a syscall with argument conditions, walk its libseccomp decision tree: one
   32-bit comparison per node, on the low or high word of an argument.

Classic jumps reach at most 255 instructions forward; a longer conditional jump gets a
nearby copy of the ``ret`` it targets, or a ``ja`` trampoline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..classic import insn as c
from ..classic.insn import SockFilter
from ..errors import ProfileError
from . import actions as act
from .db import EQ, GE, GT, M32, MASKED_EQ, ArchDB, Cond, Node, SyscallEntry, level
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

# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
OFF_NR = 0
OFF_ARCH = 4
OFF_IP = 8
OFF_ARGS = 16
SECCOMP_DATA_SIZE = 64

LINEAR_MAX = 3  # at most this many syscall numbers: compare them one by one


def arg_offset(index: int, hi: bool) -> int:
    """Offset of an argument's low or high 32-bit word (little-endian ABIs)."""
    return OFF_ARGS + 8 * index + (4 if hi else 0)


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


# --- the decision over syscall numbers --------------------------------------------------

# A target: ("ret", value) or ("chain", SyscallEntry)
Target = tuple


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

    def intervals(self, default: int, bad_arch: int) -> list[tuple[int, int, Target]]:
        """``(lo, hi, target)`` covering every u32 number, adjacent equal targets merged."""
        names = {a.name for a in self.arches}
        points: list[tuple[int, int, Target]] = []
        if self.loses_nr_load():
            return [(0, 0xFFFFFFFF, ("ret", default))]
        for nr in sorted(self.entries):
            e = self.entries[nr]
            if not e.valid or nr >= PSEUDO_MIN:
                continue
            t: Target = ("ret", e.action) if e.chains is None else ("chain", e)
            points.append((nr, nr, t))
        gaps: list[tuple[int, int, Target]] = []
        if names == {"x86_64"}:
            gaps = [(X32_SYSCALL_BIT, 0xFFFFFFFE, ("ret", bad_arch))]
        elif names == {"x32"}:
            gaps = [(0, X32_SYSCALL_BIT - 1, ("ret", bad_arch))]
        fixed = sorted(
            [p for p in points if not any(lo <= p[0] <= hi for lo, hi, _ in gaps)] + gaps
        )
        out: list[tuple[int, int, Target]] = []
        cur = 0
        for lo, hi, t in fixed:
            if lo > cur:
                out.append((cur, lo - 1, ("ret", default)))
            out.append((lo, hi, t))
            cur = hi + 1
        if cur <= 0xFFFFFFFF:
            out.append((cur, 0xFFFFFFFF, ("ret", default)))
        merged: list[tuple[int, int, Target]] = []
        for lo, hi, t in out:
            if (
                merged
                and merged[-1][2][0] == "ret"
                and t == merged[-1][2]
                and merged[-1][1] + 1 == lo
            ):
                merged[-1] = (merged[-1][0], hi, t)
            else:
                merged.append((lo, hi, t))
        return merged


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


# --- code generation ---------------------------------------------------------------------


@dataclass
class _Block:
    """Straight-line instructions ending in a ``ret``, ``ja`` or two-way conditional jump."""

    key: object
    body: list[SockFilter] = field(default_factory=list)
    # the final instruction: ("ret", value) | ("jmp", op, k, t_block, f_block) | ("ja", block)
    end: tuple = ()


class _Gen:
    def __init__(self, default: int, bad_arch: int):
        self.default = default
        self.bad_arch = bad_arch
        self.blocks: dict[object, _Block] = {}

    def ret(self, value: int) -> _Block:
        key = ("ret", value & 0xFFFFFFFF)
        b = self.blocks.get(key)
        if b is None:
            b = self.blocks[key] = _Block(key, [], ("ret", value & 0xFFFFFFFF))
        return b

    def block(self, key: object, body: list[SockFilter], end: tuple) -> _Block:
        b = self.blocks.get(key)
        if b is None:
            b = self.blocks[key] = _Block(key, body, end)
        return b

    # -- argument trees --

    def node(self, n: Node | None, fall: _Block, acc: tuple[int, int] | None) -> _Block:
        """Code for node ``n`` and the rest of its level; ``fall`` ends the level."""
        if n is None:
            return fall
        key = ("node", id(n), id(fall), acc)
        if key in self.blocks:
            return self.blocks[key]
        off = arg_offset(n.arg, n.hi)
        body: list[SockFilter] = []
        if acc is not None and acc[0] == off and acc[1] == n.mask:
            pass
        elif acc is not None and acc[0] == off and acc[1] == M32:
            body.append(c.stmt(c.ALU | c.AND | c.K, n.mask))
        else:
            body.append(c.stmt(c.LD | c.W | c.ABS, off))
            if n.mask != M32:
                body.append(c.stmt(c.ALU | c.AND | c.K, n.mask))
        after = (off, n.mask)
        nxt_after = self.node(n.lvl_nxt, fall, after) if n.lvl_nxt is not None else fall
        nxt_any = self.node(n.lvl_nxt, fall, None) if n.lvl_nxt is not None else fall

        def branch(sub: Node | None, flg: bool, action: int) -> _Block:
            if sub is not None:
                first = next(iter(level(sub)))
                return self.node(first, nxt_any, after)
            if flg:
                return self.ret(action)
            return nxt_after

        t = branch(n.nxt_t, n.act_t_flg, n.act_t)
        f = branch(n.nxt_f, n.act_f_flg, n.act_f)
        op = {EQ: c.JEQ, MASKED_EQ: c.JEQ, GT: c.JGT, GE: c.JGE}[n.op]
        return self.block(key, body, ("jmp", op, n.datum, t, f))

    def target(self, t: Target) -> _Block:
        if t[0] == "ret":
            return self.ret(t[1])
        e: SyscallEntry = t[1]
        first = next(iter(level(e.chains)))
        return self.node(first, self.ret(self.default), (OFF_NR, M32))

    # -- syscall numbers --

    def search(self, ivs: list[tuple[int, int, Target]], key: object) -> _Block:
        """A decision over the intervals ``ivs`` (the accumulator holds ``nr``)."""
        if len(ivs) == 1:
            return self.target(ivs[0][2])
        k = ("search", key, ivs[0][0], ivs[-1][1])
        if k in self.blocks:
            return self.blocks[k]
        # a few isolated numbers in a sea of one target: compare them directly
        counts: dict[Target, int] = {}
        for _, _, t in ivs:
            tk = _tkey(t)
            counts[tk] = counts.get(tk, 0) + 1
        sea = max(counts, key=lambda t: counts[t])
        islands = [iv for iv in ivs if _tkey(iv[2]) != sea]
        depth = (len(ivs) - 1).bit_length()
        if islands and all(lo == hi for lo, hi, _ in islands) and len(islands) <= max(1, depth - 1):
            sea_t = next(iv[2] for iv in ivs if _tkey(iv[2]) == sea)
            nxt = self.target(sea_t)
            for lo, _, t in reversed(islands):
                nxt = self.block(
                    ("jeq", key, lo, id(nxt)), [], ("jmp", c.JEQ, lo, self.target(t), nxt)
                )
            self.blocks[k] = nxt
            return nxt
        mid = len(ivs) // 2
        right = self.search(ivs[mid:], key)
        left = self.search(ivs[:mid], key)
        return self.block(k, [], ("jmp", c.JGE, ivs[mid][0], right, left))


def _tkey(t: Target) -> object:
    return t if t[0] == "ret" else ("chain", id(t[1]))


def _linear(
    gen: _Gen, ivs: list[tuple[int, int, Target]], key: object, default: int
) -> _Block | None:
    """A few syscall numbers compared one by one (libseccomp's shape), when that is shorter."""
    singles = [(lo, t) for lo, hi, t in ivs if lo == hi]
    others = [iv for iv in ivs if iv[0] != iv[1]]
    if len(singles) > LINEAR_MAX:
        return None
    if any(t != ("ret", default) for _, _, t in others):
        return None
    nxt = gen.ret(default)
    for lo, t in reversed(singles):
        nxt = gen.block(("lin", key, lo), [], ("jmp", c.JEQ, lo, gen.target(t), nxt))
    return nxt


def generate(groups: Sequence[ArchGroup], default: int, bad_arch: int) -> list[SockFilter]:
    """The classic program for the architecture groups."""
    gen = _Gen(default, bad_arch)
    nxt = gen.ret(bad_arch)
    for i, g in reversed(list(enumerate(groups))):
        ivs = g.intervals(default, bad_arch)
        tree = None
        x86_only = {a.name for a in g.arches} == {"x86_64"}
        if not x86_only:
            tree = _linear(gen, ivs, i, default)
        if tree is None:
            tree = gen.search(ivs, i)
        entry = gen.block(("arch-entry", i), [c.stmt(c.LD | c.W | c.ABS, OFF_NR)], ("ja", tree))
        nxt = gen.block(("arch", i), [], ("jmp", c.JEQ, g.token, entry, nxt))
    head = gen.block(("head",), [c.stmt(c.LD | c.W | c.ABS, OFF_ARCH)], ("ja", nxt))
    return _layout(head)


# --- layout: order blocks, resolve jumps, keep them in range ----------------------------


def _layout(head: _Block) -> list[SockFilter]:
    order: list[_Block] = []
    seen: set[int] = set()

    def succs(b: _Block) -> list[_Block]:
        if b.end[0] == "jmp":
            return [b.end[4], b.end[3]]  # false branch first: it tends to follow
        if b.end[0] == "ja":
            return [b.end[1]]
        return []

    # iterative DFS post-order
    stack: list[tuple[_Block, int]] = [(head, 0)]
    seen.add(id(head))
    post: list[_Block] = []
    while stack:
        b, i = stack.pop()
        ss = succs(b)
        if i < len(ss):
            stack.append((b, i + 1))
            s = ss[i]
            if id(s) not in seen:
                seen.add(id(s))
                stack.append((s, 0))
        else:
            post.append(b)
    order = list(reversed(post))
    # a ja to the very next block is dropped (fall through)
    items: list[list] = []  # [block, ("insn", SockFilter) | ("jmp",...) | ("ja", tgt) | ("ret", v)]
    for idx, b in enumerate(order):
        for ins in b.body:
            items.append([b, ("insn", ins)])
        end = b.end
        if end[0] == "ja" and idx + 1 < len(order) and order[idx + 1] is end[1]:
            continue
        items.append([b, end])
    while True:
        start: dict[int, int] = {}
        for pos, (b, _) in enumerate(items):
            start.setdefault(id(b), pos)
        fixed = False
        for pos, (b, it) in enumerate(items):
            if it[0] != "jmp":
                continue
            _, op, k, t, f = it
            far = []
            for which, tgt in (("t", t), ("f", f)):
                d = start[id(tgt)] - pos - 1
                if d < 0:
                    raise ProfileError("internal error: backward jump in the seccomp program")
                if d > 255:
                    far.append((which, tgt))
            if not far:
                continue
            # insert stubs right after this jump: a copy of a ret, or a ja
            new_t, new_f = t, f
            stubs = []
            for which, tgt in far:
                stub = _Block(("stub", pos, which))
                if tgt.end[0] == "ret" and not tgt.body:
                    stub.end = tgt.end
                else:
                    stub.end = ("ja", tgt)
                stubs.append([stub, stub.end])
                if which == "t":
                    new_t = stub
                else:
                    new_f = stub
            items[pos] = [b, ("jmp", op, k, new_t, new_f)]
            items[pos + 1 : pos + 1] = stubs
            fixed = True
            break
        if not fixed:
            break
    start = {}
    for pos, (b, _) in enumerate(items):
        start.setdefault(id(b), pos)
    prog: list[SockFilter] = []
    for pos, (_, it) in enumerate(items):
        kind = it[0]
        if kind == "insn":
            prog.append(it[1])
        elif kind == "ret":
            prog.append(c.stmt(c.RET | c.K, it[1]))
        elif kind == "ja":
            prog.append(c.stmt(c.JMP | c.JA, start[id(it[1])] - pos - 1))
        else:
            _, op, k, t, f = it
            prog.append(c.jump(c.JMP | op | c.K, k, start[id(t)] - pos - 1, start[id(f)] - pos - 1))
    if len(prog) > c.MAXINSNS:
        raise ProfileError(
            f"the compiled filter has {len(prog)} instructions; the kernel accepts at most {c.MAXINSNS}"
        )
    return prog


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
    native = get_arch(arch) if arch is not None else native_arch()
    dbs = build_databases(profile, native)
    groups = _groups(dbs)
    prog = generate(groups, profile.default_action, profile.bad_arch_action)
    from .check import validate

    validate(prog)
    return Filter(
        prog,
        [get_arch(db.arch_name) for db in dbs],
        profile.default_action,
        profile.bad_arch_action,
        list(dbs),
        list(profile.warnings),
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
