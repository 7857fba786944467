"""Attach BTF-typed tracing programs: ``fentry``/``fexit``/``fmod_ret``, ``tp_btf``, ``lsm``.

Their target (a kernel function, a BTF tracepoint, an LSM hook) was fixed when they were
loaded (``attach_btf_id``); attaching only creates the link.
"""

from __future__ import annotations

import errno
from typing import Any

from ..errors import KernelError
from ..uapi.enums import AttachType
from . import sys as bsys
from .link import Link

__all__ = ["attach_tracing", "attach_lsm"]


def attach_tracing(program: Any, *, cookie: int = 0) -> Link:
    """Attach a ``fentry``/``fexit``/``fmod_ret``/``tp_btf`` program to its load-time target."""
    pfd = program.fd if hasattr(program, "fd") else bsys.fdnum(program)
    spec = getattr(program, "spec", None)
    kind = getattr(spec, "attach_kind", None) or "tracing"
    target = getattr(spec, "attach_target", None)
    atype = int(getattr(spec, "expected_attach_type", 0) or 0)
    if atype and atype != AttachType.TRACE_ITER:
        try:
            fd = bsys.link_create(pfd, 0, atype, cookie=cookie)
            return Link(fd, kind, target=target, program=program)
        except KernelError as e:
            if cookie or e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, bsys.ENOTSUPP):
                raise
    fd = bsys.raw_tracepoint_open(None, pfd)
    return Link(fd, kind, target=target, program=program)


def attach_lsm(program: Any) -> Link:
    """Attach a ``SEC("lsm/<hook>")`` program."""
    return attach_tracing(program)
