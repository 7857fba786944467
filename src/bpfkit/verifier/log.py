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
            off = -(spi + 1) * 8
            if slot.is_spill() and slot.spill_size() == 8:
                parts.append(f"fp{off}={fmt_reg(slot.spilled)}")
            else:
                parts.append(f"fp{off}={slot.types}")
    if st.refs:
        parts.append("refs=" + ",".join(str(r.id) for r in st.refs))
    return " ".join(parts)


class Log:
    """Collects log lines at ``level`` (0: only the summary and errors)."""

    def __init__(self, level: int = 0) -> None:
        self.level = level
        self.lines: list[str] = []
        self._pending: str | None = None

    def insn(self, pc: int, insn: Instruction, st: State) -> None:
        """Before executing ``insn`` at ``pc``."""
        if self.level < 1:
            return
        self._flush()
        self._pending = f"{pc}: ({insn.opcode:02x}) {_disasm(insn)}"

    def after(self, pc: int, st: State) -> None:
        """After an instruction (level 2 adds the state)."""
        if self._pending is None:
            return
        if self.level >= 2:
            self._pending = f"{self._pending:<37} ; {fmt_state(st, frame_only=True)}"
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
