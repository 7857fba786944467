"""Compile one type-checked probe instance to BPF instructions with bpfkit's own builders.

Why not LLVM: a bpftrace script is small and its shapes are few (map updates, helper
calls, string copies), so a direct code generator gives verifier-friendly code without
importing llvmlite or loading libLLVM (start-up time and memory are measured against
bpftrace). Values are kept simple: every temporary is an 8-byte-aligned slot in the
stack frame (or, when the 512-byte frame is full, in a per-CPU scratch map value whose
pointer lives in r9); r6 holds the context; r0-r5 are scratch between helper calls.
"""

from __future__ import annotations

from typing import Any

from ..errors import ScriptError
from ..isa import builders as b
from ..isa import opcodes as op
from ..isa.builders import FP, R0, R1, R2, R3, R4, R6, R9, Label
from ..uapi.enums import HELPER_IDS
from . import ast as A
from . import types as T
from .semantic import Analyzer, Instance, MapInfo

#: x86-64 ``struct pt_regs`` byte offsets (what uprobe/perf-event contexts start with).
PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112,
    "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160,
}  # fmt: skip
ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")

# Event kinds (the high 32 bits of an event's first word).
EV_PRINTF, EV_EXIT, EV_PRINT_MAP, EV_CLEAR, EV_ZERO, EV_TIME = 1, 2, 3, 4, 5, 6
EV_PRINT_VAL, EV_JOIN, EV_SYSTEM, EV_CAT = 7, 8, 9, 10
# --record: one EV_RECORD per probe invocation that passes its predicate (what the
# context and the task were), one EV_MEM per memory read (what the read returned).
EV_RECORD, EV_MEM = 11, 12
# --record: one EV_STACK per get_stackid call (which stack id it got; the frames are
# read from the stack map when the run ends)
EV_STACK = 13
#: the largest memory read --record keeps whole (longer ones are cut)
RECORD_MEM_MAX = 1024
#: bytes past a tracepoint's fixed record kept for its ``__data_loc`` strings
RECORD_DATA_LOC = 256
#: record layout: header, seq, instance, cpu, pid_tgid, uid_gid, nsecs, cgroup, task,
#: comm[16], ctx_len, then the context bytes
REC_CTX = 96

STACK_LIMIT = 512
SCRATCH_SIZE = 32768
JOIN_ARGS, JOIN_LEN = 16, 256
H = HELPER_IDS


class Imm:
    """A constant."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Imm({self.value})"


class Mem:
    """``size`` bytes at ``base + off`` (base: the frame pointer or the scratch pointer)."""

    __slots__ = ("base", "off", "size")

    def __init__(self, base: Any, off: int, size: int) -> None:
        self.base, self.off, self.size = base, off, size

    def at(self, delta: int, size: int) -> Mem:
        return Mem(self.base, self.off + delta, size)

    def __repr__(self) -> str:
        return f"Mem({self.base}, {self.off}, {self.size})"


class Addr:
    """A record or array in kernel/user memory; its address is the scalar ``where``."""

    __slots__ = ("where", "space", "ty")

    def __init__(self, where: Imm | Mem, space: str, ty: T.Ty) -> None:
        self.where, self.space, self.ty = where, space, ty


class Ctx:
    """Bytes of the program's context at a constant offset (tracepoint fields)."""

    __slots__ = ("off", "ty")

    def __init__(self, off: int, ty: T.Ty) -> None:
        self.off, self.ty = off, ty


class Event:
    """What userspace needs to decode one kind of event."""

    def __init__(self, kind: int, fmt: str = "", args: tuple = (), extra: Any = None) -> None:
        self.kind = kind
        self.fmt = fmt
        self.args = args  # (type, offset) per argument
        self.extra = extra


class CompileContext:
    """What every program of a script shares: maps' fds and the tables of events."""

    def __init__(self, analyzer: Analyzer, map_fds: dict[str, int], *, events_fd: int,
                 scratch_fd: int, stack_fd: int, start_ns: int, cpid: int = 0,
                 elapsed_fd: int = 0, lost_fd: int = 0,
                 record: bool = False, instances: list[Instance] | None = None) -> None:  # fmt: skip
        self.record = record
        self.instances = instances or []
        self.an = analyzer
        self.map_fds = map_fds
        self.events_fd = events_fd
        self.scratch_fd = scratch_fd
        self.stack_fd = stack_fd
        self.start_ns = start_ns
        self.elapsed_fd = elapsed_fd  # a 1-entry array: when the probes were attached
        self.lost_fd = lost_fd  # a 1-entry per-CPU array: records the ring buffer refused
        self.cpid = cpid
        self.events: list[Event] = []
        self.strings: list[str] = []
        self.map_ids = {n: i for i, n in enumerate(sorted(analyzer.maps))}
        self.uses_stacks = False
        self.uses_scratch = False

    def event(self, ev: Event) -> int:
        self.events.append(ev)
        return len(self.events) - 1

    def string_id(self, s: str) -> int:
        if s in self.strings:
            return self.strings.index(s)
        self.strings.append(s)
        return len(self.strings) - 1


class Frame:
    """Stack-like allocation of temporaries: the frame first, then the scratch map value."""

    def __init__(self) -> None:
        self.sp = 8  # fp-8 holds a zero u32 key for the scratch lookup
        self.scratch = 0
        self.max_sp = self.sp
        self.max_scratch = 0

    def alloc(self, size: int) -> Mem:
        size = (max(size, 1) + 7) & ~7
        if self.sp + size <= STACK_LIMIT - 16 and size <= 128:
            self.sp += size
            self.max_sp = max(self.max_sp, self.sp)
            return Mem(FP, -self.sp, size)
        off = self.scratch
        self.scratch += size
        if self.scratch > SCRATCH_SIZE:
            raise ScriptError("the program needs more temporary memory than bpfkit provides")
        self.max_scratch = max(self.max_scratch, self.scratch)
        return Mem(R9, off, size)

    def mark(self) -> tuple[int, int]:
        return self.sp, self.scratch

    def release(self, m: tuple[int, int]) -> None:
        self.sp, self.scratch = m


