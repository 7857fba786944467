"""Accept/reject cases for every verifier rule, each rejection with its expected reason.

Every case is run by our verifier here (``test_case``) and, where the kernel can load
it with the same type and maps (``kernel=True``), by the kernel in
``test_verifier_kernel.py``. ``expect`` is ``"accept"`` or a substring of the
kernel-style message of the rejection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bpfkit.errors import VerifierError
from bpfkit.isa.asm import assemble_text
from bpfkit.uapi.enums import MapType
from bpfkit.verifier import MapDesc, verify

HASH = {5: {"type": MapType.HASH, "key_size": 8, "value_size": 16, "max_entries": 8}}
ARRAY = {5: {"type": MapType.ARRAY, "key_size": 4, "value_size": 24, "max_entries": 4}}
RINGBUF = {6: {"type": MapType.RINGBUF, "key_size": 0, "value_size": 0, "max_entries": 4096}}
QUEUE = {5: {"type": MapType.QUEUE, "key_size": 0, "value_size": 8, "max_entries": 8}}
PROGS = {5: {"type": MapType.PROG_ARRAY, "key_size": 4, "value_size": 4, "max_entries": 4}}
#: bpf_sk_lookup_tcp(ctx, &tuple (12 zero bytes), 12, 0, 0): r0 = socket or NULL; r6 = ctx
SK_LOOKUP = (
    "r6 = r1\nr2 = 0\n*(u64 *)(r10 - 8) = r2\n*(u64 *)(r10 - 16) = r2\nr2 = r10\n"
    "r2 += -16\nr3 = 12\nr4 = 0\nr5 = 0\ncall 84\n"
)
LOCKED = {5: MapDesc(MapType.HASH, 8, 16, 8, "locked", spin_lock_off=0)}

LOOKUP = "r1 = map_fd(5) ll\nr2 = 0\n*(u64 *)(r10 - 8) = r2\nr2 = r10\nr2 += -8\ncall 1\n"
XDP_PKT = "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\n"
TC_PKT = "r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\n"
RESERVE = "r1 = map_fd(6) ll\nr2 = 16\nr3 = 0\ncall 131\n"


@dataclass
class Case:
    """One program and the verdict expected for it."""

    name: str
    text: str
    expect: str = "accept"
    prog_type: str = "socket_filter"
    maps: dict = field(default_factory=dict)
    kernel: bool = True
    unpriv: bool = False
    budget: int = 1_000_000
    insn: int | None = None

    def insns(self):
        """The assembled program."""
        return assemble_text(self.text, dialect="llvm")


def C(name: str, text: str, expect: str = "accept", **kw) -> Case:
    return Case(name, text.strip(), expect, **kw)


CASES: list[Case] = [
    # ---- pointers compared with 32-bit jumps are never decided (issue 11) ----------
    C(
        "jmp32_ptr_not_decided",
        LOOKUP + "if r0 == 0 goto +4\nif w0 == 0 goto +2\nr0 = 0\nexit\n"
        "r0 = *(u64 *)(r10 + 8)\nr0 = 0\nexit",
        "invalid read from stack",
        maps=HASH,
    ),
    C(
        "jmp64_ptr_decided",
        LOOKUP + "if r0 == 0 goto +4\nif r0 == 0 goto +2\nr0 = 0\nexit\n"
        "r0 = *(u64 *)(r10 + 8)\nr0 = 0\nexit",
        maps=HASH,
    ),
    # ---- structure -------------------------------------------------------------
    C("min", "r0 = 0\nexit"),
    C("fall_off_end", "r0 = 0", "last insn is not an exit or jmp"),
    C("jump_out_of_range", "r0 = 0\nif r0 == 0 goto +5\nexit", "jump out of range"),
    C("jump_backward_out", "r0 = 0\ngoto -3\nexit", "jump out of range"),
    C(
        "jump_into_lddw",
        "r0 = 0\nif r0 == 1 goto +1\nr1 = 0x100000000 ll\nexit",
        "jump into the middle of ldimm64",
    ),
    C("unreachable", "r0 = 0\nexit\nr0 = 1\nexit", "unreachable insn 2"),
    C("write_r10", "r10 = 0\nr0 = 0\nexit", "frame pointer is read only"),
    C("write_r10_alu", "r10 += 8\nr0 = 0\nexit", "frame pointer is read only"),
    C("unknown_helper", "call 100000\nr0 = 0\nexit", "invalid func unknown#100000", kernel=False),
    C(
        "helper_not_for_type",
        "call 44\nr0 = 0\nexit",
        "cannot use helper",
        prog_type="socket_filter",
    ),
    C(
        "helper_not_for_type_xdp_skb",
        "r1 = r1\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = 8\ncall 26\nr0 = 0\nexit",
        "cannot use helper",
        prog_type="xdp",
    ),
    C("lddw_imm", "r0 = 0x1234567890 ll\nexit"),
    C(
        "bad_map_fd",
        "r1 = map_fd(9) ll\nr0 = 0\nexit",
        "not pointing to valid bpf_map",
        kernel=False,
    ),
    # ---- registers -----------------------------------------------------------
    C("uninit_r0", "exit", "R0 !read_ok"),
    C("uninit_r2", "r0 = r2\nexit", "R2 !read_ok"),
    C("uninit_alu_src", "r0 = 0\nr0 += r7\nexit", "R7 !read_ok"),
    C("uninit_jmp", "r0 = 0\nif r3 > 2 goto +0\nexit", "R3 !read_ok"),
    C("caller_saved_clobbered", "r1 = 5\ncall 7\nr0 = r1\nexit", "R1 !read_ok"),
    C("callee_saved_kept", "r6 = 5\ncall 7\nr0 = r6\nexit"),
    C("div_by_zero_imm", "r0 = 1\nr0 /= 0\nexit", "div by zero", kernel=False),
    C("div_by_reg_ok", "r0 = 1\nr1 = 0\nr0 /= r1\nexit"),
    C("shift_too_far", "r0 = 1\nr0 <<= 64\nexit", "invalid shift", kernel=False),
    # ---- stack -----------------------------------------------------------------
    C("stack_rw", "r1 = 7\n*(u64 *)(r10 - 8) = r1\nr0 = *(u64 *)(r10 - 8)\nexit"),
    C("stack_bottom", "r0 = 0\n*(u64 *)(r10 - 512) = r0\nexit"),
    C("stack_below", "r0 = 0\n*(u64 *)(r10 - 520) = r0\nexit", "invalid write to stack"),
    C("stack_above", "r0 = *(u64 *)(r10 + 0)\nexit", "invalid read from stack"),
    C("stack_misaligned", "r0 = *(u64 *)(r10 - 4)\nexit", "misaligned stack access"),
    C("stack_uninit_priv", "r0 = *(u64 *)(r10 - 8)\nexit"),
    C(
        "stack_uninit_unpriv",
        "r0 = *(u64 *)(r10 - 8)\nexit",
        "invalid read from stack",
        kernel=False,
        unpriv=True,
    ),
    C(
        "spill_fill_ctx",
        "*(u64 *)(r10 - 8) = r1\nr2 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r2 + 0)\nexit",
    ),
    C(
        "partial_fill_ptr",
        "*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nexit",
        "invalid size of register fill",
    ),
    C(
        "partial_spill_ptr",
        "*(u32 *)(r10 - 8) = r1\nr0 = 0\nexit",
        "invalid size of register spill",
    ),
    C(
        "overwritten_spill",
        "*(u64 *)(r10 - 8) = r1\n*(u32 *)(r10 - 8) = 0\n"
        "r2 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r2 + 0)\nexit",
        "invalid mem access 'scalar'",
    ),
    C(
        "stack_var_off_read",
        "call 7\nr0 &= 7\nr1 = r10\nr1 += -16\nr1 += r0\nr0 = *(u8 *)(r1 + 0)\nexit",
    ),
    C(
        "stack_var_off_oob",
        "call 7\nr0 &= 31\nr1 = r10\nr1 += -16\nr1 += r0\nr0 = *(u8 *)(r1 + 0)\nexit",
        "invalid variable-offset read from stack",
    ),
    # ---- context ----------------------------------------------------------------
    C("ctx_len", "r0 = *(u32 *)(r1 + 0)\nexit"),
    C("ctx_narrow", "r0 = *(u8 *)(r1 + 3)\nexit"),
    C("ctx_out_of_range", "r0 = *(u32 *)(r1 + 192)\nexit", "invalid bpf_context access"),
    C("ctx_write_cb", "r2 = 1\n*(u32 *)(r1 + 48) = r2\nr0 = 0\nexit"),
    C("ctx_write_len", "r2 = 1\n*(u32 *)(r1 + 0) = r2\nr0 = 0\nexit", "invalid bpf_context access"),
    C("ctx_socket_data", "r0 = *(u32 *)(r1 + 76)\nexit", "invalid bpf_context access"),
    C("ctx_modified", "r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit", "dereference of modified ctx"),
    C(
        "ctx_xdp_size",
        "r0 = *(u16 *)(r1 + 12)\nexit",
        "invalid bpf_context access",
        prog_type="xdp",
    ),
    C("ctx_kprobe", "r0 = *(u64 *)(r1 + 160)\nexit", prog_type="kprobe"),
    C(
        "ctx_kprobe_oob",
        "r0 = *(u64 *)(r1 + 168)\nexit",
        "invalid bpf_context access",
        prog_type="kprobe",
    ),
    C(
        "ctx_kprobe_write",
        "r2 = 0\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit",
        "invalid bpf_context access",
        prog_type="kprobe",
    ),
    C(
        "ctx_tracepoint_header",
        "r0 = *(u64 *)(r1 + 0)\nexit",
        "invalid bpf_context access",
        prog_type="tracepoint",
    ),
    C("ctx_tracepoint_field", "r0 = *(u32 *)(r1 + 8)\nexit", prog_type="tracepoint"),
    # ---- map values -------------------------------------------------------------
    C(
        "map_null_checked",
        LOOKUP + "if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 8)\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "map_missing_null_check",
        LOOKUP + "r0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
        "invalid mem access 'map_value_or_null'",
        maps=HASH,
    ),
    C(
        "map_null_on_wrong_branch",
        LOOKUP + "if r0 != 0 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
        "invalid mem access",
        maps=HASH,
    ),
    C(
        "map_value_oob",
        LOOKUP + "if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 9)\nr0 = 0\nexit",
        "invalid access to map value",
        maps=HASH,
    ),
    C(
        "map_value_negative",
        LOOKUP + "if r0 == 0 goto +1\nr0 = *(u8 *)(r0 - 1)\nr0 = 0\nexit",
        "invalid access to map value",
        maps=HASH,
    ),
    C(
        "map_index_bounded",
        LOOKUP + "if r0 == 0 goto +5\nr1 = *(u32 *)(r0 + 0)\n"
        "if r1 > 15 goto +3\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "map_index_off_by_one",
        LOOKUP + "if r0 == 0 goto +5\nr1 = *(u32 *)(r0 + 0)\n"
        "if r1 > 16 goto +3\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        "invalid access to map value",
        maps=HASH,
    ),
    C(
        "map_index_unbounded",
        LOOKUP + "if r0 == 0 goto +3\nr1 = *(u32 *)(r0 + 0)\n"
        "r0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        "unbounded memory access",
        maps=HASH,
    ),
    C(
        "map_index_signed",
        LOOKUP + "if r0 == 0 goto +5\nr1 = *(s32 *)(r0 + 0)\n"
        "if r1 s> 15 goto +3\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        "makes map_value pointer be out of bounds",
        maps=HASH,
    ),
    C(
        "map_index_and",
        LOOKUP + "if r0 == 0 goto +4\nr1 = *(u32 *)(r0 + 0)\nr1 &= 15\n"
        "r0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "array_const_key_nonnull",
        "r1 = map_fd(5) ll\n*(u32 *)(r10 - 8) = 0\nr2 = r10\n"
        "r2 += -8\ncall 1\nr0 = *(u64 *)(r0 + 16)\nr0 = 0\nexit",
        maps=ARRAY,
    ),
    C(
        "array_key_out_of_range",
        "r1 = map_fd(5) ll\nr2 = 4\n*(u32 *)(r10 - 8) = r2\n"
        "r2 = r10\nr2 += -8\ncall 1\nr0 = *(u64 *)(r0 + 16)\nr0 = 0\nexit",
        "invalid mem access 'map_value_or_null'",
        maps=ARRAY,
    ),
    C(
        "map_ptr_arith",
        "r1 = map_fd(5) ll\nr1 += 8\nr0 = 0\nexit",
        "pointer arithmetic on map_ptr",
        maps=HASH,
    ),
    C("map_null_arith", LOOKUP + "r0 += 8\nr0 = 0\nexit", "null-check it first", maps=HASH),
    C(
        "map_lookup_uninit_key",
        "r1 = map_fd(5) ll\nr2 = r10\nr2 += -8\ncall 1\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "map_lookup_key_oob",
        "r1 = map_fd(5) ll\nr2 = r10\nr2 += -4\ncall 1\nr0 = 0\nexit",
        "invalid read from stack",
        maps=HASH,
    ),
    C(
        "map_update",
        LOOKUP + "r1 = map_fd(5) ll\nr2 = r10\nr2 += -8\nr3 = r10\nr3 += -24\n"
        "r4 = 0\ncall 2\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "map_update_scalar_value",
        "r1 = map_fd(5) ll\nr2 = r10\nr2 += -8\nr3 = 0\nr4 = 0\ncall 2\nr0 = 0\nexit",
        "R3 type=scalar expected=",
        maps=HASH,
    ),
    C(
        "map_arg_not_map",
        "r1 = 0\nr2 = r10\nr2 += -8\ncall 1\nr0 = 0\nexit",
        "R1 type=scalar expected=map_ptr",
    ),
    C(
        "map_wrong_type_for_helper",
        "r1 = map_fd(5) ll\nr2 = r10\nr2 += -16\nr3 = 0\ncall 87\nr0 = 0\nexit",
        "cannot pass map_type 1 into func",
        maps=HASH,
    ),
    C(
        "queue_push",
        "r1 = map_fd(5) ll\nr2 = 0\n*(u64 *)(r10 - 8) = r2\nr2 = r10\nr2 += -8\n"
        "r3 = 0\ncall 87\nr0 = 0\nexit",
        maps=QUEUE,
    ),
    C(
        "queue_lookup",
        "r1 = map_fd(5) ll\nr2 = r10\nr2 += -8\ncall 1\nr0 = 0\nexit",
        "invalid zero-sized read",
        maps=QUEUE,
    ),
    C(
        "map_store_pointer_priv",
        LOOKUP + "if r0 == 0 goto +1\n*(u64 *)(r0 + 0) = r0\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "map_store_pointer_unpriv",
        LOOKUP + "if r0 == 0 goto +1\n*(u64 *)(r0 + 0) = r0\nr0 = 0\nexit",
        "leaks addr into map",
        maps=HASH,
        kernel=False,
        unpriv=True,
    ),
    C("tail_call", "r2 = map_fd(5) ll\nr3 = 0\ncall 12\nr0 = 0\nexit", maps=PROGS),
    C(
        "tail_call_wrong_map",
        "r2 = map_fd(5) ll\nr3 = 0\ncall 12\nr0 = 0\nexit",
        "expected prog array map for tail call",
        maps=HASH,
    ),
    # ---- packets ----------------------------------------------------------------
    C(
        "pkt_checked",
        XDP_PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto +1\nr0 = *(u16 *)(r2 + 12)\nr0 = 2\nexit",
        prog_type="xdp",
    ),
    C(
        "pkt_unchecked",
        XDP_PKT + "r0 = *(u16 *)(r2 + 12)\nr0 = 2\nexit",
        "invalid access to packet",
        prog_type="xdp",
    ),
    C(
        "pkt_past_check",
        XDP_PKT + "r4 = r2\nr4 += 14\nif r4 > r3 goto +1\nr0 = *(u16 *)(r2 + 13)\nr0 = 2\nexit",
        "invalid access to packet",
        prog_type="xdp",
    ),
    C(
        "pkt_wrong_branch",
        XDP_PKT + "r4 = r2\nr4 += 14\nif r4 <= r3 goto +1\nr0 = *(u16 *)(r2 + 12)\nr0 = 2\nexit",
        "invalid access to packet",
        prog_type="xdp",
    ),
    C(
        "pkt_lt_open",
        XDP_PKT + "r4 = r2\nr4 += 8\nif r4 < r3 goto +2\nr0 = 0\nexit\nr0 = *(u8 *)(r2 + 8)\nexit",
        prog_type="xdp",
    ),
    C(
        "pkt_tc_write",
        TC_PKT + "r4 = r2\nr4 += 4\nif r4 > r3 goto +1\n*(u32 *)(r2 + 0) = 0\nr0 = 0\nexit",
        prog_type="sched_cls",
    ),
    C(
        "pkt_end_arith",
        XDP_PKT + "r3 += 4\nr0 = 0\nexit",
        "pointer arithmetic on pkt_end",
        prog_type="xdp",
    ),
    C(
        "pkt_var_off",
        XDP_PKT + "r4 = *(u8 *)(r2 + 0)\nr0 = 0\nexit",
        "invalid access to packet",
        prog_type="xdp",
    ),
    C(
        "pkt_helper_invalidates",
        TC_PKT + "r4 = r2\nr4 += 4\nif r4 > r3 goto +7\nr6 = r2\n"
        "r2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall 10\nr0 = *(u32 *)(r6 + 0)\nr0 = 0\nexit",
        "invalid mem access 'scalar'",
        prog_type="sched_cls",
    ),
    C("ld_abs", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit"),
    C("ld_abs_no_r6", "r0 = *(u8 *)skb[12]\nexit", "R6 !read_ok"),
    C("ld_abs_r6_not_ctx", "r6 = 0\nr0 = *(u8 *)skb[12]\nexit", "R6 != pointer to skb"),
    C(
        "ld_abs_xdp",
        "r6 = r1\nr0 = *(u8 *)skb[12]\nexit",
        "not allowed for this program type",
        prog_type="xdp",
    ),
    # ---- pointer arithmetic ----------------------------------------------------
    C("ptr_and", "r2 = r1\nr2 &= 4\nr0 = 0\nexit", "bitwise operator"),
    C("ptr_32bit_arith", "w2 = w1\nw2 += 4\nr0 = 0\nexit"),
    C("ptr_32bit_add", "r2 = r1\nw2 += 4\nr0 = 0\nexit", "32-bit pointer arithmetic"),
    C("ptr_sub_ptr_priv", "r2 = r10\nr2 -= r10\nr0 = r2\nexit"),
    # clang -mcpu=v3 computes data_end - data in 32 bits: allowed for privileged loaders
    C("ptr_sub_ptr_32_priv", "r2 = r10\nw2 -= w10\nr0 = r2\nexit"),
    C("ptr_add_ptr_32", "r2 = r10\nw2 += w10\nr0 = 0\nexit", "pointer += pointer prohibited"),
    C("ptr_add_ptr", "r2 = r10\nr2 += r10\nr0 = 0\nexit", "pointer += pointer prohibited"),
    C("scalar_minus_ptr", "r2 = 5\nr2 -= r10\nr0 = 0\nexit", "subtract pointer from scalar"),
    C("ptr_return_priv", "r0 = r10\nexit"),
    C(
        "ptr_return_unpriv",
        "r0 = r10\nexit",
        "leaks addr as return value",
        kernel=False,
        unpriv=True,
    ),
    C(
        "ptr_compare_unpriv",
        "r0 = 0\nif r1 > r10 goto +0\nexit",
        "pointer comparison",
        kernel=False,
        unpriv=True,
    ),
    C(
        "ptr_to_helper_unpriv",
        "r1 = r10\ncall 7\nr0 = 0\nexit",
        "accept",
        kernel=False,
        unpriv=True,
    ),
    C(
        "ptr_partial_copy_unpriv",
        "w0 = w10\nr0 = 0\nexit",
        "partial copy of pointer",
        kernel=False,
        unpriv=True,
    ),
    # ---- helpers ----------------------------------------------------------------
    C("helper_mem_size", "r1 = r10\nr1 += -16\nr2 = 16\ncall 16\nr0 = 0\nexit", prog_type="kprobe"),
    C(
        "helper_mem_too_big",
        "r1 = r10\nr1 += -16\nr2 = 17\ncall 16\nr0 = 0\nexit",
        "invalid write to stack",
        prog_type="kprobe",
    ),
    C(
        "helper_zero_size",
        "r1 = r10\nr1 += -16\nr2 = 0\ncall 16\nr0 = 0\nexit",
        "invalid zero-sized read",
        prog_type="kprobe",
    ),
    C(
        "helper_unbounded_size",
        "call 7\nr2 = r0\nr1 = r10\nr1 += -16\nr3 = 0\ncall 113\nr0 = 0\nexit",
        "min value is negative",
        prog_type="kprobe",
    ),
    C(
        "helper_bounded_size",
        "call 7\nr2 = r0\nr2 &= 15\nr1 = r10\nr1 += -16\nr3 = 0\ncall 113\nr0 = 0\nexit",
        prog_type="kprobe",
    ),
    C(
        "helper_ctx_arg",
        "r2 = r1\nr1 = 0\nr3 = 0\ncall 12\nr0 = 0\nexit",
        "R1 type=scalar expected=ctx",
    ),
    C(
        "trace_printk",
        "r1 = 0\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 8\ncall 6\nr0 = 0\nexit",
        prog_type="kprobe",
    ),
    # ---- references -----------------------------------------------------------
    C(
        "ringbuf_submit",
        RESERVE + "if r0 == 0 goto +4\n*(u64 *)(r0 + 8) = 1\nr1 = r0\nr2 = 0\n"
        "call 132\nr0 = 0\nexit",
        maps=RINGBUF,
    ),
    C(
        "ringbuf_discard",
        RESERVE + "if r0 == 0 goto +3\nr1 = r0\nr2 = 0\ncall 133\nr0 = 0\nexit",
        maps=RINGBUF,
    ),
    C(
        "ringbuf_leak",
        RESERVE + "if r0 == 0 goto +1\nr0 = 0\nr0 = 0\nexit",
        "Unreleased reference",
        maps=RINGBUF,
    ),
    C(
        "ringbuf_leak_one_path",
        RESERVE + "if r0 == 0 goto +6\nr6 = r0\ncall 7\n"
        "if r0 > 5 goto +3\nr1 = r6\nr2 = 0\ncall 132\nr0 = 0\nexit",
        "Unreleased reference",
        maps=RINGBUF,
    ),
    C(
        "ringbuf_oob",
        RESERVE + "if r0 == 0 goto +4\n*(u64 *)(r0 + 12) = 1\nr1 = r0\nr2 = 0\n"
        "call 132\nr0 = 0\nexit",
        "invalid access to memory",
        maps=RINGBUF,
    ),
    C(
        "ringbuf_no_null_check",
        RESERVE + "r1 = r0\nr2 = 0\ncall 132\nr0 = 0\nexit",
        "expected=ringbuf_mem",
        maps=RINGBUF,
    ),
    C(
        "ringbuf_use_after_submit",
        RESERVE + "if r0 == 0 goto +5\nr6 = r0\nr1 = r0\nr2 = 0\n"
        "call 132\nr0 = *(u64 *)(r6 + 0)\nr0 = 0\nexit",
        "invalid mem access 'scalar'",
        maps=RINGBUF,
    ),
    C(
        "ringbuf_var_size",
        "call 7\nr2 = r0\nr2 &= 15\nr1 = map_fd(6) ll\nr3 = 0\ncall 131\nr0 = 0\nexit",
        "is not a known constant",
        maps=RINGBUF,
    ),
    C(
        "spin_lock",
        LOOKUP + "if r0 == 0 goto +5\nr6 = r0\nr1 = r0\ncall 93\nr1 = r6\ncall 94\nr0 = 0\nexit",
        prog_type="sched_cls",  # a socket filter cannot use a spin lock at all
        maps=LOCKED,
        kernel=False,
    ),
    C(
        "spin_lock_missing_unlock",
        LOOKUP + "if r0 == 0 goto +2\nr1 = r0\ncall 93\nr0 = 0\nexit",
        "bpf_spin_unlock is missing",
        prog_type="sched_cls",  # a socket filter cannot use a spin lock at all
        maps=LOCKED,
        kernel=False,
    ),
    C(
        "spin_lock_call_inside",
        LOOKUP + "if r0 == 0 goto +6\nr6 = r0\nr1 = r0\ncall 93\n"
        "call 7\nr1 = r6\ncall 94\nr0 = 0\nexit",
        "function calls are not allowed while holding a lock",
        prog_type="sched_cls",  # a socket filter cannot use a spin lock at all
        maps=LOCKED,
        kernel=False,
    ),
    C(
        "spin_lock_no_lock_field",
        LOOKUP + "if r0 == 0 goto +2\nr1 = r0\ncall 93\nr0 = 0\nexit",
        "has no valid bpf_spin_lock",
        maps=HASH,
        kernel=False,
    ),
    C(
        "spin_lock_direct_access",
        LOOKUP + "if r0 == 0 goto +1\nr1 = *(u32 *)(r0 + 0)\nr0 = 0\nexit",
        "bpf_spin_lock cannot be accessed directly",
        prog_type="sched_cls",  # a socket filter cannot use a spin lock at all
        maps=LOCKED,
        kernel=False,
    ),
    # ---- a released reference: the call still clobbers r1-r5 --------------------
    C(
        "sk_release_clobbers_args",
        SK_LOOKUP + "if r0 == 0 goto +4\nr1 = r0\nr2 = r6\ncall 86\n"
        "r0 = *(u32 *)(r2 + 0)\nr0 = 0\nexit",
        "R2 !read_ok",
        prog_type="sched_cls",
    ),
    C(
        "sk_release_keeps_callee_saved",
        SK_LOOKUP + "if r0 == 0 goto +4\nr1 = r0\nr7 = r6\ncall 86\n"
        "r0 = *(u32 *)(r7 + 0)\nr0 = 0\nexit",
        prog_type="sched_cls",
    ),
    # ---- loops ------------------------------------------------------------------
    C("bounded_loop", "r0 = 0\nr0 += 1\nif r0 < 10 goto -2\nr0 = 0\nexit"),
    C("bounded_loop_1000", "r0 = 0\nr0 += 1\nif r0 < 1000 goto -2\nr0 = 0\nexit"),
    C("infinite_loop", "r0 = 0\ngoto -1", "infinite loop detected"),
    C(
        "unbounded_loop",
        "call 7\nr6 = r0\nr0 = 0\nr0 += 1\nif r0 != r6 goto -2\nr0 = 0\nexit",
        "BPF program is too large",
        budget=50_000,
    ),
    C(
        "loop_unpriv",
        "r0 = 0\nr0 += 1\nif r0 < 10 goto -2\nr0 = 0\nexit",
        "back-edge",
        kernel=False,
        unpriv=True,
    ),
    # ---- calls ------------------------------------------------------------------
    C("subprog", "r1 = 1\ncall pc+2\nr0 = 0\nexit\nr0 = r1\nexit"),
    # a void static function returns with r0 unset: only a read of r0 fails (issue 11)
    C("subprog_void", "r1 = 1\ncall pc+2\nr0 = 0\nexit\nr1 = 2\nexit"),
    C("subprog_void_r0_read", "r1 = 1\ncall pc+1\nexit\nr1 = 2\nexit", "R0 !read_ok"),
    C("subprog_callee_r6", "r6 = 1\ncall pc+2\nr0 = 0\nexit\nr0 = r6\nexit", "R6 !read_ok"),
    C("subprog_r1_clobbered", "r1 = 1\ncall pc+2\nr0 = r1\nexit\nr0 = 0\nexit", "R1 !read_ok"),
    C(
        "subprog_stack_ptr_arg",
        "r1 = r10\nr1 += -8\n*(u64 *)(r10 - 8) = 0\ncall pc+2\n"
        "r0 = 0\nexit\nr0 = *(u64 *)(r1 + 0)\nexit",
    ),
    C(
        "subprog_return_own_stack",
        "call pc+2\nr0 = 0\nexit\nr0 = r10\nr0 += -8\nexit",
        "cannot return stack pointer",
    ),
    C(
        "call_into_lddw",
        "call pc+1\nr1 = 0x100000000 ll\nr0 = 0\nexit",
        "call to invalid destination",
        kernel=False,
    ),
    C(
        "bpf_loop",
        "r1 = 10\nr2 = func(+0x6) ll\nr3 = 0\nr4 = 0\ncall 181\nr0 = 0\nexit\nr0 = 0\nexit",
        kernel=False,
    ),
    C(
        "bpf_loop_bad_ret",
        "r1 = 10\nr2 = func(+0x6) ll\nr3 = 0\nr4 = 0\ncall 181\nr0 = 0\nexit\nr0 = 5\nexit",
        "At callback return",
        kernel=False,
    ),
    C(
        "bpf_loop_ctx",
        "*(u64 *)(r10 - 8) = 0\nr1 = 10\nr2 = func(+0x7) ll\nr3 = r10\n"
        "r3 += -8\nr4 = 0\ncall 181\nr0 = 0\nexit\nr0 = *(u64 *)(r2 + 0)\nr0 = 0\nexit",
        kernel=False,
    ),
    C(
        "bpf_loop_ctx_counter",
        "*(u64 *)(r10 - 8) = 0\nr1 = 10\nr2 = func(+0x7) ll\nr3 = r10\n"
        "r3 += -8\nr4 = 0\ncall 181\nr0 = 0\nexit\nr1 = *(u64 *)(r2 + 0)\nr1 += 1\n"
        "*(u64 *)(r2 + 0) = r1\nr0 = 0\nexit",
        kernel=False,
    ),
    # ---- return values --------------------------------------------------------
    C("cgroup_skb_ret_ok", "r0 = 1\nexit", prog_type="cgroup_skb"),
    C("cgroup_skb_ret_2", "r0 = 2\nexit", "should have been in [0, 1]", prog_type="cgroup_skb"),
    C(
        "cgroup_skb_ret_unknown",
        "call 7\nexit",
        "should have been in [0, 1]",
        prog_type="cgroup_skb",
    ),
    C("cgroup_skb_ret_masked", "call 7\nr0 &= 1\nexit", prog_type="cgroup_skb"),
    C("cgroup_skb_ret_ptr", "r0 = r1\nexit", "not a known value", prog_type="cgroup_skb"),
    # ---- scalars and branches --------------------------------------------------
    C("dead_branch_skipped", "r1 = 5\nif r1 > 10 goto +1\nr0 = 0\nr0 = 0\nexit"),
    C(
        "dead_branch_invalid_code",
        "r1 = 5\nif r1 < 10 goto +1\nr0 = *(u64 *)(r1 + 0)\nr0 = 0\nexit",
    ),
    C(
        "jmp32_bounds",
        LOOKUP + "if r0 == 0 goto +5\nr1 = *(u64 *)(r0 + 0)\n"
        "if w1 > 15 goto +3\nr1 &= 0xff\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "jmp32_bounds_high_unknown",
        LOOKUP + "if r0 == 0 goto +4\nr1 = *(u64 *)(r0 + 0)\n"
        "if w1 > 15 goto +2\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        "unbounded",
        maps=HASH,
    ),
    C(
        "reg_reg_bounds",
        LOOKUP + "if r0 == 0 goto +6\nr1 = *(u32 *)(r0 + 0)\nr2 = 16\n"
        "if r1 >= r2 goto +3\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "linked_scalars",
        LOOKUP + "if r0 == 0 goto +6\nr1 = *(u32 *)(r0 + 0)\nr2 = r1\n"
        "if r2 > 15 goto +3\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\nr0 = 0\nexit",
        maps=HASH,
    ),
    C(
        "neg_tracked",
        "r1 = 5\nr1 = -r1\nr1 += 13\nr2 = r10\nr2 += -16\nr2 += r1\nr0 = *(u8 *)(r2 + 0)\nexit",
    ),
]


# ---- pruning soundness (liveness and precision) ---------------------------------
# A fork on a random number: the fall-through path (explored first) sets things up one
# way, the taken path another; after the join, filler with jumps lets the first path save
# checkpoints; then a use for which the value matters. The taken path must not be pruned
# against the first path's checkpoints (each of these is accepted if precision marks are
# lost); ``*_ok`` variants run the first path's setup on both sides and are accepted.
_FILL = (
    "goto +0\nr1 = 0\nr1 = 0\nr1 = 0\nr1 = 0\ngoto +0\nr1 = 0\nr1 = 0\nr1 = 0\nr1 = 0\n"
    "goto +0\nr1 = 0\n"
)


def _fork(first: str, second: str, use: str, pre: str = "", post: str = "", end: str = "") -> str:
    return (
        pre
        + "call 7\nr9 = r0\nif r9 > 100 goto Lb\n"
        + first
        + "goto Lj\nLb:\n"
        + second
        + "Lj:\n"
        + _FILL
        + use
        + (end or "r0 = 0\nexit\n")
        + post
    )


def _pair(name: str, first: str, second: str, use: str, expect: str, **kw) -> list:
    """The case and its accepted variant (first path's setup on both sides)."""
    pre, post, end = kw.pop("pre", ""), kw.pop("post", ""), kw.pop("end", "")
    return [
        C(name, _fork(first, second, use, pre, post, end), expect, **kw),
        C(name + "_ok", _fork(first, first, use, pre, post, end), **kw),
    ]


_STACK_USE = "r1 = r10\nr1 += -16\nr1 += {r}\n*(u64 *)(r1 + 0) = 0\n"
_PRUNING = [
    *_pair(
        "prec_ptr_arith",
        "r6 = 8\n",
        "r6 = 16\n",
        _STACK_USE.format(r="r6"),
        "invalid write to stack",
    ),
    *_pair(
        "prec_spill_fill",
        "r6 = 8\n*(u64 *)(r10 - 24) = r6\n",
        "r6 = 16\n*(u64 *)(r10 - 24) = r6\n",
        "r7 = *(u64 *)(r10 - 24)\n" + _STACK_USE.format(r="r7"),
        "invalid write to stack",
    ),
    *_pair(
        "prec_narrow_spill",
        "r6 = 8\n*(u32 *)(r10 - 24) = r6\n",
        "r6 = 16\n*(u32 *)(r10 - 24) = r6\n",
        "r7 = *(u32 *)(r10 - 24)\n" + _STACK_USE.format(r="r7"),
        "invalid write to stack",
    ),
    *_pair(
        "prec_alu_chain",
        "r6 = 4\n",
        "r6 = 12\n",
        "r8 = 0\nr7 = r6\nr7 *= 2\nr7 += r8\n" + _STACK_USE.format(r="r7"),
        "invalid write to stack",
    ),
    *_pair(
        "prec_jmp32",
        "r6 = 8\n",
        "r6 = 0x100000008 ll\n",
        "if w6 > 8 goto +4\n" + _STACK_USE.format(r="r6"),
        "math between fp pointer",
    ),
    # the bound reaches r7 only through its link with r6
    *_pair(
        "prec_linked_copy",
        "call 7\nr6 = r0\nr6 |= 0\nr7 = r6\n",
        "call 7\nr6 = r0\nr6 |= 0\nr7 = r0\nr7 |= 0\n",
        "if r6 s> 8 goto +5\nif r6 s< 0 goto +4\nr1 = r10\nr1 += -16\nr1 += r7\n"
        "r0 = *(u8 *)(r1 + 0)\n",
        "unbounded min value",
    ),
    # r9's bound comes from r7 through a register-register comparison
    *_pair(
        "prec_reg_reg_cmp",
        "r7 = 8\n",
        "r7 = 200\n",
        "if r9 > r7 goto +4\nr1 = r10\nr1 += -16\nr1 += r9\nr0 = *(u8 *)(r1 + 0)\n",
        "invalid variable-offset read",
    ),
    *_pair(
        "prec_subprog_return",
        "r6 = 4\n",
        "r6 = 40\n",
        "r1 = r6\ncall sub\n" + _STACK_USE.format(r="r0"),
        "invalid write to stack",
        post="sub:\nr0 = r1\nr0 += r1\nexit\n",
    ),
    *_pair(
        "prec_callee_writes_caller_stack",
        "r6 = 8\n",
        "r6 = 600\n",
        "*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -8\nr2 = r6\ncall sub\n"
        "r7 = *(u64 *)(r10 - 8)\nr1 = r10\nr1 += -16\nr1 += r7\n*(u8 *)(r1 + 0) = 0\n",
        "invalid write to stack",
        post="sub:\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit\n",
    ),
    # a constant in-bounds key makes the array lookup non-null (key spilled / zero bytes)
    *_pair(
        "prec_array_const_key",
        "r6 = 1\n",
        "r6 = 7\n",
        "*(u32 *)(r10 - 8) = r6\nr2 = r10\nr2 += -8\nr1 = map_fd(5) ll\ncall 1\n"
        "r0 = *(u64 *)(r0 + 0)\n",
        "map_value_or_null",
        maps=ARRAY,
    ),
    *_pair(
        "prec_array_zero_key",
        "r6 = 0\n",
        "r6 = 1\n",
        "*(u32 *)(r10 - 4) = r6\nr2 = r10\nr2 += -4\nr1 = map_fd(5) ll\ncall 1\n"
        "r0 = *(u64 *)(r0 + 0)\n",
        "map_value_or_null",
        maps=ARRAY,
    ),
    *_pair(
        "prec_return_range",
        "r6 = 1\n",
        "r6 = 2\n",
        "r0 = r6\n",
        "should have been in [0, 1]",
        end="exit\n",
        prog_type="cgroup_skb",
    ),
    *_pair(
        "prec_decided_branch",
        "r6 = 1\n",
        "r6 = 5\n",
        "if r6 > 3 goto +2\nr0 = 0\nexit\nr2 = 0\nr0 = *(u64 *)(r2 + 0)\n",
        "invalid mem access 'scalar'",
    ),
    *_pair(
        "prec_size_arg",
        "r6 = 8\n",
        "r6 = 64\n",
        "r1 = r8\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = r6\ncall 26\n",
        "invalid write to stack",
        pre="r8 = r1\n",
    ),
    # an imprecise scalar in the checkpoint still requires a scalar
    *_pair(
        "prec_scalar_vs_pointer",
        "r6 = 5\n",
        "r6 = r10\n",
        "r6 *= 3\n",
        "pointer arithmetic with *= operator",
    ),
    *_pair(
        "prec_spilled_scalar_vs_pointer",
        "r6 = 5\n*(u64 *)(r10 - 8) = r6\n",
        "*(u64 *)(r10 - 8) = r10\n",
        "r7 = *(u64 *)(r10 - 8)\nr7 *= 3\n",
        "pointer arithmetic with *= operator",
    ),
    # liveness: a register / slot read after the join is compared
    *_pair("live_uninit_read", "r6 = 1\n", "", "r0 = r6\n", "R6 !read_ok", end="exit\n"),
    *_pair(
        "live_stack_slot",
        "*(u64 *)(r10 - 8) = r8\n",
        "*(u64 *)(r10 - 8) = r9\n",
        "r2 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r2 + 0)\n",
        "invalid mem access 'scalar'",
        pre="r8 = r1\n",
    ),
    # a loop whose offset only matters after it ends
    C(
        "prec_loop_offset",
        "r6 = 0\nr7 = 0\nr7 += 4\nr6 += 1\nif r6 < 9 goto -3\nr1 = r10\nr1 += -32\n"
        "r1 += r7\n*(u8 *)(r1 + 0) = 0\nr0 = 0\nexit",
        "invalid write to stack",
    ),
    # the precision of r6 reaches the checkpoint in P1 only from the path pruned in P2
    # (the kernel's propagate_precision)
    C(
        "prec_propagated_from_pruned_path",
        "call 7\nr9 = r0\nif r9 > 100 goto Lb\nr6 = 8\ngoto P2\nLb:\nif r9 > 200 goto Lb2\n"
        "r6 = 8\ngoto P1\nLb2:\nr6 = 16\nP1:\n"
        + _FILL
        + "P2:\n"
        + _FILL
        + _STACK_USE.format(r="r6")
        + "r0 = 0\nexit",
        "invalid write to stack",
    ),
    C(
        "prec_propagated_from_pruned_path_ok",
        "call 7\nr9 = r0\nif r9 > 100 goto Lb\nr6 = 8\ngoto P2\nLb:\nif r9 > 200 goto Lb2\n"
        "r6 = 8\ngoto P1\nLb2:\nr6 = 8\nP1:\n"
        + _FILL
        + "P2:\n"
        + _FILL
        + _STACK_USE.format(r="r6")
        + "r0 = 0\nexit",
    ),
]
CASES += _PRUNING


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case(case: Case) -> None:
    insns = case.insns()
    try:
        verify(
            insns, prog_type=case.prog_type, maps=case.maps, unpriv=case.unpriv, budget=case.budget
        )
    except VerifierError as e:
        assert case.expect != "accept", f"rejected: {e.kernel_message} ({e.reason})"
        assert case.expect in e.kernel_message or case.expect in e.reason, (
            f"expected {case.expect!r}, got {e.kernel_message!r}"
        )
        assert e.reason.endswith("."), e.reason
        assert e.insn is not None
        return
    assert case.expect == "accept", f"accepted, expected rejection {case.expect!r}"
