"""Task log levels: one type for every package, and the one rule that reads a level from a line.

Iris (0.2.227, `iris/cluster/log_keys.classify_log_level` with rigging's `parse_log_level`) gives
a captured line the level of its glog-style prefix: a level letter followed by a digit, as
`I20260102 12:34:56 ...` (I, W, E, D, C). Without one, a line takes its stream's default
(stdout INFO, stderr ERROR). The embedded cluster merges a task's two streams, so it has no
stream to go by: an unprefixed line is UNKNOWN there, which, as on Iris, passes every
`min_level`. The names are the proto's (`iris_smoke_api.v1.states`), lower-case.
"""

from iris_smoke_api.v1 import states as wire
from iris_smoke_api.v1.states import LogLevelName as LogLevel

__all__ = ["LogLevel", "level_of_line", "level_of_number", "number", "passes"]

_BY_LETTER = {"D": LogLevel.DEBUG, "I": LogLevel.INFO, "W": LogLevel.WARNING, "E": LogLevel.ERROR,
              "C": LogLevel.CRITICAL}  # fmt: skip
_ORDER = [LogLevel.UNKNOWN, LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR, LogLevel.CRITICAL]


def level_of_line(text: str) -> LogLevel:
    """The level a line's glog prefix names; UNKNOWN without one."""
    if len(text) >= 2 and text[0] in _BY_LETTER and text[1].isdigit():
        return _BY_LETTER[text[0]]
    return LogLevel.UNKNOWN


def passes(level: LogLevel, min_level: LogLevel) -> bool:
    """Whether a line of `level` is kept by a `min_level` filter (UNKNOWN lines always are)."""
    return level is LogLevel.UNKNOWN or _ORDER.index(level) >= _ORDER.index(min_level)


def number(level: LogLevel) -> int:
    return wire.LogLevel[level.name].value


def level_of_number(value: int) -> LogLevel:
    try:
        return LogLevel[wire.LogLevel(value).name]
    except ValueError:
        return LogLevel.UNKNOWN
