"""`iris-smoke run --cluster gcp` end to end: a fake gcloud, a real sshd, a real Iris behind the tunnel."""

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers.fake_gcloud_env import FakeGcloud, docker_template
from tests.helpers.iris import IrisCluster, running_iris_cluster
from tests.helpers.sshd import Sshd
from tests.helpers.supervisor_proc import run_argv, started
from tests.helpers.waiting import wait_for

RUN_EXIT_S = 150.0
PROJECT, ZONE = "proj-1", "zone-a"
# The fake docker's line period: longer than the quiet that counts a stream caught up at the end
# of a run (workers.stream.child.DRAIN_QUIET_S, 0.3 s), so the drain ends when the streams have
# caught up rather than at its 3 s budget (a line every 0.2 s is never quiet that long).
LINE_EVERY_S = 0.5


def _config(path: Path, prefix: str, controller_port: int, extra: str = "") -> Path:
    path.write_text(
        f'[run]\nprefix = "{prefix}"\ntests = ["simple"]\nboot_timeout_s = 60\ndiscovery_interval_s = 1\n\n'
        f'[cluster]\nkind = "gcp"\n\n[streams]\nremote_command = {json.dumps(docker_template(LINE_EVERY_S))}\n\n'
        f'[gcp]\nproject = "{PROJECT}"\nzones = ["{ZONE}"]\ncontroller_port = {controller_port}\n'
        f"call_timeout_s = 20\ndelete_timeout_s = 20\n{extra}"
    )
    return path


