"""Run inside an Iris task (as `python3 -c <this file> SPEC`): what a task asks of its controller.

Standard library only: the task runs on the cluster's hosts, where this package is not
installed. It presents the task's token (`IRIS_TASK_TOKEN`) if it has one. Two things:
- a child job (SPEC {name, argv, constraints [{key, value}], timeout_s}): it does what the Iris
  client does for a job submitted from a task: names the child `<parent job>/<name>` (the
  parent is the task id without its index), adds the parent's inheritable constraints from
  `IRIS_JOB_CONSTRAINTS` (Iris passes region and zone) to the child's own, waits. Prints
  `child_job <id> <state>`; exit 0 only when the child succeeded.
- an endpoint (SPEC {endpoint, address, hold_s}): registers `<parent job>/<endpoint>` for this
  task attempt with `EndpointService/RegisterEndpoint`, as the Iris client's endpoint registry
  does (Iris ties it to the task: it goes when the task ends), prints `endpoint_registered <id>`,
  then stays running `hold_s` for the controller to be asked. Exit 2 if it cannot register.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

SERVICE = "iris.cluster.ControllerService"
FINISHED = ("SUCCEEDED", "FAILED", "KILLED", "WORKER_FAILED", "UNSCHEDULABLE")


def call(base: str, method: str, body: dict[str, Any], service: str = SERVICE) -> dict[str, Any]:
    # The scheme is checked in main: http(s) only.
    request = urllib.request.Request(f"{base.rstrip('/')}/{service}/{method}", json.dumps(body).encode(),  # noqa: S310
                                     {"Content-Type": "application/json"})  # fmt: skip
    token = os.environ.get("IRIS_TASK_TOKEN", "")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
        answer: dict[str, Any] = json.loads(reply.read() or b"{}")
        return answer


def main(spec: dict[str, Any]) -> int:
    base = os.environ.get("IRIS_CONTROLLER_ADDRESS") or os.environ["IRIS_CONTROLLER_URL"]
    if "://" not in base:
        base = f"http://{base}"
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"controller address is not http(s): {base!r}")
    if "endpoint" in spec:
        return endpoint(base, spec)
    parent = os.environ["IRIS_TASK_ID"].split(":")[0].rsplit("/", 1)[0]
    inherited = json.loads(os.environ.get("IRIS_JOB_CONSTRAINTS") or "[]")
    own = [{"key": c["key"], "op": "CONSTRAINT_OP_EQ", "value": {"stringValue": c["value"]}}
           for c in spec["constraints"]]  # fmt: skip
    keys = {c["key"] for c in own}
    body = {
        "name": f"{parent}/{spec['name']}",
        "replicas": 1,
        "entrypoint": {"runCommand": {"argv": spec["argv"]}},
        "resources": {"cpuMillicores": 100, "memoryBytes": str(100 * 1024 * 1024)},
        "constraints": [c for c in inherited if c.get("key") not in keys] + own,
    }
    job_id = call(base, "LaunchJob", body)["jobId"]
    print(f"child_job {job_id} launched", flush=True)
    ends = time.monotonic() + float(spec["timeout_s"])
    while True:
        job = call(base, "GetJobStatus", {"jobId": job_id}).get("job", {})
        state = str(job.get("state", "")).removeprefix("JOB_STATE_")
        if state in FINISHED or time.monotonic() > ends:
            break
        time.sleep(0.2)
    print(f"child_job {job_id} {state} {job.get('error', '')}".rstrip(), flush=True)
    return 0 if state == "SUCCEEDED" else 1


def endpoint(base: str, spec: dict[str, Any]) -> int:
    task_id, _, attempt = os.environ["IRIS_TASK_ID"].partition(":")
    body = {
        "name": f"{task_id.rsplit('/', 1)[0]}/{spec['endpoint']}",
        "address": spec["address"],
        "taskId": task_id,
        "attemptId": int(attempt or 0),
    }
    endpoint_id = call(base, "RegisterEndpoint", body, "iris.cluster.EndpointService")["endpointId"]
    print(f"endpoint_registered {endpoint_id} {body['name']}", flush=True)
    time.sleep(float(spec["hold_s"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(json.loads(sys.argv[1])))
    except (KeyError, OSError, ValueError, urllib.error.URLError) as exc:
        print(f"child_job: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
