"""The pcap-filter grammar (lark, LALR) and the walk that drives code generation.

The grammar is libpcap's, reshaped for lark: arithmetic precedence is spelled out in
levels (``|`` < ``&`` < shifts < ``+ -`` < ``* /`` < unary minus), and ``%``/``^`` — which
libpcap's yacc grammar leaves without a precedence, so they always shift — take
everything to their right (``a % b + c`` is ``a % (b + c)``). An identifier may stand
alone wherever a term may: libpcap gives it the qualifiers of the term before it
(``host a or b`` is ``host a or host b``), which the walk implements by threading the
qualifiers left to right; at the start of an expression, or after a protocol name or a
comparison, there are none and the identifier is a syntax error, as in libpcap.

The walk visits the tree in the order yacc reduces it, because code generation has side
effects on the compiler state (``vlan``/``mpls`` move every later test past their header).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from ..._cache import private_dir
from ...classic import insn as c
from .gencode import QERR, Arth, Block, CompileError, Compiler, Qual
from .ir import gen_and, gen_not, gen_or
from .lexer import LexError, tokenize

GRAMMAR = r"""
start: expr?

expr: term
    | expr AND term
    | expr OR term

term: rterm
    | NOT term

rterm: head id
     | LPAREN expr RPAREN
     | pname
     | arth relop arth
     | arth irelop arth
     | other
     | bid

bid: nid_atom
   | pnum

nid_atom: ID
        | HID SLASH NUM
        | HID NETMASK HID
        | HID
        | HID6 SLASH NUM
        | HID6
        | EID
        | AID

id: nid
  | pnum
  | LPAREN pid RPAREN

nid: nid_atom
   | NOT id

pid: nid
   | qid AND id
   | qid OR id

qid: pnum
   | pid

head: pqual dqual aqual
    | pqual dqual
    | pqual aqual
    | pqual PROTO
    | pqual PROTOCHAIN
    | pqual ndaqual

pqual: pname
     |

dqual: SRC | DST | SRC OR DST | DST OR SRC | SRC AND DST | DST AND SRC
     | ADDR1 | ADDR2 | ADDR3 | ADDR4 | RA | TA

aqual: HOST | NET | PORT | PORTRANGE

ndaqual: GATEWAY

pname: LINK | IP | ARP | RARP | SCTP | TCP | UDP | ICMP | IGMP | IGRP | PIM | VRRP | CARP
     | ATALK | AARP | DECNET | LAT | SCA | MOPDL | MOPRC | IPV6 | ICMPV6 | AH | ESP
     | ISO | ESIS | ISIS | L1 | L2 | IIH | LSP | SNP | PSNP | CSNP | CLNP | STP | IPX
     | NETBEUI | RADIO

other: pqual TK_BROADCAST
     | pqual TK_MULTICAST
     | LESS NUM
     | GREATER NUM
     | CBYTE NUM byteop NUM
     | INBOUND
     | OUTBOUND
     | IFINDEX NUM
     | VLAN pnum
     | VLAN
     | MPLS pnum
     | MPLS
     | PPPOED
     | PPPOES pnum
     | PPPOES
     | GENEVE pnum
     | GENEVE
     | LLC
     | LLC ID
     | unsupported

unsupported: TYPE | SUBTYPE | DIR | LANE | METAC | BCC | OAM | OAMF4 | OAMF4EC | OAMF4SC
           | SC | ILMIC | VPI | VCI | CONNECTMSG | METACONNECT | PF_IFNAME | PF_RSET
           | PF_RNR | PF_SRNR | PF_REASON | PF_ACTION | FISU | LSSU | MSU | HFISU | HLSSU
           | HMSU | SIO | OPC | DPC | SLS | HSIO | HOPC | HDPC | HSLS

relop: GT | GEQ | EQ
irelop: LEQ | LT | NEQ
byteop: AMP | PIPE | LT | GT | EQ

arth: a_or
a_or: a_or PIPE a_and | a_and
a_and: a_and AMP a_sh | a_sh
a_sh: a_sh LSH a_add | a_sh RSH a_add | a_add
a_add: a_add PLUS a_mul | a_add MINUS a_mul | a_mul
a_mul: a_mul STAR a_un | a_mul SLASH a_un | a_un
a_un: MINUS a_un
    | a_prim
    | a_prim PERCENT a_or
    | a_prim CARET a_or
