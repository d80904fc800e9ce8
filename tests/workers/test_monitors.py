"""monitor:scheduling and monitor:autoscaler against a real local cluster."""

from pathlib import Path

import orjson

from common.messages import Kind
from tests.helpers.forked import forked_child
from tests.helpers.waiting import wait_for
from tests.workers.conftest import embedded, launch_jobs
from workers.child_args import MonitorArgs

STOP_WITHIN_S = 1.5
TPU_JOB = {"name": "tpu", "argv": ["sh", "-c", "echo on tpu"], "device": "tpu"}


def test_scheduling_monitor_records_pending_reason_while_a_slice_boots_and_each_state_change(
    cluster: str, tmp_path: Path
) -> None:
    """A TPU job waits with a pending_reason while its slice boots, then its task runs and succeeds."""
    out = tmp_path / "run" / "scheduling.jsonl"
    args = MonitorArgs(embedded(cluster, "mon"), out, interval_s=0.05)
    with forked_child("workers.monitors.scheduling:main", args, tmp_path / "run", name="monitor:scheduling") as child:
        child.wait_message(Kind.READY, timeout_s=10)
        (job_id,) = launch_jobs(cluster, tmp_path / "probe", "mon", TPU_JOB)

        # The job's state follows its task's by one controller update: wait for both.
        def both_succeeded() -> bool:
            kinds = ("task_state_changed", "job_state_changed")
            return all(any(e["new"] == "succeeded" for e in child.events(kind)) for kind in kinds)

        wait_for(both_succeeded, 15, "task and job succeeded")
        assert child.stop_and_reap() == 0
        assert child.stop_to_exit_s is not None and child.stop_to_exit_s < STOP_WITHIN_S

    changes = child.events("task_state_changed")
    assert all(e["job"] == job_id and e["task"] == 0 for e in changes)
    waiting = [e for e in changes if e["new"] == "pending" and e["pending_reason"]]
    assert waiting, changes
    assert "tpu" in waiting[0]["pending_reason"]
    states = [e["new"] for e in changes]
    assert states.index("pending") < states.index("succeeded")
    assert any(e["new"] in ("assigned", "running") and e["worker"].startswith("local-tpu-0-w") for e in changes)
    assert [e["new"] for e in child.events("job_state_changed")][-1] == "succeeded"

    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(lines) >= 3
    last_job = lines[-1]["jobs"][0]
    assert (last_job["job_id"], last_job["state"], last_job["tasks"][0]["state"]) == (job_id, "succeeded", "succeeded")
    assert set(last_job["tasks"][0]) == {
        "task_index",
        "state",
        "worker_id",
        "pending_reason",
        "can_be_scheduled",
        "attempts",
    }
    assert child.of(Kind.STATS)[-1]["lines"] == len(lines)


def test_autoscaler_monitor_records_a_scale_up_once(cluster: str, tmp_path: Path) -> None:
    """A TPU job's demand shows as one scale_up action of the tpu group, logged once, and in the file."""
    out = tmp_path / "run" / "autoscaler.jsonl"
    args = MonitorArgs(embedded(cluster), out, interval_s=0.05)
    with forked_child("workers.monitors.autoscaler:main", args, tmp_path / "run", name="monitor:autoscaler") as child:
        child.wait_message(Kind.READY, timeout_s=10)
        launch_jobs(cluster, tmp_path / "probe", "as", TPU_JOB)

        def tpu_scale_ups() -> list[dict[str, object]]:
            return [
                e for e in child.events("autoscaler_action")
                if e["action_type"] == "scale_up" and e["scale_group"] == "tpu"
            ]  # fmt: skip

        wait_for(tpu_scale_ups, 15, "a scale_up of the tpu group")
        wait_for(lambda: len(out.read_bytes().splitlines()) >= 5, 5, "a few more polls")
        assert child.stop_and_reap() == 0
        assert child.stop_to_exit_s is not None and child.stop_to_exit_s < STOP_WITHIN_S

    (action,) = tpu_scale_ups()
    assert action["slice_id"] == "local-tpu-0" and action["status"] == "ok" and action["reason"]
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    recorded = [
        a for line in lines for a in line["new_actions"] if a["action_type"] == "scale_up" and a["scale_group"] == "tpu"
    ]
    assert len(recorded) == 1
    groups = {g["name"]: g for g in lines[-1]["groups"]}
    assert groups["tpu"]["hosts_per_slice"] == 4 and groups["tpu"]["device"] == "tpu"
    assert [vm["vm_id"] for vm in groups["tpu"]["slices"][0]["vms"]] == [f"local-tpu-0-w{i}" for i in range(4)]
    assert child.events("unmet_demand") or all(not line["unmet_demand"] for line in lines)
    assert child.of(Kind.STATS)[-1]["scale_ups"] >= 2  # the cpu group's min_slices, and the tpu slice
