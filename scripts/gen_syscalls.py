#!/usr/bin/env python3
"""Generate bpfkit's seccomp syscall tables (name <-> number) from the kernel source tarball.

    python3 scripts/gen_syscalls.py [--tarball /usr/src/linux-source-6.12.tar.xz]

Writes ``src/bpfkit/seccomp/data/syscalls.json`` with one table per ABI:

- ``x86_64``: ``arch/x86/entry/syscalls/syscall_64.tbl``, ABIs ``common`` and ``64``;
- ``x32``: the same file, ABIs ``common`` and ``x32``, numbers with ``__X32_SYSCALL_BIT``;
- ``i386``: ``arch/x86/entry/syscalls/syscall_32.tbl``, ABI ``i386``;
- ``aarch64``: ``scripts/syscall.tbl`` (the generic table arm64 builds its unistd from),
  ABIs ``common``, ``64`` and the ones ``arch/arm64/kernel/Makefile.syscalls`` adds.

With ``/usr/bin/python3`` and its ``seccomp`` module (libseccomp) present, it also writes
``src/bpfkit/seccomp/data/libseccomp_pnr.json``: libseccomp's *pseudo syscall numbers*
(negative numbers it uses for a name that does not exist on an architecture, e.g. ``send``
on x86_64) for every name it knows. libseccomp puts rules for such names into the filter
under that negative number; bpfkit needs the numbers to make the same decisions.

The test ``tests/test_seccomp_tables.py`` re-parses the tarball and compares. The four
files are extracted once per tarball (keyed by its size and mtime) into
``~/.cache/bpfkit/syscall-tables/`` (``$BPFKIT_CACHE_DIR`` overrides the root, as for every bpfkit cache).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "bpfkit" / "seccomp" / "data"
DEFAULT_TARBALL = "/usr/src/linux-source-6.12.tar.xz"
X32_SYSCALL_BIT = 0x40000000

# Paths inside the tarball (below its top directory).
MEMBERS = {
    "tbl64": "arch/x86/entry/syscalls/syscall_64.tbl",
    "tbl32": "arch/x86/entry/syscalls/syscall_32.tbl",
    "generic": "scripts/syscall.tbl",
    "arm64abis": "arch/arm64/kernel/Makefile.syscalls",
}


def extract(tarball: str, dest: str) -> dict[str, str]:
    """Extract the table files from the tarball into ``dest``; their texts by key."""
    top = os.path.basename(tarball).split(".tar", 1)[0]  # linux-source-6.12.tar.xz
    names = [f"{top}/{m}" for m in MEMBERS.values()]
    subprocess.run(["tar", "-xJf", tarball, "-C", dest, "--occurrence=1", *names], check=True)
    return {k: (Path(dest) / top / m).read_text() for k, m in MEMBERS.items()}


def cache_root() -> Path:
    """Where extracted table files are kept: under bpfkit's cache root
    (``bpfkit._cache.cache_root``: ``$BPFKIT_CACHE_DIR``, ``$XDG_CACHE_HOME/bpfkit`` or
    ``~/.cache/bpfkit``), like the verifier's selftests corpus."""
    from bpfkit._cache import cache_root as root

    base = root()
    return Path(base) / "syscall-tables"


def tarball_key(tarball: str) -> str:
    """``linux-source-6.12-<hash of name, size, mtime>``: a new tarball gets a new entry."""
    st = os.stat(tarball)
    name = os.path.basename(tarball)
    raw = f"{name}:{st.st_size}:{int(st.st_mtime)}"
    return name.split(".tar")[0] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:12]


def extract_cached(tarball: str, refresh: bool = False) -> dict[str, str]:
    """:func:`extract`, but once per tarball (size + mtime): xz must decompress the whole
    1.5 GB archive to reach a member, 20-40 s; later calls read the four small files."""
    d = cache_root() / tarball_key(tarball)
    files = {k: d / Path(m).name for k, m in MEMBERS.items()}
    if not refresh and all(f.is_file() for f in files.values()):
        return {k: f.read_text() for k, f in files.items()}
    with tempfile.TemporaryDirectory(prefix="bpfkit-gen-syscalls-") as tmp:
        texts = extract(tarball, tmp)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=d.name + ".", dir=d.parent))
    for k, f in files.items():
        (tmpdir / f.name).write_text(texts[k])
    try:
        os.replace(tmpdir, d)
    except OSError:  # another process filled it first (or a stale entry): keep ours aside
        shutil.rmtree(d, ignore_errors=True)
        try:
            os.replace(tmpdir, d)
        except OSError:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return texts


