"""C struct definitions → BTF, for events whose type is not in any BTF at hand.

:func:`parse_c` reads the declarations a BPF tool shares between its program and user
space — ``struct``/``union``/``enum`` definitions, ``typedef``\\ s and integer
``#define``\\ s — and lays them out as C does on 64-bit Linux (and the BPF target): natural
alignment, bit-fields that do not straddle their unit, ``__attribute__((packed))`` and
``aligned(N)``. The result is a :class:`~bpfkit.btf.types.Btf` that the codecs read like
any other. It knows the C base types, the kernel's ``__u32``/``u32``/``__be16`` family,
``<stdint.h>``'s ``uint32_t`` family, ``bool``, ``size_t``, ``pid_t``, ``uid_t``; pointers are
8 bytes. Anything else is a :class:`~bpfkit.errors.SourceError` with line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SourceError
from ..uapi.btf import BTF_INT_BOOL, BTF_INT_SIGNED
from .types import (
    Array,
    Btf,
    BtfType,
    Enum,
    EnumValue,
    Float,
    Int,
    Member,
    Ptr,
    Struct,
    Typedef,
    Union,
    Void,
)

__all__ = ["parse_c", "CDecls"]

_TOKEN = re.compile(
    r"""(?P<ws>\s+|//[^\n]*|/\*.*?\*/)
      | (?P<pp>\#[^\n]*)
      | (?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)
      | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>[{}\[\]();:,*=+\-<>|&~])""",
    re.X | re.S,
)

# base type words → (size, signed, encoding extra, float)
_WORDS = {"signed", "unsigned", "char", "short", "int", "long", "_Bool", "float", "double"}
_ALIASES = {
    **{f"__u{b}": (b // 8, False) for b in (8, 16, 32, 64)},
    **{f"__s{b}": (b // 8, True) for b in (8, 16, 32, 64)},
    **{f"u{b}": (b // 8, False) for b in (8, 16, 32, 64)},
    **{f"s{b}": (b // 8, True) for b in (8, 16, 32, 64)},
    **{f"uint{b}_t": (b // 8, False) for b in (8, 16, 32, 64)},
    **{f"int{b}_t": (b // 8, True) for b in (8, 16, 32, 64)},
    **{f"__be{b}": (b // 8, False) for b in (16, 32, 64)},
    **{f"__le{b}": (b // 8, False) for b in (16, 32, 64)},
    "__wsum": (4, False),
    "__sum16": (2, False),
    "size_t": (8, False),
    "ssize_t": (8, True),
    "uintptr_t": (8, False),
    "pid_t": (4, True),
    "uid_t": (4, False),
    "gid_t": (4, False),
    "dev_t": (4, False),
    "ino_t": (8, False),
    "off_t": (8, True),
}
_QUALIFIERS = {"const", "volatile", "restrict", "__restrict", "static", "extern", "register"}


@dataclass
class _Tok:
    kind: str
    text: str
    line: int
    col: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos, line, bol = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SourceError(
                f"unexpected character {text[pos]!r}", line=line, column=pos - bol + 1
            )
        kind = m.lastgroup or "op"
        if kind not in ("ws",):
            out.append(_Tok(kind, m.group(), line, m.start() - bol + 1))
        chunk = m.group()
        nl = chunk.count("\n")
        if nl:
            line += nl
            bol = m.start() + chunk.rindex("\n") + 1
        pos = m.end()
    out.append(_Tok("end", "", line, pos - bol + 1))
    return out


class CDecls:
    """The types a piece of C declares, as BTF (:attr:`btf`), found by name (:meth:`find`)."""

    def __init__(self, text: str) -> None:
        self.types: list[BtfType] = [Void(0, "void")]
        self.tags: dict[str, int] = {}  # "struct foo" / "union foo" / "enum foo" -> id
        self.typedefs: dict[str, int] = {}
        self.defines: dict[str, int] = {}
        self.order: list[int] = []  # struct/union ids in definition order
        self._ints: dict[tuple, int] = {}
        self._layout: dict[int, tuple[int, int]] = {}  # id -> (size, align)
        self._toks = _tokens(text)
        self._i = 0
        self._parse()
        self.btf = Btf(self.types)

    # ---- lookups ---------------------------------------------------------------------
    def find(self, name: str | None = None) -> int:
        """The id of ``name`` (``struct x``, ``x``, a typedef), or the last struct defined."""
        if name is None:
            if not self.order:
                raise SourceError("no struct or union is defined")
            return self.order[-1]
        name = " ".join(name.split())
        if name in self.tags:
            return self.tags[name]
        if name in self.typedefs:
            return self.typedefs[name]
        for word in ("struct", "union", "enum"):
            if f"{word} {name}" in self.tags:
                return self.tags[f"{word} {name}"]
        raise SourceError(f"no type {name!r} is defined")

    # ---- tokens ----------------------------------------------------------------------
    def _peek(self, k: int = 0) -> _Tok:
        return self._toks[min(self._i + k, len(self._toks) - 1)]

    def _next(self) -> _Tok:
        t = self._peek()
        if t.kind != "end":
            self._i += 1
        return t

    def _error(self, msg: str, tok: _Tok | None = None) -> SourceError:
        tok = tok or self._peek()
        return SourceError(msg, line=tok.line, column=tok.col)

    def _expect(self, text: str) -> _Tok:
        t = self._peek()
        if t.text != text or t.kind == "end":
            got = "end of input" if t.kind == "end" else repr(t.text)
            raise self._error(f"expected {text!r}, got {got}")
        return self._next()

    def _accept(self, text: str) -> bool:
        if self._peek().text == text and self._peek().kind != "end":
            self._next()
            return True
        return False

    # ---- types -----------------------------------------------------------------------
    def _add(self, t: BtfType, size: int, align: int) -> int:
        t.id = len(self.types)
        self.types.append(t)
        self._layout[t.id] = (size, align)
        return t.id

    def _int(self, size: int, signed: bool, name: str, enc: int = 0) -> int:
        key = (name, size, signed, enc)
        if key not in self._ints:
            encoding = enc | (BTF_INT_SIGNED if signed else 0)
            self._ints[key] = self._add(Int(0, name, size, encoding, 0, size * 8), size, size)
        return self._ints[key]

    def _size_align(self, tid: int) -> tuple[int, int]:
        if tid == 0:
            raise self._error("a member cannot have type void")
        return self._layout[tid]

    # ---- the grammar -----------------------------------------------------------------
    def _parse(self) -> None:
        while self._peek().kind != "end":
            t = self._peek()
            if t.kind == "pp":
                self._next()
                self._directive(t)
                continue
            if self._accept(";"):
                continue
            if self._accept("typedef"):
                base = self._type_spec()
                while True:
                    tid, name, _ = self._declarator(base)
                    if name is None:
                        raise self._error("a typedef needs a name")
                    size, align = self._layout.get(tid, (0, 1))
                    self.typedefs[name] = self._add(Typedef(0, name, tid), size, align)
                    if not self._accept(","):
                        break
                self._expect(";")
                continue
            base = self._type_spec()
            if self._accept(";"):
                continue
            # a variable declaration: skip it (only types matter)
            while not self._accept(";"):
                if self._peek().kind == "end":
                    raise self._error("expected ';'")
                self._next()

    def _directive(self, tok: _Tok) -> None:
        m = re.match(r"#\s*define\s+([A-Za-z_]\w*)\s+(.+?)\s*$", tok.text)
        if m:
            try:
                self.defines[m.group(1)] = self._const_expr_text(m.group(2))
            except ValueError:
                pass  # not an integer: a define the types do not need

    def _const_expr_text(self, text: str) -> int:
        """An integer constant expression: numbers, #defines, + - * / % << >> & | ^ ~ ( )."""
        toks = re.findall(r"0[xX][0-9a-fA-F]+|\d+|[A-Za-z_]\w*|<<|>>|\S", text)
        toks = [re.sub(r"[uUlL]+$", "", t) if t[0].isdigit() else t for t in toks]
        return _Expr(toks, self.defines).value()

    def _number(self) -> int:
        """An array size or bit width: a number, a #define, or a small sum/product."""
        parts: list[str] = []
        depth = 0
        while True:
            t = self._peek()
            if t.kind == "end" or (depth == 0 and t.text in ("]", ";", ",", "}")):
                break
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                if depth == 0:
                    break
                depth -= 1
            if t.kind == "id" and t.text not in self.defines and t.text != "sizeof":
                raise self._error(f"unknown constant {t.text!r}", t)
            parts.append(str(self.defines[t.text]) if t.kind == "id" else t.text)
            self._next()
        if not parts:
            raise self._error("expected a number")
        try:
            v = self._const_expr_text(" ".join(parts))
        except ValueError:
            raise self._error(f"cannot evaluate {' '.join(parts)!r}") from None
        if v < 0:
            raise self._error(f"negative size {v}")
        return v

    def _attributes(self) -> dict[str, int]:
        """``__attribute__((packed, aligned(N)))`` (and the ``__packed``/``__aligned`` words)."""
        out: dict[str, int] = {}
        while True:
            t = self._peek()
            if t.text == "__packed":
                self._next()
                out["packed"] = 1
            elif t.text in ("__attribute__", "__attribute"):
                self._next()
                self._expect("(")
                self._expect("(")
                while not self._accept(")"):
                    w = self._next()
                    if w.text in ("packed", "__packed__"):
                        out["packed"] = 1
                    elif w.text in ("aligned", "__aligned__"):
                        if self._accept("("):
                            out["aligned"] = self._number()
                            self._expect(")")
                        else:
                            out["aligned"] = 8
                    elif w.kind == "end":
                        raise self._error("unterminated __attribute__")
                self._expect(")")
            else:
                return out

    def _type_spec(self) -> int:
        """A type specifier: base words, a typedef name, or a struct/union/enum."""
        words: list[str] = []
        while True:
            t = self._peek()
            if t.kind == "id" and t.text in _QUALIFIERS:
                self._next()
                continue
            if t.kind == "id" and t.text in ("struct", "union"):
                if words:
                    raise self._error("unexpected struct", t)
                return self._record()
            if t.kind == "id" and t.text == "enum":
                if words:
                    raise self._error("unexpected enum", t)
                return self._enum()
            if t.kind == "id" and t.text in _WORDS:
                words.append(self._next().text)
                continue
            if t.kind == "id" and not words and t.text in ("bool",):
                self._next()
                return self._int(1, False, "_Bool", BTF_INT_BOOL)
            if t.kind == "id" and not words and t.text == "void":
                self._next()
                return 0
            if t.kind == "id" and not words and t.text in self.typedefs:
                self._next()
                return self.typedefs[t.text]
            if t.kind == "id" and not words and t.text in _ALIASES:
                self._next()
                size, signed = _ALIASES[t.text]
                base = self._int(size, signed, _c_name(size, signed))
                tid = self._add(Typedef(0, t.text, base), size, size)
                self.typedefs[t.text] = tid
                return tid
            break
        if not words:
            t = self._peek()
            raise self._error(
                f"expected a type, got {t.text!r}" if t.kind != "end" else "expected a type"
            )
        return self._base(words)

    def _base(self, words: list[str]) -> int:
        w = sorted(words)
        signed = "unsigned" not in w
        if "float" in w:
            return self._add(Float(0, "float", 4), 4, 4)
        if "double" in w:
            size = 16 if "long" in w else 8
            return self._add(Float(0, "long double" if size == 16 else "double", size), size, size)
        if "_Bool" in w:
            return self._int(1, False, "_Bool", BTF_INT_BOOL)
        if "char" in w:
            if "signed" in w or "unsigned" in w:
                return self._int(1, signed, "unsigned char" if not signed else "signed char")
            return self._int(1, True, "char")  # as clang: signed, named "char"
        if "short" in w:
            return self._int(2, signed, "short int" if signed else "short unsigned int")
        longs = w.count("long")
        if longs >= 1:
            return self._int(
                8,
                signed,
                ("long " * longs + "int") if signed else ("long " * longs + "unsigned int"),
            )
        return self._int(4, signed, "int" if signed else "unsigned int")

    def _record(self) -> int:
        kw = self._next().text
        attrs = self._attributes()
        name = None
        if self._peek().kind == "id" and self._peek().text != "{":
            name = self._next().text
        key = f"{kw} {name}" if name else None
        if not self._accept("{"):
            if key is None:
                raise self._error(f"expected '{{' after {kw}")
            if key not in self.tags:
                raise self._error(f"{key} is not defined (only complete types can be decoded)")
            return self.tags[key]
        members: list[tuple[int, str, int]] = []  # (type, name, bits or -1)
        while not self._accept("}"):
            if self._peek().kind == "end":
                raise self._error("expected '}'")
            base = self._type_spec()
            if self._accept(";"):  # an anonymous struct/union member
                members.append((base, "", -1))
                continue
            while True:
                tid, mname, _ = self._declarator(base)
                bits = -1
                if self._accept(":"):
                    bits = self._number()
                members.append((tid, mname or "", bits))
                if not self._accept(","):
                    break
            self._expect(";")
        attrs.update(self._attributes())
        tid = self._layout_record(kw == "union", name or "", members, attrs)
        if key:
            self.tags[key] = tid
        self.order.append(tid)
        return tid

    def _layout_record(self, is_union: bool, name: str, members: list, attrs: dict) -> int:
        packed = "packed" in attrs
        out: list[Member] = []
        pos = 0  # bits
        size = 0
        align = 1
        for tid, mname, bits in members:
            msize, malign = self._size_align(tid)
            if packed:
                malign = 1
            if bits >= 0:
                unit = msize * 8
                if bits > unit:
                    raise self._error(f"bit-field {mname!r} is wider than its type")
                start = 0 if is_union else pos
                if not packed and unit and bits and start // unit != (start + bits - 1) // unit:
                    start = (start + unit - 1) // unit * unit
                if bits == 0:  # an unnamed zero-width bit-field: align to the next unit
                    pos = (pos + unit - 1) // unit * unit if unit else pos
                    continue
                if mname:
                    out.append(Member(mname, tid, start, bits))
                pos = max(pos, start + bits) if not is_union else pos
                size = max(size, (start + bits + 7) // 8)
                align = max(align, malign)
                continue
            start = 0 if is_union else (pos + 8 * malign - 1) // (8 * malign) * (8 * malign)
            out.append(Member(mname, tid, start, 0))
            if not is_union:
                pos = start + 8 * msize
            size = max(size, start // 8 + msize)
            align = max(align, malign)
        if "aligned" in attrs:
            align = max(align, attrs["aligned"])
        size = (max(size, (pos + 7) // 8) + align - 1) // align * align
        cls = Union if is_union else Struct
        kflag = any(m.bitfield_size for m in out)
        return self._add(cls(0, name, size, out, kflag), size, align)

    def _enum(self) -> int:
        self._next()
        attrs = self._attributes()
        name = None
        if self._peek().kind == "id":
            name = self._next().text
        key = f"enum {name}" if name else None
        if not self._accept("{"):
            if key is None or key not in self.tags:
                raise self._error(f"{key or 'enum'} is not defined")
            return self.tags[key]
        values: list[EnumValue] = []
        nxt = 0
        while not self._accept("}"):
            t = self._next()
            if t.kind != "id":
                raise self._error(f"expected an enumerator, got {t.text!r}", t)
            if self._accept("="):
                neg = self._accept("-")
                nxt = self._number() * (-1 if neg else 1)
            values.append(EnumValue(t.text, nxt))
            self.defines[t.text] = nxt
            nxt += 1
            if not self._accept(","):
                self._expect("}")
                break
        attrs.update(self._attributes())
        signed = any(v.value < 0 for v in values)
        size = 4
        if "packed" in attrs:
            hi = max((abs(v.value) for v in values), default=0)
            size = 1 if hi < 128 else 2 if hi < 32768 else 4
        if any(not -(1 << 31) <= v.value < (1 << 32) for v in values):
            size = 8
        tid = self._add(Enum(0, name or "", size, values, signed), size, size)
        if key:
            self.tags[key] = tid
        return tid

    def _declarator(self, base: int) -> tuple[int, str | None, bool]:
        """``*name[2][3]`` or ``(*name)(...)`` (a function pointer) over ``base``."""
        stars = 0
        while self._accept("*"):
            stars += 1
            while self._peek().text in _QUALIFIERS:
                self._next()
        name = None
        fnptr = False
        if self._accept("("):  # (*name)(params): a function pointer
            self._expect("*")
            if self._peek().kind == "id":
                name = self._next().text
            self._expect(")")
            self._expect("(")
            depth = 1
            while depth:
                t = self._next()
                if t.kind == "end":
                    raise self._error("unterminated parameter list")
                depth += {"(": 1, ")": -1}.get(t.text, 0)
            fnptr = True
        elif self._peek().kind == "id" and self._peek().text not in ("__attribute__",):
            name = self._next().text
        dims: list[int] = []
        while self._accept("["):
            dims.append(self._number() if self._peek().text != "]" else 0)
            self._expect("]")
        self._attributes()
        tid = base
        for _ in range(stars):
            tid = self._add(Ptr(0, "", tid), 8, 8)
        if fnptr:
            tid = self._add(Ptr(0, "", 0), 8, 8)
        for n in reversed(dims):
            esize, ealign = self._size_align(tid)
            tid = self._add(
                Array(0, "", tid, self._int(4, False, "unsigned int"), n), esize * n, ealign
            )
        return tid, name, fnptr


_LIMIT = 1 << 64
_BINARY = [("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%")]


class _Expr:
    """A tiny evaluator of integer constant expressions (no names but #defines; bounded)."""

    def __init__(self, toks: list[str], names: dict[str, int]) -> None:
        self.toks, self.names, self.i = toks, names, 0

    def value(self) -> int:
        v = self._binary(0)
        if self.i != len(self.toks):
            raise ValueError("trailing tokens")
        return v

    def _binary(self, level: int) -> int:
        if level == len(_BINARY):
            return self._unary()
        v = self._binary(level + 1)
        while self.i < len(self.toks) and self.toks[self.i] in _BINARY[level]:
            op = self.toks[self.i]
            self.i += 1
            r = self._binary(level + 1)
            if op in ("/", "%") and r == 0:
                raise ValueError("division by zero")
            if op in ("<<", ">>") and not 0 <= r < 64:
                raise ValueError("shift out of range")
            v = _apply(op, v, r)
            if not -_LIMIT < v < _LIMIT:
                raise ValueError("constant out of range")
        return v

    def _unary(self) -> int:
        if self.i >= len(self.toks):
            raise ValueError("expected a number")
        t = self.toks[self.i]
        self.i += 1
        if t == "-":
            return -self._unary()
        if t == "+":
            return self._unary()
        if t == "~":
            return ~self._unary()
        if t == "(":
            v = self._binary(0)
            if self.i >= len(self.toks) or self.toks[self.i] != ")":
                raise ValueError("expected ')'")
            self.i += 1
            return v
        if t[0].isdigit():
            return int(t, 0) if not (len(t) > 1 and t[0] == "0" and t[1].isdigit()) else int(t, 8)
        if t in self.names:
            return self.names[t]
        raise ValueError(f"unknown name {t!r}")


def _apply(op: str, a: int, b: int) -> int:
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    if op == "&":
        return a & b
    if op == "<<":
        return a << b
    if op == ">>":
        return a >> b
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncates toward zero
    return q if op == "/" else a - q * b


def _c_name(size: int, signed: bool) -> str:
    return {
        (1, False): "unsigned char",
        (1, True): "signed char",
        (2, False): "short unsigned int",
        (2, True): "short int",
        (4, False): "unsigned int",
        (4, True): "int",
        (8, False): "long long unsigned int",
        (8, True): "long long int",
    }[(size, signed)]


def parse_c(text: str) -> CDecls:
    """The types that C ``text`` declares (see the module docstring for what it reads)."""
    if not isinstance(text, str):
        raise SourceError("C declarations must be text")
    try:
        return CDecls(text)
    except RecursionError:
        raise SourceError("declarations nested too deeply") from None
