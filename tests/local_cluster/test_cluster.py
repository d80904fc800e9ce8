"""End-to-end behaviour of a real local cluster: jobs, scheduling, the API's extras."""

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from iris_smoke_api.v1 import controller_pb2 as pb
from tests.helpers.waiting import wait_for
from tests.local_cluster.client import TPU_V5_16, duration, python_argv
from tests.local_cluster.conftest import FAST_CONFIG, Cluster, ClusterFactory

ENV_REPORT = (
    "import os; print('task', *(os.environ[k] for k in "
    + repr(("IRIS_JOB_ID", "IRIS_TASK_INDEX", "IRIS_NUM_TASKS", "IRIS_WORKER_ID"))
    + "))"
)


def test_cpu_job_runs_to_success_with_its_output_and_env(cluster: Cluster) -> None:
    """A launched job is scheduled, runs with the IRIS_* env, succeeds, and its output is kept."""
    job_id = cluster.client.launch("hello", python_argv(ENV_REPORT))
    job = cluster.client.wait_finished(job_id)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job
    assert dict(job.task_state_counts) == {"succeeded": 1}
    (task,) = cluster.client.tasks(job_id)
    assert task.worker_id == "local-cpu-0-w0" and task.attempts == 1
    assert cluster.client.task_logs(job_id, 0) == [f"task {job_id} 0 1 local-cpu-0-w0"]
    worker_log = (cluster.state_dir / "vms/local-cpu-0-w0/iris-worker.log").read_text()
    assert f"[task {job_id}/0] task {job_id} 0 1 local-cpu-0-w0" in worker_log


def test_coscheduled_job_lands_on_one_slice_in_host_order(cluster: Cluster) -> None:
    """replicas=4 grouped by tpu-name: one slice, task i on host i, pending_reason while it boots."""
    job_id = cluster.client.launch(
        "cosched", python_argv(ENV_REPORT), replicas=4, resources=TPU_V5_16,
        coscheduling=pb.CoschedulingConfig(group_by="tpu-name"),
    )  # fmt: skip
    pending = cluster.client.tasks(job_id)
    assert all(t.state == pb.TASK_STATE_PENDING for t in pending)
    booting = wait_for(
        lambda: "booting" in (reason := cluster.client.tasks(job_id)[0].pending_reason) and reason,
        5, "a pending_reason naming the booting slice",
    )  # fmt: skip
    assert "local-tpu-0" in booting
    assert cluster.client.wait_finished(job_id).state == pb.JOB_STATE_SUCCEEDED
    tasks = cluster.client.tasks(job_id)
    assert [t.worker_id for t in tasks] == [f"local-tpu-0-w{i}" for i in range(4)]
    for i in range(4):
        assert cluster.client.task_logs(job_id, i) == [f"task {job_id} {i} 4 local-tpu-0-w{i}"]
    workers = {w.worker_id: w for w in cluster.client.workers()}
    attrs = workers["local-tpu-0-w2"].attributes
    assert (attrs["tpu-name"], attrs["tpu-worker-id"], attrs["region"]) == ("local-tpu-0", "2", "local")
    assert attrs["tpu-topology"] == "v5litepod-16"


def test_job_no_group_can_fit_is_unschedulable_at_once(cluster: Cluster) -> None:
    """A TPU variant no group offers is UNSCHEDULABLE right away, with the reason per group."""
    resources = pb.ResourceSpec(device=pb.DeviceConfig(tpu=pb.TpuDevice(variant="v5p-2048", count=4)))
    job_id = cluster.client.launch("too-big", python_argv("pass"), resources=resources)
    job = cluster.client.job(job_id)
    assert job.state == pb.JOB_STATE_UNSCHEDULABLE
    assert "tpu: offers v5litepod-16, job needs v5p-2048" in job.error


def test_scheduling_timeout_makes_a_job_unschedulable(start_cluster: ClusterFactory) -> None:
    """A job still pending at its scheduling timeout is UNSCHEDULABLE, the error saying why."""
    cluster = start_cluster(FAST_CONFIG.replace("boot_delay_s = 0.6", "boot_delay_s = 30"))
    job_id = cluster.client.launch("slow", python_argv("pass"), resources=TPU_V5_16, scheduling_timeout=duration(0.5))
    job = cluster.client.wait_finished(job_id, timeout_s=5)
    assert job.state == pb.JOB_STATE_UNSCHEDULABLE
    assert "not scheduled within 0.5s" in job.error and "booting" in job.error


def test_job_timeout_kills_tasks_and_fails_the_job(cluster: Cluster) -> None:
    """A job running past its timeout fails with an error and its task process is gone."""
    job_id = cluster.client.launch("sleepy", python_argv("import time; time.sleep(60)"), timeout=duration(0.5))
    job = cluster.client.wait_finished(job_id)
    assert job.state == pb.JOB_STATE_FAILED
    assert "timed out after 0.5s" in job.error
    _wait_no_task_processes(cluster)


def test_terminate_job_kills_it(cluster: Cluster) -> None:
    """TerminateJob ends a running job as KILLED and the VM host kills the task's process group."""
    job_id = cluster.client.launch("victim", python_argv("import time; print('up', flush=True); time.sleep(60)"))
    wait_for(lambda: cluster.client.task_logs(job_id, 0) == ["up"], 10, "the task to start")
    request = pb.TerminateJobRequest(job_id=job_id)
    job = cluster.client.stub.TerminateJob(request, timeout=5).job
    assert job.state == pb.JOB_STATE_KILLED
    assert cluster.client.tasks(job_id)[0].state == pb.TASK_STATE_KILLED
    _wait_no_task_processes(cluster)


def test_unknown_job_is_not_found_and_bad_request_is_invalid(cluster: Cluster) -> None:
    """Domain errors map to NOT_FOUND and INVALID_ARGUMENT, with the field named."""
    try:
        cluster.client.job("nope")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("GetJobStatus of an unknown job succeeded")
    try:
        cluster.client.launch("empty", [])
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "entrypoint" in (exc.details() or "")
    else:
        raise AssertionError("LaunchJob without an entrypoint succeeded")


def test_list_jobs_filters_by_prefix_and_state(cluster: Cluster) -> None:
    ok = cluster.client.launch("smoke-a", python_argv("pass"))
    bad = cluster.client.launch("smoke-b", python_argv("raise SystemExit(3)"))
    cluster.client.launch("other", python_argv("pass"))
    cluster.client.wait_finished(ok)
    failed = cluster.client.wait_finished(bad)
    assert failed.state == pb.JOB_STATE_FAILED and failed.exit_code == 3
    request = pb.ListJobsRequest(name_prefix="smoke-", states=[pb.JOB_STATE_FAILED])
    jobs = cluster.client.stub.ListJobs(request, timeout=5).jobs
    assert [j.job_id for j in jobs] == [bad]


def test_health_is_serving_and_reflection_lists_the_service(cluster: Cluster) -> None:
    health = health_pb2_grpc.HealthStub(cluster.client.channel)
    for service in ("", "iris_smoke.v1.ControllerService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(cluster.client.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(reflection.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert "iris_smoke.v1.ControllerService" in names and "grpc.health.v1.Health" in names


def _task_processes(cluster: Cluster) -> list[psutil.Process]:
    found = []
    for proc in psutil.Process(cluster.popen.pid).children(recursive=True):
        try:
            if "local_cluster.task_runner" in proc.cmdline():
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _wait_no_task_processes(cluster: Cluster) -> None:
    wait_for(lambda: not _task_processes(cluster), 5, "the task's processes to be gone")
