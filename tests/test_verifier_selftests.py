"""bpfkit's verifier against the running kernel on the kernel's own verifier selftests.

The corpus is ``tools/testing/selftests/bpf/progs/verifier_*.c`` from Debian's
linux-source-6.12, built with clang-19 (see ``bpfkit.verifier.selftests``); the oracle
loads each program alone into this kernel through libbpf. The default run compares a
rotating quarter of the objects (a different quarter each day, so four days cover all);
``BPFKIT_SLOW=1`` compares every object and program. ``bench/verifier_selftests.py``
prints the full agreement table.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bpfkit.verifier import selftests as st
from bpfkit.verifier.selftests_exclusions import EXCLUDED, MSG_DIFFERENT, SLOW

pytestmark = pytest.mark.kernel

SLOW_RUN = os.environ.get("BPFKIT_SLOW") == "1"
PARTS = 4

#: programs bpfkit once accepted although the kernel rejects them (issue 12): compared
#: on every run, whichever quarter of the corpus the day's run covers
FORMERLY_UNSAFE: dict[str, tuple[str, ...]] = {
    "verifier_array_access": (
        "a_write_only_array_1_2",
        "a_write_only_array_2_2",
    ),
    "verifier_cgroup_inv_retcode": (
        "with_invalid_return_code_test5",
        "with_invalid_return_code_test6",
    ),
    "verifier_direct_packet_access": ("packet_access_test17_pruning_alignment",),
    "verifier_helper_access_var_len": ("ptr_to_mem_or_null_2",),
    "verifier_helper_packet_access": ("test12_cls_unsuitable_helper_2",),
    "verifier_ld_ind": (
        "ld_abs_subprog_early_exit",
        "ld_abs_void_subprog_reject",
        "ld_ind_subprog_early_exit",
        "ld_ind_void_subprog_reject",
    ),
    "verifier_ldsx": (
        "ldsx_ctx_1",
        "ldsx_ctx_2",
        "ldsx_ctx_3",
        "ldsx_ctx_4",
        "ldsx_ctx_5",
        "ldsx_ctx_6",
    ),
    "verifier_loops1": ("bounded_recursion",),
    "verifier_lsm": (
        "bool_retval_test3",
        "bool_retval_test4",
        "disabled_hook_test1",
        "disabled_hook_test2",
        "disabled_hook_test3",
        "errno_zero_retval_test4",
        "errno_zero_retval_test5",
        "errno_zero_retval_test6",
    ),
    "verifier_map_ret_val": ("map_fd_for_function_call",),
    "verifier_netfilter_retcode": ("with_invalid_return_code_test4",),
    "verifier_sock": (
        "invalidate_pkt_pointers_by_tail_call",
        "map_lookup_elem_smap_key",
    ),
    "verifier_sock_addr": (
        "bind4_bad_return_code",
        "bind6_bad_return_code",
        "connect4_bad_return_code",
        "connect6_bad_return_code",
        "connect_unix_bad_return_code",
        "getpeername4_bad_return_code",
        "getpeername6_bad_return_code",
        "getpeername_unix_bad_return_code",
        "getsockname4_bad_return_code",
        "getsockname6_bad_return_code",
        "getsockname_unix_unix_bad_return_code",
        "recvmsg4_bad_return_code",
        "recvmsg6_bad_return_code",
        "recvmsg_unix_bad_return_code",
        "sendmsg4_bad_return_code",
        "sendmsg6_bad_return_code",
        "sendmsg_unix_bad_return_code",
    ),
    "verifier_sockmap_mutate": ("test_raw_tp_delete",),
    "verifier_spin_lock": (
        "reg_id_for_map_value",
        "spin_lock_test9_different_lock",
    ),
    "verifier_var_off": ("zero_sized_access_max_out_of_bound",),
    "verifier_xadd": ("xadd_w_check_unaligned_map",),
}


def _need_corpus() -> None:
    reason = None
    if not st.TARBALL.is_file():
        reason = f"{st.TARBALL} is not installed (scripts/setup installs linux-source-6.12)"
    elif not st.libbpf_version():
        reason = "libbpf.so.1 (Debian's libbpf1, the oracle) is not installed"
    if reason:
        if os.environ.get("BPFKIT_REQUIRE_KERNEL") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _selected_stems() -> list[str]:
    srcs = sorted(
        p.stem
        for p in (_corpus_root_sources() or [])
        if p.name.startswith("verifier_") and p.suffix == ".c"
    )
    if SLOW_RUN:
        return srcs
    key = os.environ.get("BPFKIT_SELFTEST_PART")
    return [
        Path(p).stem
        for p in st.rotating_subset([Path(s) for s in srcs], PARTS, int(key) if key else None)
    ]


def _corpus_root_sources() -> list[Path]:
    c = _corpus()
    return c.sources()


_CORPUS: st.Corpus | None = None


def _corpus(only: list[str] | None = None) -> st.Corpus:
    global _CORPUS
    _need_corpus()
    if _CORPUS is None or only:
        _CORPUS = st.Corpus.prepare(only=only if only is not None else [])
    return _CORPUS


@pytest.fixture(scope="module")
def rows() -> list[st.Row]:
    stems = _selected_stems()
    corpus = _corpus(sorted(set(stems) | set(FORMERLY_UNSAFE)))
    out: list[st.Row] = []
    for obj in corpus.objects():
        if obj.stem in stems:
            out += st.compare_object(corpus, obj, skip_slow=not SLOW_RUN)
        elif obj.stem in FORMERLY_UNSAFE:
            out += st.compare_object(corpus, obj, programs=FORMERLY_UNSAFE[obj.stem])
    return out


def test_corpus_builds() -> None:
    """Every verifier_*.c of the tree builds (the selftests Makefile's flags)."""
    stems = _selected_stems()
    corpus = _corpus(stems)
    assert not corpus.build_errors, corpus.build_errors
    built = {o.stem for o in corpus.objects()}
    assert set(stems) <= built


def test_no_unsafe_accepts(rows: list[st.Row]) -> None:
    """Nothing the kernel rejects (or, where the kernel cannot load it here, nothing
    the test itself expects to fail) is accepted by bpfkit."""
    unsafe = [
        (r.object, r.program, r.kernel.message.splitlines()[-1:] or r.kernel.why)
        for r in rows
        if r.outcome == "unsafe"
    ]
    assert not unsafe, unsafe


def test_no_false_rejects_outside_exclusions(rows: list[st.Row]) -> None:
    """What the kernel accepts, bpfkit accepts — except the documented exclusions."""
    bad = [
        (r.object, r.program, r.cause, r.ours.message.splitlines()[:1])
        for r in rows
        if r.outcome == "false_reject"
    ]
    assert not bad, bad


def test_messages_match_where_the_kernel_does(rows: list[st.Row]) -> None:
    """Where the kernel's log matches the test's ``__msg``, bpfkit's message (the
    kernel's wording it keeps, all lines) matches too — except the listed programs,
    where bpfkit stops at another rule first; a listed one that matches now is stale."""
    bad = [
        (r.object, r.program, r.tags.msgs, r.ours.message)
        for r in rows
        if r.msg_match is False and (r.object, r.program) not in MSG_DIFFERENT
    ]
    assert not bad, bad
    stale = [
        (r.object, r.program)
        for r in rows
        if r.msg_match and (r.object, r.program) in MSG_DIFFERENT
    ]
    assert not stale, stale


def test_agreement_counted(rows: list[st.Row]) -> None:
    """The comparison judged the programs (the oracle answered for most of them)."""
    judged = [r for r in rows if r.outcome in ("agree", "unsafe", "false_reject")]
    assert rows and len(judged) >= 0.8 * len(rows), {
        r.outcome for r in rows if r.outcome not in ("agree",)
    }


def test_exclusions_rejected_with_reason() -> None:
    """Every excluded program is rejected by bpfkit (never accepted), and the ones
    excluded as unsupported say so; an exclusion the kernel now also rejects or that
    bpfkit now accepts is stale and must be removed."""
    stems = sorted({o for o, _ in EXCLUDED})
    if not stems:
        return
    corpus = _corpus(stems)
    from bpfkit.obj import load_object

    problems = []
    for stem in stems:
        obj = corpus.objdir / f"{stem}.o"
        spec = load_object(obj)
        tags = st.program_tags(spec)
        for (o, name), why in EXCLUDED.items():
            if o != stem:
                continue
            ours = st.our_verdict(corpus, load_object(obj), name, tags.get(name, st.Tags()))
            if ours.verdict != "reject":
                problems.append((o, name, "accepted"))
            elif why.startswith("not supported") and "not supported" not in (
                ours.reason + ours.message
            ):
                problems.append((o, name, f"rejected without saying why: {ours.message}"))
    assert not problems, problems


def test_slow_list_is_small() -> None:
    """The programs left out of the default run are few and named."""
    assert len(SLOW) <= 5


def test_tags_match_the_source() -> None:
    """The BTF decl tags the harness reads say what the C source says: every
    ``__failure``/``__success`` program of an object, by name."""
    stems = ["verifier_and", "verifier_sock_addr", "verifier_array_access"]
    corpus = _corpus(stems)
    from bpfkit.obj import load_object

    for stem in stems:
        text = (corpus.selftests / "progs" / f"{stem}.c").read_text()
        tags = st.program_tags(load_object(corpus.objdir / f"{stem}.o"))
        # each test: SEC(...) then its attributes, then the function name
        for m in re.finditer(
            r'SEC\("[^"]*"\)(.*?)\b(\w+)\s*\(\s*(?:void|struct|\w+ \*)', text, re.S
        ):
            attrs, name = m.group(1), m.group(2)
            if name not in tags:
                continue
            want = (
                "failure"
                if re.search(r"__failure\b", attrs)
                else "success"
                if re.search(r"__success\b", attrs)
                else None
            )
            assert tags[name].expect == want, (stem, name)
            msgs = re.findall(r'__msg\("((?:[^"\\]|\\.)*)"\)', attrs)
            assert tags[name].msgs == [s.encode().decode("unicode_escape") for s in msgs], name


def test_msg_regex() -> None:
    """``{{...}}`` parts of a ``__msg`` are regular expressions, the rest literal."""
    assert st.msgs_match("R1 type=scalar expected=fp", ["R1 type=scalar"])
    assert st.msgs_match("off=12 size=4", ["off={{[0-9]+}} size=4"])
    assert not st.msgs_match("off=x size=4", ["off={{[0-9]+}} size=4"])
    assert st.msgs_match("a (b) c", ["a (b)", "c"])
    assert not st.msgs_match("c a", ["a", "c"])
