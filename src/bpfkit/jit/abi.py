"""The contract between generated code and Python: run context layout, fault kinds, sentinels.

Every compiled program takes a pointer to one :class:`RunContext` (a flat array of
64-bit words). Generated code reads the region table, packet and callbacks from it and
writes fault details into it; Python sets it up before a run and reads it after.
"""

from __future__ import annotations

import ctypes

# Word indices of the run context (byte offset = 8 * index).
TABLE = 0  # pointer to the sorted region table: (base, span, perms) triples
TABLE_LEN = 1  # number of regions in the table
HELPER_CB = 2  # u64 (*)(ctx, id, r1..r5): Python helper trampoline
REGION_CB = 3  # u64 (*)(ctx, addr, size, perms, pc): Python re-check of a table miss
PKT_BASE = 4  # legacy ld_abs/ld_ind packet
PKT_LEN = 5
FAULT_KIND = 6  # 0 while running normally
FAULT_PC = 7
FAULT_ADDR = 8
FAULT_AUX = 9
HIT_BASE = 10  # filled by a successful slow-path lookup
HIT_LIM = 11  # span - 7 if the region is 8+ bytes long, else 0
LEFT_OUT = 13  # budget left after the last run (count = budget - left)
TAIL_CB = 14  # u64 (*)(ctx, r1, r2, r3): address of a tail-call target's function or 0
TAIL_TARGET = 15
TAIL_R1 = 16
TAIL_LEFT = 17
TAIL_COUNT = 18
RUNS_DONE = 19  # completed runs of a repeat loop
SITE = 20  # pc | callx << 32 of the helper call in progress
# Region-cache seeds: (base, read limit, write limit) of the region holding the run's r1
# (set per run) and of the last region the slow path found (kept across runs). Python
# clears both whenever the region table changes.
ARG_BASE, ARG_RLIM, ARG_WLIM = 21, 22, 23
SEED_BASE, SEED_RLIM, SEED_WLIM = 24, 25, 26
# The environment's native words (``env.native_data``: a runtime's map table, CPU, PRNG;
# see bpfkit.vm.maps.native), 0 for a plain Env. Native helpers start from it.
ENV_DATA = 27
# Legacy loads at negative offsets (SKF_NET_OFF + n, SKF_LL_OFF + n): the bytes such a
# load can reach start at PKT_NEG_BASE (at or before the data) and span PKT_NEG_SPAN;
# offset k of the network (MAC) header range is byte k + PKT_NET_ADJ (k + PKT_MAC_ADJ) of
# them. Without headers the adjustments put every such byte out of range.
PKT_NEG_BASE, PKT_NEG_SPAN, PKT_NET_ADJ, PKT_MAC_ADJ = 32, 33, 34, 35
# Budget left before a helper that runs callbacks (bpf_loop ...), and after it: the
# callbacks count against the run's budget (Python reads and updates it).
CB_LEFT = 36
NWORDS = 40

# Fault kinds (FAULT_KIND).
F_NONE = 0
F_PYTHON = 1  # Python recorded an exception (helper, region re-check): re-raise it
F_STATIC = 2  # a fault known at compile time: FAULT_AUX indexes the message table
F_BUDGET = 3  # FAULT_PC = block leader, FAULT_AUX = function entry, FAULT_ADDR = left
F_MISALIGNED = 4  # FAULT_ADDR = address, FAULT_AUX = size
F_CALLX = 5  # FAULT_ADDR = target, FAULT_AUX = 0 neither fn/helper, 1 mid-lddw, 2 not an entry

# Values of "left" (the remaining budget) that are not counts but unwinding signals.
FAULT_SENTINEL = -(1 << 63)
TAIL_SENTINEL = -(1 << 63) + 1
SIGNAL_LIMIT = -(1 << 62)  # left < this → a signal, propagate it
MAX_BUDGET = 1 << 62
MAX_TAIL_CALLS = 33  # MAX_TAIL_CALL_CNT in the kernel

# Region permissions (same bits as bpfkit.vm.memory).
READ, WRITE = 1, 2


class RunContext(ctypes.Structure):
    """The words generated code shares with Python during a run."""

    _fields_ = [("w", ctypes.c_uint64 * NWORDS)]


HELPER_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, *([ctypes.c_uint64] * 6))
REGION_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, *([ctypes.c_uint64] * 4))
TAIL_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, *([ctypes.c_uint64] * 3))
# u64 bpf_run(ctx, entry, r1..r5, r10, repeat, budget): called without releasing the GIL
# (the Python callbacks re-enter the interpreter on this thread).
RUN_PYFUNC = ctypes.PYFUNCTYPE(
    ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, *([ctypes.c_uint64] * 8)
)
