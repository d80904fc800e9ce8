"""Leftovers of a label prefix: what an earlier run on the same prefix failed to remove.

For the local cluster a leftover is a `local_cluster` process started with `--prefix P`
(and everything it started). It is found by its command line, since it may carry another
run's tag or none. The prefix lock guarantees that no live run owns one, so whatever is
found is stopped: TERM, a bounded grace, KILL. These are not our children; psutil waits
for them by polling their existence, which reaps nothing (their parent or init does);
which is why `delete` is only ever given processes outside our own tree.
Cloud providers add their own finders (instances and TPU slices labelled with the prefix).
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from common import processes
from supervisor import audit

LEFTOVER_GRACE_S = 3.0


@dataclass(frozen=True)
class LeftoverReport:
    found: tuple[audit.Leftover, ...]
    killed: int


def local_clusters(prefix: str, spare_kept: bool) -> list[psutil.Process]:
    """Local-cluster processes of `prefix` (not a kept one, if `spare_kept`), with their descendants."""
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if "local_cluster" not in argv or "logs" in argv or not _has_prefix(argv, prefix):
            continue
        if spare_kept and audit.is_kept(proc):
            continue
        try:
            found += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def _has_prefix(argv: list[str], prefix: str) -> bool:
    return any(a == "--prefix" and b == prefix for a, b in itertools.pairwise(argv))


def delete(procs: list[psutil.Process], grace_s: float = LEFTOVER_GRACE_S) -> LeftoverReport:
    if not procs:
        return LeftoverReport((), 0)
    found = tuple(audit.Leftover.of(p) for p in procs)

    def wait(timeout_s: float, done: Callable[[], bool], _skippable: bool) -> bool:
        psutil.wait_procs(procs, timeout=timeout_s)  # polls: they are not our children
        return done()

    # Not our children, so nothing for us to reap: gone once `procs` (the snapshot) are.
    stopped = processes.escalate([], procs, grace_s=grace_s, wait=wait, gone=lambda: True)
    return LeftoverReport(found, stopped.killed)


def outside_our_tree(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The final escalation stops and reaps our own descendants; the rest is for `delete`,
    which must never be given a child of ours (psutil would wait on it: a second reaper)."""
    ours = {p.pid for p in audit.descendants()}
    return [p for p in procs if p.pid not in ours]
