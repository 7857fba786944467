"""Lowering: a validated BPF program → LLVM IR (text) for the JIT.

Each BPF function (the entry, every ``call`` target and every ``lddw src=func`` target)
becomes an internal LLVM function ``{r0, left} f<slot>(ctx, r1..r5, r10, depth, left)``.
BPF registers are allocas (promoted to SSA by LLVM); within a basic block register values
stay SSA values and are stored back when control leaves the block.

Counting: ``left`` is the remaining instruction budget. Blocks add what they execute to a
per-iteration accumulator, and loop headers (and exits) subtract it from ``left`` and
check it — where the interpreter checks — so the counts of normal exits are exact and
iterations do not serialize on one counter. Blocks that run exactly once whenever an
earlier block runs (control-equivalent within an iteration) are charged at that block.

Faults store their details in the run context and return the ``left`` sentinel
``FAULT_SENTINEL``, which every caller propagates up to the shared run loop.

Memory: accesses are checked against the run's region table unless they are stack
accesses at a constant offset of ``r10`` inside the frame (r10 is never written:
``cfg.layout`` refuses such programs; the entry's frame pointer is the end of a stack
region of ``MAX_CALL_FRAMES`` frames, and each call, depth-checked, goes one frame
down), or the caller passed the instruction as proven safe. Each base register has a one-region cache per
permission (base, ``span - 7``) so a check is a subtraction and a compare; a miss calls
the shared slow path (binary search of the table, then Python).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..vm.env import COUNTING_HELPERS, SKF_LL_OFF, SKF_NET_OFF
from ..vm.maps import native as nm
from ..vm.maps import ringbuf as rbm
from . import abi, cfg
from .cfg import Function, Layout
from .native import NativeHelper

TY = "{i64, i64}"
COLD = "!prof !0"  # the branch's true edge is cold
HOT = "!prof !1"  # the branch's true edge is hot

_ICMP = {
    op.JEQ: "eq",
    op.JNE: "ne",
    op.JGT: "ugt",
    op.JGE: "uge",
    op.JLT: "ult",
    op.JLE: "ule",
    op.JSGT: "sgt",
    op.JSGE: "sge",
    op.JSLT: "slt",
    op.JSLE: "sle",
}
_BINOP = {
    op.ADD: "add",
    op.SUB: "sub",
    op.MUL: "mul",
    op.OR: "or",
    op.AND: "and",
    op.XOR: "xor",
    op.LSH: "shl",
    op.RSH: "lshr",
    op.ARSH: "ashr",
}
_RMW = {op.ATOMIC_ADD: "add", op.ATOMIC_OR: "or", op.ATOMIC_AND: "and", op.ATOMIC_XOR: "xor"}


_FOLD = frozenset(
    (op.MOV, op.ADD, op.SUB, op.MUL, op.OR, op.AND, op.XOR, op.LSH, op.RSH, op.ARSH, op.NEG)
)


def _lit(v: str | None) -> int | None:
    """The value of an integer literal operand (None for an SSA name or nothing)."""
    if v is None or v[0] == "%":
        return None
    return int(v)


def sconst(v: int, bits: int) -> int:
    """``v`` truncated to ``bits`` and written as a signed integer (LLVM literal)."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


@dataclass
class StaticFault:
    """A fault whose message is known at compile time (``F_STATIC``)."""

    message: str
    not_supported: bool = False


@dataclass
class Lowered:
    """The IR of a program plus what Python needs to explain its faults."""

    ir: str
    static: list[StaticFault] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)


class Lowering:
    """Generates the LLVM IR module of one program."""

    def __init__(
        self,
        lay: Layout,
        funcs: Mapping[int, Function],
        *,
        budget: int,
        code_base: int,
        safe_slots: frozenset[int] = frozenset(),
        lddw_values: Mapping[int, int | None] | None = None,
        natives: Mapping[int, NativeHelper] | None = None,
        prefix: str = "",
    ) -> None:
        self.prefix = prefix
        self.lay = lay
        self.funcs = funcs
        self.budget = budget
        self.code_base = code_base
        self.safe = safe_slots
        self.lddw = dict(lddw_values or {})
        self.natives = dict(natives or {})
        self.static: list[StaticFault] = []
        self._static_idx: dict[tuple[str, bool], int] = {}

    def static_index(self, message: str, not_supported: bool = False) -> int:
        """Index of a static fault message in the table (deduplicated)."""
        key = (message, not_supported)
        i = self._static_idx.get(key)
        if i is None:
            i = self._static_idx[key] = len(self.static)
            self.static.append(StaticFault(message, not_supported))
        return i

    def functions(self) -> Lowered:
        """This program's functions and ``<prefix>entry``, a global pointing to its entry."""
        out = [_FnGen(self, fn).function() for fn in self.funcs.values()]
        out.append(f"@{self.prefix}entry = global ptr @{self.prefix}f0")
        return Lowered("\n".join(out), self.static, list(self.funcs))

    def module(self) -> Lowered:
        """A whole module holding just this program."""
        low = self.functions()
        low.ir = module_text([low.ir])
        return low


def module_text(bodies: list[str]) -> str:
    """An LLVM module around the functions of one or more programs."""
    return "\n".join(
        [
            _PRELUDE,
            f"@mem_slow = internal constant ptr inttoptr (i64 {runtime_address('bpf_mem_slow')} to ptr)",
            *bodies,
            _EPILOGUE,
        ]
    )


_PRELUDE = """
declare i16 @llvm.bswap.i16(i16)
declare i32 @llvm.bswap.i32(i32)
declare i64 @llvm.bswap.i64(i64)
"""


