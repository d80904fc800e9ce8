"""A real Iris's task output, kept in the run directory: `logs/tasks/<job id>/<task index>.jsonl`.

A real Iris keeps a task's stdout and stderr in its log service under the attempt's key
(`/<root>/<test>/<task>:<attempt>`), not on a VM's docker, so no VM stream carries it
reliably. When a test ends, the tests child reads each task's lines there (every attempt, in
store order, at most MAX_LINES) and writes them once, as stream records
(docs/stream-record.schema.json, the stream child's own encoder): `vm` is the task's worker,
`host` its index, `role` `task`, `container` `attempt-<n>`. Passing tasks included: a pass
that printed a warning is worth reading. Only the Connect wire has the log service (the
embedded cluster's tasks are in its VM streams already).

A job's tasks are read together, one paged FetchLogs of the job's prefix: one call per task
cost 0.14 s each, 7 s for many_tasks' 50 on a loaded machine, while the rest of the suite waited
for the next poll. A job whose lines pass JOB_MAX_LINES (a chatty one) is read task by task.

Each file has one writer, this child, and is written once (a temporary file, then renamed).
"""

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from common.deadline import Deadline
from common.files import write_atomically
from common.jsonshape import JsonObject
from workers.controller.api import Controller
from workers.controller.connect_api import LOG_FLUSH_RETRY_S, LOG_FLUSH_S, IrisController
from workers.controller.model import ControllerError, Task
from workers.hosts import NAME_PATTERN
from workers.runtime import ChildContext
from workers.stream.framing import LineFramer
from workers.stream.records import RecordEncoder
from workers.stream.spec import MAX_LINE_BYTES
from workers.stream.timestamps import format_unix_ns, now

PAGE_LINES = 1000
MAX_LINES = 20_000  # per task: a smoke test prints tens of lines
JOB_MAX_LINES = 20_000  # read for a whole job at once; past this, task by task
TASKS_DIR = Path("logs") / "tasks"
_ATTEMPT = re.compile(r":(\d+)$")
T = TypeVar("T")


Entry = tuple[int, str, str]  # ms since the epoch, attempt, text


def _keyed_entries(controller: IrisController, source: str, max_lines: int) -> tuple[list[tuple[str, Entry]], bool]:
    """(key, entry) of each line under the prefix `source`, in store order, at most `max_lines`; and
    whether there were more."""
    found: list[tuple[str, Entry]] = []
    cursor = ""
    while len(found) < max_lines:
        body: JsonObject = {"source": source, "matchScope": "MATCH_SCOPE_PREFIX", "maxLines": PAGE_LINES}
        reply = controller.fetch_logs({**body, "cursor": cursor} if cursor else body)
        entries = reply.at("entries").as_list()
        for entry in sorted(entries, key=lambda e: e.at("seq").as_int()):
            key = entry.at("key").as_str()
            attempt = _ATTEMPT.search(key)
            ms = entry.at("timestamp").at("epochMs").as_int()
            found.append((key, (ms, attempt[1] if attempt else "0", entry.at("data").as_str())))
        cursor = reply.at("cursor").as_str()
        if len(entries) < PAGE_LINES or not cursor:
            return found, False
    return found[:max_lines], True


def _entries(controller: IrisController, job_id: str, index: int) -> list[Entry]:
    """Each line of the task, in store order."""
    return [entry for _, entry in _keyed_entries(controller, f"{job_id}/{index}:", MAX_LINES)[0]]


def _job_entries(controller: IrisController, job_id: str) -> dict[int, list[Entry]] | None:
    """Each task's lines, by task index (a child job's keys left out); None past JOB_MAX_LINES."""
    found, more = _keyed_entries(controller, f"{job_id}/", JOB_MAX_LINES)
    if more:
        return None
    own = re.compile(rf"{re.escape(job_id)}/(\d+):\d+")
    by_task: dict[int, list[Entry]] = {}
    for key, entry in found:
        task = own.fullmatch(key)
        if task is not None:
            by_task.setdefault(int(task[1]), []).append(entry)
    return by_task


def _flushed(read: Callable[[], T], empty: Callable[[T], bool]) -> T:
    """`read()`; workers push output in batches, so an empty answer is asked again within LOG_FLUSH_S."""
    flushed = Deadline.after(LOG_FLUSH_S)
    while True:
        found = read()
        if not empty(found) or flushed.expired():
            return found
        time.sleep(flushed.cap(LOG_FLUSH_RETRY_S))


def _records(ctx: ChildContext, task: Task, entries: list[Entry]) -> bytes:
    worker = task.worker_id if NAME_PATTERN.fullmatch(task.worker_id or "") else "unassigned"
    encoder = RecordEncoder(ctx.run_id, worker, task.task_index, "task", "attempt-0")
    out, received = [], now()
    for ms, attempt, text in entries:
        encoder.container = f"attempt-{attempt}"
        for line in text.splitlines() or [""]:
            stamped = f"{format_unix_ns(ms * 1_000_000)} {line}\n".encode()
            out.append(encoder.encode(LineFramer(MAX_LINE_BYTES).feed(stamped), received))
    return b"".join(out)


def task_log_path(run_dir: Path, job_id: str, index: int) -> Path | None:
    """Where the task's lines go; None for a job id that is not a path of plain names (never ours)."""
    parts = job_id.strip("/").split("/")
    if not all(NAME_PATTERN.fullmatch(part) for part in parts):
        return None
    return run_dir.joinpath(TASKS_DIR, *parts, f"{index}.jsonl")


def _whole_job(controller: IrisController, job_id: str, tasks: list[Task]) -> dict[int, list[Entry]]:
    """Every task's lines read at once (waiting for each task's first flush); {} when the job is to be read
    task by task (a single task, too many lines, a failed read)."""
    indices = {t.task_index for t in tasks}
    if len(indices) < 2:
        return {}

    def unflushed(by_task: dict[int, list[Entry]] | None) -> bool:
        return by_task is not None and bool(indices - set(by_task))

    try:
        found = _flushed(lambda: _job_entries(controller, job_id), unflushed)
    except ControllerError:
        return {}  # each task is asked on its own, and a failure there is said per task
    return {} if found is None else {i: found.get(i, []) for i in indices}


def _task_entries(controller: IrisController, job_id: str, index: int) -> list[Entry]:
    return _flushed(lambda: _entries(controller, job_id, index), lambda found: not found)


def keep(ctx: ChildContext, controller: Controller, job_id: str, tasks: list[Task]) -> None:
    """Write each task's lines to its file (a real Iris only); a failed read is a warning, never the test's."""
    if not isinstance(controller, IrisController) or ctx.stop.requested():
        return  # stopping: the sweep needs the time
    whole = _whole_job(controller, job_id, tasks)
    for task in tasks:
        path = task_log_path(ctx.run_dir, job_id, task.task_index)
        if path is None:
            ctx.log.warning("task_logs_skipped", job=job_id, task=task.task_index, reason="job_id_not_a_name")
            continue
        try:
            entries = whole.get(task.task_index)
            if entries is None:
                entries = _task_entries(controller, job_id, task.task_index)
        except ControllerError as exc:
            ctx.log.warning("task_logs_failed", job=job_id, task=task.task_index, code=exc.code, details=exc.details)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, _records(ctx, task, entries))
        ctx.log.info("task_logs_kept", job=job_id, task=task.task_index, lines=len(entries), path=str(path))
