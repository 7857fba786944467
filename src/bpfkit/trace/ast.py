"""The syntax tree of a bpftrace script: probes, statements and expressions.

Every node carries ``line``/``col`` (1-based) so later passes can report errors with a
caret under the offending text. Semantic analysis fills ``ty`` on expressions.
"""

from __future__ import annotations

from typing import Any

from .record import DICT as _DICT
from .record import LIST as _LIST
from .record import Record


class Node(Record):
    """Base of every node: where it starts in the source (``line``/``col`` by name).

    Nodes compare by identity (a node is a place in the source, not a value).
    """

    _skip = ("line", "col", "ty")
    line: int = 0
    col: int = 0

    def __init__(self, *args: Any, line: int = 0, col: int = 0, **kw: Any) -> None:
        if "ty" in kw:
            self.ty = kw.pop("ty")
        super().__init__(*args, **kw)
        self.line = line
        self.col = col

    __eq__ = object.__eq__  # type: ignore[assignment]
    __hash__ = object.__hash__  # type: ignore[assignment]


class Expr(Node):
    """An expression; ``ty`` is set by the semantic pass."""

    ty: Any = None


class Int(Expr):
    value: int


class Str(Expr):
    value: str


class Var(Expr):
    """A scratch variable ``$name``."""

    name: str


class Positional(Expr):
    """``$1`` ... (``$#`` is ``n == 0`` with ``count=True``)."""

    n: int
    count: bool = False


class MapRef(Expr):
    """``@name`` or ``@name[k1, k2]`` (``keys`` is ``None`` without brackets)."""

    name: str
    keys: list[Expr] | None = None


class Builtin(Expr):
    """``pid``, ``comm``, ``args``, ``arg0`` ..."""

    name: str


class Ident(Expr):
    """A bare identifier that is not a builtin: an enum constant or a macro name."""

    name: str


class Call(Expr):
    name: str
    args: list[Expr]


class Binop(Expr):
    op: str
    left: Expr
    right: Expr


class Unop(Expr):
    """``!``, ``~``, ``-``, ``*`` (dereference), ``&`` (address of)."""

    op: str
    expr: Expr


class IncDec(Expr):
    """``x++``, ``++x``, ``x--``, ``--x`` on a scratch or map variable."""

    op: str
    prefix: bool
    target: Expr


class Ternary(Expr):
    cond: Expr
    then: Expr
    other: Expr


class Field(Expr):
    """``e.name`` or ``e->name``."""

    expr: Expr
    name: str
    arrow: bool


class Index(Expr):
    """``e[i]`` on an array, pointer or tuple."""

    expr: Expr
    index: Expr


class TypeName(Node):
    """A type in a cast/sizeof: ``struct task_struct *``, ``uint32``, ``int8[4]``."""

    base: str
    ptr: int = 0
    array: int | None = None

    def __str__(self) -> str:
        s = self.base + (" " + "*" * self.ptr if self.ptr else "")
        return s + (f"[{self.array}]" if self.array is not None else "")


class Cast(Expr):
    type: TypeName
    expr: Expr


class Tuple(Expr):
    items: list[Expr]


class Sizeof(Expr):
    """``sizeof(type)`` or ``sizeof(expr)``."""

    target: TypeName | Expr


class Offsetof(Expr):
    type: TypeName
    field: str


# ---- statements -------------------------------------------------------------------------


class Stmt(Node):
    """A statement."""


class ExprStmt(Stmt):
    expr: Expr


class Assign(Stmt):
    """``target = value`` or ``target op= value`` (``op`` like ``"+"``)."""

    target: Expr
    value: Expr
    op: str | None = None


class If(Stmt):
    cond: Expr
    then: list[Stmt]
    other: list[Stmt] = _LIST


class Unroll(Stmt):
    count: Expr
    body: list[Stmt]


class While(Stmt):
    cond: Expr
    body: list[Stmt]


class Jump(Stmt):
    """``break``, ``continue`` or ``return``."""

    kind: str


# ---- the program ------------------------------------------------------------------------


class AttachPoint(Node):
    """One attach point as written (``tracepoint:syscalls:sys_enter_*``)."""

    text: str


class Probe(Node):
    points: list[AttachPoint]
    pred: Expr | None
    body: list[Stmt]


class CStruct(Node):
    """A C ``struct``/``union`` definition in the script's preamble (kept as text)."""

    name: str
    text: str


class Program(Node):
    probes: list[Probe]
    structs: list[CStruct] = _LIST
    includes: list[str] = _LIST
    defines: dict[str, str] = _DICT
