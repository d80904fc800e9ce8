"""Start the real Iris (PyPI `marin-iris`) as a local cluster for a test, and never leave it behind.

    with running_iris_cluster(tmp_path) as cluster:
        workers = post(cluster.url, "iris.cluster.ControllerService/ListWorkers", {})

The `iris` executable comes from IRIS_SMOKE_IRIS_BIN, else from the cache directory that
`bash scripts/install_iris.sh` builds for the pinned versions (scripts/iris-versions.env). A
missing Iris fails the test: the real thing is what these tests are for, so they never skip.

The cluster runs as `iris --config FILE cluster start` in a session of its own, with HOME and
TMPDIR inside the test's directory (see workers.iris_local) and a unique IRIS_SMOKE_RUN_ID that
its descendants inherit. Readiness handshake: the URL Iris prints on stdout, then `GET /health`
answering ok. Teardown, even when the test failed: SIGTERM to its group, a bounded wait, SIGKILL
(via tests.helpers.cluster.stop_cluster), and the helper raises if anything had to be killed or if
Iris left temporary directories behind after a clean stop.
"""

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from common import env as run_env
from common import ports
from common.processes import signal_group
from tests.helpers.cluster import stop_cluster
from tests.helpers.processes import with_run_tag
from tests.helpers.waiting import wait_for
from workers import iris_local

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_iris.sh"
VERSIONS_FILE = REPO_ROOT / "scripts" / "iris-versions.env"
BIN_ENV = "IRIS_SMOKE_IRIS_BIN"
TERM_GRACE_S = 10.0  # Iris's stop after SIGTERM, before the group is KILLed
START_TIMEOUT_S = 60.0  # a readiness wait: a loaded 2-core machine takes a while to start Iris
# Iris can take its time: a killed task's thread gets 5 s, its log client 10 s to drain (seen with 0.2.227).
STOP_TIMEOUT_S = 30.0
# After the leader exits, how long the rest of its group and its tagged descendants get to go by themselves.
DESCENDANTS_EXIT_S = 3.0
HTTP_TIMEOUT_S = 10.0
POLL_S = 0.1
_STARTED = re.compile(rb"Controller started at (http://\S+)")
# The admin token a local Iris mints at start and prints for its dashboard (`?session_token=JWT`).
_SESSION_TOKEN = re.compile(rb"[?&]session_token=([A-Za-z0-9_.-]+)")
# Auth on, trusting a network no test connects from (TEST-NET-1). Iris always trusts a direct
# loopback peer, so only calls through a front-end hop (X-Forwarded-For) then need a token.
AUTH_ON = "auth: {trusted_cidrs: ['192.0.2.0/24']}\n"
# Never through a proxy from the environment: the cluster is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pinned_versions() -> dict[str, str]:
    """The KEY=VALUE pins that scripts/install_iris.sh sources (IRIS_VERSION, FINELOG_VERSION)."""
    pins = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def default_iris_bin() -> Path:
    """Where scripts/install_iris.sh puts `iris` for the current environment (the same rule as the script)."""
    version = os.environ.get("IRIS_SMOKE_IRIS_VERSION") or pinned_versions()["IRIS_VERSION"]
    venv = os.environ.get("IRIS_SMOKE_IRIS_VENV")
    if not venv:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path(os.environ["HOME"]) / ".cache")
        venv = str(Path(cache) / "iris-smoke" / f"iris-{version}")
    return Path(venv) / "bin" / "iris"


def iris_bin() -> str:
    """The `iris` executable to test against; fails the test (never skips) when it is not installed."""
    configured = os.environ.get(BIN_ENV)
    path = Path(configured) if configured else default_iris_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = f"{BIN_ENV}={configured}" if configured else f"the default for the pinned version ({path})"
        pytest.fail(
            f"the real Iris is not installed: no executable at {path} ({source}). "
            f"Run `bash scripts/install_iris.sh` (it prints the path to put in {BIN_ENV}).",
            pytrace=False,
        )
    return str(path)


