"""The flow-graph optimiser and the block → ``sock_filter`` layout, after libpcap's optimize.c.

The passes are libpcap's (value numbering over the acyclic graph, constant folding and
peephole rules, dead-store removal, edge-dominator jump threading, and/or "pull-ups",
merging identical blocks), applied in the same order and over the same traversal orders.
That matters beyond program length: threading and pull-ups reorder tests, and on a
truncated packet a reordered load can end the program (``ret #0``) sooner or later, so
only the same passes give tcpdump's verdicts packet for packet.
"""

from __future__ import annotations

from collections.abc import Callable

from ...classic import insn as c
from .gencode import CompileError
from .ir import A_ATOM, AX_ATOM, N_ATOMS, NOP, X_ATOM, Block, Edge, Stmt

M32 = 0xFFFFFFFF
VAL_UNKNOWN = 0


def _atomuse(s: Stmt) -> int:
    code = s.code
    if code == NOP:
        return -1
    cls = code & 0x07
    if cls == c.RET:
        rv = code & 0x18
        return A_ATOM if rv == c.RVAL_A else X_ATOM if rv == c.X else -1
    if cls in (c.LD, c.LDX):
        mode = code & 0xE0
        return X_ATOM if mode == c.IND else s.k if mode == c.MEM else -1
    if cls == c.ST:
        return A_ATOM
    if cls == c.STX:
        return X_ATOM
    if cls in (c.JMP, c.ALU):
        return AX_ATOM if code & c.X else A_ATOM
    if cls == c.MISC:
        return X_ATOM if (code & 0xF8) == c.TXA else A_ATOM
    raise AssertionError(code)


def _atomdef(s: Stmt) -> int:
    code = s.code
    if code == NOP:
        return -1
    cls = code & 0x07
    if cls in (c.LD, c.ALU):
        return A_ATOM
    if cls == c.LDX:
        return X_ATOM
    if cls in (c.ST, c.STX):
        return s.k
    if cls == c.MISC:
        return X_ATOM if (code & 0xF8) == c.TAX else A_ATOM
    return -1


def _this_op(stmts: list[Stmt], i: int) -> int:
    """Index of the first statement at or after ``i`` that is not a NOP (or len)."""
    n = len(stmts)
    while i < n and stmts[i].code == NOP:
        i += 1
    return i


