"""The front door: ``bpfkit.load()`` on top of the two backends.

``load(path_or_spec, backend="vm")`` returns an :class:`~bpfkit.objects.Object` whose
``.programs`` and ``.maps`` behave the same on every backend. The backend-neutral classes
live in :mod:`bpfkit.objects` (re-exported here); the backends import that module, never
this one, so there is no import circle: ``api`` → ``vm.object`` / ``kernel.object`` →
``objects``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .objects import (
    ANY,
    EXIST,
    FD_VALUE_TYPES,
    INDEX_KEY_TYPES,
    KEYLESS_TYPES,
    NOEXIST,
    PERCPU_TYPES,
    BloomFilter,
    Codec,
    Map,
    MapBase,
    Object,
    PerfEventArray,
    Program,
    QueueMap,
    RingBuffer,
    TestRunResult,
    int_codec,
    make_codec,
    map_codecs,
)

if TYPE_CHECKING:
    from .obj.spec import ObjectSpec

__all__ = [
    "load",
    "BACKENDS",
    "Object",
    "Program",
    "MapBase",
    "Map",
    "QueueMap",
    "BloomFilter",
    "RingBuffer",
    "PerfEventArray",
    "TestRunResult",
    "Codec",
    "make_codec",
    "map_codecs",
    "int_codec",
    "ANY",
    "NOEXIST",
    "EXIST",
    "PERCPU_TYPES",
    "FD_VALUE_TYPES",
    "KEYLESS_TYPES",
    "INDEX_KEY_TYPES",
]

#: the backends :func:`load` knows
BACKENDS = ("vm", "kernel")


def load(
    source: str | os.PathLike | bytes | ObjectSpec, backend: str = "vm", **options: Any
) -> Object:
    """Load an ELF object (path, bytes or parsed ``ObjectSpec``) into a backend.

    Both backends take ``programs`` (names to load; default: every program whose
    ``autoload`` is set) and the load-time overrides of
    :func:`bpfkit.obj.overrides.apply_overrides`: ``value_size``, ``max_entries``,
    ``constants``, ``prog_type``, ``attach_type``, ``autoload``.
    ``backend="vm"`` runs it in-process; its own options: ``ncpus``, ``cpu``, ``task``,
    ``seed``, ``budget``, ``verify`` (default True: every program is verified on load and
    a rejection raises ``VerifierError``, as the kernel's would; False loads unverified
    code for experiments) and ``unpriv``. ``backend="kernel"`` loads it into the running
    kernel; its own options are those of :class:`bpfkit.kernel.loader.LoadOptions`
    (``pin_root``, ``kconfig``, ``log_level``, ``core_btf``, ``attach_targets``, ...).

    A path ending in ``.c`` is BPF C: it is compiled with clang first (see
    :func:`bpfkit.build`; :class:`~bpfkit.errors.NotSupported` without clang).
    """
    from .obj.spec import ObjectSpec

    if isinstance(source, str | os.PathLike) and os.fspath(source).endswith(".c"):
        from .obj.build import build_object

        source = build_object(source)  # C source: compiled with clang first
    if not isinstance(source, ObjectSpec):
        from .obj import load_object

        spec = load_object(source)
    else:
        spec = source
    if backend == "vm":
        from .vm.object import VMObject

        return VMObject(spec, **options)
    if backend == "kernel":
        from .kernel.object import load_kernel_object

        return load_kernel_object(spec, **options)
    raise ValueError(f"unknown backend {backend!r} ({' or '.join(BACKENDS)})")
