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

__all__ = ["AsmError", "BpfError", "BtfError", "DecodeError", "ElfError", "EncodeError",
           "KernelError", "NotSupported", "RuntimeFault", "VerifierError", "__version__"]
