"""The runtime's helper registry: the base helpers plus maps, tracing and packet helpers.

``RUNTIME_HELPERS`` holds every helper the VM implements; a program gets
``registry_for(prog_type)``, the ones its type may call: the running kernel's answer where
this process may ask it, else the table the verifier was generated with
(:func:`bpfkit.verifier.helpers_proto.allowed_ids`), else ``uapi.progtypes``.
"""

from __future__ import annotations

from functools import cache

from ..uapi.progtypes import allowed_helper_ids
from . import helpers_maps, helpers_net, helpers_trace
from .helpers import BASE, HelperRegistry
from .maps import cgroup_array

__all__ = ["RUNTIME_HELPERS", "allowed_ids_for", "registry_for"]


def _merge(*registries: HelperRegistry) -> HelperRegistry:
    out = HelperRegistry()
    for reg in registries:
        for hid in reg.ids():
            out.register(hid, reg.get(hid).fn)  # type: ignore[union-attr]
    return out


RUNTIME_HELPERS = _merge(
    BASE, helpers_maps.HELPERS, helpers_trace.HELPERS, helpers_net.HELPERS, cgroup_array.HELPERS
)


@cache
def allowed_ids_for(prog_type: int) -> frozenset[int]:
    """Ids of the helpers a program of ``prog_type`` may call (empty: not known)."""
    from ..verifier.helpers_proto import allowed_ids

    ids = allowed_ids(int(prog_type))
    return ids if ids is not None else allowed_helper_ids(prog_type)


@cache
def registry_for(prog_type: int) -> HelperRegistry:
    """The helpers a program of ``prog_type`` may call (all of them for an unknown type)."""
    ids = allowed_ids_for(prog_type)
    return RUNTIME_HELPERS.only(set(ids)) if ids else RUNTIME_HELPERS.copy()
