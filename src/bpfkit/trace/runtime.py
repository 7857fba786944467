"""Run a bpftrace script on the kernel: maps, programs, attachments, events, printing.

:func:`compile_script` parses and type-checks (no privileges needed); :class:`Session`
creates the maps, generates and loads one program per probe instance, attaches them,
runs ``BEGIN``, streams events (``printf``, ``time``, ``print`` ...) to the output as they
arrive, and at the end (``exit()``, the ``-c`` command ending, Ctrl-C or a timeout) runs
``END`` and prints every map as bpftrace does.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
from typing import IO, Any

from ..errors import BpfError, KernelError, NotSupported, ScriptError
from . import ast as A
from . import codegen as CG
from . import types as T
from .output import Formatter, c_format, json_escape
from .parser import parse
from .probes import ProbePoint, expand, parse_point
from .record import LIST, Record
from .semantic import Analyzer, Instance

_PERCPU_KINDS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")
MAX_ENTRIES = 4096
RINGBUF_SIZE = 1 << 20
STACK_DEPTH = 127


class Compiled(Record):
    """A parsed and type-checked script, ready to load."""

    program: A.Program
    analyzer: Analyzer
    instances: list[Instance]
    source: str
    uses_stacks: bool = False
    uses_usyms: bool = False
    uses_elapsed: bool = False


class Options(Record):
    """What the command line (or a caller) chose."""

    json: bool = False
    params: list[str] = LIST
    unsafe: bool = False
    cpid: int = 0
    debug: bool = False
    verbose: bool = False
    timeout: float | None = None
    record: str | None = None  # --record FILE: the event stream for --vm --replay
    pid: int | None = None  # -p PID: uprobes on that process; stop when it ends


def compile_script(source: str, origin: str | None = None, *, params: list[str] | None = None,
                   unsafe: bool = False, has_cpid: bool = False,
                   pid: int | None = None) -> Compiled:  # fmt: skip
    """Parse, expand attach points and type-check (raises :class:`ScriptError`); ``pid``:
    the ``-p`` process, whose mappings name a library target like ``libc``."""
    prog = parse(source, origin)
    instances: list[Instance] = []
    lines = source.split("\n")
    for probe in prog.probes:
        for ap in probe.points:
            src = lines[ap.line - 1] if 0 < ap.line <= len(lines) else None
            pp = parse_point(ap.text, ap.line, ap.col, src)
            try:
                pts = expand(pp, src, pid)
            except ScriptError as e:
                e.origin = origin
                raise
            for q in pts:
                instances.append(Instance(probe, q))
    an = Analyzer(prog, source=source, origin=origin, params=params, unsafe=unsafe,
                  has_cpid=has_cpid)  # fmt: skip
    an.analyze(instances)
    uses_stacks = any(w in source for w in ("kstack", "ustack", "stack"))
    uses_usyms = "usym" in source or "ustack" in source
    return Compiled(prog, an, instances, source, uses_stacks, uses_usyms, "elapsed" in source)


def _value_size(mi: Any) -> int:
    vt = mi.value
    if vt.kind in ("min", "max", "avg", "stats"):
        return 16
    if vt.is_agg:
        return 8
    return T.storage_size(vt)


def _key_size(mi: Any) -> int:
    return mi.key_size + (8 if mi.value.kind in ("hist", "lhist") else 0)


def iter_btf_id(pp: ProbePoint) -> int:
    """The BTF id of the kernel's ``bpf_iter_TARGET`` function an ``iter:TARGET`` program
    attaches to (NotSupported when the kernel has no such iterator)."""
    from ..kernel.btf import kernel_btf_available, vmlinux_btf

    if not kernel_btf_available():
        raise NotSupported(f"{pp.name}: iterators need the kernel's BTF (/sys/kernel/btf/vmlinux)")
    ids = vmlinux_btf().ids_named(f"bpf_iter_{pp.target}", 12)  # BTF_KIND_FUNC
    if not ids:
        raise NotSupported(f"{pp.name}: this kernel has no {pp.target} iterator")
    return ids[0]


def _prog_type(pp: ProbePoint) -> int:
    from ..uapi.enums import ProgType

    p = pp.provider
    if p in ("BEGIN", "END", "rawtracepoint"):
        return ProgType.RAW_TRACEPOINT
    if p == "tracepoint":
        return ProgType.TRACEPOINT
    if p in ("uprobe", "uretprobe", "kprobe", "kretprobe", "usdt"):
        return ProgType.KPROBE
    if p in ("profile", "interval", "software", "hardware"):
        return ProgType.PERF_EVENT
    if p == "iter":
        return ProgType.TRACING
    raise NotSupported(f"{p} probes are not supported by bpfkit")


class Session:
    """One run of a compiled script on the kernel."""

    def __init__(self, compiled: Compiled, opts: Options, out: IO[str] | None = None) -> None:
        from ..kernel import sys as bsys
        from .symbols import Symbols

        self.c = compiled
        self.opts = opts
        if out is None and hasattr(sys.stdout, "reconfigure"):
            # strings are the kernel's bytes: those that are not UTF-8 are written as they are
            sys.stdout.reconfigure(errors="surrogateescape")
        self.out = out or sys.stdout
        self.bsys = bsys
        self.fmt = Formatter(self, opts.json)
        self.symbols = Symbols()
        self.fds: list[Any] = []
        self.map_fds: dict[str, Any] = {}
        self.progs: list[tuple[Instance, Any]] = []
        self.links: list[Any] = []
        self.iters: list[Any] = []  # the links of iter probes, read after BEGIN
        self.begin: list[Any] = []
        self.end: list[Any] = []
        self.exiting = False
        self.ncpus = bsys.possible_cpus()
        self.cleared: set[str] = set()
        self.start_ns = time.monotonic_ns()
        self.stack_fd: Any = None

    # ---- setup --------------------------------------------------------------------------------
    def _map(self, mtype: int, key: int, value: int, entries: int, name: str) -> Any:
        fd = self.bsys.FD(self.bsys.map_create(mtype, key, value, entries, name=name[:15]))
        self.fds.append(fd)
        return fd

    def setup(self) -> None:
        """Create maps, generate and load every program."""
        from ..uapi.enums import MapType

        an = self.c.analyzer
        for name, mi in sorted(an.maps.items()):
            per_cpu = mi.value.kind in _PERCPU_KINDS
            mt = MapType.PERCPU_HASH if per_cpu else MapType.HASH
            self.map_fds[name] = self._map(mt, _key_size(mi), _value_size(mi), MAX_ENTRIES,
                                           name or "at")  # fmt: skip
        self.events_fd = self._map(MapType.RINGBUF, 0, 0, RINGBUF_SIZE, "events")
        self.scratch_fd = self._map(MapType.PERCPU_ARRAY, 4, CG.SCRATCH_SIZE, 1, "scratch")
        self.lost_fd = self._map(MapType.PERCPU_ARRAY, 4, 8, 1, "lost")
        self.lost = 0
        stack_fd = 0
        if self.c.uses_stacks:
            self.stack_fd = self._map(MapType.STACK_TRACE, 4, 8 * STACK_DEPTH, MAX_ENTRIES,
                                      "stacks")  # fmt: skip
            stack_fd = self.stack_fd.fileno()
        self.elapsed_fd: Any = None
        if self.c.uses_elapsed:  # elapsed counts from the attach (written in run())
            self.elapsed_fd = self._map(MapType.ARRAY, 4, 8, 1, "elapsed")
        self.cc = CG.CompileContext(
            an,
            {n: fd.fileno() for n, fd in self.map_fds.items()},
            events_fd=self.events_fd.fileno(),
            scratch_fd=self.scratch_fd.fileno(),
            stack_fd=stack_fd,
            start_ns=self.start_ns,
            cpid=self.opts.cpid,
            elapsed_fd=self.elapsed_fd.fileno() if self.elapsed_fd is not None else 0,
            lost_fd=self.lost_fd.fileno(),
            record=bool(self.opts.record),
            instances=self.c.instances,
        )
        if self.opts.record:
            from .replay import Recorder

            self.recorder = Recorder([i.point.name for i in self.c.instances])
            self.symbols.log = {}  # every name printed goes into the stream's header
        for inst in self.c.instances:
            self._check_attachable(inst.point)
            an.inst = inst
            an.analyze_instance(inst)
            insns, where = CG.generate_mapped(self.cc, inst)
            if self.opts.debug:
                self._show_insns(inst, insns)
            log: list[str] = []
            kw: dict[str, Any] = {}
            if inst.point.provider == "iter":
                from ..uapi.enums import AttachType

                kw = {"expected_attach_type": AttachType.TRACE_ITER,
                      "attach_btf_id": iter_btf_id(inst.point)}  # fmt: skip
            try:
                fd = self.bsys.prog_load(
                    _prog_type(inst.point), insns, "GPL", name=_prog_name(inst.point),
                    log_level=2 if self.opts.verbose else 0, log_out=log, **kw,
                )  # fmt: skip
            except Exception as e:
                from ..errors import VerifierError

                if isinstance(e, VerifierError):
                    if self.opts.verbose and e.log:
                        print(e.log, file=sys.stderr)
                    raise self.verifier_error(inst, e, where, "the kernel's verifier") from None
                raise
            if self.opts.verbose and log:
                print(log[-1], file=sys.stderr)
            pfd = self.bsys.FD(fd)
            self.fds.append(pfd)
            self.progs.append((inst, pfd))

    def verifier_error(self, inst: Instance, e: Any, where: list[tuple[int, int]],
                       who: str) -> ScriptError:  # fmt: skip
        """A verifier's rejection as a script error at the line the instruction came from."""
        line, col = inst.probe.line, inst.probe.col
        if e.insn is not None and 0 <= e.insn < len(where) and where[e.insn][0]:
            line, col = where[e.insn]
        src = self.c.source.split("\n")
        text = src[line - 1] if 0 < line <= len(src) else None
        reason = _verifier_reason(getattr(e, "log", "")) or getattr(e, "reason", None) or str(e)
        at = f" (instruction {e.insn})" if e.insn is not None else ""
        err = ScriptError(f"{who} rejected {inst.point.name}{at}: {reason}", line, col, text,
                          self.c.analyzer.origin)  # fmt: skip
        err.exit_code = 1  # type: ignore[attr-defined]
        return err

    def _show_insns(self, inst: Instance, insns: list) -> None:
        from ..isa.disasm import format_insn

        print(f"; {inst.point.name}: {len(insns)} instructions", file=sys.stderr)
        pc = 0
        for insn in insns:
            print(f"{pc:5}: {format_insn(insn, 'kernel')}", file=sys.stderr)
            pc += insn.slots

    def _check_attachable(self, pp: ProbePoint) -> None:
        p = pp.provider
        if p in ("kprobe", "kretprobe"):
            from ..kernel.kprobe import kprobes_supported

            ok, why = kprobes_supported()
            if not ok:
                raise NotSupported(f"{pp.name}: this kernel cannot attach kprobes ({why})")
        if p in ("kfunc", "kretfunc"):
            from ..kernel.features import attach_kind

            probe = attach_kind("fentry")
            if not probe:
                raise NotSupported(f"{pp.name}: kfunc/fentry probes need BPF trampolines: "
                                   f"{probe.reason}")  # fmt: skip
            raise NotSupported(f"{pp.name}: kfunc probes are not supported by bpfkit yet")
        if p == "iter":
            iter_btf_id(pp)
        if p in ("watchpoint", "asyncwatchpoint"):
            raise NotSupported(f"{p} probes are not supported by bpfkit")

    def start_clock(self) -> None:
        """``elapsed`` counts from now (just before attaching, as bpftrace's does)."""
        self.start_ns = time.monotonic_ns()
        if self.elapsed_fd is not None:
            self.bsys.map_update(self.elapsed_fd, b"\0" * 4, struct.pack("<Q", self.start_ns))

    def attach(self) -> int:
        """Attach every program (BEGIN/END only remembered); how many probes."""
        from ..kernel import perf_event as pe

        self.start_clock()
        n = 0
        for inst, fd in self.progs:
            pp = inst.point
            p = pp.provider
            n += 1
            if p == "BEGIN":
                self.begin.append(fd)
            elif p == "END":
                self.end.append(fd)
            elif p == "tracepoint":
                from ..kernel.tracepoint import attach_tracepoint

                self.links.append(attach_tracepoint(fd, pp.target, pp.func))
            elif p == "rawtracepoint":
                from ..kernel.raw_tracepoint import attach_raw_tracepoint

                self.links.append(attach_raw_tracepoint(fd, pp.func))
            elif p in ("uprobe", "uretprobe"):
                from ..kernel.uprobe import attach_uprobe
                from .symbols import function_offset

                off = pp.offset
                if pp.func:
                    fo = function_offset(pp.target, pp.func)
                    if fo is None:
                        raise NotSupported(f"{pp.name}: no function {pp.func!r} in {pp.target}")
                    off += fo
                self.links.append(attach_uprobe(fd, pp.target, None, off,
                                                retprobe=p == "uretprobe",
                                                pid=self.opts.pid or -1))  # fmt: skip
            elif p == "usdt":
                from ..kernel.uprobe import attach_uprobe

                site = pp.usdt
                self.links.append(attach_uprobe(fd, site.path, offset=site.offset,
                                                pid=self.opts.pid or -1,
                                                ref_ctr_offset=site.semaphore_offset))  # fmt: skip
            elif p == "iter":
                from ..uapi.enums import AttachType

                link = self.bsys.FD(self.bsys.link_create(fd, 0, AttachType.TRACE_ITER))
                self.links.append(link)
                self.iters.append(link)
            elif p == "kprobe" or p == "kretprobe":
                from ..kernel.kprobe import attach_kprobe

                self.links.append(attach_kprobe(fd, pp.func, retprobe=p == "kretprobe"))
            elif p == "interval":
                period = pp.value * {"s": 10**9, "ms": 10**6, "us": 10**3}.get(pp.unit, 0)
                attr = pe.PerfEventAttr(type=pe.PERF_TYPE_SOFTWARE,
                                        config=pe.PERF_COUNT_SW_CPU_CLOCK)  # fmt: skip
                if pp.unit == "hz":
                    attr.sample_period = pp.value
                    attr.flags |= 1 << 10
                else:
                    attr.sample_period = period
                ev = pe.perf_event_open(attr, -1, pe.online_cpus()[0])
                self.links.append(pe.attach_perf_event(fd, ev))
            elif p == "profile":
                if pp.unit == "hz":
                    self.links.append(pe.sample_cpu_clock(fd, frequency=pp.value))
                else:
                    mul = {"s": 10**9, "ms": 10**6, "us": 10**3}[pp.unit]
                    self.links.append(pe.sample_cpu_clock(fd, period=pp.value * mul))
            elif p in ("software", "hardware"):
                from .probes import HARDWARE_EVENTS, SOFTWARE_EVENTS

                table = SOFTWARE_EVENTS if p == "software" else HARDWARE_EVENTS
                config, default = table[pp.target]
                for cpu in pe.online_cpus():
                    attr = pe.PerfEventAttr(
                        type=pe.PERF_TYPE_SOFTWARE if p == "software" else pe.PERF_TYPE_HARDWARE,
                        config=config, sample_period=pp.value or default,
                    )  # fmt: skip
                    try:
                        ev = pe.perf_event_open(attr, -1, cpu)
                    except KernelError as e:
                        raise NotSupported(f"{pp.name}: {e}") from None
                    self.links.append(pe.attach_perf_event(fd, ev))
            else:
                raise NotSupported(f"cannot attach {pp.name}")
        return n

    # ---- running -----------------------------------------------------------------------------
    def write(self, s: str) -> None:
        self.out.write(s)

    def message(self, kind: str, text: str) -> None:
        if self.opts.json:
            self.write(f'{{"type": "{kind}", "data": "{json_escape(text)}"}}\n')
        else:
            self.write(text)

    def run_special(self, fds: list[Any]) -> None:
        for fd in fds:
            self.bsys.prog_test_run(fd, ctx=b"\0" * 8, ctx_out_size=0, repeat=0)

    def on_event(self, rec: Any) -> int:
        data = bytes(rec)
        eid, kind = struct.unpack_from("<II", data)
        if kind == CG.EV_RECORD:  # recorded until the probes detach, even after exit()
            self.recorder.event(data, after_exit=self.exiting)
            return 0
        if kind == CG.EV_MEM:
            self.recorder.mem(data)
            return 0
        if kind == CG.EV_STACK:
            self.recorder.stack(data)
            return 0
        if self.exiting:
            return 0
        ev = self.cc.events[eid] if eid < len(self.cc.events) else None
        if ev is None:
            return 0
        if kind == CG.EV_PRINTF:
            self.message("printf", c_format(ev.fmt, self._args(ev, data)))
        elif kind == CG.EV_EXIT:
            self.exiting = True
            return -1
        elif kind == CG.EV_TIME:
            self.message("time", time.strftime(ev.fmt))
        elif kind == CG.EV_PRINT_MAP:
            top, div = ev.extra
            self.print_map(ev.fmt, top, div)
        elif kind in (CG.EV_CLEAR, CG.EV_ZERO):
            self.clear_map(ev.fmt, zero=kind == CG.EV_ZERO)
        elif kind == CG.EV_PRINT_VAL:
            t, off = ev.args[0]
            n = T.storage_size(t)
            if self.opts.json:
                self.write(f'{{"type": "value", "data": '
                           f"{self.fmt.json_value(t, data[off:off + n])}}}\n")  # fmt: skip
            else:
                self.write(self.fmt.text(t, data[off : off + n]) + "\n")
        elif kind == CG.EV_JOIN:
            parts = []
            for i in range(CG.JOIN_ARGS):
                s = data[8 + i * CG.JOIN_LEN : 8 + (i + 1) * CG.JOIN_LEN]
                if not s or s[0] == 0:
                    break
                parts.append(s.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))
            text = ev.fmt.join(parts)
            self.message("join", text if self.opts.json else text + "\n")  # JSON: no newline
        elif kind == CG.EV_SYSTEM:
            import subprocess

            cmd = c_format(ev.fmt, self._args(ev, data))
            self.out.flush()
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
            self.message("syscall", r.stdout)  # bpftrace's JSON type for system()
        elif kind == CG.EV_CAT:
            path = c_format(ev.fmt, self._args(ev, data))
            try:
                with open(path) as f:
                    self.message("cat", f.read())
            except OSError as e:
                print(f"ERROR: failed to open file '{path}': {e.strerror}", file=sys.stderr)
        return 0

    def _args(self, ev: Any, data: bytes) -> list[Any]:
        vals = []
        for t, off in ev.args:
            n = T.storage_size(t)
            v = self.fmt.raw(t, data[off : off + n])
            if t.kind in ("tuple", "array"):
                v = self.fmt.text(t, data[off : off + n])
            vals.append(v)
        return vals

    def strftime(self, fmt: str, ns: int) -> str:
        boot = time.time() - time.monotonic()
        return time.strftime(fmt, time.localtime(boot + ns / 1e9))

    def stack_text(self, kind: str, v: int, ty: T.Ty) -> str:
        frames = self._stack_frames(v & 0xFFFFFFFF)
        if frames is None:
            return ""
        depth = ty.extra[1] if ty.extra else STACK_DEPTH
        perf = bool(ty.extra and ty.extra[0] == "perf")
        lines = ["\n"]
        for addr in frames[:depth]:
            sym = (self.symbols.ksym(addr, offset=True) if kind == "kstack"
                   else self.symbols.usym(addr, v >> 32, offset=True, module=perf))  # fmt: skip
            if perf:
                lines.append(f"\t{addr:x} {sym}\n")
            else:
                lines.append(" " * 8 + sym + "\n")
        return "".join(lines)

    # ---- maps ----------------------------------------------------------------------------------
    def entries(self, name: str) -> list[tuple[bytes, list[bytes]]]:
        mi = self.c.analyzer.maps[name]
        fd = self.map_fds[name]
        ks = _key_size(mi)
        vs = _value_size(mi)
        per_cpu = mi.value.kind in _PERCPU_KINDS
        stride = (vs + 7) & ~7
        out = []
        for key in list(self.bsys.map_keys(fd, ks)):
            raw = self.bsys.map_lookup(fd, key, stride * self.ncpus if per_cpu else vs)
            if raw is None:
                continue
            vals = [raw[i * stride : i * stride + vs] for i in range(self.ncpus)] if per_cpu \
                else [raw]  # fmt: skip
            out.append((key, vals))
        return out

    def print_map(self, name: str, top: int = 0, div: int = 0) -> None:
        mi = self.c.analyzer.maps[name]
        self.write(self.fmt.print_map(name, mi, self.entries(name), top, div))

    def clear_map(self, name: str, zero: bool = False) -> None:
        mi = self.c.analyzer.maps[name]
        fd = self.map_fds[name]
        if not mi.keys and mi.value.kind in ("count", "sum"):
            zero = True  # bpftrace keeps a cleared keyless counter as 0
        ks = _key_size(mi)
        per_cpu = mi.value.kind in _PERCPU_KINDS
        vs = _value_size(mi)
        for key in list(self.bsys.map_keys(fd, ks)):
            try:
                if zero:
                    n = ((vs + 7) & ~7) * self.ncpus if per_cpu else vs
                    self.bsys.map_update(fd, key, b"\0" * n)
                else:
                    self.bsys.map_delete(fd, key)
            except KernelError:
                pass

    def print_all_maps(self) -> None:
        for name in sorted(self.c.analyzer.maps, key=_map_sort_key):
            self.print_map(name)

    def drain(self, reader: Any) -> None:
        reader.consume(self.on_event)
        self.report_lost()

    def report_lost(self) -> None:
        """``Lost N events`` (JSON: ``lost_events``) when the ring buffer refused records."""
        raw = self.bsys.map_lookup(self.lost_fd, b"\0" * 4, 8 * self.ncpus)
        if raw is None:
            return
        total = sum(struct.unpack_from("<Q", raw, 8 * i)[0] for i in range(self.ncpus))
        if total > self.lost:
            n, self.lost = total - self.lost, total
            if self.opts.json:
                self.write(f'{{"type": "lost_events", "data": {{"events": {n}}}}}\n')
            else:
                self.write(f"Lost {n} events\n")

    def run(self, child: Any = None) -> int:
        """Attach, run until the end, print; the exit status."""
        from ..kernel.ringbuf import RingBufReader

        reader = RingBufReader(self.events_fd)
        stop = {"sig": False}

        def handler(signum: int, frame: Any) -> None:
            stop["sig"] = True

        old = [signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)]
        try:
            n = self.attach()
            if self.opts.json:
                self.write(f'{{"type": "attached_probes", "data": {{"probes": {n}}}}}\n')
            else:
                self.write(f"Attaching {n} probe{'s' if n != 1 else ''}...\n")
            self.out.flush()
            self.run_special(self.begin)
            if child is not None:
                child.start()
            if self.iters:  # run every iterator to its end, then end the script
                self.run_iters(reader)
                self.exiting = True
            deadline = None if self.opts.timeout is None else time.monotonic() + self.opts.timeout
            while not self.exiting and not stop["sig"]:
                reader.wait(0.1 if child is not None or deadline or self.opts.pid else 0.25)
                self.drain(reader)
                self.out.flush()
                if self.c.uses_usyms:  # keep the traced process's mappings for printing
                    for p in (child.pid if child else 0, self.opts.pid or 0):
                        if p:
                            self.symbols.remember(p)
                if child is not None and child.exited():
                    break
                if self.opts.pid and not process_alive(self.opts.pid):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
            for link in self.links:
                link.close()
            self.links.clear()
            self.drain(reader)  # after exit(): only what --record keeps
            self.exiting = False
            self.run_special(self.end)
            self.drain(reader)
            self.exiting = True
            self.write("\n\n")
            self.print_all_maps()
            self.out.flush()
            if self.opts.record:
                self.write_record(self.opts.record)
        finally:
            for s, h in zip((signal.SIGINT, signal.SIGTERM), old, strict=True):
                signal.signal(s, h)
            reader.close()
            if child is not None:
                child.kill()
        return 0

    def run_iters(self, reader: Any) -> None:
        """Read each iterator to its end: the kernel runs the program once per object as
        the iterator is read (its output comes through the ring buffer, drained between
        reads; the iterator itself prints nothing)."""
        import errno

        for link in self.iters:
            fd = self.bsys.iter_create(link)
            try:
                while True:
                    try:
                        if not os.read(fd, 4096):
                            break
                    except InterruptedError:
                        continue
                    except OSError as e:
                        if e.errno != errno.EAGAIN:  # EAGAIN: 1M objects without output
                            raise KernelError(f"reading the iterator: {e.strerror}") from None
                    self.drain(reader)
            finally:
                os.close(fd)
            self.drain(reader)
            self.out.flush()

    def write_record(self, path: str) -> None:
        """Write the recorded event stream (``--record``)."""
        from .probes import tracepoint_format_text

        formats = {f"{i.point.target}:{i.point.func}":
                   tracepoint_format_text(i.point.target, i.point.func)
                   for i in self.c.instances if i.point.provider == "tracepoint"}  # fmt: skip
        self.recorder.fill_stacks(self._stack_frames, self.symbols)
        header = {"start_ns": self.start_ns, "ncpus": self.ncpus, "cpid": self.opts.cpid,
                  "params": self.opts.params, "formats": formats,
                  "probes": [i.point.name for i in self.c.instances],
                  "symbols": self.symbols.log or {}}  # fmt: skip
        try:
            with open(path, "w", encoding="utf-8") as f:
                self.recorder.write(f, header)
        except OSError as e:
            raise BpfError(f"cannot write {path}: {e.strerror}") from None

    def _stack_frames(self, sid: int) -> list[int] | None:
        """The frames the kernel's stack map holds under id ``sid`` (None: no such stack)."""
        if self.stack_fd is None or not 0 <= sid < 0x80000000:
            return None
        raw = self.bsys.map_lookup(self.stack_fd, struct.pack("<I", sid), 8 * STACK_DEPTH)
        if raw is None:
            return None
        frames = list(struct.unpack(f"<{STACK_DEPTH}Q", bytes(raw)[: 8 * STACK_DEPTH]))
        return frames[: frames.index(0)] if 0 in frames else frames

    def close(self) -> None:
        for link in self.links:
            try:
                link.close()
            except BpfError:
                pass
        for fd in self.fds:
            fd.close()


