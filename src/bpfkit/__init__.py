"""bpfkit: the BPF system in Python."""

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

__version__ = "0.1.0"


def load(source, backend: str = "vm", **options):  # type: ignore[no-untyped-def]
    """Load an ELF object (path, bytes or ``ObjectSpec``) into a backend; see :mod:`bpfkit.api`.

    A path ending in ``.c`` is compiled with clang first.
    """
    from .api import load as _load

    return _load(source, backend, **options)


def build(src, out=None, **options):  # type: ignore[no-untyped-def]
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
