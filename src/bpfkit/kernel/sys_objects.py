"""Object commands: pinning, information by descriptor, enumeration by id.

Part of :mod:`bpfkit.kernel.sys` (which re-exports every public name).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..uapi.enums import Cmd, LinkType, MapType, ProgType
from .sys_attrs import (
    BpfBtfInfo,
    BpfLinkInfo,
    BpfMapInfo,
    BpfProgInfo,
    GetIdAttr,
    InfoAttr,
    ObjAttr,
    u32,
    u64,
)
from .sys_core import F_PATH_FD, FD, FdLike, _addr, _call, _enum, _fail, bpf, fdnum

# ---------------------------------------------------------------------------
# Pinning
# ---------------------------------------------------------------------------


def obj_pin(fd: FdLike, path: str | os.PathLike[str], *, path_fd: int | None = None) -> None:
    """Pin an object at ``path`` on a bpf filesystem."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=_addr(p), bpf_fd=fdnum(fd))
    if path_fd is not None:
        attr.path_fd, attr.file_flags = path_fd, F_PATH_FD
    _call(Cmd.OBJ_PIN, attr)


class Pinnable:
    """``pin``/``unpin`` of a BPF object held through an owned fd (``self._fd``)."""

    __slots__ = ()
    _fd: FD | None
    pinned: str | None

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin in bpffs."""
        obj_pin(self._fd, path)  # type: ignore[arg-type]
        self.pinned = os.fspath(path)

    def unpin(self) -> None:
        """Remove the pin made by :meth:`pin` (or made when loading, with ``pinning``)."""
        if self.pinned:
            os.unlink(self.pinned)
            self.pinned = None


def obj_get(path: str | os.PathLike[str], flags: int = 0, *, path_fd: int | None = None) -> int:
    """Open a pinned object (``flags``: ``F_RDONLY``/``F_WRONLY``); returns an owned fd."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=_addr(p), file_flags=flags)
    if path_fd is not None:
        attr.path_fd = path_fd
        attr.file_flags |= F_PATH_FD
    return _call(Cmd.OBJ_GET, attr)


# ---------------------------------------------------------------------------
# Object information
# ---------------------------------------------------------------------------