a_prim: a_num
      | pname LBRACK arth RBRACK
      | pname LBRACK arth COLON NUM RBRACK
      | LEN
      | LPAREN a_or RPAREN
a_num.1: pnum

pnum: NUM
    | LPAREN pnum RPAREN

%declare AND OR NOT LPAREN RPAREN LBRACK RBRACK COLON SLASH NETMASK
%declare ID HID HID6 EID AID NUM
%declare PROTO PROTOCHAIN SRC DST ADDR1 ADDR2 ADDR3 ADDR4 RA TA HOST NET PORT PORTRANGE GATEWAY
%declare LINK IP ARP RARP SCTP TCP UDP ICMP IGMP IGRP PIM VRRP CARP ATALK AARP DECNET LAT SCA
%declare MOPDL MOPRC IPV6 ICMPV6 AH ESP ISO ESIS ISIS L1 L2 IIH LSP SNP PSNP CSNP CLNP STP IPX
%declare NETBEUI RADIO TK_BROADCAST TK_MULTICAST LESS GREATER CBYTE INBOUND OUTBOUND IFINDEX
%declare VLAN MPLS PPPOED PPPOES GENEVE LLC TYPE SUBTYPE DIR LANE METAC BCC OAM OAMF4 OAMF4EC
%declare OAMF4SC SC ILMIC VPI VCI CONNECTMSG METACONNECT PF_IFNAME PF_RSET PF_RNR PF_SRNR
%declare PF_REASON PF_ACTION FISU LSSU MSU HFISU HLSSU HMSU SIO OPC DPC SLS HSIO HOPC HDPC HSLS
%declare GT GEQ EQ LEQ LT NEQ AMP PIPE LSH RSH PLUS MINUS STAR PERCENT CARET LEN
"""


class _TokenLexer(Lexer):
    """Feeds the scanner's tokens (already made) to lark."""

    def __init__(self, lexer_conf) -> None:  # noqa: ANN001 - lark's signature
        pass

    def lex(self, data):  # noqa: ANN001, ANN201
        for t in data:
            tok = Token(t.type, t, start_pos=t.column - 1, line=1, column=t.column)
            yield tok


_parser: Lark | None = None


def _cache_file() -> str | None:
    """Where lark keeps the analysed grammar between runs (a private per-user directory)."""
    import hashlib

    import lark

    d = private_dir()
    if d is None:
        return None
    tag = hashlib.sha256((GRAMMAR + lark.__version__).encode()).hexdigest()[:16]
    return os.path.join(d, f"pcap-filter-grammar-{tag}.lark")


def _get_parser() -> Lark:
    global _parser
    if _parser is None:
        options = {"parser": "lalr", "lexer": _TokenLexer, "keep_all_tokens": True}
        cache = _cache_file()
        try:
            _parser = Lark(GRAMMAR, cache=cache, **options) if cache else Lark(GRAMMAR, **options)
        except Exception:  # a damaged cache file: rebuild without it
            _parser = Lark(GRAMMAR, **options)
    return _parser


class FilterError(Exception):
    """A syntax or compile error, with the 1-based column it refers to (None: unknown)."""

    def __init__(self, message: str, column: int | None):
        super().__init__(message)
        self.message = message
        self.column = column


def _first_column(node: Tree | Token) -> int | None:
    if isinstance(node, Token):
        return node.value.column
    for ch in node.children:
        col = _first_column(ch)
        if col is not None:
            return col
    return None