class ProgramGen:
    """Instructions for one :class:`Instance`."""

    def __init__(self, cc: CompileContext, inst: Instance) -> None:
        self.cc = cc
        self.an = cc.an
        self.inst = inst
        self.out: list[Any] = []
        #: the script position (line, column) each item of ``out`` was compiled from
        self.where: list[tuple[int, int]] = []
        self.pos = (inst.probe.line, inst.probe.col)
        #: after :meth:`generate`: the position of every instruction slot
        self.slot_pos: list[tuple[int, int]] = []
        self.frame = Frame()
        self.vars: dict[str, Mem] = {}
        self._n = 0
        self.loops: list[tuple[str, str]] = []
        self.into: Mem | None = None  # where the next str() may write its result
        self.memrec: Mem | None = None  # --record: the EV_MEM record buffer

    # ---- plumbing -------------------------------------------------------------------------
    def emit(self, *items: Any) -> None:
        self.out.extend(items)
        self.where.extend([self.pos] * len(items))

    def label(self, hint: str = "L") -> str:
        self._n += 1
        return f"{hint}{self._n}"

    def tmp(self, size: int = 8) -> Mem:
        m = self.frame.alloc(size)
        if m.base is R9:
            self.cc.uses_scratch = True
        return m

    def err(self, node: A.Node, msg: str) -> ScriptError:
        return self.an.err(node, msg)

    def helper(self, name: str) -> None:
        if self.cc.record and name.startswith("probe_read") and self.memrec is not None:
            self.recorded_read(name)
            return
        self.emit(b.call(H[name]))

    # ---- --record ---------------------------------------------------------------------------
    def recorded_read(self, name: str) -> None:
        """A ``probe_read*`` call (r1 dst, r2 size, r3 src set) and an EV_MEM record of it.

        The record: header, seq, cpu, src, size, the helper's result, then up to
        :data:`RECORD_MEM_MAX` bytes of what landed in dst.
        """
        rec = self.memrec
        assert rec is not None
        eid = self.cc.event(Event(EV_MEM))
        self.emit(b.stx(8, rec.base, rec.off + 8, R1), b.stx(8, rec.base, rec.off + 24, R3),
                  b.stx(8, rec.base, rec.off + 32, R2))  # fmt: skip
        self.emit(b.call(H[name]))
        self.emit(b.stx(8, rec.base, rec.off + 40, R0))
        self.header(rec, EV_MEM, eid)
        # seq (word 1 of the scratch value) and cpu; dst is read back from slot 8
        self.helper_plain("get_smp_processor_id")
        self.emit(b.stx(8, rec.base, rec.off + 16, R0))
        self.emit(b.ldx(8, R3, rec.base, rec.off + 8))  # dst
        self.emit(b.ldx(8, R0, R9, 0), b.stx(8, rec.base, rec.off + 8, R0))  # seq
        self.emit(b.ldx(8, R2, rec.base, rec.off + 32))
        ok = self.label("mm")
        self.emit(b.jle(R2, RECORD_MEM_MAX, ok), b.mov64(R2, RECORD_MEM_MAX), Label(ok))
        self.addr_of(rec.at(48, RECORD_MEM_MAX), R1)
        self.emit(b.call(H["probe_read_kernel"]))
        self.emit(b.ldx(8, R3, rec.base, rec.off + 32))
        ok2 = self.label("mm")
        self.emit(b.jle(R3, RECORD_MEM_MAX, ok2), b.mov64(R3, RECORD_MEM_MAX), Label(ok2))
        self.emit(b.add64(R3, 48))
        self.emit(b.ld_map_fd(R1, self.cc.events_fd))
        self.addr_of(rec, R2)
        self.emit(b.mov64(R4, 0))
        self.emit(b.call(H["ringbuf_output"]))
        # the read's result back in r0, as the caller expects
        self.emit(b.ldx(8, R0, rec.base, rec.off + 40))

    def record_stack(self, sid: Mem, user: bool) -> None:
        """EV_STACK: header, seq, cpu, the ``get_stackid`` result (in ``sid``), user."""
        mk = self.frame.mark()
        rec = self.tmp(40)
        eid = self.cc.event(Event(EV_STACK))
        self.header(rec, EV_STACK, eid)
        self.emit(b.ldx(8, R0, R9, 0), b.stx(8, rec.base, rec.off + 8, R0))
        self.helper_plain("get_smp_processor_id")
        self.emit(b.stx(8, rec.base, rec.off + 16, R0))
        self.emit(b.ldx(8, R0, sid.base, sid.off), b.stx(8, rec.base, rec.off + 24, R0))
        self.emit(b.st(8, rec.base, rec.off + 32, int(user)))
        self.send(rec)
        self.frame.release(mk)

    def helper_plain(self, name: str) -> None:
        self.emit(b.call(H[name]))

    def record_event(self) -> None:
        """EV_RECORD: the invocation's task, time and context (after the predicate)."""
        pp = self.inst.point
        p = pp.provider
        idx = next(i for i, x in enumerate(self.cc.instances) if x is self.inst)
        if p == "tracepoint":
            fixed = max((f.offset + f.size for f in pp.fields), default=8)
            size = fixed + (RECORD_DATA_LOC if any(f.data_loc for f in pp.fields) else 0)
        elif p == "rawtracepoint":
            size = 8 * 12
        elif p in ("profile", "interval", "software", "hardware"):
            size = 184
        else:
            size = 168  # pt_regs
        size = (size + 7) & ~7
        m = self.frame.mark()
        rec = self.tmp(REC_CTX + size)
        eid = self.cc.event(Event(EV_RECORD))
        self.header(rec, EV_RECORD, eid)
        self.emit(b.ldx(8, R0, R9, 0), b.stx(8, rec.base, rec.off + 8, R0))
        self.emit(b.st(8, rec.base, rec.off + 16, idx))
        for off, name in ((24, "get_smp_processor_id"), (32, "get_current_pid_tgid"),
                          (40, "get_current_uid_gid"), (48, "ktime_get_ns"),
                          (56, "get_current_cgroup_id"), (64, "get_current_task")):  # fmt: skip
            self.emit(b.call(H[name]), b.stx(8, rec.base, rec.off + off, R0))
        self.addr_of(rec.at(72, 16), R1)
        self.emit(b.mov64(R2, 16), b.call(H["get_current_comm"]))
        self.emit(b.st(8, rec.base, rec.off + 88, size))
        ctx = rec.at(REC_CTX, size)
        if p in ("tracepoint", "rawtracepoint"):
            self.addr_of(ctx, R1)
            self.emit(b.mov64(R2, size), b.mov64(R3, R6), b.call(H["probe_read_kernel"]))
        else:
            self.copy_ctx(ctx, 0, size)
        self.send(rec)
        self.frame.release(m)

    def addr_of(self, m: Mem, reg: Any) -> None:
        """``reg = &m``."""
        self.emit(b.mov64(reg, m.base), b.add64(reg, m.off))

    def load(self, v: Imm | Mem, reg: Any) -> None:
        """Put a scalar in ``reg``."""
        if isinstance(v, Imm):
            x = v.value & ((1 << 64) - 1)
            if x < (1 << 31) or x >= (1 << 64) - (1 << 31):
                self.emit(b.mov64(reg, x - (1 << 64) if x >= (1 << 63) else x))
            else:
                self.emit(b.lddw(reg, x))
        else:
            self.emit(b.ldx(8, reg, v.base, v.off))

    def store(self, reg: Any, m: Mem | None = None) -> Mem:
        """Spill ``reg`` to a slot (a new one unless given)."""
        m = m or self.tmp(8)
        self.emit(b.stx(8, m.base, m.off, reg))
        return m

    def zero(self, m: Mem) -> None:
        for i in range(0, m.size, 8):
            n = min(8, m.size - i)
            self.emit(b.st(8 if n == 8 else n if n in (1, 2, 4) else 1, m.base, m.off + i, 0))
        if m.size % 8 not in (0, 1, 2, 4):
            for i in range(m.size - m.size % 8, m.size):
                self.emit(b.st(1, m.base, m.off + i, 0))

    def copy(self, dst: Mem, src: Mem, n: int) -> None:
        """Copy ``n`` bytes (both 8-byte aligned)."""
        i = 0
        while i < n:
            w = 8 if n - i >= 8 else 4 if n - i >= 4 else 2 if n - i >= 2 else 1
            self.emit(b.ldx(w, R1, src.base, src.off + i), b.stx(w, dst.base, dst.off + i, R1))
            i += w

    def extend(self, reg: Any, size: int, signed: bool) -> None:
        """Sign- or zero-extend the low ``size`` bytes of ``reg`` to 64 bits."""
        if size >= 8:
            return
        sh = 64 - size * 8
        if signed:
            self.emit(b.lsh64(reg, sh), b.arsh64(reg, sh))
        elif size == 4:
            self.emit(b.mov32(reg, reg))
        else:
            self.emit(b.and64(reg, (1 << (size * 8)) - 1))

    def probe_read(self, dst: Mem, size: int, addr_reg_setup: Any, space: str,
                   string: bool = False) -> None:  # fmt: skip
        """``bpf_probe_read_{user,kernel}[_str](dst, size, addr)``; ``addr`` put in r3."""
        addr_reg_setup()
        self.addr_of(dst, R1)
        self.emit(b.mov64(R2, size))
        self.helper(read_helper(space, string))

    def space_of(self, ty: T.Ty | None) -> str:
        """The memory a value of type ``ty`` points into (a pointer says; an integer is an
        address of this probe's default space)."""
        if ty is not None and ty.kind == "ptr":
            return ty.space
        return self.an.default_space()

    def scalar(self, e: A.Expr) -> Imm | Mem:
        """Evaluate a scalar expression into a constant or a slot."""
        v = self.expr(e)
        if isinstance(v, (Imm, Mem)) and (not isinstance(v, Mem) or v.size == 8):
            return v
        if isinstance(v, Mem):
            return v.at(0, 8)
        raise self.err(e, f"{e.ty} is not a value here")

    # ---- the program ------------------------------------------------------------------------
    def generate(self) -> list:
        inst = self.inst
        body_start = len(self.out)
        record = self.cc.record and inst.point.provider not in ("BEGIN", "END")
        if record:
            self.frame.scratch = 8  # word 0 of the scratch value: the invocation counter
            self.memrec = self.tmp(48 + RECORD_MEM_MAX)
        for name, ty in inst.vars.items():
            self.vars[name] = self.tmp(T.storage_size(ty))
        var_mark = self.frame.mark()
        if inst.point.provider == "iter":
            # the kernel calls an iterator once more with no object (the end): skip it, as
            # bpftrace does (the object is the member after ``meta``, at offset 8)
            self.emit(b.ldx(8, R0, R6, 8), b.jeq(R0, 0, "exit"))
        if inst.probe.pred is not None:
            self.branch(inst.probe.pred, False, "exit")
            self.frame.release(var_mark)
        if record:
            self.record_event()
        self.stmts(inst.probe.body)
        self.emit(Label("exit"), b.mov64(R0, 0), b.exit_())
        body = self.out[body_start:]
        body_where = self.where[body_start:]
        self.pos = (inst.probe.line, inst.probe.col)
        pro: list[Any] = [b.mov64(R6, R1)]
        if self.frame.max_scratch or record:
            pro += [
                b.st(8, FP, -8, 0),
                b.ld_map_fd(R1, self.cc.scratch_fd),
                b.mov64(R2, FP),
                b.add64(R2, -8),
                b.call(H["map_lookup_elem"]),
                b.jne(R0, 0, "have_scratch"),
                b.mov64(R0, 0),
                b.exit_(),
                Label("have_scratch"),
                b.mov64(R9, R0),
            ]
            if record:  # a new invocation: bump this CPU's counter
                pro += [b.ldx(8, R1, R9, 0), b.add64(R1, 1), b.stx(8, R9, 0, R1)]
        self.out, self.where = [], []
        self.emit(*pro)
        for m in self.vars.values():
            self.zero(m)
        items = peephole(list(zip(self.out + body, self.where + body_where, strict=True)))
        items = drop_unreachable(items)
        insns = b.assemble([it for it, _ in items])
        self.slot_pos = []
        for it, pos in items:
            if not isinstance(it, Label):
                self.slot_pos += [pos] * it.slots
        return insns

    # ---- statements ---------------------------------------------------------------------------
    def stmts(self, body: list[A.Stmt]) -> None:
        for s in body:
            m = self.frame.mark()
            saved, self.pos = self.pos, (s.line, s.col) if s.line else self.pos
            self.stmt(s)
            self.pos = saved
            self.frame.release(m)

    def stmt(self, s: A.Stmt) -> None:
        if isinstance(s, A.ExprStmt):
            self.expr(s.expr, stmt=True)
        elif isinstance(s, A.Assign):
            self.assign(s)
        elif isinstance(s, A.If):
            other, end = self.label("else"), self.label("endif")
            self.cond_jump_false(s.cond, other)
            self.stmts(s.then)
            if s.other:
                self.emit(b.ja(end))
            self.emit(Label(other))
            if s.other:
                self.stmts(s.other)
                self.emit(Label(end))
        elif isinstance(s, A.Unroll):
            n = self.an.const_int(s.count) or 0
            for _ in range(n):
                self.stmts(s.body)
        elif isinstance(s, A.While):
            top, end = self.label("while"), self.label("wend")
            self.emit(Label(top))
            self.cond_jump_false(s.cond, end)
            self.loops.append((top, end))
            self.stmts(s.body)
            self.loops.pop()
            self.emit(b.ja(top), Label(end))
        elif isinstance(s, A.Jump):
            if s.kind == "return":
                self.emit(b.ja("exit"))
            else:
                top, end = self.loops[-1]
                self.emit(b.ja(end if s.kind == "break" else top))

    def cond_jump_false(self, cond: A.Expr, target: str) -> None:
        self.branch(cond, False, target)

    def branch(self, cond: A.Expr, when: bool, target: str) -> None:
        """Jump to ``target`` if ``cond`` is ``when`` (true/false), else fall through.

        Comparisons become one conditional jump and ``&&``/``||``/``!`` become control
        flow, rather than a 0/1 value in a slot that is then tested.
        """
        m = self.frame.mark()
        if isinstance(cond, A.Unop) and cond.op == "!":
            self.branch(cond.expr, not when, target)
        elif isinstance(cond, A.Binop) and cond.op in ("&&", "||"):
            # (a && b) false <=> a false or b false; (a || b) true <=> a true or b true
            if (cond.op == "&&") != when:
                self.branch(cond.left, when, target)
                self.branch(cond.right, when, target)
            else:
                skip = self.label("sc")
                self.branch(cond.left, not when, skip)
                self.branch(cond.right, when, target)
                self.emit(Label(skip))
        elif (isinstance(cond, A.Binop) and cond.op in _JUMPS and cond.left.ty is not None
              and cond.left.ty.kind not in ("str", "buf")):  # fmt: skip
            a = self.scalar(cond.left)
            c = self.scalar(cond.right)
            opname = cond.op if when else _NEGATE[cond.op]
            lt, rt = cond.left.ty, cond.right.ty
            sgn = bool(getattr(lt, "signed", False) and getattr(rt, "signed", False))
            if isinstance(a, Imm) and isinstance(c, Imm):
                r = _fold(opname, a.value, c.value, sgn)
                if r:
                    self.emit(b.ja(target))
            else:
                self.load(a, R0)
                j = _JUMPS[opname][1 if sgn else 0]
                cv = c.value if isinstance(c, Imm) else None
                if cv is not None and -(1 << 31) <= _s64(cv) < (1 << 31):
                    self.emit(j(R0, _s64(cv), target))
                else:
                    self.load(c, R1)
                    self.emit(j(R0, R1, target))
        else:
            v = self.scalar(cond)
            if isinstance(v, Imm):
                if bool(v.value) == when:
                    self.emit(b.ja(target))
            else:
                self.load(v, R0)
                self.emit((b.jne if when else b.jeq)(R0, 0, target))
        self.frame.release(m)

    def assign(self, s: A.Assign) -> None:
        tgt, v = s.target, s.value
        if isinstance(v, A.Call) and v.ty is not None and v.ty.is_agg:
            self.aggregate(tgt, v)  # type: ignore[arg-type]
            return
        if isinstance(tgt, A.Var):
            dst = self.vars[tgt.name]
            if s.op is not None:
                cur = self.scalar_binop(s.op, dst.at(0, 8), self.scalar(v), tgt.ty, v.ty, s)
                self.load(cur, R0)
                self.store(R0, dst.at(0, 8))
                return
            self.materialize(v, dst, tgt.ty)
            return
        assert isinstance(tgt, A.MapRef)
        mi = self.an.maps[tgt.name]
        if s.op is not None:
            self.map_rmw(tgt, mi, s.op, v, s)
            return
        val = self.tmp(T.storage_size(mi.value))  # type: ignore[arg-type]
        self.materialize(v, val, mi.value)  # type: ignore[arg-type]
        key = self.map_key(tgt, mi)
        self.emit(b.ld_map_fd(R1, self.cc.map_fds[mi.name]))
        self.addr_of(key, R2)
        self.addr_of(val, R3)
        self.emit(b.mov64(R4, 0))
        self.helper("map_update_elem")

    def map_rmw(self, ref: A.MapRef, mi: MapInfo, opname: str, v: A.Expr | None,
                node: A.Node, delta: int = 0) -> tuple[Mem, Mem]:  # fmt: skip
        """``@m[k] op= v`` (or ``+= delta``): returns (old, new) value slots."""
        rhs = self.scalar(v) if v is not None else Imm(delta)
        key = self.map_key(ref, mi)
        old, new = self.tmp(8), self.tmp(8)
        self.emit(b.st(8, old.base, old.off, 0))
        self.emit(b.ld_map_fd(R1, self.cc.map_fds[mi.name]))
        self.addr_of(key, R2)
        self.helper("map_lookup_elem")
        miss = self.label("miss")
        self.emit(b.jeq(R0, 0, miss), b.ldx(8, R1, R0, 0), b.stx(8, old.base, old.off, R1))
        self.emit(Label(miss))
        res = self.scalar_binop(opname, old, rhs, mi.value, v.ty if v is not None else T.S64,
                                node)  # fmt: skip
        self.load(res, R0)
        self.store(R0, new)
        self.emit(b.ld_map_fd(R1, self.cc.map_fds[mi.name]))
        self.addr_of(key, R2)
        self.addr_of(new, R3)
        self.emit(b.mov64(R4, 0))
        self.helper("map_update_elem")
        return old, new

    # ---- maps -------------------------------------------------------------------------------------
    def map_key(self, ref: A.MapRef, mi: MapInfo, extra: int = 0) -> Mem:
        """Build the key of ``@m[...]`` (plus ``extra`` trailing bytes for a hist bucket)."""
        size = mi.key_size + extra
        key = self.tmp(size)
        if not mi.keys or ref.keys is None:
            self.emit(b.st(8, key.base, key.off, 0))
            return key
        off = 0
        for k, kt in zip(ref.keys, mi.keys, strict=True):
            n = T.storage_size(kt)
            self.materialize(k, key.at(off, n), kt)
            off += n
        if off < mi.key_size:
            self.zero(key.at(off, mi.key_size - off))
        return key

    def lookup(self, mi: MapInfo, key: Mem) -> None:
        self.emit(b.ld_map_fd(R1, self.cc.map_fds[mi.name]))
        self.addr_of(key, R2)
        self.helper("map_lookup_elem")

    def aggregate(self, ref: A.MapRef, call: A.Call) -> None:
        mi = self.an.maps[ref.name]
        kind = call.ty.kind  # type: ignore[union-attr]
        vals = [self.scalar(a) for a in call.args[:1]]
        v = vals[0] if vals else Imm(1)
        if kind in ("hist", "lhist"):
            key = self.map_key(ref, mi, extra=8)
            self.load(v, R1)
            if kind == "hist":
                self.log2_bucket()
            else:
                lo, hi, step = call.ty.extra  # type: ignore[union-attr]
                self.linear_bucket(lo, hi, step)
            self.emit(b.stx(8, key.base, key.off + mi.key_size, R0))
            self.counter_add(mi, key, Imm(1))
            return
        key = self.map_key(ref, mi)
        if kind in ("count", "sum"):
            self.counter_add(mi, key, v)
            return
        vs = self.tmp(8)
        self.load(v, R0)
        self.store(R0, vs)
        init = self.tmp(16)
        self.lookup(mi, key)
        miss, done = self.label("miss"), self.label("done")
        self.emit(b.jeq(R0, 0, miss))
        if kind in ("avg", "stats"):
            self.emit(b.ldx(8, R1, R0, 0), b.add64(R1, 1), b.stx(8, R0, 0, R1))
            self.emit(b.ldx(8, R1, R0, 8), b.ldx(8, R2, vs.base, vs.off), b.add64(R1, R2),
                      b.stx(8, R0, 8, R1), b.ja(done))  # fmt: skip
            self.emit(Label(miss), b.st(8, init.base, init.off, 1))
            self.emit(b.ldx(8, R1, vs.base, vs.off), b.stx(8, init.base, init.off + 8, R1))
        else:  # min / max: {value, set}
            setv = self.label("set")
            self.emit(b.ldx(8, R2, R0, 8), b.jeq(R2, 0, setv))
            self.emit(b.ldx(8, R1, R0, 0), b.ldx(8, R2, vs.base, vs.off))
            if kind == "min":
                self.emit(b.jsle(R1, R2, done))
            else:
                self.emit(b.jsge(R1, R2, done))
            self.emit(Label(setv), b.ldx(8, R2, vs.base, vs.off), b.stx(8, R0, 0, R2),
                      b.st(8, R0, 8, 1), b.ja(done))  # fmt: skip
            self.emit(Label(miss), b.ldx(8, R1, vs.base, vs.off))
            self.emit(b.stx(8, init.base, init.off, R1), b.st(8, init.base, init.off + 8, 1))
        self.emit(b.ld_map_fd(R1, self.cc.map_fds[mi.name]))
        self.addr_of(key, R2)
        self.addr_of(init, R3)
        self.emit(b.mov64(R4, 0))
        self.helper("map_update_elem")
        self.emit(Label(done))

    def counter_add(self, mi: MapInfo, key: Mem, v: Imm | Mem) -> None:
        """``*value += v`` on this CPU's value, creating it if absent.

        A constant is added as an immediate; the value slot is written only on a miss
        (the per-event path is lookup, load, add, store).
        """
        small = isinstance(v, Imm) and -(1 << 31) <= v.value < (1 << 31)
        if small:
            vs = self.tmp(8)
        elif isinstance(v, Mem):
            vs = v
        else:
            vs = self.tmp(8)
            self.load(v, R0)
            self.store(R0, vs)
        self.lookup(mi, key)
        miss, done = self.label("miss"), self.label("done")
        self.emit(b.jeq(R0, 0, miss), b.ldx(8, R1, R0, 0))
        if small:
            self.emit(b.add64(R1, v.value))  # type: ignore[union-attr]
        else:
            self.emit(b.ldx(8, R2, vs.base, vs.off), b.add64(R1, R2))
        self.emit(b.stx(8, R0, 0, R1), b.ja(done), Label(miss))
        if small:
            self.emit(b.st(8, vs.base, vs.off, v.value))  # type: ignore[union-attr]
        self.emit(b.ld_map_fd(R1, self.cc.map_fds[mi.name]))
        self.addr_of(key, R2)
        self.addr_of(vs, R3)
        self.emit(b.mov64(R4, 0))
        self.helper("map_update_elem")
        self.emit(Label(done))

    def log2_bucket(self) -> None:
        """r0 = bpftrace's log2 bucket of r1 (0: negative, 1: zero, k+2: [2^k, 2^(k+1)))."""
        done, pos = self.label("h"), self.label("h")
        self.emit(b.mov64(R0, 0), b.jslt(R1, 0, done), b.mov64(R0, 1), b.jeq(R1, 0, done))
        self.emit(Label(pos), b.mov64(R0, 2))
        for sh in (32, 16, 8, 4, 2, 1):
            skip = self.label("h")
            self.emit(b.mov64(R2, R1), b.rsh64(R2, sh), b.jeq(R2, 0, skip))
            self.emit(b.rsh64(R1, sh), b.add64(R0, sh), Label(skip))
        self.emit(Label(done))

    def linear_bucket(self, lo: int, hi: int, step: int) -> None:
        """r0 = lhist bucket of r1 (0: below min, 1..n: ranges, n+1: at or above max)."""
        done = self.label("l")
        n = (hi - lo) // step + (1 if (hi - lo) % step else 0)
        self.emit(b.mov64(R0, 0), b.jslt(R1, lo, done), b.mov64(R0, n + 1), b.jsge(R1, hi, done))
        self.emit(b.mov64(R0, R1), b.sub64(R0, lo), b.div64(R0, step), b.add64(R0, 1))
        self.emit(Label(done))

    # ---- values into memory ---------------------------------------------------------------------
    def materialize(self, e: A.Expr, dst: Mem, ty: T.Ty) -> None:
        """Evaluate ``e`` into ``dst`` in the storage layout of ``ty``."""
        et = e.ty
        if ty.kind == "tuple" and isinstance(e, A.Tuple):
            off = 0
            for item, it in zip(e.items, ty.items, strict=True):
                n = T.storage_size(it)
                self.materialize(item, dst.at(off, n), it)
                off += n
            return
        if isinstance(e, A.Builtin) and e.name == "comm" and dst.size >= 16:
            # straight into the destination (the helper pads with NULs): no copy
            self.addr_of(dst, R1)
            self.emit(b.mov64(R2, 16))
            self.helper("get_current_comm")
            if dst.size > 16:
                self.zero(dst.at(16, dst.size - 16))
            return
        if isinstance(e, A.Call) and e.name == "str" and dst.size == T.storage_size(e.ty):
            self.into = dst  # c_str reads the string straight into dst
        v = self.expr(e)
        self.into = None
        if ty.is_scalar or (et is not None and et.is_scalar):
            if isinstance(v, (Addr, Ctx)):
                raise self.err(e, f"{et} is not a value here")
            sv = v if isinstance(v, Imm) else v.at(0, 8)
            self.load(sv, R0)
            self.emit(b.stx(8, dst.base, dst.off, R0))
            return
        if isinstance(v, Mem):
            n = min(v.size, dst.size)
            if v.base is dst.base and v.off == dst.off:
                return
            self.copy(dst, v, n)
            if n < dst.size:
                self.zero(dst.at(n, dst.size - n))
            return
        if isinstance(v, Ctx):
            self.zero(dst)
            self.copy_ctx(dst, v.off, min(v.ty.size, dst.size))
            return
        if isinstance(v, Addr):
            self.zero(dst)
            self.probe_read(dst, min(v.ty.size, dst.size), lambda: self.load(v.where, R3),
                            v.space)  # fmt: skip
            return
        if isinstance(v, Imm):
            self.load(v, R0)
            self.emit(b.stx(8, dst.base, dst.off, R0))
            return
        raise self.err(e, f"cannot store {et}")

    def copy_ctx(self, dst: Mem, off: int, n: int) -> None:
        i = 0
        while i < n:
            w = 8
            while w > 1 and ((off + i) % w or (dst.off + i) % w or n - i < w):
                w //= 2
            self.emit(b.ldx(w, R1, R6, off + i), b.stx(w, dst.base, dst.off + i, R1))
            i += w

    # ---- expressions ----------------------------------------------------------------------------
    def expr(self, e: A.Expr, stmt: bool = False) -> Any:
        fn = getattr(self, "g_" + type(e).__name__)
        saved = self.pos
        if e.line:
            self.pos = (e.line, e.col)
        try:
            return fn(e, stmt) if isinstance(e, A.Call) else fn(e)
        finally:
            self.pos = saved

    def g_Int(self, e: A.Int) -> Imm:
        return Imm(e.value)

    def g_Str(self, e: A.Str) -> Mem:
        return self.const_bytes(e.value.encode("latin-1", "replace") + b"\0", e.ty.size)  # type: ignore[union-attr]

    def const_bytes(self, data: bytes, size: int) -> Mem:
        m = self.tmp(T.storage_size(T.Str(size)))
        data = data.ljust(m.size, b"\0")
        for i in range(0, m.size, 4):
            w = int.from_bytes(data[i : i + 4], "little")
            self.emit(b.st(4, m.base, m.off + i, w - (1 << 32) if w >= 1 << 31 else w))
        return m

    def g_Var(self, e: A.Var) -> Mem:
        m = self.vars[e.name]
        return m if not (e.ty and e.ty.is_scalar) else m.at(0, 8)

    def g_Positional(self, e: A.Positional) -> Imm | Mem:
        c = getattr(e, "const", 0)
        if isinstance(c, str):
            return self.const_bytes(c.encode() + b"\0", e.ty.size)  # type: ignore[union-attr]
        return Imm(c)

    def g_Ident(self, e: A.Ident) -> Any:
        c = getattr(e, "const", None)
        if c is not None:
            return Imm(c)
        return self.expr(e.expansion)  # type: ignore[attr-defined]

    def g_Sizeof(self, e: A.Sizeof) -> Imm:
        return Imm(e.const)  # type: ignore[attr-defined]

    g_Offsetof = g_Sizeof

    def g_MapRef(self, e: A.MapRef) -> Mem:
        mi = self.an.maps[e.name]
        vt = mi.value
        assert vt is not None
        if vt.kind in ("hist", "lhist", "stats"):
            raise self.err(e, f"@{e.name} is a {vt.kind}() map: print() it instead of reading it")
        key = self.map_key(e, mi)
        size = T.storage_size(vt) if not vt.is_agg else 8
        res = self.tmp(size)
        self.zero(res)
        self.lookup(mi, key)
        miss = self.label("miss")
        self.emit(b.jeq(R0, 0, miss))
        if vt.kind == "avg":
            self.emit(b.ldx(8, R1, R0, 0), b.ldx(8, R2, R0, 8), b.jeq(R1, 0, miss))
            self.emit(b.sdiv64(R2, R1), b.stx(8, res.base, res.off, R2))
        else:
            self.copy(res, Mem(R0, 0, size), size)
        self.emit(Label(miss))
        return res

    def g_Builtin(self, e: A.Builtin) -> Any:
        n = e.name
        pp = self.inst.point
        from .builtins import arg_index

        ai = arg_index(n)
        if ai is not None:
            idx, _ = ai
            if pp.provider == "usdt" and pp.usdt is not None:
                return self.usdt_arg(pp.usdt.args[idx])
            if pp.provider == "rawtracepoint":
                self.emit(b.ldx(8, R0, R6, idx * 8))
            else:
                self.emit(b.ldx(8, R0, R6, PT_REGS[ARG_REGS[idx]]))
            return self.store(R0)
        if n in ("pid", "tid"):
            self.helper("get_current_pid_tgid")
            self.emit(b.rsh64(R0, 32) if n == "pid" else b.mov32(R0, R0))
            return self.store(R0)
        if n in ("uid", "gid", "username"):
            self.helper("get_current_uid_gid")
            self.emit(b.rsh64(R0, 32) if n == "gid" else b.mov32(R0, R0))
            return self.store(R0)
        simple = {"nsecs": "ktime_get_ns", "cpu": "get_smp_processor_id",
                  "cgroup": "get_current_cgroup_id", "rand": "get_prandom_u32",
                  "curtask": "get_current_task", "numaid": "get_numa_node_id",
                  "jiffies": "jiffies64"}  # fmt: skip
        if n in simple:
            self.helper(simple[n])
            return self.store(R0)
        if n == "elapsed":
            m = self.tmp(8)  # the start: written by userspace just before attaching
            self.emit(b.st(8, m.base, m.off, 0))
            if self.cc.elapsed_fd:
                self.emit(b.ld_map_fd(R1, self.cc.elapsed_fd))
                self.addr_of(m, R2)
                self.helper("map_lookup_elem")
                none = self.label("el")
                self.emit(b.jeq(R0, 0, none), b.ldx(8, R1, R0, 0), b.stx(8, m.base, m.off, R1))
                self.emit(Label(none))
            else:
                self.load(Imm(self.cc.start_ns), R1)
                self.emit(b.stx(8, m.base, m.off, R1))
            self.helper("ktime_get_ns")
            self.emit(b.ldx(8, R1, m.base, m.off), b.sub64(R0, R1))
            return self.store(R0, m)
        if n == "comm":
            m = self.tmp(16)
            self.addr_of(m, R1)
            self.emit(b.mov64(R2, 16))
            self.helper("get_current_comm")
            return m
        if n == "cpid":
            return Imm(self.cc.cpid)
        if n in ("kstack", "stack", "ustack"):
            return self.stack_id("ustack" if n == "ustack" else "kstack")
        if n == "probe":
            return Imm(self.cc.string_id(pp.name))
        if n == "func":
            if e.ty is not None and e.ty.kind == "usym":  # uprobe: the address, named later
                self.emit(b.ldx(8, R0, R6, PT_REGS["ip"]))
                return self.usym_of(self.store(R0))
            return Imm(self.cc.string_id(pp.func or hex(pp.offset)))
        if n == "retval":
            self.emit(b.ldx(8, R0, R6, PT_REGS["ax"]))
            return self.store(R0)
        if n == "ctx":
            return self.store(R6)
        if n == "args":
            return Ctx(0, e.ty)  # type: ignore[arg-type]
        raise self.err(e, f"{n} is not supported by bpfkit yet")

    def usdt_arg(self, a: Any) -> Imm | Mem:
        """A USDT argument as this site's note describes it (``size@location``)."""
        if not a.supported:  # symbol(%rip): a global at its link address + the load bias
            from .semantic import usdt_rip_symbol

            site = self.inst.point.usdt
            target = usdt_rip_symbol(site, a)
            assert target is not None
            m = self.tmp(8)
            self.emit(b.st(8, m.base, m.off, 0))

            def rip() -> None:
                self.emit(b.ldx(8, R3, R6, PT_REGS["ip"]))
                self.load(Imm(target - site.address), R0)
                self.emit(b.add64(R3, R0))

            self.probe_read(m, a.size, rip, "user")
            self.emit(b.ldx(8, R0, m.base, m.off))
            self.extend(R0, a.size, a.signed)
            return self.store(R0, m)
        if a.kind == "const":
            v = a.value & ((1 << (8 * a.size)) - 1)
            if a.signed and v >= 1 << (8 * a.size - 1):
                v -= 1 << (8 * a.size)
            return Imm(v)
        if a.kind == "reg":
            self.emit(b.ldx(8, R0, R6, a.reg_off))
            self.extend(R0, a.size, a.signed)
            return self.store(R0)
        m = self.tmp(8)  # reg_deref: the traced process's memory at register + offset
        self.emit(b.st(8, m.base, m.off, 0))

        def setup() -> None:
            self.emit(b.ldx(8, R3, R6, a.reg_off))
            if a.value:
                self.emit(b.add64(R3, a.value))

        self.probe_read(m, a.size, setup, "user")
        self.emit(b.ldx(8, R0, m.base, m.off))
        self.extend(R0, a.size, a.signed)
        return self.store(R0, m)

    def stack_id(self, kind: str) -> Mem:
        self.cc.uses_stacks = True
        self.emit(b.mov64(R1, R6), b.ld_map_fd(R2, self.cc.stack_fd))
        self.emit(b.mov64(R3, 256 if kind == "ustack" else 0))  # BPF_F_USER_STACK
        self.helper("get_stackid")
        m = self.tmp(8)
        if self.cc.record and self.memrec is not None:
            self.emit(b.stx(8, m.base, m.off, R0))
            self.record_stack(m, kind == "ustack")
            self.emit(b.ldx(8, R0, m.base, m.off))
        self.emit(b.mov32(R0, R0), b.stx(8, m.base, m.off, R0))
        if kind == "ustack":
            self.helper("get_current_pid_tgid")
            self.emit(b.rsh64(R0, 32), b.lsh64(R0, 32), b.ldx(8, R1, m.base, m.off))
            self.emit(b.or64(R0, R1), b.stx(8, m.base, m.off, R0))
        return m

    def scalar_binop(self, opname: str, a: Imm | Mem, c: Imm | Mem, at: Any, ct: Any,
                     node: A.Node) -> Imm | Mem:  # fmt: skip
        both_signed = bool(getattr(at, "signed", False) and getattr(ct, "signed", False))
        if isinstance(a, Imm) and isinstance(c, Imm):
            r = _fold(opname, a.value, c.value, both_signed)
            if r is not None:
                return Imm(r)
        self.load(a, R0)
        self.load(c, R1)
        if opname in ("==", "!=", "<", "<=", ">", ">="):
            j = {"==": b.jeq, "!=": b.jne}.get(opname)
            if j is None:
                sgn = both_signed
                j = {"<": b.jslt if sgn else b.jlt, "<=": b.jsle if sgn else b.jle,
                     ">": b.jsgt if sgn else b.jgt, ">=": b.jsge if sgn else b.jge}[opname]  # fmt: skip
            t = self.label("cmp")
            self.emit(b.mov64(R2, 1), j(R0, R1, t), b.mov64(R2, 0), Label(t))
            return self.store(R2)
        alu = {"+": b.add64, "-": b.sub64, "*": b.mul64, "&": b.and64, "|": b.or64,
               "^": b.xor64, "<<": b.lsh64}  # fmt: skip
        if opname in alu:
            self.emit(alu[opname](R0, R1))
        elif opname == ">>":  # bpftrace 0.17 shifts right logically, whatever the types
            self.emit(b.rsh64(R0, R1))
        elif opname in ("/", "%"):  # bpftrace 0.17 divides unsigned, whatever the types
            self.emit((b.div64 if opname == "/" else b.mod64)(R0, R1))
        else:
            raise self.err(node, f"operator {opname} is not supported")
        return self.store(R0)

    def g_Binop(self, e: A.Binop) -> Imm | Mem:
        opn = e.op
        if opn in ("&&", "||"):
            res = self.tmp(8)
            end = self.label("sc")
            self.emit(b.st(8, res.base, res.off, 0 if opn == "&&" else 1))
            for side in (e.left, e.right):
                m = self.frame.mark()
                v = self.scalar(side)
                self.load(v, R0)
                self.frame.release(m)
                self.emit((b.jeq if opn == "&&" else b.jne)(R0, 0, end))
            self.emit(b.st(8, res.base, res.off, 1 if opn == "&&" else 0), Label(end))
            return res
        lt, rt = e.left.ty, e.right.ty
        if lt.kind in ("str", "buf"):  # type: ignore[union-attr]
            return self.str_compare(e)
        a = self.scalar(e.left)
        c = self.scalar(e.right)
        if lt.kind == "ptr" and opn in ("+", "-") and rt.kind == "int":  # type: ignore[union-attr]
            esz = max(1, lt.elem.size if lt.elem is not None else 1)  # type: ignore[union-attr]
            if esz != 1:
                c = self.scalar_binop("*", c, Imm(esz), rt, T.U64, e)
        return self.scalar_binop(opn, a, c, lt, rt, e)

    def str_compare(self, e: A.Binop, n: int | None = None) -> Mem:
        """``==``/``!=`` of two strings: equal up to the first NUL (or ``n`` bytes)."""
        a = self.as_mem(e.left)
        c = self.as_mem(e.right)
        limit = min(a.size, c.size) if n is None else min(n, a.size, c.size)
        res = self.tmp(8)
        ne, end = self.label("sne"), self.label("send")
        for i in range(limit):
            self.emit(b.ldx(1, R1, a.base, a.off + i), b.ldx(1, R2, c.base, c.off + i))
            self.emit(b.jne(R1, R2, ne), b.jeq(R1, 0, end))
        if n is None and a.size != c.size:
            # The shorter buffer ended without a NUL: equal only if the longer one ends here.
            longer = a if a.size > c.size else c
            self.emit(b.ldx(1, R1, longer.base, longer.off + limit), b.jne(R1, 0, ne))
        self.emit(Label(end), b.st(8, res.base, res.off, 1 if e.op == "==" else 0))
        done = self.label("sd")
        self.emit(b.ja(done), Label(ne), b.st(8, res.base, res.off, 0 if e.op == "==" else 1))
        self.emit(Label(done))
        return res

    def as_mem(self, e: A.Expr) -> Mem:
        v = self.expr(e)
        if isinstance(v, Mem):
            return v
        m = self.tmp(T.storage_size(e.ty))  # type: ignore[arg-type]
        self.materialize_value(v, m, e)
        return m

    def materialize_value(self, v: Any, m: Mem, e: A.Expr) -> None:
        if isinstance(v, Ctx):
            self.zero(m)
            self.copy_ctx(m, v.off, min(v.ty.size, m.size))
        elif isinstance(v, Addr):
            self.zero(m)
            self.probe_read(m, min(v.ty.size, m.size), lambda: self.load(v.where, R3), v.space)
        elif isinstance(v, Imm):
            self.load(v, R0)
            self.store(R0, m.at(0, 8))
        else:
            raise self.err(e, f"cannot use {e.ty} here")

    def g_Unop(self, e: A.Unop) -> Any:
        if e.op == "*":
            p = self.scalar(e.expr)
            pt = e.expr.ty
            return self.read_at(p, 0, e.ty, pt.space if pt is not None else "kernel")  # type: ignore[arg-type]
        v = self.scalar(e.expr)
        rt = e.ty
        narrow = rt is not None and rt.kind == "int" and rt.size < 8 and not rt.signed
        if isinstance(v, Imm):
            r = {"!": int(not v.value), "-": -v.value, "~": ~v.value}[e.op]
            return Imm(r & ((1 << (8 * rt.size)) - 1) if narrow else r)  # type: ignore[union-attr]
        self.load(v, R0)
        if e.op == "!":
            t = self.label("not")
            self.emit(b.mov64(R1, 1), b.jeq(R0, 0, t), b.mov64(R1, 0), Label(t))
            return self.store(R1)
        self.emit(b.neg64(R0) if e.op == "-" else b.xor64(R0, -1))
        if narrow:  # an unsigned narrow operand wraps at its width
            self.extend(R0, rt.size, False)  # type: ignore[union-attr]
        return self.store(R0)

    def read_at(self, base: Imm | Mem, off: int, ty: T.Ty, space: str,
                bit: int = 0, bits: int = 0) -> Any:  # fmt: skip
        """The value of type ``ty`` at address ``base + off`` in ``space`` memory."""
        if ty.kind in ("record", "array", "str", "buf"):
            if off:
                self.load(base, R0)
                self.emit(b.add64(R0, off))
                where: Imm | Mem = self.store(R0)
            else:
                where = base
            if ty.kind in ("record", "array"):
                return Addr(where, space, ty)
            m = self.tmp(T.storage_size(ty))
            self.zero(m)
            self.probe_read(m, ty.size, lambda: self.load(where, R3), space)
            return m
        size = ty.size if ty.kind == "int" else 8
        m = self.tmp(8)
        self.emit(b.st(8, m.base, m.off, 0))

        def setup() -> None:
            self.load(base, R3)
            if off:
                self.emit(b.add64(R3, off))

        self.probe_read(m, size, setup, space)
        self.emit(b.ldx(8, R0, m.base, m.off))
        if bits:
            self.emit(b.rsh64(R0, bit), b.and64(R0, (1 << bits) - 1) if bits < 32 else
                      b.mov32(R0, R0))  # fmt: skip
        else:
            self.extend(R0, size, ty.kind == "int" and ty.signed)
        return self.store(R0, m)

    def g_Field(self, e: A.Field) -> Any:
        off, fty, bit, bits, tpf = e.member  # type: ignore[attr-defined]
        base = self.expr(e.expr)
        if isinstance(base, Ctx):
            off += base.off
            if tpf is not None and tpf.data_loc:
                self.emit(b.ldx(4, R0, R6, off), b.and64(R0, 0xFFFF))
                m = self.tmp(T.storage_size(fty))
                self.zero(m)
                self.emit(b.mov64(R3, R6), b.add64(R3, R0))
                self.addr_of(m, R1)
                self.emit(b.mov64(R2, fty.size))
                self.helper("probe_read_kernel_str")
                return m
            if fty.is_scalar:
                size = fty.size if fty.kind == "int" else 8
                self.emit(b.ldx(size, R0, R6, off))
                self.extend(R0, size, fty.kind == "int" and fty.signed)
                return self.store(R0)
            return Ctx(off, fty)
        if isinstance(base, Addr):
            return self.read_at(base.where, off, fty, base.space, bit, bits)
        if isinstance(base, (Imm, Mem)) and e.expr.ty.kind == "ptr":  # type: ignore[union-attr]
            space = e.expr.ty.space  # type: ignore[union-attr]
            return self.read_at(base if isinstance(base, Imm) else base.at(0, 8), off, fty,
                                space, bit, bits)  # fmt: skip
        if isinstance(base, Mem):
            return base.at(off, T.storage_size(fty))
        raise self.err(e, f"cannot reach field {e.name}")

    def g_Index(self, e: A.Index) -> Any:
        bt = e.expr.ty
        if bt.kind == "tuple":  # type: ignore[union-attr]
            base = self.as_mem(e.expr)
            i = self.an.const_int(e.index) or 0
            off = sum(T.storage_size(t) for t in bt.items[:i])  # type: ignore[union-attr]
            it = bt.items[i]  # type: ignore[union-attr]
            return base.at(off, T.storage_size(it))
        et = e.ty
        esz = (
            et.size if et.kind == "int" else T.storage_size(et) if et.kind != "record" else et.size
        )  # type: ignore[union-attr]
        ci = self.an.const_int(e.index)
        base = self.expr(e.expr)
        if bt.kind == "ptr":  # type: ignore[union-attr]
            p = base if isinstance(base, Imm) else base.at(0, 8)
            if ci is not None:
                return self.read_at(p, ci * esz, et, bt.space)  # type: ignore[arg-type, union-attr]
            iv = self.scalar(e.index)
            addr = self.scalar_binop("+", p, self.scalar_binop("*", iv, Imm(esz), T.U64, T.U64,
                                                               e), T.U64, T.U64, e)  # fmt: skip
            return self.read_at(addr, 0, et, bt.space)  # type: ignore[arg-type, union-attr]
        if ci is None:
            if isinstance(base, Addr):
                iv = self.scalar(e.index)
                addr = self.scalar_binop(
                    "+", base.where, self.scalar_binop("*", iv, Imm(esz), T.U64, T.U64, e),
                    T.U64, T.U64, e,
                )  # fmt: skip
                return self.read_at(addr, 0, et, base.space)  # type: ignore[arg-type]
            raise self.err(e.index, "this array can only be indexed by a constant")
        if isinstance(base, Ctx):
            off = base.off + ci * esz
            if et.is_scalar:  # type: ignore[union-attr]
                self.emit(b.ldx(esz, R0, R6, off))
                self.extend(R0, esz, et.kind == "int" and et.signed)  # type: ignore[union-attr]
                return self.store(R0)
            return Ctx(off, et)  # type: ignore[arg-type]
        if isinstance(base, Addr):
            return self.read_at(base.where, ci * esz, et, base.space)  # type: ignore[arg-type]
        if isinstance(base, Mem):
            if et.kind == "int":  # type: ignore[union-attr]
                self.emit(b.ldx(et.size, R0, base.base, base.off + ci * et.size))  # type: ignore[union-attr]
                self.extend(R0, et.size, et.signed)  # type: ignore[union-attr]
                return self.store(R0)
            return base.at(ci * esz, esz)
        raise self.err(e, "cannot index this value")

    def g_Cast(self, e: A.Cast) -> Any:
        to = e.ty
        v = self.expr(e.expr)
        if to.kind == "array":  # type: ignore[union-attr]
            return v
        if isinstance(v, (Ctx, Addr)):
            raise self.err(e, f"cannot cast {e.expr.ty}")
        st = e.expr.ty
        # bpftrace widens a narrower integer by the *destination's* sign ((int64)(uint8)200
        # is -56, (uint32)(int8)-2 is 254), then truncates to the destination
        widen = st is not None and st.kind == "int" and to.kind == "int" and st.size < to.size  # type: ignore[union-attr]
        if to.kind == "int" and (to.size < 8 or widen):  # type: ignore[union-attr]
            sv = v if isinstance(v, Imm) else v.at(0, 8)
            if isinstance(sv, Imm):
                x = sv.value
                if widen:
                    x = _extend(x, st.size, to.signed)  # type: ignore[union-attr]
                return Imm(_extend(x, to.size, to.signed))  # type: ignore[union-attr]
            self.load(sv, R0)
            if widen:
                self.extend(R0, st.size, to.signed)  # type: ignore[union-attr]
            self.extend(R0, to.size, to.signed)  # type: ignore[union-attr]
            return self.store(R0)
        return v

    def g_IncDec(self, e: A.IncDec) -> Mem:
        tgt = e.target
        delta = 1 if e.op == "++" else -1
        if isinstance(tgt, A.Var):
            slot = self.vars[tgt.name].at(0, 8)
            old = self.tmp(8)
            self.emit(b.ldx(8, R0, slot.base, slot.off), b.stx(8, old.base, old.off, R0))
            self.emit(b.add64(R0, delta), b.stx(8, slot.base, slot.off, R0))
            return slot if e.prefix else old
        assert isinstance(tgt, A.MapRef)
        mi = self.an.maps[tgt.name]
        old, new = self.map_rmw(tgt, mi, "+", None, e, delta)
        return new if e.prefix else old

    def g_Ternary(self, e: A.Ternary) -> Any:
        ty = e.ty
        other, end = self.label("tf"), self.label("te")
        if ty.kind == "none":  # type: ignore[union-attr]
            self.cond_jump_false(e.cond, other)
            self.expr(e.then, True)
            self.emit(b.ja(end), Label(other))
            self.expr(e.other, True)
            self.emit(Label(end))
            return Imm(0)
        res = self.tmp(T.storage_size(ty))  # type: ignore[arg-type]
        self.cond_jump_false(e.cond, other)
        m = self.frame.mark()
        for i, branch in enumerate((e.then, e.other)):
            if i:
                self.emit(b.ja(end), Label(other))
            self.materialize(branch, res, ty)  # type: ignore[arg-type]
            bt = branch.ty
            if ty.kind == "int" and bt is not None and bt.kind == "int" and bt.size < 8:  # type: ignore[union-attr]
                # a narrower branch widens by the ternary's sign (bpftrace's rule)
                self.emit(b.ldx(8, R0, res.base, res.off))
                self.extend(R0, bt.size, ty.signed)  # type: ignore[union-attr]
                self.emit(b.stx(8, res.base, res.off, R0))
            self.frame.release(m)
        self.emit(Label(end))
        return res if not ty.is_scalar else res.at(0, 8)  # type: ignore[union-attr]

    def g_Tuple(self, e: A.Tuple) -> Mem:
        m = self.tmp(T.storage_size(e.ty))  # type: ignore[arg-type]
        self.materialize(e, m, e.ty)  # type: ignore[arg-type]
        return m

    # ---- calls ----------------------------------------------------------------------------------
    def g_Call(self, e: A.Call, stmt: bool = False) -> Any:
        fn = getattr(self, "c_" + e.name, None)
        if fn is None:
            raise self.err(e, f"{e.name}() is not supported by bpfkit yet")
        return fn(e)

    def send(self, rec: Mem, size: int | None = None) -> None:
        """Send a record to userspace; a full ring buffer counts it in the lost-events map
        (userspace prints "Lost N events", as bpftrace does)."""
        self.emit(b.ld_map_fd(R1, self.cc.events_fd))
        self.addr_of(rec, R2)
        self.emit(b.mov64(R3, size if size is not None else rec.size), b.mov64(R4, 0))
        self.helper("ringbuf_output")
        if self.cc.lost_fd:
            ok = self.label("sent")
            key = self.tmp(8)
            self.emit(b.jeq(R0, 0, ok), b.st(8, key.base, key.off, 0))
            self.emit(b.ld_map_fd(R1, self.cc.lost_fd))
            self.addr_of(key, R2)
            self.helper_plain("map_lookup_elem")
            self.emit(b.jeq(R0, 0, ok), b.ldx(8, R1, R0, 0), b.add64(R1, 1), b.stx(8, R0, 0, R1))
            self.emit(Label(ok))

    def format_event(self, e: A.Call, kind: int, args: list[A.Expr], fmt: str) -> None:
        layout = []
        off = 8
        for a in args:
            t = a.ty
            n = T.storage_size(t)  # type: ignore[arg-type]
            layout.append((t, off))
            off += n
        eid = self.cc.event(Event(kind, fmt, tuple(layout)))
        rec = self.tmp(off)
        self.header(rec, kind, eid)
        for a, (t, o) in zip(args, layout, strict=True):
            self.materialize(a, rec.at(o, T.storage_size(t)), t)
        self.send(rec)

    def header(self, rec: Mem, kind: int, eid: int) -> None:
        self.emit(b.st(4, rec.base, rec.off, eid), b.st(4, rec.base, rec.off + 4, kind))

    def c_printf(self, e: A.Call) -> Imm:
        self.format_event(e, EV_PRINTF, e.args[1:], e.fmt)  # type: ignore[attr-defined]
        return Imm(0)

    def c_system(self, e: A.Call) -> Imm:
        self.format_event(e, EV_SYSTEM, e.args[1:], e.fmt)  # type: ignore[attr-defined]
        return Imm(0)

    def c_cat(self, e: A.Call) -> Imm:
        self.format_event(e, EV_CAT, e.args[1:], e.fmt)  # type: ignore[attr-defined]
        return Imm(0)

    def c_time(self, e: A.Call) -> Imm:
        eid = self.cc.event(Event(EV_TIME, e.fmt))  # type: ignore[attr-defined]
        rec = self.tmp(8)
        self.header(rec, EV_TIME, eid)
        self.send(rec)
        return Imm(0)

    def c_print(self, e: A.Call) -> Imm:
        a = e.args[0]
        if isinstance(a, A.MapRef) and a.keys is None:
            top = self.an.const_int(e.args[1]) if len(e.args) > 1 else 0
            div = self.an.const_int(e.args[2]) if len(e.args) > 2 else 0
            eid = self.cc.event(Event(EV_PRINT_MAP, a.name, extra=(top or 0, div or 0)))
            rec = self.tmp(8)
            self.header(rec, EV_PRINT_MAP, eid)
            self.send(rec)
            return Imm(0)
        self.format_event(e, EV_PRINT_VAL, [a], "")
        return Imm(0)

    def _map_event(self, e: A.Call, kind: int) -> Imm:
        a = e.args[0]
        eid = self.cc.event(Event(kind, a.name))  # type: ignore[attr-defined]
        rec = self.tmp(8)
        self.header(rec, kind, eid)
        self.send(rec)
        return Imm(0)

    def c_clear(self, e: A.Call) -> Imm:
        return self._map_event(e, EV_CLEAR)

    def c_zero(self, e: A.Call) -> Imm:
        return self._map_event(e, EV_ZERO)

    def c_exit(self, e: A.Call) -> Imm:
        eid = self.cc.event(Event(EV_EXIT))
        rec = self.tmp(8)
        self.header(rec, EV_EXIT, eid)
        self.send(rec)
        self.emit(b.ja("exit"))
        return Imm(0)

    def c_delete(self, e: A.Call) -> Imm:
        ref = e.args[0]
        assert isinstance(ref, A.MapRef)
        mi = self.an.maps[ref.name]
        key = self.map_key(ref, mi)
        self.emit(b.ld_map_fd(R1, self.cc.map_fds[mi.name]))
        self.addr_of(key, R2)
        self.helper("map_delete_elem")
        return Imm(0)

    def c_str(self, e: A.Call) -> Mem:
        a = e.args[0]
        at = a.ty
        size = e.ty.size  # type: ignore[union-attr]
        if at.kind == "str" and len(e.args) == 1:  # type: ignore[union-attr]
            return self.as_mem(a)
        into, self.into = self.into, None
        v = self.expr(a)
        m = into if into is not None else self.tmp(T.storage_size(e.ty))  # type: ignore[arg-type]
        self.zero(m)
        limit = size
        if len(e.args) == 2:
            n = self.an.const_int(e.args[1])
            if n is None:
                nv = self.scalar(e.args[1])
                lim_slot = self.tmp(8)
                self.load(nv, R0)
                ok = self.label("n")
                self.emit(b.add64(R0, 1), b.jle(R0, size, ok), b.mov64(R0, size), Label(ok))
                self.store(R0, lim_slot)
                limit = -1
            else:
                limit = max(1, min(n + 1, size))
        if isinstance(v, Ctx):
            self.copy_ctx(m, v.off, min(v.ty.size, size - 1))
            return m
        if isinstance(v, Addr):
            where = v.where
            space = v.space
        elif isinstance(v, Mem) and at.kind in ("str", "buf", "array"):  # type: ignore[union-attr]
            self.copy(m, v, min(v.size, m.size))
            return m
        else:
            where = v if isinstance(v, Imm) else v.at(0, 8)
            space = self.space_of(at)
        self.load(where, R3)
        self.addr_of(m, R1)
        if limit == -1:
            self.emit(b.ldx(8, R2, lim_slot.base, lim_slot.off))
        else:
            self.emit(b.mov64(R2, limit))
        self.helper(read_helper(space, True))
        return m

    def c_buf(self, e: A.Call) -> Mem:
        """``buf(data[, length])``: the length read (8 bytes), then the bytes.

        A length that is not a constant is bounded at run time by the buffer's size.
        """
        a = e.args[0]
        size = e.ty.size  # type: ignore[union-attr]
        m = self.tmp(T.storage_size(e.ty))  # type: ignore[arg-type]
        self.zero(m)
        data = m.at(8, m.size - 8)
        n = self.an.const_int(e.args[1]) if len(e.args) == 2 else size
        if n is None:  # bounded: 0 <= length <= size
            nv = self.scalar(e.args[1])
            self.load(nv, R0)
            ok, neg = self.label("bl"), self.label("bl")
            self.emit(b.jsge(R0, 0, neg), b.mov64(R0, 0), Label(neg))
            self.emit(b.jle(R0, size, ok), b.mov64(R0, size), Label(ok))
            self.emit(b.stx(8, m.base, m.off, R0))
        else:
            self.emit(b.st(8, m.base, m.off, max(0, min(n, size))))
        v = self.expr(a)
        if isinstance(v, Ctx):
            self.copy_ctx(data, v.off, min(v.ty.size, size))
        elif isinstance(v, Mem) and a.ty.kind in ("str", "buf", "array"):  # type: ignore[union-attr]
            src = v.at(8, v.size - 8) if a.ty.kind == "buf" else v  # type: ignore[union-attr]
            self.copy(data, src, min(src.size, data.size))
        else:
            where = v.where if isinstance(v, Addr) else (v if isinstance(v, Imm) else v.at(0, 8))
            space = v.space if isinstance(v, Addr) else self.space_of(a.ty)

            def setup() -> None:
                self.load(where, R3)
                self.addr_of(data, R1)
                self.emit(b.ldx(8, R2, m.base, m.off))

            if n is None:
                setup()
                self.helper(read_helper(space))
            else:
                self.probe_read(data, max(0, min(n, size)), lambda: self.load(where, R3), space)
        return m

    def c_ksym(self, e: A.Call) -> Any:
        return self.scalar(e.args[0])

    def c_usym(self, e: A.Call) -> Mem:
        """(address, pid): userspace resolves the address in that process's mappings."""
        return self.usym_of(self.scalar(e.args[0]))

    def usym_of(self, v: Imm | Mem) -> Mem:
        """(address ``v``, this process's pid), as a usym value."""
        m = self.tmp(16)
        self.load(v, R0)
        self.emit(b.stx(8, m.base, m.off, R0))
        self.helper("get_current_pid_tgid")
        self.emit(b.rsh64(R0, 32), b.stx(8, m.base, m.off + 8, R0))
        return m

    c_strerror = c_ksym
    c_cgroup_path = c_ksym

    def c_pton(self, e: A.Call) -> Mem:
        data = e.const_bytes  # type: ignore[attr-defined]
        return self.const_bytes(data, len(data))

    c_kptr = c_ksym
    c_uptr = c_ksym

    def c_strftime(self, e: A.Call) -> Any:
        return self.scalar(e.args[1])

    def c_kaddr(self, e: A.Call) -> Imm:
        return Imm(e.const)  # type: ignore[attr-defined]

    c_uaddr = c_kaddr
    c_cgroupid = c_kaddr

    def c_reg(self, e: A.Call) -> Mem:
        name = e.args[0].value  # type: ignore[attr-defined]
        self.emit(b.ldx(8, R0, R6, PT_REGS[name]))
        return self.store(R0)

    def c_bswap(self, e: A.Call) -> Any:
        v = self.scalar(e.args[0])
        bits = e.ty.size * 8  # type: ignore[union-attr]
        self.load(v, R0)
        self.emit(b.bswap(R0, bits))
        return self.store(R0)

    def c_kstack(self, e: A.Call) -> Mem:
        return self.stack_id("kstack")

    def c_ustack(self, e: A.Call) -> Mem:
        return self.stack_id("ustack")

    def c_signal(self, e: A.Call) -> Imm:
        v = self.scalar(e.args[0])
        self.load(v, R1)
        self.helper("send_signal")
        return Imm(0)

    def c_strncmp(self, e: A.Call) -> Mem:
        n = self.an.const_int(e.args[2]) or 0
        fake = A.Binop("!=", e.args[0], e.args[1], line=e.line, col=e.col)
        return self.str_compare(fake, n)

    def c_strcontains(self, e: A.Call) -> Mem:
        hay = self.as_mem(e.args[0])
        needle = self.as_mem(e.args[1])
        res = self.tmp(8)
        found, end = self.label("sf"), self.label("se")
        self.emit(b.st(8, res.base, res.off, 0))
        self.emit(b.ldx(1, R1, needle.base, needle.off), b.jeq(R1, 0, found))
        for i in range(hay.size):
            nxt = self.label("sn")
            self.emit(b.ldx(1, R1, hay.base, hay.off + i), b.jeq(R1, 0, end))
            for j in range(min(needle.size, hay.size - i)):
                self.emit(b.ldx(1, R2, needle.base, needle.off + j), b.jeq(R2, 0, found))
                self.emit(b.ldx(1, R1, hay.base, hay.off + i + j), b.jne(R1, R2, nxt))
            self.emit(Label(nxt))
        self.emit(b.ja(end), Label(found), b.st(8, res.base, res.off, 1), Label(end))
        return res

    def c_ntop(self, e: A.Call) -> Mem:
        m = self.tmp(24)
        self.zero(m)
        addr = e.args[-1]
        at = addr.ty
        if len(e.args) == 2:
            af = self.scalar(e.args[0])
            self.load(af, R0)
            self.emit(b.stx(8, m.base, m.off, R0))
        else:
            fam = 2 if (at.is_int or at.size == 4) else 10  # type: ignore[union-attr]
            self.emit(b.st(8, m.base, m.off, fam))
        if at.is_int:  # type: ignore[union-attr]
            v = self.scalar(addr)
            self.load(v, R0)
            self.emit(b.stx(4, m.base, m.off + 8, R0))
        else:
            v = self.expr(addr)
            data = m.at(8, 16)
            n = min(at.size, 16)  # type: ignore[union-attr]
            if isinstance(v, Ctx):
                self.copy_ctx(data, v.off, n)
            elif isinstance(v, Addr):
                self.probe_read(data, n, lambda: self.load(v.where, R3), v.space)
            elif isinstance(v, Mem):
                self.copy(data, v, n)
        return m

    def c_macaddr(self, e: A.Call) -> Mem:
        m = self.tmp(8)
        self.zero(m)
        a = e.args[0]
        v = self.expr(a)
        if isinstance(v, Ctx):
            self.copy_ctx(m, v.off, 6)
        elif isinstance(v, Addr):
            self.probe_read(m, 6, lambda: self.load(v.where, R3), v.space)
        elif isinstance(v, Mem) and a.ty.kind != "ptr" and not a.ty.is_int:  # type: ignore[union-attr]
            self.copy(m, v, min(6, v.size))
        else:
            where = v if isinstance(v, Imm) else v.at(0, 8)
            self.probe_read(m, 6, lambda: self.load(where, R3), self.space_of(a.ty))
        return m

    def c_join(self, e: A.Call) -> Imm:
        eid = self.cc.event(Event(EV_JOIN, e.delim))  # type: ignore[attr-defined]
        size = 8 + JOIN_ARGS * JOIN_LEN
        rec = self.tmp(size)
        if rec.base is not R9:  # always in the scratch map: it is large
            raise self.err(e, "join() needs scratch memory")
        self.header(rec, EV_JOIN, eid)
        argv = self.scalar(e.args[0])
        space = self.space_of(e.args[0].ty)
        ptr = self.tmp(8)
        done = self.label("jd")
        for i in range(JOIN_ARGS):
            slot = rec.at(8 + i * JOIN_LEN, JOIN_LEN)
            self.emit(b.st(1, slot.base, slot.off, 0))
        for i in range(JOIN_ARGS):
            self.emit(b.st(8, ptr.base, ptr.off, 0))

            def setup(i: int = i) -> None:
                self.load(argv, R3)
                self.emit(b.add64(R3, i * 8))

            self.probe_read(ptr, 8, setup, space)
            self.emit(b.ldx(8, R3, ptr.base, ptr.off), b.jeq(R3, 0, done))
            slot = rec.at(8 + i * JOIN_LEN, JOIN_LEN)
            self.addr_of(slot, R1)
            self.emit(b.mov64(R2, JOIN_LEN))
            self.helper(read_helper(space, True))
        self.emit(Label(done))
        self.send(rec)
        return Imm(0)


