"""Benchmark the embedded local cluster: time to serving, and a coscheduled 4-replica TPU job.

    python bench/local_cluster_start.py [--runs 3]

Each run starts `python -m local_cluster` with the default config in a fresh state dir
and measures:
- serving: from spawn to the health check answering SERVING (target: < 2 s);
- cosched: from LaunchJob of a 4-replica job grouped by tpu-name on the v5litepod-16
  group (min 0, so a slice must boot: boot_delay_s = 1.0) to SUCCEEDED
  (target: boot delay + a few seconds);
- stop: from SIGTERM to exit with no process left.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.states import job_finished, job_state_of  # noqa: E402
from iris_smoke_api.v1 import controller_pb2 as pb  # noqa: E402
from iris_smoke_api.v1 import controller_pb2_grpc as pb_grpc  # noqa: E402

TIMEOUT_S = 30.0


def _serving(address: str, deadline: float) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.01)
    raise RuntimeError("controller never became SERVING")


def _cosched_job(address: str, deadline: float) -> float:
    request = pb.LaunchJobRequest(
        name="bench-cosched", entrypoint=[sys.executable, "-c", "import os; print(os.environ['IRIS_TASK_INDEX'])"],
        replicas=4, coscheduling=pb.CoschedulingConfig(group_by="tpu-name"),
        resources=pb.ResourceSpec(device=pb.DeviceConfig(tpu=pb.TpuDevice(variant="v5litepod-16", count=4))),
    )  # fmt: skip
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ControllerServiceStub(channel)
        started = time.monotonic()
        job_id = stub.LaunchJob(request, timeout=5).job_id
        while time.monotonic() < deadline:
            job = stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job_id), timeout=5).job
            if job_finished(job_state_of(job.state)):
                if job.state != pb.JOB_STATE_SUCCEEDED:
                    raise RuntimeError(f"job ended {pb.JobState.Name(job.state)}: {job.error}")
                return time.monotonic() - started
            time.sleep(0.02)
    raise RuntimeError("coscheduled job did not finish")


def one_run() -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="iris-bench-") as tmp:
        deadline = time.monotonic() + TIMEOUT_S
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "local_cluster", "--state-dir", tmp],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=ROOT,
            start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            address = proc.stdout.readline().decode().strip()
            if not address:
                raise RuntimeError("local cluster printed no address")
            _serving(address, deadline)
            serving = time.monotonic() - started
            cosched = _cosched_job(address, deadline)
            stop_started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
            stop = time.monotonic() - stop_started
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        return serving, cosched, stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [one_run() for _ in range(args.runs)]
    for name, values in zip(("serving", "cosched", "stop"), zip(*results, strict=True), strict=True):
        figures = " ".join(f"{v:.3f}" for v in values)
        print(f"{name:8s} median {statistics.median(values):.3f} s  (runs: {figures})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
