"""``bpfkit filter``: tcpdump's filter language — compile, run over a capture, live capture.

Heavy modules (the compiler, LLVM, rich) are imported inside the commands, so that
``bpfkit filter run`` starts quickly.
"""

from __future__ import annotations

import os
import sys
import time

import click

from ..errors import BpfError, CaptureError, FilterSyntaxError
from ._common import EXIT_FAIL, EXIT_USAGE, CliGroup, emit, fail, guarded

LINKTYPE_CHOICES = ["EN10MB", "RAW", "LINUX_SLL", "LINUX_SLL2"]


def _syntax_fail(e: FilterSyntaxError, as_json: bool) -> None:
    col = f" (column {e.column})" if e.column is not None else ""
    where = f"{e.origin}: " if e.origin else ""
    line = f", line {e.line}" if e.origin and e.line is not None else ""
    fail(
        f"{where}{e.msg}{line}{col}",
        EXIT_USAGE,
        as_json,
        **({"column": e.column} if e.column else {}),
    )


@click.group("filter", cls=CliGroup)
def filter_group() -> None:
    """tcpdump's filter language (pcap-filter(7)) and capture files."""


@filter_group.command("compile")
@click.argument("expression", nargs=-1, required=True)
@click.option(
    "--linktype",
    type=click.Choice(LINKTYPE_CHOICES, case_sensitive=False),
    default="EN10MB",
    show_default=True,
    help="Link-layer header type of the packets.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["listing", "c", "decimal"]),
    default="listing",
    show_default=True,
    help="Like tcpdump -d (listing), -dd (c) or -ddd (decimal).",
)
@click.option("--snaplen", type=click.IntRange(1, 0xFFFFFFFF), default=262144, show_default=True)
@click.option("-O", "--no-optimize", is_flag=True, help="Do not optimise (tcpdump -O).")
@click.option(
    "--live",
    is_flag=True,
    help="For a live capture on Linux, as tcpdump -i IFACE -d (vlan through the kernel's "
    "VLAN metadata; inbound/outbound/ifindex allowed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def compile_cmd(
    expression: tuple[str, ...],
    linktype: str,
    fmt: str,
    snaplen: int,
    no_optimize: bool,
    live: bool,
    as_json: bool,
) -> None:
    """Compile EXPRESSION to a classic BPF program, as tcpdump -d/-dd/-ddd print it
    (for a capture file, or with --live for a live capture)."""
    from ..pcap.filter import compile_filter, linktype_name
    from ..pcap.progtext import format_program

    expr = " ".join(expression)
    try:
        prog = compile_filter(expr, linktype, snaplen=snaplen, optimize=not no_optimize, live=live)
    except FilterSyntaxError as e:
        _syntax_fail(e, as_json)
        return
    if as_json:
        emit(
            {
                "linktype": linktype_name(linktype),
                "insns": [[i.code, i.jt, i.jf, i.k] for i in prog],
            }
        )
    else:
        click.echo(format_program(prog, fmt), nl=False)


def _load_program(arg: str, as_json: bool):
    """``@FILE`` → a fixed program; otherwise a per-link-type compiler of the expression."""
    if arg.startswith("@"):
        from ..pcap.progtext import read_program
        from ..pcap.scan import validate

        path = arg[1:]
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read(1 << 22)
        except OSError as e:
            fail(f"{path}: {e.strerror}", EXIT_USAGE, as_json)
        prog = read_program(text, origin=path)
        validate(prog)
        return lambda _linktype: prog
    from ..pcap.codecache import cached_program

    cache: dict[int, list] = {}

    def program_for(linktype: int):
        if linktype not in cache:
            cache[linktype] = cached_program(arg, linktype)
        return cache[linktype]

    return program_for


