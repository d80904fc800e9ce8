"""`iris-smoke run` against a real Iris behind an IAP-like proxy: two credentials on every request.

A real Iris local cluster with its own auth on, reached through the loopback proxy
(tests/helpers/connect_proxy.py) as an ingress (`--ingress`: Iris then wants its token) that
also plays IAP (`--require-proxy-token`: every request, the log service's through the controller's
proxy route too, needs a proxy token signed with the test's secret, not expired; else 401
`Invalid IAP credentials: ...`). The
proxy token comes from `[iris] proxy_token_command`, tests/helpers/mint_proxy_token.py, which
logs each token it mints and the process that asked:
- with tokens that live 3 s the run passes, streams hold lines, and processes fetch tokens again;
  neither token is in a file of the run, an argv or an environment of its processes (looked at
  while they run, followers included), or the environment its task prints;
- without the proxy credential: exit 3 at once, `controller_unauthenticated` with
  `credential=proxy`; with it but an Iris token Iris refuses: `credential=iris`.
"""

import collections
import contextlib
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import mint_proxy_token, processes
from tests.helpers.connect_proxy import running as proxy
from tests.helpers.iris import IrisCluster, IrisRPCError, files_holding, post, running_iris_cluster
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for
from tests.iris.test_iris_api_errors import _a_worker_is_up, _log_server_url

RUN_EXIT_S = 90.0
REFUSED_WITHIN_S = 30.0  # a refused credential ends the run at once: far less than its 60 s deadline
SCAN_EVERY_S = 0.5
LOGS_S = 15.0
CONTROLLER = "iris.cluster.ControllerService"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
MINT = Path(mint_proxy_token.__file__)
ENV_DUMP = """
[[tests]]
name = "env-dump"
argv = ["sh", "-c", "env | sed 's/^/task-env: /'"]
"""


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("iris_iap")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """One real Iris with its auth on for the module: each test reaches it through a proxy of its own
    and changes nothing on it (its jobs are swept by its run)."""
    with running_iris_cluster(tmp_path_factory.mktemp("iris"), auth=True) as cluster:
        yield cluster


class Iap:
    """The proxy's secret, and the command that mints tokens living `lifetime_s` (all of them logged)."""

    def __init__(self, tmp_path: Path, lifetime_s: int = 3) -> None:
        self.secret_file = tmp_path / "iap-secret"
        self.secret_file.write_text(secrets.token_hex(16))
        self.minted = tmp_path / "minted"
        self.command = [sys.executable, str(MINT), str(self.secret_file), str(lifetime_s), str(self.minted)]

    def flags(self) -> tuple[str, ...]:
        return ("--ingress", "--require-proxy-token", str(self.secret_file))

    def tokens(self) -> list[str]:
        return [line.split()[1] for line in self.minted.read_text().splitlines()] if self.minted.exists() else []

    def fetches_by_process(self) -> collections.Counter[str]:
        return collections.Counter(line.split()[0] for line in self.minted.read_text().splitlines())


def _config(tmp_path: Path, iris_token: str, command: list[str] | None, extra: str = "") -> Path:
    token_file = tmp_path / "iris-token"
    token_file.write_text(iris_token + "\n")
    token_file.chmod(0o600)
    iris = f'[iris]\ntoken_file = "{token_file}"\n'
    if command is not None:
        iris += "proxy_token_command = [" + ", ".join(f'"{word}"' for word in command) + "]\n"
    config = tmp_path / "run.toml"
    config.write_text(iris + extra)
    return config


def _argv(run_id: str, tmp_path: Path, url: str, config: Path, tests: str) -> list[str]:
    return run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--config", str(config),
                    "--tests", tests, "--timeout", "60")  # fmt: skip


def _watch(sup: SupervisorProc, secrets_now: Callable[[], list[str]]) -> tuple[set[int], list[str]]:
    """Until the run exits: the pids of what reads its log service (its log reader), and every secret
    seen in an argv or an environment."""
    followers: set[int] = set()
    leaks: list[str] = []
    next_scan = [0.0]

    def exited() -> bool:
        if time.monotonic() >= next_scan[0]:
            next_scan[0] = time.monotonic() + SCAN_EVERY_S
            found = secrets_now()
            readers = processes.followers_under(sup.popen.pid, processes.LOG_SERVICE_READERS)
            followers.update(proc.pid for proc in readers)
            for proc in processes.with_run_tag(sup.run_id):
                with contextlib.suppress(psutil.Error):
                    argv = "\0".join(proc.cmdline())
                    environ = "\0".join(f"{k}={v}" for k, v in proc.environ().items())
                    leaks.extend(f"{proc.pid}: {argv[:120]}" for s in found if s in argv or s in environ)
        return sup.popen.poll() is not None

    wait_for(exited, RUN_EXIT_S, "the run's end")
    return followers, leaks


