"""seccomp filter return values (``SECCOMP_RET_*`` of ``<linux/seccomp.h>``) and their names.

A filter returns a 32-bit value: the action in the high 16 bits, data (an errno for
``ERRNO``, a message for ``TRACE``) in the low 16. The profile formats name actions
``SCMP_ACT_*``; JSON output names them in lower case (``"errno"``).
"""

from __future__ import annotations

from ..errors import NotSupported, ProfileError

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF

EPERM = 1

_NAMES = {
    RET_KILL_PROCESS: "kill_process",
    RET_KILL_THREAD: "kill_thread",
    RET_TRAP: "trap",
    RET_ERRNO: "errno",
    RET_USER_NOTIF: "user_notif",
    RET_TRACE: "trace",
    RET_LOG: "log",
    RET_ALLOW: "allow",
}

# Profile spelling -> (base value, takes an errno)
_ACTIONS = {
    "allow": (RET_ALLOW, False),
    "errno": (RET_ERRNO, True),
    "kill": (RET_KILL_THREAD, False),
    "kill_thread": (RET_KILL_THREAD, False),
    "kill_process": (RET_KILL_PROCESS, False),
    "trap": (RET_TRAP, False),
    "trace": (RET_TRACE, True),
    "log": (RET_LOG, False),
}


def action_value(name: str, errno_ret: int | None = None, *, field: str = "action") -> int:
    """The filter return value for an action name (``SCMP_ACT_ERRNO``, ``errno`` ...).

    ``errno_ret`` is the data of ``ERRNO`` and ``TRACE`` (default ``EPERM``, as runc
    and Docker use); giving it to another action is an error, as the OCI spec says.
    ``SCMP_ACT_NOTIFY`` raises ``NotSupported`` (bpfkit has no notification listener).
    """
    if not isinstance(name, str):
        raise ProfileError(f"{field}: expected an action name, got {type(name).__name__}")
    key = name.strip().lower()
    if key.startswith("scmp_act_"):
        key = key[len("scmp_act_") :]
    if key in ("notify", "user_notif"):
        raise NotSupported(
            f"{field}: SCMP_ACT_NOTIFY needs a user-space notification listener, "
            "which bpfkit does not provide"
        )
    if key not in _ACTIONS:
        raise ProfileError(f"{field}: unknown action {name!r}")
    base, takes_errno = _ACTIONS[key]
    if errno_ret is None:
        return base | (EPERM if takes_errno else 0)
    if not takes_errno:
        raise ProfileError(f"{field}: errnoRet given for action {name}, which returns no errno")
    if (
        isinstance(errno_ret, bool)
        or not isinstance(errno_ret, int)
        or not 0 <= errno_ret <= 0xFFFF
    ):
        raise ProfileError(f"{field}: errnoRet {errno_ret!r} is not an integer in 0..65535")
    return base | errno_ret


def action_name(ret: int) -> str:
    """``"errno"``, ``"allow"`` ... for a filter return value (``"unknown"`` otherwise).

    The kernel treats an unknown action like ``KILL_PROCESS``.
    """
    return _NAMES.get(ret & RET_ACTION_FULL, "unknown")


def describe(ret: int) -> dict[str, int | str]:
    """``{"ret": ..., "action": ..., "data": ...}`` for one decision."""
    ret &= 0xFFFFFFFF
    return {"ret": ret, "action": action_name(ret), "data": ret & RET_DATA}


def spell(ret: int) -> str:
    """A profile action spelling for ``ret`` (``SCMP_ACT_ERRNO(1)``-style, for listings)."""
    name = action_name(ret)
    if name in ("errno", "trace"):
        return f"{name.upper()}({ret & RET_DATA})"
    return name.upper()
