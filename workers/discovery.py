"""The discovery child: which VM hosts exist now, sent to the supervisor as one full set.

args: `workers.child_args.DiscoveryArgs` (target, prefix: the cluster's VM name prefix, interval_s).

It lists the controller's workers at once and then every interval, and sends the whole
set each time (`Kind.HOSTS`), never a diff: the supervisor compares it with its streams,
and a lost or duplicated message cannot leave it with a wrong picture. Workers the
controller still lists but calls unhealthy stay in the set, so their streams keep going
and capture why they died. A failed listing sends nothing (the supervisor keeps its
existing streams) and is retried at the next interval; READY follows the first success.
Every failure, and the first success after failures, is reported as PROGRESS with the
count of consecutive failed listings (`failed_listings`, with the last failure's `code`): the
verdict fails a run whose discovery keeps failing (`discovery_failed`), never only warns.

A listing of any size is sent as consecutive HOSTS parts (`messages.host_parts`), each
under the message size limit.

An address reaches ssh as its host only: a worker's or controller's address is
`host:port` (`[v6]:port` for IPv6), where the port is its RPC port, not sshd's; handed
whole to ssh it would be taken as a host name that resolves nowhere. `hosts.split_address`
keeps the host in `address` and the port in `service_port`; ssh uses `[ssh] port`.

Every VM and slice name ends up in a command line (a local argv, an ssh command), so
names that fail `workers.hosts.validate_name` are dropped, never passed on. A worker id
listed twice gets one host (its first), never two streams on one file. Both are counted per
listing (`workers.rejected`): one `hosts_rejected` event (and `duplicate_hosts`) when the
refused set changes, sent to the supervisor as PROGRESS `hosts_rejected` (the verdict fails
the run unless `[verdict] hosts_rejected = "warn"`).
"""

import urllib.parse

from common.child_exit import ChildExit
from workers.child_args import DiscoveryArgs
from workers.controller import polling
from workers.controller.model import ControllerError, Worker
from workers.hosts import HostileNameError, Role, split_address, validate_name
from workers.messages import DiscoveryReady, FailedListings, HostEntry, host_parts
from workers.rejected import RejectionLog, Rejections
from workers.runtime import ChildContext

CONTROLLER_CONTAINER = "iris-controller"
WORKER_CONTAINER = "iris-worker"


def controller_host(prefix: str, address: str) -> HostEntry:
    host, port = split_address("controller address", _vm_address(address))
    return HostEntry(f"{prefix}-controller", 0, Role.CONTROLLER, host, "", CONTROLLER_CONTAINER, service_port=port)


def _vm_address(controller: str) -> str:
    """host:port, also for an Iris URL: an address may reach a command line, a scheme never.
    An embedded cluster's Unix socket (`unix:/…`) is on this machine."""
    if controller.startswith("unix:"):
        return "localhost"
    return urllib.parse.urlsplit(controller).netloc or controller


def worker_host(worker: Worker) -> HostEntry:
    """One worker as a host entry; raises HostileNameError for a name we will not pass on."""
    attributes = worker.attributes
    index = worker.slice_host
    if index is None and attributes.get("tpu-worker-id"):
        raise HostileNameError("tpu-worker-id", attributes.get("tpu-worker-id"))
    slice_id = worker.slice_name
    zone = attributes.get("region", "")
    vm = validate_name("vm", worker.vm_name or worker.worker_id)
    host, port = split_address("address", worker.address)
    return HostEntry(
        vm,
        # Every local host is a VM of its own (`<slice>-w<i>`): it is host 0 of that VM,
        # and `slice_host` is its index in the slice. (On GCP a TPU slice is one VM with
        # hosts 0..N-1, streamed with `--worker=N`: there `host` is that index.)
        host=0,
        slice_host=index or 0,
        role=Role.WORKER,
        address=host,
        service_port=port,
        zone=validate_name("zone", zone) if zone else "",
        container=WORKER_CONTAINER,
        slice=validate_name("slice", slice_id) if slice_id else "",
        worker_id=worker.worker_id,
        healthy=worker.healthy,
        group=worker.scale_group,
    )


def hosts_from(workers: list[Worker], prefix: str, address: str, rejections: Rejections) -> list[HostEntry]:
    """The full host set: the controller's VM first, then every listed worker with acceptable names,
    each worker id once (the first listed: the sort is stable). The rest go into `rejections`."""
    hosts = [controller_host(prefix, address)]
    previous = None
    for worker in sorted(workers, key=lambda w: w.worker_id):
        if worker.worker_id == previous:
            rejections.duplicate("worker id", worker.worker_id)
            continue
        previous = worker.worker_id
        try:
            hosts.append(worker_host(worker))
        except HostileNameError as exc:
            rejections.refuse(exc)
    return hosts


def send_listing(ctx: ChildContext, hosts: list[HostEntry], listing: int) -> None:
    for part in host_parts(hosts, listing):
        ctx.channel.send(part)


def main(ctx: ChildContext) -> int:
    args: DiscoveryArgs = ctx.args
    address, prefix = args.target.address, args.prefix
    try:
        validate_name("prefix", f"{prefix}-controller")
    except HostileNameError as exc:
        ctx.log.error("discovery_config_invalid", error=str(exc))
        return ChildExit.CONFIG
    outage = polling.outage_for(ctx)
    sent: list[HostEntry] | None = None
    failed = 0
    said = RejectionLog(ctx.log)
    with polling.connect(ctx) as controller:
        for listing in polling.poll_every(ctx, args.interval_s):
            try:
                workers = controller.list_workers()
            except ControllerError as exc:
                failed += 1
                polling.call_failed(ctx, outage, "discovery_failed", exc, failed_listings=failed)
                ctx.channel.send(FailedListings(failed, exc.code.value))
                continue
            polling.call_succeeded(ctx, outage)
            if failed:
                failed = 0
                ctx.channel.send(FailedListings(0))
            rejections = Rejections()
            hosts = hosts_from(workers, prefix, address, rejections)
            if said.listed(rejections):
                ctx.channel.send(rejections.report())
            send_listing(ctx, hosts, listing)
            if sent is None:
                ctx.channel.send(DiscoveryReady(len(hosts)))
            if hosts != sent:
                ctx.log.info("hosts_discovered", count=len(hosts), vms=[h.vm for h in hosts][:50])
            sent = hosts
    ctx.log.info("discovery_stopped", reason=ctx.stop.reason or ctx.drain.reason or "deadline")
    return ChildExit.OK
