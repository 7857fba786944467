"""Type-check a bpftrace script against the kernel's BTF and tracepoint formats.

:class:`Analyzer` assigns a :class:`~bpfkit.trace.types.Ty` to every expression of one
probe instance (one concrete attach point), infers the key and value types of every map
across all probes, and rejects what bpftrace rejects with a :class:`ScriptError` naming
the line and column.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..errors import NotSupported, ScriptError
from . import ast as A
from . import types as T
from .builtins import AGG_FUNCS, FUNCTIONS, UNSAFE, arg_index
from .probes import ProbePoint, field_type
from .record import DICT, Record

#: Macro constants that tools take from C headers (kernel UAPI facts: socket.h, sched.h).
KNOWN_CONSTANTS = {
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
    "AF_PACKET": 17, "AF_NETLINK": 16,
    "TASK_RUNNING": 0, "TASK_INTERRUPTIBLE": 1, "TASK_UNINTERRUPTIBLE": 2,
    "__TASK_STOPPED": 4, "__TASK_TRACED": 8, "EXIT_DEAD": 16, "EXIT_ZOMBIE": 32,
    "TASK_DEAD": 0x80, "TASK_WAKEKILL": 0x100, "TASK_WAKING": 0x200,
    "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_CREAT": 0o100,
    "SIGKILL": 9, "SIGTERM": 15, "SIGINT": 2, "SIGHUP": 1, "SIGUSR1": 10, "SIGUSR2": 12,
    "EPERM": 1, "ENOENT": 2, "EINTR": 4, "EAGAIN": 11, "ENOMEM": 12, "EACCES": 13,
}  # fmt: skip

_INT_NAMES = {
    "int8": (1, True), "int16": (2, True), "int32": (4, True), "int64": (8, True),
    "uint8": (1, False), "uint16": (2, False), "uint32": (4, False), "uint64": (8, False),
    "s8": (1, True), "s16": (2, True), "s32": (4, True), "s64": (8, True),
    "u8": (1, False), "u16": (2, False), "u32": (4, False), "u64": (8, False),
    "char": (1, True), "unsigned char": (1, False), "signed char": (1, True),
    "short": (2, True), "unsigned short": (2, False), "int": (4, True),
    "unsigned int": (4, False), "unsigned": (4, False), "long": (8, True),
    "unsigned long": (8, False), "long long": (8, True), "unsigned long long": (8, False),
    "bool": (1, False), "size_t": (8, False), "pid_t": (4, True), "uid_t": (4, False),
    "gid_t": (4, False), "umode_t": (2, False), "dev_t": (4, False), "loff_t": (8, True),
    "void": (1, True),
}  # fmt: skip

_FMT_RE = re.compile(
    r"%(?P<flags>-?)(?P<width>[0-9]*)(?:\.(?P<prec>[0-9]+))?"
    r"(?:(?P<conv>rx|r|s|c)|(?P<len>hh|h|ll|l|j|z|t)?(?P<iconv>[duoxXp]))"
)
#: what a printf argument of each type is to bpftrace's format check
_FMT_KIND = {"int": "integer", "ptr": "integer", "str": "string", "buf": "buffer"}
_FMT_STRINGLIKE = ("ksym", "usym", "username", "kstack", "ustack", "inet", "timestamp", "mac",
                   "cgroup_path", "strerror", "probe", "func")  # fmt: skip


class MapInfo(Record):
    """What the program keeps in one map."""

    name: str
    keys: list[T.Ty] | None = None  # None: no [...]
    value: T.Ty | None = None
    line: int = 0
    col: int = 0

    @property
    def key_size(self) -> int:
        if not self.keys:
            return 8
        return max(8, sum(T.storage_size(k) for k in self.keys))


class Instance(Record):
    """One probe at one concrete attach point, with its variables' types."""

    probe: A.Probe
    point: ProbePoint
    vars: dict[str, T.Ty] = DICT


_RIP_SYM = re.compile(r"^-?\d+@([A-Za-z_.$][\w.$]*)([+-](?:0x[0-9a-fA-F]+|\d+))?\(%rip\)$")


def usdt_rip_symbol(site: Any, arg: Any) -> int | None:
    """A ``symbol(%rip)`` USDT argument's link-time address (a global variable), or None.

    The program finds the process's copy from the probe's address: the load bias is
    ``ip - site.address``.
    """
    m = _RIP_SYM.match(arg.spec)
    if m is None:
        return None
    from .symbols import elf_symbol_address

    addr = elf_symbol_address(site.path, m.group(1))
    if addr is None:
        return None
    return addr + (int(m.group(2), 0) if m.group(2) else 0)


def parse_printf_format(fmt: str) -> list[re.Match]:
    """The conversion specifiers of a printf format, found as bpftrace 0.17 finds them.

    bpftrace's pattern is ``%-?[0-9]*(\\.[0-9]+)?(s|r|rx|c|d|u|o|x|X|p|ld|...)`` (the
    lengths ``hh h l ll j z t``): only ``-`` as a flag, no ``%i``, ``%e`` or ``%+d``; text it
    does not match is literal. Each match has the groups ``flags``, ``width``, ``prec``,
    ``len`` and ``conv`` (``conv`` includes no length: ``%ld`` is ``conv == "d"``).
    """
    return [_Spec(m) for m in _FMT_RE.finditer(fmt)]  # type: ignore[misc]


class _Spec:
    """A match of :data:`_FMT_RE` with ``group("conv")`` for both kinds of specifier."""

    __slots__ = ("m",)

    def __init__(self, m: re.Match) -> None:
        self.m = m

    def group(self, name: str) -> Any:
        if name == "conv":
            return self.m.group("conv") or self.m.group("iconv")
        return self.m.group(name)

    def start(self) -> int:
        return self.m.start()

    def end(self) -> int:
        return self.m.end()


def format_arg_kind(t: T.Ty) -> str:
    """What bpftrace's printf check calls a value of type ``t``: integer, string, buffer ..."""
    if t.kind in _FMT_STRINGLIKE:
        return "string"
    return _FMT_KIND.get(t.kind, t.kind)


