"""Native mirrors of map state, for helpers the JIT calls without going through Python.

Python stays authoritative: every map keeps its own bookkeeping and, where a native
helper can serve it, a flat mirror in ctypes memory that the map updates on every change.
The JIT's native ``bpf_map_lookup_elem``/``bpf_map_update_elem`` (``bpfkit.jit.hot``)
read these mirrors; anything they cannot answer exactly (a key that must be inserted, an
unmirrored map type, an address they cannot prove readable) goes to the Python helper.

Layouts (all words are little-endian u64):

- **descriptor** of a map (``DESC_WORDS`` words): kind, key size, value size,
  max_entries, element stride, base (array values / hash table), hash table mask and
  shift, bucket size.
- **hash table**: open addressing with linear probing, load (with tombstones) at most
  1/2. A bucket is ``tag, value address, registered, slot`` then the key padded to 8
  bytes; ``tag`` is 0 (empty), 1 (deleted) or ``hash + 2``. ``registered`` says the
  value's Region is in the address space (only then may a native lookup return it: a
  first lookup goes to Python, which registers the Region as the interpreter would).
- **hash** of a key: ``int.from_bytes(key, "little") % (2**61 - 1)``; its bucket:
  ``(hash * GOLDEN mod 2**64) >> shift``.
- **environment** words of one runtime (``ENV_WORDS``): the table of the runtime's maps
  (handle address → descriptor address, same probing on the handle), its shift and
  mask, the current CPU, the PRNG state, and the array of the runtime's ring buffers'
  control blocks and its length (``bpf_ringbuf_submit``/``discard`` get only a record
  address and look for the ring whose data holds it).
- a **ring buffer**'s descriptor is its control block (kind ``K_RINGBUF``; the layout is
  ``R_*`` in :mod:`.ringbuf`): positions, mask, size, data and alias addresses, drop
  count, outstanding native reservations.
"""

from __future__ import annotations

import ctypes
import struct

__all__ = [
    "HashIndex",
    "NativeEnv",
    "hash_key",
    "new_descriptor",
]

M64 = (1 << 64) - 1
P61 = (1 << 61) - 1
GOLDEN = 0x9E3779B97F4A7C15

# descriptor words
D_KIND, D_KEY_SIZE, D_VALUE_SIZE, D_MAX, D_ELEM, D_BASE, D_MASK, D_SHIFT, D_BUCKET = range(9)
DESC_WORDS = 10
# descriptor kinds
K_NONE, K_ARRAY, K_PERCPU_ARRAY, K_HASH, K_RINGBUF = 0, 1, 2, 3, 4
# bucket fields (byte offsets)
B_TAG, B_VADDR, B_REG, B_SLOT, B_KEY = 0, 8, 16, 24, 32
# environment words
E_MAPS, E_MAPS_SHIFT, E_MAPS_MASK, E_CPU, E_PRNG, E_RINGS, E_NRINGS = range(7)
ENV_WORDS = 8

_Q = struct.Struct("<Q")


def hash_key(key: bytes) -> int:
    """The key's hash, as the native probe computes it."""
    return int.from_bytes(key, "little") % P61


def new_descriptor(kind: int = K_NONE) -> ctypes.Array:
    d = (ctypes.c_uint64 * DESC_WORDS)()
    d[D_KIND] = kind
    return d


