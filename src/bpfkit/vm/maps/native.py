"""Native mirrors of map state, for helpers the JIT calls without going through Python.

Python and native code share the state native helpers change: every map keeps its own
bookkeeping and, where a native helper can serve it, flat ctypes memory both sides read
and write. The JIT's native ``bpf_map_lookup_elem``/``update_elem``/``delete_elem``
(``bpfkit.jit.hot``) work on it; whatever they cannot do exactly goes to the Python
helper.

Layouts (all words are little-endian u64):

- **descriptor** of a map (``DESC_WORDS`` words): kind, key size, value size,
  max_entries, element stride, base (array values / hash table), hash table mask and
  shift, bucket size; for hash maps also ``D_COUNT``..``D_PERMS`` (see below).
- **hash table**: open addressing with linear probing, load (with deleted buckets) at
  most 1/2. A bucket is ``tag, value address, 0, slot`` then the key padded to 8 bytes;
  ``tag`` is 0 (empty), 1 (deleted) or ``hash + 2``. A deleted bucket just before an
  empty one becomes empty (and so do the deleted ones before it).
- **hash** of a key: ``int.from_bytes(key, "little") % (2**61 - 1)``; its bucket:
  ``(hash * GOLDEN mod 2**64) >> shift``.
- **hash state** (:class:`HashState`): the slot allocation (a free stack in two zones:
  slots freed before the current run, then those freed during it, quarantined; fresh
  slots up to ``D_SLOTCAP``; the use count; see ``HashState.take``), the value chunks' addresses, one record
  per slot (``SW`` words: bucket + 1, live, Regions registered, LRU links, pending
  journal record + 1, a hint of its run-table entry), the LRU order (a doubly linked list
  over slots, head = least recently used) and eviction count, and the **journal**: one
  record (op, slot, key) per native insert or delete, which Python replays into its
  dict and insertion-ordered list before it reads them (``HashMap._sync``). A native
  delete of an element whose insert is still in the journal marks that record
  cancelled instead; native code squeezes cancelled records out when room runs out.
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
import mmap
import struct
from collections.abc import Callable, Iterable

__all__ = [
    "HashIndex",
    "HashState",
    "NativeEnv",
    "hash_key",
    "new_descriptor",
]

M64 = (1 << 64) - 1
P61 = (1 << 61) - 1
GOLDEN = 0x9E3779B97F4A7C15

# descriptor words
D_KIND, D_KEY_SIZE, D_VALUE_SIZE, D_MAX, D_ELEM, D_BASE, D_MASK, D_SHIFT, D_BUCKET = range(9)
# hash maps (see HashState)
(
    D_COUNT,  # live buckets of the index
    D_TOMBS,  # deleted buckets of the index
    D_PARTS,  # values per element (CPUs of a per-CPU map, else 1)
    D_PSIZE,  # bytes per part (value size rounded up to 8)
    D_CHUNK,  # slots per value chunk
    D_CHUNKS,  # address of the chunk table (chunk address per chunk index, 0 = none yet)
    D_USED,  # elements allocated
    D_FRESH,  # next never-used slot
    D_NFREE,  # entries of the free stack
    D_FREE,  # address of the free stack (slots, LIFO)
    D_SLOTS,  # address of the slot records (SW words per slot)
    D_LRU,  # 1 for the LRU flavours
    D_LHEAD,  # least recently used slot + 1 (0: none)
    D_LTAIL,  # most recently used slot + 1
    D_EVICT,  # evictions
    D_LOG,  # address of the journal
    D_NLOG,  # records in the journal
    D_LOGCAP,  # journal capacity (records)
    D_LOGW,  # words per journal record
    D_PERMS,  # what programs may do with a live element's value (READ/RW)
    D_QBASE,  # free-stack entries freed before the current run; those above: quarantined
    D_SLOTCAP,  # slots there is room for (max_entries + spare slots for the quarantine)
) = range(9, 31)
DESC_WORDS = 32
#: spare slots beyond max_entries (at most this many, at most max_entries): a slot freed
#: during a run is not reused in that run while a spare or older free slot is left
QUARANTINE_SPARE = 1024


def spare_slots(capacity: int) -> int:
    """Slots a map of ``capacity`` elements keeps beyond it for the quarantine."""
    return min(capacity, QUARANTINE_SPARE)


# descriptor kinds
K_NONE, K_ARRAY, K_PERCPU_ARRAY, K_HASH, K_RINGBUF = 0, 1, 2, 3, 4
# bucket fields (byte offsets)
B_TAG, B_VADDR, B_REG, B_SLOT, B_KEY = 0, 8, 16, 24, 32
# slot record words
S_BUCKET, S_LIVE, S_REG, S_LPREV, S_LNEXT, S_JIDX, S_TIDX = range(7)
SW = 8
# (S_TIDX: 1 + the run-table entry of the slot's first part last time, a hint)
# journal record: op, slot, key words; a slot's pending insert record is S_JIDX - 1 (a
# native delete of that element cancels it: op J_NONE, squeezed out when room runs out)
J_NONE, J_INSERT, J_DELETE = 0, 1, 2
#: Live records are at most 2 * max_entries (a delete per element Python knows, a pending
#: insert per slot); a journal twice that long keeps half its room after a compaction
#: (amortized O(1) per record), and needs Python only past this bound
LOG_MAX = 1 << 22
# environment words
E_MAPS, E_MAPS_SHIFT, E_MAPS_MASK, E_CPU, E_PRNG, E_RINGS, E_NRINGS, E_RCACHE = range(8)
ENV_WORDS = 8

_Q = struct.Struct("<Q")


def hash_key(key: bytes) -> int:
    """The key's hash, as the native probe computes it."""
    return int.from_bytes(key, "little") % P61


