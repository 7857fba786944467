"""Load-time overrides of an :class:`ObjectSpec`, applied alike by every backend.

What libbpf users set between ``bpf_object__open`` and ``bpf_object__load`` —
``bpf_map__set_value_size``/``set_max_entries``, the skeleton's ``rodata->knob = ...``,
``bpf_program__set_type``/``set_expected_attach_type``/``set_autoload`` — is here one
function, :func:`apply_overrides`, that returns a *new* spec (the parsed one is left as
it was). ``bpfkit.load(..., backend="vm"|"kernel")`` takes the same keywords:

- ``value_size={"stacks": 127 * 8}``, ``max_entries={"events": 1 << 20}`` — per map;
- ``constants={"targ_pid": 1234}`` — global variables by name (``const volatile`` knobs
  in ``.rodata``, or ``.data``/``.bss``), encoded through their BTF type;
- ``prog_type="xdp"`` (every program) or ``{"prog": "kprobe"}`` — a program type
  name (``sched_cls``) or a section name as libbpf reads it (``tc``, ``cgroup/skb``,
  ``kprobe/do_exit``), which also gives the expected attach type and attach kind;
  ``attach_type`` likewise (``"cgroup_inet_ingress"``);
- ``autoload={"prog": False}`` — whether a program is loaded when no ``programs=`` list
  is given (``SEC("?...")`` programs start with False).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import BpfError
from ..uapi.attach import NewAttachType, NewProgType
from ..uapi.enums import AttachType, ProgType
from .sections import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, SLEEPABLE, XDP_FRAGS, match_section
from .spec import MapSpec, ObjectSpec, ProgramSpec

__all__ = ["apply_overrides", "OVERRIDE_KEYS", "prog_type_by_name", "attach_type_by_name"]

#: the keywords of :func:`apply_overrides` (both backends' ``load`` accept them)
OVERRIDE_KEYS = ("value_size", "max_entries", "constants", "prog_type", "attach_type", "autoload")

_PROG_TYPES: dict[str, int] = {p.name.lower(): int(p) for p in ProgType}
_PROG_TYPES.update({p.name.lower(): int(p) for p in NewProgType})
_ATTACH_TYPES: dict[str, int] = {a.name.lower(): int(a) for a in AttachType}
_ATTACH_TYPES.update({a.name.lower(): int(a) for a in NewAttachType})


def prog_type_by_name(name: str | int) -> tuple[int, int | None, str | None, int]:
    """(program type, expected attach type, attach kind, load flags) for a type name
    (``"sched_cls"``), a section name libbpf knows (``"tc"``, ``"cgroup/skb"``) or a number."""
    if isinstance(name, int) and not isinstance(name, bool):
        return int(name), None, None, 0
    text = str(name).strip()
    if text.isdigit():
        return int(text), None, None, 0
    key = text.lower().replace("-", "_")
    sdef, _target = match_section(text)
    if int(sdef.prog_type) != ProgType.UNSPEC:
        flags = (BPF_F_SLEEPABLE if sdef.traits & SLEEPABLE else 0) | (
            BPF_F_XDP_HAS_FRAGS if sdef.traits & XDP_FRAGS else 0
        )
        return int(sdef.prog_type), sdef.attach_type, sdef.kind or None, flags
    if key in _PROG_TYPES and _PROG_TYPES[key] != ProgType.UNSPEC:
        return _PROG_TYPES[key], None, None, 0
    raise BpfError(
        f"unknown program type {name!r}: give a type ({', '.join(sorted(_PROG_TYPES)[:6])}, ...) "
        "or a section name (xdp, tc, kprobe/..., cgroup/skb, ...)"
    )


def attach_type_by_name(name: str | int) -> int:
    """An attach type by name (``cgroup_inet_ingress``, ``BPF_CGROUP_INET_INGRESS``) or number."""
    if isinstance(name, int) and not isinstance(name, bool):
        return int(name)
    text = str(name).strip()
    if text.isdigit():
        return int(text)
    key = text.lower().removeprefix("bpf_")
    if key in _ATTACH_TYPES:
        return _ATTACH_TYPES[key]
    raise BpfError(f"unknown attach type {name!r}")


def _per_program(value: Any, spec: ObjectSpec, what: str) -> dict[str, Any]:
    """A per-program mapping from a single value (every program) or a mapping by name."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = [n for n in value if n not in spec.programs]
        if unknown:
            raise BpfError(
                f"{what}: no program(s) {', '.join(map(repr, unknown))} "
                f"(have {', '.join(spec.programs) or 'none'})"
            )
        return dict(value)
    return {n: value for n in spec.programs}


