"""Retention of run directories: keep the newest N, and at most B bytes in all.

Oldest first: run ids start with the UTC start time (`runs.new_run_id`), so the names
sort in start order. The newest run and any protected one (the run in progress) are
never deleted, whatever the limits say: the latest evidence is worth more than the
byte limit, and a running supervisor's directory must not vanish under it. Only
directories whose name is a run id are considered, so a stray file in the runs
directory is never touched.
"""

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from supervisor.canary.runs import RUN_ID_PATTERN


@dataclass(frozen=True)
class RunDir:
    name: str
    size_bytes: int


def plan(runs: list[RunDir], keep_runs: int, max_bytes: int, protect: Iterable[str] = ()) -> list[RunDir]:
    """Which directories to delete, oldest first. `runs` must be sorted oldest first."""
    protected = set(protect)
    if runs:
        protected.add(runs[-1].name)
    count, total = len(runs), sum(r.size_bytes for r in runs)
    doomed = []
    for run in runs:
        if count <= keep_runs and total <= max_bytes:
            break
        if run.name in protected:
            continue
        doomed.append(run)
        count -= 1
        total -= run.size_bytes
    return doomed


def tree_size(path: Path) -> int:
    """Bytes of every file under `path`, symlinks not followed; files vanishing meanwhile count 0."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


class Retention:
    """Applies `plan` to a runs directory; remembers the size of runs that are finished."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        # A finished run's directory no longer changes; measuring it once keeps each pass
        # cheap after months of runs. Entries go when their directories do.
        self._sizes: dict[str, int] = {}

    def scan(self, protect: Iterable[str] = ()) -> list[RunDir]:
        protected = set(protect)
        names = sorted(
            entry.name
            for entry in os.scandir(self.runs_dir)
            if RUN_ID_PATTERN.match(entry.name) and entry.is_dir(follow_symlinks=False)
        )
        self._sizes = {n: s for n, s in self._sizes.items() if n in names}
        runs = []
        for name in names:
            if name in protected or name not in self._sizes:
                size = tree_size(self.runs_dir / name)
                if name in protected:
                    runs.append(RunDir(name, size))
                    continue
                self._sizes[name] = size
            runs.append(RunDir(name, self._sizes[name]))
        return runs

    def apply(self, keep_runs: int, max_bytes: int, protect: Iterable[str] = ()) -> list[RunDir]:
        protected = set(protect)
        doomed = plan(self.scan(protected), keep_runs, max_bytes, protected)
        for run in doomed:
            shutil.rmtree(self.runs_dir / run.name, ignore_errors=True)
            self._sizes.pop(run.name, None)
        return doomed
