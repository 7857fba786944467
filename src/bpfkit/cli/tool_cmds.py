"""bpftool's everyday commands: ``link list|show|detach``, ``pin``, ``unpin``, ``btf list|dump``.

Objects are named by id (a number) or by a pinned path in bpffs. ``btf dump`` reads a BTF
object by id, a raw BTF file (``/sys/kernel/btf/vmlinux``), an ELF object's ``.BTF``, or
the BTF of a loaded program or map, and prints it as bpftool's raw listing or as a C
header that compiles (``vmlinux.h``).
"""

from __future__ import annotations

import errno
import os
from typing import Any

import click

from ..errors import BpfError, KernelError
from ._common import emit, guarded, write_output

__all__ = ["COMMANDS"]


def _enum_name(v: Any) -> str:
    return getattr(v, "name", str(v)).lower()


def _open(ref: str, kind: str):
    """An owned fd of the ``kind`` object (prog, map, link, btf) named by id or pinned path."""
    from ..kernel import sys as bsys

    by_id = {
        "prog": bsys.prog_get_fd_by_id,
        "map": bsys.map_get_fd_by_id,
        "link": bsys.link_get_fd_by_id,
        "btf": bsys.btf_get_fd_by_id,
    }[kind]
    if ref.isdigit():
        return bsys.FD(by_id(int(ref)))
    if not os.path.exists(ref):
        raise BpfError(f"{ref!r} is neither a {kind} id nor a pinned path")
    if os.path.isdir(ref):
        raise BpfError(f"{ref!r} is a directory, not a pinned {kind}")
    return bsys.FD(bsys.obj_get(ref))


# ---- link ------------------------------------------------------------------------------
def _link_json(info) -> dict[str, Any]:
    d: dict[str, Any] = {"id": info.id, "type": _enum_name(info.type), "prog_id": info.prog_id}
    d.update(info.details)
    return d


@click.group("link")
def link_group() -> None:
    """Links in the kernel: list, show, detach."""


@link_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def link_list(as_json: bool) -> None:
    """Every link in the kernel (like bpftool link list)."""
    from ..kernel import sys as bsys

    links = []
    for lid in bsys.link_ids():
        try:
            with bsys.FD(bsys.link_get_fd_by_id(lid)) as fd:
                links.append(_link_json(bsys.link_info(fd)))
        except KernelError:
            continue  # gone meanwhile
    if as_json:
        emit({"links": links})
        return
    for ln in links:
        extra = " ".join(f"{k} {v}" for k, v in ln.items() if k not in ("id", "type", "prog_id"))
        click.echo(
            f"{ln['id']}: {ln['type']} prog {ln['prog_id']}" + (f" {extra}" if extra else "")
        )


@link_group.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def link_show(ref: str, as_json: bool) -> None:
    """One link by id or pinned path."""
    from ..kernel import sys as bsys

    with _open(ref, "link") as fd:
        d = _link_json(bsys.link_info(fd))
    if as_json:
        emit(d)
        return
    click.echo(" ".join(f"{k} {v}" for k, v in d.items()))


@link_group.command("detach")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def link_detach(ref: str, as_json: bool) -> None:
    """Detach a link (by id or pinned path) from its hook; its program stays loaded."""
    from ..kernel import sys as bsys

    with _open(ref, "link") as fd:
        d = _link_json(bsys.link_info(fd))
        try:
            bsys.link_detach(fd)
        except KernelError as e:
            if e.errno in (errno.EOPNOTSUPP, bsys.ENOTSUPP):
                raise BpfError(
                    f"{d['type']} links cannot be detached by the kernel; unpin or close "
                    "every holder of the link to remove it"
                ) from None
            raise
    if as_json:
        emit({"detached": d})
    else:
        click.echo(f"detached link {d['id']} ({d['type']}, prog {d['prog_id']})")


# ---- pin / unpin -----------------------------------------------------------------------
@click.command("pin")
@click.argument("kind", type=click.Choice(["prog", "map", "link"]))
@click.argument("ref")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def pin_cmd(kind: str, ref: str, path: str, as_json: bool) -> None:
    """Pin a program, map or link (by id or pinned path) at PATH on a bpf filesystem."""
    from ..kernel import sys as bsys

    with _open(ref, kind) as fd:
        bsys.obj_pin(fd, path)
    if as_json:
        emit({"pinned": path, "kind": kind, "ref": ref})
    else:
        click.echo(f"pinned {kind} {ref} at {path}")


def _is_bpf_object(path: str) -> bool:
    from ..kernel import sys as bsys

    try:
        os.close(bsys.obj_get(path))
    except KernelError:
        return False
    return True


