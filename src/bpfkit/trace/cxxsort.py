"""The order libstdc++'s ``std::sort`` leaves equal elements in (an introsort: not stable).

bpftrace resolves addresses to symbols through BCC's symbol caches, which sort the symbols
of a file (or of ``/proc/kallsyms``) by address only with ``std::sort`` and then name an
address after the *last* symbol of the run of equal addresses. Which alias that is
(``_text`` or ``_stext``, ``getenv`` or ``__GI_getenv``) is decided by where the sort
moved equal elements, so naming addresses as bpftrace does needs the same algorithm:
:func:`sort_order` follows libstdc++'s ``std::sort`` step by step (introsort with a
median-of-three pivot and an unguarded partition, heapsort past the depth limit, a final
insertion sort over runs of 16), comparing only the keys.
"""

from __future__ import annotations

_THRESHOLD = 16


def sort_order(keys: list[int]) -> list[int]:
    """The indices of ``keys`` in the order ``std::sort`` (``a < b`` on keys) leaves them."""
    a = [(k, i) for i, k in enumerate(keys)]
    n = len(a)
    if n > 1:
        _introsort(a, 0, n, 2 * (n.bit_length() - 1))
        _final_insertion_sort(a, 0, n)
    return [i for _, i in a]


def _introsort(a: list, first: int, last: int, depth: int) -> None:
    while last - first > _THRESHOLD:
        if depth == 0:
            _heap_sort(a, first, last)
            return
        depth -= 1
        cut = _partition_pivot(a, first, last)
        _introsort(a, cut, last, depth)
        last = cut


def _partition_pivot(a: list, first: int, last: int) -> int:
    mid = first + (last - first) // 2
    _median_to_first(a, first, first + 1, mid, last - 1)
    # unguarded partition of [first + 1, last) around a[first]
    pivot = a[first][0]
    lo, hi = first + 1, last
    while True:
        while a[lo][0] < pivot:
            lo += 1
        hi -= 1
        while pivot < a[hi][0]:
            hi -= 1
        if not lo < hi:
            return lo
        a[lo], a[hi] = a[hi], a[lo]
        lo += 1


def _median_to_first(a: list, result: int, x: int, y: int, z: int) -> None:
    ka, kb, kc = a[x][0], a[y][0], a[z][0]
    if ka < kb:
        if kb < kc:
            m = y
        elif ka < kc:
            m = z
        else:
            m = x
    elif ka < kc:
        m = x
    elif kb < kc:
        m = z
    else:
        m = y
    a[result], a[m] = a[m], a[result]


def _final_insertion_sort(a: list, first: int, last: int) -> None:
    if last - first > _THRESHOLD:
        _insertion_sort(a, first, first + _THRESHOLD)
        for i in range(first + _THRESHOLD, last):
            _linear_insert(a, i)
    else:
        _insertion_sort(a, first, last)


def _insertion_sort(a: list, first: int, last: int) -> None:
    for i in range(first + 1, last):
        if a[i][0] < a[first][0]:
            v = a[i]
            a[first + 1 : i + 1] = a[first:i]
            a[first] = v
        else:
            _linear_insert(a, i)


def _linear_insert(a: list, last: int) -> None:
    v = a[last]
    k = v[0]
    nxt = last - 1
    while k < a[nxt][0]:
        a[last] = a[nxt]
        last = nxt
        nxt -= 1
    a[last] = v


# ---- heapsort (std::make_heap + std::sort_heap), past the depth limit ----------------------


def _heap_sort(a: list, first: int, last: int) -> None:
    n = last - first
    if n >= 2:
        parent = (n - 2) // 2
        while True:
            _adjust_heap(a, first, parent, n, a[first + parent])
            if parent == 0:
                break
            parent -= 1
    while last - first > 1:
        last -= 1
        v = a[last]
        a[last] = a[first]
        _adjust_heap(a, first, 0, last - first, v)


def _adjust_heap(a: list, first: int, hole: int, n: int, v: tuple) -> None:
    top = hole
    child = hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if a[first + child][0] < a[first + child - 1][0]:
            child -= 1
        a[first + hole] = a[first + child]
        hole = child
    if n & 1 == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        a[first + hole] = a[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and a[first + parent][0] < v[0]:
        a[first + hole] = a[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    a[first + hole] = v
