"""Run a bpftrace script on bpfkit's userspace VM, fired by a recorded or synthetic stream.

``bpfkit trace --vm --replay EVENTS.jsonl SCRIPT`` compiles the script exactly as for
the kernel, loads every program into a :class:`~bpfkit.vm.runtime.VMRuntime` (bpfkit's
verifier checks them on load), runs ``BEGIN``, fires each event of the stream at the
programs of its probe, then ``END``, and prints what the kernel run prints: the same
events through the same ring-buffer records, the same maps read the same way. No root,
no kernel: scripts can be unit-tested anywhere.

What the kernel would supply comes from the event: the task (``pid``, ``tid``, ``uid``,
``gid``, ``comm``), the CPU, the clock (``nsecs``; ``elapsed`` counts from the stream's
``start_ns``), the cgroup, ``curtask`` and every ``probe_read*`` (the bytes the kernel
read, when recorded with ``--record``, or a synthetic event's ``mem``). ``interval``
probes fire on the stream's clock when the stream has no events of their own.
"""

from __future__ import annotations

import errno
import sys
from typing import IO, Any

from ..errors import BpfError, VerifierError
from . import codegen as CG
from .replay import Replay, event_memory, pack_context
from .runtime import (
    _PERCPU_KINDS,
    MAX_ENTRIES,
    RINGBUF_SIZE,
    STACK_DEPTH,
    Compiled,
    Options,
    Session,
    _key_size,
    _prog_name,
    _prog_type,
    _value_size,
)

_PERIOD_NS = {"s": 10**9, "ms": 10**6, "us": 10**3}


class _Handle:
    """A VM map where the kernel session keeps a file descriptor."""

    def __init__(self, m: Any) -> None:
        self.m = m

    def fileno(self) -> int:
        return self.m.fd

    def close(self) -> None:
        self.m.close()


class _VMSys:
    """The few ``bpfkit.kernel.sys`` map calls a session makes, on VM maps."""

    @staticmethod
    def map_keys(h: _Handle, key_size: int) -> Any:
        return list(h.m.keys())

    @staticmethod
    def map_lookup(h: _Handle, key: bytes, size: int) -> bytes | None:
        from ..vm.maps.base import MapError

        try:
            return h.m.lookup(key)
        except MapError:
            return None

    @staticmethod
    def map_update(h: _Handle, key: bytes, value: bytes) -> None:
        h.m.update(key, value)

    @staticmethod
    def map_delete(h: _Handle, key: bytes) -> None:
        h.m.delete(key)


