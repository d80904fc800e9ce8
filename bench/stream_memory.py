"""Benchmark: memory per stream (PSS), what follows for it included, for each transport, side by side.

    IRIS_SMOKE_IRIS_BIN=$(bash scripts/install_iris.sh) python bench/stream_memory.py [--workers N] [--json]
        [--compare-followers]

Three real `iris-smoke run --observe` runs, one after the other:
- iris: `--cluster iris` against a fake Connect controller listing N workers
  (tests/helpers/hostile_controller.py, mode many-workers; its log pages are empty), so N + 1
  streams, each a stream child subscribed to the run's one log reader (workers/log_reader.py),
  whose PSS is split between them; with --compare-followers, first the same run with a follower
  forked per stream instead (bench/_followers_per_stream.py), as before the reader, and the ratio;
- ssh: `--cluster ssh` with N static hosts, all a loopback sshd (tests/helpers/sshd.py), each
  stream a stream child and its ssh client (the remote command and sshd are the VM's, not ours);
- local: the embedded local cluster (its own few VMs; a local stream is a stream child and the
  cluster's `logs` command).
Once every stream is connected and settled, it sums per stream the PSS (each shared page split
between its sharers: what the tree really holds) of the stream child and its descendants, adds
its share of the children serving all streams (the log reader), and
prints the median and maximum per transport next to the figure declared for it in
`workers.stream.memory.STREAM_PSS_MIB`. N defaults to 128; the test suite runs it with a few
workers as a smoke (tests/streams/test_stream_memory.py). A GCP stream (ssh with a multiplexed
master) is measured by bench/gcp_stream_memory.py (a slice behind fake gcloud).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor.backends.iris import LOG_READER
from tests.helpers import hostile_controller
from tests.helpers.cluster import running_local_cluster
from tests.helpers.sshd import Sshd
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.tree_memory import MIB, pss_of
from workers.stream.memory import STREAM_PSS_MIB
from workers.transports import TransportKind

# Children that serve every stream of a run: their memory is the streams', shared.
SHARED_BY_STREAMS = frozenset({f"iris:{LOG_READER}"})
FOLLOWERS_PER_STREAM = Path(__file__).resolve().parent / "_followers_per_stream.py"
SETTLE_S = 3.0  # after the last stream_connected: followers import, connect and poll once
OBSERVE_S = 600  # longer than any measurement: the run is stopped once measured
CONNECT_S_PER_STREAM = 0.5  # 128 streams start in well under a minute on two busy cores


def per_stream_pss(sup: SupervisorProc) -> list[float]:
    """MiB per stream child, its descendants included (a follower, an ssh client), plus its share of
    what serves every stream of the run (the Iris log reader: its PSS split evenly between the streams)."""
    values, shared = [], 0.0
    for child in psutil.Process(sup.popen.pid).children():
        try:
            tree = [child, *child.children(recursive=True)]
            if child.name().startswith("iris:stream"):
                values.append(sum(pss_of(p.pid) for p in tree) / MIB)
            elif child.name() in SHARED_BY_STREAMS:
                shared += sum(pss_of(p.pid) for p in tree) / MIB
        except psutil.Error:
            continue
    return [value + shared / len(values) for value in values]


def measure(argv: list[str], tmp: Path, streams: int, followers: bool = False) -> list[float]:
    run_id = f"mem-{uuid.uuid4().hex[:8]}"
    argv = run_argv(run_id, tmp / "runs", "--observe", "--observe-s", str(OBSERVE_S), *argv)
    if followers:  # the same run, with a follower per Iris stream instead of the one reader
        assert argv[:2] == ["-m", "supervisor"]
        argv = [str(FOLLOWERS_PER_STREAM), *argv[2:]]
    with started(argv, tmp, run_id) as sup:
        sup.wait_event("stream_connected", timeout_s=30 + CONNECT_S_PER_STREAM * streams, count=streams)
        time.sleep(SETTLE_S)
        return per_stream_pss(sup)


@contextmanager
def tmpdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def iris(workers: int, followers: bool = False) -> list[float]:
    with tmpdir() as tmp, hostile_controller.running(f"{hostile_controller.LIST_WORKERS}=many-workers",
                                                     workers=workers) as url:  # fmt: skip
        return measure(["--cluster", "iris", "--controller", url], tmp, workers + 1, followers)


def ssh(hosts: int) -> list[float]:
    with tmpdir() as tmp:
        sshd = Sshd(tmp / "sshd").start()
        try:
            with running_local_cluster(tmp) as (address, _state_dir, _popen):
                listed = ", ".join(f'{{ vm = "vm-{i}", address = "127.0.0.1" }}' for i in range(hosts))
                config = tmp / "run.toml"
                config.write_text(
                    f'[cluster]\nkind = "ssh"\ncontroller = "{address}"\n\n'
                    "[streams]\nremote_command = \"sh -c 'exec sleep 3600' {container}\"\n\n"
                    f'[ssh]\nuser = "{sshd.user}"\nport = {sshd.port}\nidentity_file = "{sshd.user_key}"\n'
                    f'known_hosts_file = "{sshd.known_hosts}"\nstrict_host_key_checking = "yes"\n'
                    f"hosts = [{listed}]\n"
                )
                return measure(["--config", str(config)], tmp, hosts)
        finally:
            sshd.stop()


def local() -> list[float]:
    with tmpdir() as tmp:
        return measure([], tmp, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=128, help="Iris workers, and ssh hosts")
    parser.add_argument("--json", action="store_true", help="one JSON object {transport: [MiB per stream]}")
    parser.add_argument(
        "--compare-followers", action="store_true", help="also iris with a follower per stream (before), and the ratio"
    )
    args = parser.parse_args()
    followers = iris(args.workers, followers=True) if args.compare_followers else []
    found = {TransportKind.IRIS_LOG: iris(args.workers), TransportKind.SSH: ssh(args.workers),
             TransportKind.LOCAL: local()}  # fmt: skip
    if args.json:
        print(json.dumps({str(kind): values for kind, values in found.items()}))
        return
    rows = [(str(kind), values, f"(declared {STREAM_PSS_MIB[kind]})") for kind, values in found.items()]
    if followers:
        ratio = statistics.median(followers) / statistics.median(found[TransportKind.IRIS_LOG])
        rows.insert(1, ("iris_log, a follower per stream", followers, f"(before the log reader; {ratio:.2f}x)"))
    for name, values, note in rows:
        print(f"{name:<9} streams={len(values):<4} pss_mib median={statistics.median(values):.2f} "
              f"max={max(values):.2f} {note}")  # fmt: skip


if __name__ == "__main__":
    main()