def _ssh_clients(sshd_port: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        argv = proc.info["cmdline"] or []
        if proc.info["name"] == "ssh" and str(sshd_port) in argv:
            found.append(proc)
    return found


@pytest.fixture
def sshd(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = Sshd(tmp_path / "sshd").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """One real Iris for the module: the controller behind each run's tunnel. A run deletes only the
    fake gcloud's resources, never stops it, and sweeps its own jobs."""
    with running_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        yield cluster


def _cluster(fake: FakeGcloud, prefix: str) -> None:
    managed = {f"{prefix}-managed": "true"}
    fake.add_instance(f"iris-controller-{prefix}", {f"iris-{prefix}-controller": "true"})
    fake.add_tpu(f"{prefix}-tpu-0", hosts=4, labels=managed)
    fake.add_instance(f"{prefix}-cpu-0", managed)
    # Another cluster's resources, and an unlabelled VM: never touched.
    fake.add_tpu("other-tpu-0", hosts=1, labels={"other-managed": "true"})
    fake.add_instance("bystander", {})


def test_a_gcp_run_streams_every_host_over_lean_ssh_survives_a_tunnel_drop_and_deletes_everything(
    iris: IrisCluster, tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"team{uuid.uuid4().hex[:6]}"  # a custom prefix: nothing starts with "iris-"
    fake = FakeGcloud.install(tmp_path / "gcloud", sshd, PROJECT, ZONE)
    _cluster(fake, prefix)
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")
    port = int(iris.url.rsplit(":", 1)[1])
    config = _config(tmp_path / "run.toml", prefix, port)
    run_id = f"gcp-{uuid.uuid4().hex[:8]}"
    with started(run_argv(run_id, tmp_path / "runs", "--config", str(config)), tmp_path, run_id) as sup:
        sup.wait_event("stream_connected", timeout_s=60, count=6)
        # Streams run ssh directly: no gcloud stays alive beside them.
        wait_for(lambda: not fake.processes(), 10, "no fake gcloud process while streams run")
        clients = _ssh_clients(sshd.port)
        assert clients, "the streams' ssh clients"
        for client in clients:
            argv = client.cmdline()
            if "-L" in argv:
                continue  # the tunnel
            assert any(a.startswith("ControlPath=") for a in argv), argv
            assert argv[-1].startswith("exec timeout --signal=TERM"), argv[-1]
            assert "iris-worker" in argv[-1] or "iris-controller" in argv[-1], argv[-1]
        [tunnel] = [c for c in clients if "-L" in c.cmdline()]
        tunnel.kill()  # the tunnel drops mid-run
        sup.wait_event("tunnel_restored", timeout_s=30)
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-4000:]
        results = sup.results()
        drops = sup.find("tunnel_dropped")
        # The kill is the first drop. A second one (ssh exiting 0 as the streams stop)
        # has been seen once in ~20 runs; it was restored too, and is under investigation.
        assert drops[0]["drops"] == 1 and drops[0]["exit_code"] == -9, drops
        assert len(sup.find("tunnel_restored")) == len(drops)
    assert results["cluster"]["tunnel_drops"] == len(drops)
    names = sorted(s["name"] for s in results["streams"])
    assert names == sorted([f"stream:controller@iris-controller-{prefix}", f"stream:{prefix}-cpu-0"]
                           + [f"stream:{prefix}-tpu-0:{i}" for i in range(4)])  # fmt: skip
    assert all(s["lines"] > 0 for s in results["streams"]), results["streams"]
    records = fake.records()
    dry_runs = [r for r in records if "--dry-run" in r]
    workers = sorted(a for r in dry_runs if f"{prefix}-tpu-0" in r for a in r if a.startswith("--worker="))
    assert workers == [f"--worker={i}" for i in range(4)], "one dry-run per host of the 4-host slice"
    assert len(dry_runs) == 7, dry_runs  # one per host (6) and one for the tunnel
    deletes = sorted(r[r.index("delete") + 1] for r in records if "delete" in r)
    assert deletes == sorted([f"iris-controller-{prefix}", f"{prefix}-tpu-0", f"{prefix}-cpu-0"])
    cleanup = results["cloud_cleanup"]
    assert len(cleanup["deleted"]) == 3 and cleanup["failed"] == [], cleanup
    state = fake.state()
    assert [n["name"] for n in state["tpus"][ZONE]] == ["other-tpu-0"]
    assert [i["name"] for i in state["instances"]] == ["bystander"]
    assert not _ssh_clients(sshd.port), "no ssh client or multiplexed master outlived the run"


def test_a_hanging_gcloud_list_is_bounded_and_reported(
    tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"hang{uuid.uuid4().hex[:6]}"
    fake = FakeGcloud.install(tmp_path / "gcloud", sshd, PROJECT, ZONE)
    _cluster(fake, prefix)
    fake.update(lambda s: s["hang"].append("list"))
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")
    config = _config(tmp_path / "run.toml", prefix, 10000)
    config.write_text(config.read_text().replace("call_timeout_s = 20", "call_timeout_s = 1.5")
                      .replace("boot_timeout_s = 60", "boot_timeout_s = 2"))  # fmt: skip
    run_id = f"gcp-hang-{uuid.uuid4().hex[:8]}"
    with started(run_argv(run_id, tmp_path / "runs", "--config", str(config)), tmp_path, run_id) as sup:
        assert sup.wait_exit(60) == 3, sup.output.read_text()[-4000:]
        results = sup.results()
        timed_out = sup.find("gcloud_failed", timed_out=True)
        assert timed_out and all("list" in e["argv"] for e in timed_out)
        assert sup.find("cluster_start_failed", mode="gcp")
    assert "cluster_start_failed" in results["failure_reasons"]
    assert "cloud_cleanup_failed" in results["failure_reasons"]
    [failure] = results["cloud_cleanup"]["failed"]
    assert failure["what"] == "listing" and "gcloud compute" in failure["command"]
    assert not fake.processes(), "every hanging gcloud was ended"


def test_cleanup_counts_not_found_as_gone_and_reports_what_it_could_not_delete(
    tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"del{uuid.uuid4().hex[:6]}"
    managed = {f"{prefix}-managed": "true"}
    fake = FakeGcloud.install(tmp_path / "gcloud", sshd, PROJECT, ZONE)
    for name in ("gone", "denied", "stuck", "fine"):
        fake.add_tpu(f"{prefix}-{name}", hosts=1, labels=managed)
    behaviours = {f"{prefix}-gone": "not_found", f"{prefix}-denied": "fail", f"{prefix}-stuck": "hang"}
    fake.update(lambda s: s["delete"].update(behaviours))
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")
    config = _config(tmp_path / "run.toml", prefix, 10000)
    config.write_text(config.read_text().replace("delete_timeout_s = 20", "delete_timeout_s = 2")
                      .replace("boot_timeout_s = 60", "boot_timeout_s = 1"))  # fmt: skip
    run_id = f"gcp-del-{uuid.uuid4().hex[:8]}"
    with started(run_argv(run_id, tmp_path / "runs", "--config", str(config)), tmp_path, run_id) as sup:
        assert sup.wait_exit(60) == 3, sup.output.read_text()[-4000:]
        results = sup.results()
    cleanup = results["cloud_cleanup"]
    assert [r["name"] for r in cleanup["deleted"]] == [f"{prefix}-fine"]
    assert [r["name"] for r in cleanup["already_gone"]] == [f"{prefix}-gone"]
    failed = {r["name"]: r for r in cleanup["failed"]}
    assert sorted(failed) == [f"{prefix}-denied", f"{prefix}-stuck"]
    assert "PERMISSION_DENIED" in failed[f"{prefix}-denied"]["error"]
    assert "no answer within" in failed[f"{prefix}-stuck"]["error"]
    assert failed[f"{prefix}-stuck"]["command"] == (
        f"gcloud compute tpus tpu-vm delete {prefix}-stuck --zone={ZONE} --quiet --project={PROJECT}"
    )
    assert "cloud_cleanup_failed" in results["failure_reasons"]
    assert not fake.processes(), "the hanging delete was ended"


def test_the_clusters_own_start_and_stop_commands_run_around_the_run(
    iris: IrisCluster, tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[gcp] start_command` runs before discovery and `stop_command` before the labelled
    deletion, each with {prefix}, {project} and {zone} filled in."""
    prefix = f"cmd{uuid.uuid4().hex[:6]}"
    fake = FakeGcloud.install(tmp_path / "gcloud", sshd, PROJECT, ZONE)
    _cluster(fake, prefix)
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")
    log = tmp_path / "cluster-cli.log"
    commands = (
        f'start_command = ["sh", "-c", "echo start $0 >> {log}", "{{prefix}} {{project}} {{zone}}"]\n'
        f'stop_command = ["sh", "-c", "echo stop $0 >> {log}", "{{prefix}}"]\n'
    )
    config = _config(tmp_path / "run.toml", prefix, int(iris.url.rsplit(":", 1)[1]), commands)
    run_id = f"gcp-cmd-{uuid.uuid4().hex[:8]}"
    with started(run_argv(run_id, tmp_path / "runs", "--config", str(config)), tmp_path, run_id) as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-4000:]
        assert [e["which"] for e in sup.find("cluster_command_done")] == ["start", "stop"]
    assert log.read_text().splitlines() == [f"start {prefix} {PROJECT} {ZONE}", f"stop {prefix}"]
    assert sorted(r[r.index("delete") + 1] for r in fake.records() if "delete" in r) == sorted(
        [f"iris-controller-{prefix}", f"{prefix}-tpu-0", f"{prefix}-cpu-0"]
    ), "the labelled deletion still runs after the cluster's own stop"


def test_a_failing_start_command_fails_the_cluster_start_with_its_stderr(
    tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"bad{uuid.uuid4().hex[:6]}"
    fake = FakeGcloud.install(tmp_path / "gcloud", sshd, PROJECT, ZONE)
    _cluster(fake, prefix)
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")
    extra = 'start_command = ["sh", "-c", "echo quota exhausted >&2; exit 4"]\n'
    config = _config(tmp_path / "run.toml", prefix, 10000, extra)
    run_id = f"gcp-bad-{uuid.uuid4().hex[:8]}"
    with started(run_argv(run_id, tmp_path / "runs", "--config", str(config)), tmp_path, run_id) as sup:
        assert sup.wait_exit(60) == 3, sup.output.read_text()[-4000:]
        [failed] = sup.find("cluster_command_failed", which="start")
        assert failed["exit_code"] == 4 and "quota exhausted" in failed["stderr"]
        assert sup.find("cluster_start_failed", mode="gcp")
        assert "cluster_start_failed" in sup.results()["failure_reasons"]
