"""Fixtures that start a real local cluster (see tests/helpers/cluster.py) with fast timings."""

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.cluster import running_local_cluster
from tests.local_cluster.client import Client

# Short delays so a scenario takes about a second; max_slices 2 leaves room for a replacement.
FAST_CONFIG = """
[cluster]
heartbeat_interval_s = 0.05
heartbeat_timeout_s = 0.6
backoff_base_s = 0.3
backoff_max_s = 2.0

[[scale_groups]]
name = "cpu"
accelerator_type = "cpu"
chips_per_host = 4
min_slices = 1
max_slices = 2
boot_delay_s = 0.2
idle_scale_down_delay_s = 30.0

[[scale_groups]]
name = "tpu"
accelerator_type = "tpu"
accelerator_variant = "v5litepod-16"
hosts_per_slice = 4
chips_per_host = 4
min_slices = 0
max_slices = 2
boot_delay_s = 0.6
idle_scale_down_delay_s = 1.0
"""


class Cluster:
    def __init__(self, address: str, state_dir: Path, popen: "subprocess.Popen[bytes]") -> None:
        self.address = address
        self.state_dir = state_dir
        self.popen = popen
        self.client = Client(address)


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Start clusters on demand (`start_cluster(config_text)`); all stopped and leak-checked at the end."""
    with contextlib.ExitStack() as stack:

        def start(config_text: str = FAST_CONFIG) -> Cluster:
            address, state_dir, popen = stack.enter_context(running_local_cluster(tmp_path, config_text))
            cluster = Cluster(address, state_dir, popen)
            stack.callback(cluster.client.close)
            return cluster

        yield start


@pytest.fixture
def cluster(start_cluster: ClusterFactory) -> Cluster:
    return start_cluster()
