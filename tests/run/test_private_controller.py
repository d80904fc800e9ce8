"""The embedded controller is private to its run: tasks see no supervisor secret, and a job
the run did not submit fails the verdict (`foreign_job`)."""

import json
from pathlib import Path

import pytest

from tests.helpers.supervisor_proc import run_argv, started
from tests.local_cluster.client import Client, python_argv

RUN_EXIT_S = 60.0
SECRET = "s3cr3t-value-from-the-supervisor"

PRINTS_ENV = """
[run]
tests = []

[[tests]]
name = "env-check"
argv = [
  "sh", "-c", "env | sed 's/^/task-env: /'; test -z \\"${GOOGLE_APPLICATION_CREDENTIALS+x}${SMOKE_API_TOKEN+x}\\"",
]
"""

# The run's job lasts until the test has submitted its own (bounded), so the run is surely still
# running then: a release file, not a fixed sleep.
WAITS = """\
[run]
tests = []

[[tests]]
name = "waits"
argv = ["sh", "-c", "for i in $(seq 300); do [ -e {release} ] && exit 0; sleep 0.1; done; exit 1"]
"""


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_a_task_does_not_see_the_supervisors_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", f"/run/credentials/{SECRET}.json")
    monkeypatch.setenv("SMOKE_API_TOKEN", SECRET)
    argv = run_argv("env", tmp_path / "runs", "--config", _config(tmp_path, PRINTS_ENV))
    with started(argv, tmp_path, "env") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        lines = [
            json.loads(raw)["line"]
            for path in (sup.run_dir / "logs" / "vms").glob("*.jsonl")
            for raw in path.read_bytes().splitlines()
        ]
        task_env = [line for line in lines if "task-env: " in line]
        assert any("task-env: PATH=" in line for line in task_env), "the task's environment was captured"
        assert not [line for line in task_env if SECRET in line]


def test_a_job_the_run_did_not_submit_fails_the_verdict(tmp_path: Path) -> None:
    release = tmp_path / "release"
    argv = run_argv("foreign", tmp_path / "runs", "--config", _config(tmp_path, WAITS.format(release=release)))
    with started(argv, tmp_path, "foreign") as sup:
        [ready] = sup.wait_event("cluster_ready")
        client = Client(ready["address"])
        try:
            client.launch("intruder", python_argv("print('not the run')"))
        finally:
            client.close()
        release.touch()
        assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
        results = sup.results()
        assert results["outcome"] == "failed" and results["failure_reasons"] == ["foreign_job"]
        assert [j["name"] for j in results["foreign_jobs"]] == ["intruder"]
        assert [t["outcome"] for t in results["tests"]] == ["passed"]
        [event] = sup.find("foreign_job")
        assert event["name"] == "intruder" and event["level"] == "warning"
