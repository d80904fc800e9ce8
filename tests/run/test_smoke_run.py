"""`iris-smoke run` end to end against the embedded local cluster: real processes throughout."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import psutil

from tests.helpers import processes
from tests.helpers.supervisor_proc import REPO_ROOT, SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for
from workers.child_args import FLEET_CHECKS

RUN_EXIT_S = 60.0
EVENT_SCHEMA = json.loads((REPO_ROOT / "docs" / "log-schema.json").read_text())
STREAM_SCHEMA = json.loads((REPO_ROOT / "docs" / "stream-record.schema.json").read_text())


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _validate(path: Path, schema: dict[str, Any]) -> list[dict[str, Any]]:
    records = _jsonl(path)
    validator = jsonschema.Draft202012Validator(schema)
    for number, record in enumerate(records, 1):
        errors = list(validator.iter_errors(record))
        assert not errors, f"{path.name}:{number}: {errors[0].message}"
    return records


def _assert_nothing_left(sup: SupervisorProc) -> None:
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
    assert results["processes"]["grpc_imported"] is False
    assert processes.with_run_tag(sup.run_id) == []


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_a_full_run_passes_and_leaves_complete_valid_artefacts(tmp_path: Path) -> None:
    with started(run_argv("full", tmp_path / "runs", "--timeout", "120"), tmp_path, "full") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        run_dir = sup.run_dir
        results = sup.results()
        assert results["outcome"] == "passed"
        outcomes = {t["name"]: t["outcome"] for t in results["tests"]}
        # The fleet checks start as the cluster boots, empty: the slice and attribute checks wait
        # (settle_s) for the slices the tests bring up, so they judge every host of them.
        fleet = {t["name"]: t for t in results["tests"] if t["name"] in FLEET_CHECKS}
        assert {n: outcomes.pop(n) for n in FLEET_CHECKS} == {**dict.fromkeys(FLEET_CHECKS, "passed"),
                                                               "scheduler_budget": "skipped"}, fleet  # fmt: skip
        assert fleet["slices_complete"]["details"]["slices"] >= 2, fleet  # the CPU slice and the 4-host TPU slice
        assert fleet["worker_attributes"]["details"]["workers"] >= 5, fleet
        assert outcomes == {
            "simple": "passed", "concurrent": "passed", "coscheduled": "passed", "accelerator_probe": "passed",
            "region_constrained": "passed", "nested_constraints": "passed", "non_preemptible": "passed",
            "many_tasks": "passed", "log_levels": "passed", "named_ports": "passed", "endpoint_registration": "passed",
            "exec_in_container": "skipped", "profile_task": "skipped",
            "cancel_releases_resources": "passed", "pending_reason": "passed", "workdir_offload": "passed",
        }  # fmt: skip
        suite = ET.parse(run_dir / "junit.xml").getroot()
        cases = str(len(outcomes) + len(FLEET_CHECKS))
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (cases, "0", "0")
        _validate(run_dir / "events.jsonl", EVENT_SCHEMA)
        vm_files = sorted((run_dir / "logs" / "vms").glob("*.jsonl"))
        for path in [run_dir / "logs" / "controller.jsonl", *vm_files]:
            _validate(path, STREAM_SCHEMA)
        # Every TPU host ran one coscheduled task and its stream caught that task's output.
        cosched = [p for p in vm_files if any("cosched task" in r["line"] for r in _jsonl(p))]
        seen = ("hosts_discovered", "hosts_over_limit", "child_started", "child_exited")
        hosts = [(e["event"], e.get("child"), e.get("vms"), e["timestamp"]) for e in sup.events() if e["event"] in seen]
        assert len(cosched) == 4, ([p.name for p in vm_files], hosts)
        scheduling = _jsonl(run_dir / "scheduling.jsonl")
        reasons = [t.get("pending_reason") for s in scheduling for j in s["jobs"] for t in j["tasks"]]
        assert any(reasons), "a pending_reason was recorded while the TPU slice booted"
        autoscaler = (run_dir / "autoscaler.jsonl").read_text()
        assert "scale_up" in autoscaler
        assert json.loads((run_dir / "diagnostics.json").read_text())
        summary = (run_dir / "summary.md").read_text()
        assert "PASSED" in summary and "## Streams" in summary and "scale_up" in summary
        _assert_nothing_left(sup)


FAILING_TEST = """
[run]
tests = ["simple"]

[[tests]]
name = "exits-one"
argv = ["sh", "-c", "echo about to fail; echo the-last-words; exit 1"]
"""


def test_a_failing_test_exits_1_with_its_log_tail(tmp_path: Path) -> None:
    argv = run_argv("fails", tmp_path / "runs", "--config", _config(tmp_path, FAILING_TEST))
    with started(argv, tmp_path, "fails") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
        results = sup.results()
        assert results["outcome"] == "failed" and results["failure_reasons"] == ["test_failed"]
        failed = next(t for t in results["tests"] if t["name"] == "exits-one")
        assert failed["outcome"] == "failed"
        assert any("the-last-words" in line for tail in failed["log_tail"] for line in tail["lines"])
        assert "the-last-words" in (sup.run_dir / "summary.md").read_text()
        _assert_nothing_left(sup)


SLOW_TEST = """
[run]
tests = []

