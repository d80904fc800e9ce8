"""Start a real local cluster for a test, and never leave it (or anything it started) behind.

    with running_local_cluster(tmp_path) as (address, state_dir, popen):
        ...

The cluster runs as `python -m local_cluster` in a session of its own, with a unique
IRIS_SMOKE_RUN_ID that every process it starts inherits. Readiness handshake: the single
address line on its stdout (the helper fails with the cluster's stderr if it exits or
stays silent first). Teardown, even when the test failed: SIGTERM, a bounded wait,
SIGKILL to its group; then every process still carrying the run id (VM hosts and tasks
live in sessions of their own) is killed, and the helper raises if there was any, so a
leak is a failure, not a warning.
"""

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

from common import env as run_env
from common.processes import signal_group
from tests.helpers.processes import with_run_tag

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT_S = 30.0  # a readiness wait: generous, since a loaded 2-core CI machine is slow to import grpc
STOP_TIMEOUT_S = 8.0


class ClusterStartError(RuntimeError):
    pass


def _read_address(popen: "subprocess.Popen[bytes]", stderr_path: Path) -> str:
    assert popen.stdout is not None
    fd = popen.stdout.fileno()
    deadline = time.monotonic() + START_TIMEOUT_S
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
        chunk = os.read(fd, 4096) if readable else b""
        if not chunk:
            reason = "exited" if readable else f"printed no address within {START_TIMEOUT_S}s"
            raise ClusterStartError(f"local cluster {reason}; stderr:\n{stderr_path.read_text()[-4000:]}")
        data += chunk
    return data.split(b"\n", 1)[0].decode().strip()


def stop_cluster(popen: "subprocess.Popen[bytes]", run_id: str, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """SIGTERM, bounded wait, SIGKILL of the group; returns the leftovers it had to kill."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            signal_group(popen.pid, signal.SIGKILL)
            popen.wait(timeout=timeout_s)
    signal_group(popen.pid, signal.SIGKILL)
    if popen.stdout is not None:
        popen.stdout.close()
    # A VM host ends its tasks and exits by itself after its parent dies; give it that long.
    deadline = time.monotonic() + 3.0
    leftovers = with_run_tag(run_id)
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.05)
        leftovers = with_run_tag(run_id)
    names = []
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            names.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            proc.kill()
    return names


@contextlib.contextmanager
def running_local_cluster(
    tmp_path: Path, config_text: str | None = None, extra_args: tuple[str, ...] = ()
) -> Iterator[tuple[str, Path, "subprocess.Popen[bytes]"]]:
    """A serving local cluster: yields (address, state_dir, popen); stops it and checks for leaks."""
    state_dir = tmp_path / f"cluster-{uuid.uuid4().hex[:8]}"
    state_dir.mkdir(parents=True)
    args = [sys.executable, "-m", "local_cluster", "--state-dir", str(state_dir), *extra_args]
    if config_text is not None:
        config_path = state_dir / "config.toml"
        config_path.write_text(config_text)
        args += ["--config", str(config_path)]
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    env = dict(os.environ, **{run_env.RUN_TAG: run_id, "PYTHONPATH": str(REPO_ROOT), "IRIS_SMOKE_LOG_FORMAT": "json"})
    stderr_path = state_dir / "local-cluster.stderr"
    with open(stderr_path, "wb") as stderr:
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    leftovers: list[str] = []
    try:
        address = _read_address(popen, stderr_path)
        yield address, state_dir, popen
    finally:
        leftovers = stop_cluster(popen, run_id)
    if leftovers:
        raise AssertionError(f"local cluster left processes behind: {leftovers}")
