"""seccomp: OCI/Docker profiles compiled to classic BPF with libseccomp's decisions.

    from bpfkit import seccomp
    prof = seccomp.load_profile("docker-default")          # or a JSON file
    flt = seccomp.compile_profile(prof)                    # classic program for this machine
    flt.check("mkdir", [0, 0o755]).to_json()               # {"ret": ..., "action": "allow", ...}
    seccomp.run(flt, ["ls", "/"]).status                   # confined child; 0

A profile can also be built in Python::

    prof = seccomp.Profile.new("errno", errno=1)
    prof.add("allow", ["read", "write", "exit_group"])
    prof.add("errno", "openat", seccomp.Arg(2, "masked_eq", 0o3, 0o1), errno=13)

``trace`` writes a minimal allow-list profile by watching a command's system calls with
an eBPF program on ``raw_syscalls:sys_enter``.
"""

from .actions import action_name, action_value, describe
from .compiler import Decision, Filter, compile_profile
from .profile import (
    Arg,
    DockerContext,
    Profile,
    Rule,
    docker_default_path,
    load_profile,
    parse_profile,
)
from .tables import ARCHES, Arch, get_arch, native_arch, syscall_name, syscall_number

__all__ = [
    "ARCHES",
    "Arch",
    "Arg",
    "Decision",
    "DockerContext",
    "Filter",
    "Profile",
    "Rule",
    "action_name",
    "action_value",
    "compile_profile",
    "describe",
    "docker_default_path",
    "get_arch",
    "load_profile",
    "native_arch",
    "parse_profile",
    "syscall_name",
    "syscall_number",
]


def run(flt: Filter, argv: list[str], **kw):
    """Run ``argv`` confined by ``flt`` in a child; a ``RunResult`` (see :mod:`.install`)."""
    from .install import run as _run

    return _run(flt, argv, **kw)