PNAME_PROTO = {
    "LINK": "link",
    "IP": "ip",
    "ARP": "arp",
    "RARP": "rarp",
    "SCTP": "sctp",
    "TCP": "tcp",
    "UDP": "udp",
    "ICMP": "icmp",
    "IGMP": "igmp",
    "IGRP": "igrp",
    "PIM": "pim",
    "VRRP": "vrrp",
    "CARP": "carp",
    "ATALK": "atalk",
    "AARP": "aarp",
    "DECNET": "decnet",
    "LAT": "lat",
    "SCA": "sca",
    "MOPDL": "mopdl",
    "MOPRC": "moprc",
    "IPV6": "ip6",
    "ICMPV6": "icmp6",
    "AH": "ah",
    "ESP": "esp",
    "ISO": "iso",
    "ESIS": "esis",
    "ISIS": "isis",
    "L1": "l1",
    "L2": "l2",
    "IIH": "iih",
    "LSP": "lsp",
    "SNP": "snp",
    "PSNP": "psnp",
    "CSNP": "csnp",
    "CLNP": "clnp",
    "STP": "stp",
    "IPX": "ipx",
    "NETBEUI": "netbeui",
    "RADIO": "radio",
}
DQUAL = {
    "SRC": "src",
    "DST": "dst",
    "ADDR1": "addr1",
    "ADDR2": "addr2",
    "ADDR3": "addr3",
    "ADDR4": "addr4",
    "RA": "ra",
    "TA": "ta",
}
AQUAL = {"HOST": "host", "NET": "net", "PORT": "port", "PORTRANGE": "portrange"}
ALU_OPS = {
    "PLUS": c.ADD,
    "MINUS": c.SUB,
    "STAR": c.MUL,
    "SLASH": c.DIV,
    "PERCENT": c.MOD,
    "AMP": c.AND,
    "PIPE": c.OR,
    "CARET": c.XOR,
    "LSH": c.LSH,
    "RSH": c.RSH,
}
RELOPS = {"GT": c.JGT, "GEQ": c.JGE, "EQ": c.JEQ, "LEQ": c.JGT, "LT": c.JGE, "NEQ": c.JEQ}


def _types(node: Tree) -> list[str]:
    return [ch.type if isinstance(ch, Token) else ch.data for ch in node.children]


