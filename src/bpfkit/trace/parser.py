"""Parse bpftrace's language into :mod:`bpfkit.trace.ast` (a hand-written recursive descent).

A hand-written parser rather than a grammar engine: it imports in no time (``bpfkit
trace`` start-up is measured against bpftrace's), and every error names the line and
column with the offending line and a caret (:class:`~bpfkit.errors.ScriptError`).

The preamble's preprocessor lines are handled the way bpftrace does on a kernel with
BTF: ``#include`` is ignored (types come from the kernel's BTF), ``#define NAME value``
defines an object-like macro, and ``#ifdef``/``#ifndef``/``#else``/``#endif`` select
lines with ``BPFTRACE_HAVE_BTF`` defined.
"""

from __future__ import annotations

import re

from ..errors import ScriptError
from . import ast as A

__all__ = ["parse", "ScriptError"]

_PUNCT = sorted(
    [
        "<<=", ">>=", "->", "++", "--", "&&", "||", "==", "!=", "<=", ">=", "<<", ">>",
        "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
        "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "<", ">", "=", "?", ":",
        "(", ")", "{", "}", "[", "]", ",", ";", ".",
    ],
    key=len,
    reverse=True,
)  # fmt: skip
_INT_TYPES = {
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "char", "short", "int", "long", "unsigned", "signed", "void",
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64",
    "size_t", "pid_t", "uid_t", "gid_t", "umode_t", "dev_t", "loff_t",
}  # fmt: skip
_KEYWORDS = {"if", "else", "unroll", "while", "break", "continue", "return", "sizeof", "offsetof"}
_ASSIGN_OPS = {"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="}
_BINARY = [
    ("||",),
    ("&&",),
    ("|",),
    ("^",),
    ("&",),
    ("==", "!="),
    ("<", "<=", ">", ">="),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
]
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM_RE = re.compile(r"0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*(?:e[0-9]+)?|[0-9]+")
_SIZE_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "e": "\x1b"}  # fmt: skip


class Tok:
    """One token: kind (``int``, ``str``, ``ident``, ``var``, ``map``, ``pos``, ``op``, ``eof``)."""

    __slots__ = ("kind", "value", "line", "col", "start", "end")

    def __init__(self, kind: str, value: object, line: int, col: int, start: int, end: int):
        self.kind, self.value, self.line, self.col, self.start, self.end = (
            kind,
            value,
            line,
            col,
            start,
            end,
        )

    def __repr__(self) -> str:
        return f"Tok({self.kind}, {self.value!r}, {self.line}:{self.col})"


def preprocess(text: str) -> tuple[str, list[str], dict[str, str]]:
    """Blank out preprocessor lines (keeping line numbers); includes and macros found."""
    out: list[str] = []
    includes: list[str] = []
    defines: dict[str, str] = {"BPFTRACE_HAVE_BTF": "1"}
    stack: list[bool] = []  # whether each open conditional's current branch is live
    for i, line in enumerate(text.split("\n")):
        s = line.strip()
        live = all(stack)
        if i == 0 and s.startswith("#!"):
            out.append("")
            continue
        if s.startswith("#"):
            words = s[1:].strip().split(None, 2)
            d = words[0] if words else ""
            if d in ("ifdef", "ifndef"):
                name = words[1] if len(words) > 1 else ""
                stack.append((name in defines) == (d == "ifdef"))
            elif d == "if":
                stack.append(True)
            elif d == "else":
                if stack:
                    stack[-1] = not stack[-1]
            elif d == "endif":
                if stack:
                    stack.pop()
            elif live and d == "include":
                includes.append(s[1:].strip()[len("include") :].strip())
            elif live and d == "define" and len(words) >= 2:
                defines[words[1]] = words[2] if len(words) > 2 else "1"
            elif live and d == "undef" and len(words) >= 2:
                defines.pop(words[1], None)
            out.append("")
            continue
        out.append(line if live else "")
    return "\n".join(out), includes, defines