class Analyzer:
    """Types for every expression; map types across all probes."""

    def __init__(
        self,
        program: A.Program,
        *,
        source: str = "",
        origin: str | None = None,
        params: list[str] | None = None,
        unsafe: bool = False,
        has_cpid: bool = False,
    ):
        self.program = program
        self.lines = source.split("\n")
        self.origin = origin
        self.params = params or []
        self.unsafe = unsafe
        self.has_cpid = has_cpid
        self.maps: dict[str, MapInfo] = {}
        self.final = False
        self.inst: Instance | None = None
        self._macro_depth = 0

    # ---- errors ------------------------------------------------------------------------------
    def err(self, node: A.Node, msg: str) -> ScriptError:
        src = self.lines[node.line - 1] if 0 < node.line <= len(self.lines) else None
        return ScriptError(msg, node.line or None, node.col or None, src, self.origin)

    # ---- BTF ---------------------------------------------------------------------------------
    @functools.cached_property
    def btf(self) -> Any:
        from ..kernel.btf import vmlinux_btf

        try:
            return vmlinux_btf()
        except Exception as e:  # noqa: BLE001 - any failure means "no kernel BTF"
            raise NotSupported(f"kernel BTF (/sys/kernel/btf/vmlinux) unavailable: {e}") from None

    @functools.cached_property
    def enum_values(self) -> dict[str, int]:
        """Every enumerator of the kernel's BTF, by name."""
        from ..btf.types import Enum

        out: dict[str, int] = {}
        btf = self.btf
        for i in range(1, len(btf)):
            t = btf.get(i)
            if isinstance(t, Enum):
                for v in t.values:
                    out.setdefault(v.name, v.value)
        return out

    @functools.cached_property
    def cdefs(self) -> Any:
        """The script's own C definitions (:class:`~bpfkit.trace.cdecl.Definitions`)."""
        from .cdecl import Definitions

        defs = Definitions(self)
        for d in self.program.structs:
            defs.add(d)
        return defs

    def record_type(self, name: str, node: A.Node, script: bool = True) -> T.Ty:
        """``struct foo``: the script's definition if it has one, else the kernel's BTF."""
        from ..btf.types import Struct, Union

        if script and self.program.structs:
            ty = self.cdefs.records.get(name)
            if ty is not None:
                return ty
        kind, _, tag = name.partition(" ")
        if kind not in ("struct", "union"):
            raise self.err(node, f"unknown type {name!r}")
        cls = Union if kind == "union" else Struct
        btf = self.btf
        for t in btf.find_all(tag):
            if type(t) is cls:
                return T.Ty("record", t.size, name=name, btf_id=t.id)
        raise self.err(node, f"unknown {kind} {tag!r} (not in the kernel's BTF)")

    def btf_to_ty(self, type_id: int, space: str = "kernel") -> T.Ty:
        """The bpftrace type of a BTF type."""
        from ..btf import types as B

        btf = self.btf
        t = btf.resolve(type_id) if type_id else btf.get(0)
        if isinstance(t, B.Int):
            if t.bits and t.bits < t.size * 8 and t.bits not in (8, 16, 32, 64):
                return T.Int(t.size, t.signed)
            return T.Int(t.size, t.signed or t.is_char)
        if isinstance(t, B.Enum):
            return T.Int(t.size, bool(t.signed))
        if isinstance(t, B.Ptr):
            tgt = btf.resolve(t.type) if t.type else btf.get(0)
            if isinstance(tgt, (B.Struct, B.Fwd)):
                return T.Ty("ptr", 8, elem=self._record_of(tgt), space=space)
            if isinstance(tgt, B.Void) or t.type == 0:
                return T.Ty("ptr", 8, elem=T.Int(1, True), space=space)
            if isinstance(tgt, B.FuncProto):
                return T.U64
            return T.Ty("ptr", 8, elem=self.btf_to_ty(t.type, space), space=space)
        if isinstance(t, (B.Struct, B.Fwd)):
            return self._record_of(t)
        if isinstance(t, B.Array):
            et = btf.resolve(t.type)
            if isinstance(et, B.Int) and et.size == 1 and (et.is_char or et.signed or True):
                if isinstance(et, B.Int) and et.is_char:
                    return T.Str(t.nelems)
            elem = self.btf_to_ty(t.type, space)
            return T.Ty("array", btf.size_of(t.id), elem=elem, count=t.nelems)
        if isinstance(t, B.Float):
            return T.Int(t.size, True)
        return T.U64

    def _record_of(self, t: Any) -> T.Ty:
        from ..btf import types as B

        kind = "union" if isinstance(t, B.Union) or getattr(t, "is_union", False) else "struct"
        if isinstance(t, B.Fwd):
            for c in self.btf.find_all(t.name):
                if isinstance(c, B.Struct) and (isinstance(c, B.Union) == (kind == "union")):
                    t = c
                    break
            else:
                return T.Ty("record", 0, name=f"{kind} {t.name}", btf_id=t.id)
        return T.Ty("record", t.size, name=f"{kind} {t.name}" if t.name else kind, btf_id=t.id)

    def record_member(self, rec: T.Ty, name: str, node: A.Node) -> tuple[int, T.Ty, int, int]:
        """(byte offset, type, bit offset within the loaded word, bit size) of a member."""
        from ..btf import types as B
        from .cdecl import CLayout

        if (
            not rec.btf_id
            and not isinstance(rec.fields, CLayout)
            and rec.name.startswith(("struct ", "union "))
        ):
            rec = self.record_type(rec.name, node)
        if isinstance(rec.fields, CLayout):
            m = rec.fields.members.get(name)
            if m is None:
                raise self.err(node, f"{rec.name} has no field named {name!r}")
            return m
        if not rec.btf_id:
            raise self.err(node, f"{rec.name} has no field {name!r} (type not known)")
        found = self._find_member(rec.btf_id, name, 0)
        if found is None:
            raise self.err(node, f"{rec.name} has no field named {name!r}")
        bit_off, m = found
        ty = self.btf_to_ty(m.type)
        if m.bitfield_size:
            t = self.btf.resolve(m.type)
            size = t.size if isinstance(t, (B.Int, B.Enum)) else 4
            byte = (bit_off // 8) & ~(size - 1)
            return byte, T.Int(size, ty.signed), bit_off - byte * 8, m.bitfield_size
        return bit_off // 8, ty, 0, 0

    def _find_member(self, type_id: int, name: str, base: int) -> tuple[int, Any] | None:
        from ..btf import types as B

        t = self.btf.resolve(type_id)
        if isinstance(t, B.Fwd):
            rec = self._record_of(t)
            t = self.btf.get(rec.btf_id)
        if not isinstance(t, B.Struct):
            return None
        for m in t.members:
            if m.name == name:
                return base + m.bit_offset, m
        for m in t.members:
            if not m.name:
                r = self._find_member(m.type, name, base + m.bit_offset)
                if r is not None:
                    return r
        return None

    def named_type(self, tn: A.TypeName) -> T.Ty:
        """The type a cast or sizeof names."""
        if tn.base.startswith(("struct ", "union ")):
            base = self.record_type(tn.base, tn)
        elif tn.base.startswith("enum "):
            base = T.Int(4, False)
        elif tn.base in _INT_NAMES:
            size, signed = _INT_NAMES[tn.base]
            base = T.Int(size, signed)
        else:
            raise self.err(tn, f"unknown type {tn.base!r}")
        ty = base
        for _ in range(tn.ptr):
            ty = T.Ty("ptr", 8, elem=ty)
        if tn.array is not None:
            if ty.kind == "int" and ty.size == 1 and ty.signed:
                return T.Str(tn.array)
            ty = T.Ty("array", T.storage_size(ty) * tn.array if ty.kind != "int" else ty.size *
                      tn.array, elem=ty, count=tn.array)  # fmt: skip
        return ty

    # ---- driver ------------------------------------------------------------------------------
    def analyze(self, instances: list[Instance]) -> None:
        """Two passes: the first learns every map's types, the second checks with them."""
        if self.program.structs:
            self.cdefs  # noqa: B018 - lay out the script's C definitions (errors first)
        self.final = False
        for inst in instances:
            self.analyze_instance(inst)
        self.final = True
        for inst in instances:
            self.analyze_instance(inst)
        for mi in self.maps.values():
            if mi.value is None:
                raise self.err(mi, f"map @{mi.name} is read but never assigned")

    def analyze_instance(self, inst: Instance) -> None:
        self.inst = inst
        inst.vars = {}
        p = inst.probe
        if p.pred is not None:
            self.expr(p.pred)
            if not self._truthy(p.pred.ty):
                raise self.err(p.pred, f"a predicate must be an integer, not {p.pred.ty}")
        self.stmts(p.body, loop=False)

    def _truthy(self, t: T.Ty | None) -> bool:
        return t is not None and (t.is_scalar or t.kind in ("none",))

    # ---- statements --------------------------------------------------------------------------
    def stmts(self, body: list[A.Stmt], loop: bool) -> None:
        for s in body:
            self.stmt(s, loop)

    def stmt(self, s: A.Stmt, loop: bool) -> None:
        if isinstance(s, A.ExprStmt):
            e = s.expr
            if isinstance(e, A.Call) and e.name in AGG_FUNCS:
                raise self.err(e, f"{e.name}() must be assigned to a map")
            self.expr(e, stmt=True)
        elif isinstance(s, A.Assign):
            self.assign(s)
        elif isinstance(s, A.If):
            self.expr(s.cond)
            if not self._truthy(s.cond.ty):
                raise self.err(s.cond, f"an if condition must be an integer, not {s.cond.ty}")
            self.stmts(s.then, loop)
            self.stmts(s.other, loop)
        elif isinstance(s, A.Unroll):
            self.expr(s.count)
            n = self.const_int(s.count)
            if n is None or not 1 <= n <= 100:
                raise self.err(s.count, "unroll needs a constant count from 1 to 100")
            self.stmts(s.body, loop)
        elif isinstance(s, A.While):
            self.expr(s.cond)
            if not self._truthy(s.cond.ty):
                raise self.err(s.cond, "a while condition must be an integer")
            self.stmts(s.body, True)
        elif isinstance(s, A.Jump):
            if s.kind in ("break", "continue") and not loop:
                raise self.err(s, f"'{s.kind}' outside of a loop")

    def assign(self, s: A.Assign) -> None:
        v = s.value
        tgt = s.target
        if isinstance(v, A.Call) and v.name in AGG_FUNCS:
            if not isinstance(tgt, A.MapRef) or s.op is not None:
                raise self.err(v, f"{v.name}() must be assigned to a map with '='")
            self.agg_call(v)
            self.map_value(tgt, v.ty, tgt)
            self.map_keys(tgt)
            tgt.ty = v.ty
            return
        self.expr(v)
        vt = v.ty
        if vt is None or vt.kind == "none":
            raise self.err(v, "this expression has no value to assign")
        if vt.is_agg:
            raise self.err(v, "an aggregation cannot be assigned (read it with print())")
        if s.op is not None:
            if not vt.is_int and not (vt.kind == "ptr" and s.op in "+-"):
                raise self.err(v, f"'{s.op}=' needs an integer, not {vt}")
            vt = T.Int(8, vt.signed) if vt.is_int else vt
        if isinstance(tgt, A.Var):
            old = self.inst.vars.get(tgt.name)  # type: ignore[union-attr]
            if s.op is not None and old is None:
                raise self.err(tgt, f"undefined variable ${tgt.name}")
            if old is not None:
                m = T.merge(old, vt)
                if m is None:
                    raise self.err(
                        s, f"type mismatch for ${tgt.name}: {old} and then {vt} assigned"
                    )
                vt = m
            elif vt.kind == "int":
                vt = T.Int(8, vt.signed)
            self.inst.vars[tgt.name] = vt  # type: ignore[union-attr]
            tgt.ty = vt
        else:
            assert isinstance(tgt, A.MapRef)
            self.map_keys(tgt)
            if vt.kind == "int":
                vt = T.Int(8, vt.signed)
            if vt.kind == "record":
                raise self.err(v, f"a whole {vt} cannot be stored in a map (store a field)")
            self.map_value(tgt, vt, s)
            tgt.ty = self.maps[tgt.name].value

    def map_value(self, ref: A.MapRef, vt: T.Ty, node: A.Node) -> None:
        mi = self._map(ref)
        if mi.value is None:
            mi.value = vt
            return
        old = mi.value
        if old.is_agg or vt.is_agg:
            if old.kind != vt.kind or (old.kind == "lhist" and old.extra != vt.extra):
                raise self.err(node, f"@{ref.name} is {old.kind}() elsewhere, {vt.kind} here")
            if vt.signed and not old.signed:
                mi.value = vt
            return
        m = T.merge(old, vt)
        if m is None:
            raise self.err(node, f"type mismatch for @{ref.name}: {old} and {vt}")
        mi.value = m

    def _map(self, ref: A.MapRef) -> MapInfo:
        mi = self.maps.get(ref.name)
        if mi is None:
            mi = self.maps[ref.name] = MapInfo(ref.name, line=ref.line, col=ref.col)
        return mi

    def map_keys(self, ref: A.MapRef) -> None:
        mi = self._map(ref)
        if ref.keys is None:
            kts = None
        else:
            kts = []
            for k in ref.keys:
                self.expr(k)
                kt = k.ty
                if kt is None or kt.kind in ("none", "record") or kt.is_agg:
                    raise self.err(k, f"{kt} cannot be a map key")
                if kt.kind == "int":
                    kt = T.Int(8, kt.signed)
                kts.append(kt)
        if mi.keys is None and mi.value is None and not getattr(mi, "_seen", False):
            mi.keys = kts
            mi._seen = True  # type: ignore[attr-defined]
            return
        if not getattr(mi, "_seen", False):
            mi.keys = kts
            mi._seen = True  # type: ignore[attr-defined]
            return
        if (mi.keys is None) != (kts is None) or (
            kts is not None and len(kts) != len(mi.keys or [])
        ):
            want = "no key" if mi.keys is None else f"{len(mi.keys)} key(s)"
            raise self.err(ref, f"@{ref.name} used with {want} elsewhere")
        if kts is not None:
            merged = []
            for a, b, k in zip(mi.keys or [], kts, ref.keys or [], strict=True):
                m = T.merge(a, b)
                if m is None:
                    raise self.err(k, f"@{ref.name}: key type {b} differs from {a} elsewhere")
                merged.append(m)
            mi.keys = merged

    # ---- expressions ---------------------------------------------------------------------------
    def const_int(self, e: A.Expr) -> int | None:
        """The value of a constant integer expression, else ``None``."""
        if isinstance(e, A.Int):
            return e.value
        if isinstance(e, A.Unop) and e.op == "-":
            v = self.const_int(e.expr)
            return None if v is None else -v
        if isinstance(e, A.Positional) and isinstance(getattr(e, "const", None), int):
            return e.const  # type: ignore[attr-defined]
        if isinstance(e, A.Ident) and isinstance(getattr(e, "const", None), int):
            return e.const  # type: ignore[attr-defined]
        if isinstance(e, A.Binop):
            a, b = self.const_int(e.left), self.const_int(e.right)
            if a is None or b is None:
                return None
            try:
                return {"+": a + b, "-": a - b, "*": a * b, "<<": a << b, ">>": (a & ((1 << 64) - 1)) >> b,
                        "/": a // b if b else None, "%": a % b if b else None}.get(e.op)  # fmt: skip
            except (ValueError, OverflowError):
                return None
        if isinstance(e, A.Sizeof | A.Offsetof):
            return getattr(e, "const", None)
        return None

    def expr(self, e: A.Expr, stmt: bool = False) -> T.Ty:
        fn = getattr(self, "e_" + type(e).__name__)
        t = fn(e) if not isinstance(e, A.Call) else fn(e, stmt)
        e.ty = t
        return t

    def e_Int(self, e: A.Int) -> T.Ty:
        if e.value >= 1 << 63:
            return T.U64
        return T.S64

    def e_Str(self, e: A.Str) -> T.Ty:
        return T.Str(len(e.value.encode("latin-1", "replace")) + 1)

    def e_Var(self, e: A.Var) -> T.Ty:
        t = self.inst.vars.get(e.name)  # type: ignore[union-attr]
        if t is None:
            raise self.err(e, f"undefined variable ${e.name}")
        return t

    def e_Positional(self, e: A.Positional) -> T.Ty:
        if e.count:
            e.const = len(self.params)  # type: ignore[attr-defined]
            return T.S64
        if e.n == 0:
            raise self.err(e, "$0 is not a positional parameter")
        v = self.params[e.n - 1] if e.n <= len(self.params) else ""
        try:
            e.const = int(v, 0) if v else 0  # type: ignore[attr-defined]
            return T.S64
        except ValueError:
            e.const = v  # type: ignore[attr-defined]
            return T.Str(len(v.encode()) + 1)

    def e_MapRef(self, e: A.MapRef) -> T.Ty:
        self.map_keys(e)
        mi = self.maps[e.name]
        if mi.value is None:
            if self.final:
                raise self.err(e, f"undefined map @{e.name} (read but never assigned)")
            return T.S64
        v = mi.value
        if v.is_agg:
            if v.kind in ("count", "sum", "min", "max", "avg"):
                return T.Int(8, v.signed or v.kind in ("min", "max", "avg"))
            return v
        return v

    def e_Ident(self, e: A.Ident) -> T.Ty:
        defines = self.program.defines
        if e.name in defines:
            from .parser import parse_expression

            if self._macro_depth > 10:
                raise self.err(e, f"macro {e.name} expands into itself")
            try:
                body = parse_expression(defines[e.name])
            except ScriptError:
                raise self.err(e, f"macro {e.name} is not an expression") from None
            self._macro_depth += 1
            try:
                self.expr(body)
            finally:
                self._macro_depth -= 1
            e.expansion = body  # type: ignore[attr-defined]
            c = self.const_int(body)
            if c is not None:
                e.const = c  # type: ignore[attr-defined]
            return body.ty  # type: ignore[return-value]
        if self.program.structs and e.name in self.cdefs.enums:
            e.const = self.cdefs.enums[e.name]  # type: ignore[attr-defined]
            return T.S64
        if e.name in KNOWN_CONSTANTS:
            e.const = KNOWN_CONSTANTS[e.name]  # type: ignore[attr-defined]
            return T.S64
        try:
            vals = self.enum_values
        except NotSupported:
            vals = {}
        if e.name in vals:
            e.const = vals[e.name]  # type: ignore[attr-defined]
            return T.S64
        raise self.err(e, f"unknown identifier '{e.name}'")

    def e_Builtin(self, e: A.Builtin) -> T.Ty:
        n = e.name
        pp = self.inst.point  # type: ignore[union-attr]
        prov = pp.provider
        ai = arg_index(n)
        if ai is not None:
            idx, stack = ai
            if prov == "usdt" and not stack and pp.usdt is not None:
                args = pp.usdt.args
                if idx >= len(args):
                    raise self.err(e, f"{n}: usdt probe {pp.func} has {len(args)} argument(s)")
                a = args[idx]
                if not a.supported and usdt_rip_symbol(pp.usdt, a) is None:
                    raise self.err(e, f"{n}: argument {a.spec!r} of {pp.func}: {a.reason}")
                return T.U64  # bpftrace types them uint64 (the value is still sign-extended)
            if prov in ("uprobe", "kprobe", "usdt") and not stack:
                if prov != "usdt" and idx > 5:
                    raise self.err(e, f"{n}: only arg0-arg5 are in registers")
                return T.U64
            if prov == "rawtracepoint" and not stack:
                return T.U64
            if prov in ("uprobe", "kprobe") and stack:
                return T.U64
            raise self.err(e, f"{n} is not available in {prov} probes")
        if n in ("pid", "tid", "uid", "gid", "nsecs", "elapsed", "cpu", "cgroup", "rand",
                 "numaid", "jiffies"):  # fmt: skip
            return (
                T.U64 if n not in ("pid", "tid", "uid", "gid", "cpu", "rand", "numaid") else T.U64
            )
        if n == "comm":
            return T.Str(16)
        if n == "cpid":
            if not self.has_cpid:
                raise self.err(e, "cpid needs a -c command")
            return T.U64
        if n in ("kstack", "stack"):
            return T.Ty("kstack", 8, extra=("bpftrace", 127))
        if n == "ustack":
            return T.Ty("ustack", 8, extra=("bpftrace", 127))
        if n == "curtask":
            try:
                rec = self.record_type("struct task_struct", e)
            except (ScriptError, NotSupported):
                return T.U64
            return T.Ty("ptr", 8, elem=rec)
        if n == "username":
            return T.Ty("username")
        if n == "probe":
            return T.Ty("probe")
        if n == "func":
            if prov not in ("uprobe", "uretprobe", "kprobe", "kretprobe", "kfunc", "kretfunc"):
                raise self.err(e, f"func is not available in {prov} probes")
            if prov == "uprobe":  # bpftrace: usym() of the instruction pointer
                return T.Ty("usym", 16)
            return T.Ty("func")
        if n == "retval":
            if prov not in ("uretprobe", "kretprobe", "kretfunc"):
                raise self.err(e, f"retval is only available in return probes, not {prov}")
            return T.U64
        if n == "ctx":
            if prov == "iter":  # struct bpf_iter__TARGET *: the object the kernel visits
                rec = self.record_type(f"struct bpf_iter__{pp.target}", e, script=False)
                return T.Ty("ptr", 8, elem=rec)
            return T.U64
        if n == "args":
            if prov == "tracepoint":
                user = pp.target == "syscalls"
                fields = {}
                for f in pp.fields:
                    fields[f.name] = (f, field_type(f, user))
                return T.Ty("record", 0, name="args", space="ctx", fields=fields)
            raise self.err(e, f"args is not available in {prov} probes")
        raise self.err(e, f"unknown builtin {n}")

    def e_Binop(self, e: A.Binop) -> T.Ty:
        lt = self.expr(e.left)
        rt = self.expr(e.right)
        op = e.op
        if op in ("&&", "||"):
            for side in (e.left, e.right):
                if not self._truthy(side.ty):
                    raise self.err(side, f"'{op}' needs integers, not {side.ty}")
            return T.Int(8, self.binop_signed(e))
        if lt.kind in ("str", "buf") or rt.kind in ("str", "buf"):
            if op not in ("==", "!=") or lt.kind != rt.kind:
                raise self.err(e, f"cannot apply '{op}' to {lt} and {rt}")
            return T.S64
        ok = {"int", "ptr", "ksym", "func", "username", "probe"}
        if lt.kind not in ok or rt.kind not in ok:
            raise self.err(e, f"cannot apply '{op}' to {lt} and {rt}")
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return T.Int(8, self.binop_signed(e))
        if lt.kind == "ptr" and rt.kind == "int" and op in ("+", "-"):
            return lt
        if rt.kind == "ptr" and lt.kind == "int" and op == "+":
            return rt
        return T.Int(8, self.binop_signed(e))

    def binop_signed(self, e: A.Binop) -> bool:
        """A binary operation's sign, bpftrace's rule: signed when both sides are (a shift:
        when its left side is)."""
        lt, rt = e.left.ty, e.right.ty
        ls = bool(lt is not None and lt.kind == "int" and lt.signed)
        rs = bool(rt is not None and rt.kind == "int" and rt.signed)
        return ls if e.op in ("<<", ">>") else ls and rs

    def e_Unop(self, e: A.Unop) -> T.Ty:
        t = self.expr(e.expr)
        if e.op == "*":
            if t.kind != "ptr":
                raise self.err(e, f"cannot dereference {t}")
            return t.elem  # type: ignore[return-value]
        if e.op == "&":
            raise self.err(e, "the address-of operator is not supported")
        if not t.is_scalar:
            raise self.err(e, f"cannot apply '{e.op}' to {t}")
        # bpftrace 0.17: `!x` is unsigned, of x's size; `-x` and `~x` have x's sign and are
        # computed at x's width (an unsigned narrow x wraps there: ~(uint32)255 is
        # 0xffffff00); a signed narrow x's result is sign-extended (bpftrace prints it
        # zero-extended from its width: not reproduced, see docs/trace.md)
        size = t.size if t.is_int else 8
        if e.op == "!":
            return T.Int(size, False)
        signed = bool(t.is_int and t.signed)
        return T.Int(size if not signed else 8, signed)

    def e_IncDec(self, e: A.IncDec) -> T.Ty:
        tgt = e.target
        if isinstance(tgt, A.Var):
            t = self.inst.vars.get(tgt.name)  # type: ignore[union-attr]
            if t is None or not t.is_int:
                raise self.err(tgt, f"${tgt.name} must be an integer assigned before {e.op}")
            tgt.ty = t
            return t
        if isinstance(tgt, A.MapRef):
            self.map_keys(tgt)
            mi = self.maps[tgt.name]
            if mi.value is None:
                mi.value = T.S64
            elif not mi.value.is_int:
                raise self.err(tgt, f"@{tgt.name} is {mi.value}, not an integer")
            tgt.ty = mi.value
            return mi.value
        raise self.err(e, f"{e.op} needs a $variable or an @map")

    def e_Ternary(self, e: A.Ternary) -> T.Ty:
        self.expr(e.cond)
        if not self._truthy(e.cond.ty):
            raise self.err(e.cond, "a condition must be an integer")
        a = self.expr(e.then)
        b = self.expr(e.other)
        if a.kind == "none" and b.kind == "none":
            return T.NONE
        m = T.merge(a, b)
        if m is None:
            raise self.err(e, f"ternary branches differ: {a} and {b}")
        return T.Int(8, a.is_int and a.signed) if m.is_int else m  # the first branch's sign

    def e_Field(self, e: A.Field) -> T.Ty:
        base = self.expr(e.expr)
        if base.kind == "ptr" and base.elem is not None and base.elem.kind == "record":
            if not e.arrow and base.elem.space != "ctx":
                raise self.err(e, f"{base} is a pointer: use '->' to reach {e.name!r}")
            rec = base.elem
        elif base.kind == "record":
            if e.arrow and base.space != "ctx":
                raise self.err(e, f"{base} is not a pointer: use '.' to reach {e.name!r}")
            rec = base
        elif base.kind == "tuple":
            raise self.err(e, "tuple members are reached with .0, .1 ...")
        else:
            raise self.err(e, f"{base} has no fields (can't reach {e.name!r})")
        if isinstance(rec.fields, dict):  # tracepoint args
            f = rec.fields.get(e.name)
            if f is None:
                pp = self.inst.point  # type: ignore[union-attr]
                raise self.err(
                    e,
                    f"tracepoint {pp.target}:{pp.func} has no field {e.name!r} (fields: "
                    + ", ".join(rec.fields)
                    + ")",
                )
            e.member = (f[0].offset, f[1], 0, 0, f[0])  # type: ignore[attr-defined]
            return f[1]
        off, ty, bit, bits = self.record_member(rec, e.name, e)
        e.member = (off, ty, bit, bits, None)  # type: ignore[attr-defined]
        # a member is in the memory its struct was read from
        space = base.space if base.kind == "ptr" else rec.space
        if ty.kind in ("ptr", "record"):
            ty = T.with_space(ty, space if space != "ctx" else "kernel")
        return ty

    def e_Index(self, e: A.Index) -> T.Ty:
        base = self.expr(e.expr)
        self.expr(e.index)
        if base.kind == "tuple":
            i = self.const_int(e.index)
            if i is None or not 0 <= i < len(base.items):
                raise self.err(e.index, f"tuple index must be a constant below {len(base.items)}")
            return base.items[i]
        if not e.index.ty.is_int:  # type: ignore[union-attr]
            raise self.err(e.index, "an index must be an integer")
        if base.kind == "array":
            i = self.const_int(e.index)
            if i is not None and not 0 <= i < base.count:
                raise self.err(e.index, f"index {i} out of bounds for {base}")
            return base.elem  # type: ignore[return-value]
        if base.kind == "ptr":
            return base.elem  # type: ignore[return-value]
        if base.kind in ("str", "buf"):
            return T.Int(1, True)
        raise self.err(e, f"{base} cannot be indexed")

    def e_Cast(self, e: A.Cast) -> T.Ty:
        t = self.expr(e.expr)
        to = self.named_type(e.type)
        if to.kind == "record":
            raise self.err(e, "cast to a struct value: cast to a pointer instead")
        if not (t.is_scalar or (t.kind == "array" and to.kind == "array")):
            raise self.err(e, f"cannot cast {t} to {to}")
        if to.kind == "ptr":
            # a pointer keeps its memory; an integer points where this probe's addresses do
            to = T.with_space(to, t.space if t.kind == "ptr" else self.default_space())
        return to

    def default_space(self) -> str:
        """Where an address of this probe points when its type does not say (bpftrace's
        rule): user memory in uprobes and usdt probes, kernel memory in kprobes and
        tracepoints, either elsewhere (``BEGIN``, ``profile`` ...: the legacy helpers)."""
        prov = self.inst.point.provider if self.inst is not None else ""
        if prov in ("uprobe", "uretprobe", "usdt"):
            return "user"
        if prov in (
            "kprobe",
            "kretprobe",
            "kfunc",
            "kretfunc",
            "tracepoint",
            "rawtracepoint",
            "iter",
        ):
            return "kernel"
        return "any"

    def e_Tuple(self, e: A.Tuple) -> T.Ty:
        items = []
        for i in e.items:
            t = self.expr(i)
            if t.kind in ("none", "record") or t.is_agg:
                raise self.err(i, f"{t} cannot be in a tuple")
            items.append(T.Int(8, t.signed) if t.is_int else t)
        return T.Tuple(tuple(items))

    def e_Sizeof(self, e: A.Sizeof) -> T.Ty:
        if isinstance(e.target, A.TypeName):
            t = self.named_type(e.target)
        else:
            t = self.expr(e.target)
        e.const = t.size  # type: ignore[attr-defined]
        return T.U64

    def e_Offsetof(self, e: A.Offsetof) -> T.Ty:
        rec = self.named_type(e.type)
        if rec.kind != "record":
            raise self.err(e, "offsetof needs a struct type")
        off, _, _, _ = self.record_member(rec, e.field, e)
        e.const = off  # type: ignore[attr-defined]
        return T.U64

    # ---- calls ---------------------------------------------------------------------------------
    def e_Call(self, e: A.Call, stmt: bool = False) -> T.Ty:
        n = e.name
        if n not in FUNCTIONS:
            raise self.err(e, f"unknown function {n}()")
        lo, hi = FUNCTIONS[n]
        if not lo <= len(e.args) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.err(e, f"{n}() takes {want} argument(s), {len(e.args)} given")
        if n in AGG_FUNCS:
            raise self.err(e, f"{n}() must be assigned to a map")
        if n in UNSAFE and not self.unsafe:
            raise self.err(e, f"{n}() is unsafe: run with --unsafe to allow it")
        fn = getattr(self, "f_" + n, None)
        if fn is None:
            raise self.err(e, f"{n}() is not supported by bpfkit yet")
        t = fn(e)
        if t.kind == "none" and not stmt and n not in ("exit",):
            pass
        return t

    def agg_call(self, e: A.Call) -> None:
        n = e.name
        lo, hi = FUNCTIONS[n]
        if not lo <= len(e.args) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.err(e, f"{n}() takes {want} argument(s), {len(e.args)} given")
        for a in e.args:
            self.expr(a)
            if not (a.ty and a.ty.is_scalar):
                raise self.err(a, f"{n}() needs an integer, not {a.ty}")
        signed = bool(e.args and e.args[0].ty.signed)  # type: ignore[union-attr]
        extra: tuple = ()
        if n == "lhist":
            vals = [self.const_int(a) for a in e.args[1:]]
            if any(v is None for v in vals):
                raise self.err(e, "lhist() min, max and step must be constants")
            lo_, hi_, step = vals
            if step <= 0 or hi_ <= lo_ or lo_ < 0:  # type: ignore[operator]
                raise self.err(e, "lhist() needs 0 <= min < max and step > 0")
            if (hi_ - lo_) // step > 1000:  # type: ignore[operator]
                raise self.err(e, "lhist() has too many buckets (max 1000)")
            extra = (lo_, hi_, step)
        e.ty = T.Agg(n, signed or n in ("min", "max", "avg", "stats"), extra)

    def _str_lit(self, a: A.Expr, what: str) -> str:
        if isinstance(a, A.Str):
            self.expr(a)
            return a.value
        if isinstance(a, A.Positional):
            self.expr(a)
            c = getattr(a, "const", None)
            if isinstance(c, str):
                return c
        raise self.err(a, f"{what} must be a string literal")

    def _check_format(self, e: A.Call, what: str) -> None:
        fmt = self._str_lit(e.args[0], f"{what}() format")
        specs = parse_printf_format(fmt)
        args = e.args[1:]
        for a in args:
            self.expr(a)
            if a.ty.kind in ("none", "record") or a.ty.is_agg:  # type: ignore[union-attr]
                raise self.err(a, f"{what}() cannot print {a.ty}")
        if len(args) < len(specs):
            raise self.err(e, f"{what}: Not enough arguments for format string "
                              f"({len(args)} supplied, {len(specs)} expected)")  # fmt: skip
        if len(args) > len(specs):
            raise self.err(e, f"{what}: Too many arguments for format string "
                              f"({len(args)} supplied, {len(specs)} expected)")  # fmt: skip
        for m, a in zip(specs, args, strict=True):
            conv = m.group("conv")
            want = {"s": "string", "r": "buffer", "rx": "buffer"}.get(conv, "integer")
            have = format_arg_kind(a.ty)  # type: ignore[arg-type]
            if have != want:
                token = (m.group("len") or "") + conv
                raise self.err(a, f"{what}: %{token} specifier expects a value of type {want} "
                                  f"({have} supplied)")  # fmt: skip
        e.fmt = fmt  # type: ignore[attr-defined]

    def f_printf(self, e: A.Call) -> T.Ty:
        self._check_format(e, "printf")
        return T.NONE

    def f_system(self, e: A.Call) -> T.Ty:
        self._check_format(e, "system")
        return T.NONE

    def f_cat(self, e: A.Call) -> T.Ty:
        self._check_format(e, "cat")
        return T.NONE

    def f_time(self, e: A.Call) -> T.Ty:
        e.fmt = self._str_lit(e.args[0], "time() format") if e.args else "%H:%M:%S\n"  # type: ignore[attr-defined]
        return T.NONE

    def f_strftime(self, e: A.Call) -> T.Ty:
        fmt = self._str_lit(e.args[0], "strftime() format")
        self._int_arg(e.args[1], "strftime")
        return T.Ty("timestamp", 8, extra=(fmt,))

    def f_exit(self, e: A.Call) -> T.Ty:
        return T.NONE

    def _int_arg(self, a: A.Expr, fn: str) -> T.Ty:
        t = self.expr(a)
        if not t.is_scalar:
            raise self.err(a, f"{fn}() needs an integer, not {t}")
        return t

    def _map_arg(self, a: A.Expr, fn: str, keys_ok: bool = False) -> MapInfo:
        if not isinstance(a, A.MapRef) or (a.keys is not None and not keys_ok):
            raise self.err(a, f"{fn}() needs a map like @name")
        mi = self.maps.get(a.name)
        if mi is None:
            mi = self._map(a)
        return mi

    def f_print(self, e: A.Call) -> T.Ty:
        a = e.args[0]
        if isinstance(a, A.MapRef) and a.keys is None:
            self._map_arg(a, "print")
            a.ty = self.maps[a.name].value
            for x in e.args[1:]:
                self._int_arg(x, "print")
                if self.const_int(x) is None:
                    raise self.err(x, "print() top and div must be constants")
            return T.NONE
        if len(e.args) > 1:
            raise self.err(e, "print() of a value takes one argument")
        t = self.expr(a)
        if t.kind in ("none", "record") or t.is_agg:
            raise self.err(a, f"print() cannot print {t}")
        return T.NONE

    def f_clear(self, e: A.Call) -> T.Ty:
        self._map_arg(e.args[0], "clear")
        return T.NONE

    f_zero = f_clear

    def f_delete(self, e: A.Call) -> T.Ty:
        a = e.args[0]
        if len(e.args) == 2:  # delete(@m, key) (newer form)
            if not isinstance(a, A.MapRef) or a.keys is not None:
                raise self.err(a, "delete() needs a map")
            a.keys = [e.args[1]]
            e.args = [a]
        if not isinstance(a, A.MapRef):
            raise self.err(a, "delete() needs a map element like @name[key] or a map @name")
        self.map_keys(a)  # a map without keys: delete(@x) removes its one element
        return T.NONE

    def f_str(self, e: A.Call) -> T.Ty:
        t = self.expr(e.args[0])
        if len(e.args) == 2:
            self._int_arg(e.args[1], "str")
        if t.kind == "str":
            return t
        if not (t.is_scalar or t.kind in ("array", "buf")):
            raise self.err(e.args[0], f"str() needs a pointer or an integer, not {t}")
        n = self.const_int(e.args[1]) if len(e.args) == 2 else None
        size = T.DEFAULT_STRLEN if n is None else max(1, min(n + 1, 1024))
        if t.kind == "array":
            size = max(size, t.size + 1) if n is None else size
        return T.Str(size)

    def f_buf(self, e: A.Call) -> T.Ty:
        t = self.expr(e.args[0])
        n = None
        if len(e.args) == 2:
            self._int_arg(e.args[1], "buf")
            n = self.const_int(e.args[1])
            if n is None:
                n = 64
        elif t.kind in ("array", "str", "buf"):
            n = t.size
        else:
            raise self.err(e, "buf() of a pointer needs a length")
        return T.Ty("buf", max(1, min(n, 1024)))

    def f_join(self, e: A.Call) -> T.Ty:
        t = self.expr(e.args[0])
        if t.kind not in ("ptr", "int"):
            raise self.err(e.args[0], f"join() needs an array of strings (char **), not {t}")
        if len(e.args) == 2:
            e.delim = self._str_lit(e.args[1], "join() delimiter")  # type: ignore[attr-defined]
        else:
            e.delim = " "  # type: ignore[attr-defined]
        return T.NONE

    def f_ksym(self, e: A.Call) -> T.Ty:
        self._int_arg(e.args[0], "ksym")
        return T.Ty("ksym")

    def f_usym(self, e: A.Call) -> T.Ty:
        self._int_arg(e.args[0], "usym")
        return T.Ty("usym", 16)

    def f_kaddr(self, e: A.Call) -> T.Ty:
        name = self._str_lit(e.args[0], "kaddr() symbol")
        from .symbols import kernel_symbol_address

        addr = kernel_symbol_address(name)
        if addr is None:
            raise self.err(e.args[0], f"kernel symbol {name!r} not found")
        e.const = addr  # type: ignore[attr-defined]
        return T.U64

    def f_uaddr(self, e: A.Call) -> T.Ty:
        name = self._str_lit(e.args[0], "uaddr() symbol")
        pp = self.inst.point  # type: ignore[union-attr]
        if pp.provider not in ("uprobe", "uretprobe", "usdt"):
            raise self.err(e, "uaddr() is only available in uprobe and usdt probes")
        from .symbols import elf_symbol_address

        addr = elf_symbol_address(pp.target, name)
        if addr is None:
            raise self.err(e.args[0], f"symbol {name!r} not found in {pp.target}")
        e.const = addr  # type: ignore[attr-defined]
        return T.U64

    def f_ntop(self, e: A.Call) -> T.Ty:
        for a in e.args:
            self.expr(a)
        addr = e.args[-1].ty
        if not (addr.is_int or (addr.kind in ("array", "str", "buf") and addr.size in (4, 16))):  # type: ignore[union-attr]
            raise self.err(e.args[-1], f"ntop() needs an IPv4/IPv6 address, not {addr}")
        return T.Ty("inet", 24)

    def f_macaddr(self, e: A.Call) -> T.Ty:
        t = self.expr(e.args[0])
        if not (t.kind in ("array", "str", "buf", "ptr") or t.is_int):
            raise self.err(e.args[0], f"macaddr() needs a 6-byte array, not {t}")
        return T.Ty("mac", 6)

    def f_bswap(self, e: A.Call) -> T.Ty:
        t = self._int_arg(e.args[0], "bswap")
        return T.Int(t.size if t.is_int else 8, False)

    def f_cgroupid(self, e: A.Call) -> T.Ty:
        from .symbols import resolve_cgroupid

        path = self._str_lit(e.args[0], "cgroupid() path")
        try:
            e.const = resolve_cgroupid(path)  # type: ignore[attr-defined]
        except OSError as ex:
            raise self.err(e.args[0], f"cgroupid(): failed to get the cgroup id of {path!r}: "
                                      f"{ex.strerror}") from None  # fmt: skip
        return T.U64

    def f_strncmp(self, e: A.Call) -> T.Ty:
        a = self.expr(e.args[0])
        b = self.expr(e.args[1])
        self._int_arg(e.args[2], "strncmp")
        if a.kind != "str" or b.kind != "str":
            raise self.err(e, "strncmp() compares two strings")
        if self.const_int(e.args[2]) is None:
            raise self.err(e.args[2], "strncmp() length must be a constant")
        return T.S64

    def f_strcontains(self, e: A.Call) -> T.Ty:
        a = self.expr(e.args[0])
        b = self.expr(e.args[1])
        if a.kind != "str" or b.kind != "str":
            raise self.err(e, "strcontains() takes two strings")
        return T.S64

    def f_signal(self, e: A.Call) -> T.Ty:
        a = e.args[0]
        if isinstance(a, A.Str):
            import signal as _sig

            name = a.value if a.value.startswith("SIG") else "SIG" + a.value
            num = getattr(_sig.Signals, name, None) if name in _sig.Signals.__members__ else None
            if num is None:
                raise self.err(a, f"unknown signal {a.value!r}")
            e.args[0] = A.Int(int(num), line=a.line, col=a.col)
        self._int_arg(e.args[0], "signal")
        return T.NONE

    def f_kstack(self, e: A.Call) -> T.Ty:
        return self._stack(e, "kstack")

    def f_ustack(self, e: A.Call) -> T.Ty:
        return self._stack(e, "ustack")

    def _stack(self, e: A.Call, kind: str) -> T.Ty:
        mode, depth = "bpftrace", 127
        for a in e.args:
            if isinstance(a, A.Ident) and a.name in ("bpftrace", "perf", "raw"):
                mode = a.name
            else:
                self.expr(a)
                v = self.const_int(a)
                if v is None or not 1 <= v <= 127:
                    raise self.err(a, f"{kind}() depth must be a constant 1-127")
                depth = v
        return T.Ty(kind, 8, extra=(mode, depth))

    def f_kptr(self, e: A.Call) -> T.Ty:
        t = self._int_arg(e.args[0], "kptr")
        return t if t.kind != "ptr" else T.Ty("ptr", 8, elem=t.elem, space="kernel")

    def f_uptr(self, e: A.Call) -> T.Ty:
        t = self._int_arg(e.args[0], "uptr")
        return t if t.kind != "ptr" else T.Ty("ptr", 8, elem=t.elem, space="user")

    def f_reg(self, e: A.Call) -> T.Ty:
        from .codegen import PT_REGS

        name = self._str_lit(e.args[0], "reg() name")
        if name not in PT_REGS:
            raise self.err(e.args[0], f"unknown register {name!r}")
        prov = self.inst.point.provider  # type: ignore[union-attr]
        if prov not in ("uprobe", "uretprobe", "kprobe", "kretprobe", "profile", "usdt",
                        "software", "hardware", "interval"):  # fmt: skip
            raise self.err(e, f"reg() is not available in {prov} probes")
        return T.U64

    def f_strerror(self, e: A.Call) -> T.Ty:
        self._int_arg(e.args[0], "strerror")
        return T.Ty("strerror")

    def f_cgroup_path(self, e: A.Call) -> T.Ty:
        self._int_arg(e.args[0], "cgroup_path")
        pattern = self._str_lit(e.args[1], "cgroup_path() filter") if len(e.args) > 1 else "*"
        return T.Ty("cgroup_path", extra=(pattern,))

    def f_path(self, e: A.Call) -> T.Ty:
        raise self.err(e, "path() needs fentry/kfunc probes (BPF trampolines), unavailable here")

    def f_override(self, e: A.Call) -> T.Ty:
        raise self.err(e, "override() needs kprobes, which this kernel does not have")

    def f_pton(self, e: A.Call) -> T.Ty:
        import ipaddress

        s = self._str_lit(e.args[0], "pton() address")
        try:
            packed = ipaddress.ip_address(s).packed
        except ValueError:
            raise self.err(e.args[0], f"pton(): {s!r} is not an IP address") from None
        e.const_bytes = packed  # type: ignore[attr-defined]
        return T.Ty("array", len(packed), elem=T.Int(1, False), count=len(packed))
