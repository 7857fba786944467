"""The reference interpreter: BPF bytecode compiled once to Python source, then run.

Each function (the entry and every BPF-to-BPF call target) becomes one Python function
whose registers are locals. Basic blocks are dispatched by a binary tree on the block
number inside a ``while`` loop; a block that branches back to itself becomes an inner
loop. Nothing is decoded while the program runs. Semantics follow RFC 9669: unsigned
64-bit registers, 32-bit results zero-extended, shifts masked, division by zero gives 0,
modulo by zero leaves the dividend, ``INT_MIN / -1`` wraps.

Every memory access goes through the run's :class:`~bpfkit.vm.memory.AddressSpace`,
except stack accesses at a constant offset of ``r10`` inside the current frame, which
use the stack buffer directly. They rest on r10 being the true frame pointer: no
instruction may write r10 (refused at load by :func:`~bpfkit.isa.loader.runnable_slots`),
each function checks on entry that its frame lies inside the stack region, and a call
deeper than ``MAX_CALL_FRAMES`` faults.
"""

from __future__ import annotations

import bisect
import functools
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import NotSupported, RuntimeFault
from ..isa import opcodes as op
from ..isa.instruction import Instruction
from ..isa.loader import runnable_slots
from .env import COUNTING_HELPERS, STACK_REGION_SIZE, Env
from .memory import READ, WRITE, Region

M = (1 << 64) - 1
M32 = 0xFFFFFFFF
SB = 1 << 63
SB32 = 1 << 31
DEFAULT_BUDGET = 1_000_000
#: functions with more instructions than this are compiled in segments (see
#: ``_FunctionCompiler.segmented_source``)
SEGMENT_INSNS = 2048
_REGS = "r0, r1, r2, r3, r4, r5, r6, r7, r8, r9"

_UNPACK = {s: struct.Struct(f).unpack_from for s, f in ((1, "<B"), (2, "<H"), (4, "<I"), (8, "<Q"))}
_UNPACK_S = {s: struct.Struct(f).unpack_from for s, f in ((1, "<b"), (2, "<h"), (4, "<i"))}
_PACK = {s: struct.Struct(f).pack_into for s, f in ((1, "<B"), (2, "<H"), (4, "<I"), (8, "<Q"))}
_SMASK = {1: 0xFF, 2: 0xFFFF, 4: M32, 8: M}


# ---- arithmetic with RFC 9669 semantics (used by generated code) -------------------
def sdiv64(a: int, b: int) -> int:
    if not b:
        return 0
    a = (a ^ SB) - SB
    b = (b ^ SB) - SB
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M


def smod64(a: int, b: int) -> int:
    if not b:
        return a
    a = (a ^ SB) - SB
    b = (b ^ SB) - SB
    r = abs(a) % abs(b)
    return (-r if a < 0 else r) & M


def sdiv32(a: int, b: int) -> int:
    b &= M32
    if not b:
        return 0
    a = ((a & M32) ^ SB32) - SB32
    b = (b ^ SB32) - SB32
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M32


def smod32(a: int, b: int) -> int:
    b &= M32
    if not b:
        return a & M32
    a = ((a & M32) ^ SB32) - SB32
    b = (b ^ SB32) - SB32
    r = abs(a) % abs(b)
    return (-r if a < 0 else r) & M32


def bswap16(x: int) -> int:
    return ((x & 0xFF) << 8) | ((x >> 8) & 0xFF)


def bswap32(x: int) -> int:
    return int.from_bytes((x & M32).to_bytes(4, "little"), "big")


def bswap64(x: int) -> int:
    return int.from_bytes(x.to_bytes(8, "little"), "big")


# ---- results ------------------------------------------------------------------------
@dataclass
class TraceStep:
    """One executed instruction and the registers it changed (name → new value)."""

    pc: int
    insn: Instruction
    changed: dict[str, int]


@dataclass
class RunResult:
    """What a run returns: ``r0``, executed instruction count, memory after, trace."""

    r0: int
    insns: int
    mem: bytes = b""
    duration_ns: int = 0
    trace: list[TraceStep] = field(default_factory=list)


