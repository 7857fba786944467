"""Running a classic filter over a whole capture file: natively, or in Python.

``filter_capture`` is what ``bpfkit filter run`` does. Its verdicts are libpcap's — those
of ``tcpdump -r FILE EXPR`` — so a program runs with libpcap's user-space rules: a load
outside the captured bytes rejects the packet, ``len`` is the length on the wire, a shift
by ``X >= 32`` gives 0, a division by ``X == 0`` rejects, and there are no ancillary
(``SKF_AD_*``) loads.

Engines:

* ``jit`` — the classic program and the loop over a pcap file's records become one LLVM
  function (``A``, ``X`` and ``M[]`` in registers), run over the file read in 256 KiB
  chunks (constant memory, any file size). Each record's header is checked against the
  chunk's end before its packet is filtered, and each load against the record's captured
  length, so a hostile file cannot make it read outside the buffer. Matching records are
  copied into an output buffer for ``-w``.
  pcapng files are walked in Python and each packet filtered by the same native code.
* ``interp`` — Python: bpfkit's classic interpreter
  (:func:`bpfkit.classic.interp.compile_classic`) with ``semantics="libpcap"``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ..classic import insn as c
from ..classic.insn import LOOP_SLACK, SockFilter
from ..errors import CaptureError, ClassicError
from .capfile import (
    PCAP_MAGIC_NS,
    PCAP_MAGIC_US,
    PCAPNG_IDB,
    PCAPNG_SHB,
    CaptureReader,
    PcapWriter,
)
from .output import safe_output

M32 = 0xFFFFFFFF
OUT_CHUNK = 256 << 10
IN_CHUNK = 256 << 10  # small enough that a chunk is still in the cache when filtered
MAX_SCAN_RECORD = 16 << 20

# state slots and stop reasons of the native scan
ST_POS, ST_PACKETS, ST_OUTLEN, ST_REASON = range(4)
R_END, R_FULL, R_TRUNC_HDR, R_TRUNC_DATA, R_CORRUPT, R_OTHER = range(6)
MAX_SCAN_BLOCK = 256 << 10  # pcapng blocks above this are handed to the Python reader
# pcapng interface table (two i64 per interface): flags, snapshot length
IF_NATIVE, IF_NS = 1, 2


# -- validation -------------------------------------------------------------------------


def validate(prog: Sequence[SockFilter]) -> None:
    """libpcap's rules for a runnable program (``bpf_validate``), plus shifts by a
    constant below 32; raises ClassicError naming the instruction."""
    n = len(prog)
    if n == 0:
        raise ClassicError("empty program")
    for pc, ins in enumerate(prog):
        code, k = ins.code, ins.k
        cls = code & 0x07
        if cls in (c.LD, c.LDX):
            mode = code & 0xE0
            size = code & 0x18
            if cls == c.LD and mode in (c.ABS, c.IND):
                if size not in (c.W, c.H, c.B):
                    raise ClassicError(f"unknown load size in {code:#06x}", pc)
            elif mode == c.MEM:
                if k >= c.MEMWORDS:
                    raise ClassicError(f"scratch index {k} out of range", pc)
            elif mode == c.MSH and cls == c.LDX:
                if size != c.B:
                    raise ClassicError(f"unknown opcode {code:#06x}", pc)
            elif mode not in (c.IMM, c.LEN):
                raise ClassicError(f"unknown opcode {code:#06x}", pc)
            if code & ~0xFF:
                raise ClassicError(f"unknown opcode {code:#06x}", pc)
        elif cls in (c.ST, c.STX):
            if code not in (c.ST, c.STX):
                raise ClassicError(f"unknown opcode {code:#06x}", pc)
            if k >= c.MEMWORDS:
                raise ClassicError(f"scratch index {k} out of range", pc)
        elif cls == c.ALU:
            op = code & 0xF0
            if op not in (
                c.ADD,
                c.SUB,
                c.MUL,
                c.DIV,
                c.OR,
                c.AND,
                c.LSH,
                c.RSH,
                c.NEG,
                c.MOD,
                c.XOR,
            ):
                raise ClassicError(f"unknown ALU operation in {code:#06x}", pc)
            if code & ~0xFF or (op == c.NEG and code & c.X):
                raise ClassicError(f"unknown opcode {code:#06x}", pc)
            if not code & c.X:
                if op in (c.DIV, c.MOD) and k == 0:
                    raise ClassicError("division by constant 0", pc)
                if op in (c.LSH, c.RSH) and k >= 32:
                    raise ClassicError(f"shift by {k} (more than 31)", pc)
        elif cls == c.JMP:
            op = code & 0xF0
            if code & ~0xFF or op not in (c.JA, c.JEQ, c.JGT, c.JGE, c.JSET):
                raise ClassicError(f"unknown jump in {code:#06x}", pc)
            if op == c.JA:
                if code != c.JMP | c.JA:
                    raise ClassicError(f"unknown opcode {code:#06x}", pc)
                # bpf_validate's unsigned sum: a backward jump (protochain's loop) wraps
                # around into the program and passes, as it does for tcpdump -r
                if (pc + 1 + k) & M32 >= n:
                    raise ClassicError(f"jump to {pc + 1 + k} is outside the program", pc)
            elif pc + 1 + ins.jt >= n or pc + 1 + ins.jf >= n:
                raise ClassicError("conditional jump outside the program", pc)
        elif cls == c.RET:
            if (code & 0x18) not in (c.K, c.X, c.RVAL_A) or code & ~0x1F:
                raise ClassicError(f"unknown return in {code:#06x}", pc)
        elif cls == c.MISC:
            if code not in (c.MISC | c.TAX, c.MISC | c.TXA):
                raise ClassicError(f"unknown opcode {code:#06x}", pc)
    if (prog[-1].code & 0x07) != c.RET:
        raise ClassicError("program does not end with a return", n - 1)


# -- the Python engine ------------------------------------------------------------------


def python_matcher(prog: Sequence[SockFilter]):
    """A ``(data, wirelen) -> bool`` verdict function with libpcap's semantics: bpfkit's
    classic interpreter with ``semantics="libpcap"``."""
    from ..classic.interp import compile_classic

    run = compile_classic(prog, semantics="libpcap").ret

    def match(data: bytes, wirelen: int) -> bool:
        return run(data, wirelen) != 0

    return match


# -- the native engine ------------------------------------------------------------------

_SIZES = {c.W: (4, "i32"), c.H: (2, "i16"), c.B: (1, "i8")}
_CMP = {c.JEQ: "eq", c.JGT: "ugt", c.JGE: "uge"}
_ALU = {c.ADD: "add", c.SUB: "sub", c.MUL: "mul", c.AND: "and", c.OR: "or", c.XOR: "xor"}


class _IR:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def emit(self, line: str) -> None:
        self.lines.append("  " + line)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")


def _lower_filter(prog: Sequence[SockFilter]) -> str:
    """``i1 @bpfkit_pcap_match(ptr data, i64 caplen, i32 wirelen)``: the program, inlined
    into the scan loop (libpcap's rules; every load checked against ``caplen``)."""
    ir = _IR()
    ir.lines.append(
        "define internal i1 @bpfkit_pcap_match(ptr %data, i64 %caplen, i32 %wirelen) "
        "alwaysinline nounwind {"
    )
    ir.label("entry")
    ir.emit("%A = alloca i32")
    ir.emit("%X = alloca i32")
    ir.emit("%M = alloca [16 x i32]")
    ir.emit("%LOOPS = alloca i64")  # backward jumps left: the captured length + slack
    ir.emit(f"%loops0 = add i64 %caplen, {LOOP_SLACK}")
    ir.emit("store i64 %loops0, ptr %LOOPS")
    ir.emit("store i32 0, ptr %A")
    ir.emit("store i32 0, ptr %X")

    def mem_slot(i: int) -> str:
        p = ir.tmp()
        ir.emit(f"{p} = getelementptr [16 x i32], ptr %M, i64 0, i64 {i}")
        return p

    def operands(code: int, k: int) -> tuple[str, str]:
        """A, and X or the constant ``k`` (as a signed i32 literal)."""
        a = ir.tmp()
        ir.emit(f"{a} = load i32, ptr %A")
        if code & c.X:
            s = ir.tmp()
            ir.emit(f"{s} = load i32, ptr %X")
        else:
            s = str(k if k < 0x80000000 else k - (1 << 32))
        return a, s

    for i in range(c.MEMWORDS):
        ir.emit(f"store i32 0, ptr {mem_slot(i)}")
    ir.emit("br label %i0")

    def load_packet(off64: str, size_code: int, dest: str, next_label: str) -> None:
        size, ty = _SIZES[size_code]
        end = ir.tmp()
        ir.emit(f"{end} = add i64 {off64}, {size}")
        ok = ir.tmp()
        ir.emit(f"{ok} = icmp ule i64 {end}, %caplen")
        lbl = f"ld{ir.n}"
        ir.emit(f"br i1 {ok}, label %{lbl}, label %reject")
        ir.label(lbl)
        p = ir.tmp()
        ir.emit(f"{p} = getelementptr i8, ptr %data, i64 {off64}")
        v = ir.tmp()
        ir.emit(f"{v} = load {ty}, ptr {p}, align 1")
        if size > 1:
            sw = ir.tmp()
            ir.emit(f"{sw} = call {ty} @llvm.bswap.{ty}({ty} {v})")
            v = sw
        if size < 4:
            z = ir.tmp()
            ir.emit(f"{z} = zext {ty} {v} to i32")
            v = z
        ir.emit(f"store i32 {v}, ptr {dest}")
        ir.emit(f"br label %{next_label}")

    n = len(prog)
    for pc, ins in enumerate(prog):
        code, k = ins.code, ins.k
        cls = code & 0x07
        nxt = f"i{pc + 1}" if pc + 1 < n else "reject"
        ir.label(f"i{pc}")
        if cls == c.RET:
            rv = code & 0x18
            if rv == c.K:
                ir.emit(f"br label %{'accept' if k else 'reject'}")
            else:
                v = ir.tmp()
                ir.emit(f"{v} = load i32, ptr {'%A' if rv == c.RVAL_A else '%X'}")
                t = ir.tmp()
                ir.emit(f"{t} = icmp ne i32 {v}, 0")
                ir.emit(f"br i1 {t}, label %accept, label %reject")
        elif cls in (c.LD, c.LDX):
            dest = "%A" if cls == c.LD else "%X"
            mode = code & 0xE0
            if mode == c.IMM:
                ir.emit(f"store i32 {k}, ptr {dest}")
                ir.emit(f"br label %{nxt}")
            elif mode == c.LEN:
                ir.emit(f"store i32 %wirelen, ptr {dest}")
                ir.emit(f"br label %{nxt}")
            elif mode == c.MEM:
                p = mem_slot(k)
                v = ir.tmp()
                ir.emit(f"{v} = load i32, ptr {p}")
                ir.emit(f"store i32 {v}, ptr {dest}")
                ir.emit(f"br label %{nxt}")
            elif mode == c.MSH:
                ok = ir.tmp()
                ir.emit(f"{ok} = icmp ult i64 {k}, %caplen")
                lbl = f"msh{pc}"
                ir.emit(f"br i1 {ok}, label %{lbl}, label %reject")
                ir.label(lbl)
                p = ir.tmp()
                ir.emit(f"{p} = getelementptr i8, ptr %data, i64 {k}")
                b = ir.tmp()
                ir.emit(f"{b} = load i8, ptr {p}")
                z = ir.tmp()
                ir.emit(f"{z} = zext i8 {b} to i32")
                m = ir.tmp()
                ir.emit(f"{m} = and i32 {z}, 15")
                s = ir.tmp()
                ir.emit(f"{s} = shl i32 {m}, 2")
                ir.emit(f"store i32 {s}, ptr %X")
                ir.emit(f"br label %{nxt}")
            elif mode == c.ABS:
                load_packet(str(k), code & 0x18, dest, nxt)
            else:  # IND
                xv = ir.tmp()
                ir.emit(f"{xv} = load i32, ptr %X")
                x64 = ir.tmp()
                ir.emit(f"{x64} = zext i32 {xv} to i64")
                off = ir.tmp()
                ir.emit(f"{off} = add i64 {x64}, {k}")
                load_packet(off, code & 0x18, dest, nxt)
        elif cls in (c.ST, c.STX):
            v = ir.tmp()
            ir.emit(f"{v} = load i32, ptr {'%A' if cls == c.ST else '%X'}")
            ir.emit(f"store i32 {v}, ptr {mem_slot(k)}")
            ir.emit(f"br label %{nxt}")
        elif cls == c.ALU:
            op = code & 0xF0
            a, s = operands(code, k)
            r = ir.tmp()
            if op in _ALU:
                ir.emit(f"{r} = {_ALU[op]} i32 {a}, {s}")
            elif op == c.NEG:
                ir.emit(f"{r} = sub i32 0, {a}")
            elif op in (c.DIV, c.MOD):
                if code & c.X:
                    z = ir.tmp()
                    ir.emit(f"{z} = icmp eq i32 {s}, 0")
                    lbl = f"div{pc}"
                    ir.emit(f"br i1 {z}, label %reject, label %{lbl}")
                    ir.label(lbl)
                ir.emit(f"{r} = {'udiv' if op == c.DIV else 'urem'} i32 {a}, {s}")
            else:  # shifts
                inst = "shl" if op == c.LSH else "lshr"
                if code & c.X:
                    m = ir.tmp()
                    ir.emit(f"{m} = and i32 {s}, 31")
                    sh = ir.tmp()
                    ir.emit(f"{sh} = {inst} i32 {a}, {m}")
                    lt = ir.tmp()
                    ir.emit(f"{lt} = icmp ult i32 {s}, 32")
                    ir.emit(f"{r} = select i1 {lt}, i32 {sh}, i32 0")
                else:
                    ir.emit(f"{r} = {inst} i32 {a}, {k}")
            ir.emit(f"store i32 {r}, ptr %A")
            ir.emit(f"br label %{nxt}")
        elif cls == c.JMP:
            op = code & 0xF0
            if op == c.JA:
                t = (pc + 1 + k) & M32  # validated: inside the program
                if t <= pc:  # a backward jump (protochain): count it, stop a runaway loop
                    left = ir.tmp()
                    ir.emit(f"{left} = load i64, ptr %LOOPS")
                    dec = ir.tmp()
                    ir.emit(f"{dec} = sub i64 {left}, 1")
                    ir.emit(f"store i64 {dec}, ptr %LOOPS")
                    over = ir.tmp()
                    ir.emit(f"{over} = icmp eq i64 {left}, 0")
                    ir.emit(f"br i1 {over}, label %reject, label %i{t}")
                else:
                    ir.emit(f"br label %i{t}")
                continue
            a, s = operands(code, k)
            t = ir.tmp()
            if op == c.JSET:
                m = ir.tmp()
                ir.emit(f"{m} = and i32 {a}, {s}")
                ir.emit(f"{t} = icmp ne i32 {m}, 0")
            else:
                ir.emit(f"{t} = icmp {_CMP[op]} i32 {a}, {s}")
            ir.emit(f"br i1 {t}, label %i{pc + 1 + ins.jt}, label %i{pc + 1 + ins.jf}")
        else:  # MISC: TAX or TXA
            src, dst = ("%A", "%X") if (code & 0xF8) == c.TAX else ("%X", "%A")
            v = ir.tmp()
            ir.emit(f"{v} = load i32, ptr {src}")
            ir.emit(f"store i32 {v}, ptr {dst}")
            ir.emit(f"br label %{nxt}")
    ir.label("accept")
    ir.emit("ret i1 1")
    ir.label("reject")
    ir.emit("ret i1 0")
    ir.lines.append("}")
    return "\n".join(ir.lines)


def _module_head(prog: Sequence[SockFilter]) -> list[str]:
    """What both scan modules start with: the intrinsics, the filter and the one-packet
    entry ``i32 @bpfkit_pcap_one(ptr data, i64 caplen, i32 wirelen)``."""
    return [
        "declare i32 @llvm.bswap.i32(i32)",
        "declare i16 @llvm.bswap.i16(i16)",
        _lower_filter(prog),
        "define i32 @bpfkit_pcap_one(ptr %data, i64 %caplen, i32 %wirelen) nounwind {",
        "entry:",
        "  %m = call i1 @bpfkit_pcap_match(ptr %data, i64 %caplen, i32 %wirelen)",
        "  %r = zext i1 %m to i32",
        "  ret i32 %r",
        "}",
    ]


def _exits(*blocks: tuple[str, int]) -> list[str]:
    """The scan loop's exit blocks, one per ``(label, R_* reason)``: each stores the
    position, the records seen, the bytes written and the reason in ``state``, returns
    the number matched; then the function's closing brace."""
    lines: list[str] = []
    for name, reason in blocks:
        lines += [
            f"{name}:",
            "  store i64 %pos, ptr %state",
            f"  %{name}.p1 = getelementptr i64, ptr %state, i64 {ST_PACKETS}",
            f"  store i64 %npk, ptr %{name}.p1",
            f"  %{name}.p2 = getelementptr i64, ptr %state, i64 {ST_OUTLEN}",
            f"  store i64 %olen, ptr %{name}.p2",
            f"  %{name}.p3 = getelementptr i64, ptr %state, i64 {ST_REASON}",
            f"  store i64 {reason}, ptr %{name}.p3",
            "  ret i64 %nm",
        ]
    lines.append("}")
    return lines


def _field(ir_lines: list[str], name: str, hp: str, off: int, swap: bool) -> str:
    ir_lines.append(f"  %{name}.p = getelementptr i8, ptr {hp}, i64 {off}")
    ir_lines.append(f"  %{name}.r = load i32, ptr %{name}.p, align 1")
    if swap:
        ir_lines.append(f"  %{name} = call i32 @llvm.bswap.i32(i32 %{name}.r)")
    else:
        ir_lines.append(f"  %{name} = or i32 %{name}.r, 0")
    return f"%{name}"


def build_ir(prog: Sequence[SockFilter], swap: bool, limit: int) -> str:
    """The module: the filter, a one-packet entry and the pcap record loop.

    ``i64 @bpfkit_pcap_scan(ptr base, i64 pos, i64 end, ptr out, i64 outcap, ptr state)``
    filters records from ``pos`` until ``end`` (or until the next record would not fit
    in ``out``), copies matching records to ``out`` when it is not null, and returns the
    number matched; ``state`` receives the next position, the records seen, the bytes
    written and why it stopped (``R_*``)."""
    lines = [
        *_module_head(prog),
        "define i64 @bpfkit_pcap_scan(ptr %base, i64 %pos0, i64 %end, ptr %out, i64 %outcap, "
        "ptr %state, ptr %memcpy) nounwind {",
        "entry:",
        "  %hasout = icmp ne ptr %out, null",
        "  br label %loop",
        "loop:",
        "  %pos = phi i64 [%pos0, %entry], [%rend, %next]",
        "  %npk = phi i64 [0, %entry], [%npk1, %next]",
        "  %nm = phi i64 [0, %entry], [%nm2, %next]",
        "  %olen = phi i64 [0, %entry], [%olen2, %next]",
        "  %rem = sub i64 %end, %pos",
        "  %eof = icmp eq i64 %rem, 0",
        "  br i1 %eof, label %x_end, label %chk",
        "chk:",
        "  %short = icmp ult i64 %rem, 16",
        "  br i1 %short, label %x_trunc_hdr, label %hdr",
        "hdr:",
        "  %hp = getelementptr i8, ptr %base, i64 %pos",
    ]
    cl = _field(lines, "cl", "%hp", 8, swap)
    wl = _field(lines, "wl", "%hp", 12, swap)
    lines += [
        f"  %cl64 = zext i32 {cl} to i64",
        f"  %big = icmp ugt i64 %cl64, {limit}",
        "  br i1 %big, label %x_corrupt, label %hdr2",
        "hdr2:",
        "  %rlen = add i64 %cl64, 16",
        "  %short2 = icmp ult i64 %rem, %rlen",
        "  br i1 %short2, label %x_trunc_data, label %room",
        "room:",
        "  %need = add i64 %olen, %rlen",
        "  %full = icmp ugt i64 %need, %outcap",
        "  %stop = and i1 %hasout, %full",
        "  br i1 %stop, label %x_full, label %run",
        "run:",
        "  %data = getelementptr i8, ptr %hp, i64 16",
        f"  %m = call i1 @bpfkit_pcap_match(ptr %data, i64 %cl64, i32 {wl})",
        "  %nm1 = zext i1 %m to i64",
        "  %nm2 = add i64 %nm, %nm1",
        "  %docopy = and i1 %m, %hasout",
        "  br i1 %docopy, label %copy, label %next",
        "copy:",
        "  %dst = getelementptr i8, ptr %out, i64 %olen",
        "  %cp = call ptr %memcpy(ptr %dst, ptr %hp, i64 %rlen)",
        "  br label %next",
        "next:",
        "  %olen2 = phi i64 [%olen, %run], [%need, %copy]",
        "  %rend = add i64 %pos, %rlen",
        "  %npk1 = add i64 %npk, 1",
        "  br label %loop",
    ]
    lines += _exits(
        ("x_end", R_END),
        ("x_trunc_hdr", R_TRUNC_HDR),
        ("x_corrupt", R_CORRUPT),
        ("x_trunc_data", R_TRUNC_DATA),
        ("x_full", R_FULL),
    )
    return "\n".join(lines)


def _ld32(lines: list[str], name: str, ptr: str, off: str) -> str:
    """A 32-bit field of the current pcapng section's byte order (``%swap`` at run time)."""
    lines += [
        f"  %{name}.p = getelementptr i8, ptr {ptr}, i64 {off}",
        f"  %{name}.r = load i32, ptr %{name}.p, align 1",
        f"  %{name}.s = call i32 @llvm.bswap.i32(i32 %{name}.r)",
        f"  %{name} = select i1 %swap, i32 %{name}.s, i32 %{name}.r",
    ]
    return f"%{name}"


def build_ir_pcapng(prog: Sequence[SockFilter], limit: int = MAX_SCAN_BLOCK) -> str:
    """The module for pcapng: the filter, a one-packet entry and the block loop.

    ``i64 @bpfkit_pcapng_scan(ptr base, i64 pos, i64 end, ptr out, i64 outcap, ptr state,
    ptr memcpy, ptr iftab, i64 niface, i64 swap, i64 outns)`` walks the blocks in
    ``base[pos:end]`` (the section's byte order swapped when ``swap``): Enhanced and Simple
    Packet Blocks of interfaces marked native in ``iftab`` are filtered here, and written
    to ``out`` as pcap records (timestamps in ns when ``outns``, else µs); blocks of types
    that carry no packets and no state are skipped. Anything else — a section or
    interface block, a packet the table does not cover, a block longer than ``limit`` or
    malformed in any way — stops the loop there (``R_OTHER``) for the Python reader, which
    knows every rule and every error message. Each block's length is checked against the
    buffer and its trailer before a byte of it is read, each packet's against its block."""
    le = sys.byteorder == "little"

    def out32(name: str, val: str, at: int) -> list[str]:
        v = val
        res = []
        if not le:
            res.append(f"  %{name}.sw = call i32 @llvm.bswap.i32(i32 {val})")
            v = f"%{name}.sw"
        res += [
            f"  %{name}.p = getelementptr i8, ptr %dst, i64 {at}",
            f"  store i32 {v}, ptr %{name}.p, align 1",
        ]
        return res

    L = [
        *_module_head(prog),
        "define i64 @bpfkit_pcapng_scan(ptr %base, i64 %pos0, i64 %end, ptr %out, i64 %outcap, "
        "ptr %state, ptr %memcpy, ptr %iftab, i64 %niface, i64 %swap64, i64 %outns64) nounwind {",
        "entry:",
        "  %hasout = icmp ne ptr %out, null",
        "  %swap = icmp ne i64 %swap64, 0",
        "  %outns = icmp ne i64 %outns64, 0",
        "  br label %loop",
        "loop:",
        "  %pos = phi i64 [%pos0, %entry], [%bend, %skip], [%bend, %counted]",
        "  %npk = phi i64 [0, %entry], [%npk, %skip], [%npk1, %counted]",
        "  %nm = phi i64 [0, %entry], [%nm, %skip], [%nm2, %counted]",
        "  %olen = phi i64 [0, %entry], [%olen, %skip], [%olen2, %counted]",
        "  %rem = sub i64 %end, %pos",
        "  %eof = icmp eq i64 %rem, 0",
        "  br i1 %eof, label %x_end, label %chk",
        "chk:",
        "  %short = icmp ult i64 %rem, 12",
        "  br i1 %short, label %x_trunc_hdr, label %hdr",
        "hdr:",
        "  %hp = getelementptr i8, ptr %base, i64 %pos",
    ]
    bt = _ld32(L, "bt", "%hp", "0")
    bl = _ld32(L, "bl", "%hp", "4")
    L += [
        f"  %bl64 = zext i32 {bl} to i64",
        "  %b1 = icmp ult i64 %bl64, 12",
        "  %b2m = and i64 %bl64, 3",
        "  %b2 = icmp ne i64 %b2m, 0",
        f"  %b3 = icmp ugt i64 %bl64, {limit}",
        "  %b12 = or i1 %b1, %b2",
        "  %bad = or i1 %b12, %b3",
        "  br i1 %bad, label %x_other, label %hdr2",
        "hdr2:",
        "  %short2 = icmp ult i64 %rem, %bl64",
        "  br i1 %short2, label %x_trunc_data, label %trl",
        "trl:",
        "  %tpos = sub i64 %bl64, 4",
    ]
    tr = _ld32(L, "tr", "%hp", "%tpos")
    L += [
        f"  %trok = icmp eq i32 {tr}, {bl}",
        "  br i1 %trok, label %kind, label %x_other",
        "kind:",
        "  %bend = add i64 %pos, %bl64",
        f"  switch i32 {bt}, label %skip [i32 6, label %epb  i32 3, label %spb  "
        "i32 168627466, label %x_other  i32 1, label %x_other  i32 2, label %x_other]",
        "skip:",
        "  br label %loop",
        # -- Enhanced Packet Block: iface, ts high, ts low, caplen, wirelen, data
        "epb:",
        "  %e1 = icmp ult i64 %bl64, 32",
        "  br i1 %e1, label %x_other, label %epb2",
        "epb2:",
    ]
    ifc = _ld32(L, "ifc", "%hp", "8")
    L += [
        f"  %ifc64 = zext i32 {ifc} to i64",
        "  %e2 = icmp uge i64 %ifc64, %niface",
        "  br i1 %e2, label %x_other, label %epb3",
        "epb3:",
        "  %fi = shl i64 %ifc64, 1",
        "  %fp = getelementptr i64, ptr %iftab, i64 %fi",
        "  %fl = load i64, ptr %fp",
        "  %fnat = and i64 %fl, 1",
        "  %e3 = icmp eq i64 %fnat, 0",
        "  br i1 %e3, label %x_other, label %epb4",
        "epb4:",
    ]
    th = _ld32(L, "th", "%hp", "12")
    tl = _ld32(L, "tl", "%hp", "16")
    ecl = _ld32(L, "ecl", "%hp", "20")
    ewl = _ld32(L, "ewl", "%hp", "24")
    L += [
        f"  %ecl64 = zext i32 {ecl} to i64",
        "  %eroom = sub i64 %bl64, 32",
        "  %e4 = icmp ugt i64 %ecl64, %eroom",
        "  br i1 %e4, label %x_other, label %epb5",
        "epb5:",
        f"  %th64 = zext i32 {th} to i64",
        f"  %tl64 = zext i32 {tl} to i64",
        "  %thsh = shl i64 %th64, 32",
        "  %ets = or i64 %thsh, %tl64",
        "  %edata = getelementptr i8, ptr %hp, i64 28",
        "  %ens = and i64 %fl, 2",
        "  br label %pkt",
        # -- Simple Packet Block: wirelen, data (cut to the first interface's snaplen)
        "spb:",
        "  %s0 = icmp eq i64 %niface, 0",
        "  br i1 %s0, label %x_other, label %spb2",
        "spb2:",
        "  %sfl = load i64, ptr %iftab",
        "  %snat = and i64 %sfl, 1",
        "  %s1 = icmp eq i64 %snat, 0",
        "  br i1 %s1, label %x_other, label %spb3",
        "spb3:",
        "  %ssp = getelementptr i64, ptr %iftab, i64 1",
        "  %snap = load i64, ptr %ssp",
    ]
    swl = _ld32(L, "swl", "%hp", "8")
    L += [
        f"  %swl64 = zext i32 {swl} to i64",
        "  %snap0 = icmp eq i64 %snap, 0",
        "  %snapx = select i1 %snap0, i64 %swl64, i64 %snap",
        "  %sbody = sub i64 %bl64, 16",
        "  %c1 = icmp ult i64 %swl64, %snapx",
        "  %m1 = select i1 %c1, i64 %swl64, i64 %snapx",
        "  %c2 = icmp ult i64 %m1, %sbody",
        "  %scl64 = select i1 %c2, i64 %m1, i64 %sbody",
        "  %sdata = getelementptr i8, ptr %hp, i64 12",
        "  br label %pkt",
        # -- a packet: room in the output first (a full buffer stops before the packet)
        "pkt:",
        "  %data = phi ptr [%edata, %epb5], [%sdata, %spb3]",
        "  %cl64 = phi i64 [%ecl64, %epb5], [%scl64, %spb3]",
        f"  %wl = phi i32 [{ewl}, %epb5], [{swl}, %spb3]",
        "  %ts = phi i64 [%ets, %epb5], [0, %spb3]",
        "  %tns = phi i64 [%ens, %epb5], [0, %spb3]",
        "  %rlen = add i64 %cl64, 16",
        "  %need = add i64 %olen, %rlen",
        "  %full = icmp ugt i64 %need, %outcap",
        "  %stop = and i1 %hasout, %full",
        "  br i1 %stop, label %x_full, label %run",
        "run:",
        "  %m = call i1 @bpfkit_pcap_match(ptr %data, i64 %cl64, i32 %wl)",
        "  %nm1 = zext i1 %m to i64",
        "  %nm2 = add i64 %nm, %nm1",
        "  %npk1 = add i64 %npk, 1",
        "  %docopy = and i1 %m, %hasout",
        "  br i1 %docopy, label %copy, label %counted",
        # a pcap record: seconds, fraction (µs or ns), caplen, wirelen — as PcapWriter
        "copy:",
        "  %isns = icmp ne i64 %tns, 0",
        "  %unit = select i1 %isns, i64 1000000000, i64 1000000",
        "  %sec = udiv i64 %ts, %unit",
        "  %rm = urem i64 %ts, %unit",
        "  %rm_us = udiv i64 %rm, 1000",
        "  %rm_ns = mul i64 %rm, 1000",
        "  %fr_ns = select i1 %isns, i64 %rm, i64 %rm_ns",
        "  %fr_us = select i1 %isns, i64 %rm_us, i64 %rm",
        "  %frac = select i1 %outns, i64 %fr_ns, i64 %fr_us",
        "  %sec32 = trunc i64 %sec to i32",
        "  %frac32 = trunc i64 %frac to i32",
        "  %cl32 = trunc i64 %cl64 to i32",
        "  %dst = getelementptr i8, ptr %out, i64 %olen",
    ]
    L += out32("o0", "%sec32", 0)
    L += out32("o1", "%frac32", 4)
    L += out32("o2", "%cl32", 8)
    L += out32("o3", "%wl", 12)
    L += [
        "  %dd = getelementptr i8, ptr %dst, i64 16",
        "  %cp = call ptr %memcpy(ptr %dd, ptr %data, i64 %cl64)",
        "  br label %counted",
        "counted:",
        "  %olen2 = phi i64 [%olen, %run], [%need, %copy]",
        "  br label %loop",
    ]
    L += _exits(
        ("x_end", R_END),
        ("x_trunc_hdr", R_TRUNC_HDR),
        ("x_trunc_data", R_TRUNC_DATA),
        ("x_full", R_FULL),
        ("x_other", R_OTHER),
    )
    return "\n".join(L)


# (base, pos, end, out, outcap, state, memcpy) -> matched; pcapng adds (iftab, niface,
# swap, outns)
_SCAN_ARGS = (
    ctypes.c_void_p,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_void_p,
    ctypes.c_int64,
    ctypes.c_void_p,
    ctypes.c_void_p,
)
_SCAN_FN = ctypes.CFUNCTYPE(ctypes.c_int64, *_SCAN_ARGS)
# The scan copies matching records with the C library's memcpy, passed in by address so
# that the machine code needs no relocation (and can be cached, see codecache).
_MEMCPY = ctypes.cast(ctypes.CDLL(None).memcpy, ctypes.c_void_p).value
_ONE_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_char_p, ctypes.c_int64, ctypes.c_uint32)
_NG_SCAN_FN = ctypes.CFUNCTYPE(
    ctypes.c_int64, *_SCAN_ARGS, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64
)


