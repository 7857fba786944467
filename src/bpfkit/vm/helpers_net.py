"""Packet helpers: skb bytes and checksums, XDP head/tail/meta adjustment, redirects.

They work on the run's packet (``env.run.packet``, a
:class:`~bpfkit.vm.progtypes.packet.PacketBuffer`): offsets are relative to the start of
the packet data as the program sees it (``skb->data`` / ``xdp->data``). Checksums use the
kernel's ones'-complement arithmetic (``csum_partial`` as on x86-64).
"""

from __future__ import annotations

import errno
import struct

from ..errors import RuntimeFault
from ..uapi.enums import ProgType
from .helpers import HelperRegistry
from .maps.devmap import CpuMap, DevMap, DevMapHash, XskMap

__all__ = ["HELPERS", "csum_partial", "csum_fold", "csum_add", "csum_sub"]

HELPERS = HelperRegistry()
M64 = (1 << 64) - 1
M32 = 0xFFFFFFFF

F_RECOMPUTE_CSUM = 1 << 0
F_INVALIDATE_HASH = 1 << 1
F_HDR_FIELD_MASK = 0xF
F_PSEUDO_HDR = 1 << 4
F_MARK_MANGLED_0 = 1 << 5
F_MARK_ENFORCE = 1 << 6
F_IPV6 = 1 << 7
F_INGRESS = 1 << 0
F_BROADCAST = 1 << 3
F_EXCLUDE_INGRESS = 1 << 4
CSUM_MANGLED_0 = 0xFFFF
ETH_HLEN = 14
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
XDP_ABORTED = 0
XDP_REDIRECT = 4
#: metadata may be up to 255 bytes (skb_shared_info.meta_len is a u8), 4-byte aligned
XDP_META_MAX = 255


def neg(e: int) -> int:
    return (-e) & M64


# ---- ones'-complement arithmetic (include/net/checksum.h) ------------------------------
def csum_add(a: int, b: int) -> int:
    s = (a & M32) + (b & M32)
    return (s + (s >> 32)) & M32


def csum_sub(a: int, b: int) -> int:
    return csum_add(a, ~b & M32)


def csum_fold(s: int) -> int:
    s &= M32
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def csum_partial(data: bytes, seed: int) -> int:
    """x86-64 ``csum_partial``: a 32-bit partial sum of little-endian words plus ``seed``."""
    if len(data) % 4:
        data = data + bytes(4 - len(data) % 4)
    total = (seed & M32) + sum(struct.unpack(f"<{len(data) // 4}I", data))
    while total >> 32:
        total = (total & M32) + (total >> 32)
    return total


def _csum16_add(csum: int, addend: int) -> int:
    res = (csum + addend) & 0xFFFF
    return (res + (res < (addend & 0xFFFF))) & 0xFFFF


def _csum_replace4(old_sum: int, frm: int, to: int) -> int:
    return csum_fold(csum_add(csum_sub(~old_sum & M32, frm), to))


def _csum_replace2(old_sum: int, frm: int, to: int) -> int:
    return ~_csum16_add(_csum16_add(~old_sum & 0xFFFF, ~frm & 0xFFFF), to & 0xFFFF) & 0xFFFF


def _csum_replace_by_diff(old_sum: int, diff: int) -> int:
    return csum_fold(csum_add(diff, ~old_sum & M32))


def _packet(env):
    pkt = env.run.packet if env.run is not None else None
    if pkt is None:
        raise RuntimeFault("packet helper called without a packet")
    return pkt


# ---- skb bytes ------------------------------------------------------------------------
@HELPERS.register("skb_load_bytes")
def skb_load_bytes(env, r1, r2, r3, r4, *_):
    pkt = _packet(env)
    off, n = r2 & M32, r4 & M32
    space = env.runtime.space
    if off > 0x7FFFFFFF or off + n > pkt.length:
        space.zero(r3, n)
        return neg(errno.EFAULT)
    space.write(r3, pkt.read(off, n))
    return 0