class VMSession(Session):
    """One run of a compiled script on the VM, fed by a :class:`Replay`."""

    def __init__(self, compiled: Compiled, opts: Options, replay: Replay,
                 out: IO[str] | None = None) -> None:  # fmt: skip
        from ..vm.runtime import possible_cpus
        from .output import Formatter
        from .symbols import Symbols

        self.c = compiled
        self.opts = opts
        self.out = out or sys.stdout
        self.replay = replay
        self.bsys = _VMSys()
        self.fmt = Formatter(self, opts.json)
        self.symbols = Symbols(replay.header.get("symbols"))  # names the recording gave
        self.fds: list[Any] = []
        self.map_fds: dict[str, Any] = {}
        self.progs: list[tuple[Any, Any]] = []
        self.links: list[Any] = []
        self.begin: list[Any] = []
        self.end: list[Any] = []
        self.exiting = False
        h = replay.header
        self.ncpus = int(h.get("ncpus") or possible_cpus())
        self.cleared: set[str] = set()
        self.start_ns = int(h.get("start_ns", 0))
        self.stack_fd: Any = None
        self.now = self.start_ns
        self.event: dict[str, Any] = {}
        self.memory: dict[int, list[tuple[int, int, bytes]]] = {}

    # ---- setup --------------------------------------------------------------------------------
    def setup(self) -> None:
        """Create the VM's maps, generate, verify and load every program."""
        from ..errors import NotSupported
        from ..uapi.enums import MapType
        from ..vm.runtime import VMRuntime

        for inst in self.c.instances:
            if inst.point.provider in ("iter", "watchpoint", "asyncwatchpoint"):
                raise NotSupported(f"{inst.point.name}: {inst.point.provider} probes run on the "
                                   "kernel only (the VM has no kernel objects to visit)")  # fmt: skip
        self.rt = rt = VMRuntime(ncpus=self.ncpus)
        an = self.c.analyzer

        def mk(name: str, mtype: int, key: int, value: int, entries: int) -> _Handle:
            return _Handle(rt.create_map(name, mtype, key, value, entries))

        for name, mi in sorted(an.maps.items()):
            per_cpu = mi.value.kind in _PERCPU_KINDS
            mt = MapType.PERCPU_HASH if per_cpu else MapType.HASH
            self.map_fds[name] = mk(f"@{name}", mt, _key_size(mi), _value_size(mi), MAX_ENTRIES)
        self.events_h = mk("events", MapType.RINGBUF, 0, 0, RINGBUF_SIZE)
        self.scratch_h = mk("scratch", MapType.PERCPU_ARRAY, 4, CG.SCRATCH_SIZE, 1)
        self.lost_fd = mk("lost", MapType.PERCPU_ARRAY, 4, 8, 1)
        self.lost = 0
        stack_fd = 0
        if self.c.uses_stacks:
            self.stack_fd = mk("stacks", MapType.STACK_TRACE, 4, 8 * STACK_DEPTH, MAX_ENTRIES)
            stack_fd = self.stack_fd.fileno()
        self.elapsed_fd: Any = None
        if self.c.uses_elapsed:  # the stream's start: elapsed counts from it
            from ..uapi.enums import MapType as _MT

            self.elapsed_fd = mk("elapsed", _MT.ARRAY, 4, 8, 1)
            self.elapsed_fd.m.update(b"\0" * 4, self.start_ns.to_bytes(8, "little"))
        self.cc = CG.CompileContext(
            an,
            {n: h.fileno() for n, h in self.map_fds.items()},
            events_fd=self.events_h.fileno(),
            scratch_fd=self.scratch_h.fileno(),
            stack_fd=stack_fd,
            start_ns=self.start_ns,
            elapsed_fd=self.elapsed_fd.fileno() if self.elapsed_fd is not None else 0,
            lost_fd=self.lost_fd.fileno(),
            cpid=int(self.replay.header.get("cpid", self.opts.cpid) or 0),
            instances=self.c.instances,
        )
        for n, inst in enumerate(self.c.instances):
            an.inst = inst
            an.analyze_instance(inst)
            insns, where = CG.generate_mapped(self.cc, inst)
            if self.opts.debug:
                self._show_insns(inst, insns)
            try:
                prog = rt.load_program(f"{n}:{_prog_name(inst.point)}", _prog_type(inst.point),
                                       insns)  # fmt: skip
            except VerifierError as e:
                if self.opts.verbose and e.log:
                    print(e.log, file=sys.stderr)
                raise self.verifier_error(inst, e, where, "bpfkit's verifier") from None
            if self.opts.verbose and prog.verification is not None:
                v = prog.verification
                stats = " ".join(f"{k} {val}" for k, val in v.stats.to_json().items())
                print(v.log or f"{inst.point.name}: verified by bpfkit ({stats})",
                      file=sys.stderr)  # fmt: skip
            prog.env.helpers = self._helpers(prog.env.helpers)
            self.progs.append((inst, prog))

    def _helpers(self, base: Any) -> Any:
        """The program's helpers with the kernel's view replaced by the event's."""
        from ..vm import helpers_trace as HT

        reg = base.copy()
        sess = self

        def ktime(env: Any, *_: int) -> int:
            return sess.now

        def cgroup(env: Any, *_: int) -> int:
            return int(sess.event.get("cgroup", 0))

        def task(env: Any, *_: int) -> int:
            return int(sess.event.get("task") or env.runtime.task_addr)

        def read(kernel: bool, string: bool) -> Any:
            def fn(env: Any, dst: int, size: int, src: int, *_: int) -> int:
                size &= 0xFFFFFFFF
                got = sess.memory.get(src)
                if got:
                    want, ret, data = got.pop(0) if len(got) > 1 else got[0]
                    if ret == -1:  # synthetic: a string or bytes at that address
                        if string:
                            data = data[: max(size - 1, 0)].split(b"\0", 1)[0] + b"\0"
                            ret = len(data) if size else 0
                        else:
                            ret = 0
                    data = data[:size].ljust(size, b"\0")
                    env.runtime.space.write(dst, data)
                    return ret & ((1 << 64) - 1)
                if env.runtime.space.find(src, 1) is not None:  # the VM's own memory
                    if string:
                        return HT._probe_read_str(env, dst, size, src, kernel)
                    return HT._probe_read(env, dst, size, src, kernel)
                env.runtime.space.write(dst, bytes(size))
                return HT.neg(errno.EFAULT)

            return fn

        reg.register("ktime_get_ns", ktime)
        reg.register("get_current_cgroup_id", cgroup)
        reg.register("get_current_task", task)
        for name, kernel, string in (
            ("probe_read", False, False), ("probe_read_user", False, False),
            ("probe_read_kernel", True, False), ("probe_read_str", False, True),
            ("probe_read_user_str", False, True), ("probe_read_kernel_str", True, True),
        ):  # fmt: skip
            reg.register(name, read(kernel, string))
        return reg

    def attach(self) -> int:
        n = 0
        for inst, prog in self.progs:
            p = inst.point.provider
            n += 1
            if p == "BEGIN":
                self.begin.append(prog)
            elif p == "END":
                self.end.append(prog)
        return n

    # ---- running -----------------------------------------------------------------------------
    def run_special(self, progs: list[Any]) -> None:
        from ..vm.runtime import Task

        saved = self.rt.task
        self.rt.task = Task.current()
        self.event = {}
        self.memory = {}
        try:
            for prog in progs:
                self._fire(prog, [0])
        finally:
            self.rt.task = saved

    def _fire(self, prog: Any, ctx: Any, **kw: Any) -> None:
        from ..errors import RuntimeFault

        try:
            prog.fire(ctx, **kw)
        except RuntimeFault as e:
            raise BpfError(f"{prog.name}: the VM stopped the program: {e}") from None

    def drain(self, reader: Any = None) -> None:
        self.events_h.m.consume(self.on_event)
        self.report_lost()

    def fire_event(self, ev: dict[str, Any], targets: list[tuple[Any, Any]]) -> None:
        from ..vm.runtime import Task

        comm = str(ev.get("comm", "")).encode()[:15]
        self.rt.task = Task(int(ev.get("tid", ev.get("pid", 0))), int(ev.get("pid", 0)),
                            int(ev.get("uid", 0)), int(ev.get("gid", 0)), comm)  # fmt: skip
        self.rt.cpu = int(ev.get("cpu", 0)) % self.ncpus
        self.now = int(ev.get("nsecs", self.now))
        self.event = ev
        for inst, prog in targets:
            if self.exiting and not ev.get("after_exit"):
                return
            self.memory = event_memory(ev)
            self._fire(prog, pack_context(ev, inst.point), kernel_stack=ev.get("kstack") or (),
                       user_stack=ev.get("ustack") or ())  # fmt: skip
            self.drain()

    def run(self, child: Any = None) -> int:
        """BEGIN, the stream, END, the maps: the exit status."""
        n = self.attach()
        if self.opts.json:
            self.write(f'{{"type": "attached_probes", "data": {{"probes": {n}}}}}\n')
        else:
            self.write(f"Attaching {n} probe{'s' if n != 1 else ''}...\n")
        self.run_special(self.begin)
        self.drain()
        by_name: dict[str, list[tuple[Any, Any]]] = {}
        for inst, prog in self.progs:
            by_name.setdefault(inst.point.name, []).append((inst, prog))
        streamed = {ev["probe"] for ev in self.replay.events}
        unknown = sorted(streamed - set(by_name))
        if unknown:
            print(f"WARNING: events of probes the script does not have: {', '.join(unknown)}",
                  file=sys.stderr)  # fmt: skip
        # interval probes the stream has no events of fire on its clock
        timers = []
        for inst, prog in self.progs:
            pp = inst.point
            if pp.provider == "interval" and pp.name not in streamed and pp.unit in _PERIOD_NS:
                period = pp.value * _PERIOD_NS[pp.unit]
                timers.append([self.start_ns + period, period, inst, prog])
        names = [i.point.name for i in self.c.instances]
        recorded = self.replay.header.get("probes") == names  # instance numbers are ours
        for ev in self.replay.events:
            if self.exiting and not ev.get("after_exit"):
                break
            t = int(ev.get("nsecs", self.now))
            while timers and not self.exiting:
                timers.sort(key=lambda x: x[0])
                due = timers[0]
                if due[0] > t:
                    break
                tick = {"nsecs": due[0], "pid": 0, "tid": 0, "comm": "swapper/0"}
                self.fire_event(tick, [(due[2], due[3])])
                due[0] += due[1]
            if self.exiting and not ev.get("after_exit"):
                break
            idx = ev.get("instance")
            if recorded and isinstance(idx, int) and 0 <= idx < len(self.progs):
                targets = [self.progs[idx]]  # the very program that recorded it
            else:
                targets = by_name.get(ev["probe"], [])
            if targets:
                self.fire_event(ev, targets)
        self.exiting = False
        self.event, self.memory = {}, {}
        self.run_special(self.end)
        self.drain()
        self.exiting = True
        self.write("\n\n")
        self.print_all_maps()
        self.out.flush()
        return 0

    def close(self) -> None:
        rt = getattr(self, "rt", None)
        if rt is not None:
            rt.close()
