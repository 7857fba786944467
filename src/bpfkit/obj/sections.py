"""ELF section name → program type, expected attach type and attach target.

The table follows libbpf's section-name conventions (``SEC("kprobe/do_unlinkat")``);
the first matching entry wins. A pattern ending in ``+`` matches the bare name or the
name followed by ``/extras``; one ending in ``/`` needs extras; any other matches
exactly. The extras become the program's attach target.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..btf.fields import Record
from ..uapi.attach import NewAttachType as NA
from ..uapi.attach import NewProgType
from ..uapi.enums import AttachType as A
from ..uapi.enums import ProgType as P

__all__ = [
    "SectionDef",
    "SECTION_DEFS",
    "match_section",
    "SLEEPABLE",
    "ATTACH_BTF",
    "XDP_FRAGS",
    "BPF_F_SLEEPABLE",
    "BPF_F_XDP_HAS_FRAGS",
]

# Program-load flags from linux/bpf.h.
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5

# Section-definition traits.
SLEEPABLE = 1 << 0
ATTACH_BTF = 1 << 1  # the attach target is a BTF name (fentry, lsm, tp_btf, iter, ...)
XDP_FRAGS = 1 << 2
USDT = 1 << 3


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SectionDef(Record):
    """One row of the table: a section pattern and what it means."""

    pattern: str
    prog_type: int
    attach_type: int | None
    traits: int = 0
    kind: str = ""  # the attach mechanism: "kprobe", "kretprobe", "uprobe", "tracepoint", ...

    def matches(self, name: str) -> bool:
        """Whether section ``name`` is covered by this pattern."""
        p = self.pattern
        if p.endswith("+"):
            base = p[:-1]
            return name == base or name.startswith(base + "/")
        if p.endswith("/"):
            return name.startswith(p)
        return name == p

    def target(self, name: str) -> str | None:
        """The attach target encoded after the pattern (``do_unlinkat`` of ``kprobe/do_unlinkat``)."""
        p = self.pattern
        if p.endswith("+"):
            base = p[:-1]
            return name[len(base) + 1 :] or None if name != base else None
        if p.endswith("/"):
            return name[len(p) :] or None
        return None


def _d(pattern: str, ptype: int, atype: int | None, traits: int = 0, kind: str = "") -> SectionDef:
    return SectionDef(pattern, ptype, atype, traits, kind or pattern.rstrip("+/").split("/")[0])


SECTION_DEFS: tuple[SectionDef, ...] = (
    _d("socket", P.SOCKET_FILTER, None),
    _d("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE),
    _d("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT),
    _d("kprobe+", P.KPROBE, None, kind="kprobe"),
    _d("uprobe+", P.KPROBE, None, kind="uprobe"),
    _d("uprobe.s+", P.KPROBE, None, SLEEPABLE, kind="uprobe"),
    _d("kretprobe+", P.KPROBE, None, kind="kretprobe"),
    _d("uretprobe+", P.KPROBE, None, kind="uretprobe"),
    _d("uretprobe.s+", P.KPROBE, None, SLEEPABLE, kind="uretprobe"),
    _d("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, kind="kprobe.multi"),
    _d("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, kind="kretprobe.multi"),
    _d("kprobe.session+", P.KPROBE, NA.TRACE_KPROBE_SESSION, kind="kprobe.session"),
    _d("uprobe.multi+", P.KPROBE, NA.TRACE_UPROBE_MULTI, kind="uprobe.multi"),
    _d("uretprobe.multi+", P.KPROBE, NA.TRACE_UPROBE_MULTI, kind="uretprobe.multi"),
    _d("uprobe.multi.s+", P.KPROBE, NA.TRACE_UPROBE_MULTI, SLEEPABLE, kind="uprobe.multi"),
    _d("uretprobe.multi.s+", P.KPROBE, NA.TRACE_UPROBE_MULTI, SLEEPABLE, kind="uretprobe.multi"),
    _d("uprobe.session+", P.KPROBE, NA.TRACE_UPROBE_SESSION, kind="uprobe.session"),
    _d("uprobe.session.s+", P.KPROBE, NA.TRACE_UPROBE_SESSION, SLEEPABLE, kind="uprobe.session"),
    _d("ksyscall+", P.KPROBE, None, kind="ksyscall"),
    _d("kretsyscall+", P.KPROBE, None, kind="kretsyscall"),
    _d("usdt+", P.KPROBE, None, USDT, kind="usdt"),
    _d("usdt.s+", P.KPROBE, None, USDT | SLEEPABLE, kind="usdt"),
    _d("tc/ingress", P.SCHED_CLS, NA.TCX_INGRESS, kind="tcx"),
    _d("tc/egress", P.SCHED_CLS, NA.TCX_EGRESS, kind="tcx"),
    _d("tcx/ingress", P.SCHED_CLS, NA.TCX_INGRESS, kind="tcx"),
    _d("tcx/egress", P.SCHED_CLS, NA.TCX_EGRESS, kind="tcx"),
    _d("tc", P.SCHED_CLS, None, kind="tc"),
    _d("classifier", P.SCHED_CLS, None, kind="tc"),
    _d("action", P.SCHED_ACT, None, kind="tc"),
    _d("netkit/primary", P.SCHED_CLS, NA.NETKIT_PRIMARY, kind="netkit"),
    _d("netkit/peer", P.SCHED_CLS, NA.NETKIT_PEER, kind="netkit"),
    _d("tracepoint+", P.TRACEPOINT, None, kind="tracepoint"),
    _d("tp+", P.TRACEPOINT, None, kind="tracepoint"),
    _d("raw_tracepoint+", P.RAW_TRACEPOINT, None, kind="raw_tracepoint"),
    _d("raw_tp+", P.RAW_TRACEPOINT, None, kind="raw_tracepoint"),
    _d("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, None, kind="raw_tracepoint"),
    _d("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, None, kind="raw_tracepoint"),
    _d("tp_btf+", P.TRACING, A.TRACE_RAW_TP, ATTACH_BTF, kind="tp_btf"),
    _d("fentry+", P.TRACING, A.TRACE_FENTRY, ATTACH_BTF, kind="fentry"),
    _d("fmod_ret+", P.TRACING, A.MODIFY_RETURN, ATTACH_BTF, kind="fmod_ret"),
    _d("fexit+", P.TRACING, A.TRACE_FEXIT, ATTACH_BTF, kind="fexit"),
    _d("fentry.s+", P.TRACING, A.TRACE_FENTRY, ATTACH_BTF | SLEEPABLE, kind="fentry"),
    _d("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, ATTACH_BTF | SLEEPABLE, kind="fmod_ret"),
    _d("fexit.s+", P.TRACING, A.TRACE_FEXIT, ATTACH_BTF | SLEEPABLE, kind="fexit"),
    _d("freplace+", P.EXT, None, ATTACH_BTF, kind="freplace"),
    _d("lsm+", P.LSM, A.LSM_MAC, ATTACH_BTF, kind="lsm"),
    _d("lsm.s+", P.LSM, A.LSM_MAC, ATTACH_BTF | SLEEPABLE, kind="lsm"),
    _d("lsm_cgroup+", P.LSM, A.LSM_CGROUP, ATTACH_BTF, kind="lsm_cgroup"),
    _d("iter+", P.TRACING, A.TRACE_ITER, ATTACH_BTF, kind="iter"),
    _d("iter.s+", P.TRACING, A.TRACE_ITER, ATTACH_BTF | SLEEPABLE, kind="iter"),
    _d("syscall", P.SYSCALL, None, SLEEPABLE),
    _d("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, XDP_FRAGS, kind="xdp"),
    _d("xdp/devmap", P.XDP, A.XDP_DEVMAP, kind="xdp"),
    _d("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, XDP_FRAGS, kind="xdp"),
    _d("xdp/cpumap", P.XDP, A.XDP_CPUMAP, kind="xdp"),
    _d("xdp.frags", P.XDP, A.XDP, XDP_FRAGS, kind="xdp"),
    _d("xdp", P.XDP, A.XDP),
    _d("perf_event", P.PERF_EVENT, None),
    _d("lwt_in", P.LWT_IN, None),
    _d("lwt_out", P.LWT_OUT, None),
    _d("lwt_xmit", P.LWT_XMIT, None),
    _d("lwt_seg6local", P.LWT_SEG6LOCAL, None),
    _d("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, kind="cgroup"),
    _d("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, kind="sk_skb"),
    _d("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, kind="sk_skb"),
    _d("sk_skb", P.SK_SKB, None, kind="sk_skb"),
    _d("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT),
    _d("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2),
    _d("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR),
    _d("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, kind="cgroup"),
    _d("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, kind="cgroup"),
    _d("cgroup/skb", P.CGROUP_SKB, None, kind="cgroup"),
    _d("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, kind="cgroup"),
    _d("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, kind="cgroup"),
    _d("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, kind="cgroup"),
    _d("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, kind="cgroup"),
    _d("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, kind="cgroup"),
    _d("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, kind="cgroup"),
    _d("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, kind="cgroup"),
    _d("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, kind="cgroup"),
    _d("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, kind="cgroup"),
    _d("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, NA.CGROUP_UNIX_CONNECT, kind="cgroup"),
    _d("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, kind="cgroup"),
    _d("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, kind="cgroup"),
    _d("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, NA.CGROUP_UNIX_SENDMSG, kind="cgroup"),
    _d("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, kind="cgroup"),
    _d("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, kind="cgroup"),
    _d("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, NA.CGROUP_UNIX_RECVMSG, kind="cgroup"),
    _d("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, kind="cgroup"),
    _d("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, kind="cgroup"),
    _d("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, NA.CGROUP_UNIX_GETPEERNAME, kind="cgroup"),
    _d("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, kind="cgroup"),
    _d("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, kind="cgroup"),
    _d("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, NA.CGROUP_UNIX_GETSOCKNAME, kind="cgroup"),
    _d("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, kind="cgroup"),
    _d("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, kind="cgroup"),
    _d("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, kind="cgroup"),
    _d("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, kind="cgroup"),
    _d("struct_ops+", P.STRUCT_OPS, None, kind="struct_ops"),
    _d("struct_ops.s+", P.STRUCT_OPS, None, SLEEPABLE, kind="struct_ops"),
    _d("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP),
    _d("netfilter", NewProgType.NETFILTER, NA.NETFILTER),
)

_UNKNOWN = SectionDef("", P.UNSPEC, None, 0, "")


def match_section(name: str) -> tuple[SectionDef, str | None]:
    """The table row for section ``name`` and its attach target (``UNSPEC`` row if none)."""
    for d in SECTION_DEFS:
        if d.matches(name):
            return d, d.target(name)
    return _UNKNOWN, None
