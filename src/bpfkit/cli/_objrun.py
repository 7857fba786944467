"""``bpfkit run OBJ``: load an ELF object in the VM, run one program, report what changed.

:func:`run_object` is what ``bpfkit run`` calls for ELF input; it returns the JSON-able
result: ``retval``, ``data_out`` (hex), ``duration_ns``, ``engine``, ``trace_printk``
lines and ``maps_changed`` (per map: the entries added, changed or removed, with keys
and values decoded through BTF; records a ring buffer or perf buffer received).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..api import Map, PerfEventArray, RingBuffer
from ..errors import BpfError
from ..uapi.enums import ProgType
from ..uapi.progtypes import TestRun, prog_type_info

__all__ = ["run_object", "jsonable", "map_changes", "snapshot", "changes"]


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


#: A map of at most this many entries is compared key by key before and after a run; a
#: larger array is compared through its flat memory (up to ``SNAPSHOT_BYTES``); any
#: other map is not compared (``maps_not_compared``): memory stays bounded, whatever
#: ``max_entries`` an object declares.
SNAPSHOT_ENTRIES = 1 << 16
SNAPSHOT_BYTES = 64 << 20
#: at most this many changed entries are listed per map (``maps_truncated``: the total)
MAX_CHANGES = 1000


def _change(m: Map, k: bytes, old: bytes | None, new: bytes | None) -> dict[str, Any]:
    return {
        "key": jsonable(m.decode_key(k)),
        "old": None if old is None else jsonable(m.decode_value(old)),
        "new": None if new is None else jsonable(m.decode_value(new)),
    }


def map_changes(m: Map, before: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """The entries of ``m`` that differ from the raw snapshot ``before``."""
    after = m.snapshot()
    out = []
    for k in sorted(set(before) | set(after)):
        old, new = before.get(k), after.get(k)
        if old != new:
            out.append(_change(m, k, old, new))
    return out


def _flat_memory(m: Map) -> memoryview | None:
    """A (non-per-CPU) array map's values as one memoryview, else None."""
    vm = getattr(m, "vm", None)
    if vm is None or getattr(vm, "percpu", True) or not hasattr(m, "memory"):
        return None
    try:
        return m.memory()  # type: ignore[attr-defined]
    except TypeError:
        return None


_DIGEST_CHUNK = 1 << 16


def _digest(chunk: bytes | memoryview) -> bytes | None:
    """A chunk's digest (None for all zeros: its old values are known)."""
    data = bytes(chunk)
    if not data.count(0) - len(data):
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


def snapshot(m: Map) -> tuple[str, Any] | None:
    """What :func:`changes` compares against after the run (None: not compared).

    Small maps: their items. Arrays: a copy of their memory, or beyond
    ``SNAPSHOT_BYTES`` a digest per 64 KiB (all-zero chunks, what a fresh map holds,
    compare exactly; in another chunk a change is reported as a key range).
    """
    if m.max_entries <= SNAPSHOT_ENTRIES:
        return "items", m.snapshot()
    mem = _flat_memory(m)
    if mem is None:
        return None
    if mem.nbytes <= SNAPSHOT_BYTES:
        return "memory", bytes(mem)
    n = mem.nbytes
    return "digest", [_digest(mem[i : i + _DIGEST_CHUNK]) for i in range(0, n, _DIGEST_CHUNK)]


def changes(m: Map, snap: tuple[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The first ``MAX_CHANGES`` changes since ``snap`` and how many there are."""
    kind, before = snap
    if kind == "items":
        out = map_changes(m, before)
        return out[:MAX_CHANGES], len(out)
    mem = _flat_memory(m)
    assert mem is not None
    elem = (m.value_size + 7) & ~7
    out: list[dict[str, Any]] = []
    total = 0
    last = -1  # the last element scanned (one may straddle two chunks)

    def key(off: int) -> bytes:
        return (off // elem).to_bytes(4, "little")

    def scan(lo: int, hi: int, old_of) -> None:
        nonlocal total, last
        for off in range(lo - lo % elem, hi, elem):
            if off <= last:
                continue
            last = off
            new = bytes(mem[off : off + m.value_size])
            old = old_of(off)
            if old != new:
                total += 1
                if len(out) < MAX_CHANGES:
                    out.append(_change(m, key(off), old, new))

    if kind == "memory":
        chunk = max(elem, 4096 // elem * elem)
        for base in range(0, len(before), chunk):
            if before[base : base + chunk] != mem[base : base + chunk]:
                scan(base, min(base + chunk, len(before)), lambda o: before[o : o + m.value_size])
        return out, total
    zero = bytes(m.value_size)
    for i, d in enumerate(before):
        lo = i * _DIGEST_CHUNK
        hi = min(lo + _DIGEST_CHUNK, mem.nbytes)
        if _digest(mem[lo:hi]) == d:
            continue
        if d is None:  # zeros before: exact
            scan(lo, hi, lambda o: zero)
        else:
            total += 1
            if len(out) < MAX_CHANGES:
                first, last = -(-lo // elem), (hi - 1) // elem
                out.append(
                    {
                        "keys": [first, last],
                        "old": "not kept (a map larger than SNAPSHOT_BYTES)",
                        "new": "changed",
                    }
                )
    return out, total


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
        from ..isa.loader import MAX_INPUT_FILE, read_limited

        ctx = read_limited(ctx_file, MAX_INPUT_FILE, "context file")
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
        before = {n: snapshot(m) for n, m in maps.items() if isinstance(m, Map)}
        drops_before = {n: m.dropped or 0 for n, m in maps.items() if isinstance(m, RingBuffer)}
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
        not_compared: list[str] = []
        truncated: dict[str, int] = {}
        for n, m in maps.items():
            if isinstance(m, Map):
                snap = before[n]
                if snap is None:
                    not_compared.append(n)
                    continue
                ch, total = changes(m, snap)
                if ch:
                    changed[n] = ch
                if total > len(ch):
                    truncated[n] = total
            elif isinstance(m, RingBuffer):
                recs = m.consume()
                dropped = (m.dropped or 0) - drops_before.get(n, 0)
                if recs or dropped:
                    changed[n] = {"records": [bytes(r).hex() for r in recs]}  # type: ignore[union-attr]
                    if dropped:  # reservations/outputs refused: the ring was full
                        changed[n]["dropped"] = dropped
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
        if not_compared:  # maps too large to snapshot (see SNAPSHOT_ENTRIES)
            out["maps_not_compared"] = not_compared
        if truncated:  # maps with more than MAX_CHANGES changes: their total
            out["maps_truncated"] = truncated
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
