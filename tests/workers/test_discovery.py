"""The discovery child against a real local cluster."""

from pathlib import Path
from typing import Any

import pytest

from common.messages import Kind
from supervisor.smoke import vm_host_of
from tests.helpers.forked import forked_child, run_to_end
from tests.helpers.waiting import wait_for
from tests.workers.conftest import embedded, launch_jobs
from workers.child_args import DiscoveryArgs
from workers.controller.model import Worker
from workers.discovery import split_address, worker_host
from workers.hosts import HostileNameError
from workers.messages import HostsAssembler, HostsPart
from workers.stream.spec import StreamSpec
from workers.transports import SshTransport

STOP_WITHIN_S = 1.5


def _slice_hosts(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in body["hosts"] if h["slice"].startswith("local-tpu-")]


def test_discovery_sends_controller_and_workers_then_a_new_slice_with_hosts_0_to_3(
    cluster: str, tmp_path: Path
) -> None:
    """The set has the controller and the CPU worker; a TPU job's scale-up adds hosts 0..3."""
    args = DiscoveryArgs(embedded(cluster), "local", interval_s=0.2)
    with forked_child("workers.discovery:main", args, tmp_path / "run", name="discovery") as child:
        child.wait_message(Kind.READY, timeout_s=10)
        # The CPU slice (min_slices 1) may still be booting at the first listing.
        body = child.wait_message(Kind.HOSTS, timeout_s=10, match=lambda b: len(b["hosts"]) >= 2)
        by_vm = {h["vm"]: h for h in body["hosts"]}
        assert by_vm["local-controller"] == {
            "vm": "local-controller", "host": 0, "role": "controller", "address": "localhost", "service_port": None,
            "zone": "", "container": "iris-controller", "slice": "", "hosts_in_vm": 1, "slice_host": 0, "ssh": None,
            "worker_id": "", "healthy": None, "group": "",
        }  # fmt: skip
        cpu = by_vm["local-cpu-0-w0"]
        assert (cpu["role"], cpu["container"], cpu["zone"], cpu["slice"]) == (
            "worker",
            "iris-worker",
            "local",
            "local-cpu-0",
        )
        # What the fleet table shows of the worker, as the controller listed it.
        assert (cpu["worker_id"], cpu["healthy"], cpu["group"]) == ("local-cpu-0-w0", True, "cpu"), cpu

        launch_jobs(
            cluster, tmp_path / "probe", "disc", {"name": "tpu", "argv": ["sh", "-c", "sleep 0.2"], "device": "tpu"}
        )
        body = child.wait_message(Kind.HOSTS, timeout_s=15, match=lambda b: len(_slice_hosts(b)) == 4)
        hosts = sorted(_slice_hosts(body), key=lambda h: h["slice_host"])
        assert [h["slice_host"] for h in hosts] == [0, 1, 2, 3]
        assert {h["host"] for h in hosts} == {0}, "each local host is a one-host VM"
        assert [h["vm"] for h in hosts] == [f"local-tpu-0-w{i}" for i in range(4)]
        assert {h["slice"] for h in hosts} == {"local-tpu-0"}

        assert child.stop_and_reap() == 0
        assert child.stop_to_exit_s is not None and child.stop_to_exit_s < STOP_WITHIN_S
    assert child.events("discovery_stopped")


def test_discovery_logs_failures_sends_no_hosts_and_reports_a_long_outage(tmp_path: Path) -> None:
    """No controller: each failed listing is an event with its code; no HOSTS; a long outage is reported once."""
    args = DiscoveryArgs(embedded("127.0.0.1:1"), "local", interval_s=0.05, unavailable_report_s=0.3)
    with forked_child("workers.discovery:main", args, tmp_path / "run", name="discovery") as child:
        report = child.wait_message(Kind.PROGRESS, timeout_s=5, match=lambda b: "controller" in b)
        wait_for(lambda: len(child.events("discovery_failed")) >= 8, 5, "more failed listings")
        assert child.stop_and_reap() == 0
    assert report["controller"] == "unavailable" and report["unavailable_for_s"] >= 0.3
    assert len([b for b in child.of(Kind.PROGRESS) if "controller" in b]) == 1
    assert len(child.events("controller_unavailable")) == 1
    counts = [b["failed_listings"] for b in child.of(Kind.PROGRESS) if "failed_listings" in b]
    assert counts[:3] == [1, 2, 3], "each failed listing is counted for the verdict"
    assert child.of(Kind.HOSTS) == [] and child.of(Kind.READY) == []
    assert child.events("discovery_failed")[0]["code"] == "unavailable"


