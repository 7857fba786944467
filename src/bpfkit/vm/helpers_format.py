"""The format engine behind ``bpf_trace_printk``, ``bpf_trace_vprintk`` and ``bpf_snprintf``.

It accepts what the kernel's ``bpf_bprintf_prepare`` accepts and prints what its
``vsnprintf`` prints: ``%%``; flags ``0 + - space`` and a width; ``%d %i %u %x %X`` with
``l``/``ll`` (no length: the argument is a 32-bit int); ``%c``; ``%s`` and ``%pks``/``%pus``
(a string read from memory, empty when unreadable); ``%p``/``%pK``/``%px``/``%pB`` (a
pointer, printed as ``%px`` prints it: 16 hex digits); ``%pI4 %pi4 %pI6 %pi6`` (an address
read from memory). Anything else, or more conversions than arguments, is ``-EINVAL``.
"""

from __future__ import annotations

import errno

__all__ = ["format_bpf", "FormatError"]

M64 = (1 << 64) - 1
MAX_STR = 1024


class FormatError(Exception):
    """The format is not one the kernel would accept (the helper returns -EINVAL)."""

    errno = errno.EINVAL


def _s(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _pad(body: str, width: int, left: bool, zero: bool, sign_len: int = 0) -> str:
    if width <= len(body):
        return body
    if left:
        return body + " " * (width - len(body))
    if zero:
        return body[:sign_len] + "0" * (width - len(body)) + body[sign_len:]
    return " " * (width - len(body)) + body


def _ip4(b: bytes, lead: bool) -> str:
    return ".".join(f"{x:03d}" if lead else str(x) for x in b)


def _ip6(b: bytes, colons: bool, compress: bool) -> str:
    if not colons:
        return b.hex()
    groups = [int.from_bytes(b[i : i + 2], "big") for i in range(0, 16, 2)]
    if not compress:
        return ":".join(f"{g:04x}" for g in groups)
    import ipaddress

    return str(ipaddress.IPv6Address(b))


def format_bpf(fmt: bytes, args: list[int], read_mem, read_str) -> str:
    """Format ``fmt`` with ``args`` (u64 each) as the kernel would; ``FormatError`` if invalid.

    ``read_mem(addr, n) -> bytes | None`` and ``read_str(addr, limit) -> bytes | None``
    read program memory for ``%pI4``-style and ``%s`` conversions.
    """
    out: list[str] = []
    i, n = 0, len(fmt)
    nargs = 0
    while i < n:
        c = fmt[i]
        if c != 0x25:  # '%'
            j = fmt.find(b"%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j].decode("latin-1"))
            i = j
            continue
        i += 1
        if i >= n:
            raise FormatError("format ends in '%'")
        if fmt[i] == 0x25:
            out.append("%")
            i += 1
            continue
        if nargs >= len(args):
            raise FormatError("more conversions than arguments")
        left = zero = plus = space = False
        while i < n and fmt[i] in b"0+- ":
            ch = fmt[i]
            left |= ch == 0x2D
            zero |= ch == 0x30
            plus |= ch == 0x2B
            space |= ch == 0x20
            i += 1
        width = 0
        if i < n and 0x31 <= fmt[i] <= 0x39:
            while i < n and 0x30 <= fmt[i] <= 0x39:
                width = width * 10 + fmt[i] - 0x30
                i += 1
        if i >= n:
            raise FormatError("incomplete conversion")
        arg = args[nargs] & M64
        nargs += 1
        c = fmt[i]
        if c == 0x70:  # 'p'
            nxt = fmt[i + 1] if i + 1 < n else 0
            nxt2 = fmt[i + 2] if i + 2 < n else 0
            if nxt in (0x6B, 0x75) and nxt2 == 0x73:  # %pks %pus
                i += 3
                s = read_str(arg, MAX_STR)
                out.append(_pad((s or b"").decode("latin-1"), width, left, False))
                continue
            if nxt in (0x69, 0x49) and nxt2 in (0x34, 0x36):  # %pi4 %pI4 %pi6 %pI6
                i += 3
                compress = nxt == 0x49 and nxt2 == 0x36 and i < n and fmt[i] == 0x63
                if compress:
                    i += 1
                size = 4 if nxt2 == 0x34 else 16
                raw = read_mem(arg, size) or bytes(size)  # unreadable: zeros, as the kernel
                if size == 4:
                    body = _ip4(raw, nxt == 0x69)
                else:
                    body = _ip6(raw, nxt == 0x49, compress)
                out.append(_pad(body, width, left, False))
                continue
            if nxt == 0 or chr(nxt).isspace() or (chr(nxt).isascii() and not chr(nxt).isalnum()):
                i += 1
            elif nxt in (0x4B, 0x78, 0x73, 0x53, 0x42):  # K x s S B
                i += 2
            else:
                raise FormatError(f"unsupported %p{chr(nxt)}")
            out.append(_pad(f"{arg:016x}", width, left, zero))
            continue
        if c == 0x73:  # 's'
            i += 1
            s = read_str(arg, MAX_STR)
            out.append(_pad((s or b"").decode("latin-1"), width, left, False))
            continue
        if c == 0x63:  # 'c'
            i += 1
            out.append(_pad(chr(arg & 0xFF), width, left, False))
            continue
        bits = 32
        if c == 0x6C:  # 'l'
            bits = 64
            i += 1
            if i < n and fmt[i] == 0x6C:
                i += 1
            if i >= n:
                raise FormatError("incomplete conversion")
            c = fmt[i]
        if c in (0x64, 0x69):  # d i
            v = _s(arg, bits)
            sign = "-" if v < 0 else ("+" if plus else (" " if space else ""))
            body = sign + str(abs(v))
            out.append(_pad(body, width, left, zero, len(sign)))
        elif c == 0x75:  # u
            out.append(_pad(str(arg & ((1 << bits) - 1)), width, left, zero))
        elif c in (0x78, 0x58):  # x X
            body = f"{arg & ((1 << bits) - 1):x}"
            out.append(_pad(body.upper() if c == 0x58 else body, width, left, zero))
        else:
            raise FormatError(f"unsupported conversion %{chr(c)}")
        i += 1
    return "".join(out)
