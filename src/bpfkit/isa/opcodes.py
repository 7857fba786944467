"""Opcode fields of the BPF instruction set (RFC 9669 plus the v4 additions)."""

from __future__ import annotations

# Instruction classes (low 3 bits).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")

# Size field (load/store classes).
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {W: 4, H: 2, B: 1, DW: 8}
BYTES_SIZE = {4: W, 2: H, 1: B, 8: DW}

# Mode field (load/store classes).
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

# Source field (ALU/JMP classes).
K, X = 0x00, 0x08

# ALU operations.
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
NEG, MOD, XOR, MOV, ARSH, END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
ALU_OPS = (ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END)
ALU_NAMES = {
    ADD: "add",
    SUB: "sub",
    MUL: "mul",
    DIV: "div",
    OR: "or",
    AND: "and",
    LSH: "lsh",
    RSH: "rsh",
    NEG: "neg",
    MOD: "mod",
    XOR: "xor",
    MOV: "mov",
    ARSH: "arsh",
    END: "end",
}

# Byte-swap direction for END (the source bit).
TO_LE, TO_BE = K, X

# Jump operations.
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
CALL, EXIT, JLT, JLE, JSLT, JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
COND_JUMPS = (JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE)
JMP_NAMES = {
    JA: "ja",
    JEQ: "jeq",
    JGT: "jgt",
    JGE: "jge",
    JSET: "jset",
    JNE: "jne",
    JSGT: "jsgt",
    JSGE: "jsge",
    CALL: "call",
    EXIT: "exit",
    JLT: "jlt",
    JLE: "jle",
    JSLT: "jslt",
    JSLE: "jsle",
}

# Atomic operations (imm field of STX|ATOMIC).
FETCH = 0x01
ATOMIC_ADD, ATOMIC_OR, ATOMIC_AND, ATOMIC_XOR = 0x00, 0x40, 0x50, 0xA0
XCHG = 0xE0 | FETCH
CMPXCHG = 0xF0 | FETCH
ATOMIC_OPS = (
    ATOMIC_ADD,
    ATOMIC_OR,
    ATOMIC_AND,
    ATOMIC_XOR,
    ATOMIC_ADD | FETCH,
    ATOMIC_OR | FETCH,
    ATOMIC_AND | FETCH,
    ATOMIC_XOR | FETCH,
    XCHG,
    CMPXCHG,
)
ATOMIC_NAMES = {ATOMIC_ADD: "add", ATOMIC_OR: "or", ATOMIC_AND: "and", ATOMIC_XOR: "xor"}

# lddw source pseudo values (linux/bpf.h).
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
PSEUDO_BTF_ID = 3
PSEUDO_FUNC = 4
PSEUDO_MAP_IDX = 5
PSEUDO_MAP_IDX_VALUE = 6
LDDW_PSEUDOS = {
    0: "imm",
    PSEUDO_MAP_FD: "map_fd",
    PSEUDO_MAP_VALUE: "map_value",
    PSEUDO_BTF_ID: "btf_id",
    PSEUDO_FUNC: "func",
    PSEUDO_MAP_IDX: "map_idx",
    PSEUDO_MAP_IDX_VALUE: "map_idx_value",
}

# call source pseudo values.
PSEUDO_CALL = 1
PSEUDO_KFUNC_CALL = 2

# Full opcodes used often.
LDDW = LD | IMM | DW  # 0x18
CALL_OP = JMP | CALL  # 0x85
CALLX_OP = JMP | CALL | X  # 0x8d
EXIT_OP = JMP | EXIT  # 0x95

# Registers.
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10
NUM_REGS = 11
STACK_SIZE = 512
MAX_CALL_FRAMES = 8


def op_class(opcode: int) -> int:
    """The instruction class (low three bits)."""
    return opcode & 0x07
