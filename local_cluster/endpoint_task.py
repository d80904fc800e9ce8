"""A task's endpoint client: register one endpoint of the task's own job, then hold it while running.

    "$IRIS_SMOKE_PYTHON" -m local_cluster.endpoint_task --name NAME --address HOST:PORT --hold S

Run inside a task on a VM host, which gives it the controller's address and the interpreter
(local_cluster.child_job's CONTROLLER_ENV, PYTHON_ENV). It registers `<job name>/<NAME>` for
this task (`IRIS_JOB_ID`, `IRIS_TASK_INDEX`), as an Iris task registers its endpoints with the
controller, prints `endpoint_registered <id> <name>`, and stays running `--hold` seconds: the
endpoint lives while its task runs. Exit 0 after the hold; 2 on bad input or a refusal.
"""

import argparse
import os
import sys
import time

import grpc

from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1 import controller_pb2_grpc as pb_grpc
from local_cluster.child_job import CALL_TIMEOUT_S, CONTROLLER_ENV


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="endpoint_task")
    parser.add_argument("--name", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--hold", type=float, default=60.0)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    address, job_id, index = (os.environ.get(k, "") for k in (CONTROLLER_ENV, "IRIS_JOB_ID", "IRIS_TASK_INDEX"))
    if not (address and job_id and index):
        print(f"endpoint_task: {CONTROLLER_ENV}, IRIS_JOB_ID and IRIS_TASK_INDEX must be set", file=sys.stderr)
        return 2
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ControllerServiceStub(channel)
        try:
            job = stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job_id), timeout=CALL_TIMEOUT_S).job
            name = f"{job.name}/{args.name}"
            request = pb.RegisterEndpointRequest(name=name, address=args.address, task_id=f"{job_id}/{index}")
            endpoint_id = stub.RegisterEndpoint(request, timeout=CALL_TIMEOUT_S).endpoint_id
        except grpc.RpcError as exc:
            why = f"{exc.code().name} {exc.details()}" if isinstance(exc, grpc.Call) else str(exc)
            print(f"endpoint_task: {why}", file=sys.stderr)
            return 2
    print(f"endpoint_registered {endpoint_id} {name}", flush=True)
    time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
