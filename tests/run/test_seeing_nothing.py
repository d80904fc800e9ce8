"""Seeing nothing is a failure: real runs whose streams or discovery observe nothing, and the stream cap."""

import json
from pathlib import Path

from tests.helpers.cluster import running_local_cluster
from tests.helpers.sshd import Sshd
from tests.helpers.supervisor_proc import REPO_ROOT, run_argv, started

RUN_EXIT_S = 60.0
# A follower that connects and never prints: what a host whose container is silent, or
# a transport that reaches nothing, looks like from the stream.
SILENT_FOLLOWER = "env CONTAINER={container} sleep 300"


def _silent_ssh_run(tmp_path: Path, run_id: str, verdict: str) -> tuple[int, dict[str, object], list[str]]:
    sshd = Sshd(tmp_path / "sshd").start()
    try:
        with running_local_cluster(tmp_path) as (address, _state_dir, _popen):
            config = tmp_path / "run.toml"
            config.write_text(
                f'[run]\ntests = ["simple"]\n\n[cluster]\nkind = "ssh"\ncontroller = "{address}"\n\n'
                f"[streams]\nremote_command = {json.dumps(SILENT_FOLLOWER)}\n\n{verdict}\n"
                f'[ssh]\nuser = "{sshd.user}"\nport = {sshd.port}\nidentity_file = "{sshd.user_key}"\n'
                f'known_hosts_file = "{sshd.known_hosts}"\nstrict_host_key_checking = "yes"\n'
                f'hosts = [{{ vm = "local-controller", address = "127.0.0.1", role = "controller" }}]\n'
            )
            with started(run_argv(run_id, tmp_path / "runs", "--config", str(config)), tmp_path, run_id) as sup:
                code = sup.wait_exit(RUN_EXIT_S)
                silent = [e["child"] for e in sup.find("stream_no_data")]
                return code, sup.results(), silent
    finally:
        sshd.stop()


def test_a_run_whose_only_stream_saw_no_line_fails(tmp_path: Path) -> None:
    """The test passed, but the one stream was up all along and delivered nothing: failed, exit 1."""
    code, results, silent = _silent_ssh_run(tmp_path, "silent", "")
    assert code == 1, results
    assert results["outcome"] == "failed" and results["failure_reasons"] == ["stream_no_data"]
    assert [t["outcome"] for t in results["tests"]] == ["passed"]  # type: ignore[attr-defined]
    assert silent == ["stream:controller@local-controller"]
    [stream] = results["streams"]  # type: ignore[misc]
    assert stream["no_data"] is True and stream["lines"] == 0


def test_silent_streams_can_be_relaxed_to_a_warning(tmp_path: Path) -> None:
    """`[verdict] silent_streams = "warn"`: the same run passes, and still says which stream was silent."""
    code, results, silent = _silent_ssh_run(tmp_path, "silent-ok", '[verdict]\nsilent_streams = "warn"\n')
    assert code == 0, results
    assert results["outcome"] == "passed" and silent == ["stream:controller@local-controller"]


def _local_config(tmp_path: Path, extra: str) -> Path:
    text = (REPO_ROOT / "local_cluster" / "default-config.toml").read_text()
    path = tmp_path / "cluster.toml"
    path.write_text(text.replace("[cluster]\n", f"[cluster]\n{extra}\n", 1))
    return path


def test_a_run_whose_discovery_never_lists_a_host_fails(tmp_path: Path) -> None:
    """ListWorkers answers RESOURCE_EXHAUSTED every time: no host, no stream, `discovery_failed`, exit 1."""
    cluster = _local_config(tmp_path, "fail_list_workers = true")
    config = tmp_path / "run.toml"
    config.write_text(f'[run]\ntests = ["simple"]\n\n[cluster]\nlocal_config = "{cluster}"\n')
    with started(run_argv("blind", tmp_path / "runs", "--config", str(config)), tmp_path, "blind") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
        results = sup.results()
        assert results["failure_reasons"] == ["discovery_failed"] and results["streams"] == []
        assert results["observation"]["host_listings"] == 0
        assert results["observation"]["most_failed_listings_in_a_row"] >= 1
        assert {e["code"] for e in sup.find("discovery_failed")} == {"resource_exhausted"}
        assert sup.find("discovery_kept_failing")


def test_hosts_beyond_max_streams_get_no_stream_and_fail_the_run(tmp_path: Path) -> None:
    """`max_streams = 1`: the controller has its stream, the worker none; `hosts_over_limit` says how many."""
    config = tmp_path / "run.toml"
    config.write_text('[run]\ntests = ["simple"]\n\n[streams]\nmax_streams = 1\n')
    with started(run_argv("capped", tmp_path / "runs", "--config", str(config)), tmp_path, "capped") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
        results = sup.results()
        assert results["failure_reasons"] == ["hosts_over_limit"]
        assert [s["role"] for s in results["streams"]] == ["controller"]
        over = sup.find("hosts_over_limit")
        assert over[0]["hosts"] >= 1 and over[0]["max_streams"] == 1 and over[0]["level"] == "warning"
        assert results["observation"]["hosts_over_limit"] >= 1