# ---- the compiler -------------------------------------------------------------------
class CompiledProgram:
    """A program compiled to Python for one :class:`Env`; call :meth:`run` repeatedly."""

    def __init__(
        self,
        insns: Sequence[Instruction],
        env: Env,
        *,
        budget: int = DEFAULT_BUDGET,
        trace: Callable | None = None,
    ) -> None:
        self.insns = list(insns)
        self.env = env
        self.budget = budget
        self._trace = trace
        # slot -> instruction index (None for the second half of an lddw); refuses
        # malformed instructions and any write to r10 (the stack fast path rests on it)
        self.slot_insn: list[int | None] = runnable_slots(self.insns)
        self.nslots = len(self.slot_insn)
        if env.stack.size < STACK_REGION_SIZE:
            raise ValueError(f"the environment's stack is smaller than {STACK_REGION_SIZE} bytes")
        # A code region gives function pointers (lddw src=func) real, unique addresses.
        self.code = Region.alloc("code", self.nslots * 8, perms=0)
        self._funcs: dict[int, Callable] = {}
        self.sources: dict[int, str] = {}
        self._ns = self._namespace()
        self.entry = self.function(0)

    # -- namespace shared by all generated functions --
    def _namespace(self) -> dict:
        env = self.env
        space = env.space
        ns: dict = {
            "M": M,
            "M32": M32,
            "SB": SB,
            "SB32": SB32,
            "sdiv64": sdiv64,
            "smod64": smod64,
            "sdiv32": sdiv32,
            "smod32": smod32,
            "bswap16": bswap16,
            "bswap32": bswap32,
            "bswap64": bswap64,
            "STK": env.stack.mv,
            "SBASE": env.stack.base,
            "SSIZE": env.stack.size,
            "FAULT": self._fault,
            "HF": self._helper_fault,
            "RuntimeFault": RuntimeFault,
            "BF": self._budget_fault,
            "CALLX": self._callx,
            "AT": self._atomic,
            "CX": self._cmpxchg,
            "PKT": self._packet_load,
            "ENV": env,
            "TR": self._trace,
            "FN": self._funcs,
            "GETFN": self.function,
        }
        for s in (1, 2, 4, 8):
            ns[f"U{s}"] = _UNPACK[s]
            ns[f"P{s}"] = _PACK[s]
            ns[f"LDH{s}"] = _make_hot_load(space, s, _UNPACK[s], False)
            ns[f"STH{s}"] = _make_hot_store(space, s, _PACK[s])
        for s in (1, 2, 4):
            ns[f"S{s}"] = _UNPACK_S[s]
            ns[f"LDHS{s}"] = _make_hot_load(space, s, _UNPACK_S[s], True)
        return ns

    # -- runtime support called from generated code --
    def _insn_at(self, pc: int) -> str:
        if 0 <= pc < self.nslots and self.slot_insn[pc] is not None:
            return str(self.insns[self.slot_insn[pc]])
        return ""

    def _fault(self, msg: str, pc: int) -> RuntimeFault:
        return RuntimeFault(msg, pc=pc, insn=self._insn_at(pc))

    def _helper_fault(self, e: RuntimeFault, pc: int) -> RuntimeFault:
        """A fault a helper raised, named with the pc of its call (a fault that already
        has a pc — in a callback — keeps it)."""
        return with_pc(e, pc, self._insn_at(pc))

    def _budget_fault(self, n: int, pc: int) -> RuntimeFault:
        return RuntimeFault(
            f"instruction budget of {self.budget} exceeded", pc=pc, insn=self._insn_at(pc), insns=n
        )

    def _mem(self, addr: int, size: int, pc: int, perms: int) -> Region:
        r = self.env.space.find(addr, size)
        kind = "write" if perms & WRITE else "read"
        if r is None or (r.perms & perms) != perms:
            raise RuntimeFault(
                f"invalid {kind} of {_nb(size)} at address {addr:#x}",
                pc=pc,
                insn=self._insn_at(pc),
                address=addr,
            )
        return r

    def _atomic_target(self, addr: int, size: int, pc: int) -> tuple[Region, int, int]:
        """Region, offset and current value of an aligned read-write atomic operand."""
        if addr % size:
            raise RuntimeFault(
                f"misaligned atomic access of {_nb(size)} at address {addr:#x}",
                pc=pc,
                insn=self._insn_at(pc),
                address=addr,
            )
        r = self._mem(addr, size, pc, READ | WRITE)
        o = addr - r.base
        return r, o, _UNPACK[size](r.mv, o)[0]

    def _atomic(self, addr: int, size: int, aop: int, val: int, pc: int) -> int:
        r, o, old = self._atomic_target(addr, size, pc)
        base = aop & ~op.FETCH
        if aop == op.XCHG:
            new = val
        elif base == op.ATOMIC_ADD:
            new = old + val
        elif base == op.ATOMIC_OR:
            new = old | val
        elif base == op.ATOMIC_AND:
            new = old & val
        else:
            new = old ^ val
        _PACK[size](r.mv, o, new & _SMASK[size])
        return old

    def _cmpxchg(self, addr: int, size: int, expected: int, new: int, pc: int) -> int:
        r, o, old = self._atomic_target(addr, size, pc)
        mask = _SMASK[size]
        if old == expected & mask:
            _PACK[size](r.mv, o, new & mask)
        return old

    def _packet_load(self, off: int, size: int) -> int | None:
        """``ld_abs``/``ld_ind``: ``size`` big-endian bytes at packet offset ``off`` (an
        s32), None when the load fails (the program then returns 0). Negative offsets
        address the network (``SKF_NET_OFF + n``) or MAC header (``SKF_LL_OFF + n``),
        which may lie in front of the data."""
        pkt = self.env.packet
        off = (off & M32 ^ SB32) - SB32
        if pkt is None:
            return None
        if off >= 0:
            if off + size > pkt.size:
                return None
            return int.from_bytes(pkt.mv[off : off + size], "big")
        hdr = self.env.packet_headers
        if hdr is None:
            return None
        c = hdr.offset(off)
        if c is None or c < hdr.lo or c + size > pkt.size:
            return None
        u = c - hdr.lo
        return int.from_bytes(hdr.front.mv[u : u + size], "big")

    def _callx(self, target: int, r1, r2, r3, r4, r5, r10, depth, n, pc):
        code = self.code
        if code.base <= target < code.end and not (target - code.base) % 8:
            slot = (target - code.base) // 8
            if self.slot_insn[slot] is None:
                raise self._fault(f"callx into the middle of lddw (slot {slot})", pc)
            if depth >= op.MAX_CALL_FRAMES - 1:
                raise self._fault(f"call depth exceeds {op.MAX_CALL_FRAMES} frames", pc)
            return self.function(slot)(r1, r2, r3, r4, r5, r10 - op.STACK_SIZE, depth + 1, n)
        helper = self.env.helpers.get(target) if 0 <= target < (1 << 31) else None
        if helper is None:
            raise self._fault(f"callx to {target:#x}, which is neither a function nor a helper", pc)
        env = self.env
        env.insns = n
        try:
            r0 = helper.fn(env, r1, r2, r3, r4, r5) & M
        except RuntimeFault as e:
            raise self._helper_fault(e, pc) from None
        return r0, env.insns

    # -- compilation --
    def function(self, slot: int) -> Callable:
        """The compiled Python function for the BPF function starting at ``slot``."""
        fn = self._funcs.get(slot)
        if fn is None:
            fc = _FunctionCompiler(self, slot)
            src = fc.source()
            if not fc.segmented:
                self.sources[slot] = src
            ns = self._ns
            code = compile(src, f"<bpf function at slot {slot}>", "exec")
            exec(code, ns)  # noqa: S102 - generated from validated bytecode only
            fn = self._funcs[slot] = ns[f"f{slot}"]
        return fn

    def run(
        self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0, *, insns: int = 0
    ) -> tuple[int, int]:
        """Run from the entry: returns ``(r0, executed instructions)``. ``insns`` is the
        count the run starts from (instructions the run already executed before a tail
        call into this program): the budget bounds them together."""
        try:
            return self.entry(r1, r2, r3, r4, r5, self.env.frame_pointer, 0, insns)
        except RuntimeFault as e:
            if e.pc is None or e.insn:
                raise
            raise RuntimeFault(
                e.reason, pc=e.pc, insn=self._insn_at(e.pc), address=e.address, insns=e.insns
            ) from None


