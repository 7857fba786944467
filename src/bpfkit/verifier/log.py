"""The verifier log in the kernel's format (``log_level`` 1: instructions and branch
states; 2: the state after every instruction), plus state formatting for errors."""

from __future__ import annotations

from ..isa.instruction import Instruction
from .state import NOT_INIT, ST_INVALID, State, fmt_reg


def _disasm(insn: Instruction) -> str:
    try:
        from ..isa.disasm import format_insn

        return format_insn(insn, "kernel")  # the text the kernel's log prints
    except Exception:  # noqa: BLE001 - the log must never fail
        return insn.raw_repr()


def fmt_slot(slot) -> str:
    """A stack slot as the kernel prints it: a spilled register (after the kinds of the
    bytes a narrow spill leaves), or one kind character per byte."""
    if slot.is_spill() and slot.spilled is not None:
        i = slot.types.find("r")
        return slot.types[: max(i, 0)] + fmt_reg(slot.spilled)
    return slot.types


def fmt_state(st: State, frame_only: bool = False) -> str:
    """Registers and stack of every frame, like ``R1=ctx() R10=fp0 fp-8=mmmmmmmm``."""
    parts = []
    frames = st.frames[-1:] if frame_only else st.frames
    for f in frames:
        if len(st.frames) > 1 and not frame_only:
            parts.append(f"frame{f.frameno}:")
        for i, r in enumerate(f.regs):
            if r.type != NOT_INIT:
                parts.append(f"R{i}={fmt_reg(r)}")
        for spi in sorted(f.stack):
            slot = f.stack[spi]
            if slot.types == ST_INVALID * 8:
                continue
            parts.append(f"fp{-(spi + 1) * 8}={fmt_slot(slot)}")
    if st.refs:
        parts.append("refs=" + ",".join(str(r.id) for r in st.refs))
    return " ".join(parts)


def _scratched(insn: Instruction, st: State) -> tuple[tuple[int, ...], set[int]] | None:
    """The registers and stack slots (spi) an instruction touches — what the kernel's
    level-2 log prints after it — or None to print the whole frame (local calls)."""
    from ..isa import opcodes as op
    from .state import PTR_TO_STACK

    cls, code = insn.cls, insn.opcode
    regs: tuple[int, ...] = ()
    base = -1
    if cls in (op.ALU, op.ALU64):
        regs = (insn.dst, insn.src) if code & op.X else (insn.dst,)
    elif cls == op.LDX:
        regs, base = (insn.dst, insn.src), insn.src
    elif cls == op.ST:
        regs, base = (insn.dst,), insn.dst
    elif cls == op.STX:
        regs, base = (insn.dst, insn.src), insn.dst
        if (code & 0xE0) == op.ATOMIC and insn.imm == op.CMPXCHG:
            regs += (0,)
    elif cls == op.LD:
        regs = (insn.dst,) if insn.is_lddw else (0, 1, 2, 3, 4, 5)
    else:
        jop = code & 0xF0
        if jop == op.CALL:
            if insn.is_local_call:
                return None
            regs = (0, 1, 2, 3, 4, 5)
        elif jop in (op.JA, op.EXIT):
            return (), set()
        else:  # a conditional jump: printed only when both ways are possible
            regs = (insn.dst, insn.src) if code & op.X else (insn.dst,)
            return tuple(sorted(set(regs))), {-1}
    slots: set[int] = set()
    if base >= 0:
        r = st.cur.regs[base]
        if r.type == PTR_TO_STACK and r.frameno == st.cur.frameno and not r.var_off.mask:
            lo = r.off + r.var_off.value + insn.off
            size = op.SIZE_BYTES[code & 0x18]
            slots = {(-a - 1) // 8 for a in range(lo, lo + size) if a < 0}
    return tuple(sorted(set(regs))), slots


def _fmt_scratched(st: State, regs: tuple[int, ...], slots: set[int]) -> str:
    f = st.cur
    parts = [f"R{i}={fmt_reg(f.regs[i])}" for i in regs if f.regs[i].type != NOT_INIT]
    for spi in sorted(slots):
        slot = f.stack.get(spi)
        if slot is None or slot.types == ST_INVALID * 8:
            continue
        parts.append(f"fp{-(spi + 1) * 8}={fmt_slot(slot)}")
    return " ".join(parts)


def _align(text: str) -> str:
    """``text`` padded the way the kernel aligns the state after an instruction
    (``vlog_alignment``: the ``;`` lands on a multiple of 8 minus 2, at least column 38)."""
    n = len(text)
    col = (max(n + 5, 40) + 7) // 8 * 8 - 2
    return text + " " * (col - n)


class Log:
    """Collects log lines at ``level`` (0: only the summary and errors)."""

    def __init__(self, level: int = 0) -> None:
        self.level = level
        self.lines: list[str] = []
        self._pending: str | None = None
        self._scratch: tuple[tuple[int, ...], set[int]] | None = None
        #: the checker's stack of pending branches (a conditional jump that pushed one
        #: was not decided by the known values, and its refined registers are printed)
        self.branches: list | None = None
        self._depth = 0

    def insn(self, pc: int, insn: Instruction, st: State) -> None:
        """Before executing ``insn`` at ``pc``."""
        if self.level < 1:
            return
        self._flush()
        self._pending = f"{pc}: ({insn.opcode:02x}) {_disasm(insn)}"
        if self.level >= 2:
            self._scratch = _scratched(insn, st)
            self._depth = len(self.branches) if self.branches is not None else 0

    def after(self, pc: int, st: State) -> None:
        """After an instruction (level 2 adds what it touched, as the kernel prints it)."""
        if self._pending is None:
            return
        if self.level >= 2:
            sc = self._scratch
            if sc is not None and -1 in sc[1]:  # a conditional jump
                pushed = self.branches is not None and len(self.branches) > self._depth
                sc = (sc[0] if pushed else (), set())
            text = fmt_state(st, frame_only=True) if sc is None else _fmt_scratched(st, *sc)
            if text:
                self._pending = f"{_align(self._pending)}; {text}"
        self._flush()

    def _flush(self) -> None:
        if self._pending is not None:
            self.lines.append(self._pending)
            self._pending = None

    def state_line(self, pc: int, st: State) -> None:
        """The state at the start of a path."""
        if self.level >= 1:
            self._flush()
            self.lines.append(f"{pc}: {fmt_state(st)}")

    def branch(self, frm: int, to: int, st: State) -> None:
        """Resuming a queued branch."""
        if self.level >= 1:
            self._flush()
            self.lines.append(f"from {frm} to {to}: {fmt_state(st)}")

    def text_line(self, line: str) -> None:
        """A line of its own (``Validating f() func#1...``)."""
        if self.level >= 1:
            self._flush()
            self.lines.append(line)

    def pruned(self, pc: int) -> None:
        """The path was pruned at ``pc``."""
        if self.level >= 1:
            self._flush()
            self.lines.append(f"{pc}: safe")

    def error(self, kmsg: str, st: State | None) -> None:
        """The rejection message (always logged)."""
        self._flush()
        self.lines.extend(kmsg.splitlines())

    def text(self) -> str:
        """The whole log."""
        self._flush()
        return "\n".join(self.lines) + ("\n" if self.lines else "")
