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

from common.child_exit import ChildExit
from common.jsonshape import to_json_object
from workers.child_args import GcpCleanupArgs
from workers.gcp.cluster_cli import run_cluster_command
from workers.gcp.gcloud import Gcloud, GcloudFailed, GcloudResult
from workers.gcp.inventory import list_inventory
from workers.messages import CleanupFailure, CloudCleanup, CloudResource
from workers.runtime import ChildContext


def main(ctx: ChildContext) -> int:
    args: GcpCleanupArgs = ctx.args
    settings = args.gcp
    gcloud = Gcloud(settings.gcloud, settings.project, ctx.groups, ctx.log, ctx.deadline, ctx.stop.fd)
    deleted: list[CloudResource] = []
    gone: list[CloudResource] = []
    failed: list[CleanupFailure] = []
    # The cluster's own stop first; the labelled deletion after it is the safety net.
    stopped = run_cluster_command(gcloud, settings, "stop", ctx.log)
    if stopped is not None and not stopped.ok:
        failed.append(CleanupFailure(_why(stopped), shlex.join(stopped.argv), what="stop_command"))
    try:
        resources = list_inventory(gcloud, settings, ctx.log).everything()
    except GcloudFailed as exc:
        failed.append(_failed(ctx, CleanupFailure(str(exc), shlex.join(exc.result.argv), what="listing")))
        ctx.channel.send(CloudCleanup(failed=tuple(failed)))
        return ChildExit.ERROR
    argvs = [gcloud.argv(*r.delete_words()) for r in resources]
    for resource, result in zip(resources, gcloud.run_all(argvs, settings.delete_timeout_s), strict=True):
        described = CloudResource(resource.kind, resource.name, resource.zone)
        if result.ok:
            deleted.append(described)
        elif result.not_found:
            gone.append(described)
        else:
            failure = CleanupFailure(_why(result), shlex.join(result.argv), kind=resource.kind, name=resource.name,
                                     zone=resource.zone)  # fmt: skip
            failed.append(_failed(ctx, failure))
    ctx.log.info("cloud_cleanup_done", deleted=len(deleted), already_gone=len(gone), failed=len(failed))
    ctx.channel.send(CloudCleanup(tuple(deleted), tuple(gone), tuple(failed)))
    return ChildExit.OK if not failed else ChildExit.ERROR


def _failed(ctx: ChildContext, failure: CleanupFailure) -> CleanupFailure:
    """Said as an event with the fields that apply (a resource's, or `what` for a step)."""
    ctx.log.error("cloud_cleanup_failed", **{k: v for k, v in to_json_object(failure).items() if v not in ("", None)})
    return failure


def _why(result: GcloudResult) -> str:
    if result.timed_out:
        return f"no answer within {round(result.elapsed_s, 1)} s"
    return result.stderr.strip()[-500:] or f"exit {result.exit_code}"