[[tests]]
name = "sleeps"
argv = ["sleep", "600"]
"""


def test_the_deadline_during_tests_gives_124_and_tears_everything_down(tmp_path: Path) -> None:
    argv = run_argv("late", tmp_path / "runs", "--config", _config(tmp_path, SLOW_TEST), "--timeout", "8")
    with started(argv, tmp_path, "late") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 124, sup.output.read_text()[-3000:]
        results = sup.results()
        assert results["outcome"] == "timeout"
        assert results["tests"][0]["outcome"] == "timeout"
        assert sup.find("phase_finished", phase="cleanup")
        killed = [e for e in sup.events() if e["event"] in ("job_terminated", "jobs_terminated")]
        assert killed, "the tests child terminated its jobs"
        _assert_nothing_left(sup)
        assert not [p for p in psutil.process_iter(["cmdline"]) if str(sup.run_dir) in " ".join(p.info["cmdline"] or [])
                    and "local_cluster" in " ".join(p.info["cmdline"] or [])]  # fmt: skip


def test_sigterm_during_cluster_start_and_during_tests_is_clean(tmp_path: Path) -> None:
    with started(run_argv("term-boot", tmp_path / "runs"), tmp_path, "term-boot") as sup:
        sup.wait_event("child_started", child="cluster")
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(RUN_EXIT_S) == 143
        assert sup.results()["failure_reasons"] == ["sigterm"]
        _assert_nothing_left(sup)
    argv = run_argv("term-tests", tmp_path / "runs", "--config", _config(tmp_path, SLOW_TEST))
    with started(argv, tmp_path, "term-tests") as sup:
        sup.wait_event("child_state_changed", child="tests", new="running")
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(RUN_EXIT_S) == 143
        results = sup.results()
        # Cut short by the operator's stop, the test did not fail and did not time out.
        assert results["outcome"] == "cancelled" and results["tests"][0]["outcome"] == "cancelled"
        verdict = sup.output.read_text()
        assert "CANCELLED (exit 143): 0/1 tests passed, 1 cancelled" in verdict, verdict[-3000:]
        _assert_nothing_left(sup)


def test_keep_then_attach_reuses_the_cluster_and_its_printed_stop_command_stops_it(tmp_path: Path) -> None:
    """`--keep` says what it left (results.json `cluster.kept`), and both printed commands work:
    the attach run passes on the kept cluster and stops nothing; the stop command ends it."""
    argv = run_argv("keeper", tmp_path / "runs", "--keep", "--tests", "simple", "--prefix", "kept")
    kept: list[psutil.Process] = []
    try:
        with started(argv, tmp_path, "keeper") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            hint = sup.output.read_text()
            address, stop = re.search(r"--controller (\S+)", hint), re.search(r"stop it: +(.+)", hint)
            assert address and stop, hint
            kept = processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", "kept")
            assert kept, "the local cluster outlived the run"
            cluster = sup.results()["cluster"]
            assert cluster["kept"] is True and cluster["pid"] in {p.pid for p in kept}, cluster
            assert sup.results()["processes"]["leaked"] == 0
        attach = run_argv("attacher", tmp_path / "runs", "--controller", address.group(1), "--tests", "simple")
        with started(attach, tmp_path, "attacher") as second:
            assert second.wait_exit(RUN_EXIT_S) == 0, second.output.read_text()[-3000:]
            assert second.results()["cluster"]["mode"] == "attach"
            assert not second.find("cluster_stopped")
            assert all(p.is_running() for p in kept), "attaching stopped nothing"
        subprocess.run(stop.group(1), shell=True, check=True, timeout=10)
        wait_for(lambda: not processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", "kept"), 15, "the printed stop command")
    finally:
        for proc in processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", "kept"):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(kept, timeout=15)  # reaps those re-parented to this test process (a subreaper)


def test_keep_with_a_cluster_that_never_became_ready_leaves_nothing_and_says_so(tmp_path: Path) -> None:
    """A kept cluster that did not come up within --boot-timeout is stopped like any other: no
    process of it stays, results.json says `kept: false`, and no reattach command is printed."""
    argv = run_argv("keep-noboot", tmp_path / "runs", "--keep", "--boot-timeout", "0.01", "--prefix", "kept-noboot")
    try:
        with started(argv, tmp_path, "keep-noboot") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 3, sup.output.read_text()[-3000:]
            assert sup.results()["cluster"]["kept"] is False
            output = sup.output.read_text()
            assert "--controller" not in output and "nothing was left running" in output, output
            wait_for(lambda: not processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", "kept-noboot"), 10, "no kept cluster")
    finally:
        for proc in processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", "kept-noboot"):
            with contextlib.suppress(psutil.Error):
                proc.kill()


def test_a_config_error_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = _config(tmp_path, "[run]\ntimeout_s = -5\n")
    with started(run_argv("badcfg", tmp_path / "runs", "--config", bad), tmp_path, "badcfg") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 2
        assert "run.timeout_s" in sup.output.read_text()
        assert not sup.run_dir.exists()


def test_leftovers_of_the_prefix_are_deleted_and_a_second_run_on_it_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "stale-cluster"
    stale = subprocess.Popen(
        [sys.executable, "-m", "local_cluster", "--state-dir", str(state), "--prefix", "stale"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (state / "controller.addr").exists(), 15, "the stale cluster to listen")
        argv = run_argv("cleaner", tmp_path / "runs", "--prefix", "stale", "--tests", "coscheduled")
        with started(argv, tmp_path, "cleaner") as sup:
            sup.wait_event("phase_started", phase="cluster")
            assert stale.wait(timeout=10) is not None, "the leftover cluster was stopped"
            [deleted] = sup.find("leftovers_deleted", when="start")
            assert deleted["found"] >= 1
            second = run_argv("second", tmp_path / "runs", "--prefix", "stale")
            with started(second, tmp_path, "second") as refused:
                assert refused.wait_exit(RUN_EXIT_S) == 2
                assert "prefix lock" in refused.output.read_text()
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            _assert_nothing_left(sup)
    finally:
        if stale.poll() is None:
            os.killpg(stale.pid, signal.SIGKILL)
        stale.wait(timeout=10)


LATE_SLICE = """
[[scale_groups]]
name = "cpu"
accelerator_type = "cpu"
hosts_per_slice = 1
chips_per_host = 4
min_slices = 1
max_slices = 1
boot_delay_s = 0.3

