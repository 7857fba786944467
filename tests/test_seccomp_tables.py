"""Syscall tables: shipped data equals the kernel's tables and libseccomp's resolver.

Two independent sources: the Linux 6.12 source tarball (re-parsed here with the
generator's parser; skips with the reason if absent; its four table files are
extracted once per tarball into ~/.cache/bpfkit, see scripts/gen_syscalls.py) and
libseccomp's ``resolve_syscall`` (Debian's python3-seccomp).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from bpfkit.errors import ProfileError
from bpfkit.seccomp.tables import (
    ARCHES,
    IPCCALLS,
    SOCKETCALLS,
    X32_SYSCALL_BIT,
    get_arch,
    resolve,
    table,
)

ROOT = Path(__file__).resolve().parent.parent
TARBALL = "/usr/src/linux-source-6.12.tar.xz"


def _gen():
    spec = importlib.util.spec_from_file_location(
        "gen_syscalls", ROOT / "scripts" / "gen_syscalls.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tables_match_the_kernel_tarball() -> None:
    if not os.path.exists(TARBALL):
        pytest.skip(f"{TARBALL} not present (scripts/setup installs linux-source-6.12)")
    gen = _gen()
    # the table files, extracted from this tarball once (cache keyed by size and mtime)
    expected = gen.tables_from_texts(gen.extract_cached(TARBALL))
    for arch in ARCHES:
        assert table(arch) == expected[arch], arch


def test_tables_match_libseccomp() -> None:
    from test_seccomp_oracle import require_oracle

    from bpfkit.seccomp.libseccomp import resolve_names

    require_oracle()
    agree = unknown = 0
    for arch in ARCHES:
        ours = table(arch)
        theirs = resolve_names(arch, sorted(ours))
        for name, nr in ours.items():
            got = theirs[name]
            if got is None or got < 0:
                unknown += 1  # newer than libseccomp 2.5.4's table (e.g. 6.x syscalls)
                continue
            if arch == "i386" and (name in SOCKETCALLS or name in IPCCALLS) and got in (102, 117):
                continue  # libseccomp answers with the multiplexer, socketcall(2) / ipc(2)
            assert got == nr, (arch, name, got, nr)
            agree += 1
    assert agree > 1400 and unknown < 150, (agree, unknown)


def test_shapes_and_lookup_errors() -> None:
    assert table("x86_64")["read"] == 0 and table("i386")["read"] == 3
    assert table("aarch64")["read"] == 63 and table("x32")["read"] == X32_SYSCALL_BIT
    assert all(nr & X32_SYSCALL_BIT for nr in table("x32").values())
    assert get_arch("SCMP_ARCH_X86").name == "i386" and get_arch(0xC00000B7).name == "aarch64"
    with pytest.raises(ProfileError, match="frobnicate"):
        resolve("x86_64", "frobnicate")
    with pytest.raises(ProfileError, match="does not exist on x86_64"):
        resolve("x86_64", "_llseek")
    with pytest.raises(ProfileError, match="not supported"):
        get_arch("SCMP_ARCH_PPC64LE")