def _progress(enabled: bool, label: str):
    """A rich progress bar on stderr (only on a terminal)."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    prog = Progress(
        f"[bold]{label}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=__import__("rich.console", fromlist=["Console"]).Console(stderr=True),
    )
    task = prog.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    return prog, update


@filter_group.command("run")
@click.argument("args", nargs=-1, metavar="EXPRESSION... CAPTURE")
@click.option(
    "-r",
    "--read",
    "read",
    type=click.Path(dir_okay=False),
    help="The capture to read (as tcpdump -r; '-' is stdin); then every argument is the "
    "expression.",
)
@click.option(
    "-w",
    "--write",
    "out",
    type=click.Path(),
    help="Write matching packets (pcap); '-' is stdout. An existing file is replaced only "
    "when the run ends (it may be the input).",
)
@click.option(
    "--engine",
    type=click.Choice(["interp", "jit"]),
    default=None,
    help="jit: native code over the file, pcap or pcapng (default when llvmlite is present); "
    "interp: Python.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def run_cmd(
    args: tuple[str, ...], read: str | None, out: str | None, engine: str | None, as_json: bool
) -> None:
    """Filter a capture (pcap or pcapng) with a program: 'run EXPRESSION CAPTURE', or
    'run -r CAPTURE EXPRESSION...' as tcpdump takes it. The program is an expression, or
    @FILE holding a classic program (tcpdump -ddd/-dd/-d output or bpfkit's JSON)."""
    if read is not None:
        capture, program = read, " ".join(args)
    elif len(args) >= 2:
        capture, program = args[-1], " ".join(args[:-1])
    else:
        fail(
            "give the expression and the capture (run EXPR CAPTURE, or run -r CAPTURE EXPR)",
            EXIT_USAGE,
            as_json,
        )
    if out == "-" and as_json:
        fail(
            "-w - writes the packets to stdout: it cannot be used with --json", EXIT_USAGE, as_json
        )
    from ..pcap.scan import filter_capture, jit_available

    if engine is None:
        engine = "jit" if jit_available() else "interp"
    t0 = time.perf_counter_ns()
    try:
        program_for = _load_program(program, as_json)
    except FilterSyntaxError as e:
        _syntax_fail(e, as_json)
        return
    show = (
        not as_json and sys.stderr.isatty() and os.path.getsize(capture) > (64 << 20)
        if capture != "-" and os.path.isfile(capture)
        else False
    )
    bar, update = _progress(show, "filtering")
    dest = sys.stdout.buffer if out == "-" else out
    try:
        if bar is not None:
            bar.start()
        result = filter_capture(capture, program_for, engine=engine, out=dest, progress=update)
    except FilterSyntaxError as e:
        _syntax_fail(e, as_json)
        return
    except CaptureError as e:
        partial = getattr(e, "result", None)
        extra = {"packets": partial.packets, "matched": partial.matched} if partial else {}
        fail(str(e), EXIT_USAGE, as_json, **extra)
        return
    finally:
        if bar is not None:
            bar.stop()
    elapsed = time.perf_counter_ns() - t0
    if as_json:
        emit({"packets": result.packets, "matched": result.matched, "duration_ns": elapsed})
    else:
        click.echo(
            f"{result.matched} of {result.packets} packets matched "
            f"({result.format}, engine {result.engine}, {elapsed / 1e9:.3f} s)",
            err=out == "-",
        )


class _Stop(KeyboardInterrupt):
    """SIGTERM/SIGHUP during a capture: end it as Ctrl-C does."""


def _stop_on_signals() -> None:
    """Let SIGTERM and SIGHUP end a capture as Ctrl-C does — the packets so far written
    out, the summary printed — as tcpdump does (the default action would lose the
    writer's buffer and could cut the file inside a record)."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        raise _Stop(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


@filter_group.command("capture")
@click.argument("iface")
@click.argument("expression", nargs=-1)
@click.option("-c", "--count", type=click.IntRange(1), help="Stop after this many packets.")
@click.option(
    "-w", "--write", "out", type=click.Path(dir_okay=False), help="Write packets to a pcap file."
)
@click.option("-s", "--snaplen", type=click.IntRange(1, 262144), default=262144, show_default=True)
@click.option("--timeout", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON Lines: one object per packet, then a summary."
)
@guarded()
def capture_cmd(
    iface: str,
    expression: tuple[str, ...],
    count: int | None,
    out: str | None,
    snaplen: int,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Capture packets on IFACE through an AF_PACKET socket, the filter EXPRESSION
    compiled and attached in the kernel (SO_ATTACH_FILTER)."""
    from ..pcap.capfile import PcapWriter
    from ..pcap.filter import linktype_number
    from ..pcap.live import LiveCapture, interface_linktype, live_program

    expr = " ".join(expression)
    linktype = interface_linktype(iface)
    try:
        prog = live_program(expr, linktype, snaplen=snaplen) if expr else None
    except FilterSyntaxError as e:
        _syntax_fail(e, as_json)
        return
    writer = PcapWriter(out, linktype_number(linktype), snaplen, nanosecond=True) if out else None
    n = 0
    received = dropped = 0
    _stop_on_signals()
    try:
        with LiveCapture(iface, prog, snaplen) as cap:
            try:
                for pkt in cap.packets(count, timeout):
                    n += 1
                    if writer is not None:
                        writer.write_packet(pkt)
                    elif as_json:
                        emit(
                            {
                                "ts_ns": pkt.ts_ns,
                                "len": pkt.wirelen,
                                "caplen": pkt.caplen,
                                "data": pkt.data.hex(),
                            }
                        )
                    else:
                        ts = time.strftime("%H:%M:%S", time.localtime(pkt.ts_ns // 1_000_000_000))
                        click.echo(
                            f"{ts}.{pkt.ts_ns % 1_000_000_000:09d} len {pkt.wirelen} caplen {pkt.caplen}"
                        )
            except KeyboardInterrupt:
                pass
            received, dropped = cap.stats()
    finally:
        if writer is not None:
            writer.close()
    if as_json:
        emit(
            {
                "packets": n,
                "interface": iface,
                "linktype": linktype,
                "received": received,
                "dropped": dropped,
            }
        )
    else:
        click.echo(
            f"{n} packets captured on {iface} ({received} received by filter, "
            f"{dropped} dropped by kernel)",
            err=writer is None,
        )


COMMANDS = [filter_group]

__all__ = ["COMMANDS", "filter_group", "EXIT_FAIL", "BpfError"]
