"""Kernel subcommands: ``load``, ``attach``, ``prog list|show|tracelog``,
``map list|dump|update|delete``, ``features``.

Programs and maps are named by id (a number), by a pinned path in bpffs, or (``map``
commands) by name when exactly one loaded map has it. Keys and values are typed through
the map's BTF: ``--key``/``--value`` take JSON (``3``, ``{"a": 1}``, ``[1, 2]``) or hex
bytes with ``--hex``; ``dump`` prints decoded keys and values.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sys
import time
from types import SimpleNamespace
from typing import Any, NoReturn

import click

from ..errors import BpfError, KernelError, NotSupported, VerifierError
from ._common import EXIT_FAIL, EXIT_USAGE, emit, fail, guarded

__all__ = ["COMMANDS"]


def _jsonable(v: Any) -> Any:
    from ._objrun import jsonable

    return jsonable(v)


def _enum_name(v: Any) -> str:
    return getattr(v, "name", str(v)).lower()


# ---- looking things up ----------------------------------------------------------------
def _map_ref(ref: str):
    from ..kernel import sys as bsys
    from ..kernel.object import open_map

    if ref.isdigit():
        return open_map(int(ref))
    if os.sep in ref or os.path.exists(ref):
        return open_map(ref)
    matches = []
    for mid in bsys.map_ids():
        try:
            with bsys.FD(bsys.map_get_fd_by_id(mid)) as fd:
                if bsys.map_info(fd).name == ref:
                    matches.append(mid)
        except OSError:
            continue
    if len(matches) != 1:
        raise BpfError(
            f"{'no' if not matches else len(matches)} maps named {ref!r}"
            + ("" if not matches else f" (ids {', '.join(map(str, matches))}); give an id")
        )
    return open_map(matches[0])


def _prog_fd(ref: str):
    from ..kernel.object import open_program

    return open_program(int(ref) if ref.isdigit() else ref)


def _prog_json(info) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": info.id,
        "type": _enum_name(info.type),
        "name": info.name,
        "tag": info.tag,
        "gpl_compatible": info.gpl_compatible,
        "loaded_at_ns": info.load_time,
        "uid": info.created_by_uid,
        "xlated_bytes": info.xlated_prog_len,
        "jited_bytes": info.jited_prog_len,
        "map_ids": list(info.map_ids),
        "btf_id": info.btf_id,
        "run_cnt": info.run_cnt,
        "run_time_ns": info.run_time_ns,
        "verified_insns": info.verified_insns,
    }
    return d


def _map_json(info) -> dict[str, Any]:
    return {
        "id": info.id,
        "type": _enum_name(info.type),
        "name": info.name,
        "key_size": info.key_size,
        "value_size": info.value_size,
        "max_entries": info.max_entries,
        "flags": info.map_flags,
        "btf_id": info.btf_id,
    }


def _parse_value(text: str, as_hex: bool, codec_encode) -> bytes:
    if as_hex:
        try:
            return bytes.fromhex(text.replace(" ", ""))
        except ValueError:
            raise BpfError(f"not hex: {text!r}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text  # a bare word: a string for char[], else the codec says what it needs
    try:
        return codec_encode(value)
    except TypeError:
        if isinstance(value, str):  # a map without BTF: the text's bytes
            return codec_encode(value.encode())
        raise


# ---- a rejected program ------------------------------------------------------------------
def rejected(e: VerifierError, as_json: bool, log_level: int = 0) -> NoReturn:
    """Report a verifier rejection: the program, the blamed C line, the log lines that say
    why (the whole log with ``--log-level``), and exit 1."""
    line = e.line or {}
    src = str(line.get("source") or line.get("text") or "").strip()
    where = None
    if line.get("file") and line.get("line"):
        where = {"file": line["file"], "line": line["line"], "source": src}
    tail = e.log_tail()
    if as_json:
        extra: dict[str, Any] = {"program": e.program, "insn": e.insn, "line": where}
        extra["log_tail"] = tail
        if log_level:
            extra["log"] = e.log
        emit({"error": str(e), **extra})
        sys.exit(EXIT_FAIL)
    if log_level and e.log:
        click.echo(e.log.rstrip(), err=True)
    click.echo(f"bpfkit: error: {e}", err=True)
    if where:
        click.echo(f"  at {os.path.basename(str(where['file']))}:{where['line']}: {src}", err=True)
    if tail and not log_level:
        click.echo("  verifier log (last lines; --log-level 1 for all):", err=True)
        for ln in tail:
            click.echo(f"    {ln}", err=True)
    sys.exit(EXIT_FAIL)


# ---- load-time overrides (load, attach) ----------------------------------------------
def _pairs(items: tuple[str, ...], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise BpfError(f"{flag} takes NAME=VALUE, not {item!r}")
        out.append((name, value))
    return out


def _count(value: str, flag: str) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise BpfError(f"{flag}: {value!r} is not a number") from None
    if not 0 <= n < 1 << 32:
        raise BpfError(f"{flag}: {n} is out of range")
    return n


def override_options(
    consts: tuple[str, ...],
    max_entries: tuple[str, ...],
    value_sizes: tuple[str, ...],
    types: tuple[str, ...],
) -> dict[str, Any]:
    """``bpfkit.load`` keywords from ``--const``, ``--max-entries``, ``--value-size``, ``--type``.

    A constant's value is JSON (``5``, ``true``, ``[1, 2]``, ``{"a": 1}``) or else a
    string; ``--type T`` sets every program's type, ``--type PROG=T`` one program's.
    """
    opts: dict[str, Any] = {}
    if consts:
        values: dict[str, Any] = {}
        for name, text in _pairs(consts, "--const"):
            try:
                values[name] = json.loads(text)
            except json.JSONDecodeError:
                values[name] = text
        opts["constants"] = values
    if max_entries:
        opts["max_entries"] = {
            n: _count(v, "--max-entries") for n, v in _pairs(max_entries, "--max-entries")
        }
    if value_sizes:
        opts["value_size"] = {
            n: _count(v, "--value-size") for n, v in _pairs(value_sizes, "--value-size")
        }
    if types:
        per = {}
        for t in types:
            name, eq, value = t.partition("=")
            if eq:
                per[name] = value
            elif len(types) > 1:
                raise BpfError("give one --type T for every program, or --type PROG=T")
            else:
                opts["prog_type"] = t
        if per:
            opts["prog_type"] = per
    return opts


def _override_flags(fn):
    """The ``--const/--max-entries/--value-size/--type`` options of load and attach."""
    for opt in reversed(
        [
            click.option(
                "--const",
                "consts",
                multiple=True,
                metavar="NAME=VALUE",
                help="Set a global variable (const volatile knob) before loading.",
            ),
            click.option(
                "--max-entries",
                multiple=True,
                metavar="MAP=N",
                help="Override a map's max_entries.",
            ),
            click.option(
                "--value-size",
                "value_sizes",
                multiple=True,
                metavar="MAP=N",
                help="Override a map's value_size (stack-trace maps).",
            ),
            click.option(
                "--type",
                "types",
                multiple=True,
                metavar="[PROG=]TYPE",
                help="Program type (or section name: xdp, tc, kprobe, cgroup/skb).",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


# ---- load -----------------------------------------------------------------------------
@click.command("load")
@click.argument("obj", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--pin",
    "pin_dir",
    type=click.Path(file_okay=False),
    help="Pin programs and maps under DIR (on bpffs).",
)
@click.option("--program", "programs", multiple=True, help="Load only these programs.")
@click.option("--log-level", type=click.IntRange(0, 2), default=0, help="Verifier log level.")
@_override_flags
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def load_cmd(
    obj: str,
    pin_dir: str | None,
    programs: tuple[str, ...],
    log_level: int,
    consts: tuple[str, ...],
    max_entries: tuple[str, ...],
    value_sizes: tuple[str, ...],
    types: tuple[str, ...],
    as_json: bool,
) -> None:
    """Load OBJ into the kernel; with --pin it stays loaded after the command exits."""
    import bpfkit

    from ..kernel.object import _makedirs, remove_dirs

    opts: dict[str, Any] = {"log_level": log_level}
    opts.update(override_options(consts, max_entries, value_sizes, types))
    if programs:
        opts["programs"] = list(programs)
    made: list[str] = []
    if pin_dir:
        opts["pin_root"] = os.path.join(pin_dir, "maps")
        made = _makedirs(opts["pin_root"])
    try:
        o = bpfkit.load(obj, backend="kernel", **opts)
    except VerifierError as e:
        remove_dirs(made)
        rejected(e, as_json, log_level)
    except BaseException:
        remove_dirs(made)  # a failed load leaves no folders behind (nor pins: the loader's)
        raise
    with o:
        try:
            pinned = o.pin(pin_dir) if pin_dir else {}  # type: ignore[attr-defined]
        except BaseException:
            for m in o.maps.values():  # maps the load pinned by name under DIR/maps
                if getattr(m, "pinned", None) and m.pinned.startswith(opts["pin_root"]):  # type: ignore[attr-defined]
                    m.unpin()  # type: ignore[attr-defined]
            remove_dirs(made)
            raise
        out = {
            "object": obj,
            "programs": [
                {
                    **_prog_json(p.info()),  # type: ignore[attr-defined]
                    "section": p.section,
                    "insns": p.loaded.insn_count,  # type: ignore[attr-defined]
                    "slots": p.loaded.slot_count,  # type: ignore[attr-defined]
                    "pinned": pinned.get(n),
                    **({"log": p.log} if log_level else {}),  # type: ignore[attr-defined]
                }
                for n, p in o.programs.items()
            ],
            "maps": [
                {**_map_json(m.kernel_info()), "name": n, "pinned": pinned.get(f"map:{n}")}  # type: ignore[attr-defined]
                for n, m in o.maps.items()
            ],
            "pinned": bool(pin_dir),
            "notes": o.notes,  # type: ignore[attr-defined]
        }
    if as_json:
        emit(out)
        return
    for p in out["programs"]:
        click.echo(
            f"prog {p['id']}: {p['name']} ({p['type']}) tag {p['tag']}"
            + (f" pinned {p['pinned']}" if p["pinned"] else "")
        )
        if p.get("log"):
            click.echo(p["log"].rstrip())
    for m in out["maps"]:
        click.echo(
            f"map {m['id']}: {m['name']} ({m['type']})"
            + (f" pinned {m['pinned']}" if m["pinned"] else "")
        )
    if not pin_dir:
        click.echo("(not pinned: unloaded again as the command exits)")


# ---- attach ---------------------------------------------------------------------------
#: the attach kind a program type implies (a pinned program has no section to say it)
_KIND_OF_TYPE = {
    "kprobe": "kprobe",
    "tracepoint": "tracepoint",
    "raw_tracepoint": "raw_tracepoint",
    "raw_tracepoint_writable": "raw_tracepoint",
    "xdp": "xdp",
    "sched_cls": "tc",
    "sched_act": "tc",
    "cgroup_skb": "cgroup",
    "cgroup_sock": "cgroup",
    "cgroup_sock_addr": "cgroup",
    "sock_ops": "cgroup",
    "cgroup_device": "cgroup",
    "cgroup_sysctl": "cgroup",
    "cgroup_sockopt": "cgroup",
    "socket_filter": "socket",
    "sk_reuseport": "sk_reuseport",
    "perf_event": "perf_event",
}


class _PinnedProgram:
    """A program opened from bpffs or by id; its attach kind is given or inferred from its type."""

    def __init__(self, fd, kind: str | None, target: str | None) -> None:
        from ..kernel import sys as bsys

        self._fd = fd
        info = bsys.prog_info(fd)
        self.name = info.name
        self.type = info.type
        self.type_name = _enum_name(info.type)
        if not kind:
            kind = _KIND_OF_TYPE.get(self.type_name)
            if kind is None:
                raise click.UsageError(
                    f"cannot tell how to attach a {self.type_name} program: give --kind"
                )
        self.spec = SimpleNamespace(
            attach_kind=kind,
            attach_target=target,
            prog_type=info.type,
            expected_attach_type=None,
            section=kind,
            name=info.name,
        )

    @property
    def fd(self) -> int:
        return self._fd.fileno()


@click.command("attach")
@click.argument("prog")
@click.option("--program", "program", help="Program of the object (default: the first).")
@click.option(
    "--kind",
    help="Attach kind (tracepoint, xdp, kretprobe, usdt, ...); default: the section's, or for a "
    "pinned program or id the one its type implies.",
)
@click.option(
    "--target",
    help="Where: interface, cgroup dir, 'category/name', 'path:symbol', 'path:provider:name' "
    "(usdt), ...",
)
@click.option("--pid", type=int, default=None, help="uprobe/usdt: only this process.")
@click.option("--mode", help="xdp: generic|native|offload; tc: tcx|clsact.")
@click.option("--direction", type=click.Choice(["ingress", "egress"]), help="tc direction.")
@click.option(
    "--pin-link",
    type=click.Path(dir_okay=False),
    help="Pin the link here and exit (stays attached).",
)
@click.option(
    "--pin",
    "pin_dir",
    type=click.Path(file_okay=False),
    help="Also pin the object's programs and maps.",
)
@click.option(
    "--duration", type=float, default=None, help="Stay attached this many seconds, then detach."
)
@_override_flags
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def attach_cmd(
    prog: str,
    program: str | None,
    kind: str | None,
    target: str | None,
    pid: int | None,
    mode: str | None,
    direction: str | None,
    pin_link: str | None,
    pin_dir: str | None,
    duration: float | None,
    consts: tuple[str, ...],
    max_entries: tuple[str, ...],
    value_sizes: tuple[str, ...],
    types: tuple[str, ...],
    as_json: bool,
) -> None:
    """Attach PROG (an ELF object, a pinned program, or a program id) to its hook."""
    import bpfkit

    from ..kernel.attach import attach_program

    if pin_link is None and duration is None:
        raise click.UsageError("give --pin-link PATH (stay attached) or --duration SECONDS")
    obj = None
    is_elf = False
    try:
        with open(prog, "rb") as f:
            is_elf = f.read(4) == b"\x7fELF"
    except OSError:
        pass  # an id, or a pin in bpffs (which cannot be read as a file)
    overrides = override_options(consts, max_entries, value_sizes, types)
    from ..kernel.object import _makedirs, remove_dirs

    made: list[str] = []
    if overrides and not is_elf:
        raise BpfError("--const/--max-entries/--value-size/--type need an ELF object")
    if is_elf:
        opts: dict[str, Any] = dict(overrides)
        if program:
            opts["programs"] = [program]
        if pin_dir:
            opts["pin_root"] = os.path.join(pin_dir, "maps")
            made = _makedirs(opts["pin_root"])
        try:
            obj = bpfkit.load(prog, backend="kernel", **opts)
        except VerifierError as e:
            remove_dirs(made)
            rejected(e, as_json)
        except BaseException:
            remove_dirs(made)
            raise
        p = obj.program(program)
        if kind:
            p.spec = dataclasses.replace(p.spec, attach_kind=kind)  # type: ignore[attr-defined]
    else:
        p = _PinnedProgram(_prog_fd(prog), kind, target)
    kw: dict[str, Any] = {}
    if mode:
        kw["mode"] = mode
    if direction:
        kw["direction"] = direction
    if pid is not None:
        kw["pid"] = pid
    try:
        if pin_dir and obj is not None:
            try:
                obj.pin(pin_dir)  # type: ignore[attr-defined]
            except BaseException:
                remove_dirs(made)
                raise
        link = attach_program(p, target, **kw)
        out: dict[str, Any] = {
            "program": p.name,
            "kind": link.kind,
            "target": _jsonable(
                link.target if not hasattr(link.target, "fileno") else str(link.target)
            ),
            "link_id": link.id if link.has_link else None,
        }
        if pin_link:
            link.pin(pin_link)
            out["pinned"] = pin_link
            link.close()
        else:
            stop = {"now": False}
            old = signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("now", True))
            try:
                end = time.monotonic() + (duration or 0)
                while not stop["now"] and time.monotonic() < end:
                    time.sleep(min(0.1, max(0.0, end - time.monotonic())))
            finally:
                signal.signal(signal.SIGINT, old)
            link.close()
            out["duration"] = duration
            if obj is not None:
                from ..api import Map

                out["maps"] = {
                    n: [{"key": _jsonable(k), "value": _jsonable(v)} for k, v in m.items()]
                    for n, m in obj.maps.items()
                    if isinstance(m, Map) and not n.startswith(".")
                }
    finally:
        if obj is not None:
            obj.close()
    if as_json:
        emit(out)
    else:
        click.echo(
            f"attached {out['program']} ({out['kind']}) to {out['target']}"
            + (f", link pinned at {pin_link}" if pin_link else f" for {duration}s")
        )


# ---- prog -----------------------------------------------------------------------------
@click.group("prog")
def prog_group() -> None:
    """Loaded programs."""


@prog_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def prog_list(as_json: bool) -> None:
    """Every program loaded in the kernel."""
    from ..kernel import sys as bsys

    progs = []
    for pid in bsys.prog_ids():
        try:
            with bsys.FD(bsys.prog_get_fd_by_id(pid)) as fd:
                progs.append(_prog_json(bsys.prog_info(fd)))
        except KernelError:
            continue  # unloaded meanwhile
    if as_json:
        emit({"programs": progs})
        return
    for p in progs:
        click.echo(
            f"{p['id']}: {p['type']} name {p['name'] or '-'} tag {p['tag']}"
            + (f" maps {p['map_ids']}" if p["map_ids"] else "")
        )


@prog_group.command("show")
@click.argument("ref")
@click.option(
    "--xlated",
    is_flag=True,
    help="Include the translated instructions (helper names, map ids, C lines; as bpftool).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def prog_show(ref: str, xlated: bool, as_json: bool) -> None:
    """One program by id or pinned path."""
    from ..kernel import sys as bsys
    from ..kernel.xlated import format_xlated, xlated_listing

    with _prog_fd(ref) as fd:
        d = _prog_json(bsys.prog_info(fd))
        listing = xlated_listing(fd) if xlated else []
    if as_json:
        if xlated:
            d["xlated"] = [ln.to_json() for ln in listing]
        emit(d)
        return
    click.echo(f"{d['id']}: {d['type']} name {d['name'] or '-'} tag {d['tag']}")
    click.echo(
        f"  xlated {d['xlated_bytes']}B jited {d['jited_bytes']}B maps {d['map_ids']} btf {d['btf_id']}"
    )
    if xlated:
        click.echo(format_xlated(listing), nl=False)


_TRACE_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\d][^\s]*)\s+)?(?P<ts>\d+\.\d+):\s+(?P<func>[^:]+):\s?(?P<msg>.*)$"
)


def parse_trace_line(line: str) -> dict[str, Any]:
    """A ``trace_pipe`` line as a dict (task, pid, cpu, flags, timestamp, function, message);
    a line of another shape is returned as its ``message``."""
    m = _TRACE_LINE.match(line)
    if m is None:
        return {"message": line}
    return {
        "task": m["task"],
        "pid": int(m["pid"]),
        "cpu": int(m["cpu"]),
        "flags": m["flags"],
        "timestamp": float(m["ts"]),
        "function": m["func"],
        "message": m["msg"],
    }


@prog_group.command("tracelog")
@click.option("-c", "--count", type=click.IntRange(min=1), help="Stop after N lines.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Stop after S seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines).")
@guarded()
def prog_tracelog(count: int | None, timeout: float | None, as_json: bool) -> None:
    """Print what programs write with bpf_trace_printk (the kernel's trace_pipe), as it comes.

    Runs until interrupted, or -c N lines, or --timeout S seconds.
    """
    from ..kernel.tracefs import TracePipe

    stop = {"now": False}
    old = signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("now", True))
    seen = 0
    end = None if timeout is None else time.monotonic() + timeout
    try:
        with TracePipe() as tp:
            while not stop["now"] and (count is None or seen < count):
                left = 0.2 if end is None else min(0.2, end - time.monotonic())
                if left <= 0:
                    break
                for line in tp.read(left):
                    if count is not None and seen >= count:
                        break
                    seen += 1
                    if as_json:
                        click.echo(json.dumps(parse_trace_line(line)))
                    else:
                        click.echo(line)
                sys.stdout.flush()
    finally:
        signal.signal(signal.SIGINT, old)


# ---- map ------------------------------------------------------------------------------
@click.group("map")
def map_group() -> None:
    """Maps in the kernel: list, dump, update, delete (typed through BTF)."""


@map_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def map_list(as_json: bool) -> None:
    """Every map in the kernel."""
    from ..kernel import sys as bsys

    maps = []
    for mid in bsys.map_ids():
        try:
            with bsys.FD(bsys.map_get_fd_by_id(mid)) as fd:
                maps.append(_map_json(bsys.map_info(fd)))
        except KernelError:
            continue
    if as_json:
        emit({"maps": maps})
        return
    for m in maps:
        click.echo(
            f"{m['id']}: {m['type']} name {m['name'] or '-'} key {m['key_size']}B "
            f"value {m['value_size']}B max {m['max_entries']}"
        )


#: how a histogram map's integer keys number its buckets
HIST_KEYS = {
    "pow2": "key k counts [2^k, 2^(k+1)) (and 0 in k = 0): log2(value) as an index",
    "bcc": "BCC's slots: slot s counts [2^(s-1), 2^s), slot 0 counts 0",
    "bpftrace": "bpftrace's hist() buckets",
}


def _histogram(entries: list[tuple[Any, Any]], keys: str):
    """A :class:`bpfkit.hist.Log2Hist` of a map of bucket counts (per-CPU counts summed)."""
    from ..hist import Log2Hist

    counts: dict[int, int] = {}
    for k, v in entries:
        if isinstance(v, list):
            v = sum(v)
        if isinstance(k, bool) or not isinstance(k, int) or not isinstance(v, int):
            raise BpfError("a histogram needs integer keys (buckets) and integer counts")
        counts[k] = counts.get(k, 0) + v
    if keys == "bcc":
        return Log2Hist.from_bcc_slots(counts)
    if keys == "pow2":
        return Log2Hist.from_buckets({k + 2: c for k, c in counts.items() if c and k >= 0})
    return Log2Hist.from_buckets({k: c for k, c in counts.items() if c})


@map_group.command("dump")
@click.argument("ref")
@click.option("--raw", is_flag=True, help="Hex keys and values instead of decoded ones.")
@click.option(
    "--hist",
    "hist_keys",
    type=click.Choice(sorted(HIST_KEYS)),
    help="Draw the map as a log2 histogram of bucket counts; the keys are "
    + "; ".join(f"{k}: {v}" for k, v in HIST_KEYS.items()),
)
@click.option(
    "--hist-style",
    type=click.Choice(["bpftrace", "bcc"]),
    default="bpftrace",
    show_default=True,
    help="How --hist draws it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def map_dump(ref: str, raw: bool, hist_keys: str | None, hist_style: str, as_json: bool) -> None:
    """Every entry of a map (id, pinned path or unique name)."""
    from ..api import Map

    m = _map_ref(ref)
    hist = None
    try:
        if not isinstance(m, Map):
            raise NotSupported(f"{m.type_name} maps have no keys to dump")
        if raw:
            entries = [{"key": k.hex(), "value": v.hex()} for k, v in m.raw_items()]
        else:
            items = list(m.items())
            entries = [{"key": _jsonable(k), "value": _jsonable(v)} for k, v in items]
            if hist_keys:
                hist = _histogram(items, hist_keys)
        info = _map_json(m.kernel_info())  # type: ignore[attr-defined]
    finally:
        m.close()  # type: ignore[attr-defined]
    if as_json:
        out: dict[str, Any] = {"map": info, "entries": entries}
        if hist is not None:
            out["hist"] = hist.to_json()
        emit(out)
        return
    if hist is not None:
        click.echo(hist.text(style=hist_style), nl=False)
        return
    for e in entries:
        click.echo(f"{json.dumps(e['key'])}: {json.dumps(e['value'])}")
    click.echo(f"({len(entries)} entries)")


@map_group.command("update")
@click.argument("ref")
@click.option("--key", "key", required=True, help="Key as JSON (or hex with --hex).")
@click.option("--value", "value", required=True, help="Value as JSON (or hex with --hex).")
@click.option("--hex", "as_hex", is_flag=True, help="--key/--value are hex bytes.")
@click.option("--flags", type=click.Choice(["any", "noexist", "exist"]), default="any")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def map_update(ref: str, key: str, value: str, as_hex: bool, flags: str, as_json: bool) -> None:
    """Store one entry."""
    from ..api import Map

    m = _map_ref(ref)
    try:
        if not isinstance(m, Map):
            raise NotSupported(f"{m.type_name} maps cannot be updated by key")
        k = _parse_value(key, as_hex, m.encode_key)
        v = _parse_value(value, as_hex, m.encode_value)
        m.update_raw(k, v, {"any": 0, "noexist": 1, "exist": 2}[flags])
        out = {"key": _jsonable(m.decode_key(k)), "value": _jsonable(m.decode_value(v))}
    finally:
        m.close()  # type: ignore[attr-defined]
    if as_json:
        emit({"updated": out})
    else:
        click.echo(f"updated {json.dumps(out['key'])}")


@map_group.command("delete")
@click.argument("ref")
@click.option("--key", "key", required=True, help="Key as JSON (or hex with --hex).")
@click.option("--hex", "as_hex", is_flag=True, help="--key is hex bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def map_delete(ref: str, key: str, as_hex: bool, as_json: bool) -> None:
    """Delete one entry (exit 1 if it was not there)."""
    from ..api import Map

    m = _map_ref(ref)
    try:
        if not isinstance(m, Map):
            raise NotSupported(f"{m.type_name} maps have no keys")
        k = _parse_value(key, as_hex, m.encode_key)
        deleted = m.delete_raw(k)
        shown = _jsonable(m.decode_key(k))
    finally:
        m.close()  # type: ignore[attr-defined]
    if not deleted:
        fail(f"no key {json.dumps(shown)}", 1, as_json, key=shown)
    if as_json:
        emit({"deleted": shown})
    else:
        click.echo(f"deleted {json.dumps(shown)}")


# ---- features -------------------------------------------------------------------------
@click.command("features")
@click.option(
    "--helpers", "helpers_for", multiple=True, help="Also probe helpers for this program type."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def features_cmd(helpers_for: tuple[str, ...], as_json: bool) -> None:
    """What this kernel supports (like bpftool feature probe)."""
    from ..kernel.features import PROG_TYPE_NAMES, probe_all
    from ..kernel.privileges import kernel_available

    ok, why = kernel_available()
    if not ok:
        fail(why, EXIT_USAGE, as_json)
    for h in helpers_for:
        if h not in PROG_TYPE_NAMES:
            raise BpfError(f"unknown program type {h!r}")
    out = probe_all(helpers_for=list(helpers_for))
    if as_json:
        emit(out)
        return
    for section, items in out.items():
        click.echo(f"{section}:")
        if section == "helpers":
            for pt, names in items.items():
                click.echo(f"  {pt}: {len(names)} helpers: {', '.join(names)}")
            continue
        for name, p in items.items():
            mark = "yes" if p["supported"] else f"no ({p.get('reason', '')})"
            click.echo(f"  {name}: {mark}")


COMMANDS = [load_cmd, attach_cmd, prog_group, map_group, features_cmd]