_RUNTIME_IR = f"""
define {{i64, i64}} @bpf_mem_slow(ptr %ctx, i64 %addr, i64 %packed) nounwind {{
entry:
  %size = and i64 %packed, 255
  %perm0 = lshr i64 %packed, 8
  %perm = and i64 %perm0, 255
  %pc = lshr i64 %packed, 16
  %tp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.TABLE}
  %tab = load ptr, ptr %tp
  %np = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.TABLE_LEN}
  %n = load i64, ptr %np
  br label %loop
loop:
  %lo = phi i64 [0, %entry], [%lo2, %step]
  %hi = phi i64 [%n, %entry], [%hi2, %step]
  %more = icmp ult i64 %lo, %hi
  br i1 %more, label %step, label %done
step:
  %sum = add i64 %lo, %hi
  %mid = lshr i64 %sum, 1
  %bp = getelementptr inbounds [3 x i64], ptr %tab, i64 %mid, i64 0
  %b = load i64, ptr %bp
  %le = icmp ule i64 %b, %addr
  %mid1 = add i64 %mid, 1
  %lo2 = select i1 %le, i64 %mid1, i64 %lo
  %hi2 = select i1 %le, i64 %hi, i64 %mid
  br label %loop
done:
  %none = icmp eq i64 %lo, 0
  br i1 %none, label %rings, label %have
have:
  %i = sub i64 %lo, 1
  %rb = getelementptr inbounds [3 x i64], ptr %tab, i64 %i, i64 0
  %rs = getelementptr inbounds [3 x i64], ptr %tab, i64 %i, i64 1
  %rp = getelementptr inbounds [3 x i64], ptr %tab, i64 %i, i64 2
  %base = load i64, ptr %rb
  %span = load i64, ptr %rs
  %perms = load i64, ptr %rp
  %off = sub i64 %addr, %base
  %c1 = icmp ule i64 %off, %span
  %rem = sub i64 %span, %off
  %c2 = icmp uge i64 %rem, %size
  %pm = and i64 %perms, %perm
  %c3 = icmp eq i64 %pm, %perm
  %c12 = and i1 %c1, %c2
  %ok = and i1 %c12, %c3
  br i1 %ok, label %hit, label %rings
hit:
  %big = icmp uge i64 %span, 8
  %lim = sub i64 %span, 7
  %lim8 = select i1 %big, i64 %lim, i64 0
  %pr = and i64 %perms, 1
  %isr = icmp ne i64 %pr, 0
  %rl = select i1 %isr, i64 %lim8, i64 0
  %pw = and i64 %perms, 2
  %isw = icmp ne i64 %pw, 0
  %wl = select i1 %isw, i64 %lim8, i64 0
  %sbp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.SEED_BASE}
  store i64 %base, ptr %sbp
  %srp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.SEED_RLIM}
  store i64 %rl, ptr %srp
  %swp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.SEED_WLIM}
  store i64 %wl, ptr %swp
  %h1 = insertvalue {{i64, i64}} undef, i64 %base, 0
  %h2 = insertvalue {{i64, i64}} %h1, i64 %lim8, 1
  ret {{i64, i64}} %h2
rings:
  ; not in the table: a ring-buffer record a native reserve handed out? (each ring's
  ; reservation slots hold the live records' addresses and lengths; records are RW)
  %edp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.ENV_DATA}
  %envd = load ptr, ptr %edp
  %noenv = icmp eq ptr %envd, null
  br i1 %noenv, label %miss, label %rg
rg:
  %rap = getelementptr inbounds i64, ptr %envd, i64 {nm.E_RINGS}
  %ra = load ptr, ptr %rap
  %nrp = getelementptr inbounds i64, ptr %envd, i64 {nm.E_NRINGS}
  %nr = load i64, ptr %nrp
  br label %rloop
rloop:
  %ri = phi i64 [0, %rg], [%ri1, %rbody], [%ri1, %rin], [%ri1, %snext]
  %rmore = icmp ult i64 %ri, %nr
  br i1 %rmore, label %rbody, label %miss
rbody:
  %dpp = getelementptr inbounds ptr, ptr %ra, i64 %ri
  %d = load ptr, ptr %dpp
  %ri1 = add i64 %ri, 1
  %nresp = getelementptr inbounds i64, ptr %d, i64 {rbm.R_NRES}
  %nres = load i64, ptr %nresp
  %anyres = icmp ne i64 %nres, 0
  br i1 %anyres, label %rin, label %rloop
rin:
  %alp = getelementptr inbounds i64, ptr %d, i64 {rbm.R_ALIAS}
  %alias = load i64, ptr %alp
  %szp = getelementptr inbounds i64, ptr %d, i64 {rbm.R_SIZE}
  %rsz = load i64, ptr %szp
  %rspan = shl i64 %rsz, 1
  %rrel = sub i64 %addr, %alias
  %inring = icmp ult i64 %rrel, %rspan
  br i1 %inring, label %sl, label %rloop
sl:
  %j = phi i64 [0, %rin], [%j1, %snext]
  %k = phi i64 [%nres, %rin], [%k1, %snext]
  %j2 = shl i64 %j, 1
  %sa = add i64 %j2, {rbm.R_SLOT0}
  %sap = getelementptr inbounds i64, ptr %d, i64 %sa
  %ra0 = load i64, ptr %sap
  %slp = getelementptr inbounds i64, ptr %sap, i64 1
  %rl0 = load i64, ptr %slp
  %used = icmp ne i64 %ra0, 0
  %roff = sub i64 %addr, %ra0
  %rc1 = icmp ule i64 %roff, %rl0
  %rrem = sub i64 %rl0, %roff
  %rc2 = icmp uge i64 %rrem, %size
  %rc12 = and i1 %rc1, %rc2
  %rc = and i1 %rc12, %used
  br i1 %rc, label %rhit, label %snext
snext:
  %u64 = zext i1 %used to i64
  %k1 = sub i64 %k, %u64
  %j1 = add i64 %j, 1
  %jdone = icmp uge i64 %j1, {rbm.R_SLOTS}
  %kdone = icmp eq i64 %k1, 0
  %stop = or i1 %jdone, %kdone
  br i1 %stop, label %rloop, label %sl
rhit:
  ; not a seed: the record goes away at its submit, and seeds outlive calls and runs
  %rbig = icmp uge i64 %rl0, 8
  %rlim = sub i64 %rl0, 7
  %rlim8 = select i1 %rbig, i64 %rlim, i64 0
  %q1 = insertvalue {{i64, i64}} undef, i64 %ra0, 0
  %q2 = insertvalue {{i64, i64}} %q1, i64 %rlim8, 1
  ret {{i64, i64}} %q2
miss:
  %cbp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.REGION_CB}
  %cb = load ptr, ptr %cbp
  %r = call i64 %cb(ptr %ctx, i64 %addr, i64 %size, i64 %perm, i64 %pc)
  %found = icmp ne i64 %r, 0
  %hbp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.HIT_BASE}
  %hb = load i64, ptr %hbp
  %hlp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.HIT_LIM}
  %hl = load i64, ptr %hlp
  %fb = select i1 %found, i64 %hb, i64 0
  %m1 = insertvalue {{i64, i64}} undef, i64 %fb, 0
  %m2 = insertvalue {{i64, i64}} %m1, i64 %hl, 1
  ret {{i64, i64}} %m2
}}
"""
_RUN_IR = f"""
define i64 @bpf_run(ptr %ctx, ptr %f0, i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5, i64 %fp, i64 %reps, i64 %budget) nounwind {{
entry:
  %tcp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.TAIL_COUNT}
  %ttp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.TAIL_TARGET}
  %trp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.TAIL_R1}
  %tlp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.TAIL_LEFT}
  %lop = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.LEFT_OUT}
  %rdp = getelementptr inbounds i8, ptr %ctx, i64 {8 * abi.RUNS_DONE}
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  store i64 0, ptr %tcp
  %res = call fastcc {TY} %f0(ptr %ctx, i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5, i64 %fp, i64 0, i64 %budget)
  br label %check
check:
  %rr = phi {TY} [%res, %loop], [%res2, %tail]
  %lft = extractvalue {TY} %rr, 1
  %istail = icmp eq i64 %lft, {abi.TAIL_SENTINEL}
  br i1 %istail, label %tail, label %check2, {COLD}
tail:
  %tgt = load ptr, ptr %ttp
  %tr1 = load i64, ptr %trp
  %tl = load i64, ptr %tlp
  %res2 = call fastcc {TY} %tgt(ptr %ctx, i64 %tr1, i64 0, i64 0, i64 0, i64 0, i64 %fp, i64 0, i64 %tl)
  br label %check
check2:
  %isf = icmp slt i64 %lft, {abi.SIGNAL_LIMIT}
  br i1 %isf, label %fault, label %next, {COLD}
next:
  %r0 = extractvalue {TY} %rr, 0
  store i64 %lft, ptr %lop
  %i1 = add i64 %i, 1
  store i64 %i1, ptr %rdp
  %more = icmp ult i64 %i1, %reps
  br i1 %more, label %loop, label %done, {HOT}
done:
  ret i64 %r0
fault:
  ret i64 0
}}
"""
_runtime_module = None


