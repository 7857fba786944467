"""bpfkit demo: assemble and build real BPF programs, run them everywhere, show what they did.

1. An assembled program (LLVM/kernel dialect) run by the interpreter, the JIT and — when
   this process may use bpf() — the kernel's JIT through BPF_PROG_TEST_RUN.
2. The BPF ISA conformance vectors through the interpreter and the JIT.
3. A C program (examples/xdp_proto_count.c) built with clang, loaded with bpfkit.load(),
   fed packets with test_run, its per-CPU map read back; the same object in the kernel.
4. The verifier explaining a rejection, next to the kernel's verdict.
5. Observing the live kernel: system-call latency as a log2 histogram
   (examples/syscall_latency.c on the sys_enter/sys_exit raw tracepoints), and the same
   programs fired by hand in the VM.
6. Classic BPF: a tcpdump expression compiled by bpfkit (the program tcpdump prints),
   a generated capture filtered natively, the same program translated to eBPF.
7. seccomp: Docker's default profile compiled and checked; a command confined by a
   profile that denies mkdir.
8. bpftrace's language: a one-liner compiled by bpfkit and run in the kernel.

Run: ``python3 examples/demo.py`` (after ``./scripts/setup``).
"""

from __future__ import annotations

import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import bpfkit
from bpfkit.errors import BpfError, VerifierError
from bpfkit.isa.asm import assemble_text
from bpfkit.isa.disasm import disassemble
from bpfkit.uapi.enums import ProgType

HERE = Path(__file__).resolve().parent
console = Console()

PRIMES = """
# count the primes below 300 by trial division
    r6 = 0
    r1 = 2
outer:
    if r1 >= 300 goto done
    r2 = 2
inner:
    r3 = r2
    r3 *= r2
    if r3 > r1 goto prime
    r4 = r1
    r4 %= r2
    if r4 == 0 goto next
    r2 += 1
    goto inner
prime:
    r6 += 1
next:
    r1 += 1
    goto outer
done:
    r0 = r6
    exit
"""


def kernel_ok() -> tuple[bool, str]:
    from bpfkit.kernel.privileges import kernel_available

    return kernel_available()


def section(title: str) -> None:
    console.rule(f"[bold]{title}")


def demo_assembled(use_kernel: bool) -> None:
    from bpfkit import jit
    from bpfkit.vm.interp import run_program

    section("1. An assembled program on three engines")
    insns = assemble_text(PRIMES, "llvm")
    console.print(f"assembled {len(insns)} instructions; the start, disassembled:")
    console.print("\n".join(disassemble(insns, "llvm").splitlines()[:6]), style="cyan")
    table = Table("engine", "r0", "executed insns", "time per run")
    res = run_program(insns, budget=10**8)
    table.add_row("interpreter", str(res.r0), f"{res.insns:,}", f"{res.duration_ns / 1e3:.0f} µs")
    jres = jit.run_program(insns, budget=10**8, repeat=100)
    table.add_row(
        "bpfkit JIT (llvmlite)", str(jres.r0), f"{jres.insns:,}", f"{jres.duration_ns / 1e3:.1f} µs"
    )
    if use_kernel:
        from bpfkit.kernel import sys as ksys

        with ksys.FD(ksys.prog_load(ProgType.SOCKET_FILTER, insns, "GPL")) as fd:
            kres = ksys.prog_test_run(fd, data=b"\0" * 64, repeat=100)
        table.add_row(
            "kernel JIT (BPF_PROG_TEST_RUN)",
            str(kres.retval),
            "-",
            f"{kres.duration_ns / 1e3:.1f} µs",
        )
        assert kres.retval == res.r0 & 0xFFFFFFFF
    assert jres.r0 == res.r0 and jres.insns == res.insns
    console.print(table)


def demo_conformance() -> None:
    from bpfkit import jit
    from bpfkit.vm.interp import run_program

    section("2. BPF ISA conformance vectors")
    vec_dir = HERE.parent.parent / "shared" / "conformance" / "bpf_conformance"
    if not vec_dir.is_dir():
        console.print(f"(skipped: {vec_dir} not found)")
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conformance_data import load_cases

    cases = load_cases()
    t0 = time.perf_counter()
    ok_i = sum(run_program(c.program, c.mem).r0 == c.result for c in cases)
    t1 = time.perf_counter()
    ok_j = sum(jit.run_program(c.program, c.mem).r0 == c.result for c in cases)
    t2 = time.perf_counter()
    console.print(f"interpreter: {ok_i}/{len(cases)} passed in {t1 - t0:.2f} s")
    console.print(f"JIT:         {ok_j}/{len(cases)} passed in {t2 - t1:.2f} s (compile included)")


def ipv4_packet(proto: int, payload: bytes = b"x" * 20) -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", 0x0800)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        64,
        proto,
        0,
        socket.inet_aton("10.0.0.1"),
        socket.inet_aton("10.0.0.2"),
    )
    return eth + ip + payload


