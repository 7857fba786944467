"""bpftrace 0.17's output: printf with C semantics, values, and maps as text or JSON records.

Map printing follows bpftrace: count/sum/int maps sorted by value, other maps by key;
histograms by their total count, avg/stats by their average; text maps end with a
newline (a blank line after histograms and stats), JSON prints one record per non-empty
map (``{"type": "map" | "hist" | "stats", "data": {"@name": ...}}``).
"""

from __future__ import annotations

import functools
import json
import re
import struct
from typing import Any

from . import types as T
from .semantic import parse_printf_format

_QUOTED = ("kstack", "ustack", "ksym", "usym", "inet", "username", "str", "buf", "probe",
           "func", "mac", "timestamp", "cgroup_path", "strerror")  # fmt: skip


def json_escape(s: str) -> str:
    """bpftrace's JSON string escaping (``\\n``, ``\\t``, ``\\uXXXX`` for controls)."""
    out = []
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # a byte that is not UTF-8 (kept by surrogateescape)
            out.append("\ufffd")
        else:
            out.append(c)
    return "".join(out)


def c_format(fmt: str, values: list[Any]) -> str:
    """Format as bpftrace 0.17 does: the text up to and including each specifier it
    recognizes goes through C's ``snprintf`` with that one argument (so ``%%`` there is
    ``%``, and the output stops at a NUL), the text after the last one is appended as it is.
    ``%r``/``%rx`` print a buffer (printable bytes as they are / every byte as ``\\xNN``).
    """
    pieces, tail = _format_pieces(fmt)
    out = []
    for i, (text, spec, conv) in enumerate(pieces):
        v = values[i] if i < len(values) else 0
        if conv in ("r", "rx"):  # bpftrace prints the rendered buffer through %s
            if spec not in ("%r", "%rx"):  # with flags: C's printf shows it as it is
                out.append(text.replace("%%", "%") + spec)
                continue
            data = v.data if isinstance(v, RawBuf) else str(v).encode("utf-8", "surrogateescape")
            v = hex_buffer(data, every=conv == "rx")
            spec = "%s"
        out.append(c_snprintf(text + spec, v).split("\0", 1)[0])
    out.append(tail)
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _format_pieces(fmt: str) -> tuple[tuple[tuple[str, str, str], ...], str]:
    """A printf format cut once (not per event) into (text before, specifier, conversion)
    for each specifier bpftrace recognizes, and the text after the last one."""
    pieces = []
    pos = 0
    for m in parse_printf_format(fmt):
        pieces.append((fmt[pos : m.start()], fmt[m.start() : m.end()], m.group("conv")))
        pos = m.end()
    return tuple(pieces), fmt[pos:]


_C_SPEC = re.compile(r"%([-+ #0]*)([0-9]*)(?:\.([0-9]*))?(hh|h|ll|l|j|z|t|L|q)?([a-zA-Z%])")


def c_snprintf(fmt: str, value: Any) -> str:
    """C's ``snprintf(fmt, value)`` for one argument (glibc's output for ``%p``, ``%c``,
    precision and flags); conversions after the first get 0."""
    pieces, tail = _c_pieces(fmt)
    out = []
    used = False
    for text, (flags, width, prec, length, conv) in pieces:
        out.append(text)
        if conv == "%":
            out.append("%")
            continue
        v = value if not used else 0
        used = True
        out.append(_c_conv(flags, int(width) if width else 0, prec, length or "", conv, v))
    out.append(tail)
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _c_pieces(fmt: str) -> tuple[tuple[tuple[str, tuple[Any, ...]], ...], str]:
    """``fmt`` cut once into (text before, :data:`_C_SPEC` groups) per conversion, and the
    text after the last one."""
    pieces = []
    pos = 0
    for m in _C_SPEC.finditer(fmt):
        pieces.append((fmt[pos : m.start()], m.groups()))
        pos = m.end()
    return tuple(pieces), fmt[pos:]


def _pad(s: str, flags: str, width: int, zero_ok: bool = False) -> str:
    if len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    if zero_ok and "0" in flags:
        sign = s[0] if s[:1] in ("-", "+", " ") else ""
        pre = s[len(sign) : len(sign) + 2] if s[len(sign) : len(sign) + 2].lower() == "0x" else ""
        body = s[len(sign) + len(pre) :]
        return sign + pre + "0" * (width - len(s)) + body
    return " " * (width - len(s)) + s


