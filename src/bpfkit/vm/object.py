"""The VM backend of :func:`bpfkit.load`: Object, Map and Program over a :class:`VMRuntime`."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..objects import (
    ANY,
    KEYLESS_TYPES,
    BloomFilter,
    Map,
    MapBase,
    Object,
    PerfEventArray,
    Program,
    QueueMap,
    RingBuffer,
    TestRunResult,
    make_codec,
    map_codecs,
)
from .maps import (
    BloomFilterMap,
    MapError,
    PerfEventArrayMap,
    RingBufMap,
    VMMap,
)
from .maps import (
    QueueMap as VMQueue,
)
from .progtypes import RunOutcome
from .runtime import VMProgram, VMRuntime, load_spec

if TYPE_CHECKING:
    from ..btf.types import Btf
    from ..obj.spec import ObjectSpec

__all__ = ["VMObject", "VMMapView", "VMProgramView", "wrap_map"]


class _VMMapAttrs:
    vm: VMMap

    def _init(self, vm: VMMap) -> None:
        self.vm = vm
        self.name = vm.name
        self.type = vm.type
        self.key_size = vm.key_size
        self.value_size = vm.value_size
        self.max_entries = vm.max_entries
        self.flags = vm.flags

    @property
    def fd(self) -> int:
        return self.vm.fd

    def freeze(self) -> None:
        self.vm.freeze()


class VMMapView(_VMMapAttrs, Map):
    """A keyed VM map as a ``MutableMapping`` with BTF-typed keys and values."""

    def __init__(self, vm: VMMap, btf: Btf | None = None) -> None:
        self._init(vm)
        self.ncpus = vm.ctx.ncpus
        self.key_codec, self.value_codec = map_codecs(
            btf, vm.type, vm.key_size, vm.value_size, vm.btf_key_type, vm.btf_value_type
        )

    def lookup_raw(self, key: bytes) -> bytes | None:
        try:
            return self.vm.lookup(key)
        except MapError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def update_raw(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        self.vm.update(key, value, flags)

    def delete_raw(self, key: bytes) -> bool:
        try:
            self.vm.delete(key)
        except MapError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    def next_key_raw(self, key: bytes | None) -> bytes | None:
        try:
            return self.vm.get_next_key(key)
        except MapError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def keys_raw(self):
        return self.vm.keys()

    def lookup_and_delete_raw(self, key: bytes) -> bytes | None:
        try:
            return self.vm.lookup_and_delete(key)
        except MapError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def __len__(self) -> int:
        return len(self.vm)

    def memory(self) -> memoryview:
        """Array maps: all values as one writable memoryview (the mmap of the map)."""
        mem = getattr(self.vm, "memory", None)
        if mem is None:
            raise TypeError(f"{self.type_name} maps have no flat memory")
        return mem()


class VMQueueView(_VMMapAttrs, QueueMap):
    def __init__(self, vm: VMQueue, btf: Btf | None = None) -> None:
        self._init(vm)
        self.value_codec = make_codec(btf, vm.btf_value_type, vm.value_size)

    def push_raw(self, value: bytes, flags: int = ANY) -> None:
        self.vm.push(value, flags)

    def _take(self, fn: Callable[[], bytes]) -> bytes | None:
        try:
            return fn()
        except MapError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def pop_raw(self) -> bytes | None:
        return self._take(self.vm.pop)

    def peek_raw(self) -> bytes | None:
        return self._take(self.vm.peek)

    def __len__(self) -> int:
        return len(self.vm)


class VMBloomView(_VMMapAttrs, BloomFilter):
    def __init__(self, vm: BloomFilterMap, btf: Btf | None = None) -> None:
        self._init(vm)
        self.value_codec = make_codec(btf, vm.btf_value_type, vm.value_size)

    def push_raw(self, value: bytes) -> None:
        self.vm.push(value)

    def contains_raw(self, value: bytes) -> bool:
        return self.vm.contains(value)  # type: ignore[attr-defined]


class VMRingBufView(_VMMapAttrs, RingBuffer):
    def __init__(self, vm: RingBufMap, btf: Btf | None = None) -> None:
        self._init(vm)

    def consume(self, callback=None, limit=None):
        return self.vm.consume(callback, limit)  # type: ignore[attr-defined]

    @property
    def available(self) -> int:
        return self.vm.available  # type: ignore[attr-defined]

    @property
    def dropped(self) -> int:
        return self.vm.dropped  # type: ignore[attr-defined]


class VMPerfView(_VMMapAttrs, PerfEventArray):
    def __init__(self, vm: PerfEventArrayMap, btf: Btf | None = None) -> None:
        self._init(vm)

    def open(self, cpus: list[int] | None = None, pages: int = 8) -> None:
        self.vm.open(cpus, pages)  # type: ignore[attr-defined]

    def read(self) -> list[tuple[int, bytes]]:
        return [(r.cpu, r.data) for r in self.vm.read()]  # type: ignore[attr-defined]

    @property
    def lost(self) -> int:
        return self.vm.lost  # type: ignore[attr-defined]


def wrap_map(vm: VMMap, btf: Btf | None = None) -> MapBase:
    """The API object for a VM map."""
    if isinstance(vm, RingBufMap):
        return VMRingBufView(vm, btf)
    if isinstance(vm, PerfEventArrayMap):
        return VMPerfView(vm, btf)
    if isinstance(vm, BloomFilterMap):
        return VMBloomView(vm, btf)
    if isinstance(vm, VMQueue):
        return VMQueueView(vm, btf)
    assert vm.type not in KEYLESS_TYPES
    return VMMapView(vm, btf)


def _result(out: RunOutcome) -> TestRunResult:
    return TestRunResult(
        out.retval, out.data_out, out.ctx_out, out.duration_ns, out.trace, out.redirect
    )


class VMProgramView(Program):
    """A VM program: ``test_run`` and ``run`` with the interpreter or the JIT."""

    def __init__(self, vm: VMProgram) -> None:
        self.vm = vm
        self.name = vm.name
        self.type = vm.prog_type
        self.section = vm.section

    @property
    def fd(self) -> int:
        return self.vm.fd

    @property
    def instructions(self):
        """The instructions as the VM runs them (relocated, context accesses converted)."""
        return self.vm.insns

    @property
    def verification(self):
        """The verifier's result on load (``stats``, ``log``); None if loaded with
        ``verify=False``; a :class:`~bpfkit.vm.runtime.NotVerified` (``verified`` false,
        ``reason``) for a type the VM can neither verify nor run, which never runs."""
        return self.vm.verification

    def test_run(
        self,
        data: bytes = b"",
        ctx: Any = None,
        repeat: int = 1,
        *,
        engine: str = "interp",
        **opts: Any,
    ) -> TestRunResult:
        return _result(self.vm.test_run(data=data, ctx=ctx, repeat=repeat, engine=engine, **opts))

    def run(self, ctx: Any = None, *, engine: str = "interp", **opts: Any) -> TestRunResult:
        return _result(self.vm.fire(ctx, engine=engine, **opts))


class VMObject(Object):
    """An object loaded into the VM."""

    backend = "vm"

    def __init__(self, spec: ObjectSpec, **options: Any) -> None:
        self.runtime: VMRuntime = load_spec(spec, **options)
        #: the spec as loaded (load-time overrides applied)
        self.spec = self.runtime.spec or spec
        btf = spec.btf
        self.maps: dict[str, MapBase] = {
            name: wrap_map(m, btf) for name, m in self.runtime.maps.items()
        }
        self.programs: dict[str, Program] = {
            name: VMProgramView(p) for name, p in self.runtime.programs.items()
        }

    @property
    def trace_pipe(self) -> list[str]:
        """Every ``bpf_trace_printk`` line since the object was loaded."""
        return self.runtime.trace_pipe

    @property
    def cpu(self) -> int:
        return self.runtime.cpu

    @cpu.setter
    def cpu(self, value: int) -> None:
        self.runtime.cpu = value

    def close(self) -> None:
        self.runtime.close()
