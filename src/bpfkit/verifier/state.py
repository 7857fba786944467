"""Abstract machine state: registers, stack slots, call frames, references, and pruning.

Register and stack-slot objects are shared between states (copy-on-write): code that
changes one makes a fresh copy with :meth:`Reg.clone` and stores that, so copying a
whole state at a branch copies only lists and dicts of references.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import tnum
from .tnum import M32, M64, Tnum, _tnew

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
U64_MAX, U32_MAX = M64, M32

# Register types (the kernel's ``enum bpf_reg_type``, only the kinds we model).
NOT_INIT = 0
SCALAR = 1
PTR_TO_CTX = 2
CONST_PTR_TO_MAP = 3
PTR_TO_MAP_VALUE = 4
PTR_TO_MAP_KEY = 5
PTR_TO_STACK = 6
PTR_TO_PACKET_META = 7
PTR_TO_PACKET = 8
PTR_TO_PACKET_END = 9
PTR_TO_MEM = 10
PTR_TO_FUNC = 11
PTR_TO_SOCK_COMMON = 12  # __sk_buff->sk: struct bpf_sock's common part
PTR_TO_SOCKET = 13  # a full socket (struct bpf_sock)
PTR_TO_TCP_SOCK = 14  # struct bpf_tcp_sock
PTR_TO_XDP_SOCK = 15  # struct bpf_xdp_sock (an xskmap lookup)
PTR_TO_TP_BUFFER = 16  # a writable raw tracepoint's buffer (any non-negative offset)
PTR_TO_BTF_ID = 17  # a kernel struct (``map``: its BTF name); bpfkit cannot read it
SOCKET_TYPES = (PTR_TO_SOCK_COMMON, PTR_TO_SOCKET, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK)

TYPE_NAMES = {
    NOT_INIT: "?",
    SCALAR: "scalar",
    PTR_TO_CTX: "ctx",
    CONST_PTR_TO_MAP: "map_ptr",
    PTR_TO_MAP_VALUE: "map_value",
    PTR_TO_MAP_KEY: "map_key",
    PTR_TO_STACK: "fp",
    PTR_TO_PACKET_META: "pkt_meta",
    PTR_TO_PACKET: "pkt",
    PTR_TO_PACKET_END: "pkt_end",
    PTR_TO_MEM: "mem",
    PTR_TO_FUNC: "func",
    PTR_TO_SOCK_COMMON: "sock_common",
    PTR_TO_SOCKET: "sock",
    PTR_TO_TCP_SOCK: "tcp_sock",
    PTR_TO_XDP_SOCK: "xdp_sock",
    PTR_TO_TP_BUFFER: "tp_buffer",
    PTR_TO_BTF_ID: "untrusted_ptr_",  # a field read from a kernel struct (PTR_UNTRUSTED)
}

PACKET_TYPES = (PTR_TO_PACKET, PTR_TO_PACKET_META)

# Stack byte kinds (the kernel's STACK_* slot types), one character each as in its log.
ST_INVALID = "?"
ST_SPILL = "r"
ST_MISC = "m"
ST_ZERO = "0"

MAX_BPF_STACK = 512
REG_SIZE = 8


def s64(v: int) -> int:
    """Reinterpret a 64-bit pattern as signed."""
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def s32(v: int) -> int:
    """Reinterpret a 32-bit pattern as signed."""
    v &= M32
    return v - (1 << 32) if v >> 31 else v


_new_reg = object.__new__


class Reg:
    """One register's abstract value: a type plus, for scalars and pointer offsets, bounds."""

    __slots__ = (
        "type",
        "maybe_null",
        "rdonly",
        "ringbuf",
        "off",
        "var_off",
        "smin",
        "smax",
        "umin",
        "umax",
        "s32min",
        "s32max",
        "u32min",
        "u32max",
        "id",
        "ref_obj_id",
        "range",
        "map",
        "mem_size",
        "frameno",
        "subprog",
        "sig",
    )

    def __init__(self, type_: int = NOT_INIT) -> None:
        self.type = type_
        self.maybe_null = False
        self.rdonly = False
        self.ringbuf = False
        self.off = 0
        self.var_off = tnum.ZERO if type_ != SCALAR else tnum.UNKNOWN
        if type_ == SCALAR:
            self.smin, self.smax, self.umin, self.umax = S64_MIN, S64_MAX, 0, U64_MAX
            self.s32min, self.s32max, self.u32min, self.u32max = S32_MIN, S32_MAX, 0, U32_MAX
        else:
            self.smin = self.smax = self.umin = self.umax = 0
            self.s32min = self.s32max = self.u32min = self.u32max = 0
        self.id = 0
        self.ref_obj_id = 0
        self.range = 0
        self.map = None
        self.mem_size = 0
        self.frameno = 0
        self.subprog = 0
        #: the fields pruning's loop check compares (``check_jumps._signature``), computed
        #: once a register sits in a state (registers are not changed after that)
        self.sig = None

    # ---- constructors -------------------------------------------------
    @staticmethod
    def unknown() -> Reg:
        """An unknown scalar."""
        return Reg(SCALAR)

    @staticmethod
    def const(v: int) -> Reg:
        """A known 64-bit scalar."""
        v &= M64
        r = _new_reg(Reg)
        r.type = SCALAR
        r.maybe_null = r.rdonly = r.ringbuf = False
        r.off = r.id = r.ref_obj_id = r.range = r.mem_size = r.frameno = r.subprog = 0
        r.map = r.sig = None
        r.var_off = _tnew(Tnum, (v, 0))
        r.umin = r.umax = v
        r.smin = r.smax = v - (1 << 64) if v >> 63 else v
        lo = v & M32
        r.u32min = r.u32max = lo
        r.s32min = r.s32max = lo - (1 << 32) if lo >> 31 else lo
        return r

    @staticmethod
    def pointer(type_: int, **kw) -> Reg:
        """A pointer of ``type_`` at offset zero (fields from ``kw``)."""
        r = Reg(type_)
        for k, v in kw.items():
            setattr(r, k, v)
        return r

    def clone(self) -> Reg:
        """A private copy to mutate."""
        r = _new_reg(Reg)
        r.type = self.type
        r.maybe_null = self.maybe_null
        r.rdonly = self.rdonly
        r.ringbuf = self.ringbuf
        r.off = self.off
        r.var_off = self.var_off
        r.smin = self.smin
        r.smax = self.smax
        r.umin = self.umin
        r.umax = self.umax
        r.s32min = self.s32min
        r.s32max = self.s32max
        r.u32min = self.u32min
        r.u32max = self.u32max
        r.id = self.id
        r.ref_obj_id = self.ref_obj_id
        r.range = self.range
        r.map = self.map
        r.mem_size = self.mem_size
        r.frameno = self.frameno
        r.subprog = self.subprog
        r.sig = None
        return r

    # ---- scalar helpers ----------------------------------------------
    def set_const(self, v: int) -> None:
        """Make this a known scalar ``v``."""
        v &= M64
        self.type = SCALAR
        self.var_off = _tnew(Tnum, (v, 0))
        self.umin = self.umax = v
        self.smin = self.smax = s64(v)
        lo = v & M32
        self.u32min = self.u32max = lo
        self.s32min = self.s32max = s32(lo)

    def mark_unknown_bounds(self) -> None:
        """Forget every bound (the offset part of a pointer, or a scalar's value)."""
        self.var_off = tnum.UNKNOWN
        self.smin, self.smax, self.umin, self.umax = S64_MIN, S64_MAX, 0, U64_MAX
        self.s32min, self.s32max, self.u32min, self.u32max = S32_MIN, S32_MAX, 0, U32_MAX

    def mark_known_zero_bounds(self) -> None:
        """Offset bounds exactly zero."""
        self.var_off = tnum.ZERO
        self.smin = self.smax = self.umin = self.umax = 0
        self.s32min = self.s32max = self.u32min = self.u32max = 0

    def is_const(self) -> bool:
        """A scalar with one possible value."""
        return self.type == SCALAR and self.var_off.mask == 0

    def is_const32(self) -> bool:
        """A scalar whose low 32 bits are known."""
        return self.type == SCALAR and not (self.var_off.mask & M32)

    @property
    def value(self) -> int:
        """The known value (only meaningful when ``is_const``)."""
        return self.var_off.value

    def is_pointer(self) -> bool:
        """Any pointer type."""
        return self.type not in (NOT_INIT, SCALAR)

    def is_null_const(self) -> bool:
        """The known scalar zero."""
        return self.type == SCALAR and self.var_off == tnum.ZERO

    def may_be_zero(self) -> bool:
        """The scalar could be zero."""
        return self.umin == 0

    def type_name(self) -> str:
        """Kernel-style type name (``map_value_or_null``, ``ringbuf_mem``...)."""
        name = TYPE_NAMES[self.type]
        if self.type == PTR_TO_MEM and self.ringbuf:
            name = "ringbuf_mem"
        if self.rdonly and self.type == PTR_TO_MEM:
            name = "rdonly_" + name
        if self.maybe_null:
            name += "_or_null"
        return name

    def __repr__(self) -> str:
        return fmt_reg(self)


