"""``bpfkit run OBJ``: load an ELF object in the VM, run one program, report what changed.

:func:`run_object` is what ``bpfkit run`` calls for ELF input; it returns the JSON-able
result: ``retval``, ``data_out`` (hex), ``duration_ns``, ``engine``, ``trace_printk``
lines and ``maps_changed`` (per map: the entries added, changed or removed, with keys
and values decoded through BTF; records a ring buffer or perf buffer received).
"""

from __future__ import annotations

from typing import Any

from ..api import Map, PerfEventArray, RingBuffer
from ..errors import BpfError
from ..uapi.enums import ProgType
from ..uapi.progtypes import TestRun, prog_type_info

__all__ = ["run_object", "jsonable", "map_changes"]


def jsonable(v: Any) -> Any:
    """A JSON-friendly rendering of a decoded key or value (bytes become hex)."""
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return str(v)


def map_changes(m: Map, before: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """The entries of ``m`` that differ from the raw snapshot ``before``."""
    after = m.snapshot()
    out = []
    for k in sorted(set(before) | set(after)):
        old, new = before.get(k), after.get(k)
        if old == new:
            continue
        out.append(
            {
                "key": jsonable(m.decode_key(k)),
                "old": None if old is None else jsonable(m.decode_value(old)),
                "new": None if new is None else jsonable(m.decode_value(new)),
            }
        )
    return out


def _parse_type(name: str) -> ProgType:
    try:
        return ProgType[name.strip().upper()]
    except KeyError:
        raise BpfError(f"unknown program type {name!r}") from None


def run_object(
    file: str,
    *,
    program: str | None = None,
    prog_type: str | None = None,
    data: bytes = b"",
    ctx_file: str | None = None,
    engine: str = "interp",
    repeat: int = 1,
    trace: bool = False,
    verify: bool = True,
) -> dict[str, Any]:
    """Load ``file`` in the VM, run ``program`` once (or ``repeat`` times), report."""
    import bpfkit

    from ..obj import load_object

    spec = load_object(file)
    try:
        pspec = spec.program(program)
    except KeyError as e:
        raise BpfError(str(e.args[0])) from None
    if prog_type:
        pspec.prog_type = _parse_type(prog_type)
    ctx = None
    if ctx_file:
        with open(ctx_file, "rb") as f:
            ctx = f.read()
    if engine == "kernel":
        try:
            obj = bpfkit.load(spec, backend="kernel")
        except BpfError:  # another program of the object will not load: just this one
            obj = bpfkit.load(spec, backend="kernel", programs=[pspec.name])
    else:
        # only the program to run is loaded (and verified), as for the kernel's fallback
        obj = bpfkit.load(spec, programs=[pspec.name], verify=verify)
    try:
        prog = obj.programs[pspec.name]
        maps = {n: m for n, m in obj.maps.items()}
        for m in maps.values():
            if isinstance(m, PerfEventArray):
                m.open()
        before = {n: m.snapshot() for n, m in maps.items() if isinstance(m, Map)}
        steps: list[dict[str, Any]] = []
        eng = engine
        if trace:
            if engine != "interp":
                raise BpfError("--trace needs --engine interp")
            vmprog = prog.vm  # type: ignore[attr-defined]
            steps = _attach_tracer(vmprog)
            eng = "trace"
        info = prog_type_info(pspec.prog_type)
        if info is not None and info.test_run == TestRun.NONE:
            res = prog.run(ctx, engine=eng, repeat=repeat)
        elif info is not None and info.test_run in (TestRun.RAW_TP, TestRun.SYSCALL):
            res = prog.test_run(data, ctx, 1, engine=eng)
        else:
            res = prog.test_run(data, ctx, repeat, engine=eng)
        changed: dict[str, Any] = {}
        for n, m in maps.items():
            if isinstance(m, Map):
                ch = map_changes(m, before[n])
                if ch:
                    changed[n] = ch
            elif isinstance(m, RingBuffer):
                recs = m.consume()
                if recs:
                    changed[n] = {"records": [bytes(r).hex() for r in recs]}  # type: ignore[union-attr]
            elif isinstance(m, PerfEventArray):
                samples = m.read()
                if samples:
                    changed[n] = {"samples": [{"cpu": c, "data": d.hex()} for c, d in samples]}
        out: dict[str, Any] = {
            "program": prog.name,
            "type": prog.type_name,
            "retval": res.retval,
            "data_out": res.data_out.hex(),
            "duration_ns": res.duration,
            "engine": engine,
            "repeat": repeat,
            "trace_printk": list(res.trace),
            "maps_changed": changed,
        }
        if res.ctx_out is not None:
            out["ctx_out"] = res.ctx_out.hex()
        if res.redirect:
            out["redirect"] = jsonable(res.redirect)
        if trace:
            out["trace"] = steps
        return out
    finally:
        obj.close()


def _attach_tracer(vmprog) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    names = tuple(f"r{i}" for i in range(11))
    prev: list[tuple[int, ...] | None] = [None]
    slot_insn: list[int | None] = []

    def tracer(pc: int, *regs: int) -> None:
        changed = (
            {} if prev[0] is None else {names[i]: v for i, v in enumerate(regs) if v != prev[0][i]}
        )
        prev[0] = regs
        if len(steps) < 100_000:
            idx = slot_insn[pc] if pc < len(slot_insn) else None
            insn = vmprog.insns[idx] if idx is not None else None
            steps.append({"pc": pc, "insn": str(insn), "changed": changed})

    vmprog.set_tracer(tracer)
    slot_insn.extend(vmprog.engine("trace").slot_insn)
    return steps
