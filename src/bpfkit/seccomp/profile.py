"""seccomp profiles: the OCI runtime-spec / Docker JSON format and a Python builder.

A profile is a default action, the architectures it covers and a list of rules: syscall
names, an action, and argument conditions that must all hold. ``load_profile`` reads the
JSON that ``docker run --security-opt seccomp=...`` and OCI runtimes take (Docker's
``archMap`` and ``includes``/``excludes`` too, resolved the way Docker resolves them:
for one native architecture, a capability set and a kernel version). Every malformed
field is a ``ProfileError`` naming it (``syscalls[3].args[0].index: ...``).

The conversion to libseccomp calls follows runc: a rule whose action is the default
action is skipped (libseccomp would refuse it), several conditions on the same argument
index become separate rules (any one of them matches), ``errnoRet`` defaults to EPERM.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotSupported, ProfileError
from . import actions as act
from .db import M64, MASKED_EQ, OPS_BY_NAME, Cond
from .tables import ARCHES, Arch, get_arch, known_names, native_arch

# Docker's default capability set for a container (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = frozenset(
    {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    }
)


@dataclass(frozen=True)
class Arg:
    """One argument condition of a rule, as the profile writes it.

    ``op`` is ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge`` or ``masked_eq`` (or the
    ``SCMP_CMP_*`` spelling). For ``masked_eq``, ``value`` is the mask and ``value_two``
    the value the masked argument must equal.
    """

    index: int
    op: str
    value: int
    value_two: int = 0

    def cond(self) -> Cond:
        """The database form: ``(arg & mask) <op> datum``."""
        op = _op(self.op, "op")
        if op == MASKED_EQ:
            return Cond(self.index, op, self.value_two & self.value, self.value)
        return Cond(self.index, op, self.value, M64)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "value": self.value}
        if self.value_two:
            out["valueTwo"] = self.value_two
        out["op"] = "SCMP_CMP_" + _op_name(_op(self.op, "op")).upper()
        return out


@dataclass
class Rule:
    """Syscall names, the action (a ``SECCOMP_RET_*`` value) and conditions that all hold."""

    names: list[str]
    action: int
    args: list[Arg] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"names": list(self.names)}
        out.update(_action_json(self.action))
        if self.args:
            out["args"] = [a.to_json() for a in self.args]
        return out


@dataclass
class Profile:
    """A seccomp policy: ``default_action`` for everything no rule decides, then rules.

    ``architectures`` are the ABIs besides the native one the filter accepts (names from
    :data:`~bpfkit.seccomp.tables.ARCHES`); a process of any other ABI gets
    ``bad_arch_action`` (KILL_THREAD, libseccomp's default).
    """

    default_action: int = act.RET_ERRNO | act.EPERM
    architectures: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    bad_arch_action: int = act.RET_KILL_THREAD
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def new(
        cls,
        default_action: str = "errno",
        *,
        errno: int | None = None,
        architectures: Iterable[str] = (),
    ) -> Profile:
        """A profile from action names: ``Profile.new("errno", errno=1)``."""
        return cls(
            act.action_value(default_action, errno, field="defaultAction"),
            [get_arch(a).name for a in architectures],
        )

    def add(
        self, action: str, names: str | Iterable[str], *args: Arg, errno: int | None = None
    ) -> Profile:
        """Add a rule: ``p.add("allow", ["read", "write"])``, ``p.add("errno", "mkdir", errno=13)``."""
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            _check_name(n, "names")
        for a in args:
            _check_arg(a, "args")
        self.rules.append(Rule(names, act.action_value(action, errno), list(args)))
        return self

    def to_json(self) -> dict[str, Any]:
        """The OCI JSON form (what :func:`parse_profile` reads back)."""
        out: dict[str, Any] = {}
        d = _action_json(self.default_action)
        out["defaultAction"] = d["action"]
        if "errnoRet" in d:
            out["defaultErrnoRet"] = d["errnoRet"]
        out["architectures"] = [ARCHES[a].scmp for a in self.architectures]
        out["syscalls"] = [r.to_json() for r in self.rules]
        return out

    def libseccomp_calls(self) -> Iterable[tuple[str, int, list[Cond]]]:
        """``(name, action, conditions)`` in the order runc hands them to libseccomp."""
        for rule in self.rules:
            if rule.action == self.default_action:
                continue  # runc: redundant with the default; libseccomp refuses it (EACCES)
            conds = [a.cond() for a in rule.args]
            indexes = [c.index for c in conds]
            split = len(set(indexes)) != len(indexes)
            for name in rule.names:
                if split:
                    for c in conds:
                        yield name, rule.action, [c]
                else:
                    yield name, rule.action, conds


def _action_json(ret: int) -> dict[str, Any]:
    name = act.action_name(ret)
    spelled = {"kill_thread": "SCMP_ACT_KILL_THREAD"}.get(name, "SCMP_ACT_" + name.upper())
    out: dict[str, Any] = {"action": spelled}
    if name in ("errno", "trace"):
        out["errnoRet"] = ret & act.RET_DATA
    return out


def _op(op: Any, where: str) -> int:
    if not isinstance(op, str):
        raise ProfileError(f"{where}: expected an operator name, got {op!r}")
    key = op.strip().lower()
    if key.startswith("scmp_cmp_"):
        key = key[len("scmp_cmp_") :]
    if key not in OPS_BY_NAME:
        raise ProfileError(
            f"{where}: unknown operator {op!r} (SCMP_CMP_EQ, NE, LT, LE, GT, GE, MASKED_EQ)"
        )
    return OPS_BY_NAME[key]


def _op_name(op: int) -> str:
    return {v: k for k, v in OPS_BY_NAME.items()}[op]


def _u64(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileError(f"{where}: expected an unsigned 64-bit integer, got {v!r}")
    if not 0 <= v <= M64:
        raise ProfileError(f"{where}: {v} does not fit an unsigned 64-bit integer")
    return v


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{where}: expected a syscall name, got {name!r}")
    if name not in known_names():
        raise ProfileError(f"{where}: unknown syscall {name!r}")
    return name


def _check_arg(a: Arg, where: str) -> None:
    if isinstance(a.index, bool) or not isinstance(a.index, int) or not 0 <= a.index <= 5:
        raise ProfileError(f"{where}.index: {a.index!r} is not an argument index 0..5")
    _op(a.op, f"{where}.op")
    _u64(a.value, f"{where}.value")
    _u64(a.value_two, f"{where}.valueTwo")


# --- JSON ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DockerContext:
    """What Docker resolves ``archMap`` and ``includes``/``excludes`` against.

    ``arch``: the native architecture; ``caps``: the container's capabilities (Docker's
    default set unless given); ``kernel``: the kernel version ``minKernel`` compares with
    (the running kernel's unless given).
    """

    arch: Arch
    caps: frozenset[str] = DOCKER_DEFAULT_CAPS
    kernel: tuple[int, ...] = ()

    @classmethod
    def default(
        cls,
        arch: str | Arch | None = None,
        caps: Iterable[str] | None = None,
        kernel: str | None = None,
    ) -> DockerContext:
        a = get_arch(arch) if arch is not None else native_arch()
        c = frozenset(DOCKER_DEFAULT_CAPS if caps is None else (_cap(x) for x in caps))
        k = _kernel_version(kernel if kernel is not None else os.uname().release, "kernel")
        return cls(a, c, k)


def _cap(name: str) -> str:
    name = name.strip().upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _kernel_version(text: Any, where: str) -> tuple[int, ...]:
    if not isinstance(text, str):
        raise ProfileError(f"{where}: expected a kernel version string, got {text!r}")
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not m:
        raise ProfileError(f"{where}: {text!r} is not a kernel version like 4.8")
    return tuple(int(g) for g in m.groups() if g is not None)


def _list(v: Any, where: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise ProfileError(f"{where}: expected a list, got {type(v).__name__}")
    return v


def _obj(v: Any, where: str) -> Mapping:
    if not isinstance(v, dict):
        raise ProfileError(f"{where}: expected an object, got {type(v).__name__}")
    return v


def _arch_field(v: Any, where: str) -> Arch:
    if not isinstance(v, str):
        raise ProfileError(f"{where}: expected an architecture name, got {v!r}")
    try:
        return get_arch(v)
    except ProfileError as e:
        raise ProfileError(f"{where}: {e}") from None


def _filter_matches(flt: Mapping, ctx: DockerContext, where: str, include: bool) -> bool:
    """Docker's includes/excludes test: does this filter match the context?"""
    arches = [str(x) for x in _list(flt.get("arches"), f"{where}.arches")]
    caps = [_cap(str(x)) for x in _list(flt.get("caps"), f"{where}.caps")]
    min_kernel = flt.get("minKernel")
    mk = _kernel_version(min_kernel, f"{where}.minKernel") if min_kernel is not None else None
    if include:
        if arches and ctx.arch.goarch not in arches:
            return False
        if caps and not all(c in ctx.caps for c in caps):
            return False
        if mk is not None and ctx.kernel < mk:
            return False
        return True
    if arches and ctx.arch.goarch in arches:
        return True
    if caps and any(c in ctx.caps for c in caps):
        return True
    if mk is not None and ctx.kernel >= mk:
        return True
    return False


def parse_profile(doc: Any, ctx: DockerContext | None = None) -> Profile:
    """A :class:`Profile` from the decoded JSON of an OCI or Docker seccomp profile."""
    ctx = ctx or DockerContext.default()
    top = _obj(doc, "profile")
    if "defaultAction" not in top:
        raise ProfileError("defaultAction: missing")
    errno_default = top.get("defaultErrnoRet")
    try:
        default = act.action_value(top["defaultAction"], errno_default, field="defaultAction")
    except ProfileError as e:
        if "errnoRet" in str(e) and errno_default is not None:
            raise ProfileError(f"defaultErrnoRet: {e}".replace("defaultAction: ", "")) from None
        raise
    prof = Profile(default)
    if "architectures" in top and "archMap" in top and top["architectures"] and top["archMap"]:
        raise ProfileError("archMap: a profile gives either architectures or archMap, not both")
    for i, a in enumerate(_list(top.get("architectures"), "architectures")):
        prof.architectures.append(_arch_field(a, f"architectures[{i}]").name)
    for i, entry in enumerate(_list(top.get("archMap"), "archMap")):
        where = f"archMap[{i}]"
        entry = _obj(entry, where)
        main = entry.get("architecture")
        if not isinstance(main, str):
            raise ProfileError(f"{where}.architecture: expected an architecture name")
        try:
            main_arch = get_arch(main)
        except ProfileError:
            continue  # an architecture bpfkit has no table for cannot be the native one
        if main_arch.name != ctx.arch.name:
            continue
        prof.architectures.append(main_arch.name)
        for j, sub in enumerate(_list(entry.get("subArchitectures"), f"{where}.subArchitectures")):
            try:
                prof.architectures.append(get_arch(str(sub)).name)
            except ProfileError:
                prof.warnings.append(
                    f"{where}.subArchitectures[{j}]: {sub} has no syscall table in bpfkit; "
                    "its processes get the bad-architecture action"
                )
    for i, entry in enumerate(_list(top.get("syscalls"), "syscalls")):
        where = f"syscalls[{i}]"
        entry = _obj(entry, where)
        names_raw = entry.get("names")
        if names_raw is None and "name" in entry:
            names_raw = [entry["name"]]
        names = [
            _check_name(n, f"{where}.names[{j}]")
            for j, n in enumerate(_list(names_raw, f"{where}.names"))
        ]
        if not names:
            raise ProfileError(f"{where}.names: no syscall names")
        if "action" not in entry:
            raise ProfileError(f"{where}.action: missing")
        errno_ret = entry.get("errnoRet")
        try:
            action = act.action_value(entry["action"], errno_ret, field=f"{where}.action")
        except NotSupported:
            raise
        except ProfileError as e:
            msg = str(e)
            if "errnoRet" in msg:
                msg = msg.replace(f"{where}.action", f"{where}.errnoRet")
            raise ProfileError(msg) from None
        args: list[Arg] = []
        for j, a in enumerate(_list(entry.get("args"), f"{where}.args")):
            aw = f"{where}.args[{j}]"
            a = _obj(a, aw)
            if "index" not in a:
                raise ProfileError(f"{aw}.index: missing")
            idx = a["index"]
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= 5:
                raise ProfileError(f"{aw}.index: {idx!r} is not an argument index 0..5")
            if "op" not in a:
                raise ProfileError(f"{aw}.op: missing")
            op = a["op"]
            _op(op, f"{aw}.op")
            value = _u64(a.get("value", 0), f"{aw}.value")
            value_two = _u64(a.get("valueTwo", 0), f"{aw}.valueTwo")
            args.append(Arg(idx, op, value, value_two))
        inc, exc = entry.get("includes"), entry.get("excludes")
        if exc is not None and _filter_matches(
            _obj(exc, f"{where}.excludes"), ctx, f"{where}.excludes", False
        ):
            continue
        if inc is not None and not _filter_matches(
            _obj(inc, f"{where}.includes"), ctx, f"{where}.includes", True
        ):
            continue
        prof.rules.append(Rule(names, action, args))
    return prof


def load_profile(
    source: str | os.PathLike[str] | Mapping,
    *,
    arch: str | Arch | None = None,
    caps: Iterable[str] | None = None,
    kernel: str | None = None,
) -> Profile:
    """Read a profile from a JSON file (or ``"docker-default"``, or decoded JSON).

    ``arch``/``caps``/``kernel`` resolve Docker's ``archMap`` and ``includes``/``excludes``
    (defaults: this machine, Docker's default capabilities, the running kernel).
    """
    ctx = DockerContext.default(arch, caps, kernel)
    if isinstance(source, Mapping):
        return parse_profile(source, ctx)
    path = str(source)
    if path == "docker-default":
        path = str(docker_default_path())
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ProfileError(f"{path}: cannot read the profile: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not a text file") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(
            f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except RecursionError:
        raise ProfileError(f"{path}: JSON nested too deeply") from None
    return parse_profile(doc, ctx)


def docker_default_path() -> Path:
    """The shipped copy of Docker's default profile (see ``profiles/README.md``)."""
    return Path(__file__).resolve().parent / "profiles" / "docker-default.json"


def names_of(rules: Sequence[Rule]) -> list[str]:
    """Every syscall name the rules mention, in order, once."""
    seen: dict[str, None] = {}
    for r in rules:
        for n in r.names:
            seen.setdefault(n, None)
    return list(seen)
