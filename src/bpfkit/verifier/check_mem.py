"""The checker's memory accesses: loads, stores and atomics through every pointer
type (stack, context, packet, map value ...), 64-bit immediates, LD_ABS/LD_IND
(mixed into :class:`~.check.Checker`)."""

from __future__ import annotations

from ..isa import opcodes as op
from ..isa.instruction import Instruction
from . import ctxinfo, kbtf, precision, scalar, tnum
from .cfg import Reject
from .check_common import BPF_MAX_VAR_OFF, CALLER_SAVED, _ptname
from .state import (
    CONST_PTR_TO_MAP,
    MAX_BPF_STACK,
    NOT_INIT,
    NOT_INIT_REG,
    PACKET_TYPES,
    PTR_TO_BTF_ID,
    PTR_TO_FUNC,
    PTR_TO_MAP_KEY,
    PTR_TO_MAP_VALUE,
    PTR_TO_MEM,
    PTR_TO_PACKET,
    PTR_TO_PACKET_META,
    PTR_TO_SOCK_COMMON,
    PTR_TO_SOCKET,
    PTR_TO_STACK,
    PTR_TO_TCP_SOCK,
    PTR_TO_TP_BUFFER,
    PTR_TO_XDP_SOCK,
    SCALAR,
    SOCKET_TYPES,
    ST_INVALID,
    ST_MISC,
    ST_SPILL,
    ST_ZERO,
    Frame,
    Reg,
    Slot,
    State,
    s64,
)
from .state import PTR_TO_CTX as T_CTX
from .tnum import Tnum

#: pointer types one load/store instruction may not share with another type (the
#: kernel's ``reg_type_mismatch_ok``: their accesses are rewritten per instruction)
_NO_MIX_TYPES = frozenset(
    {T_CTX, PTR_TO_SOCKET, PTR_TO_SOCK_COMMON, PTR_TO_TCP_SOCK, PTR_TO_XDP_SOCK}
)
_REG_TYPE_NAMES = {
    T_CTX: "ctx",
    PTR_TO_SOCKET: "sock",
    PTR_TO_SOCK_COMMON: "sock_common",
    PTR_TO_TCP_SOCK: "tcp_sock",
    PTR_TO_XDP_SOCK: "xdp_sock",
    PTR_TO_STACK: "fp",
    PTR_TO_MAP_VALUE: "map_value",
    PTR_TO_PACKET: "pkt",
    PTR_TO_MEM: "mem",
}