def with_pc(e: RuntimeFault, pc: int, insn: str = "") -> RuntimeFault:
    """``e`` naming ``pc`` and its instruction if it names none yet (helper faults)."""
    if e.pc is not None:
        return e
    out = RuntimeFault(e.reason, pc=pc, insn=insn or None, address=e.address, insns=e.insns)
    out.__cause__ = e.__cause__
    return out


def _plain_goto(lines: list[str]) -> str | None:
    """The block number if ``lines`` is just ``[n += K,] b = <number>``, else None."""
    if not 1 <= len(lines) <= 2 or (len(lines) == 2 and not lines[0].startswith("n += ")):
        return None
    last = lines[-1]
    return last[4:] if last.startswith("b = ") and last[4:].isdigit() else None


def _nb(size: int) -> str:
    return "1 byte" if size == 1 else f"{size} bytes"


def _hot_limit(r: Region) -> int:
    """The last address where any access of up to 8 bytes stays inside ``r``."""
    return r.end - 8


def _make_hot_load(space, size: int, unpack, signed: bool) -> Callable:
    """Checked load that also returns the region for the caller's hot-region locals."""

    def load(addr: int, pc: int):
        r = space.find(addr, size)
        if r is None or not r.perms & READ:
            why = "" if r is None else f" (region {r.name} is not readable)"
            raise RuntimeFault(
                f"invalid read of {_nb(size)} at address {addr:#x}{why}", pc=pc, address=addr
            )
        v = unpack(r.mv, addr - r.base)[0]
        return (v & M if signed else v), r.base, _hot_limit(r), r.mv

    return load


def _make_hot_store(space, size: int, pack) -> Callable:
    """Checked store that also returns the region for the caller's hot-region locals."""
    mask = _SMASK[size]

    def store(addr: int, value: int, pc: int):
        r = space.find(addr, size)
        if r is None or not r.perms & WRITE:
            ro = "read-only" if r is not None and r.perms & READ else "not accessible"
            why = "" if r is None else f" (region {r.name} is {ro})"
            raise RuntimeFault(
                f"invalid write of {_nb(size)} at address {addr:#x}{why}", pc=pc, address=addr
            )
        pack(r.mv, addr - r.base, value & mask)
        return r.base, _hot_limit(r), r.mv

    return store


# After a call the hot regions may be stale (a helper can unregister a map value):
# forget them so the next access is checked again, as the JIT does.
_FORGET_REGIONS = "hb = wb = 1; hl = wl = 0"

_JCMP = {
    op.JEQ: "==",
    op.JNE: "!=",
    op.JGT: ">",
    op.JGE: ">=",
    op.JLT: "<",
    op.JLE: "<=",
    op.JSGT: ">",
    op.JSGE: ">=",
    op.JSLT: "<",
    op.JSLE: "<=",
}
_SIGNED_J = (op.JSGT, op.JSGE, op.JSLT, op.JSLE)


