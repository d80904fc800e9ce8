"""The cluster's own start and stop commands (`[gcp] start_command`, `stop_command`).

Run through the same bounded runner as every gcloud call (own process group, a timeout
capped by the deadline, argv logged, stderr kept), since they are cloud CLIs too.
"""

from typing import Any

from workers.gcp.gcloud import Gcloud, GcloudResult
from workers.gcp.settings import GcpSettings


def run_cluster_command(gcloud: Gcloud, settings: GcpSettings, which: str, log: Any) -> GcloudResult | None:
    """`which` is "start" or "stop"; None when that command is not configured."""
    template = settings.start_command if which == "start" else settings.stop_command
    if not template:
        return None
    result = gcloud.run(settings.command(template), settings.command_timeout_s)
    if result.ok:
        log.info("cluster_command_done", which=which, argv=list(result.argv), elapsed_s=round(result.elapsed_s, 3))
    else:
        log.error("cluster_command_failed", which=which, **result.failure_fields())
    return result