class MemMixin:
    """Loads, stores, atomics and the memory regions they reach."""

    # ------------------------------------------------------------------ lddw
    def do_lddw(self, st: State, insn: Instruction) -> None:
        self.check_dst(insn.dst)
        src = insn.src
        if src == 0:
            self.set_reg(st, insn.dst, Reg.const(insn.imm))
            return
        if src == op.PSEUDO_FUNC:
            t = self.pc + 1 + s64(insn.imm)
            self.set_reg(st, insn.dst, Reg.pointer(PTR_TO_FUNC, subprog=self.prog.subprog_of(t)))
            return
        m = self.lookup_map(insn.imm_lo, src in (op.PSEUDO_MAP_IDX, op.PSEUDO_MAP_IDX_VALUE))
        if src in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_IDX):
            self.set_reg(st, insn.dst, Reg.pointer(CONST_PTR_TO_MAP, map=m))
            return
        off = insn.imm_hi  # a one-element array, off inside its value (load.resolve_maps)
        self.set_reg(st, insn.dst, Reg.pointer(PTR_TO_MAP_VALUE, map=m, off=off))

    def lookup_map(self, key: int, by_index: bool):
        """The map a pseudo ``lddw`` names."""
        m = self.maps.get(key)
        if m is None:
            kind = "index" if by_index else "fd"
            raise self.fail(
                f"lddw refers to map {kind} {key}, which is not a known map.",
                f"fd {key} is not pointing to valid bpf_map",
            )
        return m

    # ------------------------------------------------------------------ memory
    def do_ldx(self, st: State, insn: Instruction) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        signed = (insn.opcode & 0xE0) == op.MEMSX
        base = self.read_reg(st, insn.src)
        self.check_dst(insn.dst)
        val = self.mem_access(
            st, insn.src, base, insn.off, size, write=False, value=None, ldsx=signed
        )
        self.save_ptr_type(base.type)
        if val.type == SCALAR and size < 8:
            val = val.clone()
            if signed:
                scalar.sext(val, size * 8, True)
            else:
                scalar.truncate(val, size)
        elif signed and val.type == SCALAR:
            pass
        self.set_reg(st, insn.dst, val)

    def do_store(self, st: State, insn: Instruction) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        mode = insn.opcode & 0xE0
        base = self.read_reg(st, insn.dst)
        if insn.cls == op.ST:
            if base.type == T_CTX and False:
                pass
            val = Reg.const(insn.imm)
            self.mem_access(
                st,
                insn.dst,
                base,
                insn.off,
                size,
                write=True,
                value=val,
                value_regno=-1,
                imm_store=True,
            )
            self.save_ptr_type(base.type)
            return
        src = self.read_reg(st, insn.src)
        if mode == op.ATOMIC:
            self.do_atomic(st, insn, base, src, size)
            return
        self.mem_access(
            st, insn.dst, base, insn.off, size, write=True, value=src, value_regno=insn.src
        )
        self.save_ptr_type(base.type)

    def save_ptr_type(self, t: int) -> None:
        """One load/store instruction, one kind of pointer (the kernel's
        ``save_aux_ptr_type``): its context and socket accesses are rewritten for the
        type seen first, so another path reaching it with a different pointer where
        either is such a type is refused."""
        prev = self.aux_ptr.setdefault(self.pc, t)
        if prev != t and (prev in _NO_MIX_TYPES or t in _NO_MIX_TYPES):
            raise self.fail(
                "The same load/store instruction is reached with different kinds of "
                f"pointer ({_REG_TYPE_NAMES.get(prev, prev)} and "
                f"{_REG_TYPE_NAMES.get(t, t)}) on different paths.",
                "same insn cannot be used with different pointers",
            )

    def do_atomic(self, st: State, insn: Instruction, base: Reg, src: Reg, size: int) -> None:
        """An atomic read-modify-write (the kernel's ``check_atomic_rmw``)."""
        aimm = insn.imm
        if aimm == op.CMPXCHG:
            self.read_reg(st, 0)
            if st.cur.regs[0].is_pointer() and self.unpriv:
                raise self.fail("r0: comparing with a pointer leaks it.", "R0 leaks addr into mem")
        if src.is_pointer() and self.unpriv:
            raise self.fail(
                f"r{insn.src}: storing a pointer into memory leaks it.",
                f"R{insn.src} leaks addr into mem",
            )
        if base.type in (T_CTX, PTR_TO_PACKET, PTR_TO_PACKET_META):
            raise self.fail(
                f"Atomic operations on {base.type_name()} memory are not allowed.",
                f"BPF_ATOMIC stores into R{insn.dst} {base.type_name()} is not allowed",
            )
        loaded = self.mem_access(
            st, insn.dst, base, insn.off, size, write=False, value=None, strict_once=True
        )
        if loaded.is_pointer() and self.unpriv:
            raise self.fail(
                "An atomic operation on a stack slot holding a pointer would leak it.",
                f"leaking pointer from stack off {insn.off + base.off}",
            )
        self.save_ptr_type(st.cur.regs[insn.dst].type)
        self.mem_access(
            st,
            insn.dst,
            st.cur.regs[insn.dst],
            insn.off,
            size,
            write=True,
            value=Reg.unknown(),
            value_regno=-1,
        )
        # the old value (a spilled pointer stays a pointer, for a privileged loader)
        old = loaded if loaded.is_pointer() else scalar.load_sized(size, False)
        if aimm == op.CMPXCHG:
            self.set_reg(st, 0, old)
        elif aimm & op.FETCH:
            self.check_dst(insn.src)
            self.set_reg(st, insn.src, old)

    def mem_access(
        self,
        st: State,
        regno: int,
        base: Reg,
        off: int,
        size: int,
        *,
        write: bool,
        value: Reg | None,
        value_regno: int = -1,
        imm_store: bool = False,
        ldsx: bool = False,
        strict_once: bool = False,
    ) -> Reg:
        """Check one load or store through ``base``; returns the loaded value
        (``ldsx``: a sign-extending load; ``strict_once``: alignment is checked whatever
        the program's flags, as for atomics)."""
        t = base.type
        full = off + base.off
        if t != PTR_TO_STACK and size > 1 and (self.strict_align or strict_once):
            self.check_alignment(base, off, size)
        if t == PTR_TO_STACK:
            return self.stack_access(
                st, regno, base, off, size, write, value, value_regno, imm_store
            )
        if (
            write
            and value is not None
            and value.is_pointer()
            and self.unpriv
            and t in (PTR_TO_MAP_VALUE, PTR_TO_MEM, T_CTX, PTR_TO_PACKET)
        ):
            where = {PTR_TO_MAP_VALUE: "map", T_CTX: "ctx"}.get(t, "mem")
            raise self.fail(
                f"r{value_regno}: storing a pointer into {where} memory leaks it.",
                f"R{value_regno} leaks addr into {where}",
            )
        if t == PTR_TO_MAP_VALUE or t == PTR_TO_MAP_KEY:
            if base.maybe_null:
                raise self._bad_type(regno, base)
            m = base.map
            limit = m.value_size if t == PTR_TO_MAP_VALUE else m.key_size
            if t == PTR_TO_MAP_VALUE:
                self.map_access_type(m, off, size, write)
            if write and t == PTR_TO_MAP_KEY:
                raise self.fail(
                    "Writing through a map key pointer is not allowed.",
                    f"R{regno} cannot write into map_key",
                )
            self.region_access(
                regno,
                base,
                full,
                size,
                limit,
                "map value" if t == PTR_TO_MAP_VALUE else "map key",
                f"invalid access to map value, value_size={limit} off={{off}} size={size}",
            )
            if t == PTR_TO_MAP_VALUE and m.spin_lock_off >= 0:
                lo = full + base.smin
                hi = full + base.smax + size
                if lo < m.spin_lock_off + 4 and hi > m.spin_lock_off:
                    raise self.fail(
                        "The bpf_spin_lock in a map value cannot be read or written directly.",
                        "bpf_spin_lock cannot be accessed directly by load/store",
                    )
            if write:
                return Reg.unknown()
            if (
                not write
                and t == PTR_TO_MAP_VALUE
                and m.frozen
                and m.rdonly_prog
                and m.data is not None
                and base.var_off == tnum.ZERO
                and full + size <= len(m.data)
            ):
                v = int.from_bytes(m.data[full : full + size], "little")
                return Reg.const(v)
            return Reg.unknown()
        if t == PTR_TO_MEM:
            if base.maybe_null:
                raise self._bad_type(regno, base)
            if write and base.rdonly:
                raise self.fail(
                    "The memory is read-only.", f"R{regno} cannot write into {base.type_name()}"
                )
            self.region_access(
                regno,
                base,
                full,
                size,
                base.mem_size,
                "memory",
                f"invalid access to memory, mem_size={base.mem_size} off={{off}} size={size}",
            )
            return Reg.unknown()
        if t == T_CTX:
            self.check_ptr_off(regno, base)
            if write and value is not None and value.is_pointer():
                if self.unpriv:
                    raise self.fail(
                        f"r{value_regno}: storing a pointer into the context leaks it.",
                        f"R{value_regno} leaks addr into ctx",
                    )
            acc = ctxinfo.check(self.prog_type, full, size, write, self.unpriv, self.attach_type)
            if acc.ok and ldsx and acc.reg_type != SCALAR:
                acc = ctxinfo.CtxAccess(False)  # a pointer field cannot be sign-extended
            if not acc.ok:
                what = "write" if write else "read"
                raise self.fail(
                    f"The context of a {_ptname(self.prog_type)} program has no "
                    f"{size}-byte field to {what} at offset {full}.",
                    f"invalid bpf_context access off={full} size={size}",
                )
            if write:
                return Reg.unknown()
            if acc.reg_type in SOCKET_TYPES:
                # skb->sk and some others may be NULL: an id of their own for the check
                if acc.reg_type == PTR_TO_SOCK_COMMON or acc.extra.get("null"):
                    return Reg.pointer(acc.reg_type, maybe_null=True, id=self.new_id())
                return Reg.pointer(acc.reg_type)
            if acc.reg_type != SCALAR:
                r = Reg.pointer(acc.reg_type)
                if acc.reg_type in PACKET_TYPES:
                    r.id = 0
                return r
            return Reg.unknown()
        if t == CONST_PTR_TO_MAP:
            return self.map_ptr_access(regno, base, full, size, write)
        if t == PTR_TO_BTF_ID and not base.maybe_null:
            raise self.fail(
                f"r{regno}: reading kernel struct {base.map or ''} through its BTF is not "
                "supported by bpfkit's verifier.",
                f"R{regno} access through ptr_{base.map or ''} is not supported",
            )
        if t == PTR_TO_TP_BUFFER:
            # check_tp_buffer_access: a non-negative constant offset (the attach checks
            # the highest offset against the tracepoint's writable size)
            if full < 0:
                raise self.fail(
                    f"r{regno}: a negative offset ({full}) into the tracepoint buffer.",
                    f"R{regno} invalid tracepoint buffer access: off={full}, size={size}",
                )
            if base.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{regno}: a variable offset into the tracepoint buffer.",
                    f"R{regno} invalid variable buffer offset: off={full}, "
                    f"var_off={tnum.fmt(base.var_off)}",
                )
            return Reg.unknown()
        if t in SOCKET_TYPES and not base.maybe_null:
            tn = base.type_name()
            if write:
                raise self.fail(
                    f"r{regno}: a socket cannot be written.",
                    f"R{regno} cannot write into {tn}",
                )
            check = {
                PTR_TO_SOCK_COMMON: lambda o, n: ctxinfo.sock_common_access(o, n, False),
                PTR_TO_SOCKET: ctxinfo.bpf_sock_access,
                PTR_TO_TCP_SOCK: ctxinfo.tcp_sock_access,
                PTR_TO_XDP_SOCK: ctxinfo.xdp_sock_access,
            }[t]
            if not check(full, size):
                raise self.fail(
                    f"r{regno}: the {tn} has no readable {size}-byte field at offset {full}.",
                    f"R{regno} invalid {tn} access off={full} size={size}",
                )
            return Reg.unknown()
        if t in PACKET_TYPES:
            if write and self.prog_type not in ctxinfo.PKT_WRITE:
                raise self.fail(
                    "This program type cannot write into the packet.", "cannot write into packet"
                )
            if self.prog_type not in ctxinfo.PKT_READ:
                raise self._bad_type(regno, base)
            if base.smin < 0:
                raise self.fail(
                    f"r{regno}: the packet offset may be negative.",
                    f"R{regno} min value is negative, either use unsigned index "
                    "or do a if (index >=0) check.",
                )
            if full < 0 or full + size > base.range:
                raise self.fail(
                    f"r{regno}: a {size}-byte packet access at offset {full} is not proven to "
                    f"be within the packet (checked length {base.range}); compare with "
                    "data_end first.",
                    f"invalid access to packet, off={full} size={size}, R{regno}(id={base.id},"
                    f"off={base.off},r={base.range})\nR{regno} offset is outside of the packet",
                )
            return Reg.unknown()
        raise self._bad_type(regno, base)

    def map_ptr_access(self, regno: int, base: Reg, off: int, size: int, write: bool) -> Reg:
        """A read of the kernel's ``struct bpf_map`` behind a map pointer (the kernel's
        ``check_ptr_to_map_access``), walked in the running kernel's BTF."""
        m = base.map
        tname = kbtf.MAP_STRUCTS.get(m.type)
        sid = kbtf.struct_id(tname) if tname else None
        if sid is None:
            raise self.fail(
                f"r{regno}: reading the fields of map '{m.name}' needs the running kernel's "
                "BTF (/sys/kernel/btf/vmlinux); not supported without it.",
                f"map_ptr access not supported for map type {m.type}",
            )
        if self.unpriv:
            raise self.fail(
                f"r{regno}: reading a map's kernel struct needs CAP_PERFMON.",
                f"'struct {tname}' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN",
            )
        if off < 0:
            raise self.fail(
                f"r{regno}: a negative offset into the map's kernel struct.",
                f"R{regno} is {tname} invalid negative access: off={off}",
            )
        if write:
            raise self.fail(
                f"r{regno}: a map's kernel struct cannot be written.",
                f"only read from {tname} is supported",
            )
        try:
            kind, target = kbtf.struct_walk(kbtf.vmlinux(), sid, off, size)
        except kbtf.StructAccessError as e:
            raise self.fail(
                f"r{regno}: struct {tname} has no readable {size}-byte field at offset {off}.",
                str(e.args[0]),
            ) from None
        if kind == "ptr":
            return Reg.pointer(PTR_TO_BTF_ID, map=kbtf.vmlinux().get(target).name)
        return Reg.unknown()

    def check_ptr_off(self, regno: int, r: Reg, fixed_off_ok: bool = False) -> None:
        """A pointer that must be used unmodified (the context; the kernel's
        ``__check_ptr_off_reg``): no negative, fixed or variable offset."""
        tn = self.reg_name(r)
        if r.off < 0:
            raise self.fail(
                f"r{regno}: the {tn} pointer was moved before its start (offset {r.off}).",
                f"negative offset {tn} ptr R{regno} off={r.off} disallowed",
            )
        if r.off and not fixed_off_ok:
            raise self.fail(
                f"r{regno}: the {tn} pointer was modified (offset {r.off}); use the "
                "original pointer.",
                f"dereference of modified {tn} ptr R{regno} off={r.off} disallowed",
            )
        if r.var_off != tnum.ZERO:
            raise self.fail(
                f"r{regno}: the {tn} pointer has a variable offset.",
                f"variable {tn} access var_off={tnum.fmt(r.var_off)} disallowed",
            )

    def check_alignment(self, base: Reg, off: int, size: int) -> None:
        """Strict alignment (``BPF_F_STRICT_ALIGNMENT``, atomics): the kernel's
        ``check_ptr_alignment``; packet data is assumed to start 2 bytes past an
        aligned address (NET_IP_ALIGN)."""
        t = base.type
        vo = base.var_off
        if t in (PTR_TO_PACKET, PTR_TO_PACKET_META):
            at = tnum.add(vo, tnum.const(2 + base.off + off))
            if not tnum.is_aligned(at, size):
                raise self.fail(
                    f"Misaligned {size}-byte packet access (strict alignment).",
                    f"misaligned packet access off 2+{_tn(vo)}+{base.off}+{off} size {size}",
                )
            return
        desc = {
            PTR_TO_MAP_KEY: "key ",
            PTR_TO_MAP_VALUE: "value ",
            T_CTX: "context ",
            PTR_TO_STACK: "stack ",
            PTR_TO_SOCKET: "sock ",
            PTR_TO_SOCK_COMMON: "sock_common ",
            PTR_TO_TCP_SOCK: "tcp_sock ",
            PTR_TO_XDP_SOCK: "xdp_sock ",
        }.get(t, "")
        at = tnum.add(vo, tnum.const(base.off + off))
        if not tnum.is_aligned(at, size):
            raise self.fail(
                f"Misaligned {size}-byte {desc}access (strict alignment).",
                f"misaligned {desc}access off {_tn(vo)}+{base.off}+{off} size {size}",
            )

    def map_access_type(self, m, off: int, size: int, write: bool) -> None:
        """BPF_F_RDONLY_PROG / BPF_F_WRONLY_PROG (the kernel's ``check_map_access_type``)."""
        if write and m.rdonly_prog:
            raise self.fail(
                f"Map '{m.name}' is read-only for programs (BPF_F_RDONLY_PROG).",
                f"write into map forbidden, value_size={m.value_size} off={off} size={size}",
            )
        if not write and m.wronly_prog:
            raise self.fail(
                f"Map '{m.name}' is write-only for programs (BPF_F_WRONLY_PROG).",
                f"read from map forbidden, value_size={m.value_size} off={off} size={size}",
            )

    def _bad_type(self, regno: int, base: Reg) -> Reject:
        name = self.reg_name(base)
        if base.type == NOT_INIT:
            return self.fail(
                f"Register r{regno} is read before it is written.", f"R{regno} !read_ok"
            )
        if base.maybe_null:
            return self.fail(
                f"r{regno} may be NULL ({name}); check it against 0 before dereferencing it.",
                f"R{regno} invalid mem access '{name}'",
            )
        if base.type == SCALAR:
            return self.fail(
                f"r{regno} is a number, not a pointer; it cannot be dereferenced.",
                f"R{regno} invalid mem access 'scalar'",
            )
        return self.fail(
            f"r{regno} ({name}) cannot be dereferenced.", f"R{regno} invalid mem access '{name}'"
        )

    def region_access(
        self,
        regno: int,
        base: Reg,
        off: int,
        size: int,
        limit: int,
        what: str,
        kfmt: str,
        zero_ok: bool = False,
    ) -> None:
        """Bounds of a map value / memory access with the pointer's variable part."""
        smin = base.smin
        if smin < 0 and (
            smin == -(1 << 63) or smin + off < 0 or not -(1 << 31) <= off + smin < (1 << 31)
        ):
            raise self.fail(
                f"r{regno}: the {what} offset may be negative; check the index "
                "is not negative first.",
                f"R{regno} min value is negative, either use unsigned index or do "
                "a if (index >=0) check.",
            )
        lo = smin + off
        ok_size = size > 0 or (size == 0 and zero_ok)
        if not (lo >= 0 and ok_size and lo + size <= limit):
            raise self.fail(
                f"r{regno}: a {size}-byte access at offset {lo} is outside the "
                f"{what} (size {limit}).",
                kfmt.format(off=lo) + f"\nR{regno} min value is outside of the "
                "allowed memory range",
            )
        if base.umax >= BPF_MAX_VAR_OFF:
            raise self.fail(
                f"r{regno}: the {what} offset is unbounded; bound it with a comparison first.",
                f"R{regno} unbounded memory access, make sure to bounds check any such access",
            )
        hi = base.umax + off
        if not (hi >= 0 and ok_size and hi + size <= limit):
            raise self.fail(
                f"r{regno}: a {size}-byte access at offset up to {hi} can go past "
                f"the end of the {what} (size {limit}).",
                kfmt.format(off=hi) + f"\nR{regno} max value is outside of the "
                "allowed memory range",
            )

    # ------------------------------------------------------------------ stack
    def frame_of(self, st: State, ptr: Reg) -> Frame:
        """The frame a stack pointer points into."""
        return st.frames[ptr.frameno]

    def stack_bounds(
        self, regno: int, ptr: Reg, off: int, size: int, write: bool, what: str = ""
    ) -> tuple[int, int]:
        """(lowest, highest+1) stack offsets the access can touch; checks the 512 bytes."""
        full = ptr.off + off
        rw = "write to" if write else "read from"
        if ptr.var_off == tnum.ZERO:
            lo, hi = full, full + size
            if lo < -MAX_BPF_STACK or hi > 0 or lo > -1:
                raise self.fail(
                    f"r{regno}: a {size}-byte {rw} the stack at offset {full} is "
                    "outside the 512-byte frame.",
                    f"invalid {rw} stack R{regno} off={full} size={size}",
                )
            return lo, hi
        if self.unpriv:
            raise self.fail(
                f"r{regno}: stack access with a variable offset needs privileges.",
                f"R{regno} variable stack access prohibited for !root",
            )
        if ptr.smin <= -(1 << 40) or ptr.smax >= (1 << 40):
            raise self.fail(
                f"r{regno}: stack access with an unbounded variable offset.",
                f"invalid unbounded variable-offset stack R{regno}",
            )
        lo = full + ptr.smin
        hi = full + ptr.smax + size
        if lo < -MAX_BPF_STACK or hi > 0 or lo > -1:
            raise self.fail(
                f"r{regno}: a {size}-byte stack access at variable offset "
                f"[{lo}, {hi - size}] can leave the 512-byte frame.",
                f"invalid variable-offset {rw} stack "
                f"R{regno} var_off={tnum.fmt(ptr.var_off)} off={full} size={size}",
            )
        return lo, hi

    def stack_access(
        self,
        st: State,
        regno: int,
        ptr: Reg,
        off: int,
        size: int,
        write: bool,
        value: Reg | None,
        value_regno: int,
        imm_store: bool,
    ) -> Reg:
        full = ptr.off + off
        # stack accesses must be aligned (the spill tracking relies on it)
        if not tnum.is_aligned(tnum.add(ptr.var_off, tnum.const(full)), size):
            raise self.fail(
                f"r{regno}: misaligned {size}-byte stack access at offset {full}.",
                f"misaligned stack access off {_tn(ptr.var_off)}+{ptr.off}+{off} size {size}",
            )
        lo, hi = self.stack_bounds(regno, ptr, off, size, write)
        frame = self.frame_of(st, ptr)
        if -lo > frame.depth:
            frame.depth = -lo
            sp = frame.subprog
            self.depths[sp] = max(self.depths.get(sp, 0), -lo)
        if ptr.var_off != tnum.ZERO:
            if write:
                for a in range(lo, hi):
                    self._set_byte(frame, a, ST_MISC)
                return Reg.unknown()
            for a in range(lo, hi):
                c = self._byte(frame, a)
                if c == ST_INVALID and not self.priv:
                    raise self.fail(
                        f"r{regno}: the stack byte at {a} may be uninitialised.",
                        f"invalid variable-offset read from stack R{regno}",
                    )
                if c == ST_SPILL and self._slot(frame, a).spilled.is_pointer() and self.unpriv:
                    raise self.fail(
                        "Reading a spilled pointer through a variable offset.",
                        f"R{regno} variable stack read of spilled pointer",
                    )
            return Reg.unknown()
        spi = (-full - 1) // 8
        self.hx = precision.slot_key(ptr.frameno, spi)
        if write:
            self.stack_write(st, frame, spi, full, size, value, value_regno, imm_store, ptr)
            return Reg.unknown()
        return self.stack_read(frame, spi, full, size, regno)

    @staticmethod
    def _slot(frame: Frame, addr: int) -> Slot:
        return frame.stack.get((-addr - 1) // 8, Slot())

    @staticmethod
    def _byte(frame: Frame, addr: int) -> str:
        slot = frame.stack.get((-addr - 1) // 8)
        if slot is None:
            return ST_INVALID
        return slot.types[(-addr - 1) % 8]

    @staticmethod
    def _set_byte(frame: Frame, addr: int, kind: str) -> None:
        spi = (-addr - 1) // 8
        idx = (-addr - 1) % 8
        slot = frame.stack.get(spi)
        types = list(slot.types) if slot else [ST_INVALID] * 8
        if slot is not None and slot.is_spill():
            types = [ST_MISC if c == ST_SPILL else c for c in types]
        types[idx] = kind
        frame.stack[spi] = Slot("".join(types), None)

    def stack_write(
        self,
        st: State,
        frame: Frame,
        spi: int,
        full: int,
        size: int,
        value: Reg | None,
        value_regno: int,
        imm_store: bool,
        ptr: Reg,
    ) -> None:
        old = frame.stack.get(spi)
        aligned_slot = full % 8 == 0
        if (
            old is not None
            and old.is_spill()
            and old.spilled.is_pointer()
            and size != 8
            and self.unpriv
        ):
            raise self.fail(
                "A partial write would corrupt a spilled pointer on the stack.",
                "attempt to corrupt spilled pointer on stack",
            )
        if value is not None and value.is_pointer():
            if size != 8:
                raise self.fail(
                    f"A pointer (r{value_regno}) can only be spilled to the stack "
                    "with an 8-byte store.",
                    "invalid size of register spill",
                )
            if value.type == PTR_TO_STACK and ptr.frameno != len(st.frames) - 1:
                raise self.fail(
                    "A stack pointer cannot be stored into a caller's frame.",
                    "cannot spill pointers to stack into stack frame of the caller",
                )
            frame.stack[spi] = Slot(ST_SPILL * 8, value)
            return
        if aligned_slot and value is not None and value.type == SCALAR and self.priv:
            # spill a scalar (an 8-byte or a narrow aligned spill keeps its value); a
            # value that fits the spill stays linked to its register (the kernel's
            # assign_scalar_id_before_mov: it gets an id first), a wider one does not
            v = value
            fits = value.umax.bit_length() <= 8 * size
            if fits and not value.id and value.var_off.mask and value_regno >= 0:
                v = value.clone()
                v.id = self.new_id()
                self.set_reg(st, value_regno, v)
            if not fits:
                v = value.clone()
                v.id = 0
                scalar.truncate(v, size)
            prev = old.types if old is not None else ST_INVALID * 8
            if old is not None and old.is_spill():
                prev = "".join(ST_MISC if c == ST_SPILL else c for c in prev)
            keep = [c if c in (ST_ZERO, ST_INVALID) else ST_MISC for c in prev[: 8 - size]]
            types = "".join(keep) + ST_SPILL * size
            frame.stack[spi] = Slot(types, v)
            return
        # plain data write
        zero = value is not None and value.is_null_const()
        if zero and value_regno >= 0:
            self.precise(st, value_regno)  # the bytes become known zeros
        kind = ST_ZERO if zero else ST_MISC
        types = list(old.types) if old is not None else [ST_INVALID] * 8
        if old is not None and old.is_spill():
            types = [ST_MISC if c == ST_SPILL else c for c in types]
        slot_idx = -full - 1
        for i in range(size):
            types[(slot_idx - i) % 8] = kind
        frame.stack[spi] = Slot("".join(types), None)

    def stack_read(self, frame: Frame, spi: int, full: int, size: int, regno: int) -> Reg:
        slot = frame.stack.get(spi)
        slot_idx = -full - 1
        if slot is not None and slot.is_spill():
            ssize = slot.spill_size()
            sp = slot.spilled
            if size == 8 and ssize == 8:
                return sp
            if sp.type != SCALAR:
                raise self.fail(
                    "Reading part of a spilled pointer from the stack is not allowed.",
                    "invalid size of register fill",
                )
            if size <= ssize and full % 8 == 0:
                r = sp.clone()
                if sp.umax.bit_length() > 8 * size:
                    r.id = 0  # a narrowing fill breaks the link
                scalar.truncate(r, size)
                return r
        zeros = spills = 0
        for i in range(size):
            c = slot.types[(slot_idx - i) % 8] if slot is not None else ST_INVALID
            if c == ST_ZERO:
                zeros += 1
            elif c == ST_SPILL:
                spills += 1
            elif c == ST_MISC:
                continue
            elif c == ST_INVALID and self.priv:
                continue
            else:
                raise self.fail(
                    f"Reading {size} bytes at stack offset {full}: byte {i} was "
                    "never written (uninitialised stack).",
                    f"invalid read from stack off {full}+{i} size {size}",
                )
        if zeros == size:
            return Reg.const(0)
        if spills == size and slot.spilled is not None and slot.spilled.is_null_const():
            return Reg.const(0)  # part of a spilled zero
        return Reg.unknown()

    def stack_range_init(
        self, st: State, regno: int, ptr: Reg, size: int, write: bool, zero_ok: bool, what: str
    ) -> None:
        """A helper reads or writes ``size`` bytes of stack at ``ptr``."""
        if size == 0:
            if not zero_ok:
                raise self.fail(f"r{regno}: zero-sized {what} access.", "invalid zero-sized read")
            # no byte is touched, but the pointer must still point into the frame
            self.stack_bounds(regno, ptr, 0, 0, write, what="helper")
            return
        lo, hi = self.stack_bounds(regno, ptr, 0, size, write, what="helper")
        frame = self.frame_of(st, ptr)
        if -lo > frame.depth:
            frame.depth = -lo
            self.depths[frame.subprog] = max(self.depths.get(frame.subprog, 0), -lo)
        for a in range(lo, hi):
            c = self._byte(frame, a)
            if write:
                continue
            if c in (ST_MISC, ST_ZERO):
                continue
            if c == ST_SPILL:
                sp = self._slot(frame, a).spilled
                if sp.type == SCALAR or self.priv:
                    continue
                raise self.fail(
                    f"r{regno}: the helper would read a spilled pointer from the stack.",
                    f"invalid indirect read from stack R{regno}",
                )
            if c == ST_INVALID and self.priv:
                continue
            raise self.fail(
                f"r{regno}: the helper reads stack bytes that were never written (offset {a}).",
                f"invalid indirect read from stack R{regno} off {a}+0 size {size}",
            )
        if write:
            for a in range(lo, hi):
                self._set_byte(frame, a, ST_MISC)

    # ------------------------------------------------------------------ legacy packet loads
    def do_ld_abs(self, st: State, insn: Instruction, pc: int) -> int:
        """A legacy packet load; returns the next pc. It ends the program with 0 when the
        packet is too short: in a subprogram, that early return is a path of its own."""
        if self.prog_type not in ctxinfo.LD_ABS_TYPES:
            raise self.fail(
                "Legacy packet loads (ld_abs/ld_ind) are not allowed for this program type.",
                "BPF_LD_[ABS|IND] instructions not allowed for this program type",
            )
        if any(f.callback for f in st.frames[1:]):
            raise self.fail(
                "Legacy packet loads (ld_abs/ld_ind) are not allowed in a callback.",
                "cannot use BPF_LD_[ABS|IND] within callback",
            )
        if st.refs:
            raise self.fail(
                "ld_abs/ld_ind while holding a reference would leak it.",
                "BPF_LD_[ABS|IND] would lead to reference leak",
            )
        if st.lock is not None:
            raise self.fail(
                "ld_abs/ld_ind inside a spin-locked region.",
                "BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region",
            )
        r6 = self.read_reg(st, 6)
        if r6.type != T_CTX:
            raise self.fail(
                "ld_abs/ld_ind need r6 to hold the context (skb) pointer.",
                "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
            )
        if (insn.opcode & 0xE0) == op.IND:
            self.read_reg(st, insn.src)
        for r in CALLER_SAVED:
            st.cur.regs[r] = NOT_INIT_REG
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        st.cur.regs[0] = scalar.load_sized(size, False)
        if len(st.frames) == 1:
            return pc + 1
        # the load continues on a path of its own; this one returns 0 to the caller
        other = st.copy()
        other.hist.append(pc)
        self.push(other, pc + 1)
        st.cur.regs[0] = Reg.const(0)
        nxt = self.do_exit(st)
        assert nxt is not None
        return nxt

    def _spilled_at(self, st: State, r: Reg) -> bool:
        """The stack slot ``r`` points at holds a spilled register (not zero bytes)."""
        slot = self.frame_of(st, r).stack.get((-r.off - 1) // 8)
        return slot is not None and slot.is_spill()

    def const_stack_value(self, st: State, r: Reg, size: int) -> int | None:
        """The known value of ``size`` stack bytes at ``r``, if the state knows it."""
        if r.var_off != tnum.ZERO:
            return None
        full = r.off
        if full % 8 + size > 8 and full % 8 != 0 and (full % 8) + size > 8:
            return None
        frame = self.frame_of(st, r)
        slot = frame.stack.get((-full - 1) // 8)
        if slot is None:
            return None
        if slot.is_spill() and full % 8 == 0 and slot.spill_size() == size:
            sp = slot.spilled
            if sp.type == SCALAR and not (sp.var_off.mask & ((1 << (8 * size)) - 1)):
                return sp.var_off.value & ((1 << (8 * size)) - 1)
            return None
        if all(self._byte(frame, a) == ST_ZERO for a in range(full, full + size)):
            return 0
        return None


def _tn(t: Tnum) -> str:
    """A tnum as the kernel's alignment messages print it (a constant as a number)."""
    return str(s64(t.value)) if not t.mask else tnum.fmt(t)
