"""Child entrypoints that ask the controller something for a test, from a forked child.

The test process itself never imports grpc (as the supervisor never does), so every
question to the controller goes through a child like these, run with tests/helpers/forked.py.
This module is imported only in those children, after the fork.
"""

from typing import Any

from common.child_exit import ChildExit
from common.jsonshape import to_json
from tests.messages import ProbeResult
from workers.controller import polling
from workers.controller.model import Worker
from workers.discovery import hosts_from, send_listing
from workers.messages import HostEntry
from workers.rejected import RejectionLog, Rejections
from workers.runtime import ChildContext
from workers.smoke_tests.suite import custom_test


def launch(ctx: ChildContext) -> int:
    """args: target, jobs (test dicts as in the config); RESULT job_ids."""
    job_ids = []
    with polling.connect(ctx) as controller:
        for spec in ctx.args.jobs:
            for request in custom_test(spec, job_timeout_s=60).requests:
                job_ids.append(controller.launch(request))
    ctx.channel.send(ProbeResult({"job_ids": list(job_ids)}))
    return ChildExit.OK


def jobs(ctx: ChildContext) -> int:
    """args: target; RESULT jobs=[{job_id, name, state}] of the jobs under its root."""
    with polling.connect(ctx) as controller:
        found: list[dict[str, Any]] = [
            {"job_id": j.job_id, "name": j.name, "state": j.state} for j in controller.list_jobs()
        ]
    ctx.channel.send(ProbeResult({"jobs": to_json(found)}))
    return ChildExit.OK


def jobs_and_tasks(ctx: ChildContext) -> int:
    """args: target; RESULT jobs=[{job_id, state, tasks: [task states]}] of the jobs under its root."""
    with polling.connect(ctx) as controller:
        found: list[dict[str, Any]] = [
            {"job_id": j.job_id, "state": j.state, "tasks": [t.state for t in controller.list_tasks(j.job_id)]}
            for j in controller.list_jobs()
        ]
    ctx.channel.send(ProbeResult({"jobs": to_json(found)}))
    return ChildExit.OK


def discovery_hosts(ctx: ChildContext) -> int:
    """args: workers [{worker_id, vm_name, address, attributes}]; RESULT hosts = discovery's set for them."""
    workers = [Worker(healthy=True, **w) for w in ctx.args["workers"]]
    ctx.channel.send(ProbeResult({"hosts": to_json(_hosts(workers, ctx))}))
    return ChildExit.OK


def discovery_listing(ctx: ChildContext) -> int:
    """args: workers (count); discovery's HOSTS messages for that many workers, as it sends them."""
    workers = [
        Worker(worker_id=f"w{i:05d}", vm_name=f"local-cpu-{i}-w0", address=f"10.{i >> 8 & 255}.{i & 255}.1:10001",
               healthy=True, attributes={"tpu-name": f"local-cpu-{i}", "region": "local"})
        for i in range(int(ctx.args["workers"]))
    ]  # fmt: skip
    send_listing(ctx, _hosts(workers, ctx), 0)
    return ChildExit.OK


def _hosts(workers: list[Worker], ctx: ChildContext) -> list[HostEntry]:
    """Discovery's set for `workers`, its refusals logged as discovery logs them."""
    rejections = Rejections()
    hosts = hosts_from(workers, "local", "127.0.0.1:1", rejections)
    RejectionLog(ctx.log).listed(rejections)
    return hosts


def workers_up(ctx: ChildContext) -> int:
    """args: target, count; RESULT workers=[ids] once `count` healthy workers are listed (within 10 s)."""
    healthy: list[str] = []
    with polling.connect(ctx) as controller:
        for _ in polling.poll_every(ctx, 0.05):
            healthy = sorted(w.worker_id for w in controller.list_workers() if w.healthy)
            if len(healthy) >= ctx.args.count or ctx.deadline.remaining() < 1:
                break
    ctx.channel.send(ProbeResult({"workers": list(healthy)}))
    return ChildExit.OK
