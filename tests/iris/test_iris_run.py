"""`iris-smoke run` against the real Iris (PyPI marin-iris): a local Iris cluster, attach mode,
failures, a stop, a cluster that dies, and an API that is not the one we speak.

Every test starts real processes throughout: the supervisor, a real Iris cluster (its
controller, workers, log server and task subprocesses), our children. Nothing is faked but
the one 404 of the API-mismatch test, which goes through a forwarding proxy to a real Iris.
The attached runs share one Iris (`cluster`), each leaving no job of its own unfinished; the
runs that start or kill their cluster (`--cluster iris-local`) have their own.
"""

import contextlib
import json
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest

from tests.helpers import processes
from tests.helpers.connect_proxy import running as _proxy
from tests.helpers.iris import (
    IrisCluster,
    IrisRPCError,
    iris_bin,
    post,
    standing_iris_cluster,
    task_states,
    unfinished_jobs,
)
from tests.helpers.supervisor_proc import REPO_ROOT, SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for
from workers.child_args import FLEET_CHECKS

RUN_EXIT_S = 90.0
CONTROLLER = "iris.cluster.ControllerService"
# The tests that share `cluster`: under `pytest -n` (`--dist loadgroup`) one worker runs them all.
SHARED = pytest.mark.xdist_group("iris_run_cluster")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """The Iris the attached runs share."""
    with standing_iris_cluster(tmp_path_factory.mktemp("iris")) as standing:
        yield standing


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def _assert_nothing_left(sup: SupervisorProc) -> None:
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
    assert results["processes"]["grpc_imported"] is False
    assert processes.with_run_tag(sup.run_id) == []


def _jobs(url: str, job_ids: list[str]) -> dict[str, str]:
    reply = post(url, f"{CONTROLLER}/GetJobState", {"jobIds": job_ids})
    return {k: str(v) for k, v in reply["states"].items()}


def _health(url: str) -> Any:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/health", timeout=5) as reply:
        return json.loads(reply.read())


def _launched(sup: SupervisorProc) -> list[str]:
    return [str(e["job"]) for e in sup.find("job_launched")]


def _worker_ids(url: str) -> set[str]:
    """The workers Iris lists now; none while it is not answering (it stops when the run ends)."""
    with contextlib.suppress(OSError, IrisRPCError):
        return {str(w["workerId"]) for w in post(url, f"{CONTROLLER}/ListWorkers", {}, 2.0).get("workers", [])}
    return set()


def _tpu_pending_before_slice_ready(run_dir: Path, tpu_tests: tuple[str, ...]) -> list[str]:
    """The pending reasons scheduling.jsonl recorded for the run's TPU jobs before the TPU slice was ready."""
    actions = [a for s in _jsonl(run_dir / "autoscaler.jsonl") for a in s["new_actions"]]
    assert any(a["action_type"] == "scale_up" and "tpu" in a["scale_group"] for a in actions), actions
    ready = min(a["timestamp"] for a in actions if a["action_type"] == "slice_ready" and "tpu" in a["scale_group"])
    return [
        j["pending_reason"]
        for snapshot in _jsonl(run_dir / "scheduling.jsonl")
        if snapshot["timestamp"] < ready
        for j in snapshot["jobs"]
        if j["state"] == "pending" and j["pending_reason"] and j["name"].rsplit("/", 1)[-1].startswith(tpu_tests)
    ]


