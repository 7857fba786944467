"""bpfkit: the BPF system in Python."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    AsmError,
    BpfError,
    BtfError,
    DecodeError,
    ElfError,
    EncodeError,
    KernelError,
    NotSupported,
    RuntimeFault,
    VerifierError,
)

if TYPE_CHECKING:
    from .api import Object
    from .obj.spec import ObjectSpec

__version__ = "0.1.0"


def load(
    source: str | os.PathLike[str] | bytes | ObjectSpec, backend: str = "vm", **options: Any
) -> Object:
    """Load an ELF object (path, bytes or ``ObjectSpec``) into a backend; see :mod:`bpfkit.api`.

    A path ending in ``.c`` is compiled with clang first.
    """
    from .api import load as _load

    return _load(source, backend, **options)


def build(
    src: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, **options: Any
) -> Path:
    """Compile BPF C with clang (``-O2 -g -target bpf``); returns the object's path.

    See :func:`bpfkit.obj.build.build` (``includes``, ``defines``, ``mcpu``, ``clang``).
    """
    from .obj.build import build as _build

    return _build(src, out, **options)


__all__ = [
    "AsmError",
    "BpfError",
    "BtfError",
    "DecodeError",
    "ElfError",
    "EncodeError",
    "KernelError",
    "NotSupported",
    "RuntimeFault",
    "VerifierError",
    "__version__",
    "build",
    "load",
]
