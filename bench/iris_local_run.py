"""Benchmark a full `iris-smoke run --cluster iris-local`: wall time by phase and by test, beside the embedded cluster.

    python bench/iris_local_run.py [--runs 3] [--iris-bin PATH] [--log-dir DIR]

Each run is the real command with no `--tests` (so the default set: every fleet check and standard
test, `supervisor/config.py` STANDARD_TESTS, which grows as tests land), a fresh run directory, the real
Iris from `bash scripts/install_iris.sh` unless --iris-bin says otherwise; and so is the
embedded-cluster run it is compared with in the same invocation, one after the other, so the
ratio holds on a noisy machine. Phase times come from the run's own `phase_finished` events,
test times from its results.json; `total` is the command's wall time, start to exit. The tests
run at once, so the tests phase is about its slowest test: the slowest are named. Prints two
tables and then one JSON document (the medians, and the load average seen).
Aim (issue 21): the whole suite on iris-local under 30 s on this 2-core machine.
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
sys.path.insert(0, str(ROOT))

from supervisor.config import RunConfig  # noqa: E402  (this checkout's, as the runs it starts)

PHASES = ("clean_start", "cluster", "observers", "tests", "diagnostics", "cleanup")
KINDS = ("iris-local", "local")
SLOWEST = 3
Times = dict[str, float]


def one_run(kind: str, iris_bin: str, log_dir: Path, run_id: str) -> tuple[Times, Times]:
    """(phase -> s, with `total`; test -> s) of one run, which must pass."""
    argv = [sys.executable, "-m", "supervisor", "run", "--cluster", kind, "--log-dir", str(log_dir)]
    argv += ["--run-id", run_id, "--timeout", "120", "--log-format", "json"]
    if kind == "iris-local":
        argv += ["--iris-bin", iris_bin]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, check=False, timeout=180)
    total = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed ({done.returncode}):\n{done.stdout.decode()[-2000:]}")
    phases = {"total": total}
    for line in (log_dir / run_id / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "phase_finished" and event.get("phase") in PHASES:
            phases[event["phase"]] = float(event["duration_s"])
    results = json.loads((log_dir / run_id / "results.json").read_text())
    tests = {t["name"]: float(t.get("duration_s") or 0.0) for t in results["tests"]}
    expected = RunConfig().test_names()
    if list(tests) != expected:
        raise SystemExit(f"{kind} run {run_id} ran {list(tests)}, not the default set {expected}")
    return phases, tests


def default_iris_bin() -> str:
    found = subprocess.run(["bash", "scripts/install_iris.sh"], cwd=ROOT, capture_output=True, check=True)
    return found.stdout.decode().strip()


def medians(runs: list[Times], names: tuple[str, ...] | list[str]) -> Times:
    return {name: round(statistics.median(r.get(name, 0.0) for r in runs), 2) for name in names}


def side_by_side(title: str, names: list[str], real: Times, ours: Times) -> None:
    print(f"{title:<26} {'iris-local (median s)':>22} {'embedded local (median s)':>26} {'ratio':>7}")
    for name in names:
        ratio = f"{real[name] / ours[name]:.2f}" if ours[name] else "-"
        print(f"{name:<26} {real[name]:>22.2f} {ours[name]:>26.2f} {ratio:>7}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--iris-bin", default=os.environ.get("IRIS_SMOKE_IRIS_BIN") or "")
    parser.add_argument("--log-dir", type=Path, help="keep the runs' directories here (default: a temporary one)")
    args = parser.parse_args()
    iris_bin = args.iris_bin or default_iris_bin()
    phases: dict[str, list[Times]] = {kind: [] for kind in KINDS}
    tests: dict[str, list[Times]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="iris-smoke-bench-") as tmp:
        log_dir = args.log_dir or Path(tmp)
        for i in range(args.runs):
            for kind in KINDS:
                ran = one_run(kind, iris_bin, log_dir, f"bench-{kind}-{i}-{os.getpid()}")
                phases[kind].append(ran[0])
                tests[kind].append(ran[1])
    names = RunConfig().test_names()
    phase_medians = {kind: medians(phases[kind], (*PHASES, "total")) for kind in KINDS}
    test_medians = {kind: medians(tests[kind], names) for kind in KINDS}
    slowest = sorted(names, key=lambda n: -test_medians["iris-local"][n])
    side_by_side("phase", [*PHASES, "total"], phase_medians["iris-local"], phase_medians["local"])
    print()
    side_by_side(f"test ({len(names)}, slowest first)", slowest, test_medians["iris-local"], test_medians["local"])
    print()
    print(json.dumps({
        "runs": args.runs, "tests": names, "median_s": phase_medians, "test_median_s": test_medians,
        "slowest_iris_local": slowest[:SLOWEST], "loadavg": os.getloadavg(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