def _task_env(cluster_url: str, sup: SupervisorProc) -> list[str]:
    """What the env-dump task printed, from Iris's log service (directly: loopback is trusted)."""
    (job,) = [e["job"] for e in sup.find("job_launched") if e["test"] == "env-dump"]
    body = {"source": f"{job}/", "matchScope": "MATCH_SCOPE_PREFIX", "maxLines": 1000}

    def printed() -> list[str]:
        entries = post(_log_server_url(cluster_url), FETCH_LOGS, body).get("entries", [])
        lines = [str(e.get("data", "")) for e in entries if "task-env: " in str(e.get("data", ""))]
        return lines if any("task-env: PATH=" in line for line in lines) else []

    return wait_for(printed, LOGS_S, "the env-dump task's output in the log service")


def test_a_run_behind_iap_passes_fetching_its_short_lived_proxy_token_again_and_leaks_no_token(
    iris: IrisCluster, tmp_path: Path
) -> None:
    iap = Iap(tmp_path, lifetime_s=3)
    run_id = f"iap-{uuid.uuid4().hex[:6]}"
    with proxy(iris.url, *iap.flags()) as url:
        with pytest.raises(IrisRPCError) as tokenless:
            post(url, f"{CONTROLLER}/ListWorkers", {})
        assert tokenless.value.status == 401 and "Invalid IAP credentials" in tokenless.value.body
        iris_token = iris.session_token()
        config = _config(tmp_path, iris_token, iap.command, ENV_DUMP)
        _a_worker_is_up(iris.url)
        with started(_argv(run_id, tmp_path, url, config, "simple,env-dump"), tmp_path, run_id) as sup:
            followers, leaks = _watch(sup, lambda: [iris_token, *iap.tokens()])
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            results = sup.results()
            assert results["failure_reasons"] == [] and {t["outcome"] for t in results["tests"]} == {"passed"}
            streams = results["streams"]
            assert any(s["name"].endswith("-controller") for s in streams) and len(streams) >= 2, streams
            assert all(s["lines"] > 0 for s in streams), streams
            # Tokens live 3 s, the run about 15: some process fetched its token again.
            assert max(iap.fetches_by_process().values()) > 1, iap.fetches_by_process()
            # The log reader ran the proxy token command itself (the minter logs its parent's pid).
            assert followers & {int(pid) for pid in iap.fetches_by_process()}, (followers, iap.fetches_by_process())
            assert leaks == [], leaks
            task_env = _task_env(iris.url, sup)
            tokens = [iris_token, *iap.tokens()]
            assert len(tokens) > 2
            for token in tokens:
                assert files_holding(sup.run_dir, token) == []
                assert token not in sup.output.read_text()
                assert not [line for line in task_env if token in line]
            assert processes.with_run_tag(sup.run_id) == []


def _refused(iris: IrisCluster, tmp_path: Path, iris_token: Callable[[str], str], command: bool) -> dict[str, str]:
    """A run whose one credential is refused: exit 3 well before its deadline; what it says was refused."""
    iap = Iap(tmp_path, lifetime_s=300)
    run_id = f"iapno-{uuid.uuid4().hex[:6]}"
    with proxy(iris.url, *iap.flags()) as url:
        config = _config(tmp_path, iris_token(iris.session_token()), iap.command if command else None)
        started_at = time.monotonic()
        with started(_argv(run_id, tmp_path, url, config, "simple"), tmp_path, run_id) as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 3, sup.output.read_text()[-3000:]
            assert time.monotonic() - started_at < REFUSED_WITHIN_S
            results = sup.results()
            assert results["failure_reasons"][0] == "controller_unauthenticated", results["failure_reasons"]
            event = sup.find("controller_unauthenticated")[0]
            assert event["credential"] == results["controller_unauthenticated"]["credential"]
            for token in iap.tokens():
                assert files_holding(sup.run_dir, token) == []
            assert processes.with_run_tag(sup.run_id) == []
            return dict(results["controller_unauthenticated"])


def test_without_the_proxy_credential_the_run_is_unauthenticated_naming_the_proxy(
    iris: IrisCluster, tmp_path: Path
) -> None:
    refused = _refused(iris, tmp_path, lambda good: good, command=False)
    assert refused["code"] == "unauthenticated" and refused["credential"] == "proxy", refused
    assert "Invalid IAP credentials" in refused["details"] and "proxy_token_command" in refused["details"], refused


def test_a_token_iris_refuses_behind_the_proxy_names_iris(iris: IrisCluster, tmp_path: Path) -> None:
    refused = _refused(iris, tmp_path, lambda _good: "not-a-valid-token", command=True)
    assert refused["code"] == "unauthenticated" and refused["credential"] == "iris", refused
    assert "authentication failed" in refused["details"], refused
