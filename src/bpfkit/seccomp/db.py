"""libseccomp's rule database, rebuilt so a compiled profile decides as libseccomp's does.

libseccomp does not evaluate a profile's rules in order. Per architecture, per syscall
it merges every rule's argument conditions into one decision tree ("chains") — 32-bit
comparison nodes on the argument words, sorted within a level by argument (higher index
first, high word before low word), then by operator and value — and the filter walks
that tree. Where rules for one syscall disagree, the merge decides: a rule without
arguments replaces every conditional rule added before it and makes later conditional
rules no-ops; two rules that end in the same node with different actions are refused
(``EEXIST``), as libseccomp refuses them; a shorter rule absorbs longer ones with the same
action. Reproducing the merge is the only way to make the same decision for every input,
so this module keeps libseccomp's data structure: nodes shared by reference, counted
references, levels as doubly linked lists, the same insertion order and pruning.

Semantics were read from libseccomp's ``src/db.c`` (``_db_rule_gen_arg_64``,
``_db_tree_prune``, ``_db_tree_add``, ``db_rule_add``) and checked decision for decision
against libseccomp 2.5.4 (``tests/test_seccomp_oracle.py``).

A tree is *evaluated* (see :func:`evaluate`) as ``gen_bpf.c`` compiles it: nodes of a
level are tried in order; a node whose branch has neither a next level nor an action
falls through to the next node of the level, and the end of a level falls through to
where the level's parent would have continued; the end of the top level is the filter's
default action.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import ProfileError

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
#: struct seccomp_data: the syscall number and the AUDIT_ARCH value
OFF_NR, OFF_ARCH = 0, 4
#: libseccomp's pseudo syscall numbers are negative (as u32: from here up)
PSEUDO_MIN = 0x80000000

# Comparison operators (the values of libseccomp's enum scmp_compare).
NE, LT, LE, EQ, GE, GT, MASKED_EQ = 1, 2, 3, 4, 5, 6, 7
OP_NAMES = {NE: "ne", LT: "lt", LE: "le", EQ: "eq", GE: "ge", GT: "gt", MASKED_EQ: "masked_eq"}
OPS_BY_NAME = {v: k for k, v in OP_NAMES.items()}


@dataclass(frozen=True)
class Cond:
    """One argument condition: ``(args[index] & mask) <op> datum`` on 64-bit values.

    For every operator but ``MASKED_EQ`` the mask is all ones.
    """

    index: int
    op: int
    datum: int
    mask: int = M64


class Node:
    """A tree node: one 32-bit comparison of an argument word (libseccomp's chain node)."""

    __slots__ = (
        "arg",
        "hi",
        "op",
        "op_orig",
        "mask",
        "datum",
        "datum_full",
        "nxt_t",
        "nxt_f",
        "act_t",
        "act_t_flg",
        "act_f",
        "act_f_flg",
        "lvl_prv",
        "lvl_nxt",
        "refcnt",
    )

    def __init__(self, arg: int, hi: bool, op: int, op_orig: int, mask: int, datum: int, full: int):
        self.arg = arg
        self.hi = hi
        self.op = op
        self.op_orig = op_orig
        self.mask = mask & M32
        self.datum = datum & self.mask
        self.datum_full = full
        self.nxt_t: Node | None = None
        self.nxt_f: Node | None = None
        self.act_t = 0
        self.act_t_flg = False
        self.act_f = 0
        self.act_f_flg = False
        self.lvl_prv: Node | None = None
        self.lvl_nxt: Node | None = None
        self.refcnt = 0

    def __repr__(self) -> str:
        word = "hi" if self.hi else "lo"
        return (
            f"<a{self.arg}.{word} {OP_NAMES.get(self.op, self.op)} {self.datum:#x}&{self.mask:#x}>"
        )


# --- a step budget: some rule sets make libseccomp's merge loop forever -------------------

STEP_BUDGET = 2_000_000


_LOOPS = (
    "these rules make libseccomp's rule merge loop forever "
    "(libseccomp 2.5.4 never returns from seccomp_rule_add on them)"
)


class _Budget:
    """Counts node visits of one ``ArchDB.add``; libseccomp 2.5.4 never finishes on some
    rule sets (a level that links back to itself), and neither would a faithful copy.

    The level walks detect such a cycle exactly (:func:`_cycle`); the budget is a
    backstop for any other endless loop."""

    left = STEP_BUDGET

    @classmethod
    def tick(cls) -> None:
        cls.left -= 1
        if cls.left < 0:
            raise ProfileError(_LOOPS)


_LONG_WALK = 4096


def _cycle(n: Node | None, attr: str) -> None:
    """Raise when following ``attr`` (``lvl_prv``/``lvl_nxt``) from ``n`` never ends.

    A walk along a level that only reads (to its first node, or through it) and meets a
    node twice is an endless loop in libseccomp: the same links give the same steps.
    """
    seen: set[int] = set()
    while n is not None:
        if id(n) in seen:
            raise ProfileError(_LOOPS)
        seen.add(id(n))
        n = getattr(n, attr)


# --- memoised pruning -------------------------------------------------------------------
#
# libseccomp's prune walks a level once per node of the new rule's chain and starts the
# walk over for every existing node the new one sorts after, so on deep rule sets it
# repeats the same call (same level, same new sub-chain, same state) a great many times
# (libseccomp itself needs seconds on some). A call that changed nothing in the tree
# only changed the caller's flags; while nothing changes, the same call gives the same
# flags. ``_EPOCH`` counts structural changes (a link rewritten, a node freed) and a
# remembered result is reused only within the same epoch — the result stays exact.

_EPOCH = [0]
_MEMO: dict[tuple, tuple[int, int]] = {}


def _mutated() -> None:
    _EPOCH[0] += 1


# --- node ordering and identity -------------------------------------------------------


def _arg_prio(n: Node) -> int:
    return (n.arg << 1) + (1 if n.hi else 0)


def _op_prio(op: int) -> int:
    if op in (MASKED_EQ, EQ, NE):
        return 3
    if op in (LE, LT):
        return 2
    if op in (GE, GT):
        return 1
    return 0


def _lt(a: Node, b: Node) -> bool:
    """libseccomp's level order: True when ``a`` sorts after ``b`` on a level."""
    pa, pb = _arg_prio(a), _arg_prio(b)
    if pa != pb:
        return pa < pb
    oa, ob = _op_prio(a.op_orig), _op_prio(b.op_orig)
    if oa != ob:
        return oa < ob
    if a.op_orig in (LE, LT):
        return a.datum > b.datum
    return a.datum < b.datum


def _eq(a: Node, b: Node) -> bool:
    return _arg_prio(a) == _arg_prio(b) and a.op == b.op and a.datum == b.datum and a.mask == b.mask


def _leaf(n: Node) -> bool:
    return n.nxt_t is None and n.nxt_f is None


def _zombie(n: Node) -> bool:
    return _leaf(n) and not n.act_t_flg and not n.act_f_flg


def _first(n: Node) -> Node:
    steps = 0
    while n.lvl_prv is not None:
        _Budget.tick()
        n = n.lvl_prv
        steps += 1
        if steps == _LONG_WALK:
            _cycle(n, "lvl_prv")
    return n


def level(n: Node | None) -> Iterator[Node]:
    """The nodes of ``n``'s level, first to last (for walks that only read)."""
    if n is None:
        return
    it: Node | None = _first(n)
    steps = 0
    while it is not None:
        _Budget.tick()
        yield it
        it = it.lvl_nxt
        steps += 1
        if steps == _LONG_WALK:
            _cycle(it, "lvl_nxt")


# --- reference counting (what decides whether a pruned node is gone) ------------------


def _get(n: Node | None) -> Node | None:
    if n is not None:
        n.refcnt += 1
    return n


def _put(n: Node | None) -> tuple[int, Node | None]:
    """Drop one reference; free ``n`` (and what only it held) at zero.

    Returns the number of nodes freed and what a pointer to ``n`` points to afterwards:
    ``n`` while it lives, else a neighbour on its level (or None).
    """
    if n is None:
        return 0, None
    n.refcnt -= 1
    if n.refcnt != 0:
        return 0, n
    _mutated()
    cnt = 0
    lp, ln, nt, nf = n.lvl_prv, n.lvl_nxt, n.nxt_t, n.nxt_f
    if lp is not None:
        lp.lvl_nxt = None
    if ln is not None:
        ln.lvl_prv = None
    if lp is not None:
        c, lp = _put(lp)
        cnt += c
    if ln is not None:
        c, ln = _put(ln)
        cnt += c
    if lp is not None:
        lp.lvl_nxt = _get(ln)
    if ln is not None:
        ln.lvl_prv = _get(lp)
    repl = lp if lp is not None else ln
    cnt += _tree_put(nt)[0]
    cnt += _tree_put(nf)[0]
    n.lvl_prv = n.lvl_nxt = n.nxt_t = n.nxt_f = None
    return cnt + 1, repl


def _level_clean(n: Node) -> int:
    """Free ``n``'s whole level when nothing outside the level refers to it."""
    start = _first(n)
    it: Node | None = start
    while it is not None:
        links = (1 if it.lvl_prv is not None else 0) + (1 if it.lvl_nxt is not None else 0)
        if it.refcnt > links:
            return 0
        it = it.lvl_nxt
    cnt = 0
    cur: Node | None = start
    while cur is not None:
        c, cur = _put(cur)
        cnt += c
    return cnt


def _tree_put(t: Node | None) -> tuple[int, Node | None]:
    cnt, t = _put(t)
    if t is not None:
        cnt += _level_clean(t)
    return cnt, t


class _Ref:
    """A pointer to a tree pointer (``struct db_arg_chain_tree **``)."""

    __slots__ = ("get", "_set")

    def __init__(self, get, set_):
        self.get = get
        self._set = set_

    def set(self, v: Node | None) -> None:
        _mutated()
        self._set(v)


def _attr_ref(obj: object, name: str) -> _Ref:
    return _Ref(lambda: getattr(obj, name), lambda v: setattr(obj, name, v))


def _tree_remove(ref: _Ref, node: Node) -> int:
    """Remove ``node`` (found by identity) and its sub-trees from the tree behind ``ref``."""
    tree = ref.get()
    if tree is None or node is None:
        return 0
    cnt = 0
    it: Node | None = _first(tree)
    while True:
        _Budget.tick()
        assert it is not None
        if it is node:
            break
        cnt += _tree_remove(_attr_ref(it, "nxt_t"), node)
        cnt += _tree_remove(_attr_ref(it, "nxt_f"), node)
        if _zombie(it):
            break
        it = it.lvl_nxt
        if it is None or cnt != 0:
            return cnt
    # remove ``it`` from its level
    _mutated()
    if it is ref.get():
        ref.set(it.lvl_prv if it.lvl_prv is not None else it.lvl_nxt)
    if it.lvl_prv is not None:
        it.lvl_prv.lvl_nxt = it.lvl_nxt
    if it.lvl_nxt is not None:
        it.lvl_nxt.lvl_prv = it.lvl_prv
    it.lvl_prv = None
    it.lvl_nxt = None
    c, _ = _put(it)
    return cnt + c


def _act_check(tree: Node | None, action: int) -> bool:
    """True when every action in ``tree`` is ``action`` (libseccomp's -EEXIST otherwise)."""
    for it in level(tree):
        if it.act_t_flg and it.act_t != action:
            return False
        if it.act_f_flg and it.act_f != action:
            return False
        if not _act_check(it.nxt_t, action) or not _act_check(it.nxt_f, action):
            return False
    return True


# --- pruning: a new rule that covers (part of) the existing tree -----------------------

_MATCH = 0x001
_MATCH_ONCE = 0x002
_X_FINISHED = 0x010
_N_FINISHED = 0x020
_X_PREFIX = 0x100
_N_PREFIX = 0x200
_MATCHSET = _MATCH | _MATCH_ONCE
_REDUNDANT = _MATCH | _X_FINISHED | _N_PREFIX


class _State:
    __slots__ = ("flags", "action", "sx")

    def __init__(self, flags: int = 0, action: int = 0, sx: SyscallEntry | None = None):
        self.flags = flags
        self.action = action
        self.sx = sx

    def copy(self) -> _State:
        return _State(self.flags, self.action, self.sx)


def _prune_into(x_ref: _Ref, n_node: Node, st: _State, holder: Node) -> tuple[int, Node | None]:
    """Prune below ``holder`` through ``x_ref`` (a pointer in ``holder``) while holding a ref.

    Returns (nodes freed, what the caller's pointer to ``holder`` points to afterwards).
    """
    _get(holder)
    cnt = _prune(x_ref, n_node, st)
    c, after = _put(holder)
    return cnt + c, after


def _prune(existing: _Ref, new: Node | None, state: _State) -> int:
    """libseccomp's ``_db_tree_prune``: drop what the new chain makes redundant.

    Memoised (see ``_EPOCH``): a call on the same level, sub-chain and state within
    one epoch returns what the first call did, without walking again.
    """
    x = existing.get()
    if new is None or x is None:
        return _prune_walk(existing, new, state)
    key = (_first(x), new, state.flags, state.action, id(state.sx))
    hit = _MEMO.get(key)
    if hit is not None and hit[0] == _EPOCH[0]:
        state.flags = hit[1]
        return 0
    epoch = _EPOCH[0]
    cnt = _prune_walk(existing, new, state)
    if _EPOCH[0] == epoch and cnt == 0:
        _MEMO[key] = (epoch, state.flags)
    return cnt


def _prune_walk(existing: _Ref, new: Node | None, state: _State) -> int:
    cnt = 0
    st_new = state.copy()
    x = existing.get()
    n = new
    if n is None or x is None:
        return _prune_return(state, st_new, cnt)
    if (state.flags & _MATCHSET) == _MATCH_ONCE:
        return _prune_return(state, st_new, cnt)
    x = _first(x)
    while x is not None:
        _Budget.tick()
        x_next = x.lvl_nxt
        if _eq(x, n):
            st_new.flags |= _MATCHSET
            if _leaf(n):
                st_new.flags |= _N_FINISHED
            if _leaf(x):
                st_new.flags |= _X_FINISHED
            if (x.act_t_flg or x.nxt_t is not None) and not (n.act_t_flg or n.nxt_t is not None):
                return _prune_return(state, st_new, cnt)
            if (x.act_f_flg or x.nxt_f is not None) and not (n.act_f_flg or n.nxt_f is not None):
                return _prune_return(state, st_new, cnt)
            if (st_new.flags & _N_FINISHED) and (st_new.flags & _X_FINISHED):
                if n.act_t_flg != x.act_t_flg or n.act_t != x.act_t:
                    return _prune_return(state, st_new, cnt)
                if n.act_f_flg != x.act_f_flg or n.act_f != x.act_f:
                    return _prune_return(state, st_new, cnt)
            gone = False
            for branch in ("nxt_t", "nxt_f"):
                sub = getattr(n, branch)
                if sub is None:
                    continue
                st_nxt = state.copy()
                st_nxt.flags |= _MATCHSET
                c, x = _prune_into(_attr_ref(x, branch), sub, st_nxt, x)
                cnt += c
                if st_nxt.flags & _MATCH:
                    st_new.flags |= st_nxt.flags
                if x is None:
                    gone = True
                    break
            if gone:
                x = x_next
                continue
            if (
                _act_check(x, st_new.action)
                and (st_new.flags & _MATCH)
                and (st_new.flags & _N_FINISHED)
                and (st_new.flags & _X_PREFIX)
            ):
                # the new tree is "shorter": drop the existing node
                assert state.sx is not None
                cnt += _tree_remove(_attr_ref(state.sx, "chains"), x)
                if state.sx.chains is None:
                    return _prune_return(state, st_new, cnt)
            elif (
                _act_check(x, st_new.action)
                and (st_new.flags & _MATCH)
                and (st_new.flags & _X_FINISHED)
                and (st_new.flags & _N_PREFIX)
            ):
                # the new tree is "longer"
                return _prune_return(state, st_new, cnt)
        elif _lt(x, n):
            if state.flags & _N_PREFIX:
                return _prune_return(state, st_new, cnt)
            for branch in ("nxt_t", "nxt_f"):
                if getattr(x, branch) is None:
                    continue
                st_nxt = _sub_state(state, _X_PREFIX)
                c, x = _prune_into(_attr_ref(x, branch), n, st_nxt, x)
                cnt += c
                if st_nxt.flags & _MATCH:
                    st_new.flags |= st_nxt.flags
                    return _prune_return(state, st_new, cnt)
                if x is None:  # x was removed: on to the next node
                    break
        else:
            if state.flags & _X_PREFIX:
                return _prune_return(state, st_new, cnt)
            for branch in ("nxt_t", "nxt_f"):
                sub = getattr(n, branch)
                if sub is None:
                    continue
                st_nxt = _sub_state(state, _N_PREFIX)
                # C passes &x_iter (a local): the recursion starts over at x's level
                local = [x]
                ref = _Ref(
                    lambda local=local: local[0], lambda v, local=local: local.__setitem__(0, v)
                )
                _get(x)
                c = _prune(ref, sub, st_nxt)
                c2, x = _put(local[0])
                cnt += c + c2
                if st_nxt.flags & _MATCH:
                    st_new.flags |= st_nxt.flags
                    return _prune_return(state, st_new, cnt)
                if x is None:  # x was removed: on to the next node
                    break
        x = x_next
    st_new.flags &= ~_MATCH
    return _prune_return(state, st_new, cnt)


def _sub_state(state: _State, prefix: int) -> _State:
    """The state a recursion into a branch starts with: no match yet, and which tree is
    the prefix (``_X_PREFIX`` or ``_N_PREFIX``)."""
    st = state.copy()
    st.flags &= ~_MATCH
    st.flags |= prefix
    return st


def _prune_return(state: _State, st_new: _State, cnt: int) -> int:
    if st_new.flags & _MATCH:
        state.flags |= st_new.flags
    else:
        state.flags &= ~_MATCH
    return cnt


# --- adding a new rule's chain into the existing tree ----------------------------------


class _Exists(Exception):
    """libseccomp's -EEXIST: the rule conflicts with an existing one."""


def _tree_add(existing: _Ref, new: Node, sx: SyscallEntry) -> None:
    x = existing.get()
    n = new
    while x is not None:
        _Budget.tick()
        if _eq(x, n):
            for flg, act, nxt, is_t in (
                ("act_t_flg", "act_t", "nxt_t", True),
                ("act_f_flg", "act_f", "nxt_f", False),
            ):
                if not getattr(n, flg):
                    continue
                if not getattr(x, flg):
                    if not _act_check(getattr(x, nxt), getattr(n, act)):
                        raise _Exists
                    c, _ = _put(getattr(x, nxt))
                    sx.node_cnt -= c
                    setattr(x, nxt, None)
                    setattr(x, act, getattr(n, act))
                    setattr(x, flg, True)
                elif getattr(n, act) != getattr(x, act):
                    # a 64-bit comparison's high word: the action follows the full value
                    if is_t:
                        if n.hi and n.datum_full > x.datum_full:
                            x.act_t = n.act_t
                    elif n.hi and n.datum_full < x.datum_full:
                        x.act_t = n.act_t
                    if _leaf(x) or _leaf(n):
                        raise _Exists
            for flg, nxt in (("act_t_flg", "nxt_t"), ("act_f_flg", "nxt_f")):
                sub = getattr(n, nxt)
                if sub is None:
                    continue
                if getattr(x, nxt) is not None:
                    _tree_add(_attr_ref(x, nxt), sub, sx)
                elif not getattr(x, flg):
                    setattr(x, nxt, _get(sub))
                else:
                    return  # the existing tree is "shorter"
            return
        if not _lt(x, n):
            if x.lvl_nxt is None:
                n.lvl_prv = _get(x)
                x.lvl_nxt = _get(n)
                return
            x = x.lvl_nxt
        else:
            if x.lvl_prv is not None:
                x.lvl_prv.lvl_nxt = _get(n)
                n.lvl_prv = x.lvl_prv
                x.lvl_prv = _get(n)
                n.lvl_nxt = x
            else:
                x.lvl_prv = _get(n)
                n.lvl_nxt = _get(x)
            if existing.get() is x:
                existing.set(_get(n))
                _put(x)
            return


# --- rules -> chains -------------------------------------------------------------------


@dataclass
class SyscallEntry:
    """The rules for one syscall number on one architecture (libseccomp's ``db_sys_list``).

    ``chains`` is the decision tree; without chains the syscall's ``action`` applies.
    """

    num: int
    action: int = 0
    chains: Node | None = None
    node_cnt: int = 0
    priority: int = 0
    valid: bool = True


def _need_hi(c: Cond) -> bool:
    return not (c.op == MASKED_EQ and (c.mask >> 32) == 0)


def _need_lo(c: Cond) -> bool:
    return not (c.op == MASKED_EQ and (c.mask & M32) == 0)


def _gen_64(s: SyscallEntry, c: Cond, prev: list[Node], tf: list[bool]) -> list[Node]:
    """Nodes for one 64-bit comparison: (high, [equal-high,] low) words, linked to ``prev``."""
    if not _need_hi(c) and not _need_lo(c):
        return prev
    arg, mask, datum = c.index, c.mask, c.datum
    hm, lm = mask >> 32, mask & M32
    hd, ld = datum >> 32, datum & M32
    if c.op in (GT, GE, LE, LT):
        n0 = Node(arg, True, GT, c.op, hm, hd, datum)
        n1 = Node(arg, True, EQ, c.op, hm, hd, datum)
        lo_op = GT if c.op in (GT, LE) else GE
        n2 = Node(arg, False, lo_op, c.op, lm, ld, datum)
        nodes = [n0, n1, n2]
    else:
        op = MASKED_EQ if c.op == MASKED_EQ else EQ
        n0 = Node(arg, True, op, c.op, hm, hd, datum)
        n1 = Node(arg, False, op, c.op, lm, ld, datum)
        nodes = [n0, n1]
    for p in prev:
        if tf[0]:
            p.nxt_t = _get(n0)
        else:
            p.nxt_f = _get(n0)
    if c.op in (GT, GE, LE, LT):
        n0.nxt_f = _get(n1)
        n1.nxt_t = _get(n2)
    else:
        n0.nxt_t = _get(n1)
    if s.chains is None:
        s.chains = _get(n0)
    if c.op in (GT, GE):
        tf[0] = True
        out = [nodes[0], nodes[2]]
    elif c.op in (EQ, MASKED_EQ):
        tf[0] = True
        out = [nodes[1]]
    elif c.op in (LE, LT):
        tf[0] = False
        out = [nodes[1], nodes[2]]
    else:  # NE
        tf[0] = False
        out = [nodes[0], nodes[1]]
    s.node_cnt += len(nodes)
    return out


def _gen_32(s: SyscallEntry, c: Cond, prev: list[Node], tf: list[bool]) -> list[Node]:
    """One node for a comparison on a 32-bit ABI (only the low words count)."""
    if not _need_lo(c):
        return prev
    op = c.op
    tree_op, true_branch = op, True
    if op == NE:
        tree_op, true_branch = EQ, False
    elif op == LT:
        tree_op, true_branch = GE, False
    elif op == LE:
        tree_op, true_branch = GT, False
    n = Node(c.index, False, tree_op, op, c.mask & M32, c.datum & M32, c.datum)
    for p in prev:
        if tf[0]:
            p.nxt_t = _get(n)
        else:
            p.nxt_f = _get(n)
    if s.chains is None:
        s.chains = _get(n)
    s.node_cnt += 1
    tf[0] = true_branch
    return [n]


def _rule_entry(num: int, action: int, conds: Sequence[Cond], arg_bits: int) -> SyscallEntry:
    s = SyscallEntry(num)
    by_index: dict[int, Cond] = {}
    for c in conds:
        if not 0 <= c.index <= 5 or c.index in by_index:
            raise ProfileError(f"argument index {c.index} repeated or out of range 0..5")
        by_index[c.index] = c
    prev: list[Node] = []
    tf = [False]
    for i in range(6):
        c = by_index.get(i)
        if c is None:
            continue
        if arg_bits == 32:
            prev = _gen_32(s, c, prev, tf)
        else:
            prev = _gen_64(s, c, prev, tf)
    if s.chains is not None:
        for p in prev:
            if tf[0]:
                p.act_t_flg, p.act_t = True, action
            else:
                p.act_f_flg, p.act_f = True, action
    else:
        s.action = action
    return s


_PRI_CHAIN = 0xFFFF


@dataclass
class ArchDB:
    """All syscall entries for one architecture, sorted by number (libseccomp's ``db_filter``)."""

    arch_name: str
    arg_bits: int
    syscalls: dict[int, SyscallEntry] = field(default_factory=dict)

    def add(self, num: int, action: int, conds: Sequence[Cond]) -> None:
        """Add one rule (libseccomp's ``db_rule_add``); ``ProfileError`` on a conflict."""
        _Budget.left = STEP_BUDGET
        _MEMO.clear()
        new = _rule_entry(num, action, conds, self.arg_bits)
        new.priority = _PRI_CHAIN - new.node_cnt
        cur = self.syscalls.get(num)
        if cur is None:
            self.syscalls[num] = new
            return
        removed = False
        while True:
            if cur.chains is None:
                if removed or not cur.valid:
                    cur.chains = new.chains
                    cur.action = new.action
                    cur.node_cnt = new.node_cnt
                    if cur.valid:
                        cur.priority = new.priority
                    cur.valid = True
                    self._priority(cur)
                    return
                # the syscall is already decided without arguments: nothing to add
                self._priority(cur)
                return
            if new.chains is None:
                # a rule without arguments replaces every conditional rule
                _tree_put(cur.chains)
                cur.chains = None
                cur.node_cnt = 0
                cur.action = action
                self._priority(cur)
                return
            st = _State(0, action, cur)
            rc = _prune(_attr_ref(cur, "chains"), new.chains, st)
            if rc > 0:
                removed = True
                cur.node_cnt -= rc
                if cur.chains is None:
                    continue
            elif (st.flags & _REDUNDANT) == _REDUNDANT:
                # the existing tree is "shorter": the new rule adds nothing
                self._priority(cur)
                return
            break
        try:
            _tree_add(_attr_ref(cur, "chains"), new.chains, cur)
        except _Exists:
            raise ProfileError(
                f"rule conflicts with an earlier rule for syscall {num} on {self.arch_name} "
                "(libseccomp refuses it: EEXIST)"
            ) from None
        cur.node_cnt += new.node_cnt
        c, _ = _tree_put(new.chains)
        cur.node_cnt -= c
        self._priority(cur)

    @staticmethod
    def _priority(s: SyscallEntry) -> None:
        # C: priority &= ~MASK; priority |= MASK - node_cnt  (unsigned, not masked again)
        s.priority = ((s.priority & ~_PRI_CHAIN) | ((_PRI_CHAIN - s.node_cnt) & M32)) & M32


# --- evaluation ---------------------------------------------------------------------------


def _word(args: Sequence[int], n: Node) -> int:
    v = args[n.arg] & M64
    return (v >> 32) if n.hi else (v & M32)


def _cmp(n: Node, a: int) -> bool:
    a &= n.mask
    if n.op in (EQ, MASKED_EQ):
        return a == n.datum
    if n.op == GT:
        return a > n.datum
    if n.op == GE:
        return a >= n.datum
    raise AssertionError(f"tree op {n.op}")


def evaluate_chain(chain: Node | None, args: Sequence[int], default: int) -> int:
    """The action a syscall's tree gives ``args`` (``default`` when nothing matches)."""

    def run_level(start: Node | None, fallthrough: int | None) -> int | None:
        for n in level(start):
            taken = _cmp(n, _word(args, n))
            nxt, flg, act = (
                (n.nxt_t, n.act_t_flg, n.act_t) if taken else (n.nxt_f, n.act_f_flg, n.act_f)
            )
            if nxt is not None:
                # the sub-level falls through to this level's next node
                r = run_level(nxt, None)
                if r is not None:
                    return r
                continue
            if flg:
                return act
        return fallthrough

    r = run_level(chain, None)
    return default if r is None else r
