"""Names and attributes of the cluster's VMs, the same in the autoscaler, the scheduler and the docs.

- a slice is `<prefix>-<group>-<n>`, n counting up from 0 per group for the cluster's life;
- each host of a slice is a VM named `<slice>-w<i>`, i = its index in the slice
  (`local-tpu-0-w0` .. `local-tpu-0-w3`); a one-host slice has the single VM `<slice>-w0`;
- the controller's VM is `<prefix>-controller`.
A worker's id is its VM's name. Names stay within `^[a-z0-9][a-z0-9._-]{0,62}$`, the
pattern `local-cluster logs` accepts.
"""

import re

from local_cluster.config import ClusterSettings, ScaleGroupConfig
from local_cluster.model import Worker
from local_cluster.states import AcceleratorType

PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
CONTROLLER_CONTAINER = "iris-controller"
WORKER_CONTAINER = "iris-worker"

# Known per host only once the slice exists; the scheduler treats constraints on them as
# satisfiable when it judges whether a group could ever run a job.
HOST_ATTRIBUTES = frozenset({"tpu-name", "tpu-worker-id"})


def controller_vm(prefix: str) -> str:
    return f"{prefix}-controller"


def slice_name(prefix: str, group: str, n: int) -> str:
    return f"{prefix}-{group}-{n}"


def vm_name(slice_id: str, host_index: int) -> str:
    return f"{slice_id}-w{host_index}"


def group_attributes(group: ScaleGroupConfig, settings: ClusterSettings) -> dict[str, str]:
    attributes = {
        "region": group.region or settings.region,
        "preemptible": "true" if group.preemptible else "false",
        "scale-group": group.name,
        "accelerator-type": group.accelerator_type.value,
    }
    if group.accelerator_variant:
        attributes["accelerator-variant"] = group.accelerator_variant
    if group.accelerator_type == AcceleratorType.TPU:
        attributes["tpu-topology"] = group.accelerator_variant
    return attributes


def host_attributes(
    group: ScaleGroupConfig, settings: ClusterSettings, slice_id: str, host_index: int
) -> dict[str, str]:
    return group_attributes(group, settings) | {"tpu-name": slice_id, "tpu-worker-id": str(host_index)}


def device_env(worker: Worker) -> dict[str, str]:
    """What a task sees of its host's accelerator, as on GCP: the TPU runtime's variables, or the visible GPUs."""
    chips = ",".join(str(i) for i in range(worker.device.count))
    if worker.device.kind == AcceleratorType.TPU:
        return {
            "TPU_ACCELERATOR_TYPE": worker.device.variant,
            "TPU_NAME": worker.slice_id,
            "TPU_WORKER_ID": str(worker.host_index),
            "TPU_VISIBLE_CHIPS": chips,
        }
    if worker.device.kind == AcceleratorType.GPU:
        return {"CUDA_VISIBLE_DEVICES": chips}
    return {}
