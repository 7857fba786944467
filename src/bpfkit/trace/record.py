"""A small record base for the trace compiler's data classes, cheap to define at import.

``@dataclass`` generates and compiles ``__init__``/``__repr__``/``__eq__`` source for
every class when the module is imported; ``bpfkit trace`` has dozens of such classes and
its start-up is measured against bpftrace's, so they derive from :class:`Record`
instead: fields are the class's annotations in order, defaults are class attributes
(:data:`LIST`/:data:`DICT` for a fresh empty list/dict per instance).
"""

from __future__ import annotations

from typing import Any

#: field defaults that stand for a fresh empty list / dict per instance
LIST: Any = object()
DICT: Any = object()


class Record:
    """Fields from annotations; ``__init__`` positional or by name; ``==`` by fields."""

    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}
    _skip: tuple[str, ...] = ()  # annotations that are not constructor fields

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        own = [n for n in cls.__dict__.get("__annotations__", {})
               if n not in cls._skip and not n.startswith("_")]  # fmt: skip
        cls._fields = cls._fields + tuple(own)
        cls._defaults = dict(cls._defaults)
        for n in own:
            if n in cls.__dict__:
                cls._defaults[n] = cls.__dict__[n]

    def __init__(self, *args: Any, **kw: Any) -> None:
        fields = self._fields
        name = type(self).__name__
        if len(args) > len(fields):
            raise TypeError(f"{name} takes at most {len(fields)} fields")
        d = self.__dict__
        for n, v in zip(fields, args, strict=False):
            d[n] = v
        for n in fields[len(args) :]:
            if n in kw:
                d[n] = kw.pop(n)
            elif n in self._defaults:
                v = self._defaults[n]
                d[n] = [] if v is LIST else {} if v is DICT else v
            else:
                raise TypeError(f"{name}: missing field {n!r}")
        if kw:
            raise TypeError(f"{name}: unknown fields {sorted(kw)}")

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq
