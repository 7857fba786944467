"""The BPF objects embedded in Debian's libbpf-tools (``/usr/sbin/execsnoop`` ...).

Each tool is a libbpf skeleton: its BPF ELF object sits in the binary as a byte array.
:func:`embedded_objects` finds them by scanning for ELF headers whose machine is
``EM_BPF`` (247) and cuts each at the end of its section header table.
"""

from __future__ import annotations

import os
import struct
from functools import cache
from pathlib import Path

__all__ = ["TOOLS_DIR", "embedded_objects", "tool_objects"]

TOOLS_DIR = Path("/usr/sbin")
_EM_BPF, _ET_REL = 247, 1
_MAGIC = b"\x7fELF\x02\x01\x01"


def embedded_objects(data: bytes) -> list[bytes]:
    """Every little-endian 64-bit relocatable BPF object inside ``data``."""
    out = []
    pos = data.find(_MAGIC)
    while pos >= 0:
        if pos + 64 <= len(data):
            e_type, e_machine = struct.unpack_from("<HH", data, pos + 16)
            e_shoff = struct.unpack_from("<Q", data, pos + 40)[0]
            e_shentsize, e_shnum = struct.unpack_from("<HH", data, pos + 58)
            end = pos + e_shoff + e_shentsize * e_shnum
            if e_type == _ET_REL and e_machine == _EM_BPF and e_shnum and end <= len(data):
                out.append(data[pos:end])
        pos = data.find(_MAGIC, pos + 1)
    return out


def _is_libbpf_tool(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


@cache
def tool_objects() -> dict[str, bytes]:
    """``{tool name: its BPF object}`` for the libbpf-tools installed in /usr/sbin."""
    out: dict[str, bytes] = {}
    try:
        names = sorted(os.listdir(TOOLS_DIR))
    except OSError:
        return out
    for name in names:
        path = TOOLS_DIR / name
        if not path.is_file() or name.endswith(".bt") or not _is_libbpf_tool(path):
            continue
        if path.stat().st_size > 64 << 20:
            continue
        data = path.read_bytes()
        if b"libbpf" not in data:
            continue
        objs = embedded_objects(data)
        if len(objs) == 1:
            out[name] = objs[0]
        else:
            for i, o in enumerate(objs):
                out[f"{name}#{i}"] = o
    return out
