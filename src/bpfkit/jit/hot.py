"""Native twins of hot helpers: map lookup/update/delete on array and hash maps, ring buffers, prandom.

They read the native mirrors the VM keeps (:mod:`bpfkit.vm.maps.native`,
:mod:`bpfkit.vm.prng`), found through the run context's ``ENV_DATA`` word, and answer
exactly what the Python helper would — same return values, errnos and pointers. Whatever
they cannot answer on their own goes to the Python helper through the run's helper
trampoline (same id, same arguments), so the observable behaviour is the interpreter's:

- ``bpf_map_lookup_elem``: arrays and per-CPU arrays (the current CPU's value); hash,
  per-CPU hash, LRU and LRU per-CPU hash maps (the current CPU's part; an LRU hit moves
  the element to the most recent end of the map's order) whose element has its value
  Regions (``S_REG``: every element a program inserted has them, and a first lookup of
  an element only Python inserted registers them in Python); a missing key is NULL.
- ``bpf_map_update_elem``: flag errors (a map read-only for programs, ``D_PERMS``
  without WRITE, goes to Python, which faults), arrays (``E2BIG``, ``EEXIST`` for NOEXIST, the
  copy), existing hash keys (``EEXIST`` for NOEXIST, the LRU touch, the copy into the
  current CPU's part), ``ENOENT`` for EXIST on a missing key, ``E2BIG`` when a non-LRU
  map is full, and inserts: the slot ``HashState.take`` would take (a slot freed
  before this run, else a fresh one, else the newest slot freed in this run), zeroed;
  the key placed in the index as ``HashIndex`` places it; the slot marked live
  (its Regions get their permissions back, in the run's table too); the LRU order; a
  journal record Python replays into its dict and insertion order (``HashMap._sync``);
  and in a full LRU map the least recently used element evicted first, exactly as
  ``HashMap._new_slot`` does.
- ``bpf_map_delete_elem``: Python for a map read-only for programs, ``EINVAL`` for
  arrays, ``ENOENT`` for a missing hash key,
  else the element removed (bucket emptied or deleted, slot pushed on the free stack,
  its Regions' permissions dropped in the run's table and the region-cache seeds, LRU
  unlinked); a delete of an element whose insert Python has not replayed yet cancels
  that journal record instead of adding one.
- Python, for the map helpers: an unknown map or another map type (maps of maps,
  devmaps, ...), a key or value the native code cannot find readable in the run's
  region table (Python then faults or reads it exactly like the interpreter), a lookup
  of an element whose Regions do not exist yet, an insert whose slot has no Regions yet
  (Python registers them for it and for the next slots, a batch as large as what is
  already registered), an insert that needs the index rebuilt (grown, or cleared of
  deleted buckets), an eviction whose victim's slot has no Regions, and a journal that
  is full even after dropping its cancelled records (beyond ``native.LOG_MAX``).
- ``bpf_get_prandom_u32``: tempers the next word of the runtime's MT19937 state;
  regenerating the state (every 624 calls) is Python's.
- ring buffers (:mod:`bpfkit.vm.maps.ringbuf`; the ring's control block is its
  descriptor): ``bpf_ringbuf_reserve`` (flags → NULL, oversized → NULL, no room → NULL
  and a drop, else the header written busy, the producer position advanced and a
  pointer into the ring's alias mapping, noted with its length in a free reservation
  slot: the JIT's memory check accepts exactly the live reserved records through these
  slots, see ``bpf_mem_slow``); ``bpf_ringbuf_submit``/``bpf_ringbuf_discard`` of a record
  a native reserve handed out (busy bit cleared, discard bit set); ``bpf_ringbuf_output``
  (``-EINVAL`` for unknown flags, ``-EAGAIN`` and a drop when full, else the copy and
  the header); ``bpf_ringbuf_query``. To Python: an unknown map or another map type, a
  reserve when every reservation slot is taken (Python reserves with a Region of its
  own), a submit/discard of an address no native reserve handed out (a record Python
  reserved, or a bad address: Python faults), output data the native code cannot prove
  readable. The wakeup flags have no effect in the VM (Python only validates them for
  output, and ignores them for submit/discard), so no call needs Python for them.
"""

from __future__ import annotations

from ..vm import helpers_maps, helpers_trace
from ..vm.maps import native as nm
from ..vm.maps import ringbuf as rbm
from . import abi
from .native import NativeHelper, native_for, register_native

__all__ = ["install"]


def _s(v: int) -> int:
    """A u64 constant as LLVM's signed decimal."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _s32(v: int) -> int:
    """A u32 constant as LLVM's signed decimal."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


_C = _s(nm.GOLDEN)
_P = nm.P61