class _FunctionCompiler:
    """Generates the Python source of one BPF function."""

    def __init__(self, prog: CompiledProgram, entry: int) -> None:
        self.p = prog
        self.entry = entry
        self.insns = prog.insns
        self.slot_insn = prog.slot_insn
        self.nslots = prog.nslots
        self.trace = prog._trace is not None
        self.fault_targets: dict[int, str] = {}
        self.segmented = False

    def insn(self, slot: int) -> Instruction:
        return self.insns[self.slot_insn[slot]]  # type: ignore[index]

    def valid_target(self, slot: int) -> bool:
        return 0 <= slot < self.nslots and self.slot_insn[slot] is not None

    def successors(self, slot: int) -> list[int]:
        insn = self.insn(slot)
        nxt = slot + insn.slots
        if insn.is_exit:
            return []
        if insn.is_jump:
            tgt = slot + 1 + insn.jump_offset
            if (insn.opcode & 0xF0) == op.JA:
                return [tgt]
            return [nxt, tgt]
        return [nxt]

    def discover(self) -> tuple[list[int], dict[int, list[int]]]:
        """Reachable block leaders (sorted) and each leader's instruction slots."""
        seen: set[int] = set()
        leaders = {self.entry}
        work = [self.entry]
        while work:
            s = work.pop()
            if s in seen or not self.valid_target(s):
                continue
            seen.add(s)
            insn = self.insn(s)
            succ = self.successors(s)
            if insn.is_jump or insn.is_exit:
                leaders.update(succ)
                if insn.is_jump and (insn.opcode & 0xF0) != op.JA:
                    leaders.add(s + insn.slots)
            work.extend(succ)
        leaders = {s for s in leaders if s in seen or not self.valid_target(s)}
        blocks: dict[int, list[int]] = {}
        for lead in sorted(leaders):
            if not self.valid_target(lead):
                blocks[lead] = []
                continue
            slots = []
            s = lead
            while True:
                slots.append(s)
                insn = self.insn(s)
                if insn.is_jump or insn.is_exit:
                    break
                s += insn.slots
                if s in leaders or not self.valid_target(s):
                    break
            blocks[lead] = slots
        return sorted(blocks), blocks

    # Inlining limits: a block reached only by forward edges is emitted inside each
    # predecessor (no dispatch), within a code-size budget and a nesting depth.
    MAX_INLINE_DEPTH = 24

    def source(self) -> str:
        leaders, blocks = self.discover()
        self.blocks = blocks
        # Loop headers: targets of backward edges. Every cycle passes through one, so the
        # budget check at dispatch entries bounds every loop.
        entries = {self.entry}
        for slots in blocks.values():
            if slots:
                last = slots[-1]
                li = self.insn(last)
                if li.is_jump:
                    tgt = last + 1 + li.jump_offset
                    if tgt <= last and tgt in blocks:
                        entries.add(tgt)
        self.entries = entries
        # the budget is checked at these (and at exits) only, as the JIT does: blocks
        # that become dispatch entries for other reasons (inlining limits, segments)
        # add no check, so both engines stop an over-budget run at the same instruction
        self.heads = frozenset(entries)
        total = sum(len(v) for v in blocks.values())
        self.segmented = total > SEGMENT_INSNS
        if self.segmented:
            return self.segmented_source()
        self.inline_budget = 2 * total + 128
        self.emitted = 0
        self.ids: dict[int, int] = {}
        bodies: dict[int, list[str]] = {}
        todo = [self.entry]
        while todo:
            lead = todo.pop()
            if lead in bodies:
                continue
            self.pending_entries: list[int] = []
            bodies[lead] = self.entry_block(lead)
            todo.extend(self.pending_entries)
        order = sorted(bodies, key=lambda x: self.ids.setdefault(x, len(self.ids)))
        lines = [
            f"def f{self.entry}(r1, r2, r3, r4, r5, r10, depth, n):",
            "    r0 = r6 = r7 = r8 = r9 = 0",
            "    fo = r10 - SBASE",
            # the frame [r10 - 512, r10) must lie in the stack region (the fast path's
            # premise; holds by construction: r10 is never written, calls are bounded)
            f"    if not {op.STACK_SIZE} <= fo <= SSIZE: "
            f"raise FAULT('frame pointer %#x is outside the stack' % r10, {self.entry})",
            "    hb = wb = 1",
            "    hl = wl = 0",
            "    hm = wm = None",
            f"    b = {self.block_ref(self.entry)}",
            "    while True:",
        ]
        lines.extend(self.dispatch([bodies[x] for x in order], 0, len(order), 2))
        return "\n".join(lines) + "\n"

    # -- large functions: segments compiled when first entered --
    def segmented_source(self) -> str:
        """The driver of a large function: its blocks are split into segments of about
        ``SEGMENT_INSNS`` instructions, each a Python function compiled (without block
        inlining) the first time control enters it. Memory stays in proportion to the
        code that runs; one ``compile`` of a whole large function takes tens of KB per
        instruction."""
        order = sorted(self.blocks)
        self.order = order
        self.ids = {lead: i for i, lead in enumerate(order)}
        self.inline_budget = self.emitted = 0
        starts, acc = [0], 0
        for i, lead in enumerate(order):
            acc += max(1, len(self.blocks[lead]))
            if acc >= SEGMENT_INSNS and i + 1 < len(order):
                starts.append(i + 1)
                acc = 0
        self.seg_starts = starts
        self.seg_fns: list[Callable | None] = [None] * len(starts)
        name = f"SEG{self.entry}"
        self.p._ns[name] = self.segment
        return (
            "\n".join(
                [
                    f"def f{self.entry}(r1, r2, r3, r4, r5, r10, depth, n):",
                    "    r0 = r6 = r7 = r8 = r9 = 0",
                    f"    if not {op.STACK_SIZE} <= r10 - SBASE <= SSIZE: "
                    f"raise FAULT('frame pointer %#x is outside the stack' % r10, {self.entry})",
                    f"    b = {self.ids[self.entry]}",
                    "    while b >= 0:",
                    f"        b, {_REGS}, n = {name}(b)({_REGS}, r10, depth, n, b)",
                    "    return r0, n",
                ]
            )
            + "\n"
        )

    def segment(self, b: int) -> Callable:
        """The compiled segment holding block ``b`` (compiled now if need be)."""
        k = bisect.bisect_right(self.seg_starts, b) - 1
        fn = self.seg_fns[k]
        if fn is None:
            lo = self.seg_starts[k]
            hi = self.seg_starts[k + 1] if k + 1 < len(self.seg_starts) else len(self.order)
            self.pending_entries = []
            bodies = {i: self.entry_block(self.order[i]) for i in range(lo, hi)}
            lines = [
                f"def f{self.entry}_s{k}({_REGS}, r10, depth, n, b):",
                "    fo = r10 - SBASE",
                "    hb = wb = 1",
                "    hl = wl = 0",
                "    hm = wm = None",
                "    while True:",
                f"        if not {lo} <= b < {hi}: return b, {_REGS}, n",
            ]
            lines.extend(self.dispatch(bodies, lo, hi, 2))
            code = compile("\n".join(lines) + "\n", f"<bpf function at slot {self.entry}>", "exec")
            ns = self.p._ns
            exec(code, ns)  # noqa: S102 - generated from validated bytecode only
            fn = self.seg_fns[k] = ns.pop(f"f{self.entry}_s{k}")
        return fn

    def exit_code(self, r0: str) -> str:
        """The statement that returns from the function with ``r0``."""
        if self.segmented:
            return f"return -1, {r0}, {_REGS[4:]}, n"
        return f"return {r0}, n"

    def block_ref(self, lead: int) -> int:
        return self.ids.setdefault(lead, len(self.ids))

    def dispatch(self, bodies, lo: int, hi: int, ind: int) -> list[str]:
        pad = "    " * ind
        if hi - lo == 1:
            return [pad + line for line in bodies[lo]]
        if hi - lo == 2:
            return (
                [f"{pad}if b == {lo}:"]
                + self.dispatch(bodies, lo, lo + 1, ind + 1)
                + [f"{pad}else:"]
                + self.dispatch(bodies, lo + 1, hi, ind + 1)
            )
        mid = (lo + hi) // 2
        return (
            [f"{pad}if b < {mid}:"]
            + self.dispatch(bodies, lo, mid, ind + 1)
            + [f"{pad}else:"]
            + self.dispatch(bodies, mid, hi, ind + 1)
        )

    @staticmethod
    def _count(pending: int) -> list[str]:
        return [f"n += {pending}"] if pending else []

    def transfer(self, target: int, pc: int, pending: int, depth: int) -> list[str]:
        """Code that continues at slot ``target``: inlined, or through the dispatcher."""
        if not self.valid_target(target):
            what = "into the middle of lddw" if 0 <= target < self.nslots else "out of the program"
            return [f"raise FAULT('jump to slot {target} goes {what}', {pc})"]
        size = len(self.blocks[target])
        if (
            target not in self.entries
            and depth < self.MAX_INLINE_DEPTH
            and self.emitted + size <= self.inline_budget
        ):
            return self.block_body(target, pending, depth + 1)
        if target not in self.entries:
            self.entries.add(target)
        self.pending_entries.append(target)
        return self._count(pending) + [f"b = {self.block_ref(target)}"]

    def entry_block(self, lead: int) -> list[str]:
        """A dispatch entry: budget check at a loop header, then the block (a self loop
        becomes a while)."""
        slots = self.blocks[lead]
        check = [f"if n > {self.p.budget}: raise BF(n, {lead})"] if lead in self.heads else []
        if not slots:
            return [f"raise FAULT('invalid jump target {lead}', {lead})"]
        last = slots[-1]
        li = self.insn(last)
        if li.is_jump and last + 1 + li.jump_offset == lead:
            # self loop: an inner while without dispatch
            self.emitted += len(slots)
            body = list(check)
            for s in slots[:-1]:
                body.extend(self.insn_code(s))
            body.extend(self.trace_line(last))
            body.append(f"n += {len(slots)}")
            if (li.opcode & 0xF0) == op.JA:
                return ["while True:"] + ["    " + x for x in body]
            loop = ["while True:"] + ["    " + x for x in body]
            loop.append(f"    if not ({self.cond(li)}): break")
            return loop + self.transfer(last + 1, last, 0, 0)
        return check + self.block_body(lead, 0, 0)

    def block_body(self, lead: int, pending: int, depth: int) -> list[str]:
        """The block at ``lead`` with ``pending`` uncounted instructions before it."""
        slots = self.blocks[lead]
        if not slots:
            return [f"raise FAULT('invalid jump target {lead}', {lead})"]
        self.emitted += len(slots)
        last = slots[-1]
        li = self.insn(last)
        body: list[str] = []
        term = li.is_jump or li.is_exit
        for s in slots[:-1] if term else slots:
            pending += 1
            insn = self.insn(s)
            # Calls need the exact count (callees count on); a legacy packet load may
            # end the program early, so it needs it too.
            if insn.is_call or insn.is_callx or insn.cls == op.LD and not insn.is_lddw:
                body.extend(self._count(pending))
                pending = 0
            body.extend(self.insn_code(s))
        if li.is_exit:
            pending += 1
            body.extend(self.trace_line(last))
            body.extend(self._count(pending))
            body.append(f"if n > {self.p.budget}: raise BF(n, {last})")
            body.append(self.exit_code("r0"))
            return body
        if not term:
            nxt = last + li.slots
            if nxt >= self.nslots:
                body.append(f"raise FAULT('execution fell off the end of the program', {last})")
                return body
            return body + self.transfer(nxt, last, pending, depth)
        pending += 1
        body.extend(self.trace_line(last))
        tgt = last + 1 + li.jump_offset
        if (li.opcode & 0xF0) == op.JA:
            return body + self.transfer(tgt, last, pending, depth)
        cond = self.cond(li)
        t = self.transfer(tgt, last, pending, depth)
        f = self.transfer(last + 1, last, pending, depth)
        tb, fb = _plain_goto(t), _plain_goto(f)
        if tb is not None and fb is not None and t[:-1] == f[:-1]:
            return body + t[:-1] + [f"b = {tb} if {cond} else {fb}"]
        return (
            body + [f"if {cond}:"] + ["    " + x for x in t] + ["else:"] + ["    " + x for x in f]
        )

    def trace_line(self, slot: int) -> list[str]:
        if not self.trace:
            return []
        return [f"TR({slot}, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10)"]

    def cond(self, insn: Instruction) -> str:
        jop = insn.opcode & 0xF0
        is32 = insn.cls == op.JMP32
        d = f"(r{insn.dst} & M32)" if is32 else f"r{insn.dst}"
        if insn.opcode & op.X:
            s = f"(r{insn.src} & M32)" if is32 else f"r{insn.src}"
            sconst = None
        else:
            sconst = insn.imm & (M32 if is32 else M)
            s = str(sconst)
        if jop == op.JSET:
            return f"r{insn.dst} & {s}" if not is32 else f"r{insn.dst} & {s} & M32"
        cmp = _JCMP[jop]
        if jop in _SIGNED_J:
            bias = "SB32" if is32 else "SB"
            if sconst is not None:
                s = str(sconst ^ (SB32 if is32 else SB))
            else:
                s = f"({s} ^ {bias})"
            return f"({d} ^ {bias}) {cmp} {s}"
        return f"{d} {cmp} {s}"

    # -- one instruction --
    def insn_code(self, slot: int) -> list[str]:
        insn = self.insn(slot)
        c = insn.cls
        if c in (op.ALU, op.ALU64):
            out = self.alu(insn)
        elif c == op.LDX:
            out = self.ldx(insn, slot)
        elif c in (op.ST, op.STX):
            out = self.store(insn, slot)
        elif c == op.LD:
            out = self.ld(insn, slot)
        elif insn.is_call or insn.is_callx:
            out = self.call(insn, slot)
        else:  # pragma: no cover - jumps/exits are terminators
            raise AssertionError(insn)
        return out + self.trace_line(slot)

    def alu(self, insn: Instruction) -> list[str]:
        is64 = insn.cls == op.ALU64
        aop = insn.opcode & 0xF0
        d = f"r{insn.dst}"
        x = bool(insn.opcode & op.X)
        mask = "M" if is64 else "M32"
        if x:
            s = f"r{insn.src}"
            sv = None
        else:
            sv = insn.imm & (M if is64 else M32)
            s = str(sv)
        if aop == op.END:
            w = insn.imm
            if insn.cls == op.ALU and not x:  # to little-endian: a truncation on this host
                return [f"{d} &= {0xFFFF if w == 16 else M32}"] if w < 64 else []
            return [f"{d} = bswap{w}({d})"]
        if aop == op.NEG:
            return [f"{d} = -{d} & {mask}"]
        if aop == op.MOV:
            if x and insn.off:
                bits = insn.off
                sm, sb = (1 << bits) - 1, 1 << (bits - 1)
                return [f"{d} = ((r{insn.src} & {sm:#x}) ^ {sb:#x}) - {sb:#x} & {mask}"]
            if x:
                return [f"{d} = {s}" if is64 else f"{d} = {s} & M32"]
            return [f"{d} = {s}"]
        if aop in (op.ADD, op.SUB, op.MUL):
            sym = {op.ADD: "+", op.SUB: "-", op.MUL: "*"}[aop]
            return [f"{d} = ({d} {sym} {s}) & {mask}"]
        if aop in (op.OR, op.AND, op.XOR):
            sym = {op.OR: "|", op.AND: "&", op.XOR: "^"}[aop]
            return [f"{d} = {d} {sym} {s}" if is64 else f"{d} = ({d} {sym} {s}) & M32"]
        width = 64 if is64 else 32
        if aop in (op.LSH, op.RSH, op.ARSH):
            sh = str(sv & (width - 1)) if sv is not None else f"({s} & {width - 1})"
            if aop == op.LSH:
                return [f"{d} = ({d} << {sh}) & {mask}"]
            if aop == op.RSH:
                return [f"{d} = {d} >> {sh}" if is64 else f"{d} = ({d} & M32) >> {sh}"]
            if is64:
                return [f"{d} = (({d} ^ SB) - SB >> {sh}) & M"]
            return [f"{d} = ((({d} & M32) ^ SB32) - SB32 >> {sh}) & M32"]
        signed = insn.off == 1
        if aop == op.DIV:
            if signed:
                return [f"{d} = sdiv{width}({d}, {s})"]
            if is64:
                if sv is not None:
                    return [f"{d} = {d} // {sv}" if sv else f"{d} = 0"]
                return [f"{d} = {d} // {s} if {s} else 0"]
            if sv is not None:
                return [f"{d} = ({d} & M32) // {sv}" if sv else f"{d} = 0"]
            return [f"{d} = ({d} & M32) // ({s} & M32) if {s} & M32 else 0"]
        if aop == op.MOD:
            if signed:
                return [f"{d} = smod{width}({d}, {s})"]
            if is64:
                if sv is not None:
                    return [f"{d} = {d} % {sv}"] if sv else []
                return [f"if {s}: {d} = {d} % {s}"]
            if sv is not None:
                return [f"{d} = ({d} & M32) % {sv}" if sv else f"{d} &= M32"]
            return [f"{d} = ({d} & M32) % ({s} & M32) if {s} & M32 else {d} & M32"]
        raise AssertionError(insn)  # pragma: no cover

    def _stack_fast(self, base_reg: int, off: int, size: int) -> bool:
        return base_reg == 10 and -op.STACK_SIZE <= off <= -size

    def ldx(self, insn: Instruction, slot: int) -> list[str]:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        signed = (insn.opcode & 0xE0) == op.MEMSX
        d = f"r{insn.dst}"
        if self._stack_fast(insn.src, insn.off, size):
            if signed:
                return [f"{d} = S{size}(STK, fo + {insn.off})[0] & M"]
            return [f"{d} = U{size}(STK, fo + {insn.off})[0]"]
        # Hot-region fast path: the last region this function read from, kept in locals
        # (hb = base, hl = end - 8, hm = its bytes); anything else takes the checked path.
        a = f"a = (r{insn.src} + {insn.off}) & M" if insn.off else f"a = r{insn.src}"
        if size == 1 and not signed:
            fast = f"{d} = hm[a - hb]"
        elif signed:
            fast = f"{d} = S{size}(hm, a - hb)[0] & M"
        else:
            fast = f"{d} = U{size}(hm, a - hb)[0]"
        fn = f"LDHS{size}" if signed else f"LDH{size}"
        return [a, f"if hb <= a <= hl: {fast}", f"else: {d}, hb, hl, hm = {fn}(a, {slot})"]

    def store(self, insn: Instruction, slot: int) -> list[str]:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        addr = f"(r{insn.dst} + {insn.off}) & M"
        if insn.cls == op.STX and (insn.opcode & 0xE0) == op.ATOMIC:
            aop = insn.imm
            val = f"r{insn.src}"
            if aop == op.CMPXCHG:
                return [f"r0 = CX({addr}, {size}, r0, {val}, {slot})"]
            if aop & op.FETCH:
                return [f"r{insn.src} = AT({addr}, {size}, {aop}, {val}, {slot})"]
            return [f"AT({addr}, {size}, {aop}, {val}, {slot})"]
        if insn.cls == op.ST:
            val = str(insn.imm & _SMASK[size])
        else:
            val = f"r{insn.src}" if size == 8 else f"r{insn.src} & {_SMASK[size]:#x}"
        if self._stack_fast(insn.dst, insn.off, size):
            return [f"P{size}(STK, fo + {insn.off}, {val})"]
        a = f"a = (r{insn.dst} + {insn.off}) & M" if insn.off else f"a = r{insn.dst}"
        fast = f"wm[a - wb] = {val}" if size == 1 else f"P{size}(wm, a - wb, {val})"
        return [a, f"if wb <= a <= wl: {fast}", f"else: wb, wl, wm = STH{size}(a, {val}, {slot})"]

    def ld(self, insn: Instruction, slot: int) -> list[str]:
        d = f"r{insn.dst}"
        if insn.is_lddw:
            if insn.src == 0:
                return [f"{d} = {insn.imm & M}"]
            if insn.src == op.PSEUDO_FUNC:
                tgt = slot + 1 + ((insn.imm_lo ^ SB32) - SB32)
                if not self.valid_target(tgt):
                    return [f"raise FAULT('lddw function pointer to invalid slot {tgt}', {slot})"]
                return [f"{d} = {self.p.code.base + 8 * tgt}"]
            resolve = self.p.env.resolve_lddw
            if resolve is None:
                raise NotSupported(
                    f"lddw at slot {slot} references a {op.LDDW_PSEUDOS[insn.src]} "
                    "(maps and BTF ids need an object loaded with bpfkit.load)"
                )
            return [f"{d} = {resolve(insn, slot) & M}"]
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        if (insn.opcode & 0xE0) == op.ABS:
            off = str(insn.imm)
        else:
            off = f"r{insn.src} + {insn.imm}"
        # a failed load ends the function with 0 (as an exit: past the budget, a fault)
        return [
            f"v = PKT({off}, {size})",
            "if v is None:",
            f"    if n > {self.p.budget}: raise BF(n, {slot})",
            f"    {self.exit_code('0')}",
            "r0 = v",
        ]

    def call(self, insn: Instruction, slot: int) -> list[str]:
        args = "r1, r2, r3, r4, r5"
        if insn.is_callx:
            return [f"r0, n = CALLX(r{insn.dst}, {args}, r10, depth, n, {slot})", _FORGET_REGIONS]
        if insn.is_helper_call:
            h = self.p.env.helpers.get(insn.imm)
            if h is None:
                from ..uapi.enums import HELPER_NAMES

                known = HELPER_NAMES.get(insn.imm)
                msg = (
                    f"call to helper bpf_{known} ({insn.imm}), which the VM does not perform"
                    if known
                    else f"call to unknown helper {insn.imm}"
                )
                return [f"raise FAULT({msg!r}, {slot})"]
            name = f"H{insn.imm}"
            if name not in self.p._ns:
                self.p._ns[name] = functools.partial(h.fn, self.p.env)
            call = [
                "try:",
                f"    r0 = {name}({args}) & M",
                f"except RuntimeFault as e: raise HF(e, {slot}) from None",
                _FORGET_REGIONS,
            ]
            if insn.imm in COUNTING_HELPERS:  # callbacks count on from this count
                return ["ENV.insns = n", *call, "n = ENV.insns"]
            return call
        if insn.is_local_call:
            tgt = slot + 1 + insn.imm
            if not self.valid_target(tgt):
                return [f"raise FAULT('call to invalid slot {tgt}', {slot})"]
            return [
                f"if depth >= {op.MAX_CALL_FRAMES - 1}: "
                f"raise FAULT('call depth exceeds {op.MAX_CALL_FRAMES} frames', {slot})",
                f"r0, n = (FN.get({tgt}) or GETFN({tgt}))({args}, r10 - {op.STACK_SIZE}, "
                "depth + 1, n)",
                _FORGET_REGIONS,
            ]
        return [
            f"raise FAULT('kernel function calls (kfuncs) are not available in the VM', {slot})"
        ]