def _snum(v: int) -> str:
    """The kernel's ``verbose_snum``: decimal for 16-bit-sized values, else hex."""
    v = s64(v)
    if -32768 <= v <= 32767:
        return str(v)
    return f"{v & U64_MAX:#x}"


def _unum(v: int) -> str:
    """The kernel's ``verbose_unum``."""
    return str(v) if v <= 65535 else f"{v:#x}"


def fmt_reg(r: Reg) -> str:
    """The register as the kernel's log prints it (``print_reg_state``): ``scalar(umax=255)``,
    ``fp-8``, ``map_value(map=m,ks=4,vs=8)``, constants as ``verbose_snum``."""
    t = r.type
    if t == NOT_INIT:
        return "?"
    if t == SCALAR and not r.var_off.mask:
        return _snum(r.var_off.value)
    if t == PTR_TO_STACK and not r.var_off.mask:
        return "fp" + _snum(r.var_off.value + r.off)
    parts = []
    if r.id:
        parts.append(f"id={r.id}")
    if r.ref_obj_id:
        parts.append(f"ref_obj_id={r.ref_obj_id}")
    if t in (PTR_TO_MAP_VALUE, CONST_PTR_TO_MAP, PTR_TO_MAP_KEY) and r.map is not None:
        parts.append(f"map={r.map.name},ks={r.map.key_size},vs={r.map.value_size}")
    if t != SCALAR and r.off:
        parts.append(f"off={r.off}")
    if t in PACKET_TYPES:
        parts.append(f"r={r.range}")
    if t == PTR_TO_MEM:
        parts.append(f"sz={r.mem_size}")
    if not r.var_off.mask:
        if r.var_off.value:
            parts.append(f"imm={r.var_off.value:x}")
    else:
        parts.extend(_bounds_parts(r))
    name = "fp" if t == PTR_TO_STACK else r.type_name()
    return f"{name}({','.join(parts)})"


