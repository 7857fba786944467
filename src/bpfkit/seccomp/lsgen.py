"""libseccomp 2.5's BPF generator, rebuilt: the exact program ``seccomp_export_bpf`` writes.

Why: libseccomp's generator has quirks that change decisions, not just layout. It emits
a syscall tree level by level, each node's block assuming the accumulator holds what the
previous node on its level loaded; a sub-level that falls through jumps into the next
node's block with another word in the accumulator. Blocks are shared by content (a hash
table), placed once, and a reload is prepended only when the *first* block that pulls a
block in ends with a different accumulator. So what a rule decides depends on layout.
To decide exactly as libseccomp does, bpfkit generates libseccomp's program here and
then (in :mod:`bpfkit.seccomp.compiler`) keeps its argument-checking code while replacing
the linear syscall dispatch with a binary search.

Structure and semantics read from libseccomp's ``src/gen_bpf.c`` (block hashing, level
resolution, the pull-in layout with accumulator reloads, long jumps); the output is
compared byte for byte with libseccomp's in ``tests/test_seccomp_oracle.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..classic import insn as c
from ..classic.insn import SockFilter
from ..errors import ProfileError
from .db import EQ, GE, GT, M32, MASKED_EQ, Node, SyscallEntry
from .tables import X32_SYSCALL_BIT

# jump/k kinds (libseccomp's enum bpf_jump_type)
NONE, K, NXT, IMM, DB, BLK, HSH = range(7)
JMP_MAX = 255
PSEUDO_MIN = 0x80000000
OFF_NR, OFF_ARCH = 0, 4

Acc = tuple[int, int]  # (offset, mask); offset -1: unknown
UNDEF: Acc = (-1, M32)


J_NO = (NONE, 0)


@dataclass
class _Ins:
    op: int
    jt: tuple = J_NO
    jf: tuple = J_NO
    k: tuple = J_NO

    def key(self) -> tuple:
        return (self.op, self.jt, self.jf, self.k)


@dataclass(eq=False)
class _Blk:
    ins: list[_Ins] = field(default_factory=list)
    acc_start: Acc = UNDEF
    acc_end: Acc = UNDEF
    flag_hash: bool = False
    hash: int = 0
    prev: _Blk | None = None
    next: _Blk | None = None
    lvl_prv: _Blk | None = None
    lvl_nxt: _Blk | None = None


class _Bucket:
    __slots__ = ("blk", "found")

    def __init__(self, blk: _Blk, found: bool):
        self.blk = blk
        self.found = found


class _State:
    def __init__(self, default: int, bad_arch: int):
        self.default = default
        self.bad_arch = bad_arch
        self.table: dict[int, _Bucket] = {}
        self.by_content: dict[tuple, int] = {}
        self.def_hsh = 0
        self.bad_hsh = 0
        self.arch_names: set[str] = set()

    # -- the block hash table (content identity stands for jhash + memcmp) --

    def hsh_add(self, blk: _Blk, found: bool) -> _Blk:
        # libseccomp 2.5.4 hashes and compares a block's accumulator states along with its
        # instructions: the same instructions expecting another word in the accumulator
        # (e.g. a 32-bit ABI's ``jeq`` on args[2] and a 64-bit ABI's on args[0].hi) stay
        # two blocks (read from the library's _hsh_add: jhash of blks, acc_start, acc_end)
        if blk.flag_hash:
            return blk
        content = (tuple(i.key() for i in blk.ins), blk.acc_start, blk.acc_end)
        h = self.by_content.get(content)
        blk.flag_hash = True
        if h is not None:
            blk.hash = h
            if found:
                return blk  # a duplicate that stays in use (libseccomp's flag_dup)
            return self.table[h].blk
        h = len(self.by_content) + 1
        self.by_content[content] = h
        blk.hash = h
        self.table[h] = _Bucket(blk, found)
        return blk

    def find_once(self, h: int) -> _Blk | None:
        b = self.table.get(h)
        if b is None or b.found:
            return None
        b.found = True
        return b.blk

    # -- code generation --

    def action(self, value: int) -> _Blk:
        return _Blk([_Ins(c.RET | c.K, k=(K, value & 0xFFFFFFFF))])

    def action_hsh(self, value: int) -> _Blk:
        return self.hsh_add(self.action(value), False)

    def node(self, n: Node, acc: list) -> _Blk:
        blk = _Blk(acc_start=tuple(acc))
        act_t = self.action_hsh(n.act_t).hash if n.act_t_flg else 0
        act_f = self.action_hsh(n.act_f).hash if n.act_f_flg else 0
        off = 16 + 8 * n.arg + (4 if n.hi else 0)
        mask = n.mask
        if off != acc[0] or (mask & acc[1]) != mask:
            acc[0], acc[1] = off, M32
            blk.ins.append(_Ins(c.LD | c.W | c.ABS, k=(K, off)))
            blk.acc_start = UNDEF
        if mask != acc[1]:
            acc[1] = mask
            blk.ins.append(_Ins(c.ALU | c.AND | c.K, k=(K, mask)))
        op = {EQ: c.JEQ, MASKED_EQ: c.JEQ, GT: c.JGT, GE: c.JGE}[n.op]
        if n.nxt_t is not None:
            jt = (DB, n.nxt_t)
        elif n.act_t_flg:
            jt = (HSH, act_t)
        else:
            jt = (NXT, 0)
        if n.nxt_f is not None:
            jf = (DB, n.nxt_f)
        elif n.act_f_flg:
            jf = (HSH, act_f)
        else:
            jf = (NXT, 0)
        blk.ins.append(_Ins(c.JMP | op | c.K, jt, jf, (K, n.datum)))
        blk.acc_end = tuple(acc)
        return blk

    def lvl_res(self, sys: SyscallEntry, blk: _Blk, nxt_jump: tuple) -> _Blk:
        if blk.flag_hash:
            return blk
        for ins in blk.ins:
            for attr in ("jt", "jf"):
                kind, val = getattr(ins, attr)
                if kind == BLK:
                    b = self.lvl_res(sys, val, nxt_jump)
                    setattr(ins, attr, (HSH, b.hash))
                elif kind == DB:
                    b = self.chain(sys, val, nxt_jump, blk.acc_end)
                    setattr(ins, attr, (HSH, b.hash))
        return self.hsh_add(blk, False)

    def chain(self, sys: SyscallEntry, chain: Node | None, nxt_jump: tuple, a_state: Acc) -> _Blk:
        acc = list(a_state)
        if chain is None:
            head = tail = self.action(sys.action)
        else:
            it: Node | None = chain
            while it.lvl_prv is not None:
                it = it.lvl_prv
            head = tail = None
            while it is not None:
                b = self.node(it, acc)
                if head is None:
                    head = tail = b
                else:
                    b.lvl_prv = tail
                    tail.lvl_nxt = b
                    tail = b
                it = it.lvl_nxt
            b = head
            while b is not None:
                nxt = b.lvl_nxt
                for ins in b.ins:
                    for attr in ("jt", "jf"):
                        kind, val = getattr(ins, attr)
                        if kind == NXT:
                            if val != 0:
                                raise ProfileError("libseccomp generator: bad level jump")
                            setattr(ins, attr, nxt_jump if nxt is None else (BLK, nxt))
                b = nxt
        b = tail
        while b is not None:
            prv, nxt = b.lvl_prv, b.lvl_nxt
            b = self.lvl_res(sys, b, nxt_jump if nxt is None else (BLK, nxt))
            if prv is not None:
                prv.lvl_nxt = b
            b.lvl_prv = prv
            b.lvl_nxt = nxt
            if nxt is not None:
                nxt.lvl_prv = b
            if b.lvl_prv is None:
                head = b
            b = prv
        assert head is not None
        return head

    def syscall(self, sys: SyscallEntry, nxt_hash: int, acc_reset: bool) -> _Blk:
        blk = _Blk()
        if acc_reset:
            blk.ins.append(_Ins(c.LD | c.W | c.ABS, k=(K, OFF_NR)))
            a_state: Acc = (OFF_NR, M32)
            blk.acc_start = UNDEF
            blk.acc_end = (OFF_NR, M32)
        else:
            a_state = UNDEF
            blk.acc_start = (OFF_NR, M32)
            blk.acc_end = (OFF_NR, M32)
        bc = self.chain(sys, sys.chains, (HSH, self.def_hsh), a_state)
        blk.ins.append(_Ins(c.JMP | c.JEQ | c.K, (HSH, bc.hash), (HSH, nxt_hash), (K, sys.num)))
        return self.hsh_add(blk, True)

    def arch(self, ordered: list[SyscallEntry], names: set[str], token: int) -> list[_Blk]:
        """The blocks of one architecture (or x86_64+x32): ABI check, syscall checks."""
        single_x86 = names in ({"x86_64"}, {"x32"})
        acc_reset = not single_x86
        head = ordered[0] if ordered else None
        blocks: list[_Blk] = []  # in program order
        for s in reversed(ordered):
            if not s.valid or s.num >= PSEUDO_MIN:
                continue
            nxt = self.def_hsh if not blocks else blocks[0].hash
            blocks.insert(0, self.syscall(s, nxt, acc_reset if s is head else False))
        first = blocks[0].hash if blocks else self.def_hsh
        if single_x86:
            abi = _Blk()
            abi.ins.append(_Ins(c.LD | c.W | c.ABS, k=(K, OFF_NR)))
            abi.acc_end = (OFF_NR, M32)
            if names == {"x86_64"}:
                abi.ins.append(_Ins(c.JMP | c.JGE | c.K, J_NO, (HSH, first), (K, X32_SYSCALL_BIT)))
                abi.ins.append(
                    _Ins(c.JMP | c.JEQ | c.K, (HSH, first), (HSH, self.bad_hsh), (K, M32))
                )
            else:
                abi.ins.append(
                    _Ins(
                        c.JMP | c.JGE | c.K, (HSH, first), (HSH, self.bad_hsh), (K, X32_SYSCALL_BIT)
                    )
                )
            abi = self.hsh_add(abi, True)
            blocks.insert(0, abi)
            first = abi.hash
        check = _Blk([_Ins(c.JMP | c.JEQ | c.K, (HSH, first), (NXT, len(blocks)), (K, token))])
        check = self.hsh_add(check, True)
        blocks.insert(0, check)
        return blocks


def _link(blocks: Sequence[_Blk]) -> None:
    for a, b in zip(blocks, blocks[1:], strict=False):
        a.next = b
        b.prev = a
    if blocks:
        blocks[0].prev = None
        blocks[-1].next = None


def _insert_after(blk: _Blk, new: _Blk) -> None:
    new.prev = blk
    new.next = blk.next
    if blk.next is not None:
        blk.next.prev = new
    blk.next = new


def _dist_to(
    blk: _Blk, offset: int, target: _Blk | None, tgt_hash: int | None, limit: int
) -> tuple[int, _Blk | None]:
    n = len(blk.ins) - (offset + 1)
    b = blk.next
    while (
        b is not None
        and (b is not target if target is not None else b.hash != tgt_hash)
        and n < limit
    ):
        n += len(b.ins)
        b = b.next
    return n, b


def generate(
    groups: Sequence[tuple[int, set[str], list[SyscallEntry]]], default: int, bad_arch: int
) -> list[SockFilter]:
    """libseccomp's program for architecture groups ``(token, arch names, priority-ordered entries)``."""
    st = _State(default, bad_arch)
    badarch = st.hsh_add(st.action(bad_arch), True)
    st.bad_hsh = badarch.hash
    st.def_hsh = st.hsh_add(st.action(default), False).hash
    head = st.hsh_add(
        _Blk([_Ins(c.LD | c.W | c.ABS, k=(K, OFF_ARCH))], acc_end=(OFF_ARCH, M32)), True
    )
    order: list[_Blk] = [head]
    for token, names, ordered in groups:
        order.extend(st.arch(ordered, names, token))
    order.append(badarch)
    _link(order)
    tail = badarch
    # top-level "next" jumps
    b: _Blk | None = head
    while b is not None and b.next is not None:
        for ins in b.ins:
            for attr in ("jt", "jf"):
                kind, val = getattr(ins, attr)
                if kind == NXT:
                    t = b.next
                    for _ in range(val):
                        t = t.next if t is not None else None
                    if t is None:
                        raise ProfileError("libseccomp generator: bad next jump")
                    setattr(ins, attr, (HSH, t.hash))
        b = b.next
    # pull in every referenced block after its first referrer (from the end backwards)
    it: _Blk | None = tail
    while it is not None:
        got: _Blk | None = None
        for ins in reversed(it.ins):
            for attr in ("jt", "jf", "k"):
                kind, val = getattr(ins, attr)
                if kind == HSH:
                    got = st.find_once(val)
                    if got is not None:
                        break
            if got is not None:
                break
        if got is not None:
            if got.acc_start[0] != -1 and it.acc_end != got.acc_start:
                if got.acc_start[1] != M32:
                    got.ins.insert(0, _Ins(c.ALU | c.AND | c.K, k=(K, got.acc_start[1])))
                got.ins.insert(0, _Ins(c.LD | c.W | c.ABS, k=(K, got.acc_start[0])))
                got.acc_start = UNDEF
            _insert_after(it, got)
            while tail.next is not None:
                tail = tail.next
            it = tail
        else:
            it = it.prev
    # long jumps: a nearer copy of a ret, or a ja
    it = tail
    while it is not None:
        added = 0
        for idx in range(len(it.ins) - 1, -1, -1):
            ins = it.ins[idx]
            for attr in ("jt", "jf"):
                kind, val = getattr(ins, attr)
                if kind == HSH:
                    added += _long_jump(st, tail, it, idx, val)
        if added == 0:
            it = it.prev
    # final resolution
    prog: list[SockFilter] = []
    b = head
    while b is not None:
        for idx, ins in enumerate(b.ins):
            jt = _resolve(b, idx, ins.jt)
            jf = _resolve(b, idx, ins.jf)
            k = ins.k[1] if ins.k[0] == K else 0
            if ins.k[0] == HSH:
                t = tail
                while t.hash != ins.k[1]:
                    t = t.prev
                t = t.prev
                n = len(b.ins) - (idx + 1)
                while t is not b:
                    n += len(t.ins)
                    t = t.prev
                k = n
            prog.append(SockFilter(ins.op, jt, jf, k & 0xFFFFFFFF))
        b = b.next
    return prog


