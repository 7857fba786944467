"""The child-process side of the safety tests: hostile programs run next to canaries.

A segfault, a corrupted canary or a Python exception that is not a ``BpfError`` must
fail a test, not the test runner, so the safety tests run their attacks here, in a
child process: ``python3 tests/safety_child.py < request.json`` reads one JSON request
(``{"cases": [...]}``) and prints one JSON line per case:
``{"i": index, "status": "ok" | "contained" | "escaped", "error", "message", "r0",
"mem", "insns", "canaries": [names of changed canaries], "leak": [names whose bytes
reached r0 or the memory]}``.

Canaries, re-checked after every case:

- ``bytes``: an immutable ``bytes`` object (what the issue's attack rewrote in place);
  its data address is ``CANARY`` in a case's memory or Python code;
- ``stack-lo``/``stack-hi`` and ``input-lo``/``input-hi``: guard bytes right below and
  right above the stack region and the input region (one native buffer holds guard,
  region, guard, so an overflow by a few bytes lands in a guard);
- ``buf``: a separate ctypes buffer (``BUF``).

Every canary holds a distinct 8-byte pattern; a pattern found in ``r0`` or in the
input memory after the run means the program read outside its regions (``leak``).

Case kinds:

- ``{"kind": "raw", "engine": "interp" | "jit", "hex": bytecode | "asm": text,
  "mem": [u64 or "CANARY+n" / "BUF+n" / "STACK+n" / "INPUT+n"] or "memhex": hex}``:
  the program runs like the conformance vectors (r1 = input, r2 = its length) on a
  plain ``Env`` whose stack and input regions sit between guards;
- ``{"kind": "python", "engine": ..., "src": source}``: ``src`` defines
  ``attack(engine, C)`` returning r0 (``C`` has ``CANARY``, ``BUF``); for attacks that
  need a VM runtime (maps, program types, helpers).
"""

from __future__ import annotations

import ctypes
import json
import struct
import sys
import traceback

from bpfkit.errors import BpfError
from bpfkit.isa.asm import assemble_text
from bpfkit.isa.instruction import decode
from bpfkit.vm.env import STACK_REGION_SIZE, Env
from bpfkit.vm.memory import Region

GUARD = 4096
_BYTES_OFF = bytes.__basicsize__ - 1  # where a bytes object's data starts (CPython)


def _pattern(tag: int) -> bytes:
    return struct.pack("<Q", 0xC0DE_5AFE_0000_0000 | (tag * 0x01010101))


