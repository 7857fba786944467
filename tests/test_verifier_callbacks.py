"""Callback rounds converge as in the kernel: ``bpf_loop`` with a huge count verifies in
a few rounds, not one round per iteration.

The kernel explores a callback round by round: a round returns to the helper's call,
its imprecise scalars widened against the round before (``widen_imprecise_scalars``),
and exploration stops when a round's state lies within an earlier one's at the call
(``RANGE_WITHIN``). That needs precision tracked through the callback's body (the
kernel's ``backtrack_insn`` walks a callback's exit and entry): when it marked every
scalar precise instead, nothing was widened and ``bpf_loop(1 << 24, ...)`` ran into the
jump-sequence limit after minutes. The oracle is the running kernel: the same verdict
and about as many processed instructions (bounded by the kernel's own count); the
rejected programs check that precision still flows from a callback into its caller.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from test_kernel_common import needs_clang

from bpfkit.errors import VerifierError

pytestmark = needs_clang

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

long rets[4] = {};
char buf[64] = {};
struct cbctx { long off; long pad; };

static long count_cb(__u32 i, long *acc)
{
	*acc += i;
	return i == 9;
}

SEC("raw_tp/x")
int big_count(void *ctx)
{
	long acc = 0;
	int i = 0;

	rets[i++] = bpf_loop(100, count_cb, &acc, 0);
	rets[i++] = acc;
	rets[i++] = bpf_loop(1 << 24, count_cb, &acc, 0);
	rets[i++] = bpf_loop(1, count_cb, &acc, 1);
	return 0;
}

static long inner(__u32 i, void *ctx) { (*(__u64 *)ctx)++; return 0; }

static long outer(__u32 i, void *ctx)
{
	bpf_loop(1 << 23, inner, ctx, 0);
	return 0;
}

SEC("raw_tp/x")
int nested(void *c)
{
	__u64 n = 0;

	bpf_loop(1 << 23, outer, &n, 0);
	bpf_loop(1 << 24, count_cb, &n, 0);
	return n;
}

static long use_off(__u32 i, struct cbctx *c)
{
	long off = c->off;

	buf[off & 127] = 1;
	return 0;
}

/* the callback indexes with the caller's slot: the slot is precise in the caller's
 * checkpoints, so the second branch (off = 100) is not pruned against the first */
SEC("raw_tp/x")
int caller_slot_3_then_100(void *ctx)
{
	struct cbctx c = {};

	if (bpf_get_prandom_u32() & 1)
		c.off = 3;
	else
		c.off = 100;
	bpf_loop(4, use_off, &c, 0);
	return 0;
}

SEC("raw_tp/x")
int caller_slot_100_then_3(void *ctx)
{
	struct cbctx c = {};

	if (bpf_get_prandom_u32() & 1)
		c.off = 100;
	else
		c.off = 3;
	bpf_loop(4, use_off, &c, 0);
	return 0;
}

static long bump(__u32 i, struct cbctx *c)
{
	c->off += 1;
	return 0;
}

/* the callback moves the index each round: after the loop it is out of bounds */
SEC("raw_tp/x")
int bumped_index(void *ctx)
{
	struct cbctx c = {};

	c.off = 3;
	bpf_loop(1000, bump, &c, 0);
	buf[c.off & 127] = 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: program -> None (accepted) or the kernel's wording of the rejection
EXPECT: dict[str, str | None] = {
    "big_count": None,
    "nested": None,
    "caller_slot_3_then_100": "R2 min value is outside of the allowed memory range",
    "caller_slot_100_then_3": "R2 min value is outside of the allowed memory range",
    "bumped_index": "R2 min value is outside of the allowed memory range",
}

#: a budget that a converging walk stays far below (the unconverging one took minutes
#: to reach the jump-sequence limit; this fails it within a second or two)
BUDGET = 20_000


@functools.cache
def _spec():
    import tempfile

    from bpfkit.obj import load_object
    from bpfkit.obj.build import compile_c

    d = Path(tempfile.mkdtemp(prefix="bpfkit-verifier-cb-"))
    (d / "cb.c").write_text(SRC)
    return load_object(compile_c(d / "cb.c", d / "cb.o").object)


def _ours(name: str):
    from bpfkit.verifier import verify_spec

    return verify_spec(_spec(), name, raise_on_error=False, cache=False, budget=BUDGET)


@functools.cache
def _kernel(name: str) -> tuple[bool, str]:
    """(accepted, log with statistics) of the program loaded alone into the kernel."""
    from bpfkit.kernel.loader import load_spec

    try:
        loaded = load_spec(_spec(), programs=[name], log_level=4 | 1)
    except VerifierError as e:
        return False, e.log or e.reason
    log = loaded.programs[name].log
    loaded.close()
    return True, log


def _processed(log: str) -> int:
    m = re.search(r"processed (\d+) insns", log)
    assert m, log[-400:]
    return int(m.group(1))


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_verdict(name: str) -> None:
    """bpfkit's verdict (and the kernel's wording of a rejection), within the budget."""
    r = _ours(name)
    want = EXPECT[name]
    if want is None:
        assert r.ok, r.error
        assert r.stats.insns_processed < 2_000, r.stats.insns_processed
    else:
        assert not r.ok
        assert want in r.error.kernel_message, r.error.kernel_message


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(EXPECT))
def test_agrees_with_kernel(kernel, name: str) -> None:
    """The kernel's verdict is the table's, and bpfkit processes about as many
    instructions as the kernel did (at most 1.5 times its count plus 20)."""
    kok, klog = _kernel(name)
    want = EXPECT[name]
    assert kok == (want is None), klog[-600:]
    if want is not None:
        assert want in klog, klog[-600:]
    r = _ours(name)
    assert r.ok == kok, r.error
    kn = _processed(klog)
    assert r.stats.insns_processed <= kn * 3 // 2 + 20, (r.stats.insns_processed, kn)
