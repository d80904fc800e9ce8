"""A task's tiny client: submit one child job of the task's own job, wait for it, exit with its verdict.

    "$IRIS_SMOKE_PYTHON" -m local_cluster.child_job --name NAME [--constraint KEY=VALUE] --timeout S -- ARGV...

Run inside a task on a VM host, which gives it `IRIS_CONTROLLER_ADDRESS` and the
interpreter (`IRIS_SMOKE_PYTHON`); the parent is the task's `IRIS_JOB_ID`. The
controller names the child `<parent name>/<NAME>` and adds the parent's constraints to
its own, as Iris does for a job submitted from a task. Prints `child_job <id> <state>`;
exit 0 when the child succeeded, 1 when it ended otherwise or did not end in time, 2 on
bad input or an unreachable controller.
"""

import argparse
import os
import sys
import time

import grpc

from common.states import job_finished, job_state_of
from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1 import controller_pb2_grpc as pb_grpc

CONTROLLER_ENV = "IRIS_CONTROLLER_ADDRESS"
PYTHON_ENV = "IRIS_SMOKE_PYTHON"
POLL_S = 0.2
CALL_TIMEOUT_S = 5.0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="child_job")
    parser.add_argument("--name", required=True)
    parser.add_argument("--constraint", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("argv", nargs="+")
    return parser.parse_args(argv)


def _request(args: argparse.Namespace, parent: str) -> pb.LaunchJobRequest:
    constraints = []
    for item in args.constraint:
        key, _, value = item.partition("=")
        constraints.append(pb.Constraint(key=key, op=pb.CONSTRAINT_OP_EQ, value=value))
    return pb.LaunchJobRequest(
        name=args.name, entrypoint=args.argv, replicas=1, constraints=constraints, parent_job_id=parent,
        resources=pb.ResourceSpec(device=pb.DeviceConfig(cpu=pb.CpuDevice())),
    )  # fmt: skip


def main(argv: list[str]) -> int:
    args = _parse(argv)
    address, parent = os.environ.get(CONTROLLER_ENV, ""), os.environ.get("IRIS_JOB_ID", "")
    if not address or not parent:
        print(f"child_job: {CONTROLLER_ENV} and IRIS_JOB_ID must be set (run inside a task)", file=sys.stderr)
        return 2
    ends = time.monotonic() + args.timeout
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ControllerServiceStub(channel)
        try:
            job_id = stub.LaunchJob(_request(args, parent), timeout=CALL_TIMEOUT_S).job_id
            print(f"child_job {job_id} launched", flush=True)
            while True:
                job = stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job_id), timeout=CALL_TIMEOUT_S).job
                if job_finished(job_state_of(job.state)) or time.monotonic() > ends:
                    break
                time.sleep(POLL_S)
        except grpc.RpcError as exc:
            print(f"child_job: {exc.code().name if isinstance(exc, grpc.Call) else exc}", file=sys.stderr)
            return 2
    print(f"child_job {job_id} {pb.JobState.Name(job.state)} {job.error}".rstrip(), flush=True)
    return 0 if job.state == pb.JOB_STATE_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
