"""Benchmark: SIGTERM-to-all-reaped for N demo streams, and unique memory per stream child.

    python bench/stop_latency.py [--streams 64] [--repeat 3]

Per repetition it starts `iris-smoke run --demo-streams N`, waits until every child is
running, measures each forked child's USS next to a freshly spawned idle interpreter's
(the ratio is what fork buys us), sends SIGTERM and reads, from events.jsonl, the time
from the supervisor receiving the signal to its last child being reaped.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def _events(run_dir: Path) -> list[dict[str, object]]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _ts(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def _wait(condition: object, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


# What a spawned (fork+exec) child would have to load before doing the same work.
_SPAWNED_CHILD = "import sys, workers.runtime, workers.demo_stream; print('ready', flush=True); sys.stdin.read()"


def _spawned_interpreter_uss() -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SPAWNED_CHILD], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        return float(psutil.Process(proc.pid).memory_full_info().uss)
    finally:
        proc.communicate(b"")


def one_run(streams: int, tmp: Path, index: int) -> tuple[float, float]:
    run_id = f"bench-{index}"
    argv = [
        sys.executable,
        "-m",
        "supervisor",
        "run",
        "--run-id",
        run_id,
        "--log-dir",
        str(tmp),
        "--demo-streams",
        str(streams),
        "--demo-duration",
        "600",
        "--timeout",
        "300",
    ]
    sup = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env=os.environ | {"IRIS_SMOKE_LOG_FORMAT": "json"},
    )
    try:
        run_dir = tmp / run_id
        running = lambda: sum(e["event"] == "demo_stream_started" for e in _events(run_dir)) >= streams  # noqa: E731
        _wait(running, 60, f"{streams} streams running")
        children = psutil.Process(sup.pid).children()
        uss = statistics.median(c.memory_full_info().uss for c in children if c.name().startswith("iris:"))
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=60)
        events = _events(run_dir)
        received = next(_ts(e) for e in events if e["event"] == "signal_received")
        last_reap = max(_ts(e) for e in events if e["event"] == "child_exited")
        return last_reap - received, uss
    finally:
        if sup.poll() is None:
            os.killpg(sup.pid, signal.SIGKILL)
            sup.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    baseline = _spawned_interpreter_uss()
    with tempfile.TemporaryDirectory() as tmp:
        results = [one_run(args.streams, Path(tmp), i) for i in range(args.repeat)]
    stops = [r[0] for r in results]
    uss = statistics.median(r[1] for r in results)
    print(f"streams={args.streams} repeat={args.repeat}")
    print(f"sigterm_to_all_reaped_s median={statistics.median(stops):.3f} max={max(stops):.3f} (target <= 0.5)")
    print(f"uss_per_stream_child_mib={uss / MIB:.2f} (target <= 3)")
    print(f"uss_spawned_interpreter_mib={baseline / MIB:.2f} ratio_fork_vs_spawn={uss / baseline:.3f}")


if __name__ == "__main__":
    main()
