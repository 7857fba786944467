"""CO-RE: adjust a program's field offsets, sizes, existence checks, type ids and enum values
to the running kernel's BTF (``/sys/kernel/btf/vmlinux``) before loading it.

Each ``bpf_core_relo`` record of ``.BTF.ext`` names an instruction, a local BTF type and
an access string (``0:2:1`` = array index 0 of the root type, member 2, member 1). The
local access is turned into a *spec* (named member steps and array steps) and matched
against every target type with the same essential name (``task_struct___old`` matches
``task_struct``): members are found by name, through anonymous structs and unions, and
the final field must be of a compatible kind. All matching candidates must agree.

The computed value is written into the instruction: the immediate of an ALU op or of a
64-bit ``lddw``, or the offset of a load/store (whose size follows a field that changed
size). A relocation that cannot be satisfied is not an error at load time: its
instruction becomes a call to an invalid helper (:data:`POISON_CORE` + index), so the
verifier only complains if the program can actually reach it — the same contract as
libbpf, which lets ``bpf_core_field_exists()`` guard optional fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..btf.types import Array, Btf, BtfType, Enum, FuncProto, Fwd, Int, Ptr, Struct
from ..errors import BpfError, BtfError
from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..uapi.btf import BtfKind, CoreReloKind

__all__ = [
    "CoreError",
    "CoreResult",
    "POISON_CORE",
    "essential_name",
    "resolve_relocation",
    "apply_core",
    "poison_reason",
]

#: helper id of a poisoned instruction: ``POISON_CORE + relocation index``
POISON_CORE = 0x0BAD_C000
_POISON_LIMIT = 0x1000

_FIELD_KINDS = {
    CoreReloKind.FIELD_BYTE_OFFSET,
    CoreReloKind.FIELD_BYTE_SIZE,
    CoreReloKind.FIELD_EXISTS,
    CoreReloKind.FIELD_SIGNED,
    CoreReloKind.FIELD_LSHIFT_U64,
    CoreReloKind.FIELD_RSHIFT_U64,
}
_TYPE_KINDS = {
    CoreReloKind.TYPE_ID_LOCAL,
    CoreReloKind.TYPE_ID_TARGET,
    CoreReloKind.TYPE_EXISTS,
    CoreReloKind.TYPE_SIZE,
    CoreReloKind.TYPE_MATCHES,
}
_ENUM_KINDS = {CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE}
_EXISTS_KINDS = {
    CoreReloKind.FIELD_EXISTS,
    CoreReloKind.TYPE_EXISTS,
    CoreReloKind.ENUMVAL_EXISTS,
    CoreReloKind.TYPE_MATCHES,
}
_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)
_SIZE_CODE = {1: op.B, 2: op.H, 4: op.W, 8: op.DW}
_CODE_SIZE = {v: k for k, v in _SIZE_CODE.items()}


class CoreError(BpfError):
    """A CO-RE relocation that is malformed or ambiguous (not merely unsatisfied)."""


def essential_name(name: str) -> str:
    """A type name without its ``___flavour`` suffix."""
    i = name.find("___")
    return name[:i] if i > 0 else name


# ---------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    name: str | None  # member name, or None for an array index
    index: int
    type_id: int  # the member's (or element's) type in its own BTF


@dataclass
class _Spec:
    root: int
    steps: list[_Step]
    bit_offset: int
    final_type: int
    bitfield_size: int
    access: list[int]


@dataclass(frozen=True)
class CoreResult:
    """What one relocation resolved to: local and target values, or why it failed."""

    kind: int
    local_value: int
    value: int
    ok: bool
    local_size: int = 0
    target_size: int = 0
    target_type: int = 0
    reason: str = ""
    int_field: bool = False
    #: a bitfield: the compiler's own offset may differ (it aligns to the struct), so
    #: the instruction's value is not checked against the local computation
    bitfield: bool = False


def _is_composite(t: BtfType) -> bool:
    return t.kind in _COMPOSITE


def _parse_access(access: str) -> list[int]:
    try:
        out = [int(x) for x in access.split(":")]
    except ValueError:
        raise CoreError(f"bad CO-RE access string {access!r}") from None
    if not out or any(x < 0 for x in out):
        raise CoreError(f"bad CO-RE access string {access!r}")
    return out


def _local_spec(btf: Btf, root: int, access: list[int]) -> _Spec:
    rt = btf.resolve(root)
    bit = 0
    if access[0]:
        bit = access[0] * btf.size_of(root) * 8
    cur, bsz = root, 0
    steps: list[_Step] = []
    for a in access[1:]:
        t = btf.resolve(cur)
        if _is_composite(t):
            if a >= len(t.members):  # type: ignore[attr-defined]
                raise CoreError(f"member index {a} beyond {btf.type_name(t.id)}")
            m = t.members[a]  # type: ignore[attr-defined]
            bit += m.bit_offset
            bsz = m.bitfield_size
            if m.name:
                steps.append(_Step(m.name, a, m.type))
            cur = m.type
        elif isinstance(t, Array):
            bit += a * btf.size_of(t.type) * 8
            bsz = 0
            steps.append(_Step(None, a, t.type))
            cur = t.type
        else:
            raise CoreError(f"access {':'.join(map(str, access))} into {t.kind.name} type")
    del rt
    return _Spec(root, steps, bit, cur, bsz, access)


def _find_member(btf: Btf, comp: int, name: str, depth: int = 0) -> tuple[int, int, int] | None:
    """(type id, bit offset, bitfield size) of member ``name``, searching anonymous members."""
    if depth > 32:
        return None
    t = btf.resolve(comp)
    for m in t.members:  # type: ignore[attr-defined]
        if m.name == name:
            return m.type, m.bit_offset, m.bitfield_size
        if not m.name and _is_composite(btf.resolve(m.type)):
            r = _find_member(btf, m.type, name, depth + 1)
            if r is not None:
                return r[0], m.bit_offset + r[1], r[2]
    return None


def _fields_compat(lb: Btf, lid: int, tb: Btf, tid: int, depth: int = 0) -> bool:
    lt, tt = lb.resolve(lid), tb.resolve(tid)
    if _is_composite(lt) and _is_composite(tt):
        return True
    if isinstance(lt, Enum) and isinstance(tt, Enum):
        return not lt.name or not tt.name or essential_name(lt.name) == essential_name(tt.name)
    if lt.kind != tt.kind:
        return False
    if isinstance(lt, Int):
        return not lt.offset and not tt.offset  # type: ignore[attr-defined]
    if isinstance(lt, Array):
        return depth < 32 and _fields_compat(lb, lt.type, tb, tt.type, depth + 1)  # type: ignore[attr-defined]
    return lt.kind in (BtfKind.PTR, BtfKind.FLOAT, BtfKind.FWD)


def _match_spec(lb: Btf, spec: _Spec, tb: Btf, cand: int) -> _Spec | None:
    bit = spec.access[0] * tb.size_of(cand) * 8 if spec.access[0] else 0
    cur, bsz = cand, 0
    steps: list[_Step] = []
    nsteps = len(spec.steps)
    for i, st in enumerate(spec.steps):
        t = tb.resolve(cur)
        if st.name is not None:
            if not _is_composite(t):
                return None
            r = _find_member(tb, cur, st.name)
            if r is None:
                return None
            mtype, off, bsz = r
            bit += off
            # Intermediate members must be of a compatible kind too.
            if i < nsteps - 1 and lb.resolve(st.type_id).kind != tb.resolve(mtype).kind:
                return None
            steps.append(_Step(st.name, st.index, mtype))
            cur = mtype
        else:
            if not isinstance(t, Array):
                return None
            flex = t.nelems == 0
            if not flex and st.index >= t.nelems:
                return None
            bit += st.index * tb.size_of(t.type) * 8
            bsz = 0
            steps.append(_Step(None, st.index, t.type))
            cur = t.type
    if spec.steps and not _fields_compat(lb, spec.final_type, tb, cur):
        return None
    return _Spec(cand, steps, bit, cur, bsz, spec.access)


def _types_compat(lb: Btf, lid: int, tb: Btf, tid: int, depth: int = 0) -> bool:
    if depth > 32:
        return False
    lt, tt = lb.resolve(lid), tb.resolve(tid)
    if lt.kind != tt.kind:
        # An enum and a 64-bit enum of the same name are compatible.
        return isinstance(lt, Enum) and isinstance(tt, Enum)
    if lt.kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD):
        return True
    if isinstance(lt, Int):
        return not lt.offset and not tt.offset  # type: ignore[attr-defined]
    if lt.kind == BtfKind.FLOAT or lt.kind == BtfKind.UNKN:
        return True
    if isinstance(lt, Ptr):
        return _types_compat(lb, lt.type, tb, tt.type, depth + 1)  # type: ignore[attr-defined]
    if isinstance(lt, Array):
        return _types_compat(lb, lt.type, tb, tt.type, depth + 1)  # type: ignore[attr-defined]
    if isinstance(lt, FuncProto):
        tp: FuncProto = tt  # type: ignore[assignment]
        if len(lt.params) != len(tp.params):  # type: ignore[attr-defined]
            return False
        for a, b in zip(lt.params, tp.params, strict=True):  # type: ignore[attr-defined]
            if not _types_compat(lb, a.type, tb, b.type, depth + 1):
                return False
        return _types_compat(lb, lt.return_type, tb, tp.return_type, depth + 1)  # type: ignore[attr-defined]
    return False


def _types_match(lb: Btf, lid: int, tb: Btf, tid: int, depth: int = 0) -> bool:
    """``bpf_core_type_matches``: a stricter, member-by-member compatibility."""
    if depth > 32:
        return False
    lt, tt = lb.resolve(lid), tb.resolve(tid)
    if lt.name and tt.name and essential_name(lt.name) != essential_name(tt.name):
        if lt.kind in (*_COMPOSITE, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD):
            return False
    if isinstance(lt, Fwd) or isinstance(tt, Fwd):
        return lt.kind in (BtfKind.FWD, *_COMPOSITE) and tt.kind in (BtfKind.FWD, *_COMPOSITE)
    if isinstance(lt, Enum) and isinstance(tt, Enum):
        names = {v.name for v in tt.values}
        return lt.size == tt.size and all(v.name in names for v in lt.values)
    if lt.kind != tt.kind:
        return False
    if isinstance(lt, Int):
        return lt.size == tt.size and lt.signed == tt.signed  # type: ignore[attr-defined]
    if _is_composite(lt):
        tmembers = {m.name: m for m in tt.members}  # type: ignore[attr-defined]
        if len(lt.members) > len(tt.members):  # type: ignore[attr-defined]
            return False
        for m in lt.members:  # type: ignore[attr-defined]
            tm = tmembers.get(m.name)
            if tm is None or not _types_match(lb, m.type, tb, tm.type, depth + 1):
                return False
        return True
    if isinstance(lt, Ptr):
        return _types_match(lb, lt.type, tb, tt.type, depth + 1)  # type: ignore[attr-defined]
    if isinstance(lt, Array):
        return lt.nelems == tt.nelems and _types_match(  # type: ignore[attr-defined]
            lb,
            lt.type,
            tb,
            tt.type,
            depth + 1,  # type: ignore[attr-defined]
        )
    if isinstance(lt, FuncProto):
        return _types_compat(lb, lid, tb, tid, depth)
    return lt.kind in (BtfKind.FLOAT, BtfKind.UNKN)


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


def _field_value(btf: Btf, spec: _Spec, kind: int) -> tuple[int, int, bool]:
    """(value, field byte size, whether the field is an integer) of a matched field spec."""
    ft = btf.resolve(spec.final_type)
    is_int = isinstance(ft, Int | Enum)
    bit, bsz = spec.bit_offset, spec.bitfield_size
    if not bsz:
        size = btf.size_of(spec.final_type)
        byte_off = bit // 8
        bit_size = size * 8
    else:
        size = btf.size_of(spec.final_type)
        byte_off = bit // 8 // size * size
        while bit + bsz - byte_off * 8 > size * 8:
            if size >= 8:
                raise CoreError("bitfield does not fit in 8 bytes")
            size *= 2
            byte_off = bit // 8 // size * size
        bit_size = bsz
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        return byte_off, size, is_int
    if kind == CoreReloKind.FIELD_BYTE_SIZE:
        return size, size, is_int
    if kind == CoreReloKind.FIELD_EXISTS:
        return 1, size, is_int
    if kind == CoreReloKind.FIELD_SIGNED:
        signed = (isinstance(ft, Int) and ft.signed) or (isinstance(ft, Enum) and ft.signed)
        return int(bool(signed)), size, is_int
    if kind == CoreReloKind.FIELD_LSHIFT_U64:
        if not bsz:
            return 64 - size * 8, size, is_int
        return 64 - (bit + bit_size - byte_off * 8), size, is_int
    if kind == CoreReloKind.FIELD_RSHIFT_U64:
        return 64 - bit_size, size, is_int
    raise CoreError(f"not a field relocation kind: {kind}")


def _candidates(lb: Btf, local_id: int, tb: Btf) -> list[int]:
    lt = lb.get(local_id)
    name = essential_name(lt.name)
    if not name:
        raise CoreError(f"CO-RE relocation against anonymous type {local_id}")
    ids_named = getattr(tb, "ids_named", None)
    if ids_named is not None:
        ids = list(ids_named(name))
    else:
        ids = [t.id for t in tb.find_all(name)]
    out = []
    for tid in ids:
        tt = tb.get(tid)
        if tt.kind == lt.kind or (isinstance(tt, Enum) and isinstance(lt, Enum)):
            out.append(tid)
    prefix = name + "___"
    if hasattr(tb, "names_with_prefix"):
        names = list(tb.names_with_prefix(prefix))  # type: ignore[attr-defined]
    else:
        names = sorted({t.name for t in tb.types if t.name.startswith(prefix)})
    for n in names:
        for tt in tb.find_all(n):
            if tt.kind == lt.kind:
                out.append(tt.id)
    return out


def resolve_relocation(local: Btf, type_id: int, access: str, kind: int, target: Btf) -> CoreResult:
    """Resolve one CO-RE relocation of ``local`` BTF against ``target`` BTF."""
    try:
        kind = CoreReloKind(kind)
    except ValueError:
        raise CoreError(f"unknown CO-RE relocation kind {kind}") from None
    acc = _parse_access(access)
    if kind == CoreReloKind.TYPE_ID_LOCAL:
        return CoreResult(kind, type_id, type_id, True)
    lt = local.get(type_id)
    if kind in _FIELD_KINDS:
        lspec = _local_spec(local, type_id, acc)
        lval, lsize, is_int = _field_value(local, lspec, kind)
        bitfield = bool(lspec.bitfield_size)
        vals: set[tuple[int, int]] = set()
        for cand in _candidates(local, type_id, target):
            ts = _match_spec(local, lspec, target, cand)
            if ts is None:
                continue
            v, sz, _ = _field_value(target, ts, kind)
            vals.add((v, sz))
        if len(vals) > 1:
            raise CoreError(
                f"ambiguous CO-RE relocation {local.type_name(type_id)} {access}: "
                f"candidates give {sorted(vals)}"
            )
        if not vals:
            ok = kind == CoreReloKind.FIELD_EXISTS
            return CoreResult(
                kind,
                lval,
                0,
                ok,
                lsize,
                0,
                reason=f"field {_describe(local, lspec)} not found",
                bitfield=bitfield,
            )
        v, sz = vals.pop()
        return CoreResult(kind, lval, v, True, lsize, sz, int_field=is_int, bitfield=bitfield)
    if kind in _TYPE_KINDS:
        lval = {
            CoreReloKind.TYPE_ID_TARGET: type_id,
            CoreReloKind.TYPE_EXISTS: 1,
            CoreReloKind.TYPE_MATCHES: 1,
        }.get(kind)
        if kind == CoreReloKind.TYPE_SIZE:
            lval = local.size_of(type_id)
        matches = []
        for cand in _candidates(local, type_id, target):
            good = (
                _types_match(local, type_id, target, cand)
                if kind == CoreReloKind.TYPE_MATCHES
                else _types_compat(local, type_id, target, cand)
            )
            if good:
                matches.append(cand)
        if not matches:
            ok = kind in _EXISTS_KINDS
            return CoreResult(kind, lval or 0, 0, ok, reason=f"type {lt.name!r} not found")
        values = set()
        for cand in matches:
            if kind == CoreReloKind.TYPE_ID_TARGET:
                values.add(cand)
            elif kind == CoreReloKind.TYPE_SIZE:
                values.add(target.size_of(cand))
            else:
                values.add(1)
        if len(values) > 1 and kind != CoreReloKind.TYPE_ID_TARGET:
            raise CoreError(f"ambiguous CO-RE relocation for type {lt.name!r}: {sorted(values)}")
        return CoreResult(kind, lval or 0, min(values), True, target_type=min(matches))
    # enum values
    ltr = local.resolve(type_id)
    if not isinstance(ltr, Enum) or acc[0] >= len(ltr.values):
        raise CoreError(f"enum relocation {access} against {local.type_name(type_id)}")
    ev = ltr.values[acc[0]]
    lval = 1 if kind == CoreReloKind.ENUMVAL_EXISTS else ev.value
    found: set[int] = set()
    for cand in _candidates(local, type_id, target):
        tt = target.resolve(cand)
        if not isinstance(tt, Enum):
            continue
        for tv in tt.values:
            if essential_name(tv.name) == essential_name(ev.name):
                found.add(tv.value)
    if len(found) > 1:
        raise CoreError(f"ambiguous enum value {ev.name}: {sorted(found)}")
    if not found:
        ok = kind == CoreReloKind.ENUMVAL_EXISTS
        return CoreResult(kind, lval, 0, ok, reason=f"enum value {ev.name} not found")
    return CoreResult(kind, lval, 1 if kind == CoreReloKind.ENUMVAL_EXISTS else found.pop(), True)


def _describe(btf: Btf, spec: _Spec) -> str:
    parts = [btf.type_name(spec.root)]
    for st in spec.steps:
        parts.append(f".{st.name}" if st.name is not None else f"[{st.index}]")
    return "".join(parts)


# ---------------------------------------------------------------------------
# Patching
# ---------------------------------------------------------------------------


def _patch(insn: Instruction, res: CoreResult, where: str) -> Instruction:
    cls = insn.opcode & 0x07
    val = res.value
    if insn.is_lddw:
        return insn.with_(imm=val & 0xFFFFFFFFFFFFFFFF)
    if cls in (op.ALU, op.ALU64):
        if insn.opcode & op.X:
            raise CoreError(f"{where}: CO-RE relocation on a register ALU instruction")
        if not -(1 << 31) <= val < (1 << 32):
            raise CoreError(f"{where}: value {val} does not fit in an immediate")
        return insn.with_(imm=val - (1 << 32) if val >= 1 << 31 else val)
    if cls in (op.LDX, op.ST, op.STX):
        if not -(1 << 15) <= val < (1 << 15):
            raise CoreError(f"{where}: offset {val} does not fit in 16 bits")
        new = insn.with_(off=val)
        if (
            res.kind == CoreReloKind.FIELD_BYTE_OFFSET
            and res.target_size
            and res.target_size != res.local_size
        ):
            cur = _CODE_SIZE.get(insn.opcode & 0x18)
            if cur != res.local_size or not res.int_field or res.target_size not in _SIZE_CODE:
                raise CoreError(
                    f"{where}: field changed size ({res.local_size} -> {res.target_size}) "
                    "and the access cannot follow it"
                )
            new = new.with_(opcode=(insn.opcode & ~0x18) | _SIZE_CODE[res.target_size])
        return new
    raise CoreError(f"{where}: CO-RE relocation on an unsupported instruction ({insn})")


def _expected_local(insn: Instruction, res: CoreResult) -> int | None:
    cls = insn.opcode & 0x07
    if insn.is_lddw:
        return insn.imm & 0xFFFFFFFFFFFFFFFF
    if cls in (op.ALU, op.ALU64):
        return insn.imm & 0xFFFFFFFF
    if cls in (op.LDX, op.ST, op.STX):
        return insn.off & 0xFFFF
    return None


def apply_core(
    insns: Sequence[Instruction],
    relocations: Sequence,
    local: Btf,
    target: Btf,
    *,
    program: str = "",
) -> tuple[list[Instruction], list[tuple[int, CoreResult]]]:
    """Apply a program's CO-RE relocations; returns the new instructions and every result.

    An unsatisfied relocation poisons its instruction (a call to helper
    ``POISON_CORE + n``); a ``lddw`` keeps its two slots (the call, then ``ja +0``).
    """
    out = list(insns)
    results: list[tuple[int, CoreResult]] = []
    poison: dict[int, int] = {}
    for n, rel in enumerate(relocations):
        where = f"{program}: insn {rel.slot}" if program else f"insn {rel.slot}"
        try:
            res = resolve_relocation(local, rel.type_id, rel.access, rel.kind, target)
        except BtfError as e:
            raise CoreError(f"{where}: CO-RE relocation {rel.access}: {e}") from None
        results.append((rel.index, res))
        insn = out[rel.index]
        exp = _expected_local(insn, res)
        if insn.is_lddw:
            mask = 0xFFFFFFFFFFFFFFFF
        elif insn.cls in (op.LDX, op.ST, op.STX):
            mask = 0xFFFF
        else:
            mask = 0xFFFFFFFF
        if exp is not None and not res.bitfield and exp != res.local_value & mask:
            raise CoreError(
                f"{where}: instruction holds {exp}, but CO-RE relocation "
                f"{local.type_name(rel.type_id)} {rel.access} expects {res.local_value}"
            )
        if not res.ok:
            poison[rel.index] = n
            continue
        out[rel.index] = _patch(insn, res, where)
    if poison:
        rebuilt: list[Instruction] = []
        for i, insn in enumerate(out):
            if i in poison:
                call = Instruction(
                    op.CALL_OP, 0, 0, 0, POISON_CORE + min(poison[i], _POISON_LIMIT - 1)
                )
                rebuilt.append(call)
                if insn.is_lddw:
                    rebuilt.append(Instruction(op.JMP | op.JA, 0, 0, 0, 0))
            else:
                rebuilt.append(insn)
        out = rebuilt
    return out, results


def poison_reason(helper_id: int) -> int | None:
    """The relocation number behind a poisoned helper id, or ``None``."""
    if POISON_CORE <= helper_id < POISON_CORE + _POISON_LIMIT:
        return helper_id - POISON_CORE
    return None


_ = Struct  # re-exported kinds keep the isinstance checks readable
