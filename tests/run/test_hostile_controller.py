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

import jsonschema
import pytest

from tests.helpers import processes
from tests.helpers.hostile_controller import (
    DUPLICATES,
    LIST_JOBS,
    LIST_WORKERS,
    NAMES_WORKERS,
    OTHER_WORKER_ID,
    VALID_NAMES,
    WORKER,
    running,
)  # fmt: skip
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.tree_memory import MIB, TreeMemory
from tests.run.test_machine_outputs import RESULTS_SCHEMA
from workers.controller.log_server import FETCH_LOGS

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
        # The run's log reader reads it (its first question: the store's last row), and ends its streams'
        # subscriptions with the report; the first stream's reaches the verdict.
        (FETCH_LOGS, "endless", "reply_too_large", "reply_too_large", None),
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


OBSERVE_END_S = 60.0
EVENTS_BOUND = 2 * 1000 * 1000
FEW_NAMES = 1000


# The fleet checks judge the listing once: waiting for a slice or a valid worker to be listed (10 s
# each by default, longer when a listing of 100,000 takes seconds) would only outlast the window.
NO_SETTLE = "[fleet]\nsettle_s = 0\n"


def _observe(tmp_path: Path, url: str, config: str = "", observe_s: int = 5) -> tuple[SupervisorProc, float]:
    """An observe run, listing every second, with `config` (TOML) added to its config; it ends on
    its own (exit 1 or 0)."""
    run_id = f"hostile-{uuid.uuid4().hex[:6]}"
    config_path = tmp_path / "run.toml"
    config_path.write_text(config + NO_SETTLE)
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--observe",
                    "--observe-s", str(observe_s), "--discovery-interval", "1", "--timeout", str(DEADLINE_S),
                    "--config", str(config_path))  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        began = time.monotonic()
        code = sup.wait_exit(DEADLINE_S + 60)
        took_s = time.monotonic() - began
    assert code in (0, 1), f"exit {code}\n{sup.output.read_text()[-3000:]}"
    jsonschema.validate(sup.results(), RESULTS_SCHEMA)
    assert processes.with_run_tag(run_id) == []
    return sup, took_s


def test_a_hundred_thousand_hostile_names_are_said_once_per_listing_and_fail_the_run(tmp_path: Path) -> None:
    """100,000 hostile worker ids each second: a handful of `hosts_rejected` events (one per change, not
    per name or even per listing), a small events file, the valid workers streamed, exit 1 `hosts_rejected`.
    A listing of 100,000 takes discovery 1 to 4 s under load: the window holds several."""
    with running(f"{LIST_WORKERS}=hostile-names") as url:
        sup, took_s = _observe(tmp_path, url, observe_s=15)
    results = sup.results()
    assert sup.popen.returncode == 1 and "hosts_rejected" in results["failure_reasons"], results["failure_reasons"]
    assert took_s < OBSERVE_END_S, f"the run took {took_s:.1f} s"
    events_bytes = (sup.run_dir / "events.jsonl").stat().st_size
    assert events_bytes < EVENTS_BOUND, f"events.jsonl is {events_bytes} bytes"
    said = sup.find("hosts_rejected")
    assert 1 <= len(said) <= 3, [e.get("count") for e in said]
    assert results["observation"]["host_listings"] >= 2, "the same set listed again must not be said again"
    rejected = results["observation"]["hosts_rejected"]
    assert rejected["count"] == said[0]["count"] == NAMES_WORKERS - VALID_NAMES, rejected
    assert rejected["reasons"] == {"invalid_name": NAMES_WORKERS - VALID_NAMES}, rejected
    assert len(rejected["sample"]) == 5 and all(s.isprintable() and s.isascii() for s in rejected["sample"]), rejected
    assert not sup.find("hostile_name_rejected")
    streams = {s["name"] for s in results["streams"]}
    assert {f"stream:hostile-ok-{i}" for i in range(VALID_NAMES)} <= streams, streams


def test_hostile_names_only_warn_when_the_config_says_so(tmp_path: Path) -> None:
    """What the config says of them, not how many: a listing of a thousand, not a hundred thousand."""
    with running(f"{LIST_WORKERS}=hostile-names", names=FEW_NAMES) as url:
        sup, _ = _observe(tmp_path, url, '[verdict]\nhosts_rejected = "warn"\n')
    results = sup.results()
    assert "hosts_rejected" not in results["failure_reasons"], results["failure_reasons"]
    assert results["observation"]["hosts_rejected"]["count"] == FEW_NAMES - VALID_NAMES


def test_a_worker_id_listed_twice_is_named_and_streamed_once(tmp_path: Path) -> None:
    """The same worker id three times in each listing: one stream, `duplicate_hosts` naming it once
    (the listing does not change), two hosts refused as `duplicate`: exit 1 `hosts_rejected`."""
    with running(f"{LIST_WORKERS}=duplicate-ids") as url:
        sup, _ = _observe(tmp_path, url)
    results = sup.results()
    assert sup.popen.returncode == 1 and "hosts_rejected" in results["failure_reasons"], results["failure_reasons"]
    [duplicate] = sup.find("duplicate_hosts")
    assert duplicate["ids"] == [repr(WORKER["workerId"])] and duplicate["count"] == 1, duplicate
    rejected = results["observation"]["hosts_rejected"]
    assert rejected["count"] == DUPLICATES - 1 and rejected["reasons"] == {"duplicate": DUPLICATES - 1}, rejected
    names = [s["name"] for s in results["streams"]]
    assert names.count(f"stream:{WORKER['workerId']}") == 1 and f"stream:{OTHER_WORKER_ID}" in names, names
