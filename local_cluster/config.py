"""The local cluster's configuration: scale groups and a few cluster-wide timings (TOML).

Every value is checked here, once, and a bad one raises ConfigError naming the field
the way a user would find it in the file (`scale_groups[1].max_slices`) and saying what
would be accepted. Unknown keys are errors too: a typo must not silently fall back to a
default. The keys are documented in docs/local-cluster.md.
"""

import re
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from local_cluster.states import AcceleratorType

# Group names become part of VM names, which must pass the container-log name pattern.
GROUP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


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
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str) -> ClusterConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    _no_unknown_keys(raw, {"cluster", "scale_groups"}, "")
    settings = _settings(_table(raw.get("cluster", {}), "cluster"))
    groups_raw = raw.get("scale_groups")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise ConfigError("scale_groups: at least one [[scale_groups]] table is required")
    groups = tuple(_group(_table(g, f"scale_groups[{i}]"), f"scale_groups[{i}]") for i, g in enumerate(groups_raw))
    names = [g.name for g in groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"scale_groups[{i}].name: duplicate group name {name!r}; names must be unique")
    if settings.heartbeat_timeout_s <= settings.heartbeat_interval_s:
        interval, timeout = settings.heartbeat_interval_s, settings.heartbeat_timeout_s
        raise ConfigError(f"cluster.heartbeat_timeout_s: must be > heartbeat_interval_s ({interval}), got {timeout}")
    return ClusterConfig(settings, groups)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table, got {type(value).__name__}")
    return value


def _no_unknown_keys(raw: dict[str, Any], known: set[str], where: str) -> None:
    for key in raw:
        if key not in known:
            field = f"{where}.{key}" if where else key
            raise ConfigError(f"{field}: unknown key; known keys: {', '.join(sorted(known))}")


def _number(raw: dict[str, Any], key: str, where: str, default: float, low: float, high: float | None = None) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}.{key}: must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{where}.{key}: must be {bound}, got {value}")
    return float(value)


def _int(raw: dict[str, Any], key: str, where: str, default: int, low: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}: must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{where}.{key}: must be >= {low}, got {value}")
    return value


def _str(raw: dict[str, Any], key: str, where: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string, got {value!r}")
    return value


def _settings(raw: dict[str, Any]) -> ClusterSettings:
    _no_unknown_keys(raw, {f.name for f in fields(ClusterSettings)}, "cluster")
    d = ClusterSettings()
    return ClusterSettings(
        region=_str(raw, "region", "cluster", d.region) or d.region,
        heartbeat_interval_s=_number(raw, "heartbeat_interval_s", "cluster", d.heartbeat_interval_s, 0.01),
        heartbeat_timeout_s=_number(raw, "heartbeat_timeout_s", "cluster", d.heartbeat_timeout_s, 0.05),
        backoff_base_s=_number(raw, "backoff_base_s", "cluster", d.backoff_base_s, 0.0),
        backoff_max_s=_number(raw, "backoff_max_s", "cluster", d.backoff_max_s, 0.0),
        seed=_int(raw, "seed", "cluster", d.seed, 0),
        fail_list_workers=_bool(raw, "fail_list_workers", "cluster", d.fail_list_workers),
        ignore_constraints=_bool(raw, "ignore_constraints", "cluster", d.ignore_constraints),
        drop_child_constraints=_bool(raw, "drop_child_constraints", "cluster", d.drop_child_constraints),
    )


def _bool(raw: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be true or false, got {value!r}")
    return value


def _fault(raw: dict[str, Any], where: str) -> FaultConfig:
    _no_unknown_keys(raw, {f.name for f in fields(FaultConfig)}, where)
    return FaultConfig(
        boot_failure_probability=_number(raw, "boot_failure_probability", where, 0.0, 0.0, 1.0),
        fail_first_boots=_int(raw, "fail_first_boots", where, 0, 0),
        crash_after_s=_number(raw, "crash_after_s", where, 0.0, 0.0),
    )


def _group(raw: dict[str, Any], where: str) -> ScaleGroupConfig:
    _no_unknown_keys(raw, {f.name for f in fields(ScaleGroupConfig)}, where)
    name = _str(raw, "name", where, "")
    if not GROUP_NAME.match(name):
        raise ConfigError(f"{where}.name: must match {GROUP_NAME.pattern} (it is part of VM names), got {name!r}")
    kind_text = _str(raw, "accelerator_type", where, "")
    try:
        kind = AcceleratorType(kind_text)
    except ValueError:
        raise ConfigError(f"{where}.accelerator_type: must be one of cpu, gpu, tpu; got {kind_text!r}") from None
    variant = _str(raw, "accelerator_variant", where, "")
    if kind != AcceleratorType.CPU and not variant:
        raise ConfigError(f"{where}.accelerator_variant: required for a {kind} group (e.g. v5litepod-16, H100)")
    min_slices = _int(raw, "min_slices", where, 0, 0)
    max_slices = _int(raw, "max_slices", where, max(1, min_slices), 1)
    if max_slices < min_slices:
        raise ConfigError(f"{where}.max_slices: must be >= min_slices ({min_slices}), got {max_slices}")
    preemptible = raw.get("preemptible", False)
    if not isinstance(preemptible, bool):
        raise ConfigError(f"{where}.preemptible: must be true or false, got {preemptible!r}")
    d = ScaleGroupConfig(name, kind)
    return ScaleGroupConfig(
        name=name,
        accelerator_type=kind,
        accelerator_variant=variant,
        hosts_per_slice=_int(raw, "hosts_per_slice", where, d.hosts_per_slice, 1),
        chips_per_host=_int(raw, "chips_per_host", where, d.chips_per_host, 1),
        min_slices=min_slices,
        max_slices=max_slices,
        boot_delay_s=_number(raw, "boot_delay_s", where, d.boot_delay_s, 0.0),
        scale_up_delay_s=_number(raw, "scale_up_delay_s", where, d.scale_up_delay_s, 0.0),
        idle_scale_down_delay_s=_number(raw, "idle_scale_down_delay_s", where, d.idle_scale_down_delay_s, 0.0),
        region=_str(raw, "region", where, ""),
        preemptible=preemptible,
        fault=_fault(_table(raw.get("fault", {}), f"{where}.fault"), f"{where}.fault"),
    )
