"""The checker's calls: helpers and their arguments, bpf-to-bpf calls, global
functions, callbacks, tail calls (mixed into :class:`~.check.Checker`)."""

from __future__ import annotations

import os

from ..isa.instruction import Instruction
from ..uapi.enums import HELPER_IDS, HELPER_NAMES, MapType
from . import ctxinfo, load, precision, scalar, tnum
from .cfg import Reject
from .check_common import CALLER_SAVED, _ptname
from .helpers_proto import (
    ANYTHING,
    ARG_BTF_SOCK_COMMON,
    ARG_SOCK_COMMON,
    CONST_ALLOC_SIZE_OR_ZERO,
    CONST_MAP_PTR,
    CONST_SIZE,
    CONST_SIZE_OR_ZERO,
    PTR_TO_CONST_STR,
    PTR_TO_CTX,
    PTR_TO_CTX_OR_NULL,
    PTR_TO_LONG,
    PTR_TO_MAP_VALUE_OR_NULL,
    PTR_TO_MEM_OR_NULL,
    PTR_TO_RINGBUF_MEM,
    PTR_TO_SPIN_LOCK,
    PTR_TO_STACK_OR_NULL,
    PTR_TO_U32_OUT,
    PTR_TO_UNINIT_MAP_VALUE,
    PTR_TO_UNINIT_MEM,
    PTR_TO_UNINIT_MEM_OR_NULL,
    RET_MAP_VALUE,
    RET_MAP_VALUE_OR_NULL,
    RET_RINGBUF_MEM_OR_NULL,
    RET_SOCK_COMMON_OR_NULL,
    RET_SOCKET_OR_NULL,
    RET_TCP_SOCK_OR_NULL,
    RET_VOID,
    Proto,
    helper_allowed,
    map_func_error,
    proto_for,
)
from .helpers_proto import PTR_TO_FUNC as ARG_FUNC
from .helpers_proto import PTR_TO_MAP_KEY as ARG_MAP_KEY
from .helpers_proto import PTR_TO_MAP_VALUE as ARG_MAP_VALUE
from .helpers_proto import PTR_TO_MEM as ARG_MEM
from .state import (
    CONST_PTR_TO_MAP,
    NOT_INIT,
    NOT_INIT_REG,
    PACKET_TYPES,
    PTR_TO_FUNC,
    PTR_TO_MAP_KEY,
    PTR_TO_MAP_VALUE,
    PTR_TO_MEM,
    PTR_TO_PACKET,
    PTR_TO_PACKET_END,
    PTR_TO_PACKET_META,
    PTR_TO_SOCK_COMMON,
    PTR_TO_SOCKET,
    PTR_TO_STACK,
    PTR_TO_TCP_SOCK,
    SCALAR,
    SOCKET_TYPES,
    Frame,
    Ref,
    Reg,
    State,
)
from .state import PTR_TO_CTX as T_CTX

BPF_MAX_VAR_SIZ = 1 << 29
MAX_CALL_FRAMES = 8
MAX_ERRNO = 4095
#: helpers whose prototype says ``might_sleep`` (copy_from_user, copy_from_user_task,
#: ima_inode_hash, ima_file_hash, sys_bpf, btf_find_by_name_kind, sys_close)
_MIGHT_SLEEP = frozenset({148, 191, 161, 193, 166, 167, 168})


def _possible_cpus() -> int:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        n = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            n = max(n, int(hi or lo) + 1)
        return n or 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


NR_CPUS = _possible_cpus()


