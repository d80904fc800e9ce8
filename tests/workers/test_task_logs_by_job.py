"""A real Iris's task logs are read a job at a time: one paged FetchLogs of the job's prefix for all its
tasks (50 tasks were 50 calls, 7 s on a loaded machine), split by key, a child job's lines left out."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from common.jsonshape import JsonObject
from common.stop import StopRequest
from workers.controller.connect_api import IrisController
from workers.controller.model import Task as IrisTask
from workers.controller.model import TaskState
from workers.controller.reply import Field
from workers.smoke_tests import task_logs

JOB = "/smoke-abc/many_tasks"


class _LogService(IrisController):
    """FetchLogs only, from a list of (key, text): prefix matched, paged by `maxLines` with a cursor."""

    def __init__(self, lines: list[tuple[str, str]]) -> None:  # no controller behind it
        self.lines = lines
        self.calls: list[JsonObject] = []

    def fetch_logs(self, body: JsonObject) -> Field:
        self.calls.append(body)
        source, start, size = str(body["source"]), int(str(body.get("cursor") or 0)), int(str(body["maxLines"]))
        matched = [(seq, key, text) for seq, (key, text) in enumerate(self.lines) if key.startswith(source)]
        page = matched[start : start + size]
        entries = [{"key": k, "seq": seq, "data": t, "timestamp": {"epochMs": 1_700_000_000_000 + seq}}
                   for seq, k, t in page]  # fmt: skip
        cursor = str(start + size) if start + size < len(matched) else ""
        return Field.of("FetchLogs", {"entries": entries, "cursor": cursor})


def _ctx(tmp_path: Path) -> Any:
    return SimpleNamespace(run_dir=tmp_path, run_id="r1", stop=StopRequest(), log=SimpleNamespace(info=_ignore))


def _ignore(*_args: object, **_fields: object) -> None:
    pass


def _tasks(n: int) -> list[IrisTask]:
    return [IrisTask(f"{JOB}/{i}", i, TaskState.SUCCEEDED, worker_id=f"worker-{i % 2}") for i in range(n)]


def _kept(tmp_path: Path, index: int) -> list[str]:
    path = tmp_path / "logs" / "tasks" / JOB.strip("/") / f"{index}.jsonl"
    return [orjson.loads(line)["line"] for line in path.read_bytes().splitlines()]


def test_fifty_tasks_are_one_call_each_task_its_own_lines(tmp_path: Path) -> None:
    lines = [(f"{JOB}/{i}:0", f"many_tasks task {i} ok") for i in range(50)]
    lines += [(f"{JOB}/child/0:0", "a child job's line"), (f"{JOB}/7:1", "task 7 again, its second attempt")]
    service = _LogService(lines)
    task_logs.keep(_ctx(tmp_path), service, JOB, _tasks(50))
    assert [c["source"] for c in service.calls] == [f"{JOB}/"]
    assert _kept(tmp_path, 0) == ["many_tasks task 0 ok"] and _kept(tmp_path, 49) == ["many_tasks task 49 ok"]
    assert _kept(tmp_path, 7) == ["many_tasks task 7 ok", "task 7 again, its second attempt"]


def test_a_job_over_the_cap_is_read_task_by_task(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(task_logs, "JOB_MAX_LINES", 3)
    monkeypatch.setattr(task_logs, "PAGE_LINES", 2)
    service = _LogService([(f"{JOB}/{i}:0", f"line {n} of task {i}") for i in range(2) for n in range(3)])
    task_logs.keep(_ctx(tmp_path), service, JOB, _tasks(2))
    assert [c["source"] for c in service.calls] == [f"{JOB}/", f"{JOB}/", f"{JOB}/0:", f"{JOB}/0:", f"{JOB}/1:",
                                                     f"{JOB}/1:"]  # fmt: skip
    assert _kept(tmp_path, 1) == ["line 0 of task 1", "line 1 of task 1", "line 2 of task 1"]
