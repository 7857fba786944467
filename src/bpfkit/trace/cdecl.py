"""C ``struct``/``union``/``enum`` definitions written in a script, laid out as a C compiler
would for x86-64 (the System V ABI): what ``(struct foo *)ptr``, ``sizeof`` and
``offsetof`` then use.

bpftrace hands such definitions to clang; bpfkit lays them out itself: members in order,
each at the next multiple of its alignment; a union's members all at 0; the size rounded
up to the largest alignment; bit-fields packed into units of their declared type (a field
that would straddle a unit starts the next one; ``:0`` closes the unit). Member types are
C's integer types, pointers, arrays, other script definitions, and the kernel's types
from BTF (``struct load_weight``, typedefs such as ``u64``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import ScriptError
from . import ast as A
from . import types as T

_TOKEN = re.compile(
    r"\s+|//[^\n]*|/\*.*?\*/|(?P<id>[A-Za-z_]\w*)|(?P<num>0[xX][0-9a-fA-F]+|\d+)[uUlL]*"
    r"|(?P<p>[{};,*\[\]:()=+\-])",
    re.S,
)
_QUALIFIERS = {"const", "volatile", "static", "extern", "register", "restrict", "__restrict",
               "__attribute__", "__packed", "__user", "__rcu", "__iomem", "__percpu"}  # fmt: skip
_BASE_WORDS = {"char", "short", "int", "long", "signed", "unsigned", "bool", "_Bool", "void",
               "float", "double"}  # fmt: skip
_C_INTS = {
    "char": (1, True), "signed char": (1, True), "unsigned char": (1, False),
    "short": (2, True), "unsigned short": (2, False), "int": (4, True), "signed": (4, True),
    "unsigned": (4, False), "unsigned int": (4, False), "long": (8, True),
    "unsigned long": (8, False), "long long": (8, True), "unsigned long long": (8, False),
    "bool": (1, False), "_Bool": (1, False), "void": (1, True), "float": (4, True),
    "double": (8, True), "long double": (16, True),
}  # fmt: skip
_FIXED = {
    "u8": (1, False), "u16": (2, False), "u32": (4, False), "u64": (8, False),
    "s8": (1, True), "s16": (2, True), "s32": (4, True), "s64": (8, True),
    "__u8": (1, False), "__u16": (2, False), "__u32": (4, False), "__u64": (8, False),
    "__s8": (1, True), "__s16": (2, True), "__s32": (4, True), "__s64": (8, True),
    "uint8_t": (1, False), "uint16_t": (2, False), "uint32_t": (4, False),
    "uint64_t": (8, False), "int8_t": (1, True), "int16_t": (2, True), "int32_t": (4, True),
    "int64_t": (8, True), "size_t": (8, False), "ssize_t": (8, True), "pid_t": (4, True),
    "uid_t": (4, False), "gid_t": (4, False), "loff_t": (8, True), "off_t": (8, True),
    "uintptr_t": (8, False), "intptr_t": (8, True),
}  # fmt: skip


class CLayout:
    """A script-defined record: its size, alignment and members (anonymous ones flattened)."""

    def __init__(self, name: str, size: int, align: int,
                 members: dict[str, tuple[int, T.Ty, int, int]]) -> None:  # fmt: skip
        self.name = name
        self.size = size
        self.align = align
        #: name -> (byte offset, type, bit offset in the loaded unit, bit count or 0)
        self.members = members


class _Tokens:
    def __init__(self, text: str, err: Callable[[str, int], ScriptError]) -> None:
        self.toks: list[tuple[str, str, int]] = []
        self.err = err
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise err(f"unexpected {text[pos]!r} in a C definition", pos)
            kind = m.lastgroup
            if kind is not None:
                self.toks.append((kind, m.group(kind), m.start()))
            pos = m.end()
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str, int]:
        j = self.i + k
        return (
            self.toks[j]
            if j < len(self.toks)
            else ("eof", "", self.toks[-1][2] if self.toks else 0)
        )

    def next(self) -> tuple[str, str, int]:
        t = self.peek()
        self.i += 1
        return t

    def at(self, v: str) -> bool:
        return self.peek()[1] == v and self.peek()[0] != "eof"

    def expect(self, v: str) -> tuple[str, str, int]:
        t = self.next()
        if t[1] != v or t[0] == "eof":
            raise self.err(f"expected {v!r} in a C definition, found {t[1] or 'the end'!r}", t[2])
        return t


class _Type:
    """A C type during layout: its bpftrace type, size and alignment."""

    def __init__(self, ty: T.Ty, size: int, align: int) -> None:
        self.ty, self.size, self.align = ty, size, align


class Definitions:
    """Every ``struct``/``union``/``enum`` the script defines, in order."""

    def __init__(self, analyzer: Any) -> None:
        self.an = analyzer
        self.records: dict[str, T.Ty] = {}  # "struct foo" -> record type (fields: CLayout)
        self.enums: dict[str, int] = {}

    # ---- the driver ----------------------------------------------------------------------
    def add(self, d: A.CStruct) -> None:
        def err(msg: str, off: int) -> ScriptError:
            before = d.text[:off]
            line = d.line + before.count("\n")
            col = (off - before.rfind("\n")) if "\n" in before else d.col + off
            return self.an.err(A.Node(line=line, col=col), msg)

        toks = _Tokens(d.text, err)
        kind = toks.next()[1]
        name = toks.next()[1]
        if kind == "enum":
            self._enum(toks)
        else:
            self._record(toks, kind, name)
        if toks.at(";"):
            toks.next()
        if toks.peek()[0] != "eof":
            t = toks.peek()
            raise err(f"unexpected {t[1]!r} after the definition", t[2])

    def _enum(self, toks: _Tokens) -> None:
        toks.expect("{")
        value = 0
        while not toks.at("}"):
            kind, name, off = toks.next()
            if kind != "id":
                raise toks.err(f"expected an enumerator, found {name!r}", off)
            if toks.at("="):
                toks.next()
                neg = False
                if toks.at("-"):
                    toks.next()
                    neg = True
                k, v, o = toks.next()
                if k == "num":
                    value = int(v, 0)
                elif k == "id" and v in self.enums:
                    value = self.enums[v]
                else:
                    raise toks.err("an enumerator's value must be a number", o)
                value = -value if neg else value
            self.enums[name] = value
            value += 1
            if toks.at(","):
                toks.next()
        toks.expect("}")

    def _record(self, toks: _Tokens, kind: str, name: str) -> T.Ty:
        members: dict[str, tuple[int, T.Ty, int, int]] = {}
        full = f"{kind} {name}" if name else kind
        if name:  # visible to its own members (a pointer to itself)
            self.records[full] = T.Ty("record", 0, name=full, fields=CLayout(full, 0, 1, members))
        toks.expect("{")
        union = kind == "union"
        bit = 0  # the next free bit
        size = 0
        align = 1
        while not toks.at("}"):
            if toks.peek()[0] == "eof":
                raise toks.err(f"unterminated {full}", toks.peek()[2])
            base, _ = self._type_spec(toks)
            if toks.at(";"):  # an anonymous struct/union member: its members join ours
                toks.next()
                lay = base.ty.fields if isinstance(base.ty.fields, CLayout) else None
                if lay is None:
                    continue
                off = 0 if union else _round_up((bit + 7) // 8, base.align)
                for mname, (moff, mty, mbit, mbits) in lay.members.items():
                    members[mname] = (off + moff, mty, mbit, mbits)
                align = max(align, base.align)
                size = max(size, off + base.size)
                if not union:
                    bit = (off + base.size) * 8
                continue
            while True:
                mname, mtype, width = self._declarator(toks, base)
                if width is not None:  # a bit-field: packed into units of its type
                    unit = mtype.size * 8
                    start = 0 if union else bit
                    if width == 0:
                        bit = _round_up(start, unit)
                    else:
                        if start // unit != (start + width - 1) // unit:
                            start = _round_up(start, unit)
                        byte = (start // unit) * mtype.size
                        if mname:
                            members[mname] = (byte, T.Int(mtype.size, mtype.ty.signed),
                                              start - byte * 8, width)  # fmt: skip
                        align = max(align, mtype.align)
                        size = max(size, (start + width + 7) // 8)
                        if not union:
                            bit = start + width
                else:
                    off = 0 if union else _round_up((bit + 7) // 8, mtype.align)
                    if mname:
                        members[mname] = (off, mtype.ty, 0, 0)
                    align = max(align, mtype.align)
                    size = max(size, off + mtype.size)
                    if not union:
                        bit = (off + mtype.size) * 8
                if toks.at(","):
                    toks.next()
                    continue
                toks.expect(";")
                break
        toks.expect("}")
        size = _round_up(max(size, (bit + 7) // 8 if not union else size), align)
        ty = T.Ty("record", size, name=full, fields=CLayout(full, size, align, members))
        if name:
            self.records[full] = ty
        return ty

    # ---- types -------------------------------------------------------------------------------
    def _type_spec(self, toks: _Tokens) -> tuple[_Type, str]:
        words: list[str] = []
        while True:
            kind, v, off = toks.peek()
            if kind != "id":
                break
            if v in _QUALIFIERS:
                toks.next()
                if v == "__attribute__" and toks.at("("):
                    self._skip_parens(toks)
                continue
            if v in ("struct", "union", "enum"):
                if words:
                    break
                toks.next()
                k2, tag, o2 = toks.peek()
                if toks.at("{"):  # an anonymous (or inline) definition
                    if v == "enum":
                        self._enum(toks)
                        return _Type(T.Int(4, False), 4, 4), "enum"
                    ty = self._record(toks, v, "")
                    lay = ty.fields
                    return _Type(ty, ty.size, lay.align), v
                if k2 != "id":
                    raise toks.err(f"expected a {v} name", o2)
                toks.next()
                if toks.at("{"):  # a named definition inside a member list
                    if v == "enum":
                        self._enum(toks)
                        return _Type(T.Int(4, False), 4, 4), "enum"
                    ty = self._record(toks, v, tag)
                    return _Type(ty, ty.size, ty.fields.align), v
                return self._named(f"{v} {tag}", o2, toks), v
            if v in _BASE_WORDS:
                words.append(v)
                toks.next()
                continue
            if not words:
                toks.next()
                return self._typedef(v, off, toks), v
            break
        if not words:
            t = toks.peek()
            raise toks.err(f"expected a type, found {t[1] or 'the end'!r}", t[2])
        ws = sorted(words, key=lambda w: w not in ("signed", "unsigned"))  # sign first
        if len(ws) > 1 and "int" in ws:
            ws.remove("int")
        if len(ws) > 1 and ws[0] == "signed" and ws[1] != "char":
            ws = ws[1:]
        key = " ".join(ws)
        if key not in _C_INTS:
            raise toks.err(f"unknown C type {' '.join(words)!r}", toks.peek()[2])
        size, signed = _C_INTS[key]
        return _Type(T.Int(min(size, 8), signed), size, size), key

    def _typedef(self, name: str, off: int, toks: _Tokens) -> _Type:
        if name in _FIXED:
            size, signed = _FIXED[name]
            return _Type(T.Int(size, signed), size, size)
        btf = self._btf()
        if btf is not None:
            from ..btf import types as B

            for t in btf.find_all(name):
                if isinstance(t, B.Typedef):
                    return self._from_btf(t.id)
        raise toks.err(f"unknown type {name!r} (not a C type, nor a typedef in the kernel's BTF)",
                       off)  # fmt: skip

    def _named(self, full: str, off: int, toks: _Tokens) -> _Type:
        ty = self.records.get(full)
        if ty is not None:
            lay = ty.fields
            return _Type(ty, lay.size, lay.align)
        if full.startswith("enum "):
            return _Type(T.Int(4, False), 4, 4)
        try:
            rec = self.an.record_type(full, A.Node(), script=False)
        except ScriptError:
            rec = None
        if rec is None or not rec.btf_id:
            # only a pointer to it can be declared (C's incomplete type)
            return _Type(T.Ty("record", 0, name=full), 0, 1)
        return _Type(rec, rec.size, self._btf_align(rec.btf_id))

    def _from_btf(self, type_id: int) -> _Type:
        btf = self._btf()
        ty = self.an.btf_to_ty(type_id)
        return _Type(ty, btf.size_of(type_id), self._btf_align(type_id))

    def _btf(self) -> Any:
        try:
            return self.an.btf
        except Exception:  # noqa: BLE001 - no kernel BTF: C types only
            return None

    def _btf_align(self, type_id: int, depth: int = 0) -> int:
        from ..btf import types as B

        btf = self._btf()
        t = btf.resolve(type_id)
        if isinstance(t, B.Ptr):
            return 8
        if isinstance(t, (B.Int, B.Enum, B.Float)):
            return max(1, min(t.size, 16))
        if isinstance(t, B.Array):
            return self._btf_align(t.type, depth + 1) if depth < 32 else 1
        if isinstance(t, B.Struct):
            if depth >= 32 or not t.members:
                return 1
            return max(self._btf_align(m.type, depth + 1) for m in t.members)
        return 1

    def _declarator(self, toks: _Tokens, base: _Type) -> tuple[str, _Type, int | None]:
        ptrs = 0
        while toks.at("*") or (toks.peek()[0] == "id" and toks.peek()[1] in _QUALIFIERS):
            if toks.next()[1] == "*":
                ptrs += 1
        name = ""
        if toks.at("("):  # a function pointer: (*name)(...)
            toks.next()
            while toks.at("*"):
                toks.next()
            if toks.peek()[0] == "id":
                name = toks.next()[1]
            toks.expect(")")
            if toks.at("("):
                self._skip_parens(toks)
            return name, _Type(T.U64, 8, 8), None
        if toks.peek()[0] == "id":
            name = toks.next()[1]
        mtype = base
        if ptrs:
            elem = (
                base.ty if base.ty.kind != "record" or base.size or base.ty.name else T.Int(1, True)
            )
            ty = T.Ty("ptr", 8, elem=elem)
            for _ in range(ptrs - 1):
                ty = T.Ty("ptr", 8, elem=ty)
            mtype = _Type(ty, 8, 8)
        dims = []
        while toks.at("["):
            toks.next()
            if toks.at("]"):
                dims.append(0)  # a flexible array member
            else:
                k, v, off = toks.next()
                if k != "num":
                    raise toks.err("an array length must be a number", off)
                dims.append(int(v, 0))
            toks.expect("]")
        for n in reversed(dims):
            if mtype.ty.kind == "int" and mtype.size == 1 and mtype.ty.signed and not ptrs:
                mtype = _Type(T.Str(n), n, 1)
            else:
                mtype = _Type(T.Ty("array", mtype.size * n, elem=mtype.ty, count=n),
                              mtype.size * n, mtype.align)  # fmt: skip
        if mtype.size == 0 and not dims and mtype.ty.kind == "record":
            raise toks.err(f"{mtype.ty.name} is not defined (only a pointer to it can be)",
                           toks.peek()[2])  # fmt: skip
        width = None
        if toks.at(":"):
            toks.next()
            k, v, off = toks.next()
            if k != "num" or mtype.ty.kind != "int":
                raise toks.err("a bit-field needs an integer type and a width", off)
            width = int(v, 0)
            if width > mtype.size * 8:
                raise toks.err(f"bit-field {name} is wider than its type", off)
        return name, mtype, width

    @staticmethod
    def _skip_parens(toks: _Tokens) -> None:
        depth = 0
        while True:
            k, v, off = toks.next()
            if k == "eof":
                raise toks.err("unbalanced parentheses", off)
            if v == "(":
                depth += 1
            elif v == ")":
                depth -= 1
                if depth == 0:
                    return


def _round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a if a > 1 else n
