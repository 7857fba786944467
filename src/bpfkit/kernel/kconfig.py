"""``.kconfig`` externs: the running kernel's configuration and version, as a program sees them.

A program declares ``extern int CONFIG_HZ __kconfig;`` (or ``bool``, ``enum
libbpf_tristate``, ``char[]`` for strings, any integer width); the loader fills the
``.kconfig`` map with the values from ``/proc/config.gz`` (or ``/boot/config-$(uname -r)``)
and a few ``LINUX_*`` facts, then freezes it.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
from typing import TYPE_CHECKING, Any

from ..btf.types import Array, Enum, Int
from ..errors import BpfError, BtfError

if TYPE_CHECKING:
    from ..btf.types import Btf
    from ..obj.spec import ExternSpec, ObjectSpec

__all__ = [
    "kernel_config",
    "kernel_version_code",
    "linux_facts",
    "kconfig_contents",
    "TRI_NO",
    "TRI_YES",
    "TRI_MODULE",
]

TRI_NO, TRI_YES, TRI_MODULE = 0, 1, 2
_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@functools.cache
def kernel_config(path: str | None = None) -> dict[str, str]:
    """The running kernel's ``CONFIG_*`` options as strings (``y``, ``m``, ``n``, numbers, quoted)."""
    paths = [path] if path else ["/proc/config.gz", f"/boot/config-{os.uname().release}"]
    for p in paths:
        try:
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rt", errors="replace") as f:  # type: ignore[operator]
                text = f.read()
        except OSError:
            continue
        out: dict[str, str] = {}
        for line in text.splitlines():
            if m := _LINE.match(line):
                out[m.group(1)] = m.group(2)
            elif m := _UNSET.match(line):
                out[m.group(1)] = "n"
        return out
    return {}


def kernel_version_code(release: str | None = None) -> int:
    """``LINUX_VERSION_CODE`` of a release string (default: this kernel's)."""
    rel = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", rel)
    if not m:
        return 0
    a, b, c = (int(x or 0) for x in m.groups())
    return (a << 16) + (b << 8) + min(c, 255)


@functools.cache
def _has_syscall_wrapper() -> bool:
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                name = line.rstrip().rsplit(" ", 1)[-1]
                if name.endswith("sys_bpf") and name.startswith("__"):
                    return True
                if name == "sys_bpf":
                    return False
    except OSError:
        pass
    return os.uname().machine in ("x86_64", "aarch64", "s390x", "riscv64")


def _has_bpf_cookie() -> int:
    from .features import feature

    try:
        return int(feature("bpf_cookie").supported)
    except BpfError:
        return 0


def linux_facts() -> dict[str, int]:
    """The ``LINUX_*`` externs libbpf-built programs may declare."""
    return {
        "LINUX_KERNEL_VERSION": kernel_version_code(),
        "LINUX_HAS_BPF_COOKIE": _has_bpf_cookie(),
        "LINUX_HAS_SYSCALL_WRAPPER": int(_has_syscall_wrapper()),
    }


def _encode(btf: Btf | None, ext: ExternSpec, raw: Any) -> bytes:
    """The bytes of one extern of ``ext.size`` bytes, from a config string or a value."""
    size = ext.size
    t = None
    if btf is not None and ext.type_id:
        try:
            t = btf.resolve(ext.type_id)
        except BtfError:
            t = None
    if isinstance(raw, bytes):
        return raw[:size].ljust(size, b"\0")
    if isinstance(t, Array):
        s = raw if isinstance(raw, str) else str(raw)
        if len(s) >= 2 and s[0] == s[-1] == '"':
            s = s[1:-1]
        b = s.encode()
        if len(b) >= size:
            raise BpfError(f"kconfig {ext.name}: string {s!r} does not fit in {size} bytes")
        return b.ljust(size, b"\0")
    if isinstance(raw, bool):
        val = int(raw)
    elif isinstance(raw, int):
        val = raw
    else:
        s = str(raw)
        if s in ("y", "m", "n"):
            if isinstance(t, Enum):
                val = {"y": TRI_YES, "m": TRI_MODULE, "n": TRI_NO}[s]
            elif s == "m" and isinstance(t, Int) and t.is_bool:
                raise BpfError(f"kconfig {ext.name}=m cannot be read as a bool")
            else:
                val = 1 if s in ("y", "m") else 0
        elif s.startswith('"'):
            raise BpfError(f"kconfig {ext.name} is a string; declare it as char[]")
        else:
            try:
                val = int(s, 0)
            except ValueError:
                raise BpfError(f"kconfig {ext.name}: cannot parse value {s!r}") from None
    signed = isinstance(t, Int | Enum) and bool(getattr(t, "signed", False))
    lo, hi = (-(1 << (8 * size - 1)), 1 << (8 * size - 1)) if signed else (0, 1 << (8 * size))
    if not lo <= val < hi and not (val < 0 and -val <= 1 << (8 * size - 1)):
        raise BpfError(f"kconfig {ext.name}: value {val} does not fit in {size} bytes")
    return (val & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def kconfig_contents(
    spec: ObjectSpec,
    overrides: dict[str, Any] | None = None,
    *,
    config: dict[str, str] | None = None,
) -> bytes | None:
    """The value of the ``.kconfig`` map for ``spec`` (``None`` when it has no kconfig externs)."""
    m = spec.maps.get(".kconfig")
    if m is None:
        return None
    cfg = kernel_config() if config is None else config
    facts = linux_facts()
    buf = bytearray(m.value_size)
    for ext in spec.externs.values():
        if ext.kind != "kconfig":
            continue
        if overrides and ext.name in overrides:
            raw = overrides[ext.name]
        elif ext.name in facts:
            raw = facts[ext.name]
        elif ext.name in cfg:
            raw = cfg[ext.name]
        elif ext.weak:
            continue
        else:
            raise BpfError(
                f"kconfig extern {ext.name} is not set by this kernel and not declared __weak"
            )
        buf[ext.offset : ext.offset + ext.size] = _encode(spec.btf, ext, raw)
    return bytes(buf)
