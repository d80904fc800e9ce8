"""The `[gcp]` settings (built and checked by `supervisor.config`) and the names they imply.

Labels follow Iris: slices and worker VMs carry `<prefix>-managed=true`; the controller VM
is named `iris-controller-<prefix>` (newer clusters also label it
`iris-<prefix>-controller=true`). The prefix is matched exactly, server side, in the
`--filter`: no client-side name filter, so a custom prefix finds everything.
"""

from dataclasses import dataclass, replace

CONTROLLER_PORT = 10000
CALL_TIMEOUT_S = 60.0
# A TPU slice's deletion takes minutes on GCP; a call past this is reported, never waited on.
DELETE_TIMEOUT_S = 600.0
SSH_CONNECT_TIMEOUT_S = 10
# A multiplexed ssh master outlives its last stream by this much: long enough for a
# reconnecting stream to reuse it, short enough that a master whose run was SIGKILLed
# goes by itself.
CONTROL_PERSIST_S = 60
# The cluster's own CLI (`iris cluster start`, a Terraform wrapper), as argv templates.
COMMAND_FIELDS = frozenset({"prefix", "project", "zone"})
COMMAND_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class GcpSettings:
    project: str = ""
    zones: tuple[str, ...] = ()
    label_prefix: str = ""  # "": the run's prefix
    controller_name: str = ""  # "": iris-controller-<prefix>
    controller_port: int = CONTROLLER_PORT
    controller_container: str = "iris-controller"
    worker_container: str = "iris-worker"
    gcloud: str = "gcloud"
    call_timeout_s: float = CALL_TIMEOUT_S
    delete_timeout_s: float = DELETE_TIMEOUT_S
    strict_host_key_checking: str = "yes"  # what we run when gcloud's dry-run does not say
    connect_timeout_s: int = SSH_CONNECT_TIMEOUT_S
    # Optional: run before discovery / before the labelled deletion. Empty: the cluster
    # is already up, and only its labelled resources are deleted at the end.
    start_command: tuple[str, ...] = ()
    stop_command: tuple[str, ...] = ()
    command_timeout_s: float = COMMAND_TIMEOUT_S

    def with_prefix(self, prefix: str) -> "GcpSettings":
        """The run's prefix where no label prefix is configured."""
        return self if self.label_prefix else replace(self, label_prefix=prefix)

    def command(self, template: tuple[str, ...]) -> list[str]:
        """A start or stop command's argv, each `{prefix}`, `{project}` and `{zone}` filled in."""
        fields = {"prefix": self.label_prefix, "project": self.project, "zone": self.zones[0] if self.zones else ""}
        return [part.format(**fields) for part in template]

    @property
    def managed_label(self) -> str:
        return f"{self.label_prefix}-managed"

    @property
    def controller_label(self) -> str:
        return f"iris-{self.label_prefix}-controller"

    @property
    def controller_vm(self) -> str:
        return self.controller_name or f"iris-controller-{self.label_prefix}"

    def instance_filter(self) -> str:
        return f"labels.{self.managed_label}=true OR labels.{self.controller_label}=true OR name~^{self.controller_vm}$"

    def tpu_filter(self) -> str:
        return f"labels.{self.managed_label}=true"