def new_descriptor(kind: int = K_NONE) -> ctypes.Array:
    d = (ctypes.c_uint64 * DESC_WORDS)()
    d[D_KIND] = kind
    return d


def zeroed(ctype, n: int) -> ctypes.Array:
    """A zero-filled ctypes array of ``n`` items in anonymous memory (pages are only
    backed once touched, so capacity-sized arrays of big maps cost what is used)."""
    size = max(1, n) * ctypes.sizeof(ctype)
    mm = mmap.mmap(-1, (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE)
    return (ctype * max(1, n)).from_buffer(mm)


class HashIndex:
    """The native open-addressing index of a hash map: key bytes → slot and value address.

    Counts live in the descriptor (``D_COUNT``, ``D_TOMBS``) and each slot's bucket in its
    slot record (``S_BUCKET``), so native inserts and deletes keep them exact too.
    """

    MIN = 16

    def __init__(
        self,
        key_size: int,
        desc: ctypes.Array,
        slots: ctypes.Array,
        live: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        #: the slots of the live elements (for a rebuild; default: scan the table)
        self.live = live
        self.ks = key_size
        self.bsize = B_KEY + ((key_size + 7) & ~7)
        self._fmt = struct.Struct(f"<QQQQ{key_size}s")
        self.desc = desc
        self.slots = slots
        desc[D_BUCKET] = self.bsize
        self._alloc(self.MIN)

    def _alloc(self, cap: int) -> None:
        self.cap = cap
        self.shift = 64 - (cap.bit_length() - 1)
        self.buf = (ctypes.c_ubyte * (cap * self.bsize))()
        self.mv = memoryview(self.buf).cast("B")
        self.desc[D_TOMBS] = 0
        self.desc[D_COUNT] = 0

    def _publish(self) -> None:
        d = self.desc
        d[D_BASE] = ctypes.addressof(self.buf)
        d[D_MASK] = self.cap - 1
        d[D_SHIFT] = self.shift

    def _place(self, h: int, vaddr: int, slot: int, key: bytes) -> None:
        mv, bs, mask = self.mv, self.bsize, self.cap - 1
        i = ((h * GOLDEN) & M64) >> self.shift
        while True:
            tag = _Q.unpack_from(mv, i * bs)[0]
            if tag <= 1:
                break
            i = (i + 1) & mask
        d = self.desc
        if tag == 1:
            d[D_TOMBS] -= 1
        d[D_COUNT] += 1
        self._fmt.pack_into(mv, i * bs, h + 2, vaddr, 0, slot, key)
        self.slots[slot * SW + S_BUCKET] = i + 1

    def insert(self, key: bytes, slot: int, vaddr: int) -> None:
        d = self.desc
        n = d[D_COUNT]
        if (n + d[D_TOMBS] + 1) * 2 > self.cap:
            # never smaller than now: a map that fills and empties in turn (a program's
            # inserts and deletes) then rebuilds only to drop deleted buckets
            self._rebuild(max(self.cap, 1 << (4 * (n + 1) - 1).bit_length()))
        self._place(hash_key(key), vaddr, slot, key)

    def remove(self, slot: int) -> None:
        s = self.slots
        i = s[slot * SW + S_BUCKET] - 1
        if i < 0:
            return
        s[slot * SW + S_BUCKET] = 0
        d, mv, bs, mask = self.desc, self.mv, self.bsize, self.cap - 1
        d[D_COUNT] -= 1
        # a deleted bucket before an empty one ends no probe: it becomes empty, and so
        # do the deleted buckets just before it (native deletes do the same)
        if _Q.unpack_from(mv, ((i + 1) & mask) * bs)[0] == 0:
            _Q.pack_into(mv, i * bs, 0)
            j = (i - 1) & mask
            while _Q.unpack_from(mv, j * bs)[0] == 1:
                _Q.pack_into(mv, j * bs, 0)
                d[D_TOMBS] -= 1
                j = (j - 1) & mask
        else:
            _Q.pack_into(mv, i * bs, 1)
            d[D_TOMBS] += 1

    def _rebuild(self, cap: int) -> None:
        old_mv, bs, fmt, slots = self.mv, self.bsize, self._fmt, self.slots
        entries = []
        if self.live is not None:
            for slot in self.live():
                i = slots[slot * SW + S_BUCKET] - 1
                if i >= 0:
                    entries.append(fmt.unpack_from(old_mv, i * bs))
        else:
            for i in range(self.cap):
                e = fmt.unpack_from(old_mv, i * bs)
                if e[0] >= 2:
                    entries.append(e)
        self._alloc(cap)
        for tag, vaddr, _reg, slot, key in entries:
            self._place(tag - 2, vaddr, slot, key)
        self._publish()  # the old buffer stays alive until this point

    def publish(self) -> None:
        self._publish()


class HashState:
    """What a hash map shares with native code, besides the index: slot allocation (free
    stack, fresh slot, use count), per-slot records (bucket, live, Regions registered,
    LRU links), the LRU order, the value chunks, and the journal of native inserts and
    deletes that Python replays into its own bookkeeping (dict, insertion order)."""

    def __init__(
        self,
        desc: ctypes.Array,
        key_size: int,
        value_size: int,
        capacity: int,
        *,
        parts: int,
        chunk: int,
        lru: bool,
        perms: int,
    ) -> None:
        self.desc = d = desc
        self.capacity = capacity
        self.slotcap = slotcap = capacity + spare_slots(capacity)
        self.slots = zeroed(ctypes.c_int64, slotcap * SW)
        self.free = zeroed(ctypes.c_int64, slotcap)
        nchunks = (slotcap + chunk - 1) // chunk
        self.chunks = (ctypes.c_uint64 * max(1, nchunks))()
        self.logw = 2 + (key_size + 7) // 8
        logcap = min(LOG_MAX, 4 * capacity + 16)
        self.log = zeroed(ctypes.c_uint64, self.logw * logcap)
        self.log_mv = memoryview(self.log).cast("B")
        self.key_size = key_size
        d[D_KEY_SIZE], d[D_VALUE_SIZE], d[D_MAX] = key_size, value_size, capacity
        d[D_PARTS], d[D_PSIZE], d[D_CHUNK] = parts, (value_size + 7) & ~7, chunk
        d[D_ELEM] = d[D_PSIZE] * parts
        d[D_CHUNKS] = ctypes.addressof(self.chunks)
        d[D_FREE] = ctypes.addressof(self.free)
        d[D_SLOTS] = ctypes.addressof(self.slots)
        d[D_LRU] = int(lru)
        d[D_LOG] = ctypes.addressof(self.log)
        d[D_LOGCAP] = logcap
        d[D_LOGW] = self.logw
        d[D_PERMS] = perms
        d[D_SLOTCAP] = slotcap
        self.index = HashIndex(key_size, d, self.slots)
        self.index.publish()

    # ---- slot allocation --------------------------------------------------------------
    # The free stack is two zones: free[:D_QBASE] holds slots freed before the current
    # run, free[D_QBASE:D_NFREE] slots freed during it (quarantined: a program may still
    # hold a pointer into them, which must fault, not reach the next element). A new
    # element takes, in order: the top of the older zone, a fresh slot (up to
    # D_SLOTCAP), the top of the quarantine. settle() (each run's start) ends the
    # quarantine. The JIT's native insert (bpfkit.jit.hot) takes slots the same way.
    def next_slot(self) -> int | None:
        d, free = self.desc, self.free
        if d[D_USED] >= self.capacity:
            return None
        q = d[D_QBASE]
        if q:
            return free[q - 1]
        if d[D_FRESH] < d[D_SLOTCAP]:
            return d[D_FRESH]
        return free[d[D_NFREE] - 1]

    def take(self) -> int | None:
        d, free = self.desc, self.free
        if d[D_USED] >= self.capacity:
            return None
        q, n = d[D_QBASE], d[D_NFREE]
        if q:  # freed before this run; the quarantine's last entry fills the hole
            slot = free[q - 1]
            free[q - 1] = free[n - 1]
            d[D_QBASE], d[D_NFREE] = q - 1, n - 1
        elif d[D_FRESH] < d[D_SLOTCAP]:
            slot = d[D_FRESH]
            d[D_FRESH] = slot + 1
        else:  # nothing else left: reuse the newest quarantined slot
            slot = free[n - 1]
            d[D_NFREE] = n - 1
        d[D_USED] += 1
        return slot

    def take_top(self, slot: int) -> None:
        """Take ``slot``, just given back (the top of the quarantine): an LRU map's
        eviction hands the victim's slot to the new element, as the native insert does."""
        d = self.desc
        assert self.free[d[D_NFREE] - 1] == slot
        d[D_NFREE] -= 1
        d[D_USED] += 1

    def give(self, slot: int) -> None:
        d = self.desc
        self.free[d[D_NFREE]] = slot
        d[D_NFREE] += 1
        d[D_USED] -= 1

    def settle(self) -> None:
        """A run starts: slots freed so far may be reused."""
        d = self.desc
        d[D_QBASE] = d[D_NFREE]

    # ---- slot records -------------------------------------------------------------------
    def live(self, slot: int) -> bool:
        return bool(self.slots[slot * SW + S_LIVE])

    def set_live(self, slot: int, live: bool) -> None:
        self.slots[slot * SW + S_LIVE] = int(live)

    def registered(self, slot: int) -> bool:
        return bool(self.slots[slot * SW + S_REG])

    def set_registered(self, slot: int) -> None:
        self.slots[slot * SW + S_REG] = 1

    # ---- LRU order (slot + 1 links; 0 = none) ------------------------------------------
    def lru_unlink(self, slot: int) -> None:
        s, d, o = self.slots, self.desc, slot * SW
        p, n = s[o + S_LPREV], s[o + S_LNEXT]
        if p:
            s[(p - 1) * SW + S_LNEXT] = n
        else:
            d[D_LHEAD] = n
        if n:
            s[(n - 1) * SW + S_LPREV] = p
        else:
            d[D_LTAIL] = p
        s[o + S_LPREV] = s[o + S_LNEXT] = 0

    def lru_append(self, slot: int) -> None:
        s, d, o = self.slots, self.desc, slot * SW
        t = d[D_LTAIL]
        s[o + S_LPREV], s[o + S_LNEXT] = t, 0
        if t:
            s[(t - 1) * SW + S_LNEXT] = slot + 1
        else:
            d[D_LHEAD] = slot + 1
        d[D_LTAIL] = slot + 1

    def lru_touch(self, slot: int) -> None:
        if self.desc[D_LTAIL] != slot + 1:
            self.lru_unlink(slot)
            self.lru_append(slot)

    def lru_oldest(self) -> int | None:
        h = self.desc[D_LHEAD]
        return h - 1 if h else None

    def lru_order(self) -> list[int]:
        out, h = [], self.desc[D_LHEAD]
        while h:
            out.append(h - 1)
            h = self.slots[(h - 1) * SW + S_LNEXT]
        return out

    # ---- the journal --------------------------------------------------------------------
    def drain(self) -> list[tuple[int, int, bytes]]:
        """The journal's (op, slot, key) records, oldest first; empties it."""
        d = self.desc
        n = d[D_NLOG]
        if not n:
            return []
        w, ks, mv, log, slots = self.logw, self.key_size, self.log_mv, self.log, self.slots
        out = []
        for i in range(n):
            o = i * w
            op, slot = log[o], log[o + 1]
            if op == J_INSERT:
                slots[slot * SW + S_JIDX] = 0
                out.append((op, slot, bytes(mv[8 * o + 16 : 8 * o + 16 + ks])))
            elif op == J_DELETE:
                out.append((op, slot, b""))
        d[D_NLOG] = 0
        return out


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