def test_an_iris_local_run_passes_and_observes_everything(tmp_path: Path) -> None:
    """The seven standard tests pass on a real Iris local cluster; every stream, monitor and the audit saw it all."""
    run_id = f"irl-{uuid.uuid4().hex[:8]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris-local", "--iris-bin", iris_bin(), "--timeout", "120")
    with started(argv, tmp_path, run_id) as sup:
        (ready,) = sup.wait_event("cluster_ready", timeout_s=60)
        url = str(ready["address"])
        # The coscheduled job asks for the slice as its workers or, before it exists, its type describe it:
        # one task per host of a v5litepod-16 (4), every chip of each host (4).
        (launched,) = sup.wait_event("job_launched", test="coscheduled", timeout_s=60)
        request = post(url, f"{CONTROLLER}/GetJobStatus", {"jobId": launched["job"]})["request"]
        assert request["replicas"] == 4 and request["coscheduling"] == {"groupBy": "tpu-name"}, request
        assert request["resources"]["device"] == {"tpu": {"variant": "v5litepod-16", "count": 4}}, request
        assert request["priorityBand"] == "PRIORITY_BAND_INTERACTIVE", request  # the default band
        workers: set[str] = set()
        wait_for(lambda: workers.update(_worker_ids(url)) or sup.popen.poll() is not None, RUN_EXIT_S, "the run's end")
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        results, run_dir = sup.results(), sup.run_dir
    assert results["outcome"] == "passed" and results["cluster"]["kind"] == "iris-local"
    outcomes = {t["name"]: t["outcome"] for t in results["tests"]}
    # The fleet checks: slices_complete finds no slice while the TPU slice is not booted yet (skipped).
    assert all(outcomes.pop(name) in ("passed", "skipped") for name in FLEET_CHECKS), results["tests"]
    # Passed with py-spy on the workers' PATH, else skipped naming Iris's stand-in profile.
    assert outcomes.pop("profile_task") in ("passed", "skipped"), results["tests"]
    assert outcomes == {
        "simple": "passed", "concurrent": "passed", "coscheduled": "passed", "accelerator_probe": "passed",
        "region_constrained": "passed", "nested_constraints": "passed", "non_preemptible": "passed",
        "many_tasks": "passed", "log_levels": "passed", "named_ports": "passed", "endpoint_registration": "passed",
        "exec_in_container": "passed",
        "cancel_releases_resources": "passed", "pending_reason": "passed", "workdir_offload": "passed",
    }  # fmt: skip
    # Pinned to pool local-b (the preemptible CPU group), and off it for non-preemptible work.
    by_name = {t["name"]: t for t in results["tests"]}
    assert all("cpu-spot" in t["worker_id"] for t in by_name["region_constrained"]["jobs"][0]["tasks"])
    assert all("cpu-spot" not in t["worker_id"] for t in by_name["non_preemptible"]["jobs"][0]["tasks"])
    # The coscheduled job: 4 tasks on the 4 distinct hosts of one TPU slice.
    (cosched,) = by_name["coscheduled"]["jobs"]
    assert len({t["worker_id"] for t in cosched["tasks"]}) == 4 and all(
        "tpu" in t["worker_id"] for t in cosched["tasks"]
    )
    # A stream for every worker Iris listed during the run and one for the controller, each with lines, no gap.
    streams = {s["name"]: s for s in results["streams"]}
    controller = [name for name in streams if name.startswith("stream:controller")]
    assert len(controller) == 1 and len(workers) == 6, (streams.keys(), workers)
    assert set(streams) - set(controller) == {f"stream:{w}" for w in workers}, (streams.keys(), workers)
    assert all(s["lines"] > 0 and s["gaps"] == 0 for s in streams.values()), streams
    vm_files = sorted((run_dir / "logs" / "vms").glob("*.jsonl"))
    assert {p.stem for p in vm_files} == workers and (run_dir / "logs" / "controller.jsonl").stat().st_size > 0
    # Every TPU host's stream caught its coscheduled task (local Iris workers share one process, so
    # other workers' streams may carry the line too).
    tpu_files = [p for p in vm_files if "-tpu-" in p.name]
    assert len(tpu_files) == 4 and all(any("cosched task" in r["line"] for r in _jsonl(p)) for p in tpu_files)
    # While the TPU slice scaled up (autoscaler.jsonl), a TPU job of the run was pending with Iris's reason.
    assert _tpu_pending_before_slice_ready(run_dir, ("simple", "concurrent", "coscheduled"))
    _assert_task_logs_kept(run_dir, results)
    _assert_nothing_left(sup)
    # Iris's temporary directories lived in the run directory and are gone; no Iris process remains;
    # its credentials landed in the run's HOME.
    assert list((run_dir / "iris" / "tmp").iterdir()) == [] and results["cluster"]["iris_tmp_left"] == []
    assert not sup.find("iris_tmp_left")
    credentials = run_dir / "iris" / "home" / ".config" / "marin" / "credentials" / "iris-smoke-local.json"
    assert credentials.stat().st_mode & 0o777 == 0o600


