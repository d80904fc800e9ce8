"""Frozen dataclasses to JSON and back, checked: the one codec for data that leaves a process.

`to_json` turns a dataclass tree (enums, tuples, `X | None`, `dict[str, X]`, `Json`) into
plain JSON values; `from_json` reads such a value back into the type, refusing anything of
another shape with a `ShapeError` naming the path (`body.hosts[3].vm: expected str, got int`),
and a field it does not know unless told to pass over them (`ignore_unknown`: a file another
version wrote may carry fields this one has not);
`schema` describes the type as a JSON Schema (draft 2020-12), each dataclass and enum one
`$defs` entry named in snake case. A field's `metadata={DOC: ...}` is its description.
"""

import dataclasses
import enum
import functools
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

# Free-form JSON, for what arrives from outside and is only passed on (a controller's reply).
Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]
JsonObject = dict[str, Json]
# Json's self-reference, once: a ForwardRef compiles its text when made, and `_is_json` asks
# about every type it reads.
_JSON_REF = typing.ForwardRef("Json")

T = TypeVar("T")
# A dataclass field's description in the schema, and keywords that narrow its type there:
# `x: int = field(metadata={DOC: "...", SCHEMA: {"minimum": 0}})`.
DOC = "description"
SCHEMA = "schema"


class ShapeError(ValueError):
    """A JSON value that is not the type it should be: `path: expected ..., got ...`."""


def to_json(value: object) -> Json:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json_object(value: object) -> JsonObject:
    """A dataclass as a JSON object (its fields, converted)."""
    out = to_json(value)
    assert isinstance(out, dict), type(value)
    return out


def _got(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _fail(path: str, expected: str, value: object) -> ShapeError:
    return ShapeError(f"{path or 'value'}: expected {expected}, got {_got(value)}")


def from_json(tp: type[T], value: object, path: str = "", *, ignore_unknown: bool = False) -> T:
    """`value` read as `tp`; ShapeError naming the first field of the wrong shape (or unknown, unless
    `ignore_unknown`)."""
    return typing.cast(T, _read(tp, value, path, ignore_unknown))


@functools.cache  # asked of every value read; comparing unions is slow
def _is_json(tp: Any) -> bool:
    """`Json` itself, or as resolved inside a field's type (its self-reference evaluated)."""
    if tp is Any or tp in (Json, _JSON_REF):
        return True
    args = set(typing.get_args(tp)) if typing.get_origin(tp) in (Union, types.UnionType) else set()
    origins = {typing.get_origin(a) for a in args}
    return {type(None), bool, int, float, str} <= args and {list, dict} <= origins


def _read(tp: Any, value: object, path: str, ignore_unknown: bool) -> object:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_json(tp):
        return value  # anything orjson read is JSON
    if origin in (Union, types.UnionType):
        return _read_union(args, value, path, ignore_unknown)
    if origin is Literal:
        if value not in args:
            raise _fail(path, " or ".join(map(repr, args)), value)
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _fail(path, "a list", value)
        return tuple(_read(args[0], item, f"{path}[{i}]", ignore_unknown) for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, "an object", value)
        return {str(k): _read(args[1], v, f"{path}.{k}", ignore_unknown) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, value, path, ignore_unknown)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise _fail(path, f"one of {', '.join(str(m.value) for m in tp)}", value) from None
    return _read_scalar(tp, value, path)


def _read_union(args: tuple[Any, ...], value: object, path: str, ignore_unknown: bool) -> object:
    if value is None and type(None) in args:
        return None
    # An arm the value fits exactly first: passing over unknown fields must not read a
    # JobsUnreported (JobsConfirmed plus `reported`) as the JobsConfirmed before it.
    errors: list[ShapeError] = []
    for lenient in (False, True) if ignore_unknown else (False,):
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _read(arg, value, path, lenient)
            except ShapeError as exc:
                errors.append(exc)
    raise errors[0]


def _read_scalar(tp: Any, value: object, path: str) -> object:
    if tp is type(None):
        if value is not None:
            raise _fail(path, "null", value)
        return None
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise _fail(path, "int", value)
    if tp in (bool, int, str) and isinstance(value, tp):
        return value
    raise _fail(path, tp.__name__, value)


def _read_dataclass(tp: Any, value: object, path: str, ignore_unknown: bool) -> object:
    if not isinstance(value, dict):
        raise _fail(path, "an object", value)
    hints = _hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown and not ignore_unknown:
        raise ShapeError(f"{path or 'value'}: unexpected field {unknown[0]!r}")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _read(hints[name], value[name], f"{path}.{name}" if path else name, ignore_unknown)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ShapeError(f"{path + '.' if path else ''}{name}: missing")
    return tp(**kwargs)


@functools.cache
def _hints(tp: Any) -> Mapping[str, Any]:
    # `Json` refers to itself by name: resolvable wherever a field uses it, imported or not.
    # Cached: evaluating a class's annotations costs far more than reading a message of it.
    return typing.get_type_hints(tp, localns={"Json": Json})


# -- JSON Schema ------------------------------------------------------------------------


def def_name(tp: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", tp.__name__).lower()


def schema(tp: Any, defs: dict[str, Json], shared: frozenset[type] = frozenset()) -> Json:
    """The schema of `tp`, each part inline; a type in `shared` is described once, in `defs` under
    its `def_name`, and referred to (`{"$ref": "#/$defs/<name>"}`)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_json(tp):
        return {}
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema(a, defs, shared) for a in args]}
    if origin is Literal:
        return {"const": to_json(args[0])} if len(args) == 1 else {"enum": [to_json(a) for a in args]}
    if origin is tuple:
        return {"type": "array", "items": schema(args[0], defs, shared)}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema(args[1], defs, shared)}
    simple = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        described_once: Json = {"enum": [to_json(m) for m in tp]}
    else:
        described_once = _dataclass_schema(tp, defs, shared)
    if tp not in shared:
        return described_once
    defs[def_name(tp)] = described_once
    return {"$ref": f"#/$defs/{def_name(tp)}"}


def _dataclass_schema(tp: Any, defs: dict[str, Json], shared: frozenset[type]) -> Json:
    hints = _hints(tp)
    properties: dict[str, Json] = {}
    for f in dataclasses.fields(tp):
        prop = schema(hints[f.name], defs, shared)
        if DOC in f.metadata and isinstance(prop, dict):
            prop = {"description": f.metadata[DOC], **prop}
        if SCHEMA in f.metadata and isinstance(prop, dict):
            prop = {**prop, **f.metadata[SCHEMA]}
        properties[f.name] = prop
    out: dict[str, Json] = {"type": "object"}
    if tp.__doc__ and not tp.__doc__.startswith(f"{tp.__name__}("):
        out["description"] = " ".join(tp.__doc__.split())
    out["required"] = [f.name for f in dataclasses.fields(tp)]
    out["properties"] = properties
    return out
