"""Child entrypoints that ask the controller something for a test, from a forked child.

The test process itself never imports grpc (as the supervisor never does), so every
question to the controller goes through a child like these, run with tests/helpers/forked.py.
This module is imported only in those children, after the fork.
"""

from typing import Any

from common.child_exit import ChildExit
from common.messages import Kind
from iris_smoke_api.v1 import controller_pb2 as pb
from workers import controller_client as cc
from workers.discovery import hosts_from
from workers.runtime import ChildContext
from workers.smoke_tests.suite import custom_test


def launch(ctx: ChildContext) -> int:
    """args: controller, prefix, jobs (test dicts as in the config); RESULT job_ids."""
    job_ids = []
    with cc.connect(ctx.args["controller"]) as conn:
        for spec in ctx.args["jobs"]:
            for request in custom_test(spec, ctx.args["prefix"], job_timeout_s=60).requests:
                job_ids.append(conn.stub.LaunchJob(request, timeout=5).job_id)
    ctx.channel.send(Kind.RESULT, job_ids=job_ids)
    return ChildExit.OK


def jobs(ctx: ChildContext) -> int:
    """args: controller, prefix; RESULT jobs=[{job_id, name, state}]."""
    with cc.connect(ctx.args["controller"]) as conn:
        reply = conn.stub.ListJobs(pb.ListJobsRequest(name_prefix=ctx.args["prefix"]), timeout=5)
    found: list[dict[str, Any]] = [
        {"job_id": j.job_id, "name": j.name, "state": cc.JobState.of(j.state)} for j in reply.jobs
    ]
    ctx.channel.send(Kind.RESULT, jobs=found)
    return ChildExit.OK


def discovery_hosts(ctx: ChildContext) -> int:
    """args: workers [{worker_id, vm_name, address, attributes}]; RESULT hosts = discovery's set for them."""
    workers = [pb.WorkerInfo(**w) for w in ctx.args["workers"]]
    ctx.channel.send(Kind.RESULT, hosts=hosts_from(workers, "local", "127.0.0.1:1", ctx.log))
    return ChildExit.OK
