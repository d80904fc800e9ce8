"""Observe-only runs (`--observe`, `[run] observe = true`) on the embedded cluster, and their config.

An observe run submits no job: discovery, the streams and the monitors watch for `observe_s`,
and the verdict rests on what they saw and on the fleet checks (which launch nothing). It passes with
no test; a cluster with no worker host to see fails it (`nothing_observed`). A selection of tests
beside it, other than fleet checks, is a contradiction (exit 2).
"""

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import processes
from tests.helpers.supervisor_proc import REPO_ROOT, SupervisorProc, run_argv, started
from tests.run.test_check_config import _iris_smoke
from tests.run.test_machine_outputs import RESULTS_SCHEMA, _xmllint
from workers.child_args import FLEET_CHECKS

RUN_EXIT_S = 60.0
# The fleet checks' wait for a multi-host slice to be listed (settle_s, 10 s by default) cannot end
# early in an observe run: no job asks for a slice, so none comes. Bounded by the observation window
# instead, it still gives worker_attributes the time to see the CPU worker the cluster starts with;
# a cluster that starts no worker at all has nothing to wait for.
WINDOW_SETTLE = "[fleet]\nsettle_s = 3\n"
NO_SETTLE = "[fleet]\nsettle_s = 0\n"


def _assert_nothing_left(sup: SupervisorProc) -> None:
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
    assert processes.with_run_tag(sup.run_id) == []


def test_an_observe_run_on_the_embedded_cluster_passes_with_no_tests_and_valid_artefacts(tmp_path: Path) -> None:
    run_id = f"observe-{uuid.uuid4().hex[:6]}"
    config = tmp_path / "run.toml"
    config.write_text(WINDOW_SETTLE)
    argv = run_argv(
        run_id, tmp_path / "runs", "--observe", "--observe-s", "3", "--timeout", "60", "--config", str(config)
    )
    with started(argv, tmp_path, run_id) as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        results = sup.results()
        errors = list(jsonschema.Draft202012Validator(RESULTS_SCHEMA).iter_errors(results))
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:3]]
        assert results["observe"] is True and results["failure_reasons"] == []
        # Only the fleet checks, which launch nothing: each passed, or skipped saying why (no slice yet).
        assert [t["name"] for t in results["tests"]] == list(FLEET_CHECKS)
        assert all(t["outcome"] in ("passed", "skipped") for t in results["tests"]), results["tests"]
        seen = results["observation"]
        assert seen["observe_s"] == 3 and seen["autoscaler_read"] is True and seen["most_workers_listed"] >= 1
        assert len(results["streams"]) >= 2 and all(s["lines"] > 0 for s in results["streams"]), results["streams"]
        assert "tests" not in {c["name"] for c in results["children"]} and sup.find("job_launched") == []
        assert sup.find("phase_finished", phase="observe", outcome="ok")
        scheduling = [json.loads(line) for line in (sup.run_dir / "scheduling.jsonl").read_bytes().splitlines()]
        assert scheduling and all(s["jobs"] == [] for s in scheduling)
        junit = sup.run_dir / "junit.xml"
        checked = _xmllint(junit)
        assert checked.returncode == 0, checked.stderr
        suite = ET.parse(junit).getroot()
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (str(len(FLEET_CHECKS)), "0", "0")
        assert suite.find("properties/property[@name='observe']").get("value") == "true"  # type: ignore[union-attr]
        assert "observe only" in (sup.run_dir / "summary.md").read_text()
        _assert_nothing_left(sup)


def test_an_observe_run_of_a_cluster_without_workers_fails_as_nothing_observed(tmp_path: Path) -> None:
    """Every scale group at `min_slices = 0` and no demand: discovery lists the controller only."""
    default = (REPO_ROOT / "local_cluster" / "default-config.toml").read_text()
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(default.replace("min_slices = 1", "min_slices = 0"))
    config = tmp_path / "run.toml"
    config.write_text(f'[run]\nobserve = true\nobserve_s = 3\n\n[cluster]\nlocal_config = "{cluster}"\n\n{NO_SETTLE}')
    run_id = f"empty-{uuid.uuid4().hex[:6]}"
    with started(run_argv(run_id, tmp_path / "runs", "--config", str(config)), tmp_path, run_id) as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
        results = sup.results()
        assert results["failure_reasons"] == ["nothing_observed"], results["failure_reasons"]
        assert results["observation"]["host_listings"] > 0 and results["observation"]["most_workers_listed"] == 0
        assert sup.find("nothing_observed")
        _assert_nothing_left(sup)


@pytest.mark.parametrize(
    ("config", "argv", "message"),
    [
        ("", ["--observe", "--tests", "x"], "--tests: conflicts with --observe"),
        ("", ["--observe", "--tests", "simple"], "--tests: conflicts with --observe"),
        ("[run]\nobserve = true\n", ["--tests", "simple"], "--tests: conflicts with run.observe = true"),
        ('[run]\nobserve = true\ntests = ["simple"]\n', [], "run.tests: an observe run (run.observe = true)"),
        ("", ["--observe-s", "10"], "--observe-s: only for an observe run"),
        ("", ["--observe", "--observe-s", "60", "--timeout", "60"], "--observe-s (run.observe_s): the observation"),
        ("[run]\nobserve_s = 0\n", ["--observe"], "run.observe_s: must be"),
    ],
)
def test_observe_beside_a_test_selection_or_a_bad_window_is_refused(
    tmp_path: Path, config: str, argv: list[str], message: str
) -> None:
    (tmp_path / "run.toml").write_text(config)
    done = _iris_smoke("run", "--check-config", "--config", "run.toml", *argv, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_observe_flag_overrides_the_config_files_tests_and_reaches_the_canarys_runs(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('[run]\ntests = ["simple"]\n')
    done = _iris_smoke("run", "--check-config", "--config", "run.toml", "--observe", "--observe-s", "45s",
                       cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)["run"]
    assert (resolved["observe"], resolved["observe_s"]) == (True, 45)
    state = tmp_path / "state"
    canary = _iris_smoke("canary", "--check-config", "--state-dir", str(state), "--", "--observe", cwd=tmp_path)
    assert canary.returncode == 0, canary.stderr
    assert json.loads(canary.stdout)["run"]["run"]["observe"] is True
    bad = _iris_smoke("canary", "--check-config", "--state-dir", str(state), "--", "--observe", "--tests", "simple",
                      cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "run_args: --tests: conflicts with --observe" in bad.stderr, bad.stderr
