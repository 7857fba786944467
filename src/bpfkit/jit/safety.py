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

from ..errors import NotSupported, VerifierError
from ..isa import opcodes as op
from ..isa.instruction import Instruction

__all__ = ["proven_safe"]


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
        from ..verifier import MapDesc, prog_type_of
        from ..verifier import state as vstate
        from ..verifier.cfg import Reject, build
        from ..verifier.check import Checker
        from ..verifier.log import Log
    except ImportError as e:  # pragma: no cover - the verifier is part of bpfkit
        raise NotSupported(f"the verifier is not available: {e}") from None
    safe_types = {
        vstate.PTR_TO_STACK,
        vstate.PTR_TO_CTX,
        vstate.PTR_TO_PACKET,
        vstate.PTR_TO_PACKET_META,
        vstate.PTR_TO_MAP_VALUE,
        vstate.PTR_TO_MEM,
    }
    seen: dict[int, set[int]] = {}

    class Recorder(Checker):
        """The verifier, noting the pointer kind behind each checked memory access."""

        def mem_access(self, st, regno, base, off, size, **kw):  # type: ignore[override]
            seen.setdefault(self.pc, set()).add(base.type)
            return super().mem_access(st, regno, base, off, size, **kw)

    if maps is None:
        mdict: dict[int, Any] = {}
    elif isinstance(maps, Mapping):
        mdict = {int(k): MapDesc.of(v, f"map{k}") for k, v in maps.items()}
    else:
        mdict = {i: MapDesc.of(v, f"map{i}") for i, v in enumerate(maps)}
    try:
        prog = build(insns, unpriv=unpriv)
        checker = Recorder(
            prog,
            prog_type=prog_type_of(prog_type),
            maps=mdict,
            unpriv=unpriv,
            budget=limit,
            log=Log(0),
            gpl=True,
        )
        checker.run()
    except Reject as rej:
        raise VerifierError(rej.reason, insn=rej.insn) from None
    except TypeError as e:  # the verifier's internals changed shape
        raise NotSupported(f"cannot drive the verifier: {e}") from None
    out: set[int] = set()
    slot = 0
    for i, insn in enumerate(insns):
        if insn.cls in (op.LDX, op.ST, op.STX) and seen.get(slot) and seen[slot] <= safe_types:
            out.add(i)
        slot += insn.slots
    return out
