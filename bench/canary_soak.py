"""Soak the canary daemon: N back-to-back runs of a stand-in run command, then its fds and RSS.

    python bench/canary_soak.py --runs 1000 --interval 0.02

Uses tests/canary/fake_run.sh as the run (a few milliseconds each), so what is measured is
the daemon's own per-run work: spawn, reap, tag audit, results.json, metrics, retention.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE_RUN = ROOT / "tests" / "canary" / "fake_run.sh"
MIB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--interval", default="0.02")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        argv = [sys.executable, "-m", "supervisor", "canary", "--state-dir", str(state)]
        argv += ["--interval", args.interval, "--keep-runs", "5", "--max-runs", str(args.runs)]
        argv += ["--run-command", f"sh {FAKE_RUN}"]
        started = time.monotonic()
        done = subprocess.run(
            argv, cwd=ROOT, stdout=subprocess.DEVNULL, env=os.environ | {"IRIS_SMOKE_LOG_FORMAT": "json"}, check=False
        )
        elapsed = time.monotonic() - started
        events = [json.loads(line) for line in (state / "canary-events.jsonl").read_text().splitlines()]
    runs = [e for e in events if e["event"] == "run_completed"]
    print(
        f"exit={done.returncode} runs={len(runs)} elapsed_s={elapsed:.1f} per_run_ms={elapsed / len(runs) * 1000:.1f}"
    )
    for index in sorted({9, len(runs) // 2, len(runs) - 1}):
        e = runs[index]
        print(f"after run {index + 1}: fds={e['daemon_fds']} rss_mib={e['daemon_rss_bytes'] / MIB:.2f}")
    skipped = sum(e["skipped"] for e in events if e["event"] == "slot_skipped")
    print(f"leaked={sum(e['leaked'] for e in runs)} slots_skipped={skipped}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
