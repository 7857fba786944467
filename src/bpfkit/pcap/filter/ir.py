"""The filter compiler's intermediate form: basic blocks of classic statements ending in a branch.

This is the flow-graph shape libpcap's compiler and optimiser work on (so bpfkit's programs
come out the same length and, on truncated packets, with the same verdicts): a ``Block``
holds straight-line statements (``Stmt``) and one conditional jump ``s`` whose two edges
``et``/``ef`` lead to other blocks, or a ``ret`` leaf. While an expression is being built,
a block's unresolved edge fields double as the links of its "true"/"false" exit lists
(``sense`` says which field is the link), which ``backpatch``/``merge`` resolve.
"""

from __future__ import annotations

from ...classic import insn as c

NOP = -1  # a statement the optimiser deleted

# Register numbers for the optimiser's use/def sets: M[0..15], then A and X.
A_ATOM = c.MEMWORDS
X_ATOM = c.MEMWORDS + 1
N_ATOMS = c.MEMWORDS + 2
AX_ATOM = N_ATOMS  # "both A and X"


def JMP(op: int) -> int:
    """A conditional jump on the accumulator against the immediate ``k``."""
    return op | c.JMP | c.K


class Stmt:
    """One classic statement: opcode and immediate. A conditional jump inside a block's
    statements (only libpcap's live-capture VLAN test makes one) names its targets, other
    statements of the same block, in ``jt``/``jf``; the optimiser treats it as a statement
    that uses ``A``, as libpcap's does."""

    __slots__ = ("code", "k", "jt", "jf")

    def __init__(self, code: int, k: int = 0):
        self.code = code
        self.k = k & 0xFFFFFFFF
        self.jt: Stmt | None = None
        self.jf: Stmt | None = None

    def __repr__(self) -> str:
        return f"Stmt({self.code:#x}, {self.k:#x})"


class Edge:
    """A branch edge of a block: its predecessor, successor and (for the optimiser) ids."""

    __slots__ = ("id", "code", "edom", "succ", "pred", "next")

    def __init__(self, pred: Block):
        self.id = 0
        self.code = 0
        self.edom = 0
        self.succ: Block | None = None
        self.pred = pred
        self.next: Edge | None = None


class Block:
    """Statements followed by a conditional jump (or a ``ret``, then it is a leaf)."""

    __slots__ = (
        "id",
        "s",
        "stmts",
        "et",
        "ef",
        "head",
        "sense",
        "level",
        "link",
        "offset",
        "longjt",
        "longjf",
        "mark",
        "dom",
        "closure",
        "in_use",
        "out_use",
        "kill",
        "def_",
        "val",
        "oval",
        "in_edges",
    )

    def __init__(self, code: int, k: int = 0):
        self.id = 0
        self.s = Stmt(code, k)
        self.stmts: list[Stmt] = []
        self.et = Edge(self)
        self.ef = Edge(self)
        self.head: Block = self
        self.sense = False
        self.level = 0
        self.link: Block | None = None
        self.offset = 0
        self.longjt = 0
        self.longjf = 0
        self.mark = 0
        self.dom = 0
        self.closure = 0
        self.in_use = 0
        self.out_use = 0
        self.kill = 0
        self.def_ = 0
        self.val = [0] * N_ATOMS
        self.oval = 0
        self.in_edges: Edge | None = None

    # JT(b) / JF(b) of libpcap
    @property
    def jt(self) -> Block | None:
        return self.et.succ

    @jt.setter
    def jt(self, b: Block | None) -> None:
        self.et.succ = b

    @property
    def jf(self) -> Block | None:
        return self.ef.succ

    @jf.setter
    def jf(self, b: Block | None) -> None:
        self.ef.succ = b

    def __repr__(self) -> str:
        return f"Block#{self.id}({self.s.code:#x}, {self.s.k:#x})"


def backpatch(lst: Block | None, target: Block) -> None:
    """Point every unresolved exit in the list starting at ``lst`` at ``target``."""
    while lst is not None:
        if not lst.sense:
            nxt = lst.et.succ
            lst.et.succ = target
        else:
            nxt = lst.ef.succ
            lst.ef.succ = target
        lst = nxt


def merge(b0: Block, b1: Block) -> None:
    """Append exit list ``b1`` to the end of exit list ``b0``."""
    p = b0
    while True:
        edge = p.ef if p.sense else p.et
        if edge.succ is None:
            edge.succ = b1
            return
        p = edge.succ


def gen_and(b0: Block, b1: Block) -> None:
    """``b0 and b1``; the result is ``b1`` (its head becomes ``b0``'s head)."""
    backpatch(b0, b1.head)
    b0.sense = not b0.sense
    b1.sense = not b1.sense
    merge(b1, b0)
    b1.sense = not b1.sense
    b1.head = b0.head


def gen_or(b0: Block, b1: Block) -> None:
    """``b0 or b1``; the result is ``b1``."""
    b0.sense = not b0.sense
    backpatch(b0, b1.head)
    b0.sense = not b0.sense
    merge(b1, b0)
    b1.head = b0.head


def gen_not(b: Block) -> None:
    """Swap the meaning of a block's exit lists."""
    b.sense = not b.sense
