"""Probes with their own cadence (`[[probes]]`): each on its own grid, one run at a time, each
run given its probe's tests and timeout, and metrics, `/healthz` and the history page per probe."""

import json
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.errors import ConfigError
from supervisor.canary import config, runs
from supervisor.canary.metrics import TEXTFILE_NAME
from tests.canary.daemon import FAKE_RUN, canary_argv, started
from tests.helpers.supervisor_proc import REPO_ROOT

EXIT_WAIT_S = 60.0


def _write_config(path: Path, probes: str) -> Path:
    command = ", ".join(json.dumps(word) for word in shlex.split(FAKE_RUN))
    path.write_text(f"run_command = [{command}]\nrun_timeout = 120\n{probes}")
    return path


TWO_PROBES = """
[[probes]]
name = "vitals"
interval = 1
tests = "vitals"
run_timeout = 30

[[probes]]
name = "full"
interval = "3s"
"""


def _labelled(textfile: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(textfile.read_text())
        for s in f.samples
    }


def test_two_probes_each_on_its_grid_with_its_tests_metrics_health_and_history(tmp_path: Path) -> None:
    cfg = _write_config(tmp_path / "canary.toml", TWO_PROBES)
    with started(tmp_path, "--config", str(cfg), "--cluster-name", "prod", "--max-runs", "5") as canary:
        assert canary.wait_exit(EXIT_WAIT_S) == 0, canary.output.read_text()[-3000:]
        spawned = canary.find("run_spawned")
    probes = [e["probe"] for e in spawned]
    # Both due at the start: the one declared first runs, the other waits for it (one run at a time).
    assert probes[:2] == ["vitals", "full"], probes
    assert set(probes) == {"vitals", "full"} and probes.count("vitals") > probes.count("full"), probes
    runs_dir = tmp_path / "state" / "runs"
    for event in spawned:
        run_dir = runs_dir / event["run"]
        argv = (run_dir / "argv").read_text().split()
        assert json.loads((run_dir / runs.PROBE_FILE).read_text()) == {"probe": event["probe"]}
        if event["probe"] == "vitals":
            assert argv[-2:] == ["--tests", "vitals"] and argv[argv.index("--timeout") + 1] == "30", argv
        else:
            assert "--tests" not in argv and argv[argv.index("--timeout") + 1] == "120", argv
    samples = _labelled(tmp_path / "state" / "metrics" / TEXTFILE_NAME)
    for probe, interval in (("vitals", 1), ("full", 3)):
        key = ("iris_smoke_probe_interval_seconds", (("cluster", "prod"), ("probe", probe)))
        assert samples[key] == interval
        assert samples[("iris_smoke_runs_total", (("cluster", "prod"), ("outcome", "passed"), ("probe", probe)))] > 0

    # The fleet check's vitals, from the vitals probe's results.json; the suite ran no such check.
    def vital(name: str) -> float:
        return samples[("iris_smoke_controller_vital", (("cluster", "prod"), ("probe", "vitals"), ("vital", name)))]

    assert vital("select_1_seconds") == 0.004 and vital("resident_memory_bytes") == 123456789
    assert not any(n == "iris_smoke_controller_vital" and ("probe", "full") in labels for n, labels in samples)
    # The daemon's own series once, without a probe.
    assert ("iris_smoke_canary_open_fds", (("cluster", "prod"),)) in samples
    index = (runs_dir / "index.html").read_text()
    assert "probe vitals:" in index and "probe full:" in index
    # Restarted: each probe's last run comes back from disk, for /healthz (the fake suite's
    # results.json has no start time, so only the vitals probe's is read).
    last_vitals = runs.last_on_disk(runs_dir, "vitals")
    assert last_vitals is not None and last_vitals.run_id == [e["run"] for e in spawned if e["probe"] == "vitals"][-1]
    assert runs.last_on_disk(runs_dir) is None  # no run of the one suite


def test_healthz_judges_each_probe(tmp_path: Path) -> None:
    cfg = _write_config(tmp_path / "canary.toml", TWO_PROBES.replace('interval = "3s"', 'interval = "1h"'))
    with started(tmp_path, "--config", str(cfg)) as canary:
        canary.wait_event("run_completed", probe="full")
        port = canary.find("endpoint_serving")[0]["port"]
        try:  # 200 or 503 (a 1 s probe may be between runs past its two intervals on a loaded host)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
                health = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            health = json.loads(exc.read())
    assert set(health["probes"]) == {"vitals", "full"}, health
    assert health["probes"]["full"]["interval_s"] == 3600 and health["probes"]["vitals"]["interval_s"] == 1
    assert health["probes"]["full"]["last_run"]["outcome"] == "passed"


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ('[[probes]]\nname = "v"\n', "probes: [0]: interval: required"),
        ('[[probes]]\nname = "v"\ninterval = 1\ncadence = 2\n', "probes: [0]: cadence: unknown key"),
        ('[[probes]]\nname = "a b"\ninterval = 1\n', "probes: [0]: name: expected a name"),
        ('[[probes]]\nname = "v"\ninterval = 1\n[[probes]]\nname = "v"\ninterval = 2\n', "probe names must differ"),
        ('[[probes]]\nname = "v"\ninterval = 1\ntests = ["a,b"]\n', "probes: [0]: tests: expected"),
    ],
)
def test_bad_probes_name_the_field(tmp_path: Path, probes: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.load_file(_write_config(tmp_path / "canary.toml", probes))


def test_without_probes_the_one_suite_runs_on_interval() -> None:
    cfg = config.CanaryConfig(interval_s=60.0, run_timeout_s=30.0)
    assert cfg.schedule == (config.Probe("suite", 60.0),) and cfg.timeout_of(cfg.schedule[0]) == 30.0


def test_check_config_checks_each_probes_tests_through_the_runs_preflight(tmp_path: Path) -> None:
    cfg = tmp_path / "canary.toml"
    cfg.write_text('[[probes]]\nname = "v"\ninterval = 60\ntests = "no_such_set"\n')
    argv = canary_argv(tmp_path / "state", "--config", str(cfg), "--check-config")
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "probes (v): --tests: 'no_such_set'" in done.stderr, done.stderr
