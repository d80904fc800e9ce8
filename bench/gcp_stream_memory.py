"""Benchmark: memory per GCP stream, its transport included (target <= 6 MiB).

    IRIS_SMOKE_IRIS_BIN=$(bash scripts/install_iris.sh) python bench/gcp_stream_memory.py [HOSTS]

A real `iris-smoke run --cluster gcp` against the fake gcloud (tests/helpers/fake_gcloud.py),
a loopback sshd and a real Iris local cluster behind the tunnel, with one TPU slice of
HOSTS hosts (default 16). Once every stream is connected it sums, per stream, the unique
memory (USS) of the stream child, its ssh client and the multiplexed ssh master of its
host (masters leave their stream's process group, so they are found by their ControlPath
among the supervisor's descendants), and prints the median and the maximum. No gcloud
process stays alive per stream, so there is none to count.
"""

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.fake_gcloud_env import FakeGcloud, docker_template
from tests.helpers.iris import running_iris_cluster
from tests.helpers.sshd import Sshd
from tests.helpers.supervisor_proc import run_argv, started

MIB = 1 << 20


def _uss(proc: psutil.Process) -> float:
    try:
        return float(proc.memory_full_info().uss) / MIB
    except psutil.Error:
        return 0.0


def measure(sup_pid: int) -> tuple[list[float], int]:
    sup = psutil.Process(sup_pid)
    per_stream: dict[int, float] = {}
    masters = 0.0
    for child in sup.children():
        if child.name().startswith("iris:stream"):
            per_stream[child.pid] = _uss(child) + sum(_uss(p) for p in child.children(recursive=True))
    for proc in sup.children(recursive=True):
        argv = proc.cmdline() if proc.is_running() else []
        if proc.name() == "ssh" and proc.ppid() == sup_pid and any(a.startswith("ControlPath=") for a in argv):
            masters += _uss(proc)
    share = masters / max(1, len(per_stream))
    return [v + share for v in per_stream.values()], len(per_stream)


def main() -> None:
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sshd = Sshd(tmp / "sshd").start()
        try:
            prefix = f"bench{uuid.uuid4().hex[:6]}"
            fake = FakeGcloud.install(tmp / "gcloud", sshd, "proj-1", "zone-a")
            fake.add_instance(f"iris-controller-{prefix}", {f"iris-{prefix}-controller": "true"})
            fake.add_tpu(f"{prefix}-tpu-0", hosts=hosts, labels={f"{prefix}-managed": "true"})
            os.environ["PATH"] = f"{fake.bin_dir}:{os.environ['PATH']}"
            with running_iris_cluster(tmp) as iris:
                config = tmp / "run.toml"
                config.write_text(
                    f'[run]\nprefix = "{prefix}"\ntests = []\n[[tests]]\nname = "sleeps"\nargv = ["sleep", "8"]\n'
                    f'[cluster]\nkind = "gcp"\n[streams]\nremote_command = "{docker_template()}"\n'
                    f'[gcp]\nproject = "proj-1"\nzones = ["zone-a"]\ncontroller_port = {iris.url.rsplit(":", 1)[1]}\n'
                )
                run_id = f"bench-{uuid.uuid4().hex[:8]}"
                with started(run_argv(run_id, tmp / "runs", "--config", str(config)), tmp, run_id) as sup:
                    sup.wait_event("stream_connected", timeout_s=120, count=hosts + 1)
                    time.sleep(2.0)  # the streams catch up and settle before measuring
                    values, streams = measure(sup.popen.pid)
                    gcloud_alive = len(fake.processes())
                    sup.wait_exit(120)
        finally:
            sshd.stop()
    print(f"streams={streams} gcloud_alive={gcloud_alive}")
    print(f"per_stream_uss_mib median={statistics.median(values):.2f} max={max(values):.2f} (target <= 6)")


if __name__ == "__main__":
    main()