class Optimizer:
    """One run of the optimiser over the graph rooted at ``root``."""

    def __init__(self, root: Block):
        self.root = root
        self.done = False
        self.nbm = False  # non-branch movement performed
        self.mark = 0
        self.blocks: list[Block] = []
        self.edges: list[Edge] = []
        self.levels: list[list[Block]] = []
        self._init()

    # -- graph bookkeeping ---------------------------------------------------------------

    def _init(self) -> None:
        self.mark += 1
        mark = self.mark
        # number blocks in depth-first preorder, true branch first
        stack = [self.root]
        while stack:
            p = stack.pop()
            if p is None or p.mark == mark:
                continue
            p.mark = mark
            p.id = len(self.blocks)
            self.blocks.append(p)
            stack.append(p.ef.succ)
            stack.append(p.et.succ)
        n = len(self.blocks)
        self.edges = [None] * (2 * n)  # type: ignore[list-item]
        for i, b in enumerate(self.blocks):
            b.et.id = i
            b.ef.id = n + i
            self.edges[i] = b.et
            self.edges[n + i] = b.ef
            b.et.pred = b
            b.ef.pred = b
        self.vmap: dict[int, int] = {}
        self.hashtbl: dict[tuple[int, int, int], int] = {}
        self.curval = 0

    def find_levels(self) -> None:
        """Level 0 is the leaves; each list is in libpcap's (link-chain) visiting order."""
        self.mark += 1
        mark = self.mark
        levels: dict[int, list[Block]] = {}
        # iterative post-order: mark on entry, visit JT then JF, then place the node
        stack: list[tuple[Block, int]] = [(self.root, 0)]
        self.root.mark = mark
        while stack:
            b, state = stack.pop()
            if state == 0:
                b.link = None
                if b.et.succ is not None:
                    stack.append((b, 1))
                    t = b.et.succ
                    if t.mark != mark:
                        t.mark = mark
                        stack.append((t, 0))
                    continue
                b.level = 0
                levels.setdefault(0, []).append(b)
            elif state == 1:
                stack.append((b, 2))
                f = b.ef.succ
                if f.mark != mark:
                    f.mark = mark
                    stack.append((f, 0))
            else:
                b.level = max(b.et.succ.level, b.ef.succ.level) + 1
                levels.setdefault(b.level, []).append(b)
        top = self.root.level
        # libpcap prepends each block to its level's list: visit in reverse order
        self.levels = [list(reversed(levels.get(i, []))) for i in range(top + 1)]

    def find_dom(self) -> None:
        allset = (1 << len(self.blocks)) - 1
        for b in self.blocks:
            b.dom = allset
        self.root.dom = 0
        for level in range(self.root.level, -1, -1):
            for b in self.levels[level]:
                b.dom |= 1 << b.id
                if b.et.succ is None:
                    continue
                b.et.succ.dom &= b.dom
                b.ef.succ.dom &= b.dom

    def find_edom(self) -> None:
        allset = (1 << len(self.edges)) - 1
        for e in self.edges:
            e.edom = allset
        self.root.et.edom = 0
        self.root.ef.edom = 0
        for level in range(self.root.level, -1, -1):
            for b in self.levels[level]:
                for ep in (b.et, b.ef):
                    ep.edom |= 1 << ep.id
                    if ep.succ is not None:
                        ep.succ.et.edom &= ep.edom
                        ep.succ.ef.edom &= ep.edom

    def find_closure(self) -> None:
        for b in self.blocks:
            b.closure = 0
        for level in range(self.root.level, -1, -1):
            for b in self.levels[level]:
                b.closure |= 1 << b.id
                if b.et.succ is None:
                    continue
                b.et.succ.closure |= b.closure
                b.ef.succ.closure |= b.closure

    @staticmethod
    def _compute_local_ud(b: Block) -> None:
        def_ = use = killed = 0

        def note_use(atom: int) -> int:
            nonlocal use
            if atom == AX_ATOM:
                if not def_ & (1 << X_ATOM):
                    use |= 1 << X_ATOM
                if not def_ & (1 << A_ATOM):
                    use |= 1 << A_ATOM
            elif atom >= 0:
                if not def_ & (1 << atom):
                    use |= 1 << atom
            return use

        for s in b.stmts:
            if s.code == NOP:
                continue
            note_use(_atomuse(s))
            atom = _atomdef(s)
            if atom >= 0:
                if not use & (1 << atom):
                    killed |= 1 << atom
                def_ |= 1 << atom
        if (b.s.code & 0x07) == c.JMP:
            note_use(_atomuse(b.s))
        b.def_ = def_
        b.kill = killed
        b.in_use = use

    def find_ud(self) -> None:
        maxlevel = self.root.level
        for level in range(maxlevel, -1, -1):
            for p in self.levels[level]:
                self._compute_local_ud(p)
                p.out_use = 0
        for level in range(1, maxlevel + 1):
            for p in self.levels[level]:
                p.out_use |= p.et.succ.in_use | p.ef.succ.in_use
                p.in_use |= p.out_use & ~p.kill

    def find_inedges(self) -> None:
        for b in self.blocks:
            b.in_edges = None
        for level in range(self.root.level, 0, -1):
            for b in self.levels[level]:
                for ep in (b.et, b.ef):
                    ep.next = ep.succ.in_edges
                    ep.succ.in_edges = ep

    # -- value numbering -----------------------------------------------------------------

    def init_val(self) -> None:
        self.curval = 0
        self.vmap = {}
        self.hashtbl = {}

    def F(self, code: int, v0: int, v1: int) -> int:
        key = (code, v0, v1)
        val = self.hashtbl.get(key)
        if val is not None:
            return val
        self.curval += 1
        val = self.curval
        if (code & 0xE0) == c.IMM and (code & 0x07) in (c.LD, c.LDX):
            self.vmap[val] = v0
        self.hashtbl[key] = val
        return val

    def K(self, i: int) -> int:
        return self.F(c.LD | c.IMM | c.W, i & M32, 0)

    def is_const(self, v: int) -> bool:
        return v in self.vmap

    def changed(self, nbm: bool = True) -> None:
        if nbm:
            self.nbm = True
        self.done = False

    def vstore(self, s: Stmt, val: list[int], atom: int, newval: int, alter: bool) -> None:
        if alter and newval != VAL_UNKNOWN and val[atom] == newval:
            s.code = NOP
        else:
            val[atom] = newval

    def fold_op(self, s: Stmt, v0: int, v1: int) -> None:
        a = self.vmap[v0]
        b = self.vmap[v1]
        op = s.code & 0xF0
        if op == c.ADD:
            a = (a + b) & M32
        elif op == c.SUB:
            a = (a - b) & M32
        elif op == c.MUL:
            a = (a * b) & M32
        elif op == c.DIV:
            if b == 0:
                raise CompileError("division by zero")
            a = a // b
        elif op == c.MOD:
            if b == 0:
                raise CompileError("modulus by zero")
            a = a % b
        elif op == c.AND:
            a &= b
        elif op == c.OR:
            a |= b
        elif op == c.XOR:
            a ^= b
        elif op == c.LSH:
            a = (a << b) & M32 if b < 32 else 0
        elif op == c.RSH:
            a = a >> b if b < 32 else 0
        else:  # pragma: no cover
            raise AssertionError(op)
        s.k = a
        s.code = c.LD | c.IMM
        self.changed()

    def opt_stmt(self, s: Stmt, val: list[int], alter: bool) -> None:
        code = s.code
        cls = code & 0x07
        if cls == c.LD and (code & 0xE0) == c.ABS:
            self.vstore(s, val, A_ATOM, self.F(code, s.k, 0), alter)
        elif cls == c.LD and (code & 0xE0) == c.IND:
            v = val[X_ATOM]
            if alter and self.is_const(v):
                s.code = c.LD | c.ABS | (code & 0x18)
                s.k = (s.k + self.vmap[v]) & M32
                v = self.F(s.code, s.k, 0)
                self.changed()
            else:
                v = self.F(code, s.k, v)
            self.vstore(s, val, A_ATOM, v, alter)
        elif code == c.LD | c.LEN:
            self.vstore(s, val, A_ATOM, self.F(code, 0, 0), alter)
        elif code == c.LD | c.IMM:
            self.vstore(s, val, A_ATOM, self.K(s.k), alter)
        elif code == c.LDX | c.IMM:
            self.vstore(s, val, X_ATOM, self.K(s.k), alter)
        elif code == c.LDX | c.MSH | c.B:
            self.vstore(s, val, X_ATOM, self.F(code, s.k, 0), alter)
        elif code == c.ALU | c.NEG:
            if alter and self.is_const(val[A_ATOM]):
                s.code = c.LD | c.IMM
                s.k = (-self.vmap[val[A_ATOM]]) & M32
                val[A_ATOM] = self.K(s.k)
            else:
                val[A_ATOM] = self.F(code, val[A_ATOM], 0)
        elif cls == c.ALU and not code & c.X:
            op = code & 0xF0
            if alter:
                if s.k == 0:
                    if op in (c.ADD, c.LSH, c.RSH, c.OR, c.XOR):
                        s.code = NOP
                        return
                    if op in (c.MUL, c.AND):
                        s.code = c.LD | c.IMM
                        val[A_ATOM] = self.K(s.k)
                        return
                    if op == c.DIV:
                        raise CompileError("division by zero")
                    if op == c.MOD:
                        raise CompileError("modulus by zero")
                if self.is_const(val[A_ATOM]):
                    self.fold_op(s, val[A_ATOM], self.K(s.k))
                    val[A_ATOM] = self.K(s.k)
                    return
            val[A_ATOM] = self.F(code, val[A_ATOM], self.K(s.k))
        elif cls == c.ALU:
            op = code & 0xF0
            if alter and self.is_const(val[X_ATOM]):
                if self.is_const(val[A_ATOM]):
                    self.fold_op(s, val[A_ATOM], val[X_ATOM])
                    val[A_ATOM] = self.K(s.k)
                else:
                    s.code = c.ALU | c.K | op
                    s.k = self.vmap[val[X_ATOM]]
                    if op in (c.LSH, c.RSH) and s.k > 31:
                        raise CompileError("shift by more than 31 bits")
                    self.changed()
                    val[A_ATOM] = self.F(s.code, val[A_ATOM], self.K(s.k))
                return
            if alter and self.is_const(val[A_ATOM]) and self.vmap[val[A_ATOM]] == 0:
                if op in (c.ADD, c.OR, c.XOR):
                    s.code = c.MISC | c.TXA
                    self.vstore(s, val, A_ATOM, val[X_ATOM], alter)
                    return
                if op in (c.MUL, c.DIV, c.MOD, c.AND, c.LSH, c.RSH):
                    s.code = c.LD | c.IMM
                    s.k = 0
                    self.vstore(s, val, A_ATOM, self.K(s.k), alter)
                    return
            val[A_ATOM] = self.F(code, val[A_ATOM], val[X_ATOM])
        elif code == c.MISC | c.TXA:
            self.vstore(s, val, A_ATOM, val[X_ATOM], alter)
        elif code in (c.LD | c.MEM, c.LDX | c.MEM):
            v = val[s.k]
            if alter and self.is_const(v):
                s.code = (code & 0x07) | c.IMM
                s.k = self.vmap[v]
                self.changed()
            self.vstore(s, val, A_ATOM if code == c.LD | c.MEM else X_ATOM, v, alter)
        elif code == c.MISC | c.TAX:
            self.vstore(s, val, X_ATOM, val[A_ATOM], alter)
        elif code == c.ST:
            self.vstore(s, val, s.k, val[A_ATOM], alter)
        elif code == c.STX:
            self.vstore(s, val, s.k, val[X_ATOM], alter)

    def opt_peep(self, b: Block) -> None:
        stmts = b.stmts
        if not stmts:
            return
        n = len(stmts)
        last = 0  # index of b->stmts' first node
        i = 0
        while True:
            i = _this_op(stmts, i)
            if i >= n:
                break
            nxt = _this_op(stmts, i + 1)
            if nxt >= n:
                break
            last = nxt
            s, ns = stmts[i], stmts[nxt]
            if s.code == c.ST and ns.code == (c.LDX | c.MEM) and s.k == ns.k:
                self.changed()
                ns.code = c.MISC | c.TAX
            if s.code == (c.LD | c.IMM) and ns.code == (c.MISC | c.TAX):
                s.code = c.LDX | c.IMM
                ns.code = c.MISC | c.TXA
                self.changed()
            if s.code == (c.LD | c.IMM):
                if b.out_use & (1 << X_ATOM):
                    i = nxt
                    continue
                if ns.code != (c.LDX | c.MSH | c.B):
                    add = nxt
                else:
                    add = _this_op(stmts, nxt + 1)
                if add >= n or stmts[add].code != (c.ALU | c.ADD | c.X):
                    i = nxt
                    continue
                tax = _this_op(stmts, add + 1)
                if tax >= n or stmts[tax].code != (c.MISC | c.TAX):
                    i = nxt
                    continue
                ild = _this_op(stmts, tax + 1)
                if (
                    ild >= n
                    or (stmts[ild].code & 0x07) != c.LD
                    or (stmts[ild].code & 0xE0) != c.IND
                ):
                    i = nxt
                    continue
                stmts[ild].k = (stmts[ild].k + s.k) & M32
                s.code = NOP
                stmts[add].code = NOP
                stmts[tax].code = NOP
                self.changed()
            i = nxt
        lst = stmts[last]
        if b.s.code == (c.JMP | c.JEQ | c.K) and not b.out_use & (1 << A_ATOM):
            if lst.code == (c.ALU | c.SUB | c.X):
                val = b.val[X_ATOM]
                if self.is_const(val):
                    b.s.k = (b.s.k + self.vmap[val]) & M32
                    lst.code = NOP
                    self.changed()
                elif b.s.k == 0:
                    lst.code = NOP
                    b.s.code = c.JMP | c.JEQ | c.X
                    self.changed()
            elif lst.code == (c.ALU | c.SUB | c.K):
                lst.code = NOP
                b.s.k = (b.s.k + lst.k) & M32
                self.changed()
            elif lst.code == (c.ALU | c.AND | c.K) and b.s.k == 0:
                b.s.k = lst.k
                b.s.code = c.JMP | c.K | c.JSET
                lst.code = NOP
                self.changed()
                b.et.succ, b.ef.succ = b.ef.succ, b.et.succ
        if b.s.code == (c.JMP | c.K | c.JSET):
            if b.s.k == 0:
                b.et.succ = b.ef.succ
            if b.s.k == M32:
                b.ef.succ = b.et.succ
        val = b.val[X_ATOM]
        if self.is_const(val) and (b.s.code & c.X):
            b.s.code &= ~c.X
            b.s.k = self.vmap[val]
        val = b.val[A_ATOM]
        if self.is_const(val) and not (b.s.code & c.X):
            v = self.vmap[val]
            op = b.s.code & 0xF0
            if op == c.JEQ:
                t = v == b.s.k
            elif op == c.JGT:
                t = v > b.s.k
            elif op == c.JGE:
                t = v >= b.s.k
            elif op == c.JSET:
                t = (v & b.s.k) != 0
            else:  # pragma: no cover
                raise AssertionError(op)
            if b.ef.succ is not b.et.succ:
                self.changed()
            if t:
                b.ef.succ = b.et.succ
            else:
                b.et.succ = b.ef.succ

    def _deadstmt(self, s: Stmt, last: list[Stmt | None]) -> None:
        atom = _atomuse(s)
        if atom >= 0:
            if atom == AX_ATOM:
                last[X_ATOM] = None
                last[A_ATOM] = None
            else:
                last[atom] = None
        atom = _atomdef(s)
        if atom >= 0:
            prev = last[atom]
            if prev is not None:
                self.changed()
                prev.code = NOP
            last[atom] = s

    def opt_deadstores(self, b: Block) -> None:
        last: list[Stmt | None] = [None] * N_ATOMS
        for s in b.stmts:
            self._deadstmt(s, last)
        self._deadstmt(b.s, last)
        for atom in range(N_ATOMS):
            s = last[atom]
            if s is not None and not b.out_use & (1 << atom):
                s.code = NOP
                self.changed()

    def opt_blk(self, b: Block, do_stmts: bool) -> None:
        p = b.in_edges
        if p is None:
            b.val = [0] * N_ATOMS
        else:
            b.val = list(p.pred.val)
            p = p.next
            while p is not None:
                pv = p.pred.val
                bv = b.val
                for i in range(N_ATOMS):
                    if bv[i] != pv[i]:
                        bv[i] = 0
                p = p.next
        aval = b.val[A_ATOM]
        xval = b.val[X_ATOM]
        for s in b.stmts:
            self.opt_stmt(s, b.val, do_stmts)
        if do_stmts and (
            (
                b.out_use == 0
                and aval != VAL_UNKNOWN
                and b.val[A_ATOM] == aval
                and xval != VAL_UNKNOWN
                and b.val[X_ATOM] == xval
            )
            or (b.s.code & 0x07) == c.RET
        ):
            if b.stmts:
                b.stmts = []
                self.changed()
        else:
            self.opt_peep(b)
            self.opt_deadstores(b)
        if not (b.s.code & c.X):
            b.oval = self.K(b.s.k)
        else:
            b.oval = b.val[X_ATOM]
        b.et.code = b.s.code
        b.ef.code = -b.s.code

    # -- branch movement -----------------------------------------------------------------

    @staticmethod
    def use_conflict(b: Block, succ: Block) -> bool:
        use = succ.out_use
        if use == 0:
            return False
        for atom in range(N_ATOMS):
            if use & (1 << atom) and b.val[atom] != succ.val[atom]:
                return True
        return False

    @staticmethod
    def fold_edge(child: Block, ep: Edge) -> Block | None:
        code = ep.code
        if code < 0:
            code = -code
            sense = False
        else:
            sense = True
        if child.s.code != code:
            return None
        if child.val[A_ATOM] != ep.pred.val[A_ATOM]:
            return None
        if child.oval == ep.pred.oval:
            return child.et.succ if sense else child.ef.succ
        if sense and code == (c.JMP | c.JEQ | c.K):
            return child.ef.succ
        return None

    def opt_j(self, ep: Edge) -> None:
        succ = ep.succ
        if succ.et.succ is None:
            return
        if succ.et.succ is succ.ef.succ:
            if not self.use_conflict(ep.pred, succ.et.succ):
                self.changed()
                ep.succ = succ.et.succ
        same, true_jeq = self.edge_index
        jeqk = c.JMP | c.JEQ | c.K
        while True:
            child = ep.succ
            # only dominating edges whose test fold_edge can decide: the same opcode on the
            # same A value, and either the same operand or a taken "jeq #k"
            key = (child.s.code, child.val[A_ATOM])
            cand = same.get((child.s.code, child.val[A_ATOM], child.oval), 0)
            if child.s.code == jeqk:
                cand |= true_jeq.get(key, 0)
            x = ep.edom & cand
            moved = False
            while x:
                low = x & -x
                k = low.bit_length() - 1
                x ^= low
                target = self.fold_edge(ep.succ, self.edges[k])
                if target is not None and not self.use_conflict(ep.pred, target):
                    self.done = False
                    ep.succ = target
                    if target.et.succ is not None:
                        moved = True
                        break
                    return
            if not moved:
                return

    def _pullup(self, b: Block, is_or: bool) -> None:
        """libpcap's or_pullup (``is_or``) / and_pullup, with its pointer-to-field walks
        written as (owner block, True for the jt field / False for jf) pairs."""
        ep = b.in_edges
        if ep is None:
            return
        val = ep.pred.val[A_ATOM]
        e = ep.next
        while e is not None:
            if val != e.pred.val[A_ATOM]:
                return
            e = e.next
        # or_pullup walks the false chain and requires the same true exit; and_pullup
        # walks the true chain and requires the same false exit
        chain_jt = not is_or
        bexit = b.ef.succ if chain_jt else b.et.succ
        bid = b.id
        first = ep.pred
        diff_owner, diff_jt = first, first.et.succ is b

        def chain_next(owner: Block, jt: bool) -> Block | None:
            """The block after ``owner`` on the chain, if it is one the pull-up may cross
            (it exits to ``bexit`` and is dominated by ``b``)."""
            d = owner.et.succ if jt else owner.ef.succ
            if d is None or (d.ef.succ if chain_jt else d.et.succ) is not bexit:
                return None
            return d if (d.dom >> bid) & 1 else None

        at_top = True
        while True:
            d = chain_next(diff_owner, diff_jt)
            if d is None:
                return
            if d.val[A_ATOM] != val:
                break
            diff_owner, diff_jt = d, chain_jt
            at_top = False
        same_owner = diff_owner.et.succ if diff_jt else diff_owner.ef.succ
        same_jt = chain_jt
        while True:
            sm = chain_next(same_owner, same_jt)
            if sm is None:
                return
            if sm.val[A_ATOM] == val:
                break
            same_owner = sm
        pull = same_owner.et.succ if same_jt else same_owner.ef.succ
        pull_next = pull.et.succ if chain_jt else pull.ef.succ
        if same_jt:
            same_owner.et.succ = pull_next
        else:
            same_owner.ef.succ = pull_next
        diff_target = diff_owner.et.succ if diff_jt else diff_owner.ef.succ
        if chain_jt:
            pull.et.succ = diff_target
        else:
            pull.ef.succ = diff_target
        if at_top:
            e = b.in_edges
            while e is not None:
                if e.pred.et.succ is b:
                    e.pred.et.succ = pull
                else:
                    e.pred.ef.succ = pull
                e = e.next
        elif diff_jt:
            diff_owner.et.succ = pull
        else:
            diff_owner.ef.succ = pull
        self.done = False

    def opt_blks(self, do_stmts: bool) -> None:
        self.init_val()
        maxlevel = self.root.level
        self.find_inedges()
        for level in range(maxlevel, -1, -1):
            for p in self.levels[level]:
                self.opt_blk(p, do_stmts)
        if do_stmts:
            return
        same: dict[tuple[int, int, int], int] = {}
        true_jeq: dict[tuple[int, int], int] = {}
        jeqk = c.JMP | c.JEQ | c.K
        for level in range(maxlevel, -1, -1):
            for p in self.levels[level]:
                key3 = (p.s.code, p.val[A_ATOM], p.oval)
                same[key3] = same.get(key3, 0) | (1 << p.et.id) | (1 << p.ef.id)
                if p.s.code == jeqk:
                    key2 = (p.s.code, p.val[A_ATOM])
                    true_jeq[key2] = true_jeq.get(key2, 0) | (1 << p.et.id)
        self.edge_index = (same, true_jeq)
        for level in range(1, maxlevel + 1):
            for p in self.levels[level]:
                self.opt_j(p.et)
                self.opt_j(p.ef)
        self.find_inedges()
        for level in range(1, maxlevel + 1):
            for p in self.levels[level]:
                self._pullup(p, True)
                self._pullup(p, False)

    def opt_loop(self, do_stmts: bool) -> None:
        loop_count = 0
        while True:
            self.done = True
            self.nbm = False
            self.find_levels()
            self.find_dom()
            self.find_closure()
            self.find_ud()
            self.find_edom()
            self.opt_blks(do_stmts)
            if self.done:
                break
            if self.nbm:
                loop_count = 0
            else:
                loop_count += 1
                if loop_count >= 100:
                    self.done = True
                    break

    # -- final clean-ups -----------------------------------------------------------------

    def _mark_code(self) -> int:
        self.mark += 1
        mark = self.mark
        stack = [self.root]
        while stack:
            p = stack.pop()
            if p.mark == mark:
                continue
            p.mark = mark
            if (p.s.code & 0x07) != c.RET:
                stack.append(p.ef.succ)
                stack.append(p.et.succ)
        return mark

    def intern_blocks(self) -> None:
        """Merge identical blocks (same statements, test and successors).

        libpcap iterates to a fixpoint, each round linking a block to the next
        higher-numbered identical one; the outcome is that every class of blocks that are
        identical once their successors are merged collapses onto its highest-numbered
        member. This computes those classes bottom-up (successors first) in one pass."""
        mark = self._mark_code()
        order: list[Block] = []
        seen: set[int] = set()
        stack: list[tuple[Block, bool]] = [(self.root, False)]
        while stack:
            b, done = stack.pop()
            if done:
                order.append(b)
                continue
            if id(b) in seen:
                continue
            seen.add(id(b))
            stack.append((b, True))
            if (b.s.code & 0x07) != c.RET:
                stack.append((b.ef.succ, False))
                stack.append((b.et.succ, False))
        cls: dict[int, int] = {}  # id(block) -> class number
        keys: dict[tuple, int] = {}
        best: list[Block] = []
        for b in order:
            if (b.s.code & 0x07) == c.RET:
                succ = (None, None)
            else:
                succ = (cls[id(b.et.succ)], cls[id(b.ef.succ)])
            key = (b.s.code, b.s.k, succ, tuple((s.code, s.k) for s in b.stmts if s.code != NOP))
            n = keys.get(key)
            if n is None:
                n = keys[key] = len(best)
                best.append(b)
            elif b.id > best[n].id:
                best[n] = b
            cls[id(b)] = n
        for b in order:
            if b.mark == mark and b.et.succ is not None:
                b.et.succ = best[cls[id(b.et.succ)]]
                b.ef.succ = best[cls[id(b.ef.succ)]]

    def opt_root(self) -> Block:
        b = self.root
        s = b.stmts
        b.stmts = []
        while (b.s.code & 0x07) == c.JMP and b.et.succ is b.ef.succ:
            b = b.et.succ
        b.stmts = s + b.stmts
        if (b.s.code & 0x07) == c.RET:
            b.stmts = []
        self.root = b
        return b

    def run(self) -> Block:
        self.opt_loop(False)
        self.opt_loop(True)
        self.intern_blocks()
        return self.opt_root()