#: comparison -> (unsigned jump, signed jump)
_JUMPS = {
    "==": (b.jeq, b.jeq), "!=": (b.jne, b.jne), "<": (b.jlt, b.jslt), "<=": (b.jle, b.jsle),
    ">": (b.jgt, b.jsgt), ">=": (b.jge, b.jsge),
}  # fmt: skip
_NEGATE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}


def _extend(v: int, size: int, signed: bool) -> int:
    """The low ``size`` bytes of ``v``, sign- or zero-extended."""
    bits = 8 * size
    v &= (1 << bits) - 1
    return v - (1 << bits) if signed and v >= 1 << (bits - 1) else v


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def peephole(items: list) -> list:
    """Drop a reload of the slot just stored (``*(fp-8) = r0; r0 = *(fp-8)``).

    ``items`` are (instruction or label, script position) pairs.

    Only across adjacent instructions (no label between, so no other path reaches the
    load); a load into another register becomes a move.
    """
    out: list = []
    stx8 = op.STX | op.MEM | op.DW
    ldx8 = op.LDX | op.MEM | op.DW
    for it, pos in items:
        prev = out[-1][0] if out else None
        if (
            prev is not None
            and not isinstance(prev, Label)
            and not isinstance(it, Label)
            and getattr(prev, "opcode", None) == stx8
            and getattr(it, "opcode", None) == ldx8
            and prev.dst == it.src
            and prev.off == it.off
            and prev.dst in (int(FP), int(R9))
            and prev.src != it.src
        ):
            if it.dst != prev.src:
                out.append((b.mov64(b.Reg(it.dst), b.Reg(prev.src)), pos))
            continue
        out.append((it, pos))
    return out


