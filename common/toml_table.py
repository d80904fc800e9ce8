"""The one TOML layer of the run's, the canary's and the local cluster's configs.

`read_toml` reads a file (errors name the flag that gave it); `Table` reads one table's
values with the checks of `common/inputs.py`, and every refusal is a ConfigError
naming the field as the user finds it in the file (`scale_groups[1].max_slices: ...`).
Each value is popped as it is read, so `done()` can refuse what is left: a typo must not
silently fall back to a default.
"""

import contextlib
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from common import inputs
from common.errors import ConfigError


def read_toml(path: Path, flag: str = "--config") -> dict[str, Any]:
    return parse_toml(_read_text(path, flag), f"{flag}: {path}")


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None


def _read_text(path: Path, flag: str) -> str:
    """A regular file's text. Opened non-blocking: a FIFO (or a device) in its place would
    block open() until a writer came, and a canary reloading on SIGHUP would sit there,
    deaf to SIGTERM; it is refused instead."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{flag}: {path} is not a regular file ({_file_kind(mode)}); give a TOML file")
        try:
            return file.read().decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"{flag}: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{flag}: {path} is not UTF-8 (byte {exc.start}); TOML files are UTF-8") from None


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}  # fmt: skip
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


Check = Callable[[object], Any]


def text(pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()) -> Callable[[object], str]:
    """A string, one of `choices` if given, matching `pattern` in full if given and not empty."""

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        if choices and value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        if pattern is not None and value and not pattern.fullmatch(value):
            raise ValueError(f"must match {pattern.pattern}, got {value!r}")
        return value

    return check


def texts(pattern: re.Pattern[str] | None = None) -> Callable[[object], tuple[str, ...]]:
    """A list of strings, each matching `pattern` in full if given."""

    def check(value: object) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"must be a list of strings, got {value!r}")
        for item in value:
            if pattern is not None and not pattern.fullmatch(item):
                raise ValueError(f"{item!r} must match {pattern.pattern}")
        return tuple(value)

    return check


def truth(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def duration(allow_zero: bool = False) -> Callable[[object], float]:
    """Seconds: finite, > 0 (or >= 0), at most inputs.MAX_SECONDS."""
    return lambda value: inputs.seconds(value, allow_zero=allow_zero)


def count(minimum: int, maximum: int = inputs.MAX_COUNT) -> Callable[[object], int]:
    return lambda value: inputs.whole(value, minimum, maximum)


class Table:
    """Typed access to one TOML table, with the dotted path for error messages."""

    def __init__(self, table: Mapping[str, Any], path: str) -> None:
        self.table = dict(table)
        self.path = path

    def _field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def read(self, key: str, default: object, check: Check) -> Any:
        """The key's value (or `default`) through `check`; a refusal names the field."""
        value = self.table.pop(key, default)
        with self.naming(key):
            return check(value)

    def number(self, key: str, default: float, allow_zero: bool = False) -> float:
        """Seconds: finite, > 0 (or >= 0), at most inputs.MAX_SECONDS."""
        return float(self.read(key, default, duration(allow_zero)))

    def integer(self, key: str, default: int, minimum: int, maximum: int = inputs.MAX_COUNT) -> int:
        return int(self.read(key, default, count(minimum, maximum)))

    @contextlib.contextmanager
    def naming(self, key: str) -> Iterator[None]:
        """A check's ValueError becomes a ConfigError that names the field."""
        try:
            yield
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{self._field(key)}: {exc}") from None

    def string(
        self, key: str, default: str, pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()
    ) -> str:
        return str(self.read(key, default, text(pattern, choices)))

    def boolean(self, key: str, default: bool) -> bool:
        return bool(self.read(key, default, truth))

    def strings(self, key: str, default: tuple[str, ...], pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        return tuple(self.read(key, list(default), texts(pattern)))

    def table_of(self, key: str) -> "Table":
        value = self.table.pop(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self._field(key)}: must be a table, got {value!r}")
        return Table(value, self._field(key))

    def tables(self, key: str) -> list["Table"]:
        value = self.table.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{self._field(key)}: must be an array of tables ([[{key}]]), got {value!r}")
        return [Table(v, f"{self._field(key)}[{i}]") for i, v in enumerate(value)]

    def done(self) -> None:
        """Unknown keys are errors: a typo must not silently fall back to a default."""
        if self.table:
            key = sorted(self.table)[0]
            raise ConfigError(f"{self._field(key)}: unknown key")

    def fraction(self, key: str, default: float) -> float:
        """A probability: a number from 0 to 1."""
        value = self.table.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(f"{self._field(key)}: must be a number from 0 to 1, got {value!r}")
        return float(value)
