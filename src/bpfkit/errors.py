"""The error hierarchy: every failure a user can cause is a ``BpfError`` they can act on."""

from __future__ import annotations

import errno as _errno
import os
import re


class BpfError(Exception):
    """Root of every error bpfkit raises on purpose."""


class DecodeError(BpfError):
    """Bytecode that is not a valid instruction stream; names the byte offset."""

    def __init__(self, message: str, offset: int | None = None):
        self.offset = offset
        where = f" at byte offset {offset}" if offset is not None else ""
        super().__init__(f"{message}{where}")


class EncodeError(BpfError):
    """An instruction whose fields cannot be encoded (out of range, unresolved label)."""


class AsmError(BpfError):
    """Assembler syntax or semantic error with a line and column."""

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        text: str | None = None,
    ):
        self.msg = message
        self.line = line
        self.column = column
        self.text = text
        where = ""
        if line is not None:
            where = f"line {line}" + (f", column {column}" if column is not None else "") + ": "
        super().__init__(f"{where}{message}")


class ElfError(BpfError):
    """A malformed or unsupported ELF object."""


class BtfError(BpfError):
    """Malformed or unsupported BTF."""


_INSN_LINE = re.compile(r"^\d+: \(")


class VerifierError(BpfError):
    """A program rejected by a verifier (ours or the kernel's); keeps the full log."""

    def __init__(
        self,
        message: str,
        insn: int | None = None,
        log: str = "",
        line: dict | None = None,
        state: str | None = None,
    ):
        self.reason = message
        self.insn = insn
        self.log = log
        self.line = line
        self.state = state
        #: the program rejected, once a loader names it (:meth:`for_program`)
        self.program: str | None = None
        where = f"insn {insn}: " if insn is not None else ""
        super().__init__(f"{where}{message}")

    def for_program(self, name: str) -> VerifierError:
        """Name the rejected program (in ``program`` and the message); returns ``self``."""
        self.program = name
        head = f"program {name}: "
        msg = str(self)
        if not msg.startswith(head):
            self.args = (head + msg,)
        return self

    def log_tail(self) -> list[str]:
        """The log lines that explain the rejection: after the last instruction the
        verifier printed, up to its closing statistics (the whole block of messages)."""
        lines = [ln for ln in (self.log or "").splitlines() if ln.strip()]
        end = len(lines)
        while end and (lines[end - 1].startswith(("processed ", "verification time"))):
            end -= 1
        start = end
        while start and not _INSN_LINE.match(lines[start - 1]):
            start -= 1
        tail = lines[max(start - 1, 0) : end] if start else lines[max(end - 3, 0) : end]
        return tail or ([self.reason] if self.reason else [])


class RuntimeFault(BpfError):
    """A program stopped at run time: bad memory access, bad jump, budget exceeded."""

    def __init__(
        self,
        message: str,
        pc: int | None = None,
        insn: str | None = None,
        address: int | None = None,
        insns: int | None = None,
    ):
        self.reason = message
        self.pc = pc
        self.insn = insn
        self.address = address
        self.insns = insns
        parts = [message]
        if pc is not None:
            parts.append(f"at pc {pc}")
        if insn:
            parts.append(f"({insn})")
        super().__init__(" ".join(parts))


class NotSupported(BpfError):
    """A feature bpfkit (or this kernel) does not provide, and why."""


class KernelError(BpfError, OSError):
    """A failed ``bpf()`` (or related) system call: errno, the command, and a hint."""

    def __init__(self, err: int, command: str, hint: str = ""):
        self.command = command
        self.hint = hint
        msg = f"{command}: {os.strerror(err)} ({_errno.errorcode.get(err, err)})"
        if hint:
            msg += f"; {hint}"
        OSError.__init__(self, err, msg)

    def __str__(self) -> str:
        return self.strerror or ""


class SourceError(BpfError):
    """Bad text in one of bpfkit's languages, with its 1-based line and column.

    ``source`` keeps the offending line so the message can show it with a caret.
    """

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
        origin: str | None = None,
    ):
        self.msg = message
        self.line = line
        self.column = column
        self.source = source
        self.origin = origin
        where = origin or ""
        if line is not None:
            where += f"{':' if where else ''}{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}" if where else message)

    def caret(self) -> str:
        """The offending line with a ``^`` under the column ("" when unknown)."""
        if self.source is None or self.column is None or not self.source.strip():
            return ""  # nothing to point at (an empty line, the end of the input)
        # control characters would move the terminal's cursor: shown as '?', one column each
        line = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in self.source)
        return f"{line}\n{' ' * max(0, self.column - 1)}^"


class FilterSyntaxError(SourceError):
    """A pcap-filter expression or classic listing that does not parse or compile."""


class ClassicError(BpfError):
    """A classic (cBPF) program the kernel's checker would refuse; names insn and rule."""

    def __init__(self, message: str, insn: int | None = None, rule: str | None = None):
        self.reason = message
        self.insn = insn
        self.rule = rule
        super().__init__(f"insn {insn}: {message}" if insn is not None else message)


class CaptureError(BpfError):
    """A capture file (pcap, pcapng) that is truncated, corrupt or of an unknown kind."""


class ProfileError(BpfError):
    """A seccomp profile that is malformed; the message names the field."""


class ScriptError(SourceError):
    """A bpftrace-language script that does not parse or type-check."""
