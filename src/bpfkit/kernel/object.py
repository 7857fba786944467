"""The kernel backend of :func:`bpfkit.load`: Object, Map and Program over file descriptors.

``bpfkit.load(path, backend="kernel")`` returns a :class:`KernelObject` that behaves like
the VM's: ``.maps`` are ``MutableMapping`` views typed through BTF (per-CPU values as a
list per possible CPU), ring buffers and perf event arrays have readers, programs have
``test_run``. On top of that, kernel objects attach (``program.attach()`` by section, or
the modules of :mod:`bpfkit.kernel` for each hook), pin, and describe themselves
(``info()``). Closing the object (or dropping the last reference) closes every fd it
created and detaches the links made through its programs, unless they were pinned.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import BpfError, KernelError, NotSupported
from ..objects import (
    ANY,
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
from ..uapi.enums import Cmd, MapType
from . import sys as bsys
from .loader import LoadedMap, LoadedProgram, LoadOptions, load_spec, value_size_of

if TYPE_CHECKING:
    from ..btf.types import Btf
    from ..obj.spec import ObjectSpec
    from .link import Link

__all__ = [
    "KernelObject",
    "KernelMap",
    "KernelProgram",
    "load_kernel_object",
    "open_map",
    "open_program",
    "wrap_map_fd",
]

_HASH_TYPES = frozenset(
    {MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH}
)
_BATCH_TYPES = _HASH_TYPES | {MapType.ARRAY, MapType.PERCPU_ARRAY}
_BATCH_CHUNK = 4096
# What a kernel without an operation (for this map type) answers.
_UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP, bsys.ENOTSUPP)


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------


class _KernelFd(bsys.Pinnable):
    """What kernel maps and programs share: their fd, pinning and closing."""

    _fd: bsys.FD

    @property
    def fd(self) -> int:
        """The file descriptor."""
        return self._fd.fileno()

    def fileno(self) -> int:
        """Same as :attr:`fd`."""
        return self._fd.fileno()

    def close(self) -> None:
        """Close this fd (the object lives on while other fds, pins or links hold it)."""
        self._fd.close()


class _KernelMapAttrs(_KernelFd):
    """What every kernel map view shares: attributes, fd, pinning, info."""

    ncpus: int = 1

    def _init(
        self,
        fd: bsys.FD,
        name: str,
        mtype: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int,
        pinned: str | None = None,
    ) -> None:
        self._fd = fd
        self.name = name
        try:
            self.type = MapType(mtype)
        except ValueError:
            self.type = mtype
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.pinned = pinned
        self.ncpus = bsys.possible_cpus()
        self._vsize = value_size_of(int(mtype), value_size, self.ncpus)

    @property
    def id(self) -> int:
        """The kernel's id of the map."""
        return bsys.map_info(self._fd).id

    def freeze(self) -> None:
        """Make the map read-only from user space (``BPF_MAP_FREEZE``)."""
        bsys.map_freeze(self._fd)

    def kernel_info(self) -> bsys.MapInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` of the map."""
        return bsys.map_info(self._fd)

    def info(self) -> dict[str, Any]:
        d = MapBase.info(self)  # type: ignore[arg-type]
        ki = self.kernel_info()
        d["id"] = ki.id
        d["btf_id"] = ki.btf_id
        if self.pinned:
            d["pinned"] = self.pinned
        return d


class KernelMap(_KernelMapAttrs, Map):
    """A keyed kernel map as a ``MutableMapping`` with BTF-typed keys and values."""

    def __init__(
        self,
        fd: bsys.FD,
        name: str,
        mtype: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int = 0,
        *,
        btf: Btf | None = None,
        key_type_id: int | None = None,
        value_type_id: int | None = None,
        pinned: str | None = None,
    ) -> None:
        self._init(fd, name, mtype, key_size, value_size, max_entries, flags, pinned)
        # compiled once per type (bpfkit.btf.codec): one struct format for flat structs
        self.key_codec, self.value_codec = map_codecs(
            btf, self.type, key_size, value_size, key_type_id, value_type_id
        )
        self._mmap: mmap.mmap | None = None

    # ---- raw operations ------------------------------------------------------------
    def lookup_raw(self, key: bytes) -> bytes | None:
        return bsys.map_lookup(self._fd, key, self._vsize)

    def update_raw(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        bsys.map_update(self._fd, key, value, flags)

    def delete_raw(self, key: bytes) -> bool:
        try:
            bsys.map_delete(self._fd, key)
        except KernelError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    def next_key_raw(self, key: bytes | None) -> bytes | None:
        return bsys.map_get_next_key(self._fd, key, self.key_size)

    def keys_raw(self) -> Iterator[bytes]:
        return bsys.map_keys(self._fd, self.key_size)

    def lookup_and_delete_raw(self, key: bytes) -> bytes | None:
        if self.type in _HASH_TYPES:
            try:
                return bsys.map_lookup_and_delete(self._fd, key, self._vsize)
            except KernelError as e:
                if e.errno not in _UNSUPPORTED:
                    raise
        return Map.lookup_and_delete_raw(self, key)

    # ---- batches --------------------------------------------------------------------
    def _batched(self) -> bool:
        return self.type in _BATCH_TYPES

    def _batches(
        self, batch_op: Callable[..., bsys.BatchResult], chunk: int
    ) -> Iterator[bsys.BatchResult]:
        """Run ``batch_op`` (``map_lookup[_and_delete]_batch``) over the whole map."""
        token: bytes | None = None
        count = min(chunk, max(self.max_entries, 1))
        while True:
            try:
                res = batch_op(self._fd, self.key_size, self._vsize, count, token)
            except KernelError as e:
                if e.errno == errno.ENOSPC and count < self.max_entries:
                    count = min(count * 2, self.max_entries)  # a hash bucket larger than count
                    continue
                raise
            yield res
            if res.next_batch is None:
                return
            token = res.next_batch

    def batch_items_raw(self, chunk: int = _BATCH_CHUNK) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) with ``BPF_MAP_LOOKUP_BATCH`` (falls back to key by key)."""
        if not self._batched():
            yield from Map.raw_items(self)
            return
        started = False
        try:
            for res in self._batches(bsys.map_lookup_batch, chunk):
                started = True
                yield from zip(res.keys, res.values, strict=True)
        except KernelError as e:
            if started or e.errno not in _UNSUPPORTED:
                raise
            yield from Map.raw_items(self)  # no batch lookup for this map in this kernel

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.batch_items_raw()

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        dk = self.key_codec.decode
        dv = self.decode_value if self.percpu else self.value_codec.decode
        for k, v in self.batch_items_raw():
            yield dk(k), dv(v)

    def lookup_batch(self, keys: Iterable[Any] | None = None) -> dict[Any, Any]:
        if keys is None:
            return dict(self.items())
        return Map.lookup_batch(self, keys)

    def update_batch(
        self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]], flags: int = ANY
    ) -> int:
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        if not pairs:
            return 0
        if not self._batched():
            return Map.update_batch(self, pairs, flags)
        keys = [self.encode_key(k) for k, _ in pairs]
        values = [self.encode_value(v) for _, v in pairs]
        n = 0
        for i in range(0, len(keys), _BATCH_CHUNK):
            n += bsys.map_update_batch(
                self._fd, keys[i : i + _BATCH_CHUNK], values[i : i + _BATCH_CHUNK], elem_flags=flags
            )
        return n

    def delete_batch(self, keys: Iterable[Any]) -> int:
        raw = [self.encode_key(k) for k in keys]
        if not raw:
            return 0
        if self.type in _HASH_TYPES:
            present = [k for k in raw if self.lookup_raw(k) is not None]
            n = 0
            for i in range(0, len(present), _BATCH_CHUNK):
                n += bsys.map_delete_batch(self._fd, present[i : i + _BATCH_CHUNK])
            return n
        return sum(1 for k in raw if self.delete_raw(k))

    def lookup_and_delete_batch(self) -> dict[Any, Any]:
        if self.type not in _HASH_TYPES:
            return Map.lookup_and_delete_batch(self)
        out: dict[Any, Any] = {}
        for res in self._batches(bsys.map_lookup_and_delete_batch, _BATCH_CHUNK):
            for k, v in zip(res.keys, res.values, strict=True):
                out[self.decode_key(k)] = self.decode_value(v)
        return out

    def __len__(self) -> int:
        return sum(1 for _ in self.keys_raw())

    # ---- memory-mapped arrays ---------------------------------------------------------
    def memory(self) -> memoryview:
        """Array maps created ``BPF_F_MMAPABLE`` (global data): all values as one memoryview."""
        if self.type != MapType.ARRAY or not self.flags & bsys.F_MMAPABLE:
            raise TypeError(f"map {self.name!r} is not a mmapable array")
        if self._mmap is None:
            size = (self.value_size * self.max_entries + mmap.PAGESIZE - 1) & ~(mmap.PAGESIZE - 1)
            try:
                self._mmap = mmap.mmap(self.fd, size, mmap.MAP_SHARED)
            except PermissionError:  # frozen: read-only
                self._mmap = mmap.mmap(self.fd, size, mmap.MAP_SHARED, prot=mmap.PROT_READ)
        return memoryview(self._mmap)[: self.value_size * self.max_entries]

    def close(self) -> None:
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:
                pass
            self._mmap = None
        super().close()


class _KernelValueView(_KernelMapAttrs):
    """A keyless map whose values are typed (queue, stack, bloom filter)."""

    def __init__(
        self,
        fd: bsys.FD,
        name: str,
        mtype: int,
        ks: int,
        vs: int,
        me: int,
        flags: int = 0,
        *,
        btf: Btf | None = None,
        value_type_id: int | None = None,
        pinned: str | None = None,
    ) -> None:
        self._init(fd, name, mtype, ks, vs, me, flags, pinned)
        self.value_codec = make_codec(btf, value_type_id, vs)


class _KernelStreamView(_KernelMapAttrs):
    """A map read through a reader made on first use (ring buffer, perf event array)."""

    def __init__(
        self,
        fd: bsys.FD,
        name: str,
        mtype: int,
        ks: int,
        vs: int,
        me: int,
        flags: int = 0,
        *,
        pinned: str | None = None,
        **_: Any,
    ) -> None:
        self._init(fd, name, mtype, ks, vs, me, flags, pinned)


class KernelQueue(_KernelValueView, QueueMap):
    """``QUEUE``/``STACK`` in the kernel."""

    def push_raw(self, value: bytes, flags: int = ANY) -> None:
        bsys.map_update(self._fd, None, value, flags)

    def pop_raw(self) -> bytes | None:
        return bsys.map_lookup_and_delete(self._fd, None, self.value_size)

    def peek_raw(self) -> bytes | None:
        return bsys.map_lookup(self._fd, None, self.value_size)

    def __len__(self) -> int:
        raise TypeError("the kernel does not tell how many elements a queue holds")


class KernelBloom(_KernelValueView, BloomFilter):
    """``BLOOM_FILTER`` in the kernel."""

    def push_raw(self, value: bytes) -> None:
        bsys.map_update(self._fd, None, value, ANY)

    def contains_raw(self, value: bytes) -> bool:
        buf = ctypes.create_string_buffer(bytes(value), max(len(value), 1))
        attr = bsys.MapElemAttr(map_fd=self.fd, key=0, value=ctypes.addressof(buf))
        res, err = bsys.bpf(Cmd.MAP_LOOKUP_ELEM, attr)
        if res < 0:
            if err == errno.ENOENT:
                return False
            raise KernelError(err, "BPF_MAP_LOOKUP_ELEM", bsys.hint_for(Cmd.MAP_LOOKUP_ELEM, err))
        return True


class KernelRingBuf(_KernelStreamView, RingBuffer):
    """``RINGBUF`` in the kernel, read through :class:`~bpfkit.kernel.ringbuf.RingBufReader`."""

    _reader = None

    @property
    def reader(self):
        """The mmap-based reader (created on first use)."""
        if self._reader is None:
            from .ringbuf import RingBufReader

            self._reader = RingBufReader(self._fd, self.max_entries)
        return self._reader

    def consume(self, callback=None, limit=None):
        return self.reader.consume(callback, limit)

    def poll(self, callback=None, timeout: float = 0.0):
        return self.reader.poll(callback, timeout)

    def read_batch(self, limit: int | None = None) -> list[memoryview]:
        """Zero-copy views of the available records (released by the next read)."""
        return self.reader.read_batch(limit)

    def records(self, timeout: float | None = None, *, copy: bool = False):
        """Yield records as they arrive (see :meth:`RingBufReader.records`)."""
        return self.reader.records(timeout, copy=copy)

    @property
    def available(self) -> int:
        return self.reader.available

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        super().close()


class KernelPerfArray(_KernelStreamView, PerfEventArray):
    """``PERF_EVENT_ARRAY`` in the kernel, read through :class:`~bpfkit.kernel.perfbuf.PerfBuffer`."""

    _buf = None

    def open(self, cpus: list[int] | None = None, pages: int = 8) -> None:
        from .perfbuf import PerfBuffer

        if self._buf is None:
            self._buf = PerfBuffer(self._fd, cpus=cpus, pages=pages)

    def read(self) -> list[tuple[int, bytes]]:
        if self._buf is None:
            self.open()
        return self._buf.read()  # type: ignore[union-attr]

    def poll(self, callback: Callable[[int, bytes], Any] | None = None, timeout: float = 0.0):
        """Wait for samples up to ``timeout`` seconds, then read them."""
        if self._buf is None:
            self.open()
        return self._buf.poll(callback, timeout)  # type: ignore[union-attr]

    @property
    def lost(self) -> int:
        return self._buf.lost if self._buf is not None else 0

    def close(self) -> None:
        if self._buf is not None:
            self._buf.close()
            self._buf = None
        super().close()


_VIEW_BY_TYPE: dict[int, type] = {
    MapType.QUEUE: KernelQueue,
    MapType.STACK: KernelQueue,
    MapType.BLOOM_FILTER: KernelBloom,
    MapType.RINGBUF: KernelRingBuf,
    MapType.PERF_EVENT_ARRAY: KernelPerfArray,
}


def _view(
    fd: bsys.FD,
    name: str,
    mtype: int,
    ks: int,
    vs: int,
    me: int,
    flags: int,
    btf: Btf | None,
    key_type_id: int | None,
    value_type_id: int | None,
    pinned: str | None = None,
) -> MapBase:
    cls = _VIEW_BY_TYPE.get(mtype, KernelMap)
    kw: dict[str, Any] = {"btf": btf, "value_type_id": value_type_id, "pinned": pinned}
    if cls is KernelMap:
        kw["key_type_id"] = key_type_id
    return cls(fd, name, mtype, ks, vs, me, flags, **kw)


def _wrap_loaded(lm: LoadedMap, btf: Btf | None) -> MapBase:
    s = lm.spec
    return _view(
        lm.fd,
        lm.name,
        int(s.type),
        s.key_size,
        s.value_size,
        lm.max_entries,
        s.flags,
        btf,
        s.key_type_id,
        s.value_type_id,
        lm.pinned,
    )


def _btf_of(btf_id: int) -> Btf | None:
    if not btf_id:
        return None
    from ..btf.parser import parse_btf

    try:
        with bsys.FD(bsys.btf_get_fd_by_id(btf_id)) as bfd:
            data = bsys.btf_info(bfd, data=True).data
        return parse_btf(data or b"")
    except (BpfError, OSError):
        return None


def wrap_map_fd(fd: bsys.FD, *, pinned: str | None = None) -> MapBase:
    """A typed view of any map fd (types from the map's own BTF, when it has one)."""
    info = bsys.map_info(fd)
    btf = _btf_of(info.btf_id)
    return _view(
        fd,
        info.name,
        int(info.type),
        info.key_size,
        info.value_size,
        info.max_entries,
        info.map_flags,
        btf,
        info.btf_key_type_id or None,
        info.btf_value_type_id or None,
        pinned,
    )


def open_map(ref: int | str | os.PathLike[str]) -> MapBase:
    """A map by id (``int``) or pinned path."""
    if isinstance(ref, int):
        return wrap_map_fd(bsys.FD(bsys.map_get_fd_by_id(ref)))
    return wrap_map_fd(bsys.FD(bsys.obj_get(ref)), pinned=None)


# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------


def _ctx_bytes(ctx: Any) -> bytes | None:
    if ctx is None:
        return None
    if isinstance(ctx, ctypes.Structure | ctypes.Array):
        return bytes(ctx)
    if isinstance(ctx, bytes | bytearray | memoryview):
        return bytes(ctx)
    if isinstance(ctx, list | tuple) and all(isinstance(x, int) for x in ctx):
        return b"".join((x & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little") for x in ctx)
    raise TypeError(f"context must be bytes or a ctypes structure, not {type(ctx).__name__}")


class KernelProgram(_KernelFd, Program):
    """A program loaded in the kernel: ``test_run``, ``attach``, ``pin``, ``info``."""

    def __init__(self, lp: LoadedProgram, owner: KernelObject | None = None) -> None:
        self._fd = lp.fd
        self.loaded = lp
        self.spec = lp.spec
        self.name = lp.name
        self.type = lp.spec.prog_type
        self.section = lp.spec.section
        self.log = lp.log
        self.pinned: str | None = None
        self._owner = weakref.ref(owner) if owner is not None else None

    @property
    def id(self) -> int:
        """The kernel's id of the program."""
        return bsys.prog_info(self._fd).id

    @property
    def instructions(self):
        """The instructions as loaded (relocated; CO-RE applied)."""
        return self.loaded.insns

    def info(self, *, xlated: bool = False, jited: bool = False) -> bsys.ProgInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` of the program."""
        return bsys.prog_info(self._fd, xlated=xlated, jited=jited)

    # ---- running --------------------------------------------------------------------
    def test_run(
        self,
        data: bytes = b"",
        ctx: Any = None,
        repeat: int = 1,
        *,
        engine: str = "kernel",
        **opts: Any,
    ) -> TestRunResult:
        """``BPF_PROG_TEST_RUN`` in the kernel (``engine`` is accepted and ignored)."""
        from ..uapi.progtypes import TestRun, prog_type_info

        info = prog_type_info(self.type)
        flavour = info.test_run if info is not None else TestRun.SKB
        cbytes = _ctx_bytes(ctx)
        if flavour == TestRun.NONE:
            raise NotSupported(
                f"the kernel has no BPF_PROG_TEST_RUN for {self.type_name} programs; attach them"
            )
        if flavour == TestRun.SYSCALL:
            return self._run_syscall(cbytes)
        if flavour == TestRun.RAW_TP:
            if data:
                raise ValueError("raw tracepoint programs take a ctx, not data")
            r = bsys.prog_test_run(
                self._fd,
                ctx=cbytes,
                repeat=0,
                ctx_out_size=0,
                flags=opts.get("flags", 0),
                cpu=opts.get("cpu", 0),
            )
            return TestRunResult(r.retval, b"", None, r.duration_ns)
        kw: dict[str, Any] = {}
        for k in ("data_out_size", "ctx_out_size", "flags", "cpu", "batch_size"):
            if k in opts:
                kw[k] = opts[k]
        r = bsys.prog_test_run(self._fd, data=bytes(data), ctx=cbytes, repeat=repeat, **kw)
        return TestRunResult(r.retval, r.data_out, r.ctx_out if cbytes else None, r.duration_ns)

    def _run_syscall(self, ctx: bytes | None) -> TestRunResult:
        buf = ctypes.create_string_buffer(ctx or b"\0", max(len(ctx or b""), 1))
        attr = bsys.TestRunAttr(prog_fd=self.fd)
        if ctx:
            attr.ctx_in = ctypes.addressof(buf)
            attr.ctx_size_in = len(ctx)
        res, err = bsys.bpf(Cmd.PROG_TEST_RUN, attr)
        if res < 0:
            raise KernelError(err, "BPF_PROG_TEST_RUN", bsys.hint_for(Cmd.PROG_TEST_RUN, err))
        return TestRunResult(attr.retval, b"", buf.raw[: len(ctx)] if ctx else None, attr.duration)

    def run(self, ctx: Any = None, *, engine: str = "kernel", **opts: Any) -> TestRunResult:
        """Run once with ``ctx`` where the kernel can (raw tracepoint, syscall programs)."""
        from ..uapi.progtypes import TestRun, prog_type_info

        info = prog_type_info(self.type)
        if info is not None and info.test_run in (TestRun.RAW_TP, TestRun.SYSCALL):
            return self.test_run(b"", ctx, **opts)
        raise NotSupported(
            f"the kernel cannot fire a {self.type_name} program on demand; attach it to its hook"
        )

    # ---- attaching ------------------------------------------------------------------
    def attach_usdt(
        self, binary: str, provider: str, name: str, pid: int | None = None, *, cookie: int = 0
    ) -> Link:
        """Attach to USDT probe ``provider:name`` of ``binary`` (a ``usdt.bpf.h`` handler);
        see :func:`bpfkit.kernel.usdt.attach_usdt`. Kept attached while the object is open."""
        from .usdt import attach_usdt

        return self._keep(attach_usdt(self, binary, provider, name, pid, cookie=cookie))

    def _keep(self, link: Link) -> Link:
        owner = self._owner() if self._owner is not None else None
        if owner is not None:
            # The object keeps it attached (until close()) even if the caller drops it.
            owner._links = [lk for lk in owner._links if not lk.closed]
            owner._links.append(link)
        return link

    def attach(self, target: Any = None, **kw: Any) -> Link:
        """Attach by section kind (``kprobe/x``, ``tracepoint/a/b``, ``xdp`` + ``target``...).

        The link stays attached while the object is open, even if the caller drops it;
        closing the link (or the object) detaches it.
        """
        from .attach import attach_program

        return self._keep(attach_program(self, target, **kw))


def open_program(ref: int | str | os.PathLike[str]) -> bsys.FD:
    """A program fd by id (``int``) or pinned path."""
    if isinstance(ref, int):
        return bsys.FD(bsys.prog_get_fd_by_id(ref))
    return bsys.FD(bsys.obj_get(ref))


# ---------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------


def _makedirs(path: str) -> list[str]:
    """``os.makedirs(path, exist_ok=True)``; returns the directories it created, outermost first."""
    made: list[str] = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        made.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    made.reverse()
    for i, m in enumerate(made):
        try:
            os.mkdir(m)
        except BaseException:
            remove_dirs(made[:i])
            raise
    return made


def remove_dirs(dirs: list[str]) -> None:
    """Remove directories (innermost first) that are empty; leave the others."""
    for m in reversed(dirs):
        try:
            os.rmdir(m)
        except OSError:
            pass


def _pin_name(name: str) -> str:
    """A bpffs file name for an object name (bpffs refuses '.'; '/' would be a directory)."""
    return name.replace("/", "_").replace(".", "_")


class KernelObject(Object):
    """An object loaded into the running kernel."""

    backend = "kernel"

    def __init__(self, spec: ObjectSpec, options: LoadOptions | None = None, **kw: Any) -> None:
        self.loaded = load_spec(spec, options or LoadOptions(**kw))
        #: the spec as loaded (load-time overrides applied)
        self.spec = self.loaded.spec
        self._links: list[Link] = []
        btf = spec.btf
        self.maps: dict[str, MapBase] = {
            name: _wrap_loaded(lm, btf) for name, lm in self.loaded.maps.items()
        }
        self.programs: dict[str, Program] = {
            name: KernelProgram(lp, self) for name, lp in self.loaded.programs.items()
        }
        self._closed = False

    @property
    def notes(self) -> list[str]:
        """What the loader had to adapt (BTF rejected, map created without BTF, ...)."""
        return self.loaded.notes

    @property
    def btf_fd(self) -> int | None:
        """The fd of the object's BTF in the kernel (``None`` if none was loaded)."""
        return self.loaded.btf_fd.fileno() if self.loaded.btf_fd is not None else None

    def pin(
        self, directory: str | os.PathLike[str], *, maps: bool = True, programs: bool = True
    ) -> dict[str, str]:
        """Pin every program (``DIR/<name>``) and map (``DIR/maps/<name>``); their paths.

        bpffs refuses dots in names: ``.rodata`` is pinned as ``_rodata``.
        """
        d = os.fspath(directory)
        out: dict[str, str] = {}
        made_dirs: list[str] = []
        pinned: list[Any] = []
        try:
            if programs:
                made_dirs += _makedirs(d)
                for name, p in self.programs.items():
                    path = os.path.join(d, _pin_name(name))
                    p.pin(path)  # type: ignore[attr-defined]
                    pinned.append(p)
                    out[name] = path
            if maps:
                md = os.path.join(d, "maps")
                made_dirs += _makedirs(md)
                for name, m in self.maps.items():
                    if getattr(m, "pinned", None):
                        out[f"map:{name}"] = m.pinned  # type: ignore[attr-defined]
                        continue
                    path = os.path.join(md, _pin_name(name))
                    m.pin(path)  # type: ignore[attr-defined]
                    pinned.append(m)
                    out[f"map:{name}"] = path
        except BaseException:
            # All or nothing: remove the pins and the directories this call made.
            for obj in reversed(pinned):
                try:
                    obj.unpin()
                except OSError:
                    pass
            remove_dirs(made_dirs)
            raise
        return out

    def attach_all(self) -> list[Link]:
        """Attach every program whose section says where (``kprobe/x``, ``tracepoint/a/b``, ...)."""
        links = []
        try:
            for p in self.programs.values():
                links.append(p.attach())  # type: ignore[attr-defined]
        except BaseException:
            for link in links:
                link.close()
            raise
        return links

    def close(self) -> None:
        """Detach links made through this object (unless pinned) and close every fd."""
        if self._closed:
            return
        self._closed = True
        self._close_links()
        for m in self.maps.values():
            m.close()  # type: ignore[attr-defined]
        for p in self.programs.values():
            p.close()  # type: ignore[attr-defined]
        self.loaded.close()

    # No finaliser: dropping the object drops its references, and each program, map and
    # link closes when the last reference to it goes (an FD and a Link close themselves
    # when collected). So ``p = bpfkit.load(...).programs["x"]`` stays usable, and a link
    # the caller holds stays attached; the links only the object kept are detached.

    def _close_links(self) -> None:
        for link in list(getattr(self, "_links", ())):
            try:
                link.close()
            except Exception:  # noqa: BLE001 - closing must go on
                pass


def load_kernel_object(spec: ObjectSpec, **options: Any) -> KernelObject:
    """``bpfkit.load(..., backend="kernel")``: see :class:`~bpfkit.kernel.loader.LoadOptions`."""
    if "pin" in options:  # alias used by the CLI
        options["pin_root"] = options.pop("pin")
    unknown = set(options) - set(LoadOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown kernel load option(s): {', '.join(sorted(unknown))}")
    return KernelObject(spec, LoadOptions(**options))