class CallsMixin:
    """Helper calls and their arguments, bpf-to-bpf and global-function calls, callbacks."""

    # ------------------------------------------------------------ global functions
    def verify_global(self, entry: int) -> None:
        """Verify a global function on its own, its arguments as its BTF prototype says
        (the kernel's ``do_check_subprogs``): scalars unknown, pointers maybe NULL."""
        g = self.global_funcs[entry]
        if g.error:
            self.pc = entry
            raise self.fail(g.error, g.error)
        f = Frame(0, self.prog.subprog_of(entry))
        for i, arg in enumerate(g.args, start=1):
            if arg[0] == "ctx":
                f.regs[i] = Reg.pointer(T_CTX)
            elif arg[0] == "mem":
                nonnull = len(arg) > 2 and arg[2]  # __arg_nonnull
                f.regs[i] = Reg.pointer(
                    PTR_TO_MEM,
                    maybe_null=not nonnull,
                    id=0 if nonnull else self.new_id(),
                    mem_size=arg[1],
                )
            else:
                f.regs[i] = Reg.unknown()
        f.regs[10] = Reg.pointer(PTR_TO_STACK, frameno=0)
        st = State()
        st.frames = [f]
        self.log.text_line(f"Validating {g.name}() func#{f.subprog}...")
        self.in_global = entry
        try:
            self.explore_all(st, entry)
        finally:
            self.in_global = None

    def call_global(self, st: State, target: int, pc: int) -> int:
        """A call of a global function: check the arguments against its prototype; the
        result is an unknown number (the callee is verified on its own)."""
        g = self.global_funcs[target]
        try:
            self._global_args(st, g)
        except Reject as e:
            e.kmsg += (
                f"\nCaller passes invalid args into func#{self.prog.subprog_of(target)} "
                f"('{g.name}')"
            )
            raise
        regs = st.cur.regs
        if self.prog.subprog_of(target) in self.changes_pkt:
            self._map_regs(
                st, lambda r: Reg.unknown() if r.type in PACKET_TYPES + (PTR_TO_PACKET_END,) else r
            )
            regs = st.cur.regs
        for r in CALLER_SAVED:
            regs[r] = NOT_INIT_REG
        regs[0] = Reg.unknown()
        if target not in self.global_queue:
            self.global_queue.append(target)
        return pc + 1

    def _global_args(self, st: State, g) -> None:
        """The arguments of a global function's call against its prototype (the
        kernel's ``btf_check_func_arg_match``)."""
        regs = st.cur.regs
        for i, arg in enumerate(g.args, start=1):
            r = regs[i]
            if r.type == NOT_INIT:
                raise self._bad_type(i, r)
            if arg[0] == "scalar":
                if r.type != SCALAR:
                    raise self.fail(
                        f"r{i}: argument {i} of {g.name}() is a number; got a "
                        f"{self.reg_name(r)} pointer.",
                        f"R{i} is not a scalar",
                    )
            elif arg[0] == "ctx":
                if r.type != T_CTX or r.off or r.var_off != tnum.ZERO:
                    raise self.fail(
                        f"r{i}: argument {i} of {g.name}() must be the context pointer.",
                        f"arg#{i - 1} expects pointer to ctx",
                    )
            elif len(arg) > 2 and arg[2] and (r.is_null_const() or r.maybe_null):
                raise self.fail(
                    f"r{i}: argument {i} of {g.name}() must not be NULL (__arg_nonnull).",
                    f"arg#{i - 1} is expected to be non-NULL",
                )
            elif not r.is_null_const():
                for write in (False, True):
                    self.check_mem_arg(
                        st,
                        i,
                        r,
                        arg[1],
                        write=write,
                        zero_ok=False,
                        name=f"{g.name}()",
                        allow_null=True,
                        what=f"argument {i} of {g.name}()",
                    )

    # ------------------------------------------------------------------ calls
    def do_local_call(self, st: State, insn: Instruction, pc: int) -> int:
        target = pc + 1 + insn.imm
        if target in self.global_funcs:
            if st.lock is not None:
                raise self.fail(
                    "Function calls are not allowed while holding a spin lock.",
                    "function calls are not allowed while holding a lock",
                )
            return self.call_global(st, target, pc)
        if len(st.frames) >= MAX_CALL_FRAMES:
            raise self.fail(
                f"The call stack is deeper than {MAX_CALL_FRAMES} frames.",
                f"the call stack of {len(st.frames) + 1} frames is too deep !",
            )
        if st.lock is not None:
            raise self.fail(
                "Function calls are not allowed while holding a spin lock.",
                "function calls are not allowed while holding a lock",
            )
        caller = st.cur
        callee = Frame(len(st.frames), self.prog.subprog_of(target), callsite=pc)
        for r in CALLER_SAVED:
            callee.regs[r] = caller.regs[r]
        callee.regs[10] = Reg.pointer(PTR_TO_STACK, frameno=callee.frameno)
        st.frames.append(callee)
        self.hx = precision.CALL
        return target

    def do_helper_call(self, st: State, insn: Instruction, pc: int) -> int:
        hid = insn.imm
        proto = proto_for(hid, self.prog_type, self.unpriv, self.attach_type)
        name = HELPER_NAMES.get(hid) or _EXTRA_HELPERS.get(hid) or f"unknown#{hid}"
        if proto is None:
            if not 0 < hid <= _MAX_HELPER:
                raise self.fail(f"Helper {hid} does not exist.", f"invalid func unknown#{hid}")
            if not helper_allowed(hid, self.prog_type, self.unpriv, self.attach_type):
                raise self.fail(
                    f"A {_ptname(self.prog_type)} program cannot call helper bpf_{name}.",
                    f"program of this type cannot use helper bpf_{name}#{hid}",
                )
            if hid in _MIGHT_SLEEP and not self.prog_flags & load.BPF_F_SLEEPABLE:
                raise self.fail(
                    f"bpf_{name} may sleep: only a sleepable program can call it.",
                    "helper call might sleep in a non-sleepable prog",
                )
            # the kernel allows it; bpfkit does not model its arguments
            raise self.fail(
                f"Helper bpf_{name} ({hid}) is not supported by bpfkit's verifier (the "
                "kernel allows it here; its arguments are not modelled).",
                f"helper bpf_{name}#{hid} is not supported",
            )
        if proto.gpl_only and not self.gpl:
            raise self.fail(
                f"bpf_{name} is GPL-only; the program's license is not GPL-compatible.",
                "cannot call GPL-restricted function from non-GPL compatible program",
            )
        if st.lock is not None and proto.name not in ("spin_unlock",):
            raise self.fail(
                "Helper calls are not allowed while holding a spin lock.",
                "function calls are not allowed while holding a lock",
            )
        regs = st.cur.regs
        meta = _Meta()
        for i, kind in enumerate(proto.args):
            self.check_arg(st, proto, i + 1, kind, meta)
        # map compatibility
        if meta.map is not None:
            why = map_func_error(meta.map.type, proto.name, self.prog_type, self.attach_type)
            if why:
                raise self.fail(
                    f"bpf_{name} cannot be used with map '{meta.map.name}' of type "
                    f"{_mtname(meta.map.type)}.",
                    why,
                )
        # side effects
        if proto.name == "spin_lock":
            if st.lock is not None:
                raise self.fail(
                    "Taking a second spin lock while holding one.",
                    "Locking two bpf_spin_locks are not allowed",
                )
            st.lock = meta.lock
        elif proto.name == "spin_unlock":
            if st.lock is None:
                raise self.fail(
                    "bpf_spin_unlock without holding the lock.",
                    "bpf_spin_unlock without taking a lock",
                )
            if st.lock != meta.lock:
                raise self.fail(
                    "bpf_spin_unlock of a different lock than the one held.",
                    "bpf_spin_unlock of different lock",
                )
            st.lock = None
        if proto.name == "get_local_storage":
            flags = regs[2]
            if flags.type == SCALAR:
                self.precise(st, 2)
            if not flags.is_null_const():
                raise self.fail(
                    "bpf_get_local_storage's flags must be 0.",
                    "get_local_storage() doesn't support non-zero flags",
                )
        if hid == _TAIL_CALL and st.refs:
            raise self.fail(
                "A tail call while holding a reference would leak it.",
                "tail_call would lead to reference leak",
            )
        if proto.releases:
            self.release_ref(st, meta.ref_obj_id)
            regs = st.cur.regs  # _map_regs may have copied the frame's registers
        if proto.callback:
            return self.enter_callback(st, proto, meta, pc)
        for r in CALLER_SAVED:
            regs[r] = NOT_INIT_REG
        if proto.pkt_changing:
            self._map_regs(
                st, lambda r: Reg.unknown() if r.type in PACKET_TYPES + (PTR_TO_PACKET_END,) else r
            )
        st.cur.regs[0] = self.ret_value(st, proto, meta, pc)  # _map_regs may copy regs
        return pc + 1

    def ret_value(self, st: State, proto: Proto, meta: _Meta, pc: int) -> Reg:
        ret = proto.ret
        if ret == RET_VOID:
            return NOT_INIT_REG
        if ret == RET_MAP_VALUE_OR_NULL:
            m = meta.map
            if (
                proto.name == "map_lookup_elem"
                and m.type in _ARRAYS
                and meta.const_key is not None
                and meta.const_key < m.max_entries
            ):
                # an array lookup with a constant in-bounds key cannot fail; a value with
                # a spin lock still gets an id (the lock's identity, as in the kernel)
                return Reg.pointer(
                    PTR_TO_MAP_VALUE, map=m, id=self.new_id() if m.spin_lock_off >= 0 else 0
                )
            if proto.name == "map_lookup_elem" and m.type in (MapType.SOCKMAP, MapType.SOCKHASH):
                # a socket, referenced (is_acquire_function); a socket once NULL-checked
                rid = self.acquire_id()
                st.refs = st.refs + [Ref(rid, pc)]
                return Reg.pointer(PTR_TO_MAP_VALUE, map=m, maybe_null=True, id=rid, ref_obj_id=rid)
            r = Reg.pointer(PTR_TO_MAP_VALUE, map=m, maybe_null=True, id=self.new_id())
            return r
        if ret == RET_MAP_VALUE:  # bpf_get_local_storage: never NULL
            return Reg.pointer(PTR_TO_MAP_VALUE, map=meta.map)
        if ret in _SOCK_RETS:
            rtype = _SOCK_RETS[ret]
            if proto.acquires:
                rid = self.acquire_id()
                st.refs = st.refs + [Ref(rid, pc)]
                return Reg.pointer(rtype, maybe_null=True, id=rid, ref_obj_id=rid)
            ref = meta.ref_obj_id if proto.ptr_cast else 0
            return Reg.pointer(rtype, maybe_null=True, id=self.new_id(), ref_obj_id=ref)
        if ret == RET_RINGBUF_MEM_OR_NULL:
            rid = self.acquire_id()
            st.refs = st.refs + [Ref(rid, pc)]
            return Reg.pointer(
                PTR_TO_MEM,
                ringbuf=True,
                maybe_null=True,
                id=rid,
                ref_obj_id=rid,
                mem_size=meta.alloc_size,
            )
        r = Reg.unknown()
        if proto.ret_range == "cpu":
            r.umin, r.umax, r.smin, r.smax = 0, NR_CPUS - 1, 0, NR_CPUS - 1
            r.u32max, r.s32min, r.s32max = NR_CPUS - 1, 0, NR_CPUS - 1
            scalar.sync(r)
        elif proto.ret_range == "str" and meta.msize_max is not None:
            r.smin, r.s32min = -MAX_ERRNO, -MAX_ERRNO
            r.smax = r.s32max = meta.msize_max
            scalar.sync(r)
        return r

    def release_ref(self, st: State, ref_id: int) -> None:
        """Release a reference: every register holding it becomes invalid."""
        if not ref_id or not any(x.id == ref_id for x in st.refs):
            raise self.fail(
                "Releasing memory that is not an acquired reference.",
                "R1 must be referenced when passed to release function",
            )
        st.refs = [x for x in st.refs if x.id != ref_id]
        self._map_regs(st, lambda r: Reg.unknown() if r.ref_obj_id == ref_id else r)

    def enter_callback(self, st: State, proto: Proto, meta: _Meta, pc: int) -> int:
        """bpf_loop / bpf_for_each_map_elem: explore "not called" and "called"."""
        regs = st.cur.regs
        sub = meta.func_subprog
        start = self.prog.subprogs[sub]
        if len(st.frames) >= MAX_CALL_FRAMES:
            raise self.fail(
                f"The call stack is deeper than {MAX_CALL_FRAMES} frames.",
                f"the call stack of {len(st.frames) + 1} frames is too deep !",
            )
        callee = Frame(len(st.frames), sub, callsite=pc)
        callee.callback = proto.id
        callee.regs[10] = Reg.pointer(PTR_TO_STACK, frameno=callee.frameno)
        if proto.callback == "loop":
            idx = Reg.unknown()
            idx.umax = idx.u32max = 0xFFFFFFFF
            scalar.sync(idx)
            callee.regs[1] = idx
            callee.regs[2] = regs[3]
        else:
            m = meta.map
            callee.regs[1] = Reg.pointer(CONST_PTR_TO_MAP, map=m)
            callee.regs[2] = Reg.pointer(PTR_TO_MAP_KEY, map=m)
            callee.regs[3] = Reg.pointer(PTR_TO_MAP_VALUE, map=m)
            callee.regs[4] = regs[3]
        caller = st.cur
        if proto.callback == "loop":
            # bpf_loop: the iteration count decides how many rounds are explored
            # (precise); a round is queued while fewer than its maximum are
            self.precise(st, 1)
            push = caller.cb_depth < regs[1].umax
        else:
            push = True
        if push:
            called = st.copy()
            called.frames[-1].cb_depth += 1
            called.frames.append(callee)
            called.hist.append((pc, precision.CB_ENTER))
            self.push(called, start)
        caller.cb_depth = 0
        for r in CALLER_SAVED:
            regs[r] = NOT_INIT_REG
        regs[0] = Reg.unknown()
        return pc + 1

    # ------------------------------------------------------------------ helper args
    def check_arg(self, st: State, proto: Proto, argno: int, kind: str, meta: _Meta) -> None:
        regs = st.cur.regs
        r = regs[argno]
        name = f"bpf_{proto.name}"
        if r.type == NOT_INIT:
            raise self.fail(
                f"Argument {argno} (r{argno}) of {name} is not initialised.", f"R{argno} !read_ok"
            )
        if r.type in (PTR_TO_PACKET, PTR_TO_PACKET_META) and kind != ANYTHING:
            if not proto.pkt_access:
                raise self.fail(
                    f"r{argno}: {name} cannot take a packet pointer.",
                    "helper access to the packet is not allowed",
                )
        if kind in (ARG_SOCK_COMMON, ARG_BTF_SOCK_COMMON) or (
            kind == ARG_MAP_VALUE
            and meta.map is not None
            and meta.map.type in (MapType.SOCKMAP, MapType.SOCKHASH)
        ):
            # any kind of socket, not NULL (a sockmap's "value" is a socket)
            if r.type not in SOCKET_TYPES or r.maybe_null:
                expected = "sock_common, sock, tcp_sock, xdp_sock"
                if kind != ARG_SOCK_COMMON:
                    expected += ", ptr_, trusted_ptr_"
                raise self._arg_type(argno, name, r, expected)
            if proto.releases and not r.ref_obj_id:
                raise self.fail(
                    f"r{argno}: {name} releases a socket reference; this one was not "
                    "acquired (only lookups acquire one).",
                    f"R{argno} must be referenced when passed to release function",
                )
            meta.ref_obj_id = r.ref_obj_id
            return
        if kind == PTR_TO_MAP_VALUE_OR_NULL:
            if r.is_null_const():
                return
            kind = ARG_MAP_VALUE
        if kind == PTR_TO_CTX_OR_NULL:
            if r.is_null_const():
                return
            kind = PTR_TO_CTX
        if kind == PTR_TO_U32_OUT:
            self._result_arg(st, argno, r, 4, name)
            return
        if kind == ANYTHING:
            if r.is_pointer() and self.unpriv:
                raise self.fail(
                    f"r{argno}: passing a pointer to {name} as a number leaks it.",
                    f"R{argno} leaks addr into helper function",
                )
            if proto.callback == "loop" and argno == 4 and r.type == SCALAR:
                pass
            return
        if kind == CONST_MAP_PTR:
            if r.type != CONST_PTR_TO_MAP:
                raise self._arg_type(argno, name, r, "map_ptr")
            meta.map = r.map
            return
        if kind == PTR_TO_CTX:
            if r.type != T_CTX:
                raise self._arg_type(argno, name, r, "ctx")
            self.check_ptr_off(argno, r)
            return
        if kind in (ARG_MAP_KEY, ARG_MAP_VALUE, PTR_TO_UNINIT_MAP_VALUE):
            if meta.map is None:
                raise self.fail(
                    f"{name}: a map argument must come first.", "invalid map_ptr to access map->key"
                )
            size = meta.map.key_size if kind == ARG_MAP_KEY else meta.map.value_size
            # a constant key can make an array lookup non-null (the kernel's
            # get_constant_map_key: bpf_capable loaders, array maps only); the value is
            # relied on, so a spilled constant becomes precise — only then, as in the kernel
            if (
                kind == ARG_MAP_KEY
                and r.type == PTR_TO_STACK
                and self.priv
                and meta.map.type in _ARRAYS
            ):
                meta.const_key = self.const_stack_value(st, r, size)
                if meta.const_key is not None and self._spilled_at(st, r):
                    self.precise_stack(st, r.frameno, r.off, r.off + size)
            self.check_mem_arg(
                st,
                argno,
                r,
                size,
                write=kind == PTR_TO_UNINIT_MAP_VALUE,
                zero_ok=False,
                name=name,
                allow_null=False,
                what="key" if kind == ARG_MAP_KEY else "value",
            )
            return
        if kind in (ARG_MEM, PTR_TO_MEM_OR_NULL, PTR_TO_UNINIT_MEM, PTR_TO_UNINIT_MEM_OR_NULL):
            if r.type == SCALAR:
                self.precise(st, argno)
            if kind in (PTR_TO_MEM_OR_NULL, PTR_TO_UNINIT_MEM_OR_NULL) and r.is_null_const():
                meta.mem_regno = argno
                meta.mem_null = True
                return
            if (
                r.type == SCALAR
                or r.maybe_null
                or r.type in (T_CTX, CONST_PTR_TO_MAP, PTR_TO_PACKET_END, PTR_TO_FUNC)
            ):
                raise self._arg_type(
                    argno,
                    name,
                    r,
                    "fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
                )
            meta.mem_regno = argno
            meta.mem_write = kind in (PTR_TO_UNINIT_MEM, PTR_TO_UNINIT_MEM_OR_NULL)
            meta.mem_null = False
            return
        if kind in (CONST_SIZE, CONST_SIZE_OR_ZERO):
            if r.type != SCALAR:
                raise self._arg_type(argno, name, r, "scalar")
            self.precise(st, argno)
            zero_ok = kind == CONST_SIZE_OR_ZERO
            if r.smin < 0:
                raise self.fail(
                    f"r{argno}: the size passed to {name} may be negative.",
                    f"R{argno} min value is negative, either use unsigned or 'var &= const'",
                )
            if r.umin == 0 and not zero_ok:
                raise self.fail(
                    f"r{argno}: the size passed to {name} may be zero.",
                    f"R{argno} invalid zero-sized read: u64=[{r.umin},{r.umax}]",
                )
            if r.umax >= BPF_MAX_VAR_SIZ:
                raise self.fail(
                    f"r{argno}: the size passed to {name} is unbounded; bound it "
                    "with a comparison first.",
                    f"R{argno} unbounded memory access, use 'var &= const' or 'if (var < const)'",
                )
            meta.msize_max = r.umax
            mr = meta.mem_regno
            if mr and meta.mem_null and r.umax > 0:
                # NULL is a valid buffer only when the size is known to be 0
                raise self.fail(
                    f"r{mr}: NULL is passed to {name} with a size that may not be 0.",
                    f"R{mr} type=scalar expected=fp",
                )
            if mr and not meta.mem_null:
                self.check_mem_arg(
                    st,
                    mr,
                    regs[mr],
                    r.umax,
                    write=meta.mem_write,
                    zero_ok=zero_ok,
                    name=name,
                    allow_null=False,
                    what="memory",
                )
            return
        if kind == CONST_ALLOC_SIZE_OR_ZERO:
            if r.type == SCALAR:
                self.precise(st, argno)
            if not r.is_const():
                raise self.fail(
                    f"r{argno}: the size passed to {name} must be a known constant.",
                    f"R{argno} is not a known constant'",
                )
            meta.alloc_size = r.value
            return
        if kind == PTR_TO_RINGBUF_MEM:
            if r.type != PTR_TO_MEM or not r.ringbuf or r.maybe_null:
                raise self._arg_type(argno, name, r, "ringbuf_mem")
            if r.off or r.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{argno}: {name} needs the pointer returned by "
                    "bpf_ringbuf_reserve, without an offset.",
                    f"R{argno} must have zero offset when passed to release func "
                    "or trusted arg to kfunc",
                )
            meta.ref_obj_id = r.ref_obj_id
            return
        if kind == ARG_FUNC:
            if r.type != PTR_TO_FUNC:
                raise self._arg_type(argno, name, r, "func")
            meta.func_subprog = r.subprog
            return
        if kind == PTR_TO_STACK_OR_NULL:
            if r.type == SCALAR:
                self.precise(st, argno)
            if r.is_null_const():
                return
            if r.type != PTR_TO_STACK:
                raise self._arg_type(argno, name, r, "fp")
            return
        if kind == PTR_TO_SPIN_LOCK:
            if r.type != PTR_TO_MAP_VALUE or r.maybe_null:
                raise self._arg_type(argno, name, r, "map_value")
            if r.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{argno}: the spin lock must be at a constant offset.",
                    f"R{argno} doesn't have constant offset. bpf_spin_lock has to "
                    "be at the constant offset",
                )
            m = r.map
            if m.spin_lock_off < 0:
                raise self.fail(
                    f"Map '{m.name}' has no bpf_spin_lock in its value.",
                    f"map '{m.name}' has no valid bpf_spin_lock",
                )
            if r.off != m.spin_lock_off:
                raise self.fail(
                    f"Offset {r.off} is not the bpf_spin_lock of map '{m.name}' "
                    f"(at {m.spin_lock_off}).",
                    f"off {r.off} doesn't point to 'struct bpf_spin_lock' that is "
                    f"at {m.spin_lock_off}",
                )
            meta.lock = (id(m), r.id)
            return
        if kind == PTR_TO_CONST_STR:
            if r.type != PTR_TO_MAP_VALUE or r.maybe_null:
                raise self._arg_type(argno, name, r, "map_value")
            m = r.map
            if not (m.rdonly_prog and m.frozen) or m.data is None:
                raise self.fail(
                    f"r{argno}: the format string must be in a read-only map.",
                    f"R{argno} does not point to a readonly map'",
                )
            if r.var_off != tnum.ZERO:
                raise self.fail(
                    f"r{argno}: the string must be at a constant offset.",
                    f"R{argno} is not a constant address'",
                )
            if b"\0" not in bytes(m.data[r.off :]):
                raise self.fail(
                    "The constant string is not NUL-terminated.", "string is not zero-terminated"
                )
            return
        if kind == PTR_TO_LONG:
            self._result_arg(st, argno, r, 8, name)
            return
        raise self.fail(f"Unsupported argument kind {kind}.", f"unsupported arg {kind}")

    def _result_arg(self, st: State, argno: int, r: Reg, size: int, name: str) -> None:
        """An argument the helper writes a ``size``-byte result through: writable,
        non-NULL memory, aligned to its size (``MEM_ALIGNED``)."""
        self.check_mem_arg(
            st,
            argno,
            r,
            size,
            write=True,
            zero_ok=False,
            name=name,
            allow_null=False,
            what="result",
        )
        if r.type != SCALAR:
            self.check_alignment(r, 0, size)

    def _arg_type(self, argno: int, name: str, r: Reg, expected: str) -> Reject:
        tn = self.reg_name(r)
        return self.fail(
            f"Argument {argno} of {name} has the wrong type: {tn}, expected {expected}.",
            f"R{argno} type={tn} expected={expected}",
        )

    def check_mem_arg(
        self,
        st: State,
        regno: int,
        r: Reg,
        size: int,
        *,
        write: bool,
        zero_ok: bool,
        name: str,
        allow_null: bool,
        what: str,
    ) -> None:
        """A helper accesses ``size`` bytes at ``r``."""
        t = r.type
        if r.maybe_null:
            raise self._arg_type(regno, name, r, "fp, pkt, map_value, mem")
        if t == PTR_TO_STACK:
            self.stack_range_init(st, regno, r, size, write, zero_ok, what)
            return
        if size == 0 and zero_ok:
            return
        if t in PACKET_TYPES:
            if (
                self.prog_type not in ctxinfo.PKT_READ
                or write
                and self.prog_type not in ctxinfo.PKT_WRITE
            ):
                raise self._arg_type(regno, name, r, "fp, map_value, mem")
            self.mem_access(st, regno, r, 0, size, write=False, value=None)
            return
        if t == PTR_TO_MAP_VALUE:
            self.map_access_type(r.map, r.off, size, write)
            self.region_access(
                regno,
                r,
                r.off,
                size,
                r.map.value_size,
                "map value",
                f"invalid access to map value, value_size={r.map.value_size} "
                f"off={{off}} size={size}",
                zero_ok,
            )
            return
        if t == PTR_TO_MAP_KEY:
            self.region_access(
                regno,
                r,
                r.off,
                size,
                r.map.key_size,
                "map key",
                f"invalid access to map key, key_size={r.map.key_size} off={{off}} size={size}",
                zero_ok,
            )
            return
        if t == PTR_TO_MEM:
            if write and r.rdonly:
                raise self._arg_type(regno, name, r, "fp, map_value, mem")
            self.region_access(
                regno,
                r,
                r.off,
                size,
                r.mem_size,
                "memory",
                f"invalid access to memory, mem_size={r.mem_size} off={{off}} size={size}",
                zero_ok,
            )
            return
        if t == T_CTX and self.prog_type in ctxinfo.RAW_CTX_TYPES:
            # a context the kernel does not rewrite (kprobe, tracepoint, raw_tp, syscall):
            # memory whose last byte must be accessible (check_helper_mem_access)
            if size == 0:
                if zero_ok:
                    return
                raise self.fail(
                    f"r{regno}: a zero-sized access to the context.",
                    f"R{regno} invalid zero-sized context access",
                )
            self.mem_access(
                st, regno, r, size - 1, 1, write=write, value=Reg.unknown() if write else None
            )
            return
        raise self._arg_type(regno, name, r, "fp")