class Walker:
    """Generates code for a parse tree, threading libpcap's "previous qualifiers"."""

    def __init__(self, cs: Compiler):
        self.cs = cs

    def _err(self, node: Tree | Token, e: CompileError) -> FilterError:
        return FilterError(str(e), _first_column(node))

    # expr / term ------------------------------------------------------------------------

    def expr(self, node: Tree, q: Qual) -> tuple[Block, Qual]:
        # left-recursive: walk the left spine iteratively (deep "a or b or c ..." chains)
        spine = []
        while len(node.children) == 3:
            spine.append(node)
            node = node.children[0]
        b, q = self.term(node.children[0], q)
        for n in reversed(spine):
            op = n.children[1].type
            b2, q = self.term(n.children[2], q)
            (gen_and if op == "AND" else gen_or)(b, b2)
            b = b2
        return b, q

    def term(self, node: Tree, q: Qual) -> tuple[Block, Qual]:
        negations = 0
        while len(node.children) == 2:  # NOT term
            negations += 1
            node = node.children[1]
        b, q = self.rterm(node.children[0], q)
        for _ in range(negations):
            gen_not(b)
        return b, q

    def rterm(self, node: Tree, q: Qual) -> tuple[Block, Qual]:
        ch = node.children
        kinds = _types(node)
        try:
            if kinds == ["head", "id"]:
                hq = self.head(ch[0])
                b, _ = self.id_(ch[1], hq)
                return b, hq
            if kinds[0] == "LPAREN":
                b, _ = self.expr(ch[1], q)
                return b, q
            if kinds == ["pname"]:
                return self.cs.gen_proto_abbrev(self.pname(ch[0])), QERR
            if kinds[0] == "arth":
                a0 = self.arth(ch[0])
                a1 = self.arth(ch[2])
                rel = ch[1].children[0].type
                reversed_ = ch[1].data == "irelop"
                return self.cs.gen_relation(RELOPS[rel], a0, a1, reversed_), QERR
            if kinds == ["other"]:
                return self.other(ch[0]), QERR
            if kinds == ["bid"]:
                return self.bid(ch[0], q), q
        except CompileError as e:
            raise self._err(node, e) from None
        raise AssertionError(kinds)

    # identifiers ------------------------------------------------------------------------

    def bid(self, node: Tree, q: Qual) -> Block:
        inner = node.children[0]
        if inner.data == "pnum":
            return self.cs.gen_ncode(None, self.pnum(inner), q)
        return self.nid_atom(inner, q)

    def nid_atom(self, node: Tree, q: Qual) -> Block:
        ch = node.children
        kinds = _types(node)
        try:
            first = ch[0].value
            if kinds == ["ID"]:
                return self.cs.gen_scode(first.value, q)
            if kinds[0] == "HID":
                self._check_addr_qual(q, "IP address", " and prefix length" if len(ch) > 1 else "")
                if len(ch) == 1:
                    return self.cs.gen_ncode(first.value, 0, q)
                if kinds[1] == "SLASH":
                    return self.cs.gen_mcode(first.value, None, ch[2].value.value, q)
                return self.cs.gen_mcode(first.value, ch[2].value.value, 0, q)
            if kinds[0] == "HID6":
                self._check_addr_qual(q, "IP address", " and prefix length" if len(ch) > 1 else "")
                masklen = ch[2].value.value if len(ch) > 1 else 128
                return self.cs.gen_mcode6(first.value, masklen, q)
            if kinds == ["EID"]:
                return self.cs.gen_ecode(first.value, q)
            if kinds == ["AID"]:
                raise CompileError("aid supported only on ARCnet")
        except CompileError as e:
            raise self._err(node, e) from None
        raise AssertionError(kinds)

    @staticmethod
    def _check_addr_qual(q: Qual, what: str, suffix: str) -> None:
        if q.addr in ("port", "portrange", "proto", "protochain"):
            raise CompileError(f"'{q.addr}' modifier applied to {what}{suffix}")

    def id_(self, node: Tree, q: Qual) -> tuple[Block, Qual]:
        ch = node.children
        kinds = _types(node)
        if kinds == ["nid"]:
            return self.nid(ch[0], q), q
        if kinds == ["pnum"]:
            try:
                return self.cs.gen_ncode(None, self.pnum(ch[0]), q), q
            except CompileError as e:
                raise self._err(node, e) from None
        return self.pid(ch[1], q), q

    def nid(self, node: Tree, q: Qual) -> Block:
        ch = node.children
        if len(ch) == 1:
            return self.nid_atom(ch[0], q)
        b, _ = self.id_(ch[1], q)
        gen_not(b)
        return b

    def pid(self, node: Tree, q: Qual) -> Block:
        ch = node.children
        if len(ch) == 1:
            return self.nid(ch[0], q)
        qid = ch[0]
        if qid.children[0].data == "pnum":
            try:
                b = self.cs.gen_ncode(None, self.pnum(qid.children[0]), q)
            except CompileError as e:
                raise self._err(qid, e) from None
        else:
            b = self.pid(qid.children[0], q)
        b2, _ = self.id_(ch[2], q)
        (gen_and if ch[1].type == "AND" else gen_or)(b, b2)
        return b2

    def pnum(self, node: Tree) -> int:
        while len(node.children) == 3:
            node = node.children[1]
        return node.children[0].value.value

    # qualifiers -------------------------------------------------------------------------

    def pname(self, node: Tree) -> str:
        return PNAME_PROTO[node.children[0].type]

    def pqual(self, node: Tree) -> str:
        return self.pname(node.children[0]) if node.children else "default"

    def head(self, node: Tree) -> Qual:
        ch = node.children
        proto = self.pqual(ch[0])
        dir_ = "default"
        addr = "default"
        for part in ch[1:]:
            if isinstance(part, Token):
                addr = {"PROTO": "proto", "PROTOCHAIN": "protochain"}[part.type]
            elif part.data == "dqual":
                toks = [t.type for t in part.children]
                if len(toks) == 3:
                    dir_ = "or" if toks[1] == "OR" else "and"
                else:
                    dir_ = DQUAL[toks[0]]
            elif part.data == "aqual":
                addr = AQUAL[part.children[0].type]
            else:
                addr = "gateway"
        return Qual(proto, dir_, addr)

    # other primitives -------------------------------------------------------------------

    def other(self, node: Tree) -> Block:
        ch = node.children
        kinds = _types(node)
        cs = self.cs
        k0 = kinds[0]
        if k0 == "pqual":
            proto = self.pqual(ch[0])
            if kinds[1] == "TK_BROADCAST":
                return cs.gen_broadcast(proto)
            return cs.gen_multicast(proto)
        if k0 == "LESS":
            return cs.gen_less(ch[1].value.value)
        if k0 == "GREATER":
            return cs.gen_greater(ch[1].value.value)
        if k0 == "CBYTE":
            op = ch[2].children[0].value.text
            return cs.gen_byteop(op, ch[1].value.value, ch[3].value.value)
        if k0 in ("INBOUND", "OUTBOUND"):
            return cs.gen_inbound(k0 == "OUTBOUND")
        if k0 == "IFINDEX":
            return cs.gen_ifindex(ch[1].value.value)
        if k0 == "VLAN":
            return cs.gen_vlan(self.pnum(ch[1]) if len(ch) > 1 else 0, len(ch) > 1)
        if k0 == "MPLS":
            return cs.gen_mpls(self.pnum(ch[1]) if len(ch) > 1 else 0, len(ch) > 1)
        if k0 == "PPPOED":
            return cs.gen_pppoed()
        if k0 == "unsupported":
            word = ch[0].children[0].value.text
            raise CompileError(f"'{word}' filters are not supported by bpfkit")
        word = ch[0].value.text
        raise CompileError(f"'{word}' filters are not supported by bpfkit")

    # arithmetic -------------------------------------------------------------------------

    def arth(self, node: Tree) -> Arth:
        return self.a_bin(node.children[0])

    def a_bin(self, node: Tree) -> Arth:
        ch = node.children
        if node.data == "a_un":
            return self.a_un(node)
        if len(ch) == 1:
            return self.a_bin(ch[0])
        a0 = self.a_bin(ch[0])
        a1 = self.a_bin(ch[2])
        return self.cs.gen_arth(ALU_OPS[ch[1].type], a0, a1)

    def a_un(self, node: Tree) -> Arth:
        ch = node.children
        if isinstance(ch[0], Token):  # MINUS a_un
            return self.cs.gen_neg(self.a_un(ch[1]))
        if len(ch) == 1:
            return self.a_prim(ch[0])
        a0 = self.a_prim(ch[0])
        a1 = self.a_bin(ch[2])
        return self.cs.gen_arth(ALU_OPS[ch[1].type], a0, a1)

    def a_prim(self, node: Tree) -> Arth:
        ch = node.children
        cs = self.cs
        first = ch[0]
        if isinstance(first, Tree) and first.data == "a_num":
            return cs.gen_loadi(self.pnum(first.children[0]))
        if isinstance(first, Tree) and first.data == "pname":
            index = self.arth(ch[2])
            size = ch[4].value.value if len(ch) == 6 else 1
            try:
                return cs.gen_load(self.pname(first), index, size)
            except CompileError as e:
                raise self._err(node, e) from None
        if first.type == "LEN":
            return cs.gen_loadlen()
        return self.a_bin(ch[1])


@contextmanager
def _deep_recursion(limit: int):
    old = sys.getrecursionlimit()
    if limit > old:
        sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def parse_and_generate(expr: str, cs: Compiler) -> Block | None:
    """Parse ``expr`` and generate its blocks into ``cs``; None for an empty expression."""
    try:
        tokens = tokenize(expr)
    except LexError as e:
        raise FilterError(str(e), e.column) from None
    if not tokens:
        return None
    try:
        tree = _get_parser().parse(tokens)
    except UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            raise FilterError("syntax error: unexpected end of expression", len(expr) + 1) from None
        word = tok.value.text if hasattr(tok.value, "text") else str(tok.value)
        raise FilterError(f"syntax error at {word!r}", tok.value.column) from None
    except (UnexpectedEOF, UnexpectedCharacters, UnexpectedInput) as e:
        raise FilterError(f"syntax error: {e}", len(expr) + 1) from None
    if not tree.children:
        return None
    with _deep_recursion(20000 + 50 * len(tokens)):
        walker = Walker(cs)
        b, _ = walker.expr(tree.children[0], QERR)
    return b