@dataclass
class NativeFilter:
    """A compiled program: ``scan`` over pcap records, ``one`` for a single packet."""

    module: object
    scan_fn: object
    one: object
    compile_ns: int
    cached: bool = False
    fmt: str = "pcap"

    def scan(self, base, pos: int, end: int, out, outcap: int, state) -> int:
        """Filter the records in ``base[pos:end]`` (see build_ir)."""
        return self.scan_fn(base, pos, end, out, outcap, state, _MEMCPY)

    def scan_ng(
        self,
        base,
        pos: int,
        end: int,
        out,
        outcap: int,
        state,
        iftab,
        niface: int,
        swap: bool,
        outns: bool,
    ) -> int:
        """Walk the pcapng blocks in ``base[pos:end]`` (see build_ir_pcapng)."""
        return self.scan_fn(
            base, pos, end, out, outcap, state, _MEMCPY, iftab, niface, int(swap), int(outns)
        )

    def match(self, data: bytes, wirelen: int) -> bool:
        return bool(self.one(data, len(data), wirelen & M32))


_cache: dict[tuple, NativeFilter] = {}
_llvm: dict[str, object] = {}


def _llvm_compile(ir: str):
    """IR → native code with LLVM's -O2 pipeline (an MCJIT engine owning its machine).

    Deliberately light — llvmlite alone, not bpfkit's eBPF JIT package — because the
    whole-process start-up time of ``bpfkit filter run`` is part of what it is measured by."""
    import llvmlite.binding as llvm

    if not _llvm:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _llvm["target"] = llvm.Target.from_default_triple()
        _llvm["cpu"] = llvm.get_host_cpu_name()
        _llvm["features"] = llvm.get_host_cpu_features().flatten()
    from .codecache import optimized_module

    tm = _llvm["target"].create_target_machine(
        cpu=_llvm["cpu"], features=_llvm["features"], opt=2, codemodel="jitdefault"
    )
    engine = llvm.create_mcjit_compiler(optimized_module(ir, tm), tm)
    engine.finalize_object()
    return engine


