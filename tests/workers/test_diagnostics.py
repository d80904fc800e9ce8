"""The diagnostics child: one snapshot of the cluster before teardown."""

from pathlib import Path

import orjson

from common.messages import Kind
from tests.helpers.forked import run_to_end
from tests.helpers.waiting import wait_for
from tests.workers.conftest import embedded, launch_jobs, list_jobs
from workers.child_args import DiagnosticsArgs


def test_diagnostics_json_has_the_job_table_autoscaler_and_failed_task_logs(cluster: str, tmp_path: Path) -> None:
    """diagnostics.json parses; it and the RESULT carry the jobs, the autoscaler and the failed task's lines."""
    launch_jobs(
        cluster, tmp_path / "probe", "diag",
        {"name": "ok", "argv": ["sh", "-c", "echo fine"]},
        {"name": "bad", "argv": ["sh", "-c", "echo broken here; exit 2"]},
    )  # fmt: skip
    wait_for(
        lambda: {j["state"] for j in list_jobs(cluster, tmp_path / "probe", "diag")} == {"succeeded", "failed"},
        10, "both jobs finished",
    )  # fmt: skip
    out_dir = tmp_path / "run"
    args = DiagnosticsArgs(embedded(cluster, "diag"), out_dir)
    child = run_to_end("workers.diagnostics:main", args, out_dir, 10, name="diagnostics")
    assert child.exit_code == 0

    report = orjson.loads((out_dir / "diagnostics.json").read_bytes())
    assert sorted((j["name"], j["state"]) for j in report["jobs"]) == [("diag-bad", "failed"), ("diag-ok", "succeeded")]
    assert {g["name"] for g in report["autoscaler"]["groups"]} == {"cpu", "tpu"}
    assert report["autoscaler"]["recent_actions"][0]["action_type"] == "scale_up"
    (failed,) = report["failed_tasks"]
    assert failed["task"] == 0 and failed["exit_code"] == 2 and "broken here" in failed["lines"][-1]
    assert report["errors"] == []

    (result,) = child.of(Kind.RESULT)
    assert result["path"] == str(out_dir / "diagnostics.json")
    assert result["diagnostics"]["failed_tasks"] == report["failed_tasks"]
    assert len(orjson.dumps(result)) < 200_000
    assert not list(out_dir.glob(".diagnostics.json.*"))  # no temporary file left
