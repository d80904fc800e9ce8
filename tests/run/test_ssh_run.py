"""`--cluster ssh` end to end: attach to a running cluster, stream its logs through a real sshd."""

import json
import sys
from pathlib import Path

import psutil

from tests.helpers.cluster import REPO_ROOT, running_local_cluster
from tests.helpers.sshd import Sshd
from tests.helpers.supervisor_proc import run_argv, started

RUN_EXIT_S = 60.0


def _follower_processes(state_dir: Path) -> list[psutil.Process]:
    """`local_cluster logs` processes reading this cluster: over ssh they run under sshd."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if "logs" in argv and str(state_dir) in argv:
            found.append(proc)
    return found


def test_an_ssh_run_streams_the_controller_log_through_sshd(tmp_path: Path) -> None:
    sshd = Sshd(tmp_path / "sshd").start()
    try:
        with running_local_cluster(tmp_path) as (address, state_dir, _popen):
            # What `docker logs` is on a real VM: the local cluster's log command, run by sshd.
            remote = (
                f"cd {REPO_ROOT} && {sys.executable} -m local_cluster logs --state-dir {state_dir} "
                "--follow --timestamps {since} local-controller {container}"
            )
            config = tmp_path / "run.toml"
            config.write_text(
                f'[run]\ntests = ["simple"]\n\n[cluster]\nkind = "ssh"\ncontroller = "{address}"\n\n'
                f"[streams]\nremote_command = {json.dumps(remote)}\n\n"
                f'[ssh]\nuser = "{sshd.user}"\nport = {sshd.port}\nidentity_file = "{sshd.user_key}"\n'
                f'known_hosts_file = "{sshd.known_hosts}"\nstrict_host_key_checking = "yes"\n'
                f'hosts = [{{ vm = "local-controller", address = "127.0.0.1", role = "controller" }}]\n'
            )
            with started(run_argv("over-ssh", tmp_path / "runs", "--config", str(config)), tmp_path, "over-ssh") as sup:
                assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
                results = sup.results()
                assert results["cluster"]["mode"] == "attach"
                [stream] = results["streams"]
                assert stream["name"] == "stream:controller@local-controller" and stream["lines"] > 0
                lines = (sup.run_dir / "logs" / "controller.jsonl").read_text().splitlines()
                assert any("job_launched" in json.loads(line)["line"] for line in lines)
                assert not sup.find("child_started", child="discovery"), "a static host list replaces discovery"
            assert _follower_processes(state_dir) == [], "the remote follower ended with the ssh channel"
    finally:
        sshd.stop()
