"""The real Iris on this machine: what a `--cluster iris-local` run starts when the user gives no config.

`iris --config FILE cluster start` with `platform: local` runs the controller and every worker as
threads of one process, and each task as a subprocess of it, so a whole cluster (a CPU group and
one fake 4-host TPU v5litepod-16 slice) fits on a laptop or a CI machine without docker.

Iris writes outside its config: credentials under `$HOME` (0.2.227 writes
`$HOME/.config/marin/credentials/<cluster name>.json`; older notes say `$HOME/.iris/`) and its
temporary directories (`iris_local_controller_*`, `iris_local_autoscaler_*`) under `$TMPDIR`.
The run gives it a HOME and a TMPDIR inside its own run directory (`iris_env`), so nothing leaks
into the user's home or the shared /tmp, and whatever Iris failed to clean up after its stop is
there to be checked and reported. Its environment is the embedded cluster's allowlist
(`local_cluster.environment`): its tasks run arbitrary code, and inherit what Iris has.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from local_cluster.environment import minimal_env

DEFAULT_CLUSTER_NAME = "iris-smoke-local"
# How long a SIGTERMed `iris cluster start` gets before its group is KILLed. Iris 0.2.227 stops
# its log server before its workers, and each worker's log client then waits up to 10 s for a
# flush that cannot land (finelog `Table.close`), so a clean exit can take a minute. Nothing it
# would still do matters to a throwaway local cluster: its tasks are in the group that is KILLed,
# and its temporary directories (usually gone within a fraction of a second of the signal) live
# inside the run directory, where any left are reported (`iris_tmp_left`). So the group is KILLed
# as soon as they are gone (workers/cluster.py `_stop`), the grace only a bound: it always ran out.
STOP_GRACE_S = 2.0
# The line Iris 0.2.227 prints when its controller cannot start ("Failed to start controller:
# failed to bind 127.0.0.1:N: Address already in use"); it then hangs on its log flushes
# instead of exiting, so this line, not its exit, is how a failed start is seen early.
_START_FAILED = re.compile(rb"^Failed to start [^\n]*", re.MULTILINE)
_BIND_FAILED = "Address already in use"
STDERR_TAIL_BYTES = 16384
# Iris derives `region` from a cloud slice template and refuses it as a worker attribute, so
# local slices carry none: the two CPU groups name their "region" in this attribute instead.
REGION_ATTRIBUTE = "pool"


@dataclass(frozen=True)
class ScaleGroup:
    """One group of the local cluster: slices of `hosts` VMs (threads of Iris's process), each with
    these resources, and its "region" in REGION_ATTRIBUTE."""

    name: str
    hosts: int
    cpu: int
    ram: str
    capacity: str  # on-demand | preemptible
    buffer_slices: int
    max_slices: int
    pool: str
    device: str = "cpu"
    variant: str = "cpu"
    device_count: int = 0  # chips a host (none for a CPU group)

    def config(self) -> dict[str, object]:
        """The group as Iris's config spells it."""
        resources: dict[str, object] = {"cpu": self.cpu, "ram": self.ram, "disk": "10GB"}
        resources |= {"device_type": self.device, "device_variant": self.variant}
        if self.device_count:
            resources["device_count"] = self.device_count
        resources["capacity_type"] = self.capacity
        return {
            "num_vms": self.hosts,
            "resources": resources,
            "buffer_slices": self.buffer_slices,
            "max_slices": self.max_slices,
            "slice_template": {"num_vms": self.hosts, "local": {}},
            "worker": {"attributes": {REGION_ATTRIBUTE: self.pool}},
        }


SCALE_GROUPS = (
    ScaleGroup("cpu", 1, 2, "4GB", "on-demand", buffer_slices=1, max_slices=2, pool="local-a"),
    ScaleGroup("cpu_spot", 1, 2, "4GB", "preemptible", buffer_slices=1, max_slices=1, pool="local-b"),
    ScaleGroup(
        "tpu_v5e_16", 4, 8, "16GB", "preemptible", buffer_slices=0, max_slices=1, pool="local-a",
        device="tpu", variant="v5litepod-16", device_count=4,
    ),
)  # fmt: skip

# Fast autoscaler timings: a smoke test should see the TPU slice come up in seconds, not minutes.
_CONFIG_HEAD = """\
name: {name}
platform: {{local: {{}}}}
controller: {{local: {{port: {port}}}}}
defaults:
  autoscaler:
    evaluation_interval: {{milliseconds: 500}}
    scale_up_delay: {{milliseconds: 1000}}
    scale_down_delay: {{milliseconds: 1000}}
worker_provider: {{}}
scale_groups:
"""


def _flow(value: object) -> str:
    """A YAML flow value: `{key: value, ...}` for a mapping, else the plain scalar (our names need no quotes)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def start_failure(stderr_path: Path, exited: bool, since: int = 0) -> str:
    """Iris's own words for a failed start, in what it wrote from byte `since` on: its `Failed
    to start ...` line, or, once it has exited, its last line; "" while it says nothing of the kind."""
    try:
        with open(stderr_path, "rb") as f:
            f.seek(max(since, f.seek(0, 2) - STDERR_TAIL_BYTES))
            tail = f.read()
    except OSError:
        return ""
    found = _START_FAILED.search(tail)
    if found:
        return found.group(0).decode(errors="replace").strip()
    lines = [line for line in tail.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:500] if exited and lines else ""


def is_bind_failure(failure: str) -> bool:
    return _BIND_FAILED in failure


def local_config_yaml(port: int, name: str = DEFAULT_CLUSTER_NAME) -> str:
    """An Iris cluster config: local platform, controller on 127.0.0.1:`port`, an on-demand CPU group
    (pool local-a), a preemptible one (pool local-b), one v5e-16 slice (pool local-a)."""
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    if not name or any(c in name for c in ":{}[]#,\n\"'") or name != name.strip():
        raise ValueError(f"cluster name must be a plain YAML scalar: {name!r}")
    groups = "".join(
        f"  {g.name}:\n" + "".join(f"    {key}: {_flow(value)}\n" for key, value in g.config().items())
        for g in SCALE_GROUPS
    )
    return _CONFIG_HEAD.format(name=name, port=port) + groups


def iris_argv(iris_bin: str, config_path: str) -> list[str]:
    """The command that starts the cluster and serves until SIGTERM (not `--local`: it resets the port)."""
    return [iris_bin, "--config", config_path, "cluster", "start"]


def iris_env(base: Mapping[str, str], home: Path, tmpdir: Path) -> dict[str, str]:
    """The allowlisted part of `base`, with HOME and TMPDIR pointed into the run directory and
    unbuffered Python output (Iris and its tasks need no more: PATH finds `sh` and `python3`)."""
    env = minimal_env(base)
    env.pop("PYTHONPATH", None)  # our source checkout is nothing to Iris's own interpreter
    env["HOME"] = str(home)
    env["TMPDIR"] = str(tmpdir)
    env["PYTHONUNBUFFERED"] = "1"
    return env
