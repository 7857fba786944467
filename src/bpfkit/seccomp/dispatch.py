"""Replace a seccomp program's syscall dispatch with a binary search; keep everything else.

libseccomp compares ``nr`` with every syscall in its profile one after another (hundreds
of ``jeq`` for Docker's default profile). This module reads what a program does with
``arch`` and ``nr`` alone — a symbolic walk that follows every path while the
accumulator holds ``arch`` or ``nr``, splitting the 32-bit range of ``nr`` at each
comparison — and gets, per architecture token, a partition of ``nr`` into intervals,
each leading to an *entry*: the first instruction that looks at anything else (an
argument, or a ``ret``). The new program compares the token as before, loads ``nr``
and finds its interval with a binary search (``jge`` splits; ``jeq`` for a few isolated
numbers), then jumps to the same entry in an unchanged copy of the rest of the
original program. Every path ends at the same entry with the same accumulator, so every
decision is the original's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..classic import insn as c
from ..classic.insn import SockFilter
from ..errors import ProfileError
from .db import M32, OFF_ARCH, OFF_NR

Interval = tuple[int, int]


@dataclass
class TokenMap:
    """For one architecture token: ``(lo, hi, entry pc, accumulator)`` covering every ``nr``.

    The accumulator is what the entry expects: ``"nr"``, ``"arch"`` or None (a ``ret``).
    """

    token: int
    entry_arch: tuple[int, str | None] | None  # where the token path goes before loading nr
    intervals: list[tuple[int, int, int, str | None]] = field(default_factory=list)


class _Unsupported(Exception):
    pass


def _is_dispatch(ins: SockFilter) -> str | None:
    """``"ld_nr"``, ``"ld_arch"``, ``"cmp"``, ``"ja"`` for instructions the walk follows."""
    if ins.code == c.LD | c.W | c.ABS and ins.k == OFF_NR:
        return "ld_nr"
    if ins.code == c.LD | c.W | c.ABS and ins.k == OFF_ARCH:
        return "ld_arch"
    if ins.code in (c.JMP | c.JEQ | c.K, c.JMP | c.JGT | c.K, c.JMP | c.JGE | c.K):
        return "cmp"
    if ins.code == c.JMP | c.JA:
        return "ja"
    return None


def _split(op: int, k: int, lo: int, hi: int) -> tuple[list[Interval], list[Interval]]:
    """(taken, not taken) parts of [lo, hi] for ``A <op> k``."""
    if op == c.JEQ:
        if lo <= k <= hi:
            rest = [(lo, k - 1)] if lo < k else []
            if k < hi:
                rest.append((k + 1, hi))
            return [(k, k)], rest
        return [], [(lo, hi)]
    bound = k + 1 if op == c.JGT else k  # taken when A >= bound
    if bound > hi:
        return [], [(lo, hi)]
    if bound <= lo:
        return [(lo, hi)], []
    return [(bound, hi)], [(lo, bound - 1)]


def analyse(prog: Sequence[SockFilter]) -> tuple[list[TokenMap], tuple[int, str | None]]:
    """The dispatch of ``prog``: per token its ``nr`` intervals, and where other tokens go."""
    n = len(prog)

    def step_arch(pc: int, token: int | None, acc: str | None) -> tuple:
        """Follow a path while A holds ``arch``; stop at a token test or an entry."""
        while True:
            if not 0 <= pc < n:
                raise _Unsupported
            ins = prog[pc]
            kind = _is_dispatch(ins)
            if kind == "ld_arch":
                acc = "arch"
                pc += 1
            elif kind == "ld_nr":
                return ("nr", pc)
            elif kind == "ja":
                pc += 1 + ins.k
            elif kind == "cmp" and acc == "arch":
                if token is None:
                    if ins.code != c.JMP | c.JEQ | c.K:
                        raise _Unsupported
                    return ("test", pc)
                taken = _split(ins.code & 0xF0, ins.k, token, token)[0]
                pc += 1 + (ins.jt if taken else ins.jf)
            else:
                return ("entry", pc, acc)

    tokens: list[TokenMap] = []
    excluded: set[int] = set()
    pc = 0
    while True:
        r = step_arch(pc, None, "arch" if pc else None)
        if r[0] != "test":
            if r[0] == "nr":
                raise _Unsupported  # nr loaded before any architecture test
            other = (r[1], r[2])
            break
        tpc = r[1]
        ins = prog[tpc]
        tok = ins.k
        if tok not in excluded:
            excluded.add(tok)
            tokens.append(TokenMap(tok, None))
            tm = tokens[-1]
            _walk_token(prog, tm, tpc + 1 + ins.jt, step_arch)
        pc = tpc + 1 + ins.jf
    return tokens, other


def _walk_token(prog: Sequence[SockFilter], tm: TokenMap, start: int, step_arch) -> None:
    r = step_arch(start, tm.token, "arch")
    if r[0] == "entry":
        tm.entry_arch = (r[1], r[2])
        tm.intervals = [(0, M32, r[1], r[2])]
        return
    n = len(prog)
    # pc -> list of intervals reaching it with A == nr
    pending: dict[int, list[Interval]] = {r[1]: [(0, M32)]}
    out: list[tuple[int, int, int, str | None]] = []
    while pending:
        pc = min(pending)
        ivs = pending.pop(pc)
        if not 0 <= pc < n:
            raise _Unsupported
        ins = prog[pc]
        kind = _is_dispatch(ins)
        if kind == "ld_nr":
            pending.setdefault(pc + 1, []).extend(ivs)
        elif kind == "ja":
            pending.setdefault(pc + 1 + ins.k, []).extend(ivs)
        elif kind == "cmp":
            t_pc, f_pc = pc + 1 + ins.jt, pc + 1 + ins.jf
            for lo, hi in ivs:
                taken, not_taken = _split(ins.code & 0xF0, ins.k, lo, hi)
                if taken:
                    pending.setdefault(t_pc, []).extend(taken)
                if not_taken:
                    pending.setdefault(f_pc, []).extend(not_taken)
        else:
            acc = None if ins.code & 0x07 == c.RET else "nr"
            out.extend((lo, hi, pc, acc) for lo, hi in ivs)
    out.sort()
    merged: list[tuple[int, int, int, str | None]] = []
    for lo, hi, pc, acc in out:
        if merged and merged[-1][2] == pc and merged[-1][3] == acc and merged[-1][1] + 1 == lo:
            merged[-1] = (merged[-1][0], hi, pc, acc)
        else:
            merged.append((lo, hi, pc, acc))
    cur = 0
    for lo, hi, _, _ in merged:
        if lo != cur:
            raise _Unsupported  # the walk lost part of the range
        cur = hi + 1
    if cur != 1 << 32:
        raise _Unsupported
    tm.intervals = merged


# --- the new program --------------------------------------------------------------------------


@dataclass(eq=False)
class _Block:
    """Straight-line instructions ending in a ret, a ja or a two-way conditional jump.

    ``end``: ("ret", k) | ("ja", block) | ("jmp", op, k, t_block, f_block) | ("body", pc)
    — the last marks an entry into the copied body of the original program.
    """

    body: list[SockFilter] = field(default_factory=list)
    end: tuple = ()


class _Builder:
    def __init__(self, prog: Sequence[SockFilter]):
        self.prog = prog
        self.rets: dict[int, _Block] = {}
        self.entries: dict[tuple[int, str | None, bool], _Block] = {}
        self.memo: dict[tuple, _Block] = {}

    def ret(self, k: int) -> _Block:
        b = self.rets.get(k)
        if b is None:
            b = self.rets[k] = _Block([], ("ret", k))
        return b

    def entry(self, pc: int, acc: str | None, have_nr: bool) -> _Block:
        ins = self.prog[pc]
        if ins.code == c.RET | c.K:
            return self.ret(ins.k)
        key = (pc, acc, have_nr)
        b = self.entries.get(key)
        if b is None:
            target = _Block([], ("body", pc))
            if acc == "arch":
                b = _Block([c.stmt(c.LD | c.W | c.ABS, OFF_ARCH)], ("ja", target))
            elif acc == "nr" and not have_nr:
                b = _Block([c.stmt(c.LD | c.W | c.ABS, OFF_NR)], ("ja", target))
            else:
                b = target
            self.entries[key] = b
        return b

    def search(self, ivs: list[tuple[int, int, int, str | None]]) -> _Block:
        """Binary search over intervals (A holds nr)."""
        if len(ivs) == 1:
            return self.entry(ivs[0][2], ivs[0][3], True)
        key = ("s", tuple(ivs))
        if key in self.memo:
            return self.memo[key]
        counts: dict[tuple, int] = {}
        for _, _, pc, acc in ivs:
            counts[(pc, acc)] = counts.get((pc, acc), 0) + 1
        sea = max(counts, key=lambda t: counts[t])
        islands = [iv for iv in ivs if (iv[2], iv[3]) != sea]
        depth = (len(ivs) - 1).bit_length()
        if islands and all(lo == hi for lo, hi, _, _ in islands) and len(islands) < depth:
            nxt = self.entry(sea[0], sea[1], True)
            for lo, _, pc, acc in reversed(islands):
                nxt = _Block([], ("jmp", c.JEQ, lo, self.entry(pc, acc, True), nxt))
            self.memo[key] = nxt
            return nxt
        mid = len(ivs) // 2
        b = _Block([], ("jmp", c.JGE, ivs[mid][0], self.search(ivs[mid:]), self.search(ivs[:mid])))
        self.memo[key] = b
        return b


def redispatch(prog: Sequence[SockFilter]) -> list[SockFilter] | None:
    """``prog`` with a binary-search syscall dispatch (None when its shape is not understood)."""
    try:
        tokens, other = analyse(prog)
    except _Unsupported:
        return None
    bld = _Builder(prog)
    nxt = bld.entry(other[0], other[1], False)
    for tm in reversed(tokens):
        if tm.entry_arch is not None:
            grp = bld.entry(tm.entry_arch[0], tm.entry_arch[1], False)
        else:
            tree = bld.search(tm.intervals)
            grp = _Block([c.stmt(c.LD | c.W | c.ABS, OFF_NR)], ("ja", tree))
        nxt = _Block([], ("jmp", c.JEQ, tm.token, grp, nxt))
    head = _Block([c.stmt(c.LD | c.W | c.ABS, OFF_ARCH)], ("ja", nxt))
    return _layout(head, prog)


def _body(prog: Sequence[SockFilter], starts: Sequence[int]) -> list[int]:
    """Every pc reachable from ``starts`` in the original program, ascending."""
    seen: set[int] = set()
    stack = list(starts)
    while stack:
        pc = stack.pop()
        if pc in seen or not 0 <= pc < len(prog):
            continue
        seen.add(pc)
        ins = prog[pc]
        cls = ins.code & 0x07
        if cls == c.RET:
            continue
        if cls == c.JMP:
            if ins.code == c.JMP | c.JA:
                stack.append(pc + 1 + ins.k)
            else:
                stack += [pc + 1 + ins.jt, pc + 1 + ins.jf]
        else:
            stack.append(pc + 1)
    return sorted(seen)


def _layout(head: _Block, prog: Sequence[SockFilter]) -> list[SockFilter]:
    # order the new blocks: reverse post-order of a DFS (false branches first)
    def succs(b: _Block) -> list[_Block]:
        if b.end[0] == "jmp":
            return [b.end[4], b.end[3]]
        if b.end[0] == "ja":
            return [b.end[1]]
        return []

    post: list[_Block] = []
    seen = {id(head)}
    stack: list[tuple[_Block, int]] = [(head, 0)]
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
    order = [b for b in reversed(post) if b.end[0] != "body"]
    entries = sorted({b.end[1] for b in post if b.end[0] == "body"})
    body_pcs = _body(prog, entries)
    body_index = {pc: i for i, pc in enumerate(body_pcs)}
    # items of the new part; entries into the body are resolved after it
    items: list[list] = []
    for idx, b in enumerate(order):
        for ins in b.body:
            items.append([b, ("insn", ins)])
        end = b.end
        if (
            end[0] == "ja"
            and end[1].end[0] != "body"
            and idx + 1 < len(order)
            and order[idx + 1] is end[1]
        ):
            continue
        items.append([b, end])

    def target_pos(tgt: _Block, start: dict[int, int], base: int) -> int:
        if tgt.end[0] == "body":
            return base + body_index[tgt.end[1]]
        return start[id(tgt)]

    while True:
        start: dict[int, int] = {}
        for pos, (b, _) in enumerate(items):
            start.setdefault(id(b), pos)
        base = len(items)
        fixed = False
        for pos, (b, it) in enumerate(items):
            if it[0] != "jmp":
                continue
            _, op, k, t, f = it
            far = [
                (w, tg)
                for w, tg in (("t", t), ("f", f))
                if target_pos(tg, start, base) - pos - 1 > 255
            ]
            if not far:
                continue
            new_t, new_f, stubs = t, f, []
            for w, tg in far:
                stub = _Block([], tg.end if tg.end[0] == "ret" else ("ja", tg))
                stubs.append([stub, stub.end])
                if w == "t":
                    new_t = stub
                else:
                    new_f = stub
            items[pos] = [b, ("jmp", op, k, new_t, new_f)]
            items[pos + 1 : pos + 1] = stubs
            fixed = True
            break
        if not fixed:
            break
    out: list[SockFilter] = []
    for pos, (_, it) in enumerate(items):
        kind = it[0]
        if kind == "insn":
            out.append(it[1])
        elif kind == "ret":
            out.append(c.stmt(c.RET | c.K, it[1]))
        elif kind == "ja":
            out.append(c.stmt(c.JMP | c.JA, target_pos(it[1], start, base) - pos - 1))
        elif kind == "body":
            out.append(c.stmt(c.JMP | c.JA, base + body_index[it[1]] - pos - 1))
        else:
            _, op, k, t, f = it
            out.append(
                c.jump(
                    c.JMP | op | c.K,
                    k,
                    target_pos(t, start, base) - pos - 1,
                    target_pos(f, start, base) - pos - 1,
                )
            )
    # the copied body: original order, jumps re-targeted inside it
    for i, pc in enumerate(body_pcs):
        ins = prog[pc]
        cls = ins.code & 0x07
        if cls == c.JMP:
            if ins.code == c.JMP | c.JA:
                out.append(c.stmt(c.JMP | c.JA, body_index[pc + 1 + ins.k] - i - 1))
            else:
                jt = body_index[pc + 1 + ins.jt] - i - 1
                jf = body_index[pc + 1 + ins.jf] - i - 1
                out.append(SockFilter(ins.code, jt, jf, ins.k))
        elif cls == c.RET or pc + 1 in body_index:
            out.append(ins)
        else:
            # straight-line code whose next instruction was not copied cannot happen:
            # every reachable successor is in the body
            raise ProfileError("internal error: broken fall-through in the copied body")
    if len(out) > c.MAXINSNS:
        raise ProfileError(
            f"the compiled filter has {len(out)} instructions; the kernel accepts at most {c.MAXINSNS}"
        )
    return out
