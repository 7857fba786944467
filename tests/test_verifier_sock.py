"""``__sk_buff->sk`` (PTR_TO_SOCK_COMMON_OR_NULL): null check, readable fields, no writes,
no arithmetic — bpfkit's verdict against the running kernel's on the same programs."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from bpfkit.isa.builders import (  # noqa: E402
    R0,
    R1,
    R2,
    Label,
    add64,
    assemble,
    exit_,
    jeq,
    ldx,
    mov64,
    stx,
)
from bpfkit.verifier import verify  # noqa: E402

SK = 168  # offsetof(struct __sk_buff, sk)


def prog(*, null_check=True, size=4, off=4, write=False, arith=False):
    body = [ldx(8, R1, R1, SK)]
    if null_check:
        body += [jeq(R1, 0, "out")]
    if arith:
        body += [add64(R1, 4)]
    if write:
        body += [mov64(R2, 1), stx(size, R1, off, R2)]
    else:
        body += [ldx(size, R0, R1, off)]
    body += [Label("out"), mov64(R0, 0), exit_()]
    return assemble(body)


CASES = {
    "family": (prog(), True),
    "state": (prog(off=72), True),
    "src_ip4_byte": (prog(size=1, off=25), True),
    "src_ip6_word": (prog(off=32), True),
    "dst_port_u16": (prog(size=2, off=48), True),
    "dst_port_u32": (prog(size=4, off=48), True),
    "dst_ip4": (prog(off=52), True),
    "rx_queue_mapping": (prog(off=76), True),
    "no_null_check": (prog(null_check=False), False),
    "type_full_sock_only": (prog(off=8), False),
    "priority_full_sock_only": (prog(off=20), False),
    "hole": (prog(size=2, off=50), False),
    "past_end": (prog(off=80), False),
    "u64_read": (prog(size=8, off=0), False),
    "write": (prog(write=True), False),
    "arithmetic": (prog(arith=True, off=0), False),
}
TYPES = ["socket_filter", "sched_cls", "cgroup_skb"]


@pytest.mark.parametrize("ptype", TYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_bpfkit_verdict(name, ptype):
    insns, ok = CASES[name]
    res = verify(insns, prog_type=ptype, raise_on_error=False)
    assert res.ok == ok, res.log
    if not ok:
        assert res.error.insn is not None and res.error.reason


@pytest.mark.kernel
@pytest.mark.parametrize("ptype", TYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_agrees(name, ptype, kernel):
    from test_verifier_kernel import kernel_verdict

    insns, ok = CASES[name]
    kok, klog = kernel_verdict(insns, ptype, log_level=1)
    assert kok == ok, klog
    res = verify(insns, prog_type=ptype, raise_on_error=False)
    if not ok:
        # same instruction as the kernel's last line reports
        assert f"{res.error.insn}:" in klog, (res.error.insn, klog)
