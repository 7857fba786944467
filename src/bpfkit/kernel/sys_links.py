"""Attachment commands: prog attach/detach/query, links, iterators, raw tracepoints.

Part of :mod:`bpfkit.kernel.sys` (which re-exports every public name).
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Sequence
from dataclasses import dataclass

from ..uapi.enums import Cmd
from .sys_attrs import (
    EnableStatsAttr,
    IterCreateAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    LinkUpdateAttr,
    ProgAttachAttr,
    QueryAttr,
    RawTracepointAttr,
    u32,
    u64,
)
from .sys_core import (
    ATTACH_PERF_EVENT,
    F_ID,
    F_QUERY_EFFECTIVE,
    F_REPLACE,
    STATS_RUN_TIME,
    FdLike,
    _addr,
    _buf,
    _call,
    _fail,
    bpf,
    fdnum,
)

# ---------------------------------------------------------------------------
# Attachment
# ---------------------------------------------------------------------------


def prog_attach(
    prog_fd: FdLike,
    target_fd: FdLike,
    attach_type: int,
    flags: int = 0,
    *,
    replace_prog_fd: FdLike = 0,
    relative_fd: FdLike = 0,
    relative_id: int = 0,
    expected_revision: int = 0,
) -> None:
    """Attach a program to a target (cgroup, sockmap, netns, ifindex for tcx...)."""
    attr = _attach_attr(
        prog_fd, target_fd, attach_type, flags, relative_fd, relative_id, expected_revision
    )
    attr.replace_bpf_fd = fdnum(replace_prog_fd)
    _call(Cmd.PROG_ATTACH, attr)


def _attach_attr(
    prog_fd: FdLike,
    target_fd: FdLike,
    attach_type: int,
    flags: int,
    relative_fd: FdLike,
    relative_id: int,
    expected_revision: int,
) -> ProgAttachAttr:
    """The attribute PROG_ATTACH and PROG_DETACH share (a relative id sets ``F_ID``)."""
    return ProgAttachAttr(
        target_fd=fdnum(target_fd),
        attach_bpf_fd=fdnum(prog_fd),
        attach_type=int(attach_type),
        attach_flags=flags | (F_ID if relative_id else 0),
        relative_fd=relative_id or fdnum(relative_fd),
        expected_revision=expected_revision,
    )


def prog_detach(
    target_fd: FdLike,
    attach_type: int,
    prog_fd: FdLike = 0,
    flags: int = 0,
    *,
    relative_fd: FdLike = 0,
    relative_id: int = 0,
    expected_revision: int = 0,
) -> None:
    """Detach a program (or the only one, when ``prog_fd`` is 0) from a target."""
    attr = _attach_attr(
        prog_fd, target_fd, attach_type, flags, relative_fd, relative_id, expected_revision
    )
    _call(Cmd.PROG_DETACH, attr)


@dataclass
class QueryResult:
    """Programs attached at a hook: ids, attach flags, per-program flags, link ids, revision."""

    attach_flags: int
    prog_ids: list[int]
    prog_attach_flags: list[int]
    link_ids: list[int]
    revision: int


def prog_query(target_fd: FdLike, attach_type: int, query_flags: int = 0) -> QueryResult:
    """List the programs attached to ``target_fd`` for ``attach_type``."""
    attr = QueryAttr(
        target_fd=fdnum(target_fd), attach_type=int(attach_type), query_flags=query_flags
    )
    _call(Cmd.PROG_QUERY, attr)
    n = attr.prog_cnt
    if not n:
        return QueryResult(attr.attach_flags, [], [], [], attr.revision)
    for _ in range(4):
        ids, flags, links = (u32 * n)(), (u32 * n)(), (u32 * n)()
        attr = QueryAttr(
            target_fd=fdnum(target_fd),
            attach_type=int(attach_type),
            query_flags=query_flags,
            prog_ids=ctypes.addressof(ids),
            prog_cnt=n,
        )
        if not query_flags & F_QUERY_EFFECTIVE:
            attr.prog_attach_flags = ctypes.addressof(flags)
            attr.link_ids = ctypes.addressof(links)
        res, err = bpf(Cmd.PROG_QUERY, attr)
        if res >= 0:
            break
        if err == errno.ENOSPC:  # more programs attached meanwhile
            n = max(attr.prog_cnt, n * 2)
            continue
        if err == errno.EINVAL and attr.prog_attach_flags:  # older kernel or hook
            attr.prog_attach_flags = attr.link_ids = 0
            attr.prog_cnt = n
            _call(Cmd.PROG_QUERY, attr)
            break
        raise _fail(Cmd.PROG_QUERY, err)
    else:
        raise _fail(Cmd.PROG_QUERY, errno.ENOSPC)
    m = min(attr.prog_cnt, n)
    return QueryResult(
        attr.attach_flags,
        list(ids[:m]),
        list(flags[:m]) if attr.prog_attach_flags else [],
        list(links[:m]) if attr.link_ids else [],
        attr.revision,
    )


def link_create(
    prog_fd: FdLike,
    target: FdLike,
    attach_type: int,
    flags: int = 0,
    *,
    target_btf_id: int = 0,
    cookie: int = 0,
    iter_info: bytes = b"",
    kprobe_syms: Sequence[str] | None = None,
    kprobe_addrs: Sequence[int] | None = None,
    kprobe_cookies: Sequence[int] | None = None,
    kprobe_flags: int = 0,
    relative_fd: FdLike = 0,
    relative_id: int = 0,
    expected_revision: int = 0,
    netfilter: tuple[int, int, int, int] | None = None,
) -> int:
    """Create a link attaching ``prog_fd`` to ``target`` (an fd or an ifindex); returns its fd.

    Per-kind extras: ``cookie`` (perf_event, or tracing with ``target_btf_id``),
    ``iter_info``, ``kprobe_*`` (kprobe_multi), ``relative_*``/``expected_revision``
    (tcx, netkit, cgroup mprog) and ``netfilter=(pf, hooknum, priority, flags)``.
    """
    attr = LinkCreateAttr(
        prog_fd=fdnum(prog_fd), target_fd=fdnum(target), attach_type=int(attach_type), flags=flags
    )
    keep: list[object] = []
    kinds = sum(
        bool(x)
        for x in (
            iter_info,
            kprobe_syms or kprobe_addrs,
            relative_fd or relative_id or expected_revision,
            netfilter,
        )
    )
    if kinds > 1 or (kinds and (cookie or target_btf_id)):
        raise ValueError("link_create: options of different link kinds given together")
    if iter_info:
        ib = _buf(iter_info)
        keep.append(ib)
        attr.iter.iter_info, attr.iter.iter_info_len = _addr(ib), len(iter_info)
    elif kprobe_syms or kprobe_addrs:
        km = attr.kprobe_multi
        km.flags = kprobe_flags
        if kprobe_syms:
            names = [ctypes.create_string_buffer(s.encode()) for s in kprobe_syms]
            arr = (ctypes.c_void_p * len(names))(*(ctypes.addressof(b) for b in names))
            keep += [names, arr]
            km.syms, km.cnt = ctypes.addressof(arr), len(names)
        if kprobe_addrs:
            if kprobe_syms:
                raise ValueError("kprobe_multi takes symbols or addresses, not both")
            addrs = (ctypes.c_ulong * len(kprobe_addrs))(*kprobe_addrs)
            keep.append(addrs)
            km.addrs, km.cnt = ctypes.addressof(addrs), len(kprobe_addrs)
        if kprobe_cookies:
            if len(kprobe_cookies) != km.cnt:
                raise ValueError("kprobe_cookies must match the symbols/addresses in number")
            cks = (u64 * km.cnt)(*kprobe_cookies)
            keep.append(cks)
            km.cookies = ctypes.addressof(cks)
    elif relative_fd or relative_id or expected_revision:
        if relative_id:
            attr.flags |= F_ID
        attr.tcx.relative_fd = relative_id or fdnum(relative_fd)
        attr.tcx.expected_revision = expected_revision
    elif netfilter:
        nf = attr.netfilter
        nf.pf, nf.hooknum, nf.priority, nf.flags = netfilter
    elif int(attach_type) == ATTACH_PERF_EVENT:
        attr.perf_event.bpf_cookie = cookie
    else:
        attr.tracing.target_btf_id = target_btf_id
        attr.tracing.cookie = cookie
    fd = _call(Cmd.LINK_CREATE, attr)
    del keep
    return fd


def link_update(
    link_fd: FdLike, new_prog_fd: FdLike, flags: int = 0, old_prog_fd: FdLike = 0
) -> None:
    """Replace the program behind a link (``old_prog_fd`` with ``F_REPLACE``)."""
    if fdnum(old_prog_fd):
        flags |= F_REPLACE
    _call(
        Cmd.LINK_UPDATE,
        LinkUpdateAttr(
            link_fd=fdnum(link_fd),
            new_prog_fd=fdnum(new_prog_fd),
            flags=flags,
            old_prog_fd=fdnum(old_prog_fd),
        ),
    )


def link_detach(link_fd: FdLike) -> None:
    """Detach a link's program while its fd stays open (``BPF_LINK_DETACH``)."""
    _call(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=fdnum(link_fd)))


def iter_create(link_fd: FdLike, flags: int = 0) -> int:
    """Open a readable iterator fd from an iterator link."""
    return _call(Cmd.ITER_CREATE, IterCreateAttr(link_fd=fdnum(link_fd), flags=flags))


def raw_tracepoint_open(name: str | None, prog_fd: FdLike, cookie: int = 0) -> int:
    """Attach a raw tracepoint program (``name=None`` for BTF ``tp_btf`` programs); returns a link fd."""
    nb = ctypes.create_string_buffer(name.encode()) if name else None
    attr = RawTracepointAttr(name=_addr(nb), prog_fd=fdnum(prog_fd), cookie=cookie)
    return _call(Cmd.RAW_TRACEPOINT_OPEN, attr)


def enable_stats(stats_type: int = STATS_RUN_TIME) -> int:
    """Enable run-time statistics while the returned fd stays open."""
    return _call(Cmd.ENABLE_STATS, EnableStatsAttr(type=stats_type))
