"""Suite-wide guards: every test must leave no process behind.

pytest makes itself a child subreaper, so anything a test starts that gets orphaned is
re-parented here rather than to init, where we can see it, fail the test and reap it.
Every process a test starts also inherits a marker naming this pytest session, which
finds the ones that escaped even that (and ignores another pytest running beside us).
"""

import contextlib
import os
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
from _pytest.nodeid import NodeId

from common import linux
from tests.helpers import processes

LEFTOVER_WAIT_S = 5.0
SESSION_MARKER = "IRIS_SMOKE_TEST_SESSION"
os.environ[SESSION_MARKER] = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session", autouse=True)
def _pytest_is_subreaper() -> None:
    linux.set_child_subreaper()


def _leftovers(before: set[int]) -> list[psutil.Process]:
    processes.reap_zombie_children()
    mine = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    tagged = processes.with_env(SESSION_MARKER, os.environ[SESSION_MARKER])
    found = {p.pid: p for p in [*mine, *tagged]}
    return [p for p in found.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    end = time.monotonic() + LEFTOVER_WAIT_S
    left = _leftovers(before)
    while left and time.monotonic() < end:
        psutil.wait_procs(left, timeout=0.1)
        left = _leftovers(before)
    if left:
        report = processes.describe(left)
        for proc in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(left, timeout=2)
        processes.reap_zombie_children()
        pytest.fail(f"test left processes behind:\n{report}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the whole teardown, module fixtures' included: a module's cluster stopped on its
    last test leaves its orphans, dead, to pytest, and a zombie the next test did not make
    would be counted against it (a chaos case checks that a run left none)."""
    try:
        return (yield)
    finally:
        processes.reap_zombie_children()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--dist loadgroup` (pyproject.toml) under pytest 9: a test marked `xdist_group(NAME)` gets the
    nodeid `<id>@NAME`, by which the scheduler sends a group to one worker. xdist 3.8 sets it as
    `item._nodeid`, which pytest 9 no longer reads (a nodeid is `item._id` now), so every group was
    silently split; this sets `_id`. Only in an xdist worker with loadgroup on: elsewhere a no-op."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        marks = item.iter_markers("xdist_group")
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")