def _verifier_reason(log: str) -> str | None:
    """The line of a kernel verifier log that says why (not a state dump or statistics)."""
    import re

    skip = re.compile(r"(cur|old) state:|processed \d|verification time|stack depth|R\d|\d+: |"
                      r"from \d+ to \d+|mark_precise|last_idx|regs=|parent |; ")  # fmt: skip
    for line in reversed(log.splitlines()):
        t = line.strip()
        if t and not skip.match(t):
            return t
    return None


def _map_sort_key(name: str) -> str:
    return name


def _prog_name(pp: ProbePoint) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_]", "_", pp.name)[:15]


class Child:
    """The ``-c`` command: forked first (its pid is ``cpid``), exec'd once probes attach.

    As bpftrace 0.17 does it, so a script counting the child's events counts the same:
    the forked child (named ``bpfkit``, killed if the tracer dies) blocks reading 8 bytes
    from an eventfd; the go is a write to it; then it closes the eventfd and execs
    the command (its path resolved before the fork). Before the command runs, a probe
    sees the end of that ``read`` (8 bytes), the ``close`` and the ``execve``.
    """

    def __init__(self, argv: list[str]) -> None:
        path = resolve_command(argv[0])
        import ctypes  # noqa: F401 - loaded before the fork: the child only calls prctl

        efd = os.eventfd(0, os.EFD_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the child: wait for the go, then exec
            try:
                _child_prepare()
                os.read(efd, 8)
                os.close(efd)
                os.execv(path, argv)
            except OSError as e:
                os.write(2, f"bpfkit: cannot run {argv[0]}: {e.strerror}\n".encode())
            os._exit(127)
        self.pid = pid
        self.efd = efd
        self.status: int | None = None
        self.started = False
        _wait_blocked(pid)

    def start(self) -> None:
        if not self.started and self.status is None:
            os.eventfd_write(self.efd, 1)
        self.started = True
        self._close_efd()

    def _close_efd(self) -> None:
        if self.efd >= 0:
            os.close(self.efd)
            self.efd = -1

    def exited(self) -> bool:
        if self.status is not None:
            return True
        pid, st = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.status = st
            return True
        return False

    def kill(self) -> None:
        self._close_efd()
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGTERM if self.started else signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.status = -1


def resolve_command(name: str) -> str:
    """The executable ``-c`` runs: ``name`` itself if it has a ``/``, else found in ``PATH``
    (:class:`~bpfkit.errors.ScriptError`, exit 2, when there is none)."""
    import shutil

    path = name if "/" in name else shutil.which(name)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        err = BpfError(f"-c: '{name}' does not exist or is not executable")
        err.exit_code = 2  # type: ignore[attr-defined] - bad input
        raise err
    return path


def _wait_blocked(pid: int, timeout: float = 2.0) -> None:
    """Wait until the forked child sleeps in its ``read`` (or has gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/syscall", "rb") as f:
                if f.read().split(b" ", 1)[0] == b"0":  # read(2) on x86-64
                    return
        except OSError:
            return
        time.sleep(0.001)


def _prctl(option: int, arg: int | bytes) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def set_process_name(name: bytes = b"bpfkit") -> None:
    """Name this thread ``bpfkit`` (``comm`` in ``BEGIN``, as bpftrace's is ``bpftrace``)."""
    _prctl(15, name)  # PR_SET_NAME


def _child_prepare() -> None:
    """In the forked child: named ``bpfkit``, dies with the tracer (``PR_SET_PDEATHSIG``)."""
    set_process_name()
    _prctl(1, int(signal.SIGTERM))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (``-p``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat.rsplit(b")", 1)[-1].split()[:1]
    return state != [b"Z"] and state != [b"X"]
