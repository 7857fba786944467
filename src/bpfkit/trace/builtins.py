"""bpftrace's builtin variables and functions: names, arity, and where they are allowed."""

from __future__ import annotations

import re

_ARG_RE = re.compile(r"arg([0-9]+)$|sarg([0-9]+)$")

#: builtin variable -> what it is (for ``-l -v`` style listings and error messages)
VARIABLES: dict[str, str] = {
    "pid": "process id (tgid)",
    "tid": "thread id",
    "uid": "user id",
    "gid": "group id",
    "nsecs": "CLOCK_MONOTONIC nanoseconds (ktime_get_ns)",
    "elapsed": "nanoseconds since the program started",
    "numaid": "NUMA node of the CPU",
    "cpu": "processor id",
    "comm": "process name (16 bytes)",
    "kstack": "kernel stack",
    "ustack": "user stack",
    "stack": "kernel stack",
    "func": "traced function",
    "probe": "full name of the probe",
    "curtask": "current task_struct pointer",
    "rand": "a random u32",
    "cgroup": "cgroup v2 id of the current task",
    "cpid": "pid of the -c command",
    "retval": "return value (uretprobe, kretprobe)",
    "args": "the probe's arguments (tracepoint fields)",
    "ctx": "the program's context pointer",
    "username": "user name of uid",
    "jiffies": "jiffies",
}

#: function -> (min args, max args)
FUNCTIONS: dict[str, tuple[int, int]] = {
    "printf": (1, 64),
    "time": (0, 1),
    "join": (1, 2),
    "str": (1, 2),
    "buf": (1, 2),
    "ksym": (1, 1),
    "usym": (1, 1),
    "kaddr": (1, 1),
    "uaddr": (1, 1),
    "ntop": (1, 2),
    "reg": (1, 1),
    "cgroupid": (1, 1),
    "strncmp": (3, 3),
    "exit": (0, 0),
    "print": (1, 3),
    "clear": (1, 1),
    "zero": (1, 1),
    "delete": (1, 2),
    "count": (0, 0),
    "sum": (1, 1),
    "avg": (1, 1),
    "min": (1, 1),
    "max": (1, 1),
    "stats": (1, 1),
    "hist": (1, 1),
    "lhist": (4, 4),
    "system": (1, 64),
    "signal": (1, 1),
    "cat": (1, 64),
    "macaddr": (1, 1),
    "bswap": (1, 1),
    "kstack": (0, 2),
    "ustack": (0, 2),
    "cgroup_path": (1, 2),
    "strftime": (2, 2),
    "path": (1, 1),
    "kptr": (1, 1),
    "uptr": (1, 1),
    "override": (1, 1),
    "strerror": (1, 1),
    "pton": (1, 1),
    "strcontains": (2, 2),
}

UNSAFE = ("system", "signal", "override")
AGG_FUNCS = ("count", "sum", "avg", "min", "max", "stats", "hist", "lhist")


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a builtin variable (``pid``, ``arg3``, ``sarg0`` ...)."""
    return name in VARIABLES or _ARG_RE.match(name) is not None


def arg_index(name: str) -> tuple[int, bool] | None:
    """``arg3`` -> (3, False); ``sarg1`` -> (1, True) (stack argument); else ``None``."""
    m = _ARG_RE.match(name)
    if not m:
        return None
    if m.group(1) is not None:
        return int(m.group(1)), False
    return int(m.group(2)), True
