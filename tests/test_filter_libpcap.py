"""The oracle: the system's libpcap (tcpdump's), called in-process through ctypes.

``Libpcap.compile(expr, linktype)`` is ``tcpdump -r FILE -ddd EXPR`` (the capture is
opened with pcap_open_offline, as tcpdump -r does, so savefile-only rules apply) and
``Libpcap.matches(prog, data, wirelen)`` is the verdict tcpdump -r gives a packet
(pcap_offline_filter). Other test modules import ``LIBPCAP`` from here. The tests in this
module check the oracle itself against the tcpdump binary.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import struct
import subprocess
import tempfile

import pytest

LINKTYPE_NUMBERS = {"EN10MB": 1, "RAW": 101, "LINUX_SLL": 113, "LINUX_SLL2": 276}


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint), ("insns", ctypes.POINTER(_Insn))]


class _Hdr(ctypes.Structure):
    _fields_ = [
        ("sec", ctypes.c_long),
        ("usec", ctypes.c_long),
        ("caplen", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
    ]


class Libpcap:
    """tcpdump's compiler and filter engine, in-process."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("pcap")
        if name is None:
            raise OSError("libpcap not found")
        lib = ctypes.CDLL(name)
        lib.pcap_open_offline.restype = ctypes.c_void_p
        lib.pcap_open_offline.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_Prog),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Prog)]
        lib.pcap_offline_filter.argtypes = [
            ctypes.POINTER(_Prog),
            ctypes.POINTER(_Hdr),
            ctypes.c_char_p,
        ]
        self.lib = lib
        self._dir = tempfile.mkdtemp(prefix="bpfkit-libpcap-")
        self._handles: dict[str, int] = {}

    def handle(self, linktype: str, snaplen: int = 262144) -> int:
        key = f"{linktype}-{snaplen}"
        h = self._handles.get(key)
        if h is None:
            path = os.path.join(self._dir, key + ".pcap")
            with open(path, "wb") as f:
                f.write(
                    struct.pack(
                        "<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_NUMBERS[linktype]
                    )
                )
            err = ctypes.create_string_buffer(256)
            h = self.lib.pcap_open_offline(path.encode(), err)
            if not h:
                raise OSError(err.value.decode())
            self._handles[key] = h
        return h

    def compile(
        self, expr: str, linktype: str = "EN10MB", optimize: bool = True, snaplen: int = 262144
    ) -> list[tuple[int, int, int, int]] | str:
        """The program (list of (code, jt, jf, k)), or libpcap's error message."""
        h = self.handle(linktype, snaplen)
        prog = _Prog()
        rc = self.lib.pcap_compile(h, ctypes.byref(prog), expr.encode(), int(optimize), 0)
        if rc != 0:
            return self.lib.pcap_geterr(h).decode()
        out = [(i.code, i.jt, i.jf, i.k) for i in prog.insns[: prog.len]]
        self.lib.pcap_freecode(ctypes.byref(prog))
        return out

    def matcher(self, insns):
        """A ``(data, wirelen) -> bool`` function running ``insns`` with libpcap."""
        arr = (_Insn * len(insns))(*[_Insn(*i) for i in insns])
        prog = _Prog(len(insns), arr)
        hdr = _Hdr()

        def match(data: bytes, wirelen: int) -> bool:
            hdr.caplen = len(data)
            hdr.len = wirelen
            return self.lib.pcap_offline_filter(ctypes.byref(prog), ctypes.byref(hdr), data) != 0

        match.keep = (arr, prog)  # type: ignore[attr-defined]
        return match


def _load() -> Libpcap | None:
    try:
        return Libpcap()
    except OSError:
        return None


LIBPCAP = _load()

needs_libpcap = pytest.mark.skipif(LIBPCAP is None, reason="libpcap is not installed")
needs_tcpdump = pytest.mark.skipif(
    shutil.which("tcpdump") is None, reason="tcpdump is not installed"
)


def tcpdump_ddd(expr: str, linktype: str = "EN10MB") -> list[tuple[int, int, int, int]] | None:
    """``tcpdump -r FILE -ddd EXPR`` through the binary (None when tcpdump refuses)."""
    assert LIBPCAP is not None
    h_path = os.path.join(LIBPCAP._dir, f"{linktype}-262144.pcap")
    LIBPCAP.handle(linktype)
    p = subprocess.run(
        ["tcpdump", "-r", h_path, "-ddd", "--", expr], capture_output=True, text=True, check=False
    )
    if p.returncode != 0:
        return None
    lines = p.stdout.split("\n")
    n = int(lines[0])
    return [tuple(int(x) for x in ln.split()) for ln in lines[1 : 1 + n]]


@needs_libpcap
@needs_tcpdump
@pytest.mark.parametrize(
    "expr",
    ["tcp port 80", "vlan and ip", "host 10.0.0.1 or 10.0.0.2", "ip[2:2] > 576", "ether broadcast"],
)
@pytest.mark.parametrize("linktype", ["EN10MB", "LINUX_SLL"])
def test_oracle_is_tcpdump(expr: str, linktype: str) -> None:
    """The in-process oracle compiles exactly what the tcpdump binary prints."""
    got = LIBPCAP.compile(expr, linktype)
    want = tcpdump_ddd(expr, linktype)
    if want is None:
        assert isinstance(got, str)
    else:
        assert got == want


@needs_libpcap
def test_oracle_rejects_like_libpcap() -> None:
    assert isinstance(LIBPCAP.compile("ip and"), str)
    assert isinstance(LIBPCAP.compile("tcp or 10.0.0.1"), str)
    prog = LIBPCAP.compile("ip")
    m = LIBPCAP.matcher(prog)
    assert m(b"\0" * 12 + b"\x08\x00", 14)
    assert not m(b"\0" * 12 + b"\x86\xdd", 14)
    assert not m(b"\0" * 13, 13)  # the load runs past the packet: rejected
