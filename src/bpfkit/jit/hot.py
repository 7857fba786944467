"""Native twins of hot helpers: map lookup/update on array and hash maps, prandom.

They read the native mirrors the VM keeps (:mod:`bpfkit.vm.maps.native`,
:mod:`bpfkit.vm.prng`), found through the run context's ``ENV_DATA`` word, and answer
exactly what the Python helper would — same return values, errnos and pointers. Whatever
they cannot answer on their own goes to the Python helper through the run's helper
trampoline (same id, same arguments), so the observable behaviour is the interpreter's:

- ``bpf_map_lookup_elem``: arrays and per-CPU arrays (the current CPU's value), hash maps
  whose element's value Region is already registered (a first lookup registers it in
  Python); a missing hash key is NULL. A key the native code cannot prove readable in
  the run's region table, an unknown map or another map type: Python.
- ``bpf_map_update_elem``: flag errors, arrays (``E2BIG``, ``EEXIST`` for NOEXIST, the
  copy), existing hash keys (``EEXIST`` for NOEXIST, the copy) and ``ENOENT`` for EXIST on
  a missing key; inserts (which allocate) go to Python.
- ``bpf_get_prandom_u32``: tempers the next word of the runtime's MT19937 state;
  regenerating the state (every 624 calls) is Python's.
"""

from __future__ import annotations

from ..vm import helpers_maps, helpers_trace
from ..vm.maps import native as nm
from . import abi
from .native import NativeHelper, native_for, register_native

__all__ = ["install"]


def _s(v: int) -> int:
    """A u64 constant as LLVM's signed decimal."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


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

; [a, a+n) lies in one readable region of the run's table
define internal i1 @hk_readable(ptr %ctx, i64 %a, i64 %n) {{
entry:
  %tp = call ptr @hk_word(ptr %ctx, i64 {abi.TABLE})
  %len = call i64 @hk_ld(ptr %ctx, i64 {abi.TABLE_LEN})
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
  %z = icmp eq i64 %lo, 0
  br i1 %z, label %no, label %chk
chk:
  %k = sub i64 %lo, 1
  %k3 = mul i64 %k, 3
  %eb = call i64 @hk_ld(ptr %tp, i64 %k3)
  %k31 = add i64 %k3, 1
  %span = call i64 @hk_ld(ptr %tp, i64 %k31)
  %k32 = add i64 %k3, 2
  %perm = call i64 @hk_ld(ptr %tp, i64 %k32)
  %off = sub i64 %a, %eb
  %ok1 = icmp ule i64 %off, %span
  %rest = sub i64 %span, %off
  %ok2 = icmp ule i64 %n, %rest
  %rd = and i64 %perm, {abi.READ}
  %ok3 = icmp ne i64 %rd, 0
  %o12 = and i1 %ok1, %ok2
  %o = and i1 %o12, %ok3
  ret i1 %o
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
  %reg = call i64 @hk_ld(ptr %b, i64 {nm.B_REG // 8})
  %nr = icmp eq i64 %reg, 0
  br i1 %nr, label %fb, label %h3
h3:
  %vh = call i64 @hk_ld(ptr %b, i64 {nm.B_VADDR // 8})
  ret i64 %vh
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
  br i1 %ex, label %enoent, label %fb
present:
  %noexh = icmp eq i64 %mode, 1
  br i1 %noexh, label %eexist, label %h2
h2:
  %vh = call ptr @hk_word(ptr %b, i64 {nm.B_VADDR // 8})
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

declare void @llvm.memmove.p0.p0.i64(ptr, ptr, i64, i1)
"""

_module = None


def _compiled():
    global _module
    if _module is None:
        from .engine import compile_module

        _module = compile_module(_IR, opt_level=2)
    return _module


def natives() -> dict[str, NativeHelper]:
    """The native twins, by helper name."""
    mod = _compiled()

    def nh(sym: str, nargs: int) -> NativeHelper:
        return NativeHelper(mod.address(sym), nargs, None, True, sym, keepalive=mod)

    return {
        "map_lookup_elem": nh("bpfkit_map_lookup", 2),
        "map_update_elem": nh("bpfkit_map_update", 4),
        "get_prandom_u32": nh("bpfkit_prandom", 0),
    }


def install() -> None:
    """Register the native twins of the VM's map and prandom helpers."""
    fns = {
        "map_lookup_elem": helpers_maps.map_lookup_elem,
        "map_update_elem": helpers_maps.map_update_elem,
        "get_prandom_u32": helpers_trace.get_prandom_u32,
    }
    if all(native_for(f) is not None for f in fns.values()):
        return
    for name, nat in natives().items():
        if native_for(fns[name]) is None:
            register_native(fns[name], nat)