def _bounds_parts(r: Reg) -> list[str]:
    """``print_scalar_ranges``: non-default bounds, equal ones named together
    (``smin=smin32=0``), never mixing negative and non-negative signed values; then
    the known bits unless nothing is known."""
    s32min = r.s32min if -32768 <= r.s32min <= 32767 else r.s32min & U32_MAX
    s32max = r.s32max if -32768 <= r.s32max <= 32767 else r.s32max & U32_MAX
    items = [
        ["smin", r.smin & U64_MAX, r.smin == S64_MIN],
        ["smax", r.smax & U64_MAX, r.smax == S64_MAX],
        ["umin", r.umin, r.umin == 0],
        ["umax", r.umax, r.umax == U64_MAX],
        ["smin32", s32min & U64_MAX, r.s32min == S32_MIN],
        ["smax32", s32max & U64_MAX, r.s32max == S32_MAX],
        ["umin32", r.u32min, r.u32min == 0],
        ["umax32", r.u32max, r.u32max == U32_MAX],
    ]
    out = []
    for i, (name, val, omit) in enumerate(items):
        if omit:
            continue
        neg = name[0] == "s" and val >> 63
        names = [name]
        for j in range(i + 2, len(items), 2):
            n2, v2, o2 = items[j]
            if o2 or v2 != val or (n2[0] == "s" and bool(v2 >> 63)) != bool(neg):
                continue
            items[j][2] = True
            names.append(n2)
        out.append("=".join(names) + "=" + (_snum(val) if name[0] == "s" else _unum(val)))
    if r.var_off.mask != U64_MAX:
        out.append(f"var_off={tnum.fmt(r.var_off)}")
    return out


