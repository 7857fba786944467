"""Attach a loaded program where its section says (``program.attach()``).

``kprobe/do_unlinkat`` → :func:`~bpfkit.kernel.kprobe.attach_kprobe`,
``tracepoint/syscalls/sys_enter_execve`` → :func:`~bpfkit.kernel.tracepoint.attach_tracepoint`,
``uprobe//usr/bin/bash:readline`` → :func:`~bpfkit.kernel.uprobe.attach_uprobe`,
``usdt/PATH:PROVIDER:NAME`` → :func:`~bpfkit.kernel.usdt.attach_usdt`, and so on.
Hooks that need a place the section cannot name take it as ``target``: an interface
for ``xdp`` and ``tc``, a cgroup directory for ``cgroup*``, a socket for ``socket``.
"""

from __future__ import annotations

from typing import Any

from ..errors import BpfError, NotSupported
from ..uapi.enums import ProgType
from .link import Link

__all__ = ["attach_program"]


def _need(target: Any, kind: str, what: str) -> Any:
    if target is None:
        raise BpfError(f"attaching a {kind} program needs a target: {what}")
    return target


def _usdt_target(where: str) -> tuple[str, str, str]:
    """``path:provider:name`` (libbpf's ``SEC("usdt/PATH:PROVIDER:NAME")``) split."""
    path, _, rest = where.rpartition(":")
    path, _, provider = path.rpartition(":")
    if not (path and provider and rest):
        raise BpfError(f"a USDT target is 'path:provider:name', not {where!r}")
    return path, provider, rest


def attach_program(program: Any, target: Any = None, **kw: Any) -> Link:
    """Attach ``program`` by its section's kind; ``target`` overrides or completes the section."""
    spec = program.spec
    kind = spec.attach_kind or ""
    sec_target = spec.attach_target
    ptype = int(spec.prog_type)
    if kind in ("kprobe", "kretprobe"):
        from .kprobe import attach_kprobe

        sym = _need(target or sec_target, kind, "a kernel function name")
        return attach_kprobe(program, sym, retprobe=kind == "kretprobe", **kw)
    if kind in ("ksyscall", "kretsyscall"):
        from .kprobe import attach_ksyscall

        sc = _need(target or sec_target, kind, "a system call name")
        return attach_ksyscall(program, sc, retprobe=kind == "kretsyscall")
    if kind in ("kprobe.multi", "kretprobe.multi"):
        from .kprobe import attach_kprobe_multi

        pat = _need(target or sec_target, kind, "a function glob")
        return attach_kprobe_multi(program, pat, retprobe=kind == "kretprobe.multi")
    if kind in ("uprobe", "uretprobe"):
        from .uprobe import attach_uprobe

        where = _need(target or sec_target, kind, "'path:function'")
        path, _, sym = where.rpartition(":") if ":" in where else (where, "", "")
        offset = 0
        if sym.startswith("0x") or sym.isdigit():
            offset, sym = int(sym, 0), ""
        return attach_uprobe(program, path, sym or None, offset, retprobe=kind == "uretprobe", **kw)
    if kind == "usdt":
        from .usdt import attach_usdt

        where = _need(target or sec_target, kind, "'path:provider:name'")
        path, provider, name = _usdt_target(where)
        return attach_usdt(program, path, provider, name, kw.pop("pid", None), **kw)
    if kind == "tracepoint":
        from .tracepoint import attach_tracepoint

        tp = _need(target or sec_target, kind, "'category/name'")
        return attach_tracepoint(program, tp, **kw)
    if kind == "raw_tracepoint":
        from .raw_tracepoint import attach_raw_tracepoint

        return attach_raw_tracepoint(program, _need(target or sec_target, kind, "a tracepoint"))
    if kind in ("fentry", "fexit", "fmod_ret", "tp_btf", "lsm"):
        from .tracing import attach_tracing

        return attach_tracing(program, **kw)
    if ptype == ProgType.XDP:
        from .xdp import attach_xdp

        return attach_xdp(program, _need(target, "xdp", "an interface"), **kw)
    if kind in ("tc", "tcx") or ptype in (ProgType.SCHED_CLS, ProgType.SCHED_ACT):
        from .tc import attach_tc

        return attach_tc(program, _need(target, "tc", "an interface"), **kw)
    if kind == "cgroup" or ptype in (
        ProgType.CGROUP_SKB,
        ProgType.CGROUP_SOCK,
        ProgType.CGROUP_SOCK_ADDR,
        ProgType.SOCK_OPS,
        ProgType.CGROUP_DEVICE,
        ProgType.CGROUP_SYSCTL,
        ProgType.CGROUP_SOCKOPT,
    ):
        from .cgroup import attach_cgroup

        return attach_cgroup(program, _need(target, "cgroup", "a cgroup v2 directory"), **kw)
    if ptype == ProgType.SOCKET_FILTER:
        from .socket import attach_socket_filter

        return attach_socket_filter(program, _need(target, "socket", "a socket"))
    if ptype == ProgType.SK_REUSEPORT:
        from .socket import attach_reuseport

        return attach_reuseport(program, _need(target, "sk_reuseport", "a socket"))
    if ptype == ProgType.PERF_EVENT:
        from .perf_event import attach_perf_event, sample_cpu_clock

        if target is not None:
            return attach_perf_event(program, target)
        return sample_cpu_clock(program, **kw)
    raise NotSupported(
        f"bpfkit cannot attach {program.type_name} programs of section {spec.section!r} yet"
    )
