"""Benchmark: unique memory (USS) per child role in a real smoke run against the local cluster.

    python bench/child_memory.py

Starts `iris-smoke run` with one extra test that sleeps, so every child is up and the
streams have caught up, samples the USS of each of the supervisor's children by role
(its process name is `iris:<role>:...`), and prints the median per role next to the
supervisor's own. Stream children fork with their code preloaded; gRPC children import
grpc after the fork (the supervisor must never load it), so they pay for it each.
"""

import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
CONFIG = '[run]\ntests = ["coscheduled"]\n\n[[tests]]\nname = "sleeps"\nargv = ["sleep", "6"]\n'


def _sample(sup: psutil.Process) -> dict[str, list[float]]:
    by_role: dict[str, list[float]] = collections.defaultdict(list)
    for child in sup.children():
        try:
            name = child.name()
            role = name.split(":")[1] if name.startswith("iris:") else name
            by_role[role].append(child.memory_full_info().uss / MIB)
        except psutil.Error:
            continue
    return by_role


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "run.toml"
        config.write_text(CONFIG)
        argv = [
            sys.executable,
            "-m",
            "supervisor",
            "run",
            "--config",
            str(config),
            "--log-dir",
            tmp,
            "--log-format",
            "json",
        ]
        popen = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            sup = psutil.Process(popen.pid)
            end = time.monotonic() + 30
            while len([c for c in sup.children() if c.name().startswith("iris:stream")]) < 6:
                if time.monotonic() > end or popen.poll() is not None:
                    raise SystemExit("the run did not bring up its streams")
                time.sleep(0.1)
            time.sleep(2.0)  # let the streams catch up and settle before measuring
            by_role = _sample(sup)
            own = sup.memory_full_info().uss / MIB
            assert popen.wait(timeout=60) == 0, "the run failed"
        finally:
            if popen.poll() is None:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
    print(f"supervisor          uss_mib={own:.2f}")
    for role, values in sorted(by_role.items()):
        print(f"{role:<19} n={len(values):<2} uss_mib median={statistics.median(values):.2f} max={max(values):.2f}")


if __name__ == "__main__":
    main()
