"""The Linux kernel's verifier selftests as a corpus: bpfkit's verdicts against the kernel's.

``tools/testing/selftests/bpf/progs/verifier_*.c`` (from Debian's ``linux-source-6.12``
tarball) are built with clang into BPF objects; every program is verified by bpfkit and
loaded — alone, with the programs the test marks ``__auxiliary`` — into the running
kernel through libbpf (Debian's ``libbpf.so.1``, through ctypes, in a child process: an
oracle nobody here wrote, doing exactly what the selftests' own ``test_loader.c`` does).
The two verdicts are compared program by program::

    corpus = Corpus.prepare()                 # extract, headers, vmlinux.h, build (cached)
    for obj in corpus.objects():
        for row in compare_object(corpus, obj):
            row.outcome                       # "agree", "unsafe", "false_reject", ...

Everything expensive is cached under ``~/.cache/bpfkit/selftests`` (bpfkit's cache
root: ``BPFKIT_CACHE_DIR`` or ``XDG_CACHE_HOME`` override it): the extracted sources keyed by the tarball, the objects by the kernel
release and CPU version, the kernel's verdicts by the object's hash and the release.
``python3 -m bpfkit.verifier.selftests oracle OBJ`` is the child the oracle runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BpfError

TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
#: bump when the way verdicts are obtained changes (invalidates the verdict cache)
ORACLE_VERSION = 4
#: program flags the selftests' ``__flag(...)`` may name (include/uapi/linux/bpf.h)
PROG_FLAGS = {
    "BPF_F_STRICT_ALIGNMENT": 1 << 0,
    "BPF_F_ANY_ALIGNMENT": 1 << 1,
    "BPF_F_TEST_RND_HI32": 1 << 2,
    "BPF_F_TEST_STATE_FREQ": 1 << 3,
    "BPF_F_SLEEPABLE": 1 << 4,
    "BPF_F_XDP_HAS_FRAGS": 1 << 5,
    "BPF_F_XDP_DEV_BOUND_ONLY": 1 << 6,
    "BPF_F_TEST_REG_INVARIANTS": 1 << 7,
}


class SelftestError(BpfError):
    """The corpus cannot be prepared (no tarball, no clang, a build that failed)."""


# ---------------------------------------------------------------------------- corpus
def cache_root() -> Path:
    """Where the corpus is cached: ``selftests`` under bpfkit's one cache root."""
    from .._cache import cache_root as root

    base = root()
    return Path(base) / "selftests"


def kernel_release() -> str:
    """The running kernel's release (``uname -r``)."""
    return platform.release()


def _tar_key(tarball: Path) -> str:
    st = tarball.stat()
    raw = f"{tarball.name}:{st.st_size}:{int(st.st_mtime)}"
    return tarball.name.split(".tar")[0] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:12]


def _clang() -> str:
    from ..obj.build import find_clang

    return find_clang()