class _Meta:
    __slots__ = (
        "map",
        "mem_regno",
        "mem_write",
        "mem_null",
        "msize_max",
        "alloc_size",
        "ref_obj_id",
        "func_subprog",
        "lock",
        "const_key",
    )

    def __init__(self) -> None:
        self.map = None
        self.mem_regno = 0
        self.mem_write = False
        self.mem_null = False
        self.msize_max = None
        self.alloc_size = 0
        self.ref_obj_id = 0
        self.func_subprog = 0
        self.lock = None
        self.const_key: int | None = None


_ARRAYS = (MapType.ARRAY, MapType.PERCPU_ARRAY)
_MAX_HELPER = 211  # bpf_cgrp_storage_delete: the last helper id (6.12 and 6.18)
_EXTRA_HELPERS = {210: "cgrp_storage_get", 211: "cgrp_storage_delete"}
_TAIL_CALL = 12
_SOCK_RETS = {
    RET_SOCKET_OR_NULL: PTR_TO_SOCKET,
    RET_SOCK_COMMON_OR_NULL: PTR_TO_SOCK_COMMON,
    RET_TCP_SOCK_OR_NULL: PTR_TO_TCP_SOCK,
}
#: helpers after which packet pointers are stale (the kernel's
#: ``bpf_helper_changes_pkt_data``; a tail-called program could call any of them)
_PKT_CHANGING_IDS = frozenset(
    HELPER_IDS[n]
    for n in (
        "clone_redirect",
        "l3_csum_replace",
        "l4_csum_replace",
        "lwt_push_encap",
        "lwt_seg6_action",
        "lwt_seg6_adjust_srh",
        "lwt_seg6_store_bytes",
        "msg_pop_data",
        "msg_pull_data",
        "msg_push_data",
        "skb_adjust_room",
        "skb_change_head",
        "skb_change_proto",
        "skb_change_tail",
        "skb_pull_data",
        "skb_store_bytes",
        "skb_vlan_pop",
        "skb_vlan_push",
        "store_hdr_opt",
        "xdp_adjust_head",
        "xdp_adjust_meta",
        "xdp_adjust_tail",
        "tail_call",
    )
)
_KNOWN_TYPES = set(ctxinfo.RULES) | set(ctxinfo.RULES_ATTACH)


def _mtname(mt: int) -> str:
    try:
        return MapType(mt).name.lower()
    except ValueError:
        return str(mt)