NOT_INIT_REG = Reg(NOT_INIT)
UNKNOWN_REG = Reg(SCALAR)


class Slot:
    """One 8-byte stack slot: a kind per byte (index 0 is fp-1 side, 7 the lowest address)."""

    __slots__ = ("types", "spilled")

    def __init__(self, types: str = ST_INVALID * 8, spilled: Reg | None = None) -> None:
        self.types = types
        self.spilled = spilled

    def is_spill(self) -> bool:
        """Holds a spilled register (byte 7, the slot's lowest address, is a spill byte)."""
        return self.types[7] == ST_SPILL

    def spill_size(self) -> int:
        """Bytes of a spill, counted from the lowest address (index 7) upwards."""
        n = 0
        for c in reversed(self.types):
            if c != ST_SPILL:
                break
            n += 1
        return n


EMPTY_SLOT = Slot()


class Frame:
    """One call frame: registers, stack slots, and where it was called from."""

    __slots__ = (
        "regs",
        "stack",
        "frameno",
        "callsite",
        "subprog",
        "depth",
        "callback",
        "cb_ret_lo",
        "cb_ret_hi",
        "cb_depth",
    )

    def __init__(self, frameno: int, subprog: int, callsite: int = -1) -> None:
        self.regs: list[Reg] = [NOT_INIT_REG] * 11
        self.stack: dict[int, Slot] = {}
        self.frameno = frameno
        self.callsite = callsite
        self.subprog = subprog
        self.depth = 0  # deepest stack byte touched
        self.callback = 0  # helper id when this frame runs a callback
        self.cb_ret_lo = 0
        self.cb_ret_hi = 1
        #: callback rounds queued from this frame since its last callback call went
        #: on (the kernel's ``callback_depth``: bpf_loop stops at its iteration count)
        self.cb_depth = 0

    def copy(self) -> Frame:
        """A copy sharing the (immutable) registers and slots."""
        f = Frame.__new__(Frame)
        f.regs = list(self.regs)
        f.stack = dict(self.stack)
        f.frameno = self.frameno
        f.callsite = self.callsite
        f.subprog = self.subprog
        f.depth = self.depth
        f.callback = self.callback
        f.cb_ret_lo = self.cb_ret_lo
        f.cb_ret_hi = self.cb_ret_hi
        f.cb_depth = self.cb_depth
        return f


@dataclass
class Ref:
    """An acquired reference (ringbuf reservation) that must be released before exit."""

    id: int
    insn: int


class State:
    """The whole abstract machine at one instruction on one path."""

    __slots__ = (
        "frames",
        "refs",
        "lock",
        "parent",
        "branches",
        "insn",
        "cb_depth",
        "may_goto_depth",
        "hits",
        "misses",
        "hist",
        "prec",
        "all_prec",
        "live",
        "live_regs",
    )

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.refs: list[Ref] = []
        self.lock: tuple | None = None  # (map id, reg id) of the held spin lock
        self.parent: State | None = None
        self.branches = 0
        self.insn = 0
        self.cb_depth = 0
        self.may_goto_depth = 0  # may_goto fall-throughs taken on this path
        self.hits = 0
        self.misses = 0
        self.hist: list = []  # instructions since ``parent`` (precision backtracking)
        self.prec: set[int] = set()  # precision marks of a checkpoint (prec_key)
        self.all_prec = False  # every scalar of this checkpoint (and its parents) precise
        self.live: list | None = None  # per-frame liveness of a checkpoint (cached)
        self.live_regs: list | None = None  # per frame: (live register numbers, slot mask)

    @property
    def cur(self) -> Frame:
        """The innermost frame."""
        return self.frames[-1]

    def copy(self) -> State:
        """A new state with the same contents (registers and slots shared)."""
        s = State.__new__(State)
        s.frames = [f.copy() for f in self.frames]
        s.refs = list(self.refs)
        s.lock = self.lock
        s.parent = self.parent
        s.branches = 0
        s.insn = self.insn
        s.cb_depth = self.cb_depth
        s.may_goto_depth = self.may_goto_depth
        s.hits = 0
        s.misses = 0
        s.hist = list(self.hist)
        s.prec = set()
        s.all_prec = False
        s.live = None
        s.live_regs = None
        return s


