"""What exists on GCP under the prefix's labels: TPU slices, instances, the controller.

`gcloud compute tpus tpu-vm list --zone=Z --filter=labels.<prefix>-managed=true --format=json`
per zone (the TPU API lists one location at a time), and one
`gcloud compute instances list --zones=Z1,Z2 --filter=… --format=json`. The filter is the
whole selection: nothing is dropped by name on our side, so a custom prefix finds all.

A slice's host count is the number of its network endpoints (one per TPU VM host); a
slice still being created may not list them yet, so then it comes from its accelerator
type: `v5litepod-N`/`v6e-N` count chips (4 per host above 8 chips, else one host),
`v2/v3/v4/v5p-N` count TensorCores (8 per host).

Names and zones reach a `gcloud … delete NAME --zone=Z` argv, so each is validated whole
before anything is taken from it: a TPU's `name` is `projects/P/locations/Z/nodes/N` (Z the
zone listed) or a bare name, an instance's `zone` is its zone URL or a bare zone, one of
the configured zones. Cutting at the last `/` first made `nodes/../../etc` a delete of
`etc`. A slice of more than MAX_HOSTS_PER_VM hosts is not streamed (`slice_oversized`),
but it is listed, so that cleanup deletes it.
"""

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

from workers.gcp.gcloud import Gcloud, GcloudFailed
from workers.gcp.settings import GcpSettings
from workers.hosts import MAX_HOSTS_PER_VM, HostileNameError, Refusal, validate_name
from workers.rejected import RejectionLog, Rejections

_ACCELERATOR = re.compile(r"(v[0-9]+[a-z]*|v5litepod)-([0-9]+)", re.ASCII)
# Segments are anything but "/"; each is then checked against its own pattern.
_NODE_PATH = re.compile(r"projects/([^/]+)/locations/([^/]+)/nodes/([^/]+)", re.ASCII)
_ZONE_URL = re.compile(
    r"(?:https://(?:www|compute)\.googleapis\.com/compute/(?:v1|beta|alpha)/)?projects/([^/]+)/zones/([^/]+)", re.ASCII
)
# Project ids, project numbers and domain-scoped ids (`example.com:proj`).
_PROJECT = re.compile(r"[a-z0-9][a-z0-9.:-]{0,62}", re.ASCII)
_CHIP_COUNTED = frozenset({"v5litepod", "v5e", "v6e"})


class ResourceKind(enum.StrEnum):
    TPU = "tpu"
    INSTANCE = "instance"


@dataclass(frozen=True)
class Resource:
    kind: ResourceKind
    name: str
    zone: str
    hosts: int = 1
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def delete_words(self) -> list[str]:
        group = ["compute", "tpus", "tpu-vm"] if self.kind is ResourceKind.TPU else ["compute", "instances"]
        return [*group, "delete", self.name, f"--zone={self.zone}", "--quiet"]


@dataclass(frozen=True)
class Inventory:
    slices: tuple[Resource, ...]
    instances: tuple[Resource, ...]
    settings: GcpSettings
    # Slices of more than MAX_HOSTS_PER_VM hosts: never streamed, still deleted.
    oversized: tuple[Resource, ...] = ()

    def is_controller(self, resource: Resource) -> bool:
        s = self.settings
        return resource.kind is ResourceKind.INSTANCE and (
            resource.name == s.controller_vm or resource.labels.get(s.controller_label) == "true"
        )

    def controllers(self) -> list[Resource]:
        return [r for r in self.instances if self.is_controller(r)]

    def worker_vms(self) -> list[Resource]:
        return [r for r in self.instances if not self.is_controller(r)]

    def everything(self) -> list[Resource]:
        return [*self.slices, *self.oversized, *self.instances]


class TooManyControllers(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"more than one controller: {', '.join(names)}")
        self.names = names


def only_controller(inventory: Inventory) -> Resource | None:
    """The controller VM, None if there is none yet; two or more is a leak we refuse to guess past."""
    found = inventory.controllers()
    if len(found) > 1:
        raise TooManyControllers(sorted(f"{r.name} ({r.zone})" for r in found))
    return found[0] if found else None