def optimize(root: Block) -> Block:
    """Optimise the graph in place and return its (possibly new) root."""
    return Optimizer(root).run()


# -- flow graph → sock_filter array -------------------------------------------------------


def _reachable(root: Block) -> list[Block]:
    seen: set[int] = set()
    order = []
    stack = [root]
    while stack:
        p = stack.pop()
        if p is None or id(p) in seen:
            continue
        seen.add(id(p))
        order.append(p)
        stack.append(p.ef.succ)
        stack.append(p.et.succ)
    return order


def _live(stmts: list[Stmt]) -> list[Stmt]:
    return [s for s in stmts if s.code != NOP]


def icode_to_fcode(root: Block) -> list[c.SockFilter]:
    """Lay the graph out as libpcap does (false subtree last), adding ``ja`` for far jumps."""
    blocks = _reachable(root)
    for b in blocks:
        b.longjt = b.longjf = 0
    while True:
        n = sum(len(_live(b.stmts)) + 1 + b.longjt + b.longjf for b in blocks)
        out: list[list[int]] = [[0, 0, 0, 0] for _ in range(n)]
        ok = _convert(root, out, n)
        if ok:
            return [c.SockFilter(code & 0xFFFF, jt, jf, k & M32) for code, jt, jf, k in out]


def _local_jump(stmts: list[Stmt], slen: int, off: int, s: Stmt) -> tuple[int, int]:
    """The jt/jf of a jump inside a block's statements, counted as libpcap's
    ``convert_code_r`` counts them: the target's place among the block's first ``slen``
    list entries (deleted ones included) minus the jump's place among the live ones."""
    jt = jf = None
    for i, t in enumerate(stmts[:slen]):
        if t is s.jt:
            jt = i - off - 1
        if t is s.jf:
            jf = i - off - 1
    if jt is None or jf is None or not (0 <= jt < 256 and 0 <= jf < 256):
        raise CompileError(f"no destination found for block-local relative jump: off={off}")
    return jt, jf


