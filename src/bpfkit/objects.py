"""The backend-neutral Object, Map and Program that both backends implement.

:func:`bpfkit.load` (in :mod:`bpfkit.api`, above the backends) returns an :class:`Object`
whose ``.programs`` and ``.maps`` behave the same on every backend; the VM
(:mod:`bpfkit.vm.object`) and the kernel (:mod:`bpfkit.kernel.object`) import this module
and nothing above it, so the front door and the backends do not import each other.

A keyed map is a ``MutableMapping`` whose keys and values are decoded through the
object's BTF (ints, records — dicts with attribute access — for structs, lists for arrays
and per-CPU values, ``str`` for C strings in ``char[]``; keys hashable) and always accept
raw bytes; the keyless kinds (queue/stack, bloom filter, ring buffer, perf event array)
have their own small interfaces. A program has ``test_run(...)`` (``BPF_PROG_TEST_RUN``) and ``run(...)``
(fire a tracing program with a given context).

The abstract classes here hold everything that does not depend on the backend; a
backend implements the ``*_raw`` operations (bytes in, bytes out, the kernel's errors).
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import BpfError, BtfError
from .uapi.enums import MapType, ProgType

if TYPE_CHECKING:
    from .btf.types import Btf

__all__ = [
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
    "ANY",
    "NOEXIST",
    "EXIST",
]

ANY, NOEXIST, EXIST = 0, 1, 2
PERCPU_TYPES = frozenset(
    {
        MapType.PERCPU_ARRAY,
        MapType.PERCPU_HASH,
        MapType.LRU_PERCPU_HASH,
        MapType.PERCPU_CGROUP_STORAGE,
    }
)
FD_VALUE_TYPES = frozenset(
    {
        MapType.PROG_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS,
        MapType.PERF_EVENT_ARRAY,
        MapType.CGROUP_ARRAY,
    }
)
KEYLESS_TYPES = frozenset(
    {MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER, MapType.RINGBUF, MapType.USER_RINGBUF}
)


# ---- results ------------------------------------------------------------------------
@dataclass
class TestRunResult:
    """What a test run (or a fired run) gives back."""

    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes = b""
    ctx_out: bytes | None = None
    duration: int = 0
    trace: list[str] = field(default_factory=list)
    #: where a redirect helper sent the packet, if one did (VM only)
    redirect: dict[str, Any] | None = None

    @property
    def duration_ns(self) -> int:
        """Mean duration of one run, in nanoseconds."""
        return self.duration

    @property
    def trace_printk(self) -> list[str]:
        """The ``bpf_trace_printk`` lines of the run(s)."""
        return self.trace


# ---- codecs -------------------------------------------------------------------------
class Codec:
    """Bytes <-> Python values of one fixed size (raw bytes are always accepted)."""

    def __init__(self, size: int, name: str = "bytes") -> None:
        self.size = size
        self.name = name

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            b = bytes(value)
            if len(b) != self.size:
                raise ValueError(f"{len(b)} bytes given for a {self.size}-byte {self.name}")
            return b
        return self._encode(value)

    def _encode(self, value: Any) -> bytes:
        if isinstance(value, int) and not isinstance(value, bool) and self.size in (1, 2, 4, 8):
            return (value & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little")
        raise TypeError(
            f"give {self.size} bytes for this {self.name} (no BTF type to encode "
            f"{type(value).__name__})"
        )

    def decode(self, data: bytes) -> Any:
        return bytes(data)


class _IntCodec(Codec):
    def __init__(self, size: int, signed: bool, name: str) -> None:
        super().__init__(size, name)
        self.signed = signed
        self.fmt = struct.Struct(
            "<" + {1: "b", 2: "h", 4: "i", 8: "q"}[size].lower()
            if signed
            else "<" + {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
        )

    def _encode(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.name} needs an int, got {type(value).__name__}")
        lo = -(1 << (8 * self.size - 1)) if self.signed else 0
        if not lo <= value < (1 << (8 * self.size)):
            raise ValueError(f"{value} does not fit in {self.name}")
        return (value & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        return self.fmt.unpack(data)[0]


class _TypedCodec(Codec):
    """A BTF type's codec, compiled once (:func:`bpfkit.btf.codec.compile_type`); a key
    codec decodes hashable values (frozen records, tuples)."""

    def __init__(self, btf: Btf, type_id: int, size: int, name: str, key: bool = False) -> None:
        from .btf.codec import compile_type

        super().__init__(size, name)
        self.btf = btf
        self.type_id = type_id
        self.typed = compile_type(btf, type_id, key=key)
        self.decode = self.typed.decode  # type: ignore[method-assign]

    def _encode(self, value: Any) -> bytes:
        return self.typed.encode(value)


def int_codec(size: int, signed: bool = False) -> Codec:
    """An integer codec of ``size`` bytes (1, 2, 4 or 8), little-endian."""
    return _IntCodec(size, signed, f"{'s' if signed else 'u'}{8 * size}")


#: map types whose keys are u32 indices and whose values are fds/ids when there is no BTF
INDEX_KEY_TYPES = frozenset(
    {
        MapType.ARRAY,
        MapType.PERCPU_ARRAY,
        MapType.PROG_ARRAY,
        MapType.PERF_EVENT_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.CGROUP_ARRAY,
        MapType.DEVMAP,
        MapType.CPUMAP,
        MapType.XSKMAP,
        MapType.STACK_TRACE,
    }
)


def map_codecs(
    btf: Btf | None,
    map_type: MapType | int,
    key_size: int,
    value_size: int,
    key_type_id: int | None,
    value_type_id: int | None,
) -> tuple[Codec, Codec]:
    """Key and value codecs of a map: its BTF types, else u32 indices and fds/ids."""
    kc = make_codec(btf, key_type_id, key_size, key=True)
    vc = make_codec(btf, value_type_id, value_size)
    if type(kc) is Codec and map_type in INDEX_KEY_TYPES and key_size == 4:
        kc = int_codec(4)
    if type(vc) is Codec and map_type in FD_VALUE_TYPES and value_size == 4:
        vc = int_codec(4)
    if type(vc) is Codec and map_type == MapType.STACK_TRACE and value_size % 8 == 0:
        vc = _U64ListCodec(value_size)
    return kc, vc


class _U64ListCodec(Codec):
    """A list of u64 (a stack trace's instruction pointers), zero-padded."""

    def __init__(self, size: int) -> None:
        super().__init__(size, "u64[]")
        self.fmt = struct.Struct(f"<{size // 8}Q")

    def _encode(self, value: Any) -> bytes:
        vals = list(value) + [0] * (self.size // 8 - len(value))
        return self.fmt.pack(*vals)

    def decode(self, data: bytes) -> list[int]:
        return list(self.fmt.unpack(data))


def make_codec(btf: Btf | None, type_id: int | None, size: int, *, key: bool = False) -> Codec:
    """The codec of BTF type ``type_id`` (raw bytes when there is no usable type); a key
    codec (``key=True``) decodes structs and arrays to hashable values."""
    if btf is None or not type_id or size <= 0:
        return Codec(size)
    try:
        t = btf.resolve(type_id)
        name = btf.type_name(type_id)
        tsize = btf.size_of(type_id)
    except (BtfError, IndexError, KeyError):
        return Codec(size)
    if tsize != size:
        return Codec(size)
    kind = getattr(t, "kind_name", "")
    if (
        kind == "INT"
        and tsize in (1, 2, 4, 8)
        and t.bits == 8 * tsize
        and not t.offset
        and not t.is_bool
    ):  # type: ignore[attr-defined]
        return _IntCodec(tsize, t.signed, name)  # type: ignore[attr-defined]
    return _TypedCodec(btf, type_id, size, name, key)


# ---- maps ---------------------------------------------------------------------------
class MapBase(ABC):
    """What every map has: its attributes and its identity in the backend."""

    name: str
    type: MapType | int
    key_size: int
    value_size: int
    max_entries: int
    flags: int

    @property
    @abstractmethod
    def fd(self) -> int:
        """The map's file descriptor (the VM's id)."""

    @property
    def type_name(self) -> str:
        return getattr(self.type, "name", str(self.type)).lower()

    def freeze(self) -> None:
        """Make the map read-only from user space."""
        raise BpfError(f"{self.type_name} maps cannot be frozen")

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type_name,
            "key_size": self.key_size,
            "value_size": self.value_size,
            "max_entries": self.max_entries,
            "flags": self.flags,
        }

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.type_name} key={self.key_size} "
            f"value={self.value_size} max={self.max_entries}>"
        )


