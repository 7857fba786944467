"""``union bpf_attr`` member layouts and the ``OBJ_GET_INFO_BY_FD`` payloads.

Part of :mod:`bpfkit.kernel.sys` (which re-exports every public name).
"""

from __future__ import annotations

import ctypes

from .sys_core import OBJ_NAME_LEN, TAG_SIZE

# ---------------------------------------------------------------------------
# Attribute layouts (one per command group, as the members of union bpf_attr)
# ---------------------------------------------------------------------------

u8, u32, s32, u64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class _Attr(ctypes.Structure):
    """Base for attribute layouts: natural alignment, explicit padding for ``__aligned_u64``."""


class MapCreateAttr(_Attr):
    """``BPF_MAP_CREATE``."""

    _fields_ = [
        ("map_type", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("inner_map_fd", u32),
        ("numa_node", u32),
        ("map_name", ctypes.c_char * OBJ_NAME_LEN),
        ("map_ifindex", u32),
        ("btf_fd", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("map_extra", u64),
        ("value_type_btf_obj_fd", s32),
        ("map_token_fd", s32),
        ("excl_prog_hash", u64),
        ("excl_prog_hash_size", u32),
        ("_pad0", u32),
    ]


class MapElemAttr(_Attr):
    """``BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM``, ``GET_NEXT_KEY``, ``LOOKUP_AND_DELETE``, ``FREEZE``."""

    _fields_ = [("map_fd", u32), ("_pad0", u32), ("key", u64), ("value", u64), ("flags", u64)]

    @property
    def next_key(self) -> int:
        return self.value

    @next_key.setter
    def next_key(self, v: int) -> None:
        self.value = v


class MapBatchAttr(_Attr):
    """``BPF_MAP_*_BATCH``."""

    _fields_ = [
        ("in_batch", u64),
        ("out_batch", u64),
        ("keys", u64),
        ("values", u64),
        ("count", u32),
        ("map_fd", u32),
        ("elem_flags", u64),
        ("flags", u64),
    ]


class ProgLoadAttr(_Attr):
    """``BPF_PROG_LOAD``."""

    _fields_ = [
        ("prog_type", u32),
        ("insn_cnt", u32),
        ("insns", u64),
        ("license", u64),
        ("log_level", u32),
        ("log_size", u32),
        ("log_buf", u64),
        ("kern_version", u32),
        ("prog_flags", u32),
        ("prog_name", ctypes.c_char * OBJ_NAME_LEN),
        ("prog_ifindex", u32),
        ("expected_attach_type", u32),
        ("prog_btf_fd", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("func_info_cnt", u32),
        ("line_info_rec_size", u32),
        ("line_info", u64),
        ("line_info_cnt", u32),
        ("attach_btf_id", u32),
        ("attach_prog_fd", u32),  # union with attach_btf_obj_fd
        ("core_relo_cnt", u32),
        ("fd_array", u64),
        ("core_relos", u64),
        ("core_relo_rec_size", u32),
        ("log_true_size", u32),
        ("prog_token_fd", s32),
        ("fd_array_cnt", u32),
        ("signature", u64),
        ("signature_size", u32),
        ("keyring_id", s32),
    ]

    @property
    def attach_btf_obj_fd(self) -> int:
        return self.attach_prog_fd

    @attach_btf_obj_fd.setter
    def attach_btf_obj_fd(self, v: int) -> None:
        self.attach_prog_fd = v


class ObjAttr(_Attr):
    """``BPF_OBJ_PIN`` / ``BPF_OBJ_GET``."""

    _fields_ = [
        ("pathname", u64),
        ("bpf_fd", u32),
        ("file_flags", u32),
        ("path_fd", s32),
        ("_pad0", u32),
    ]


class ProgAttachAttr(_Attr):
    """``BPF_PROG_ATTACH`` / ``BPF_PROG_DETACH``."""

    _fields_ = [
        ("target_fd", u32),  # union with target_ifindex
        ("attach_bpf_fd", u32),
        ("attach_type", u32),
        ("attach_flags", u32),
        ("replace_bpf_fd", u32),
        ("relative_fd", u32),  # union with relative_id
        ("expected_revision", u64),
    ]


class TestRunAttr(_Attr):
    """``BPF_PROG_TEST_RUN``."""

    __test__ = False  # not a pytest test class
    _fields_ = [
        ("prog_fd", u32),
        ("retval", u32),
        ("data_size_in", u32),
        ("data_size_out", u32),
        ("data_in", u64),
        ("data_out", u64),
        ("repeat", u32),
        ("duration", u32),
        ("ctx_size_in", u32),
        ("ctx_size_out", u32),
        ("ctx_in", u64),
        ("ctx_out", u64),
        ("flags", u32),
        ("cpu", u32),
        ("batch_size", u32),
        ("_pad0", u32),
    ]


class GetIdAttr(_Attr):
    """``BPF_*_GET_NEXT_ID`` / ``BPF_*_GET_FD_BY_ID``."""

    _fields_ = [
        ("start_id", u32),
        ("next_id", u32),
        ("open_flags", u32),
        ("fd_by_id_token_fd", s32),
    ]


class InfoAttr(_Attr):
    """``BPF_OBJ_GET_INFO_BY_FD``."""

    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]


class QueryAttr(_Attr):
    """``BPF_PROG_QUERY``."""

    _fields_ = [
        ("target_fd", u32),
        ("attach_type", u32),
        ("query_flags", u32),
        ("attach_flags", u32),
        ("prog_ids", u64),
        ("prog_cnt", u32),
        ("_pad0", u32),
        ("prog_attach_flags", u64),
        ("link_ids", u64),
        ("link_attach_flags", u64),
        ("revision", u64),
    ]


class RawTracepointAttr(_Attr):
    """``BPF_RAW_TRACEPOINT_OPEN``."""

    _fields_ = [("name", u64), ("prog_fd", u32), ("_pad0", u32), ("cookie", u64)]


class BtfLoadAttr(_Attr):
    """``BPF_BTF_LOAD``."""

    _fields_ = [
        ("btf", u64),
        ("btf_log_buf", u64),
        ("btf_size", u32),
        ("btf_log_size", u32),
        ("btf_log_level", u32),
        ("btf_log_true_size", u32),
        ("btf_flags", u32),
        ("btf_token_fd", s32),
    ]


class _IterTarget(_Attr):
    _fields_ = [("iter_info", u64), ("iter_info_len", u32), ("_pad0", u32)]


class _PerfEventTarget(_Attr):
    _fields_ = [("bpf_cookie", u64)]


class _KprobeMultiTarget(_Attr):
    _fields_ = [("flags", u32), ("cnt", u32), ("syms", u64), ("addrs", u64), ("cookies", u64)]


class _TracingTarget(_Attr):
    _fields_ = [("target_btf_id", u32), ("_pad0", u32), ("cookie", u64)]


class _NetfilterTarget(_Attr):
    _fields_ = [("pf", u32), ("hooknum", u32), ("priority", s32), ("flags", u32)]


class _RelativeTarget(_Attr):
    """The ``tcx``/``netkit``/``cgroup`` members: relative position and expected revision."""

    _fields_ = [("relative_fd", u32), ("_pad0", u32), ("expected_revision", u64)]


class _UprobeMultiTarget(_Attr):
    _fields_ = [
        ("path", u64),
        ("offsets", u64),
        ("ref_ctr_offsets", u64),
        ("cookies", u64),
        ("cnt", u32),
        ("flags", u32),
        ("pid", u32),
        ("path_fd", u32),
    ]


class _LinkCreateTarget(ctypes.Union):
    _fields_ = [
        ("target_btf_id", u32),
        ("iter", _IterTarget),
        ("perf_event", _PerfEventTarget),
        ("kprobe_multi", _KprobeMultiTarget),
        ("tracing", _TracingTarget),
        ("netfilter", _NetfilterTarget),
        ("tcx", _RelativeTarget),
        ("uprobe_multi", _UprobeMultiTarget),
        ("netkit", _RelativeTarget),
        ("cgroup", _RelativeTarget),
        ("_raw", u8 * 48),
    ]


class LinkCreateAttr(_Attr):
    """``BPF_LINK_CREATE`` (``prog_fd`` is a union with ``map_fd``, ``target_fd`` with ``target_ifindex``)."""

    _anonymous_ = ("u",)
    _fields_ = [
        ("prog_fd", u32),
        ("target_fd", u32),
        ("attach_type", u32),
        ("flags", u32),
        ("u", _LinkCreateTarget),
    ]


class LinkUpdateAttr(_Attr):
    """``BPF_LINK_UPDATE``."""

    _fields_ = [("link_fd", u32), ("new_prog_fd", u32), ("flags", u32), ("old_prog_fd", u32)]


class LinkDetachAttr(_Attr):
    """``BPF_LINK_DETACH``."""

    _fields_ = [("link_fd", u32), ("_pad0", u32)]


class EnableStatsAttr(_Attr):
    """``BPF_ENABLE_STATS``."""

    _fields_ = [("type", u32), ("_pad0", u32)]


class IterCreateAttr(_Attr):
    """``BPF_ITER_CREATE``."""

    _fields_ = [("link_fd", u32), ("flags", u32)]


class ProgBindMapAttr(_Attr):
    """``BPF_PROG_BIND_MAP``."""

    _fields_ = [("prog_fd", u32), ("map_fd", u32), ("flags", u32), ("_pad0", u32)]


# ---- OBJ_GET_INFO_BY_FD payloads ----------------------------------------------------


class BpfProgInfo(_Attr):
    """``struct bpf_prog_info``."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("tag", u8 * TAG_SIZE),
        ("jited_prog_len", u32),
        ("xlated_prog_len", u32),
        ("jited_prog_insns", u64),
        ("xlated_prog_insns", u64),
        ("load_time", u64),
        ("created_by_uid", u32),
        ("nr_map_ids", u32),
        ("map_ids", u64),
        ("name", ctypes.c_char * OBJ_NAME_LEN),
        ("ifindex", u32),
        ("gpl_compatible", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("nr_jited_ksyms", u32),
        ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64),
        ("jited_func_lens", u64),
        ("btf_id", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("nr_func_info", u32),
        ("nr_line_info", u32),
        ("line_info", u64),
        ("jited_line_info", u64),
        ("nr_jited_line_info", u32),
        ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32),
        ("nr_prog_tags", u32),
        ("prog_tags", u64),
        ("run_time_ns", u64),
        ("run_cnt", u64),
        ("recursion_misses", u64),
        ("verified_insns", u32),
        ("attach_btf_obj_id", u32),
        ("attach_btf_id", u32),
        ("_pad0", u32),
    ]


class BpfMapInfo(_Attr):
    """``struct bpf_map_info``."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("name", ctypes.c_char * OBJ_NAME_LEN),
        ("ifindex", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("btf_id", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("_pad0", u32),
        ("map_extra", u64),
    ]


class BpfBtfInfo(_Attr):
    """``struct bpf_btf_info``."""

    _fields_ = [
        ("btf", u64),
        ("btf_size", u32),
        ("id", u32),
        ("name", u64),
        ("name_len", u32),
        ("kernel_btf", u32),
    ]


class BpfLinkInfo(_Attr):
    """``struct bpf_link_info``: the common header and the per-kind union as raw bytes."""

    _fields_ = [("type", u32), ("id", u32), ("prog_id", u32), ("_pad0", u32), ("u", u8 * 112)]
