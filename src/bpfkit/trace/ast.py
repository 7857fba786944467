"""The syntax tree of a bpftrace script: probes, statements and expressions.

Every node carries ``line``/``col`` (1-based) so later passes can report errors with a
caret under the offending text. Semantic analysis fills ``ty`` on expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Node:
    """Base of every node: where it starts in the source."""

    line: int = field(default=0, kw_only=True)
    col: int = field(default=0, kw_only=True)


@dataclass(eq=False)
class Expr(Node):
    """An expression; ``ty`` is set by the semantic pass."""

    ty: Any = field(default=None, kw_only=True, repr=False)


@dataclass(eq=False)
class Int(Expr):
    value: int


@dataclass(eq=False)
class Str(Expr):
    value: str


@dataclass(eq=False)
class Var(Expr):
    """A scratch variable ``$name``."""

    name: str


@dataclass(eq=False)
class Positional(Expr):
    """``$1`` ... (``$#`` is ``n == 0`` with ``count=True``)."""

    n: int
    count: bool = False


@dataclass(eq=False)
class MapRef(Expr):
    """``@name`` or ``@name[k1, k2]`` (``keys`` is ``None`` without brackets)."""

    name: str
    keys: list[Expr] | None = None


@dataclass(eq=False)
class Builtin(Expr):
    """``pid``, ``comm``, ``args``, ``arg0`` ..."""

    name: str


@dataclass(eq=False)
class Ident(Expr):
    """A bare identifier that is not a builtin: an enum constant or a macro name."""

    name: str


@dataclass(eq=False)
class Call(Expr):
    name: str
    args: list[Expr]


@dataclass(eq=False)
class Binop(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(eq=False)
class Unop(Expr):
    """``!``, ``~``, ``-``, ``*`` (dereference), ``&`` (address of)."""

    op: str
    expr: Expr


@dataclass(eq=False)
class IncDec(Expr):
    """``x++``, ``++x``, ``x--``, ``--x`` on a scratch or map variable."""

    op: str
    prefix: bool
    target: Expr


@dataclass(eq=False)
class Ternary(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass(eq=False)
class Field(Expr):
    """``e.name`` or ``e->name``."""

    expr: Expr
    name: str
    arrow: bool


@dataclass(eq=False)
class Index(Expr):
    """``e[i]`` on an array, pointer or tuple."""

    expr: Expr
    index: Expr


@dataclass(eq=False)
class TypeName(Node):
    """A type in a cast/sizeof: ``struct task_struct *``, ``uint32``, ``int8[4]``."""

    base: str
    ptr: int = 0
    array: int | None = None

    def __str__(self) -> str:
        s = self.base + (" " + "*" * self.ptr if self.ptr else "")
        return s + (f"[{self.array}]" if self.array is not None else "")


@dataclass(eq=False)
class Cast(Expr):
    type: TypeName
    expr: Expr


@dataclass(eq=False)
class Tuple(Expr):
    items: list[Expr]


@dataclass(eq=False)
class Sizeof(Expr):
    """``sizeof(type)`` or ``sizeof(expr)``."""

    target: TypeName | Expr


@dataclass(eq=False)
class Offsetof(Expr):
    type: TypeName
    field: str


# ---- statements -------------------------------------------------------------------------


@dataclass(eq=False)
class Stmt(Node):
    """A statement."""


@dataclass(eq=False)
class ExprStmt(Stmt):
    expr: Expr


@dataclass(eq=False)
class Assign(Stmt):
    """``target = value`` or ``target op= value`` (``op`` like ``"+"``)."""

    target: Expr
    value: Expr
    op: str | None = None


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    other: list[Stmt] = field(default_factory=list)


@dataclass(eq=False)
class Unroll(Stmt):
    count: Expr
    body: list[Stmt]


@dataclass(eq=False)
class While(Stmt):
    cond: Expr
    body: list[Stmt]


@dataclass(eq=False)
class Jump(Stmt):
    """``break``, ``continue`` or ``return``."""

    kind: str


# ---- the program ------------------------------------------------------------------------


@dataclass(eq=False)
class AttachPoint(Node):
    """One attach point as written (``tracepoint:syscalls:sys_enter_*``)."""

    text: str


@dataclass(eq=False)
class Probe(Node):
    points: list[AttachPoint]
    pred: Expr | None
    body: list[Stmt]


@dataclass(eq=False)
class CStruct(Node):
    """A C ``struct``/``union`` definition in the script's preamble (kept as text)."""

    name: str
    text: str


@dataclass(eq=False)
class Program(Node):
    probes: list[Probe]
    structs: list[CStruct] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    defines: dict[str, str] = field(default_factory=dict)
