"""BTF and .BTF.ext ABI facts from linux/btf.h and linux/bpf.h (kinds, flags, record sizes)."""

from __future__ import annotations

from enum import IntEnum

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
BTF_HEADER_SIZE = 24  # struct btf_header
BTF_MAX_TYPE = 0x000FFFFF
BTF_MAX_NAME_OFFSET = 0x00FFFFFF
BTF_MAX_VLEN = 0xFFFF

# Maximum chain of modifiers/typedefs followed when resolving a type (as libbpf/kernel).
MAX_RESOLVE_DEPTH = 32


class BtfKind(IntEnum):
    """``BTF_KIND_*`` from linux/btf.h."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# What follows the 12-byte ``struct btf_type``, per kind, in bytes: a fixed part and one
# record per ``vlen`` (kinds not listed: nothing).
BTF_KIND_EXTRA: dict[BtfKind, tuple[int, int]] = {
    BtfKind.INT: (4, 0),  # the encoding word
    BtfKind.ARRAY: (12, 0),  # struct btf_array
    BtfKind.STRUCT: (0, 12),  # struct btf_member
    BtfKind.UNION: (0, 12),
    BtfKind.ENUM: (0, 8),  # struct btf_enum
    BtfKind.FUNC_PROTO: (0, 8),  # struct btf_param
    BtfKind.VAR: (4, 0),  # struct btf_var
    BtfKind.DATASEC: (0, 12),  # struct btf_var_secinfo
    BtfKind.DECL_TAG: (4, 0),  # struct btf_decl_tag
    BtfKind.ENUM64: (0, 12),  # struct btf_enum64
}
# The same in 32-bit words, indexed by the 5-bit kind number (for walks over a type
# section as an array of words).
_EXTRA_BY_NO = {int(k): extra for k, extra in BTF_KIND_EXTRA.items()}
BTF_FIXED_WORDS = tuple(_EXTRA_BY_NO.get(k, (0, 0))[0] // 4 for k in range(32))
BTF_RECORD_WORDS = tuple(_EXTRA_BY_NO.get(k, (0, 0))[1] // 4 for k in range(32))

# BTF_INT_ENCODING bits.
BTF_INT_SIGNED = 1 << 0
BTF_INT_CHAR = 1 << 1
BTF_INT_BOOL = 1 << 2


class VarLinkage(IntEnum):
    """``BTF_VAR_*`` linkage of a VAR."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


class FuncLinkage(IntEnum):
    """``enum btf_func_linkage``."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class CoreReloKind(IntEnum):
    """``enum bpf_core_relo_kind`` from linux/bpf.h."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


# .BTF.ext (libbpf's struct btf_ext_header): magic, version, flags, hdr_len, then
# func_info_off/len, line_info_off/len and (hdr_len >= 32) core_relo_off/len.
BTF_EXT_HEADER_MIN = 24
BTF_EXT_HEADER_CORE = 32

# Record sizes (minimums; a section may declare a larger rec_size).
FUNC_INFO_SIZE = 8  # struct bpf_func_info
LINE_INFO_SIZE = 16  # struct bpf_line_info
CORE_RELO_SIZE = 16  # struct bpf_core_relo


def line_info_line(line_col: int) -> int:
    """``BPF_LINE_INFO_LINE_NUM``: the source line of a packed ``line_col``."""
    return line_col >> 10


def line_info_col(line_col: int) -> int:
    """``BPF_LINE_INFO_LINE_COL``: the source column of a packed ``line_col``."""
    return line_col & 0x3FF