@dataclasses.dataclass
class IrisCluster:
    url: str  # http://127.0.0.1:PORT
    popen: "subprocess.Popen[bytes]"
    home: Path
    tmpdir: Path
    run_id: str
    run_dir: Path  # config.yaml, iris.stdout, iris.stderr, home/, tmp/

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def stderr_path(self) -> Path:
        return self.run_dir / "iris.stderr"

    def session_token(self) -> str:
        """The admin JWT Iris minted at start (it prints it on its dashboard link)."""
        found = _SESSION_TOKEN.search((self.run_dir / "iris.stdout").read_bytes())
        assert found, "Iris printed no dashboard session token"
        return found.group(1).decode()


class IrisRPCError(AssertionError):
    def __init__(self, url: str, status: int, body: str) -> None:
        super().__init__(f"POST {url} -> HTTP {status}: {body[:2000]}")
        self.url = url
        self.status = status
        self.body = body


def post(url: str, method_path: str, body: dict[str, Any], timeout_s: float = HTTP_TIMEOUT_S) -> dict[str, Any]:
    """One Connect-protocol JSON call, `POST {url}/{method_path}`; raises IrisRPCError unless HTTP 200."""
    target = f"{url.rstrip('/')}/{method_path.lstrip('/')}"
    request = urllib.request.Request(
        target,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, data = err.code, err.read()
    if status != 200:
        raise IrisRPCError(target, status, data.decode(errors="replace"))
    parsed: dict[str, Any] = json.loads(data)
    return parsed


def files_holding(root: Path, secret: str) -> list[str]:
    """Every file under `root` whose bytes contain `secret` (a token that must be in none)."""
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace")
    except OSError as err:
        return f"({path}: {err})"


def _health_ok(url: str) -> bool:
    try:
        with _OPENER.open(f"{url}/health", timeout=1.0) as response:
            return response.status == 200 and bool(json.loads(response.read()).get("status") == "ok")
    except (OSError, ValueError):  # refused, reset, timed out, HTTP error, not JSON yet
        return False


class _PortTaken(Exception):
    """Iris could not bind the port written in its config: another process took it after `free_port`."""


def _wait_ready(popen: "subprocess.Popen[bytes]", stdout_path: Path, stderr_path: Path) -> str:
    """The URL Iris printed, once `GET /health` says ok; fails with its output if it exits, stalls
    or says it failed to start (Iris 0.2.227 then hangs rather than exit: workers.iris_local)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    url = None
    while True:
        if url is None:
            found = _STARTED.search(stdout_path.read_bytes())
            url = found.group(1).decode().rstrip("/") if found else None
        if url is not None and _health_ok(url):
            return url
        exited = popen.poll() is not None
        failure = iris_local.start_failure(stderr_path, exited=exited)
        if iris_local.is_bind_failure(failure):
            raise _PortTaken(failure)
        if failure or exited:
            reason = f"failed to start: {failure or f'exited with {popen.returncode}'}"
            break
        if time.monotonic() >= deadline:
            reason = f"was not ready within {START_TIMEOUT_S:.0f} s (url: {url or 'not printed'})"
            break
        time.sleep(POLL_S)
    raise AssertionError(
        f"Iris cluster {reason}\n--- stdout tail:\n{_tail(stdout_path, 1000)}\n--- stderr tail:\n{_tail(stderr_path)}"
    )


def _group_members(pgid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _stop(cluster: IrisCluster, term_grace_s: float = TERM_GRACE_S) -> list[str]:
    """Stop the cluster; returns a description of everything that did not go by itself."""
    popen, problems, killed_iris = cluster.popen, [], False
    if popen.poll() is None:
        signal_group(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=term_grace_s)
        except subprocess.TimeoutExpired:
            # Iris 0.2.227's own stop can hang for a minute on its workers' log flushes (see
            # workers/iris_local.STOP_GRACE_S): KILL, as a run does. Its temporary directories
            # then stay, inside this test's directory.
            signal_group(popen.pid, signal.SIGKILL)
            popen.wait(timeout=STOP_TIMEOUT_S)
            killed_iris = True
    # Whatever is left of its group or carries its tag gets a moment to exit before stop_cluster kills it.
    deadline = time.monotonic() + DESCENDANTS_EXIT_S
    while True:
        left = {p.pid: p for p in [*_group_members(popen.pid), *with_run_tag(cluster.run_id)] if p.pid != popen.pid}
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    for proc in left.values():
        with contextlib.suppress(psutil.Error):
            problems.append(f"outlived iris (killed): {proc.pid} {' '.join(proc.cmdline())[:200]}")
    # SIGKILL to the group, then to whatever still carries the run tag (e.g. in a session of its own).
    killed = stop_cluster(popen, cluster.run_id, timeout_s=STOP_TIMEOUT_S)
    problems += [f"killed by run tag: {name[:200]}" for name in killed if int(name.split()[0]) not in left]
    if not problems and not killed_iris:
        leftover_dirs = sorted(p.name for p in cluster.tmpdir.glob("iris_*"))
        if leftover_dirs:
            problems.append(f"Iris left temporary directories in {cluster.tmpdir}: {leftover_dirs}")
    return problems


def _launch(binary: str, tmp_path: Path, config_text: str | None, auth: bool) -> IrisCluster:
    """`iris cluster start` in a directory of its own, in a session of its own, not yet ready."""
    run_dir = tmp_path / f"iris-{uuid.uuid4().hex[:8]}"
    home, tmpdir = run_dir / "home", run_dir / "tmp"
    home.mkdir(parents=True)
    tmpdir.mkdir()
    config_path = run_dir / "config.yaml"
    if config_text is None:
        config_text = iris_local.local_config_yaml(ports.free_port()) + (AUTH_ON if auth else "")
    config_path.write_text(config_text)
    run_id = f"test-iris-{uuid.uuid4().hex[:12]}"
    env = iris_local.iris_env(os.environ, home, tmpdir)
    env[run_env.RUN_TAG] = run_id
    with open(run_dir / "iris.stdout", "wb") as stdout, open(run_dir / "iris.stderr", "wb") as stderr:
        popen = subprocess.Popen(
            iris_local.iris_argv(binary, str(config_path)),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=run_dir,
            start_new_session=True,
        )
    return IrisCluster(url="", popen=popen, home=home, tmpdir=tmpdir, run_id=run_id, run_dir=run_dir)


def _ready(binary: str, tmp_path: Path, config_text: str | None, auth: bool) -> IrisCluster:
    """A launched cluster once it serves. On our config a port taken between `free_port` and Iris's
    bind (other tests run alongside) is retried once on a fresh port, as a run does (workers.cluster)."""
    attempts = 2 if config_text is None else 1
    for attempt in range(1, attempts + 1):
        cluster = _launch(binary, tmp_path, config_text, auth)
        try:
            cluster.url = _wait_ready(cluster.popen, cluster.run_dir / "iris.stdout", cluster.stderr_path)
            return cluster
        except _PortTaken as taken:
            _stop(cluster, term_grace_s=0.0)  # a failed start hangs: KILL it, what it left is of no interest
            if attempt == attempts:
                raise AssertionError(f"Iris cluster could not bind its port: {taken}") from None
        except BaseException:
            _raise_unless_clean(cluster)
            raise
    raise AssertionError("unreachable")


def _raise_unless_clean(cluster: IrisCluster) -> None:
    problems = _stop(cluster)
    if problems:
        raise AssertionError(
            "Iris cluster did not stop cleanly:\n"
            + "\n".join(problems)
            + f"\n--- stderr tail:\n{_tail(cluster.stderr_path)}"
        )


@contextlib.contextmanager
def running_iris_cluster(tmp_path: Path, config_text: str | None = None, auth: bool = False) -> Iterator[IrisCluster]:
    """A serving real Iris local cluster; stops it and checks it left nothing behind.

    With no `config_text`, the default config of a `--cluster iris-local` run on a free port, with
    Iris's auth on (`AUTH_ON`) if `auth`. A given config must set `controller.local.port` itself
    (the URL is read from the line Iris prints).
    """
    assert not (auth and config_text is not None), "auth applies to the default config only"
    cluster = _ready(iris_bin(), tmp_path, config_text, auth)
    try:
        yield cluster
    finally:
        _raise_unless_clean(cluster)


IRIS_CONTROLLER = "iris.cluster.ControllerService"


def task_states(url: str, job_id: str) -> list[str]:
    """The states of a job's tasks, in the controller's own words (`TASK_STATE_RUNNING`)."""
    return [str(t["state"]) for t in post(url, f"{IRIS_CONTROLLER}/ListTasks", {"jobId": job_id}).get("tasks", [])]


def launch_bystander(url: str, constraints: tuple[dict[str, Any], ...] = ()) -> str:
    """Someone else's long job on the cluster (a root no run has, Iris's default band), once it runs."""
    body = {
        "name": f"/bystander-{uuid.uuid4().hex[:8]}/sleeper",
        "replicas": 1,
        "entrypoint": {"runCommand": {"argv": ["sleep", "600"]}},
        "resources": {"cpuMillicores": 100, "memoryBytes": str(100 * 1024 * 1024)},
        "constraints": list(constraints),
    }
    job_id = str(post(url, f"{IRIS_CONTROLLER}/LaunchJob", body)["jobId"])
    state = lambda: post(url, f"{IRIS_CONTROLLER}/GetJobStatus", {"jobId": job_id})["job"]["state"]  # noqa: E731
    wait_for(lambda: state() == "JOB_STATE_RUNNING", 30, "the bystander running")
    return job_id


# A job in one of these has not ended (Iris 0.2.227 job states).
UNFINISHED_JOB_STATES = frozenset({"JOB_STATE_PENDING", "JOB_STATE_BUILDING", "JOB_STATE_RUNNING"})
_LIST_LIMIT = 500  # Iris's most per ListJobs page


def jobs_under(url: str, prefix: str = "") -> dict[str, str]:
    """Every job on the cluster (under `prefix`), with its state: the controller's own listing."""
    query: dict[str, Any] = {"limit": _LIST_LIMIT, **({"jobIdPrefix": prefix} if prefix else {})}
    reply = post(url, f"{IRIS_CONTROLLER}/ListJobs", {"query": query})
    assert not reply.get("hasMore"), f"more than {_LIST_LIMIT} jobs on the cluster: page through them"
    return {str(j["jobId"]): str(j["state"]) for j in reply.get("jobs", [])}


