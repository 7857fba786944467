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
    ctypes.memmove(inp.addr, raw, size)
    region = env.space.add(inp.region())
    env.packet = region
    budget = case.get("budget", 20_000)
    try:
        if case["engine"] == "jit":
            prog = jit.JitProgram(insns, env, budget=budget)
        else:
            prog = interp.CompiledProgram(insns, env, budget=budget)
        env.reset_stack()
        r0, n = prog.run(region.base, size)
        return {"r0": r0, "insns": n, "mem": bytes(region.mv[:size]).hex()}
    finally:
        env.space.remove(region)
        env.packet = None


def run_python(case: dict, c: Canaries) -> dict:
    ns: dict = {"__name__": "attack"}
    exec(compile(case["src"], "<attack>", "exec"), ns)  # noqa: S102 - test input
    r0 = ns["attack"](case["engine"], c)
    return {"r0": r0}


def run_case(case: dict, c: Canaries) -> dict:
    try:
        out = run_python(case, c) if case["kind"] == "python" else run_raw(case, c)
        out["status"] = "ok"
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
    r0 = out.get("r0")
    out["leak"] = c.leaks(r0, bytes.fromhex(out.get("mem", "")))
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


def main() -> None:
    req = json.load(sys.stdin)
    c = Canaries()
    for i, case in enumerate(req["cases"]):
        out = run_case(case, c)
        out["i"] = i
        print(json.dumps(out), flush=True)
        c.guarded.clear()


if __name__ == "__main__":
    main()