@HELPERS.register("skb_store_bytes")
def skb_store_bytes(env, r1, r2, r3, r4, r5):
    pkt = _packet(env)
    off, n = r2 & M32, r4 & M32
    if r5 & ~(F_RECOMPUTE_CSUM | F_INVALIDATE_HASH):
        return neg(errno.EINVAL)
    if off > 0x7FFFFFFF or off + n > pkt.length:
        return neg(errno.EFAULT)
    pkt.write(off, env.runtime.space.read(r3, n))
    if r5 & F_INVALIDATE_HASH:
        pkt.set_field("hash", 0)
    return 0


# ---- checksums ------------------------------------------------------------------------
def _sum_at(pkt, off: int) -> int | None:
    if off > 0xFFFF or off & 1 or off + 2 > pkt.length:
        return None
    return int.from_bytes(pkt.read(off, 2), "little")


@HELPERS.register("l3_csum_replace")
def l3_csum_replace(env, r1, r2, r3, r4, r5):
    pkt = _packet(env)
    if r5 & ~F_HDR_FIELD_MASK:
        return neg(errno.EINVAL)
    old = _sum_at(pkt, r2 & M32)
    if old is None:
        return neg(errno.EFAULT)
    size = r5 & F_HDR_FIELD_MASK
    if size == 0:
        if r3:
            return neg(errno.EINVAL)
        new = _csum_replace_by_diff(old, r4)
    elif size == 2:
        new = _csum_replace2(old, r3 & 0xFFFF, r4 & 0xFFFF)
    elif size == 4:
        new = _csum_replace4(old, r3 & M32, r4 & M32)
    else:
        return neg(errno.EINVAL)
    pkt.write(r2 & M32, new.to_bytes(2, "little"))
    return 0


@HELPERS.register("l4_csum_replace")
def l4_csum_replace(env, r1, r2, r3, r4, r5):
    pkt = _packet(env)
    allowed = F_MARK_MANGLED_0 | F_MARK_ENFORCE | F_PSEUDO_HDR | F_HDR_FIELD_MASK | F_IPV6
    if r5 & ~allowed:
        return neg(errno.EINVAL)
    off = r2 & M32
    old = _sum_at(pkt, off)
    if old is None:
        return neg(errno.EFAULT)
    mmzero = r5 & F_MARK_MANGLED_0
    if mmzero and not r5 & F_MARK_ENFORCE and not old:
        return 0
    size = r5 & F_HDR_FIELD_MASK
    # a test-run skb is CHECKSUM_NONE: the pseudo-header flag changes nothing in the data
    if size == 0:
        if r3:
            return neg(errno.EINVAL)
        new = _csum_replace_by_diff(old, r4)
    elif size == 2:
        new = _csum_replace4(old, r3 & 0xFFFF, r4 & 0xFFFF)
    elif size == 4:
        new = _csum_replace4(old, r3 & M32, r4 & M32)
    else:
        return neg(errno.EINVAL)
    if mmzero and not new:
        new = CSUM_MANGLED_0
    pkt.write(off, new.to_bytes(2, "little"))
    return 0


def csum_from32to16(x: int) -> int:
    """Fold a 32-bit partial sum to 16 bits (no complement), as ``csum_from32to16``."""
    x &= M32
    x = x + (((x >> 16) | (x << 16)) & M32)
    return (x >> 16) & 0xFFFF


@HELPERS.register("csum_diff")
def csum_diff(env, r1, r2, r3, r4, r5):
    """``bpf_csum_diff`` as in 6.12+: any sizes, the result folded to 16 bits."""
    from_size, to_size = r2 & M32, r4 & M32
    space = env.runtime.space
    frm = space.read(r1, from_size) if from_size else b""
    to = space.read(r3, to_size) if to_size else b""
    ret = r5 & M32
    if from_size and to_size:
        ret = csum_sub(csum_partial(to, ret), csum_partial(frm, 0))
    elif to_size:
        ret = csum_partial(to, ret)
    elif from_size:
        ret = ~csum_partial(frm, ~ret & M32) & M32
    return csum_from32to16(ret)


# ---- XDP ------------------------------------------------------------------------------
def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


