"""The autoscaler: keeps each scale group between min and max slices, following demand.

Plain Python with an injected clock; it never starts a process. Each call returns the
commands (StartVm, StopVm) for the VM process manager, and the controller feeds back what
happened (a VM started, registered, exited; a worker missed its heartbeats). So a test
can replay a history with a fake clock.

Decisions, per group, once per control-loop tick (`update`):
- demand: pending tasks the scheduler could not place, routed to the first group (in
  config order) that can run them and can still grow, counted in slices;
- scale up by max(min_slices - active, demand - booting), capped by max_slices, unless
  the group is backing off or its last scale-up is younger than scale_up_delay_s;
- scale down one idle READY slice at a time, once it has been idle for
  idle_scale_down_delay_s, while the group has no demand and more than min_slices.
A slice whose VM fails to boot is deleted whole and the group backs off exponentially
(capped_exponential from backoff_base_s, up to backoff_max_s, no jitter); the first slice that becomes
READY resets the count. A slice with a dead worker is deleted whole (`worker_failed`);
min_slices or demand then bring a replacement.
"""

import collections
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.backoff import capped_exponential
from local_cluster.config import ClusterConfig, ScaleGroupConfig
from local_cluster.fit import candidate_groups, tasks_per_slice
from local_cluster.model import JobSpec
from local_cluster.naming import slice_name, vm_name
from local_cluster.states import ActionType, VmState, vm_gone

RECENT_ACTIONS_KEPT = 100
BOOT_STATES = (VmState.REQUESTING, VmState.BOOTING, VmState.INITIALIZING)


@dataclass
class Vm:
    name: str
    slice_id: str
    host_index: int
    state: VmState = VmState.REQUESTING
    pid: int = 0
    exit_code: int | None = None


@dataclass
class Slice:
    slice_id: str
    group: str
    vms: list[Vm]
    created_at: float
    idle_since: float | None = None
    tearing_down: bool = False

    @property
    def booting(self) -> bool:
        return not self.tearing_down and any(vm.state in BOOT_STATES for vm in self.vms)

    @property
    def ready(self) -> bool:
        return not self.tearing_down and all(vm.state == VmState.READY for vm in self.vms)

    @property
    def state(self) -> VmState:
        """The slice's least advanced VM state, for per-state counts."""
        if all(vm_gone(vm.state) for vm in self.vms):
            failed = any(vm.state == VmState.FAILED for vm in self.vms)
            return VmState.FAILED if failed else VmState.TERMINATED
        if self.tearing_down:
            return VmState.STOPPING
        return min((vm.state for vm in self.vms), key=_progress)


def _progress(state: VmState) -> int:
    order = [VmState.REQUESTING, VmState.BOOTING, VmState.INITIALIZING, VmState.READY]
    return order.index(state) if state in order else -1


@dataclass
class GroupState:
    config: ScaleGroupConfig
    slices: dict[str, Slice] = field(default_factory=dict)
    next_index: int = 0
    boots: int = 0
    consecutive_failures: int = 0
    backoff_until: float = 0.0
    last_scale_up_at: float | None = None
    current_demand: int = 0
    peak_demand: int = 0

    @property
    def active(self) -> list[Slice]:
        return [s for s in self.slices.values() if not s.tearing_down]


@dataclass(frozen=True)
class Action:
    timestamp: float
    action_type: ActionType
    scale_group: str
    slice_id: str
    reason: str
    status: str = "ok"


@dataclass(frozen=True)
class StartVm:
    vm_name: str
    slice_id: str
    group: str
    host_index: int
    boot_delay_s: float
    fail_boot: bool
    crash_after_s: float


@dataclass(frozen=True)
class StopVm:
    vm_name: str


Command = StartVm | StopVm


@dataclass(frozen=True)
class Demand:
    job_id: str
    tasks: int
    spec: JobSpec


@dataclass(frozen=True)
class UnmetDemand:
    job_id: str
    tasks: int
    scale_group: str
    reason: str


def _no_events(_event: str, **_fields: Any) -> None:
    pass