[[scale_groups]]
name = "tpu"
accelerator_type = "tpu"
accelerator_variant = "v5litepod-16"
hosts_per_slice = 4
chips_per_host = 4
min_slices = 0
max_slices = 1
boot_delay_s = 4.5
"""


def test_a_slice_that_appears_mid_run_gets_a_stream_per_host_under_a_custom_prefix(tmp_path: Path) -> None:
    cluster_config = tmp_path / "cluster.toml"
    cluster_config.write_text(LATE_SLICE)
    config = _config(tmp_path, f'[cluster]\nlocal_config = "{cluster_config}"\n[run]\ntests = ["coscheduled"]\n')
    argv = run_argv("late-vm", tmp_path / "runs", "--config", config, "--prefix", "mylabel")
    with started(argv, tmp_path, "late-vm") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        names = sorted(p.name for p in (sup.run_dir / "logs" / "vms").glob("*.jsonl"))
        assert names == ["mylabel-cpu-0-w0.jsonl"] + [f"mylabel-tpu-0-w{i}.jsonl" for i in range(4)]
        run_started = next(e["timestamp"] for e in sup.events() if e["event"] == "run_started")
        tpu_streams = [e for e in sup.find("child_started") if e["child"].startswith("stream:mylabel-tpu-0")]
        assert len(tpu_streams) == 4
        assert all(_seconds_between(run_started, e["timestamp"]) >= 4.0 for e in tpu_streams)
        for i in range(4):
            lines = [r["line"] for r in _jsonl(sup.run_dir / "logs" / "vms" / f"mylabel-tpu-0-w{i}.jsonl")]
            assert any(f"cosched task {i}/4" in line for line in lines)
        _assert_nothing_left(sup)


def test_hosts_that_came_up_since_the_last_listing_are_streamed_by_a_last_look(tmp_path: Path) -> None:
    """Discovery every 60 s lists the cluster once at the start; the TPU slice boots mid-run for the
    coscheduled test, so only the last listing, once the tests are over, can give its hosts streams
    (and their streams still catch each task's lines before the drain)."""
    cluster_config = tmp_path / "cluster.toml"
    cluster_config.write_text(LATE_SLICE)
    config = _config(tmp_path, f'[cluster]\nlocal_config = "{cluster_config}"\n[run]\ntests = ["coscheduled"]\n')
    argv = run_argv("last-look", tmp_path / "runs", "--config", config, "--prefix", "lastlook",
                    "--discovery-interval", "60")  # fmt: skip
    with started(argv, tmp_path, "last-look") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        [look] = [e for e in sup.find("cleanup_step") if e["roles"] == ["last_look"]]
        assert look["new_streams"] == 5  # the CPU host too: it booted just after the first listing
        for i in range(4):
            lines = [r["line"] for r in _jsonl(sup.run_dir / "logs" / "vms" / f"lastlook-tpu-0-w{i}.jsonl")]
            assert any(f"cosched task {i}/4" in line for line in lines)
        _assert_nothing_left(sup)


def _seconds_between(earlier: str, later: str) -> float:
    from datetime import datetime

    parse = lambda ts: datetime.fromisoformat(ts.replace("Z", "+00:00"))  # noqa: E731
    return (parse(later) - parse(earlier)).total_seconds()