class HashIndex:
    """The native open-addressing index of a hash map: key bytes → value address."""

    MIN = 16

    def __init__(self, key_size: int, desc: ctypes.Array) -> None:
        self.ks = key_size
        self.bsize = B_KEY + ((key_size + 7) & ~7)
        self._fmt = struct.Struct(f"<QQQQ{key_size}s")
        self.desc = desc
        desc[D_BUCKET] = self.bsize
        self.where: dict[int, int] = {}  # slot → bucket
        self.tombs = 0
        self._alloc(self.MIN)

    def _alloc(self, cap: int) -> None:
        self.cap = cap
        self.shift = 64 - (cap.bit_length() - 1)
        self.buf = (ctypes.c_ubyte * (cap * self.bsize))()
        self.mv = memoryview(self.buf).cast("B")
        self.tombs = 0

    def _publish(self) -> None:
        d = self.desc
        d[D_BASE] = ctypes.addressof(self.buf)
        d[D_MASK] = self.cap - 1
        d[D_SHIFT] = self.shift

    def _place(self, h: int, vaddr: int, reg: int, slot: int, key: bytes) -> None:
        mv, bs, mask = self.mv, self.bsize, self.cap - 1
        i = ((h * GOLDEN) & M64) >> self.shift
        while True:
            tag = _Q.unpack_from(mv, i * bs)[0]
            if tag <= 1:
                break
            i = (i + 1) & mask
        if tag == 1:
            self.tombs -= 1
        self._fmt.pack_into(mv, i * bs, h + 2, vaddr, reg, slot, key)
        self.where[slot] = i

    def insert(self, key: bytes, slot: int, vaddr: int, registered: bool = False) -> None:
        if (len(self.where) + self.tombs + 1) * 2 > self.cap:
            self._rebuild(max(self.MIN, 1 << (4 * (len(self.where) + 1) - 1).bit_length()))
        self._place(hash_key(key), vaddr, int(registered), slot, key)

    def remove(self, slot: int) -> None:
        i = self.where.pop(slot, None)
        if i is not None:
            _Q.pack_into(self.mv, i * self.bsize, 1)
            self.tombs += 1

    def mark(self, slot: int) -> None:
        """The value of ``slot`` now has a registered Region."""
        i = self.where.get(slot)
        if i is not None:
            _Q.pack_into(self.mv, i * self.bsize + B_REG, 1)

    def clear(self) -> None:
        self.where.clear()
        self._alloc(self.MIN)
        self._publish()

    def _rebuild(self, cap: int) -> None:
        old_mv, bs, fmt = self.mv, self.bsize, self._fmt
        entries = [fmt.unpack_from(old_mv, i * bs) for i in self.where.values()]
        self.where = {}
        self._alloc(cap)
        for tag, vaddr, reg, slot, key in entries:
            self._place(tag - 2, vaddr, reg, slot, key)
        self._publish()  # the old buffer stays alive until this point

    def publish(self) -> None:
        self._publish()


class NativeEnv:
    """The native words of one runtime that the JIT's native helpers start from."""

    def __init__(self) -> None:
        self.words = (ctypes.c_uint64 * ENV_WORDS)()
        self.address = ctypes.addressof(self.words)
        self._maps: dict[int, ctypes.Array] = {}
        self._rings: ctypes.Array = (ctypes.c_uint64 * 1)()
        self._build()

    def _build(self) -> None:
        cap = 8
        while cap < 2 * len(self._maps) + 2:
            cap *= 2
        table = (ctypes.c_uint64 * (2 * cap))()
        shift = 64 - (cap.bit_length() - 1)
        for addr, desc in self._maps.items():
            i = ((addr * GOLDEN) & M64) >> shift
            while table[2 * i]:
                i = (i + 1) & (cap - 1)
            table[2 * i], table[2 * i + 1] = addr, ctypes.addressof(desc)
        w = self.words
        w[E_MAPS], w[E_MAPS_SHIFT], w[E_MAPS_MASK] = ctypes.addressof(table), shift, cap - 1
        self._table = table  # published before the old one is released
        rings = [ctypes.addressof(d) for d in self._maps.values() if d[D_KIND] == K_RINGBUF]
        arr = (ctypes.c_uint64 * max(1, len(rings)))(*rings)
        w[E_NRINGS] = 0
        w[E_RINGS] = ctypes.addressof(arr)
        w[E_NRINGS] = len(rings)
        self._rings = arr

    def add_map(self, addr: int, desc: ctypes.Array | None) -> None:
        if desc is not None:
            self._maps[addr] = desc
            self._build()

    def remove_map(self, addr: int) -> None:
        if self._maps.pop(addr, None) is not None:
            self._build()

    def set_cpu(self, cpu: int) -> None:
        self.words[E_CPU] = cpu

    def set_prng(self, address: int) -> None:
        self.words[E_PRNG] = address
