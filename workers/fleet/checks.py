"""The fleet checks' judgements, from the controller's own replies: plain functions, no call.

Each returns a `Finding`: its problems (each naming the object: slice, worker, group) and
warnings, and what it measured (`details`, into results.json). The controller's own reason text
(the autoscaler's slice state, a group's availability reason, a failed scale-up's reason) is
quoted in the problem, so a failure says where to look and what the cluster said.
"""

import enum
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from common.jsonshape import JsonObject
from common.outcome import Outcome
from workers.child_args import FleetSettings
from workers.controller.model import AutoscalerStatus, GroupStatus, ProcessStatus, SliceStatus, UserBand, Worker
from workers.messages import WorkerFinding

# Every worker carries these whatever its group declares: the group it belongs to, and its
# capacity type (Iris's own smoke suite checks `preemptible` on every worker).
CARRIED = ("scale-group", "preemptible")
MAX_LISTED = 8  # problems quoted in one check's error; the count says how many more


@dataclass(frozen=True)
class Finding:
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    details: JsonObject = field(default_factory=dict)
    skipped: str = ""  # set: the check could not be made here, and why
    workers: tuple[WorkerFinding, ...] = ()  # the problems again, per worker (and per missing slice host)

    @property
    def outcome(self) -> Outcome:
        if self.skipped:
            return Outcome.SKIPPED
        return Outcome.FAILED if self.problems else Outcome.PASSED

    @property
    def error(self) -> str:
        """The failures; on a pass, its warnings (`warning: ...`); the reason of a skip."""
        if self.skipped:
            return self.skipped
        if self.problems:
            return _listed(self.problems)
        return "warning: " + _listed(self.warnings) if self.warnings else ""


