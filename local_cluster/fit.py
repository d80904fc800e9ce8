"""Whether a job's tasks fit a worker, and whether a scale group could ever run a job.

Shared by the scheduler (placing on live workers) and the autoscaler (routing demand to
groups), so both judge by the same rules.
"""

from local_cluster.config import ClusterConfig, ClusterSettings, ScaleGroupConfig
from local_cluster.model import Device, JobSpec, Worker
from local_cluster.naming import HOST_ATTRIBUTES, group_attributes
from local_cluster.states import AcceleratorType

SLICE_KEY = "tpu-name"


def device_matches(device: Device, worker: Worker) -> bool:
    if device.kind != worker.device.kind:
        return False
    if device.variant and device.variant != worker.device.variant:
        return False
    return worker.units_for(device) <= worker.device.count


def worker_eligible(spec: JobSpec, worker: Worker) -> bool:
    """Could run one of the job's tasks if it had room: up, right device, constraints met."""
    return (
        worker.healthy
        and worker.schedulable
        and device_matches(spec.device, worker)
        and all(c.matches(worker.attributes) for c in spec.constraints)
    )


def tasks_per_slice(spec: JobSpec, group: ScaleGroupConfig) -> int:
    if spec.group_by:
        return spec.replicas
    if group.accelerator_type == AcceleratorType.CPU:
        per_host = group.chips_per_host
    else:
        per_host = group.chips_per_host // (spec.device.count or group.chips_per_host)
    return max(1, per_host) * group.hosts_per_slice


def group_cannot_run(spec: JobSpec, group: ScaleGroupConfig, settings: ClusterSettings) -> str | None:
    """Why no slice of `group` could ever run the job, or None if one could."""
    device = spec.device
    if device.kind != group.accelerator_type:
        return f"offers {group.accelerator_type}, job needs {device.kind}"
    if device.variant and device.variant != group.accelerator_variant:
        return f"offers {group.accelerator_variant}, job needs {device.variant}"
    if device.kind != AcceleratorType.CPU and device.count > group.chips_per_host:
        return f"{group.chips_per_host} chips per host, a task needs {device.count}"
    if spec.group_by == SLICE_KEY and spec.replicas > group.hosts_per_slice:
        return f"{group.hosts_per_slice} hosts per slice, the coscheduled job needs {spec.replicas}"
    if spec.group_by and spec.replicas > group.hosts_per_slice * group.max_slices:
        hosts = group.hosts_per_slice * group.max_slices
        return f"at most {hosts} hosts, the coscheduled job needs {spec.replicas}"
    attributes = group_attributes(group, settings)
    for constraint in spec.constraints:
        if constraint.key not in HOST_ATTRIBUTES and not constraint.matches(attributes):
            return f"constraint {constraint.describe()} not met"
    return None


def candidate_groups(spec: JobSpec, config: ClusterConfig) -> list[ScaleGroupConfig]:
    """Groups a new slice of which could run the job. A task asking more CPU than a group's hosts
    have is not routed there (no scale-up for it); like Iris, the job is not refused for that at
    launch but waits, its pending reason naming the CPU."""
    return [
        g for g in config.scale_groups
        if group_cannot_run(spec, g, config.cluster) is None and spec.cpu_millicores <= g.cpu_millicores
    ]  # fmt: skip


def infeasible_reason(spec: JobSpec, config: ClusterConfig) -> str | None:
    """None if some group could run the job; else one reason per group, for the user."""
    reasons = []
    for group in config.scale_groups:
        why = group_cannot_run(spec, group, config.cluster)
        if why is None:
            return None
        reasons.append(f"{group.name}: {why}")
    return f"no scale group can run {spec.device.describe()} x{spec.replicas} ({'; '.join(reasons)})"
