"""Attach points: parse ``provider:target:func``, expand wildcards, read tracepoint formats.

Each written attach point expands to one or more :class:`ProbePoint` (a wildcard
tracepoint to every match); each becomes its own BPF program, so ``args`` and ``probe``
are known at compile time. Tracepoint fields come from tracefs ``format`` files.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from typing import Any

from ..errors import BpfError, NotSupported, ScriptError
from . import types as T
from .record import LIST, Record

ALIASES = {
    "t": "tracepoint",
    "k": "kprobe",
    "kr": "kretprobe",
    "u": "uprobe",
    "ur": "uretprobe",
    "U": "usdt",
    "p": "profile",
    "i": "interval",
    "s": "software",
    "h": "hardware",
    "rt": "rawtracepoint",
    "f": "kfunc",
    "fr": "kretfunc",
    "fentry": "kfunc",
    "fexit": "kretfunc",
    "w": "watchpoint",
    "aw": "asyncwatchpoint",
}
PROVIDERS = (
    "BEGIN", "END", "tracepoint", "rawtracepoint", "kprobe", "kretprobe", "uprobe",
    "uretprobe", "usdt", "profile", "interval", "software", "hardware", "kfunc",
    "kretfunc", "watchpoint", "asyncwatchpoint", "iter",
)  # fmt: skip

#: BPF iterator targets that take no parameter at attach (``iter:task`` ...): the kernel
#: runs the program once per object, with ``struct bpf_iter__TARGET *ctx`` (bpftrace 0.17:
#: task and task_file; the others are bpfkit's)
ITER_TARGETS = (
    "task", "task_file", "task_vma", "ksym", "bpf_map", "bpf_prog", "bpf_link", "tcp", "udp",
    "unix", "netlink", "ipv6_route", "kmem_cache",
)  # fmt: skip

SOFTWARE_EVENTS = {
    # name: (config, default period); aliases share the config
    "cpu-clock": (0, 1000000),
    "cpu": (0, 1000000),
    "task-clock": (1, 1000000),
    "page-faults": (2, 100),
    "faults": (2, 100),
    "context-switches": (3, 1000),
    "cs": (3, 1000),
    "cpu-migrations": (4, 1),
    "minor-faults": (5, 100),
    "major-faults": (6, 1),
    "alignment-faults": (7, 1),
    "emulation-faults": (8, 1),
    "dummy": (9, 1),
    "bpf-output": (10, 1),
}
HARDWARE_EVENTS = {
    "cpu-cycles": (0, 1000000),
    "cycles": (0, 1000000),
    "instructions": (1, 1000000),
    "cache-references": (2, 1000000),
    "cache-misses": (3, 1000000),
    "branch-instructions": (4, 100000),
    "branches": (4, 100000),
    "branch-misses": (5, 100000),
    "bus-cycles": (6, 100000),
    "frontend-stalls": (7, 1000000),
    "backend-stalls": (8, 1000000),
    "ref-cycles": (9, 1000000),
}


class TpField(Record):
    """One field of a tracepoint's record."""

    name: str
    ctype: str
    offset: int
    size: int
    signed: bool
    array: int | None = None  # element count for ``type name[N]``
    data_loc: bool = False  # ``__data_loc`` dynamic array (offset in the low 16 bits)


class ProbePoint(Record):
    """One concrete attach point (after wildcard expansion)."""

    provider: str
    target: str = ""
    func: str = ""
    value: int = 0  # profile/interval/software/hardware count
    unit: str = ""  # hz, s, ms, us
    offset: int = 0  # uprobe offset
    line: int = 0
    col: int = 0
    fields: list[TpField] = LIST
    usdt: Any = None  # the USDT site (``bpfkit.obj.usdt.UsdtProbe``) of a usdt point

    @property
    def name(self) -> str:
        """The full name (what the ``probe`` builtin gives)."""
        p = self.provider
        if p in ("BEGIN", "END"):
            return p
        if p in ("profile", "interval"):
            return f"{p}:{self.unit}:{self.value}"
        if p in ("software", "hardware"):
            return f"{p}:{self.target}:{self.value}" if self.value else f"{p}:{self.target}"
        if p in ("kprobe", "kretprobe", "rawtracepoint", "kfunc", "kretfunc"):
            return f"{p}:{self.func}"
        if p == "usdt":
            return f"usdt:{self.target}:{self.func}"
        if p in ("uprobe", "uretprobe"):
            f = self.func or hex(self.offset)
            return f"{p}:{self.target}:{f}"
        if p == "iter":
            return f"iter:{self.target}"
        return f"{p}:{self.target}:{self.func}"