def _get_info(fd: FdLike, info: ctypes.Structure) -> int:
    attr = InfoAttr(bpf_fd=fdnum(fd), info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _call(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return attr.info_len


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


@dataclass
class ProgInfo:
    """A loaded program, as ``BPF_OBJ_GET_INFO_BY_FD`` describes it."""

    type: int
    id: int
    tag: str
    name: str
    jited_prog_len: int
    xlated_prog_len: int
    load_time: int
    created_by_uid: int
    map_ids: tuple[int, ...]
    ifindex: int
    gpl_compatible: bool
    netns_dev: int
    netns_ino: int
    btf_id: int
    nr_func_info: int
    nr_line_info: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    attach_btf_obj_id: int
    attach_btf_id: int
    xlated: bytes | None = field(default=None, repr=False)
    jited: bytes | None = field(default=None, repr=False)


def prog_info(fd: FdLike, *, xlated: bool = False, jited: bool = False) -> ProgInfo:
    """Describe a program; optionally fetch its translated and JIT-compiled code."""
    info = BpfProgInfo()
    _get_info(fd, info)
    nmaps = info.nr_map_ids
    map_ids: tuple[int, ...] = ()
    xl = jt = None
    if nmaps or xlated or jited:
        again = BpfProgInfo()
        ids = (u32 * max(nmaps, 1))()
        again.nr_map_ids, again.map_ids = nmaps, ctypes.addressof(ids)
        if xlated and info.xlated_prog_len:
            xbuf = ctypes.create_string_buffer(info.xlated_prog_len)
            again.xlated_prog_len, again.xlated_prog_insns = info.xlated_prog_len, _addr(xbuf)
        if jited and info.jited_prog_len:
            jbuf = ctypes.create_string_buffer(info.jited_prog_len)
            again.jited_prog_len, again.jited_prog_insns = info.jited_prog_len, _addr(jbuf)
        _get_info(fd, again)
        map_ids = tuple(ids[: min(nmaps, again.nr_map_ids)])
        if xlated:
            xl = xbuf.raw[: again.xlated_prog_len] if info.xlated_prog_len else b""
        if jited:
            jt = jbuf.raw[: again.jited_prog_len] if info.jited_prog_len else b""
    return ProgInfo(
        type=_enum(ProgType, info.type),
        id=info.id,
        tag=bytes(info.tag).hex(),
        name=_cstr(info.name),
        jited_prog_len=info.jited_prog_len,
        xlated_prog_len=info.xlated_prog_len,
        load_time=info.load_time,
        created_by_uid=info.created_by_uid,
        map_ids=map_ids,
        ifindex=info.ifindex,
        gpl_compatible=bool(info.gpl_compatible & 1),
        netns_dev=info.netns_dev,
        netns_ino=info.netns_ino,
        btf_id=info.btf_id,
        nr_func_info=info.nr_func_info,
        nr_line_info=info.nr_line_info,
        run_time_ns=info.run_time_ns,
        run_cnt=info.run_cnt,
        recursion_misses=info.recursion_misses,
        verified_insns=info.verified_insns,
        attach_btf_obj_id=info.attach_btf_obj_id,
        attach_btf_id=info.attach_btf_id,
        xlated=xl,
        jited=jt,
    )


@dataclass
class ProgDebugInfo:
    """What a listing of a loaded program needs: its translated code and debug records.

    ``func_info`` holds ``(insn_off, btf_type_id)`` and ``line_info`` holds ``(insn_off,
    file_name_off, line_off, line_col)``, both in translated-instruction slots and both
    naming strings and types of the program's BTF (``btf_id``); ``jited_ksyms`` are the
    addresses of the JIT-compiled functions (empty when not JIT-compiled or hidden).
    """

    id: int
    btf_id: int
    xlated: bytes
    func_info: list[tuple[int, int]]
    line_info: list[tuple[int, int, int, int]]
    jited_ksyms: tuple[int, ...]


def prog_debug_info(fd: FdLike) -> ProgDebugInfo:
    """The translated instructions of a program with its func/line info (``bpftool prog
    dump xlated`` reads the same)."""
    info = BpfProgInfo()
    _get_info(fd, info)
    again = BpfProgInfo()
    xbuf = ctypes.create_string_buffer(max(info.xlated_prog_len, 1))
    again.xlated_prog_len, again.xlated_prog_insns = info.xlated_prog_len, _addr(xbuf)
    nf, nl, nk = info.nr_func_info, info.nr_line_info, info.nr_jited_ksyms
    fbuf = (u32 * max(2 * nf, 1))()
    lbuf = (u32 * max(4 * nl, 1))()
    kbuf = (u64 * max(nk, 1))()
    if nf:
        again.nr_func_info, again.func_info_rec_size, again.func_info = nf, 8, _addr(fbuf)
    if nl:
        again.nr_line_info, again.line_info_rec_size, again.line_info = nl, 16, _addr(lbuf)
    if nk:
        again.nr_jited_ksyms, again.jited_ksyms = nk, _addr(kbuf)
    _get_info(fd, again)
    nf, nl = min(nf, again.nr_func_info), min(nl, again.nr_line_info)
    return ProgDebugInfo(
        id=info.id,
        btf_id=info.btf_id,
        xlated=xbuf.raw[: again.xlated_prog_len],
        func_info=[(fbuf[2 * i], fbuf[2 * i + 1]) for i in range(nf)],
        line_info=[tuple(lbuf[4 * i : 4 * i + 4]) for i in range(nl)],  # type: ignore[misc]
        jited_ksyms=tuple(kbuf[: min(nk, again.nr_jited_ksyms)]) if nk else (),
    )


@dataclass
class MapInfo:
    """A map, as ``BPF_OBJ_GET_INFO_BY_FD`` describes it."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    ifindex: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    netns_dev: int
    netns_ino: int
    map_extra: int


def map_info(fd: FdLike) -> MapInfo:
    """Describe a map."""
    info = BpfMapInfo()
    _get_info(fd, info)
    return MapInfo(
        type=_enum(MapType, info.type),
        id=info.id,
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        map_flags=info.map_flags,
        name=_cstr(info.name),
        ifindex=info.ifindex,
        btf_id=info.btf_id,
        btf_key_type_id=info.btf_key_type_id,
        btf_value_type_id=info.btf_value_type_id,
        btf_vmlinux_value_type_id=info.btf_vmlinux_value_type_id,
        netns_dev=info.netns_dev,
        netns_ino=info.netns_ino,
        map_extra=info.map_extra,
    )


@dataclass
class BtfInfo:
    """A loaded BTF object."""

    id: int
    btf_size: int
    name: str
    kernel_btf: bool
    data: bytes | None = field(default=None, repr=False)


def btf_info(fd: FdLike, *, data: bool = False) -> BtfInfo:
    """Describe a BTF object; optionally fetch its raw bytes."""
    name = ctypes.create_string_buffer(512)
    info = BpfBtfInfo(name=_addr(name), name_len=len(name))
    _get_info(fd, info)
    raw = None
    if data:
        size = info.btf_size
        buf = ctypes.create_string_buffer(max(size, 1))
        again = BpfBtfInfo(btf=_addr(buf), btf_size=size)
        _get_info(fd, again)
        raw = buf.raw[:size]
    return BtfInfo(
        id=info.id,
        btf_size=info.btf_size,
        name=name.value.decode(errors="replace"),
        kernel_btf=bool(info.kernel_btf),
        data=raw,
    )


@dataclass
class LinkInfo:
    """A link: its type, id, program, and per-kind details (``raw`` holds the union bytes)."""

    type: int
    id: int
    prog_id: int
    details: dict = field(default_factory=dict)
    raw: bytes = field(default=b"", repr=False)


_LINK_NETFILTER, _LINK_TCX, _LINK_UPROBE_MULTI, _LINK_NETKIT = 10, 11, 12, 13


def _link_details(ltype: int, raw: bytes) -> dict:
    import struct

    def u32s(n: int, off: int = 0) -> tuple[int, ...]:
        return struct.unpack_from(f"<{n}I", raw, off)

    if ltype == LinkType.TRACING:
        at, obj, btf = u32s(3)
        return {"attach_type": at, "target_obj_id": obj, "target_btf_id": btf}
    if ltype == LinkType.CGROUP:
        cg, at = struct.unpack_from("<QI", raw)
        return {"cgroup_id": cg, "attach_type": at}
    if ltype == LinkType.NETNS:
        ino, at = u32s(2)
        return {"netns_ino": ino, "attach_type": at}
    if ltype == LinkType.XDP:
        return {"ifindex": u32s(1)[0]}
    if ltype in (_LINK_TCX, _LINK_NETKIT):
        ifindex, at = u32s(2)
        return {"ifindex": ifindex, "attach_type": at}
    if ltype == _LINK_NETFILTER:
        pf, hook, prio, flags = struct.unpack_from("<IIiI", raw)
        return {"pf": pf, "hooknum": hook, "priority": prio, "flags": flags}
    return {}


def link_info(fd: FdLike) -> LinkInfo:
    """Describe a link (raw tracepoint links also report their tracepoint name)."""
    info = BpfLinkInfo()
    _get_info(fd, info)
    raw = bytes(info.u)
    details = _link_details(info.type, raw)
    if info.type == LinkType.RAW_TRACEPOINT:
        name = ctypes.create_string_buffer(256)
        again = BpfLinkInfo()
        ctypes.memmove(ctypes.addressof(again.u), ctypes.byref(u64(_addr(name))), 8)
        ctypes.memmove(ctypes.addressof(again.u) + 8, ctypes.byref(u32(len(name))), 4)
        _get_info(fd, again)
        details["tp_name"] = name.value.decode(errors="replace")
    return LinkInfo(
        type=_enum(LinkType, info.type), id=info.id, prog_id=info.prog_id, details=details, raw=raw
    )


# ---------------------------------------------------------------------------
# Enumeration by id
# ---------------------------------------------------------------------------


def _next_id(cmd: int, start_id: int) -> int | None:
    attr = GetIdAttr(start_id=start_id)
    res, err = bpf(cmd, attr)
    if res < 0:
        if err == errno.ENOENT:
            return None
        raise _fail(cmd, err)
    return attr.next_id


def prog_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next loaded program after ``start_id``, or ``None``."""
    return _next_id(Cmd.PROG_GET_NEXT_ID, start_id)


def map_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next map after ``start_id``, or ``None``."""
    return _next_id(Cmd.MAP_GET_NEXT_ID, start_id)


def link_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next link after ``start_id``, or ``None``."""
    return _next_id(Cmd.LINK_GET_NEXT_ID, start_id)


def btf_get_next_id(start_id: int = 0) -> int | None:
    """The id of the next BTF object after ``start_id``, or ``None``."""
    return _next_id(Cmd.BTF_GET_NEXT_ID, start_id)


def _ids(cmd: int) -> Iterator[int]:
    cur = 0
    while (cur := _next_id(cmd, cur)) is not None:
        yield cur


def prog_ids() -> Iterator[int]:
    """Ids of all loaded programs."""
    return _ids(Cmd.PROG_GET_NEXT_ID)


def map_ids() -> Iterator[int]:
    """Ids of all maps."""
    return _ids(Cmd.MAP_GET_NEXT_ID)


def link_ids() -> Iterator[int]:
    """Ids of all links."""
    return _ids(Cmd.LINK_GET_NEXT_ID)


def btf_ids() -> Iterator[int]:
    """Ids of all BTF objects."""
    return _ids(Cmd.BTF_GET_NEXT_ID)


def prog_get_fd_by_id(prog_id: int, open_flags: int = 0) -> int:
    """Open the program with this id; returns an owned fd."""
    return _call(Cmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=prog_id, open_flags=open_flags))


def map_get_fd_by_id(map_id: int, open_flags: int = 0) -> int:
    """Open the map with this id; returns an owned fd."""
    return _call(Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=map_id, open_flags=open_flags))


def link_get_fd_by_id(link_id: int, open_flags: int = 0) -> int:
    """Open the link with this id; returns an owned fd."""
    return _call(Cmd.LINK_GET_FD_BY_ID, GetIdAttr(start_id=link_id, open_flags=open_flags))


def btf_get_fd_by_id(btf_id: int, open_flags: int = 0) -> int:
    """Open the BTF object with this id; returns an owned fd."""
    return _call(Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=btf_id, open_flags=open_flags))
