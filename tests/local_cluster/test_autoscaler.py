"""The autoscaler's decisions, replayed with a fake clock and no process."""

import dataclasses

from local_cluster.autoscaler import Autoscaler, Demand, StartVm, StopVm
from local_cluster.config import parse_config
from local_cluster.model import Device, JobSpec
from local_cluster.states import AcceleratorType, VmState
from tests.helpers.clock import FakeClock

CONFIG = """
[cluster]
backoff_base_s = 1.0
backoff_max_s = 4.0

[[scale_groups]]
name = "tpu"
accelerator_type = "tpu"
accelerator_variant = "v5litepod-16"
hosts_per_slice = 4
chips_per_host = 4
min_slices = 0
max_slices = 2
boot_delay_s = 1.0
scale_up_delay_s = 0.5
idle_scale_down_delay_s = 10.0
"""
TPU_JOB = JobSpec("j", ("true",), Device(AcceleratorType.TPU, "v5litepod-16", 4), replicas=4, group_by="tpu-name")


def make(config_text: str = CONFIG, **fault: float) -> tuple[Autoscaler, FakeClock]:
    config = parse_config(config_text, "test")
    if fault:
        group = config.scale_groups[0]
        group = dataclasses.replace(group, fault=dataclasses.replace(group.fault, **fault))
        config = dataclasses.replace(config, scale_groups=(group,))
    clock = FakeClock(100.0)
    return Autoscaler(config, "t", clock), clock


def demand(n: int) -> list[Demand]:
    return [Demand(f"job-{i}", 4, TPU_JOB) for i in range(n)]


def boot(autoscaler: Autoscaler, commands: list[StartVm | StopVm]) -> None:
    for cmd in commands:
        assert isinstance(cmd, StartVm)
        autoscaler.vm_started(cmd.vm_name, pid=1)
    for cmd in commands:
        autoscaler.vm_registered(cmd.vm_name)


def test_scales_up_from_zero_on_demand_only() -> None:
    """No demand, min 0: nothing; one coscheduled job: one 4-host slice named <prefix>-<group>-0-w<i>."""
    autoscaler, _ = make()
    assert autoscaler.update([], set()) == []
    commands = autoscaler.update(demand(1), set())
    assert [c.vm_name for c in commands if isinstance(c, StartVm)] == [f"t-tpu-0-w{i}" for i in range(4)]
    assert autoscaler.update(demand(1), set()) == []  # the booting slice covers the demand
    assert [a.action_type for a in autoscaler.actions] == ["scale_up"]


def test_respects_max_slices_and_reports_unmet_demand() -> None:
    """Three jobs, max 2: two slices, and the third job's demand is unmet with a reason."""
    autoscaler, _ = make()
    commands = autoscaler.update(demand(3), set())
    assert len({c.slice_id for c in commands if isinstance(c, StartVm)}) == 2
    boot(autoscaler, commands)
    autoscaler.update(demand(1), {"t-tpu-0", "t-tpu-1"})
    (unmet,) = autoscaler.unmet
    assert unmet.scale_group == "tpu" and "at max_slices (2)" in unmet.reason


def test_scale_up_delay_spaces_out_scale_ups() -> None:
    autoscaler, clock = make()
    assert len(autoscaler.update(demand(1), set())) == 4
    clock.now += 0.1
    assert autoscaler.update(demand(2), set()) == []  # within scale_up_delay_s
    clock.now += 0.5
    assert len(autoscaler.update(demand(2), set())) == 4


def test_scales_down_after_idle_delay_but_not_below_min() -> None:
    autoscaler, clock = make(CONFIG.replace("min_slices = 0", "min_slices = 1"))
    boot(autoscaler, autoscaler.update(demand(2), set()))  # 2 slices (min 1)
    clock.now += 5
    assert autoscaler.update([], {"t-tpu-1"}) == []  # t-tpu-0 idle since now; t-tpu-1 busy
    clock.now += 9.9
    assert autoscaler.update([], {"t-tpu-1"}) == []
    clock.now += 0.2
    stops = autoscaler.update([], set())
    assert [c.vm_name for c in stops] == [f"t-tpu-0-w{i}" for i in range(4)]
    assert autoscaler.actions[-1].action_type == "scale_down"
    clock.now += 20
    assert autoscaler.update([], set()) == []  # t-tpu-1 is idle too, but the group is at min


def test_boot_failure_backs_off_exponentially_then_recovers() -> None:
    autoscaler, clock = make(fail_first_boots=2)
    first = autoscaler.update(demand(1), set())
    assert [c for c in first if isinstance(c, StartVm) and c.fail_boot] == [first[0]]
    stops = autoscaler.vm_exited("t-tpu-0-w0", 75)
    assert {c.vm_name for c in stops} == {f"t-tpu-0-w{i}" for i in range(1, 4)}
    action = autoscaler.actions[-1]
    assert (action.action_type, action.slice_id, action.status) == ("backoff_triggered", "t-tpu-0", "failed")
    assert "backing off 1.0s" in action.reason
    for stop in stops:
        autoscaler.vm_exited(stop.vm_name, 0)
    clock.now += 0.9
    assert autoscaler.update(demand(1), set()) == []  # backing off
    assert "backing off" in autoscaler.unmet[0].reason
    clock.now += 0.2
    second = autoscaler.update(demand(1), set())
    autoscaler.vm_exited(second[0].vm_name, 75)
    assert "2 consecutive failures, backing off 2.0s" in autoscaler.actions[-1].reason
    clock.now += 2.1
    third = autoscaler.update(demand(1), set())
    assert not any(isinstance(c, StartVm) and c.fail_boot for c in third)
    boot(autoscaler, third)
    assert autoscaler.groups["tpu"].consecutive_failures == 0
    assert all(vm.state == VmState.READY for vm in autoscaler.groups["tpu"].slices["t-tpu-2"].vms)


def test_worker_failure_deletes_the_slice_and_min_brings_a_replacement() -> None:
    autoscaler, clock = make(CONFIG.replace("min_slices = 0", "min_slices = 1"))
    boot(autoscaler, autoscaler.update([], set()))
    clock.now += 1  # past scale_up_delay_s
    stops = autoscaler.slice_failed("t-tpu-0", "t-tpu-0-w2", "missed heartbeats")
    assert len(stops) == 4 and autoscaler.actions[-1].action_type == "worker_failed"
    for stop in stops:
        autoscaler.vm_exited(stop.vm_name, 0)
    replacement = autoscaler.update([], set())
    assert {c.slice_id for c in replacement if isinstance(c, StartVm)} == {"t-tpu-1"}
    assert "t-tpu-0" not in autoscaler.groups["tpu"].slices
