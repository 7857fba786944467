"""Compile C to a BPF object with clang (``-O2 -g -target bpf``), as ``bpfkit build`` does."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BpfError

__all__ = [
    "find_clang",
    "include_dirs",
    "target_arch_define",
    "build_command",
    "compile_c",
    "BuildResult",
    "BuildError",
    "PREFERRED_CLANG",
    "build",
    "build_object",
]

PREFERRED_CLANG = "clang-19"
_CLANG_N = re.compile(r"^clang-(\d+)$")

# uname machine → the __TARGET_ARCH_* name bpf_tracing.h expects.
_ARCHES = {
    "x86_64": "x86",
    "amd64": "x86",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "s390x": "s390",
    "ppc64le": "powerpc",
    "ppc64": "powerpc",
    "riscv64": "riscv",
    "mips64": "mips",
    "loongarch64": "loongarch",
    "sparc64": "sparc",
}


class BuildError(BpfError):
    """The compiler is missing or rejected the source; ``output`` holds its diagnostics."""

    def __init__(self, message: str, output: str = "", command: list[str] | None = None):
        self.output = output
        self.command = command or []
        super().__init__(message)


@dataclass(slots=True)
class BuildResult:
    """What a build produced: the object path, the compiler and the exact command."""

    object: Path
    compiler: str
    command: list[str] = field(default_factory=list)
    diagnostics: str = ""


def find_clang(preferred: str | None = None) -> str:
    """The clang to use: ``preferred``, else clang-19, else the newest ``clang-N``, else ``clang``."""
    if preferred:
        path = shutil.which(preferred)
        if path is None:
            raise BuildError(f"compiler {preferred!r} not found")
        return path
    path = shutil.which(PREFERRED_CLANG)
    if path:
        return path
    best: tuple[int, str] | None = None
    for d in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names = os.listdir(d or ".")
        except OSError:
            continue
        for n in names:
            m = _CLANG_N.match(n)
            if m and os.access(os.path.join(d, n), os.X_OK):
                cand = (int(m.group(1)), os.path.join(d, n))
                if best is None or cand[0] > best[0]:
                    best = cand
    if best is not None:
        return best[1]
    path = shutil.which("clang")
    if path:
        return path
    raise BuildError(
        "no clang found: install the Debian package clang-19 (or clang), "
        "e.g. `apt-get install clang-19 libbpf-dev`"
    )


def include_dirs() -> list[str]:
    """Host include directories BPF C needs beyond clang's defaults (``asm/types.h``)."""
    out = []
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    machine = platform.machine()
    for cand in (multiarch, f"{machine}-linux-gnu", f"{machine}-linux-gnueabihf"):
        if cand:
            d = f"/usr/include/{cand}"
            if os.path.isdir(d) and d not in out:
                out.append(d)
    return out


def target_arch_define() -> str | None:
    """``__TARGET_ARCH_<arch>`` for this host, so bpf_tracing.h's PT_REGS macros work."""
    arch = _ARCHES.get(platform.machine().lower())
    return f"__TARGET_ARCH_{arch}" if arch else None


def build_command(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    clang: str,
    includes: Sequence[str] = (),
    defines: Sequence[str] = (),
    mcpu: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The clang command line compiling ``src`` to ``out``."""
    cmd = [clang, "-O2", "-g", "-target", "bpf"]
    if mcpu:
        cmd.append(f"-mcpu={mcpu}")
    arch = target_arch_define()
    if arch and not any(d.startswith("__TARGET_ARCH_") for d in defines):
        cmd.append(f"-D{arch}")
    for d in defines:
        cmd.append(f"-D{d}")
    for inc in includes:
        cmd.append(f"-I{inc}")
    for inc in include_dirs():
        cmd += ["-idirafter", inc]
    cmd += list(extra)
    cmd += ["-c", os.fspath(src), "-o", os.fspath(out)]
    return cmd


def compile_c(
    src: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    includes: Sequence[str] = (),
    defines: Sequence[str] = (),
    mcpu: str | None = None,
    clang: str | None = None,
    extra: Sequence[str] = (),
    timeout: float = 300,
) -> BuildResult:
    """Compile a BPF C file; raises :class:`BuildError` with clang's diagnostics on failure."""
    src_path = Path(src)
    if not src_path.is_file():
        raise BuildError(f"source file not found: {src_path}")
    out_path = Path(out) if out is not None else src_path.with_suffix(".o")
    if mcpu is not None and not re.fullmatch(r"v[1-4]|generic|probe", mcpu):
        raise BuildError(f"bad -mcpu {mcpu!r} (expected v1, v2, v3, v4, generic or probe)")
    compiler = find_clang(clang)
    cmd = build_command(
        src_path,
        out_path,
        clang=compiler,
        includes=includes,
        defines=defines,
        mcpu=mcpu,
        extra=extra,
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"running {compiler} failed: {e}", command=cmd) from None
    if proc.returncode != 0:
        first = next(
            (ln for ln in proc.stderr.splitlines() if "error" in ln),
            proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "",
        )
        raise BuildError(
            f"clang failed ({proc.returncode}): {first}".rstrip(": "),
            output=proc.stderr,
            command=cmd,
        )
    return BuildResult(out_path, compiler, cmd, proc.stderr)


def build(
    src: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    includes: Sequence[str] = (),
    defines: Sequence[str] = (),
    mcpu: str | None = None,
    clang: str | None = None,
) -> Path:
    """Compile BPF C ``src`` into an object (``out``, default next to it) and return its path.

    Needs clang (clang-19 preferred): without one this raises
    :class:`~bpfkit.errors.NotSupported` saying what to install; a compile error raises
    :class:`BuildError` with clang's diagnostics.
    """
    from ..errors import NotSupported

    try:
        compiler = find_clang(clang)
    except BuildError as e:
        raise NotSupported(f"building C needs clang: {e}") from None
    return compile_c(src, out, includes=includes, defines=defines, mcpu=mcpu, clang=compiler).object


def build_object(src: str | os.PathLike, **options: object) -> bytes:
    """Compile BPF C ``src`` into a temporary object and return the object's bytes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bpfkit-build-") as d:
        path = build(src, Path(d) / (Path(src).stem + ".o"), **options)  # type: ignore[arg-type]
        return path.read_bytes()
