"""Context-access conversion: what the kernel's ``convert_ctx_access`` does, at load time.

clang compiles ``ctx->data`` on an ``xdp_md`` to a 4-byte load at offset 0, but the
pointer it stands for is 64 bits wide. Like the kernel, the VM rewrites such loads to
read a context struct of its own: the VM's context is the UAPI struct (so every scalar
field, and narrow loads of it, work unchanged) followed by one 64-bit slot per packet
pointer field; a 4-byte load of ``data``/``data_end``/``data_meta`` becomes an 8-byte load
of its slot. The instruction count never changes, so jumps stay valid.

To know which loads go through the context pointer, a small data-flow pass tracks it
from ``r1`` at entry through register copies, stack spills and fills, and into
subprograms, as the verifier would. Accesses the program type does not allow are load
errors with the kernel's messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import VerifierError
from ...isa import opcodes as op
from ...isa.instruction import Instruction
from ...uapi.ctx import NARROW_POINTER_KINDS, CtxAccess

__all__ = ["convert_ctx_access", "pointer_slots"]

CTX, OTHER, MOD = 1, 2, 4
_SIZE = {op.W: 4, op.H: 2, op.B: 1, op.DW: 8}


def pointer_slots(access: CtxAccess) -> dict[str, int]:
    """Offsets of the 64-bit slots that hold the packet pointers, after the UAPI struct."""
    base = (access.layout.size + 7) & ~7
    out: dict[str, int] = {}
    for f in access.layout.fields:
        if f.kind in NARROW_POINTER_KINDS:
            out[f.name] = base + 8 * len(out)
    return out


class _State:
    __slots__ = ("regs", "stack")

    def __init__(self, regs: tuple[int, ...], stack: dict[int, int]) -> None:
        self.regs = regs
        self.stack = stack

    def join(self, other: _State) -> _State | None:
        """The join, or ``None`` if ``other`` adds nothing to ``self``."""
        regs = tuple(a | b for a, b in zip(self.regs, other.regs, strict=True))
        stack = dict(self.stack)
        for k in set(self.stack) | set(other.stack):
            stack[k] = self.stack.get(k, OTHER) | other.stack.get(k, OTHER)
        if regs == self.regs and stack == self.stack:
            return None
        return _State(regs, stack)


def _analyze(insns: Sequence[Instruction]) -> dict[int, int]:
    """For every memory instruction (by index): the joined tag of its base register."""
    slot_of: list[int] = []
    idx_at: dict[int, int] = {}
    pos = 0
    for i, insn in enumerate(insns):
        slot_of.append(pos)
        idx_at[pos] = i
        pos += insn.slots
    n = len(insns)
    states: dict[int, _State] = {}
    entry_of_func: dict[int, _State] = {}
    work: list[int] = []
    base_tags: dict[int, int] = {}

    def push(i: int, st: _State) -> None:
        if not 0 <= i < n:
            return
        cur = states.get(i)
        if cur is None:
            states[i] = st
        else:
            new = cur.join(st)
            if new is None:
                return
            states[i] = new
        work.append(i)

    def enter_function(slot: int, regs: tuple[int, ...]) -> None:
        i = idx_at.get(slot)
        if i is None:
            return
        st = _State(regs, {})
        cur = entry_of_func.get(i)
        if cur is not None:
            joined = cur.join(st)
            if joined is None:
                return
            st = joined
        entry_of_func[i] = st
        push(i, st)

    enter_function(0, (OTHER, CTX) + (OTHER,) * 9)
    # callbacks (function pointers) start with nothing that is the context
    for i, insn in enumerate(insns):
        if insn.is_lddw and insn.src == op.PSEUDO_FUNC:
            tgt = slot_of[i] + 1 + ((insn.imm_lo ^ 0x80000000) - 0x80000000)
            enter_function(tgt, (OTHER,) * 11)

    while work:
        i = work.pop()
        st = states[i]
        insn = insns[i]
        regs = list(st.regs)
        stack = st.stack
        cls = insn.cls
        nxt = [i + 1]
        code = insn.opcode
        if cls in (op.ALU, op.ALU64):
            aop = code & 0xF0
            if cls == op.ALU64 and aop == op.MOV and code & op.X and not insn.off:
                regs[insn.dst] = regs[insn.src]
            elif (
                cls == op.ALU64
                and aop in (op.ADD, op.SUB)
                and not code & op.X
                and regs[insn.dst] & CTX
            ):
                if insn.imm:
                    regs[insn.dst] = (regs[insn.dst] & ~CTX) | MOD
            else:
                regs[insn.dst] = OTHER
        elif cls == op.LDX:
            size = _SIZE[code & 0x18]
            base_tags[i] = base_tags.get(i, 0) | regs[insn.src]
            if insn.src == 10 and size == 8 and insn.off in stack:
                regs[insn.dst] = stack[insn.off]
            else:
                regs[insn.dst] = OTHER
        elif cls in (op.ST, op.STX):
            size = _SIZE[code & 0x18]
            base_tags[i] = base_tags.get(i, 0) | regs[insn.dst]
            if insn.dst == 10:
                stack = {
                    k: v for k, v in stack.items() if not (k < insn.off + size and insn.off < k + 8)
                }
                if cls == op.STX and size == 8 and (code & 0xE0) == op.MEM:
                    if regs[insn.src] & (CTX | MOD):
                        stack[insn.off] = regs[insn.src]
            if cls == op.STX and (code & 0xE0) == op.ATOMIC:
                if insn.imm == op.CMPXCHG:
                    regs[0] = OTHER
                elif insn.imm & op.FETCH:
                    regs[insn.src] = OTHER
        elif cls == op.LD:
            if insn.is_lddw:
                regs[insn.dst] = OTHER
            else:  # legacy packet loads clobber r0-r5
                for r in range(6):
                    regs[r] = OTHER
        elif insn.is_exit:
            nxt = []
        elif insn.is_local_call:
            enter_function(slot_of[i] + 1 + insn.imm, tuple(regs))
            for r in range(6):
                regs[r] = OTHER
        elif insn.is_call or insn.is_callx:
            for r in range(6):
                regs[r] = OTHER
        elif insn.is_jump:
            tgt_slot = slot_of[i] + 1 + insn.jump_offset
            tgt = idx_at.get(tgt_slot)
            if (code & 0xF0) == op.JA:
                nxt = [tgt] if tgt is not None else []
            elif tgt is not None:
                nxt = [i + 1, tgt]
        new = _State(tuple(regs), stack)
        for j in nxt:
            push(j, new)
    return base_tags


def convert_ctx_access(
    insns: Sequence[Instruction],
    access: CtxAccess,
    type_name: str = "",
    info: dict | None = None,
) -> list[Instruction]:
    """Check every context access against ``access`` and rewrite packet-pointer loads.

    With ``info``, ``info["max_ctx_offset"]`` is set to the end of the furthest access.
    """
    slots = pointer_slots(access)
    tags = _analyze(insns)
    out = list(insns)
    max_off = 0
    for i, tag in sorted(tags.items()):
        if not tag & (CTX | MOD):
            continue
        insn = insns[i]
        base = insn.src if insn.cls == op.LDX else insn.dst
        if tag & MOD:
            raise VerifierError(
                f"dereference of modified ctx ptr R{base} off={insn.off} disallowed", insn=i
            )
        if tag != CTX:
            raise VerifierError("same insn cannot be used with different pointers", insn=i)
        size = _SIZE[insn.opcode & 0x18]
        mode = insn.opcode & 0xE0
        if insn.cls == op.ST:
            raise VerifierError(f"BPF_ST stores into R{base} ctx is not allowed", insn=i)
        if insn.cls == op.STX and mode == op.ATOMIC:
            raise VerifierError(f"BPF_ATOMIC stores into R{base} ctx is not allowed", insn=i)
        write = insn.cls == op.STX
        f = access.field_for(insn.off, size, write)
        if f is None or (mode == op.MEMSX and f.is_pointer):
            what = f" ({type_name})" if type_name else ""
            raise VerifierError(
                f"invalid bpf_context access off={insn.off} size={size}{what}", insn=i
            )
        max_off = max(max_off, insn.off + size)
        if f.kind in NARROW_POINTER_KINDS:
            out[i] = insn.with_(opcode=op.LDX | op.MEM | op.DW, off=slots[f.name])
    if info is not None:
        info["max_ctx_offset"] = max_off
    return out