def read_helper(space: str, string: bool = False) -> str:
    """The helper reading ``space`` memory: user, kernel, or either (bpftrace's choice where
    the probe type does not say: the legacy ``probe_read``, which reads both on x86-64)."""
    name = {"user": "probe_read_user", "kernel": "probe_read_kernel"}.get(space, "probe_read")
    return name + ("_str" if string else "")


def drop_unreachable(items: list) -> list:
    """Drop instructions no path from the entry reaches (kept: every label).

    Constant conditions fold to unconditional jumps (``if (0) {...}``, ``while (1)``),
    leaving code behind them that the kernel's verifier refuses ("unreachable insn").
    ``items`` are (instruction or label, script position) pairs.
    """
    where = {it.name: i for i, (it, _) in enumerate(items) if isinstance(it, Label)}
    seen = [False] * len(items)
    todo = [0]
    ja, ex = (op.JMP | op.JA, op.JMP32 | op.JA), op.JMP | op.EXIT
    while todo:
        i = todo.pop()
        while i < len(items) and not seen[i]:
            seen[i] = True
            it = items[i][0]
            if isinstance(it, Label):
                i += 1
                continue
            code = it.opcode
            if code == ex:
                break
            ref = getattr(it, "ref", None)
            if ref is not None and code & 0x07 in (op.JMP, op.JMP32) and not it.is_call:
                todo.append(where[ref])
                if code in ja:
                    break
            i += 1
    return [x for x, keep in zip(items, seen, strict=True) if keep or isinstance(x[0], Label)]


