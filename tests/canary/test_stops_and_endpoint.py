"""Honest stops and the endpoint an SRE watches, with real processes: a stopped run is
`cancelled` and leaves the failure streak alone; `/metrics` and `/healthz` answer on a
non-loopback address and carry the `cluster` label."""

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from supervisor.canary.metrics import TEXTFILE_NAME
from tests.canary.daemon import FAKE_RUN, started
from tests.helpers.waiting import wait_for

EXIT_WAIT_S = 60.0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _textfile(state_dir: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return _samples((state_dir / "metrics" / TEXTFILE_NAME).read_text())


def _non_loopback_addresses() -> list[str]:
    """This host's own addresses that are not loopback (nor link-local, which needs a scope)."""
    found = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6) and not a.address.startswith(("127.", "::1", "fe80"))
    ]
    assert found, "no non-loopback address on this host: the endpoint test needs one (an eth0)"
    return found


def _get(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _url(address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


def test_a_stop_mid_run_is_cancelled_keeps_the_failure_streak_and_writes_the_report(tmp_path: Path) -> None:
    # Two failed runs: the streak is 2, and it survives the restart below.
    failing = ("--interval", "0.2s", "--max-runs", "2", "--run-command", FAKE_RUN)
    with started(tmp_path, *failing, env={"FAKE_RUN_OUTCOME": "failed"}, name="failing") as canary:
        assert canary.wait_exit(EXIT_WAIT_S) == 0
    assert _textfile(canary.state_dir)[("iris_smoke_consecutive_failed_runs", (("cluster", "state"),))] == 2
    # A real run, stopped mid-way by the daemon's own stop.
    args = ("--interval", "1h", "--cleanup-budget", "20", "--", "--demo-streams", "1", "--demo-duration", "60")
    with started(tmp_path, *args, name="stopped") as canary:
        run_id = canary.wait_event("run_spawned")[0]["run"]
        events = canary.state_dir / "runs" / run_id / "events.jsonl"
        wait_for(lambda: events.exists() and '"new":"running"' in events.read_text(), 30, "the run's child running")
        canary.signal(signal.SIGTERM)
        assert canary.wait_exit(EXIT_WAIT_S) == 0
        done = canary.find("run_completed")[0]
        assert done["outcome"] == "cancelled" and done["exit_code"] == 143, done
        assert not canary.find("run_killed")
    run_dir = canary.state_dir / "runs" / run_id
    assert json.loads((run_dir / "results.json").read_text())["outcome"] == "cancelled"
    assert (run_dir / "report.html").stat().st_size > 0
    samples = _textfile(canary.state_dir)
    assert samples[("iris_smoke_consecutive_failed_runs", (("cluster", "state"),))] == 2
    assert samples[("iris_smoke_runs_total", (("cluster", "state"), ("outcome", "cancelled")))] == 1
    assert samples[("iris_smoke_last_run_exit_code", (("cluster", "state"),))] == 143


def test_a_run_stopped_past_its_own_deadline_gets_the_whole_cleanup_budget_from_the_stop(tmp_path: Path) -> None:
    """The kill deadline of a stopping run is the stop plus the cleanup budget, not the run's start
    plus its timeout plus the budget: a run cleaning up for 2 s from a stop 2.5 s into a 0.5 s
    timeout is not KILLed. It ends 4.5 s or more after its start (the daemon spawned it before
    the test saw it spawned), past the 4 s a limit from the start would give it; the stop comes
    1.5 s before that limit, and the cleanup ends 1.5 s inside the budget from the stop."""
    args = ("--interval", "1h", "--run-timeout", "0.5", "--cleanup-budget", "3.5", "--run-command", FAKE_RUN)
    with started(tmp_path, *args, env={"FAKE_RUN_CLEANUP_S": "2"}) as canary:
        run_id = canary.wait_event("run_spawned")[0]["run"]
        spawned_at = time.monotonic()
        wait_for((canary.state_dir / "runs" / run_id / "running").exists, 10, "the fake run waiting")
        wait_for(lambda: time.monotonic() - spawned_at >= 2.5, 10, "2.5 s into the run")
        canary.signal(signal.SIGTERM)
        assert canary.wait_exit(EXIT_WAIT_S) == 0
        assert not canary.find("run_killed"), canary.find("run_killed")
        done = canary.find("run_completed")[0]
        assert done["outcome"] == "cancelled" and done["exit_code"] == 143, done


def _health(address: str, port: int) -> tuple[int, dict[str, Any]]:
    status, headers, body = _get(_url(address, port, "/healthz"))
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def test_metrics_and_healthz_over_every_address_with_the_cluster_label(tmp_path: Path) -> None:
    addresses = _non_loopback_addresses()
    args = ("--listen", "[::]:0", "--cluster-name", "prod-v5e", "--interval", "1h", "--run-command", FAKE_RUN)
    (tmp_path / "ok").mkdir()
    (tmp_path / "failing").mkdir()
    with started(tmp_path / "ok", *args) as canary:
        canary.wait_event("run_completed")
        port = canary.find("endpoint_serving")[0]["port"]
        for address in addresses:
            status, health = _health(address, port)
            assert status == 200 and health["healthy"] and health["cluster"] == "prod-v5e", health
            last = health["probes"]["suite"]["last_run"]
            assert last["outcome"] == "passed" and Path(last["run_dir"]).is_dir()
            assert 0 <= last["age_s"] < 3600 and last["duration_s"] == 0.001 and last["reasons"] == []
            status, headers, body = _get(_url(address, port, "/metrics"))
            assert status == 200 and headers["Content-Type"].startswith("text/plain")
            samples = _samples(body.decode())
            assert samples[("iris_smoke_runs_total", (("cluster", "prod-v5e"), ("outcome", "passed")))] == 1
            assert all(dict(labels).get("cluster") == "prod-v5e" for _name, labels in samples), samples
        _status, headers, body = _get(_url(addresses[0], port, "/metrics"), "application/openmetrics-text")
        assert headers["Content-Type"].startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
        assert _get(_url(addresses[0], port, "/-/healthy"))[0] == 404
        textfile = _textfile(canary.state_dir)
        assert textfile[("iris_smoke_runs_total", (("cluster", "prod-v5e"), ("outcome", "passed")))] == 1
    with started(tmp_path / "failing", *args, env={"FAKE_RUN_OUTCOME": "failed"}) as canary:
        canary.wait_event("run_completed")
        port = canary.find("endpoint_serving")[0]["port"]
        status, health = _health(addresses[-1], port)
        assert status == 503 and health["reasons"] == ["not_passed: probe suite"], health
        assert health["probes"]["suite"]["last_run"]["outcome"] == "failed"
