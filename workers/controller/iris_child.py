"""Run inside an Iris task (as `python3 -c <this file> SPEC`): submit one child job, wait, exit with its verdict.

Standard library only: the task runs on the cluster's hosts, where this package is not
installed. It does what the Iris client does for a job submitted from a task: names the
child `<parent job>/<name>` (the parent is the task id without its index), adds the
parent's inheritable constraints from `IRIS_JOB_CONSTRAINTS` (Iris passes region and
zone) to the child's own, and presents the task's token (`IRIS_TASK_TOKEN`) if it has
one. SPEC is JSON: {name, argv, constraints [{key, value}], timeout_s}. Prints
`child_job <id> <state>`; exit 0 only when the child succeeded.
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


def call(base: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    # The scheme is checked in main: http(s) only.
    request = urllib.request.Request(f"{base.rstrip('/')}/{SERVICE}/{method}", json.dumps(body).encode(),  # noqa: S310
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


if __name__ == "__main__":
    try:
        sys.exit(main(json.loads(sys.argv[1])))
    except (KeyError, OSError, ValueError, urllib.error.URLError) as exc:
        print(f"child_job: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