# ---- the simple front door ----------------------------------------------------------
class _Tracer:
    NAMES = tuple(f"r{i}" for i in range(11))

    def __init__(self, prog: list[Instruction], limit: int = 100_000) -> None:
        self.steps: list[TraceStep] = []
        self.prev: tuple[int, ...] | None = None
        self.prog = prog
        self.limit = limit
        self.slot_insn: list[int | None] = []

    def __call__(self, pc: int, *regs: int) -> None:
        if self.prev is None:
            changed = {}
        else:
            changed = {self.NAMES[i]: v for i, v in enumerate(regs) if v != self.prev[i]}
        self.prev = regs
        if len(self.steps) < self.limit:
            self.steps.append(TraceStep(pc, self.prog[self.slot_insn[pc]], changed))


def run_program(
    insns: Sequence[Instruction],
    mem: bytes | bytearray = b"",
    *,
    budget: int = DEFAULT_BUDGET,
    trace: bool = False,
    env: Env | None = None,
    packet: bool = True,
) -> RunResult:
    """Run a program the way the conformance vectors expect: r1 = memory, r2 = its length.

    ``mem`` is copied into a writable region; the result carries it back after the run.
    With ``packet`` the same memory is what legacy ``ld_abs``/``ld_ind`` loads read.
    """
    env = env or Env()
    tracer = _Tracer(list(insns)) if trace else None
    prog = CompiledProgram(insns, env, budget=budget, trace=tracer)
    region = env.space.add(Region.alloc("input", len(mem), init=bytes(mem)))
    r1 = region.base if len(mem) else 0
    if tracer is not None:
        tracer.slot_insn = prog.slot_insn
        tracer.prev = (0, r1, len(mem), 0, 0, 0, 0, 0, 0, 0, env.frame_pointer)
    if packet:
        env.packet = region
    env.reset_stack()
    try:
        t0 = time.perf_counter_ns()
        r0, n = prog.run(r1, len(mem))
        dt = time.perf_counter_ns() - t0
    except RecursionError:
        raise RuntimeFault("call stack exhausted") from None
    finally:
        env.space.remove(region)
        if packet:
            env.packet = None
    return RunResult(r0 & M, n, region.bytes(), dt, tracer.steps if tracer else [])


def compile_program(
    insns: Sequence[Instruction], env: Env | None = None, *, budget: int = DEFAULT_BUDGET
) -> CompiledProgram:
    """Compile once for repeated runs against ``env``."""
    return CompiledProgram(insns, env or Env(), budget=budget)
