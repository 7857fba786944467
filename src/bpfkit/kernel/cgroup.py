"""Attach cgroup programs (``cgroup_skb``, ``cgroup/sock``, ``sockops``, ...) to a cgroup v2.

The default is a ``BPF_LINK_TYPE_CGROUP`` link on the cgroup directory (5.7+): several
programs may be attached, each detached by closing its link. ``legacy=True`` uses
``BPF_PROG_ATTACH`` with ``BPF_F_ALLOW_MULTI`` and ``BPF_PROG_DETACH`` on close.
"""

from __future__ import annotations

import errno
import functools
import os
from typing import Any

from ..errors import BpfError, KernelError, NotSupported
from . import sys as bsys
from .link import Link

__all__ = ["attach_cgroup", "cgroup2_root", "cgroup_id"]


@functools.cache
def cgroup2_root() -> str:
    """Where the cgroup v2 hierarchy is mounted."""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        pass
    raise NotSupported("no cgroup v2 hierarchy is mounted (mount -t cgroup2 none DIR)")


def cgroup_id(path: str) -> int:
    """The id of a cgroup v2 directory (its inode number, as ``bpf_get_current_cgroup_id``)."""
    return os.stat(path).st_ino


def attach_cgroup(
    program: Any,
    cgroup: str | int,
    attach_type: int | None = None,
    *,
    legacy: bool = False,
    flags: int = 0,
) -> Link:
    """Attach to cgroup ``cgroup`` (a directory path or an open fd).

    ``attach_type`` defaults to the program's expected attach type (from its section,
    e.g. ``cgroup_skb/egress`` → ``BPF_CGROUP_INET_EGRESS``).
    """
    if attach_type is None:
        spec = getattr(program, "spec", None)
        attach_type = getattr(spec, "expected_attach_type", None)
        if attach_type is None:
            raise BpfError("give attach_type: the program's section does not name one")
    pfd = program.fd if hasattr(program, "fd") else bsys.fdnum(program)
    if isinstance(cgroup, int):
        cgfd = bsys.FD(os.dup(cgroup))
        where: Any = cgroup
    else:
        try:
            cgfd = bsys.FD(os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as e:
            raise KernelError(
                e.errno or errno.ENOENT, "open(cgroup)", f"{cgroup}: {e.strerror}"
            ) from None
        where = cgroup
    if not legacy:
        try:
            fd = bsys.link_create(pfd, cgfd, int(attach_type), flags)
            return Link(fd, "cgroup", target=where, program=program, extra_fds=[cgfd])
        except KernelError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, bsys.ENOTSUPP):
                cgfd.close()
                raise
    try:
        bsys.prog_attach(pfd, cgfd, int(attach_type), flags or bsys.F_ALLOW_MULTI)
    except BaseException:
        cgfd.close()
        raise
    prog_dup = bsys.FD(os.dup(pfd))

    def detach() -> None:
        try:
            bsys.prog_detach(cgfd, int(attach_type), prog_dup)
        except KernelError as e:
            if e.errno != errno.ENOENT:
                raise
        finally:
            prog_dup.close()
            cgfd.close()

    return Link(None, "cgroup", target=where, program=program, cleanup=[detach])
