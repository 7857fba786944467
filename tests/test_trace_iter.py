"""``iter:TARGET`` probes (BPF iterators) on the kernel, checked against ``/proc``: the tasks
and the open files the kernel's iterators visit are the ones ``/proc`` shows; the targets
``-l`` lists are those the kernel's BTF has (read by bpftool). bpftrace 0.17 refuses
iterators on this kernel ("not available for your kernel version"), so it cannot be the
oracle here; it is where it lists them (``-l``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def bpfkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfkit", "trace", *args], capture_output=True,
                          text=True, env=_env(), timeout=120, check=False)  # fmt: skip


def _kthreads() -> dict[int, str]:
    """Kernel threads (kthreadd and its children): their comm does not change."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            comm = Path(f"/proc/{d}/comm").read_text().rstrip("\n")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if int(d) == 2 or ppid == 2:
            out[int(d)] = comm
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_iter_task_visits_the_tasks_proc_shows(fmt: str) -> None:
    before = _kthreads()
    r = bpfkit("-f", fmt, "-e", 'iter:task { printf("%d %s\\n", ctx->task->pid, ctx->task->comm); }'
               ' END { printf("end\\n"); }')  # fmt: skip
    after = _kthreads()
    assert r.returncode == 0, r.stderr
    if fmt == "json":
        recs = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        assert recs[0] == {"type": "attached_probes", "data": {"probes": 2}}
        lines = [x["data"].rstrip("\n") for x in recs if x["type"] == "printf"]
    else:
        assert r.stdout.startswith("Attaching 2 probes...\n")
        lines = [x for x in r.stdout.splitlines()[1:] if x]
    assert lines[-1] == "end"  # END runs once the iteration is over
    seen = dict((int(p), c) for p, _, c in (x.partition(" ") for x in lines[:-1]))
    assert 0 not in seen  # the call without an object (the iteration's end) is skipped
    stable = {p: c for p, c in before.items() if after.get(p) == c}
    assert len(stable) > 10

    # /proc names a workqueue worker with its current work (comm + "-" + the queue's name)
    def same(proc: str, comm: str | None) -> bool:
        if comm is None:
            return False
        return comm == proc[:15] or (comm.startswith("kworker/") and proc.startswith(comm + "-"))

    wrong = {p: (c, seen.get(p)) for p, c in stable.items() if not same(c, seen.get(p))}
    assert not wrong


def _sleeper(tmp_path: Path) -> subprocess.Popen:
    f = tmp_path / "held-open.txt"
    f.write_text("x")
    fd = os.open(f, os.O_RDONLY)
    try:
        return subprocess.Popen(["sleep", "30"], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    finally:
        os.close(fd)


@pytest.mark.kernel
def test_iter_task_file_visits_the_open_files(tmp_path: Path) -> None:
    p = _sleeper(tmp_path)
    try:
        fds = sorted(int(x) for x in os.listdir(f"/proc/{p.pid}/fd"))
        names = {fd: os.path.basename(os.readlink(f"/proc/{p.pid}/fd/{fd}")) for fd in fds}
        script = ('iter:task_file /ctx->task->tgid == $1/ { printf("%d %s\\n", ctx->fd, '
                  'str(ctx->file->f_path.dentry->d_name.name)); @files = count(); }')  # fmt: skip
        r = bpfkit("-e", script, str(p.pid))
    finally:
        p.kill()
        p.wait()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n\n\n")[0].splitlines()[1:]
    got = {int(fd): name for fd, _, name in (x.partition(" ") for x in lines)}
    assert sorted(got) == fds
    assert got == names  # /dev/null, the held file ... (all regular paths here)
    assert f"@files: {len(fds)}" in r.stdout
    assert "held-open.txt" in got.values()


@pytest.mark.kernel
def test_list_iter_targets_are_the_kernels() -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool (the oracle) is not installed")
    from bpfkit.trace.probes import ITER_TARGETS

    dump = subprocess.run([bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    funcs = {line.split("'")[1] for line in dump.splitlines() if "] FUNC 'bpf_iter_" in line}
    want = [f"iter:{t}" for t in ITER_TARGETS if f"bpf_iter_{t}" in funcs]
    r = bpfkit("-l", "iter:*")
    assert r.returncode == 0 and r.stdout.splitlines() == want
    bt = shutil.which("bpftrace")
    if bt:  # bpftrace 0.17 lists iter:task and iter:task_file
        b = subprocess.run([bt, "-l", "iter:*"], capture_output=True, text=True, check=False)
        assert set(b.stdout.split()) <= set(want) and b.stdout.split()


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["-e", "iter:nosuch { }"], 2, "iter probe must be iter:TARGET"),
        (["-e", 'iter:task { printf("%d\\n", ctx->fd); }'], 2, "no field named 'fd'"),
        (["--vm", "-e", 'iter:task { printf("%d\\n", ctx->task->pid); }'], 1, "kernel only"),
    ],
    ids=["target", "field", "vm"],
)
def test_iter_errors(args: list[str], code: int, text: str) -> None:
    if "--vm" not in args and not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no kernel BTF to type ctx")
    r = bpfkit(*args)
    assert r.returncode == code and text in r.stderr and "Traceback" not in r.stderr, r.stderr
    j = bpfkit("--json", *args)
    assert j.returncode == code and text in json.loads(j.stdout)["error"], j.stdout
