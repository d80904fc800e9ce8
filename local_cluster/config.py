"""The local cluster's configuration: scale groups and a few cluster-wide timings (TOML).

Every value is checked here, once, through the configs' one TOML layer
(`common/toml_table.py`): a bad one raises ConfigError naming the field the way a user
would find it in the file (`scale_groups[1].max_slices`) and saying what would be accepted.
Unknown keys are errors too: a typo must not silently fall back to a default.
The keys are documented in docs/local-cluster.md.
"""

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.toml_table import Table, parse_toml, read_toml
from local_cluster.states import ACCELERATOR_CHOICES, AcceleratorType

# Group names become part of VM names, which must pass the container-log name pattern.
GROUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}", re.ASCII)


@dataclass(frozen=True)
class FaultConfig:
    boot_failure_probability: float = 0.0
    fail_first_boots: int = 0  # deterministic: the group's first N slices fail to boot
    crash_after_s: float = 0.0  # a READY VM host kills itself after this long; 0 = never


@dataclass(frozen=True)
class ScaleGroupConfig:
    name: str
    accelerator_type: AcceleratorType
    accelerator_variant: str = ""
    hosts_per_slice: int = 1
    chips_per_host: int = 1  # for cpu groups: concurrent tasks per host
    cpu_millicores: int = 4000  # each host's CPU, in thousandths of a core; tasks ask for theirs
    min_slices: int = 0
    max_slices: int = 1
    boot_delay_s: float = 1.0
    scale_up_delay_s: float = 0.0
    idle_scale_down_delay_s: float = 30.0
    region: str = ""  # empty = the cluster's region
    preemptible: bool = False
    fault: FaultConfig = FaultConfig()


@dataclass(frozen=True)
class ClusterSettings:
    region: str = "local"
    heartbeat_interval_s: float = 0.1
    heartbeat_timeout_s: float = 1.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    seed: int = 0  # for the fault injection's random draws
    # Fault injection: ListWorkers answers RESOURCE_EXHAUSTED, as a reply over gRPC's
    # message size does on a cluster with thousands of workers.
    fail_list_workers: bool = False
    # Fault injection for the constraint tests: the scheduler ignores every job's
    # constraints, or child jobs do not inherit their parent's.
    ignore_constraints: bool = False
    drop_child_constraints: bool = False
    # Fault injection for the named_ports and endpoint_registration tests: a task is given no
    # IRIS_PORT_<NAME> for the ports its job asked for; ListEndpoints lists nothing.
    drop_task_ports: bool = False
    hide_endpoints: bool = False
    # Fault injection for cancel_releases_resources: a killed task's CPU stays held on its
    # worker (marin issue #3553), so a job of the same size never fits there again.
    hold_killed_resources: bool = False
    # Fault injection for many_tasks: task N-1 (the N-th) of every job with at least N tasks
    # ends FAILED whatever it did; 0 = off.
    fail_nth_task: int = 0


@dataclass(frozen=True)
class ClusterConfig:
    cluster: ClusterSettings
    scale_groups: tuple[ScaleGroupConfig, ...]

    def group(self, name: str) -> ScaleGroupConfig:
        return next(g for g in self.scale_groups if g.name == name)


def default_config_text() -> str:
    return resources.files("local_cluster").joinpath("default-config.toml").read_text()


def load_config(path: Path | None) -> ClusterConfig:
    if path is None:
        return parse_config(default_config_text(), "default-config.toml")
    return _parse(read_toml(path))


def parse_config(text: str, source: str) -> ClusterConfig:
    return _parse(parse_toml(text, source))


def _parse(raw: dict[str, Any]) -> ClusterConfig:
    root = Table(raw, "")
    settings = _settings(root.table_of("cluster"))
    groups = tuple(_group(g) for g in root.tables("scale_groups"))
    root.done()
    if not groups:
        raise ConfigError("scale_groups: at least one [[scale_groups]] table is required")
    names = [g.name for g in groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"scale_groups[{i}].name: duplicate group name {name!r}; names must be unique")
    if settings.heartbeat_timeout_s <= settings.heartbeat_interval_s:
        interval, timeout = settings.heartbeat_interval_s, settings.heartbeat_timeout_s
        raise ConfigError(f"cluster.heartbeat_timeout_s: must be > heartbeat_interval_s ({interval}), got {timeout}")
    return ClusterConfig(settings, groups)