class Autoscaler:
    def __init__(
        self,
        config: ClusterConfig,
        prefix: str,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        events: Callable[..., None] = _no_events,
    ) -> None:
        self.config = config
        self._prefix = prefix
        self._clock = clock
        self._rng = rng if rng is not None else random.Random(config.cluster.seed)
        self._events = events
        self.groups = {g.name: GroupState(g) for g in config.scale_groups}
        self.actions: collections.deque[Action] = collections.deque(maxlen=RECENT_ACTIONS_KEPT)
        self.unmet: list[UnmetDemand] = []
        self.routes: dict[str, str] = {}  # job_id -> group its demand was routed to
        self._vms: dict[str, Vm] = {}

    # ------------------------------------------------------------ queries

    def vm(self, name: str) -> Vm | None:
        return self._vms.get(name)

    def slice_of(self, vm: Vm) -> Slice:
        group = self.groups[self._group_of(vm.slice_id)]
        return group.slices[vm.slice_id]

    def _group_of(self, slice_id: str) -> str:
        return next(name for name, g in self.groups.items() if slice_id in g.slices)

    def waiting_reason(self, group_name: str) -> tuple[str, bool]:
        """What work routed to this group waits for, and whether it will come by itself."""
        g = self.groups[group_name]
        booting = [s for s in g.active if s.booting]
        if booting:
            s = booting[0]
            up = sum(vm.state in (VmState.INITIALIZING, VmState.READY) for vm in s.vms)
            return (
                f"scale group {group_name}: slice {s.slice_id} booting ({up}/{len(s.vms)} hosts ready)",
                True,
            )
        remaining = g.backoff_until - self._clock()
        if remaining > 0:
            failures = g.consecutive_failures
            return (
                f"scale group {group_name} backing off {remaining:.1f}s after {failures} boot failures",
                False,
            )
        if len(g.active) >= g.config.max_slices:
            return (
                f"scale group {group_name} at max_slices ({g.config.max_slices}); waiting for a free slice",
                False,
            )
        return f"scale group {group_name}: scale-up pending", True

    # ------------------------------------------------------------ the tick

    def update(self, demand: Sequence[Demand], busy_slices: set[str]) -> list[Command]:
        now = self._clock()
        self._forget_gone_slices()
        wants = self._route(demand)
        commands: list[Command] = []
        for g in self.groups.values():
            g.current_demand = wants.get(g.config.name, 0)
            g.peak_demand = max(g.peak_demand, g.current_demand)
            self._track_idle(g, busy_slices, now)
            commands += self._scale_up(g, now)
            commands += self._scale_down(g, now)
        return commands

    def _can_grow(self, g: GroupState) -> bool:
        return len(g.active) < g.config.max_slices and self._clock() >= g.backoff_until

    def _route(self, demand: Sequence[Demand]) -> dict[str, int]:
        wants: dict[str, int] = collections.defaultdict(int)
        self.unmet, self.routes = [], {}
        for d in demand:
            groups = [self.groups[g.name] for g in candidate_groups(d.spec, self.config)]
            if not groups:
                self.unmet.append(UnmetDemand(d.job_id, d.tasks, "", "no scale group can run it"))
                continue
            chosen = next((g for g in groups if self._can_grow(g) or any(s.booting for s in g.active)), groups[0])
            self.routes[d.job_id] = chosen.config.name
            wants[chosen.config.name] += math.ceil(d.tasks / tasks_per_slice(d.spec, chosen.config))
            reason, will_come = self.waiting_reason(chosen.config.name)
            if not will_come:
                self.unmet.append(UnmetDemand(d.job_id, d.tasks, chosen.config.name, reason))
        return wants

    def _track_idle(self, g: GroupState, busy: set[str], now: float) -> None:
        for s in g.active:
            if not s.ready or s.slice_id in busy:
                s.idle_since = None
            elif s.idle_since is None:
                s.idle_since = now

    def _scale_up(self, g: GroupState, now: float) -> list[Command]:
        active = g.active
        booting = sum(s.booting for s in active)
        need = max(g.config.min_slices - len(active), g.current_demand - booting, 0)
        need = min(need, g.config.max_slices - len(active))
        if need <= 0 or now < g.backoff_until:
            return []
        if g.last_scale_up_at is not None and now - g.last_scale_up_at < g.config.scale_up_delay_s:
            return []
        g.last_scale_up_at = now
        cfg = g.config
        why = f"demand {g.current_demand}, {len(active)} active, {booting} booting, min {cfg.min_slices}"
        commands: list[Command] = []
        for _ in range(need):
            commands += self._create_slice(g, now, why)
        return commands

    def _create_slice(self, g: GroupState, now: float, why: str) -> list[Command]:
        cfg = g.config
        slice_id = slice_name(self._prefix, cfg.name, g.next_index)
        g.next_index += 1
        g.boots += 1
        fail = g.boots <= cfg.fault.fail_first_boots or self._rng.random() < cfg.fault.boot_failure_probability
        vms = [Vm(vm_name(slice_id, i), slice_id, i) for i in range(cfg.hosts_per_slice)]
        g.slices[slice_id] = Slice(slice_id, cfg.name, vms, now)
        self._vms.update((vm.name, vm) for vm in vms)
        self._record(ActionType.SCALE_UP, cfg.name, slice_id, why)
        # One host failing is enough to fail the slice, as one bad TPU host fails a cloud slice.
        return [
            StartVm(vm.name, slice_id, cfg.name, vm.host_index, cfg.boot_delay_s, fail and vm.host_index == 0,
                    cfg.fault.crash_after_s)
            for vm in vms
        ]  # fmt: skip

    def _scale_down(self, g: GroupState, now: float) -> list[Command]:
        if g.current_demand > 0:
            return []
        excess = len(g.active) - g.config.min_slices
        delay = g.config.idle_scale_down_delay_s
        for s in sorted(g.active, key=lambda s: s.slice_id):
            if excess > 0 and s.idle_since is not None and now - s.idle_since >= delay:
                self._record(ActionType.SCALE_DOWN, g.config.name, s.slice_id, f"idle for {now - s.idle_since:.1f}s")
                return self._teardown(s)
        return []

    # ------------------------------------------------------------ feedback from the VMs

    def vm_started(self, name: str, pid: int) -> None:
        vm = self._vms.get(name)
        if vm is not None and vm.state == VmState.REQUESTING:
            vm.state, vm.pid = VmState.BOOTING, pid

    def vm_registered(self, name: str) -> list[Vm] | None:
        """Mark the VM up; returns the slice's VMs when the whole slice just became READY,
        [] while other hosts are still booting, None if the VM is not wanted (unknown or
        being deleted)."""
        vm = self._vms.get(name)
        if vm is None or vm.state not in BOOT_STATES:
            return None
        s = self.slice_of(vm)
        if s.tearing_down:
            return None
        vm.state = VmState.INITIALIZING
        if any(other.state != VmState.INITIALIZING for other in s.vms):
            return []
        for other in s.vms:
            other.state = VmState.READY
        self.groups[s.group].consecutive_failures = 0
        self._events("slice_ready", slice=s.slice_id, vms=len(s.vms), boot_s=round(self._clock() - s.created_at, 3))
        return s.vms

    def vm_exited(self, name: str, exit_code: int) -> list[Command]:
        vm = self._vms.get(name)
        if vm is None:
            return []
        vm.exit_code = exit_code
        s = self.slice_of(vm)
        if vm.state == VmState.STOPPING or s.tearing_down:
            vm.state = VmState.TERMINATED
            return []
        if vm.state in BOOT_STATES:
            vm.state = VmState.FAILED
            return self._boot_failed(s, vm, exit_code)
        # A READY host died: the controller sees its heartbeats stop and fails the slice.
        vm.state = VmState.FAILED
        self._events("vm_died", vm=name, exit_code=exit_code)
        return []

    def _boot_failed(self, s: Slice, vm: Vm, exit_code: int) -> list[Command]:
        g = self.groups[s.group]
        g.consecutive_failures += 1
        settings = self.config.cluster
        delay = capped_exponential(g.consecutive_failures - 1, settings.backoff_base_s, settings.backoff_max_s)
        g.backoff_until = self._clock() + delay
        reason = (
            f"slice {s.slice_id} failed to boot ({vm.name} exited {exit_code}); "
            f"{g.consecutive_failures} consecutive failures, backing off {delay:.1f}s"
        )
        self._record(ActionType.BACKOFF_TRIGGERED, s.group, s.slice_id, reason, status="failed")
        return self._teardown(s)

    def slice_failed(self, slice_id: str, worker_id: str, reason: str) -> list[Command]:
        """A worker of the slice is dead: delete the whole slice."""
        vm = self._vms.get(worker_id)
        if vm is None or self.slice_of(vm).tearing_down:
            return []
        if not vm_gone(vm.state):
            vm.state = VmState.UNHEALTHY
        self._record(ActionType.WORKER_FAILED, self._group_of(slice_id), slice_id, reason, status="failed")
        return self._teardown(self.slice_of(vm))

    def stop_all(self) -> list[Command]:
        commands: list[Command] = []
        for g in self.groups.values():
            for s in g.active:
                commands += self._teardown(s)
        return commands

    def _teardown(self, s: Slice) -> list[Command]:
        s.tearing_down = True
        commands: list[Command] = []
        for vm in s.vms:
            if not vm_gone(vm.state):
                vm.state = VmState.STOPPING
                commands.append(StopVm(vm.name))
        return commands

    def _forget_gone_slices(self) -> None:
        for g in self.groups.values():
            # Only deleted slices: a slice whose host crashed stays until the controller has
            # noticed (missed heartbeats) and failed the slice, so the failure is reported.
            gone = [sid for sid, s in g.slices.items() if s.tearing_down and all(vm_gone(vm.state) for vm in s.vms)]
            for slice_id in gone:
                for vm in g.slices.pop(slice_id).vms:
                    del self._vms[vm.name]
                self._events("slice_deleted", slice=slice_id)

    def _record(self, action_type: ActionType, group: str, slice_id: str, reason: str, status: str = "ok") -> None:
        self.actions.append(Action(self._clock(), action_type, group, slice_id, reason, status))
        self._events(f"autoscaler_{action_type.value}", group=group, slice=slice_id, reason=reason, status=status)
