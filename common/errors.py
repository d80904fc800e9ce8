"""The exceptions that cross module boundaries, in one place (no import cycles through them).

Each is a refusal a user can fix, so each message names the field, flag or file and the fix;
the command lines turn them into exit 2 (`ExitCode.USAGE`) with one line on stderr.
"""

from pathlib import Path


class UsageError(Exception):
    """A bad argument or config value: exit 2 with a message naming the field."""


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the field's dotted name
    (`run.timeout_s: ...`, `scale_groups[1].max_slices: ...`, `--interval: ...`)."""


class LockHeld(Exception):
    """Another live process holds a pid lock file (`common.files.PidLock`)."""

    def __init__(self, path: Path, holder_pid: int | None, holder: str, rule: str) -> None:
        self.path = path
        self.holder_pid = holder_pid
        pid = f"pid {holder_pid}" if holder_pid else "a process whose pid is not written yet"
        super().__init__(f"another {holder} ({pid}) holds {path}; {rule}")