def _convert(root: Block, out: list[list[int]], n: int) -> bool:
    visited: set[int] = set()
    tail = n
    ok = True
    # post-order: JF subtree, then JT subtree, then the block itself (placed before both)
    stack: list[tuple[Block, int]] = [(root, 0)]
    while stack:
        p, state = stack.pop()
        if state == 0:
            if p is None or id(p) in visited:
                continue
            visited.add(id(p))
            stack.append((p, 1))
            stack.append((p.et.succ, 0))
            stack.append((p.ef.succ, 0))
            continue
        live = _live(p.stmts)
        slen = len(live)
        tail -= slen + 1 + p.longjt + p.longjf
        p.offset = tail
        dst = tail
        for off, s in enumerate(live):
            out[dst] = [s.code, 0, 0, s.k]
            if (s.code & 0x07) == c.JMP and s.code != c.JMP | c.JA and off != slen - 2:
                out[dst][1], out[dst][2] = _local_jump(p.stmts, slen, off, s)
            dst += 1
        ins = out[dst]
        ins[0], ins[3] = p.s.code, p.s.k
        if p.et.succ is not None:
            extra = 0
            # jt (field 1), then jf (field 2): a target 256 or more ahead is reached
            # through a JA placed after the block
            for field, succ, long_attr in ((1, p.et.succ, "longjt"), (2, p.ef.succ, "longjf")):
                off = succ.offset - (p.offset + slen) - 1
                if off < 256:
                    ins[field] = off
                    continue
                if getattr(p, long_attr) == 0:
                    # distances only grow as jumps are added, so every jump found too
                    # long now stays too long: mark them all in this pass
                    setattr(p, long_attr, 1)
                    ok = False
                    break
                ins[field] = extra
                extra += 1
                out[dst + extra] = [c.JMP | c.JA, 0, 0, off - extra]
    return ok


Walker = Callable[[Block], None]