def runtime_address(name: str) -> int:
    """Address of a function of the shared runtime module (compiled once per process)."""
    global _runtime_module
    if _runtime_module is None:
        from .engine import compile_module

        _runtime_module = compile_module(_RUNTIME_IR + _RUN_IR + _EPILOGUE, opt_level=2, cache=True)
    return _runtime_module.address(name)


_EPILOGUE = """
attributes #0 = { nounwind }
!0 = !{!"branch_weights", i32 1, i32 1048575}
!1 = !{!"branch_weights", i32 1048575, i32 1}
"""


class _FnGen:
    """Emits one BPF function."""

    def __init__(self, low: Lowering, fn: Function) -> None:
        self.low = low
        self.lay = low.lay
        self.fn = fn
        self.n = 0
        self.out: list[str] = []
        self.cold: list[str] = []  # cold blocks appended after the body
        self.static_labels: dict[tuple[int, int], str] = {}
        self.cached: set[int] = set()  # base registers with a region cache
        self.cur: dict[int, str] = {}  # register → SSA value within the current BPF block
        # integer SSA value → its inttoptr, valid while ``cur`` is (reset with it)
        self.ptrs: dict[str, str] = {}
        self.dirty: set[int] = set()  # registers whose alloca is behind ``cur``
        self.ctx_used: set[int] = set()
        self.budget_preds: list[tuple[int, str, str]] = []  # (pc, left, block) → shared fault
        self.loop_heads = cfg.loop_heads(low.lay, fn)
        # what each block adds to the count (control-equivalent blocks are merged), and
        # how much of later blocks is charged ahead of each (for exact counts mid-block)
        self.charge, self.ahead = cfg.charge_plan(low.lay, fn, self.loop_heads)
        self.lead = fn.entry  # the current block
        self.block_rest = 0  # instructions of the current block after the current one
        # Every base register of a checked access, known before any code is generated so
        # that calls can reset all of them.
        for slots in fn.blocks.values():
            for s in slots:
                r = self.needs_check(low.lay.at(s), s)
                if r is not None:
                    self.cached.add(r)
        if self.cached:
            for i in (
                abi.SEED_BASE,
                abi.SEED_RLIM,
                abi.SEED_WLIM,
                abi.ARG_BASE,
                abi.ARG_RLIM,
                abi.ARG_WLIM,
            ):
                self.c(i)

    # ---- small emitters ---------------------------------------------------------
    def v(self) -> str:
        self.n += 1
        return f"%v{self.n}"

    def label(self, stem: str = "x") -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def e(self, line: str) -> None:
        self.out.append("  " + line)

    def block(self, name: str) -> None:
        self.out.append(f"{name}:")

    def rd(self, r: int) -> str:
        t = self.cur.get(r)
        if t is None:
            if r == 10:  # r10 is never written (cfg.layout refuses it): the frame pointer
                return "%fp"
            t = self.cur[r] = self.v()
            self.e(f"{t} = load i64, ptr %r{r}")
        return t

    def wr(self, r: int, val: str | int) -> None:
        self.cur[r] = str(val)
        self.dirty.add(r)

    def flush(self) -> None:
        """Store registers changed in this BPF block (before control leaves it)."""
        for r in sorted(self.dirty):
            self.e(f"store i64 {self.cur[r]}, ptr %r{r}")
        self.dirty.clear()

    def store_reg(self, r: int, val: str) -> None:
        """Store a register on one path of a diamond; later reads reload it."""
        self.e(f"store i64 {val}, ptr %r{r}")

    def forget(self, r: int) -> None:
        self.cur.pop(r, None)
        self.dirty.discard(r)

    def c(self, idx: int) -> str:
        self.ctx_used.add(idx)
        return f"%c{idx}"

    def store_ctx(self, idx: int, val: str | int) -> None:
        self.e(f"store i64 {val}, ptr {self.c(idx)}")

    def load_ctx(self, idx: int, ty: str = "i64") -> str:
        t = self.v()
        self.e(f"{t} = load {ty}, ptr {self.c(idx)}")
        return t

    def op(self, text: str) -> str:
        t = self.v()
        self.e(f"{t} = {text}")
        return t

    def static_fault(self, message: str, pc: int, not_supported: bool = False) -> str:
        """Label of a cold block that records a static fault at ``pc`` and unwinds."""
        idx = self.low.static_index(message, not_supported)
        key = (idx, pc)
        lab = self.static_labels.get(key)
        if lab is None:
            lab = self.static_labels[key] = self.label("sf")
            self.cold += [
                f"{lab}:",
                f"  store i64 {abi.F_STATIC}, ptr {self.c(abi.FAULT_KIND)}",
                f"  store i64 {pc}, ptr {self.c(abi.FAULT_PC)}",
                f"  store i64 {idx}, ptr {self.c(abi.FAULT_AUX)}",
                "  br label %rf",
            ]
        return lab

    def dyn_fault(self, kind: int, pc: int, addr: str | int, aux: str | int) -> str:
        """Label of a cold block recording a fault with a run-time address/aux."""
        lab = self.label("df")
        self.cold += [
            f"{lab}:",
            f"  store i64 {kind}, ptr {self.c(abi.FAULT_KIND)}",
            f"  store i64 {pc}, ptr {self.c(abi.FAULT_PC)}",
            f"  store i64 {addr}, ptr {self.c(abi.FAULT_ADDR)}",
            f"  store i64 {aux}, ptr {self.c(abi.FAULT_AUX)}",
            "  br label %rf",
        ]
        return lab

    def goto_label(self, target: int, pc: int) -> str:
        """Label of the block at slot ``target``, or of the fault for a bad target."""
        if self.lay.valid(target):
            return f"b{target}"
        what = "into the middle of lddw" if 0 <= target < self.lay.nslots else "out of the program"
        return self.static_fault(f"jump to slot {target} goes {what}", pc)

    def br(self, cond: str, t: str, f: str, prof: str = "") -> None:
        self.e(f"br i1 {cond}, label %{t}, label %{f}" + (f", {prof}" if prof else ""))

    def left(self) -> str:
        """The exact remaining budget: committed ``%L`` minus this iteration's ``%I``."""
        t = self.v()
        self.e(f"{t} = load i64, ptr %L")
        i = self.v()
        self.e(f"{i} = load i64, ptr %I")
        return self.op(f"sub i64 {t}, {i}")

    def charged_ahead(self) -> int:
        """Instructions charged to the count that run after the current one."""
        return self.block_rest + self.ahead[self.lead]

    def exact_left(self) -> str:
        """The remaining budget counted exactly up to (and with) the current instruction:
        what a call, a callback or a tail call goes on from, and an early exit reports."""
        return self.op(f"add i64 {self.left()}, {self.charged_ahead()}")

    def set_left(self, exact: str) -> None:
        """Go on from ``exact`` (as :meth:`exact_left`: after a call or callbacks)."""
        self.e(f"store i64 {self.op(f'sub i64 {exact}, {self.charged_ahead()}')}, ptr %L")
        self.e("store i64 0, ptr %I")

    def ret_value(self, r0: str | int, left: str) -> None:
        a = self.op(f"insertvalue {TY} undef, i64 {r0}, 0")
        b = self.op(f"insertvalue {TY} {a}, i64 {left}, 1")
        self.e(f"ret {TY} {b}")

    def needs_check(self, insn: Instruction, slot: int) -> int | None:
        """The base register of a memory access that needs a region check, else None."""
        c = insn.cls
        if c not in (op.LDX, op.ST, op.STX) or slot in self.low.safe:
            return None
        base = insn.src if c == op.LDX else insn.dst
        atomic = c == op.STX and (insn.opcode & 0xE0) == op.ATOMIC
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        if base == 10 and -op.STACK_SIZE <= insn.off <= -size:
            return None
        del atomic
        return base

    def seed_caches(self, lines: list[str], from_arg: bool = False) -> None:
        """(Re)load every region cache from the run's seeds (helpers may change regions)."""
        if not self.cached:
            return
        names = {v: self.label("seed") for v in ("b", "r", "w", "ab", "ar", "aw")}
        lines += [
            f"  %{names['b']} = load i64, ptr %c{abi.SEED_BASE}",
            f"  %{names['r']} = load i64, ptr %c{abi.SEED_RLIM}",
            f"  %{names['w']} = load i64, ptr %c{abi.SEED_WLIM}",
        ]
        for i in (abi.SEED_BASE, abi.SEED_RLIM, abi.SEED_WLIM):
            self.c(i)
        if from_arg and 1 in self.cached:
            lines += [
                f"  %{names['ab']} = load i64, ptr %c{abi.ARG_BASE}",
                f"  %{names['ar']} = load i64, ptr %c{abi.ARG_RLIM}",
                f"  %{names['aw']} = load i64, ptr %c{abi.ARG_WLIM}",
            ]
            for i in (abi.ARG_BASE, abi.ARG_RLIM, abi.ARG_WLIM):
                self.c(i)
        for r in sorted(self.cached):
            p = "a" if from_arg and r == 1 else ""
            lines += [
                f"  store i64 %{names[p + 'b']}, ptr %rb{r}",
                f"  store i64 %{names[p + 'r']}, ptr %rl{r}",
                f"  store i64 %{names[p + 'b']}, ptr %wb{r}",
                f"  store i64 %{names[p + 'w']}, ptr %wl{r}",
            ]

    def invalidate_caches(self) -> None:
        lines: list[str] = []
        self.seed_caches(lines)
        self.out += lines

    # ---- the function -----------------------------------------------------------
    def function(self) -> str:
        fn = self.fn
        for lead, slots in fn.blocks.items():
            self.block(f"b{lead}")
            self.basic_block(lead, slots)
        head = [
            f"define internal fastcc {TY} @{self.low.prefix}f{fn.entry}(ptr %ctx, i64 %a1, i64 %a2, i64 %a3, "
            "i64 %a4, i64 %a5, i64 %fp, i64 %depth, i64 %left0) #0 {",
            "entry:",
        ]
        head += [f"  %r{r} = alloca i64" for r in range(11)]
        head += ["  %L = alloca i64", "  %I = alloca i64"]
        for r in sorted(self.cached):
            head += [f"  %{v}{r} = alloca i64" for v in ("rb", "rl", "wb", "wl")]
        head += [
            f"  %c{i} = getelementptr inbounds i8, ptr %ctx, i64 {8 * i}"
            for i in sorted(self.ctx_used)
        ]
        head += [f"  store i64 0, ptr %r{r}" for r in (0, 6, 7, 8, 9)]
        head += [f"  store i64 %a{r}, ptr %r{r}" for r in range(1, 6)]
        head.append("  %fpp = inttoptr i64 %fp to ptr")
        head += ["  store i64 %fp, ptr %r10", "  store i64 %left0, ptr %L", "  store i64 0, ptr %I"]
        self.seed_caches(head, from_arg=fn.entry == 0)
        head.append(f"  br label %b{fn.entry}")
        tail = ["rf:", f"  ret {TY} {{i64 0, i64 {abi.FAULT_SENTINEL}}}", *self.cold]
        if self.budget_preds:
            lp = ", ".join(f"[{pc}, %{p}]" for pc, _, p in self.budget_preds)
            vp = ", ".join(f"[{v}, %{p}]" for _, v, p in self.budget_preds)
            tail += [
                "bfail:",
                f"  %bf.pc = phi i64 {lp}",
                f"  %bf.left = phi i64 {vp}",
                f"  store i64 {abi.F_BUDGET}, ptr %c{abi.FAULT_KIND}",
                f"  store i64 %bf.pc, ptr %c{abi.FAULT_PC}",
                f"  store i64 {fn.entry}, ptr %c{abi.FAULT_AUX}",
                f"  store i64 %bf.left, ptr %c{abi.FAULT_ADDR}",
                "  br label %rf",
            ]
        tail += ["}", ""]
        return "\n".join(head + self.out + tail)

    def basic_block(self, lead: int, slots: list[int]) -> None:
        lay = self.lay
        self.cur.clear()
        self.ptrs = {}
        self.dirty.clear()
        self.lead = lead
        # Counting: blocks add their length to ``%I``; loop headers commit it into ``%L``
        # (one loop-carried subtraction per iteration instead of one per block).
        if lead in self.loop_heads:  # like the interpreter: check before a loop header
            left = self.left()
            self.e(f"store i64 {left}, ptr %L")
            self.budget_check(left, lead)
            self.e(f"store i64 {self.charge[lead]}, ptr %I")
        elif self.charge[lead]:
            i = self.op("load i64, ptr %I")
            self.e(f"store i64 {self.op(f'add i64 {i}, {self.charge[lead]}')}, ptr %I")
        last = slots[-1]
        li = lay.at(last)
        terminated = li.is_jump or li.is_exit
        for i, s in enumerate(slots[:-1] if terminated else slots):
            self.block_rest = len(slots) - i - 1
            self.insn(s)
        if li.is_exit:  # ... and the total at an exit
            left = self.left()
            self.budget_check(left, last)
            self.ret_value(self.rd(0), left)
            return
        if not terminated:
            self.flush()
            nxt = last + li.slots
            if nxt >= lay.nslots:
                lab = self.static_fault("execution fell off the end of the program", last)
            else:
                lab = self.goto_label(nxt, last)
            self.e(f"br label %{lab}")
            return
        tgt = last + 1 + li.jump_offset
        self.flush()
        if (li.opcode & 0xF0) == op.JA:
            self.e(f"br label %{self.goto_label(tgt, last)}")
            return
        cond = self.cond(li)
        self.br(cond, self.goto_label(tgt, last), self.goto_label(last + 1, last))

    def budget_check(self, left: str, pc: int) -> None:
        """Fault (shared cold block) when ``left`` is negative: the budget is exceeded."""
        neg = self.op(f"icmp slt i64 {left}, 0")
        ok = self.label("bc")
        pred = self.label("bp")
        self.e(f"br label %{pred}")
        self.block(pred)
        self.budget_preds.append((pc, left, pred))
        for i in (abi.FAULT_KIND, abi.FAULT_PC, abi.FAULT_AUX, abi.FAULT_ADDR):
            self.c(i)
        self.br(neg, "bfail", ok, COLD)
        self.block(ok)

    def cond(self, insn: Instruction) -> str:
        jop = insn.opcode & 0xF0
        is32 = insn.cls == op.JMP32
        ty = "i32" if is32 else "i64"
        a = self.rd(insn.dst)
        if insn.opcode & op.X:
            b = self.rd(insn.src)
            if is32:
                b = self.trunc32(b)
        else:
            b = str(sconst(insn.imm, 32 if is32 else 64))
        if is32:
            a = self.trunc32(a)
        if jop == op.JSET:
            t = self.op(f"and {ty} {a}, {b}")
            return self.op(f"icmp ne {ty} {t}, 0")
        return self.op(f"icmp {_ICMP[jop]} {ty} {a}, {b}")

    # ---- instructions -------------------------------------------------------------
    def insn(self, slot: int) -> None:
        insn = self.lay.at(slot)
        c = insn.cls
        if c in (op.ALU, op.ALU64):
            self.alu(insn)
        elif c == op.LDX:
            self.ldx(insn, slot)
        elif c in (op.ST, op.STX):
            self.store(insn, slot)
        elif c == op.LD:
            self.ld(insn, slot)
        elif insn.is_call or insn.is_callx:
            self.call(insn, slot)
        else:  # pragma: no cover - jumps and exits end blocks
            raise AssertionError(insn)

    def alu(self, insn: Instruction) -> None:
        is64 = insn.cls == op.ALU64
        aop = insn.opcode & 0xF0
        x = bool(insn.opcode & op.X)
        d = insn.dst
        w = 64 if is64 else 32
        ty = f"i{w}"
        if aop in _FOLD and not (aop == op.MOV and insn.off):
            folded = self.fold(aop, w, d, insn.src if x else None, insn.imm)
            if folded is not None:
                self.wr(d, folded)
                return
        if aop == op.END:
            bits = insn.imm
            v = self.rd(d)
            if insn.cls == op.ALU and not x:  # to little-endian: truncation on this host
                if bits < 64:
                    self.wr(d, self.op(f"and i64 {v}, {(1 << bits) - 1}"))
                return
            if bits < 64:
                v = self.op(f"trunc i64 {v} to i{bits}")
            v = self.op(f"call i{bits} @llvm.bswap.i{bits}(i{bits} {v})")
            if bits < 64:
                v = self.op(f"zext i{bits} {v} to i64")
            self.wr(d, v)
            return
        if aop == op.MOV:
            if x:
                v = self.rd(insn.src)
                if insn.off:
                    t = self.op(f"trunc i64 {v} to i{insn.off}")
                    if is64:
                        v = self.op(f"sext i{insn.off} {t} to i64")
                    else:
                        s = self.op(f"sext i{insn.off} {t} to i32")
                        v = self.op(f"zext i32 {s} to i64")
                elif not is64:
                    v = self.op(f"and i64 {v}, 4294967295")
                self.wr(d, v)
            else:
                self.wr(d, sconst(insn.imm, 64) if is64 else insn.imm & 0xFFFFFFFF)
            return
        a = self.rd(d)
        if not is64:
            a = self.trunc32(a)
        if aop == op.NEG:
            r = self.op(f"sub {ty} 0, {a}")
        else:
            bsrc = _lit(self.cur.get(insn.src)) if x else None
            if x and bsrc is None:
                b = self.rd(insn.src)
                if not is64:
                    b = self.op(f"trunc i64 {b} to i32")
                bc = None
            elif x:  # a register holding a known constant: as an immediate
                bc = bsrc & ((1 << w) - 1)
                b = str(sconst(bc, w))
            else:
                bc = insn.imm & ((1 << w) - 1)
                b = str(sconst(bc, w))
            if aop in (op.LSH, op.RSH, op.ARSH):
                if bc is not None:
                    b = str(bc & (w - 1))
                else:
                    b = self.op(f"and {ty} {b}, {w - 1}")
                r = self.op(f"{_BINOP[aop]} {ty} {a}, {b}")
            elif aop in (op.DIV, op.MOD):
                r = self.divmod(aop, insn.off == 1, ty, w, a, b, bc)
            else:
                r = self.op(f"{_BINOP[aop]} {ty} {a}, {b}")
        if not is64:
            r = self.op(f"zext i32 {r} to i64")
        self.wr(d, r)

    def trunc32(self, v: str) -> str:
        """``v`` (i64) truncated to i32 (folded for a literal)."""
        c = _lit(v)
        return str(sconst(c, 32)) if c is not None else self.op(f"trunc i64 {v} to i32")

    def fold(self, aop: int, w: int, d: int, src: int | None, imm: int) -> str | None:
        """The result of an ALU operation on constants, as a literal (None if not constant)."""
        m = (1 << w) - 1
        if src is None:
            b = imm & m
        else:
            b = _lit(self.cur.get(src))
            if b is None:
                return None
            b &= m
        if aop == op.MOV:
            return str(sconst(b, 64) if w == 64 else b)
        a = _lit(self.cur.get(d))
        if a is None:
            return None
        a &= m
        if aop == op.ADD:
            r = a + b
        elif aop == op.SUB:
            r = a - b
        elif aop == op.MUL:
            r = a * b
        elif aop == op.OR:
            r = a | b
        elif aop == op.AND:
            r = a & b
        elif aop == op.XOR:
            r = a ^ b
        elif aop == op.LSH:
            r = a << (b & (w - 1))
        elif aop == op.RSH:
            r = a >> (b & (w - 1))
        elif aop == op.ARSH:
            r = sconst(a, w) >> (b & (w - 1))
        else:  # NEG
            r = -a
        r &= m
        return str(sconst(r, 64) if w == 64 else r)

    def divmod(
        self, aop: int, signed: bool, ty: str, w: int, a: str, b: str, bc: int | None
    ) -> str:
        """Division/modulo that never traps: by zero → 0 / dividend, INT_MIN/-1 wraps."""
        div = aop == op.DIV
        ac = _lit(a)
        if bc is not None and ac is not None and not signed:
            ac &= (1 << w) - 1
            if bc == 0:
                return "0" if div else str(sconst(ac, w))
            return str(sconst(ac // bc if div else ac % bc, w))
        if bc is not None:
            if bc == 0:
                return "0" if div else a
            if signed and bc == (1 << w) - 1:  # divide by -1
                return self.op(f"sub {ty} 0, {a}") if div else "0"
            name = ("sdiv" if div else "srem") if signed else ("udiv" if div else "urem")
            return self.op(f"{name} {ty} {a}, {b}")
        z = self.op(f"icmp eq {ty} {b}, 0")
        if not signed:
            sb = self.op(f"select i1 {z}, {ty} 1, {ty} {b}")
            q = self.op(f"{'udiv' if div else 'urem'} {ty} {a}, {sb}")
            return self.op(f"select i1 {z}, {ty} {'0' if div else a}, {ty} {q}")
        m1 = self.op(f"icmp eq {ty} {b}, -1")
        bad = self.op(f"or i1 {z}, {m1}")
        sb = self.op(f"select i1 {bad}, {ty} 1, {ty} {b}")
        if div:
            q = self.op(f"sdiv {ty} {a}, {sb}")
            n = self.op(f"sub {ty} 0, {a}")
            t = self.op(f"select i1 {m1}, {ty} {n}, {ty} {q}")
            return self.op(f"select i1 {z}, {ty} 0, {ty} {t}")
        q = self.op(f"srem {ty} {a}, {sb}")
        t = self.op(f"select i1 {m1}, {ty} 0, {ty} {q}")
        return self.op(f"select i1 {z}, {ty} {a}, {ty} {t}")

    # ---- memory -------------------------------------------------------------------
    def address(
        self, base: int, off: int, size: int, perm: int, slot: int, atomic: bool = False
    ) -> tuple[str, str]:
        """The checked address ``base + off`` of an access: (as an integer, as a pointer).

        The pointer is a ``getelementptr`` off the base register's value, so LLVM's alias
        analysis sees that constant offsets from one base do not overlap.
        """
        b = self.rd(base)
        checked = self.needs_check(self.lay.at(slot), slot) is not None
        # the integer address only where a check or an alignment test uses it
        a = self.op(f"add i64 {b}, {off}") if off and (checked or atomic) else b
        if base == 10:
            p0 = "%fpp"
        else:
            p0 = self.ptrs.get(b)
            if p0 is None:
                p0 = self.ptrs[b] = self.op(f"inttoptr i64 {b} to ptr")
        p = self.op(f"getelementptr i8, ptr {p0}, i64 {off}") if off else p0
        if atomic:
            m = self.op(f"and i64 {a}, {size - 1}")
            mis = self.op(f"icmp ne i64 {m}, 0")
            ok = self.label("al")
            self.br(mis, self.dyn_fault(abi.F_MISALIGNED, slot, a, size), ok, COLD)
            self.block(ok)
        if checked:
            self.check(base, a, size, perm, slot)
        return a, p

    def check(self, r: int, a: str, size: int, perm: int, slot: int) -> None:
        """Check ``[a, a + size)`` against base register ``r``'s one-region cache.

        Per permission the cache holds a region's base and ``span - 7`` (0 when the
        region is shorter than 8 bytes): ``a - base < limit`` then covers any access of
        up to 8 bytes. Anything else takes the slow path, which refills the cache.
        """
        assert r in self.cached
        ok = None
        for bit, kind in ((abi.READ, "r"), (abi.WRITE, "w")):
            if perm & bit:
                cb = self.op(f"load i64, ptr %{kind}b{r}")
                off = self.op(f"sub i64 {a}, {cb}")
                lim = self.op(f"load i64, ptr %{kind}l{r}")
                c = self.op(f"icmp ult i64 {off}, {lim}")
                ok = c if ok is None else self.op(f"and i1 {ok}, {c}")
        cont, miss = self.label("ok"), self.label("miss")
        self.br(ok, cont, miss, HOT)
        self.block(miss)
        fp = self.op("load ptr, ptr @mem_slow")
        packed = size | perm << 8 | slot << 16
        res = self.op(f"call {TY} {fp}(ptr %ctx, i64 {a}, i64 {packed})")
        base = self.op(f"extractvalue {TY} {res}, 0")
        lim = self.op(f"extractvalue {TY} {res}, 1")
        for bit, kind in ((abi.READ, "r"), (abi.WRITE, "w")):
            if perm & bit:
                self.e(f"store i64 {base}, ptr %{kind}b{r}")
                self.e(f"store i64 {lim}, ptr %{kind}l{r}")
        bad = self.op(f"icmp eq i64 {base}, 0")
        self.br(bad, "rf", cont, COLD)
        self.block(cont)

    def ldx(self, insn: Instruction, slot: int) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        signed = (insn.opcode & 0xE0) == op.MEMSX
        _, p = self.address(insn.src, insn.off, size, abi.READ, slot)
        bits = 8 * size
        v = self.op(f"load i{bits}, ptr {p}, align 1")
        if bits < 64:
            v = self.op(f"{'sext' if signed else 'zext'} i{bits} {v} to i64")
        self.wr(insn.dst, v)

    def store(self, insn: Instruction, slot: int) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        bits = 8 * size
        if insn.cls == op.STX and (insn.opcode & 0xE0) == op.ATOMIC:
            self.atomic(insn, slot, size)
            return
        if insn.cls == op.ST:
            val = str(sconst(insn.imm, bits))
            _, p = self.address(insn.dst, insn.off, size, abi.WRITE, slot)
        else:
            _, p = self.address(insn.dst, insn.off, size, abi.WRITE, slot)
            val = self.rd(insn.src)
            if bits < 64:
                c = _lit(val)
                val = (
                    str(sconst(c, bits))
                    if c is not None
                    else self.op(f"trunc i64 {val} to i{bits}")
                )
        self.e(f"store i{bits} {val}, ptr {p}, align 1")

    def atomic(self, insn: Instruction, slot: int, size: int) -> None:
        bits = 8 * size
        ty = f"i{bits}"
        _, p = self.address(insn.dst, insn.off, size, abi.READ | abi.WRITE, slot, atomic=True)
        val = self.rd(insn.src)
        if bits < 64:
            val = self.op(f"trunc i64 {val} to {ty}")
        aop = insn.imm
        if aop == op.CMPXCHG:
            exp = self.rd(0)
            if bits < 64:
                exp = self.op(f"trunc i64 {exp} to {ty}")
            pair = self.op(f"cmpxchg ptr {p}, {ty} {exp}, {ty} {val} seq_cst seq_cst, align {size}")
            old = self.op(f"extractvalue {{{ty}, i1}} {pair}, 0")
            dst = 0
        else:
            rmw = "xchg" if aop == op.XCHG else _RMW[aop & ~op.FETCH]
            old = self.op(f"atomicrmw {rmw} ptr {p}, {ty} {val} seq_cst, align {size}")
            if not aop & op.FETCH:
                return
            dst = insn.src
        if bits < 64:
            old = self.op(f"zext {ty} {old} to i64")
        self.wr(dst, old)

    def ld(self, insn: Instruction, slot: int) -> None:
        if insn.is_lddw:
            self.lddw(insn, slot)
            return
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        bits = 8 * size
        ret0 = self.label("pk0")
        # The block (and the blocks charged ahead with it) was charged on entry; the
        # function ends here, so give back the instructions after this one (the
        # interpreter counts exactly up to this load) and, as at an exit, fault past the
        # budget.
        exact_left = self.exact_left()
        for i in (abi.FAULT_KIND, abi.FAULT_PC, abi.FAULT_AUX, abi.FAULT_ADDR):
            self.c(i)
        self.budget_preds.append((slot, exact_left, ret0))
        self.cold += [
            f"{ret0}:",
            f"  %{ret0}.n = icmp slt i64 {exact_left}, 0",
            f"  br i1 %{ret0}.n, label %bfail, label %{ret0}.r, {COLD}",
            f"{ret0}.r:",
            f"  %{ret0}.a = insertvalue {TY} undef, i64 0, 0",
            f"  %{ret0}.b = insertvalue {TY} %{ret0}.a, i64 {exact_left}, 1",
            f"  ret {TY} %{ret0}.b",
        ]
        if (insn.opcode & 0xE0) == op.ABS:
            k = insn.imm
            if k >= 0:
                plen = self.load_ctx(abi.PKT_LEN)
                bad = self.op(f"icmp ugt i64 {k + size}, {plen}")
                ok = self.label("pk")
                self.br(bad, ret0, ok, COLD)
                self.block(ok)
                a = self.op(f"add i64 {self.load_ctx(abi.PKT_BASE)}, {k}")
            elif k >= SKF_LL_OFF:
                word = abi.PKT_NET_ADJ if k >= SKF_NET_OFF else abi.PKT_MAC_ADJ
                u = self.op(f"add i64 {self.load_ctx(word)}, {k}")
                a, bad = self.header_check(u, size)
                ok = self.label("pk")
                self.br(bad, ret0, ok, COLD)
                self.block(ok)
            else:  # neither header: the load always fails
                self.e(f"br label %{ret0}")
                self.block(self.label("dead"))
                return
        else:
            s = self.rd(insn.src)
            t = self.op(f"add i64 {s}, {insn.imm}")
            t32 = self.op(f"trunc i64 {t} to i32")
            o = self.op(f"sext i32 {t32} to i64")
            neg = self.op(f"icmp slt i64 {o}, 0")
            pos, hdr, ld = self.label("pkp"), self.label("pkn"), self.label("pk")
            self.br(neg, hdr, pos, COLD)
            self.block(pos)
            plen = self.load_ctx(abi.PKT_LEN)
            e = self.op(f"add i64 {o}, {size}")
            big = self.op(f"icmp ugt i64 {e}, {plen}")
            a1 = self.op(f"add i64 {self.load_ctx(abi.PKT_BASE)}, {o}")
            self.br(big, ret0, ld, COLD)
            # a negative offset: SKF_NET_OFF + n or SKF_LL_OFF + n, else the load fails
            self.block(hdr)
            net = self.op(f"icmp sge i64 {o}, {SKF_NET_OFF}")
            ll = self.op(f"icmp sge i64 {o}, {SKF_LL_OFF}")
            mac = self.op(f"select i1 {ll}, i64 {self.load_ctx(abi.PKT_MAC_ADJ)}, i64 {1 << 40}")
            adj = self.op(f"select i1 {net}, i64 {self.load_ctx(abi.PKT_NET_ADJ)}, i64 {mac}")
            u = self.op(f"add i64 {o}, {adj}")
            a2, bad = self.header_check(u, size)
            self.br(bad, ret0, ld)
            self.block(ld)
            a = self.op(f"phi i64 [{a1}, %{pos}], [{a2}, %{hdr}]")
        p = self.op(f"inttoptr i64 {a} to ptr")
        v = self.op(f"load i{bits}, ptr {p}, align 1")
        if bits > 8:
            v = self.op(f"call i{bits} @llvm.bswap.i{bits}(i{bits} {v})")
        self.wr(0, self.op(f"zext i{bits} {v} to i64"))

    def header_check(self, u: str, size: int) -> tuple[str, str]:
        """(address, out of range) of a load at byte ``u`` of the header-reachable bytes
        (``abi.PKT_NEG_BASE``, spanning ``abi.PKT_NEG_SPAN``)."""
        span = self.load_ctx(abi.PKT_NEG_SPAN)
        below = self.op(f"icmp slt i64 {u}, 0")
        e = self.op(f"add i64 {u}, {size}")
        above = self.op(f"icmp sgt i64 {e}, {span}")
        bad = self.op(f"or i1 {below}, {above}")
        return self.op(f"add i64 {self.load_ctx(abi.PKT_NEG_BASE)}, {u}"), bad

    def lddw(self, insn: Instruction, slot: int) -> None:
        if insn.src == 0:
            self.wr(insn.dst, sconst(insn.imm, 64))
            return
        if insn.src == op.PSEUDO_FUNC:
            lo = insn.imm_lo
            tgt = slot + 1 + (lo - (1 << 32) if lo & 0x80000000 else lo)
            if not self.lay.valid(tgt):
                lab = self.static_fault(f"lddw function pointer to invalid slot {tgt}", slot)
                self.e(f"br label %{lab}")
                self.block(self.label("dead"))
                return
            self.wr(insn.dst, sconst(self.low.code_base + 8 * tgt, 64))
            return
        value = self.low.lddw.get(slot)
        if value is None:
            lab = self.static_fault(
                f"lddw at slot {slot} references a {op.LDDW_PSEUDOS[insn.src]} "
                "(maps and BTF ids need an object loaded with bpfkit.load)",
                slot,
                not_supported=True,
            )
            self.e(f"br label %{lab}")
            self.block(self.label("dead"))
            return
        self.wr(insn.dst, sconst(value, 64))

    # ---- calls --------------------------------------------------------------------
    def args(self) -> list[str]:
        return [self.rd(r) for r in range(1, 6)]

    def call(self, insn: Instruction, slot: int) -> None:
        if insn.is_callx:
            self.callx(insn, slot)
        elif insn.is_helper_call:
            if insn.imm == 12:
                self.tail_call_hook(slot)
            else:
                self.wr(0, self.helper(insn.imm, slot))
        elif insn.is_local_call:
            tgt = slot + 1 + insn.imm
            if tgt not in self.low.funcs:
                lab = self.static_fault(f"call to invalid slot {tgt}", slot)
                self.e(f"br label %{lab}")
                self.block(self.label("dead"))
                return
            self.local_call(tgt, slot)
        else:
            lab = self.static_fault(
                "kernel function calls (kfuncs) are not available in the VM", slot
            )
            self.e(f"br label %{lab}")
            self.block(self.label("dead"))
            return
        self.invalidate_caches()

    def check_fault(self) -> None:
        fk = self.load_ctx(abi.FAULT_KIND)
        bad = self.op(f"icmp ne i64 {fk}, 0")
        cont = self.label("hc")
        self.br(bad, "rf", cont, COLD)
        self.block(cont)

    def helper(self, hid: int | str, slot: int, callx: bool = False) -> str:
        """Call helper ``hid`` (a constant id, or a register value for ``callx``)."""
        args = self.args()
        nat = self.low.natives.get(hid) if isinstance(hid, int) else None
        if nat is not None:
            return self.native_call(nat, args, slot)
        self.store_ctx(abi.SITE, slot | (1 << 32 if callx else 0))
        # a helper that runs callbacks (or a tail call's target) counts on from here
        counting = callx or hid in COUNTING_HELPERS
        if counting:
            self.store_ctx(abi.CB_LEFT, self.exact_left())
        cb = self.load_ctx(abi.HELPER_CB, "ptr")
        argl = ", ".join(f"i64 {a}" for a in args)
        r = self.op(f"call i64 {cb}(ptr %ctx, i64 {hid}, {argl})")
        self.check_fault()
        if counting:
            self.set_left(self.load_ctx(abi.CB_LEFT))
        return r

    def native_call(self, nat: NativeHelper, args: list[str], slot: int = 0) -> str:
        if nat.takes_ctx:
            self.store_ctx(abi.SITE, slot)
        f = self.op(f"inttoptr i64 {nat.address} to ptr")
        params = []
        if nat.takes_ctx:
            params.append("ptr %ctx")
        if nat.data is not None:
            params.append(f"i64 {sconst(nat.data, 64)}")
        params += [f"i64 {a}" for a in args[: nat.nargs]]
        r = self.op(f"call i64 {f}({', '.join(params)})")
        if nat.takes_ctx:
            self.check_fault()
        return r

    def depth_check(self, slot: int) -> None:
        deep = self.op(f"icmp sge i64 %depth, {op.MAX_CALL_FRAMES - 1}")
        ok = self.label("dp")
        lab = self.static_fault(f"call depth exceeds {op.MAX_CALL_FRAMES} frames", slot)
        self.br(deep, lab, ok, COLD)
        self.block(ok)

    def local_call(self, tgt: int, slot: int) -> None:
        """Call the BPF function at ``tgt``: depth check, new frame, propagate signals."""
        self.depth_check(slot)
        args = self.args()
        fp = self.op(f"sub i64 {self.rd(10)}, {op.STACK_SIZE}")
        d = self.op("add i64 %depth, 1")
        lft = self.exact_left()
        argl = ", ".join(f"i64 {a}" for a in args)
        res = self.op(
            f"call fastcc {TY} @{self.low.prefix}f{tgt}(ptr %ctx, {argl}, i64 {fp}, i64 {d}, i64 {lft})"
        )
        nl = self.op(f"extractvalue {TY} {res}, 1")
        sig = self.op(f"icmp slt i64 {nl}, {abi.SIGNAL_LIMIT}")
        prop, cont = self.label("prop"), self.label("ret")
        self.br(sig, prop, cont, COLD)
        self.block(prop)
        self.ret_value(0, nl)
        self.block(cont)
        self.set_left(nl)
        self.wr(0, self.op(f"extractvalue {TY} {res}, 0"))

    def callx(self, insn: Instruction, slot: int) -> None:
        lay = self.lay
        t = self.rd(insn.dst)
        self.flush()
        saved = dict(self.cur)
        rel = self.op(f"sub i64 {t}, {sconst(self.low.code_base, 64)}")
        inr = self.op(f"icmp ult i64 {rel}, {8 * lay.nslots}")
        low = self.op(f"and i64 {rel}, 7")
        al = self.op(f"icmp eq i64 {low}, 0")
        isfn = self.op(f"and i1 {inr}, {al}")
        fpath, hpath, join = self.label("cxf"), self.label("cxh"), self.label("cxj")
        self.br(isfn, fpath, hpath)
        # a function pointer: dispatch on the slot
        self.block(fpath)
        s = self.op(f"lshr i64 {rel}, 3")
        mid = [i for i, x in enumerate(lay.slot_insn) if x is None]
        cases = []
        labels = {}
        for e in self.low.funcs:
            labels[e] = self.label("cxe")
            cases.append(f"i64 {e}, label %{labels[e]}")
        midl = self.dyn_fault(abi.F_CALLX, slot, s, 1)
        cases += [f"i64 {m}, label %{midl}" for m in mid]
        notentry = self.dyn_fault(abi.F_CALLX, slot, s, 2)
        self.e(f"switch i64 {s}, label %{notentry} [ {' '.join(cases)} ]")
        for e, lab in labels.items():
            self.block(lab)
            self.cur = dict(saved)
            self.ptrs = {}
            self.local_call(e, slot)
            self.store_reg(0, self.cur[0])
            self.e(f"br label %{join}")
        # a helper id
        self.block(hpath)
        self.cur = dict(saved)
        self.ptrs = {}
        ish = self.op(f"icmp ult i64 {t}, {1 << 31}")
        hl = self.label("cxid")
        self.br(ish, hl, self.dyn_fault(abi.F_CALLX, slot, t, 0))
        self.block(hl)
        natives = sorted(self.low.natives)
        if natives:
            generic = self.label("cxg")
            nl = {h: self.label("cxn") for h in natives}
            self.e(
                f"switch i64 {t}, label %{generic} [ "
                + " ".join(f"i64 {h}, label %{nl[h]}" for h in natives)
                + " ]"
            )
            for h in natives:
                self.block(nl[h])
                self.cur = dict(saved)
                self.ptrs = {}
                self.store_reg(0, self.native_call(self.low.natives[h], self.args(), slot))
                self.e(f"br label %{join}")
            self.block(generic)
            self.cur = dict(saved)
            self.ptrs = {}
        self.store_reg(0, self.helper(t, slot, callx=True))
        self.e(f"br label %{join}")
        self.block(join)
        self.cur = saved
        self.ptrs = {}
        self.forget(0)

    def tail_call_hook(self, slot: int) -> None:
        """``bpf_tail_call``: ask the run's tail-call resolver; unwind to ``bpf_run`` on success."""
        r1, r2, r3 = (self.rd(r) for r in (1, 2, 3))
        self.flush()
        saved = dict(self.cur)
        tcb = self.load_ctx(abi.TAIL_CB, "ptr")
        none = self.op(f"icmp eq ptr {tcb}, null")
        generic, hook, fail, go, join = (self.label(x) for x in ("tcg", "tch", "tcf", "tcj", "tcd"))
        self.br(none, generic, hook)
        self.block(generic)
        self.store_reg(0, self.helper(12, slot))
        self.e(f"br label %{join}")
        self.block(hook)
        self.cur = dict(saved)
        self.ptrs = {}
        cnt = self.load_ctx(abi.TAIL_COUNT)
        over = self.op(f"icmp uge i64 {cnt}, {abi.MAX_TAIL_CALLS}")
        ask = self.label("tca")
        self.br(over, fail, ask)
        self.block(ask)
        self.store_ctx(abi.SITE, slot)
        tgt = self.op(f"call i64 {tcb}(ptr %ctx, i64 {r1}, i64 {r2}, i64 {r3})")
        self.check_fault()
        z = self.op(f"icmp eq i64 {tgt}, 0")
        self.br(z, fail, go)
        self.block(go)
        self.store_ctx(abi.TAIL_COUNT, self.op(f"add i64 {cnt}, 1"))
        self.store_ctx(abi.TAIL_TARGET, tgt)
        self.store_ctx(abi.TAIL_R1, r1)
        # the target counts on from the exact count at this call (as through the helper)
        self.store_ctx(abi.TAIL_LEFT, self.exact_left())
        self.e(f"ret {TY} {{i64 0, i64 {abi.TAIL_SENTINEL}}}")
        self.block(fail)  # the program continues after a failed tail call; r0 unchanged
        self.e(f"br label %{join}")
        self.block(join)
        self.cur = saved
        self.ptrs = {}
        self.forget(0)