def _err(msg: str, line: int, col: int, source: str | None = None) -> ScriptError:
    return ScriptError(msg, line, col, source)


def split_point(text: str) -> tuple[str, list[str]]:
    """``'tracepoint:syscalls:sys_enter_*'`` -> ``('tracepoint', ['syscalls', 'sys_enter_*'])``.

    A colon inside a path that is followed by a path is not split (``uprobe:/a:b``
    keeps ``/a``); the provider's alias is resolved.
    """
    parts = text.split(":")
    prov = ALIASES.get(parts[0], parts[0])
    return prov, parts[1:]


def parse_point(text: str, line: int = 0, col: int = 0, source: str | None = None) -> ProbePoint:
    """One written attach point (wildcards unexpanded)."""
    prov, rest = split_point(text)
    pp = ProbePoint(prov, line=line, col=col)

    def need(n: int, shape: str) -> None:
        if len(rest) != n or any(r == "" for r in rest):
            raise _err(f"{prov} probe must be {shape}, not {text!r}", line, col, source)

    if prov in ("BEGIN", "END"):
        if rest:
            raise _err(f"{prov} takes no arguments", line, col, source)
    elif prov == "tracepoint":
        need(2, "tracepoint:category:name")
        pp.target, pp.func = rest
    elif prov == "rawtracepoint":
        if len(rest) == 2:  # rawtracepoint:module:name (newer syntax)
            rest = rest[1:]
        need(1, "rawtracepoint:name")
        pp.func = rest[0]
    elif prov in ("kprobe", "kretprobe", "kfunc", "kretfunc"):
        if len(rest) == 2:
            pp.target = rest[0]
            rest = rest[1:]
        need(1, f"{prov}:function")
        pp.func = rest[0]
    elif prov in ("uprobe", "uretprobe"):
        if len(rest) < 2:
            raise _err(f"{prov} probe must be {prov}:binary:function", line, col, source)
        pp.target = ":".join(rest[:-1])
        f = rest[-1]
        if re.fullmatch(r"0x[0-9a-fA-F]+|[0-9]+", f):
            pp.offset = int(f, 0)
        else:
            m = re.fullmatch(r"(.+)\+(0x[0-9a-fA-F]+|[0-9]+)", f)
            if m:
                pp.func, pp.offset = m.group(1), int(m.group(2), 0)
            else:
                pp.func = f
    elif prov == "usdt":
        if len(rest) == 2:
            pp.target, pp.func = rest[0], rest[1]
        elif len(rest) == 3:
            pp.target, pp.func = rest[0], f"{rest[1]}:{rest[2]}"
        else:
            raise _err("usdt probe must be usdt:binary:[provider:]probe", line, col, source)
    elif prov in ("profile", "interval"):
        units = ("hz", "s", "ms", "us") if prov == "profile" else ("s", "ms", "us", "hz")
        if len(rest) != 2 or rest[0] not in units or not rest[1].isdigit():
            raise _err(
                f"{prov} probe must be {prov}:{'|'.join(units)}:N, not {text!r}", line, col, source
            )
        pp.unit, pp.value = rest[0], int(rest[1])
        if pp.value <= 0:
            raise _err(f"{prov} rate must be positive", line, col, source)
    elif prov in ("software", "hardware"):
        table = SOFTWARE_EVENTS if prov == "software" else HARDWARE_EVENTS
        if len(rest) not in (1, 2) or rest[0] not in table:
            raise _err(
                f"unknown {prov} event {rest[0] if rest else ''!r} (one of "
                + ", ".join(sorted(table))
                + ")",
                line,
                col,
                source,
            )
        pp.target = rest[0]
        if len(rest) == 2:
            if not rest[1].isdigit() or int(rest[1]) <= 0:
                raise _err(f"{prov} count must be a positive integer", line, col, source)
            pp.value = int(rest[1])
    elif prov == "iter":
        if len(rest) != 1 or rest[0] not in ITER_TARGETS:
            raise _err(f"iter probe must be iter:TARGET, TARGET one of {', '.join(ITER_TARGETS)}"
                       f" (not {text!r})", line, col, source)  # fmt: skip
        pp.target = rest[0]
    elif prov in ("watchpoint", "asyncwatchpoint"):
        pp.target = ":".join(rest)
    else:
        raise _err(f"unknown probe type {prov!r}", line, col, source)
    return pp


