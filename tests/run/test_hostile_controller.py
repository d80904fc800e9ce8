"""`iris-smoke run --cluster iris` against a controller that answers one method as a broken or
hostile one would (tests/helpers/hostile_controller.py; the rest of its API a minimal Iris).

Each run has a 120 s deadline and must end well inside it (under END_S), exit 3 with the
reason named in results.json, while the run's processes (the supervisor and everything
under it) stay under a memory bound sampled as it runs: an endless or 100 MB reply is cut at
its cap, a dripped one at its call's time, a reply we cannot read (nested 100,000 deep, a
number out of range) is `iris_api_mismatch` naming the field, never a traceback.
"""

import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import processes
from tests.helpers.hostile_controller import LIST_JOBS, LIST_WORKERS, running
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.tree_memory import MIB, TreeMemory

DEADLINE_S = 120
END_S = 30.0
# The run's tree at rest is about 70 MiB PSS (six processes); a reply may add its cap (32 MiB)
# in each child reading it, and discovery and the tests child both read ListWorkers.
PSS_BOUND = 300 * MIB


def _run(tmp_path: Path, url: str, *flags: str) -> tuple[SupervisorProc, float, TreeMemory]:
    run_id = f"hostile-{uuid.uuid4().hex[:6]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--tests", "simple",
                    "--timeout", str(DEADLINE_S), *flags)  # fmt: skip
    with started(argv, tmp_path, run_id) as sup, TreeMemory(sup.popen.pid) as memory:
        began = time.monotonic()
        code = sup.wait_exit(DEADLINE_S + 60)
        took_s = time.monotonic() - began
    assert code == 3 or code == 1, f"exit {code}\n{sup.output.read_text()[-3000:]}"
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0, results["processes"]
    assert processes.with_run_tag(run_id) == []
    return sup, took_s, memory


@pytest.mark.parametrize(
    ("method", "mode", "reason", "part", "field"),
    [
        (LIST_WORKERS, "endless", "reply_too_large", "reply_too_large", None),
        (LIST_WORKERS, "huge", "reply_too_large", "reply_too_large", None),
        (LIST_WORKERS, "drip", "controller_timeout", "controller_timeout", None),
        (LIST_WORKERS, "deep", "iris_api_mismatch", "api_mismatch", "<body>"),
        (LIST_WORKERS, "big-worker-id", "iris_api_mismatch", "api_mismatch",
         "workers[].metadata.attributes.tpu-worker-id"),
        (LIST_JOBS, "big-epoch", "iris_api_mismatch", "api_mismatch", "jobs[].submittedAt.epochMs"),
    ],
)  # fmt: skip
def test_a_hostile_answer_ends_the_run_at_once_with_its_reason(
    tmp_path: Path, method: str, mode: str, reason: str, part: str, field: str | None
) -> None:
    with running(f"{method}={mode}") as url:
        sup, took_s, memory = _run(tmp_path, url)
    results = sup.results()
    assert sup.popen.returncode == 3, results["failure_reasons"]
    assert results["failure_reasons"][0] == reason, results["failure_reasons"]
    report = results[part]
    assert report["method"] == method, report
    if field is not None:
        assert report["field"] == field, report
    assert took_s < END_S, f"the run took {took_s:.1f} s of its {DEADLINE_S} s deadline"
    assert memory.peak_pss < PSS_BOUND, memory.describe()
    assert not sup.find("child_crashed"), [e.get("exception", "")[-500:] for e in sup.find("child_crashed")]


def test_discovery_failing_every_listing_ends_the_run_at_its_limit(tmp_path: Path) -> None:
    """ListWorkers answers 500 each time: after `discovery_max_failures` listings in a row the run
    ends (`discovery_failed`, exit 1), not at its deadline."""
    with running(f"{LIST_WORKERS}=fail") as url:
        sup, took_s, _ = _run(tmp_path, url, "--discovery-interval", "1")
    results = sup.results()
    assert sup.popen.returncode == 1, results["failure_reasons"]
    assert "discovery_failed" in results["failure_reasons"], results["failure_reasons"]
    assert results["observation"]["most_failed_listings_in_a_row"] >= 6, results["observation"]
    assert took_s < END_S, f"the run took {took_s:.1f} s of its {DEADLINE_S} s deadline"