# ---------------------------------------------------------------------------
# State subsumption (pruning): is every concrete state of ``cur`` one of ``old``?
# ---------------------------------------------------------------------------


class _IdMap:
    __slots__ = ("fwd", "back")

    def __init__(self) -> None:
        self.fwd: dict[int, int] = {}
        self.back: dict[int, int] = {}

    def check(self, old: int, cur: int) -> bool:
        if not old and not cur:
            return True
        if not old or not cur:
            return False
        a = self.fwd.get(old)
        b = self.back.get(cur)
        if a is None and b is None:
            self.fwd[old] = cur
            self.back[cur] = old
            return True
        return a == cur and b == old

    def check_scalar(self, old: int, cur: int) -> bool:
        # An unlinked old scalar places no constraint; a linked one needs a consistent link.
        if not old:
            return True
        if not cur:
            return False
        return self.check(old, cur)


def range_within(old: Reg, cur: Reg) -> bool:
    """``cur``'s bounds lie within ``old``'s."""
    return (
        old.umin <= cur.umin
        and cur.umax <= old.umax
        and old.smin <= cur.smin
        and cur.smax <= old.smax
        and old.u32min <= cur.u32min
        and cur.u32max <= old.u32max
        and old.s32min <= cur.s32min
        and cur.s32max <= old.s32max
    )


def regsafe(
    old: Reg,
    cur: Reg,
    ids: _IdMap,
    exact: bool = False,
    precise: bool = True,
    alu_exact: bool = False,
) -> bool:
    """Whether anything safe from ``old`` is safe from ``cur``.

    ``precise=False``: the old scalar's value mattered for no decision on the paths
    explored from it (precision tracking), so any scalar will do. ``alu_exact``: scalars
    must be identical (the kernel's ``explore_alu_limits``, unprivileged programs with
    sanitized pointer arithmetic, so that every path's masking window is checked).
    """
    if alu_exact and old.type == SCALAR:
        return cur.type == SCALAR and same_scalar(old, cur) and ids.check_scalar(old.id, cur.id)
    if exact:
        return regs_exact(old, cur, ids)
    if old is cur and not old.id and not old.ref_obj_id:
        return True
    if old.type == NOT_INIT:
        return not exact or cur.type == NOT_INIT
    if cur.type == NOT_INIT:
        return False
    if old.type == SCALAR and not precise and not exact:
        return cur.type == SCALAR
    if old.type != cur.type or old.maybe_null != cur.maybe_null:
        return False
    if old.type == SCALAR:
        return (
            range_within(old, cur)
            and tnum.contains(old.var_off, cur.var_off)
            and ids.check_scalar(old.id, cur.id)
        )
    if not _same_pointee(old, cur):
        return False
    if not (range_within(old, cur) and tnum.contains(old.var_off, cur.var_off)):
        return False
    if old.type in PACKET_TYPES:
        if old.range > cur.range:
            return False
        if not ids.check(old.id, cur.id):
            return False
    elif old.maybe_null or old.id or cur.id:
        if not ids.check(old.id, cur.id):
            return False
    if old.ref_obj_id or cur.ref_obj_id:
        return ids.check(old.ref_obj_id, cur.ref_obj_id)
    return True