# ---- tracepoints ---------------------------------------------------------------------------


def _events_dir() -> str:
    from ..kernel.tracefs import tracefs_root

    return os.path.join(tracefs_root(), "events")


#: tracepoint formats given instead of tracefs ("category:name" -> the format file's text):
#: a replayed stream carries the formats of its tracepoints, so ``--vm`` needs no tracefs
#: (which only root can read).
FORMATS: dict[str, str] = {}


def use_formats(formats: dict[str, str]) -> None:
    """Take tracepoint formats from ``formats`` (a recorded stream's header) first."""
    FORMATS.clear()
    FORMATS.update({k: v for k, v in formats.items() if isinstance(v, str)})
    for f in (tracepoint_categories, tracepoint_names, tracepoint_format, tracepoint_format_text):
        f.cache_clear()


def _tracefs_categories() -> list[str]:
    try:
        d = _events_dir()
        return sorted(c for c in os.listdir(d) if os.path.isdir(os.path.join(d, c)))
    except (OSError, NotSupported):
        if FORMATS:
            return []
        raise


@functools.cache
def tracepoint_categories() -> list[str]:
    """Every tracepoint category (tracefs ``events/*``, and the given formats')."""
    given = {k.split(":", 1)[0] for k in FORMATS}
    return sorted(given | set(_tracefs_categories()))


@functools.cache
def tracepoint_names(category: str) -> list[str]:
    """Every tracepoint of ``category``."""
    given = {k.split(":", 1)[1] for k in FORMATS if k.split(":", 1)[0] == category}
    try:
        d = os.path.join(_events_dir(), category)
        found = {n for n in os.listdir(d) if os.path.isfile(os.path.join(d, n, "format"))}
    except (OSError, NotSupported):
        found = set()
    return sorted(given | found)


def expand_tracepoints(category: str, name: str) -> list[tuple[str, str]]:
    """(category, name) of every tracepoint matching the globs."""
    cats = (
        [category] if not _is_glob(category) else fnmatch.filter(tracepoint_categories(), category)
    )
    out = []
    for c in cats:
        names = tracepoint_names(c)
        if _is_glob(name):
            out += [(c, n) for n in fnmatch.filter(names, name)]
        elif name in names:
            out.append((c, name))
    return out


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


_FIELD_RE = re.compile(
    r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<sig>\d+);"
)


@functools.cache
def tracepoint_format_text(category: str, name: str) -> str:
    """A tracepoint's ``format`` file (or the given format)."""
    given = FORMATS.get(f"{category}:{name}")
    if given is not None:
        return given
    try:
        path = os.path.join(_events_dir(), category, name, "format")
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise NotSupported(f"cannot read the format of tracepoint {category}:{name}: {e}") from None


@functools.cache
def tracepoint_format(category: str, name: str) -> list[TpField]:
    """The fields of a tracepoint's record (common fields excluded)."""
    text = tracepoint_format_text(category, name)
    out = []
    for m in _FIELD_RE.finditer(text):
        decl = m.group("decl").strip()
        f = _parse_decl(decl, int(m.group("off")), int(m.group("size")), m.group("sig") == "1")
        if f and not f.name.startswith("common_"):
            out.append(f)
    return out


def _parse_decl(decl: str, off: int, size: int, signed: bool) -> TpField | None:
    data_loc = False
    if decl.startswith("__data_loc "):
        data_loc = True
        decl = decl[len("__data_loc ") :]
    m = re.fullmatch(r"(?P<type>.*?)\s*(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<n>[^\]]*)\])?", decl)
    if not m:
        return None
    ctype = m.group("type").strip()
    n = m.group("n")
    array = None
    if n is not None and not data_loc:
        try:
            array = int(n)
        except ValueError:
            array = 0
    if data_loc and n is not None:
        ctype += "[]"
    return TpField(m.group("name"), ctype, off, size, signed, array, data_loc)


