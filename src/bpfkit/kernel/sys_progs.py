"""Program commands: load (with the verifier log), test run, bind map.

Part of :mod:`bpfkit.kernel.sys` (which re-exports every public name).
"""

from __future__ import annotations

import ctypes
import errno
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import KernelError, VerifierError
from ..isa.instruction import Instruction, encode
from ..uapi.enums import Cmd
from .sys_attrs import ProgBindMapAttr, ProgLoadAttr, TestRunAttr, s32
from .sys_core import (
    _FIRST_LOG_SIZE,
    MAX_LOG_SIZE,
    FdLike,
    _addr,
    _buf,
    _call,
    _fail,
    _obj_name,
    bpf,
    fdnum,
    hint_for,
)

# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------

_TRAILER_RE = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn|"
    r"total_states|peak_states|mark_read|-- END)"
)
_INSN_LINE_RE = re.compile(r"^(\d+): \([0-9a-f]{2}\)")
_STATE_LINE_RE = re.compile(r"^(\d+): (R\d|frame)")
_SRC_LINE_RE = re.compile(r"^; (.*?)(?: @ (\S+):(\d+))?$")
_MSG_INSN_RE = re.compile(r"\binsn (?:#)?(\d+)\b")


def parse_verifier_log(log: str) -> tuple[str, int | None, dict | None, str | None]:
    """Summarise a verifier log: ``(message, insn, source line, register state)``.

    The message is the last meaningful line (statistics trailers skipped); the insn is
    the last instruction the log printed before it, or one the message names.
    """
    lines = [ln.rstrip() for ln in log.splitlines()]
    end = len(lines)
    while end > 0 and (not lines[end - 1].strip() or _TRAILER_RE.match(lines[end - 1])):
        end -= 1
    if end == 0:
        return "rejected by the verifier (empty log)", None, None, None
    msg_at = end - 1
    message = lines[msg_at].strip()
    # A message that only introduces the next line ("...:") reads better joined.
    if message.endswith(":") and msg_at + 1 < len(lines) and lines[msg_at + 1].strip():
        message = f"{message} {lines[msg_at + 1].strip()}"
    insn = src = state = None
    for i in range(msg_at, -1, -1):
        ln = lines[i]
        if insn is None and (m := _INSN_LINE_RE.match(ln)):
            insn = int(m.group(1))
            # The source line (BTF line info) and state printed just before it.
            for j in range(i - 1, max(-1, i - 6), -1):
                prev = lines[j]
                if src is None and (s := _SRC_LINE_RE.match(prev)):
                    src = {
                        "text": s.group(1),
                        "file": s.group(2),
                        "line": int(s.group(3)) if s.group(3) else None,
                    }
                if state is None and _STATE_LINE_RE.match(prev):
                    state = prev.split(": ", 1)[1]
                elif state is None and _INSN_LINE_RE.match(prev) and " ; " in prev:
                    state = prev.rsplit(" ; ", 1)[1].strip()
            break
    if insn is None and (m := _MSG_INSN_RE.search(message)):
        insn = int(m.group(1))
    return message, insn, src, state