def regs_exact(old: Reg, cur: Reg, ids: _IdMap) -> bool:
    """The same register, ids up to renaming (the kernel's ``regs_exact``: the infinite
    loop test)."""
    if old.type != cur.type:
        return False
    if old.type == NOT_INIT:
        return True
    if not same_scalar(old, cur):
        return False
    if not _same_pointee(old, cur) or old.range != cur.range or old.maybe_null != cur.maybe_null:
        return False
    if (old.id or cur.id) and not ids.check(old.id, cur.id):
        return False
    if (old.ref_obj_id or cur.ref_obj_id) and not ids.check(old.ref_obj_id, cur.ref_obj_id):
        return False
    return True


def _same_pointee(old: Reg, cur: Reg) -> bool:
    """The same fixed offset and the same object pointed to (map, memory size, frame,
    subprogram, read-only and ring-buffer marks): what both ``regsafe`` and
    ``regs_exact`` require of pointers."""
    return (
        old.off == cur.off
        and old.map is cur.map
        and old.mem_size == cur.mem_size
        and old.frameno == cur.frameno
        and old.subprog == cur.subprog
        and old.rdonly == cur.rdonly
        and old.ringbuf == cur.ringbuf
    )


def same_scalar(a: Reg, b: Reg) -> bool:
    """The same value tracking (tnum and every bound)."""
    return (
        a.var_off == b.var_off
        and a.smin == b.smin
        and a.smax == b.smax
        and a.umin == b.umin
        and a.umax == b.umax
        and a.s32min == b.s32min
        and a.s32max == b.s32max
        and a.u32min == b.u32min
        and a.u32max == b.u32max
    )


def _misc_like(c: str, cslot: Slot, allow_uninit: bool) -> bool:
    """A current stack byte that reads as some scalar."""
    if c == ST_MISC or c == ST_ZERO:
        return True
    if c == ST_INVALID:
        return allow_uninit
    return c == ST_SPILL and cslot.spilled.type == SCALAR


def stacksafe(
    old: Frame,
    cur: Frame,
    ids: _IdMap,
    allow_uninit: bool,
    exact: bool,
    live_slots: int = -1,
    prec: frozenset | set | None = None,
    pbase: int = 0,
    alu_exact: bool = False,
) -> bool:
    """Every stack byte ``old`` relied on is at least as known in ``cur``.

    ``live_slots``: bit per slot that may still be read (dead slots are ignored);
    ``prec``: precision keys of ``old`` (None: every scalar is precise); a spilled
    scalar of an imprecise slot is as good as any scalar bytes.
    """
    for spi, oslot in old.stack.items():
        if not (live_slots >> spi) & 1:
            continue
        cslot = cur.stack.get(spi, EMPTY_SLOT)
        if oslot is cslot and not (oslot.spilled is not None and oslot.spilled.id):
            continue
        if exact:
            if oslot.types != cslot.types:
                return False
        sp = oslot.spilled
        precise = prec is None or exact or (pbase + 64 + spi) in prec
        if oslot.is_spill() and oslot.spill_size() == 8:
            if cslot.is_spill() and cslot.spill_size() == 8:
                if not regsafe(sp, cslot.spilled, ids, exact, precise, alu_exact):
                    return False
                continue
            # An old spilled unknown (or imprecise) scalar is as good as misc bytes.
            if sp.type == SCALAR and (
                (not precise and not alu_exact)
                or (sp.var_off == tnum.UNKNOWN and not sp.id and same_scalar(sp, UNKNOWN_REG))
            ):
                if all(_misc_like(c, cslot, allow_uninit) for c in cslot.types):
                    continue
                if cslot.is_spill() and cslot.spilled.type == SCALAR:
                    continue
            if sp.is_null_const() and not sp.id and cslot.types == ST_ZERO * 8:
                continue
            return False
        for i in range(8):
            o = oslot.types[i]
            c = cslot.types[i]
            if o == ST_INVALID:
                continue
            if o == ST_MISC:
                if _misc_like(c, cslot, allow_uninit):
                    continue
                return False
            if o == ST_ZERO:
                if c == ST_ZERO:
                    continue
                if c == ST_SPILL and cslot.spilled.is_null_const():
                    continue
                return False
            # o == ST_SPILL of a partial spill: the same partial spill (or, when the
            # slot is imprecise, any scalar bytes).
            if not precise and sp.type == SCALAR:
                if _misc_like(c, cslot, allow_uninit):
                    continue
                return False
            if c != ST_SPILL or not regsafe(sp, cslot.spilled, ids, exact, alu_exact=alu_exact):
                return False
    return True


