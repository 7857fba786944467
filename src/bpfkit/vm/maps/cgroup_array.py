"""``BPF_MAP_TYPE_CGROUP_ARRAY``: cgroups (v2 directories) by index, for cgroup filters.

BCC's tools keep one as an optional filter: ``bpf_current_task_under_cgroup(&map, 0)``
asks whether the running task is in the cgroup of slot 0 or below it. From Python a slot
is set, as through the syscall, from a file descriptor of a cgroup v2 directory — or from
the directory's path, or a :class:`Cgroup`. The helper compares the task's cgroup path
(``/proc/<tid>/cgroup``, or the VM task's ``cgroup``) with the slot's.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass

from ...uapi.enums import MapType
from ..helpers import HelperRegistry
from .base import _err
from .fdarray import FdArrayMap

__all__ = ["Cgroup", "CgroupArrayMap", "HELPERS", "cgroup2_mounts", "cgroup_id", "task_cgroup"]

_U32 = struct.Struct("<I")
HELPERS = HelperRegistry()
M64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Cgroup:
    """A cgroup v2 as the hierarchy names it (``/`` is the root; ``/a/b`` below it)."""

    path: str

    def contains(self, other: str) -> bool:
        """Whether cgroup ``other`` is this one or below it."""
        if self.path == "/":
            return True
        return other == self.path or other.startswith(self.path.rstrip("/") + "/")


def cgroup2_mounts() -> list[str]:
    """Where cgroup v2 is mounted (``/proc/self/mounts``)."""
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    out.append(parts[1].replace("\\040", " "))
    except OSError:
        pass
    return out


def _cgroup_of_dir(path: str) -> Cgroup | None:
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        return None
    for mnt in sorted(cgroup2_mounts(), key=len, reverse=True):
        if real == mnt or real.startswith(mnt.rstrip("/") + "/"):
            rel = os.path.relpath(real, mnt)
            return Cgroup("/" if rel == "." else "/" + rel)
    return None


def task_cgroup(tid: int | None = None) -> str:
    """The cgroup v2 path of thread ``tid`` (default: this one), ``"/"`` if unknown."""
    paths = [f"/proc/self/task/{tid}/cgroup", "/proc/self/cgroup"] if tid else ["/proc/self/cgroup"]
    for p in paths:
        try:
            with open(p) as f:
                for line in f:
                    if line.startswith("0::"):
                        return line[3:].strip() or "/"
        except OSError:
            continue
    return "/"


class CgroupArrayMap(FdArrayMap):
    """Slots hold :class:`Cgroup`s; programs ask ``bpf_current_task_under_cgroup``."""

    type = MapType.CGROUP_ARRAY

    def resolve(self, value: object) -> object:
        if isinstance(value, Cgroup):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            value = _U32.unpack(bytes(value))[0]
        if isinstance(value, str | os.PathLike):
            cg = _cgroup_of_dir(os.fspath(value))
            what = f"{os.fspath(value)!r} is not a cgroup v2 directory"
        elif isinstance(value, int):  # a file descriptor, as BPF_MAP_UPDATE_ELEM takes
            try:
                target = os.readlink(f"/proc/self/fd/{value}")
            except OSError:
                raise _err(errno.EBADF, "map_update_elem", f"no open fd {value}") from None
            cg = _cgroup_of_dir(target)
            what = f"fd {value} ({target}) is not a cgroup v2 directory"
        else:
            cg, what = None, f"{type(value).__name__} is not a cgroup"
        if cg is None:
            raise _err(errno.EBADF, "map_update_elem", what)
        return cg

    @staticmethod
    def sys_value(obj: object) -> int:
        return 0  # the kernel gives no id back for a cgroup


@HELPERS.register("current_task_under_cgroup")
def current_task_under_cgroup(env, r1, r2, *_):
    """1 if the task is in slot ``r2``'s cgroup or below; -E2BIG, -EAGAIN as the kernel."""
    m = env.runtime.maps_by_addr.get(r1)
    if not isinstance(m, CgroupArrayMap):
        from ...errors import RuntimeFault

        raise RuntimeFault(f"helper called with {r1:#x}, which is not a cgroup array", address=r1)
    idx = r2 & 0xFFFFFFFF
    if idx >= m.max_entries:
        return (-errno.E2BIG) & M64
    cg = m.slots[idx]
    if cg is None:
        return (-errno.EAGAIN) & M64
    task = env.runtime.task
    path = getattr(task, "cgroup", None) or task_cgroup(task.pid)
    return int(cg.contains(path))  # type: ignore[attr-defined]


def cgroup_id(path: str) -> int:
    """The kernel's id of cgroup ``path``: the inode number of its cgroup v2 directory."""
    for mnt in cgroup2_mounts():
        try:
            return os.stat(os.path.join(mnt, path.lstrip("/"))).st_ino
        except OSError:
            continue
    return 0


@HELPERS.register("get_current_cgroup_id")
def get_current_cgroup_id(env, *_):
    """The id of the task's cgroup v2 (0 without a cgroup v2 hierarchy)."""
    task = env.runtime.task
    return cgroup_id(getattr(task, "cgroup", None) or task_cgroup(task.pid))
