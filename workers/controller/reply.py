"""Reading a Connect JSON reply by path, so that a reply of the wrong shape is an `ApiMismatch`.

    reply = Field.of("iris.cluster.ControllerService/ListWorkers", body)
    for w in reply.at("workers").as_list():
        w.at("workerId").required().as_str()   # workers[].workerId

Every read names the method and the JSON path it came from: a reply Iris changed under us
reads `ListWorkers: workers[].metadata.attributes is a list, expected an object`, never a
TypeError in a child. What is not read is never looked at, so new fields change nothing.
Proto3's JSON mapping decides the defaults: an absent field and `null` both mean the
field's default (protojson's EmitUnpopulated writes `null` for an unset message), 64-bit
integers arrive as strings, and a list element can never be `null`.

Numbers are range-checked where they are read: an integer must fit int64 (orjson, which
encodes our messages, refuses anything wider, and a proto int64 cannot be wider), and a
timestamp must be a year we can print (`as_epoch_ms`). Out of range is a mismatch naming the
path (`ListJobs: jobs[].submittedAt.epochMs is 1e+17, out of range`), never a traceback.

The same accessor reads the files a run directory holds back (supervisor/run_files.py): a
subclass overrides `error` and `whole`, so a wrong shape there is that reader's error.
"""

import base64
import binascii
import contextlib
from typing import Any, Self, TypeVar

from common.jsonshape import JsonObject
from workers.controller.model import ApiMismatch

_MISSING = object()
T = TypeVar("T")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The last millisecond of the year 9999: the end of what RFC 3339 (and Python's datetime) can write.
MAX_EPOCH_MS = 253_402_300_799_999


def _kind(value: Any) -> str:
    if value is None or value is _MISSING:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


class Field:
    """One value of a reply: its method, its path (`workers[].metadata`) and the raw JSON value."""

    __slots__ = ("method", "path", "value")
    whole = "the reply"  # what the empty path names, in messages

    def __init__(self, method: str, path: str, value: Any) -> None:
        self.method, self.path, self.value = method, path, value

    @classmethod
    def of(cls, method: str, reply: JsonObject) -> "Field":
        return cls(method, "", reply)

    def error(self, path: str, message: str) -> Exception:
        """What a wrong shape raises: the controller's API is not ours."""
        return ApiMismatch(self.method, path, message)

    def mismatch(self, expected: str) -> Exception:
        name = self.method.rsplit("/", 1)[-1]
        where = self.path or self.whole
        return self.error(where, f"{name}: {where} is {_kind(self.value)}, expected {expected}")

    @property
    def present(self) -> bool:
        return self.value is not None and self.value is not _MISSING

    @property
    def is_object(self) -> bool:
        return isinstance(self.value, dict)

    def checked(self, kind: type[T], expected: str) -> T | None:
        """The value if it is a `kind`, None if absent; any other value is a mismatch (`expected`)."""
        if not self.present:
            return None
        if not isinstance(self.value, kind):
            raise self.mismatch(expected)
        return self.value

    def required(self) -> Self:
        if not self.present:
            name = self.method.rsplit("/", 1)[-1]
            raise self.error(self.path, f"{name}: {self.path} missing from {self.whole}")
        return self

    def at(self, key: str) -> Self:
        """The member `key` of this object (absent when this object is absent)."""
        path = f"{self.path}.{key}" if self.path else key
        members = self.checked(dict, "an object") or {}
        return type(self)(self.method, path, members.get(key, _MISSING))

    def as_list(self) -> list[Self]:
        """The elements (`path[]`); absent is empty. An element is never null in proto3 JSON."""
        items = [type(self)(self.method, f"{self.path}[]", v) for v in self.checked(list, "a list") or []]
        for item in items:
            if not item.present:
                raise item.mismatch("a value")
        return items

    def as_map(self) -> dict[str, Self]:
        """A JSON object as a map (proto `map<string, V>`); absent is empty."""
        members = self.checked(dict, "an object") or {}
        return {str(k): type(self)(self.method, f"{self.path}.{k}", v) for k, v in members.items()}

    def as_str(self, default: str = "") -> str:
        found = self.checked(str, "a string")
        return default if found is None else found

    def as_bytes(self) -> bytes:
        """Proto3 JSON `bytes`: base64, standard or URL-safe, padded or not (absent: empty)."""
        text = self.as_str()
        standard = text.replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except binascii.Error:
            raise self.mismatch("base64 bytes") from None

    def as_int(self, default: int = 0, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
        """An integer in [minimum, maximum] (int64 unless said): a JSON number, or a string of
        digits (how proto3 JSON writes 64-bit integers)."""
        value = self.value
        if not self.present:
            return default
        found: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            found = value
        elif isinstance(value, float) and value.is_integer():
            found = int(value)
        elif isinstance(value, str) and len(value) <= 40:  # no digit string that long is in range
            with contextlib.suppress(ValueError):
                found = int(value)
        if found is None:
            raise self.mismatch("an integer")
        if not minimum <= found <= maximum:
            raise self.out_of_range(minimum, maximum)
        return found

    def as_epoch_ms(self) -> int:
        """A timestamp in milliseconds since the epoch (0 = unset), up to the end of the year 9999."""
        return self.as_int(0, 0, MAX_EPOCH_MS)

    def out_of_range(self, minimum: int, maximum: int) -> Exception:
        name = self.method.rsplit("/", 1)[-1]
        where = self.path or self.whole
        return self.error(where, f"{name}: {where} is {repr(self.value)[:40]}, out of range ({minimum} to {maximum})")

    def as_bool(self, default: bool = False) -> bool:
        found = self.as_optional_bool()
        return default if found is None else found

    def as_optional_bool(self) -> bool | None:
        return self.checked(bool, "a boolean")

    def as_scalar_text(self) -> str:
        """A string, number or boolean as text (booleans lower-case, as Iris's attributes compare them)."""
        if isinstance(self.value, bool):
            return str(self.value).lower()
        if isinstance(self.value, str | int | float):
            return str(self.value)
        raise self.mismatch("a string, number or boolean")
