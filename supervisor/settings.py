"""One declaration per setting, from which the flags, the config file's reader and the README's
table are derived (after gunicorn's `Setting` classes).

A `Setting` names the key as a user finds it in the file (`run.timeout_s`, or a top-level
`interval` in the canary's file), the attribute of the config dataclass it lands on (whose
type and default are declared there, once), its check, its help, and its flag if it has one.
A check takes a value (from the file, or a flag's text after `split`) and returns it checked,
or raises ValueError saying what would do; the caller names the field (`run.timeout_s: ...`,
`argument --timeout: ...`), so every refusal is one line naming the field and the fix.
The run's settings are declared in `supervisor/config.py`, the canary's in
`supervisor/canary/config.py`, each beside its dataclass.
"""

import argparse
import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from common.jsonshape import Json, JsonObject
from common.toml_table import Check, Table

C = TypeVar("C")


@dataclass(frozen=True)
class Setting:
    name: str  # as in the config file: `section.key`, or a top-level `key`
    attr: str  # where the value lands on the config dataclass: `timeout_s`, `iris.max_reply_bytes`
    check: Check
    help: str
    flag: str = ""  # `--timeout`; "" = the config file only
    split: Callable[[str], object] | None = None  # a flag's text -> what `check` takes (`a,b` -> a list)
    metavar: str | None = None
    switch: bool = False  # a flag without a value: given = true
    hidden: bool = False  # for tests and benches: neither in --help nor in the README
    shown_default: str = ""  # the default as the help and README say it, where the value alone would mislead

    @property
    def section(self) -> str:
        return self.name.rpartition(".")[0]

    @property
    def key(self) -> str:
        return self.name.rpartition(".")[2]

    def from_flag(self, text: str) -> Any:
        """A flag's value, checked as the file's is; argparse names the flag in a refusal."""
        return flag_type(self.check)(self.split(text) if self.split else text)


def flag_type(check: Check) -> Callable[[Any], Any]:
    """An argparse `type` from a check: its refusal becomes argparse's, which names the flag."""

    def convert(text: Any) -> Any:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def lookup(config: object, attr: str) -> Any:
    for part in attr.split("."):
        config = getattr(config, part)
    return config


def assign(config: C, attr: str, value: object) -> C:
    """`config` with the (dotted) attribute replaced; frozen dataclasses all the way down."""
    head, _, rest = attr.partition(".")
    new = assign(getattr(config, head), rest, value) if rest else value
    return dataclasses.replace(config, **{head: new})  # type: ignore[type-var]


def assigned(config: C, values: Mapping[str, object]) -> C:
    for attr, value in values.items():
        config = assign(config, attr, value)
    return config


def shown(setting: Setting, defaults: object) -> str:
    """The default as a person reads it: `1800`, `"local"`, `[]`, `false`."""
    if setting.shown_default:
        return setting.shown_default
    value = lookup(defaults, setting.attr)
    if value is None:
        return '""'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value.value if isinstance(value, enum.Enum) else value}"'


def add_flags(parser: argparse.ArgumentParser, settings: Iterable[Setting], defaults: object) -> None:
    """One argument per flagged setting. Its default is None, so a value from the config file is
    overridden only by a flag actually given (`given`)."""
    for s in settings:
        if not s.flag:
            continue
        text = argparse.SUPPRESS if s.hidden else f"{s.help} (default {shown(s, defaults)})"
        if s.switch:
            parser.add_argument(s.flag, action="store_true", default=None, help=text)
        else:
            parser.add_argument(s.flag, type=s.from_flag, default=None, metavar=s.metavar, help=text)


def dest(setting: Setting) -> str:
    return setting.flag.removeprefix("--").replace("-", "_")


def given(args: argparse.Namespace, settings: Iterable[Setting]) -> dict[str, object]:
    """The flags given on the command line, checked, keyed by attribute."""
    values = {s.attr: getattr(args, dest(s), None) for s in settings if s.flag}
    return {attr: value for attr, value in values.items() if value is not None}


def read(tables: Mapping[str, Table], settings: Iterable[Setting]) -> dict[str, object]:
    """The settings present in the file, each through its check (a refusal names `section.key`),
    keyed by attribute; an absent key keeps the dataclass's default."""
    values: dict[str, object] = {}
    for s in settings:
        table = tables[s.section]
        if s.key in table.table:
            values[s.attr] = table.read(s.key, None, s.check)
    return values


def resolved(config: object, settings: Iterable[Setting]) -> JsonObject:
    """Each setting's value on `config` under its name in the file (`{"run": {"timeout_s": 1800.0}}`),
    JSON-ready: what `--check-config` prints, so its keys are the ones a config file takes."""
    data: JsonObject = {}
    for s in settings:
        table = data
        for part in s.section.split(".") if s.section else ():
            inner = table.setdefault(part, {})
            assert isinstance(inner, dict)  # built here: a section is always a table
            table = inner
        table[s.key] = _plain(lookup(config, s.attr))
    return data


def _plain(value: object) -> Json:
    """JSON's types; anything else (a path, an address) as its text. A StrEnum is its string."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def markdown(settings: Sequence[Setting], defaults: object) -> list[str]:
    """The README's rows: key, flag, default, meaning."""
    rows = []
    for s in settings:
        if not s.hidden:
            flag = f"`{s.flag}`" if s.flag else ""
            default = s.shown_default or f"`{shown(s, defaults)}`"  # prose as prose, a value as code
            rows.append(f"| `{s.name}` | {flag} | {default} | {s.help} |")
    return rows