def demo_c_program(use_kernel: bool) -> None:
    from bpfkit.obj.build import compile_c

    section("3. A C program: XDP packet counter by IP protocol")
    with tempfile.TemporaryDirectory() as tmp:
        obj_path = Path(tmp) / "xdp_proto_count.o"
        compile_c(HERE / "xdp_proto_count.c", obj_path)
        console.print(f"built {obj_path.name} with clang ({obj_path.stat().st_size} bytes)")
        packets = [ipv4_packet(6)] * 3 + [ipv4_packet(17)] * 2 + [ipv4_packet(1)]
        backends = ["vm"] + (["kernel"] if use_kernel else [])
        results = {}
        for backend in backends:
            try:
                obj = bpfkit.load(obj_path, backend=backend)
            except BpfError as e:
                console.print(f"[yellow]{backend}: {e}")
                continue
            with obj:
                prog = obj.programs["count_protocols"]
                if backend == "vm":  # bpfkit's verifier proved it safe on load
                    st = prog.verification.stats
                    console.print(
                        f"vm: verified on load ({st.insns_processed} instructions processed, "
                        f"{st.total_states} states, stack {sum(st.stack_depth)} bytes)"
                    )
                rets = [prog.test_run(data=p).retval for p in packets]
                counts = {k: sum(v) for k, v in obj.maps["counts"].items() if sum(v)}
            results[backend] = (rets, counts)
        table = Table("backend", "XDP verdicts (2 = XDP_PASS)", "counts[protocol] summed over CPUs")
        for backend, (rets, counts) in results.items():
            names = {1: "icmp", 6: "tcp", 17: "udp"}
            table.add_row(
                backend,
                " ".join(map(str, rets)),
                ", ".join(f"{names.get(k, k)}={v}" for k, v in sorted(counts.items())),
            )
        console.print(table)
        if len(results) == 2:
            same = results["vm"] == results["kernel"]
            console.print(f"VM and kernel agree: [bold]{same}[/bold]")


BAD = """
    r0 = 0
    if r1 == 0 goto out
    r0 = r2          # r2 is never written on this path
out:
    exit
"""


def demo_verifier(use_kernel: bool) -> None:
    from bpfkit.verifier import verify

    section("4. The verifier: reading a register that was never written")
    insns = assemble_text(BAD, "llvm")
    try:
        verify(insns, prog_type="socket_filter")
        console.print("bpfkit: accepted")
    except VerifierError as e:
        console.print(f"bpfkit rejects it: insn {e.insn}: {e.reason}")
    if use_kernel:
        from bpfkit.kernel import sys as ksys

        try:
            fd = ksys.prog_load(ProgType.SOCKET_FILTER, insns, "GPL")
            ksys.FD(fd).close()
            console.print("kernel: accepted")
        except VerifierError as e:
            console.print(f"kernel rejects it: {e}")


def demo_observe(use_kernel: bool) -> None:
    import os

    from bpfkit.obj.build import compile_c

    sys.path.insert(0, str(HERE))
    from latency_hist import buckets, render

    section("5. Observing the live kernel: system-call latency histogram")
    with tempfile.TemporaryDirectory() as tmp:
        obj_path = Path(tmp) / "syscall_latency.o"
        compile_c(HERE / "syscall_latency.c", obj_path)
        if use_kernel:
            with bpfkit.load(obj_path, backend="kernel") as obj:
                with obj.programs["on_enter"].attach(), obj.programs["on_exit"].attach():
                    deadline = time.monotonic() + 0.5
                    while time.monotonic() < deadline:  # a workload: small reads and sleeps
                        with open("/proc/self/stat", "rb") as f:
                            f.read()
                        time.sleep(0.0005)
                rows = buckets(obj.maps["hist"])
            total = sum(c for _, _, c in rows)
            console.print(f"kernel: {total:,} system calls in 0.5 s, all processes")
            console.print(render(rows))
        # The same object in the VM: fire sys_enter/sys_exit with a fake clock.
        with bpfkit.load(obj_path) as obj:
            enter, exit_ = obj.programs["on_enter"], obj.programs["on_exit"]
            for _ in range(200):
                enter.run(ctx=[0, 0])
                exit_.run(ctx=[0, 0])
            count = sum(c for _, _, c in buckets(obj.maps["hist"]))
        console.print(
            f"VM: fired the pair 200 times from Python (pid {os.getpid()}): "
            f"{count} latencies recorded"
        )


