"""The kernel verifier selftests bpfkit does not agree with, each with the reason — the one
place the selftest comparison (``selftests.py``) and its tests look them up.

``EXCLUDED`` lists programs the kernel accepts and bpfkit rejects on purpose (features the
userspace VM cannot run: bpfkit rejects them saying "not supported") or knowingly (a
documented imprecision). Nothing the kernel rejects may ever be listed: an accept of a
program the kernel rejects is always a failure. ``SLOW`` lists programs left out of the
default test run because verifying them takes long (they run with ``BPFKIT_SLOW=1`` and in
``bench/verifier_selftests.py``).
"""

from __future__ import annotations

import re
from typing import Any

_KFUNC = "not supported: kfunc calls (kernel functions: the userspace VM runs none)"
_BTF_CTX = "not supported: program type with a BTF-typed context (tracing, struct_ops)"
_BTF_ARGS = "not supported: arguments typed by kernel BTF (__arg_trusted, task pointers)"

#: (object stem, program) -> why bpfkit rejects what the kernel accepts
EXCLUDED: dict[tuple[str, str], str] = {
    ("verifier_bits_iter", "null_pointer"): _KFUNC,
    ("verifier_bits_iter", "bits_copy"): _KFUNC,
    ("verifier_bits_iter", "bits_memalloc"): _KFUNC,
    ("verifier_bits_iter", "bit_index"): _KFUNC,
    ("verifier_bits_iter", "bits_too_big"): _KFUNC,
    ("verifier_bits_iter", "fewer_words"): _KFUNC,
    ("verifier_bits_iter", "zero_words"): _KFUNC,
    ("verifier_bits_iter", "huge_words"): _KFUNC,
    ("verifier_bits_iter", "max_words"): _KFUNC,
    ("verifier_bits_iter", "bad_words"): _KFUNC,
    ("verifier_bpf_fastcall", "kfunc_bpf_rdonly_cast"): _KFUNC,
    ("verifier_bpf_fastcall", "kfunc_bpf_cast_to_kern_ctx"): _KFUNC,
    ("verifier_global_ptr_args", "trusted_task_arg_nullable"): _KFUNC,
    ("verifier_global_ptr_args", "trusted_acq_rel"): _KFUNC,
    ("verifier_global_subprogs", "arg_tag_dynptr"): _KFUNC,
    ("verifier_iterating_callbacks", "loop_inside_iter"): _KFUNC,
    ("verifier_iterating_callbacks", "loop_inside_iter_signed"): _KFUNC,
    ("verifier_iterating_callbacks", "loop_inside_iter_volatile_limit"): _KFUNC,
    ("verifier_netfilter_ctx", "with_valid_ctx_access_test6"): _KFUNC,
    ("verifier_kfunc_prog_types", "task_kfunc_syscall"): _KFUNC,
    ("verifier_kfunc_prog_types", "cgrp_kfunc_syscall"): _KFUNC,
    ("verifier_kfunc_prog_types", "cpumask_kfunc_syscall"): _KFUNC,
    ("verifier_kfunc_prog_types", "task_kfunc_tracepoint"): _KFUNC,
    ("verifier_kfunc_prog_types", "cgrp_kfunc_tracepoint"): _KFUNC,
    ("verifier_kfunc_prog_types", "cpumask_kfunc_tracepoint"): _KFUNC,
    ("verifier_kfunc_prog_types", "task_kfunc_perf_event"): _KFUNC,
    ("verifier_kfunc_prog_types", "cgrp_kfunc_perf_event"): _KFUNC,
    ("verifier_kfunc_prog_types", "cpumask_kfunc_perf_event"): _KFUNC,
    ("verifier_bpf_get_stack", "return_r0_range_is_refined"): _BTF_CTX,
    ("verifier_global_subprogs", "arg_tag_ctx_raw_tp_btf"): _BTF_CTX,
    ("verifier_global_subprogs", "arg_tag_ctx_iter_task"): _BTF_CTX,
    ("verifier_global_subprogs", "arg_tag_ctx_struct_ops"): _BTF_CTX,
    ("verifier_global_ptr_args", "trusted_task_arg_nonnull"): _BTF_ARGS,
    ("verifier_global_ptr_args", "flavor_ptr_nullable"): _BTF_ARGS,
    ("verifier_global_ptr_args", "flavor_ptr_nonnull"): _BTF_ARGS,
    (
        "verifier_ref_tracking",
        "sk_release_btf_tcp_sock",
    ): "not supported: helper bpf_skc_to_tcp_sock (returns a BTF-typed socket)",
    (
        "verifier_sockmap_mutate",
        "test_sockops_update_dedicated",
    ): "not supported: helper bpf_sock_map_update (sock_ops context not modelled)",
    (
        "verifier_bpf_fastcall",
        "cumulative_stack_depth",
    ): "known difference: bpf_fastcall — the kernel drops the spills around fastcall helper calls, so its stack is smaller",
    (
        "verifier_iterating_callbacks",
        "check_add_const",
    ): "known difference: scalars linked with a constant offset (the kernel's BPF_ADD_CONST ids)",
}