_IR = f"""
define internal ptr @hk_word(ptr %p, i64 %i) alwaysinline {{
  %a = getelementptr i64, ptr %p, i64 %i
  %v = load i64, ptr %a
  %q = inttoptr i64 %v to ptr
  ret ptr %q
}}

define internal i64 @hk_ld(ptr %p, i64 %i) alwaysinline {{
  %a = getelementptr i64, ptr %p, i64 %i
  %v = load i64, ptr %a
  ret i64 %v
}}

define internal i64 @hk_fallback(ptr %ctx, i64 %id, i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5) noinline {{
  %cb = call ptr @hk_word(ptr %ctx, i64 {abi.HELPER_CB})
  %r = call i64 %cb(ptr %ctx, i64 %id, i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5)
  ret i64 %r
}}

; entry %k of the run's table holds [a, a+n) with permission %perm
define internal i1 @hk_entry_has(ptr %tp, i64 %k, i64 %a, i64 %n, i64 %perm) alwaysinline {{
  %k3 = mul i64 %k, 3
  %eb = call i64 @hk_ld(ptr %tp, i64 %k3)
  %k31 = add i64 %k3, 1
  %span = call i64 @hk_ld(ptr %tp, i64 %k31)
  %k32 = add i64 %k3, 2
  %perms = call i64 @hk_ld(ptr %tp, i64 %k32)
  %off = sub i64 %a, %eb
  %ok1 = icmp ule i64 %off, %span
  %rest = sub i64 %span, %off
  %ok2 = icmp ule i64 %n, %rest
  %rd = and i64 %perms, %perm
  %ok3 = icmp ne i64 %rd, 0
  %o12 = and i1 %ok1, %ok2
  %o = and i1 %o12, %ok3
  ret i1 %o
}}

; the index of the last table entry whose base is <= %a, or -1
define internal i64 @hk_bsearch(ptr %tp, i64 %len, i64 %a) {{
entry:
  br label %loop
loop:
  %lo = phi i64 [0, %entry], [%lo2, %body]
  %hi = phi i64 [%len, %entry], [%hi2, %body]
  %c = icmp ult i64 %lo, %hi
  br i1 %c, label %body, label %done
body:
  %s = add i64 %lo, %hi
  %mid = lshr i64 %s, 1
  %m3 = mul i64 %mid, 3
  %b = call i64 @hk_ld(ptr %tp, i64 %m3)
  %le = icmp ule i64 %b, %a
  %mid1 = add i64 %mid, 1
  %lo2 = select i1 %le, i64 %mid1, i64 %lo
  %hi2 = select i1 %le, i64 %hi, i64 %mid
  br label %loop
done:
  %k = sub i64 %lo, 1
  ret i64 %k
}}

; [a, a+n) lies in one readable region of the run's table. The runtime's words remember
; the entry of the last hit (E_RCACHE), checked against the current table before use
; (so it is never stale): keys and values are usually on the same stack.
define internal i1 @hk_readable(ptr %ctx, i64 %a, i64 %n) {{
entry:
  %tp = call ptr @hk_word(ptr %ctx, i64 {abi.TABLE})
  %len = call i64 @hk_ld(ptr %ctx, i64 {abi.TABLE_LEN})
  %envd = call ptr @hk_word(ptr %ctx, i64 {abi.ENV_DATA})
  %ne = icmp eq ptr %envd, null
  br i1 %ne, label %search, label %cached
cached:
  %ck = call i64 @hk_ld(ptr %envd, i64 {nm.E_RCACHE})
  %cin = icmp ult i64 %ck, %len
  br i1 %cin, label %cchk, label %search
cchk:
  %chit = call i1 @hk_entry_has(ptr %tp, i64 %ck, i64 %a, i64 %n, i64 {abi.READ})
  br i1 %chit, label %yes, label %search
search:
  %k = call i64 @hk_bsearch(ptr %tp, i64 %len, i64 %a)
  %none = icmp slt i64 %k, 0
  br i1 %none, label %no, label %chk
chk:
  %hit = call i1 @hk_entry_has(ptr %tp, i64 %k, i64 %a, i64 %n, i64 {abi.READ})
  br i1 %hit, label %remember, label %no
remember:
  br i1 %ne, label %yes, label %store
store:
  call void @hk_st(ptr %envd, i64 {nm.E_RCACHE}, i64 %k)
  br label %yes
yes:
  ret i1 true
no:
  ret i1 false
}}

; the descriptor of the map whose handle is %addr, or null
define internal ptr @hk_map(ptr %envd, i64 %addr) {{
entry:
  %tp = call ptr @hk_word(ptr %envd, i64 {nm.E_MAPS})
  %shift = call i64 @hk_ld(ptr %envd, i64 {nm.E_MAPS_SHIFT})
  %mask = call i64 @hk_ld(ptr %envd, i64 {nm.E_MAPS_MASK})
  %h = mul i64 %addr, {_C}
  %i0 = lshr i64 %h, %shift
  br label %loop
loop:
  %i = phi i64 [%i0, %entry], [%i1, %next]
  %i2 = shl i64 %i, 1
  %k = call i64 @hk_ld(ptr %tp, i64 %i2)
  %hit = icmp eq i64 %k, %addr
  br i1 %hit, label %found, label %miss
miss:
  %empty = icmp eq i64 %k, 0
  br i1 %empty, label %none, label %next
next:
  %ia = add i64 %i, 1
  %i1 = and i64 %ia, %mask
  br label %loop
found:
  %i2v = add i64 %i2, 1
  %d = call ptr @hk_word(ptr %tp, i64 %i2v)
  ret ptr %d
none:
  ret ptr null
}}

define internal i64 @hk_red(i128 %x) alwaysinline {{
  %lo = and i128 %x, {_P}
  %hi = lshr i128 %x, 61
  %s = add i128 %lo, %hi
  %t = trunc i128 %s to i64
  %ge = icmp uge i64 %t, {_P}
  %m = sub i64 %t, {_P}
  %r = select i1 %ge, i64 %m, i64 %t
  ret i64 %r
}}

; int.from_bytes(key, "little") % (2**61 - 1)
define internal i64 @hk_hash(ptr %k, i64 %ks) {{
entry:
  %nw = lshr i64 %ks, 3
  %full = shl i64 %nw, 3
  br label %tl
tl:
  %j = phi i64 [%ks, %entry], [%j1, %tb]
  %h = phi i64 [0, %entry], [%hb, %tb]
  %more = icmp ugt i64 %j, %full
  br i1 %more, label %tb, label %wl
tb:
  %j1 = sub i64 %j, 1
  %bp = getelementptr i8, ptr %k, i64 %j1
  %b = load i8, ptr %bp
  %bz = zext i8 %b to i128
  %hz = zext i64 %h to i128
  %hs = shl i128 %hz, 8
  %x = add i128 %hs, %bz
  %hb = call i64 @hk_red(i128 %x)
  br label %tl
wl:
  %w = phi i64 [%nw, %tl], [%w1, %wb]
  %g = phi i64 [%h, %tl], [%gw, %wb]
  %wm = icmp ugt i64 %w, 0
  br i1 %wm, label %wb, label %out
wb:
  %w1 = sub i64 %w, 1
  %wo = shl i64 %w1, 3
  %wp = getelementptr i8, ptr %k, i64 %wo
  %wv = load i64, ptr %wp, align 1
  %wz = zext i64 %wv to i128
  %gz = zext i64 %g to i128
  %gs = shl i128 %gz, 3
  %y = add i128 %gs, %wz
  %gw = call i64 @hk_red(i128 %y)
  br label %wl
out:
  ret i64 %g
}}

; the bucket of key %k in hash descriptor %d, or null
define internal ptr @hk_find(ptr %d, ptr %k, i64 %ks) {{
entry:
  %tb = call ptr @hk_word(ptr %d, i64 {nm.D_BASE})
  %mask = call i64 @hk_ld(ptr %d, i64 {nm.D_MASK})
  %shift = call i64 @hk_ld(ptr %d, i64 {nm.D_SHIFT})
  %bs = call i64 @hk_ld(ptr %d, i64 {nm.D_BUCKET})
  %h = call i64 @hk_hash(ptr %k, i64 %ks)
  %tag = add i64 %h, 2
  %hm = mul i64 %h, {_C}
  %i0 = lshr i64 %hm, %shift
  br label %loop
loop:
  %i = phi i64 [%i0, %entry], [%i1, %next]
  %bo = mul i64 %i, %bs
  %b = getelementptr i8, ptr %tb, i64 %bo
  %t = load i64, ptr %b
  %same = icmp eq i64 %t, %tag
  br i1 %same, label %cmp, label %miss
cmp:
  %kb = getelementptr i8, ptr %b, i64 {nm.B_KEY}
  br label %cl
cl:
  %j = phi i64 [0, %cmp], [%j1, %cb]
  %cd = icmp ult i64 %j, %ks
  br i1 %cd, label %cb, label %found
cb:
  %pa = getelementptr i8, ptr %kb, i64 %j
  %pb = getelementptr i8, ptr %k, i64 %j
  %va = load i8, ptr %pa
  %vb = load i8, ptr %pb
  %j1 = add i64 %j, 1
  %eq = icmp eq i8 %va, %vb
  br i1 %eq, label %cl, label %next
miss:
  %empty = icmp eq i64 %t, 0
  br i1 %empty, label %none, label %next
next:
  %ia = add i64 %i, 1
  %i1 = and i64 %ia, %mask
  br label %loop
found:
  ret ptr %b
none:
  ret ptr null
}}

define internal void @hk_st(ptr %p, i64 %i, i64 %v) alwaysinline {{
  %a = getelementptr i64, ptr %p, i64 %i
  store i64 %v, ptr %a
  ret void
}}

; the record of %slot (SW words)
define internal ptr @hk_srec(ptr %d, i64 %slot) alwaysinline {{
  %sl = call ptr @hk_word(ptr %d, i64 {nm.D_SLOTS})
  %o = mul i64 %slot, {nm.SW}
  %p = getelementptr i64, ptr %sl, i64 %o
  ret ptr %p
}}

; the address of %slot's value (part 0)
define internal i64 @hk_vaddr(ptr %d, i64 %slot) {{
  %ch = call i64 @hk_ld(ptr %d, i64 {nm.D_CHUNK})
  %c = udiv i64 %slot, %ch
  %o = urem i64 %slot, %ch
  %tab = call ptr @hk_word(ptr %d, i64 {nm.D_CHUNKS})
  %cb = call i64 @hk_ld(ptr %tab, i64 %c)
  %el = call i64 @hk_ld(ptr %d, i64 {nm.D_ELEM})
  %off = mul i64 %o, %el
  %a = add i64 %cb, %off
  ret i64 %a
}}

; the current CPU's part of the value at %va
define internal i64 @hk_part(ptr %envd, ptr %d, i64 %va) {{
  %parts = call i64 @hk_ld(ptr %d, i64 {nm.D_PARTS})
  %pc = icmp ugt i64 %parts, 1
  %cpu0 = call i64 @hk_ld(ptr %envd, i64 {nm.E_CPU})
  %cpu = select i1 %pc, i64 %cpu0, i64 0
  %ps = call i64 @hk_ld(ptr %d, i64 {nm.D_PSIZE})
  %o = mul i64 %cpu, %ps
  %a = add i64 %va, %o
  ret i64 %a
}}

; ---- the LRU order: slot + 1 links, 0 = none
define internal void @hk_lru_unlink(ptr %d, i64 %slot) {{
entry:
  %r = call ptr @hk_srec(ptr %d, i64 %slot)
  %p = call i64 @hk_ld(ptr %r, i64 {nm.S_LPREV})
  %n = call i64 @hk_ld(ptr %r, i64 {nm.S_LNEXT})
  %hp = icmp ne i64 %p, 0
  br i1 %hp, label %pp, label %ph
pp:
  %p1 = sub i64 %p, 1
  %pr = call ptr @hk_srec(ptr %d, i64 %p1)
  call void @hk_st(ptr %pr, i64 {nm.S_LNEXT}, i64 %n)
  br label %nx
ph:
  call void @hk_st(ptr %d, i64 {nm.D_LHEAD}, i64 %n)
  br label %nx
nx:
  %hn = icmp ne i64 %n, 0
  br i1 %hn, label %np, label %nt
np:
  %n1 = sub i64 %n, 1
  %nr = call ptr @hk_srec(ptr %d, i64 %n1)
  call void @hk_st(ptr %nr, i64 {nm.S_LPREV}, i64 %p)
  br label %done
nt:
  call void @hk_st(ptr %d, i64 {nm.D_LTAIL}, i64 %p)
  br label %done
done:
  call void @hk_st(ptr %r, i64 {nm.S_LPREV}, i64 0)
  call void @hk_st(ptr %r, i64 {nm.S_LNEXT}, i64 0)
  ret void
}}

define internal void @hk_lru_append(ptr %d, i64 %slot) {{
entry:
  %r = call ptr @hk_srec(ptr %d, i64 %slot)
  %t = call i64 @hk_ld(ptr %d, i64 {nm.D_LTAIL})
  %s1 = add i64 %slot, 1
  call void @hk_st(ptr %r, i64 {nm.S_LPREV}, i64 %t)
  call void @hk_st(ptr %r, i64 {nm.S_LNEXT}, i64 0)
  %ht = icmp ne i64 %t, 0
  br i1 %ht, label %tl, label %hd
tl:
  %t1 = sub i64 %t, 1
  %tr = call ptr @hk_srec(ptr %d, i64 %t1)
  call void @hk_st(ptr %tr, i64 {nm.S_LNEXT}, i64 %s1)
  br label %done
hd:
  call void @hk_st(ptr %d, i64 {nm.D_LHEAD}, i64 %s1)
  br label %done
done:
  call void @hk_st(ptr %d, i64 {nm.D_LTAIL}, i64 %s1)
  ret void
}}

; an LRU map's element was used: it becomes the most recent
define internal void @hk_touch(ptr %d, i64 %slot) {{
entry:
  %lru = call i64 @hk_ld(ptr %d, i64 {nm.D_LRU})
  %no = icmp eq i64 %lru, 0
  br i1 %no, label %done, label %t
t:
  %tail = call i64 @hk_ld(ptr %d, i64 {nm.D_LTAIL})
  %s1 = add i64 %slot, 1
  %last = icmp eq i64 %tail, %s1
  br i1 %last, label %done, label %mv
mv:
  call void @hk_lru_unlink(ptr %d, i64 %slot)
  call void @hk_lru_append(ptr %d, i64 %slot)
  br label %done
done:
  ret void
}}

; ---- the run's region table: a value Region's permissions follow its element
; (SlotRegion). %hint guesses the entry's index (checked before use); returns the
; entry's index, or -1 when the table has no Region at %a.
define internal i64 @hk_setperm(ptr %ctx, i64 %a, i64 %perm, i64 %hint) {{
entry:
  %tp = call ptr @hk_word(ptr %ctx, i64 {abi.TABLE})
  %len = call i64 @hk_ld(ptr %ctx, i64 {abi.TABLE_LEN})
  %hin = icmp ult i64 %hint, %len
  br i1 %hin, label %hchk, label %search
hchk:
  %h3 = mul i64 %hint, 3
  %hb = call i64 @hk_ld(ptr %tp, i64 %h3)
  %hsame = icmp eq i64 %hb, %a
  br i1 %hsame, label %set, label %search
search:
  %k = call i64 @hk_bsearch(ptr %tp, i64 %len, i64 %a)
  %z = icmp slt i64 %k, 0
  br i1 %z, label %seeds, label %chk
chk:
  %k3 = mul i64 %k, 3
  %eb = call i64 @hk_ld(ptr %tp, i64 %k3)
  %same = icmp eq i64 %eb, %a
  br i1 %same, label %set, label %seeds
set:
  %kk = phi i64 [%hint, %hchk], [%k, %chk]
  %kk3 = mul i64 %kk, 3
  %kk32 = add i64 %kk3, 2
  call void @hk_st(ptr %tp, i64 %kk32, i64 %perm)
  br label %seeds
seeds:
  %found = phi i64 [-1, %search], [-1, %chk], [%kk, %set]
  %kill = icmp eq i64 %perm, 0
  br i1 %kill, label %s1, label %done
s1:
  %sb = call i64 @hk_ld(ptr %ctx, i64 {abi.SEED_BASE})
  %sm = icmp eq i64 %sb, %a
  br i1 %sm, label %s2, label %s3
s2:
  call void @hk_st(ptr %ctx, i64 {abi.SEED_BASE}, i64 0)
  call void @hk_st(ptr %ctx, i64 {abi.SEED_RLIM}, i64 0)
  call void @hk_st(ptr %ctx, i64 {abi.SEED_WLIM}, i64 0)
  br label %s3
s3:
  %ab = call i64 @hk_ld(ptr %ctx, i64 {abi.ARG_BASE})
  %am = icmp eq i64 %ab, %a
  br i1 %am, label %s4, label %done
s4:
  call void @hk_st(ptr %ctx, i64 {abi.ARG_BASE}, i64 0)
  call void @hk_st(ptr %ctx, i64 {abi.ARG_RLIM}, i64 0)
  call void @hk_st(ptr %ctx, i64 {abi.ARG_WLIM}, i64 0)
  br label %done
done:
  ret i64 %found
}}

; every part of %slot's value gets %perm in the run's table
define internal void @hk_setperms(ptr %ctx, ptr %d, i64 %slot, i64 %perm) {{
entry:
  %va = call i64 @hk_vaddr(ptr %d, i64 %slot)
  %parts = call i64 @hk_ld(ptr %d, i64 {nm.D_PARTS})
  %ps = call i64 @hk_ld(ptr %d, i64 {nm.D_PSIZE})
  %r = call ptr @hk_srec(ptr %d, i64 %slot)
  %t = call i64 @hk_ld(ptr %r, i64 {nm.S_TIDX})
  %hint0 = sub i64 %t, 1
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  %hint = phi i64 [%hint0, %entry], [%hint1, %next]
  %more = icmp ult i64 %i, %parts
  br i1 %more, label %body, label %done
body:
  %o = mul i64 %i, %ps
  %a = add i64 %va, %o
  %at = call i64 @hk_setperm(ptr %ctx, i64 %a, i64 %perm, i64 %hint)
  %hint1 = add i64 %at, 1
  %first = icmp eq i64 %i, 0
  br i1 %first, label %remember, label %next
remember:
  %ati = add i64 %at, 1
  call void @hk_st(ptr %r, i64 {nm.S_TIDX}, i64 %ati)
  br label %next
next:
  %i1 = add i64 %i, 1
  br label %loop
done:
  ret void
}}

; ---- the journal Python replays (HashMap._sync)
; squeeze out cancelled records (J_NONE), keeping the pending inserts' S_JIDX exact
define internal void @hk_compact(ptr %d) {{
entry:
  %nl = call i64 @hk_ld(ptr %d, i64 {nm.D_NLOG})
  %w = call i64 @hk_ld(ptr %d, i64 {nm.D_LOGW})
  %log = call ptr @hk_word(ptr %d, i64 {nm.D_LOG})
  %wb = shl i64 %w, 3
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  %j = phi i64 [0, %entry], [%j2, %next]
  %more = icmp ult i64 %i, %nl
  br i1 %more, label %body, label %done
body:
  %oi = mul i64 %i, %w
  %ri = getelementptr i64, ptr %log, i64 %oi
  %op = load i64, ptr %ri
  %dead = icmp eq i64 %op, {nm.J_NONE}
  br i1 %dead, label %next, label %keep
keep:
  %oj = mul i64 %j, %w
  %rj = getelementptr i64, ptr %log, i64 %oj
  call void @llvm.memmove.p0.p0.i64(ptr %rj, ptr %ri, i64 %wb, i1 false)
  %isins = icmp eq i64 %op, {nm.J_INSERT}
  br i1 %isins, label %fix, label %kept
fix:
  %slot = call i64 @hk_ld(ptr %ri, i64 1)
  %rec = call ptr @hk_srec(ptr %d, i64 %slot)
  %j1x = add i64 %j, 1
  call void @hk_st(ptr %rec, i64 {nm.S_JIDX}, i64 %j1x)
  br label %kept
kept:
  %j1 = add i64 %j, 1
  br label %next
next:
  %j2 = phi i64 [%j, %body], [%j1, %kept]
  %i1 = add i64 %i, 1
  br label %loop
done:
  call void @hk_st(ptr %d, i64 {nm.D_NLOG}, i64 %j)
  ret void
}}

; room for %n more records (compacting if need be)
define internal i1 @hk_logroom(ptr %d, i64 %n) {{
entry:
  %nl = call i64 @hk_ld(ptr %d, i64 {nm.D_NLOG})
  %cap = call i64 @hk_ld(ptr %d, i64 {nm.D_LOGCAP})
  %need = add i64 %nl, %n
  %ok = icmp ule i64 %need, %cap
  br i1 %ok, label %yes, label %squeeze
yes:
  ret i1 true
squeeze:
  call void @hk_compact(ptr %d)
  %nl2 = call i64 @hk_ld(ptr %d, i64 {nm.D_NLOG})
  %need2 = add i64 %nl2, %n
  %ok2 = icmp ule i64 %need2, %cap
  ret i1 %ok2
}}

define internal void @hk_log(ptr %d, i64 %op, i64 %slot, ptr %kp, i64 %ks) {{
entry:
  %nl = call i64 @hk_ld(ptr %d, i64 {nm.D_NLOG})
  %w = call i64 @hk_ld(ptr %d, i64 {nm.D_LOGW})
  %log = call ptr @hk_word(ptr %d, i64 {nm.D_LOG})
  %o = mul i64 %nl, %w
  %rec = getelementptr i64, ptr %log, i64 %o
  call void @hk_st(ptr %rec, i64 0, i64 %op)
  call void @hk_st(ptr %rec, i64 1, i64 %slot)
  %kd = getelementptr i8, ptr %rec, i64 16
  call void @llvm.memmove.p0.p0.i64(ptr %kd, ptr %kp, i64 %ks, i1 false)
  %nl1 = add i64 %nl, 1
  call void @hk_st(ptr %d, i64 {nm.D_NLOG}, i64 %nl1)
  %ins = icmp eq i64 %op, {nm.J_INSERT}
  br i1 %ins, label %mark, label %done
mark:
  %r = call ptr @hk_srec(ptr %d, i64 %slot)
  call void @hk_st(ptr %r, i64 {nm.S_JIDX}, i64 %nl1)
  br label %done
done:
  ret void
}}

; the index can take one more key without a rebuild (HashIndex.insert's test)
define internal i1 @hk_room(ptr %d) alwaysinline {{
  %n = call i64 @hk_ld(ptr %d, i64 {nm.D_COUNT})
  %t = call i64 @hk_ld(ptr %d, i64 {nm.D_TOMBS})
  %mask = call i64 @hk_ld(ptr %d, i64 {nm.D_MASK})
  %cap = add i64 %mask, 1
  %u = add i64 %n, %t
  %u1 = add i64 %u, 1
  %u2 = shl i64 %u1, 1
  %ok = icmp ule i64 %u2, %cap
  ret i1 %ok
}}

; HashIndex._place: the first empty or deleted bucket from the key's home
define internal void @hk_place(ptr %d, ptr %kp, i64 %ks, i64 %slot, i64 %va) {{
entry:
  %tb = call ptr @hk_word(ptr %d, i64 {nm.D_BASE})
  %mask = call i64 @hk_ld(ptr %d, i64 {nm.D_MASK})
  %shift = call i64 @hk_ld(ptr %d, i64 {nm.D_SHIFT})
  %bs = call i64 @hk_ld(ptr %d, i64 {nm.D_BUCKET})
  %h = call i64 @hk_hash(ptr %kp, i64 %ks)
  %hm = mul i64 %h, {_C}
  %i0 = lshr i64 %hm, %shift
  br label %loop
loop:
  %i = phi i64 [%i0, %entry], [%i1, %next]
  %bo = mul i64 %i, %bs
  %b = getelementptr i8, ptr %tb, i64 %bo
  %t = load i64, ptr %b
  %free = icmp ule i64 %t, 1
  br i1 %free, label %put, label %next
next:
  %ia = add i64 %i, 1
  %i1 = and i64 %ia, %mask
  br label %loop
put:
  %tomb = icmp eq i64 %t, 1
  %tn = call i64 @hk_ld(ptr %d, i64 {nm.D_TOMBS})
  %tz = zext i1 %tomb to i64
  %tn1 = sub i64 %tn, %tz
  call void @hk_st(ptr %d, i64 {nm.D_TOMBS}, i64 %tn1)
  %cn = call i64 @hk_ld(ptr %d, i64 {nm.D_COUNT})
  %cn1 = add i64 %cn, 1
  call void @hk_st(ptr %d, i64 {nm.D_COUNT}, i64 %cn1)
  %tag = add i64 %h, 2
  call void @hk_st(ptr %b, i64 0, i64 %tag)
  call void @hk_st(ptr %b, i64 {nm.B_VADDR // 8}, i64 %va)
  call void @hk_st(ptr %b, i64 {nm.B_REG // 8}, i64 0)
  call void @hk_st(ptr %b, i64 {nm.B_SLOT // 8}, i64 %slot)
  %kd = getelementptr i8, ptr %b, i64 {nm.B_KEY}
  call void @llvm.memmove.p0.p0.i64(ptr %kd, ptr %kp, i64 %ks, i1 false)
  %r = call ptr @hk_srec(ptr %d, i64 %slot)
  %i1b = add i64 %i, 1
  call void @hk_st(ptr %r, i64 {nm.S_BUCKET}, i64 %i1b)
  ret void
}}

; HashMap._remove of the element in bucket %b: tombstone, slot freed (its Regions lose
; their permissions), LRU unlinked, journaled
define internal void @hk_kill(ptr %ctx, ptr %d, ptr %b) {{
entry:
  %slot = call i64 @hk_ld(ptr %b, i64 {nm.B_SLOT // 8})
  %cn = call i64 @hk_ld(ptr %d, i64 {nm.D_COUNT})
  %cn1 = sub i64 %cn, 1
  call void @hk_st(ptr %d, i64 {nm.D_COUNT}, i64 %cn1)
  ; HashIndex.remove: empty if the next bucket is, with the deleted ones just before
  %tb = call ptr @hk_word(ptr %d, i64 {nm.D_BASE})
  %mask = call i64 @hk_ld(ptr %d, i64 {nm.D_MASK})
  %bs = call i64 @hk_ld(ptr %d, i64 {nm.D_BUCKET})
  %rec0 = call ptr @hk_srec(ptr %d, i64 %slot)
  %bi1 = call i64 @hk_ld(ptr %rec0, i64 {nm.S_BUCKET})
  %bi = sub i64 %bi1, 1
  %ni0 = add i64 %bi, 1
  %ni = and i64 %ni0, %mask
  %no = mul i64 %ni, %bs
  %nb = getelementptr i8, ptr %tb, i64 %no
  %nt = load i64, ptr %nb
  %nempty = icmp eq i64 %nt, 0
  br i1 %nempty, label %clear, label %tomb
tomb:
  call void @hk_st(ptr %b, i64 0, i64 1)
  %tn = call i64 @hk_ld(ptr %d, i64 {nm.D_TOMBS})
  %tn1 = add i64 %tn, 1
  call void @hk_st(ptr %d, i64 {nm.D_TOMBS}, i64 %tn1)
  br label %bucketed
clear:
  call void @hk_st(ptr %b, i64 0, i64 0)
  br label %back
back:
  %j = phi i64 [%bi, %clear], [%j0, %back1]
  %jm = sub i64 %j, 1
  %j0 = and i64 %jm, %mask
  %jo = mul i64 %j0, %bs
  %jb = getelementptr i8, ptr %tb, i64 %jo
  %jt = load i64, ptr %jb
  %jtomb = icmp eq i64 %jt, 1
  br i1 %jtomb, label %back1, label %bucketed
back1:
  store i64 0, ptr %jb
  %tm = call i64 @hk_ld(ptr %d, i64 {nm.D_TOMBS})
  %tm1 = sub i64 %tm, 1
  call void @hk_st(ptr %d, i64 {nm.D_TOMBS}, i64 %tm1)
  br label %back
bucketed:
  %r = call ptr @hk_srec(ptr %d, i64 %slot)
  call void @hk_st(ptr %r, i64 {nm.S_BUCKET}, i64 0)
  call void @hk_st(ptr %r, i64 {nm.S_LIVE}, i64 0)
  %lru = call i64 @hk_ld(ptr %d, i64 {nm.D_LRU})
  %isl = icmp ne i64 %lru, 0
  br i1 %isl, label %ul, label %fr
ul:
  call void @hk_lru_unlink(ptr %d, i64 %slot)
  br label %fr
fr:
  %nf = call i64 @hk_ld(ptr %d, i64 {nm.D_NFREE})
  %fs = call ptr @hk_word(ptr %d, i64 {nm.D_FREE})
  call void @hk_st(ptr %fs, i64 %nf, i64 %slot)
  %nf1 = add i64 %nf, 1
  call void @hk_st(ptr %d, i64 {nm.D_NFREE}, i64 %nf1)
  %u = call i64 @hk_ld(ptr %d, i64 {nm.D_USED})
  %u1 = sub i64 %u, 1
  call void @hk_st(ptr %d, i64 {nm.D_USED}, i64 %u1)
  %reg = call i64 @hk_ld(ptr %r, i64 {nm.S_REG})
  %hasr = icmp ne i64 %reg, 0
  br i1 %hasr, label %pm, label %lg
pm:
  call void @hk_setperms(ptr %ctx, ptr %d, i64 %slot, i64 0)
  br label %lg
lg:
  ; an insert Python has not seen yet: both vanish (the dict and the insertion order
  ; end up as if neither had happened), else the delete is journaled
  %ji = call i64 @hk_ld(ptr %r, i64 {nm.S_JIDX})
  %pend = icmp ne i64 %ji, 0
  br i1 %pend, label %cancel, label %jd
cancel:
  %ji0 = sub i64 %ji, 1
  %w = call i64 @hk_ld(ptr %d, i64 {nm.D_LOGW})
  %log = call ptr @hk_word(ptr %d, i64 {nm.D_LOG})
  %o = mul i64 %ji0, %w
  call void @hk_st(ptr %log, i64 %o, i64 {nm.J_NONE})
  call void @hk_st(ptr %r, i64 {nm.S_JIDX}, i64 0)
  ret void
jd:
  call void @hk_log(ptr %d, i64 {nm.J_DELETE}, i64 %slot, ptr %b, i64 0)
  ret void
}}

; the slot the next insert takes (HashState.take's order: the top of the free stack's
; older zone, free[:D_QBASE]; a fresh slot below D_SLOTCAP; the top of the quarantine)
define internal i64 @hk_next_slot(ptr %d) {{
entry:
  %q = call i64 @hk_ld(ptr %d, i64 {nm.D_QBASE})
  %fs = call ptr @hk_word(ptr %d, i64 {nm.D_FREE})
  %hq = icmp ne i64 %q, 0
  br i1 %hq, label %old, label %nq
old:
  %q1 = sub i64 %q, 1
  %so = call i64 @hk_ld(ptr %fs, i64 %q1)
  ret i64 %so
nq:
  %f = call i64 @hk_ld(ptr %d, i64 {nm.D_FRESH})
  %cap = call i64 @hk_ld(ptr %d, i64 {nm.D_SLOTCAP})
  %room = icmp ult i64 %f, %cap
  br i1 %room, label %fresh, label %quar
fresh:
  ret i64 %f
quar:
  %nf = call i64 @hk_ld(ptr %d, i64 {nm.D_NFREE})
  %nf1 = sub i64 %nf, 1
  %s = call i64 @hk_ld(ptr %fs, i64 %nf1)
  ret i64 %s
}}

; HashMap._insert of key %kp into %slot (= hk_next_slot, or with %top the slot an LRU
; eviction just pushed on the free stack; its Regions registered; the caller checked
; room in the index and the journal), then the value copied into the current CPU's part
define internal void @hk_insert(ptr %ctx, ptr %envd, ptr %d, ptr %kp, i64 %ks, i64 %slot, ptr %vp, i64 %vs, i1 %top) {{
entry:
  %nf = call i64 @hk_ld(ptr %d, i64 {nm.D_NFREE})
  %nf1 = sub i64 %nf, 1
  br i1 %top, label %pop, label %zones
zones:
  %q = call i64 @hk_ld(ptr %d, i64 {nm.D_QBASE})
  %hq = icmp ne i64 %q, 0
  br i1 %hq, label %old, label %nq
old:
  ; free[q-1] leaves the older zone; the quarantine's last entry fills its place
  %fs = call ptr @hk_word(ptr %d, i64 {nm.D_FREE})
  %q1 = sub i64 %q, 1
  %last = call i64 @hk_ld(ptr %fs, i64 %nf1)
  call void @hk_st(ptr %fs, i64 %q1, i64 %last)
  call void @hk_st(ptr %d, i64 {nm.D_QBASE}, i64 %q1)
  call void @hk_st(ptr %d, i64 {nm.D_NFREE}, i64 %nf1)
  br label %take
nq:
  %f = call i64 @hk_ld(ptr %d, i64 {nm.D_FRESH})
  %cap = call i64 @hk_ld(ptr %d, i64 {nm.D_SLOTCAP})
  %room = icmp ult i64 %f, %cap
  br i1 %room, label %fresh, label %pop
fresh:
  %f1 = add i64 %slot, 1
  call void @hk_st(ptr %d, i64 {nm.D_FRESH}, i64 %f1)
  br label %take
pop:
  call void @hk_st(ptr %d, i64 {nm.D_NFREE}, i64 %nf1)
  br label %take
take:
  %u = call i64 @hk_ld(ptr %d, i64 {nm.D_USED})
  %u1 = add i64 %u, 1
  call void @hk_st(ptr %d, i64 {nm.D_USED}, i64 %u1)
  %va = call i64 @hk_vaddr(ptr %d, i64 %slot)
  %vptr = inttoptr i64 %va to ptr
  %el = call i64 @hk_ld(ptr %d, i64 {nm.D_ELEM})
  call void @llvm.memset.p0.i64(ptr %vptr, i8 0, i64 %el, i1 false)
  call void @hk_place(ptr %d, ptr %kp, i64 %ks, i64 %slot, i64 %va)
  %r = call ptr @hk_srec(ptr %d, i64 %slot)
  call void @hk_st(ptr %r, i64 {nm.S_LIVE}, i64 1)
  %lru = call i64 @hk_ld(ptr %d, i64 {nm.D_LRU})
  %isl = icmp ne i64 %lru, 0
  br i1 %isl, label %ap, label %pm
ap:
  call void @hk_lru_append(ptr %d, i64 %slot)
  br label %pm
pm:
  %perms = call i64 @hk_ld(ptr %d, i64 {nm.D_PERMS})
  call void @hk_setperms(ptr %ctx, ptr %d, i64 %slot, i64 %perms)
  call void @hk_log(ptr %d, i64 {nm.J_INSERT}, i64 %slot, ptr %kp, i64 %ks)
  %pa = call i64 @hk_part(ptr %envd, ptr %d, i64 %va)
  %dst = inttoptr i64 %pa to ptr
  call void @llvm.memmove.p0.p0.i64(ptr %dst, ptr %vp, i64 %vs, i1 false)
  ret void
}}

define i64 @bpfkit_map_lookup(ptr %ctx, i64 %r1, i64 %r2) {{
entry:
  %envd = call ptr @hk_word(ptr %ctx, i64 {abi.ENV_DATA})
  %ne = icmp eq ptr %envd, null
  br i1 %ne, label %fb, label %m
m:
  %d = call ptr @hk_map(ptr %envd, i64 %r1)
  %nd = icmp eq ptr %d, null
  br i1 %nd, label %fb, label %k
k:
  %kind = call i64 @hk_ld(ptr %d, i64 {nm.D_KIND})
  %ks = call i64 @hk_ld(ptr %d, i64 {nm.D_KEY_SIZE})
  %kp = inttoptr i64 %r2 to ptr
  switch i64 %kind, label %fb [ i64 {nm.K_ARRAY}, label %arr
                                i64 {nm.K_PERCPU_ARRAY}, label %arr
                                i64 {nm.K_HASH}, label %hash ]
arr:
  %rda = call i1 @hk_readable(ptr %ctx, i64 %r2, i64 4)
  br i1 %rda, label %arr1, label %fb
arr1:
  %idx32 = load i32, ptr %kp, align 1
  %idx = zext i32 %idx32 to i64
  %max = call i64 @hk_ld(ptr %d, i64 {nm.D_MAX})
  %oob = icmp uge i64 %idx, %max
  br i1 %oob, label %null, label %arr2
arr2:
  %pc = icmp eq i64 %kind, {nm.K_PERCPU_ARRAY}
  %cpu0 = call i64 @hk_ld(ptr %envd, i64 {nm.E_CPU})
  %cpu = select i1 %pc, i64 %cpu0, i64 0
  %cm = mul i64 %cpu, %max
  %el = add i64 %cm, %idx
  %elem = call i64 @hk_ld(ptr %d, i64 {nm.D_ELEM})
  %off = mul i64 %el, %elem
  %base = call i64 @hk_ld(ptr %d, i64 {nm.D_BASE})
  %va = add i64 %base, %off
  ret i64 %va
hash:
  %rdh = call i1 @hk_readable(ptr %ctx, i64 %r2, i64 %ks)
  br i1 %rdh, label %h1, label %fb
h1:
  %b = call ptr @hk_find(ptr %d, ptr %kp, i64 %ks)
  %nb = icmp eq ptr %b, null
  br i1 %nb, label %null, label %h2
h2:
  %slot = call i64 @hk_ld(ptr %b, i64 {nm.B_SLOT // 8})
  %rec = call ptr @hk_srec(ptr %d, i64 %slot)
  %reg = call i64 @hk_ld(ptr %rec, i64 {nm.S_REG})
  %nr = icmp eq i64 %reg, 0
  br i1 %nr, label %fb, label %h3
h3:
  call void @hk_touch(ptr %d, i64 %slot)
  %vh = call i64 @hk_ld(ptr %b, i64 {nm.B_VADDR // 8})
  %vp = call i64 @hk_part(ptr %envd, ptr %d, i64 %vh)
  ret i64 %vp
null:
  ret i64 0
fb:
  %r = call i64 @hk_fallback(ptr %ctx, i64 1, i64 %r1, i64 %r2, i64 0, i64 0, i64 0)
  ret i64 %r
}}

define i64 @bpfkit_map_update(ptr %ctx, i64 %r1, i64 %r2, i64 %r3, i64 %r4) {{
entry:
  %envd = call ptr @hk_word(ptr %ctx, i64 {abi.ENV_DATA})
  %ne = icmp eq ptr %envd, null
  br i1 %ne, label %fb, label %m
m:
  %d = call ptr @hk_map(ptr %envd, i64 %r1)
  %nd = icmp eq ptr %d, null
  br i1 %nd, label %fb, label %k
k:
  %kind = call i64 @hk_ld(ptr %d, i64 {nm.D_KIND})
  %ks = call i64 @hk_ld(ptr %d, i64 {nm.D_KEY_SIZE})
  %vs = call i64 @hk_ld(ptr %d, i64 {nm.D_VALUE_SIZE})
  %kp = inttoptr i64 %r2 to ptr
  %vp = inttoptr i64 %r3 to ptr
  %mode = and i64 %r4, 3
  %hiflags = and i64 %r4, -8
  %bad1 = icmp ne i64 %hiflags, 0
  %bad2 = icmp eq i64 %mode, 3
  %bad = or i1 %bad1, %bad2
  switch i64 %kind, label %fb [ i64 {nm.K_ARRAY}, label %chk
                                i64 {nm.K_PERCPU_ARRAY}, label %chk
                                i64 {nm.K_HASH}, label %chk ]
chk:
  ; a map read-only for programs: Python faults ("write into map forbidden")
  %perms = call i64 @hk_ld(ptr %d, i64 {nm.D_PERMS})
  %pw = and i64 %perms, {abi.WRITE}
  %ro = icmp eq i64 %pw, 0
  br i1 %ro, label %fb, label %chk1
chk1:
  br i1 %bad, label %einval, label %kinds
kinds:
  %ish = icmp eq i64 %kind, {nm.K_HASH}
  br i1 %ish, label %hash, label %arr
arr:
  %rda = call i1 @hk_readable(ptr %ctx, i64 %r2, i64 4)
  br i1 %rda, label %arr1, label %fb
arr1:
  %idx32 = load i32, ptr %kp, align 1
  %idx = zext i32 %idx32 to i64
  %max = call i64 @hk_ld(ptr %d, i64 {nm.D_MAX})
  %oob = icmp uge i64 %idx, %max
  br i1 %oob, label %e2big, label %arr2
arr2:
  %noex = icmp eq i64 %mode, 1
  br i1 %noex, label %eexist, label %arr3
arr3:
  %rdv = call i1 @hk_readable(ptr %ctx, i64 %r3, i64 %vs)
  br i1 %rdv, label %arr4, label %fb
arr4:
  %pc = icmp eq i64 %kind, {nm.K_PERCPU_ARRAY}
  %cpu0 = call i64 @hk_ld(ptr %envd, i64 {nm.E_CPU})
  %cpu = select i1 %pc, i64 %cpu0, i64 0
  %cm = mul i64 %cpu, %max
  %el = add i64 %cm, %idx
  %elem = call i64 @hk_ld(ptr %d, i64 {nm.D_ELEM})
  %off = mul i64 %el, %elem
  %base = call i64 @hk_ld(ptr %d, i64 {nm.D_BASE})
  %va = add i64 %base, %off
  %dst = inttoptr i64 %va to ptr
  call void @llvm.memmove.p0.p0.i64(ptr %dst, ptr %vp, i64 %vs, i1 false)
  ret i64 0
hash:
  %rdk = call i1 @hk_readable(ptr %ctx, i64 %r2, i64 %ks)
  br i1 %rdk, label %h0, label %fb
h0:
  %rdhv = call i1 @hk_readable(ptr %ctx, i64 %r3, i64 %vs)
  br i1 %rdhv, label %h1, label %fb
h1:
  %b = call ptr @hk_find(ptr %d, ptr %kp, i64 %ks)
  %nb = icmp eq ptr %b, null
  br i1 %nb, label %absent, label %present
absent:
  %ex = icmp eq i64 %mode, 2
  br i1 %ex, label %enoent, label %new
new:
  %used = call i64 @hk_ld(ptr %d, i64 {nm.D_USED})
  %hmax = call i64 @hk_ld(ptr %d, i64 {nm.D_MAX})
  %full = icmp uge i64 %used, %hmax
  %room = call i1 @hk_room(ptr %d)
  br i1 %full, label %isfull, label %n1
n1:
  %slot = call i64 @hk_next_slot(ptr %d)
  %rec = call ptr @hk_srec(ptr %d, i64 %slot)
  %reg = call i64 @hk_ld(ptr %rec, i64 {nm.S_REG})
  %hasr = icmp ne i64 %reg, 0
  %lr1 = call i1 @hk_logroom(ptr %d, i64 1)
  %ok0 = and i1 %hasr, %room
  %ok1 = and i1 %ok0, %lr1
  br i1 %ok1, label %ins, label %fb
ins:
  call void @hk_insert(ptr %ctx, ptr %envd, ptr %d, ptr %kp, i64 %ks, i64 %slot, ptr %vp, i64 %vs, i1 false)
  ret i64 0
isfull:
  %lru = call i64 @hk_ld(ptr %d, i64 {nm.D_LRU})
  %nolru = icmp eq i64 %lru, 0
  br i1 %nolru, label %e2big, label %ev
ev:
  %lh = call i64 @hk_ld(ptr %d, i64 {nm.D_LHEAD})
  %none = icmp eq i64 %lh, 0
  br i1 %none, label %e2big, label %ev1
ev1:
  ; LruHashMap: the least recently used element goes, its slot takes the new key
  %victim = sub i64 %lh, 1
  %vrec = call ptr @hk_srec(ptr %d, i64 %victim)
  %vreg = call i64 @hk_ld(ptr %vrec, i64 {nm.S_REG})
  %vhasr = icmp ne i64 %vreg, 0
  %lr2 = call i1 @hk_logroom(ptr %d, i64 2)
  %vok0 = and i1 %vhasr, %room
  %vok1 = and i1 %vok0, %lr2
  br i1 %vok1, label %ev2, label %fb
ev2:
  %vbi = call i64 @hk_ld(ptr %vrec, i64 {nm.S_BUCKET})
  %vbi0 = sub i64 %vbi, 1
  %tb = call ptr @hk_word(ptr %d, i64 {nm.D_BASE})
  %bs = call i64 @hk_ld(ptr %d, i64 {nm.D_BUCKET})
  %vbo = mul i64 %vbi0, %bs
  %vb = getelementptr i8, ptr %tb, i64 %vbo
  call void @hk_kill(ptr %ctx, ptr %d, ptr %vb)
  %evn = call i64 @hk_ld(ptr %d, i64 {nm.D_EVICT})
  %evn1 = add i64 %evn, 1
  call void @hk_st(ptr %d, i64 {nm.D_EVICT}, i64 %evn1)
  call void @hk_insert(ptr %ctx, ptr %envd, ptr %d, ptr %kp, i64 %ks, i64 %victim, ptr %vp, i64 %vs, i1 true)
  ret i64 0
present:
  %noexh = icmp eq i64 %mode, 1
  br i1 %noexh, label %eexist, label %h2
h2:
  %pslot = call i64 @hk_ld(ptr %b, i64 {nm.B_SLOT // 8})
  call void @hk_touch(ptr %d, i64 %pslot)
  %vh0 = call i64 @hk_ld(ptr %b, i64 {nm.B_VADDR // 8})
  %vh1 = call i64 @hk_part(ptr %envd, ptr %d, i64 %vh0)
  %vh = inttoptr i64 %vh1 to ptr
  call void @llvm.memmove.p0.p0.i64(ptr %vh, ptr %vp, i64 %vs, i1 false)
  ret i64 0
einval:
  ret i64 -22
e2big:
  ret i64 -7
eexist:
  ret i64 -17
enoent:
  ret i64 -2
fb:
  %r = call i64 @hk_fallback(ptr %ctx, i64 2, i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 0)
  ret i64 %r
}}

define i64 @bpfkit_map_delete(ptr %ctx, i64 %r1, i64 %r2) {{
entry:
  %envd = call ptr @hk_word(ptr %ctx, i64 {abi.ENV_DATA})
  %ne = icmp eq ptr %envd, null
  br i1 %ne, label %fb, label %m
m:
  %d = call ptr @hk_map(ptr %envd, i64 %r1)
  %nd = icmp eq ptr %d, null
  br i1 %nd, label %fb, label %k
k:
  %kind = call i64 @hk_ld(ptr %d, i64 {nm.D_KIND})
  %perms = call i64 @hk_ld(ptr %d, i64 {nm.D_PERMS})
  %pw = and i64 %perms, {abi.WRITE}
  %ro = icmp eq i64 %pw, 0
  br i1 %ro, label %fb, label %k1
k1:
  switch i64 %kind, label %fb [ i64 {nm.K_ARRAY}, label %einval
                                i64 {nm.K_PERCPU_ARRAY}, label %einval
                                i64 {nm.K_HASH}, label %hash ]
hash:
  %ks = call i64 @hk_ld(ptr %d, i64 {nm.D_KEY_SIZE})
  %kp = inttoptr i64 %r2 to ptr
  %rdk = call i1 @hk_readable(ptr %ctx, i64 %r2, i64 %ks)
  br i1 %rdk, label %h1, label %fb
h1:
  %b = call ptr @hk_find(ptr %d, ptr %kp, i64 %ks)
  %nb = icmp eq ptr %b, null
  br i1 %nb, label %enoent, label %h2
h2:
  %lr = call i1 @hk_logroom(ptr %d, i64 1)
  br i1 %lr, label %h3, label %fb
h3:
  call void @hk_kill(ptr %ctx, ptr %d, ptr %b)
  ret i64 0
einval:
  ret i64 -22
enoent:
  ret i64 -2
fb:
  %r = call i64 @hk_fallback(ptr %ctx, i64 3, i64 %r1, i64 %r2, i64 0, i64 0, i64 0)
  ret i64 %r
}}

define i64 @bpfkit_prandom(ptr %ctx) {{
entry:
  %envd = call ptr @hk_word(ptr %ctx, i64 {abi.ENV_DATA})
  %ne = icmp eq ptr %envd, null
  br i1 %ne, label %fb, label %s
s:
  %st = call ptr @hk_word(ptr %envd, i64 {nm.E_PRNG})
  %ns = icmp eq ptr %st, null
  br i1 %ns, label %fb, label %p
p:
  %ip = getelementptr i32, ptr %st, i64 624
  %i = load i32, ptr %ip
  %used = icmp uge i32 %i, 624
  br i1 %used, label %fb, label %t
t:
  %i1 = add i32 %i, 1
  store i32 %i1, ptr %ip
  %wp = getelementptr i32, ptr %st, i32 %i
  %y0 = load i32, ptr %wp
  %a1 = lshr i32 %y0, 11
  %y1 = xor i32 %y0, %a1
  %a2 = shl i32 %y1, 7
  %b2 = and i32 %a2, {_s(0x9D2C5680) if 0x9D2C5680 < 2**31 else 0x9D2C5680 - 2**32}
  %y2 = xor i32 %y1, %b2
  %a3 = shl i32 %y2, 15
  %b3 = and i32 %a3, {0xEFC60000 - 2**32}
  %y3 = xor i32 %y2, %b3
  %a4 = lshr i32 %y3, 18
  %y4 = xor i32 %y3, %a4
  %r = zext i32 %y4 to i64
  ret i64 %r
fb:
  %f = call i64 @hk_fallback(ptr %ctx, i64 7, i64 0, i64 0, i64 0, i64 0, i64 0)
  ret i64 %f
}}

; the control block of ring buffer %r1, or null (unknown map or not a ring buffer)
define internal ptr @hk_ring(ptr %ctx, i64 %r1) {{
entry:
  %envd = call ptr @hk_word(ptr %ctx, i64 {abi.ENV_DATA})
  %ne = icmp eq ptr %envd, null
  br i1 %ne, label %none, label %m
m:
  %d = call ptr @hk_map(ptr %envd, i64 %r1)
  %nd = icmp eq ptr %d, null
  br i1 %nd, label %none, label %k
k:
  %kind = call i64 @hk_ld(ptr %d, i64 {nm.D_KIND})
  %isr = icmp eq i64 %kind, {nm.K_RINGBUF}
  br i1 %isr, label %yes, label %none
yes:
  ret ptr %d
none:
  ret ptr null
}}

; claim room for an %n-byte record (header written busy): its offset in the data area,
; or -1 (and a drop) when it does not fit; %n <= MAX_RECORD
define internal i64 @hk_rb_claim(ptr %d, i64 %n) {{
entry:
  %l0 = add i64 %n, {rbm.HDR_SZ + 7}
  %len = and i64 %l0, -8
  %size = call i64 @hk_ld(ptr %d, i64 {rbm.R_SIZE})
  %mask = call i64 @hk_ld(ptr %d, i64 {rbm.R_MASK})
  %prod = call i64 @hk_ld(ptr %d, i64 {rbm.R_PROD})
  %cons = call i64 @hk_ld(ptr %d, i64 {rbm.R_CONS})
  %big = icmp ugt i64 %len, %size
  %end = add i64 %prod, %len
  %used = sub i64 %end, %cons
  %over = icmp ugt i64 %used, %mask
  %no = or i1 %big, %over
  br i1 %no, label %drop, label %claim
drop:
  %dr = call i64 @hk_ld(ptr %d, i64 {rbm.R_DROPPED})
  %dr1 = add i64 %dr, 1
  call void @hk_st(ptr %d, i64 {rbm.R_DROPPED}, i64 %dr1)
  ret i64 -1
claim:
  %off = and i64 %prod, %mask
  %data = call ptr @hk_word(ptr %d, i64 {rbm.R_ALIAS})
  %hp = getelementptr i8, ptr %data, i64 %off
  %n32 = trunc i64 %n to i32
  %w = or i32 %n32, {_s32(rbm.BUSY_BIT)}
  store i32 %w, ptr %hp, align 4
  %pg = lshr i64 %off, {rbm.PAGE_SIZE.bit_length() - 1}
  %pg32 = trunc i64 %pg to i32
  %pp = getelementptr i8, ptr %hp, i64 4
  store i32 %pg32, ptr %pp, align 4
  call void @hk_st(ptr %d, i64 {rbm.R_PROD}, i64 %end)
  ret i64 %off
}}

define i64 @bpfkit_ringbuf_reserve(ptr %ctx, i64 %r1, i64 %r2, i64 %r3) {{
entry:
  %d = call ptr @hk_ring(ptr %ctx, i64 %r1)
  %nd = icmp eq ptr %d, null
  br i1 %nd, label %fb, label %f
f:
  %fl = icmp ne i64 %r3, 0
  %big = icmp ugt i64 %r2, {rbm.MAX_RECORD}
  %bad = or i1 %fl, %big
  br i1 %bad, label %null, label %sl
sl:
  %nres = call i64 @hk_ld(ptr %d, i64 {rbm.R_NRES})
  %full = icmp uge i64 %nres, {rbm.R_SLOTS}
  br i1 %full, label %fb, label %c
c:
  %off = call i64 @hk_rb_claim(ptr %d, i64 %r2)
  %no = icmp slt i64 %off, 0
  br i1 %no, label %null, label %ok
ok:
  %alias = call i64 @hk_ld(ptr %d, i64 {rbm.R_ALIAS})
  %a0 = add i64 %alias, %off
  %addr = add i64 %a0, {rbm.HDR_SZ}
  %nres1 = add i64 %nres, 1
  call void @hk_st(ptr %d, i64 {rbm.R_NRES}, i64 %nres1)
  br label %scan
scan:
  %i = phi i64 [{rbm.R_SLOT0}, %ok], [%i1, %next]
  %v = call i64 @hk_ld(ptr %d, i64 %i)
  %free = icmp eq i64 %v, 0
  br i1 %free, label %put, label %next
next:
  %i1 = add i64 %i, 2
  br label %scan
put:
  %il = add i64 %i, 1
  call void @hk_st(ptr %d, i64 %il, i64 %r2)
  call void @hk_st(ptr %d, i64 %i, i64 %addr)
  ret i64 %addr
null:
  ret i64 0
fb:
  %r = call i64 @hk_fallback(ptr %ctx, i64 131, i64 %r1, i64 %r2, i64 %r3, i64 0, i64 0)
  ret i64 %r
}}

; submit (%disc = 0) or discard (%disc = DISCARD_BIT) the native reservation at %addr
define internal i64 @hk_rb_commit(ptr %ctx, i64 %addr, i64 %flags, i32 %disc, i64 %id) {{
entry:
  %envd = call ptr @hk_word(ptr %ctx, i64 {abi.ENV_DATA})
  %ne = icmp eq ptr %envd, null
  br i1 %ne, label %fb, label %rs
rs:
  %rings = call ptr @hk_word(ptr %envd, i64 {nm.E_RINGS})
  %n = call i64 @hk_ld(ptr %envd, i64 {nm.E_NRINGS})
  br label %loop
loop:
  %i = phi i64 [0, %rs], [%i1, %other]
  %more = icmp ult i64 %i, %n
  br i1 %more, label %ring, label %fb
ring:
  %d = call ptr @hk_word(ptr %rings, i64 %i)
  %alias = call i64 @hk_ld(ptr %d, i64 {rbm.R_ALIAS})
  %size = call i64 @hk_ld(ptr %d, i64 {rbm.R_SIZE})
  %span = shl i64 %size, 1
  %rel = sub i64 %addr, %alias
  %in = icmp ult i64 %rel, %span
  %i1 = add i64 %i, 1
  br i1 %in, label %mine, label %other
other:
  br label %loop
mine:
  %nres = call i64 @hk_ld(ptr %d, i64 {rbm.R_NRES})
  %none = icmp eq i64 %nres, 0
  br i1 %none, label %fb, label %scan
scan:
  %j = phi i64 [{rbm.R_SLOT0}, %mine], [%j1, %sn]
  %end = icmp uge i64 %j, {rbm.R_SLOT0 + 2 * rbm.R_SLOTS}
  br i1 %end, label %fb, label %sc
sc:
  %v = call i64 @hk_ld(ptr %d, i64 %j)
  %hit = icmp eq i64 %v, %addr
  %j1 = add i64 %j, 2
  br i1 %hit, label %done, label %sn
sn:
  br label %scan
done:
  call void @hk_st(ptr %d, i64 %j, i64 0)
  %jl = add i64 %j, 1
  call void @hk_st(ptr %d, i64 %jl, i64 0)
  %nres1 = sub i64 %nres, 1
  call void @hk_st(ptr %d, i64 {rbm.R_NRES}, i64 %nres1)
  %ha = sub i64 %addr, {rbm.HDR_SZ}
  %hp = inttoptr i64 %ha to ptr
  %w = load i32, ptr %hp, align 4
  %w1 = and i32 %w, {_s32(~rbm.BUSY_BIT & 0xFFFFFFFF)}
  %w2 = or i32 %w1, %disc
  store i32 %w2, ptr %hp, align 4
  ret i64 0
fb:
  %r = call i64 @hk_fallback(ptr %ctx, i64 %id, i64 %addr, i64 %flags, i64 0, i64 0, i64 0)
  ret i64 %r
}}

define i64 @bpfkit_ringbuf_submit(ptr %ctx, i64 %r1, i64 %r2) {{
  %r = call i64 @hk_rb_commit(ptr %ctx, i64 %r1, i64 %r2, i32 0, i64 132)
  ret i64 %r
}}

define i64 @bpfkit_ringbuf_discard(ptr %ctx, i64 %r1, i64 %r2) {{
  %r = call i64 @hk_rb_commit(ptr %ctx, i64 %r1, i64 %r2, i32 {rbm.DISCARD_BIT}, i64 133)
  ret i64 %r
}}

define i64 @bpfkit_ringbuf_output(ptr %ctx, i64 %r1, i64 %r2, i64 %r3, i64 %r4) {{
entry:
  %d = call ptr @hk_ring(ptr %ctx, i64 %r1)
  %nd = icmp eq ptr %d, null
  br i1 %nd, label %fb, label %f
f:
  %hf = and i64 %r4, {_s(~(rbm.NO_WAKEUP | rbm.FORCE_WAKEUP))}
  %bad = icmp ne i64 %hf, 0
  br i1 %bad, label %einval, label %z
z:
  %empty = icmp eq i64 %r3, 0
  br i1 %empty, label %sz, label %rd
rd:
  %ok = call i1 @hk_readable(ptr %ctx, i64 %r2, i64 %r3)
  br i1 %ok, label %sz, label %fb
sz:
  %big = icmp ugt i64 %r3, {rbm.MAX_RECORD}
  br i1 %big, label %eagain, label %c
c:
  %off = call i64 @hk_rb_claim(ptr %d, i64 %r3)
  %no = icmp slt i64 %off, 0
  br i1 %no, label %eagain, label %copy
copy:
  %data = call ptr @hk_word(ptr %d, i64 {rbm.R_ALIAS})
  %hp = getelementptr i8, ptr %data, i64 %off
  %dst = getelementptr i8, ptr %hp, i64 {rbm.HDR_SZ}
  %src = inttoptr i64 %r2 to ptr
  call void @llvm.memmove.p0.p0.i64(ptr %dst, ptr %src, i64 %r3, i1 false)
  %n32 = trunc i64 %r3 to i32
  store i32 %n32, ptr %hp, align 4
  ret i64 0
einval:
  ret i64 -22
eagain:
  ret i64 -11
fb:
  %r = call i64 @hk_fallback(ptr %ctx, i64 130, i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 0)
  ret i64 %r
}}

define i64 @bpfkit_ringbuf_query(ptr %ctx, i64 %r1, i64 %r2) {{
entry:
  %d = call ptr @hk_ring(ptr %ctx, i64 %r1)
  %nd = icmp eq ptr %d, null
  br i1 %nd, label %fb, label %q
q:
  %prod = call i64 @hk_ld(ptr %d, i64 {rbm.R_PROD})
  %cons = call i64 @hk_ld(ptr %d, i64 {rbm.R_CONS})
  %size = call i64 @hk_ld(ptr %d, i64 {rbm.R_SIZE})
  switch i64 %r2, label %zero [ i64 {rbm.AVAIL_DATA}, label %avail
                                i64 {rbm.RING_SIZE}, label %rsize
                                i64 {rbm.CONS_POS}, label %rcons
                                i64 {rbm.PROD_POS}, label %rprod ]
avail:
  %a = sub i64 %prod, %cons
  ret i64 %a
rsize:
  ret i64 %size
rcons:
  ret i64 %cons
rprod:
  ret i64 %prod
zero:
  ret i64 0
fb:
  %r = call i64 @hk_fallback(ptr %ctx, i64 134, i64 %r1, i64 %r2, i64 0, i64 0, i64 0)
  ret i64 %r
}}

declare void @llvm.memmove.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
"""