def list_inventory(gcloud: Gcloud, settings: GcpSettings, log: Any) -> Inventory:
    """Raises GcloudFailed when any listing fails: a partial inventory would hide hosts."""
    argvs = [
        gcloud.argv("compute", "tpus", "tpu-vm", "list", f"--zone={zone}", f"--filter={settings.tpu_filter()}",
                    "--format=json")
        for zone in settings.zones
    ]  # fmt: skip
    argvs.append(
        gcloud.argv("compute", "instances", "list", f"--zones={','.join(settings.zones)}",
                    f"--filter={settings.instance_filter()}", "--format=json")
    )  # fmt: skip
    results = gcloud.run_all(argvs, settings.call_timeout_s)
    for result in results:
        if not result.ok:
            raise GcloudFailed(result, "listing")
    rejections = Rejections()  # said once for the whole inventory, never once per name
    zoned = zip(settings.zones, results, strict=False)
    listed = [_tpu(item, zone, rejections) for zone, r in zoned for item in _items(r)]
    slices = [r for r in listed if r is not None]
    instances = [r for r in (_instance(item, settings, rejections) for item in _items(results[-1])) if r is not None]
    if rejections.count:
        RejectionLog(log).listed(rejections)
    oversized = [r for r in slices if r.hosts > MAX_HOSTS_PER_VM]
    for r in oversized:
        log.warning("slice_oversized", vm=r.name, zone=r.zone, hosts=r.hosts, max_hosts=MAX_HOSTS_PER_VM)
    fit = tuple(r for r in slices if r.hosts <= MAX_HOSTS_PER_VM)
    return Inventory(fit, tuple(instances), settings, tuple(oversized))


def _items(result: Any) -> list[dict[str, Any]]:
    try:
        items = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise GcloudFailed(result, "listing is not JSON") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise GcloudFailed(result, "listing is not a JSON list of objects")
    return items


def tpu_name(value: object, zone: str) -> str:
    """A TPU's name from its whole `name` field: `projects/P/locations/<zone>/nodes/N` or `N`."""
    if not isinstance(value, str) or "/" not in value:
        return validate_name("tpu name", value)
    match = _NODE_PATH.fullmatch(value)
    if match is None or _PROJECT.fullmatch(match.group(1)) is None:
        raise HostileNameError("tpu name", value, Refusal.NOT_A_RESOURCE_PATH)
    if match.group(2) != zone:
        raise HostileNameError("tpu name", value, Refusal.ZONE_NOT_LISTED)
    return validate_name("tpu name", match.group(3))


def instance_zone(value: object, zones: tuple[str, ...]) -> str:
    """An instance's zone from its whole `zone` field (its URL, or a bare zone): one of `zones`."""
    zone = value
    if isinstance(value, str) and "/" in value:
        match = _ZONE_URL.fullmatch(value)
        if match is None or _PROJECT.fullmatch(match.group(1)) is None:
            raise HostileNameError("zone", value, Refusal.NOT_A_RESOURCE_PATH)
        zone = match.group(2)
    validate_name("zone", zone)
    if zone not in zones:
        raise HostileNameError("zone", value, Refusal.ZONE_NOT_LISTED)
    return str(zone)


def _labels(item: dict[str, Any]) -> dict[str, str]:
    labels = item.get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _tpu(item: dict[str, Any], zone: str, rejections: Rejections) -> Resource | None:
    try:
        name = tpu_name(item.get("name"), validate_name("zone", zone))
        return Resource(ResourceKind.TPU, name, zone, _slice_hosts(item), _labels(item))
    except HostileNameError as exc:
        rejections.refuse(exc)
        return None


def _instance(item: dict[str, Any], settings: GcpSettings, rejections: Rejections) -> Resource | None:
    try:
        name = validate_name("instance name", item.get("name"))
        zone = instance_zone(item.get("zone"), settings.zones)
        return Resource(ResourceKind.INSTANCE, name, zone, 1, _labels(item))
    except HostileNameError as exc:
        rejections.refuse(exc)
        return None


def _slice_hosts(item: dict[str, Any]) -> int:
    """Its host count: at least one; above MAX_HOSTS_PER_VM it is kept, for cleanup."""
    endpoints = item.get("networkEndpoints")
    if isinstance(endpoints, list) and endpoints:
        return len(endpoints)
    return hosts_of_type(str(item.get("acceleratorType", "")))


def hosts_of_type(accelerator_type: str) -> int:
    match = _ACCELERATOR.fullmatch(accelerator_type)
    if match is None:
        return 1
    family, count = match.group(1), int(match.group(2))
    if family in _CHIP_COUNTED:
        return 1 if count <= 8 else count // 4
    return max(1, count // 8)
