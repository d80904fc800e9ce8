"""Set up the fake `gcloud` (tests/helpers/fake_gcloud.py) for a test: a cluster to list,
ssh answers pointing at the loopback sshd, and the argv it recorded.

    fake = FakeGcloud.install(tmp_path / "gcloud", sshd, project, zone)
    fake.add_tpu("pfx-tpu-0", hosts=4, labels={"pfx-managed": "true"})
    monkeypatch.setenv("PATH", f"{fake.bin_dir}:{os.environ['PATH']}")
"""

import fcntl
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import processes
from tests.helpers.sshd import Sshd

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "fake_gcloud.py"
DOCKER = HERE / "fake_gcloud_docker.py"
STATE_ENV = "FAKE_GCLOUD_STATE"


@dataclass
class FakeGcloud:
    root: Path
    zone: str

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def record_path(self) -> Path:
        return self.root / "argv.jsonl"

    @classmethod
    def install(cls, root: Path, sshd: Sshd | None, project: str, zone: str) -> "FakeGcloud":
        """`sshd`: where its ssh answers point; None for tests that list and delete only."""
        fake = cls(root, zone)
        fake.bin_dir.mkdir(parents=True)
        state = {
            "project": project,
            "tpus": {zone: []},
            "instances": [],
            "ssh": _ssh_state(sshd),
            "record": str(fake.record_path),
            "hang": [],
            "delete": {},
        }  # fmt: skip
        fake.state_path.write_text(json.dumps(state))
        fake.record_path.touch()
        wrapper = fake.bin_dir / "gcloud"
        wrapper.write_text(f'#!/bin/sh\n{STATE_ENV}={fake.state_path} exec {sys.executable} {SCRIPT} "$@"\n')
        wrapper.chmod(0o755)
        return fake

    def update(self, change: Callable[[dict[str, Any]], None]) -> None:
        with open(self.state_path, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            state = json.load(f)
            change(state)
            f.seek(0)
            f.truncate()
            json.dump(state, f)

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_path.read_text()))

    def add_tpu(
        self,
        name: str,
        hosts: int,
        labels: dict[str, str],
        accelerator: str = "v5litepod-16",
        listed: dict[str, Any] | None = None,
    ) -> None:
        """`hosts=0`: no endpoints listed yet (the count comes from `accelerator`); `listed`:
        fields printed instead of the real ones."""
        endpoints = [{"ipAddress": f"10.0.0.{i + 2}", "port": 8470} for i in range(hosts)]
        node = {"name": name, "acceleratorType": accelerator, "labels": labels, "state": "READY",
                "networkEndpoints": endpoints, "listed": listed or {}}  # fmt: skip
        self.update(lambda s: s["tpus"].setdefault(self.zone, []).append(node))

    def add_instance(self, name: str, labels: dict[str, str], listed: dict[str, Any] | None = None) -> None:
        instance = {"name": name, "zone": self.zone, "labels": labels, "status": "RUNNING", "listed": listed or {}}
        self.update(lambda s: s["instances"].append(instance))

    def records(self) -> list[list[str]]:
        return [json.loads(line) for line in self.record_path.read_text().splitlines()]

    def processes(self) -> list[psutil.Process]:
        """This fake's gcloud processes alive now, found by the state file their wrapper gave them:
        the script is every test's, and a test beside this one may have its own running."""
        return processes.with_env(STATE_ENV, str(self.state_path))


def _ssh_state(sshd: Sshd | None) -> dict[str, Any]:
    if sshd is None:
        return {}
    host_pub = (sshd.workdir / "host_key.pub").read_text().split()
    return {"user": sshd.user, "port": sshd.port, "identity_file": str(sshd.user_key),
            "host_key": f"{host_pub[0]} {host_pub[1]}"}  # fmt: skip


def docker_template(every_s: float | None = None) -> str:
    """`streams.remote_command` for the fake cluster's VMs: the fake `docker logs`, a line every
    `every_s` (default fake_gcloud_docker.LINE_EVERY_S)."""
    every = "" if every_s is None else f"--every {every_s:g} "
    return f"{sys.executable} {DOCKER} logs -f {every}--timestamps {{since}} {{container}} 2>&1"
