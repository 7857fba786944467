"""Capture files: streaming pcap and pcapng readers, pcap and pcapng writers.

Readers hold one record at a time, so files larger than memory stream through. pcap is
read in either byte order with microsecond or nanosecond timestamps; pcapng sections
(SHB) may switch byte order, several interfaces (IDB) may have different link types and
timestamp resolutions, packets come from EPB, SPB and the obsolete PB, and blocks of
other types are skipped. A truncated or corrupt file raises a one-line
:class:`~bpfkit.errors.CaptureError` naming the byte offset — after every packet before
the damage has been yielded.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Self

from ..errors import CaptureError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
PCAPNG_IDB, PCAPNG_PB, PCAPNG_SPB, PCAPNG_EPB = 1, 2, 3, 6

# The link types the filter compiler handles: pcap LINKTYPE_ values as stored in capture
# files (and the DLT_ values 12 and 14 some files record for raw IP), by bpfkit's names.
LINKTYPES = {"EN10MB": 1, "RAW": 101, "LINUX_SLL": 113, "LINUX_SLL2": 276}
LINKTYPE_NAMES = {
    1: "EN10MB",
    101: "RAW",
    12: "RAW",
    14: "RAW",
    113: "LINUX_SLL",
    276: "LINUX_SLL2",
}
LINKTYPE_DESCRIPTIONS = {
    "EN10MB": "Ethernet",
    "RAW": "Raw IP",
    "LINUX_SLL": "Linux cooked v1",
    "LINUX_SLL2": "Linux cooked v2",
}

MAX_RECORD = 1 << 26  # 64 MiB: a larger record length means a corrupt file
MAX_BLOCK = 1 << 26


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured packet: bytes as captured, length on the wire, time, link type."""

    data: bytes
    wirelen: int
    ts_ns: int
    linktype: int
    interface: int = 0

    @property
    def caplen(self) -> int:
        return len(self.data)


def _name(f: BinaryIO) -> str:
    return os.fsdecode(getattr(f, "name", "<capture>"))


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


