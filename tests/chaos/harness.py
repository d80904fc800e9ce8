"""A real `iris-smoke run` against a small, fast embedded cluster, held where a fault wants it.

    with chaos_run(tmp_path, "kill-stream") as run:
        name = run.worker_stream()         # the cpu worker's stream, with a line on disk
        os.kill(run.pid_of(name), signal.SIGKILL)
        ...
        run.release()                      # let the held test finish

The cluster is one one-host cpu slice that boots in 0.1 s. The suite is one custom test,
`held`, whose task prints `held`, waits until the test creates the release file, prints
`released` and exits 0: a run stays in its tests phase, every observer running, for as
long as a case needs, and passes the moment the case lets it (`held=False`: at once).
Triggers are events in `events.jsonl` (`phase_started`, `child_state_changed`), never
a sleep.
"""

import contextlib
import datetime
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.helpers import processes
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for

WAIT_S = 20.0
# One one-host cpu slice, up from the start, booting fast.
CLUSTER_TOML = (
    'scale_groups = [{ name = "cpu", accelerator_type = "cpu", min_slices = 1, max_slices = 2, '
    "chips_per_host = 4, boot_delay_s = 0.1 }]\n"
)
# The task's own loop is the cluster's workload, not a wait of the test.
HELD_TASK = "echo held; while [ ! -e {release} ]; do sleep 0.05; done; echo released"


@dataclass
class ChaosRun:
    sup: SupervisorProc
    release_file: Path
    # The supervisor's creation time (psutil's clock): what was created since is the run's.
    started_at: float

    def release(self) -> None:
        self.release_file.touch()

    def started_pid(self, child: str) -> int:
        """The pid of the child's latest start, as soon as it is forked."""
        return int(self.sup.wait_event("child_started", WAIT_S, child=child)[-1]["child_pid"])

    def pid_of(self, child: str) -> int:
        """The pid of the child's latest start, once that start has said READY."""
        attempts = len(self.sup.wait_event("child_started", WAIT_S, child=child))
        self.sup.wait_event("child_state_changed", WAIT_S, count=attempts, child=child, new="running")
        return self.started_pid(child)

    def worker_stream(self) -> str:
        """The cpu worker's stream child, once its file holds the held task's first line."""
        [path] = wait_for(lambda: list((self.sup.run_dir / "logs").rglob("*-cpu-0-w0.jsonl")), WAIT_S, "a stream")
        wait_for(lambda: b"] held" in path.read_bytes(), WAIT_S, "the held task's line in its stream")
        return f"stream:{path.stem}"

    def streams_delivered(self) -> None:
        """Every stream started so far has a line on disk. A stream with none when the tests end is
        `stream_no_data` (rightly: a failed run); the controller's follower, a Python process of its
        own, can take seconds to start under load, and that is no case's point."""
        files = self.sup.stream_files()
        wait_for(lambda: all(p.exists() and p.stat().st_size > 0 for p in files), WAIT_S, f"a line in each of {files}")

    def cluster_process(self) -> psutil.Process:
        """The embedded cluster itself (`python -m local_cluster`), under the `cluster` child."""
        parent = psutil.Process(self.pid_of("cluster"))
        [cluster] = wait_for(parent.children, WAIT_S, "the local cluster process")
        return cluster

    def vm_host(self) -> psutil.Process:
        """The cpu worker's VM host, once its task runs."""
        self.worker_stream()
        [host] = [p for p in self.cluster_process().children() if "local_cluster.vmhost" in " ".join(p.cmdline())]
        return host

    def diagnostics_on_frozen_cluster(self) -> psutil.Process:
        """Freeze the embedded cluster once the tests child is done with it, and return it
        once diagnostics has started: diagnostics lives a few hundred ms, and a frozen
        controller keeps its first RPC waiting while a case acts on it."""
        self.sup.wait_event("tests_done")
        cluster = self.cluster_process()
        cluster.suspend()
        self.sup.wait_event("phase_started", phase="diagnostics")
        return cluster

    def phase_of_stop(self) -> str | None:
        """The phase the supervisor was in when it decided to stop (None: it never did)."""
        phase = None
        for event in self.sup.events():
            if event["event"] == "phase_started" and event["role"] == "supervisor":
                phase = event["phase"]
            elif event["event"] == "stop_requested":
                return str(phase)
        return None

    @contextlib.contextmanager
    def frozen(self) -> Iterator[psutil.Process]:
        """The supervisor SIGSTOPped (wedged) for the block, then continued."""
        supervisor = psutil.Process(self.sup.popen.pid)
        supervisor.suspend()
        try:
            yield supervisor
        finally:
            supervisor.resume()

    def wait_deadline_passed(self) -> None:
        """The run's deadline is behind us (by the wall clock: run_started's time plus timeout_s)."""
        started = self.sup.wait_event("run_started")[0]
        at = datetime.datetime.fromisoformat(started["timestamp"].replace("Z", "+00:00")).timestamp()
        deadline = at + float(started["timeout_s"])
        wait_for(lambda: time.time() > deadline, WAIT_S, "the run's deadline to pass")

    def wait_children_exited(self, *, but: str = "cluster") -> None:
        """Every forked child but `but` has exited (reaped or awaiting its reaper)."""
        started = {e["child"]: e["child_pid"] for e in self.sup.find("child_started") if e["child"] != but}
        wait_for(lambda: not processes.alive_pids(list(started.values())), WAIT_S, f"{sorted(started)} to exit")


def _write_config(tmp_path: Path, release: Path) -> Path:
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(CLUSTER_TOML)
    config = tmp_path / "run.toml"
    config.write_text(
        f'[cluster]\nlocal_config = "{cluster}"\n'
        "[run]\ntests = []\n"
        '[[tests]]\nname = "held"\n'
        f'argv = ["sh", "-c", {json.dumps(HELD_TASK.format(release=release))}]\n'
    )
    return config


@contextlib.contextmanager
def chaos_run(tmp_path: Path, run_id: str, *flags: str, held: bool = True) -> Iterator[ChaosRun]:
    """A supervised run (`--timeout 60` unless `flags` say otherwise); SIGKILLed for sure after.

    Its run id and prefix are unique: the run id is the tag every leak audit kills by,
    and other suites on this machine audit runs of their own at the same time."""
    run_id = f"{run_id}-{uuid.uuid4().hex[:8]}"
    release = tmp_path / "release"
    if not held:
        release.touch()
    config = _write_config(tmp_path, release)
    fast = ("--timeout", "60", "--discovery-interval", "0.2", "--prefix", f"chaos-{run_id}")
    argv = run_argv(run_id, tmp_path / "runs", "--config", str(config), *fast, *flags)
    with started(argv, tmp_path, run_id) as sup:
        yield ChaosRun(sup, release, psutil.Process(sup.popen.pid).create_time())