def demo_classic(use_kernel: bool) -> None:
    import shutil
    import subprocess

    from bpfkit.classic.ebpf import to_ebpf
    from bpfkit.classic.interp import run_classic
    from bpfkit.classic.listing import format_listing
    from bpfkit.pcap import PcapWriter, compile_filter
    from bpfkit.pcap.scan import filter_capture
    from bpfkit.pcap.synth import packet_mix

    section("6. Classic BPF: tcpdump's filter language, capture files")
    expr = "tcp port 80 or icmp"
    prog = compile_filter(expr)
    listing = format_listing(prog)
    console.print(f"'{expr}' compiled to {len(prog)} classic instructions:")
    console.print("\n".join(listing.splitlines()[:5]) + "\n...", style="cyan")
    if shutil.which("tcpdump"):
        ref = subprocess.run(["tcpdump", "-d", expr], capture_output=True, text=True).stdout
        console.print(f"identical to tcpdump -d: [bold]{ref.strip() == listing.strip()}[/bold]")
    with tempfile.TemporaryDirectory() as tmp:
        cap = Path(tmp) / "mix.pcap"
        with PcapWriter(cap) as w:
            for data, wirelen in packet_mix(50_000, seed=7):
                w.write(data, wirelen=wirelen)
        t0 = time.perf_counter()
        r = filter_capture(cap, lambda lt: compile_filter(expr, lt), engine="jit")
        dt = time.perf_counter() - t0
        console.print(
            f"native scan: {r.matched:,} of {r.packets:,} generated packets match "
            f"({dt * 1e3:.0f} ms, LLVM compile included)"
        )
        if shutil.which("tcpdump"):
            out = subprocess.run(
                ["tcpdump", "-r", str(cap), "-q", expr], capture_output=True, text=True
            ).stdout
            console.print(f"tcpdump -r agrees: [bold]{len(out.splitlines()) == r.matched}[/bold]")
    # The same expression for a socket (the data starts at the IP header), translated to
    # eBPF as the kernel's bpf_convert_filter does, run on every engine.
    from bpfkit.obj.spec import ObjectSpec, ProgramSpec

    raw = compile_filter(expr, "RAW")
    ebpf = to_ebpf(raw)
    spec = ObjectSpec(
        programs={
            "sock": ProgramSpec(
                name="sock",
                section="socket",
                prog_type=ProgType.SOCKET_FILTER,
                instructions=ebpf,
                license="GPL",
            )
        }
    )
    table = Table("packet", "classic interpreter", "eBPF: interpreter", "JIT", "kernel")
    backends = [("vm", bpfkit.load(spec))]
    if use_kernel:
        backends.append(("kernel", bpfkit.load(spec, backend="kernel")))
    for name, pkt in (
        ("TCP to port 80", ipv4_packet(6, b"\x30\x39\x00\x50" + b"\x00" * 16)),
        ("TCP to port 22", ipv4_packet(6, b"\x30\x39\x00\x16" + b"\x00" * 16)),
        ("ICMP", ipv4_packet(1)),
    ):
        row = [name, str(run_classic(raw, pkt[14:]).ret)]
        vm = backends[0][1].programs["sock"]
        row += [str(vm.test_run(pkt, engine=e).retval) for e in ("interp", "jit")]
        row.append(str(backends[1][1].programs["sock"].test_run(pkt).retval) if use_kernel else "-")
        table.add_row(*row)
    for _, o in backends:
        o.close()
    console.print(
        f"translated to {len(ebpf)} eBPF instructions; return value (bytes to keep) per engine:"
    )
    console.print(table)


def demo_seccomp() -> None:
    import json
    import os

    from bpfkit import seccomp

    section("7. seccomp: profiles compiled to classic BPF, checked, enforced")
    docker = seccomp.compile_profile(seccomp.load_profile("docker-default"))
    console.print(f"Docker's default profile: {len(docker.raw()) // 8} classic instructions")
    table = Table("system call", "decision")
    for call, args in (("read", []), ("reboot", []), ("personality", [8]), ("mkdir", [0, 0o755])):
        d = docker.check(call, args).to_json()
        table.add_row(call, f"{d['action']}" + (f" ({d['data']})" if d["data"] else ""))
    console.print(table)
    with tempfile.TemporaryDirectory() as tmp:
        prof = Path(tmp) / "nomkdir.json"
        prof.write_text(
            json.dumps(
                {
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
                    ],
                }
            )
        )
        flt = seccomp.compile_profile(seccomp.load_profile(str(prof)))
        target = Path(tmp) / "newdir"
        res = seccomp.run(flt, ["mkdir", str(target)])
        console.print(
            f"mkdir under a profile that denies it: exit status {res.status}, "
            f"directory created: {os.path.exists(target)}"
        )


def demo_trace(use_kernel: bool) -> None:
    import subprocess

    section("8. bpftrace's language, compiled by bpfkit (no clang, no LLVM at run time)")
    script = "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @syscalls[comm] = count(); }"
    console.print(f"bpfkit trace -c 'ls /' -e '{script}'", style="cyan", markup=False)
    if not use_kernel:
        console.print("(skipped: the kernel backend is not available)")
        return
    proc = subprocess.run(
        [sys.executable, "-m", "bpfkit", "trace", "-c", "ls /", "-e", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@syscalls[")]
    console.print("\n".join(lines) or proc.stderr.strip(), markup=False)


def main() -> int:
    use_kernel, why = kernel_ok()
    console.print(
        f"bpfkit {bpfkit.__version__}; kernel backend: "
        + ("[green]available" if use_kernel else f"[yellow]not available ({why})")
    )
    demo_assembled(use_kernel)
    demo_conformance()
    demo_c_program(use_kernel)
    demo_verifier(use_kernel)
    demo_observe(use_kernel)
    demo_classic(use_kernel)
    demo_seccomp()
    demo_trace(use_kernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