def _assert_task_logs_kept(run_dir: Path, results: dict[str, Any]) -> None:
    """Every task of every (passing) test has its log lines in logs/tasks/<job id>/<task>.jsonl, as
    stream records (docs/stream-record.schema.json) naming its worker; the coscheduled tasks' lines are there."""
    schema = json.loads((REPO_ROOT / "docs" / "stream-record.schema.json").read_text())
    for test in results["tests"]:
        for job in test["jobs"]:
            for task in job["tasks"]:
                path = run_dir / "logs" / "tasks" / job["job_id"].strip("/") / f"{task['task_index']}.jsonl"
                assert path.exists(), f"{test['name']}: no {path}"
                records = _jsonl(path)
                for record in records:
                    jsonschema.validate(record, schema)
                assert records and {r["vm"] for r in records} == {task["worker_id"]}, (path, records[:2])
                assert [r["seq"] for r in records] == list(range(len(records)))
                if test["name"] == "coscheduled":
                    assert any("cosched task" in r["line"] for r in records), records


FAILING = """
[run]
tests = []

[suite]
priority_band = "batch"

[[tests]]
name = "exits-one"
argv = ["sh", "-c", "echo about to fail; echo the-last-words; exit 1"]
"""


@SHARED
def test_attach_leaves_the_cluster_healthy_and_a_failing_test_shows_its_log_tail(
    cluster: IrisCluster, tmp_path: Path
) -> None:
    """Attach mode passes and touches only its jobs; a failing config test exits 1 with its log-service tail."""
    attach = ("--cluster", "iris", "--controller", cluster.url, "--timeout", "90")
    with started(run_argv("att", tmp_path / "runs", *attach, "--tests", "simple"), tmp_path, "att") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        assert sup.results()["outcome"] == "passed"
        passed_jobs = _launched(sup)
        _assert_nothing_left(sup)
    argv = run_argv("fail", tmp_path / "runs", *attach, "--config", _config(tmp_path, FAILING))
    with started(argv, tmp_path, "fail") as failing:
        assert failing.wait_exit(RUN_EXIT_S) == 1, failing.output.read_text()[-3000:]
        results = failing.results()
        assert results["failure_reasons"] == ["test_failed"]
        (test,) = results["tests"]
        assert any("the-last-words" in line for tail in test["log_tail"] for line in tail["lines"])
        assert "the-last-words" in (failing.run_dir / "summary.md").read_text()
        failed_jobs = _launched(failing)
        _assert_nothing_left(failing)
    # [suite] priority_band reached Iris: the job's own request, read back, carries it.
    (failed_job,) = failed_jobs
    request = post(cluster.url, f"{CONTROLLER}/GetJobStatus", {"jobId": failed_job})["request"]
    assert request["priorityBand"] == "PRIORITY_BAND_BATCH", request
    # The cluster is still up and healthy, and none of the runs' jobs is still running.
    assert _health(cluster.url)["status"] == "ok"
    assert post(cluster.url, f"{CONTROLLER}/ListWorkers", {})["workers"]
    states = _jobs(cluster.url, passed_jobs + failed_jobs)
    assert states == {
        **dict.fromkeys(passed_jobs, "JOB_STATE_SUCCEEDED"),
        **dict.fromkeys(failed_jobs, "JOB_STATE_FAILED"),
    }
    assert unfinished_jobs(cluster.url) == {}


SLEEPS = """
[run]
tests = ["simple"]

[[tests]]
name = "sleeps"
argv = ["sleep", "600"]
"""