def test_hosts_with_hostile_names_are_dropped_and_logged(tmp_path: Path) -> None:
    """A VM or slice name that could smuggle shell syntax never reaches the host set."""
    good = {"worker_id": "local-tpu-0-w1", "vm_name": "local-tpu-0-w1", "address": "local:1",
            "attributes": {"tpu-name": "local-tpu-0", "tpu-worker-id": "1", "region": "local"}}  # fmt: skip
    hostile = [
        good | {"worker_id": "a", "vm_name": "vm;touch pwned"},
        good | {"worker_id": "b", "vm_name": "$(id)"},
        good | {"worker_id": "c", "attributes": {"tpu-name": "../x", "tpu-worker-id": "0"}},
        good | {"worker_id": "d", "attributes": {"tpu-name": "s", "tpu-worker-id": "1\\nrm"}},
    ]
    child = run_to_end("tests.workers.probes:discovery_hosts", {"workers": [good, *hostile]}, tmp_path, 10)
    (result,) = child.of(Kind.RESULT)
    assert [h["vm"] for h in result["hosts"]] == ["local-controller", "local-tpu-0-w1"]
    assert result["hosts"][1]["slice_host"] == 1 and result["hosts"][1]["slice"] == "local-tpu-0"
    [said] = child.events("hosts_rejected")
    assert said["count"] == len(hostile) and said["reasons"] == {"invalid_name": len(hostile)}, said
    assert said["sample"][0] == repr("vm;touch pwned"), said


def test_discovery_sends_ten_thousand_hosts_in_parts_under_the_message_limit(tmp_path: Path) -> None:
    """10,000 workers: every HOSTS message fits, and the parts add up to the whole set in order."""
    child = run_to_end("tests.workers.probes:discovery_listing", {"workers": 10_000}, tmp_path, 30)
    assembler = HostsAssembler()
    parts = [m for m in child.messages if isinstance(m, HostsPart)]
    listings = [h for h in (assembler.feed(p) for p in parts) if h is not None]
    assert len(parts) > 1
    [hosts] = listings
    assert len(hosts) == 10_001 and hosts[0].role == "controller"
    assert hosts[1].vm == "local-cpu-0-w0" and hosts[-1].vm == "local-cpu-9999-w0"


def test_addresses_reach_ssh_as_hosts_without_their_port() -> None:
    """`host:port` and `[v6]:port` are split (the port is the worker's RPC port, not sshd's)."""
    assert split_address("address", "10.0.0.5:10001") == ("10.0.0.5", 10001)
    assert split_address("address", "[fe80::1]:8080") == ("fe80::1", 8080)
    assert split_address("address", "[::1]") == ("::1", None)
    assert split_address("address", "::1") == ("::1", None)
    assert split_address("address", "worker-3.internal") == ("worker-3.internal", None)
    for hostile in ("-oProxyCommand=x:22", "10.0.0.5:99999", "10.0.0.5:ssh", "[::1", "[::1]x", ":22"):
        with pytest.raises(HostileNameError):
            split_address("address", hostile)


def test_an_ssh_stream_of_a_discovered_host_gets_the_host_and_the_ssh_port(tmp_path: Path) -> None:
    """Discovery's entry for a `host:port` worker, through the stream's spec, gives ssh `-p <ssh port> ... host`."""
    worker = Worker(worker_id="w1", vm_name="vm-1", address="[fd00::5]:10001", healthy=True)
    entry = worker_host(worker)
    spec = StreamSpec(vm_host_of(entry), entry.container, SshTransport(user="smoke", port=2222))
    argv = spec.transport.argv(spec.host, spec.container, None, 60.0)
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-2] == "fd00::5" and not any("10001" in a for a in argv[:-1])
