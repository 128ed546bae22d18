"""`fast_init`: the same instances as the `__init__` dataclasses writes, still frozen."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import InitVar, dataclass, field

import pytest

from finegate._fast_init import fast_init
from finegate.detect._actions import Redaction
from finegate.detect._types import Finding
from finegate.gateway.guards import Decision
from finegate.models.types import ChatMessage, ChatRequest, ChatResponse, GenerationParams, ToolCall

HOT = [ToolCall, ChatMessage, GenerationParams, ChatRequest, ChatResponse, Decision, Redaction,
       Finding]  # fmt: skip


def _state(obj: object) -> dict[str, object]:
    """Every field's value, and for a class without slots the whole instance dict."""
    fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    if "__slots__" not in type(obj).__dict__ and hasattr(obj, "__dict__") and vars(obj):
        assert vars(obj) == fields
    return fields


def _generated(cls: type) -> type:
    """A subclass adding nothing, through `dataclass`: it has the generated ``__init__``."""
    return dataclass(frozen=True)(type(cls.__name__, (cls,), {}))


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
def test_hot_classes_build_what_the_generated_init_builds(cls: type) -> None:
    twin = _generated(cls)
    assert twin.__init__ is not cls.__init__
    mine, theirs = inspect.signature(cls), inspect.signature(twin)
    assert [(p.name, p.default) for p in mine.parameters.values()] == [
        (p.name, p.default) for p in theirs.parameters.values()
    ]
    required = {n: f"v-{n}" for n, p in theirs.parameters.items() if p.default is p.empty}
    made, expected = cls(**required), twin(**required)
    assert _state(made) == _state(expected)
    given = {n: f"w-{n}" for n in theirs.parameters}
    assert _state(cls(**given)) == _state(twin(**given))
    assert _state(cls(*given.values())) == _state(twin(*given.values()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, next(iter(_state(made))), "changed")


def test_factories_give_fresh_values_and_arguments_win() -> None:
    @fast_init
    @dataclass(frozen=True)
    class Box:
        name: str
        tags: list[str] = field(default_factory=list)
        size: int = 3

    a, b = Box("a"), Box("b")
    assert a.tags == [] and a.tags is not b.tags and a.size == 3
    assert Box("c", ["x"], size=5) == Box(name="c", tags=["x"], size=5)
    assert vars(Box("c", ["x"], 5)) == {"name": "c", "tags": ["x"], "size": 5}
    assert dataclasses.replace(a, size=9).size == 9
    with pytest.raises(TypeError):
        Box()  # type: ignore[call-arg]
    assert Box.__init__.__qualname__.endswith("Box.__init__")


def test_slotted_classes_fill_their_slots() -> None:
    @fast_init
    @dataclass(frozen=True, slots=True)
    class Slot:
        name: str
        tags: list[str] = field(default_factory=list)
        size: int = 3

    a, b = Slot("a"), Slot("b", size=4)
    assert (a.name, a.tags, a.size) == ("a", [], 3) and a.tags is not b.tags and b.size == 4
    assert not hasattr(a, "__dict__")
    assert a == Slot("a") and a != b
    assert dataclasses.replace(b, name="d") == Slot("d", [], 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.size = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        Slot()  # type: ignore[call-arg]


def test_what_it_cannot_copy_is_refused() -> None:
    @dataclass
    class Mutable:
        x: int

    @dataclass(frozen=True)
    class Post:
        x: int

        def __post_init__(self) -> None: ...

    @dataclass(frozen=True)
    class InitOnly:
        x: int
        y: InitVar[int] = 0

    @dataclass(frozen=True)
    class KeywordOnly:
        x: int = field(kw_only=True)

    @dataclass(frozen=True)
    class Excluded:
        x: int = field(init=False, default=1)

    for cls in (Mutable, Post, InitOnly, KeywordOnly, Excluded, int):
        with pytest.raises(TypeError):
            fast_init(cls)  # type: ignore[type-var]