def field_type(f: TpField, user_pointers: bool) -> T.Ty:
    """The bpftrace type of a tracepoint field."""
    ct = f.ctype.replace("const ", "").replace("volatile ", "").strip()
    if f.data_loc:
        if ct.startswith("char"):
            return T.Ty("str", T.DEFAULT_STRLEN, extra=("data_loc",))
        return T.U64
    if f.array is not None:
        elem = _ctype_int(ct, None, f.signed)
        if ct in ("char", "unsigned char", "u8", "__u8", "signed char") and "char" in ct:
            return T.Str(f.size)
        if f.array and elem is not None:
            return T.Ty("array", f.size, elem=elem, count=f.array)
        return T.Ty("buf", f.size)
    if "*" in ct:
        base = ct.replace("*", "").strip()
        space = "user" if user_pointers else "kernel"
        if base.startswith(("struct ", "union ")):
            return T.Ty("ptr", 8, elem=T.Ty("record", 0, name=base), space=space)
        elem = _ctype_int(base, None, False) or T.Int(1, True)
        if ct.count("*") > 1:
            elem = T.Ty("ptr", 8, elem=elem, space=space)
        return T.Ty("ptr", 8, elem=elem, space=space)
    if f.size in (1, 2, 4, 8):
        return T.Int(f.size, f.signed)
    return T.Ty("buf", f.size)


def _ctype_int(ct: str, size: int | None, signed: bool) -> T.Ty | None:
    sizes = {"char": 1, "short": 2, "int": 4, "long": 8, "u8": 1, "u16": 2, "u32": 4, "u64": 8,
             "s8": 1, "s16": 2, "s32": 4, "s64": 8, "__u8": 1, "__u16": 2, "__u32": 4,
             "__u64": 8, "bool": 1, "pid_t": 4, "size_t": 8}  # fmt: skip
    words = ct.split()
    base = words[-1] if words else ct
    if base in sizes:
        sg = not ("unsigned" in words or base.startswith(("u", "__u")) or base == "bool")
        return T.Int(sizes[base], sg if size is None else signed)
    return None


def expand(pp: ProbePoint, source: str | None = None, pid: int | None = None) -> list[ProbePoint]:
    """Concrete attach points for one written point (wildcards expanded, fields read;
    uprobe targets found and their functions checked)."""
    if pp.provider == "tracepoint":
        matches = expand_tracepoints(pp.target, pp.func)
        if not matches:
            if _is_glob(pp.target) or _is_glob(pp.func):
                raise _err(f"no tracepoints match {pp.target}:{pp.func}", pp.line, pp.col, source)
            raise _err(f"tracepoint not found: {pp.target}:{pp.func}", pp.line, pp.col, source)
        out = []
        for c, n in matches:
            q = ProbePoint("tracepoint", c, n, line=pp.line, col=pp.col)
            q.fields = tracepoint_format(c, n)
            out.append(q)
        return out
    if pp.provider == "usdt":
        return expand_usdt(pp, source, pid)
    if pp.provider in ("uprobe", "uretprobe"):
        if _is_glob(pp.func):
            return expand_uprobes(pp, source, pid)
        path = _resolve_binary(pp, source, pid)
        if pp.func:
            from .symbols import function_offset

            if function_offset(path, pp.func) is None:
                raise _err(f"no function {pp.func!r} in {path}", pp.line, pp.col, source)
        return [ProbePoint(pp.provider, path, pp.func, offset=pp.offset, line=pp.line,
                           col=pp.col)]  # fmt: skip
    return [pp]


def _resolve_binary(pp: ProbePoint, source: str | None, pid: int | None = None) -> str:
    try:
        paths = resolve_binary(pp.target, pid)
    except BpfError as e:
        raise _err(f"{pp.provider} target {pp.target!r}: {e}", pp.line, pp.col, source) from None
    if len(paths) > 1:
        import sys

        print(f"WARNING: attaching to {pp.provider} target file '{paths[0]}' but matched "
              f"{len(paths)} binaries", file=sys.stderr)  # fmt: skip
    return paths[0]


