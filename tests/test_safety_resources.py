"""Bounded resources: memory in proportion to the input, clear errors, never the OOM killer.

- the interpreter compiles large functions in segments (tens of KB per instruction of
  branchy code before: a million instructions took 24 GB);
- ``bpfkit run OBJ`` compares maps before and after a run without decoding every entry
  of huge maps (a 16M-entry array: a MemoryError before);
- program, object, memory and context files are read by their size, at most a limit, in
  chunks for pipes and devices (``/dev/zero`` read forever before); ``--repeat`` has a
  bound;
- a kernel map whose preallocation would take most of the machine's memory is refused
  with ``ENOMEM`` before ``BPF_MAP_CREATE`` (the kernel tries it, and the OOM killer
  picks other processes); the bound that decides it is held to the kernel's own
  ``memlock`` of each map type.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PY = [sys.executable, "-c"]


def _child(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(PY + [code], capture_output=True, text=True, timeout=timeout)


BRANCHY = """
import resource, sys
from bpfkit.isa.builders import jeq, add64, exit_
from bpfkit.vm.interp import CompiledProgram
from bpfkit.vm.env import Env
n = {n}
insns = []
for i in range(n // 3):
    insns += [jeq(1, i & 7, 1), add64(0, 1), add64(0, 2)]
insns.append(exit_())
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
p = CompiledProgram(insns, Env(), budget=10**7)
r0, count = p.run(0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(r0, count, (rss - rss0) * 1024)
"""


def test_branchy_interpreter_memory_is_bounded():
    """9,000 branchy instructions, every one executed: the growth of the peak RSS stays
    under 4 KB per instruction (one compile of the whole function took ~22 KB each)."""
    n = 9000
    res = _child(BRANCHY.format(n=n))
    assert res.returncode == 0, res.stderr
    r0, count, grew = map(int, res.stdout.split())
    taken = sum(1 for i in range(n // 3) if i & 7 == 0)  # r1 == 0: skip the "+= 1"
    assert r0 == 3 * (n // 3) - taken and count == 3 * (n // 3) - taken + 1, res.stdout
    assert grew < 4096 * n, f"peak RSS grew by {grew} bytes for {n} instructions"


BIG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1 << 24);
         __type(key, __u32); __type(value, __u64); } big SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1 << 20);
         __type(key, __u32); __type(value, __u64); } mid SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1 << 22);
         __type(key, __u32); __type(value, __u64); } bigh SEC(".maps");
SEC("raw_tp/x")
int touch(void *c)
{
    __u32 k = 12345; __u64 v = 77;
    __u64 *p = bpf_map_lookup_elem(&big, &k);
    if (p) *p = 42;
    p = bpf_map_lookup_elem(&mid, &k);
    if (p) *p = 43;
    bpf_map_update_elem(&bigh, &k, &v, 0);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def big_obj(tmp_path_factory) -> Path:
    from bpfkit.obj.build import compile_c

    d = tmp_path_factory.mktemp("safetybig")
    (d / "big.c").write_text(BIG)
    return compile_c(d / "big.c", d / "big.o").object


def test_run_reports_changes_of_huge_maps_in_bounded_memory(big_obj):
    """A 16M-entry array (128 MiB of values, compared through chunk digests), a 1M-entry
    array (a copy of its memory) and a 4M-entry hash map (not compared: named)."""
    code = (
        "import json, resource, sys\n"
        "from click.testing import CliRunner\n"
        "from bpfkit.cli.main import cli\n"
        f"res = CliRunner().invoke(cli, ['run', {str(big_obj)!r}, '--json'])\n"
        "print(res.exit_code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
        "print(res.output)\n"
    )
    res = _child(code, timeout=240)
    assert res.returncode == 0, res.stderr
    head, body = res.stdout.split("\n", 1)
    exit_code, rss = map(int, head.split())
    out = json.loads(body)
    assert exit_code == 0, out
    assert out["maps_changed"]["big"] == [{"key": 12345, "old": 0, "new": 42}]
    assert out["maps_changed"]["mid"] == [{"key": 12345, "old": 0, "new": 43}]
    assert out["maps_not_compared"] == ["bigh"]
    assert rss < 1 << 30, f"peak RSS {rss >> 20} MiB"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "/dev/zero"],
        ["disasm", "/dev/zero"],
        ["inspect", "/dev/zero"],
        ["run", "{asm}", "--mem-file", "/dev/zero"],
        ["run", "{obj}", "--ctx-file", "/dev/zero"],
    ],
)
def test_endless_files_are_refused(tmp_path, big_obj, args):
    """``/dev/zero`` as a program, object, memory or context file: a one-line error
    (exit 2) after at most 64 MiB, never an endless read."""
    asm = tmp_path / "p.asm"
    asm.write_text("mov %r0, 1\nexit\n")
    argv = [a.format(asm=asm, obj=big_obj) for a in args]
    res = subprocess.run(
        [sys.executable, "-m", "bpfkit", *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "/dev/zero holds more than 67108864 bytes" in json.loads(res.stdout)["error"]
    assert "Traceback" not in res.stderr


def test_files_are_read_by_their_size(tmp_path):
    """A regular file over the limit is refused by its size, before it is read; one
    under it is read whole (a 1 GiB buffer was allocated for every object before)."""
    from bpfkit.errors import BpfError
    from bpfkit.isa.loader import read_limited

    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert read_limited(str(f), 100) == b"x" * 100
    with pytest.raises(BpfError, match="is 100 bytes; the limit is 99"):
        read_limited(str(f), 99)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as fh:
        fh.truncate(2 << 30)  # 2 GiB of holes: refused by stat, nothing read
    with pytest.raises(BpfError, match="the limit is 1073741824"):
        read_limited(str(sparse), 1 << 30)


def test_repeat_is_bounded(tmp_path):
    from click.testing import CliRunner

    from bpfkit.cli.main import cli

    asm = tmp_path / "p.asm"
    asm.write_text("mov %r0, 1\nexit\n")
    res = CliRunner().invoke(cli, ["run", str(asm), "--repeat", str(10**12), "--json"])
    assert res.exit_code == 2 and "1<=x<=1000000" in res.output, res.output


# ---- kernel maps -------------------------------------------------------------------
def _memlock(fd) -> int:
    with open(f"/proc/self/fdinfo/{int(fd)}") as f:
        for line in f:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    raise AssertionError("no memlock in fdinfo")


@pytest.mark.kernel
def test_map_memory_bound_follows_the_kernels_memlock():
    """For each preallocated map type: our lower bound ≤ the kernel's ``memlock``
    (fdinfo) and within 20% of it, at 100,000 entries."""
    from bpfkit.kernel import sys as bsys
    from bpfkit.kernel.map_memory import map_memory
    from bpfkit.uapi.enums import MapType as T

    ncpus = bsys.possible_cpus()
    cases = [
        (T.ARRAY, 4, 8, 0),
        (T.ARRAY, 4, 100, 0),
        (T.PERCPU_ARRAY, 4, 8, 0),
        (T.HASH, 4, 8, 0),
        (T.HASH, 16, 64, 0),
        (T.HASH, 4, 8, 1),  # BPF_F_NO_PREALLOC: the buckets only
        (T.PERCPU_HASH, 4, 8, 0),
        (T.LRU_HASH, 4, 8, 0),
        (T.LRU_PERCPU_HASH, 8, 24, 0),
        (T.QUEUE, 0, 8, 0),
        (T.STACK_TRACE, 4, 8 * 127, 0),
    ]
    for t, k, v, flags in cases:
        n = 10_000 if t == T.STACK_TRACE else 100_000
        fd = bsys.map_create(t, k, v, n, flags)
        try:
            kernel = _memlock(fd)
        finally:
            os.close(int(fd))
        ours = map_memory(t, k, v, n, flags, ncpus)
        assert 0.8 * kernel <= ours <= kernel, (t.name, k, v, flags, ours, kernel)


@pytest.mark.kernel
def test_a_map_larger_than_available_memory_is_refused():
    """An array whose values need twice the available memory (and more than the RAM, so
    the kernel's vmalloc would refuse it too, should the check ever let it through)."""
    from bpfkit.errors import KernelError
    from bpfkit.kernel import sys as bsys
    from bpfkit.kernel.map_memory import mem_available
    from bpfkit.uapi.enums import MapType

    avail = mem_available()
    assert avail
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    value = 1 << 20
    n = max(2 * avail, total + (1 << 30)) // value + 1
    with pytest.raises(KernelError) as ei:
        bsys.map_create(MapType.ARRAY, 4, value, n, name="huge")
    assert ei.value.errno == errno.ENOMEM
    assert "bpfkit refuses more than 3/4" in str(ei.value) and "'huge'" in str(ei.value)
