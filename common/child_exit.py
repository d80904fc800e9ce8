"""Exit codes a child uses to tell the supervisor how it ended (a protocol, like gunicorn's).

The restart policy reads them: a child that cannot work with its configuration exits
CONFIG and is not restarted, since the next attempt would fail the same way.
"""

import enum


class ChildExit(enum.IntEnum):
    OK = 0
    ERROR = 1
    PARENT_GONE = 3
    CRASHED = 70  # EX_SOFTWARE: an exception escaped the entrypoint
    # EX_OSERR: never started: fork or its pipe failed (EMFILE, EAGAIN, ENOMEM). Set by the
    # supervisor, not by a child, so the restart policy treats it like any failed start.
    SPAWN_FAILED = 71
    DISK_FULL = 74  # EX_IOERR: no space (or quota) left where it writes; worth a retry later
    CONFIG = 78  # EX_CONFIG: do not restart
    DEADLINE = 124
    HARD_EXIT = 125  # did not finish within its own grace after a stop request

    @classmethod
    def describe(cls, code: int) -> str:
        try:
            return cls(code).name.lower()
        except ValueError:
            return f"exit_{code}"


NO_RESTART = frozenset({ChildExit.CONFIG, ChildExit.PARENT_GONE})