def unfinished(jobs: dict[str, str]) -> dict[str, str]:
    """Those of `jobs` (a `jobs_under` listing) that have not ended."""
    return {job: state for job, state in jobs.items() if state in UNFINISHED_JOB_STATES}


def unfinished_jobs(url: str, prefix: str = "") -> dict[str, str]:
    """Every job on the cluster (under `prefix`) that has not ended, with its state: what a test
    sharing a standing cluster checks it left behind (nothing but its own bystander)."""
    return unfinished(jobs_under(url, prefix))


def healthy_workers(url: str) -> list[dict[str, Any]]:
    return [w for w in post(url, f"{IRIS_CONTROLLER}/ListWorkers", {}).get("workers", []) if w.get("healthy")]


@contextlib.contextmanager
def standing_iris_cluster(tmp_path: Path, auth: bool = False, workers: int = 2) -> Iterator[IrisCluster]:
    """`running_iris_cluster` once `workers` of its workers are healthy (the default config's two CPU
    workers): a warm cluster a module's attached runs share, so a run's clock starts on a cluster
    that can take its jobs at once. Each test leaves it as it found it (`unfinished_jobs`)."""
    with running_iris_cluster(tmp_path, auth=auth) as cluster:
        wait_for(
            lambda: len(healthy_workers(cluster.url)) >= workers, START_TIMEOUT_S, f"{workers} healthy Iris workers"
        )
        yield cluster
