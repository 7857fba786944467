"""Attach a program to a USDT probe of a binary, for libbpf's ``usdt.bpf.h``.

A USDT handler (``SEC("usdt")``, ``BPF_USDT(...)``) finds the description of the probe
that fired in two maps ``usdt.bpf.h`` defines: ``__bpf_usdt_specs`` (spec id →
``struct __bpf_usdt_spec``: where each argument lives, the user's cookie) and, on
kernels without BPF cookies, ``__bpf_usdt_ip_to_spec_id`` (the probe's address in the
traced process → spec id). :func:`attach_usdt` reads the probe's sites from the
binary's ``.note.stapsdt`` (:mod:`bpfkit.obj.usdt`), writes one spec per distinct
argument layout into those maps, and puts a uprobe on every site — with the spec id as
its BPF cookie, and the probe's semaphore as the uprobe's reference counter, so the
kernel raises the semaphore in every process running the binary while attached.
Closing the link removes the uprobes and frees the spec ids.

The spec layout is that of ``usdt.bpf.h`` (16-byte ``__bpf_usdt_arg_spec`` × 12, the
cookie, the argument count; 208 bytes).
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

from ..errors import BpfError, NotSupported
from ..obj.usdt import USDT_MAX_ARGS, UsdtProbe, find_usdt
from .link import Link, MultiLink, _call_all
from .uprobe import attach_uprobe, find_binary

__all__ = ["attach_usdt", "encode_spec", "SPEC_SIZE", "UsdtLink"]

_ARG = struct.Struct("<QihBb")  # val_off, arg_type, reg_off, arg_signed, arg_bitshift
_TAIL = struct.Struct("<Qh")  # usdt_cookie, arg_cnt
#: sizeof(struct __bpf_usdt_spec)
SPEC_SIZE = (_ARG.size * USDT_MAX_ARGS + _TAIL.size + 7) & ~7

_lock = threading.Lock()
#: spec ids in use, per ``__bpf_usdt_specs`` map (kernel map id)
_used: dict[int, set[int]] = {}


def encode_spec(probe: UsdtProbe, cookie: int = 0) -> bytes:
    """``struct __bpf_usdt_spec`` of one probe site."""
    bad = [a for a in probe.args if not a.supported]
    if bad:
        raise NotSupported(
            f"USDT probe {probe.provider}:{probe.name}: argument {bad[0].spec!r}: {bad[0].reason}"
        )
    out = bytearray()
    for a in probe.args:
        s = a.libbpf_spec()
        out += _ARG.pack(
            int(s["val_off"]),
            int(s["arg_type"]),
            int(s["reg_off"]),
            int(bool(s["arg_signed"])),
            int(s["arg_bitshift"]),
        )
    out = out.ljust(_ARG.size * USDT_MAX_ARGS, b"\0")
    out += _TAIL.pack(cookie & 0xFFFFFFFFFFFFFFFF, len(probe.args))
    return bytes(out.ljust(SPEC_SIZE, b"\0"))


class UsdtLink(MultiLink):
    """The uprobes of one USDT attachment; closing them also frees their spec ids."""

    def __init__(self, links: list[Link], target: Any, release: list) -> None:
        super().__init__(links, "usdt", target=target)
        self._release_specs = release

    def _release(self) -> None:
        try:
            super()._release()
        finally:
            fns, self._release_specs = self._release_specs, []
            _call_all(fns)


def _usdt_maps(program: Any) -> tuple[Any, Any, bool]:
    """The ``__bpf_usdt_specs`` and ``__bpf_usdt_ip_to_spec_id`` maps the program uses,
    and whether they were opened here (and must be closed with the link)."""
    owner = getattr(program, "_owner", None)
    obj = owner() if owner is not None else None
    if obj is not None:
        specs = obj.maps.get("__bpf_usdt_specs")
        ips = obj.maps.get("__bpf_usdt_ip_to_spec_id")
        if specs is not None:
            return specs, ips, False
    # A program opened by id or pin: find the maps among those it uses (names are
    # truncated to 15 characters by the kernel).
    from . import sys as bsys
    from .object import wrap_map_fd

    specs = ips = None
    for mid in bsys.prog_info(program.fd).map_ids:
        fd = bsys.FD(bsys.map_get_fd_by_id(mid))
        name = bsys.map_info(fd).name
        if name == "__bpf_usdt_spec" and specs is None:
            specs = wrap_map_fd(fd)
        elif name == "__bpf_usdt_ip_t" and ips is None:
            ips = wrap_map_fd(fd)
        else:
            fd.close()
    if specs is None:
        if ips is not None:
            ips.close()
        raise BpfError(
            f"program {program.name!r} does not use libbpf's usdt.bpf.h "
            "(no __bpf_usdt_specs map): include <bpf/usdt.bpf.h> and read arguments "
            "with bpf_usdt_arg()/BPF_USDT"
        )
    return specs, ips, True


def _uses_cookies(program: Any) -> bool:
    """Whether the program finds its spec through the BPF cookie (``LINUX_HAS_BPF_COOKIE``)."""
    owner = getattr(program, "_owner", None)
    obj = owner() if owner is not None else None
    if obj is None:
        from .features import feature

        return feature("bpf_cookie").supported
    ext = obj.spec.externs.get("LINUX_HAS_BPF_COOKIE")
    kc = obj.maps.get(".kconfig")
    if ext is None or kc is None:
        return True
    raw = kc.lookup_raw(bytes(4))
    return bool(raw and any(raw[ext.offset : ext.offset + max(ext.size, 1)]))


def _runtime_address(probe: UsdtProbe, pid: int) -> int:
    """Where the probe's site is in process ``pid`` (from ``/proc/PID/maps``)."""
    real = os.path.realpath(probe.path)
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6 or os.path.realpath(parts[5].strip()) != real:
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                off = int(parts[2], 16)
                if off <= probe.offset < off + (hi - lo):
                    return lo + probe.offset - off
    except OSError as e:
        raise BpfError(f"cannot read the mappings of process {pid}: {e.strerror}") from None
    raise BpfError(f"process {pid} does not map {probe.path} where probe {probe.name} lies")


