"""A run attached to a kept embedded cluster streams that cluster's real container logs."""

import contextlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import processes
from tests.helpers.supervisor_proc import run_argv, started
from tests.helpers.waiting import wait_for

RUN_EXIT_S = 60.0


def _lines(path: Path) -> list[str]:
    return [json.loads(line)["line"] for line in path.read_bytes().splitlines()]


def _stop_kept(prefix: str) -> None:
    for proc in processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", prefix):
        # One of the cluster's own processes (a task, a VM host) may end between the listing and this look.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            if "local_cluster --state-dir" in " ".join(proc.cmdline()):
                proc.terminate()
    wait_for(lambda: not processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", prefix), 15, "kept cluster to stop")


def _kept_address(tmp_path: Path, prefix: str) -> str:
    """A kept cluster under `prefix`: each test its own, as _stop_kept stops every process with it
    (the two tests may run at once on two xdist workers)."""
    argv = run_argv("obs-keeper", tmp_path / "runs", "--keep", "--tests", "simple", "--prefix", prefix)
    with started(argv, tmp_path, "obs-keeper") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        found = re.search(r"--controller (\S+)", sup.output.read_text())
        assert found, sup.output.read_text()[-3000:]
        return found.group(1)


def test_an_attached_run_streams_the_kept_clusters_logs_under_its_prefix(tmp_path: Path) -> None:
    kept: list[psutil.Process] = []
    try:
        address = _kept_address(tmp_path, "kept-attach")
        kept = processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", "kept-attach")
        attach = run_argv("obs-attacher", tmp_path / "runs", "--controller", address, "--tests", "simple")
        with started(attach, tmp_path, "obs-attacher") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            results = sup.results()
            assert results["cluster"]["vm_prefix"] == "kept-attach"
            streams: dict[str, dict[str, Any]] = {s["name"]: s for s in results["streams"]}
            assert "stream:controller@kept-attach-controller" in streams, sorted(streams)
            assert len(streams) >= 2 and all(s.get("lines", 0) > 0 for s in streams.values()), streams
            controller = _lines(sup.run_dir / "logs" / "controller.jsonl")
            assert any("controller_starting" in line and "prefix=kept-attach" in line for line in controller)
            assert any("job_launched" in line and "simple" in line for line in controller)
            workers = sorted((sup.run_dir / "logs" / "vms").glob("kept-attach-*.jsonl"))
            assert workers and all(_lines(p) for p in workers)
            assert not sup.find("cluster_stopped")
        assert all(p.is_running() for p in kept), "attaching stopped nothing"
    finally:
        _stop_kept("kept-attach")


def test_the_kept_clusters_socket_is_private_and_no_port_is_open(tmp_path: Path) -> None:
    try:
        address = _kept_address(tmp_path, "kept-socket")
        assert address.startswith("unix:/"), address
        directory = Path(address.removeprefix("unix:")).parent
        info = os.lstat(directory)
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        kept = processes.with_env("IRIS_SMOKE_KEPT_CLUSTER", "kept-socket")
        assert kept and all(p.net_connections(kind="inet") == [] for p in kept), "no TCP or UDP socket"
    finally:
        _stop_kept("kept-socket")
    assert not directory.exists(), "the cluster removes its socket directory when it stops"
