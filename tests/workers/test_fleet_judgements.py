"""The fleet checks' judgements (workers/fleet/checks.py), from crafted controller replies: each
passes on a whole fleet, and each failure names the object and carries the controller's words."""

from dataclasses import replace

from common.outcome import Outcome
from workers.child_args import FleetSettings
from workers.controller.model import (
    Action,
    AutoscalerStatus,
    GroupStatus,
    ProcessStatus,
    SliceStatus,
    UserBand,
    VmStatus,
    Worker,
)
from workers.fleet import checks
from workers.fleet.checks import Miss, Unmeasured, Vitals

TPU_DECLARES = {"scale-group": "tpu_v5e_16", "device-type": "tpu", "device-variant": "v5litepod-16"}
TPU = GroupStatus("tpu_v5e_16", "tpu", "v5litepod-16", 4, chips_per_host=4, declares=TPU_DECLARES)
CPU = GroupStatus(
    "cpu", "cpu", "cpu", 1, declares={"scale-group": "cpu", "device-type": "cpu", "device-variant": "cpu"}
)


def _host(i: int, **changed: str) -> Worker:
    slice_host = {"tpu-name": "slice-a", "tpu-worker-id": str(i), "tpu-vm-count": "4"}
    attributes = {**TPU_DECLARES, "preemptible": "true", **slice_host}
    return Worker(f"worker-slice-a-{i}", True, "", {**attributes, **changed}, device_count=4)


CPU_WORKER = Worker("worker-cpu-0", True, "", {"scale-group": "cpu", "device-type": "cpu", "device-variant": "cpu",
                                               "preemptible": "false"})  # fmt: skip
FLEET = [CPU_WORKER, *(_host(i) for i in range(4))]
STATUS = AutoscalerStatus(groups=(CPU, TPU))


def test_a_whole_fleet_passes_every_check() -> None:
    assert checks.slices_complete(FLEET, STATUS).outcome is Outcome.PASSED
    assert checks.worker_attributes(FLEET, STATUS).outcome is Outcome.PASSED
    assert checks.autoscaler_health(STATUS).outcome is Outcome.PASSED


def test_a_slice_short_of_a_worker_fails_naming_the_slice_the_index_and_what_the_autoscaler_says() -> None:
    seen = SliceStatus("slice-a", "ready", (VmStatus("vm-2", "failed"),))
    status = AutoscalerStatus(groups=(CPU, replace(TPU, slices=(seen,))))
    finding = checks.slices_complete([w for w in FLEET if w.slice_host != 2], status)
    assert finding.outcome is Outcome.FAILED
    assert "slice slice-a: 3 of 4 workers listed (tpu-vm-count), host 2 missing" in finding.error
    assert "the autoscaler says: slice ready, VMs without a listed worker: vm-2 failed (no worker)" in finding.error


def test_a_host_index_listed_twice_fails_naming_both_workers() -> None:
    twice = [*FLEET[:4], _host(1, **{"tpu-worker-id": "2"})]
    finding = checks.slices_complete(twice, STATUS)
    assert "host index [2] listed twice (worker-slice-a-2, worker-slice-a-1)" in finding.error
    assert "host 3 missing" in finding.error


def test_without_tpu_vm_count_the_slice_size_comes_from_its_group() -> None:
    """The embedded cluster's workers do not carry tpu-vm-count: their group's hosts per slice decides."""
    hosts = [Worker(w.worker_id, True, "", {k: v for k, v in w.attributes.items() if k != "tpu-vm-count"})
             for w in FLEET[1:4]]  # fmt: skip
    assert "host 3 missing" in checks.slices_complete(hosts, STATUS).error
    assert "group tpu_v5e_16's hosts per slice" in checks.slices_complete(hosts, STATUS).error


def test_a_fleet_without_slices_is_skipped_with_the_reason() -> None:
    finding = checks.slices_complete([CPU_WORKER], STATUS)
    assert finding.outcome is Outcome.SKIPPED and "no slice to check" in finding.error


def test_a_worker_without_its_groups_attribute_fails_naming_worker_group_and_value() -> None:
    fleet = [CPU_WORKER, *FLEET[1:3], _host(2, **{"device-variant": "v5litepod-32"}), FLEET[4]]
    finding = checks.worker_attributes(fleet, STATUS)
    assert finding.outcome is Outcome.FAILED
    assert "worker worker-slice-a-2 (group tpu_v5e_16): device-variant=v5litepod-32, its group declares " \
           "v5litepod-16" in finding.error  # fmt: skip


