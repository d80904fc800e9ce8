"""`--cluster gcp`: TPU slices and VMs found with gcloud; the Iris controller through an ssh tunnel
the cluster child opens; each host's logs over ssh as gcloud resolved it; the prefix's resources
deleted at the end (unless `--keep`)."""

import shutil

from common.controller_target import ApiKind
from common.errors import UsageError
from supervisor.backends.base import Backend, Cleanup, ClusterChild, RunView, no_tunnel
from supervisor.children import ChildSpec
from supervisor.config import RunConfig
from supervisor.restart import RestartMode, RestartPolicy
from supervisor.streams import Host
from workers.child_args import GcpCleanupArgs, GcpDiscoveryArgs
from workers.transports import SshTransport, Transport

# The cleanup child lists once, then deletes (in parallel), each call bounded by its timeout.
CLOUD_CLEANUP_EXTRA_S = 5.0


class GcpBackend(Backend):
    api = ApiKind.IRIS  # a real Iris, reached through the tunnel the cluster child opens

    def check(self, config: RunConfig) -> None:
        gcp = config.gcp
        if not gcp.project:
            raise UsageError("gcp.project: required for --cluster gcp (the project that holds the cluster)")
        if not gcp.zones:
            raise UsageError('gcp.zones: required for --cluster gcp, e.g. zones = ["us-central2-b"]')
        if config.attached:
            raise UsageError("--controller: a gcp run reaches its controller through its own tunnel; leave it out")
        if shutil.which(gcp.gcloud) is None:
            raise UsageError(f"gcp.gcloud: {gcp.gcloud!r} is not on PATH (install the Google Cloud CLI)")
        if shutil.which("ssh") is None:
            raise UsageError("--cluster gcp: the `ssh` client is not on PATH (apt-get install openssh-client)")
        no_tunnel(config)

    def cluster_child(self, config: RunConfig) -> ClusterChild:
        return ClusterChild("gcp", entrypoint="workers.gcp.cluster:main")

    def discovery(self, run: RunView) -> ChildSpec | list[Host]:
        args = GcpDiscoveryArgs(run.gcp, run.config.discovery_every_s)
        return ChildSpec(name="discovery", role="discovery", entrypoint="workers.gcp.discovery:main", args=args)

    def transport(self, run: RunView, host: Host) -> Transport:
        """ssh as gcloud's dry-run resolved it for this host, multiplexed through the cluster child's directory."""
        ssh, s = host.ssh, run.gcp
        assert ssh is not None, "gcp discovery resolves every host's ssh"
        return SshTransport(
            user=ssh.user,
            port=ssh.port,
            identity_file=ssh.identity_file or None,
            strict_host_key_checking=ssh.strict_host_key_checking or s.strict_host_key_checking,
            known_hosts_file=ssh.known_hosts_file or None,
            connect_timeout_s=s.connect_timeout_s,
            remote_template=run.config.streams.remote_command,
            control_dir=(run.cluster.control_dir if run.cluster else "") or None,
            extra_options=ssh.options,
        )

    def cleanup(self, run: RunView, now: float) -> Cleanup | None:
        """Every slice and instance of the prefix goes, unless `--keep`; also after a stop or timeout."""
        if run.config.keep:
            return None
        s = run.gcp
        budget_s = s.call_timeout_s + s.delete_timeout_s + CLOUD_CLEANUP_EXTRA_S
        spec = ChildSpec(
            name="cleanup:gcp", role="cleanup", entrypoint="workers.gcp.cleanup:main",
            restart=RestartPolicy(mode=RestartMode.NEVER), deadline_at=now + budget_s, args=GcpCleanupArgs(s),
        )  # fmt: skip
        return Cleanup(spec, budget_s)

    def kept(self, cluster_pid: int) -> bool:
        return True  # its resources, which were not deleted

    def keep_hint(self, prefix: str, address: str, pid: int) -> str:
        return (
            f"iris-smoke: --keep: the GCP slices and instances labelled with prefix {prefix} were not deleted;\n"
            f"  a --cluster gcp run with --prefix {prefix} and without --keep deletes them at its end"
        )


BACKEND = GcpBackend()
