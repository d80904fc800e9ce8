"""Benchmark: real stream children at realistic load: stop latency, memory per stream, CPU.

    python bench/stop_latency.py [--streams 64,256] [--rates 0,100] [--window 10]

For each stream count N and line rate R (lines/s per stream; 0 is idle) it starts one
real supervisor (`supervised`, the smoke run's loop, signals, reaper and stop) over N real
stream children (`workers.stream.child:main`, preloaded and forked as in a smoke run), each
following a local transport whose follower is a small perl process writing one
docker-style line (~100 bytes, RFC 3339 ns timestamp) every 1/R s. Once every stream has
connected it measures, side by side for all cases:
- USS of each stream child, and of each stream with its transport (the follower);
- CPU of the whole tree over `--window` s (supervisor, stream children, followers),
  split into ours (supervisor + stream children) and the followers, which stand in for
  the ssh/docker a real stream runs;
- SIGTERM to the supervisor -> every child reaped, from the run's own events.
From the loaded CPU it derives how many hosts one core sustains at R lines/s each.
Prints a table and then one JSON document.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import logs
from common.deadline import Deadline
from supervisor import preflight
from supervisor.children import ChildSpec
from supervisor.demo import DemoWork
from supervisor.restart import RestartPolicy
from supervisor.run import supervised
from workers.hosts import Role, VmHost
from workers.stream.spec import StreamSpec
from workers.transports import LocalTransport

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20

# `burst` lines per write, `rate` lines/s in all; rate 0 writes nothing. burst 1 is a
# container runtime flushing each line; more is a chatty process (or ssh) batching them.
FOLLOWER = r"""
use Time::HiRes qw(time sleep); use POSIX qw(strftime); $| = 1;
my ($rate, $burst, $i) = (shift, shift, 0);
while ($rate == 0) { sleep 3600 }
my $next = time;
while (1) {
    my $t = time; my $s = int($t); my $out = "";
    for (1 .. $burst) {
        $i++;
        $out .= sprintf("%s.%09dZ I%08d a line of a container log, about one hundred bytes long, padding..\n",
                        strftime("%Y-%m-%dT%H:%M:%S", gmtime($s)), int(($t - $s) * 1e9) + $i % 1000, $i);
    }
    print $out;
    $next += $burst / $rate; my $d = $next - time; sleep $d if $d > 0;
}
"""


def serve(streams: int, rate: float, burst: int, run_dir: Path) -> int:
    """The supervisor side (run in a subprocess of the bench): N stream children until SIGTERM."""
    specs = [
        ChildSpec(
            name=f"stream:vm-{i}",
            role="stream",
            entrypoint="workers.stream.child:main",
            preload=True,
            restart=RestartPolicy(),
            # The local transport's argv with perl as the follower (it ignores the rest).
            args=StreamSpec(
                VmHost(f"vm-{i}", 0, Role.WORKER, f"vm-{i}"),
                "iris-worker",
                LocalTransport(str(run_dir), ("perl", "-e", FOLLOWER, str(rate), str(burst))),
            ),
        )
        for i in range(streams)
    ]
    preflight.make_run_dir(run_dir)
    logs.configure("supervisor", run_dir.name, run_dir / "events.jsonl", level="info")
    supervised(
        lambda sup: DemoWork(sup, specs), run_dir.name, run_dir, Deadline.after(600), stop_grace_s=2.0, log_level="info"
    )
    return 0


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
        time.sleep(0.2)


def _cpu_s(proc: psutil.Process, reaped: bool) -> float:
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + ((t.children_user + t.children_system) if reaped else 0.0)


def _tree(sup: psutil.Process) -> tuple[list[psutil.Process], dict[int, list[psutil.Process]]]:
    """Ours (the supervisor and its stream children), and each stream child's followers.

    One pass over the process table: psutil's children(recursive=True) walks all of it per
    call, which for 256 children on a loaded machine takes minutes."""
    by_parent: dict[int, list[psutil.Process]] = {}
    for proc in psutil.process_iter(["ppid"]):
        by_parent.setdefault(proc.info["ppid"], []).append(proc)

    def descendants(pid: int) -> list[psutil.Process]:
        return [d for c in by_parent.get(pid, []) for d in (c, *descendants(c.pid))]

    children = [c for c in by_parent.get(sup.pid, []) if c.name().startswith("iris:stream")]
    return [sup, *children], {c.pid: descendants(c.pid) for c in children}


def _lines_written(run_dir: Path) -> int:
    total = 0
    for path in (run_dir / "logs" / "vms").glob("*.jsonl"):
        with open(path, "rb") as f:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return total


def _uss(proc: psutil.Process) -> float:
    try:
        return float(proc.memory_full_info().uss)
    except psutil.Error:
        return 0.0


def measure(streams: int, rate: float, burst: int, window_s: float, tmp: Path) -> dict[str, float]:
    run_dir = tmp / f"bench-{streams}-{int(rate)}-{burst}-{os.getpid()}"
    argv = [sys.executable, __file__, "--serve", str(streams), str(rate), str(burst), str(run_dir)]
    env = os.environ | {"IRIS_SMOKE_LOG_FORMAT": "json"}
    popen = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        connected = lambda: sum(e["event"] == "stream_connected" for e in _events(run_dir)) >= streams  # noqa: E731
        _wait(connected, 120, f"{streams} streams connected")
        sup = psutil.Process(popen.pid)
        ours, followers_of = _tree(sup)
        followers = [f for group in followers_of.values() for f in group]
        time.sleep(1.0)  # past the first records and the first progress message
        lines_before = _lines_written(run_dir)
        before = sum(_cpu_s(p, False) for p in ours), sum(_cpu_s(p, True) for p in followers)
        started = time.monotonic()
        time.sleep(window_s)
        after = sum(_cpu_s(p, False) for p in ours), sum(_cpu_s(p, True) for p in followers)
        elapsed = time.monotonic() - started
        written_per_s = (_lines_written(run_dir) - lines_before) / elapsed
        supervisor_uss = _uss(sup)
        child_uss = [_uss(c) for c in ours[1:]]
        with_transport = [_uss(c) + sum(_uss(f) for f in followers_of[c.pid]) for c in ours[1:]]
        popen.send_signal(signal.SIGTERM)
        popen.wait(timeout=120)
        events = _events(run_dir)
        received = next(_ts(e) for e in events if e["event"] == "signal_received")
        last_reap = max(_ts(e) for e in events if e["event"] == "child_exited")
        ours_cores, followers_cores = (after[0] - before[0]) / elapsed, (after[1] - before[1]) / elapsed
        return {
            "streams": streams,
            "lines_per_s_per_stream": rate,
            "lines_per_write": burst,
            # Below 1.0 the machine did not keep up: the followers block on full pipes.
            "written_over_offered": round(written_per_s / (rate * streams), 3) if rate else 1.0,
            "stop_s": round(last_reap - received, 3),
            "uss_stream_child_mib": round(statistics.median(child_uss) / MIB, 2),
            "uss_stream_with_transport_mib": round(statistics.median(with_transport) / MIB, 2),
            "supervisor_uss_mib": round(supervisor_uss / MIB, 2),
            "cpu_ours_cores": round(ours_cores, 3),
            "cpu_followers_cores": round(followers_cores, 3),
            "cpu_tree_cores": round(ours_cores + followers_cores, 3),
        }
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


COLUMNS = ("streams", "lines_per_s_per_stream", "lines_per_write", "written_over_offered", "stop_s",
           "uss_stream_child_mib", "uss_stream_with_transport_mib", "cpu_ours_cores", "cpu_followers_cores",
           "cpu_tree_cores")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="64,256", help="comma-separated stream counts")
    parser.add_argument("--rates", default="0,100", help="comma-separated lines/s per stream (0: idle)")
    parser.add_argument("--bursts", default="1", help="comma-separated lines per follower write, for loaded rates")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of CPU sampling")
    parser.add_argument("--serve", nargs=4, metavar=("N", "RATE", "BURST", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(int(args.serve[0]), float(args.serve[1]), int(args.serve[2]), Path(args.serve[3]))
    results = []
    with tempfile.TemporaryDirectory(prefix="iris-smoke-bench-") as tmp:
        for streams in map(int, args.streams.split(",")):
            for rate in map(float, args.rates.split(",")):
                for burst in map(int, args.bursts.split(",")) if rate else (1,):
                    results.append(measure(streams, rate, burst, args.window, Path(tmp)))
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # a row as soon as it is measured
    print(" ".join(f"{c:>14.14}" for c in COLUMNS))
    for row in results:
        print(" ".join(f"{row[c]:>14}" for c in COLUMNS))
    for row in results:
        if row["lines_per_s_per_stream"]:
            ours, tree = row["streams"] / row["cpu_ours_cores"], row["streams"] / row["cpu_tree_cores"]
            print(f"{row['streams']} streams, {row['lines_per_s_per_stream']:g} lines/s in writes of "
                  f"{row['lines_per_write']}: one core sustains {ours:.0f} hosts (ours), "
                  f"{tree:.0f} (whole tree)")  # fmt: skip
    print(json.dumps({"machine": {"nproc": os.cpu_count(), "loadavg": os.getloadavg()}, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
