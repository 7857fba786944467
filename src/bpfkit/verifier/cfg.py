"""Structural checks: decode validity, control-flow graph, subprograms, reachability.

Everything here is decided without abstract interpretation, as the kernel does before
``do_check``: invalid opcodes and reserved fields, ``lddw`` pseudo sources, jumps out
of range or into the middle of an ``lddw``, calls to invalid destinations, falling off
the end of a (sub)program, unreachable instructions, back-edges for unprivileged
programs, and the program size. Instruction indices are slot indices (an ``lddw``
occupies two), like the kernel's.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..isa import opcodes as op
from ..isa.instruction import Instruction, check

BPF_MAXINSNS = 4096
BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000
MAX_CALL_FRAMES = 8
MAY_GOTO = op.JMP | 0xE0  # BPF_JMP | BPF_JCOND (0xe5)


class Reject(Exception):
    """A rejection: plain-language reason, the kernel-style log message, and where."""

    def __init__(self, reason: str, kmsg: str, insn: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kmsg = kmsg
        self.insn = insn


@dataclass
class Program:
    """A program laid out by slot, with its subprograms and pruning points."""

    insns: list[Instruction]
    at: list[Instruction | None]  # by slot; None for the second slot of an lddw
    subprogs: list[int]  # sorted start slots; subprogs[0] == 0
    prune: set[int] = field(default_factory=set)
    callbacks: set[int] = field(default_factory=set)  # subprog starts used as callbacks
    calls: dict[int, list[int]] = field(default_factory=dict)  # subprog -> callees

    @property
    def nslots(self) -> int:
        """Length in slots."""
        return len(self.at)

    def subprog_of(self, slot: int) -> int:
        """Index of the subprogram containing ``slot``."""
        return bisect.bisect_right(self.subprogs, slot) - 1

    def subprog_end(self, idx: int) -> int:
        """First slot after subprogram ``idx``."""
        return self.subprogs[idx + 1] if idx + 1 < len(self.subprogs) else self.nslots


def _kernel_insn_msg(insn: Instruction, why: str) -> str:
    """The kernel's message for an invalid encoding ``isa.check`` found (its reserved-
    field checks in ``resolve_pseudo_ldimm64`` and ``do_check``)."""
    code = insn.opcode
    cls, mode, aop = code & 7, code & 0xE0, code & 0xF0
    m = re.match(r"invalid (?:destination|source) register r(\d+)", why)
    if m:
        return f"R{m.group(1)} is invalid"
    if why == "unknown opcode":
        if cls == op.LDX:
            return "BPF_LDX uses reserved fields"
        if cls == op.LD and mode not in (op.ABS, op.IND, op.IMM):
            return "invalid BPF_LD mode"
        return f"unknown opcode {code:02x}"
    if cls == op.LDX:
        return "BPF_LDX uses reserved fields"
    if cls == op.LD:
        if code == op.LDDW:
            return "invalid bpf_ld_imm64 insn"
        return "BPF_LD_[ABS|IND] uses reserved fields"
    if cls == op.ST:
        return "BPF_ST uses reserved fields"
    if cls == op.STX:
        if mode == op.ATOMIC:
            if why.startswith("unknown atomic"):
                return f"BPF_ATOMIC uses invalid atomic opcode {insn.imm & 0xFF:02x}"
            return "invalid atomic operand size"
        return "BPF_STX uses reserved fields"
    if cls in (op.ALU, op.ALU64):
        name = {op.NEG: "BPF_NEG", op.END: "BPF_END", op.MOV: "BPF_MOV"}.get(aop, "BPF_ALU")
        return f"{name} uses reserved fields"
    name = {op.JA: "BPF_JA", op.CALL: "BPF_CALL", op.EXIT: "BPF_EXIT"}.get(aop, "BPF_JMP/JMP32")
    return f"{name} uses reserved fields"


def _target(insn: Instruction, pc: int) -> int:
    return pc + 1 + insn.jump_offset


def build(
    insns: Sequence[Instruction], *, unpriv: bool = False, max_insns: int | None = None
) -> Program:
    """Lay out and structurally check ``insns``; raises :class:`Reject`."""
    insns = list(insns)
    if not insns:
        raise Reject("The program is empty.", "last insn is not an exit or jmp", 0)
    at: list[Instruction | None] = []
    for insn in insns:
        at.append(insn)
        if insn.is_lddw:
            at.append(None)
    n = len(at)
    limit = max_insns or (BPF_MAXINSNS if unpriv else BPF_COMPLEXITY_LIMIT_INSNS)
    if n > limit:
        raise Reject(
            f"The program has {n} instructions; at most {limit} are allowed.",
            f"program too large ({n} insns, limit {limit})",
            None,
        )
    # Encoding validity and kernel-unsupported instructions.
    for pc, insn in enumerate(at):
        if insn is None:
            continue
        if insn.ref is not None:
            raise Reject(
                f"Instruction {pc} has an unresolved label {insn.ref!r}.",
                f"unresolved label {insn.ref}",
                pc,
            )
        if insn.opcode == MAY_GOTO:
            # may_goto (BPF_JMP | BPF_JCOND, src BPF_MAY_GOTO): a conditional jump the
            # runtime takes once a loop has run long enough (kernel 6.9+)
            if insn.src or insn.dst or insn.imm or insn.off == 0:
                raise Reject(
                    f"Instruction {pc} is a malformed may_goto.",
                    f"invalid may_goto off {insn.off} imm {insn.imm}",
                    pc,
                )
            continue
        why = check(insn)
        if why:
            raise Reject(f"Instruction {pc} is invalid: {why}.", _kernel_insn_msg(insn, why), pc)
        if insn.is_callx:
            raise Reject(
                "Indirect calls (callx) are not supported by the verifier.",
                f"unknown opcode {insn.opcode:02x}",
                pc,
            )
        if insn.is_kfunc_call:
            raise Reject(
                "Calls to kernel functions (kfuncs) are not supported.",
                "calling kernel function is not supported",
                pc,
            )
        if insn.is_lddw and insn.src == op.PSEUDO_BTF_ID:
            raise Reject(
                "lddw of a BTF id (ksym) is not supported.",
                "ldimm64 of a BTF id is not supported",
                pc,
            )
        if insn.cls == op.JMP32 and insn.opcode & 0xF0 == op.JA and insn.imm == 0 and False:
            pass
    # Subprograms: targets of local calls and of function-address loads.
    starts = {0}
    callbacks: set[int] = set()
    for pc, insn in enumerate(at):
        if insn is None:
            continue
        if insn.is_local_call or (insn.is_lddw and insn.src == op.PSEUDO_FUNC):
            off = insn.imm if insn.is_local_call else _s64(insn.imm)
            t = pc + 1 + off
            if unpriv:
                raise Reject(
                    "Calls to other BPF functions (and loading their addresses) need "
                    "privileges (CAP_BPF).",
                    "loading/calling other bpf or kernel functions are allowed for "
                    "CAP_BPF and CAP_SYS_ADMIN",
                    pc,
                )
            if t < 0 or t >= n:
                raise Reject(
                    f"Instruction {pc} calls outside the program (to {t}).",
                    "call to invalid destination",
                    pc,
                )
            if at[t] is None:
                raise Reject(
                    f"Instruction {pc} calls into the middle of an lddw at {t - 1}.",
                    "call to invalid destination",
                    pc,
                )
            starts.add(t)
            if insn.is_lddw:
                callbacks.add(t)
    subprogs = sorted(starts)
    prog = Program(insns, at, subprogs, callbacks=callbacks)
    # Jumps stay inside their subprogram; each subprogram ends in exit or ja.
    for idx, start in enumerate(subprogs):
        end = prog.subprog_end(idx)
        last = end - 1
        if at[last] is None:
            last -= 1
        for pc in range(start, end):
            insn = at[pc]
            if insn is None or not insn.is_jump:
                continue
            t = _target(insn, pc)
            if t < start or t >= end:
                raise Reject(
                    f"Instruction {pc} jumps to {t}, outside its function [{start}, {end}).",
                    f"jump out of range from insn {pc} to {t}",
                    pc,
                )
            if at[t] is None:
                raise Reject(
                    f"Instruction {pc} jumps into the middle of the lddw at {t - 1}.",
                    f"jump into the middle of ldimm64 insn {t - 1}",
                    pc,
                )
        li = at[last]
        if not (li.is_exit or (li.is_jump and li.opcode & 0xF0 == op.JA)):
            raise Reject(
                f"The function starting at {start} does not end with exit or jump "
                "(execution could fall off its end).",
                "last insn is not an exit or jmp",
                last,
            )
    _dfs(prog, unpriv)
    _call_graph(prog)
    return prog


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _successors(prog: Program, pc: int) -> list[tuple[int, bool]]:
    """(successor, is_call_edge) pairs."""
    insn = prog.at[pc]
    nxt = pc + insn.slots
    if insn.is_exit:
        return []
    if insn.is_jump:
        t = _target(insn, pc)
        if insn.opcode & 0xF0 == op.JA:
            return [(t, False)]
        return [(nxt, False), (t, False)]
    if insn.is_local_call:
        return [(nxt, False), (pc + 1 + insn.imm, True)]
    if insn.is_lddw and insn.src == op.PSEUDO_FUNC:
        return [(nxt, False), (pc + 1 + _s64(insn.imm), True)]
    return [(nxt, False)]


def _dfs(prog: Program, unpriv: bool) -> None:
    """Reachability from slot 0, back-edge detection, and pruning points."""
    n = prog.nslots
    state = [0] * n  # 0 unseen, 1 on stack, 2 done
    prune = prog.prune
    for pc, insn in enumerate(prog.at):
        if insn is None:
            continue
        if insn.is_jump:
            # as the kernel: branch targets and the conditional jumps themselves
            t = _target(insn, pc)
            prune.add(t)
            if insn.opcode & 0xF0 != op.JA:
                prune.add(pc)
        elif insn.is_call:
            prune.add(pc)
            prune.add(pc + 1)
    roots = [0]
    while roots:
        root = roots.pop()
        if state[root]:
            continue
        stack = [(root, iter(_successors(prog, root)))]
        state[root] = 1
        while stack:
            pc, it = stack[-1]
            for succ, is_call in it:
                if succ >= n:
                    raise Reject(
                        f"Execution can fall off the end of the program after {pc}.",
                        f"jump out of range from insn {pc} to {succ}",
                        pc,
                    )
                if state[succ] == 1 and not is_call:
                    if unpriv:
                        raise Reject(
                            f"Instruction {pc} jumps back to {succ}; loops need privileges.",
                            f"back-edge from insn {pc} to {succ}",
                            pc,
                        )
                    continue
                if state[succ] == 0:
                    state[succ] = 1
                    stack.append((succ, iter(_successors(prog, succ))))
                    break
            else:
                state[pc] = 2
                stack.pop()
    for pc, insn in enumerate(prog.at):
        if insn is not None and state[pc] == 0:
            raise Reject(
                f"Instruction {pc} can never execute (unreachable).", f"unreachable insn {pc}", pc
            )


def _call_graph(prog: Program) -> None:
    for idx, start in enumerate(prog.subprogs):
        callees = []
        for pc in range(start, prog.subprog_end(idx)):
            insn = prog.at[pc]
            if insn is not None and (
                insn.is_local_call or (insn.is_lddw and insn.src == op.PSEUDO_FUNC)
            ):
                off = insn.imm if insn.is_local_call else _s64(insn.imm)
                callees.append(prog.subprog_of(pc + 1 + off))
        prog.calls[idx] = callees


def check_stack_depth(prog: Program, depths: dict[int, int], jit: bool = True) -> None:
    """Combined stack of every call chain within 512 bytes.

    Frames are rounded as the kernel rounds them (``round_up_stack_depth``): to 16
    bytes when the program will be JITed (the kernel's default with ``bpf_jit_enable``,
    an empty frame counting 0), else to 32 bytes with at least one slot.
    """

    def frame(i: int) -> int:
        d = depths.get(i, 0)
        if jit:
            return (d + 15) // 16 * 16
        return (max(d, 1) + 31) // 32 * 32

    def walk(i: int, total: int, chain: list[int]) -> None:
        total += frame(i)
        if total > 512:
            raise Reject(
                f"The combined stack of the call chain {chain + [i]} is {total} "
                "bytes; at most 512 are allowed.",
                f"combined stack size of {len(chain) + 1} calls is {total}. Too large",
                prog.subprogs[i],
            )
        for c in prog.calls.get(i, []):
            # the kernel walks every call site (reachable or not, recursive or not) and
            # refuses a chain of MAX_CALL_FRAMES functions
            if len(chain) + 1 >= MAX_CALL_FRAMES:
                raise Reject(
                    f"A chain of calls reaches {MAX_CALL_FRAMES} frames (or recurses); "
                    f"the kernel allows at most {MAX_CALL_FRAMES - 1} nested calls.",
                    f"the call stack of {len(chain) + 1} frames is too deep !",
                    prog.subprogs[i],
                )
            walk(c, total, chain + [i])

    walk(0, 0, [])