def _fold(opname: str, a: int, c: int, signed: bool) -> int | None:
    """``a op c`` at compile time (``None``: leave it to run time); comparisons are
    signed only when ``signed`` (both sides signed), as at run time."""
    mask = (1 << 64) - 1
    if opname in ("==", "!=", "<", "<=", ">", ">="):
        a, c = (_s64(a), _s64(c)) if signed else (a & mask, c & mask)
    try:
        r = {
            "+": a + c, "-": a - c, "*": a * c, "&": a & c, "|": a | c, "^": a ^ c,
            "<<": a << (c & 63), "==": int(a == c), "!=": int(a != c), "<": int(a < c),
            "<=": int(a <= c), ">": int(a > c), ">=": int(a >= c),
        }.get(opname)  # fmt: skip
    except (ValueError, OverflowError):
        return None
    if r is None:
        if opname in ("/", "%") and c != 0:
            ua, uc = a & mask, c & mask
            r = ua // uc if opname == "/" else ua % uc
            return r - (1 << 64) if r >= 1 << 63 else r
        if opname == ">>":  # logical, as bpftrace 0.17 (-96 >> 49 is 32767)
            return (a & mask) >> (c & 63)
        return None
    r &= mask
    return r - (1 << 64) if r >= 1 << 63 else r


def generate(cc: CompileContext, inst: Instance) -> list:
    """The instructions of one probe instance."""
    return ProgramGen(cc, inst).generate()


def generate_mapped(cc: CompileContext, inst: Instance) -> tuple[list, list[tuple[int, int]]]:
    """The instructions and, for every instruction slot, the script (line, column) it
    was compiled from (a verifier's complaint about slot N points at the script)."""
    g = ProgramGen(cc, inst)
    insns = g.generate()
    return insns, g.slot_pos


__all__ = ["CompileContext", "Event", "generate", "PT_REGS", "op"]
