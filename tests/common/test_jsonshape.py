"""Every message a child sends survives the wire as itself; a body of another shape names its field."""

import dataclasses
import enum
import types
import typing
from typing import Any, Literal, Union

import pytest

from common.jsonshape import Json, ShapeError, from_json, schema, to_json
from common.messages import Message, decode, encode
from workers import messages as _messages  # noqa: F401  (registers every product message)


def _sample(tp: Any) -> Any:
    """A value of `tp` with every optional part filled, so the round trip covers each field's type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp == Json or tp is Any:
        return {"a": [1, 2.5, "x", None, True, {"b": {}}]}
    if origin in (Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return args[0]
    if origin is tuple:
        return (_sample(args[0]),)
    if origin is dict:
        return {"k": _sample(args[1])}
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, localns={"Json": Json})
        return tp(**{f.name: _sample(hints[f.name]) for f in dataclasses.fields(tp)})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return list(tp)[-1]
    return {str: "text", int: 7, float: 1.5, bool: True}[tp]


MESSAGES = sorted(Message._BY_TAG.values(), key=lambda cls: cls.TAG)


@pytest.mark.parametrize("cls", MESSAGES, ids=[cls.TAG for cls in MESSAGES])
def test_every_message_survives_the_wire_as_itself(cls: type[Message]) -> None:
    message = _sample(cls)
    assert decode(encode(message)) == message


def test_a_field_of_another_shape_is_named_with_its_path() -> None:
    @dataclasses.dataclass(frozen=True)
    class Inner:
        n: int

    @dataclasses.dataclass(frozen=True)
    class Outer:
        items: tuple[Inner, ...]
        name: str = ""

    assert from_json(Outer, {"items": [{"n": 1}]}) == Outer((Inner(1),))
    with pytest.raises(ShapeError, match=r"^items\[1\]\.n: expected int, got bool$"):
        from_json(Outer, {"items": [{"n": 1}, {"n": True}]})
    with pytest.raises(ShapeError, match="unexpected field 'extra'"):
        from_json(Outer, {"items": [], "extra": 1})
    assert to_json(Outer((Inner(2),), "x")) == {"items": [{"n": 2}], "name": "x"}
    defs: dict[str, Json] = {}
    assert schema(Outer, defs, frozenset({Inner}))["properties"]["items"] == {  # type: ignore[index,call-overload]
        "type": "array",
        "items": {"$ref": "#/$defs/inner"},
    }
    assert set(defs) == {"inner"}


def test_unknown_fields_are_passed_over_only_when_asked() -> None:
    """A file another version wrote may carry fields this one has not (results.json's consumers ignore them)."""

    @dataclasses.dataclass(frozen=True)
    class Inner:
        n: int

    @dataclasses.dataclass(frozen=True)
    class Outer:
        items: tuple[Inner | None, ...]

    newer = {"items": [{"n": 1, "later": "x"}, None], "added": 2}
    assert from_json(Outer, newer, ignore_unknown=True) == Outer((Inner(1), None))
    with pytest.raises(ShapeError, match=r"^value: unexpected field 'added'$"):
        from_json(Outer, newer)
    with pytest.raises(ShapeError, match=r"^items\[0\]: unexpected field 'later'$"):
        from_json(Outer, {"items": newer["items"]})
    with pytest.raises(ShapeError, match=r"^items\[0\]\.n: expected int, got str$"):
        from_json(Outer, {"items": [{"n": "1"}]}, ignore_unknown=True)


def test_results_json_reads_back_as_the_run_result_it_was_written_from() -> None:
    """`run_result.from_json_object` is `as_json`'s inverse: a smoke run, a demo run (no smoke sections),
    and a sweep never reported (JobsUnreported, which a lenient reader must not take for JobsConfirmed)."""
    from supervisor.run_result import JobsUnreported, RunResult, as_json, from_json_object

    smoke_run = _sample(RunResult)
    assert smoke_run.smoke is not None
    unreported = dataclasses.replace(smoke_run.smoke, jobs_confirmed=JobsUnreported(1, 0, ("/smoke/j",)))
    for result in (
        smoke_run,
        dataclasses.replace(smoke_run, smoke=None),
        dataclasses.replace(smoke_run, smoke=unreported),
    ):
        assert from_json_object(as_json(result)) == result
