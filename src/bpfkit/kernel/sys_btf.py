"""BTF commands: load a BTF blob.

Part of :mod:`bpfkit.kernel.sys` (which re-exports every public name).
"""

from __future__ import annotations

import ctypes
import errno

from ..errors import KernelError
from ..uapi.enums import Cmd
from .sys_attrs import BtfLoadAttr
from .sys_core import _FIRST_LOG_SIZE, MAX_LOG_SIZE, _addr, _buf, bpf, hint_for
from .sys_progs import parse_verifier_log

# ---------------------------------------------------------------------------
# BTF
# ---------------------------------------------------------------------------


def btf_load(data: bytes, log_level: int = 0, *, log_out: list[str] | None = None) -> int:
    """Load raw BTF; returns its (owned) fd.

    A failure is retried with a log (grown on ENOSPC) and raises :class:`KernelError`
    whose hint ends with the log's last line and whose ``.log`` holds the whole log.
    """
    if not data:
        raise ValueError("empty BTF")
    dbuf = _buf(data)
    level = log_level
    size = _FIRST_LOG_SIZE if level else 0
    log_buf = ctypes.create_string_buffer(size) if size else None
    first_err = 0
    while True:
        attr = BtfLoadAttr(
            btf=_addr(dbuf),
            btf_size=len(data),
            btf_log_level=level,
            btf_log_size=size,
            btf_log_buf=_addr(log_buf),
        )
        fd, err = bpf(Cmd.BTF_LOAD, attr)
        if fd >= 0:
            if log_out is not None and log_buf is not None:
                log_out.append(log_buf.value.decode(errors="replace"))
            return fd
        if err == errno.ENOSPC and log_buf is not None and size < MAX_LOG_SIZE:
            size = min(max(size * 4, attr.btf_log_true_size + 1), MAX_LOG_SIZE)
            log_buf = ctypes.create_string_buffer(size)
            continue
        first_err = first_err or err
        if log_buf is None and err not in (errno.EPERM, errno.E2BIG, errno.ENOMEM, errno.EFAULT):
            level, size = 1, _FIRST_LOG_SIZE
            log_buf = ctypes.create_string_buffer(size)
            continue
        break
    log = log_buf.value.decode(errors="replace") if log_buf is not None else ""
    if log_out is not None and log:
        log_out.append(log)
    err = first_err if err == errno.ENOSPC else err
    hint = hint_for(Cmd.BTF_LOAD, err)
    if log.strip():
        last = parse_verifier_log(log)[0]
        hint = f"invalid BTF: {last}" if err in (errno.EINVAL, errno.EACCES) else f"{hint}; {last}"
    exc = KernelError(err, "BPF_BTF_LOAD", hint)
    exc.log = log  # type: ignore[attr-defined]
    raise exc
