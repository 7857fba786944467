"""The pcap-filter(7) language compiled to classic BPF, with libpcap's semantics.

``compile_filter("tcp port 80")`` returns the ``sock_filter`` program tcpdump would run
(``tcpdump -d``): the same generator shapes, the same optimiser passes, the same layout.
Errors — syntax or meaning — raise :class:`~bpfkit.errors.FilterSyntaxError` with the
1-based column of the offending token.
"""

from __future__ import annotations

from ...classic.insn import SockFilter
from ...errors import FilterSyntaxError
from ..capfile import LINKTYPE_NAMES, LINKTYPES
from .gencode import CompileError, Compiler
from .ir import Block, backpatch
from .optimize import icode_to_fcode, optimize
from .parser import FilterError, parse_and_generate

__all__ = ["LINKTYPES", "LINKTYPE_NAMES", "compile_filter", "linktype_name", "linktype_number"]


def linktype_name(linktype: str | int) -> str:
    """Canonical name (``EN10MB``, ``RAW``, ``LINUX_SLL``, ``LINUX_SLL2``) of a link type."""
    if isinstance(linktype, int):
        name = LINKTYPE_NAMES.get(linktype)
        if name is None:
            raise FilterSyntaxError(
                f"link type {linktype} is not supported (EN10MB, RAW, LINUX_SLL, LINUX_SLL2)"
            )
        return name
    name = linktype.upper()
    if name.startswith(("DLT_", "LINKTYPE_")):
        name = name.split("_", 1)[1]
    if name == "ETHERNET":
        name = "EN10MB"
    if name not in LINKTYPES:
        raise FilterSyntaxError(
            f"link type {linktype!r} is not supported (EN10MB, RAW, LINUX_SLL, LINUX_SLL2)"
        )
    return name


def linktype_number(linktype: str | int) -> int:
    """The LINKTYPE_ value a capture file records for ``linktype``."""
    return LINKTYPES[linktype_name(linktype)]


def compile_filter(
    expr: str,
    linktype: str | int = "EN10MB",
    snaplen: int = 262144,
    optimize: bool = True,
    netmask: int = 0,
    live: bool = False,
) -> list[SockFilter]:
    """Compile a pcap-filter expression to a classic program, as libpcap 1.10 does.

    ``snaplen`` is what an accepted packet returns (tcpdump's snapshot length);
    ``netmask`` is used only by ``ip broadcast`` (tcpdump passes 0 when reading a file).
    ``optimize=False`` gives libpcap's unoptimised program (``tcpdump -O -d``).
    ``live=True`` compiles for a live capture on Linux, as ``tcpdump -i IFACE -d`` does:
    ``vlan`` reads the kernel's VLAN metadata (``SKF_AD_VLAN_TAG_PRESENT``/``_TAG``) —
    the kernel removes the outer tag before a packet socket sees the frame — and
    ``inbound``/``outbound``/``ifindex`` the packet's type and interface. Such a program
    is for the kernel (``SO_ATTACH_FILTER``), not for capture files.
    """
    name = linktype_name(linktype)
    if not 0 < snaplen <= 0xFFFFFFFF:
        raise FilterSyntaxError("snaplen of 0 rejects all packets")
    cs = Compiler(linktype=name, snaplen=snaplen, netmask=netmask & 0xFFFFFFFF, live=live)
    try:
        b = parse_and_generate(expr, cs)
    except FilterError as e:
        raise FilterSyntaxError(e.message, line=1, column=e.column, source=expr) from None
    except CompileError as e:
        raise FilterSyntaxError(str(e), line=1, source=expr) from None
    if b is None:
        root = Block(0x06, snaplen)  # ret #snaplen
    else:
        cs.insert_compute_vloffsets(b.head)
        backpatch(b, Block(0x06, snaplen))
        b.sense = not b.sense
        backpatch(b, Block(0x06, 0))
        root = b.head
    if optimize and not cs.no_optimize:
        try:
            root = _optimize(root)
        except CompileError as e:
            raise FilterSyntaxError(str(e), line=1, source=expr) from None
        if root.s.code == 0x06 and root.s.k == 0:
            raise FilterSyntaxError("expression rejects all packets", line=1, source=expr)
    try:
        return icode_to_fcode(root)
    except CompileError as e:
        raise FilterSyntaxError(str(e), line=1, source=expr) from None


def _optimize(root: Block) -> Block:
    return optimize(root)