@SHARED
def test_sigterm_during_the_tests_exits_143_and_kills_every_submitted_job(cluster: IrisCluster, tmp_path: Path) -> None:
    argv = run_argv("iris-term", tmp_path / "runs", "--cluster", "iris", "--controller", cluster.url,
                    "--config", _config(tmp_path, SLEEPS), "--timeout", "90")  # fmt: skip
    with started(argv, tmp_path, "iris-term") as sup:
        sup.wait_event("job_launched", count=2, timeout_s=30)
        # Its task running, not only its job: Iris 0.2.227 can lose a TerminateJob sent while the
        # task is still building (the job ends KILLED, the task then runs), which the sweep
        # rightly reports as jobs_unconfirmed; this test is about the stop, not that race.
        sleeps = next(j for j in _launched(sup) if j.endswith("/sleeps"))
        wait_for(lambda: task_states(cluster.url, sleeps) == ["TASK_STATE_RUNNING"], 20, "the sleeps task running")
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(RUN_EXIT_S) == 143, sup.output.read_text()[-3000:]
        assert sup.results()["failure_reasons"] == ["sigterm"]
        jobs = _launched(sup)
        _assert_nothing_left(sup)
    # Every job the run submitted is terminal: killed, or succeeded if it had finished before the signal.
    states = _jobs(cluster.url, jobs)
    assert set(states) == set(jobs) and len(jobs) == 2, (jobs, states)
    assert states[next(j for j in jobs if j.endswith("/sleeps"))] == "JOB_STATE_KILLED", states
    assert set(states.values()) <= {"JOB_STATE_KILLED", "JOB_STATE_SUCCEEDED"}, states
    assert unfinished_jobs(cluster.url) == {}


def _iris_process(run_id: str) -> psutil.Process:
    found = [p for p in processes.with_run_tag(run_id) if "cluster" in p.cmdline() and "start" in p.cmdline()]
    assert len(found) == 1, found
    return found[0]


def test_the_iris_cluster_dying_mid_run_is_a_clear_infrastructure_failure(tmp_path: Path) -> None:
    """SIGKILL of the Iris process during the tests: exit 3 well before the deadline, nothing left behind."""
    argv = run_argv("dies", tmp_path / "runs", "--cluster", "iris-local", "--iris-bin", iris_bin(),
                    "--config", _config(tmp_path, SLEEPS), "--timeout", "60")  # fmt: skip
    with started(argv, tmp_path, "dies") as sup:
        sup.wait_event("job_launched", count=2, timeout_s=40)
        _iris_process("dies").kill()
        assert sup.wait_exit(45) == 3, sup.output.read_text()[-3000:]
        results = sup.results()
        assert "critical_child_failed" in results["failure_reasons"]
        assert sup.find("cluster_exited")
        assert processes.with_run_tag("dies") == []


@SHARED
def test_a_method_the_controller_lacks_is_an_iris_api_mismatch_naming_it(cluster: IrisCluster, tmp_path: Path) -> None:
    """A real Iris behind a proxy that 404s GetAutoscalerStatus: exit 3, `iris_api_mismatch`, the method named."""
    method = f"{CONTROLLER}/GetAutoscalerStatus"
    with _proxy(cluster.url, "--deny", method) as url:
        argv = run_argv("api", tmp_path / "runs", "--cluster", "iris", "--controller", url, "--tests", "simple",
                        "--timeout", "60")  # fmt: skip
        with started(argv, tmp_path, "api") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 3, sup.output.read_text()[-3000:]
            results = sup.results()
            assert "iris_api_mismatch" in results["failure_reasons"]
            assert results["api_mismatch"]["method"] == method
            mismatch = sup.find("iris_api_mismatch")
            assert mismatch and mismatch[0]["method"] == method
            # The first report ends the run: the tests met the mismatch themselves, or were stopped by it.
            error = results["tests"][0]["error"]
            assert "iris_api_mismatch" in error or "stopped" in error, results["tests"]
            _assert_nothing_left(sup)
    assert unfinished_jobs(cluster.url) == {}


@SHARED
def test_a_launch_whose_reply_is_lost_is_retried_and_finds_its_job(cluster: IrisCluster, tmp_path: Path) -> None:
    """LaunchJob reaches Iris but its reply is lost (a tunnel dropping): the retry is told
    `already_exists`, looks the job up under the run's root, and the test passes."""
    method = f"{CONTROLLER}/LaunchJob"
    with _proxy(cluster.url, "--lose-first-reply", method) as url:
        argv = run_argv("lost", tmp_path / "runs", "--cluster", "iris", "--controller", url, "--tests", "simple",
                        "--timeout", "60")  # fmt: skip
        with started(argv, tmp_path, "lost") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            assert [t["outcome"] for t in sup.results()["tests"]] == ["passed"]
            assert sup.find("job_launch_retried", job="simple")
            _assert_nothing_left(sup)
    assert unfinished_jobs(cluster.url) == {}