def parse_tbl(text: str, abis: set[str]) -> dict[str, int]:
    """``name -> number`` for the lines of a ``syscall*.tbl`` whose ABI is in ``abis``."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) < 3:
            continue
        nr, abi, name = int(fields[0]), fields[1], fields[2]
        if abi in abis:
            out[name] = nr
    return out


def arm64_abis(makefile: str) -> set[str]:
    """The ABIs ``arch/arm64/kernel/Makefile.syscalls`` adds to ``common`` and ``64``."""
    abis = {"common", "64"}
    for m in re.finditer(r"^syscall_abis_64\s*\+?=\s*(.*)$", makefile, re.M):
        abis.update(m.group(1).split())
    return abis


def tables_from_texts(texts: dict[str, str]) -> dict[str, dict[str, int]]:
    """The four tables from the kernel files' texts (shared with the test)."""
    x32 = {
        name: nr | X32_SYSCALL_BIT
        for name, nr in parse_tbl(texts["tbl64"], {"common", "x32"}).items()
    }
    return {
        "x86_64": parse_tbl(texts["tbl64"], {"common", "64"}),
        "x32": x32,
        "i386": parse_tbl(texts["tbl32"], {"i386"}),
        "aarch64": parse_tbl(texts["generic"], arm64_abis(texts["arm64abis"])),
    }


# Run by /usr/bin/python3 (libseccomp's binding): every name libseccomp knows on any of its
# architectures, and the pseudo number it gives a name on an architecture without it.
_PNR_SCRIPT = r"""
import json, seccomp
arches = [getattr(seccomp.Arch, a) for a in dir(seccomp.Arch)
          if not a.startswith("_") and a != "NATIVE"]
ranges = [range(0, 1100), range(4000, 4600), range(5000, 5600), range(6000, 6600),
          range(0x0F0000, 0x0F0010), range(0x40000000, 0x40000000 + 600)]
names = set()
for a in arches:
    for r in ranges:
        for n in r:
            try:
                names.add(seccomp.resolve_syscall(a, n).decode())
            except Exception:
                pass
pnr = {}
for name in sorted(names):
    for a in (seccomp.Arch.X86_64, seccomp.Arch.AARCH64, seccomp.Arch.X32, seccomp.Arch.X86,
              seccomp.Arch.ARM, seccomp.Arch.MIPS, seccomp.Arch.PPC64, seccomp.Arch.S390X,
              seccomp.Arch.RISCV64, seccomp.Arch.PARISC):
        try:
            n = seccomp.resolve_syscall(a, name)
        except Exception:
            continue
        if n < -1 and not (-224 <= n <= -100):
            pnr[name] = n
            break
print(json.dumps({"pnr": pnr}))
"""

# libseccomp's fixed pseudo numbers for the calls multiplexed through socketcall(2) and
# ipc(2): -(100 + SYS_*) from <linux/net.h> and -(200 + op) from the ipc(2) call numbers.
SOCKETCALLS = {
    "socket": 1, "bind": 2, "connect": 3, "listen": 4, "accept": 5, "getsockname": 6,
    "getpeername": 7, "socketpair": 8, "send": 9, "recv": 10, "sendto": 11, "recvfrom": 12,
    "shutdown": 13, "setsockopt": 14, "getsockopt": 15, "sendmsg": 16, "recvmsg": 17,
    "accept4": 18, "recvmmsg": 19, "sendmmsg": 20,
}  # fmt: skip
IPCCALLS = {
    "semop": 1, "semget": 2, "semctl": 3, "semtimedop": 4, "msgsnd": 11, "msgrcv": 12,
    "msgget": 13, "msgctl": 14, "shmat": 21, "shmdt": 22, "shmget": 23, "shmctl": 24,
}  # fmt: skip


def libseccomp_pnr() -> dict[str, int] | None:
    """libseccomp's pseudo syscall numbers, or None without ``/usr/bin/python3 -c 'import seccomp'``."""
    if not os.path.exists("/usr/bin/python3"):
        return None
    proc = subprocess.run(["/usr/bin/python3", "-c", _PNR_SCRIPT], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"libseccomp not available: {proc.stderr.strip()[-200:]}", file=sys.stderr)
        return None
    pnr = json.loads(proc.stdout)["pnr"]
    for name, code in SOCKETCALLS.items():
        pnr[name] = -(100 + code)
    for name, code in IPCCALLS.items():
        pnr[name] = -(200 + code)
    return dict(sorted(pnr.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tarball", default=DEFAULT_TARBALL)
    ap.add_argument("--no-libseccomp", action="store_true", help="keep libseccomp_pnr.json")
    ap.add_argument("--refresh", action="store_true", help="extract again (ignore the cache)")
    args = ap.parse_args(argv)
    tables = tables_from_texts(extract_cached(args.tarball, refresh=args.refresh))
    DATA.mkdir(parents=True, exist_ok=True)
    doc = {
        "source": f"{os.path.basename(args.tarball)}: "
        + ", ".join(MEMBERS.values())
        + " (generated by scripts/gen_syscalls.py)",
        "tables": {
            arch: dict(sorted(t.items(), key=lambda kv: (kv[1], kv[0])))
            for arch, t in tables.items()
        },
    }
    (DATA / "syscalls.json").write_text(json.dumps(doc, indent=1) + "\n")
    print({arch: len(t) for arch, t in tables.items()})
    if not args.no_libseccomp:
        pnr = libseccomp_pnr()
        if pnr is not None:
            doc = {
                "source": "libseccomp (Debian libseccomp2 2.5.4) seccomp.resolve_syscall "
                "(generated by scripts/gen_syscalls.py)",
                "pnr": pnr,
            }
            (DATA / "libseccomp_pnr.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(f"{len(pnr)} libseccomp pseudo numbers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