@HELPERS.register("xdp_adjust_head")
def xdp_adjust_head(env, r1, r2, *_):
    pkt = _packet(env)
    delta = _s32(r2)
    metalen = pkt.data - pkt.meta
    data = pkt.data + delta
    if data < pkt.min_head + metalen or data > pkt.end - ETH_HLEN:
        return neg(errno.EINVAL)
    if metalen:
        pkt.move(pkt.meta, pkt.meta + delta, metalen)
    pkt.set_bounds(pkt.meta + delta, data, pkt.end)
    return 0


@HELPERS.register("xdp_adjust_meta")
def xdp_adjust_meta(env, r1, r2, *_):
    pkt = _packet(env)
    meta = pkt.meta + _s32(r2)
    metalen = pkt.data - meta
    if meta < pkt.min_head or meta > pkt.data:
        return neg(errno.EINVAL)
    if metalen > XDP_META_MAX or metalen & 3:
        return neg(errno.EACCES)
    pkt.set_bounds(meta, pkt.data, pkt.end)
    return 0


@HELPERS.register("xdp_adjust_tail")
def xdp_adjust_tail(env, r1, r2, *_):
    pkt = _packet(env)
    delta = _s32(r2)
    end = pkt.end + delta
    if end > pkt.hard_end or end < pkt.data + ETH_HLEN:
        return neg(errno.EINVAL)
    if delta > 0:
        pkt.zero(pkt.end, delta)
    pkt.set_bounds(pkt.meta, pkt.data, end)
    return 0


@HELPERS.register("xdp_get_buff_len")
def xdp_get_buff_len(env, r1, *_):
    pkt = _packet(env)
    return pkt.end - pkt.data + pkt.fields.get("frags", 0)


# ---- redirects ------------------------------------------------------------------------
@HELPERS.register("redirect")
def redirect(env, r1, r2, *_):
    run = env.run
    if env.prog_type == ProgType.XDP:
        if r2:
            return XDP_ABORTED
        run.redirect = {"ifindex": r1 & M32, "flags": 0}
        return XDP_REDIRECT
    if r2 & ~F_INGRESS:
        return TC_ACT_SHOT
    run.redirect = {"ifindex": r1 & M32, "flags": r2, "ingress": bool(r2 & F_INGRESS)}
    return TC_ACT_REDIRECT


@HELPERS.register("redirect_map")
def redirect_map(env, r1, r2, r3, *_):
    m = env.runtime.maps_by_addr.get(r1)
    if not isinstance(m, DevMap | DevMapHash | CpuMap | XskMap):
        raise RuntimeFault(f"bpf_redirect_map with {r1:#x}, which is not a redirect map")
    action_mask = 3
    flag_mask = F_BROADCAST | F_EXCLUDE_INGRESS if isinstance(m, DevMap | DevMapHash) else 0
    if r3 & ~(action_mask | flag_mask):
        return XDP_ABORTED
    key = r2 & M32
    target = m.target(key)
    if target is None and not r3 & F_BROADCAST:
        return r3 & action_mask
    env.run.redirect = {"map": m.name, "key": key, "flags": r3}
    return XDP_REDIRECT


# ---- XDP bytes ------------------------------------------------------------------------
def _xdp_range(pkt, off: int, n: int) -> int:
    if off > 0xFFFF or n > 0xFFFF:
        return errno.EFAULT
    if off + n > pkt.length:
        return errno.EINVAL
    return 0


@HELPERS.register("xdp_load_bytes")
def xdp_load_bytes(env, r1, r2, r3, r4, *_):
    pkt = _packet(env)
    err = _xdp_range(pkt, r2 & M32, r4 & M32)
    if err:
        return neg(err)
    env.runtime.space.write(r3, pkt.read(r2 & M32, r4 & M32))
    return 0


@HELPERS.register("xdp_store_bytes")
def xdp_store_bytes(env, r1, r2, r3, r4, *_):
    pkt = _packet(env)
    err = _xdp_range(pkt, r2 & M32, r4 & M32)
    if err:
        return neg(err)
    pkt.write(r2 & M32, env.runtime.space.read(r3, r4 & M32))
    return 0