def jit_available() -> bool:
    """Whether llvmlite (the native engine's compiler) is installed (without loading it)."""
    import importlib.util

    return importlib.util.find_spec("llvmlite") is not None


def compile_native(
    prog: Sequence[SockFilter],
    swap: bool = False,
    limit: int = MAX_SCAN_RECORD,
    fmt: str = "pcap",
) -> NativeFilter:
    """Compile ``prog`` (validated first) with a pcap record loop for one byte order, or
    (``fmt="pcapng"``) with the pcapng block loop (byte order chosen at run time)."""
    prog = [SockFilter(*i) for i in prog]
    validate(prog)
    key = (tuple(prog), swap, limit, fmt)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    from . import codecache

    t0 = time.perf_counter_ns()
    if fmt == "pcapng":
        ir = build_ir_pcapng(prog, limit)
        names = ("bpfkit_pcapng_scan", "bpfkit_pcap_one")
        scan_type = _NG_SCAN_FN
    else:
        ir = build_ir(prog, swap, limit)
        names = ("bpfkit_pcap_scan", "bpfkit_pcap_one")
        scan_type = _SCAN_FN
    code = codecache.load_cached_code(ir, names)
    cached = code is not None
    if code is None:
        try:
            code = codecache.compile_and_cache(ir, names)
        except OSError:  # no executable mappings here: MCJIT below
            code = None
    if code is not None:
        scan_addr, one_addr = code.address(names[0]), code.address(names[1])
    else:
        code = _llvm_compile(ir)
        scan_addr = code.get_function_address(names[0])
        one_addr = code.get_function_address(names[1])
    nf = NativeFilter(
        code, scan_type(scan_addr), _ONE_FN(one_addr), time.perf_counter_ns() - t0, cached, fmt
    )
    if len(_cache) > 32:
        _cache.clear()
    _cache[key] = nf
    return nf


