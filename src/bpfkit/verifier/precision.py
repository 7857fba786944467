"""Scalar precision tracking: which registers and stack slots of a checkpoint must match.

Pruning compares a state with a checkpoint. A scalar of the checkpoint whose value
decided nothing on the paths explored from it (no pointer arithmetic, size argument,
decided branch, return-value check... depended on it) may be anything in the new state.
As in the kernel (``mark_chain_precision``/``backtrack_insn``), every decision that
depends on a scalar marks it *precise*: the instructions executed since the last
checkpoint (``State.hist``) are walked backwards to find the registers and stack slots
that value was computed from, those are marked in the checkpoint (``State.prec``), and
the walk continues through the checkpoint's own history to its parent, until nothing
new is marked.

Keys are ``frame * 128 + regno`` for registers and ``frame * 128 + 64 + spi`` for
stack slots. History entries are the instruction's slot index, or ``(pc, extra)``:
the stack slot key of a load/store at a constant stack offset, the keys of the scalars
a conditional jump refined together (linked copies), or ``CALL``/``EXIT`` (a call into or
a return from a subprogram), ``CB_ENTER``/``CB_EXIT`` (a callback body starts or
returns: the walk goes through the callback's body, as the kernel's does). Anything
this does not model precisely (a callback's own stack slot needed at its entry) marks
every scalar of every checkpoint up the chain precise (``all_prec``), always sound.

A checkpoint's marks only grow while paths below it are still explored; it is used for
pruning only once fully explored (``Checker.explored``), so its marks are final then.
A path pruned against a checkpoint inherits the checkpoint's marks (its continuation is
the checkpoint's): they are backtracked through the pruned path's own history.
"""

from __future__ import annotations

from ..isa import opcodes as op

CALL = "call"
EXIT = "exit"
CB_ENTER = "cbenter"
CB_EXIT = "cbexit"

FRAME = 128
SLOT = 64


def reg_key(frame: int, regno: int) -> int:
    """Key of a register."""
    return frame * FRAME + regno


def slot_key(frame: int, spi: int) -> int:
    """Key of a stack slot."""
    return frame * FRAME + SLOT + spi


_LD, _LDX, _ST, _STX, _ALU, _JMP, _JMP32, _ALU64 = range(8)