def attach_usdt(
    program: Any,
    binary: str,
    provider: str,
    name: str,
    pid: int | None = None,
    *,
    cookie: int = 0,
) -> UsdtLink:
    """Run ``program`` at every site of USDT probe ``provider:name`` of ``binary``.

    ``pid`` limits it to one process (default: every process running the binary).
    ``cookie`` is what ``bpf_usdt_cookie()`` returns in the program. The probe's
    semaphore (if any) is raised while attached.
    """
    path = find_binary(binary)
    sites = find_usdt(path, provider, name)
    for s in sites:
        encode_spec(s)  # refuse unsupported arguments before attaching anything
    specs, ips, opened = _usdt_maps(program)
    links: list[Link] = []
    release: list = [m.close for m in (specs, ips) if opened and m is not None]
    try:
        if specs.value_size != SPEC_SIZE:
            raise BpfError(
                f"__bpf_usdt_specs has {specs.value_size}-byte values, not the {SPEC_SIZE} "
                "of this usdt.bpf.h layout"
            )
        use_cookie = _uses_cookies(program)
        if not use_cookie:
            if ips is None:
                raise BpfError("the program reads no __bpf_usdt_ip_to_spec_id map")
            if pid is None:
                raise NotSupported(
                    "without BPF cookies usdt.bpf.h maps a probe's address to its spec: "
                    "attach to one process (pid=...)"
                )
    except BaseException:
        _call_all(release)
        raise
    key = specs.id
    by_spec: dict[bytes, int] = {}
    try:
        for site in sites:
            blob = encode_spec(site, cookie)
            spec_id = by_spec.get(blob)
            if spec_id is None:
                spec_id = _allocate(key, specs.max_entries)
                release.append(lambda k=key, i=spec_id: _free(k, i))
                specs.update_raw(spec_id.to_bytes(4, "little"), blob)
                by_spec[blob] = spec_id
            if not use_cookie:
                ip = _runtime_address(site, pid)  # type: ignore[arg-type]
                ip_key = ip.to_bytes(8, "little")
                ips.update_raw(ip_key, spec_id.to_bytes(4, "little"))
                release.append(lambda k=ip_key: ips.delete_raw(k))
            links.append(
                attach_uprobe(
                    program,
                    path,
                    offset=site.offset,
                    pid=-1 if pid is None else pid,
                    ref_ctr_offset=site.semaphore_offset,
                    cookie=spec_id if use_cookie else 0,
                )
            )
    except BaseException:
        _call_all([lk.close for lk in links] + release)
        raise
    return UsdtLink(links, f"{path}:{provider}:{name}", release)


def _allocate(key: int, limit: int) -> int:
    with _lock:
        used = _used.setdefault(key, set())
        for i in range(limit):
            if i not in used:
                used.add(i)
                return i
    raise BpfError(f"all {limit} USDT spec slots are in use (raise BPF_USDT_MAX_SPEC_CNT)")


def _free(key: int, spec_id: int) -> None:
    with _lock:
        _used.get(key, set()).discard(spec_id)