class Map(MapBase, MutableMapping[Any, Any]):
    """A keyed map as a ``MutableMapping`` (hash, array, LRU, per-CPU, LPM trie, ...).

    Per-CPU maps give (and take) a list with one value per CPU; a single value given for
    a per-CPU map goes to every CPU. Array-like maps always have every key; deleting one
    raises ``KernelError`` (``EINVAL``) as the kernel does.
    """

    key_codec: Codec
    value_codec: Codec
    ncpus: int = 1

    # ---- what a backend provides ------------------------------------------------------
    @abstractmethod
    def lookup_raw(self, key: bytes) -> bytes | None:
        """The raw value (per-CPU: all CPUs, 8-aligned) or ``None`` if absent."""

    @abstractmethod
    def update_raw(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        """Store a raw value (``KernelError`` on failure)."""

    @abstractmethod
    def delete_raw(self, key: bytes) -> bool:
        """Delete; ``False`` if the key was absent."""

    @abstractmethod
    def next_key_raw(self, key: bytes | None) -> bytes | None:
        """The key after ``key`` (first when ``None``), or ``None`` at the end."""

    def keys_raw(self) -> Iterator[bytes]:
        """Every raw key, in ``get_next_key`` order."""
        key = None
        while (key := self.next_key_raw(key)) is not None:
            yield key

    def lookup_and_delete_raw(self, key: bytes) -> bytes | None:
        v = self.lookup_raw(key)
        if v is not None:
            self.delete_raw(key)
        return v

    # ---- encoding ---------------------------------------------------------------------
    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_TYPES

    def encode_key(self, key: Any) -> bytes:
        return self.key_codec.encode(key)

    def decode_key(self, raw: bytes) -> Any:
        return self.key_codec.decode(raw)

    def encode_value(self, value: Any) -> bytes:
        if isinstance(value, MapBase | Program):
            value = value.fd
        if not self.percpu:
            return self.value_codec.encode(value)
        stride = (self.value_size + 7) & ~7
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value)
            if len(value) == stride * self.ncpus:
                return value
            values: list[Any] = [value] * self.ncpus
        elif isinstance(value, list | tuple):
            if len(value) != self.ncpus:
                raise ValueError(f"{len(value)} values given for {self.ncpus} CPUs")
            values = list(value)
        else:
            values = [value] * self.ncpus
        pad = bytes(stride - self.value_size)
        return b"".join(self.value_codec.encode(v) + pad for v in values)

    def decode_value(self, raw: bytes) -> Any:
        if not self.percpu:
            return self.value_codec.decode(raw)
        stride = (self.value_size + 7) & ~7
        return [
            self.value_codec.decode(raw[i * stride : i * stride + self.value_size])
            for i in range(len(raw) // stride)
        ]

    # ---- MutableMapping ---------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        raw = self.lookup_raw(self.encode_key(key))
        if raw is None:
            raise KeyError(key)
        return self.decode_value(raw)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update_raw(self.encode_key(key), self.encode_value(value), ANY)

    def __delitem__(self, key: Any) -> None:
        if not self.delete_raw(self.encode_key(key)):
            raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return (self.decode_key(k) for k in self.keys_raw())

    def __len__(self) -> int:
        return sum(1 for _ in self.keys_raw())

    def __contains__(self, key: object) -> bool:
        try:
            return self.lookup_raw(self.encode_key(key)) is not None
        except (TypeError, ValueError):
            return False

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        """(key, value) of every element present (absent fd-array slots skipped)."""
        for k in list(self.keys_raw()):
            v = self.lookup_raw(k)
            if v is not None:
                yield self.decode_key(k), self.decode_value(v)

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return (v for _k, v in self.items())

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key bytes, value bytes) of every element present."""
        for k in list(self.keys_raw()):
            v = self.lookup_raw(k)
            if v is not None:
                yield k, v

    def put(self, key: Any, value: Any, flags: int = ANY) -> None:
        """Store with ``BPF_ANY``/``BPF_NOEXIST``/``BPF_EXIST`` (``KernelError`` on failure)."""
        self.update_raw(self.encode_key(key), self.encode_value(value), flags)

    def pop(self, key: Any, *default: Any) -> Any:  # type: ignore[override]
        raw = self.lookup_and_delete_raw(self.encode_key(key))
        if raw is None:
            if default:
                return default[0]
            raise KeyError(key)
        return self.decode_value(raw)

    def clear(self) -> None:
        for k in list(self.keys_raw()):
            self.delete_raw(k)

    # ---- batches ----------------------------------------------------------------------
    def lookup_batch(self, keys: Iterable[Any] | None = None) -> dict[Any, Any]:
        """Several (or, without ``keys``, all) elements at once, as a dict."""
        if keys is None:
            return dict(self.items())
        out = {}
        for k in keys:
            raw = self.lookup_raw(self.encode_key(k))
            if raw is not None:
                out[k] = self.decode_value(raw)
        return out

    def update_batch(
        self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]], flags: int = ANY
    ) -> int:
        """Store several elements; returns how many were stored."""
        pairs = items.items() if isinstance(items, Mapping) else items
        n = 0
        for k, v in pairs:
            self.update_raw(self.encode_key(k), self.encode_value(v), flags)
            n += 1
        return n

    def delete_batch(self, keys: Iterable[Any]) -> int:
        """Delete several keys; returns how many were present."""
        return sum(1 for k in keys if self.delete_raw(self.encode_key(k)))

    def lookup_and_delete_batch(self) -> dict[Any, Any]:
        """Take every element out of the map."""
        out = {}
        for k in list(self.keys_raw()):
            raw = self.lookup_and_delete_raw(k)
            if raw is not None:
                out[self.decode_key(k)] = self.decode_value(raw)
        return out

    def snapshot(self) -> dict[bytes, bytes]:
        """Raw contents, for comparing two maps (or a map before and after a run)."""
        return dict(self.raw_items())


class QueueMap(MapBase):
    """``QUEUE`` (FIFO) and ``STACK`` (LIFO): push, pop, peek."""

    value_codec: Codec

    @abstractmethod
    def push_raw(self, value: bytes, flags: int = ANY) -> None: ...

    @abstractmethod
    def pop_raw(self) -> bytes | None: ...

    @abstractmethod
    def peek_raw(self) -> bytes | None: ...

    def push(self, value: Any, flags: int = ANY) -> None:
        """Push (``BPF_EXIST`` overwrites the oldest when full)."""
        self.push_raw(self.value_codec.encode(value), flags)

    def pop(self) -> Any:
        """Take the next value out (``KeyError`` when empty)."""
        raw = self.pop_raw()
        if raw is None:
            raise KeyError("pop from an empty map")
        return self.value_codec.decode(raw)

    def peek(self) -> Any:
        raw = self.peek_raw()
        if raw is None:
            raise KeyError("peek into an empty map")
        return self.value_codec.decode(raw)

    def drain(self) -> list[Any]:
        """Pop everything."""
        out = []
        while (raw := self.pop_raw()) is not None:
            out.append(self.value_codec.decode(raw))
        return out


class BloomFilter(MapBase):
    """``BLOOM_FILTER``: push values, ask whether one may be in."""

    value_codec: Codec

    @abstractmethod
    def push_raw(self, value: bytes) -> None: ...

    @abstractmethod
    def contains_raw(self, value: bytes) -> bool: ...

    def push(self, value: Any) -> None:
        self.push_raw(self.value_codec.encode(value))

    def __contains__(self, value: object) -> bool:
        return self.contains_raw(self.value_codec.encode(value))


class RingBuffer(MapBase):
    """``RINGBUF``: consume the records programs submitted, in order."""

    @abstractmethod
    def consume(
        self, callback: Callable[[bytes], Any] | None = None, limit: int | None = None
    ) -> list[bytes] | int:
        """The available records (or, with ``callback``, how many it handled)."""

    def poll(
        self, callback: Callable[[bytes], Any] | None = None, timeout: float = 0.0
    ) -> list[bytes] | int:
        """Wait up to ``timeout`` seconds for records, then consume them."""
        return self.consume(callback)

    @property
    def dropped(self) -> int | None:
        """Records programs could not reserve or output because the ring was full (the
        VM counts them; None where nothing counts them: the kernel keeps no such count)."""
        return None

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.consume())  # type: ignore[arg-type]


class PerfEventArray(MapBase):
    """``PERF_EVENT_ARRAY``: open per-CPU buffers, read the samples."""

    @abstractmethod
    def open(self, cpus: list[int] | None = None, pages: int = 8) -> None: ...

    @abstractmethod
    def read(self) -> list[tuple[int, bytes]]:
        """(cpu, data) of every sample since the last read."""

    @property
    def lost(self) -> int:
        return 0


# ---- programs -----------------------------------------------------------------------
class Program(ABC):
    """A loaded program."""

    name: str
    type: ProgType | int
    section: str = ""

    @property
    @abstractmethod
    def fd(self) -> int:
        """The program's file descriptor (the VM's id)."""

    @property
    def type_name(self) -> str:
        return getattr(self.type, "name", str(self.type)).lower()

    @abstractmethod
    def test_run(
        self,
        data: bytes = b"",
        ctx: Any = None,
        repeat: int = 1,
        *,
        engine: str = "interp",
        **opts: Any,
    ) -> TestRunResult:
        """``BPF_PROG_TEST_RUN``: retval, data_out, ctx_out, duration, trace lines."""

    @abstractmethod
    def run(self, ctx: Any = None, *, engine: str = "interp", **opts: Any) -> TestRunResult:
        """Fire the program once with ``ctx``, as its hook would (tracing types)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.type_name}>"


class Object(ABC):
    """A loaded object: its programs and maps by name."""

    programs: Mapping[str, Program]
    maps: Mapping[str, MapBase]
    backend: str = ""

    @abstractmethod
    def close(self) -> None:
        """Release every map and program."""

    def __enter__(self) -> Object:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def program(self, name: str | None = None) -> Program:
        """A program by name or section (the only/first one without a name)."""
        if name is None:
            if not self.programs:
                raise KeyError("object has no programs")
            return next(iter(self.programs.values()))
        if name in self.programs:
            return self.programs[name]
        for p in self.programs.values():
            if p.section == name:
                return p
        raise KeyError(f"no program {name!r} (have {', '.join(self.programs) or 'none'})")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.backend} programs={list(self.programs)} "
            f"maps={list(self.maps)}>"
        )
