"""A real local cluster under failure: boot failures, dead VM hosts, idle slices, shutdown."""

import os
import signal
import subprocess

import psutil

from iris_smoke_api.v1 import controller_pb2 as pb
from tests.helpers.processes import alive_pids
from tests.helpers.waiting import wait_for
from tests.local_cluster.client import TPU_V5_16, python_argv
from tests.local_cluster.conftest import FAST_CONFIG, Cluster, ClusterFactory


def _actions(cluster: Cluster, action_type: str) -> list[pb.AutoscalerAction]:
    return [a for a in cluster.client.autoscaler().recent_actions if a.action_type == action_type]


def test_boot_failure_backs_off_then_recovers(start_cluster: ClusterFactory) -> None:
    """The first TPU slice fails to boot: backoff_triggered is reported, then a new slice runs the job."""
    config = FAST_CONFIG + "\n[scale_groups.fault]\nfail_first_boots = 1\n"  # applies to the last group: tpu
    cluster = start_cluster(config)
    job_id = cluster.client.launch(
        "after-failure", python_argv("print('ok')"), replicas=4, resources=TPU_V5_16,
        coscheduling=pb.CoschedulingConfig(group_by="tpu-name"),
    )  # fmt: skip
    (backoff,) = wait_for(lambda: _actions(cluster, "backoff_triggered"), 10, "a backoff_triggered action")
    assert backoff.slice_id == "local-tpu-0" and backoff.status == "failed"
    assert "failed to boot" in backoff.reason
    job = cluster.client.wait_finished(job_id, timeout_s=15)
    assert job.state == pb.JOB_STATE_SUCCEEDED
    assert {t.worker_id for t in cluster.client.tasks(job_id)} == {f"local-tpu-1-w{i}" for i in range(4)}
    (tpu,) = [g for g in cluster.client.autoscaler().groups if g.name == "tpu"]
    assert tpu.consecutive_failures == 0


def test_sigkilled_vm_host_fails_its_tasks_and_is_replaced(cluster: Cluster) -> None:
    """SIGKILL of a VM host mid-task: the task is WORKER_FAILED, its process is gone, a new slice boots."""
    job_id = cluster.client.launch("doomed", python_argv("import time; print('up', flush=True); time.sleep(60)"))
    wait_for(lambda: cluster.client.task_logs(job_id, 0) == ["up"], 10, "the task to start")
    (worker,) = [w for w in cluster.client.workers() if w.worker_id == "local-cpu-0-w0"]
    vm_pid = int(worker.address.removeprefix("local:"))
    task_pids = [p.pid for p in psutil.Process(vm_pid).children(recursive=True)]
    assert task_pids
    os.kill(vm_pid, signal.SIGKILL)
    job = cluster.client.wait_finished(job_id, timeout_s=10)
    assert job.state == pb.JOB_STATE_WORKER_FAILED
    (task,) = cluster.client.tasks(job_id)
    assert task.state == pb.TASK_STATE_WORKER_FAILED and "missed heartbeats" in task.error
    wait_for(lambda: not alive_pids(task_pids), 5, "the dead VM's tasks to die")
    failed = wait_for(lambda: _actions(cluster, "worker_failed"), 5, "a worker_failed action")
    assert failed[0].slice_id == "local-cpu-0"

    def replacement_ready() -> bool:
        return any(w.worker_id == "local-cpu-1-w0" and w.healthy for w in cluster.client.workers())

    wait_for(replacement_ready, 10, "the replacement slice local-cpu-1")
    again = cluster.client.launch("after", python_argv("pass"))
    assert cluster.client.wait_finished(again).state == pb.JOB_STATE_SUCCEEDED


def test_scales_up_from_zero_and_down_after_idle(cluster: Cluster) -> None:
    """The TPU group (min 0) gets a slice for a job and deletes it once idle for the delay."""
    assert list(cluster.client.slices("tpu")) == []
    job_id = cluster.client.launch("tpu-once", python_argv("pass"), resources=TPU_V5_16)
    assert cluster.client.wait_finished(job_id).state == pb.JOB_STATE_SUCCEEDED
    wait_for(lambda: _actions(cluster, "scale_down"), 10, "a scale_down action")
    wait_for(lambda: list(cluster.client.slices("tpu")) == [], 10, "the idle TPU slice to be deleted")
    (up,) = _actions(cluster, "scale_up")[1:]  # the first is the CPU group's min_slices
    assert up.scale_group == "tpu" and up.slice_id == "local-tpu-0"


def test_sigterm_stops_everything(cluster: Cluster) -> None:
    """SIGTERM: exit 0, every VM host and task gone, controller.addr removed."""
    job_id = cluster.client.launch(
        "running", python_argv("import time; print('up', flush=True); time.sleep(60)"), replicas=4,
        resources=TPU_V5_16, coscheduling=pb.CoschedulingConfig(group_by="tpu-name"),
    )  # fmt: skip
    wait_for(lambda: cluster.client.task_logs(job_id, 3) == ["up"], 10, "the coscheduled tasks to start")
    descendants = psutil.Process(cluster.popen.pid).children(recursive=True)
    assert len(descendants) >= 5 + 4  # 5 VM hosts and at least one process per task
    cluster.popen.send_signal(signal.SIGTERM)
    try:
        assert cluster.popen.wait(timeout=10) == 0
    except subprocess.TimeoutExpired:
        raise AssertionError("the local cluster did not exit within 10s of SIGTERM") from None
    _, alive = psutil.wait_procs(descendants, timeout=5)
    assert not alive, alive
    assert not (cluster.state_dir / "controller.addr").exists()
    assert b"controller_stopped" in (cluster.state_dir / "vms/local-controller/iris-controller.log").read_bytes()


def test_vm_hosts_and_tasks_die_with_a_sigkilled_cluster(cluster: Cluster) -> None:
    """SIGKILL of the cluster itself: parent-death signals take every VM host and task down."""
    job_id = cluster.client.launch("orphan", python_argv("import time; print('up', flush=True); time.sleep(60)"))
    wait_for(lambda: cluster.client.task_logs(job_id, 0) == ["up"], 10, "the task to start")
    descendants = psutil.Process(cluster.popen.pid).children(recursive=True)
    assert any("local_cluster.task_runner" in p.cmdline() for p in descendants)
    os.kill(cluster.popen.pid, signal.SIGKILL)
    cluster.popen.wait(timeout=5)
    pids = [p.pid for p in descendants]
    wait_for(lambda: not alive_pids(pids), 5, "VM hosts and tasks to die with the cluster")
