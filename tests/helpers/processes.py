"""Finding the processes a test started, and proving they are gone."""

import contextlib
import os

import psutil

from common import env
from supervisor import audit
from supervisor.backends.iris import LOG_READER
from workers.transports import FOLLOWER_NAME

# What reads a log service for a run's streams: forked followers, and the run's one log reader.
LOG_SERVICE_READERS = frozenset({FOLLOWER_NAME, f"iris:{LOG_READER}"})


def with_env(name: str, value: str | None = None) -> list[psutil.Process]:
    """Live processes (not this one) whose environment has `name` (set to `value`, if given)."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            seen = proc.environ().get(name)
            if seen is not None and (value is None or seen == value) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def with_run_tag(run_id: str | None = None) -> list[psutil.Process]:
    """Live processes whose environment carries a run tag (any run's, or `run_id`'s)."""
    return with_env(env.RUN_TAG, run_id)


def followers_under(pid: int, names: frozenset[str] = frozenset({FOLLOWER_NAME})) -> list[psutil.Process]:
    """The live stream followers forked under `pid` (a supervisor, a stream child), found by their
    name: a forked process shows its parent's argv, and /proc shows no environment set after the
    fork, so neither the argv nor `with_run_tag` finds them. `LOG_SERVICE_READERS`: the run's log
    reader too (what reads Iris's log service for a run's streams)."""
    found = []
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.name() in names and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


def describe_zombies(zombies: list[psutil.Process], since: float) -> list[str]:
    """pid, name and creation time (seconds after `since`) of each: a zombie has no command line left."""
    described = []
    for proc in zombies:
        with contextlib.suppress(psutil.NoSuchProcess):
            described.append(f"{proc.pid} {proc.name()} +{proc.create_time() - since:.2f}s")
    return described


def zombies_since(created_since: float) -> list[psutil.Process]:
    """Our zombie children created at or after `created_since` (psutil's clock: a zombie's
    creation time still reads from /proc)."""
    return [p for p in audit.zombie_children() if p.create_time() >= created_since]


def reap_zombie_children() -> None:
    """Reap what was re-parented to us and died: pytest is a subreaper, and nothing else will."""
    for proc in audit.zombie_children():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(proc.pid, os.WNOHANG)


def alive_pids(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def describe(procs: list[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:160]}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "\n".join(lines)
