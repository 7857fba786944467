"""Event streams for ``--record`` and ``--vm --replay``: JSON Lines, one event a line.

A stream starts with a header line and then has one line per probe invocation::

    {"type": "header", "version": 1, "start_ns": 123, "ncpus": 2, "cpid": 0}
    {"probe": "tracepoint:syscalls:sys_enter_read", "cpu": 0, "pid": 42, "tid": 42,
     "uid": 0, "gid": 0, "comm": "dd", "nsecs": 456, "cgroup": 1, "task": 0,
     "ctx": "<hex>", "mem": [{"addr": 140737, "size": 64, "ret": 6, "data": "<hex>"}]}

``ctx`` is the program's context as the kernel gave it (a tracepoint's record, the
``pt_regs`` of a uprobe, a raw tracepoint's ``u64`` arguments, ``bpf_perf_event_data``);
``mem`` lists what every ``probe_read*`` of that invocation returned, in order. A
hand-written (synthetic) event may give instead of ``ctx``: ``args`` (a tracepoint's
fields by name, or a list of ``argN`` values for uprobes and raw tracepoints), ``retval``
and ``regs`` (register values by name), and ``mem`` as ``{"<address>": "string"}``.
Every field but ``probe`` is optional (pid/tid/uid/gid 0, comm "", cpu 0, nsecs
increasing by 1000 per event).

``--record FILE`` writes such a stream from a kernel run (the generated programs send
an ``EV_RECORD`` per invocation that passes its predicate and an ``EV_MEM`` per memory
read); :class:`Replay` reads one for the VM.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

from ..errors import BpfError, ScriptError

VERSION = 1
_REC = struct.Struct("<IIQQQQQQQQ16sQ")  # header .. ctx_len (REC_CTX = 96 bytes)
_MEM = struct.Struct("<IIQQQQq")  # header, seq, cpu, src, size, ret (48 bytes)
_STACK = struct.Struct("<IIQQqQ")  # header, seq, cpu, get_stackid's result, user


class Recorder:
    """Collects EV_RECORD/EV_MEM records of a kernel run into events (by CPU and seq)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.events: list[dict[str, Any]] = []
        self._current: dict[int, tuple[int, dict[str, Any]]] = {}
        self._pending: dict[int, list[tuple[int, dict[str, Any]]]] = {}

    def event(self, data: bytes, after_exit: bool = False) -> None:
        (_, _, seq, idx, cpu, pid_tgid, uid_gid, nsecs, cgroup, task, comm,
         ctx_len) = _REC.unpack_from(data)  # fmt: skip
        ctx = bytes(data[_REC.size : _REC.size + ctx_len])
        ev: dict[str, Any] = {
            "probe": self.names[idx] if idx < len(self.names) else str(idx),
            "instance": idx,
            "cpu": cpu,
            "pid": pid_tgid >> 32,
            "tid": pid_tgid & 0xFFFFFFFF,
            "uid": uid_gid & 0xFFFFFFFF,
            "gid": uid_gid >> 32,
            "comm": comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
            "nsecs": nsecs,
            "cgroup": cgroup,
            "task": task,
            "ctx": ctx.hex(),
            "mem": [],
        }
        if after_exit:  # the kernel ran it after exit(), before the probes detached
            ev["after_exit"] = True
        pending = self._pending.pop(cpu, [])
        ev["mem"] += [m for s, m in pending if s == seq]
        self._current[cpu] = (seq, ev)
        self.events.append(ev)

    def mem(self, data: bytes) -> None:
        _, _, seq, cpu, src, size, ret = _MEM.unpack_from(data)
        m = {"addr": src, "size": size, "ret": ret,
             "data": bytes(data[_MEM.size : _MEM.size + min(size, 1 << 20)]).hex()}  # fmt: skip
        cur = self._current.get(cpu)
        if cur is not None and cur[0] == seq:
            cur[1]["mem"].append(m)
        else:  # read by the predicate, before the invocation's EV_RECORD
            lst = [p for p in self._pending.get(cpu, []) if p[0] == seq]
            lst.append((seq, m))
            self._pending[cpu] = lst

    def stack(self, data: bytes) -> None:
        """An EV_STACK record: a stack id this CPU's current invocation got."""
        _, _, seq, cpu, sid, user = _STACK.unpack_from(data)
        cur = self._current.get(cpu)
        if cur is not None and cur[0] == seq:
            cur[1].setdefault("stack_ids", []).append([sid, bool(user)])

    def fill_stacks(self, frames_of: Any, symbols: Any) -> None:
        """Replace each event's stack ids by the frames (``kstack``/``ustack``) the kernel's
        stack map holds, and name every frame (into ``symbols``' log)."""
        for ev in self.events:
            for sid, user in ev.pop("stack_ids", []):
                frames = (frames_of(sid) if sid >= 0 else None) or []
                ev["ustack" if user else "kstack"] = frames
                for a in frames:
                    if user:
                        symbols.usym_parts(a, ev["pid"])
                    else:
                        symbols.ksym(a)

    def write(self, f: IO[str], header: dict[str, Any]) -> None:
        f.write(json.dumps({"type": "header", "version": VERSION, **header}) + "\n")
        for ev in self.events:
            f.write(json.dumps(ev) + "\n")