class Guarded:
    """A native buffer: guard, a ``size``-byte region, guard; the guards are canaries."""

    def __init__(self, name: str, size: int, lo_tag: int, hi_tag: int) -> None:
        self.name = name
        self.size = size
        self.raw = (ctypes.c_ubyte * (2 * GUARD + max(size, 1)))()
        self.lo = _pattern(lo_tag) * (GUARD // 8)
        self.hi = _pattern(hi_tag) * (GUARD // 8)
        base = ctypes.addressof(self.raw)
        ctypes.memmove(base, self.lo, GUARD)
        ctypes.memmove(base + GUARD + size, self.hi, GUARD)
        self.inner = (ctypes.c_ubyte * max(size, 1)).from_address(base + GUARD)
        self.lo_tag, self.hi_tag = lo_tag, hi_tag

    @property
    def addr(self) -> int:
        return ctypes.addressof(self.inner)

    def region(self) -> Region:
        r = Region(self.name, self.inner)
        r.size, r.end = self.size, r.base + self.size
        return r

    def changed(self) -> list[str]:
        base = ctypes.addressof(self.raw)
        out = []
        if ctypes.string_at(base, GUARD) != self.lo:
            out.append(f"{self.name}-lo")
        if ctypes.string_at(base + GUARD + self.size, GUARD) != self.hi:
            out.append(f"{self.name}-hi")
        return out


class Canaries:
    """Every canary of the process, with its pattern; ``check()`` names the changed ones."""

    def __init__(self) -> None:
        self.obj = _pattern(1) * 512  # an immutable bytes object
        self.obj_copy = bytes(bytearray(self.obj))
        self.CANARY = id(self.obj) + _BYTES_OFF
        assert ctypes.string_at(self.CANARY, 16) == self.obj[:16]
        self.buf = (ctypes.c_ubyte * 4096)()
        ctypes.memmove(self.buf, _pattern(2) * 512, 4096)
        self.BUF = ctypes.addressof(self.buf)
        self.patterns = {
            "bytes": _pattern(1),
            "buf": _pattern(2),
            "stack": _pattern(3),
            "stack-hi": _pattern(4),
            "input": _pattern(5),
            "input-hi": _pattern(6),
        }
        self.guarded: list[Guarded] = []

    def guard(self, name: str, size: int) -> Guarded:
        lo, hi = (3, 4) if name == "stack" else (5, 6)
        g = Guarded(name, size, lo, hi)
        self.guarded.append(g)
        return g

    def check(self) -> list[str]:
        out = []
        if self.obj != self.obj_copy:
            out.append("bytes")
        if ctypes.string_at(self.BUF, 4096) != _pattern(2) * 512:
            out.append("buf")
        for g in self.guarded:
            out += g.changed()
        return out

    def leaks(self, r0: int | None, mem: bytes) -> list[str]:
        """Canaries whose pattern shows in r0 (any byte rotation) or in ``mem``."""
        found = []
        for name, pat in self.patterns.items():
            hit = False
            if r0 is not None:
                word = struct.pack("<Q", r0 & (1 << 64) - 1)
                hit = any(word == pat[k:] + pat[:k] for k in range(8))
                hit = hit or word[:4] in (pat[:4], pat[4:])
            if not hit and mem:
                hit = pat[4:] + pat[:4] in mem or pat in mem
            if hit:
                found.append(name)
        return found


def _mem_bytes(spec, names: dict[str, int]) -> bytes:
    out = bytearray()
    for item in spec:
        if isinstance(item, int):
            out += struct.pack("<Q", item & (1 << 64) - 1)
        else:
            key, _, off = str(item).partition("+")
            out += struct.pack("<Q", (names[key] + int(off or 0)) & (1 << 64) - 1)
    return bytes(out)


def run_raw(case: dict, c: Canaries) -> dict:
    """A conformance-style run on a plain Env with guarded stack and input."""
    return run_raw_engines(case, c, [case["engine"]])[case["engine"]]


def run_raw_engines(case: dict, c: Canaries, engines: list[str]) -> dict[str, dict]:
    """The same program on each engine in turn, in one Env (same stack and input
    addresses; the input is restored before each run). Values that point into an
    engine's code (``lddw src=func``) are reported relative to it."""
    from bpfkit import jit
    from bpfkit.vm import interp

    insns = assemble_text(case["asm"]) if "asm" in case else decode(bytes.fromhex(case["hex"]))
    env = Env()
    stack = c.guard("stack", STACK_REGION_SIZE)
    env.space.remove(env.stack)
    env.stack = env.space.add(stack.region())
    # the input: placed by us between guards (run_program would allocate its own)
    names = {"CANARY": c.CANARY, "BUF": c.BUF, "STACK": stack.addr}
    size = case.get("size", 64)
    inp = c.guard("input", size)
    names["INPUT"] = inp.addr
    raw = (
        bytes.fromhex(case["memhex"])
        if "memhex" in case
        else _mem_bytes(case.get("mem", []), names)
    )
    raw = raw[:size].ljust(size, b"\0")
    insns = _resolve(insns, [c.CANARY, c.BUF, stack.addr, inp.addr], [])
    region = env.space.add(inp.region())
    env.packet = region
    budget = case.get("budget", 20_000)
    out: dict[str, dict] = {}
    try:
        for engine in engines:
            try:
                if engine == "jit":
                    prog = jit.JitProgram(insns, env, budget=budget)
                    code = prog.compiled.code
                    span = (ctypes.addressof(code), ctypes.sizeof(code))
                else:
                    prog = interp.CompiledProgram(insns, env, budget=budget)
                    span = (prog.code.base, prog.code.size)
                ctypes.memmove(inp.addr, raw, size)
                env.reset_stack()
                r0, n = prog.run(region.base, size)
                mem = bytes(region.mv[:size])
                res = {"r0": _code_rel(r0, span), "insns": n, "mem": _mem_rel(mem, span)}
                res["status"] = "ok"
            except BpfError as e:
                res = {"status": "contained", "error": type(e).__name__, "message": str(e)}
            out[engine] = res
    finally:
        env.space.remove(region)
        env.packet = None
    return out


def _code_rel(v: int, span: tuple[int, int]):
    base, size = span
    return f"code+{v - base}" if base <= v < base + size else v


def _mem_rel(mem: bytes, span: tuple[int, int]) -> str:
    """``mem`` as hex, with every 8-byte window that points into the code zeroed."""
    base, size = span
    b = bytearray(mem)
    for i in range(len(mem) - 7):
        v = struct.unpack_from("<Q", mem, i)[0]
        if base <= v < base + size:
            b[i : i + 8] = b"CODE+%02d" % ((v - base) % 100)
    return b.hex()


# Placeholders a generated program uses for addresses only the child knows:
# ``lddw rX, PLACE | k`` (src 0) becomes the k-th address of ``_places``; ``lddw rX, k``
# with src PSEUDO_MAP_FD becomes the k-th map of the VM case's runtime.
PLACE = 0xCA0A_0000_0000_0000


def _resolve(insns, places: list[int], fds: list[int]):
    from bpfkit.isa import opcodes as op

    out = []
    for insn in insns:
        if insn.is_lddw and insn.src == 0 and insn.imm >> 16 == PLACE >> 16:
            insn = insn.with_(imm=places[(insn.imm & 0xFFFF) % len(places)])
        elif insn.is_lddw and insn.src in (op.PSEUDO_MAP_FD, op.PSEUDO_MAP_VALUE) and fds:
            lo = fds[(insn.imm & 0xFFFF) % len(fds)]
            insn = insn.with_(imm=(insn.imm >> 32 << 32) | lo)
        out.append(insn)
    return out


def run_vm(case: dict, c: Canaries) -> dict:
    """A typed run in a VM runtime (unverified) with maps the program may use."""
    from bpfkit.uapi.enums import MapType, ProgType
    from bpfkit.vm.runtime import VMRuntime

    rt = VMRuntime(verify=False, budget=case.get("budget", 20_000), ncpus=2, seed=1)
    try:
        maps = [
            rt.create_map("hash", MapType.HASH, 4, 16, 8),
            rt.create_map("array", MapType.ARRAY, 4, 16, 4),
            rt.create_map("ring", MapType.RINGBUF, 0, 0, 4096),
            rt.create_map("lru", MapType.LRU_HASH, 8, 8, 4),
            rt.create_map("pcpu", MapType.PERCPU_ARRAY, 4, 8, 2),
            rt.create_map("queue", MapType.QUEUE, 0, 8, 4),
            rt.create_map("progs", MapType.PROG_ARRAY, 4, 4, 2),
            rt.create_map("perf", MapType.PERF_EVENT_ARRAY, 4, 4, 2),
        ]
        fds = [m.fd for m in maps]
        insns = decode(bytes.fromhex(case["hex"]))
        places = [c.CANARY, c.BUF, maps[1].base, maps[0].addr]
        insns = _resolve(insns, places, fds)
        ptype = ProgType[case.get("type", "KPROBE")]
        prog = rt.load_program("p", ptype, insns)
        maps[6].update((0).to_bytes(4, "little"), prog)
        maps[7].open()
        if ptype == ProgType.XDP:
            res = prog.test_run(data=bytes(range(64)), engine=case["engine"])
            mem = res.data_out
        else:
            res = prog.fire(bytes(range(168)), engine=case["engine"])
            mem = res.ctx_out or b""
        return {"r0": res.r0, "mem": mem.hex(), "trace": res.trace[:4]}
    finally:
        rt.close()


def run_python(case: dict, c: Canaries) -> dict:
    ns: dict = {"__name__": "attack"}
    exec(compile(case["src"], "<attack>", "exec"), ns)  # noqa: S102 - test input
    r0 = ns["attack"](case["engine"], c)
    return {"r0": r0}


def run_case(case: dict, c: Canaries) -> dict:
    try:
        kind = case["kind"]
        if kind == "both":  # a raw program on both engines, one environment
            res = run_raw_engines(case, c, ["interp", "jit"])
            out = {"status": "ok", "engines": res}
        elif kind == "python":
            out = run_python(case, c)
        elif kind == "vm":
            out = run_vm(case, c)
        else:
            out = run_raw(case, c)
        out.setdefault("status", "ok")
    except BpfError as e:
        out = {"status": "contained", "error": type(e).__name__, "message": str(e)}
    except Exception as e:  # noqa: BLE001 - what the tests look for
        out = {
            "status": "escaped",
            "error": type(e).__name__,
            "message": str(e),
            "traceback": traceback.format_exc(limit=6),
        }
    out["canaries"] = c.check()
    leak: set[str] = set()
    for r in [out, *out.get("engines", {}).values()]:
        r0 = r.get("r0")
        leak.update(c.leaks(r0 if isinstance(r0, int) else None, bytes.fromhex(r.get("mem", ""))))
    out["leak"] = sorted(leak)
    return out


def run_in_child(cases: list[dict], timeout: float = 600) -> list[dict]:
    """Run ``cases`` in a child process (same interpreter and ``PYTHONPATH``); its
    results. A crash of the child (a signal, a nonzero exit) fails with the case it was
    running."""
    import os
    import subprocess

    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)],
        input=json.dumps({"cases": cases}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(results) != len(cases):
        i = len(results)
        case = cases[i] if i < len(cases) else None
        raise AssertionError(
            f"the child process died (exit {proc.returncode}) running case {i}: {case}\n"
            f"{proc.stderr[-3000:]}"
        )
    return results


class ChildServer:
    """A child process serving cases one at a time (JSON lines), for property tests:
    startup is paid once; a crash fails the case that caused it and the next case
    gets a fresh child."""

    def __init__(self) -> None:
        self.proc = None

    def _start(self) -> None:
        import os
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def run(self, case: dict) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        proc = self.proc
        proc.stdin.write(json.dumps(case) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            proc.stdin.close()
            err = proc.stderr.read()[-3000:]
            rc = proc.wait()
            self.proc = None
            raise AssertionError(f"the child process died (exit {rc}) running {case}\n{err}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.proc = None


def main() -> None:
    c = Canaries()
    if sys.argv[1:] == ["--serve"]:
        for line in sys.stdin:
            out = run_case(json.loads(line), c)
            print(json.dumps(out), flush=True)
            c.guarded.clear()
        return
    req = json.load(sys.stdin)
    for i, case in enumerate(req["cases"]):
        out = run_case(case, c)
        out["i"] = i
        print(json.dumps(out), flush=True)
        c.guarded.clear()


if __name__ == "__main__":
    main()