def _c_conv(flags: str, width: int, prec: str | None, length: str, conv: str, v: Any) -> str:
    if conv in "sS":  # C counts bytes: precision and width apply to the UTF-8 bytes
        s = v if isinstance(v, str) else str(v)
        b = s.encode("utf-8", "surrogateescape")
        if prec is not None:
            b = b[: int(prec or 0)]
        if len(b) < width:
            b = b + b" " * (width - len(b)) if "-" in flags else b" " * (width - len(b)) + b
        return b.decode("utf-8", "surrogateescape")
    if isinstance(v, str):  # a string where C expected a number (checked out before)
        return _pad(v, flags, width)
    x = int(v)
    if conv == "c":  # one byte: above 0x7f, the raw byte (as surrogateescape keeps it)
        c = x & 0xFF
        return _pad(chr(c) if c < 0x80 else chr(0xDC00 + c), flags, width)
    if conv == "p":
        x &= (1 << 64) - 1
        if x == 0:
            return _pad("(nil)", flags, width)
        digits = f"{x:x}"
        if prec is not None and len(digits) < int(prec or 0):
            digits = "0" * (int(prec or 0) - len(digits)) + digits
        sign = "+" if "+" in flags else " " if " " in flags else ""
        return _pad(sign + "0x" + digits, flags, width, zero_ok=prec is None)
    bits = {"hh": 8, "h": 16, "": 32}.get(length, 64)
    x &= (1 << bits) - 1
    if conv in "di" and x >= 1 << (bits - 1):
        x -= 1 << bits
    neg = x < 0
    a = -x if neg else x
    digits = {"o": f"{a:o}", "x": f"{a:x}", "X": f"{a:X}"}.get(conv, str(a))
    if prec is not None:
        p = int(prec or 0)
        if p == 0 and a == 0:
            digits = ""
        elif len(digits) < p:
            digits = "0" * (p - len(digits)) + digits
    if "#" in flags and conv == "o" and not digits.startswith("0"):
        digits = "0" + digits
    elif "#" in flags and a != 0 and conv in "xX":
        digits = ("0x" if conv == "x" else "0X") + digits
    sign = "-" if neg else "+" if "+" in flags and conv in "di" else (
        " " if " " in flags and conv in "di" else "")  # fmt: skip
    return _pad(sign + digits, flags, width, zero_ok=prec is None)


