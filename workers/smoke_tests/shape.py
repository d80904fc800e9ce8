"""What the cluster offers, as the tests see it: each group's device, its slices' size, its workers' attributes.

The live workers come first. ListWorkers names each worker's slice (`tpu-name`), its group
(`scale-group`), its device (`device-type`/`device-variant`, `accelerator-*` on the
embedded cluster) and, on Iris, the slice's host count (`tpu-vm-count`) and the chips the
host was given; a group's slice is sized from them. The autoscaler's status is the
fallback: it describes groups that have no worker yet (a TPU slice the tests will scale
up), and its figures are used where the workers say nothing. A backend without an
autoscaler answers an empty status: its groups are then the workers' alone.
Config overrides win over what is discovered.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from workers.controller.model import AutoscalerStatus, GroupStatus, Worker

# Per host, not per group: never a property of the capacity a test asks for.
_HOST_KEYS = frozenset({"tpu-name", "tpu-worker-id"})
DEFAULT_REGION_ATTRIBUTE = "region"
# Iris's attribute names, then the embedded cluster's.
_DEVICE_KEYS = ("device-type", "accelerator-type")
_VARIANT_KEYS = ("device-variant", "accelerator-variant")
SLICE_HOSTS_KEY = "tpu-vm-count"


# A scale group as the tests see it: its status, completed from its live workers.
Offer = GroupStatus


@dataclass(frozen=True)
class SliceShape:
    """One slice as its workers describe it."""

    name: str  # tpu-name
    group: str  # the workers' group: scale-group, else device and variant
    device: str  # "" when the workers do not say
    variant: str
    hosts: int  # tpu-vm-count, else the workers seen with this tpu-name
    hosts_declared: bool  # from tpu-vm-count (a count of registered workers can be short)
    chips_per_host: int  # 0 = not said


@dataclass(frozen=True)
class Shape:
    offers: tuple[Offer, ...]

    def values(self, key: str, device: str | None = None) -> list[str]:
        """The distinct values of attribute `key` over the groups (of `device`, if given)."""
        found = {o.attributes[key] for o in self.offers if key in o.attributes and device in (None, o.device)}
        return sorted(found)

    def accelerators(self) -> list[Offer]:
        """One group per accelerator kind the cluster offers (the first of each kind)."""
        firsts: dict[str, Offer] = {}
        for o in self.offers:
            if o.device != "cpu":
                firsts.setdefault(o.device, o)
        return list(firsts.values())


def _first(attributes: Mapping[str, str], keys: Sequence[str]) -> str:
    return next((attributes[k] for k in keys if attributes.get(k)), "")


def slices_of(workers: Sequence[Worker]) -> list[SliceShape]:
    """The slices the workers belong to (by `tpu-name`), in the order their first worker is listed."""
    members: dict[str, list[Worker]] = defaultdict(list)
    for w in workers:
        if w.slice_name:
            members[w.slice_name].append(w)
    slices = []
    for name, hosts in members.items():
        attributes = hosts[0].attributes
        declared = attributes.get(SLICE_HOSTS_KEY, "")
        slices.append(
            SliceShape(
                name=name,
                group=_group_key(hosts[0]),
                device=_first(attributes, _DEVICE_KEYS),
                variant=_first(attributes, _VARIANT_KEYS),
                hosts=int(declared) if declared.isdigit() and int(declared) > 0 else len(hosts),
                hosts_declared=declared.isdigit() and int(declared) > 0,
                chips_per_host=max(w.device_count for w in hosts),
            )
        )
    return slices


def _group_key(w: Worker) -> str:
    """The group a worker belongs to: its scale-group, else its device and variant."""
    group = w.attributes.get("scale-group", "")
    if group:
        return group
    device = _first(w.attributes, _DEVICE_KEYS) or "cpu"
    variant = _first(w.attributes, _VARIANT_KEYS)
    return f"{device}:{variant}" if variant else device


def _sized(group: Offer, first: SliceShape | None, attributes: dict[str, str]) -> Offer:
    """The autoscaler's view of a group, with its first live slice's figures where the workers give them.

    A host count the workers only imply by how many have registered yields to the autoscaler's
    (a slice's workers register one by one); a declared `tpu-vm-count` does not.
    """
    sized = replace(group, attributes=dict(group.attributes) | attributes)
    if first is None:
        return sized
    hosts = first.hosts if first.hosts_declared else max(first.hosts, group.hosts_per_slice)
    return replace(
        sized,
        device=first.device or group.device,
        variant=first.variant or group.variant,
        hosts_per_slice=hosts,
        chips_per_host=first.chips_per_host or group.chips_per_host,
    )


def _from_workers(name: str, members: Sequence[Worker], first: SliceShape | None, attrs: dict[str, str]) -> Offer:
    """A group the autoscaler does not report, as its workers describe it."""
    return Offer(
        name=name,
        device=(first.device if first else "") or _first(attrs, _DEVICE_KEYS) or "cpu",
        variant=(first.variant if first else "") or _first(attrs, _VARIANT_KEYS),
        hosts_per_slice=first.hosts if first else 1,
        chips_per_host=(first.chips_per_host if first else 0) or max(w.device_count for w in members),
        attributes=attrs,
    )


def shape_of(status: AutoscalerStatus, workers: Sequence[Worker]) -> Shape:
    members: dict[str, list[Worker]] = defaultdict(list)
    attributes: dict[str, dict[str, str]] = defaultdict(dict)
    for w in workers:
        key = _group_key(w)
        members[key].append(w)
        attributes[key].update((k, v) for k, v in w.attributes.items() if k not in _HOST_KEYS)
    first_slice: dict[str, SliceShape] = {}
    for s in slices_of(workers):
        first_slice.setdefault(s.group, s)
    listed = {g.name for g in status.groups}
    offers = [_sized(g, first_slice.get(g.name), attributes.get(g.name, {})) for g in status.groups]
    offers += [
        _from_workers(name, group, first_slice.get(name), attributes[name])
        for name, group in members.items()
        if name not in listed
    ]
    return Shape(tuple(offers))


def unknown_groups(status: AutoscalerStatus, workers: Sequence[Worker]) -> list[str]:
    """Groups with slices whose attributes we cannot know yet: no worker registered, none reported."""
    named = {w.attributes.get("scale-group", "") for w in workers}
    return [g.name for g in status.groups if g.slices and not g.attributes and g.name not in named]