def encode_for_load(insns: Sequence[Instruction]) -> bytes:
    """The bytecode of ``insns`` in one ``struct.pack`` (what ``prog_load`` hands the kernel).

    Same bytes as :func:`bpfkit.isa.instruction.encode` for every valid instruction, at a
    fraction of its cost on large programs: fields are range-checked (registers 0-15,
    16-bit offsets, 32-bit immediates, 64-bit ``lddw`` values), and the kernel's verifier
    judges the rest. An instruction it cannot encode falls back to ``encode`` for the
    precise :class:`~bpfkit.errors.EncodeError`.
    """
    fields: list[int] = []
    add = fields.extend
    try:
        for i in insns:
            dst, src = i.dst, i.src
            if i.ref is not None or dst >> 4 or src >> 4 or dst < 0 or src < 0:
                raise ValueError
            if i.opcode == 0x18:  # lddw: two slots
                imm = i.imm
                if not -(1 << 63) <= imm < (1 << 64):
                    raise ValueError
                lo, hi = imm & 0xFFFFFFFF, (imm >> 32) & 0xFFFFFFFF
                add(
                    (
                        0x18,
                        (src << 4) | dst,
                        i.off,
                        lo - (1 << 32) if lo >> 31 else lo,
                        0,
                        0,
                        0,
                        hi - (1 << 32) if hi >> 31 else hi,
                    )
                )
            else:
                add((i.opcode, (src << 4) | dst, i.off, i.imm))
        return struct.pack("<" + "BBhi" * (len(fields) // 4), *fields)
    except (ValueError, TypeError, AttributeError, struct.error):
        return encode(insns)  # raises EncodeError naming the instruction


def _insn_bytes(insns: bytes | bytearray | memoryview | Sequence[Instruction]) -> bytes:
    if isinstance(insns, bytes | bytearray | memoryview):
        code = bytes(insns)
    else:
        code = encode_for_load(insns)
    if not code or len(code) % 8:
        raise ValueError(f"program of {len(code)} bytes is empty or not a multiple of 8")
    return code


def prog_load(
    prog_type: int,
    insns: bytes | Sequence[Instruction],
    license: str = "GPL",
    *,
    expected_attach_type: int = 0,
    name: str = "",
    log_level: int = 0,
    kern_version: int = 0,
    prog_btf_fd: FdLike = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    attach_btf_id: int = 0,
    attach_prog_fd: FdLike = 0,
    attach_btf_obj_fd: FdLike = 0,
    fd_array: Sequence[FdLike] | None = None,
    prog_flags: int = 0,
    prog_ifindex: int = 0,
    log_out: list[str] | None = None,
) -> int:
    """Load a program; returns its (owned) file descriptor.

    Without ``log_level`` the first attempt asks for no log; a failure is retried with
    ``log_level=1`` to get one. A log buffer grows on ENOSPC up to ``MAX_LOG_SIZE``;
    EAGAIN is retried. A rejection raises :class:`VerifierError` (``.log`` holds the
    full log); other failures raise :class:`KernelError`. With ``log_out``, the final
    log (also of a successful load with ``log_level > 0``) is appended to it.
    """
    code = _insn_bytes(insns)
    code_buf = _buf(code)
    lic = ctypes.create_string_buffer(license.encode())
    keep: list[object] = [code_buf, lic]
    attr = ProgLoadAttr(
        prog_type=int(prog_type),
        insn_cnt=len(code) // 8,
        insns=_addr(code_buf),
        license=_addr(lic),
        kern_version=kern_version,
        prog_flags=prog_flags,
        prog_name=_obj_name(name),
        prog_ifindex=prog_ifindex,
        expected_attach_type=int(expected_attach_type),
        prog_btf_fd=fdnum(prog_btf_fd),
        attach_btf_id=attach_btf_id,
        attach_prog_fd=fdnum(attach_prog_fd) or fdnum(attach_btf_obj_fd),
    )
    # func_info and line_info: an array of records, its record size and its count
    for what, records, rec_size in (
        ("func_info", func_info, func_info_rec_size),
        ("line_info", line_info, line_info_rec_size),
    ):
        if records:
            if rec_size <= 0:
                raise ValueError(f"{what} needs {what}_rec_size")
            buf = _buf(records)
            keep.append(buf)
            setattr(attr, what, _addr(buf))
            setattr(attr, f"{what}_rec_size", rec_size)
            setattr(attr, f"{what}_cnt", len(records) // rec_size)
    if fd_array:
        arr = (s32 * len(fd_array))(*(fdnum(f) for f in fd_array))
        keep.append(arr)
        attr.fd_array = ctypes.addressof(arr)

    level = log_level
    size = _FIRST_LOG_SIZE if level else 0
    log_buf = ctypes.create_string_buffer(size) if size else None
    first_err = 0
    eagain = 0
    while True:
        attr.log_level = level
        attr.log_size = size
        attr.log_buf = _addr(log_buf)
        attr.log_true_size = 0
        fd, err = bpf(Cmd.PROG_LOAD, attr)
        if fd >= 0:
            if log_out is not None and log_buf is not None:
                log_out.append(log_buf.value.decode(errors="replace"))
            return fd
        if err == errno.EAGAIN and eagain < 5:
            eagain += 1
            time.sleep(0.001 * eagain)
            continue
        if err == errno.ENOSPC and log_buf is not None and size < MAX_LOG_SIZE:
            want = max(size * 4, attr.log_true_size + 1)
            size = min(want, MAX_LOG_SIZE)
            log_buf = ctypes.create_string_buffer(size)
            continue
        first_err = first_err or err
        if log_buf is None and err not in (errno.EPERM, errno.EBADF, errno.ENOMEM):
            level, size = 1, _FIRST_LOG_SIZE
            log_buf = ctypes.create_string_buffer(size)
            continue
        break
    del keep
    log = log_buf.value.decode(errors="replace") if log_buf is not None else ""
    if log_out is not None and log:
        log_out.append(log)
    err = first_err if err == errno.ENOSPC else err
    # The verifier also ends some rejections with EFAULT (e.g. "the sequence of 8193 jumps
    # is too complex"); its closing statistics line shows it ran.
    verified = err == errno.EFAULT and "processed " in log
    if (err in (errno.EACCES, errno.EINVAL, errno.E2BIG) or verified) and log.strip():
        message, insn, src, state = parse_verifier_log(log)
        raise VerifierError(message, insn, log, src, state)
    hint = hint_for(Cmd.PROG_LOAD, err)
    if log.strip():
        hint = (
            f"{hint}; verifier: {parse_verifier_log(log)[0]}"
            if hint
            else parse_verifier_log(log)[0]
        )
    exc = KernelError(err, "BPF_PROG_LOAD", hint)
    exc.log = log  # type: ignore[attr-defined]
    raise exc


@dataclass
class TestRunResult:
    """What ``BPF_PROG_TEST_RUN`` reports: return value, output data/ctx, mean duration."""

    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes
    ctx_out: bytes
    duration_ns: int


def prog_test_run(
    fd: FdLike,
    data: bytes = b"",
    data_out_size: int | None = None,
    ctx: bytes | None = None,
    ctx_out_size: int | None = None,
    repeat: int = 1,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
) -> TestRunResult:
    """Run a loaded program once (or ``repeat`` times) on ``data`` and ``ctx``.

    ``data_out_size`` defaults to ``len(data) + 4096`` when there is data (the buffer grows
    once if the kernel reports ENOSPC); ``ctx_out_size`` defaults to ``len(ctx)``.
    """
    din = _buf(data) if data else None
    if data_out_size is None:
        data_out_size = len(data) + 4096 if data else 0
    cin = _buf(ctx) if ctx else None
    if ctx_out_size is None:
        ctx_out_size = len(ctx) if ctx else 0
    for _attempt in range(2):
        dout = ctypes.create_string_buffer(data_out_size) if data_out_size else None
        cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
        attr = TestRunAttr(
            prog_fd=fdnum(fd),
            data_size_in=len(data),
            data_in=_addr(din),
            data_size_out=data_out_size,
            data_out=_addr(dout),
            repeat=repeat,
            ctx_size_in=len(ctx) if ctx else 0,
            ctx_in=_addr(cin),
            ctx_size_out=ctx_out_size,
            ctx_out=_addr(cout),
            flags=flags,
            cpu=cpu,
            batch_size=batch_size,
        )
        res, err = bpf(Cmd.PROG_TEST_RUN, attr)
        if res >= 0:
            break
        if err == errno.ENOSPC and _attempt == 0:
            grew = False
            if dout is not None and attr.data_size_out > data_out_size:
                data_out_size, grew = attr.data_size_out, True
            if cout is not None and attr.ctx_size_out > ctx_out_size:
                ctx_out_size, grew = attr.ctx_size_out, True
            if grew:
                continue
        raise _fail(Cmd.PROG_TEST_RUN, err)
    n_data = min(attr.data_size_out, data_out_size)
    n_ctx = min(attr.ctx_size_out, ctx_out_size)
    return TestRunResult(
        retval=attr.retval,
        data_out=dout.raw[:n_data] if dout is not None else b"",
        ctx_out=cout.raw[:n_ctx] if cout is not None else b"",
        duration_ns=attr.duration,
    )


def prog_bind_map(prog_fd: FdLike, map_fd: FdLike, flags: int = 0) -> None:
    """Keep ``map_fd`` alive as long as the program (``BPF_PROG_BIND_MAP``)."""
    _call(
        Cmd.PROG_BIND_MAP,
        ProgBindMapAttr(prog_fd=fdnum(prog_fd), map_fd=fdnum(map_fd), flags=flags),
    )