def test_a_worker_without_a_capacity_type_and_a_group_split_on_it_fail() -> None:
    bare = Worker("worker-cpu-1", True, "", {k: v for k, v in CPU_WORKER.attributes.items() if k != "preemptible"})
    assert "worker worker-cpu-1: carries no preemptible attribute" in checks.worker_attributes([bare], STATUS).error
    split = [*FLEET[:4], _host(3, preemptible="false")]
    assert (
        "group tpu_v5e_16: its workers disagree on their capacity type" in checks.worker_attributes(split, STATUS).error
    )


def test_a_worker_with_fewer_chips_than_its_group_fails() -> None:
    short = [*FLEET[:4], replace(FLEET[4], device_count=2)]
    assert "worker-slice-a-3 (group tpu_v5e_16): 2 devices" in checks.worker_attributes(short, STATUS).error


PROCESS = ProcessStatus("abc123", "def456", "3.12.1", 300 << 20, 60, 80)
LIMITS = FleetSettings(query_warn_s=2.0, query_fail_s=10.0)


def test_vitals_pass_and_record_the_process() -> None:
    finding = checks.controller_vitals(Vitals(0.01, 0.2, PROCESS), LIMITS, "")
    assert finding.outcome is Outcome.PASSED and finding.error == ""
    assert finding.details["tree_hash"] == "abc123" and finding.details["rss_bytes"] == 300 << 20


def test_a_slow_select_warns_then_fails() -> None:
    warned = checks.controller_vitals(Vitals(0.01, 3.0, PROCESS), LIMITS, "")
    assert warned.outcome is Outcome.PASSED and warned.error.startswith("warning: controller: SELECT 1 took 3.00 s")
    failed = checks.controller_vitals(Vitals(0.01, 11.0, PROCESS), LIMITS, "")
    assert failed.outcome is Outcome.FAILED and "SELECT 1 took 11.00 s (fail over 10 s)" in failed.error


def test_limits_and_the_expected_version_fail_naming_the_value() -> None:
    limits = replace(LIMITS, max_threads=50)
    assert "threads 60 over the limit 50" in checks.controller_vitals(Vitals(0.01, 0.1, PROCESS), limits, "").error
    wrong = checks.controller_vitals(Vitals(0.01, 0.1, PROCESS), LIMITS, "0000")
    assert "runs tree hash abc123 (base commit def456), expected 0000 (iris.expect_version)" in wrong.error
    assert checks.controller_vitals(Vitals(0.01, 0.1, PROCESS), LIMITS, "def456").outcome is Outcome.PASSED


def test_what_a_backend_cannot_serve_is_recorded_not_failed() -> None:
    cannot = Unmeasured(Miss.NOT_SERVED, "ExecuteRawQuery: unimplemented no database")
    finding = checks.controller_vitals(Vitals(0.01, cannot, cannot), LIMITS, "")
    assert finding.outcome is Outcome.PASSED and finding.error == ""
    assert finding.details["select_1"] == "not_served: ExecuteRawQuery: unimplemented no database"
    failed = checks.controller_vitals(Vitals(None, Unmeasured(Miss.FAILED, "x: internal boom"), PROCESS), LIMITS, "")
    assert "/health did not answer" in failed.error and "SELECT 1 not measured: x: internal boom" in failed.error


def test_a_group_in_backoff_fails_with_the_controllers_reason() -> None:
    blocked = replace(TPU, backoff=True, availability="backoff", availability_reason="quota: no v5e in us-west4-a")
    finding = checks.autoscaler_health(AutoscalerStatus(groups=(CPU, blocked)))
    assert finding.outcome is Outcome.FAILED
    assert finding.error == "group tpu_v5e_16: backoff: quota: no v5e in us-west4-a"
    failing = replace(TPU, consecutive_failures=2)
    action = Action(None, "scale_up", "tpu_v5e_16", reason="create failed: boom", status="failed")
    warned = checks.autoscaler_health(AutoscalerStatus(groups=(failing,), actions=(action,)))
    assert warned.outcome is Outcome.PASSED
    assert warned.error == "warning: group tpu_v5e_16: 2 scale-ups failed in a row: scale_up: create failed: boom"


def test_a_demoted_or_capped_band_warns_naming_both_bands() -> None:
    demoted = checks.scheduler_budget(UserBand("alice", "batch", "interactive", 100, 250), "interactive")
    assert demoted.outcome is Outcome.PASSED
    assert demoted.error == "warning: user alice: demoted to band batch, below the interactive band asked for " \
                           "(budget spent 250 of 100)"  # fmt: skip
    assert checks.scheduler_budget(UserBand("alice", "interactive", "production"), "interactive").error == ""
    assert checks.scheduler_budget(UserBand("alice"), "production").error == ""  # no budget listed
    capped = checks.scheduler_budget(UserBand("bob", "interactive", "batch"), "interactive")
    assert "user bob: may submit at most band batch, below the interactive band" in capped.error
