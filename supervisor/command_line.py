"""What every `iris-smoke` command's command line shares: one-line refusals, UTF-8 arguments,
no core files, a private umask. Each command owns its parser (`run_cli`, `look_cli`,
`canary.cli`); `cli` only dispatches."""

import argparse
import os
import resource
import sys
from typing import NoReturn

from common import inputs
from common.errors import UsageError
from common.outcome import ExitCode


class Parser(argparse.ArgumentParser):
    """argparse, but a refusal is one line on stderr naming the argument, then exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(ExitCode.USAGE)


def check_argv_utf8(argv: list[str]) -> None:
    """Refuse arguments that are not UTF-8: they would reach paths, JSON logs and messages."""
    for i, arg in enumerate(argv):
        try:
            inputs.utf8(arg)
        except ValueError as exc:
            flag = arg.partition("=")[0] if arg.startswith("--") else (argv[i - 1] if i else f"argument {i + 1}")
            raise UsageError(f"{flag}: {exc}") from None


def no_core_dumps() -> None:
    """RLIMIT_CORE 0, soft and hard, inherited by every child: a crashing process that holds a
    token (a child, a follower) must not leave its memory in a core file."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def private_umask() -> None:
    """Run directories 0750 and files 0640 however we are started; a stricter umask (systemd's) stays."""
    os.umask(os.umask(0o027) | 0o027)