def _mcpu(clang: str) -> str:
    """``v4`` when clang knows it (the selftests' cpuv4 runner), else ``v3``."""
    try:
        out = subprocess.run(
            [clang, "--target=bpf", "-mcpu=help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return "v3"
    return "v4" if re.search(r"\bv4\b", out.stdout + out.stderr) else "v3"


@dataclass
class Corpus:
    """The extracted selftest sources, headers and built objects of one kernel release."""

    root: Path  # cache dir of this tarball
    src: Path  # the extracted tree (linux-source-6.12/...)
    objdir: Path  # built objects for this release and CPU version
    release: str
    mcpu: str
    clang: str
    build_errors: dict[str, str] = field(default_factory=dict)

    @property
    def selftests(self) -> Path:
        """``tools/testing/selftests/bpf`` of the extracted tree."""
        return self.src / "tools/testing/selftests/bpf"

    @classmethod
    def prepare(
        cls,
        tarball: Path = TARBALL,
        *,
        only: Iterable[str] | None = None,
        progress: Any = None,
    ) -> Corpus:
        """Extract (once), generate headers and vmlinux.h (once per release), build the
        ``verifier_*.c`` objects (``only``: just these stems) that are not built yet."""
        if not tarball.is_file():
            raise SelftestError(
                f"{tarball} not found: install Debian's linux-source-6.12 (scripts/setup)"
            )
        root = cache_root() / _tar_key(tarball)
        src = _extract(tarball, root, progress)
        release = kernel_release()
        clang = _clang()
        mcpu = _mcpu(clang)
        rel_dir = root / "build" / release
        inc = _headers(src, rel_dir)
        objdir = rel_dir / mcpu
        c = cls(root, src, objdir, release, mcpu, clang)
        c._build(inc, only, progress)
        return c

    def sources(self) -> list[Path]:
        """Every ``progs/verifier_*.c`` of the tree, sorted."""
        return sorted((self.selftests / "progs").glob("verifier_*.c"))

    def objects(self) -> list[Path]:
        """The built objects, sorted by name."""
        return sorted(p for p in self.objdir.glob("verifier_*.o"))

    def _cflags(self, inc: Path) -> list[str]:
        from ..obj.build import target_arch_define

        st = self.selftests
        flags = ["-g", "-O2", "--target=bpf", f"-mcpu={self.mcpu}", "-mlittle-endian"]
        arch = target_arch_define()
        if arch:
            flags.append(f"-D{arch}")
        # the selftests Makefile: test_progs(-cpuv4) builds with ENABLE_ATOMICS_TESTS
        flags += ["-DENABLE_ATOMICS_TESTS", "-Wall", "-Wno-compare-distinct-pointer-types"]
        flags += [f"-I{inc}", f"-I{st}", f"-I{self.src / 'tools/include/uapi'}"]
        flags += _sys_includes(self.clang)
        return flags

    def _build(self, inc: Path, only: Iterable[str] | None, progress: Any) -> None:
        self.objdir.mkdir(parents=True, exist_ok=True)
        want = None if only is None else set(only)
        todo = []
        for c in self.sources():
            if want is not None and c.stem not in want:
                continue
            out = self.objdir / (c.stem + ".o")
            if not out.exists() or out.stat().st_mtime < c.stat().st_mtime:
                todo.append(c)
        # objects whose tests name a custom BTF (``__btf_path``): built beside them
        for name in ("btf__core_reloc_bitfields",):
            c = self.selftests / "progs" / f"{name}.c"
            if c.exists() and not (self.objdir / f"{name}.bpf.o").exists():
                todo.append(c)
        flags = self._cflags(inc)
        task = progress.add_task("building selftests", total=len(todo)) if progress else None
        for c in todo:
            suffix = ".o" if c.stem.startswith("verifier_") else ".bpf.o"
            out = self.objdir / (c.stem + suffix)
            tmp = out.with_suffix(".tmp")
            cmd = [self.clang, *flags, "-c", str(c), "-o", str(tmp)]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=self.selftests)
            if p.returncode == 0:
                os.replace(tmp, out)
            else:
                self.build_errors[c.stem] = p.stderr.strip()[-2000:]
            if progress:
                progress.advance(task)


def _sys_includes(clang: str) -> list[str]:
    """clang's own system include dirs as ``-idirafter`` (the Makefile's
    ``get_sys_includes``): the BPF target does not search the host's."""
    p = subprocess.run([clang, "-v", "-E", "-"], input="", capture_output=True, text=True)
    out, on = [], False
    for line in p.stderr.splitlines():
        if line.startswith("#include <...> search starts here"):
            on = True
        elif line.startswith("End of search list"):
            on = False
        elif on and line.startswith(" /"):
            out += ["-idirafter", line.strip()]
    return out


_MEMBERS = (
    "*/tools/testing/selftests/bpf/*",
    "*/tools/lib/bpf/*",
    "*/tools/include/*",
    "*/scripts/bpf_doc.py",
)


def _extract(tarball: Path, root: Path, progress: Any) -> Path:
    done = root / "extracted.ok"
    if done.exists():
        return Path(done.read_text().strip())
    tmp = root / "src.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    task = progress.add_task(f"extracting {tarball.name}", total=None) if progress else None
    p = subprocess.run(
        ["tar", "-xJf", str(tarball), "-C", str(tmp), "--wildcards", *_MEMBERS],
        capture_output=True,
        text=True,
    )
    if progress:
        progress.update(task, total=1, completed=1)
    if p.returncode != 0:
        raise SelftestError(f"extracting {tarball} failed: {p.stderr.strip()[-500:]}")
    tops = [d for d in tmp.iterdir() if d.is_dir()]
    if len(tops) != 1:
        raise SelftestError(f"unexpected layout in {tarball}")
    final = root / "src"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    path = final / tops[0].name
    done.write_text(str(path))
    return path


def _headers(src: Path, rel_dir: Path) -> Path:
    """``include/bpf/*.h`` (the tree's libbpf headers plus ``bpf_helper_defs.h``
    generated by the kernel's ``scripts/bpf_doc.py``) and this kernel's ``vmlinux.h``."""
    inc = rel_dir / "include"
    bpfdir = inc / "bpf"
    if not (bpfdir / "bpf_helper_defs.h").exists():
        bpfdir.mkdir(parents=True, exist_ok=True)
        for h in (src / "tools/lib/bpf").glob("*.h"):
            shutil.copy(h, bpfdir / h.name)
        p = subprocess.run(
            [
                sys.executable,
                str(src / "scripts/bpf_doc.py"),
                "--header",
                "--file",
                str(src / "tools/include/uapi/linux/bpf.h"),
            ],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0:
            raise SelftestError(f"bpf_doc.py failed: {p.stderr.strip()[-500:]}")
        (bpfdir / "bpf_helper_defs.h.tmp").write_text(p.stdout)
        os.replace(bpfdir / "bpf_helper_defs.h.tmp", bpfdir / "bpf_helper_defs.h")
    vm = inc / "vmlinux.h"
    if not vm.exists():
        bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
        p = subprocess.run(
            [bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0 or not p.stdout:
            raise SelftestError(f"bpftool btf dump failed: {p.stderr.strip()[-300:]}")
        vm.with_suffix(".tmp").write_text(p.stdout)
        os.replace(vm.with_suffix(".tmp"), vm)
    return inc


# ---------------------------------------------------------------------------- tags
@dataclass
class Tags:
    """What the selftest says about one program (``bpf_misc.h``'s BTF decl tags)."""

    expect: str | None = None  # "success" / "failure" (privileged)
    expect_unpriv: str | None = None
    msgs: list[str] = field(default_factory=list)
    msgs_unpriv: list[str] = field(default_factory=list)
    auxiliary: bool = False
    auxiliary_unpriv: bool = False
    flags: int = 0
    log_level: int = 0
    btf_path: str | None = None
    description: str | None = None
    arch: list[str] = field(default_factory=list)


def program_tags(spec: Any) -> dict[str, Tags]:
    """Program name -> :class:`Tags`, from the object's BTF decl tags."""
    from ..btf.types import DeclTag, Func

    btf = getattr(spec, "btf", None)
    out: dict[str, Tags] = {}
    if btf is None:
        return out
    raw: dict[str, list[tuple[int, str]]] = {}
    for t in btf.types:
        if not isinstance(t, DeclTag) or t.component_idx != -1:
            continue
        try:
            fn = btf[t.type]
        except Exception:
            continue
        if isinstance(fn, Func) and t.name.startswith("comment:"):
            raw.setdefault(fn.name, []).append((t.type, t.name[len("comment:") :]))
    for name, items in raw.items():
        tg = Tags()
        msgs: list[tuple[int, str]] = []
        msgs_u: list[tuple[int, str]] = []
        for _, tag in items:
            key, _, val = tag.partition("=")
            if key == "test_expect_failure":
                tg.expect = "failure"
            elif key == "test_expect_success":
                tg.expect = "success"
            elif key == "test_expect_failure_unpriv":
                tg.expect_unpriv = "failure"
            elif key == "test_expect_success_unpriv":
                tg.expect_unpriv = "success"
            elif key in ("test_expect_msg", "test_expect_msg_unpriv"):
                n, _, msg = val.partition("=")
                (msgs if key == "test_expect_msg" else msgs_u).append((int(n or 0), msg))
            elif key == "test_auxiliary":
                tg.auxiliary = True
            elif key == "test_auxiliary_unpriv":
                tg.auxiliary_unpriv = True
            elif key == "test_prog_flags":
                v = PROG_FLAGS.get(val)
                if v is None:
                    try:
                        v = int(val, 0)
                    except ValueError:
                        v = 0
                tg.flags |= v
            elif key == "test_log_level":
                try:
                    tg.log_level = int(val, 0)
                except ValueError:
                    pass
            elif key == "test_btf_path":
                tg.btf_path = val
            elif key == "test_description":
                tg.description = val
            elif key == "test_arch":
                tg.arch.append(val)
        # __COUNTER__ orders the messages as written
        tg.msgs = [m for _, m in sorted(msgs)]
        tg.msgs_unpriv = [m for _, m in sorted(msgs_u)]
        out[name] = tg
    return out


def msg_regex(msg: str) -> re.Pattern:
    """A ``__msg`` pattern: literal text with ``{{regex}}`` parts (test_loader.c)."""
    out, i = [], 0
    while i < len(msg):
        j = msg.find("{{", i)
        if j < 0:
            out.append(re.escape(msg[i:]))
            break
        k = msg.find("}}", j + 2)
        if k < 0:
            out.append(re.escape(msg[i:]))
            break
        out.append(re.escape(msg[i:j]))
        out.append("(?:" + msg[j + 2 : k] + ")")
        i = k + 2
    return re.compile("".join(out))


def msgs_match(log: str, msgs: list[str]) -> bool:
    """All ``msgs`` occur in ``log`` in order (each after the previous match)."""
    pos = 0
    for m in msgs:
        found = msg_regex(m).search(log, pos)
        if found is None:
            return False
        pos = found.end()
    return True


# ---------------------------------------------------------------------------- oracle
#: lines of a log-level-4 kernel log that are statistics, not a verdict
_STAT_PREFIXES = ("verification time", "stack depth", "processed ", "Global function ")


def error_lines(log: str) -> list[str]:
    """The kernel log's lines that say what is wrong (statistics and the C source
    echo ``; ...`` left out)."""
    return [
        ln
        for ln in log.splitlines()
        if ln.strip() and not ln.startswith(_STAT_PREFIXES) and not ln.startswith(";")
    ]


@dataclass
class KernelVerdict:
    """What the running kernel said about one program."""

    verdict: str  # "accept", "reject" or "none" (the kernel could not judge it)
    errno: int = 0
    message: str = ""  # the error lines of the log
    processed: int | None = None
    time_us: int | None = None
    why: str = ""  # for "none": what stopped the load before the verifier decided


def libbpf_version() -> str:
    """The version of the libbpf.so.1 the oracle uses, or "" when there is none."""
    try:
        lib = ctypes.CDLL("libbpf.so.1")
        lib.libbpf_major_version.restype = ctypes.c_uint32
        lib.libbpf_minor_version.restype = ctypes.c_uint32
        return f"{lib.libbpf_major_version()}.{lib.libbpf_minor_version()}"
    except (OSError, AttributeError):
        return ""


def kernel_verdicts(corpus: Corpus, obj: Path, *, timeout: float = 900) -> dict[str, KernelVerdict]:
    """Every program of ``obj`` loaded alone into the running kernel (cached)."""
    data = obj.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:20]
    cdir = corpus.root / "verdicts" / corpus.release
    cfile = cdir / f"{obj.stem}-{digest}-v{ORACLE_VERSION}.json"
    if cfile.exists():
        try:
            raw = json.loads(cfile.read_text())
            return {k: KernelVerdict(**v) for k, v in raw.items()}
        except (ValueError, TypeError):
            pass
    plan = _oracle_plan(corpus, obj)
    p = subprocess.run(
        [sys.executable, "-m", "bpfkit.verifier.selftests", "oracle"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    out: dict[str, KernelVerdict] = {}
    for line in p.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        name = d.pop("prog")
        out[name] = KernelVerdict(**d)
    for name in plan["programs"]:
        if name not in out:
            why = f"oracle child exited {p.returncode}: {p.stderr.strip()[-300:]}"
            out[name] = KernelVerdict("none", why=why)
    if p.returncode == 0:
        cdir.mkdir(parents=True, exist_ok=True)
        tmp = cfile.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in out.items()}))
        os.replace(tmp, cfile)
    return out


def _oracle_plan(corpus: Corpus, obj: Path) -> dict:
    """What the child loads: every program, its flags, the auxiliary programs, and the
    program/attach type from bpfkit's section table for sections libbpf 1.1 predates."""
    from ..obj import load_object

    spec = load_object(obj)
    tags = program_tags(spec)
    progs = {}
    for name, p in spec.programs.items():
        tg = tags.get(name, Tags())
        progs[name] = {
            "flags": tg.flags,
            "type": int(p.prog_type),
            "attach": int(p.expected_attach_type or 0),
            "btf_path": str(corpus.objdir / tg.btf_path) if tg.btf_path else None,
        }
    aux = [n for n in spec.programs if tags.get(n, Tags()).auxiliary]
    return {"object": str(obj), "programs": progs, "auxiliary": aux}


def _oracle_main() -> None:
    """The oracle child: load each program alone with libbpf; one JSON line each."""
    plan = json.loads(sys.stdin.read())
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    printer = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, cp, vp)

    libbpf_msgs: list[str] = []
    libc = ctypes.CDLL(None)
    libc.vsnprintf.argtypes = [cp, ctypes.c_size_t, cp, vp]

    @printer
    def _print(level: int, fmt: bytes, args: int) -> int:
        buf = ctypes.create_string_buffer(1024)
        libc.vsnprintf(buf, 1024, fmt, args)
        libbpf_msgs.append(buf.value.decode(errors="replace").rstrip())
        return 0

    lib.libbpf_set_print.argtypes = [printer]
    lib.libbpf_set_print.restype = vp
    lib.libbpf_set_print(_print)
    for fn, args, res in (
        ("bpf_object__open_file", [cp, vp], vp),
        ("bpf_object__next_program", [vp, vp], vp),
        ("bpf_object__load", [vp], ctypes.c_int),
        ("bpf_object__close", [vp], None),
        ("bpf_program__name", [vp], cp),
        ("bpf_program__set_autoload", [vp, ctypes.c_bool], ctypes.c_int),
        ("bpf_program__set_log_buf", [vp, cp, ctypes.c_size_t], ctypes.c_int),
        ("bpf_program__set_log_level", [vp, ctypes.c_uint32], ctypes.c_int),
        ("bpf_program__flags", [vp], ctypes.c_uint32),
        ("bpf_program__set_flags", [vp, ctypes.c_uint32], ctypes.c_int),
        ("bpf_program__type", [vp], ctypes.c_int),
        ("bpf_program__set_type", [vp, ctypes.c_int], ctypes.c_int),
        ("bpf_program__set_expected_attach_type", [vp, ctypes.c_int], ctypes.c_int),
        ("bpf_program__fd", [vp], ctypes.c_int),
    ):
        f = getattr(lib, fn)
        f.argtypes = args
        f.restype = res

    class OpenOpts(ctypes.Structure):
        # struct bpf_object_open_opts of libbpf 1.1 (bpf/libbpf.h): sz first, then the
        # fields up to btf_custom_path
        _fields_ = [
            ("sz", ctypes.c_size_t),
            ("object_name", cp),
            ("relaxed_maps", ctypes.c_bool),
            ("pin_root_path", cp),
            ("_unused", ctypes.c_uint32),
            ("kconfig", cp),
            ("btf_custom_path", cp),
        ]

    def programs(obj: int) -> Iterator[int]:
        p = None
        while True:
            p = lib.bpf_object__next_program(obj, p)
            if not p:
                return
            yield p

    path = plan["object"].encode()
    logbuf = ctypes.create_string_buffer(1 << 20)
    for name, info in plan["programs"].items():
        libbpf_msgs.clear()
        opts = None
        if info["btf_path"]:
            o = OpenOpts()
            o.sz = ctypes.sizeof(OpenOpts)
            o.btf_custom_path = info["btf_path"].encode()
            opts = ctypes.byref(o)
        obj = lib.bpf_object__open_file(path, opts)
        if not obj:
            err = ctypes.get_errno()
            _emit(name, "none", -err, why="libbpf cannot open the object: " + _last(libbpf_msgs))
            continue
        target = None
        for p in programs(obj):
            pname = lib.bpf_program__name(p).decode()
            load = pname == name or pname in plan["auxiliary"]
            lib.bpf_program__set_autoload(p, load)
            if load and lib.bpf_program__type(p) == 0:
                # a section name newer than this libbpf: the type bpfkit's table gives
                pi = plan["programs"].get(pname, {})
                lib.bpf_program__set_type(p, pi.get("type", 0))
                lib.bpf_program__set_expected_attach_type(p, pi.get("attach", 0))
            if pname == name:
                target = p
        if target is None:
            _emit(name, "none", 0, why="libbpf does not list the program")
            lib.bpf_object__close(obj)
            continue
        logbuf[0] = b"\0"
        lib.bpf_program__set_log_buf(target, logbuf, len(logbuf))
        lib.bpf_program__set_log_level(target, 4)  # errors and statistics
        lib.bpf_program__set_flags(target, lib.bpf_program__flags(target) | info["flags"])
        err = lib.bpf_object__load(obj)
        fd = lib.bpf_program__fd(target)
        log = logbuf.value.decode(errors="replace")
        m = re.search(r"processed (\d+) insns", log)
        t = re.search(r"verification time (\d+) usec", log)
        processed = int(m.group(1)) if m else None
        tus = int(t.group(1)) if t else None
        errs = error_lines(log)
        if err == 0 or fd >= 0:
            _emit(name, "accept", err, "", processed, tus)
        elif m or "BPF program is too large" in log:
            if errs:
                _emit(name, "reject", err, "\n".join(errs), processed, tus)
            else:
                why = f"verified, then the load failed (errno {-err}): {_last(libbpf_msgs)}"
                _emit(name, "none", err, "", processed, tus, why)
        elif errs:
            _emit(name, "reject", err, "\n".join(errs), processed, tus)
        else:
            why = f"{os.strerror(-err)} before verification ({_last(libbpf_msgs)})"
            _emit(name, "none", err, "", None, None, why)
        lib.bpf_object__close(obj)


def _last(msgs: list[str]) -> str:
    useful = [m for m in msgs if m and "skipped loading" not in m and "BEGIN PROG" not in m]
    useful = [m for m in useful if "failed to load object" not in m]
    return useful[-1].removeprefix("libbpf: ") if useful else ""


def _emit(name: str, verdict: str, errno: int, message: str = "", processed=None, tus=None, why=""):
    d = {
        "prog": name,
        "verdict": verdict,
        "errno": -errno if errno < 0 else errno,
        "message": message,
        "processed": processed,
        "time_us": tus,
        "why": why,
    }
    sys.stdout.write(json.dumps(d) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- bpfkit
@dataclass
class OurVerdict:
    """What bpfkit's verifier said about one program."""

    verdict: str  # "accept" / "reject"
    message: str = ""  # kernel-style message
    reason: str = ""
    insn: int | None = None
    processed: int = 0
    time_s: float = 0.0
    not_supported: bool = False


def our_verdict(corpus: Corpus, spec: Any, name: str, tags: Tags) -> OurVerdict:
    """Verify one program of a selftest object with bpfkit, as libbpf would load it
    (CO-RE relocations against this kernel's BTF or the test's custom BTF)."""
    from ..verifier import verify_spec

    prog = spec.program(name)
    t0 = time.perf_counter()
    try:
        if prog.core_relocations:
            _apply_core(corpus, spec, prog, tags)
        r = verify_spec(spec, name, raise_on_error=False, cache=False, prog_flags=tags.flags)
    except BpfError as e:
        return OurVerdict(
            "reject",
            message=str(e),
            reason=str(e),
            time_s=time.perf_counter() - t0,
            not_supported=type(e).__name__ == "NotSupported",
        )
    dt = time.perf_counter() - t0
    if r.ok:
        return OurVerdict("accept", processed=r.stats.insns_processed, time_s=dt)
    e = r.error
    msg = getattr(e, "kernel_message", "") or ""
    return OurVerdict(
        "reject",
        message=msg,
        reason=e.reason if e else "",
        insn=e.insn if e else None,
        processed=r.stats.insns_processed,
        time_s=dt,
        not_supported=bool(e and "not supported" in (e.reason or "").lower()),
    )


_VMLINUX_BTF: Any = None


def _apply_core(corpus: Corpus, spec: Any, prog: Any, tags: Tags) -> None:
    """Resolve a program's CO-RE relocations as libbpf would (in place)."""
    global _VMLINUX_BTF
    from ..btf.parser import parse_btf
    from ..kernel.core import apply_core

    if tags.btf_path:
        from ..obj import load_object

        target = load_object(corpus.objdir / tags.btf_path).btf
    else:
        if _VMLINUX_BTF is None:
            _VMLINUX_BTF = parse_btf(Path("/sys/kernel/btf/vmlinux").read_bytes())
        target = _VMLINUX_BTF
    insns, _ = apply_core(
        prog.instructions, prog.core_relocations, spec.btf, target, program=prog.name
    )
    prog.instructions = insns
    prog.core_relocations = []


# ---------------------------------------------------------------------------- compare
@dataclass
class Row:
    """One program's comparison."""

    object: str
    program: str
    outcome: str  # agree / unsafe / false_reject / no_oracle / excluded
    kernel: KernelVerdict
    ours: OurVerdict
    tags: Tags
    cause: str = ""
    msg_match: bool | None = None  # bpfkit's message matches the test's __msg
    excluded: str = ""  # the exclusion's reason


def compare_object(
    corpus: Corpus, obj: Path, *, programs: Iterable[str] | None = None, skip_slow: bool = False
) -> list[Row]:
    """Compare bpfkit with the kernel on every program (or ``programs``) of ``obj``."""
    from ..obj import load_object
    from .selftests_exclusions import EXCLUDED, SLOW, cause_of

    try:
        spec = load_object(obj)
    except BpfError as e:
        # bpfkit cannot read the object (so it loads none of its programs)
        k = KernelVerdict("none", why=f"bpfkit cannot parse the object: {e}")
        ours = OurVerdict("reject", message=str(e), reason=str(e))
        return [Row(obj.stem, "*", "no_oracle", k, ours, Tags(), cause="object")]
    kv = kernel_verdicts(corpus, obj)
    tags = program_tags(spec)
    rows = []
    names = list(spec.programs) if programs is None else list(programs)
    for name in names:
        if skip_slow and (obj.stem, name) in SLOW:
            continue
        tg = tags.get(name, Tags())
        k = kv.get(name, KernelVerdict("none", why="not loaded"))
        spec = load_object(obj)  # CO-RE rewrites the spec in place: a fresh one each
        ours = our_verdict(corpus, spec, name, tg)
        ex = EXCLUDED.get((obj.stem, name), "")
        row = Row(obj.stem, name, "", k, ours, tg, excluded=ex)
        kv_ok = k.verdict
        if kv_ok == "none":
            # the kernel cannot load it here: the test's own expectation decides
            expected = {"success": "accept", "failure": "reject"}.get(tg.expect or "", "")
            if ours.verdict == "accept" and expected != "accept":
                row.outcome = "unsafe"
            else:
                row.outcome = "no_oracle"
        elif kv_ok == ours.verdict:
            row.outcome = "agree"
        elif ours.verdict == "accept":
            row.outcome = "unsafe"
        else:
            row.outcome = "false_reject"
        if ex and row.outcome in ("false_reject", "no_oracle"):
            row.outcome = "excluded"
        if row.outcome in ("false_reject", "excluded", "no_oracle") and ours.verdict == "reject":
            row.cause = cause_of(ours)
        if k.verdict == "reject" and ours.verdict == "reject" and tg.msgs:
            if msgs_match(k.message, tg.msgs):
                row.msg_match = msgs_match(ours.message, tg.msgs)
        rows.append(row)
    return rows


def rotating_subset(objects: list[Path], parts: int, key: int | None = None) -> list[Path]:
    """Every ``parts``-th object, starting from ``key`` (default: the day number), so
    that consecutive runs cover the whole corpus."""
    if key is None:
        key = int(time.time() // 86400)
    k = key % parts
    return [o for i, o in enumerate(objects) if i % parts == k]


if __name__ == "__main__":  # pragma: no cover - the oracle child
    if sys.argv[1:2] == ["oracle"]:
        _oracle_main()
    else:
        sys.exit("usage: python3 -m bpfkit.verifier.selftests oracle < plan.json")
