"""The GCP cleanup child: delete every TPU slice and instance carrying the prefix's labels.

args: `workers.child_args.GcpCleanupArgs` (gcp: GcpSettings, label prefix set).

The cluster's own `stop_command` first, if configured. Then one listing (the same as
discovery's: slices and workers by `<prefix>-managed=true`, the controller by name or
label), then one `gcloud … delete NAME --zone=Z --quiet` per
resource, several at once, each bounded by `gcp.delete_timeout_s`. "Not found" means
someone (the cluster's own autoscaler, a previous attempt) was first: success. The
RESULT lists what was deleted, what was already gone, and for what could not be deleted
the error and the exact command for a person to run (`cloud_cleanup_failed`).
"""

import shlex
from typing import Any

from common.child_exit import ChildExit
from common.messages import Kind
from workers.child_args import GcpCleanupArgs
from workers.gcp.cluster_cli import run_cluster_command
from workers.gcp.gcloud import Gcloud, GcloudFailed, GcloudResult
from workers.gcp.inventory import list_inventory
from workers.runtime import ChildContext


def main(ctx: ChildContext) -> int:
    args: GcpCleanupArgs = ctx.args
    settings = args.gcp
    gcloud = Gcloud(settings.gcloud, settings.project, ctx.groups, ctx.log, ctx.deadline, ctx.stop.fd)
    report: dict[str, list[Any]] = {"deleted": [], "already_gone": [], "failed": []}
    # The cluster's own stop first; the labelled deletion after it is the safety net.
    stopped = run_cluster_command(gcloud, settings, "stop", ctx.log)
    if stopped is not None and not stopped.ok:
        report["failed"].append({"what": "stop_command", "error": _why(stopped), "command": shlex.join(stopped.argv)})
    try:
        resources = list_inventory(gcloud, settings, ctx.log).everything()
    except GcloudFailed as exc:
        failure = {"what": "listing", "error": str(exc), "command": shlex.join(exc.result.argv)}
        report["failed"].append(failure)
        ctx.log.error("cloud_cleanup_failed", **failure)
        ctx.channel.send(Kind.RESULT, cloud_cleanup=report)
        return ChildExit.ERROR
    argvs = [gcloud.argv(*r.delete_words()) for r in resources]
    for resource, result in zip(resources, gcloud.run_all(argvs, settings.delete_timeout_s), strict=True):
        if result.ok:
            report["deleted"].append(resource.describe())
        elif result.not_found:
            report["already_gone"].append(resource.describe())
        else:
            failure = resource.describe() | {"error": _why(result), "command": shlex.join(result.argv)}
            report["failed"].append(failure)
            ctx.log.error("cloud_cleanup_failed", **failure)
    ctx.log.info("cloud_cleanup_done", deleted=len(report["deleted"]), already_gone=len(report["already_gone"]),
                 failed=len(report["failed"]))  # fmt: skip
    ctx.channel.send(Kind.RESULT, cloud_cleanup=report)
    return ChildExit.OK if not report["failed"] else ChildExit.ERROR


def _why(result: GcloudResult) -> str:
    if result.timed_out:
        return f"no answer within {round(result.elapsed_s, 1)} s"
    return result.stderr.strip()[-500:] or f"exit {result.exit_code}"