class CaptureReader:
    """Iterate the packets of a pcap or pcapng file (``for pkt in CaptureReader(path)``).

    ``format`` is ``"pcap"`` or ``"pcapng"``; ``linktype``/``snaplen`` describe the
    first interface (pcap has exactly one). ``offset`` is the byte offset of the next
    record, ``count`` the packets yielded so far.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO):
        if isinstance(source, (str, bytes, os.PathLike)):
            try:
                self._f: BinaryIO = open(source, "rb", buffering=1 << 16)  # noqa: SIM115
            except OSError as e:
                raise CaptureError(f"{os.fsdecode(source)}: {e.strerror}") from None
            self._own = True
        else:
            self._f = source
            self._own = False
        self.name = _name(self._f)
        self.count = 0
        self.offset = 0
        self.linktype = 0
        self.snaplen = 0
        self.nanosecond = False
        self.byteorder = "<"
        self.interfaces: list[
            tuple[int, int, int, int]
        ] = []  # (linktype, snaplen, units/s, offset ns)
        head = _read_exact(self._f, 4)
        if len(head) < 4:
            self.close()
            raise CaptureError(f"{self.name}: empty or truncated file (no capture header)")
        magic_le = struct.unpack("<I", head)[0]
        magic_be = struct.unpack(">I", head)[0]
        if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or magic_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            self.format = "pcap"
            self._open_pcap(head)
        elif magic_le == PCAPNG_SHB:
            self.format = "pcapng"
            self._pending = head
            self._open_pcapng()
        else:
            self.close()
            raise CaptureError(f"{self.name}: not a pcap or pcapng file (magic {head.hex()})")

    # -- pcap ---------------------------------------------------------------------------

    def _open_pcap(self, head: bytes) -> None:
        rest = _read_exact(self._f, 20)
        if len(rest) < 20:
            self.close()
            raise CaptureError(f"{self.name}: truncated pcap file header")
        hdr = head + rest
        for order in ("<", ">"):
            magic = struct.unpack(order + "I", hdr[:4])[0]
            if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                break
        self.byteorder = order
        self.nanosecond = magic == PCAP_MAGIC_NS
        major, minor, _zone, _sigfigs, snaplen, network = struct.unpack(order + "HHiIII", hdr[4:])
        if major != 2:
            self.close()
            raise CaptureError(f"{self.name}: unsupported pcap version {major}.{minor}")
        self.snaplen = snaplen
        self.linktype = network & 0x03FFFFFF
        self.header = hdr
        self.offset = 24
        self._rec = struct.Struct(order + "IIII")
        self.interfaces = [(self.linktype, snaplen, 10**9 if self.nanosecond else 10**6, 0)]

    def _iter_pcap(self) -> Iterator[Packet]:
        f = self._f
        rec = self._rec
        scale = 1 if self.nanosecond else 1000
        limit = max(self.snaplen, 262144, 1 << 20)
        limit = min(limit, MAX_RECORD)
        lt = self.linktype
        while True:
            hdr = f.read(16)
            if not hdr:
                return
            if len(hdr) < 16:
                raise CaptureError(
                    f"{self.name}: truncated record header at byte offset {self.offset} "
                    f"(after packet {self.count})"
                )
            sec, frac, caplen, wirelen = rec.unpack(hdr)
            if caplen > limit:
                raise CaptureError(
                    f"{self.name}: corrupt record at byte offset {self.offset}: captured length "
                    f"{caplen} is more than {limit} (after packet {self.count})"
                )
            data = f.read(caplen)
            if len(data) < caplen:
                raise CaptureError(
                    f"{self.name}: truncated packet at byte offset {self.offset}: record says "
                    f"{caplen} bytes, file has {len(data)} (after packet {self.count})"
                )
            self.offset += 16 + caplen
            self.count += 1
            yield Packet(data, wirelen, sec * 1_000_000_000 + frac * scale, lt, 0)

    # -- pcapng -------------------------------------------------------------------------

    def _block(self) -> tuple[int, bytes, int] | None:
        """The next block (type, body) in the section's byte order; None at end of file."""
        f = self._f
        start = self.offset
        if self._pending is not None:
            head = self._pending + _read_exact(f, 4)
            self._pending = None
        else:
            head = _read_exact(f, 8)
        if not head:
            return None
        if len(head) < 8:
            raise CaptureError(
                f"{self.name}: truncated block header at byte offset {start} (after packet {self.count})"
            )
        btype_le = struct.unpack("<I", head[:4])[0]
        if btype_le == PCAPNG_SHB:
            bom = _read_exact(f, 4)
            if len(bom) < 4:
                raise CaptureError(f"{self.name}: truncated section header at byte offset {start}")
            if struct.unpack("<I", bom)[0] == PCAPNG_BOM:
                self.byteorder = "<"
            elif struct.unpack(">I", bom)[0] == PCAPNG_BOM:
                self.byteorder = ">"
            else:
                raise CaptureError(
                    f"{self.name}: bad byte-order magic in section header at byte offset {start}"
                )
            order = self.byteorder
            total = struct.unpack(order + "I", head[4:8])[0]
            prefix = bom
        else:
            order = self.byteorder
            total = struct.unpack(order + "I", head[4:8])[0]
            prefix = b""
        btype = struct.unpack(order + "I", head[:4])[0]
        if total < 12 + len(prefix) or total % 4 or total > MAX_BLOCK:
            raise CaptureError(
                f"{self.name}: corrupt block at byte offset {start}: length {total} "
                f"(after packet {self.count})"
            )
        rest = _read_exact(f, total - 8 - len(prefix))
        if len(rest) < total - 8 - len(prefix):
            raise CaptureError(
                f"{self.name}: truncated block at byte offset {start}: length {total}, file has "
                f"{8 + len(prefix) + len(rest)} (after packet {self.count})"
            )
        trailer = struct.unpack(order + "I", rest[-4:])[0]
        if trailer != total:
            raise CaptureError(
                f"{self.name}: corrupt block at byte offset {start}: trailing length {trailer} "
                f"!= {total} (after packet {self.count})"
            )
        self.offset = start + total
        return btype, prefix + rest[:-4], start

    def _open_pcapng(self) -> None:
        blk = self._block()
        if blk is None or blk[0] != PCAPNG_SHB:  # pragma: no cover - magic checked
            raise CaptureError(f"{self.name}: missing section header")
        self._section(blk[1])
        # Read ahead to the first interface so linktype/snaplen are known up front.
        self._queued: list[tuple[int, bytes, int]] = []
        while not self.interfaces:
            try:
                blk = self._block()
            except CaptureError:
                self.close()
                raise
            if blk is None:
                break
            if blk[0] == PCAPNG_IDB:
                self._interface(blk[1])
            else:
                self._queued.append(blk)
        if self.interfaces:
            self.linktype, self.snaplen, units, _off = self.interfaces[0]
            self.nanosecond = units >= 10**9

    def _section(self, body: bytes) -> None:
        order = self.byteorder
        if len(body) < 16:
            raise CaptureError(f"{self.name}: truncated section header")
        major = struct.unpack(order + "H", body[4:6])[0]
        if major != 1:
            raise CaptureError(f"{self.name}: unsupported pcapng version {major}")
        self.interfaces = []

    def _interface(self, body: bytes) -> None:
        order = self.byteorder
        if len(body) < 8:
            raise CaptureError(f"{self.name}: truncated interface description block")
        lt, _res, snaplen = struct.unpack(order + "HHI", body[:8])
        units, tsoffset = 10**6, 0
        pos = 8
        while pos + 4 <= len(body):
            code, length = struct.unpack(order + "HH", body[pos : pos + 4])
            val = body[pos + 4 : pos + 4 + length]
            if code == 0:
                break
            if code == 9 and length >= 1:  # if_tsresol
                r = val[0]
                units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** min(r, 30)
            elif code == 14 and length >= 8:  # if_tsoffset (seconds)
                tsoffset = struct.unpack(order + "q", val[:8])[0] * 1_000_000_000
            pos += 4 + length + (-length % 4)
        self.interfaces.append((lt, snaplen, units, tsoffset))

    def _ts(self, iface: int, high: int, low: int) -> int:
        units, off = self.interfaces[iface][2], self.interfaces[iface][3]
        t = (high << 32) | low
        if units == 10**9:
            return t + off
        return t * 1_000_000_000 // units + off

    def _iter_pcapng(self) -> Iterator[Packet]:
        queued = self._queued
        while True:
            blk = queued.pop(0) if queued else self._block()
            if blk is None:
                return
            pkt = self._handle_block(*blk)
            if pkt is not None:
                yield pkt

    def _handle_block(self, btype: int, body: bytes, where: int) -> Packet | None:
        """Take in one pcapng block: a section or interface updates the state, a packet
        block gives its packet, any other block is skipped (None)."""
        order = self.byteorder
        if btype == PCAPNG_EPB:
            if len(body) < 20:
                raise CaptureError(
                    f"{self.name}: truncated enhanced packet block at byte offset {where}"
                )
            iface, high, low, caplen, wirelen = struct.unpack(order + "IIIII", body[:20])
            if iface >= len(self.interfaces):
                raise CaptureError(
                    f"{self.name}: packet at byte offset {where} names interface {iface}, "
                    f"but the section has {len(self.interfaces)}"
                )
            if 20 + caplen > len(body):
                raise CaptureError(
                    f"{self.name}: corrupt enhanced packet block at byte offset {where}: "
                    f"captured length {caplen} exceeds the block"
                )
        elif btype == PCAPNG_PB:
            if len(body) < 20:
                raise CaptureError(f"{self.name}: truncated packet block at byte offset {where}")
            iface, _drops, high, low, caplen, wirelen = struct.unpack(order + "HHIIII", body[:20])
            if iface >= len(self.interfaces) or 20 + caplen > len(body):
                raise CaptureError(f"{self.name}: corrupt packet block at byte offset {where}")
        elif btype == PCAPNG_SPB:
            if not self.interfaces:
                raise CaptureError(
                    f"{self.name}: simple packet block at byte offset {where} before any interface"
                )
            if len(body) < 4:
                raise CaptureError(
                    f"{self.name}: truncated simple packet block at byte offset {where}"
                )
            wirelen = struct.unpack(order + "I", body[:4])[0]
            snap = self.interfaces[0][1] or wirelen
            caplen = min(wirelen, snap, len(body) - 4)
            self.count += 1
            return Packet(body[4 : 4 + caplen], wirelen, 0, self.interfaces[0][0], 0)
        else:
            if btype == PCAPNG_SHB:
                self._section(body)
            elif btype == PCAPNG_IDB:
                self._interface(body)
            # every other block type is skipped
            return None
        # an Enhanced or (obsolete) Packet Block, checked: its packet
        self.count += 1
        return Packet(
            body[20 : 20 + caplen],
            wirelen,
            self._ts(iface, high, low),
            self.interfaces[iface][0],
            iface,
        )

    def _block_at(self, offset: int) -> tuple[int, bytes, int] | None:
        """The block at file ``offset`` (for a scan that walks the file itself)."""
        self._queued.clear()
        self._pending = None
        self._f.seek(offset)
        self.offset = offset
        return self._block()

    # -- protocol ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Packet]:
        try:
            if self.format == "pcap":
                yield from self._iter_pcap()
            else:
                yield from self._iter_pcapng()
        except struct.error as e:  # pragma: no cover - lengths are checked before unpacking
            raise CaptureError(
                f"{self.name}: corrupt record near byte offset {self.offset}: {e}"
            ) from None
        except OSError as e:
            raise CaptureError(f"{self.name}: {e.strerror or e}") from None

    def close(self) -> None:
        if self._own:
            self._f.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_packets(path: str | os.PathLike[str]) -> Iterator[Packet]:
    """Every packet of a capture file, streamed (raises CaptureError at the first damage)."""
    with CaptureReader(path) as r:
        yield from r