def _settings(raw: Table) -> ClusterSettings:
    d = ClusterSettings()
    settings = ClusterSettings(
        region=raw.string("region", d.region) or d.region,
        heartbeat_interval_s=raw.number("heartbeat_interval_s", d.heartbeat_interval_s),
        heartbeat_timeout_s=raw.number("heartbeat_timeout_s", d.heartbeat_timeout_s),
        backoff_base_s=raw.number("backoff_base_s", d.backoff_base_s, allow_zero=True),
        backoff_max_s=raw.number("backoff_max_s", d.backoff_max_s, allow_zero=True),
        seed=raw.integer("seed", d.seed, 0),
        fail_list_workers=raw.boolean("fail_list_workers", d.fail_list_workers),
        ignore_constraints=raw.boolean("ignore_constraints", d.ignore_constraints),
        drop_child_constraints=raw.boolean("drop_child_constraints", d.drop_child_constraints),
        drop_task_ports=raw.boolean("drop_task_ports", d.drop_task_ports),
        hide_endpoints=raw.boolean("hide_endpoints", d.hide_endpoints),
        hold_killed_resources=raw.boolean("hold_killed_resources", d.hold_killed_resources),
        fail_nth_task=raw.integer("fail_nth_task", d.fail_nth_task, 0),
    )
    raw.done()
    return settings


def _fault(raw: Table) -> FaultConfig:
    d = FaultConfig()
    fault = FaultConfig(
        boot_failure_probability=raw.fraction("boot_failure_probability", d.boot_failure_probability),
        fail_first_boots=raw.integer("fail_first_boots", d.fail_first_boots, 0),
        crash_after_s=raw.number("crash_after_s", d.crash_after_s, allow_zero=True),
    )
    raw.done()
    return fault


def _group(raw: Table) -> ScaleGroupConfig:
    where = raw.path
    name = raw.string("name", "", GROUP_NAME)
    if not name:
        raise ConfigError(f"{where}.name: must match {GROUP_NAME.pattern} (it is part of VM names), got {name!r}")
    kind = AcceleratorType(raw.string("accelerator_type", "", choices=ACCELERATOR_CHOICES))
    variant = raw.string("accelerator_variant", "")
    if kind != AcceleratorType.CPU and not variant:
        raise ConfigError(f"{where}.accelerator_variant: required for a {kind} group (e.g. v5litepod-16, H100)")
    min_slices = raw.integer("min_slices", 0, 0)
    max_slices = raw.integer("max_slices", max(1, min_slices), 1)
    if max_slices < min_slices:
        raise ConfigError(f"{where}.max_slices: must be >= min_slices ({min_slices}), got {max_slices}")
    d = ScaleGroupConfig(name, kind)
    group = ScaleGroupConfig(
        name=name,
        accelerator_type=kind,
        accelerator_variant=variant,
        hosts_per_slice=raw.integer("hosts_per_slice", d.hosts_per_slice, 1),
        chips_per_host=raw.integer("chips_per_host", d.chips_per_host, 1),
        cpu_millicores=raw.integer("cpu_millicores", d.cpu_millicores, 1),
        min_slices=min_slices,
        max_slices=max_slices,
        boot_delay_s=raw.number("boot_delay_s", d.boot_delay_s, allow_zero=True),
        scale_up_delay_s=raw.number("scale_up_delay_s", d.scale_up_delay_s, allow_zero=True),
        idle_scale_down_delay_s=raw.number("idle_scale_down_delay_s", d.idle_scale_down_delay_s, allow_zero=True),
        region=raw.string("region", d.region),
        preemptible=raw.boolean("preemptible", d.preemptible),
        fault=_fault(raw.table_of("fault")),
    )
    raw.done()
    return group
