"""A small, deliberately naive reference interpreter, independent of bpfkit.vm.

It decodes fields in the loop and evaluates with plain signed/unsigned Python
arithmetic written from RFC 9669's text, so property tests can compare it with the
real interpreter. Memory: one flat bytearray for the input at a fixed fake address and
one for the stack. No calls into helpers except id 5 (returns 0), no atomics on
anything but those two buffers.
"""

from __future__ import annotations

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
MEM_BASE = 0x1000_0000
STACK_TOP = 0x2000_0000


def s64(v: int) -> int:
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def alu(op: int, is64: bool, dst: int, src: int, off: int = 0) -> int:
    """One ALU operation with RFC 9669 semantics; ``src`` already sign-extended/truncated."""
    bits = 64 if is64 else 32
    mask = M64 if is64 else M32
    a, b = dst & mask, src & mask
    sa, sb = (s64(a), s64(b)) if is64 else (s32(a), s32(b))
    if op == 0x00:
        r = a + b
    elif op == 0x10:
        r = a - b
    elif op == 0x20:
        r = a * b
    elif op == 0x30:
        if off == 1:
            r = 0 if sb == 0 else trunc_div(sa, sb)
        else:
            r = 0 if b == 0 else a // b
    elif op == 0x40:
        r = a | b
    elif op == 0x50:
        r = a & b
    elif op == 0x60:
        r = a << (b % bits)
    elif op == 0x70:
        r = a >> (b % bits)
    elif op == 0x80:
        r = -a
    elif op == 0x90:
        if off == 1:
            r = a if sb == 0 else sa - sb * trunc_div(sa, sb)
        else:
            r = a if b == 0 else a % b
    elif op == 0xA0:
        r = a ^ b
    elif op == 0xB0:
        if off:
            v = src & ((1 << off) - 1)
            r = v - (1 << off) if v >> (off - 1) else v
        else:
            r = b
    elif op == 0xC0:
        r = sa >> (b % bits)
    else:
        raise ValueError(op)
    return r & mask


def jmp(op: int, is64: bool, dst: int, src: int) -> bool:
    mask = M64 if is64 else M32
    a, b = dst & mask, src & mask
    sa, sb = (s64(a), s64(b)) if is64 else (s32(a), s32(b))
    return {
        0x10: a == b,
        0x20: a > b,
        0x30: a >= b,
        0x40: bool(a & b),
        0x50: a != b,
        0x60: sa > sb,
        0x70: sa >= sb,
        0xA0: a < b,
        0xB0: a <= b,
        0xC0: sa < sb,
        0xD0: sa <= sb,
    }[op]


def naive_run(insns, mem: bytes = b"", budget: int = 10**9) -> tuple[int, int]:
    """Run ``insns`` (bpfkit Instructions, no calls); returns (r0, executed count)."""
    slots = []
    for insn in insns:
        slots.append(insn)
        if insn.opcode == 0x18:
            slots.append(None)
    memory = bytearray(mem)
    stack = bytearray(512)
    regs = [0] * 11
    regs[1] = MEM_BASE if mem else 0
    regs[2] = len(mem)
    regs[10] = STACK_TOP
    pc = 0
    count = 0

    def locate(addr: int, size: int):
        if MEM_BASE <= addr and addr + size <= MEM_BASE + len(memory):
            return memory, addr - MEM_BASE
        if STACK_TOP - 512 <= addr and addr + size <= STACK_TOP:
            return stack, addr - (STACK_TOP - 512)
        raise MemoryError(hex(addr))

    while True:
        insn = slots[pc]
        count += 1
        if count > budget:
            raise TimeoutError
        code = insn.opcode
        cls = code & 7
        pc += 1
        if cls in (4, 7):
            is64 = cls == 7
            op = code & 0xF0
            if op == 0xD0:
                v = regs[insn.dst]
                w = insn.imm
                if cls == 4 and not code & 8:
                    regs[insn.dst] = v & ((1 << w) - 1)
                else:
                    regs[insn.dst] = int.from_bytes(
                        (v & ((1 << w) - 1)).to_bytes(w // 8, "little"), "big"
                    )
                continue
            src = regs[insn.src] if code & 8 else insn.imm & M64
            regs[insn.dst] = alu(op, is64, regs[insn.dst], src, insn.off)
        elif cls in (5, 6):
            op = code & 0xF0
            if op == 0x90:
                return regs[0], count
            if op == 0x00:
                pc += insn.imm if cls == 6 else insn.off
                continue
            if op == 0x80:
                regs[0] = 0
                continue
            src = regs[insn.src] if code & 8 else insn.imm & M64
            if jmp(op, cls == 5, regs[insn.dst], src):
                pc += insn.off
        elif cls == 0:
            regs[insn.dst] = insn.imm & M64
            pc += 1
        else:
            size = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[code & 0x18]
            mode = code & 0xE0
            if cls == 1:
                buf, o = locate(regs[insn.src] + insn.off, size)
                v = int.from_bytes(buf[o : o + size], "little")
                if mode == 0x80 and v >> (size * 8 - 1):
                    v = (v - (1 << (size * 8))) & M64
                regs[insn.dst] = v
            else:
                buf, o = locate(regs[insn.dst] + insn.off, size)
                val = insn.imm if cls == 2 else regs[insn.src]
                if mode == 0xC0:
                    old = int.from_bytes(buf[o : o + size], "little")
                    aop = insn.imm
                    m = (1 << (8 * size)) - 1
                    if aop == 0xF1:
                        if old == regs[0] & m:
                            buf[o : o + size] = (regs[insn.src] & m).to_bytes(size, "little")
                        regs[0] = old
                        continue
                    new = {
                        0x00: old + val,
                        0x40: old | val,
                        0x50: old & val,
                        0xA0: old ^ val,
                        0xE0: val,
                    }[aop & 0xF0]
                    buf[o : o + size] = (new & m).to_bytes(size, "little")
                    if aop & 1:
                        regs[insn.src] = old
                    continue
                buf[o : o + size] = (val & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