class Replay:
    """A stream read back: the header and the events, checked and with defaults filled."""

    def __init__(self, header: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.header = header
        self.events = events

    @classmethod
    def load(cls, path: str) -> Replay:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise BpfError(f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise BpfError(f"{path} is not a JSON Lines event stream (not UTF-8)") from None
        header: dict[str, Any] = {}
        events: list[dict[str, Any]] = []
        nsecs = 0
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ScriptError(f"not JSON: {e.msg}", n, e.colno, line, path) from None
            if not isinstance(obj, dict):
                raise ScriptError("an event must be a JSON object", n, 1, line, path)
            if obj.get("type") == "header":
                header = obj
                continue
            if not isinstance(obj.get("probe"), str):
                raise ScriptError("an event needs \"probe\" (its probe's full name)", n, 1,
                                  line, path)  # fmt: skip
            for k in ("cpu", "pid", "tid", "uid", "gid", "nsecs", "cgroup", "task"):
                v = obj.get(k, 0)
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 64:
                    raise ScriptError(f'"{k}" must be an unsigned integer', n, 1, line, path)
            if "nsecs" in obj:
                nsecs = obj["nsecs"]
            else:
                nsecs += 1000
                obj["nsecs"] = nsecs
            if not isinstance(obj.get("comm", ""), str):
                raise ScriptError('"comm" must be a string', n, 1, line, path)
            why = _check_payload(obj)
            if why:
                raise ScriptError(why, n, 1, line, path)
            obj["line"] = n
            events.append(obj)
        return cls(header, events)


def _is_hex(v: object) -> bool:
    if not isinstance(v, str):
        return False
    try:
        bytes.fromhex(v)
    except ValueError:
        return False
    return True


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_payload(ev: dict[str, Any]) -> str | None:
    """Why an event's ``ctx``/``args``/``regs``/``mem`` cannot be used (``None``: fine)."""
    if "ctx" in ev and not _is_hex(ev["ctx"]):
        return '"ctx" is not hex'
    args = ev.get("args")
    if args is not None:
        vals = args.values() if isinstance(args, dict) else args if isinstance(args, list) else None
        if vals is None or not all(_int(v) or isinstance(v, str) for v in vals):
            return '"args" must be an object of fields or a list of integers'
    if "retval" in ev and not _int(ev["retval"]):
        return '"retval" must be an integer'
    regs = ev.get("regs")
    if regs is not None and not (isinstance(regs, dict) and all(_int(v) for v in regs.values())):
        return '"regs" must be an object of integers'
    for k in ("kstack", "ustack"):
        st = ev.get(k)
        if st is not None and not (isinstance(st, list) and all(
                _int(a) and 0 <= a < 1 << 64 for a in st)):  # fmt: skip
            return f'"{k}" must be a list of addresses (unsigned integers)'
    mem = ev.get("mem")
    if mem is None:
        return None
    if isinstance(mem, dict):
        for k, v in mem.items():
            try:
                int(k, 0)
            except ValueError:
                return f'"mem" key {k!r} is not an address'
            if not (isinstance(v, str) or (isinstance(v, dict) and _is_hex(v.get("hex")))):
                return '"mem" values are strings or {"hex": ...}'
        return None
    if not isinstance(mem, list):
        return '"mem" must be a list of reads or an object of addresses'
    for m in mem:
        if not (isinstance(m, dict) and all(_int(m.get(k)) for k in ("addr", "size", "ret"))
                and _is_hex(m.get("data"))):  # fmt: skip
            return '"mem" reads need addr, size, ret and hex data'
    return None


def event_memory(ev: dict[str, Any]) -> dict[int, list[tuple[int, int, bytes]]]:
    """An event's recorded reads: address -> [(size, result, bytes)] in order."""
    out: dict[int, list[tuple[int, int, bytes]]] = {}
    mem = ev.get("mem") or []
    if isinstance(mem, dict):  # synthetic: {"0x1000": "a string"} or {"4096": {"hex": ".."}}
        for k, v in mem.items():
            addr = int(k, 0)
            if isinstance(v, str):
                data = v.encode() + b"\0"
                out.setdefault(addr, []).append((-1, -1, data))
            elif isinstance(v, dict) and isinstance(v.get("hex"), str):
                out.setdefault(addr, []).append((-1, -1, bytes.fromhex(v["hex"])))
        return out
    for m in mem:
        out.setdefault(int(m["addr"]), []).append(
            (int(m["size"]), int(m["ret"]), bytes.fromhex(m["data"]))
        )
    return out


def pack_context(ev: dict[str, Any], pp: Any) -> bytes | dict | list | None:
    """The context to fire ``pp``'s program with, from ``ctx`` or the synthetic fields."""
    try:
        return _pack_context(ev, pp)
    except (ValueError, TypeError, OverflowError) as e:
        raise BpfError(f"event line {ev.get('line')}: {pp.name}: {e}") from None


def _pack_context(ev: dict[str, Any], pp: Any) -> bytes | dict | list | None:
    if isinstance(ev.get("ctx"), str):
        try:
            return bytes.fromhex(ev["ctx"])
        except ValueError:
            raise BpfError(f'event line {ev.get("line")}: "ctx" is not hex') from None
    p = pp.provider
    args = ev.get("args")
    want = dict if p == "tracepoint" else list
    if args is not None and not isinstance(args, want):
        shape = "an object of fields" if want is dict else "a list of argument values"
        raise BpfError(f'event line {ev.get("line")}: "args" of {pp.name} must be {shape}')
    if p == "tracepoint":
        size = max((f.offset + f.size for f in pp.fields), default=8)
        buf = bytearray(size)
        for name, v in (args or {}).items():
            f = next((f for f in pp.fields if f.name == name), None)
            if f is None:
                raise BpfError(f"event line {ev.get('line')}: {pp.name} has no field {name!r}")
            if isinstance(v, str):
                raw = v.encode()[: f.size]
                buf[f.offset : f.offset + len(raw)] = raw
            else:
                buf[f.offset : f.offset + f.size] = (int(v) & ((1 << (8 * f.size)) - 1)).to_bytes(
                    f.size, "little"
                )
        return bytes(buf)
    if p == "rawtracepoint":
        return [int(a) for a in (args or [])] or [0]
    if p in ("uprobe", "uretprobe", "kprobe", "kretprobe", "usdt"):
        regs: dict[str, int] = {}
        names = ("di", "si", "dx", "cx", "r8", "r9")
        for i, v in enumerate(args or []):
            regs[names[i]] = int(v)
        if "retval" in ev:
            regs["ax"] = int(ev["retval"])
        regs.update({k: int(v) for k, v in (ev.get("regs") or {}).items()})
        return regs
    if p in ("profile", "interval", "software", "hardware"):
        return {"regs": {k: int(v) for k, v in (ev.get("regs") or {}).items()}}
    return None