class _Writer:
    """What the pcap and pcapng writers share: the destination (a path, opened and closed
    here, or an open stream, flushed and left open), the file's parameters, the count;
    a subclass writes its file header and its packets."""

    def __init__(
        self,
        dest: str | os.PathLike[str] | BinaryIO,
        linktype: int = 1,
        snaplen: int = 262144,
        nanosecond: bool = False,
    ):
        if isinstance(dest, (str, bytes, os.PathLike)):
            self._f: BinaryIO = open(dest, "wb", buffering=1 << 16)  # noqa: SIM115
            self._own = True
        else:
            self._f = dest
            self._own = False
        self.nanosecond = nanosecond
        self.linktype = linktype
        self.snaplen = snaplen
        self.count = 0
        self._write_header()

    def _write_header(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes, ts_ns: int = 0, wirelen: int | None = None) -> None:
        raise NotImplementedError

    def write_packet(self, pkt: Packet) -> None:
        self.write(pkt.data, pkt.ts_ns, pkt.wirelen)

    def close(self) -> None:
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcapWriter(_Writer):
    """Write a pcap file (little-endian; microsecond or nanosecond timestamps)."""

    def _write_header(self) -> None:
        self._rec = struct.Struct("<IIII")  # an instance attribute: the fastest to look up
        magic = PCAP_MAGIC_NS if self.nanosecond else PCAP_MAGIC_US
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, self.snaplen, self.linktype))

    def write(self, data: bytes, ts_ns: int = 0, wirelen: int | None = None) -> None:
        """Append one packet (``wirelen`` defaults to ``len(data)``)."""
        sec, rem = divmod(ts_ns, 1_000_000_000)
        frac = rem if self.nanosecond else rem // 1000
        wl = len(data) if wirelen is None else wirelen
        self._f.write(self._rec.pack(sec & 0xFFFFFFFF, frac, len(data), wl))
        self._f.write(data)
        self.count += 1

    def write_records(self, records: bytes | memoryview, count: int = 0) -> None:
        """Append records already encoded in this file's format (the native scan's)."""
        self._f.write(records)
        self.count += count