# -- running over a file ------------------------------------------------------------------


@dataclass
class ScanResult:
    """What a run over a capture did."""

    packets: int
    matched: int
    linktype: int
    format: str
    engine: str


def filter_capture(
    path: str | os.PathLike[str],
    program_for,
    engine: str = "jit",
    out: str | os.PathLike[str] | BinaryIO | None = None,
    progress=None,
) -> ScanResult:
    """Filter every packet of a capture; write the matching ones to ``out`` (pcap).

    ``program_for(linktype)`` returns the program for a link type (a compiled expression
    is compiled per link type; a loaded program ignores it). ``progress(done_bytes,
    total_bytes)`` is called now and then. Raises CaptureError for a damaged file after
    writing the packets before the damage.
    """
    if engine not in ("jit", "interp"):
        raise ValueError(f"unknown engine {engine!r}")
    path = os.fspath(path)
    src: _Prefixed | None = None
    if path == "-":  # standard input, as tcpdump -r -
        src = _Prefixed(sys.stdin.buffer)
        head = src.peek4()
        path = src.name
    else:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            raise CaptureError(f"{path}: {e.strerror or e}") from None
    if len(head) < 4:
        raise CaptureError(f"{path}: empty or truncated file (no capture header)")
    if isinstance(out, (str, bytes, os.PathLike)):
        # written aside and renamed at the end: -w may even name the input
        with safe_output(out, keep_on=(CaptureError,)) as f:
            return _filter(path, src, head, program_for, engine, f, progress)
    return _filter(path, src, head, program_for, engine, out, progress)