class RawBuf:
    """The bytes of a ``buf()`` value; shown as bpftrace shows a buffer."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __str__(self) -> str:
        return hex_buffer(self.data)


class Formatter:
    """Turns raw bytes of a typed value into bpftrace's text or JSON rendering."""

    def __init__(self, runtime: Any, json_mode: bool) -> None:
        self.rt = runtime
        self.json = json_mode

    # ---- scalar values ----------------------------------------------------------------------
    def raw(self, ty: T.Ty, data: bytes) -> Any:
        """A Python value (int or str) for printf and keys."""
        k = ty.kind
        if k == "int":
            v = int.from_bytes(data[:8], "little", signed=False)
            if ty.signed:
                v = v - (1 << 64) if v >= 1 << 63 else v
            return v
        if k == "str":
            b = bytes(data[: ty.size])
            return b.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if k == "buf":
            n = int.from_bytes(data[:8], "little")
            return RawBuf(bytes(data[8 : 8 + min(n, ty.size)]))
        u = int.from_bytes(data[:8], "little")
        if k == "ptr":
            return u
        if k == "ksym":
            return self.rt.symbols.ksym(u)
        if k == "usym":
            return self.rt.symbols.usym(u, int.from_bytes(data[8:16], "little"))
        if k in ("kstack", "ustack"):
            return self.rt.stack_text(k, u, ty)
        if k == "inet":
            af = u
            addr = bytes(data[8:24])
            import ipaddress

            try:
                if af == 2:
                    return str(ipaddress.IPv4Address(addr[:4]))
                if af == 10:
                    return str(ipaddress.IPv6Address(addr[:16]))
            except ValueError:
                pass
            return ""
        if k == "mac":
            return ":".join(f"{x:02X}" for x in bytes(data[:6]))
        if k == "username":
            return self.rt.symbols.username(u & 0xFFFFFFFF)
        if k in ("probe", "func"):
            return self.rt.cc.strings[u] if u < len(self.rt.cc.strings) else str(u)
        if k == "timestamp":
            return self.rt.strftime(ty.extra[0], u)
        if k == "strerror":
            import os

            return os.strerror(u & 0xFFFFFFFF)
        if k == "cgroup_path":
            return self.rt.symbols.cgroup_path(u, ty.extra[0] if ty.extra else "*")
        if k == "tuple":
            out = []
            off = 0
            for it in ty.items:
                n = T.storage_size(it)
                out.append((it, self.raw(it, data[off : off + n])))
                off += n
            return out
        if k == "array":
            et = ty.elem
            assert et is not None
            es = et.size
            return [(et, self.raw(et, data[i * es : (i + 1) * es].ljust(8, b"\0") if
                                  et.kind == "int" else data[i * es:(i + 1) * es]))
                    for i in range(ty.count)]  # fmt: skip
        return u

    def text(self, ty: T.Ty, data: bytes) -> str:
        """A value as bpftrace's text output shows it."""
        v = self.raw(ty, data)
        return self._text_of(ty, v)

    def _text_of(self, ty: T.Ty, v: Any) -> str:
        if ty.kind == "tuple":
            return "(" + ", ".join(self._text_of(t, x) for t, x in v) + ")"
        if ty.kind == "array":
            return "[" + ",".join(self._text_of(t, x) for t, x in v) + "]"
        return str(v)

    def json_value(self, ty: T.Ty, data: bytes) -> str:
        """A value as a JSON fragment (bpftrace's quoting rules)."""
        v = self.raw(ty, data)
        return self._json_of(ty, v)

    def _json_of(self, ty: T.Ty, v: Any) -> str:
        if ty.kind == "tuple":
            return "[" + ",".join(self._json_of(t, x) for t, x in v) + "]"
        if ty.kind == "array":
            return "[" + ",".join(self._json_of(t, x) for t, x in v) + "]"
        if ty.kind in _QUOTED:
            return '"' + json_escape(str(v)) + '"'
        return str(v)

    # ---- maps -------------------------------------------------------------------------------------
    def key_strs(self, keys: list[T.Ty] | None, data: bytes) -> list[str]:
        out = []
        off = 0
        for kt in keys or []:
            n = T.storage_size(kt)
            text = self.text(kt, data[off : off + n])
            if kt.kind in ("kstack", "ustack") and not (kt.extra and kt.extra[0] == "perf"):
                text = text.replace("\n" + " " * 8, "\n" + " " * 4)  # keys: indented by 4
            out.append(text)
            off += n
        return out

    def print_map(self, name: str, mi: Any, entries: list[tuple[bytes, list[bytes]]],
                  top: int = 0, div: int = 0) -> str:  # fmt: skip
        """One map, as bpftrace prints it (``entries``: key bytes, per-CPU value bytes)."""
        vt = mi.value
        div = div or 1
        label = "@" + name
        if vt.kind in ("hist", "lhist"):
            return self._print_hist(label, mi, entries, top, div)
        if vt.kind in ("avg", "stats"):
            return self._print_stats(label, mi, entries, top, div)
        rows = []
        for key, vals in entries:
            rows.append((key, vals, self._reduce(vt, vals)))
        if vt.kind in ("count", "sum", "int", "min", "max"):
            rows.sort(key=lambda r: r[2])
        else:
            rows = self._sort_by_key(mi.keys, rows)
        if top and len(rows) > top:
            rows = rows[len(rows) - top :]
        elems = []
        for key, vals, red in rows:
            ks = self.key_strs(mi.keys, key)
            if vt.kind in ("count", "sum", "min", "max"):
                vtext = str(red // div if red >= 0 or div == 1 else -((-red) // div))
                jtext = vtext
            else:
                if vt.kind == "int" and div > 1:
                    vtext = jtext = str(int(red / div))
                else:
                    vtext = self.text(vt, vals[0])
                    jtext = self.json_value(vt, vals[0])
            if self.json:
                elems.append(_json_elem(ks, jtext))
            else:
                elems.append(f"{_text_key(label, mi, ks)}: {vtext}")
        if self.json:
            return _json_map("map", label, mi, elems)
        delim = "" if vt.kind in ("kstack", "ustack", "ksym", "usym", "inet") else "\n"
        return delim.join(elems) + "\n"

    def _reduce(self, vt: T.Ty, vals: list[bytes]) -> int:
        if vt.kind in ("count", "sum"):
            s = sum(int.from_bytes(v[:8], "little") for v in vals) & ((1 << 64) - 1)
            if vt.signed and s >= 1 << 63:
                s -= 1 << 64
            return s
        if vt.kind in ("min", "max"):
            best = None
            for v in vals:
                x, seen = struct.unpack_from("<qQ", v)
                if seen and (best is None or (x < best if vt.kind == "min" else x > best)):
                    best = x
            return best or 0
        if vt.kind == "int":
            x = int.from_bytes(vals[0][:8], "little")
            if vt.signed and x >= 1 << 63:
                x -= 1 << 64
            return x
        return 0

    def _sort_by_key(self, keys: list[T.Ty] | None, rows: list) -> list:
        if not keys:
            return rows
        offs = []
        off = 0
        for kt in keys:
            offs.append((kt, off))
            off += T.storage_size(kt)
        for kt, o in reversed(offs):
            n = T.storage_size(kt)
            if kt.kind == "int":
                rows = sorted(rows, key=lambda r, o=o: int.from_bytes(r[0][o : o + 8], "little"))
            elif kt.kind == "str":
                rows = sorted(rows, key=lambda r, o=o, n=n: bytes(r[0][o : o + n]).split(b"\0")[0])
        return rows

    def _group(self, mi: Any, entries: list) -> dict[bytes, dict[int, list[bytes]]]:
        ks = mi.key_size if mi.keys else 0
        groups: dict[bytes, dict[int, list[bytes]]] = {}
        for key, vals in entries:
            prefix = bytes(key[:ks]) if mi.keys else b""
            bucket = int.from_bytes(key[mi.key_size : mi.key_size + 8], "little") if (
                mi.value.kind in ("hist", "lhist")) else 0  # fmt: skip
            groups.setdefault(prefix, {})[bucket] = vals
        return groups

    def _print_hist(self, label: str, mi: Any, entries: list, top: int, div: int) -> str:
        from ..hist import LinearHist, Log2Hist

        vt = mi.value
        groups = self._group(mi, entries)
        items = []
        for prefix in sorted(groups):
            buckets = {b: sum(int.from_bytes(v[:8], "little") for v in vals)
                       for b, vals in groups[prefix].items()}  # fmt: skip
            total = sum(buckets.values())
            if vt.kind == "hist":
                h: Any = Log2Hist.from_buckets(buckets)
            else:
                lo, hi, step = vt.extra
                h = LinearHist.from_buckets(buckets, lo, hi, step)
            items.append((prefix, total, h))
        items.sort(key=lambda x: x[1])
        if top and len(items) > top:
            items = items[len(items) - top :]
        elems = []
        for prefix, _, h in items:
            ks = self.key_strs(mi.keys, prefix)
            if self.json:
                body = json.dumps(h.to_json(div) if vt.kind == "hist" else h.to_json(),
                                  separators=(", ", ": "))  # fmt: skip
                elems.append(_json_elem(ks, body))
            else:
                k = _text_key(label, mi, ks)
                elems.append(f"{k}: \n" + (h.text(div) if vt.kind == "hist" else h.text()))
        if self.json:
            return _json_map("hist", label, mi, elems)
        return "\n".join(elems) + "\n"

    def _print_stats(self, label: str, mi: Any, entries: list, top: int, div: int) -> str:
        vt = mi.value
        items = []
        for key, vals in entries:
            count = sum(struct.unpack_from("<q", v)[0] for v in vals)
            total = sum(struct.unpack_from("<q", v, 8)[0] for v in vals)
            avg = int(total / count) if count else 0
            items.append((bytes(key[: mi.key_size]) if mi.keys else b"", count, total, avg))
        items.sort(key=lambda x: x[3])
        if vt.kind == "avg" and top and len(items) > top:
            items = items[len(items) - top :]
        elems = []
        for prefix, count, total, avg in items:
            ks = self.key_strs(mi.keys, prefix)
            if self.json:
                if vt.kind == "stats":
                    val = f'{{"count": {count}, "average": {avg}, "total": {total}}}'
                else:
                    val = str(int(avg / div))
                elems.append(_json_elem(ks, val))
            else:
                k = _text_key(label, mi, ks)
                if vt.kind == "stats":
                    elems.append(f"{k}: count {count}, average {avg}, total {total}")
                else:
                    elems.append(f"{k}: {int(avg / div)}")
        if self.json:
            return _json_map("stats", label, mi, elems)
        return "\n".join(elems) + "\n\n"


def _text_key(label: str, mi: Any, ks: list[str]) -> str:
    """A map entry's name in text output: ``@name[k1, k2]`` (``@name`` without keys)."""
    return f"{label}[{', '.join(ks)}]" if mi.keys else label


def _json_elem(ks: list[str], val: str) -> str:
    """A map entry in JSON output: ``"k1,k2": val`` (the bare value without keys)."""
    return f'"{json_escape(",".join(ks))}": {val}' if ks else val


def _json_map(kind: str, label: str, mi: Any, elems: list[str]) -> str:
    """One map's JSON line of ``kind`` (map / hist / stats); nothing for an empty map."""
    if not elems:
        return ""
    body = ", ".join(elems)
    if mi.keys:
        body = "{" + body + "}"
    return f'{{"type": "{kind}", "data": {{"{json_escape(label)}": {body}}}}}\n'


def hex_buffer(b: bytes, every: bool = False) -> str:
    """bpftrace's ``buf()`` rendering: printable ASCII as is, other bytes as ``\\xNN``
    (``every``: all bytes as ``\\xNN``, printf's ``%rx``)."""
    if every:
        return "".join(f"\\x{x:02x}" for x in b)
    return "".join(chr(x) if 32 <= x < 127 else f"\\x{x:02x}" for x in b)