_NS_KFUNC = "bpfkit rejects earlier: kfunc calls are not supported"
_NS_HELPER = "bpfkit rejects earlier: the helper is not supported (BTF-typed arguments or results)"

#: (object stem, program) -> why bpfkit's message does not match the test's ``__msg``
#: although the kernel's does (both reject; bpfkit stops at another rule first)
MSG_DIFFERENT: dict[tuple[str, str], str] = {
    ("verifier_bits_iter", "no_destroy"): _NS_KFUNC,
    ("verifier_bits_iter", "next_uninit"): _NS_KFUNC,
    ("verifier_bits_iter", "destroy_uninit"): _NS_KFUNC,
    ("verifier_global_ptr_args", "trusted_task_arg_nonnull_fail2"): _NS_KFUNC,
    ("verifier_global_ptr_args", "trusted_destroy_fail"): _NS_KFUNC,
    ("verifier_iterating_callbacks", "unsafe_ringbuf_drain"): _NS_HELPER,
    ("verifier_iterating_callbacks", "unsafe_find_vma"): _NS_HELPER,
    ("verifier_ref_tracking", "to_tcp_sock_after_release"): _NS_HELPER,
    ("verifier_sock", "of_bpf_skc_to_helpers"): _NS_HELPER,
    ("verifier_netfilter_ctx", "with_invalid_ctx_access_test5"): "netfilter context",
    ("verifier_netfilter_retcode", "with_invalid_return_code_test1"): "netfilter context",
    ("verifier_sockmap_mutate", "test_sockops_update"): "sock_ops context",
    ("verifier_value_illegal_alu", "flow_keys_illegal_variable_offset_alu"): "flow_keys",
}

#: (object stem, program) verified only in the slow run (seconds of bpfkit time each)
SLOW: frozenset[tuple[str, str]] = frozenset(
    {
        ("verifier_search_pruning", "short_loop1"),  # 1M instructions in both verifiers
        ("verifier_loops1", "loop_after_a_conditional_jump"),  # likewise
    }
)

# bpfkit message (kernel wording) -> cause of a false reject, first match wins
_CAUSES: list[tuple[str, str]] = [
    (r"kfunc|calling kernel function", "kfunc"),
    (r"program of this type cannot use helper|invalid func", "helper not allowed"),
    (r"bpf_context access|ctx", "context"),
    (r"may_goto|invalid (BPF_JMP|opcode|insn)|unknown opcode", "instruction"),
    (r"arg#|global function|Global function", "global function"),
    (r"R0 !read_ok", "r0 unset"),
    (r"infinite loop", "loop detection"),
    (r"loop|callback", "callback"),
    (r"map_type|map_ptr|map", "map"),
    (r"invalid access|min value|max value|out of bound|unbounded|outside", "bounds"),
    (r"stack", "stack"),
    (r"pointer|ptr", "pointer"),
]


def cause_of(ours: Any) -> str:
    """The group a false reject belongs to, from bpfkit's message."""
    if getattr(ours, "not_supported", False):
        return "not supported"
    text = f"{ours.message} {ours.reason}"
    for pat, cause in _CAUSES:
        if re.search(pat, text):
            return cause
    return "other"