class Parser:
    """Recursive descent over a lazily produced token stream."""

    def __init__(self, text: str, origin: str | None = None):
        self.src_lines = text.split("\n")
        self.text, self.includes, self.defines = preprocess(text)
        self.origin = origin
        self.pos = 0
        self._line_starts = [0]
        for m in re.finditer("\n", self.text):
            self._line_starts.append(m.end())
        self._buf: list[Tok] = []

    # ---- errors and positions --------------------------------------------------------
    def where(self, offset: int) -> tuple[int, int]:
        import bisect

        i = bisect.bisect_right(self._line_starts, offset) - 1
        return i + 1, offset - self._line_starts[i] + 1

    def error(self, message: str, line: int, col: int) -> ScriptError:
        src = self.src_lines[line - 1] if 0 < line <= len(self.src_lines) else None
        return ScriptError(message, line, col, src, self.origin)

    def error_at(self, tok: Tok, message: str) -> ScriptError:
        return self.error(message, tok.line, tok.col)

    # ---- lexing -------------------------------------------------------------------------
    def _skip_space(self) -> None:
        text, n = self.text, len(self.text)
        p = self.pos
        while p < n:
            c = text[p]
            if c in " \t\r\n\f\v":
                p += 1
            elif text.startswith("//", p):
                e = text.find("\n", p)
                p = n if e < 0 else e
            elif text.startswith("/*", p):
                e = text.find("*/", p + 2)
                if e < 0:
                    line, col = self.where(p)
                    raise self.error("unterminated comment", line, col)
                p = e + 2
            else:
                break
        self.pos = p

    def _lex(self) -> Tok:
        self._skip_space()
        text, p = self.text, self.pos
        line, col = self.where(p)
        if p >= len(text):
            return Tok("eof", None, line, col, p, p)
        c = text[p]
        if c == '"':
            return self._lex_string(p, line, col)
        if c.isdigit():
            m = _NUM_RE.match(text, p)
            assert m
            raw = m.group(0)
            end = m.end()
            try:
                if "e" in raw and not raw.lower().startswith("0x"):
                    base, _, exp = raw.partition("e")
                    value = int(base.replace("_", "")) * 10 ** int(exp)
                elif raw.lower().startswith("0b"):
                    value = int(raw[2:].replace("_", ""), 2)
                elif len(raw) > 1 and raw[0] == "0" and raw.isdigit():
                    value = int(raw, 8)
                else:
                    value = int(raw.replace("_", ""), 0)
            except ValueError:
                raise self.error(f"invalid integer {raw!r}", line, col) from None
            if (
                end < len(text)
                and text[end] in _SIZE_SUFFIX
                and not (end + 1 < len(text) and (text[end + 1].isalnum() or text[end + 1] == "_"))
            ):
                value *= _SIZE_SUFFIX[text[end]]
                end += 1
            while end < len(text) and text[end] in "uUlL":
                end += 1
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                raise self.error(f"invalid integer {text[p : end + 1]!r}", line, col)
            if value >= 1 << 64:
                raise self.error(f"integer {raw} does not fit in 64 bits", line, col)
            self.pos = end
            return Tok("int", value, line, col, p, end)
        if c == "$":
            if text.startswith("$#", p):
                self.pos = p + 2
                return Tok("pos", -1, line, col, p, p + 2)
            m = re.compile(r"\$([0-9]+)").match(text, p)
            if m:
                self.pos = m.end()
                return Tok("pos", int(m.group(1)), line, col, p, m.end())
            m = _IDENT_RE.match(text, p + 1)
            if not m:
                raise self.error("expected a variable name after '$'", line, col)
            self.pos = m.end()
            return Tok("var", m.group(0), line, col, p, m.end())
        if c == "@":
            m = _IDENT_RE.match(text, p + 1)
            end = m.end() if m else p + 1
            self.pos = end
            return Tok("map", m.group(0) if m else "", line, col, p, end)
        if c == "'":
            m = re.compile(r"'(\\.|[^\\'])'").match(text, p)
            if not m:
                raise self.error("bad character literal", line, col)
            body = m.group(1)
            ch = _ESCAPES.get(body[1], body[1]) if body.startswith("\\") else body
            self.pos = m.end()
            return Tok("int", ord(ch), line, col, p, m.end())
        m = _IDENT_RE.match(text, p)
        if m:
            self.pos = m.end()
            return Tok("ident", m.group(0), line, col, p, m.end())
        for op in _PUNCT:
            if text.startswith(op, p):
                self.pos = p + len(op)
                return Tok("op", op, line, col, p, self.pos)
        raise self.error(f"unexpected character {c!r}", line, col)

    def _lex_string(self, p: int, line: int, col: int) -> Tok:
        text = self.text
        i = p + 1
        out: list[str] = []
        while True:
            if i >= len(text) or text[i] == "\n":
                raise self.error("unterminated string", line, col)
            c = text[i]
            if c == '"':
                break
            if c == "\\":
                if i + 1 >= len(text):
                    raise self.error("unterminated string", line, col)
                e = text[i + 1]
                if e == "x":
                    m = re.compile(r"[0-9a-fA-F]{1,2}").match(text, i + 2)
                    if not m:
                        raise self.error("bad \\x escape", *self.where(i))
                    out.append(chr(int(m.group(0), 16)))
                    i = m.end()
                    continue
                if e in "01234567":
                    m = re.compile(r"[0-7]{1,3}").match(text, i + 1)
                    assert m
                    out.append(chr(int(m.group(0), 8) & 0xFF))
                    i = m.end()
                    continue
                if e not in _ESCAPES:
                    raise self.error(f"unknown escape sequence '\\{e}'", *self.where(i))
                out.append(_ESCAPES[e])
                i += 2
                continue
            out.append(c)
            i += 1
        self.pos = i + 1
        return Tok("str", "".join(out), line, col, p, i + 1)

    def peek(self, k: int = 0) -> Tok:
        while len(self._buf) <= k:
            self._buf.append(self._lex())
        return self._buf[k]

    def next(self) -> Tok:
        t = self.peek()
        self._buf.pop(0)
        return t

    def at(self, value: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind in ("op", "ident") and t.value == value

    def accept(self, value: str) -> Tok | None:
        if self.at(value):
            return self.next()
        return None

    def expect(self, value: str, what: str | None = None) -> Tok:
        t = self.peek()
        if t.kind in ("op", "ident") and t.value == value:
            return self.next()
        raise self.error_at(t, f"expected {what or repr(value)}, found {_describe(t)}")

    # ---- top level ----------------------------------------------------------------------
    def parse_program(self) -> A.Program:
        probes: list[A.Probe] = []
        structs: list[A.CStruct] = []
        while True:
            self._skip_space()
            if self.pos >= len(self.text):
                break
            if self._at_c_definition():
                structs.append(self._c_definition())
                continue
            probes.append(self.parse_probe())
        if not probes:
            line, col = self.where(self.pos)
            raise self.error("no probes in the program", line, col)
        return A.Program(
            probes,
            structs,
            self.includes,
            {k: v for k, v in self.defines.items() if k != "BPFTRACE_HAVE_BTF"},
            line=1,
            col=1,
        )

    def _at_c_definition(self) -> bool:
        m = re.compile(r"(struct|union|enum)\s+[A-Za-z_]\w*\s*\{").match(self.text, self.pos)
        return m is not None

    def _c_definition(self) -> A.CStruct:
        start = self.pos
        line, col = self.where(start)
        m = re.compile(r"(struct|union|enum)\s+([A-Za-z_]\w*)").match(self.text, start)
        assert m
        depth = 0
        i = self.text.index("{", start)
        while i < len(self.text):
            if self.text[i] == "{":
                depth += 1
            elif self.text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        else:
            raise self.error("unterminated definition", line, col)
        j = i + 1
        while j < len(self.text) and self.text[j] in " \t\r\n":
            j += 1
        if j < len(self.text) and self.text[j] == ";":
            j += 1
        self.pos = j
        return A.CStruct(f"{m.group(1)} {m.group(2)}", self.text[start:j], line=line, col=col)

    def _attach_point(self) -> A.AttachPoint:
        self._skip_space()
        text, p = self.text, self.pos
        line, col = self.where(p)
        out: list[str] = []
        while p < len(text):
            c = text[p]
            if c == '"':
                e = text.find('"', p + 1)
                if e < 0:
                    raise self.error("unterminated string", *self.where(p))
                out.append(text[p + 1 : e])
                p = e + 1
                continue
            if c in " \t\r\n,{":
                break
            if c == "/" and text.startswith(("//", "/*"), p):
                break
            out.append(c)
            p += 1
        raw = "".join(out)
        if not raw:
            raise self.error(
                f"expected an attach point, found {text[p : p + 10]!r}" if p < len(text) else
                "expected an attach point",
                line,
                col,
            )  # fmt: skip
        self.pos = p
        return A.AttachPoint(raw, line=line, col=col)

    def parse_probe(self) -> A.Probe:
        self._buf.clear()
        first = self._attach_point()
        points = [first]
        while True:
            self._skip_space()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                points.append(self._attach_point())
                continue
            break
        pred = None
        self._skip_space()
        if self.text.startswith("/", self.pos):
            self.pos += 1
            pred = self.parse_expr(no_div=True)
            self.expect("/", "'/' closing the predicate")
        t = self.peek()
        if not (t.kind == "op" and t.value == "{"):
            if t.kind == "eof":
                raise self.error_at(t, "expected '{' (a probe's block), found the end of input")
            raise self.error_at(t, f"expected '{{' (a probe's block), found {_describe(t)}")
        body = self.parse_block()
        if self._buf:
            t = self._buf[0]
            raise self.error_at(t, f"unexpected {_describe(t)}")
        return A.Probe(points, pred, body, line=first.line, col=first.col)

    # ---- statements ---------------------------------------------------------------------
    def parse_block(self) -> list[A.Stmt]:
        self.expect("{")
        stmts: list[A.Stmt] = []
        while True:
            if self.accept("}"):
                return stmts
            if self.accept(";"):
                continue
            t = self.peek()
            if t.kind == "eof":
                raise self.error_at(t, "expected '}', found the end of input")
            s = self.parse_stmt()
            stmts.append(s)
            if isinstance(s, (A.If, A.Unroll, A.While)):
                continue
            if self.accept(";"):
                continue
            if not self.at("}"):
                t = self.peek()
                raise self.error_at(t, f"expected ';' or '}}', found {_describe(t)}")

    def parse_stmt(self) -> A.Stmt:
        t = self.peek()
        if t.kind == "ident":
            if t.value == "if":
                return self.parse_if()
            if t.value == "unroll":
                self.next()
                self.expect("(")
                n = self.parse_expr()
                self.expect(")")
                return A.Unroll(n, self.parse_block(), line=t.line, col=t.col)
            if t.value == "while":
                self.next()
                self.expect("(")
                c = self.parse_expr()
                self.expect(")")
                return A.While(c, self.parse_block(), line=t.line, col=t.col)
            if t.value in ("break", "continue", "return"):
                self.next()
                return A.Jump(t.value, line=t.line, col=t.col)
        if t.kind == "op" and t.value == "{":
            body = self.parse_block()
            return A.If(A.Int(1, line=t.line, col=t.col), body, line=t.line, col=t.col)
        e = self.parse_expr()
        nt = self.peek()
        if nt.kind == "op" and nt.value in _ASSIGN_OPS:
            if not isinstance(e, (A.Var, A.MapRef)):
                raise self.error_at(nt, "can only assign to a $variable or an @map")
            self.next()
            v = self.parse_expr()
            op = None if nt.value == "=" else nt.value[:-1]
            return A.Assign(e, v, op, line=e.line, col=e.col)
        return A.ExprStmt(e, line=e.line, col=e.col)

    def parse_if(self) -> A.If:
        t = self.expect("if")
        self.expect("(")
        c = self.parse_expr()
        self.expect(")")
        then = self.parse_block()
        other: list[A.Stmt] = []
        if self.accept("else"):
            if self.at("if"):
                other = [self.parse_if()]
            else:
                other = self.parse_block()
        return A.If(c, then, other, line=t.line, col=t.col)

    # ---- expressions --------------------------------------------------------------------
    def parse_expr(self, no_div: bool = False) -> A.Expr:
        return self.parse_ternary(no_div)

    def parse_ternary(self, no_div: bool) -> A.Expr:
        c = self.parse_binary(0, no_div)
        if self.at("?"):
            self.next()
            a = self.parse_ternary(no_div)
            self.expect(":")
            b = self.parse_ternary(no_div)
            return A.Ternary(c, a, b, line=c.line, col=c.col)
        return c

    def parse_binary(self, level: int, no_div: bool) -> A.Expr:
        if level == len(_BINARY):
            return self.parse_unary(no_div)
        left = self.parse_binary(level + 1, no_div)
        ops = _BINARY[level]
        while True:
            t = self.peek()
            if t.kind != "op" or t.value not in ops:
                return left
            if no_div and t.value == "/":
                return left
            self.next()
            right = self.parse_binary(level + 1, no_div)
            left = A.Binop(t.value, left, right, line=t.line, col=t.col)

    def parse_unary(self, no_div: bool) -> A.Expr:
        t = self.peek()
        if t.kind == "op":
            if t.value in ("!", "~", "-", "*", "&", "+"):
                self.next()
                e = self.parse_unary(no_div)
                if t.value == "+":
                    return e
                if t.value == "-" and isinstance(e, A.Int):
                    return A.Int(-e.value, line=t.line, col=t.col)
                return A.Unop(t.value, e, line=t.line, col=t.col)
            if t.value in ("++", "--"):
                self.next()
                e = self.parse_unary(no_div)
                return A.IncDec(t.value, True, e, line=t.line, col=t.col)
            if t.value == "(" and self._at_cast():
                self.next()
                ty = self.parse_type()
                self.expect(")")
                e = self.parse_unary(no_div)
                return A.Cast(ty, e, line=t.line, col=t.col)
        return self.parse_postfix(no_div)

    def _at_cast(self) -> bool:
        t = self.peek(1)
        if t.kind != "ident":
            return False
        if t.value in ("struct", "union", "enum"):
            return True
        if t.value in _INT_TYPES:
            nt = self.peek(2)
            return nt.kind == "op" and nt.value in (")", "*", "[") or nt.kind == "ident"
        return False

    def parse_type(self) -> A.TypeName:
        t = self.next()
        if t.kind != "ident":
            raise self.error_at(t, f"expected a type, found {_describe(t)}")
        base = t.value
        if base in ("struct", "union", "enum"):
            n = self.next()
            if n.kind != "ident":
                raise self.error_at(n, f"expected a {base} name, found {_describe(n)}")
            base = f"{base} {n.value}"
        else:
            while self.peek().kind == "ident" and self.peek().value in _INT_TYPES:
                base += " " + self.next().value
        ptr = 0
        while self.accept("*"):
            ptr += 1
        array = None
        if self.accept("["):
            n = self.next()
            if n.kind != "int":
                raise self.error_at(n, "expected an array length")
            array = int(n.value)  # type: ignore[arg-type]
            self.expect("]")
        return A.TypeName(base, ptr, array, line=t.line, col=t.col)

    def parse_postfix(self, no_div: bool) -> A.Expr:
        e = self.parse_primary()
        while True:
            t = self.peek()
            if t.kind != "op":
                return e
            if t.value in (".", "->"):
                self.next()
                n = self.next()
                if n.kind == "int" and t.value == ".":
                    e = A.Index(e, A.Int(int(n.value), line=n.line, col=n.col), line=t.line,
                                col=t.col)  # fmt: skip
                    continue
                if n.kind != "ident":
                    raise self.error_at(n, f"expected a field name, found {_describe(n)}")
                e = A.Field(e, str(n.value), t.value == "->", line=t.line, col=t.col)
            elif t.value == "[" and not isinstance(e, A.MapRef):
                self.next()
                i = self.parse_expr()
                self.expect("]")
                e = A.Index(e, i, line=t.line, col=t.col)
            elif t.value in ("++", "--"):
                self.next()
                e = A.IncDec(t.value, False, e, line=e.line, col=e.col)
            else:
                return e

    def parse_primary(self) -> A.Expr:
        t = self.next()
        k, v = t.kind, t.value
        pos = {"line": t.line, "col": t.col}
        if k == "int":
            return A.Int(int(v), **pos)  # type: ignore[arg-type]
        if k == "str":
            s = str(v)
            while self.peek().kind == "str":  # adjacent literals concatenate
                s += str(self.next().value)
            return A.Str(s, **pos)
        if k == "var":
            return A.Var(str(v), **pos)
        if k == "pos":
            n = int(v)  # type: ignore[arg-type]
            return A.Positional(0, True, **pos) if n < 0 else A.Positional(n, **pos)
        if k == "map":
            keys = None
            if self.at("["):
                self.next()
                keys = [self.parse_expr()]
                while self.accept(","):
                    keys.append(self.parse_expr())
                self.expect("]")
            return A.MapRef(str(v), keys, **pos)
        if k == "op" and v == "(":
            e = self.parse_expr()
            if self.accept(","):
                items = [e, self.parse_expr()]
                while self.accept(","):
                    items.append(self.parse_expr())
                self.expect(")")
                return A.Tuple(items, **pos)
            self.expect(")")
            return e
        if k == "ident":
            name = str(v)
            if name in ("sizeof", "offsetof"):
                self.expect("(")
                if name == "offsetof":
                    ty = self.parse_type()
                    self.expect(",")
                    f = self.next()
                    self.expect(")")
                    return A.Offsetof(ty, str(f.value), **pos)
                if self.peek().kind == "ident" and (
                    self.peek().value in ("struct", "union", "enum")
                    or self.peek().value in _INT_TYPES
                ):
                    target: A.TypeName | A.Expr = self.parse_type()
                else:
                    target = self.parse_expr()
                self.expect(")")
                return A.Sizeof(target, **pos)
            if name in _KEYWORDS:
                raise self.error_at(t, f"unexpected keyword '{name}'")
            if self.at("("):
                self.next()
                args: list[A.Expr] = []
                if not self.at(")"):
                    args.append(self.parse_expr())
                    while self.accept(","):
                        args.append(self.parse_expr())
                self.expect(")", "')' closing the call")
                return A.Call(name, args, **pos)
            from .builtins import is_builtin

            if is_builtin(name):
                return A.Builtin(name, **pos)
            return A.Ident(name, **pos)
        raise self.error_at(t, f"unexpected {_describe(t)}")


def _describe(t: Tok) -> str:
    if t.kind == "eof":
        return "the end of input"
    if t.kind == "str":
        return f'string "{t.value}"'
    if t.kind == "var":
        return f"'${t.value}'"
    if t.kind == "map":
        return f"'@{t.value}'"
    if t.kind == "pos":
        return f"'${t.value}'"
    return f"'{t.value}'"


def parse(text: str, origin: str | None = None) -> A.Program:
    """Parse a whole script; :class:`ScriptError` (line, column, caret) when it is malformed."""
    return Parser(text, origin).parse_program()


def parse_expression(text: str) -> A.Expr:
    """Parse one expression (macro bodies, tests)."""
    p = Parser(text)
    e = p.parse_expr()
    t = p.peek()
    if t.kind != "eof":
        raise p.error_at(t, f"unexpected {_describe(t)}")
    return e