def resolve_binary(name: str, pid: int | None = None) -> list[str]:
    """The files a uprobe/usdt target names, as bpftrace finds them (paths as found, not
    resolved through symlinks, so probe names are bpftrace's): a path as it is; a bare
    name in the current directory and then on ``PATH`` (every match: the first is used);
    else a library by name (``libc``: in the ``-p`` process's mappings, else the first
    ``libc.so*`` of ``/etc/ld.so.cache`` for this ABI)."""
    if "/" in name:
        if not os.path.isfile(name):
            raise BpfError(f"no such file {name!r}")
        return [name]
    found = []
    for d in ["", *os.environ.get("PATH", "").split(":")]:
        cand = os.path.join(d, name) if d else name
        if os.path.isfile(cand) and (os.access(cand, os.X_OK) or _is_elf(cand)):
            found.append(cand)
    if found:
        return found
    lib = which_so(name, pid)
    if lib is None:
        raise BpfError(f"{name!r} is neither a file, nor on PATH, nor a library in "
                       "/etc/ld.so.cache")  # fmt: skip
    return [lib]


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def which_so(name: str, pid: int | None = None) -> str | None:
    """Library ``name`` (``libc``: a ``libc.so*``) as bpftrace 0.17 finds it: in the ``-p``
    process's mappings, else the first entry of ``/etc/ld.so.cache`` for this ABI. A name
    without ``lib`` is no library (bpftrace: ``c`` does not exist)."""
    if not name.startswith("lib"):
        return None
    if pid:
        from .symbols import process_maps

        for _lo, _hi, _off, path in process_maps(pid):
            base = "/" + os.path.basename(path)
            if base.startswith((f"/{name}.", f"/{name}-")):
                return path
    prefix = f"{name}.so"
    for key, value, flags in ld_so_cache():
        # x86-64 libc6 entries: type ELF_LIBC6 (3), ABI x86-64 (0x300)
        if key.startswith(prefix) and flags & 0xFF == 3 and flags & 0xF00 == 0x300:
            return value
    return None


@functools.cache
def ld_so_cache(path: str = "/etc/ld.so.cache") -> list[tuple[str, str, int]]:
    """The entries of glibc's ``ld.so.cache`` (name, path, flags) in its order."""
    import struct

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    magic = b"glibc-ld.so.cache1.1"
    base = data.find(magic)
    if base < 0:
        return []
    try:
        nlibs = struct.unpack_from("<I", data, base + 20)[0]
        out = []
        for i in range(nlibs):
            flags, key, value = struct.unpack_from("<iII", data, base + 48 + 24 * i)

            def cstr(off: int) -> str:
                end = data.index(b"\0", base + off)
                return data[base + off : end].decode("utf-8", "replace")

            out.append((cstr(key), cstr(value), flags))
        return out
    except (struct.error, ValueError):
        return []


def expand_usdt(pp: ProbePoint, source: str | None = None,
                pid: int | None = None) -> list[ProbePoint]:  # fmt: skip
    """One point per site of every USDT probe of the binary matching ``provider:name``
    (globs allowed; ``usdt:binary:name`` matches the name under any provider)."""
    from ..obj.usdt import read_usdt

    path = _resolve_binary(pp, source, pid)
    prov, _, name = pp.func.rpartition(":")
    try:
        sites = read_usdt(path)
    except (BpfError, OSError) as e:
        raise _err(f"cannot read the USDT probes of {path}: {e}", pp.line, pp.col, source) from None
    out = []
    for site in sites:
        if prov and not fnmatch.fnmatchcase(site.provider, prov):
            continue
        if not fnmatch.fnmatchcase(site.name, name):
            continue
        q = ProbePoint("usdt", path, f"{site.provider}:{site.name}", offset=site.offset,
                       line=pp.line, col=pp.col, usdt=site)  # fmt: skip
        out.append(q)
    if not out:
        have = sorted({f"{s.provider}:{s.name}" for s in sites})
        raise _err(f"no USDT probe {pp.func} in {path}"
                   + (f" (it has {', '.join(have)})" if have else " (it has none)"),
                   pp.line, pp.col, source)  # fmt: skip
    return out


def expand_uprobes(pp: ProbePoint, source: str | None = None,
                   pid: int | None = None) -> list[ProbePoint]:  # fmt: skip
    """One point per function symbol of the binary matching the glob."""
    from .symbols import function_names

    path = _resolve_binary(pp, source, pid)
    names = [n for n in function_names(path) if fnmatch.fnmatchcase(n, pp.func)]
    if not names:
        raise _err(f"no functions of {path} match {pp.func!r}", pp.line, pp.col, source)
    return [ProbePoint(pp.provider, path, n, line=pp.line, col=pp.col) for n in names]