def backtrack(at, hist: list, keys: set[int], f: int):
    """Walk ``hist`` backwards; returns the keys needed at its start (and the frame),
    or None when an instruction is not modelled (the caller marks everything)."""
    for e in reversed(hist):
        if type(e) is int:
            pc = e
            x = None
        else:
            pc, x = e
        insn = at[pc]
        base = f * FRAME
        code = insn.opcode
        cls = code & 7
        if cls == _ALU or cls == _ALU64:
            d = base + insn.dst
            if d not in keys:
                continue
            aop = code & 0xF0
            if aop == op.MOV:
                keys.discard(d)
                if code & op.X:
                    keys.add(base + insn.src)
            elif aop == op.NEG or aop == op.END:
                pass
            elif code & op.X:
                keys.add(base + insn.src)
            continue
        if cls == _LDX:
            d = base + insn.dst
            if d in keys:
                keys.discard(d)
                if x is not None:
                    keys.add(x)
            continue
        if cls == _ST or cls == _STX:
            size = op.SIZE_BYTES[code & 0x18]
            atomic = (code & 0xE0) == op.ATOMIC
            if x is not None and x in keys:
                if atomic:
                    if size == 8:
                        keys.discard(x)  # the slot now holds an unknown scalar
                elif size == 8:
                    keys.discard(x)
                    if cls == _STX:
                        keys.add(base + insn.src)
                elif cls == _STX:
                    keys.add(base + insn.src)
            if atomic and cls == _STX:
                if insn.imm == op.CMPXCHG:
                    keys.discard(base)
                elif insn.imm & op.FETCH:
                    keys.discard(base + insn.src)
            continue
        if cls == _LD:
            if code == op.LDDW:
                keys.discard(base + insn.dst)
            else:
                for r in range(6):
                    keys.discard(base + r)
                if x == EXIT:
                    # ld_abs/ld_ind's early return (r0 = 0) from a subprogram
                    f += 1
            continue
        # jumps, calls, exits
        if x == CB_EXIT:
            # a callback returned to its helper's call: the caller's registers are as
            # the call found them (nothing of the callee flows into them); back into
            # the callback's body (the kernel's backtrack_insn at a callback's exit)
            f += 1
            continue
        if x == CB_ENTER:
            # the callback's first instruction: the helper set its r1-r5 from the
            # caller's arguments (conservatively: all of r1-r5 of the caller); its own
            # stack was empty (a slot needed here is not modelled: the kernel's
            # -ENOTSUPP, everything precise); r0, r6-r9 were not set
            nk = set()
            args = False
            for k in keys:
                if k >= base:
                    i = k - base
                    if i >= SLOT:
                        return None
                    if 1 <= i <= 5:
                        args = True
                else:
                    nk.add(k)
            if args:
                nk.update(range(base - FRAME + 1, base - FRAME + 6))
            keys = nk
            f -= 1
            continue
        if x == EXIT:
            # a subprogram returned: the caller's r0 is the callee's
            if base in keys:
                keys.discard(base)
                keys.add(base + FRAME)
            for r in range(1, 6):
                keys.discard(base + r)
            f += 1
            continue
        if x == CALL:
            # the callee's arguments are the caller's r1..r5; nothing else came in
            nk = set()
            lo = base
            for k in keys:
                if k >= lo:
                    i = k - lo
                    if 1 <= i <= 5:
                        nk.add(k - FRAME)
                else:
                    nk.add(k)
            keys = nk
            f -= 1
            continue
        jop = code & 0xF0
        if jop == op.CALL:
            for r in range(6):
                keys.discard(base + r)
            continue
        if jop == op.JA or jop == op.EXIT:
            continue
        # conditional jump: refinement ties the operands (and linked copies) together
        if x is not None:
            for k in x:
                if k in keys:
                    keys.update(x)
                    break
        elif code & op.X:
            a = base + insn.dst
            b = base + insn.src
            if a in keys or b in keys:
                keys.add(a)
                keys.add(b)
    return keys, f


def mark_all(st) -> None:
    """Every scalar of ``st`` and of its parents is precise."""
    while st is not None and not st.all_prec:
        st.all_prec = True
        st = st.parent


def mark_chain(at, st, keys) -> None:
    """``keys`` of state ``st`` (at its current instruction) matter: mark their sources
    precise in every checkpoint up the parent chain."""
    ks = set(keys)
    s = st
    f = len(st.frames) - 1
    while ks:
        p = s.parent
        if p is None or p.all_prec:
            return
        res = backtrack(at, s.hist, ks, f)
        if res is None:
            mark_all(p)
            return
        ks, f = res
        if not ks:
            return
        prec = p.prec
        new = ks - prec
        if not new:
            return
        prec |= new
        ks = new
        s = p
        f = len(p.frames) - 1


def live_keys(old, keys_from_prec: bool = True) -> list[int]:
    """The precision keys of checkpoint ``old`` that its continuation may rely on:
    its marks (or every register and slot when ``all_prec``), minus what is dead."""
    lv = old.live
    out = []
    if old.all_prec or not keys_from_prec:
        for fi, fr in enumerate(old.frames):
            rmask, smask = lv[fi] if lv is not None else (-1, -1)
            b = fi * FRAME
            for i in range(10):
                if (rmask >> i) & 1:
                    out.append(b + i)
            for spi in fr.stack:
                if (smask >> spi) & 1:
                    out.append(b + SLOT + spi)
        return out
    for k in old.prec:
        fi, rest = divmod(k, FRAME)
        if lv is None:
            out.append(k)
            continue
        rmask, smask = lv[fi]
        if rest >= SLOT:
            if (smask >> (rest - SLOT)) & 1:
                out.append(k)
        elif (rmask >> rest) & 1:
            out.append(k)
    return out