class _Prefixed:
    """A stream (standard input) whose first bytes were read to recognise the format and
    are given out again first."""

    name = "<stdin>"

    def __init__(self, stream: BinaryIO):
        self._s = stream
        self._head = b""

    def peek4(self) -> bytes:
        while len(self._head) < 4:
            more = self._s.read(4 - len(self._head))
            if not more:
                break
            self._head += more
        return self._head

    def read(self, n: int = -1) -> bytes:
        head, self._head = self._head, b""
        if n is None or n < 0:
            return head + self._s.read()
        if len(head) >= n:
            self._head = head[n:]
            return head[:n]
        rest = self._s.read(n - len(head))
        return head + (rest or b"")

    def readinto(self, buf) -> int:
        if self._head:
            k = min(len(buf), len(self._head))
            buf[:k] = self._head[:k]
            self._head = self._head[k:]
            return k
        return self._s.readinto(buf)

    def close(self) -> None:  # standard input stays open
        pass


def _filter(path: str, src, head: bytes, program_for, engine: str, out, progress) -> ScanResult:
    magic_le = struct.unpack("<I", head)[0]
    magic_be = struct.unpack(">I", head)[0]
    is_pcap = magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or magic_be in (
        PCAP_MAGIC_US,
        PCAP_MAGIC_NS,
    )
    if engine == "jit" and is_pcap:
        return _scan_pcap_native(path, program_for, out, progress, src)
    if engine == "jit" and magic_le == PCAPNG_SHB and src is None:
        return _scan_pcapng_native(path, program_for, out, progress)
    # (a pcapng on standard input: the Python reader, which needs no seeking)
    return _scan_python(src if src is not None else path, program_for, engine, out, progress)


