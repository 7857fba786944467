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
    """Load an ELF object (path, bytes or ``ObjectSpec``) into a backend; see :mod:`bpfkit.api`."""
    from .api import load as _load

    return _load(source, backend, **options)


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
    "load",
]