class PcapngWriter(_Writer):
    """Write a pcapng file: one section, one interface, Enhanced Packet Blocks (little-endian;
    microsecond timestamps, or nanosecond ones with ``if_tsresol`` = 9)."""

    def _write_header(self) -> None:
        shb_body = struct.pack("<IHHq", PCAPNG_BOM, 1, 0, -1)
        self._block(PCAPNG_SHB, shb_body)
        opts = b""
        if self.nanosecond:
            opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
        self._block(PCAPNG_IDB, struct.pack("<HHI", self.linktype, 0, self.snaplen) + opts)

    def _block(self, btype: int, body: bytes) -> None:
        pad = -len(body) % 4
        n = 12 + len(body) + pad
        self._f.write(struct.pack("<II", btype, n) + body + b"\0" * pad + struct.pack("<I", n))

    def write(self, data: bytes, ts_ns: int = 0, wirelen: int | None = None) -> None:
        """Append one packet (``wirelen`` defaults to ``len(data)``)."""
        t = ts_ns if self.nanosecond else ts_ns // 1000
        wl = len(data) if wirelen is None else wirelen
        pad = -len(data) % 4
        n = 32 + len(data) + pad
        self._f.write(
            struct.pack(
                "<IIIIIII", PCAPNG_EPB, n, 0, (t >> 32) & 0xFFFFFFFF, t & 0xFFFFFFFF, len(data), wl
            )
        )
        self._f.write(data)
        self._f.write(b"\0" * pad + struct.pack("<I", n))
        self.count += 1