def _buffers(reserve: int, outcap: int, writer):
    """The native scans' buffers: ``(outcap, obuf, state, ibuf, iview, base)``. The input
    buffer ``ibuf`` (``iview`` a byte view of it, ``base`` its address) holds ``reserve``
    bytes for the unfinished record or block carried over from the previous chunk, then
    the chunk read from the file; ``obuf`` (``outcap`` bytes) is the output, only when
    there is a ``writer``."""
    if writer is None:
        outcap, obuf = 0, None
    else:
        obuf = ctypes.create_string_buffer(outcap)
    ibuf = ctypes.create_string_buffer(reserve + IN_CHUNK)
    return (
        outcap,
        obuf,
        (ctypes.c_int64 * 4)(),
        ibuf,
        memoryview(ibuf).cast("B"),
        ctypes.addressof(ibuf),
    )


def _next_chunk(f, iview, base: int, reserve: int, carry: bytes) -> tuple[int, bool, int, int]:
    """Read the next chunk (up to IN_CHUNK bytes) into the buffer after ``reserve`` and put
    ``carry`` just in front of it: ``(bytes read, end of file, start, end)``, the records
    being in ``buffer[start:end]``. Called once a chunk, not once a packet."""
    got = 0
    while got < IN_CHUNK:
        k = f.readinto(iview[reserve + got : reserve + IN_CHUNK])
        if not k:
            break
        got += k
    start = reserve - len(carry)
    if carry:
        ctypes.memmove(base + start, carry, len(carry))
    return got, got < IN_CHUNK, start, reserve + got