@click.command("unpin")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "-r", "--recursive", is_flag=True, help="Remove a directory of pins (on bpffs) and its pins."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def unpin_cmd(path: str, recursive: bool, as_json: bool) -> None:
    """Remove a pin (the object goes away when nothing else holds it).

    Only BPF objects are removed: a path that is not a pin is refused, so no other file
    is ever deleted.
    """
    removed: list[str] = []
    if os.path.isdir(path) and not os.path.islink(path):
        if not recursive:
            raise BpfError(f"{path!r} is a directory: give --recursive to remove its pins")
        for root, dirs, files in os.walk(path, topdown=False):
            for f in files:
                p = os.path.join(root, f)
                if not _is_bpf_object(p):
                    raise BpfError(f"{p!r} is not a BPF pin; nothing was removed after it")
                os.unlink(p)
                removed.append(p)
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(path)
    else:
        if not _is_bpf_object(path):
            raise BpfError(f"{path!r} is not a BPF pin")
        os.unlink(path)
        removed.append(path)
    if as_json:
        emit({"unpinned": removed})
    else:
        for p in removed:
            click.echo(f"unpinned {p}")


# ---- btf -------------------------------------------------------------------------------
@click.group("btf")
def btf_group() -> None:
    """BTF: list the kernel's BTF objects, dump one as a listing or as C."""


@btf_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def btf_list(as_json: bool) -> None:
    """Every BTF object in the kernel (vmlinux, modules, programs')."""
    from ..kernel import sys as bsys

    out = []
    for bid in bsys.btf_ids():
        try:
            with bsys.FD(bsys.btf_get_fd_by_id(bid)) as fd:
                i = bsys.btf_info(fd)
        except KernelError:
            continue
        out.append({"id": i.id, "name": i.name, "size": i.btf_size, "kernel": i.kernel_btf})
    if as_json:
        emit({"btf": out})
        return
    for b in out:
        click.echo(
            f"{b['id']}: name {b['name'] or '-'} size {b['size']}B"
            + (" kernel" if b["kernel"] else "")
        )


def _btf_source(source: str | None, prog: str | None, map_ref: str | None):
    """The parsed BTF that ``btf dump`` was pointed at, and where it came from."""
    from ..btf.parser import parse_btf
    from ..kernel import sys as bsys

    given = [x for x in (source, prog, map_ref) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give one of SOURCE, --prog REF or --map REF")
    base = None
    if prog is not None or map_ref is not None:
        with _open(prog or map_ref, "prog" if prog is not None else "map") as fd:  # type: ignore[arg-type]
            info = bsys.prog_info(fd) if prog is not None else bsys.map_info(fd)
        if not info.btf_id:
            raise BpfError(f"{'program' if prog else 'map'} {prog or map_ref} has no BTF")
        source = str(info.btf_id)
    assert source is not None
    if source.isdigit():
        with bsys.FD(bsys.btf_get_fd_by_id(int(source))) as fd:
            info = bsys.btf_info(fd, data=True)
        raw = info.data or b""
        if info.kernel_btf and info.name != "vmlinux":  # a module's split BTF
            from ..kernel.btf import vmlinux_btf

            base = vmlinux_btf()
        return parse_btf(raw, base), f"id {source}"
    if os.path.isdir(source):
        raise BpfError(f"{source!r} is a directory, not a BTF file or object")
    with open(source, "rb") as f:
        data = f.read()
    if data[:4] == b"\x7fELF":
        from ..obj.elf import ElfFile

        sec = ElfFile(data).by_name(".BTF")
        if sec is None:
            raise BpfError(f"{source} has no .BTF section")
        return parse_btf(sec.data), source  # as the compiler wrote it (no load-time fixups)
    return parse_btf(data), source


@btf_group.command("dump")
@click.argument("source", required=False)
@click.option("--prog", "prog", help="The BTF of this loaded program (id or pinned path).")
@click.option("--map", "map_ref", help="The BTF of this map (id or pinned path).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["raw", "c"]),
    default="raw",
    show_default=True,
    help="raw: bpftool's listing; c: a header that compiles (vmlinux.h).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded()
def btf_dump(
    source: str | None,
    prog: str | None,
    map_ref: str | None,
    fmt: str,
    output: str | None,
    as_json: bool,
) -> None:
    """Dump BTF: SOURCE is a BTF id, a raw BTF file or an ELF object.

    bpfkit btf dump /sys/kernel/btf/vmlinux --format c > vmlinux.h
    """
    btf, where = _btf_source(source, prog, map_ref)
    if fmt == "c":
        from ..btf.cdump import dump_header

        text = dump_header(btf)
    else:
        from ..btf.rawdump import dump_raw

        text = dump_raw(btf)
    if output:
        write_output(output, text)
    if as_json:
        out: dict[str, Any] = {"source": where, "format": fmt, "types": len(btf.types) - 1}
        if output:
            out["output"] = output
        else:
            out["text"] = text
        emit(out)
    elif not output:
        click.echo(text, nl=False)


COMMANDS = [link_group, pin_cmd, unpin_cmd, btf_group]