def list_probes(pattern: str | None = None, pid: int | None = None,
                verbose: bool = False) -> list[str]:  # fmt: skip
    """Probe names for ``-l`` as bpftrace lists them: tracepoints, software and hardware
    events and raw tracepoints; ``uprobe:FILE:GLOB`` the functions of a file (and its debug
    file); ``usdt:FILE:[PROVIDER:]GLOB`` its USDT probes. ``verbose``: a tracepoint's
    fields under it (``-lv``). A pattern without ``:`` matches anywhere (``*sleep*``)."""
    if pattern:
        prov, _, rest = pattern.partition(":")
        prov = ALIASES.get(prov, prov)
        if prov in ("uprobe", "uretprobe", "usdt") and rest:
            return _list_user_probes(prov, rest, pid)
    out: list[str] = []
    try:
        for c in tracepoint_categories():
            out += [f"tracepoint:{c}:{n}" for n in tracepoint_names(c)]
    except (OSError, NotSupported):
        pass
    out += [f"software:{n}:" for n in SOFTWARE_EVENTS]
    out += [f"hardware:{n}:" for n in HARDWARE_EVENTS]
    try:
        with open("/sys/kernel/btf/vmlinux", "rb"):
            pass
        out += [f"rawtracepoint:{n}" for n in raw_tracepoint_names()]
        out += [f"iter:{t}" for t in iter_targets()]
    except OSError:
        pass
    if pattern:
        prov, _, rest = pattern.partition(":")
        prov = ALIASES.get(prov, prov)
        pat = f"{prov}:{rest}" if rest else pattern
        if not _is_glob(pat) and ":" not in pattern:
            pat = f"*{pattern}*"
        out = [p for p in out if fnmatch.fnmatchcase(p, pat)]
    return with_fields(out) if verbose else out


def with_fields(names: list[str]) -> list[str]:
    """``-lv``: each probe name followed by its tracepoint fields (if it has any)."""
    return [line for p in names for line in [p, *_tracepoint_fields(p)]]


def iter_targets() -> list[str]:
    """The iterator targets of ``ITER_TARGETS`` this kernel has (``bpf_iter_TARGET`` in BTF)."""
    from ..kernel.btf import kernel_btf_available, vmlinux_btf

    if not kernel_btf_available():
        return []
    btf = vmlinux_btf()
    return [t for t in ITER_TARGETS if btf.ids_named(f"bpf_iter_{t}", 12)]


def _tracepoint_fields(name: str) -> list[str]:
    """``-lv``: a tracepoint's fields as its format declares them (not the common ones)."""
    if not name.startswith("tracepoint:"):
        return []
    _, cat, tp = name.split(":", 2)
    try:
        text = tracepoint_format_text(cat, tp)
    except (OSError, NotSupported):
        return []
    out = []
    for m in _FIELD_RE.finditer(text):
        decl = m.group("decl").strip()
        if not re.search(r"\bcommon_\w+(\[.*\])?$", decl):
            out.append("    " + decl)
    return out


def _list_user_probes(prov: str, rest: str, pid: int | None) -> list[str]:
    """``uprobe:FILE:GLOB`` / ``usdt:FILE:[PROVIDER:]GLOB`` for ``-l``."""
    parts = rest.split(":")
    if prov == "usdt":
        if len(parts) not in (2, 3):
            raise BpfError("usdt probe type requires 2 or 3 arguments")
        target, want = parts[0], ":".join(parts[1:])
    else:
        if len(parts) < 2:
            raise BpfError(f"{prov} probe type requires 2 arguments")
        target, want = ":".join(parts[:-1]), parts[-1]
        if not want:
            raise BpfError(f"{prov} should be attached to a function and/or address")
    path = resolve_binary(target, pid)[0]
    if prov != "usdt":
        from .symbols import function_names

        return [f"{prov}:{path}:{n}" for n in function_names(path) if fnmatch.fnmatchcase(n, want)]
    from ..obj.usdt import read_usdt

    pv, _, name = want.rpartition(":")
    seen: list[str] = []
    for site in read_usdt(path):
        if (not pv or fnmatch.fnmatchcase(site.provider, pv)) and fnmatch.fnmatchcase(
            site.name, name
        ):
            n = f"usdt:{path}:{site.provider}:{site.name}"
            if n not in seen:
                seen.append(n)
    return seen


@functools.cache
def raw_tracepoint_names() -> list[str]:
    """Raw tracepoints: the kernel's ``btf_trace_<name>`` typedefs."""
    from ..kernel.btf import vmlinux_btf

    btf = vmlinux_btf()
    names = btf._names() if hasattr(btf, "_names") else {}
    return sorted(n[len("btf_trace_") :] for n in names if n.startswith("btf_trace_"))
