"""Proven-safe memory accesses: which loads and stores may skip the JIT's region check.

``JitProgram(insns, env, safe=...)`` compiles the listed instructions without a region
check. :func:`proven_safe` computes that set with bpfkit's verifier: it verifies the
program and records, for every load, store and atomic, the kind of pointer it went
through on every explored path. An instruction is safe when verification succeeded and
every path used a pointer whose bounds the verifier checks against memory the VM
registers as a region: the stack, the context, the packet, a map value, helper memory.

The set is only as good as the verifier and the environment's layout: the context
region must hold the converted context (UAPI struct plus pointer slots) and ``data_end``
must be the end of the packet region — which is how bpfkit's runtime sets them up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import NotSupported
from ..isa import opcodes as op
from ..isa.instruction import Instruction

__all__ = ["proven_safe", "proven_types", "safe_indices"]

READ, WRITE = 1, 2


def proven_safe(
    insns: Sequence[Instruction],
    prog_type: int | str,
    *,
    maps: Mapping[int, Any] | Sequence[Any] | None = None,
    unpriv: bool = False,
    limit: int = 1_000_000,
) -> set[int]:
    """Indices of the memory instructions the verifier proves in bounds on every path.

    ``limit`` caps the verifier's processed instructions (the kernel's is 1,000,000).
    Raises :class:`VerifierError` when the program is rejected or too complex for the
    limit (there is no proof), and :class:`NotSupported` when the verifier cannot be
    driven this way.
    """
    try:
        from ..verifier import verify
    except ImportError as e:  # pragma: no cover - the verifier is part of bpfkit
        raise NotSupported(f"the verifier is not available: {e}") from None
    res = verify(
        insns, prog_type=prog_type, maps=maps, unpriv=unpriv, budget=limit, record_accesses=True
    )
    return safe_indices(insns, res.accesses or {})


def proven_types() -> dict[int, int]:
    """Each pointer type whose accesses the verifier bounds-checks against memory the VM
    registers as a region (the stack, the context, the packet, a map value, helper
    memory) → READ | WRITE: what :func:`safe_indices` trusts by default."""
    from ..verifier import state as vstate

    return {
        t: READ | WRITE
        for t in (
            vstate.PTR_TO_STACK,
            vstate.PTR_TO_CTX,
            vstate.PTR_TO_PACKET,
            vstate.PTR_TO_PACKET_META,
            vstate.PTR_TO_MAP_VALUE,
            vstate.PTR_TO_MEM,
        )
    }


def safe_indices(
    insns: Sequence[Instruction],
    accesses: Mapping[int, set[int]],
    trusted: Mapping[int, int] | None = None,
) -> set[int]:
    """Instruction indices whose every recorded access went through a bounds-checked pointer.

    ``accesses`` is ``VerifyResult.accesses`` (slot index → pointer types) of an
    accepted program. ``trusted`` maps a pointer type to the kinds of access (READ,
    WRITE) whose proof holds in the environment the code will run in (default:
    :func:`proven_types`): a load needs READ for every type it went through, a store
    WRITE, an atomic both. The VM narrows it where its memory differs from what the
    verifier assumes (a map element that can be freed, a read-only map, a context
    shorter than the verifier's limit).
    """
    if trusted is None:
        trusted = proven_types()
    out: set[int] = set()
    slot = 0
    for i, insn in enumerate(insns):
        kinds = accesses.get(slot)
        c = insn.cls
        if c in (op.LDX, op.ST, op.STX) and kinds:
            if c == op.LDX:
                need = READ
            elif c == op.STX and (insn.opcode & 0xE0) == op.ATOMIC:
                need = READ | WRITE
            else:
                need = WRITE
            if all(trusted.get(k, 0) & need == need for k in kinds):
                out.add(i)
        slot += insn.slots
    return out
