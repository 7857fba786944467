"""``__eq__``, ``__hash__`` and ``__repr__`` for dataclasses, written once instead of per class.

``@dataclass`` compiles a fresh ``__init__``, ``__repr__`` and ``__eq__`` (plus
``__hash__`` for frozen ones) for every class it decorates: about 0.1 ms of ``exec``
each, paid again at every start-up by the dozens of classes that ``bpfkit load``
imports (the BTF kinds, the object spec). A class that inherits :class:`Data` (or
:class:`Record`, hashable, for frozen classes) and is declared
``@dataclass(eq=False, repr=False, ...)`` behaves exactly as the generated methods
would: equal when of the same class with equal ``compare`` fields (compared as a
tuple), hashed as that tuple, shown as ``Name(field=value, ...)`` over the ``repr``
fields. Only ``__init__`` (and a frozen class's ``__setattr__``) is still generated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from reprlib import recursive_repr
from typing import Any

__all__ = ["Data", "Record"]

#: class -> (getter of the compare fields as a tuple, names of the repr fields)
_SHAPES: dict[type, tuple[Callable[[Any], tuple], tuple[str, ...]]] = {}


def _shape(cls: type) -> tuple[Callable[[Any], tuple], tuple[str, ...]]:
    shape = _SHAPES.get(cls)
    if shape is None:
        fields = dataclasses.fields(cls)
        names = tuple(f.name for f in fields if f.compare)
        if len(names) > 1:
            get: Callable[[Any], tuple] = attrgetter(*names)
        elif names:
            one = names[0]
            get = lambda o: (getattr(o, one),)  # noqa: E731
        else:
            get = lambda o: ()  # noqa: E731
        shape = _SHAPES[cls] = (get, tuple(f.name for f in fields if f.repr))
    return shape


class Data:
    """Dataclass equality and repr, shared (the instances are unhashable, like a
    non-frozen dataclass with ``eq``)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            get = _shape(self.__class__)[0]
            return get(self) == get(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @recursive_repr()
    def __repr__(self) -> str:
        names = _shape(self.__class__)[1]
        return (
            self.__class__.__qualname__
            + "("
            + ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            + ")"
        )


class Record(Data):
    """:class:`Data` for frozen dataclasses: hashable by the compare fields."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(_shape(self.__class__)[0](self))
