"""What the cluster offers, as the tests see it: each scale group's device and worker attributes.

Read from the autoscaler's status (groups, their configs and, on the embedded cluster, the
attributes every worker of a group carries) and from ListWorkers (a live worker's
attributes name its group in `scale-group`), so a group with no slice yet is still known
wherever the controller describes it. Config overrides win over what is discovered.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from workers.controller.model import AutoscalerStatus, GroupStatus, Worker

# Per host, not per group: never a property of the capacity a test asks for.
_HOST_KEYS = frozenset({"tpu-name", "tpu-worker-id"})
DEFAULT_REGION_ATTRIBUTE = "region"


# A scale group as the tests see it: its status, attributes completed from its live workers.
Offer = GroupStatus


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


def shape_of(status: AutoscalerStatus, workers: Sequence[Worker]) -> Shape:
    seen: dict[str, dict[str, str]] = {}
    for w in workers:
        group = w.attributes.get("scale-group", "")
        if group:
            seen.setdefault(group, {}).update((k, v) for k, v in w.attributes.items() if k not in _HOST_KEYS)
    return Shape(tuple(replace(g, attributes=dict(g.attributes) | seen.get(g.name, {})) for g in status.groups))


def unknown_groups(status: AutoscalerStatus, workers: Sequence[Worker]) -> list[str]:
    """Groups with slices whose attributes we cannot know yet: no worker registered, none reported."""
    named = {w.attributes.get("scale-group", "") for w in workers}
    return [g.name for g in status.groups if g.slices and not g.attributes and g.name not in named]