def _listed(items: Sequence[str]) -> str:
    more = len(items) - MAX_LISTED
    return "; ".join(items[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


# -- slices_complete ----------------------------------------------------------------------


def slices_complete(workers: Sequence[Worker], status: AutoscalerStatus) -> Finding:
    """Every slice (`tpu-name`) lists its `tpu-vm-count` workers (else its group's hosts per slice),
    host indices unique and complete; a slice short of a worker names the slice and the index."""
    by_slice: dict[str, list[Worker]] = defaultdict(list)
    for w in workers:
        if w.slice_name:
            by_slice[w.slice_name].append(w)
    hosts = {g.name: g.hosts_per_slice for g in status.groups}
    slices = {s.slice_id: s for g in status.groups for s in g.slices}
    problems: list[str] = []
    per_worker: list[WorkerFinding] = []
    for name, members in sorted(by_slice.items()):
        problems += _slice_problems(name, members, hosts, slices.get(name), per_worker)
    if not by_slice:
        return Finding(skipped=f"no slice to check: none of the {len(workers)} workers listed names one (tpu-name)")
    return Finding(tuple(problems), details={"slices": len(by_slice), "workers": len(workers)},
                   workers=tuple(per_worker))  # fmt: skip


def _expected_hosts(members: Sequence[Worker], hosts: Mapping[str, int]) -> tuple[int | None, str]:
    """The slice's host count, and where it came from (its workers' `tpu-vm-count`, else its group)."""
    counts = {w.attributes["tpu-vm-count"] for w in members if w.attributes.get("tpu-vm-count", "").isdigit()}
    if len(counts) == 1:
        return int(counts.pop()), "tpu-vm-count"
    if len(counts) > 1:
        return None, f"its workers disagree on tpu-vm-count: {sorted(counts)}"
    groups = {w.attributes.get("scale-group", "") for w in members}
    group = groups.pop() if len(groups) == 1 else ""
    if group in hosts:
        return hosts[group], f"group {group}'s hosts per slice"
    return None, "no tpu-vm-count and no group says how many hosts it has"


def _slice_problems(
    name: str, members: Sequence[Worker], hosts: Mapping[str, int], seen: SliceStatus | None,
    per_worker: list[WorkerFinding],
) -> list[str]:  # fmt: skip
    """The slice's problems; each also added to `per_worker` for the worker (or missing host) it is about."""
    expected, source = _expected_hosts(members, hosts)
    if expected is None:
        per_worker += [WorkerFinding(w.worker_id, source, name, w.slice_host) for w in members]
        return [f"slice {name}: {source}"]
    unindexed = [w for w in members if w.slice_host is None]
    per_worker += [WorkerFinding(w.worker_id, "no host index (tpu-worker-id)", name) for w in unindexed]
    problems = [f"slice {name}: worker {w.worker_id} has no host index (tpu-worker-id)" for w in unindexed]
    indices = [w.slice_host for w in members if w.slice_host is not None]
    twice = sorted({i for i in indices if indices.count(i) > 1})
    if twice:
        holders = [w for w in members if w.slice_host in twice]
        per_worker += [WorkerFinding(w.worker_id, "host index listed twice", name, w.slice_host) for w in holders]
        problems.append(f"slice {name}: host index {twice} listed twice ({', '.join(w.worker_id for w in holders)})")
    beyond = sorted({i for i in indices if i >= expected})
    if beyond:
        per_worker += [WorkerFinding(w.worker_id, f"host index beyond its slice's {expected} hosts ({source})", name,
                                     w.slice_host) for w in members if w.slice_host in beyond]  # fmt: skip
        problems.append(f"slice {name}: host index {beyond} beyond its {expected} hosts ({source})")
    missing = sorted(set(range(expected)) - set(indices))
    if missing:
        listed = {w.worker_id for w in members}
        said = f"; the autoscaler says: {_slice_said(seen, listed)}" if seen is not None else ""
        per_worker += [WorkerFinding("", f"no worker listed for this host ({source}){said}", name, i) for i in missing]
        problems.append(f"slice {name}: {len(set(indices))} of {expected} workers listed ({source}), "
                        f"host {', '.join(map(str, missing))} missing{said}")  # fmt: skip
    return problems


def _slice_said(seen: SliceStatus, listed: set[str]) -> str:
    """The slice's state and its VMs whose worker is not among those listed, as the autoscaler reports them."""
    unlisted = [v for v in seen.vms if not v.worker_id or v.worker_id not in listed]
    vms = ", ".join(f"{v.vm_id} {v.state}" + (f" (worker {v.worker_id})" if v.worker_id else " (no worker)")
                    for v in unlisted)  # fmt: skip
    return f"slice {seen.state or 'state not given'}" + (f", VMs without a listed worker: {vms}" if vms else "")


# -- worker_attributes --------------------------------------------------------------------


def worker_attributes(workers: Sequence[Worker], status: AutoscalerStatus) -> Finding:
    """Every worker carries what its own group declares (device type, variant, region...), a
    capacity type (`preemptible`) its group's workers agree on, and its group's chips per host."""
    if not workers:
        return Finding(skipped="no worker listed to check")
    groups = {g.name: g for g in status.groups}
    problems: list[str] = []
    per_worker: list[WorkerFinding] = []
    capacity: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for w in workers:
        own = _worker_problems(w, groups)
        problems += [f"worker {w.worker_id}{where}: {said}" for where, said in own]
        per_worker += [WorkerFinding(w.worker_id, said, w.slice_name, w.slice_host) for _, said in own]
        group = groups.get(w.scale_group)
        if group is not None and "preemptible" in w.attributes:
            capacity[group.name][w.attributes["preemptible"]].append(w.worker_id)
    for group_name, by_value in sorted(capacity.items()):
        if len(by_value) > 1:
            split = "; ".join(f"preemptible={v}: {', '.join(ids[:3])}" for v, ids in sorted(by_value.items()))
            problems.append(f"group {group_name}: its workers disagree on their capacity type ({split})")
    return Finding(tuple(problems), details={"workers": len(workers), "groups": len(groups)},
                   workers=tuple(per_worker))  # fmt: skip


def _worker_problems(w: Worker, groups: Mapping[str, GroupStatus]) -> list[tuple[str, str]]:
    """One worker's problems, each as (` (group G)` or "", what is wrong)."""
    missing = [k for k in CARRIED if k not in w.attributes]
    problems = [("", f"carries no {' and no '.join(missing)} attribute")] if missing else []
    group = groups.get(w.scale_group)
    if group is None:
        if "scale-group" in w.attributes:
            problems.append(("", f"its group {w.scale_group} is not in the autoscaler's status"))
        return problems
    where = f" (group {group.name})"
    for key, value in sorted(group.declares.items()):
        seen = w.attributes.get(key, "<absent>")
        if seen != value:
            problems.append((where, f"{key}={seen}, its group declares {value}"))
    if group.chips_per_host and w.device_count and w.device_count != group.chips_per_host:
        problems.append((where, f"{w.device_count} devices, its group's {group.variant} has {group.chips_per_host} "
                                "per host"))  # fmt: skip
    return problems


# -- controller_vitals --------------------------------------------------------------------


class Miss(enum.StrEnum):
    """Why a vital was not measured, which decides what the check makes of it."""

    NOT_SERVED = "not_served"  # the backend says it cannot (the embedded controller has no database): recorded
    REFUSED = "refused"  # the controller refused us, or lacks the method: a warning
    FAILED = "failed"  # the call failed: a SELECT 1 that fails is a failure, a process status a warning


@dataclass(frozen=True)
class Unmeasured:
    miss: Miss
    why: str  # the call, the controller's code and its own text


@dataclass(frozen=True)
class Vitals:
    """What the controller answered: each part a value, or why it could not be had."""

    health_s: float | None  # None: /health did not answer
    query_s: float | Unmeasured
    process: ProcessStatus | Unmeasured


def controller_vitals(v: Vitals, limits: FleetSettings, expect_version: str) -> Finding:
    problems: list[str] = []
    warnings: list[str] = []
    details: JsonObject = {"health_s": None if v.health_s is None else round(v.health_s, 3)}
    if v.health_s is None:
        problems.append("controller: /health did not answer")
    if isinstance(v.query_s, Unmeasured):
        details["select_1"] = f"{v.query_s.miss}: {v.query_s.why}"
        if v.query_s.miss is not Miss.NOT_SERVED:
            said = f"controller: SELECT 1 not measured: {v.query_s.why}"
            (problems if v.query_s.miss is Miss.FAILED else warnings).append(said)
    else:
        details["select_1_s"] = round(v.query_s, 3)
        if v.query_s > limits.query_fail_s:
            problems.append(f"controller: SELECT 1 took {v.query_s:.2f} s (fail over {limits.query_fail_s:g} s)")
        elif v.query_s > limits.query_warn_s:
            warnings.append(f"controller: SELECT 1 took {v.query_s:.2f} s (warn over {limits.query_warn_s:g} s)")
    if isinstance(v.process, Unmeasured):
        details["process"] = f"{v.process.miss}: {v.process.why}"
        if v.process.miss is not Miss.NOT_SERVED:
            warnings.append(f"controller: process status not read: {v.process.why}")
    else:
        details |= _process_details(v.process)
        problems += _process_problems(v.process, limits, expect_version)
    return Finding(tuple(problems), tuple(warnings), details)


def _process_details(p: ProcessStatus) -> JsonObject:
    return {"tree_hash": p.tree_hash, "base_commit": p.base_commit, "python_version": p.python_version,
            "rss_bytes": p.rss_bytes, "threads": p.threads, "fds": p.fds}  # fmt: skip


def _process_problems(p: ProcessStatus, limits: FleetSettings, expect_version: str) -> list[str]:
    problems = []
    for what, value, limit in (("RSS", p.rss_bytes, limits.max_rss_bytes), ("threads", p.threads, limits.max_threads),
                               ("open fds", p.fds, limits.max_fds)):  # fmt: skip
        if limit and value > limit:
            problems.append(f"controller: {what} {value} over the limit {limit}")
    if expect_version and expect_version not in (p.tree_hash, p.base_commit):
        problems.append(f"controller: runs tree hash {p.tree_hash or '<none>'} (base commit "
                        f"{p.base_commit or '<none>'}), expected {expect_version} (iris.expect_version)")  # fmt: skip
    return problems


# -- scheduler_budget ---------------------------------------------------------------------

# Iris's bands, most urgent first (job.proto PriorityBand): a band later in the list is a demotion.
BAND_ORDER = ("system", "production", "interactive", "batch")


def scheduler_budget(band: UserBand, asked: str) -> Finding:
    """The user's effective band (its budget spent: Iris demotes to batch) and the most urgent band it may
    submit to; either below the band the run asks for is a warning naming both."""
    details: JsonObject = {"user": band.user, "asked_band": asked, "effective_band": band.effective_band,
                                  "max_band": band.max_band, "budget_limit": band.budget_limit,
                                  "budget_spent": band.budget_spent}  # fmt: skip
    budget = f"budget spent {band.budget_spent} of {band.budget_limit or 'unlimited'}"
    warnings = []
    for found, what in ((band.effective_band, "demoted to band"), (band.max_band, "may submit at most band")):
        if not found or found == "unspecified":
            continue  # no budget listed for the user, or no cap: nothing below the band asked for
        if found not in BAND_ORDER or asked not in BAND_ORDER:
            warnings.append(f"user {band.user}: {what} {found}, asked {asked}: a band this check does not know")
        elif BAND_ORDER.index(found) > BAND_ORDER.index(asked):
            warnings.append(f"user {band.user}: {what} {found}, below the {asked} band asked for ({budget})")
    return Finding(warnings=tuple(warnings), details=details)


# -- autoscaler_health --------------------------------------------------------------------


def autoscaler_health(status: AutoscalerStatus) -> Finding:
    """Groups in backoff (or blocked) fail, with the controller's reason; scale-ups failing in a row
    without a backoff yet are a warning."""
    problems, warnings = [], []
    for g in status.groups:
        said = _group_reason(g, status)
        if g.backoff:
            problems.append(f"group {g.name}: {g.availability or 'backoff'}" + (f": {said}" if said else ""))
        elif g.consecutive_failures:
            warnings.append(f"group {g.name}: {g.consecutive_failures} scale-ups failed in a row"
                            + (f": {said}" if said else ""))  # fmt: skip
    blocked = sum(g.backoff for g in status.groups)
    return Finding(tuple(problems), tuple(warnings), {"groups": len(status.groups), "blocked": blocked})


def _group_reason(g: GroupStatus, status: AutoscalerStatus) -> str:
    """The group's availability reason, else its latest failed action's."""
    if g.availability_reason:
        return g.availability_reason
    failed = [a for a in status.actions if a.scale_group == g.name and a.failed]
    return f"{failed[-1].action_type}: {failed[-1].reason}" if failed else ""