def _resolve(b: _Blk, idx: int, j: tuple) -> int:
    kind, val = j
    if kind == NONE:
        return 0
    if kind == IMM:
        return val
    if kind != HSH:
        raise ProfileError("libseccomp generator: unresolved jump")
    n = len(b.ins) - (idx + 1)
    t = b.next
    while t is not None and t.hash != val:
        n += len(t.ins)
        t = t.next
    if t is None or n > JMP_MAX:
        raise ProfileError("libseccomp generator: jump out of range")
    return n


def _long_jump(st: _State, tail: _Blk, blk: _Blk, offset: int, tgt_hash: int) -> int:
    t = tail
    while t is not blk and t.hash != tgt_hash:
        t = t.prev
    if t is blk:
        raise ProfileError("libseccomp generator: backward jump")
    if len(t.ins) == 1 and t.ins[0].op == c.RET | c.K:
        n, b = _dist_to(blk, offset, t, None, JMP_MAX)
        if b is None:
            raise ProfileError("libseccomp generator: lost jump target")
        if not (n <= JMP_MAX and b is t):
            n, b = _dist_to(blk, offset, None, tgt_hash, JMP_MAX)
            if b is None:
                raise ProfileError("libseccomp generator: lost jump target")
            if not (n <= JMP_MAX and b.hash == tgt_hash):
                new = st.action(t.ins[0].k[1])
                new.hash = tgt_hash
                _insert_after(blk, new)
                return 1
    n, b = _dist_to(blk, offset, t, None, JMP_MAX)
    if b is None:
        raise ProfileError("libseccomp generator: lost jump target")
    if n <= JMP_MAX and b is t:
        return 0
    n, b = _dist_to(blk, offset, None, tgt_hash, JMP_MAX)
    if b is None:
        raise ProfileError("libseccomp generator: lost jump target")
    if n <= JMP_MAX and b.hash == tgt_hash:
        return 0
    new = _Blk([_Ins(c.JMP | c.JA, k=(HSH, tgt_hash))])
    new.hash = tgt_hash
    new.flag_hash = True
    _insert_after(blk, new)
    return 1
