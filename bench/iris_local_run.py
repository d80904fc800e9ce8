"""Benchmark a full `iris-smoke run --cluster iris-local`: wall time by phase, beside the embedded cluster.

    python bench/iris_local_run.py [--runs 3] [--iris-bin PATH]

Each run is the real command (a fresh run directory, the real Iris from
`bash scripts/install_iris.sh` unless --iris-bin says otherwise), and so is the
embedded-cluster run it is compared with in the same invocation, one after the other,
so the ratio holds on a noisy machine. Phase times come from the run's own
`phase_finished` events; `total` is the command's wall time, start to exit. Prints a
table and then one JSON document (the medians, and the load average seen).
Target for the real Iris: total <= 15 s on a 2-core machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("cluster", "observers", "tests", "diagnostics", "cleanup")


def one_run(kind: str, iris_bin: str, log_dir: Path, run_id: str) -> dict[str, float]:
    argv = [sys.executable, "-m", "supervisor", "run", "--cluster", kind, "--log-dir", str(log_dir)]
    argv += ["--run-id", run_id, "--timeout", "120", "--log-format", "json"]
    if kind == "iris-local":
        argv += ["--iris-bin", iris_bin]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, check=False, timeout=180)
    total = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed ({done.returncode}):\n{done.stdout.decode()[-2000:]}")
    times = {"total": total}
    for line in (log_dir / run_id / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "phase_finished" and event.get("phase") in PHASES:
            times[event["phase"]] = float(event["duration_s"])
    return times


def default_iris_bin() -> str:
    found = subprocess.run(["bash", "scripts/install_iris.sh"], cwd=ROOT, capture_output=True, check=True)
    return found.stdout.decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--iris-bin", default=os.environ.get("IRIS_SMOKE_IRIS_BIN") or "")
    args = parser.parse_args()
    iris_bin = args.iris_bin or default_iris_bin()
    results: dict[str, list[dict[str, float]]] = {"iris-local": [], "local": []}
    with tempfile.TemporaryDirectory(prefix="iris-smoke-bench-") as tmp:
        for i in range(args.runs):
            for kind in results:
                results[kind].append(one_run(kind, iris_bin, Path(tmp), f"bench-{kind}-{i}-{os.getpid()}"))
    medians = {
        kind: {phase: round(statistics.median(r.get(phase, 0.0) for r in runs), 2) for phase in (*PHASES, "total")}
        for kind, runs in results.items()
    }
    print(f"{'phase':<12} {'iris-local (median s)':>22} {'embedded local (median s)':>26} {'ratio':>7}")
    for phase in (*PHASES, "total"):
        real, ours = medians["iris-local"][phase], medians["local"][phase]
        ratio = f"{real / ours:.2f}" if ours else "-"
        print(f"{phase:<12} {real:>22.2f} {ours:>26.2f} {ratio:>7}")
    print(json.dumps({"runs": args.runs, "median_s": medians, "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
