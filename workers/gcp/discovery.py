"""The GCP discovery child: the prefix's hosts from gcloud, each with its ssh command.

args: `workers.child_args.GcpDiscoveryArgs` (gcp: GcpSettings, its label prefix set; interval_s).

Every interval it lists the prefix's TPU slices and instances (`inventory`), and sends
the whole host set (`Kind.HOSTS`, in parts) the way the controller-based discovery does:
the controller VM first (container `iris-controller`), then host 0..N-1 of every slice
(`--worker=N`: without it `tpu-vm ssh` reaches host 0 only), then the other worker VMs
(container `iris-worker`). More than one controller is a failed listing naming them.

A host is listed once its ssh command is known: one `gcloud … ssh --dry-run` per host,
ever (kept for the child's life, so a listing every 10 s costs two list calls, not one
dry-run per host). A host whose dry-run fails or prints something we do not run is left
out of this listing and asked again at the next (`ssh_resolve_failed`). A listing that
fails counts towards `failed_listings`, reported as PROGRESS like the other discovery.
"""

from typing import Any

from common.child_exit import ChildExit
from workers.child_args import GcpDiscoveryArgs
from workers.controller import polling
from workers.discovery import send_listing
from workers.gcp.gcloud import Gcloud, GcloudFailed
from workers.gcp.inventory import Inventory, Resource, TooManyControllers, list_inventory, only_controller
from workers.gcp.settings import GcpSettings
from workers.gcp.ssh_target import DryRunRefused, SshTarget, dry_run_words, parse_dry_run
from workers.hosts import HostileNameError, Role
from workers.messages import DiscoveryReady, FailedListings, HostEntry
from workers.runtime import ChildContext

HostKey = tuple[str, str, int]  # (vm, zone, host index)


class Resolver:
    """Each host's ssh command, asked of gcloud once and kept."""

    def __init__(self, gcloud: Gcloud, settings: GcpSettings, log: Any) -> None:
        self.gcloud, self.settings, self.log = gcloud, settings, log
        self.known: dict[HostKey, SshTarget] = {}

    def resolve(self, wanted: list[tuple[Resource, int]]) -> None:
        missing = [(r, i) for r, i in wanted if (r.name, r.zone, i) not in self.known]
        argvs = [self.gcloud.argv(*dry_run_words(r, i)) for r, i in missing]
        results = self.gcloud.run_all(argvs, self.settings.call_timeout_s)
        for (resource, index), result in zip(missing, results, strict=True):
            if not result.ok:
                continue  # gcloud_failed says why; asked again at the next listing
            try:
                self.known[(resource.name, resource.zone, index)] = parse_dry_run(result.stdout)
            except (DryRunRefused, HostileNameError) as exc:
                self.log.warning("ssh_resolve_failed", vm=resource.name, host=index, error=str(exc))


def _host(resource: Resource, index: int, role: Role, container: str, target: SshTarget) -> HostEntry:
    slice_name = resource.name if resource.hosts > 1 else ""
    return HostEntry(resource.name, index, role, target.address, resource.zone, container,
                     slice=slice_name, hosts_in_vm=resource.hosts, ssh=target)  # fmt: skip


def hosts_of(inventory: Inventory, resolver: Resolver) -> list[HostEntry]:
    """The full host set, controller first; hosts without a known ssh command are left out."""
    s = inventory.settings
    controller = only_controller(inventory)
    wanted: list[tuple[Resource, int, Role, str]] = []
    if controller is not None:
        wanted.append((controller, 0, Role.CONTROLLER, s.controller_container))
    for tpu in sorted(inventory.slices, key=lambda r: (r.name, r.zone)):
        wanted += [(tpu, i, Role.WORKER, s.worker_container) for i in range(tpu.hosts)]
    for vm in sorted(inventory.worker_vms(), key=lambda r: (r.name, r.zone)):
        wanted.append((vm, 0, Role.WORKER, s.worker_container))
    resolver.resolve([(r, i) for r, i, _role, _c in wanted])
    return [
        _host(r, i, role, container, resolver.known[(r.name, r.zone, i)])
        for r, i, role, container in wanted
        if (r.name, r.zone, i) in resolver.known
    ]


def main(ctx: ChildContext) -> int:
    args: GcpDiscoveryArgs = ctx.args
    settings, interval_s = args.gcp, args.interval_s
    gcloud = Gcloud(settings.gcloud, settings.project, ctx.groups, ctx.log, ctx.deadline, ctx.stop.fd)
    resolver = Resolver(gcloud, settings, ctx.log)
    sent: list[HostEntry] | None = None
    failed = 0
    for listing in polling.poll_every(ctx, interval_s):
        try:
            hosts = hosts_of(list_inventory(gcloud, settings, ctx.log), resolver)
        except (GcloudFailed, TooManyControllers) as exc:
            failed += 1
            fields = exc.result.failure_fields() if isinstance(exc, GcloudFailed) else {"controllers": exc.names}
            ctx.log.warning("discovery_failed", error=str(exc), failed_listings=failed, **fields)
            ctx.channel.send(FailedListings(failed))
            continue
        if failed:
            failed = 0
            ctx.channel.send(FailedListings(0))
        send_listing(ctx, hosts, listing)
        if sent is None:
            ctx.channel.send(DiscoveryReady(len(hosts)))
        if hosts != sent:
            ctx.log.info("hosts_discovered", count=len(hosts), vms=sorted({h.vm for h in hosts})[:50])
        sent = hosts
    ctx.log.info("discovery_stopped", reason=ctx.stop.reason or "deadline")
    return ChildExit.OK
