"""XDP programs: ``struct xdp_md`` over a one-page frame with ``XDP_PACKET_HEADROOM``.

The test run follows ``bpf_prog_test_run_xdp``: a 4096-byte frame whose packet starts
256 bytes in (``XDP_PACKET_HEADROOM``), 320 bytes of tailroom reserved at the end, so at
most 3520 bytes are linear (the rest of larger data is kept as fragments: programs see
the linear part, ``data_out`` has all of it). An optional ``xdp_md`` context may give
``data`` (a metadata length, < 256 and a multiple of 4, carried in front of the packet in
the data), ``data_end`` (must equal the data size), ``ingress_ifindex`` and
``rx_queue_index``. ``data_out`` starts at ``data_meta``; ``ctx_out`` gives ``data`` and
``data_end`` relative to it. ``bpf_xdp_adjust_head`` may not move data in front of the
``struct xdp_frame`` kept at the start of the frame.
"""

from __future__ import annotations

import errno
import struct

from ...uapi.ctx import XDP_MD, XDP_PACKET_HEADROOM
from .base import ProgTypeVM, RunOutcome, RunState, TestRunError, ctx_bytes
from .packet import PacketBuffer

__all__ = ["XdpProgType", "XDP_FRAME_SIZE", "XDP_TAILROOM", "XDP_MAX_LINEAR"]

FRAME_SIZE = 4096
XDP_TAILROOM = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
XDP_FRAME_SIZE = 40  # sizeof(struct xdp_frame)
XDP_MAX_LINEAR = FRAME_SIZE - XDP_PACKET_HEADROOM - XDP_TAILROOM
ETH_HLEN = 14
LOOPBACK_IFINDEX = 1

_OFF = {f.name: f.offset for f in XDP_MD.fields}


class XdpProgType(ProgTypeVM):
    """BPF_PROG_TYPE_XDP."""

    def test_run(
        self,
        prog,
        *,
        data: bytes = b"",
        ctx: bytes | None = None,
        repeat: int = 1,
        engine: str = "interp",
        kernel_stack=(),
        user_stack=(),
        **opts,
    ) -> RunOutcome:
        data = bytes(data)
        size = len(data)
        cin = (
            bytearray(ctx_bytes(ctx, XDP_MD.size, "xdp_md").ljust(XDP_MD.size, b"\0"))
            if ctx is not None
            else None
        )
        metalen = 0
        headroom = XDP_PACKET_HEADROOM
        if cin is not None:
            c_data, c_end, c_meta = struct.unpack_from("<III", cin, 0)
            ingress, rxq, egress = struct.unpack_from("<III", cin, 12)
            if c_meta or c_end != size or c_data > c_end or c_data > 255 or c_data & 3:
                raise TestRunError(
                    errno.EINVAL,
                    "xdp_md: data_meta must be 0, data_end the "
                    "data size, data a metadata length of at most 252 (x4)",
                )
            if egress or (not ingress and rxq):
                raise TestRunError(
                    errno.EINVAL,
                    "xdp_md: egress_ifindex must be 0, and rx_queue_index needs ingress_ifindex",
                )
            metalen = c_data
            headroom -= metalen
        max_linear = FRAME_SIZE - headroom - XDP_TAILROOM
        linear = min(size, max_linear)
        if linear < ETH_HLEN:
            raise TestRunError(errno.EINVAL, f"xdp test runs need at least {ETH_HLEN} bytes")
        frags = data[linear:]
        space = prog.runtime.space
        pkt = PacketBuffer(
            space,
            FRAME_SIZE,
            headroom,
            data[:linear],
            meta_len=metalen,
            min_head=XDP_FRAME_SIZE,
            hard_end=FRAME_SIZE - XDP_TAILROOM,
            name="packet:xdp",
        )
        pkt.fields["frags"] = len(frags)
        c = self.alloc_ctx(prog)
        mv = c.mv
        ingress = LOOPBACK_IFINDEX
        rxq = 0
        if cin is not None and struct.unpack_from("<I", cin, 12)[0]:
            ingress, rxq = struct.unpack_from("<II", cin, 12)
        struct.pack_into("<II", mv, _OFF["ingress_ifindex"], ingress, rxq)

        def sync(p: PacketBuffer) -> None:
            struct.pack_into("<Q", mv, self.slots["data"], p.data_addr)
            struct.pack_into("<Q", mv, self.slots["data_end"], p.end_addr)
            struct.pack_into("<Q", mv, self.slots["data_meta"], p.meta_addr)

        pkt.on_change = sync
        sync(pkt)
        run = RunState(packet=pkt, kernel_stack=kernel_stack, user_stack=user_stack)
        try:
            r0, dt = self.repeat_runs(prog, run, c.base, repeat, engine)
            out = pkt.bytes() + frags
            ctx_out = None
            if cin is not None:
                co = bytearray(cin)
                struct.pack_into("<II", co, 0, pkt.data - pkt.meta, pkt.end - pkt.meta)
                ctx_out = bytes(co)
        finally:
            pkt.close()
            space.remove(c)
        return RunOutcome(
            r0 & 0xFFFFFFFF, r0, out, ctx_out, dt, run.output, run.redirect, max(1, repeat)
        )
