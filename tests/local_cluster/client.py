"""A thin test client for the local cluster's controller: every call has a deadline."""

import sys
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1 import controller_pb2_grpc as pb_grpc
from tests.helpers.waiting import wait_for

RPC_TIMEOUT_S = 5.0
FINISHED = {
    pb.JOB_STATE_SUCCEEDED,
    pb.JOB_STATE_FAILED,
    pb.JOB_STATE_KILLED,
    pb.JOB_STATE_WORKER_FAILED,
    pb.JOB_STATE_UNSCHEDULABLE,
}
TPU_V5_16 = pb.ResourceSpec(device=pb.DeviceConfig(tpu=pb.TpuDevice(variant="v5litepod-16", count=4)))


def python_argv(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


class Client:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.ControllerServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def launch(self, name: str, argv: list[str], **fields: Any) -> str:
        request = pb.LaunchJobRequest(name=name, entrypoint=argv, **fields)
        return str(self.stub.LaunchJob(request, timeout=RPC_TIMEOUT_S).job_id)

    def job(self, job_id: str) -> pb.JobStatus:
        return self.stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job_id), timeout=RPC_TIMEOUT_S).job

    def tasks(self, job_id: str) -> list[pb.TaskStatus]:
        return list(self.stub.ListTasks(pb.ListTasksRequest(job_id=job_id), timeout=RPC_TIMEOUT_S).tasks)

    def task_logs(self, job_id: str, index: int) -> list[str]:
        request = pb.GetTaskLogsRequest(job_id=job_id, task_index=index)
        return [line.data for line in self.stub.GetTaskLogs(request, timeout=RPC_TIMEOUT_S).lines]

    def workers(self) -> list[pb.WorkerInfo]:
        return list(self.stub.ListWorkers(pb.ListWorkersRequest(), timeout=RPC_TIMEOUT_S).workers)

    def autoscaler(self) -> pb.GetAutoscalerStatusResponse:
        return self.stub.GetAutoscalerStatus(pb.GetAutoscalerStatusRequest(), timeout=RPC_TIMEOUT_S)

    def wait_finished(self, job_id: str, timeout_s: float = 15.0) -> pb.JobStatus:
        def finished() -> pb.JobStatus | None:
            job = self.job(job_id)
            return job if job.state in FINISHED else None

        return wait_for(finished, timeout_s, f"job {job_id} to finish")

    def wait_state(self, job_id: str, state: int, timeout_s: float = 15.0) -> pb.JobStatus:
        def reached() -> pb.JobStatus | None:
            job = self.job(job_id)
            return job if job.state == state else None

        return wait_for(reached, timeout_s, f"job {job_id} to be {pb.JobState.Name(state)}")

    def slices(self, group: str) -> Iterator[pb.SliceInfo]:
        for g in self.autoscaler().groups:
            if g.name == group:
                yield from g.slices
