"""libseccomp as an oracle: build the same policy with it and export its program.

libseccomp is not a dependency of bpfkit. Debian's ``python3-seccomp`` binds it for the
system Python (``/usr/bin/python3``), so this module runs that interpreter as a
subprocess, hands it the exact sequence of ``seccomp_rule_add`` calls a profile makes
(:meth:`~bpfkit.seccomp.profile.Profile.libseccomp_calls`) and reads back the classic
program ``seccomp_export_bpf`` writes. Tests and ``bench/seccomp.py`` run both programs
on the same ``seccomp_data`` and compare decisions.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from ..classic.insn import SockFilter, decode
from ..errors import NotSupported
from .profile import Profile
from .tables import get_arch

SYSTEM_PYTHON = "/usr/bin/python3"

_ARCH_ATTR = {"x86_64": "X86_64", "i386": "X86", "x32": "X32", "aarch64": "AARCH64"}

_SCRIPT = r"""
import json, os, sys, tempfile, seccomp
jobs = json.load(sys.stdin)
out = []
def s32(v):
    return v - (1 << 32) if v >= (1 << 31) else v
for job in jobs:
    try:
        f = seccomp.SyscallFilter(s32(job["default"]))
        arches = [getattr(seccomp.Arch, a) for a in job["arches"]]
        native = seccomp.system_arch()
        if (arches[0] & 0xFFFFFFFF) != (native & 0xFFFFFFFF):
            f.add_arch(arches[0])
            f.remove_arch(seccomp.Arch.NATIVE)
        for a in arches[1:]:
            if not f.exist_arch(a):
                f.add_arch(a)
        if job.get("optimize"):
            f.set_attr(seccomp.Attr.CTL_OPTIMIZE, job["optimize"])
        for i, (name, action, conds) in enumerate(job["rules"]):
            args = []
            for idx, op, datum, mask in conds:
                if op == 7:
                    args.append(seccomp.Arg(idx, op, mask, datum))
                else:
                    args.append(seccomp.Arg(idx, op, datum))
            try:
                f.add_rule(s32(action), name, *args)
            except Exception as e:
                raise RuntimeError(f"rule {i} ({name}): {e}")
        fd, path = tempfile.mkstemp()
        try:
            with os.fdopen(fd, "wb") as fh:
                f.export_bpf(fh)
            with open(path, "rb") as fh:
                out.append({"bpf": fh.read().hex()})
        finally:
            os.unlink(path)
    except Exception as e:
        out.append({"error": str(e)})
json.dump(out, sys.stdout)
"""


@functools.cache
def available() -> tuple[bool, str]:
    """Whether the libseccomp oracle can run here, and why not."""
    if not os.path.exists(SYSTEM_PYTHON):
        return (
            False,
            f"{SYSTEM_PYTHON} not found (Debian's python3-seccomp binds libseccomp for it)",
        )
    proc = subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True, text=True)
    if proc.returncode != 0:
        return False, f"{SYSTEM_PYTHON} cannot import seccomp (install python3-seccomp)"
    return True, ""


@dataclass
class OracleResult:
    """libseccomp's program for one job, or the error it gave (e.g. a refused rule)."""

    program: list[SockFilter] | None
    error: str | None = None


def job(profile: Profile, native: str, optimize: int | None = None) -> dict:
    """The description of ``profile`` the oracle script builds (architectures as bpfkit orders them)."""
    arches = [get_arch(native).name]
    for a in profile.architectures:
        if get_arch(a).name not in arches:
            arches.append(get_arch(a).name)
    rules = [
        [name, action, [[c.index, c.op, c.datum, c.mask] for c in conds]]
        for name, action, conds in profile.libseccomp_calls()
    ]
    out = {
        "default": profile.default_action,
        "arches": [_ARCH_ATTR[a] for a in arches],
        "rules": rules,
    }
    if optimize:
        out["optimize"] = optimize
    return out


HANG = "libseccomp did not finish (timed out)"


def export(
    jobs: Sequence[dict], timeout: float = 120.0, job_timeout: float = 20.0
) -> list[OracleResult]:
    """Run libseccomp on a batch of jobs (one subprocess).

    libseccomp 2.5.4 can loop forever merging some rule sets; when the batch times out,
    each job is retried alone with ``job_timeout`` and the ones that still do not finish
    get the error :data:`HANG`.
    """
    ok, why = available()
    if not ok:
        raise NotSupported(why)
    jobs = list(jobs)
    try:
        out = _run(jobs, timeout)
    except subprocess.TimeoutExpired:
        if len(jobs) == 1 and job_timeout <= timeout:
            return [OracleResult(None, HANG)]  # the retry alone would time out again
        out = []
        for j in jobs:
            try:
                out.extend(_run([j], job_timeout))
            except subprocess.TimeoutExpired:
                out.append({"error": HANG})
    res = []
    for r in out:
        if "error" in r:
            res.append(OracleResult(None, r["error"]))
        else:
            res.append(OracleResult(decode(bytes.fromhex(r["bpf"]))))
    return res


def _run(jobs: list[dict], timeout: float) -> list[dict]:
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-c", _SCRIPT],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"libseccomp oracle failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def libseccomp_program(profile: Profile, native: str, optimize: int | None = None) -> OracleResult:
    """libseccomp's program for one profile."""
    return export([job(profile, native, optimize)])[0]


_RESOLVE = r"""
import json, sys, seccomp
req = json.load(sys.stdin)
out = {}
for arch, names in req.items():
    a = getattr(seccomp.Arch, arch)
    res = {}
    for n in names:
        try:
            res[n] = seccomp.resolve_syscall(a, n)
        except Exception:
            res[n] = None
    out[arch] = res
json.dump(out, sys.stdout)
"""


def resolve_names(arch: str, names: Sequence[str]) -> dict[str, int | None]:
    """libseccomp's ``seccomp_syscall_resolve_name_arch`` for each name (None: unknown)."""
    ok, why = available()
    if not ok:
        raise NotSupported(why)
    key = _ARCH_ATTR[get_arch(arch).name]
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-c", _RESOLVE],
        input=json.dumps({key: list(names)}),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)[key]