def _scan_pcap_native(path: str, program_for, out, progress, src=None) -> ScanResult:
    """Stream the file in chunks (constant memory, small enough to stay in the CPU cache
    while filtered) and let native code walk each chunk's records; a record cut by a
    chunk's end is carried into the next chunk, in front of its data. ``src`` is an open
    stream (standard input) instead of the file ``path``."""
    import io

    with CaptureReader(io.BytesIO(src.read(24)) if src is not None else path) as reader:
        reader.name = path
        header = reader.header
        swap = reader.byteorder != "<"
        linktype = reader.linktype
        snaplen = reader.snaplen
    size = os.path.getsize(path) if src is None else 0
    limit = min(max(snaplen, 262144), MAX_SCAN_RECORD)
    nf = compile_native(program_for(linktype), swap, limit)
    writer = out
    if writer is not None:
        writer.write(header)
    packets = matched = 0
    reserve = 16 + limit  # the longest record that can be carried over
    outcap, obuf, state, ibuf, iview, base = _buffers(reserve, OUT_CHUNK + reserve, writer)
    error = None
    chunk_start = 24  # file offset of the chunk's first byte (at ibuf[reserve])
    carry = b""  # the unfinished record of the previous chunk
    try:
        with open(path, "rb", buffering=0) if src is None else contextlib.nullcontext(src) as f:
            if src is None:
                f.seek(24)
            while True:
                got, eof, start, end = _next_chunk(f, iview, base, reserve, carry)
                pos = start
                while True:
                    n = nf.scan(base, pos, end, obuf, outcap, state)
                    matched += n
                    packets += state[ST_PACKETS]
                    if writer is not None and state[ST_OUTLEN]:
                        writer.write(memoryview(obuf)[: state[ST_OUTLEN]])
                    pos = state[ST_POS]
                    if state[ST_REASON] != R_FULL:
                        break
                reason = state[ST_REASON]
                where = chunk_start - len(carry) + (pos - start)
                if progress is not None:
                    progress(where, size)
                if reason == R_CORRUPT:
                    error = (
                        f"{path}: corrupt record at byte offset {where}: captured length is "
                        f"more than {limit} (after packet {packets})"
                    )
                elif eof and reason == R_TRUNC_HDR:
                    error = (
                        f"{path}: truncated record header at byte offset {where} "
                        f"(after packet {packets})"
                    )
                elif eof and reason == R_TRUNC_DATA:
                    error = (
                        f"{path}: truncated packet at byte offset {where} (after packet {packets})"
                    )
                if error or eof:
                    break
                carry = ctypes.string_at(base + pos, end - pos) if pos < end else b""
                chunk_start += got
    finally:
        iview.release()
        if writer is not None:
            writer.flush()
    result = ScanResult(packets, matched, linktype, "pcap", "jit")
    if error:
        err = CaptureError(error)
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result