def frame_liveness(old: State, live) -> list[tuple[int, int]]:
    """(live registers mask, live slots mask) of each frame of checkpoint ``old``."""
    frames = old.frames
    out = []
    last = len(frames) - 1
    for i in range(last + 1):
        if i == last:
            out.append(live.at(old.insn))
        else:
            child = frames[i + 1]
            if child.callback:
                out.append(live.at(child.callsite))
            else:
                out.append(live.after_call(child.callsite))
    return out


_ALL_REGS = tuple(range(11))


def states_equal(
    old: State,
    cur: State,
    allow_uninit: bool,
    exact: bool = False,
    live=None,
    use_prec: bool = False,
    alu_exact: bool = False,
) -> bool:
    """``old`` subsumes ``cur`` (``exact``: the same, used for loop detection;
    ``alu_exact``: scalars the same, see :func:`regsafe`).

    ``live`` (a :class:`liveness.Liveness`): ignore registers and slots dead at the
    checkpoint; ``use_prec``: scalars that ``old`` never needed precisely
    (``old.prec``) only need to be scalars in ``cur``.
    """
    if len(old.frames) != len(cur.frames):
        return False
    if len(old.refs) != len(cur.refs):
        return False
    if (old.lock is None) != (cur.lock is None):
        return False
    ids = _IdMap()
    prec = old.prec if use_prec and not old.all_prec else None
    if live is not None:
        lregs = old.live_regs
        if lregs is None:
            lv = old.live
            if lv is None:
                lv = old.live = frame_liveness(old, live)
            lregs = old.live_regs = [
                (tuple(i for i in range(11) if (rm >> i) & 1), sm) for rm, sm in lv
            ]
    else:
        lregs = None
    ofs = old.frames
    cfs = cur.frames
    for fi in range(len(ofs)):
        of = ofs[fi]
        cf = cfs[fi]
        if of.callsite != cf.callsite or of.callback != cf.callback:
            return False
        if of.cb_depth > cf.cb_depth:  # func_states_equal: more callback rounds queued
            return False
        if lregs is not None:
            idxs, smask = lregs[fi]
        else:
            idxs, smask = _ALL_REGS, -1
        pbase = fi * 128
        oregs = of.regs
        cregs = cf.regs
        for i in idxs:
            o = oregs[i]
            c = cregs[i]
            if o is c and not o.id and not o.ref_obj_id:
                continue  # regsafe's first test (also under alu_exact: the same scalar)
            if o.type == SCALAR and not exact and not alu_exact:
                # regsafe of a scalar, inline
                if c.type != SCALAR:
                    return False
                if prec is not None and (pbase + i) not in prec:
                    continue
                if (
                    o.maybe_null != c.maybe_null
                    or o.umin > c.umin
                    or c.umax > o.umax
                    or o.smin > c.smin
                    or c.smax > o.smax
                    or o.u32min > c.u32min
                    or c.u32max > o.u32max
                    or o.s32min > c.s32min
                    or c.s32max > o.s32max
                ):
                    return False
                ov, om = o.var_off
                cv, cm = c.var_off
                if cm & ~om or (cv & ~om) != ov:
                    return False
                if o.id and not ids.check_scalar(o.id, c.id):
                    return False
                continue
            if not regsafe(o, c, ids, exact, prec is None or (pbase + i) in prec, alu_exact):
                return False
        if not stacksafe(of, cf, ids, allow_uninit, exact, smask, prec, pbase, alu_exact):
            return False
    for o, c in zip(old.refs, cur.refs, strict=True):
        if not ids.check(o.id, c.id):
            return False
    if old.lock is not None and cur.lock is not None:
        if old.lock[0] != cur.lock[0] or not ids.check(old.lock[1], cur.lock[1]):
            return False
    return True


@dataclass
class Checkpoint:
    """A state saved at a pruning point (explored or still being explored)."""

    state: State
    hits: int = 0
    miss: int = 0
    extra: dict = field(default_factory=dict)
