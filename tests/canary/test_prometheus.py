"""A real Prometheus (Debian's `prometheus` package) scrapes a live canary and evaluates
monitoring/alerts.yml against that scrape: the recording rules produce series, every rule
evaluates without error, a failure streak fires its alert with the cluster, and a canary that
stops answering goes `up == 0` and pending as IrisSmokeCanaryDown with its cluster."""

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import ports
from tests.canary.daemon import FAKE_RUN, started
from tests.helpers.supervisor_proc import REPO_ROOT
from tests.helpers.waiting import wait_for

PROMETHEUS = "/usr/bin/prometheus"
READY_S = 60.0
ALERT_S = 60.0
# Every scrape and rule evaluation each second, so the test waits seconds, not minutes.
CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: iris-smoke-canary
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@contextmanager
def prometheus(tmp_path: Path, canary_port: int) -> Iterator[str]:
    """Prometheus on loopback scraping the canary, with a temporary config and data directory;
    yields its base URL once /-/ready says so; stopped and reaped after."""
    binary = shutil.which("prometheus") or (PROMETHEUS if Path(PROMETHEUS).exists() else None)
    assert binary, "prometheus is missing: install Debian's prometheus package (apt-get install prometheus)"
    config = tmp_path / "prometheus.yml"
    config.write_text(CONFIG.format(rules=REPO_ROOT / "monitoring" / "alerts.yml", port=canary_port))
    port = ports.free_port()
    argv = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert popen.poll() is None, f"prometheus exited ({popen.returncode}):\n{log.read_text()[-3000:]}"
            return _get(f"{base}/-/ready")[0] == 200

        wait_for(ready, READY_S, "prometheus /-/ready")
        yield base
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    status, body = _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert status == 200, body
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result


def _rules(base: str) -> list[dict[str, Any]]:
    status, body = _get(f"{base}/api/v1/rules")
    assert status == 200, body
    return [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]


def test_prometheus_scrapes_the_canary_and_its_rules_evaluate(tmp_path: Path) -> None:
    args = ("--cluster-name", "prod-x", "--interval", "1", "--run-command", FAKE_RUN)
    with started(tmp_path, *args, env={"FAKE_RUN_OUTCOME": "failed"}) as canary:
        canary_port = canary.find("endpoint_serving")[0]["port"]
        with prometheus(tmp_path, canary_port) as base:
            firing = 'ALERTS{alertname="IrisSmokeConsecutiveFailures", alertstate="firing"}'
            alert = wait_for(lambda: _query(base, firing), ALERT_S, "IrisSmokeConsecutiveFailures firing")[0]
            assert alert["metric"]["cluster"] == "prod-x" and alert["metric"]["job"] == "iris-smoke-canary"
            # The recording rules evaluate over the scraped histograms (a fake run measures no
            # latency: seven days of none is a count of 0, and no median).
            count = 'probe:iris_smoke_scheduling_latency_seconds:count7d{cluster="prod-x"}'
            assert float(wait_for(lambda: _query(base, count), ALERT_S, count)[0]["value"][1]) == 0

            def evaluated() -> list[dict[str, Any]]:
                rules = _rules(base)
                return rules if all(r["lastEvaluation"] > "0001-01-02" for r in rules) else []

            rules = wait_for(evaluated, ALERT_S, "every rule evaluated once")
            assert {r["health"] for r in rules} == {"ok"}, [(r["name"], r.get("lastError")) for r in rules]
            assert {r["name"] for r in rules if r["type"] == "alerting"} >= {
                "IrisSmokeCanaryDown", "IrisSmokeNoPassingRun", "IrisSmokeSchedulingSlow",
            }  # fmt: skip
            canary.popen.kill()  # the daemon dies: scrapes fail
            canary.popen.wait(timeout=10)
            down = 'ALERTS{alertname="IrisSmokeCanaryDown"}'
            pending = wait_for(lambda: _query(base, down), ALERT_S, "IrisSmokeCanaryDown pending")[0]["metric"]
            assert pending["cluster"] == "prod-x" and pending["alertstate"] == "pending", pending
            assert _query(base, 'up{job="iris-smoke-canary"}')[0]["value"][1] == "0"