_module = None


def _compiled():
    global _module
    if _module is None:
        from .engine import compile_module

        _module = compile_module(_IR, opt_level=2, cache=True)
    return _module


def natives() -> dict[str, NativeHelper]:
    """The native twins, by helper name."""
    mod = _compiled()

    def nh(sym: str, nargs: int) -> NativeHelper:
        return NativeHelper(mod.address(sym), nargs, None, True, sym, keepalive=mod)

    return {
        "map_lookup_elem": nh("bpfkit_map_lookup", 2),
        "map_update_elem": nh("bpfkit_map_update", 4),
        "map_delete_elem": nh("bpfkit_map_delete", 2),
        "get_prandom_u32": nh("bpfkit_prandom", 0),
        "ringbuf_reserve": nh("bpfkit_ringbuf_reserve", 3),
        "ringbuf_submit": nh("bpfkit_ringbuf_submit", 2),
        "ringbuf_discard": nh("bpfkit_ringbuf_discard", 2),
        "ringbuf_output": nh("bpfkit_ringbuf_output", 4),
        "ringbuf_query": nh("bpfkit_ringbuf_query", 2),
    }


def install() -> None:
    """Register the native twins of the VM's map, ring-buffer and prandom helpers."""
    fns = {
        "map_lookup_elem": helpers_maps.map_lookup_elem,
        "map_update_elem": helpers_maps.map_update_elem,
        "map_delete_elem": helpers_maps.map_delete_elem,
        "get_prandom_u32": helpers_trace.get_prandom_u32,
        "ringbuf_reserve": helpers_maps.ringbuf_reserve,
        "ringbuf_submit": helpers_maps.ringbuf_submit,
        "ringbuf_discard": helpers_maps.ringbuf_discard,
        "ringbuf_output": helpers_maps.ringbuf_output,
        "ringbuf_query": helpers_maps.ringbuf_query,
    }
    if all(native_for(f) is not None for f in fns.values()):
        return
    for name, nat in natives().items():
        if native_for(fns[name]) is None:
            register_native(fns[name], nat)
