"""BTF: parse every kind, print types as C, decode/encode values, read ``.BTF.ext``."""

from typing import TYPE_CHECKING

from .._lazy import exports
from ..uapi.btf import BtfKind, CoreReloKind, FuncLinkage, VarLinkage

if TYPE_CHECKING:
    from .cprint import dump_c, format_definition, type_to_c
    from .ext import BtfExt, CoreReloRecord, FuncInfoRecord, LineInfoRecord, parse_btf_ext
    from .parser import encode_btf, parse_btf
    from .types import (
        Array,
        Btf,
        BtfType,
        Const,
        Datasec,
        DeclTag,
        Enum,
        Enum64,
        EnumValue,
        Float,
        Func,
        FuncProto,
        Fwd,
        Int,
        Member,
        Param,
        Ptr,
        Restrict,
        Struct,
        Typedef,
        TypeTag,
        Union,
        Var,
        VarSecinfo,
        Void,
        Volatile,
    )
    from .values import decode_value, encode_value

# The names below come from their modules on first use (PEP 562): importing one part
# of the package (the object loader needs only the types, the parser and .BTF.ext)
# does not import the C printer or the value codecs.
_HOME = {
    "type_to_c": "cprint",
    "format_definition": "cprint",
    "dump_c": "cprint",
    "parse_btf_ext": "ext",
    "BtfExt": "ext",
    "FuncInfoRecord": "ext",
    "LineInfoRecord": "ext",
    "CoreReloRecord": "ext",
    "parse_btf": "parser",
    "encode_btf": "parser",
    "decode_value": "values",
    "encode_value": "values",
}


__all__ = [
    "Btf",
    "BtfType",
    "BtfKind",
    "CoreReloKind",
    "FuncLinkage",
    "VarLinkage",
    "Void",
    "Int",
    "Ptr",
    "Array",
    "Member",
    "Struct",
    "Union",
    "EnumValue",
    "Enum",
    "Enum64",
    "Fwd",
    "Typedef",
    "Volatile",
    "Const",
    "Restrict",
    "Func",
    "Param",
    "FuncProto",
    "Var",
    "VarSecinfo",
    "Datasec",
    "Float",
    "DeclTag",
    "TypeTag",
    "parse_btf",
    "encode_btf",
    "parse_btf_ext",
    "BtfExt",
    "FuncInfoRecord",
    "LineInfoRecord",
    "CoreReloRecord",
    "type_to_c",
    "format_definition",
    "dump_c",
    "decode_value",
    "encode_value",
]

__getattr__, __dir__ = exports(__name__, {**dict.fromkeys(__all__, "types"), **_HOME})