def _per_map(value: Mapping[str, int] | None, spec: ObjectSpec, what: str) -> dict[str, int]:
    if not value:
        return {}
    out = {}
    for name, n in value.items():
        if name not in spec.maps:
            raise BpfError(f"{what}: no map {name!r} (have {', '.join(spec.maps) or 'none'})")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1 << 32:
            raise BpfError(f"{what} of map {name!r}: {n!r} is not a 32-bit count")
        out[name] = n
    return out


def _encode_constant(spec: ObjectSpec, name: str, value: Any) -> tuple[str, int, bytes]:
    """(map, offset, bytes) of global variable ``name`` set to ``value``."""
    var = spec.variables.get(name)
    if var is None:
        raise BpfError(f"no global variable {name!r} (have {', '.join(spec.variables) or 'none'})")
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    elif spec.btf is not None and var.type_id:
        from ..btf.values import encode_value

        try:
            raw = encode_value(spec.btf, var.type_id, value)
        except (BpfError, TypeError, ValueError, OverflowError) as e:
            raise BpfError(f"variable {name!r} ({var.type_name}): {e}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        raw = (value & ((1 << (8 * var.size)) - 1)).to_bytes(var.size, "little")
    else:
        raise BpfError(f"give bytes for variable {name!r} (no BTF type to encode it)")
    if len(raw) > var.size:
        raise BpfError(f"variable {name!r} is {var.size} bytes, {len(raw)} given")
    return var.map, var.offset, raw


def apply_overrides(
    spec: ObjectSpec,
    *,
    value_size: Mapping[str, int] | None = None,
    max_entries: Mapping[str, int] | None = None,
    constants: Mapping[str, Any] | None = None,
    prog_type: str | int | Mapping[str, str | int] | None = None,
    attach_type: str | int | Mapping[str, str | int] | None = None,
    autoload: Mapping[str, bool] | None = None,
) -> ObjectSpec:
    """A copy of ``spec`` with load-time overrides applied (``spec`` is not changed).

    Raises :class:`~bpfkit.errors.BpfError` naming the map, variable or program that
    does not exist or the value that does not fit.
    """
    vs = _per_map(value_size, spec, "value_size")
    me = _per_map(max_entries, spec, "max_entries")
    pt = _per_program(prog_type, spec, "prog_type")
    at = _per_program(attach_type, spec, "attach_type")
    al = _per_program(autoload, spec, "autoload") if autoload is not None else {}
    if not (vs or me or constants or pt or at or al):
        return spec
    out = copy.copy(spec)
    maps: dict[str, MapSpec] = dict(spec.maps)
    for name in set(vs) | set(me):
        m = maps[name]
        changes: dict[str, Any] = {}
        if name in vs:
            if m.kind in ("data", "rodata", "bss", "kconfig"):
                raise BpfError(f"value_size of global data {name!r} is its section's size")
            changes["value_size"] = vs[name]
        if name in me:
            changes["max_entries"] = me[name]
        maps[name] = dataclasses.replace(m, **changes)
    for name, value in (constants or {}).items():
        mname, off, raw = _encode_constant(spec, name, value)
        m = maps[mname]
        buf = bytearray(bytes(m.contents or b"").ljust(m.value_size, b"\0"))
        buf[off : off + len(raw)] = raw
        maps[mname] = dataclasses.replace(m, contents=bytes(buf))
    out.maps = maps
    programs: dict[str, ProgramSpec] = dict(spec.programs)
    for name in set(pt) | set(at) | set(al):
        p = programs[name]
        changes = {}
        if name in pt:
            ptype, expected, kind, flags = prog_type_by_name(pt[name])
            try:
                changes["prog_type"] = ProgType(ptype)
            except ValueError:
                changes["prog_type"] = ptype
            changes["expected_attach_type"] = expected
            if kind:
                changes["attach_kind"] = kind
            changes["flags"] = p.flags | flags
        if name in at:
            changes["expected_attach_type"] = attach_type_by_name(at[name])
        if name in al:
            changes["autoload"] = bool(al[name])
        programs[name] = p._copy_with(**changes)  # keeps a parsed program unparsed
    out.programs = programs
    return out