def _scan_pcapng_native(path: str, program_for, out, progress) -> ScanResult:
    """pcapng through native code: the file is read in chunks as for pcap, and the block
    loop (``build_ir_pcapng``) filters the Enhanced and Simple Packet Blocks of the
    interfaces whose link type it was compiled for. Every block it does not take — section
    and interface headers, other link types, unusual timestamp units, very long or damaged
    blocks — is read by :class:`CaptureReader` at that offset, so the state, the packets
    and the error messages are the Python reader's; the loop then resumes after it."""
    reader = CaptureReader(path)
    host = "<" if sys.byteorder == "little" else ">"
    first_lt = reader.linktype
    packets = matched = 0
    size = os.path.getsize(path)
    writer = _writer_like(reader, out)
    outns = reader.nanosecond
    native: NativeFilter | None = None
    native_lt = -1
    matchers: dict[int, object] = {}
    iftab = (ctypes.c_int64 * 2)()
    niface = 0

    def refresh() -> None:
        nonlocal iftab, niface
        ifs = reader.interfaces
        iftab = (ctypes.c_int64 * max(2, 2 * len(ifs)))()
        for i, (lt, snap, units, off) in enumerate(ifs):
            flags = 0
            if native is not None and lt == native_lt and off == 0 and units in (10**6, 10**9):
                flags = IF_NATIVE | (IF_NS if units == 10**9 else 0)
            iftab[2 * i], iftab[2 * i + 1] = flags, snap
        niface = len(ifs)

    def matcher(lt: int):
        nonlocal native, native_lt
        m = matchers.get(lt)
        if m is None:
            prog = program_for(lt)  # (compile_native validates it)
            if native is None:
                native, native_lt = compile_native(prog, fmt="pcapng"), lt
                refresh()
                m = native.match
            else:
                m = compile_native(prog).match
            matchers[lt] = m
        return m

    reserve = MAX_SCAN_BLOCK
    outcap, obuf, state, ibuf, iview, base = _buffers(reserve, OUT_CHUNK + 16 + reserve, writer)
    chunk_start = 0  # file offset of ibuf[reserve]
    carry = b""
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                got, eof, start, end = _next_chunk(f, iview, base, reserve, carry)
                file0 = chunk_start - len(carry)  # file offset of ibuf[start]
                pos = start
                jump = None
                while True:
                    if native is None:
                        reason = R_OTHER
                    else:
                        swap = reader.byteorder != host
                        n = native.scan_ng(
                            base, pos, end, obuf, outcap, state, iftab, niface, swap, outns
                        )
                        matched += n
                        packets += state[ST_PACKETS]
                        if writer is not None and state[ST_OUTLEN]:
                            writer.write_records(memoryview(obuf)[: state[ST_OUTLEN]], n)
                        pos, reason = state[ST_POS], state[ST_REASON]
                    if reason == R_FULL:
                        continue
                    if reason == R_END or (not eof and reason in (R_TRUNC_HDR, R_TRUNC_DATA)):
                        break
                    if reason == R_OTHER and pos == end:
                        break
                    # the Python reader takes this block (or says what is wrong with it)
                    where = file0 + (pos - start)
                    reader.count = packets  # its messages say "after packet N"
                    blk = reader._block_at(where)
                    if blk is None:
                        break
                    pkt = reader._handle_block(*blk)
                    if blk[0] in (PCAPNG_SHB, PCAPNG_IDB):
                        refresh()
                    if pkt is not None:
                        packets += 1
                        if matcher(pkt.linktype)(pkt.data, pkt.wirelen):
                            matched += 1
                            if writer is not None:
                                writer.write_packet(pkt)
                    nxt = reader.offset
                    if nxt <= file0 + (end - start):
                        pos = start + (nxt - file0)
                    else:
                        jump = nxt
                        break
                if progress is not None:
                    progress(file0 + (pos - start), size)
                if jump is not None:
                    f.seek(jump)
                    chunk_start, carry = jump, b""
                    continue
                if eof:
                    break
                carry = ctypes.string_at(base + pos, end - pos) if pos < end else b""
                chunk_start += got
    except CaptureError as e:
        e.result = ScanResult(packets, matched, first_lt, "pcapng", "jit")  # type: ignore[attr-defined]
        raise
    finally:
        iview.release()
        reader.close()
        if writer is not None:
            writer.close()
    return ScanResult(packets, matched, first_lt, "pcapng", "jit")


def _writer_like(reader: CaptureReader, out) -> PcapWriter | None:
    """A pcap writer to ``out`` (None: no writer) with the reader's first link type,
    snapshot length and timestamp precision."""
    if out is None:
        return None
    return PcapWriter(out, reader.linktype, reader.snaplen or 262144, nanosecond=reader.nanosecond)


def _partial(reader: CaptureReader, result):
    """Iterate ``reader``; a CaptureError carries the counts so far as ``.result``."""
    try:
        yield from reader
    except CaptureError as e:
        e.result = result()  # type: ignore[attr-defined]
        raise


def _scan_python(path, program_for, engine: str, out, progress) -> ScanResult:
    """The Python engine (or any engine on a pcapng stream): ``path`` or an open stream."""
    matchers: dict[int, object] = {}
    counts = [0, 0]  # packets, matched
    writer: PcapWriter | None = None
    with CaptureReader(path) as reader:
        fmt = reader.format
        first_lt = reader.linktype
        size = os.path.getsize(path) if isinstance(path, str) else 0
        writer = _writer_like(reader, out)
        try:
            partial = lambda: ScanResult(counts[0], counts[1], first_lt, fmt, engine)  # noqa: E731
            for pkt in _partial(reader, partial):
                m = matchers.get(pkt.linktype)
                if m is None:
                    prog = program_for(pkt.linktype)
                    validate(prog)
                    if engine == "jit":
                        m = compile_native(prog).match
                    else:
                        m = python_matcher(prog)
                    matchers[pkt.linktype] = m
                counts[0] += 1
                if m(pkt.data, pkt.wirelen):
                    counts[1] += 1
                    if writer is not None:
                        writer.write_packet(pkt)
                if progress is not None and not counts[0] & 0xFFFF:
                    progress(reader.offset, size)
        finally:
            if writer is not None:
                writer.close()
    return ScanResult(counts[0], counts[1], first_lt, fmt, engine)
